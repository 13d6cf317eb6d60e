"""The contract of the Task objects that loop.create_task() returns, on asyncio's loop and on
PyLoop: identity and naming, contexts, states, await chains and bad yields, cancellation
(messages, cancelling/uncancel, timeout and TaskGroup), done callbacks, current/all tasks,
repr and stacks, the destroy-time reports, the private attributes libraries read (anyio),
the asyncio helpers, the runners, and a stress run with a leak check.

Every expectation is what stdlib asyncio does on the running Python version; PyLoop's native
Task (a C subclass of asyncio.Task) has to match it."""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import gc
import inspect
import io
import re
import sys
import traceback
import types
import weakref
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import pytest
from loop_fixtures import *  # noqa: F403  (the loop and loop_factory fixtures)
from loop_helpers import Loop, cancelled_args, collect_errors, messages, spin

from data_bridge import pyloop

needs_311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="needs Python 3.11")
needs_312 = pytest.mark.skipif(sys.version_info < (3, 12), reason="Task.get_context is 3.12+")


# ---- helpers ----


async def value_after(value: Any, yields: int = 1) -> Any:
    for _ in range(yields):
        await asyncio.sleep(0)
    return value


async def wait_on(fut: asyncio.Future[Any]) -> Any:
    return await fut


async def fail(exc: BaseException) -> None:
    await asyncio.sleep(0)
    raise exc


@types.coroutine
def bare_yield() -> Generator[None, None, None]:
    yield


@types.coroutine
def yield_value(value: Any) -> Generator[Any, None, None]:
    yield value


# ---- identity, loop, coroutine ----


def test_is_a_task_and_a_future(loop: Loop) -> None:
    task = loop.create_task(value_after(1))
    assert isinstance(task, asyncio.Task)
    assert isinstance(task, asyncio.Future)
    assert asyncio.isfuture(task)
    assert not asyncio.iscoroutine(task)
    assert inspect.isawaitable(task)
    assert loop.run_until_complete(task) == 1


def test_get_loop(loop: Loop) -> None:
    task = loop.create_task(value_after(1))
    assert task.get_loop() is loop
    assert task._loop is loop
    loop.run_until_complete(task)
    assert task.get_loop() is loop


def test_does_not_run_until_the_loop_runs(loop: Loop) -> None:
    log: list[str] = []

    async def body() -> None:
        log.append("ran")

    task = loop.create_task(body())
    assert log == []
    assert not task.done()
    loop.run_until_complete(task)
    assert log == ["ran"]


def test_get_coro_and_its_state(loop: Loop) -> None:
    fut = loop.create_future()
    coro = wait_on(fut)
    task = loop.create_task(coro)
    assert task.get_coro() is coro
    assert task._coro is coro
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CREATED
    spin(loop)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_SUSPENDED
    fut.set_result("x")
    assert loop.run_until_complete(task) == "x"
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    assert task.get_coro() is coro


def test_tasks_start_in_creation_order(loop: Loop) -> None:
    log: list[int] = []

    async def body(i: int) -> None:
        log.append(i)
        await asyncio.sleep(0)
        log.append(i + 10)

    tasks = [loop.create_task(body(i)) for i in range(3)]
    loop.run_until_complete(asyncio.gather(*tasks))
    assert log == [0, 1, 2, 10, 11, 12]


# ---- names ----


def test_default_names(loop: Loop) -> None:
    first = loop.create_task(value_after(1))
    second = loop.create_task(value_after(2))
    match1 = re.fullmatch(r"Task-(\d+)", first.get_name())
    match2 = re.fullmatch(r"Task-(\d+)", second.get_name())
    assert match1 is not None and match2 is not None
    assert int(match2.group(1)) > int(match1.group(1))
    loop.run_until_complete(asyncio.gather(first, second))


def test_set_name_converts_with_str(loop: Loop) -> None:
    class Named:
        def __str__(self) -> str:
            return "from-str"

    task = loop.create_task(value_after(1))
    task.set_name("plain")
    assert task.get_name() == "plain"
    task.set_name(42)
    assert task.get_name() == "42"
    task.set_name(Named())
    assert task.get_name() == "from-str"
    task.set_name(None)
    assert task.get_name() == "None"
    loop.run_until_complete(task)
    task.set_name("after-done")
    assert task.get_name() == "after-done"


def test_name_argument(loop: Loop) -> None:
    named = loop.create_task(value_after(1), name="worker")
    numbered = loop.create_task(value_after(2), name=7)
    unnamed = loop.create_task(value_after(3), name=None)
    assert named.get_name() == "worker"
    assert numbered.get_name() == "7"
    assert re.fullmatch(r"Task-\d+", unnamed.get_name())
    loop.run_until_complete(asyncio.gather(named, numbered, unnamed))


def test_asyncio_create_task_name(loop: Loop) -> None:
    async def main() -> str:
        task = asyncio.create_task(value_after(1), name="via-asyncio")
        await task
        return task.get_name()

    assert loop.run_until_complete(main()) == "via-asyncio"


# ---- contexts ----

var: contextvars.ContextVar[str] = contextvars.ContextVar("test_loop_task_var")


def test_runs_in_a_copy_of_the_creating_context(loop: Loop) -> None:
    async def body() -> str:
        seen = var.get("unset")
        var.set("set-inside")
        return seen

    def create() -> asyncio.Task[str]:
        var.set("at-creation")
        task = loop.create_task(body())
        var.set("changed-after")
        return task

    outer = contextvars.copy_context()
    task = outer.run(create)
    assert loop.run_until_complete(task) == "at-creation"
    assert outer[var] == "changed-after"
    assert var.get("unset") == "unset"


@needs_311
def test_context_argument(loop: Loop) -> None:
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in-ctx")

    async def body() -> str:
        seen = var.get("unset")
        var.set("set-inside")
        await asyncio.sleep(0)
        return seen + "/" + var.get()

    task = loop.create_task(body(), context=ctx)
    assert loop.run_until_complete(task) == "in-ctx/set-inside"
    # The task ran in that very context object, not in a copy of it.
    assert ctx[var] == "set-inside"
    assert var.get("unset") == "unset"


@needs_311
def test_context_argument_with_asyncio_create_task(loop: Loop) -> None:
    ctx = contextvars.copy_context()
    ctx.run(var.set, "given")

    async def read() -> str:
        return var.get("unset")

    async def main() -> str:
        var.set("main")
        return await asyncio.create_task(read(), context=ctx)

    assert loop.run_until_complete(main()) == "given"


