"""Server-Sent Events (the WHATWG HTML "Server-sent events" stream format), under
FastAPI's names: a generator endpoint with ``response_class=EventSourceResponse`` streams
each yielded item as an event. A ``ServerSentEvent`` sets the event's fields; any other
item is the ``data`` of an event, as JSON (validated against the endpoint's item
annotation when it has one). While the generator has nothing to send, a ``: ping``
comment goes out every 15 seconds so that proxies keep the connection open. The stream
is written by the native streaming writer (chunked, with backpressure); a client that
leaves closes the generator.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, model_validator

from data_bridge.api.concurrency import iterate_in_threadpool
from data_bridge.api.encoders import jsonable_encoder
from data_bridge.api.responses import StreamingResponse

__all__ = ["KEEPALIVE_COMMENT", "EventSourceResponse", "ServerSentEvent", "format_sse_event"]

KEEPALIVE_COMMENT = b": ping\n\n"
PING_INTERVAL = 15.0


class EventSourceResponse(StreamingResponse):
    """A ``text/event-stream`` response (the response_class of SSE endpoints)."""

    media_type = "text/event-stream"


def _single_line(name: str) -> Callable[[str | None], str | None]:
    def check(value: str | None) -> str | None:
        if value is not None and ("\r" in value or "\n" in value):
            raise ValueError(f"SSE '{name}' must be a single line")
        return value

    return check


def _check_id(value: str | None) -> str | None:
    # A NUL in an id makes the browser ignore it (the "id" field rule of the format).
    if value is not None and "\x00" in value:
        raise ValueError("SSE 'id' must not contain null characters")
    return _single_line("id")(value)


class ServerSentEvent(BaseModel):
    """One event: ``data`` (sent as JSON) or ``raw_data`` (sent as it is), and the
    optional ``event``, ``id``, ``retry`` and ``comment`` fields."""

    data: Any = None
    raw_data: str | None = None
    event: Annotated[str | None, AfterValidator(_single_line("event"))] = None
    id: Annotated[str | None, AfterValidator(_check_id)] = None
    retry: Annotated[int | None, Field(ge=0)] = None
    comment: str | None = None

    @model_validator(mode="after")
    def _one_data(self) -> ServerSentEvent:
        if self.data is not None and self.raw_data is not None:
            raise ValueError(
                "Cannot set both 'data' and 'raw_data' on the same ServerSentEvent. Use "
                "'data' for JSON-serialized payloads or 'raw_data' for pre-formatted strings."
            )
        return self


def _lines(value: str) -> list[str]:
    return value.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def format_sse_event(
    *,
    data_str: str | None = None,
    event: str | None = None,
    id: str | None = None,  # noqa: A002 - the field's name in the format
    retry: int | None = None,
    comment: str | None = None,
) -> bytes:
    """One event's text: comment lines, then event, data (one line each), id, retry, and
    the blank line that ends the event."""
    out: list[str] = []
    if comment is not None:
        out += [f": {line}" for line in _lines(comment)]
    if event is not None:
        out.append(f"event: {event}")
    if data_str is not None:
        out += [f"data: {line}" for line in _lines(data_str)]
    if id is not None:
        out.append(f"id: {id}")
    if retry is not None:
        out.append(f"retry: {retry}")
    out += ["", ""]
    return "\n".join(out).encode("utf-8")


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null, as FastAPI sends them."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def serialize_event(item: Any, serialize_data: Callable[[Any], bytes]) -> bytes:
    """An item yielded by an SSE endpoint as the event's bytes."""
    if not isinstance(item, ServerSentEvent):
        return format_sse_event(data_str=serialize_data(item).decode("utf-8"))
    data_str: str | None
    if item.raw_data is not None:
        data_str = item.raw_data
    elif item.data is None:
        data_str = None
    elif hasattr(item.data, "model_dump_json"):
        data_str = item.data.model_dump_json()
    else:
        data_str = json.dumps(_finite(jsonable_encoder(item.data)))
    return format_sse_event(
        data_str=data_str, event=item.event, id=item.id, retry=item.retry, comment=item.comment
    )


async def event_stream(
    result: Any, serialize_data: Callable[[Any], bytes], ping: float | None = None
) -> AsyncIterator[bytes]:
    """The events of a generator endpoint's result, with a keep-alive comment whenever
    the generator stays silent for ``ping`` seconds. The generator is advanced by its own
    Task, so a ping never interrupts (or cancels) it while it waits."""
    source: AsyncIterator[Any] = (
        result.__aiter__() if hasattr(result, "__aiter__") else iterate_in_threadpool(result)
    )
    interval = PING_INTERVAL if ping is None else ping
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue(maxsize=1)

    async def produce() -> None:
        try:
            async for item in source:
                await queue.put((True, serialize_event(item, serialize_data)))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            await queue.put((False, exc))
            return
        await queue.put((False, None))

    producer = asyncio.get_running_loop().create_task(produce())
    try:
        while True:
            try:
                ok, value = await asyncio.wait_for(queue.get(), interval)
            except asyncio.TimeoutError:
                yield KEEPALIVE_COMMENT
                continue
            if ok:
                yield value
            elif value is None:
                return
            else:
                raise value
    finally:
        if not producer.done():
            producer.cancel()
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except RuntimeError:
                pass  # still running in the cancelled producer; it is closed there
