"""The coroutine that feeds a streaming response's body to the native writer.

The server writes the head of a StreamingResponse itself (csrc/app/stream.c), then calls
``start_stream`` with a ``_core._StreamWriter`` bound to the connection. One Task per
stream runs ``_run_stream``: ``async for`` over the response's iterator, ``write()`` for
each piece, ``await drain()`` whenever ``write()`` reports the connection's output over its
limit (backpressure), and ``end()`` when done. Tasks are kept here until they finish
(asyncio holds only weak references to tasks). A client that leaves is noticed by the
server even while the iterator waits: the writer then cancels this Task, so the
iterator is closed at once (an idle event stream does not linger).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from data_bridge.api.responses import StreamingResponse

logger = logging.getLogger("data_bridge")

_tasks: set[asyncio.Task[None]] = set()


def start_stream(writer: Any, response: StreamingResponse, path: object) -> None:
    """Called by the server right after the head was queued; writer is None when the
    response has no body (HEAD, 204, 304): the iterator is then only closed."""
    task = asyncio.get_running_loop().create_task(_run_stream(writer, response, path))
    if writer is not None:
        writer.set_task(task)  # cancelled if the client leaves while the iterator waits
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _run_stream(writer: Any, response: StreamingResponse, path: object) -> None:
    complete = False
    try:
        if writer is not None:
            charset = response.charset
            async for chunk in response.body_iterator:
                if isinstance(chunk, str):
                    chunk = chunk.encode(charset)
                if writer.write(chunk):
                    await writer.drain()
            complete = True
    except ConnectionError:
        pass  # the client went away: nothing to report, the iterator is closed below
    except asyncio.CancelledError:
        if writer is None or not writer.closed:
            raise  # the server gave up (graceful timeout): cut the body, close the iterator
        # else the client left while the iterator was waiting: not an error
    except BaseException as exc:  # noqa: BLE001 - logged like any handler error
        if writer is None or not writer.closed:
            logger.error("Exception in streaming response for %s", path, exc_info=exc)
    finally:
        if writer is not None:
            try:
                writer.end(complete)
            except RuntimeError as exc:  # fewer bytes than the declared Content-Length
                logger.error("Streaming response for %s: %s", path, exc)
        try:
            await response._close_iterator()
        except Exception as exc:  # noqa: BLE001
            logger.error("Closing the body iterator of %s failed", path, exc_info=exc)
    if response.background is not None:
        try:
            await response.background()
        except Exception as exc:  # noqa: BLE001
            logger.error("Background task of %s failed", path, exc_info=exc)