@needs_312
def test_get_context(loop: Loop) -> None:
    ctx = contextvars.copy_context()
    task = loop.create_task(value_after(1), context=ctx)
    assert task.get_context() is ctx
    other = loop.create_task(value_after(2))
    assert isinstance(other.get_context(), contextvars.Context)
    loop.run_until_complete(asyncio.gather(task, other))


# ---- task factory ----


def test_task_factory_used_and_default_restored(loop: Loop) -> None:
    default = loop.create_task(value_after(0))
    default_type = type(default)
    calls: list[tuple[Loop, dict[str, Any]]] = []

    def factory(lp: Loop, coro: Coroutine[Any, Any, Any], **kwargs: Any) -> asyncio.Task[Any]:
        calls.append((lp, kwargs))
        return asyncio.Task(coro, loop=lp, **kwargs)

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory
    made = loop.create_task(value_after(1), name="from-factory")
    assert len(calls) == 1 and calls[0][0] is loop
    assert made.get_name() == "from-factory"
    tasks = [default, made]
    if sys.version_info >= (3, 11):
        ctx = contextvars.copy_context()
        with_ctx = loop.create_task(value_after(2), context=ctx)
        assert len(calls) == 2 and calls[1][1].get("context") is ctx
        tasks.append(with_ctx)

    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    restored = loop.create_task(value_after(3))
    assert type(restored) is default_type
    assert len(calls) == len(tasks) - 1
    tasks.append(restored)
    assert loop.run_until_complete(asyncio.gather(*tasks)) == list(range(len(tasks) - 1)) + [3]


def test_task_factory_must_be_callable(loop: Loop) -> None:
    with pytest.raises(TypeError):
        loop.set_task_factory(42)
    assert loop.get_task_factory() is None


# ---- construction errors ----


@pytest.mark.parametrize("kind", ["int", "function", "future", "none"])
def test_non_coroutine_raises_type_error(loop: Loop, kind: str) -> None:
    errors = collect_errors(loop)
    bad: Any = {
        "int": 42,
        "function": value_after,
        "future": loop.create_future(),
        "none": None,
    }[kind]
    with pytest.raises(TypeError, match="a coroutine was expected"):
        loop.create_task(bad)
    gc.collect()
    spin(loop)
    gc.collect()
    assert errors == []
    assert asyncio.all_tasks(loop) == set()


# ---- states ----


def test_pending_state(loop: Loop) -> None:
    fut = loop.create_future()
    task = loop.create_task(wait_on(fut))
    for _ in range(2):
        assert not task.done()
        assert not task.cancelled()
        with pytest.raises(asyncio.InvalidStateError):
            task.result()
        with pytest.raises(asyncio.InvalidStateError):
            task.exception()
        spin(loop)
    fut.set_result(None)
    loop.run_until_complete(task)


def test_finished_with_result(loop: Loop) -> None:
    task = loop.create_task(value_after("value", yields=3))
    assert loop.run_until_complete(task) == "value"
    assert task.done()
    assert not task.cancelled()
    assert task.result() == "value"
    assert task.exception() is None


