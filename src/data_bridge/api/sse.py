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
        # JSON from the C encoder (or pydantic's, for a declared item type) is one line:
        # newlines inside strings are escaped, so the bytes go out as they are.
        return b"data: " + serialize_data(item) + b"\n\n"
    data_str: str | None
    if item.raw_data is not None:
        data_str = item.raw_data
    elif item.data is None:
        data_str = None
    elif hasattr(item.data, "model_dump_json"):
        data_str = item.data.model_dump_json()
    else:
        # json.dumps' spacing, as FastAPI writes an event's data ('{"key": "value"}').
        data_str = json.dumps(_finite(jsonable_encoder(item.data)))
    return format_sse_event(
        data_str=data_str, event=item.event, id=item.id, retry=item.retry, comment=item.comment
    )


async def event_stream(
    result: Any, serialize_data: Callable[[Any], bytes], ping: float | None = None
) -> AsyncIterator[bytes]:
    """The events of a generator endpoint's result, with a keep-alive comment whenever
    nothing was sent for ``ping`` seconds. The generator is advanced by its own Task, so a
    ping never interrupts (or cancels) it while it waits; the two hand over one event at a
    time (the producer waits while one is unsent, so a slow client stalls the generator).
    The keep-alive is one timer per stream, re-armed once per interval, not a timeout per
    event: with events flowing, handing one over costs at most a future."""
    source: AsyncIterator[Any] = (
        result.__aiter__() if hasattr(result, "__aiter__") else iterate_in_threadpool(result)
    )
    interval = PING_INTERVAL if ping is None else ping
    loop = asyncio.get_running_loop()
    # (True, bytes) an event, (False, None) the end, (False, exc) the generator's error;
    # None from the timer: a keep-alive is due.
    slot: list[tuple[bool, Any]] = []
    waiter: asyncio.Future[tuple[bool, Any] | None] | None = None  # the consumer's
    space: asyncio.Future[None] | None = None  # the producer's, while slot is full
    last = loop.time()

    def hand_over(entry: tuple[bool, Any]) -> bool:
        """True when the consumer took entry at once, False when it waits in slot."""
        if waiter is not None and not waiter.done():
            waiter.set_result(entry)
            return True
        slot.append(entry)
        return False

    async def produce() -> None:
        nonlocal space
        try:
            async for item in source:
                if not hand_over((True, serialize_event(item, serialize_data))):
                    space = loop.create_future()
                    await space
        except asyncio.CancelledError:
            raise  # the stream ended first (the client left): nobody to tell
        except BaseException as exc:  # handed to the consumer, which re-raises it
            hand_over((False, exc))
            return
        hand_over((False, None))

    def on_tick() -> None:
        nonlocal tick
        now = loop.time()
        if now - last >= interval and waiter is not None and not waiter.done():
            waiter.set_result(None)
        tick = loop.call_at(max(last, now) + interval, on_tick)

    producer = loop.create_task(produce())
    tick = loop.call_at(last + interval, on_tick)
    try:
        while True:
            entry: tuple[bool, Any] | None
            if slot:
                entry = slot.pop()
                if space is not None and not space.done():
                    space.set_result(None)
            else:
                waiter = loop.create_future()
                entry = await waiter
                waiter = None
            if entry is None:
                last = loop.time()
                yield KEEPALIVE_COMMENT
                continue
            ok, value = entry
            if ok:
                last = loop.time()
                yield value
            elif value is None:
                return
            else:
                raise value
    finally:
        tick.cancel()
        if not producer.done():
            producer.cancel()
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except RuntimeError:
                pass  # still running in the cancelled producer; it is closed there
