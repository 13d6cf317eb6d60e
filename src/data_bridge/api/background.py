"""``BackgroundTasks``: work that runs after the response was written."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["BackgroundTask", "BackgroundTasks"]

logger = logging.getLogger("data_bridge")


class BackgroundTask:
    """One function call to run after the response (Starlette's ``BackgroundTask``)."""

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if not callable(func):
            raise TypeError(f"a background task takes a callable, got {func!r}")
        self.func = func
        self.args = args
        self.kwargs = kwargs

    async def __call__(self) -> None:
        if inspect.iscoroutinefunction(self.func):
            await self.func(*self.args, **self.kwargs)
            return
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        call = functools.partial(ctx.run, self.func, *self.args, **self.kwargs)
        await loop.run_in_executor(None, call)


class BackgroundTasks:
    """Work to run after the response is written: declare a parameter of this type (in the
    handler or a dependency) and ``add_task(func, *args, **kwargs)``. Tasks run in order once
    the handler has returned; ``async def`` functions on the loop, others in the loop's
    thread pool (they may block). An exception is logged and ends the remaining tasks."""

    def __init__(self) -> None:
        self.tasks: list[BackgroundTask] = []

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.tasks.append(BackgroundTask(func, *args, **kwargs))

    async def run(self) -> None:
        from data_bridge.api._telemetry import background_operation

        for task in self.tasks:
            try:
                # A span per task when the request is traced (FastAPI's telemetry).
                with background_operation(task.func):
                    await task()
            except Exception:
                logger.exception("Exception in background task %r", task.func)
                return

    async def __call__(self) -> None:
        await self.run()


# Lists that collect the exceptions of handlers and of work after the response instead of
# logging them (App._capture_exceptions: the test client re-raises them).
exception_sinks: list[list[BaseException]] = []


def report_exception(exc: BaseException, where: object) -> None:
    """An exception nobody else can answer (a handler's, or one raised after the response
    was sent): logged, or collected while a test client's request runs."""
    if exception_sinks:
        exception_sinks[-1].append(exc)
        return
    logger.error("Exception in handler for %s", where, exc_info=exc)


# Background runs in progress (the loop keeps only weak references to tasks); the test
# client waits for those its request started.
running: set[asyncio.Task[None]] = set()


async def _run_logged(background: Any) -> None:
    try:
        await background()
    except Exception:
        logger.exception("Exception in background task %r", background)


def start_background(background: Any) -> None:
    """Runs ``background`` (a BackgroundTask or BackgroundTasks) in a Task of its own.
    Called right after the response was queued: the Task's first step comes on the next
    loop iteration, after the response was written."""
    task = asyncio.get_running_loop().create_task(_run_logged(background))
    running.add(task)
    task.add_done_callback(running.discard)