def test_finished_with_exception(loop: Loop) -> None:
    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    task = loop.create_task(failing())
    with pytest.raises(ValueError, match="boom") as info:
        loop.run_until_complete(task)
    assert task.done()
    assert not task.cancelled()
    exc = task.exception()
    assert exc is info.value
    assert exc.__traceback__ is not None
    assert "failing" in [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    with pytest.raises(ValueError) as again:
        task.result()
    assert again.value is exc


def test_cancelled_state(loop: Loop) -> None:
    task = loop.create_task(value_after(1))
    assert task.cancel() is True
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert task.done()
    assert task.cancelled()
    with pytest.raises(asyncio.CancelledError):
        task.result()
    with pytest.raises(asyncio.CancelledError):
        task.exception()


def test_set_result_and_set_exception_are_refused(loop: Loop) -> None:
    task = loop.create_task(value_after(1))
    with pytest.raises(RuntimeError, match="Task does not support set_result operation"):
        task.set_result(2)
    with pytest.raises(RuntimeError, match="Task does not support set_exception operation"):
        task.set_exception(ValueError("x"))
    assert not task.done()
    assert loop.run_until_complete(task) == 1
    with pytest.raises(RuntimeError, match="Task does not support set_result operation"):
        task.set_result(2)
    assert task.result() == 1


# ---- await chains ----


def test_await_future(loop: Loop) -> None:
    fut = loop.create_future()
    task = loop.create_task(wait_on(fut))
    spin(loop)
    assert not task.done()
    assert task._fut_waiter is fut
    fut.set_result(5)
    assert loop.run_until_complete(task) == 5
    assert task._fut_waiter is None


def test_await_future_exception(loop: Loop) -> None:
    fut = loop.create_future()
    task = loop.create_task(wait_on(fut))
    spin(loop)
    fut.set_exception(KeyError("k"))
    with pytest.raises(KeyError):
        loop.run_until_complete(task)
    assert isinstance(task.exception(), KeyError)


def test_await_another_task(loop: Loop) -> None:
    async def main() -> list[Any]:
        inner = loop.create_task(value_after("inner", yields=3))

        async def waiter() -> Any:
            return await inner

        waiters = [loop.create_task(waiter()) for _ in range(3)]
        return [await inner] + await asyncio.gather(*waiters)

    assert loop.run_until_complete(main()) == ["inner"] * 4


def test_await_finished_task_does_not_suspend(loop: Loop) -> None:
    async def main() -> tuple[Any, list[str]]:
        done = loop.create_task(value_after(7))
        await done
        log: list[str] = []
        loop.call_soon(log.append, "callback")
        again = await done  # already done: no suspension, the callback has not run yet
        return again, list(log)

    assert loop.run_until_complete(main()) == (7, [])


def test_await_failed_finished_task(loop: Loop) -> None:
    async def main() -> str:
        failed = loop.create_task(fail(ValueError("first")))
        await asyncio.wait([failed])
        try:
            await failed
        except ValueError as exc:
            return str(exc)
        return "no error"

    assert loop.run_until_complete(main()) == "first"


def test_many_sleep_zero(loop: Loop) -> None:
    async def body() -> int:
        n = 0
        for _ in range(1000):
            await asyncio.sleep(0)
            n += 1
        return n

    assert loop.run_until_complete(loop.create_task(body())) == 1000


def test_bare_yield_gives_up_one_iteration(loop: Loop) -> None:
    log: list[str] = []

    def first() -> None:
        log.append("a")
        loop.call_soon(log.append, "b")

    async def body() -> None:
        loop.call_soon(first)
        await bare_yield()
        log.append("resumed")

    loop.run_until_complete(loop.create_task(body()))
    assert log == ["a", "resumed", "b"]


def test_bare_yield_interleaves_tasks(loop: Loop) -> None:
    log: list[str] = []

    async def body(tag: str) -> None:
        for i in range(3):
            log.append(f"{tag}{i}")
            await bare_yield()

    loop.run_until_complete(
        asyncio.gather(loop.create_task(body("a")), loop.create_task(body("b")))
    )
    assert log == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_bad_yield(loop: Loop) -> None:
    async def body() -> None:
        await yield_value(42)

    task = loop.create_task(body())
    with pytest.raises(RuntimeError, match="Task got bad yield: 42"):
        loop.run_until_complete(task)
    assert isinstance(task.exception(), RuntimeError)


def test_bad_yield_error_is_thrown_into_the_coroutine(loop: Loop) -> None:
    async def body() -> str:
        try:
            await yield_value("nope")
        except RuntimeError as exc:
            await asyncio.sleep(0)
            return str(exc)
        return "no error"

    assert loop.run_until_complete(loop.create_task(body())) == "Task got bad yield: 'nope'"


def test_yield_generator(loop: Loop) -> None:
    async def body() -> None:
        await yield_value(x for x in range(3))

    with pytest.raises(
        RuntimeError, match="yield was used instead of yield from for generator in task"
    ):
        loop.run_until_complete(loop.create_task(body()))


def test_yield_future_without_await(loop: Loop) -> None:
    fut = loop.create_future()

    async def body() -> None:
        await yield_value(fut)  # the future is yielded directly, not through __await__

    with pytest.raises(RuntimeError, match="yield was used instead of yield from in task"):
        loop.run_until_complete(loop.create_task(body()))
    assert not fut.done()


def test_await_future_from_another_loop(
    loop: Loop, loop_factory: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    other = loop_factory()
    try:
        foreign = other.create_future()
        task = loop.create_task(wait_on(foreign))
        with pytest.raises(RuntimeError, match="attached to a different loop"):
            loop.run_until_complete(task)
        assert not foreign.done()
    finally:
        other.close()


def test_task_awaiting_itself(loop: Loop) -> None:
    holder: list[asyncio.Task[Any]] = []

    async def body() -> None:
        await holder[0]

    task = loop.create_task(body())
    holder.append(task)
    with pytest.raises(RuntimeError, match="Task cannot await on itself"):
        loop.run_until_complete(task)
    assert isinstance(task.exception(), RuntimeError)


# ---- cancellation ----


def test_cancel_before_first_step(loop: Loop) -> None:
    log: list[str] = []

    async def body() -> None:
        log.append("started")

    coro = body()
    task = loop.create_task(coro)
    assert task.cancel() is True
    assert task._must_cancel is True
    assert not task.cancelled()  # not until the coroutine has seen it
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert task.cancelled()
    assert log == []
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    assert task._must_cancel is False


def test_cancel_while_awaiting_future(loop: Loop) -> None:
    seen: list[str] = []

    async def body(fut: asyncio.Future[Any]) -> None:
        try:
            await fut
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    fut = loop.create_future()
    task = loop.create_task(body(fut))
    spin(loop)
    assert task.cancel() is True
    assert fut.cancelled()  # the awaited future is cancelled at once
    assert task._must_cancel is False
    assert not task.done()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert task.cancelled()
    assert seen == ["cancelled"]


def test_cancel_while_awaiting_another_task(loop: Loop) -> None:
    fut = loop.create_future()
    inner = loop.create_task(wait_on(fut))

    async def outer_body() -> Any:
        return await inner

    outer = loop.create_task(outer_body())
    spin(loop)
    assert outer._fut_waiter is inner
    assert outer.cancel() is True
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(outer)
    assert inner.cancelled()
    assert fut.cancelled()
    assert outer.cancelled()


def test_cancel_refused_by_awaited_task(loop: Loop) -> None:
    # Cancelling a task that waits on another one cancels the other one; if that one
    # swallows the cancellation and returns, the waiting task carries on with the value.
    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "refused"
        return "slept"

    inner = loop.create_task(stubborn())

    async def outer_body() -> str:
        got = await inner
        await asyncio.sleep(0)
        return "outer got " + got

    outer = loop.create_task(outer_body())
    spin(loop)
    assert outer.cancel() is True
    assert loop.run_until_complete(outer) == "outer got refused"
    assert not outer.cancelled()
    if sys.version_info >= (3, 11):
        assert outer.cancelling() == 1
        assert inner.cancelling() == 1


def test_cancel_message(loop: Loop) -> None:
    seen: list[tuple[Any, ...]] = []

    async def body(fut: asyncio.Future[Any]) -> None:
        try:
            await fut
        except asyncio.CancelledError as exc:
            seen.append(exc.args)
            raise

    fut = loop.create_future()
    task = loop.create_task(body(fut))
    spin(loop)
    task.cancel("stop it")
    with pytest.raises(asyncio.CancelledError) as info:
        loop.run_until_complete(task)
    assert seen == [("stop it",)]
    assert info.value.args == cancelled_args("stop it")
    assert task.cancelled()
    with pytest.raises(asyncio.CancelledError) as again:
        task.result()
    if sys.version_info[:2] == (3, 11):
        # The first retrieval hands out the coroutine's own CancelledError; later ones make
        # a new one from the task's cancel message, which stays unset when the request went
        # to the awaited future.
        assert again.value.args == ()


def test_cancel_message_before_first_step(loop: Loop) -> None:
    task = loop.create_task(value_after(1))
    task.cancel("early")
    with pytest.raises(asyncio.CancelledError) as info:
        loop.run_until_complete(task)
    assert info.value.args == cancelled_args("early")


def test_coroutine_catches_cancellation_and_returns(loop: Loop) -> None:
    async def body(fut: asyncio.Future[Any]) -> str:
        try:
            await fut
        except asyncio.CancelledError:
            return "caught"
        return "not cancelled"

    task = loop.create_task(body(loop.create_future()))
    spin(loop)
    task.cancel()
    assert loop.run_until_complete(task) == "caught"
    assert not task.cancelled()
    assert task.result() == "caught"


def test_coroutine_catches_cancellation_and_continues(loop: Loop) -> None:
    log: list[str] = []

    async def body() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            log.append("caught")
        total = 0
        for i in range(5):
            await asyncio.sleep(0)
            total += i
        return total

    task = loop.create_task(body())
    spin(loop)
    task.cancel()
    assert loop.run_until_complete(task) == 10
    assert log == ["caught"]
    assert not task.cancelled()


def test_cancel_returns_false_when_done(loop: Loop) -> None:
    finished = loop.create_task(value_after(1))
    loop.run_until_complete(finished)
    assert finished.cancel() is False
    assert finished.cancel("msg") is False
    assert not finished.cancelled()
    assert finished.result() == 1

    failed = loop.create_task(fail(ValueError("x")))
    loop.run_until_complete(asyncio.wait([failed]))
    assert failed.cancel() is False
    assert isinstance(failed.exception(), ValueError)

    cancelled = loop.create_task(value_after(1))
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(cancelled)
    assert cancelled.cancel() is False


def test_cancel_twice(loop: Loop) -> None:
    fut = loop.create_future()
    task = loop.create_task(wait_on(fut))
    spin(loop)
    assert task.cancel() is True
    assert task.cancel() is True  # the future is already cancelled: a pending request
    assert task._must_cancel is True
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert task.cancelled()


def test_cancel_in_the_same_step_as_return(loop: Loop) -> None:
    async def body() -> int:
        current = asyncio.current_task()
        assert current is not None
        current.cancel("late")
        return 1

    task = loop.create_task(body())
    with pytest.raises(asyncio.CancelledError) as info:
        loop.run_until_complete(task)
    assert task.cancelled()
    assert info.value.args == ("late",)


def test_exception_in_the_same_step_as_cancel(loop: Loop) -> None:
    async def body() -> None:
        current = asyncio.current_task()
        assert current is not None
        current.cancel()
        raise ValueError("wins")

    task = loop.create_task(body())
    with pytest.raises(ValueError, match="wins"):
        loop.run_until_complete(task)
    assert not task.cancelled()


def test_self_cancel_then_await(loop: Loop) -> None:
    log: list[str] = []

    async def body() -> None:
        current = asyncio.current_task()
        assert current is not None
        current.cancel()
        log.append("still running")
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            log.append("cancelled at await")
            raise

    task = loop.create_task(body())
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert log == ["still running", "cancelled at await"]


def test_cancelled_error_raised_by_coroutine_cancels_task(loop: Loop) -> None:
    async def body() -> None:
        await asyncio.sleep(0)
        raise asyncio.CancelledError("own")

    task = loop.create_task(body())
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert task.cancelled()


@needs_311
def test_cancelling_and_uncancel_counts(loop: Loop) -> None:
    fut = loop.create_future()
    task = loop.create_task(wait_on(fut))
    spin(loop)
    assert task.cancelling() == 0
    assert task.uncancel() == 0  # never below zero
    assert task.cancel() is True
    assert task.cancelling() == 1
    assert task.cancel() is True
    assert task.cancelling() == 2
    assert task.uncancel() == 1
    assert task.uncancel() == 0
    assert task.uncancel() == 0
    assert task.cancelling() == 0
    # The awaited future was cancelled by the first request: the task still ends cancelled.
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert task.cancelled()
    assert task.cancel() is False
    assert task.cancelling() == 0  # cancel() on a done task does not count


@needs_311
def test_uncancel_to_zero_and_pending_request(loop: Loop) -> None:
    log: list[str] = []

    async def body() -> str:
        log.append("ran")
        return "finished"

    task = loop.create_task(body())
    task.cancel()
    assert task._must_cancel is True
    assert task.uncancel() == 0
    if sys.version_info >= (3, 13):
        # 3.13: uncancel() reaching zero also withdraws the pending request.
        assert task._must_cancel is False
        assert loop.run_until_complete(task) == "finished"
        assert log == ["ran"]
    else:
        assert task._must_cancel is True
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(task)
        assert log == []


@needs_311
def test_timeout_expires(loop: Loop) -> None:
    async def body() -> tuple[str, int]:
        current = asyncio.current_task()
        assert current is not None
        try:
            async with asyncio.timeout(0.001):
                await asyncio.sleep(10)
        except TimeoutError:
            outcome = "timeout"
        else:
            outcome = "no timeout"
        return outcome, current.cancelling()

    task = loop.create_task(body())
    assert loop.run_until_complete(task) == ("timeout", 0)
    assert not task.cancelled()


@needs_311
def test_nested_timeouts(loop: Loop) -> None:
    async def body() -> tuple[int, int, str]:
        current = asyncio.current_task()
        assert current is not None
        async with asyncio.timeout(10):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.001):
                    await asyncio.sleep(10)
            inside = current.cancelling()
            await asyncio.sleep(0)
            result = await value_after("outer ok")
        return inside, current.cancelling(), result

    assert loop.run_until_complete(loop.create_task(body())) == (0, 0, "outer ok")


@needs_311
def test_outer_timeout_fires_through_inner(loop: Loop) -> None:
    async def body() -> str:
        try:
            async with asyncio.timeout(0.001):
                async with asyncio.timeout(10):
                    await asyncio.sleep(10)
        except TimeoutError:
            return "outer"
        return "none"

    assert loop.run_until_complete(loop.create_task(body())) == "outer"


@needs_311
def test_external_cancel_wins_over_expired_timeout(loop: Loop) -> None:
    async def body() -> None:
        current = asyncio.current_task()
        assert current is not None
        async with asyncio.timeout(0):
            current.cancel()  # a second, unrelated cancellation request
            await asyncio.sleep(1)

    task = loop.create_task(body())
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert task.cancelled()
    assert task.cancelling() == 1


@needs_311
def test_taskgroup_child_failure_uncancels_parent(loop: Loop) -> None:
    log: list[str] = []

    async def crash_soon() -> None:
        await asyncio.sleep(0)
        raise ValueError("child")

    async def parent() -> tuple[str, int]:
        current = asyncio.current_task()
        assert current is not None
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(crash_soon())
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    log.append("body cancelled")
                    raise
        except builtins.ExceptionGroup as group:
            log.append(type(group.exceptions[0]).__name__)
        await asyncio.sleep(0)  # not cancelled any more
        return "survived", current.cancelling()

    task = loop.create_task(parent())
    assert loop.run_until_complete(task) == ("survived", 0)
    assert log == ["body cancelled", "ValueError"]


@needs_311
def test_taskgroup_parent_cancelled_from_outside(loop: Loop) -> None:
    children: list[asyncio.Task[Any]] = []

    async def parent() -> None:
        async with asyncio.TaskGroup() as tg:
            children.append(tg.create_task(asyncio.sleep(10)))
            children.append(tg.create_task(asyncio.sleep(10)))
            await asyncio.sleep(10)

    task = loop.create_task(parent())
    spin(loop, 2)
    assert len(children) == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert task.cancelled()
    assert task.cancelling() == 1
    assert all(child.cancelled() for child in children)


@needs_311
def test_timeout_around_taskgroup(loop: Loop) -> None:
    children: list[asyncio.Task[Any]] = []

    async def body() -> tuple[str, int]:
        current = asyncio.current_task()
        assert current is not None
        try:
            async with asyncio.timeout(0.005):
                async with asyncio.TaskGroup() as tg:
                    children.append(tg.create_task(asyncio.sleep(10)))
                    children.append(tg.create_task(asyncio.sleep(10)))
        except TimeoutError:
            return "timeout", current.cancelling()
        return "none", current.cancelling()

    assert loop.run_until_complete(loop.create_task(body())) == ("timeout", 0)
    assert all(child.cancelled() for child in children)


@needs_311
def test_nested_taskgroups(loop: Loop) -> None:
    log: list[str] = []

    async def crash() -> None:
        await asyncio.sleep(0)
        raise KeyError("inner")

    async def inner_group() -> str:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(crash())
                tg.create_task(asyncio.sleep(10))
        except builtins.ExceptionGroup as group:
            log.append(type(group.exceptions[0]).__name__)
        return "inner handled"

    async def sibling() -> str:
        await asyncio.sleep(0.002)
        return "sibling done"

    async def main() -> list[str]:
        async with asyncio.TaskGroup() as tg:
            a = tg.create_task(inner_group())
            b = tg.create_task(sibling())
        return [a.result(), b.result()]

    assert loop.run_until_complete(loop.create_task(main())) == ["inner handled", "sibling done"]
    assert log == ["KeyError"]


# ---- done callbacks ----


def test_done_callbacks_order_and_argument(loop: Loop) -> None:
    log: list[Any] = []

    async def body() -> str:
        loop.call_soon(log.append, "scheduled in the last step")
        return "r"

    task = loop.create_task(body())
    for tag in ("first", "second", "third"):
        task.add_done_callback(lambda t, tag=tag: log.append((tag, t, t.done())))
    loop.run_until_complete(task)
    spin(loop)
    # The callbacks are scheduled with call_soon when the task finishes, after the
    # callback the final step itself scheduled.
    assert log == [
        "scheduled in the last step",
        ("first", task, True),
        ("second", task, True),
        ("third", task, True),
    ]


def test_done_callback_runs_outside_any_task(loop: Loop) -> None:
    seen: list[Any] = []

    def callback(t: asyncio.Task[Any]) -> None:
        seen.append((t, asyncio.current_task(loop), asyncio.get_running_loop()))

    task = loop.create_task(value_after(1))
    task.add_done_callback(callback)
    loop.run_until_complete(task)
    spin(loop)
    assert seen == [(task, None, loop)]


def test_done_callback_context(loop: Loop) -> None:
    seen: list[str] = []
    ctx = contextvars.copy_context()
    ctx.run(var.set, "callback-ctx")

    def callback(_t: asyncio.Task[Any]) -> None:
        seen.append(var.get("unset"))

    def add_default() -> None:
        var.set("at-add")
        task.add_done_callback(callback)

    task = loop.create_task(value_after(1))
    task.add_done_callback(callback, context=ctx)
    contextvars.copy_context().run(add_default)
    task.add_done_callback(callback)
    loop.run_until_complete(task)
    spin(loop)
    assert seen == ["callback-ctx", "at-add", "unset"]


def test_remove_done_callback(loop: Loop) -> None:
    log: list[str] = []

    def cb(_t: asyncio.Task[Any]) -> None:
        log.append("cb")

    def other(_t: asyncio.Task[Any]) -> None:
        log.append("other")

    task = loop.create_task(value_after(1))
    task.add_done_callback(cb)
    task.add_done_callback(other)
    task.add_done_callback(cb)
    assert task.remove_done_callback(cb) == 2
    assert task.remove_done_callback(cb) == 0
    loop.run_until_complete(task)
    spin(loop)
    assert log == ["other"]
    assert task.remove_done_callback(other) == 0


def test_done_callback_added_after_done_is_scheduled(loop: Loop) -> None:
    log: list[Any] = []
    task = loop.create_task(value_after(1))
    loop.run_until_complete(task)
    task.add_done_callback(log.append)
    assert log == []  # not called synchronously
    spin(loop)
    assert log == [task]


def test_done_callbacks_on_cancel_and_exception(loop: Loop) -> None:
    log: list[tuple[str, bool]] = []
    cancelled = loop.create_task(value_after(1))
    failed = loop.create_task(fail(ValueError("x")))
    cancelled.add_done_callback(lambda t: log.append(("cancelled", t.cancelled())))
    failed.add_done_callback(lambda t: log.append(("failed", t.exception() is not None)))
    cancelled.cancel()
    loop.run_until_complete(asyncio.wait([cancelled, failed]))
    spin(loop)
    assert sorted(log) == [("cancelled", True), ("failed", True)]


# ---- exceptions that stop the loop ----


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_propagate(
    loop: Loop, exc_type: type[BaseException]
) -> None:
    async def body() -> None:
        await asyncio.sleep(0)
        raise exc_type()

    task = loop.create_task(body())
    with pytest.raises(exc_type):
        loop.run_until_complete(task)
    assert task.done()
    assert isinstance(task.exception(), exc_type)
    # The loop is still usable.
    assert loop.run_until_complete(value_after("again")) == "again"


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_in_background_task_stops_the_loop(
    loop: Loop, exc_type: type[BaseException]
) -> None:
    async def main() -> str:
        await asyncio.sleep(10)
        return "slept"

    main_task = loop.create_task(main())
    background = loop.create_task(fail(exc_type()))
    with pytest.raises(exc_type):
        loop.run_until_complete(main_task)
    assert background.done()
    assert not main_task.done()
    main_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(main_task)


def test_other_exceptions_are_stored(loop: Loop) -> None:
    class CustomBase(BaseException):
        pass

    async def main() -> list[str]:
        failing = [
            loop.create_task(fail(ValueError("v"))),
            loop.create_task(fail(CustomBase("b"))),
            loop.create_task(fail(GeneratorExit())),
        ]
        for _ in range(3):
            await asyncio.sleep(0)
        return [type(t.exception()).__name__ for t in failing]

    assert loop.run_until_complete(main()) == ["ValueError", "CustomBase", "GeneratorExit"]


# ---- current_task / all_tasks ----


def test_current_task(loop: Loop) -> None:
    seen: list[Any] = []

    async def body() -> None:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        seen.append(asyncio.current_task(loop))

    def plain_callback() -> None:
        seen.append(("callback", asyncio.current_task(loop)))

    assert asyncio.current_task(loop) is None
    task = loop.create_task(body())
    loop.call_soon(plain_callback)
    loop.run_until_complete(task)
    assert seen == [task, ("callback", None), task]
    assert asyncio.current_task(loop) is None


def test_current_task_without_running_loop_raises() -> None:
    with pytest.raises(RuntimeError):
        asyncio.current_task()


def test_all_tasks(loop: Loop) -> None:
    async def main() -> tuple[bool, bool, bool]:
        fut = loop.create_future()
        pending = loop.create_task(wait_on(fut))
        finished = loop.create_task(value_after(1))
        await finished
        await asyncio.sleep(0)
        tasks = asyncio.all_tasks()
        result = (pending in tasks, finished in tasks, asyncio.current_task() in tasks)
        assert asyncio.all_tasks(loop) == tasks
        fut.set_result(None)
        await pending
        return result

    assert loop.run_until_complete(main()) == (True, False, True)
    assert asyncio.all_tasks(loop) == set()


def test_all_tasks_includes_not_yet_started(loop: Loop) -> None:
    task = loop.create_task(value_after(1))
    assert task in asyncio.all_tasks(loop)
    loop.run_until_complete(task)
    assert task not in asyncio.all_tasks(loop)


# ---- repr, stacks ----


def test_repr_pending(loop: Loop) -> None:
    fut = loop.create_future()
    task = loop.create_task(wait_on(fut), name="repr-task")
    text = repr(task)
    assert type(task).__name__ in text
    assert "pending" in text
    assert "name='repr-task'" in text
    assert "coro=<" in text and "wait_on" in text
    spin(loop)
    assert "wait_for=" in repr(task)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)


