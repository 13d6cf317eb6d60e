"""A data-bridge app with Server-Sent Events endpoints, for tests/py/test_sse_server.py:
EventSourceResponse generators and a StreamingResponse of text/event-stream, each
recording what its generator did (started, produced, closed) under a key."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterable, AsyncIterator
from typing import Annotated, Any

from data_bridge.api import FastAPI, Header, Request
from data_bridge.api.responses import StreamingResponse
from data_bridge.api.sse import EventSourceResponse, ServerSentEvent, format_sse_event

app = FastAPI()
state: dict[str, dict[str, Any]] = {}
ITEMS = ["alpha", "beta", "gamma", "delta"]


def record(key: str) -> dict[str, Any]:
    return state.setdefault(key, {"started": 0, "produced": 0, "closed": 0, "cancelled": 0})


@app.get("/state/{key}")
def get_state(key: str) -> dict[str, Any]:
    return record(key)


@app.get("/resume", response_class=EventSourceResponse)
async def resume(
    last_event_id: Annotated[int | None, Header()] = None,
) -> AsyncIterable[ServerSentEvent]:
    # FastAPI's tutorial: the browser sends the last id it saw back as Last-Event-ID.
    start = last_event_id + 1 if last_event_id is not None else 0
    for i in range(start, len(ITEMS)):
        yield ServerSentEvent(data={"item": ITEMS[i]}, id=str(i))


@app.get("/forever", response_class=EventSourceResponse)
async def forever(key: str, size: int = 10, pause: float = 0.0) -> AsyncIterable[Any]:
    rec = record(key)
    rec["started"] += 1
    try:
        i = 0
        while True:
            rec["produced"] += 1
            yield {"i": i, "pad": "x" * size}
            i += 1
            await asyncio.sleep(pause)
    except asyncio.CancelledError:
        rec["cancelled"] += 1
        raise
    finally:
        rec["closed"] += 1


@app.get("/idle", response_class=EventSourceResponse)
async def idle(key: str) -> AsyncIterable[Any]:
    rec = record(key)
    rec["started"] += 1
    try:
        yield {"hello": True}
        await asyncio.Event().wait()  # never set: only a disconnect ends this
    finally:
        rec["closed"] += 1


@app.get("/two", response_class=EventSourceResponse)
async def two(gap: float = 1.5) -> AsyncIterable[str]:
    yield "one"
    await asyncio.sleep(gap)
    yield "two"


@app.get("/plain-sse")
async def plain_sse(request: Request, key: str) -> StreamingResponse:
    """The same through StreamingResponse: the handler formats the events itself."""
    rec = record(key)
    last = request.headers.get("last-event-id")
    start = int(last) + 1 if last is not None else 0

    async def events() -> AsyncIterator[bytes]:
        rec["started"] += 1
        try:
            for i in range(start, len(ITEMS)):
                yield format_sse_event(data_str=ITEMS[i], id=str(i))
            yield format_sse_event(comment="waiting")
            await asyncio.Event().wait()
        finally:
            rec["closed"] += 1

    return StreamingResponse(events(), media_type="text/event-stream")


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", graceful_timeout=3)
