"""PyLoop: an asyncio event loop implemented in C on libuv.

The per-callback machinery (scheduling, timers, the ready queue, polling, the GIL protocol)
lives in the native base class ``data_bridge._core.Loop``. This module adds the
policy-level parts of ``asyncio.AbstractEventLoop`` that run once per loop or per task:
``run_forever``/``run_until_complete`` setup, tasks and futures, executors, async
generator finalization and exception handling.

Use it like uvloop::

    from data_bridge import pyloop
    pyloop.run(main())                      # like asyncio.run
    asyncio.run(main(), loop_factory=pyloop.new_event_loop)   # 3.12+
"""

from __future__ import annotations

import asyncio
import sys
from asyncio import events, tasks
from collections.abc import Coroutine
from typing import Any, TypeVar

from data_bridge.pyloop._loop import Loop
from data_bridge.pyloop._streams import Server

__all__ = ["EventLoopPolicy", "Loop", "Server", "install", "new_event_loop", "run"]

_T = TypeVar("_T")


def new_event_loop() -> Loop:
    """Return a new PyLoop."""
    return Loop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """An event loop policy whose loops are PyLoops (for code that calls set_event_loop_policy)."""

    def _loop_factory(self) -> Loop:  # type: ignore[override]
        return new_event_loop()

    def new_event_loop(self) -> Loop:
        return new_event_loop()


def install() -> None:
    """Make asyncio create PyLoops (asyncio.set_event_loop_policy(EventLoopPolicy()))."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run a coroutine on a new PyLoop, like asyncio.run()."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
            return runner.run(main)
    return _run_compat(main, debug=debug)


def _run_compat(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    if events._get_running_loop() is not None:
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = new_event_loop()
    try:
        events.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            to_cancel = tasks.all_tasks(loop)
            for task in to_cancel:
                task.cancel()
            if to_cancel:
                loop.run_until_complete(asyncio.gather(*to_cancel, return_exceptions=True))
            for task in to_cancel:
                if task.cancelled():
                    continue
                if task.exception() is not None:
                    loop.call_exception_handler(
                        {
                            "message": "unhandled exception during asyncio.run() shutdown",
                            "exception": task.exception(),
                            "task": task,
                        }
                    )
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            events.set_event_loop(None)
            loop.close()