def test_repr_cancelling(loop: Loop) -> None:
    task = loop.create_task(value_after(1), name="to-cancel")
    task.cancel()
    assert "cancelling" in repr(task)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    text = repr(task)
    assert "cancelled" in text
    assert "name='to-cancel'" in text
    assert "coro=<" in text


def test_repr_finished(loop: Loop) -> None:
    task = loop.create_task(value_after(42), name="done-task")
    loop.run_until_complete(task)
    text = repr(task)
    assert "finished" in text
    assert "name='done-task'" in text
    assert "coro=<" in text
    assert "result=42" in text


def test_repr_exception(loop: Loop) -> None:
    task = loop.create_task(fail(ValueError("boom")), name="bad-task")
    loop.run_until_complete(asyncio.wait([task]))
    text = repr(task)
    assert "finished" in text
    assert "name='bad-task'" in text
    assert "coro=<" in text
    assert "exception=ValueError('boom')" in text
    task.exception()


def test_get_stack_and_print_stack_pending(loop: Loop) -> None:
    async def parked_here(fut: asyncio.Future[Any]) -> None:
        await fut

    fut = loop.create_future()
    task = loop.create_task(parked_here(fut))
    spin(loop)
    frames = task.get_stack()
    assert [frame.f_code.co_name for frame in frames] == ["parked_here"]
    assert task.get_stack(limit=1) == frames
    out = io.StringIO()
    task.print_stack(file=out)
    text = out.getvalue()
    assert "Stack for" in text
    assert "parked_here" in text
    fut.set_result(None)
    loop.run_until_complete(task)


