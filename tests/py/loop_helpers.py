"""Helpers shared by the Task and Future contract tests (test_loop_task.py,
test_loop_future.py): each runs on asyncio's loop and on PyLoop."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

Loop = asyncio.AbstractEventLoop
ErrorContexts = list[dict[str, Any]]


def cancelled_args(msg: str) -> tuple[str, ...]:
    """What a cancelled task's result() raises with: from 3.11 the coroutine's own
    CancelledError (carrying the cancel message); 3.10 makes a new, empty one (chained)."""
    return (msg,) if sys.version_info >= (3, 11) else ()


def collect_errors(loop: Loop) -> ErrorContexts:
    """Route the loop's exception handler into a list of contexts."""
    errors: ErrorContexts = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    return errors


def messages(errors: ErrorContexts) -> list[str]:
    return [str(context.get("message")) for context in errors]


def spin(loop: Loop, iterations: int = 1) -> None:
    """Let the loop run a few iterations (ready callbacks and task steps)."""
    for _ in range(iterations):
        loop.run_until_complete(asyncio.sleep(0))
