"""Running blocking code off the loop thread, under Starlette's and FastAPI's names."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["contextmanager_in_threadpool", "iterate_in_threadpool", "run_in_threadpool"]

T = TypeVar("T")
_STOP = object()


async def run_in_threadpool(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` in the loop's default executor, in a copy of the
    current context (contextvars set by the caller are visible)."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    return await loop.run_in_executor(None, functools.partial(ctx.run, func, *args, **kwargs))


async def iterate_in_threadpool(iterable: Iterable[T]) -> AsyncIterator[T]:
    """The items of a blocking iterator, each produced in the thread pool."""
    iterator: Iterator[T] = iter(iterable)
    while True:
        item = await run_in_threadpool(next, iterator, _STOP)
        if item is _STOP:
            return
        yield item  # type: ignore[misc]


@contextlib.asynccontextmanager
async def contextmanager_in_threadpool(cm: Any) -> AsyncIterator[Any]:
    """Enters and exits a blocking context manager in the thread pool."""
    value = await run_in_threadpool(cm.__enter__)
    try:
        yield value
    except BaseException as exc:
        if not await run_in_threadpool(cm.__exit__, type(exc), exc, exc.__traceback__):
            raise
    else:
        await run_in_threadpool(cm.__exit__, None, None, None)