def test_get_stack_and_print_stack_done(loop: Loop) -> None:
    task = loop.create_task(value_after(1))
    loop.run_until_complete(task)
    assert task.get_stack() == []
    out = io.StringIO()
    task.print_stack(file=out)
    assert "No stack for" in out.getvalue()


def test_get_stack_and_print_stack_exception(loop: Loop) -> None:
    async def raiser_here() -> None:
        await asyncio.sleep(0)
        raise ValueError("stacked")

    task = loop.create_task(raiser_here())
    loop.run_until_complete(asyncio.wait([task]))
    assert "raiser_here" in [frame.f_code.co_name for frame in task.get_stack()]
    out = io.StringIO()
    task.print_stack(file=out)
    text = out.getvalue()
    assert "Traceback for" in text
    assert "raiser_here" in text
    assert "ValueError: stacked" in text
    task.exception()


# ---- destroy-time reports ----


def test_destroyed_pending_task_is_reported(loop: Loop) -> None:
    errors = collect_errors(loop)
    fut = loop.create_future()
    task = loop.create_task(wait_on(fut), name="doomed")
    spin(loop)
    assert not task.done()
    assert errors == []
    del task, fut
    gc.collect()
    assert messages(errors) == ["Task was destroyed but it is pending!"]
    assert errors[0]["task"].get_name() == "doomed"


