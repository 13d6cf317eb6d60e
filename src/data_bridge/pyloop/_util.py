"""Small helpers shared by the loop's modules."""

from __future__ import annotations

import asyncio
import contextvars
import socket
from asyncio import futures
from typing import Any, TypeVar

try:
    import ssl
except ImportError:  # pragma: no cover - Python built without OpenSSL
    ssl = None  # type: ignore[assignment]

_T = TypeVar("_T")


def _set_result(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)


def _run_until_complete_cb(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # The loop stops by itself: the exception propagates out of run_forever().
            return
    futures._get_loop(fut).stop()


def _retrieve_exception(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _sighandler_noop(signum: int, frame: Any) -> None:
    """Placeholder Python handler: libuv's own handler receives the signal."""


def _is_numeric_host(host: Any) -> bool:
    if host is None:
        return False
    if isinstance(host, bytes):
        try:
            host = host.decode("idna")
        except UnicodeError:
            return False
    if not isinstance(host, str):
        return False
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.partition("%")[0])
            return True
        except (OSError, ValueError):
            pass
    return False


def start_transport(loop: Any, transport: Any, *args: Any) -> None:
    """Schedules transport._start(*args) (connection_made, then reading) in the transport's
    own context: a copy of the current one, in which all its protocol callbacks run, as in
    uvloop. asyncio's selector loop gets nearly the same from the call_soon and add_reader
    handles it makes in the transport's constructor, each with its own copy."""
    ctx = contextvars.copy_context()
    transport._set_context(ctx)
    loop.call_soon(transport._start, *args, context=ctx)