def test_destroyed_pending_task_not_reported_when_disabled(loop: Loop) -> None:
    errors = collect_errors(loop)
    fut = loop.create_future()
    task = loop.create_task(wait_on(fut))
    spin(loop)
    task._log_destroy_pending = False
    del task, fut
    gc.collect()
    assert errors == []


def test_exception_never_retrieved_is_reported(loop: Loop) -> None:
    errors = collect_errors(loop)
    task = loop.create_task(fail(ValueError("lost")), name="failing")
    loop.run_until_complete(asyncio.wait([task]))
    assert task.done()
    class_name = type(task).__name__
    del task
    gc.collect()
    assert messages(errors) == [f"{class_name} exception was never retrieved"]
    context = errors[0]
    assert isinstance(context["exception"], ValueError)
    assert str(context["exception"]) == "lost"
    assert context["future"].get_name() == "failing"


@pytest.mark.parametrize("how", ["exception", "result", "await", "cancel"])
def test_retrieved_exception_is_not_reported(loop: Loop, how: str) -> None:
    errors = collect_errors(loop)
    task = loop.create_task(fail(ValueError("seen")))
    if how == "await":
        with pytest.raises(ValueError):
            loop.run_until_complete(task)
    else:
        loop.run_until_complete(asyncio.wait([task]))
        if how == "exception":
            assert isinstance(task.exception(), ValueError)
        elif how == "result":
            with pytest.raises(ValueError):
                task.result()
        else:
            # cancel() on a done task returns False but also marks the exception as seen.
            assert task.cancel() is False
    del task
    gc.collect()
    assert errors == []


def test_finished_and_cancelled_tasks_are_not_reported(loop: Loop) -> None:
    errors = collect_errors(loop)
    finished = loop.create_task(value_after(1))
    cancelled = loop.create_task(value_after(1))
    cancelled.cancel()
    loop.run_until_complete(asyncio.wait([finished, cancelled]))
    del finished, cancelled
    gc.collect()
    assert errors == []


# ---- private attributes libraries read ----


def test_private_attributes_through_the_lifecycle(loop: Loop) -> None:
    fut = loop.create_future()
    coro = wait_on(fut)
    task: Any = loop.create_task(coro)
    assert task._must_cancel is False
    assert task._fut_waiter is None
    assert task._coro is coro
    assert task._loop is loop
    assert task._state == "PENDING"
    assert task._log_destroy_pending is True
    assert task._asyncio_future_blocking is False
    spin(loop)
    assert task._fut_waiter is fut
    assert task._state == "PENDING"
    assert task._asyncio_future_blocking is False
    fut.set_result(1)
    loop.run_until_complete(task)
    assert task._state == "FINISHED"
    assert task._fut_waiter is None
    assert task._must_cancel is False

    failed: Any = loop.create_task(fail(ValueError("x")))
    loop.run_until_complete(asyncio.wait([failed]))
    assert failed._state == "FINISHED"
    failed.exception()

    cancelled: Any = loop.create_task(value_after(1))
    cancelled.cancel()
    assert cancelled._must_cancel is True
    loop.run_until_complete(asyncio.wait([cancelled]))
    assert cancelled._state == "CANCELLED"
    assert cancelled._must_cancel is False


def test_log_destroy_pending_is_writable(loop: Loop) -> None:
    task: Any = loop.create_task(value_after(1))
    task._log_destroy_pending = False
    assert task._log_destroy_pending is False
    loop.run_until_complete(task)


def test_weakref_and_attributes(loop: Loop) -> None:
    task: Any = loop.create_task(value_after(1))
    ref = weakref.ref(task)
    assert ref() is task
    task.foo = 1
    task.bar = [2]
    assert (task.foo, task.bar) == (1, [2])
    loop.run_until_complete(task)
    assert task.foo == 1
    del task.bar
    assert not hasattr(task, "bar")
    del task
    gc.collect()
    assert ref() is None


def test_usable_in_sets_and_dicts(loop: Loop) -> None:
    first = loop.create_task(value_after(1))
    second = loop.create_task(value_after(2))
    assert len({first, second, first}) == 2
    assert {first: "a", second: "b"}[second] == "b"
    assert first != second
    loop.run_until_complete(asyncio.gather(first, second))


def test_source_traceback_outside_debug_mode(loop: Loop) -> None:
    loop.set_debug(False)
    task: Any = loop.create_task(value_after(1))
    assert task._source_traceback is None
    loop.run_until_complete(task)


def test_source_traceback_in_debug_mode(loop: Loop) -> None:
    loop.set_debug(True)
    task: Any = loop.create_task(value_after(1))
    stack = task._source_traceback
    assert isinstance(stack, list)
    assert stack
    assert any(entry[2] == "test_source_traceback_in_debug_mode" for entry in stack)
    loop.run_until_complete(task)


def test_source_traceback_ends_at_create_task_caller(loop: Loop) -> None:
    loop.set_debug(True)
    task: Any = loop.create_task(value_after(1))
    try:
        last = task._source_traceback[-1]
        assert last[0] == __file__
        assert last[2] == "test_source_traceback_ends_at_create_task_caller"
    finally:
        loop.run_until_complete(task)


# ---- asyncio helpers with tasks from create_task ----


def test_gather_tasks(loop: Loop) -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        tasks = [loop.create_task(value_after(i, yields=i % 3)) for i in range(6)]
        values = await asyncio.gather(*tasks)
        mixed = [loop.create_task(value_after("ok")), loop.create_task(fail(ValueError("no")))]
        outcomes = await asyncio.gather(*mixed, return_exceptions=True)
        return values, [o if isinstance(o, str) else type(o).__name__ for o in outcomes]

    assert loop.run_until_complete(main()) == ([0, 1, 2, 3, 4, 5], ["ok", "ValueError"])


def test_gather_cancel_propagates_to_tasks(loop: Loop) -> None:
    async def main() -> list[bool]:
        tasks = [loop.create_task(asyncio.sleep(10)) for _ in range(3)]
        group = asyncio.gather(*tasks)
        await asyncio.sleep(0)
        group.cancel()
        with pytest.raises(asyncio.CancelledError):
            await group
        return [t.cancelled() for t in tasks]

    assert loop.run_until_complete(main()) == [True, True, True]


def test_wait_tasks(loop: Loop) -> None:
    async def main() -> tuple[bool, bool]:
        fut = loop.create_future()
        quick = loop.create_task(value_after("quick"))
        slow = loop.create_task(wait_on(fut))
        done, pending = await asyncio.wait({quick, slow}, return_when=asyncio.FIRST_COMPLETED)
        first = done == {quick} and pending == {slow}
        fut.set_result("slow")
        done, pending = await asyncio.wait({quick, slow})
        return first, done == {quick, slow} and not pending

    assert loop.run_until_complete(main()) == (True, True)


def test_wait_for_task(loop: Loop) -> None:
    async def main() -> tuple[Any, bool]:
        fast = await asyncio.wait_for(loop.create_task(value_after("fast")), 1)
        slow = loop.create_task(asyncio.sleep(10))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow, 0.001)
        return fast, slow.cancelled()

    assert loop.run_until_complete(main()) == ("fast", True)


def test_shield_task(loop: Loop) -> None:
    async def main() -> tuple[Any, bool]:
        inner = loop.create_task(value_after("shielded", yields=3))
        outer = asyncio.shield(inner)
        await asyncio.sleep(0)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        return await inner, inner.cancelled()

    assert loop.run_until_complete(main()) == ("shielded", False)


def test_as_completed_tasks(loop: Loop) -> None:
    async def main() -> list[int]:
        futs = [loop.create_future() for _ in range(4)]
        tasks = [loop.create_task(wait_on(fut)) for fut in futs]
        await asyncio.sleep(0)
        for i, fut in reversed(list(enumerate(futs))):
            fut.set_result(i)
        return [await next_done for next_done in asyncio.as_completed(tasks)]

    assert loop.run_until_complete(main()) == [3, 2, 1, 0]


def test_ensure_future_returns_the_task(loop: Loop) -> None:
    task = loop.create_task(value_after(1))
    assert asyncio.ensure_future(task, loop=loop) is task
    assert loop.run_until_complete(task) == 1


def test_run_until_complete_with_a_coroutine_makes_a_default_task(loop: Loop) -> None:
    probe = loop.create_task(value_after(0))

    async def main() -> type:
        return type(asyncio.current_task())

    assert loop.run_until_complete(main()) is type(probe)
    loop.run_until_complete(probe)


# ---- runners ----


@needs_311
def test_runner_main_is_a_task_on_the_loop(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def main() -> tuple[Any, Loop, type]:
        lp = asyncio.get_running_loop()
        probe = lp.create_task(value_after(0))
        await probe
        return asyncio.current_task(), lp, type(probe)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        task, lp, probe_type = runner.run(main())
        assert runner.get_loop() is lp
    assert isinstance(task, asyncio.Task)
    assert type(task) is probe_type
    assert task.get_loop() is lp
    assert task.done()


def test_run_helper_main_is_a_task(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    async def main() -> tuple[bool, bool, str]:
        task = asyncio.current_task()
        lp = asyncio.get_running_loop()
        return isinstance(task, asyncio.Task), task.get_loop() is lp, type(lp).__name__

    if loop_factory is pyloop.new_event_loop:
        is_task, on_loop, loop_name = pyloop.run(main())
        assert loop_name == "Loop"
    else:
        is_task, on_loop, _ = asyncio.run(main())
    assert is_task and on_loop


# ---- stress and leaks ----


def test_many_tasks_complete_and_are_freed(loop: Loop) -> None:
    count = 10_000
    sentinel = object()
    baseline = sys.getrefcount(sentinel)

    async def worker(i: int, fut: asyncio.Future[Any]) -> int:
        for _ in range(3):
            await asyncio.sleep(0)
        got = await fut
        return i * 2 if got is sentinel else -1

    async def batch() -> tuple[list[int], list[weakref.ref[Any]]]:
        futs = [loop.create_future() for _ in range(count)]
        tasks = [loop.create_task(worker(i, fut)) for i, fut in enumerate(futs)]
        refs = [weakref.ref(obj) for obj in [*tasks, *futs, *(t.get_coro() for t in tasks)]]
        await asyncio.sleep(0)
        for fut in futs:
            fut.set_result(sentinel)
        results = await asyncio.gather(*tasks)
        assert all(t.done() and not t.cancelled() for t in tasks)
        return results, refs

    results, refs = loop.run_until_complete(batch())
    assert results == [i * 2 for i in range(count)]
    gc.collect()
    assert sum(ref() is not None for ref in refs) == 0
    assert sys.getrefcount(sentinel) == baseline
    assert asyncio.all_tasks(loop) == set()


def test_many_failing_and_cancelled_tasks_are_freed(loop: Loop) -> None:
    count = 2_000

    async def batch() -> tuple[list[str], list[weakref.ref[Any]]]:
        tasks = []
        for i in range(count):
            if i % 2:
                tasks.append(loop.create_task(fail(ValueError(i))))
            else:
                tasks.append(loop.create_task(asyncio.sleep(10)))
        await asyncio.sleep(0)
        for t in tasks[::2]:
            t.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        return [type(o).__name__ for o in outcomes], [weakref.ref(t) for t in tasks]

    names, refs = loop.run_until_complete(batch())
    assert names == ["CancelledError", "ValueError"] * (count // 2)
    gc.collect()
    assert sum(ref() is not None for ref in refs) == 0


# ---- the native Task type itself ----


def test_native_task_is_the_default_and_overrides_every_base_name() -> None:
    """PyLoop's Task keeps its state in its own fields: a name of asyncio.Future or
    asyncio.Task left to the base would read the base's (unused) fields."""
    import _asyncio

    from data_bridge import _core

    native = _core.Task
    assert issubclass(native, asyncio.Task)
    inherited_ok = {"__new__", "__class_getitem__", "__module__", "__doc__"}
    for base in (_asyncio.Future, _asyncio.Task):
        missing = [n for n in vars(base) if n not in inherited_ok and n not in vars(native)]
        assert missing == [], f"{base.__name__} names not overridden: {missing}"

    loop = pyloop.new_event_loop()
    try:

        async def main() -> Any:
            return type(asyncio.current_task())

        assert loop.run_until_complete(main()) is native
    finally:
        loop.close()


def test_native_task_refuses_a_foreign_loop() -> None:
    from data_bridge import _core

    other = asyncio.SelectorEventLoop()
    coro = value_after(1)
    try:
        with pytest.raises(TypeError, match="PyLoop"):
            _core.Task(coro, loop=other)
    finally:
        coro.close()
        other.close()


def test_native_task_subclass_runs() -> None:
    from data_bridge import _core

    class Mine(_core.Task):  # type: ignore[misc, valid-type]
        pass

    loop = pyloop.new_event_loop()
    try:
        loop.set_task_factory(lambda lp, coro, **kw: Mine(coro, loop=lp, **kw))
        task = loop.create_task(value_after(5, yields=2))
        assert type(task) is Mine
        assert loop.run_until_complete(task) == 5
    finally:
        loop.close()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are 3.12+")
def test_native_task_eager_start() -> None:
    from data_bridge import _core

    loop = pyloop.new_event_loop()
    try:
        loop.set_task_factory(asyncio.create_eager_task_factory(_core.Task))  # type: ignore[attr-defined]

        async def quick() -> int:
            return 5

        async def slow(outer: asyncio.Task[Any] | None) -> int:
            assert asyncio.current_task() is not outer
            await asyncio.sleep(0)
            return 6

        async def main() -> int:
            me = asyncio.current_task()
            t1 = asyncio.create_task(quick())
            assert t1.done() and t1.result() == 5  # ran to completion inside create_task
            assert t1.get_coro() is None
            t2 = asyncio.create_task(slow(me))
            assert not t2.done()
            assert asyncio.current_task() is me  # swapped back after the eager step
            assert t2 in asyncio.all_tasks()
            return await t2

        assert loop.run_until_complete(main()) == 6
    finally:
        loop.close()
