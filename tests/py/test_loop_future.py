"""The contract of the Future objects that loop.create_future() returns, on asyncio's loop and
on PyLoop: identity, the states and their errors, cancellation, done callbacks (scheduling,
order, contexts, removal), awaiting (from tasks, callbacks, threads, the iterator protocol),
tasks of a non-native factory, the asyncio helpers and synchronisation primitives built on
create_future, the private attributes libraries read, the destroy-time report, repr, and a
stress run with a leak check.

Every expectation is what stdlib asyncio does on the running Python version; PyLoop's native
Future (a C subclass of asyncio.Future) has to match it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import copy
import gc
import inspect
import os
import pickle
import sys
import threading
import traceback
import types
import weakref
from collections.abc import Generator
from typing import Any

import pytest
from loop_fixtures import *  # noqa: F403  (the loop and loop_factory fixtures)
from loop_fixtures import is_pyloop
from loop_helpers import Loop, cancelled_args, collect_errors, messages, spin

from data_bridge import pyloop

ASYNCIO_DIR = os.path.dirname(asyncio.__file__)
STOP_ITERATION_MESSAGE = (
    "StopIteration interacts badly with generators and cannot be raised into a Future"
)


# ---- helpers ----


async def wait_on(fut: asyncio.Future[Any]) -> Any:
    return await fut


def raise_from_here(exc: BaseException) -> BaseException:
    """Raise exc from a named frame and hand it back with that traceback."""

    def raiser_frame() -> None:
        raise exc

    try:
        raiser_frame()
    except BaseException as caught:
        return caught
    raise AssertionError("not raised")


def frame_names(exc: BaseException) -> list[str]:
    return [frame.name for frame in traceback.extract_tb(exc.__traceback__)]


def finished(loop: Loop, value: Any = None) -> asyncio.Future[Any]:
    fut = loop.create_future()
    fut.set_result(value)
    return fut


# ---- identity, loop ----


def test_is_an_asyncio_future(loop: Loop) -> None:
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert asyncio.isfuture(fut)
    assert not isinstance(fut, asyncio.Task)
    assert not asyncio.iscoroutine(fut)
    assert inspect.isawaitable(fut)
    assert fut is not loop.create_future()


def test_get_loop(loop: Loop) -> None:
    fut = loop.create_future()
    assert fut.get_loop() is loop
    assert fut._loop is loop
    fut.set_result(None)
    assert fut.get_loop() is loop
    loop.close()
    assert fut.get_loop() is loop


def test_usable_in_sets_and_dicts(loop: Loop) -> None:
    first = loop.create_future()
    second = loop.create_future()
    assert len({first, second, first}) == 2
    assert {first: "a", second: "b"}[second] == "b"
    assert first != second
    assert hash(first) == hash(first)


def test_create_future_on_a_closed_loop(loop: Loop) -> None:
    loop.close()
    fut = loop.create_future()  # asyncio does not check: the future is made all the same
    assert not fut.done()
    assert fut.get_loop() is loop


# ---- states ----


def test_pending_state(loop: Loop) -> None:
    fut = loop.create_future()
    assert not fut.done()
    assert not fut.cancelled()
    with pytest.raises(asyncio.InvalidStateError, match=r"^Result is not set\.$"):
        fut.result()
    with pytest.raises(asyncio.InvalidStateError, match=r"^Exception is not set\.$"):
        fut.exception()
    # Asking does not change anything.
    assert not fut.done()
    assert fut._state == "PENDING"


def test_finished_with_result(loop: Loop) -> None:
    fut = loop.create_future()
    value = {"a": [1, 2]}
    assert fut.set_result(value) is None
    assert fut.done()
    assert not fut.cancelled()
    assert fut.result() is value
    assert fut.result() is value  # as often as asked
    assert fut.exception() is None
    assert fut._state == "FINISHED"


def test_result_can_be_none_or_a_future(loop: Loop) -> None:
    none = finished(loop, None)
    assert none.result() is None
    inner = loop.create_future()
    outer = finished(loop, inner)
    assert outer.result() is inner  # no chaining: the future is the value
    assert not inner.done()


def test_set_result_twice_is_refused(loop: Loop) -> None:
    fut = finished(loop, 1)
    with pytest.raises(asyncio.InvalidStateError, match="^invalid state$"):
        fut.set_result(2)
    with pytest.raises(asyncio.InvalidStateError, match="^invalid state$"):
        fut.set_exception(ValueError("late"))
    assert fut.result() == 1
    assert fut.exception() is None


def test_set_result_after_exception_is_refused(loop: Loop) -> None:
    fut = loop.create_future()
    fut.set_exception(KeyError("first"))
    with pytest.raises(asyncio.InvalidStateError, match="^invalid state$"):
        fut.set_result(2)
    with pytest.raises(asyncio.InvalidStateError, match="^invalid state$"):
        fut.set_exception(ValueError("second"))
    assert isinstance(fut.exception(), KeyError)


def test_set_exception_with_a_class_instantiates_it(loop: Loop) -> None:
    class Custom(Exception):
        pass

    fut = loop.create_future()
    fut.set_exception(Custom)
    assert fut.done()
    assert not fut.cancelled()
    exc = fut.exception()
    assert type(exc) is Custom
    assert exc.args == ()
    with pytest.raises(Custom) as info:
        fut.result()
    assert info.value is exc
    assert fut._state == "FINISHED"


def test_set_exception_with_an_instance(loop: Loop) -> None:
    exc = ValueError("boom")
    fut = loop.create_future()
    fut.set_exception(exc)
    assert fut.done()
    assert not fut.cancelled()
    assert fut.exception() is exc
    with pytest.raises(ValueError, match="boom") as info:
        fut.result()
    assert info.value is exc
    with pytest.raises(ValueError) as again:
        fut.result()
    assert again.value is exc


def test_result_reraises_with_the_original_traceback(loop: Loop) -> None:
    exc = raise_from_here(ValueError("deep"))
    assert frame_names(exc)[-1] == "raiser_frame"
    fut = loop.create_future()
    fut.set_exception(exc)
    # The traceback is kept by the future: clearing the exception's own does not lose it.
    exc.__traceback__ = None
    with pytest.raises(ValueError) as info:
        fut.result()
    assert info.value is exc
    names = frame_names(info.value)
    assert names[0] == "test_result_reraises_with_the_original_traceback"
    assert names[-2:] == ["raise_from_here", "raiser_frame"]


def test_awaiting_reraises_with_the_original_traceback(loop: Loop) -> None:
    fut = loop.create_future()
    fut.set_exception(raise_from_here(KeyError("deep")))

    async def awaiter_frame() -> None:
        await fut

    with pytest.raises(KeyError) as info:
        loop.run_until_complete(awaiter_frame())
    names = frame_names(info.value)
    assert "awaiter_frame" in names
    assert names[-2:] == ["raise_from_here", "raiser_frame"]


@pytest.mark.parametrize(
    "bad",
    [42, "text", None, int, object(), ("x",)],
    ids=["int", "str", "none", "class", "object", "tuple"],
)
def test_set_exception_with_a_non_exception(loop: Loop, bad: Any) -> None:
    fut = loop.create_future()
    with pytest.raises(TypeError, match="^invalid exception object$"):
        fut.set_exception(bad)
    assert not fut.done()
    fut.set_result("still usable")
    assert fut.result() == "still usable"


@pytest.mark.parametrize("form", ["instance", "class"])
def test_set_exception_with_stop_iteration(loop: Loop, form: str) -> None:
    stop = StopIteration("value") if form == "instance" else StopIteration
    fut = loop.create_future()
    if sys.version_info >= (3, 13):
        # 3.13: wrapped in a RuntimeError whose cause is the StopIteration.
        fut.set_exception(stop)
        assert fut.done()
        exc = fut.exception()
        assert type(exc) is RuntimeError
        assert str(exc) == STOP_ITERATION_MESSAGE
        assert isinstance(exc.__cause__, StopIteration)
        if form == "instance":
            assert exc.__cause__ is stop
        with pytest.raises(RuntimeError):
            fut.result()
    else:
        with pytest.raises(TypeError, match=f"^{STOP_ITERATION_MESSAGE}$"):
            fut.set_exception(stop)
        assert not fut.done()
        assert fut._exception is None


def test_set_exception_with_base_exceptions(loop: Loop) -> None:
    for exc_type in (KeyboardInterrupt, SystemExit, GeneratorExit):
        fut = loop.create_future()
        fut.set_exception(exc_type)
        assert isinstance(fut.exception(), exc_type)
        with pytest.raises(exc_type):
            fut.result()


def test_set_exception_with_cancelled_error_is_not_cancelled(loop: Loop) -> None:
    fut = loop.create_future()
    fut.set_exception(asyncio.CancelledError("as exception"))
    assert fut.done()
    assert not fut.cancelled()
    assert fut._state == "FINISHED"
    assert isinstance(fut.exception(), asyncio.CancelledError)
    with pytest.raises(asyncio.CancelledError, match="as exception"):
        fut.result()


# ---- cancellation ----


def test_cancel(loop: Loop) -> None:
    fut = loop.create_future()
    assert fut.cancel() is True
    assert fut.done()
    assert fut.cancelled()
    assert fut._state == "CANCELLED"
    assert fut.cancel() is False
    assert fut.cancel("again") is False
    with pytest.raises(asyncio.CancelledError) as info:
        fut.result()
    assert info.value.args == ()
    with pytest.raises(asyncio.CancelledError):
        fut.exception()


@pytest.mark.parametrize("as_keyword", [False, True])
def test_cancel_message(loop: Loop, as_keyword: bool) -> None:
    fut = loop.create_future()
    assert (fut.cancel(msg="stop it") if as_keyword else fut.cancel("stop it")) is True
    assert fut._cancel_message == "stop it"
    for method in (fut.result, fut.exception, fut.result):
        with pytest.raises(asyncio.CancelledError) as info:
            method()
        assert info.value.args == ("stop it",)
    # A second cancel() does not replace the message.
    assert fut.cancel("other") is False
    assert fut._cancel_message == "stop it"


def test_set_result_and_set_exception_after_cancel(loop: Loop) -> None:
    fut = loop.create_future()
    fut.cancel()
    with pytest.raises(asyncio.InvalidStateError, match="^invalid state$"):
        fut.set_result(1)
    with pytest.raises(asyncio.InvalidStateError, match="^invalid state$"):
        fut.set_exception(ValueError("x"))
    assert fut.cancelled()


def test_cancel_a_done_future_returns_false(loop: Loop) -> None:
    with_result = finished(loop, 1)
    assert with_result.cancel() is False
    assert with_result.cancel("msg") is False
    assert not with_result.cancelled()
    assert with_result.result() == 1
    assert with_result._state == "FINISHED"

    with_exception = loop.create_future()
    with_exception.set_exception(ValueError("x"))
    assert with_exception._log_traceback is True
    assert with_exception.cancel() is False
    assert not with_exception.cancelled()
    # cancel() on a done future still counts as looking at the exception.
    assert with_exception._log_traceback is False
    assert isinstance(with_exception.exception(), ValueError)


# ---- done callbacks ----


def test_done_callbacks_are_scheduled_through_the_loop(loop: Loop) -> None:
    log: list[Any] = []
    fut = loop.create_future()
    fut.add_done_callback(lambda f: log.append(("first", f, f.done())))
    fut.add_done_callback(lambda f: log.append(("second", f, f.result())))
    fut.add_done_callback(lambda f: log.append(("third", f)))
    loop.call_soon(log.append, "scheduled before set_result")
    fut.set_result("value")
    loop.call_soon(log.append, "scheduled after set_result")
    assert log == []  # nothing is called synchronously
    spin(loop)
    assert log == [
        "scheduled before set_result",
        ("first", fut, True),
        ("second", fut, "value"),
        ("third", fut),
        "scheduled after set_result",
    ]


def test_done_callbacks_run_on_the_loop_outside_any_task(loop: Loop) -> None:
    seen: list[Any] = []

    def callback(f: asyncio.Future[Any]) -> None:
        seen.append((f, asyncio.get_running_loop(), asyncio.current_task(loop)))

    fut = loop.create_future()
    fut.add_done_callback(callback)

    async def main() -> None:
        fut.set_result(None)
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert seen == [(fut, loop, None)]


def test_done_callbacks_on_exception_and_cancel(loop: Loop) -> None:
    log: list[tuple[str, Any]] = []
    failed = loop.create_future()
    cancelled = loop.create_future()
    failed.add_done_callback(lambda f: log.append(("failed", type(f.exception()).__name__)))
    cancelled.add_done_callback(lambda f: log.append(("cancelled", f.cancelled())))
    failed.set_exception(ValueError("x"))
    cancelled.cancel()
    assert log == []
    spin(loop)
    assert log == [("failed", "ValueError"), ("cancelled", True)]


def test_same_callback_added_twice_runs_twice(loop: Loop) -> None:
    log: list[Any] = []
    fut = loop.create_future()
    fut.add_done_callback(log.append)
    fut.add_done_callback(log.append)
    fut.set_result(None)
    spin(loop)
    assert log == [fut, fut]


def test_callback_added_after_done_is_scheduled(loop: Loop) -> None:
    log: list[Any] = []
    fut = finished(loop, 1)
    spin(loop)
    loop.call_soon(log.append, "before")
    fut.add_done_callback(log.append)
    loop.call_soon(log.append, "after")
    assert log == []
    spin(loop)
    assert log == ["before", fut, "after"]

    cancelled = loop.create_future()
    cancelled.cancel()
    cancelled.add_done_callback(log.append)
    assert log[-1] == "after"
    spin(loop)
    assert log[-1] is cancelled


def test_callbacks_run_once_only(loop: Loop) -> None:
    log: list[Any] = []
    fut = loop.create_future()
    fut.add_done_callback(log.append)
    fut.set_result(1)
    spin(loop, 3)
    assert log == [fut]
    assert fut._callbacks is None
    fut.cancel()  # a done future: nothing more to schedule
    spin(loop)
    assert log == [fut]


var: contextvars.ContextVar[str] = contextvars.ContextVar("test_loop_future_var")


def test_callback_context_argument(loop: Loop) -> None:
    seen: list[str] = []
    ctx = contextvars.copy_context()
    ctx.run(var.set, "given")

    def read_and_set(_f: asyncio.Future[Any]) -> None:
        seen.append(var.get("unset"))
        var.set("set-by-callback")

    fut = loop.create_future()
    fut.add_done_callback(read_and_set, context=ctx)
    fut.add_done_callback(read_and_set, context=ctx)
    fut.set_result(None)
    spin(loop)
    # Both ran in that very context object, one after the other.
    assert seen == ["given", "set-by-callback"]
    assert ctx[var] == "set-by-callback"
    assert var.get("unset") == "unset"


def test_callback_default_context_is_a_copy_at_add_time(loop: Loop) -> None:
    seen: list[str] = []

    def read_and_set(_f: asyncio.Future[Any]) -> None:
        seen.append(var.get("unset"))
        var.set("set-by-callback")

    fut = loop.create_future()

    def add_in_a_context() -> contextvars.Context:
        var.set("at-add")
        fut.add_done_callback(read_and_set)
        fut.add_done_callback(read_and_set)
        var.set("changed-after-add")
        return contextvars.copy_context()

    outer = contextvars.copy_context()
    outer.run(add_in_a_context)
    fut.add_done_callback(read_and_set)
    fut.set_result(None)
    spin(loop)
    # Each callback got its own copy: what one sets, the next does not see.
    assert seen == ["at-add", "at-add", "unset"]
    assert outer[var] == "changed-after-add"
    assert var.get("unset") == "unset"


def test_callback_context_after_done(loop: Loop) -> None:
    seen: list[str] = []
    ctx = contextvars.copy_context()
    ctx.run(var.set, "late-ctx")
    fut = finished(loop)
    fut.add_done_callback(lambda _f: seen.append(var.get("unset")), context=ctx)
    fut.add_done_callback(lambda _f: seen.append(var.get("unset")))
    spin(loop)
    assert seen == ["late-ctx", "unset"]


def test_callback_explicit_none_context(loop: Loop) -> None:
    """context=None is kept as None (not copied at add time): the callback runs in a copy of
    the context current when the future completes and hands it to call_soon."""
    seen: list[str] = []
    fut = loop.create_future()

    def scenario() -> None:
        var.set("at-add")
        fut.add_done_callback(lambda _f: seen.append(var.get("unset")), context=None)
        assert fut._callbacks is not None
        assert fut._callbacks[0][1] is None
        var.set("at-set-result")
        fut.set_result(None)
        var.set("after-set-result")

    contextvars.copy_context().run(scenario)
    spin(loop)
    assert seen == ["at-set-result"]


def test_remove_done_callback(loop: Loop) -> None:
    log: list[str] = []

    def cb(_f: asyncio.Future[Any]) -> None:
        log.append("cb")

    def other(_f: asyncio.Future[Any]) -> None:
        log.append("other")

    def last(_f: asyncio.Future[Any]) -> None:
        log.append("last")

    fut = loop.create_future()
    assert fut.remove_done_callback(cb) == 0
    fut.add_done_callback(cb)
    fut.add_done_callback(other)
    fut.add_done_callback(cb, context=contextvars.copy_context())
    fut.add_done_callback(last)
    fut.add_done_callback(cb)
    assert fut.remove_done_callback(cb) == 3
    assert fut.remove_done_callback(cb) == 0
    assert [pair[0] for pair in fut._callbacks] == [other, last]
    fut.set_result(None)
    spin(loop)
    assert log == ["other", "last"]


def test_remove_every_callback(loop: Loop) -> None:
    log: list[Any] = []
    fut = loop.create_future()
    fut.add_done_callback(log.append)
    assert fut.remove_done_callback(log.append) == 1  # equal bound methods match
    assert fut._callbacks is None
    fut.add_done_callback(log.append)  # adding again after emptying works
    assert len(fut._callbacks) == 1
    fut.cancel()
    spin(loop)
    assert log == [fut]


def test_remove_after_done_does_not_unschedule(loop: Loop) -> None:
    log: list[Any] = []
    fut = loop.create_future()
    fut.add_done_callback(log.append)
    fut.set_result(None)
    # The callbacks were handed to the loop by set_result: nothing left to remove.
    assert fut.remove_done_callback(log.append) == 0
    spin(loop)
    assert log == [fut]


def test_remove_done_callback_comparison_errors(loop: Loop) -> None:
    class RaisingEq:
        def __eq__(self, other: object) -> bool:
            raise ZeroDivisionError("eq")

        __hash__ = object.__hash__

    def cb(_f: asyncio.Future[Any]) -> None:
        pass

    fut = loop.create_future()
    fut.add_done_callback(cb)
    fut.add_done_callback(RaisingEq())  # type: ignore[arg-type]
    with pytest.raises(ZeroDivisionError, match="eq"):
        fut.remove_done_callback(cb)
    # The error propagates; the matches met before it (here the first callback) are gone.
    assert [type(pair[0]) for pair in fut._callbacks] == [RaisingEq]
    with pytest.raises(ZeroDivisionError, match="eq"):
        fut.remove_done_callback(cb)
    assert len(fut._callbacks) == 1
    fut.cancel()
    collect_errors(loop)  # RaisingEq is not callable: its call fails in the loop
    spin(loop)


def test_remove_done_callback_while_eq_adds_callbacks(loop: Loop) -> None:
    def cb(_f: asyncio.Future[Any]) -> None:
        pass

    fut = loop.create_future()

    class AddingEq:
        def __eq__(self, other: object) -> bool:
            fut.add_done_callback(cb)
            return False

        __hash__ = object.__hash__

    for _ in range(3):
        fut.add_done_callback(AddingEq())  # type: ignore[arg-type]
    # The callbacks added by the comparisons are compared too, and removed.
    assert fut.remove_done_callback(cb) == 3
    assert [type(pair[0]) for pair in fut._callbacks] == [AddingEq] * 3
    fut.cancel()
    collect_errors(loop)
    spin(loop)


def test_remove_done_callback_while_the_loop_runs(loop: Loop) -> None:
    log: list[str] = []
    fut = loop.create_future()

    def second(_f: asyncio.Future[Any]) -> None:
        log.append("second")

    async def main() -> None:
        fut.add_done_callback(lambda _f: log.append("first"))
        fut.add_done_callback(second)
        await asyncio.sleep(0)
        assert fut.remove_done_callback(second) == 1
        fut.set_result(None)
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert log == ["first"]


def test_failing_callback_goes_to_the_exception_handler(loop: Loop) -> None:
    errors = collect_errors(loop)
    log: list[str] = []

    def bad(_f: asyncio.Future[Any]) -> None:
        raise ZeroDivisionError("in callback")

    fut = loop.create_future()
    fut.add_done_callback(bad)
    fut.add_done_callback(lambda _f: log.append("next one still runs"))
    fut.set_result(None)
    spin(loop)
    assert log == ["next one still runs"]
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], ZeroDivisionError)
    assert str(errors[0]["message"]).startswith("Exception in callback")


def test_callback_may_add_callbacks_and_complete_other_futures(loop: Loop) -> None:
    log: list[str] = []
    first = loop.create_future()
    second = loop.create_future()

    def chain(f: asyncio.Future[Any]) -> None:
        log.append("chain")
        f.add_done_callback(lambda _f: log.append("added while running"))
        second.set_result(f.result() + 1)

    first.add_done_callback(chain)
    second.add_done_callback(lambda f: log.append(f"second={f.result()}"))
    first.set_result(1)
    spin(loop, 2)
    assert log == ["chain", "added while running", "second=2"]


# ---- awaiting ----


def test_await_resolved_by_call_soon(loop: Loop) -> None:
    async def main() -> Any:
        fut = loop.create_future()
        loop.call_soon(fut.set_result, "soon")
        return await fut

    assert loop.run_until_complete(main()) == "soon"


def test_await_resolved_by_call_later(loop: Loop) -> None:
    async def main() -> tuple[Any, float]:
        fut = loop.create_future()
        start = loop.time()
        loop.call_later(0.01, fut.set_result, "later")
        value = await fut
        return value, loop.time() - start

    value, elapsed = loop.run_until_complete(main())
    assert value == "later"
    assert elapsed >= 0.005


def test_run_until_complete_on_a_future(loop: Loop) -> None:
    fut = loop.create_future()
    loop.call_soon(fut.set_result, 3)
    assert loop.run_until_complete(fut) == 3

    failed = loop.create_future()
    loop.call_soon(failed.set_exception, ValueError("ruc"))
    with pytest.raises(ValueError, match="ruc"):
        loop.run_until_complete(failed)

    cancelled = loop.create_future()
    loop.call_soon(cancelled.cancel, "ruc-cancel")
    with pytest.raises(asyncio.CancelledError) as info:
        loop.run_until_complete(cancelled)
    assert info.value.args == ("ruc-cancel",)


def test_await_resolved_by_another_task(loop: Loop) -> None:
    async def main() -> list[Any]:
        fut = loop.create_future()

        async def resolver() -> None:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            fut.set_result("from task")

        async def waiter() -> Any:
            return await fut

        waiters = [loop.create_task(waiter()) for _ in range(3)]
        loop.create_task(resolver())
        return [await fut] + await asyncio.gather(*waiters)

    assert loop.run_until_complete(main()) == ["from task"] * 4


def test_await_resolved_from_a_thread(loop: Loop) -> None:
    callback_threads: list[int] = []

    async def main() -> tuple[Any, int]:
        fut = loop.create_future()
        fut.add_done_callback(lambda _f: callback_threads.append(threading.get_ident()))

        def worker() -> None:
            loop.call_soon_threadsafe(fut.set_result, threading.get_ident())

        guard = loop.call_later(5, fut.cancel, "no wakeup from the thread")
        thread = threading.Thread(target=worker)
        thread.start()
        try:
            value = await fut
        finally:
            thread.join()
            guard.cancel()
        await asyncio.sleep(0)
        return value, thread.ident or 0

    value, thread_id = loop.run_until_complete(main())
    assert value == thread_id
    assert callback_threads == [threading.get_ident()]


def test_await_done_future_does_not_suspend(loop: Loop) -> None:
    async def main() -> tuple[Any, list[str]]:
        fut = finished(loop, 7)
        log: list[str] = []
        loop.call_soon(log.append, "callback")
        value = await fut  # already done: no suspension, the callback has not run yet
        again = await fut
        return (value, again), list(log)

    assert loop.run_until_complete(main()) == ((7, 7), [])


def test_await_failed_future(loop: Loop) -> None:
    exc = ValueError("failed")

    async def main() -> BaseException:
        fut = loop.create_future()
        loop.call_soon(fut.set_exception, exc)
        try:
            await fut
        except ValueError as caught:
            return caught
        raise AssertionError("not raised")

    assert loop.run_until_complete(main()) is exc


def test_await_failed_done_future(loop: Loop) -> None:
    fut = loop.create_future()
    fut.set_exception(KeyError("done"))

    async def main() -> str:
        try:
            await fut
        except KeyError:
            return "raised"
        return "no error"

    assert loop.run_until_complete(main()) == "raised"


@pytest.mark.parametrize("already_done", [False, True])
def test_await_cancelled_future(loop: Loop, already_done: bool) -> None:
    fut = loop.create_future()
    if already_done:
        fut.cancel("gone")
    else:
        loop.call_soon(fut.cancel, "gone")

    async def main() -> tuple[Any, ...]:
        try:
            await fut
        except asyncio.CancelledError as exc:
            return exc.args
        return ("not cancelled",)

    assert loop.run_until_complete(main()) == ("gone",)


def test_await_future_from_another_loop(
    loop: Loop, loop_factory: Any, request: pytest.FixtureRequest
) -> None:
    other = loop_factory()
    request.addfinalizer(other.close)
    foreign = other.create_future()
    task = loop.create_task(wait_on(foreign))
    with pytest.raises(RuntimeError, match="attached to a different loop"):
        loop.run_until_complete(task)
    assert not foreign.done()


# ---- the iterator protocol (yield from / __await__) ----


def test_await_iterator_pending_then_result(loop: Loop) -> None:
    fut = loop.create_future()
    it = fut.__await__()
    assert fut._asyncio_future_blocking is False
    assert it.send(None) is fut
    assert fut._asyncio_future_blocking is True
    fut.set_result(7)
    with pytest.raises(StopIteration) as info:
        it.send(None)
    assert info.value.value == 7


def test_await_iterator_second_send_while_pending(loop: Loop) -> None:
    fut = loop.create_future()
    it = fut.__await__()
    assert it.send(None) is fut
    with pytest.raises(RuntimeError, match="^await wasn't used with future$"):
        it.send(None)
    assert not fut.done()


def test_await_iterator_on_done_futures(loop: Loop) -> None:
    with pytest.raises(StopIteration) as info:
        next(finished(loop, "done").__await__())
    assert info.value.value == "done"

    failed = loop.create_future()
    failed.set_exception(KeyError("k"))
    with pytest.raises(KeyError):
        next(failed.__await__())

    cancelled = loop.create_future()
    cancelled.cancel("c")
    with pytest.raises(asyncio.CancelledError) as cancel_info:
        next(cancelled.__await__())
    assert cancel_info.value.args == ("c",)


def test_await_iterator_exception_after_yield(loop: Loop) -> None:
    fut = loop.create_future()
    it = iter(fut)
    assert next(it) is fut
    fut.set_exception(ValueError("after"))
    with pytest.raises(ValueError, match="after"):
        next(it)


def test_iter_is_await(loop: Loop) -> None:
    fut = loop.create_future()
    it = iter(fut)
    assert type(it) is type(fut.__await__())
    assert iter(it) is it
    assert it.send(None) is fut
    fut.set_result("via iter")
    with pytest.raises(StopIteration) as info:
        next(it)
    assert info.value.value == "via iter"


@pytest.mark.parametrize("form", ["instance", "class"])
def test_await_iterator_throw(loop: Loop, form: str) -> None:
    fut = loop.create_future()
    it = fut.__await__()
    assert it.send(None) is fut
    thrown = KeyError("thrown") if form == "instance" else KeyError
    with pytest.raises(KeyError) as info:
        it.throw(thrown)
    if form == "instance":
        assert info.value is thrown
    assert not fut.done()  # throwing into the iterator does not touch the future


def test_await_iterator_throw_before_send(loop: Loop) -> None:
    fut = loop.create_future()
    it = fut.__await__()
    with pytest.raises(ValueError, match="early"):
        it.throw(ValueError("early"))
    assert not fut.done()


def test_yield_from_a_future(loop: Loop) -> None:
    @types.coroutine
    def legacy(fut: asyncio.Future[Any]) -> Generator[Any, None, Any]:
        value = yield from fut
        return ("legacy", value)

    async def main() -> Any:
        fut = loop.create_future()
        loop.call_soon(fut.set_result, 5)
        return await legacy(fut)

    assert loop.run_until_complete(main()) == ("legacy", 5)


def test_yielding_a_future_directly_is_a_bad_yield(loop: Loop) -> None:
    fut = loop.create_future()

    @types.coroutine
    def bad() -> Generator[Any, None, None]:
        yield fut  # the future itself, not through __await__

    async def main() -> None:
        await bad()

    with pytest.raises(RuntimeError, match="yield was used instead of yield from in task"):
        loop.run_until_complete(main())
    assert not fut.done()


# ---- tasks awaiting futures ----


def non_native_task_factory(lp: Loop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    return asyncio.Task(coro, loop=lp, **kwargs)


def test_non_native_task_awaits_futures(loop: Loop) -> None:
    loop.set_task_factory(non_native_task_factory)

    async def main() -> list[Any]:
        current = asyncio.current_task()
        assert type(current) is asyncio.Task
        ok = loop.create_future()
        loop.call_soon(ok.set_result, "ok")
        bad = loop.create_future()
        loop.call_later(0.001, bad.set_exception, ValueError("bad"))
        outcomes: list[Any] = [await ok, await finished(loop, "done")]
        try:
            await bad
        except ValueError as exc:
            outcomes.append(str(exc))
        return outcomes

    task = loop.create_task(main())
    assert type(task) is asyncio.Task
    assert loop.run_until_complete(task) == ["ok", "done", "bad"]


def test_non_native_task_cancel_cancels_the_future(loop: Loop) -> None:
    loop.set_task_factory(non_native_task_factory)
    fut = loop.create_future()
    task = loop.create_task(wait_on(fut))
    assert type(task) is asyncio.Task
    spin(loop)
    assert task._fut_waiter is fut
    assert task.cancel("from factory task") is True
    assert fut.cancelled()
    with pytest.raises(asyncio.CancelledError) as info:
        loop.run_until_complete(task)
    assert info.value.args == cancelled_args("from factory task")
    assert task.cancelled()


def test_cancel_task_cancels_the_awaited_future(loop: Loop) -> None:
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
    assert not fut.done()
    assert task.cancel("stop") is True
    assert fut.cancelled()  # at once, not at the task's next step
    assert fut._cancel_message == "stop"
    with pytest.raises(asyncio.CancelledError) as info:
        loop.run_until_complete(task)
    assert seen == [("stop",)]
    assert info.value.args == cancelled_args("stop")
    assert task.cancelled()


def test_cancel_future_wakes_the_task_with_cancelled_error(loop: Loop) -> None:
    async def body(fut: asyncio.Future[Any]) -> str:
        try:
            await fut
        except asyncio.CancelledError as exc:
            return f"caught {exc.args}"
        return "not cancelled"

    fut = loop.create_future()
    task = loop.create_task(body(fut))
    spin(loop)
    fut.cancel("future side")
    assert loop.run_until_complete(task) == "caught ('future side',)"
    assert not task.cancelled()


def test_many_tasks_await_one_future(loop: Loop) -> None:
    fut = loop.create_future()
    tasks = [loop.create_task(wait_on(fut)) for _ in range(50)]
    spin(loop)
    assert len(fut._callbacks) == 50
    fut.set_result("shared")
    assert loop.run_until_complete(asyncio.gather(*tasks)) == ["shared"] * 50


# ---- asyncio helpers on create_future() futures ----


def test_wait_for(loop: Loop) -> None:
    async def main() -> tuple[Any, bool]:
        quick = loop.create_future()
        loop.call_soon(quick.set_result, "quick")
        value = await asyncio.wait_for(quick, 1)
        slow = loop.create_future()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow, 0.001)
        return value, slow.cancelled()

    assert loop.run_until_complete(main()) == ("quick", True)


def test_shield(loop: Loop) -> None:
    async def main() -> tuple[Any, bool]:
        inner = loop.create_future()
        outer = asyncio.shield(inner)
        await asyncio.sleep(0)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        assert not inner.cancelled()
        loop.call_soon(inner.set_result, "shielded")
        return await inner, inner.cancelled()

    assert loop.run_until_complete(main()) == ("shielded", False)


def test_shield_of_a_done_future_is_the_future(loop: Loop) -> None:
    fut = finished(loop, 1)
    assert asyncio.shield(fut) is fut


def test_gather(loop: Loop) -> None:
    async def main() -> tuple[list[Any], list[str]]:
        futs = [loop.create_future() for _ in range(5)]
        for i, fut in reversed(list(enumerate(futs))):
            loop.call_soon(fut.set_result, i)
        values = await asyncio.gather(*futs)
        ok = loop.create_future()
        bad = loop.create_future()
        ok.set_result("ok")
        loop.call_soon(bad.set_exception, ValueError("no"))
        outcomes = await asyncio.gather(ok, bad, return_exceptions=True)
        return values, [o if isinstance(o, str) else type(o).__name__ for o in outcomes]

    assert loop.run_until_complete(main()) == ([0, 1, 2, 3, 4], ["ok", "ValueError"])


def test_gather_cancel_cancels_the_futures(loop: Loop) -> None:
    async def main() -> list[bool]:
        futs = [loop.create_future() for _ in range(3)]
        group = asyncio.gather(*futs)
        await asyncio.sleep(0)
        assert group.cancel() is True
        with pytest.raises(asyncio.CancelledError):
            await group
        return [fut.cancelled() for fut in futs]

    assert loop.run_until_complete(main()) == [True, True, True]


def test_gather_child_cancelled(loop: Loop) -> None:
    async def main() -> tuple[bool, str, tuple[Any, ...], bool]:
        futs = [loop.create_future() for _ in range(2)]
        group = asyncio.gather(*futs)
        futs[0].cancel("child")
        with pytest.raises(asyncio.CancelledError):
            await group
        # A cancelled child fails the gather with a CancelledError; the gather itself is
        # not cancelled and the other child is left alone.
        exc = group.exception()
        return group.cancelled(), type(exc).__name__, exc.args, futs[1].done()

    assert loop.run_until_complete(main()) == (False, "CancelledError", ("child",), False)


def test_wait(loop: Loop) -> None:
    async def main() -> tuple[bool, bool, bool]:
        quick = loop.create_future()
        slow = loop.create_future()
        loop.call_soon(quick.set_result, "quick")
        done, pending = await asyncio.wait({quick, slow}, return_when=asyncio.FIRST_COMPLETED)
        first = done == {quick} and pending == {slow}
        loop.call_soon(slow.set_exception, ValueError("slow"))
        done, pending = await asyncio.wait({quick, slow}, return_when=asyncio.FIRST_EXCEPTION)
        second = done == {quick, slow} and not pending
        slow.exception()
        never = loop.create_future()
        done, pending = await asyncio.wait({never}, timeout=0.001)
        third = not done and pending == {never} and not never.done()
        return first, second, third

    assert loop.run_until_complete(main()) == (True, True, True)


def test_as_completed(loop: Loop) -> None:
    async def main() -> list[int]:
        futs = [loop.create_future() for _ in range(4)]
        for i, fut in reversed(list(enumerate(futs))):
            loop.call_soon(fut.set_result, i)
        return [await next_done for next_done in asyncio.as_completed(futs)]

    assert loop.run_until_complete(main()) == [3, 2, 1, 0]


def test_ensure_future_returns_the_future(loop: Loop) -> None:
    fut = loop.create_future()
    assert asyncio.ensure_future(fut, loop=loop) is fut
    assert asyncio.ensure_future(fut) is fut


def test_wrap_future(loop: Loop) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:

        async def main() -> tuple[Any, str, bool]:
            done_cf = pool.submit(lambda: 21 * 2)
            wrapped = asyncio.wrap_future(done_cf, loop=loop)
            assert isinstance(wrapped, asyncio.Future)
            assert type(wrapped) is type(loop.create_future())
            value = await wrapped

            failing_cf = pool.submit(lambda: 1 / 0)
            try:
                await asyncio.wrap_future(failing_cf)
            except ZeroDivisionError as exc:
                error = type(exc).__name__
            else:
                error = "none"

            pending_cf: concurrent.futures.Future[str] = concurrent.futures.Future()
            wrapped_pending = asyncio.wrap_future(pending_cf)
            assert wrapped_pending.cancel() is True
            await asyncio.sleep(0)
            return value, error, pending_cf.cancelled()

        assert loop.run_until_complete(main()) == (42, "ZeroDivisionError", True)


def test_run_in_executor(loop: Loop) -> None:
    async def main() -> tuple[Any, str, bool]:
        fut = loop.run_in_executor(None, lambda: threading.get_ident())
        assert isinstance(fut, asyncio.Future)
        ident = await fut
        try:
            await loop.run_in_executor(None, int, "not a number")
        except ValueError as exc:
            error = type(exc).__name__
        else:
            error = "none"
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            summed = await loop.run_in_executor(pool, sum, [1, 2, 3])
        return ident != threading.get_ident(), error, summed == 6

    assert loop.run_until_complete(main()) == (True, "ValueError", True)


def test_sleep_with_a_delay(loop: Loop) -> None:
    async def main() -> tuple[Any, float]:
        start = loop.time()
        value = await asyncio.sleep(0.01, result="slept")
        return value, loop.time() - start

    value, elapsed = loop.run_until_complete(main())
    assert value == "slept"
    assert elapsed >= 0.005


def test_sleep_cancelled(loop: Loop) -> None:
    async def sleeper() -> None:
        await asyncio.sleep(10)

    async def main() -> tuple[bool, float]:
        start = loop.time()
        task = loop.create_task(sleeper())
        await asyncio.sleep(0)
        assert task._fut_waiter is not None
        waiter = task._fut_waiter
        assert type(waiter) is type(loop.create_future())
        task.cancel("wake up")
        try:
            await task
        except asyncio.CancelledError as exc:
            assert exc.args == cancelled_args("wake up")
        return waiter.cancelled(), loop.time() - start

    cancelled, elapsed = loop.run_until_complete(main())
    assert cancelled
    assert elapsed < 5


def test_synchronisation_primitives_with_cancellations(loop: Loop) -> None:
    async def main() -> dict[str, Any]:
        queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=2)
        event = asyncio.Event()
        lock = asyncio.Lock()
        condition = asyncio.Condition()
        semaphore = asyncio.Semaphore(2)
        consumed: list[int] = []
        notified: list[int] = []
        active = 0
        peak = 0

        async def producer() -> None:
            await event.wait()
            for i in range(20):
                await queue.put(i)
            for _ in range(3):
                await queue.put(None)

        async def consumer() -> None:
            nonlocal active, peak
            while True:
                item = await queue.get()
                if item is None:
                    return
                async with semaphore:
                    active += 1
                    peak = max(peak, active)
                    await asyncio.sleep(0)
                    active -= 1
                async with lock:
                    consumed.append(item)
                async with condition:
                    notified.append(item)
                    condition.notify_all()

        async def watcher() -> int:
            async with condition:
                await condition.wait_for(lambda: len(notified) >= 20)
            return len(notified)

        # Waiters that get cancelled while blocked in each primitive.
        blocked_get = loop.create_task(asyncio.Queue().get())
        blocked_event = loop.create_task(asyncio.Event().wait())
        await lock.acquire()
        blocked_lock = loop.create_task(lock.acquire())
        await semaphore.acquire()
        await semaphore.acquire()
        blocked_semaphore = loop.create_task(semaphore.acquire())

        async def cond_waiter() -> None:
            async with condition:
                await condition.wait()

        blocked_condition = loop.create_task(cond_waiter())
        await asyncio.sleep(0)
        blocked = [blocked_get, blocked_event, blocked_lock, blocked_semaphore, blocked_condition]
        for task in blocked:
            task.cancel()
        outcomes = await asyncio.gather(*blocked, return_exceptions=True)
        lock.release()
        semaphore.release()
        semaphore.release()

        tasks = [loop.create_task(consumer()) for _ in range(3)]
        watch = loop.create_task(watcher())
        prod = loop.create_task(producer())
        await asyncio.sleep(0)
        assert queue.empty()  # the producer waits for the event
        event.set()
        await asyncio.gather(prod, *tasks)
        return {
            "cancelled": [type(o).__name__ for o in outcomes],
            "consumed": sorted(consumed),
            "watched": await watch,
            "peak": peak,
            "lock": lock.locked(),
            "semaphore": semaphore.locked(),
        }

    result = loop.run_until_complete(main())
    assert result == {
        "cancelled": ["CancelledError"] * 5,
        "consumed": list(range(20)),
        "watched": 20,
        "peak": result["peak"],
        "lock": False,
        "semaphore": False,
    }
    assert 1 <= result["peak"] <= 2


# ---- private attributes libraries read ----


def test_private_attributes_pending(loop: Loop) -> None:
    fut: Any = loop.create_future()
    assert fut._state == "PENDING"
    assert fut._result is None
    assert fut._exception is None
    assert fut._loop is loop
    assert fut._callbacks is None
    assert fut._asyncio_future_blocking is False
    assert fut._log_traceback is False
    assert fut._cancel_message is None


def test_private_attributes_finished(loop: Loop) -> None:
    fut: Any = loop.create_future()
    fut.set_result([1])
    assert fut._state == "FINISHED"
    assert fut._result == [1]
    assert fut._exception is None
    assert fut._log_traceback is False

    failed: Any = loop.create_future()
    exc = ValueError("x")
    failed.set_exception(exc)
    assert failed._state == "FINISHED"
    assert failed._result is None
    assert failed._exception is exc
    assert failed._log_traceback is True
    assert failed.exception() is exc
    assert failed._log_traceback is False

    other: Any = loop.create_future()
    other.set_exception(KeyError("y"))
    with pytest.raises(KeyError):
        other.result()
    assert other._log_traceback is False


def test_private_attributes_cancelled(loop: Loop) -> None:
    fut: Any = loop.create_future()
    fut.add_done_callback(lambda _f: None)
    fut.cancel("why")
    assert fut._state == "CANCELLED"
    assert fut._result is None
    assert fut._exception is None
    assert fut._cancel_message == "why"
    assert fut._callbacks is None
    assert fut._log_traceback is False


def test_callbacks_attribute(loop: Loop) -> None:
    def first(_f: asyncio.Future[Any]) -> None:
        pass

    def second(_f: asyncio.Future[Any]) -> None:
        pass

    fut: Any = loop.create_future()
    ctx = contextvars.copy_context()
    fut.add_done_callback(first)
    fut.add_done_callback(second, context=ctx)
    callbacks = fut._callbacks
    assert isinstance(callbacks, list)
    assert all(type(pair) is tuple and len(pair) == 2 for pair in callbacks)
    assert [pair[0] for pair in callbacks] == [first, second]
    assert isinstance(callbacks[0][1], contextvars.Context)
    assert callbacks[1][1] is ctx
    callbacks.clear()  # a snapshot: changing it does not change the future
    assert len(fut._callbacks) == 2
    fut.set_result(None)
    assert fut._callbacks is None
    spin(loop)


def test_asyncio_future_blocking_is_writable(loop: Loop) -> None:
    fut: Any = loop.create_future()
    fut._asyncio_future_blocking = True
    assert fut._asyncio_future_blocking is True
    fut._asyncio_future_blocking = False
    assert fut._asyncio_future_blocking is False


def test_log_traceback_can_only_be_cleared(loop: Loop) -> None:
    fut: Any = loop.create_future()
    fut.set_exception(ValueError("x"))
    assert fut._log_traceback is True
    with pytest.raises(ValueError, match="^_log_traceback can only be set to False$"):
        fut._log_traceback = True
    fut._log_traceback = False
    assert fut._log_traceback is False
    with pytest.raises(ValueError, match="^_log_traceback can only be set to False$"):
        fut._log_traceback = True
    assert fut._log_traceback is False


def test_read_only_private_attributes(loop: Loop) -> None:
    fut: Any = loop.create_future()
    for name, value in (("_state", "FINISHED"), ("_result", 1), ("_loop", None)):
        with pytest.raises(AttributeError):
            setattr(fut, name, value)
    assert fut._state == "PENDING"
    assert fut._loop is loop


def test_source_traceback_outside_debug_mode(loop: Loop) -> None:
    loop.set_debug(False)
    fut: Any = loop.create_future()
    assert fut._source_traceback is None


def test_source_traceback_in_debug_mode(loop: Loop) -> None:
    loop.set_debug(True)

    def make_future_here() -> asyncio.Future[Any]:
        return loop.create_future()

    fut: Any = make_future_here()
    stack = fut._source_traceback
    assert isinstance(stack, list)
    # The last entry outside asyncio's own package is the caller of create_future (asyncio's
    # loop leaves its own create_future frame on top; a native create_future has none).
    outside = [i for i, entry in enumerate(stack) if not entry[0].startswith(ASYNCIO_DIR)]
    caller = stack[outside[-1]]
    assert caller[0] == __file__
    assert caller[2] == "make_future_here"
    assert stack[outside[-1] - 1][2] == "test_source_traceback_in_debug_mode"
    assert all(entry[0].startswith(ASYNCIO_DIR) for entry in stack[outside[-1] + 1 :])
    assert len(stack) - outside[-1] - 1 <= 1


def test_not_picklable_nor_copyable(loop: Loop) -> None:
    fut = loop.create_future()
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="cannot pickle"):
            attempt(fut)


def test_weakref_and_attributes(loop: Loop) -> None:
    fut: Any = loop.create_future()
    ref = weakref.ref(fut)
    assert ref() is fut
    fut.foo = 1
    fut.bar = [2]
    assert (fut.foo, fut.bar) == (1, [2])
    fut.set_result(None)
    assert fut.foo == 1
    del fut.bar
    assert not hasattr(fut, "bar")
    del fut
    gc.collect()
    assert ref() is None


def test_reference_cycle_is_collected(loop: Loop) -> None:
    fut: Any = loop.create_future()
    fut.self_ref = fut
    fut.add_done_callback(lambda _f, keep=fut: None)
    ref = weakref.ref(fut)
    del fut
    gc.collect()
    assert ref() is None


# ---- destroy-time report ----


def test_exception_never_retrieved_is_reported(loop: Loop) -> None:
    errors = collect_errors(loop)
    fut = loop.create_future()
    exc = ValueError("lost")
    fut.set_exception(exc)
    class_name = type(fut).__name__
    del fut
    gc.collect()
    assert messages(errors) == [f"{class_name} exception was never retrieved"]
    context = errors[0]
    assert context["exception"] is exc
    assert type(context["future"]).__name__ == class_name
    assert context["future"].exception() is exc  # resurrected for the handler
    assert "source_traceback" not in context


def test_exception_never_retrieved_in_debug_mode(loop: Loop) -> None:
    loop.set_debug(True)
    errors = collect_errors(loop)
    fut = loop.create_future()
    fut.set_exception(KeyError("lost"))
    del fut
    gc.collect()
    assert len(errors) == 1
    assert isinstance(errors[0]["source_traceback"], list)


@pytest.mark.parametrize("how", ["exception", "result", "await", "cancel", "log_traceback"])
def test_retrieved_exception_is_not_reported(loop: Loop, how: str) -> None:
    errors = collect_errors(loop)
    fut: Any = loop.create_future()
    fut.set_exception(ValueError("seen"))
    if how == "exception":
        fut.exception()
    elif how == "result":
        with pytest.raises(ValueError):
            fut.result()
    elif how == "await":
        with pytest.raises(ValueError):
            loop.run_until_complete(wait_on(fut))
    elif how == "cancel":
        assert fut.cancel() is False
    else:
        fut._log_traceback = False
    del fut
    gc.collect()
    assert errors == []


def test_results_and_cancellations_are_not_reported(loop: Loop) -> None:
    errors = collect_errors(loop)
    futs = [finished(loop, 1), loop.create_future(), loop.create_future()]
    futs[1].cancel()
    del futs
    gc.collect()
    assert errors == []


def test_exception_read_by_a_done_callback_is_not_reported(loop: Loop) -> None:
    errors = collect_errors(loop)
    fut = loop.create_future()
    fut.add_done_callback(lambda f: f.exception())
    fut.set_exception(ValueError("handled"))
    spin(loop)
    del fut
    gc.collect()
    assert errors == []


# ---- repr ----


def test_repr_pending(loop: Loop) -> None:
    fut = loop.create_future()
    text = repr(fut)
    assert text.startswith(f"<{type(fut).__name__} ")
    assert text == f"<{type(fut).__name__} pending>"


def test_repr_with_callbacks(loop: Loop) -> None:
    def first_cb(_f: asyncio.Future[Any]) -> None:
        pass

    def last_cb(_f: asyncio.Future[Any]) -> None:
        pass

    fut = loop.create_future()
    fut.add_done_callback(first_cb)
    text = repr(fut)
    assert "pending cb=[" in text
    assert "first_cb()" in text
    fut.add_done_callback(print)
    fut.add_done_callback(print)
    fut.add_done_callback(last_cb)
    text = repr(fut)
    assert "first_cb()" in text and "last_cb()" in text
    assert "<2 more>" in text
    fut.set_result(None)
    assert "cb=" not in repr(fut)
    spin(loop)


def test_repr_finished(loop: Loop) -> None:
    fut = finished(loop, [1, "two"])
    assert repr(fut) == f"<{type(fut).__name__} finished result=[1, 'two']>"


def test_repr_long_result_is_shortened(loop: Loop) -> None:
    fut = finished(loop, "x" * 1000)
    text = repr(fut)
    assert "finished result='xxx" in text
    assert len(text) < 200


def test_repr_exception(loop: Loop) -> None:
    fut = loop.create_future()
    fut.set_exception(ValueError("boom"))
    assert repr(fut) == f"<{type(fut).__name__} finished exception=ValueError('boom')>"
    fut.exception()


def test_repr_cancelled(loop: Loop) -> None:
    fut = loop.create_future()
    fut.cancel("msg")
    assert repr(fut) == f"<{type(fut).__name__} cancelled>"


# ---- stress and leaks ----


def test_many_futures_awaited_by_tasks_are_freed(loop: Loop) -> None:
    count = 20_000
    workers = 100
    per_worker = count // workers
    sentinel = object()
    baseline = sys.getrefcount(sentinel)

    async def worker(futs: list[asyncio.Future[Any]]) -> int:
        total = 0
        for fut in futs:
            value, marker = await fut
            assert marker is sentinel
            total += value
        return total

    async def batch() -> tuple[list[int], list[weakref.ref[Any]]]:
        futs = [loop.create_future() for _ in range(count)]
        refs = [weakref.ref(fut) for fut in futs]
        chunks = [futs[i * per_worker : (i + 1) * per_worker] for i in range(workers)]
        tasks = [loop.create_task(worker(chunk)) for chunk in chunks]
        del chunks
        await asyncio.sleep(0)
        # Resolved through call_soon, interleaved by rounds so that some futures are
        # already done when awaited and others are awaited while pending.
        for i, fut in enumerate(futs):
            loop.call_soon(fut.set_result, (i, sentinel))
            if i % 1000 == 999:
                await asyncio.sleep(0)
        del futs, fut
        totals = await asyncio.gather(*tasks)
        return totals, refs

    totals, refs = loop.run_until_complete(batch())
    expected = [sum(range(w * per_worker, (w + 1) * per_worker)) for w in range(workers)]
    assert totals == expected
    gc.collect()
    assert sum(ref() is not None for ref in refs) == 0
    assert sys.getrefcount(sentinel) == baseline


def test_many_failed_and_cancelled_futures_are_freed(loop: Loop) -> None:
    errors = collect_errors(loop)
    count = 4_000

    async def batch() -> tuple[list[str], list[weakref.ref[Any]]]:
        futs = [loop.create_future() for _ in range(count)]
        for i, fut in enumerate(futs):
            fut.add_done_callback(lambda _f: None)
            if i % 2:
                loop.call_soon(fut.set_exception, ValueError(i))
            else:
                loop.call_soon(fut.cancel, f"c{i}")
        outcomes = await asyncio.gather(*futs, return_exceptions=True)
        return [type(o).__name__ for o in outcomes], [weakref.ref(f) for f in futs]

    names, refs = loop.run_until_complete(batch())
    assert names == ["CancelledError", "ValueError"] * (count // 2)
    gc.collect()
    assert sum(ref() is not None for ref in refs) == 0
    assert errors == []


# ---- PyLoop's native Future type ----


def test_create_future_type(loop: Loop) -> None:
    """PyLoop returns its native Future, asyncio's loop the C asyncio.Future."""
    fut = loop.create_future()
    if is_pyloop(loop):
        from data_bridge import _core

        native = _core.Future
        assert issubclass(native, asyncio.Future)
        assert native is not asyncio.Future
        assert type(fut) is native
    else:
        assert type(fut) is asyncio.Future
    assert type(asyncio.wrap_future(concurrent.futures.Future(), loop=loop)) is type(fut)


def test_native_future_overrides_every_base_name() -> None:
    """PyLoop's Future keeps its state in its own fields: a name of asyncio.Future left to
    the base would read the base's (unused) fields."""
    import _asyncio

    from data_bridge import _core

    native = _core.Future
    inherited_ok = {"__new__", "__class_getitem__", "__module__", "__doc__"}
    missing = [n for n in vars(_asyncio.Future) if n not in inherited_ok and n not in vars(native)]
    assert missing == [], f"Future names not overridden: {missing}"


def test_native_future_made_without_init_refuses_instead_of_crashing() -> None:
    """__new__ alone leaves no loop: every operation that needs one raises, as asyncio's
    C Future does ("Future object is not initialized.")."""
    from data_bridge import _core

    for cls in (_core.Future, _core.Task):
        fut: Any = cls.__new__(cls)
        assert not fut.done()
        with pytest.raises(RuntimeError, match="not initialized"):
            fut.get_loop()
        with pytest.raises(RuntimeError, match="not initialized"):
            fut.add_done_callback(print)
        assert fut._loop is None

    assert "pending" in repr(_core.Future.__new__(_core.Future))

    fut = _core.Future.__new__(_core.Future)
    assert fut.cancel() is True
    assert fut.cancelled()

    loop = pyloop.new_event_loop()
    try:
        stray: Any = _core.Future.__new__(_core.Future)

        async def main() -> None:
            await stray

        with pytest.raises(RuntimeError, match="not initialized"):
            loop.run_until_complete(main())
    finally:
        loop.close()


def test_native_future_subclass_overrides_are_honoured() -> None:
    """The native fast paths take exact types only: a subclass's add_done_callback(),
    result() and cancel() run when a native Task awaits or cancels it."""
    from data_bridge import _core

    calls: list[str] = []

    class Traced(_core.Future):  # type: ignore[misc, valid-type]
        def add_done_callback(self, fn: Any, *, context: Any = None) -> None:
            calls.append("add_done_callback")
            super().add_done_callback(fn, context=context)

        def result(self) -> Any:
            calls.append("result")
            return super().result()

        def cancel(self, msg: Any = None) -> bool:
            calls.append("cancel")
            return super().cancel(msg)

    loop = pyloop.new_event_loop()
    try:
        fut = Traced(loop=loop)
        waiter = loop.create_task(wait_on(fut))
        spin(loop)
        fut.set_result(7)
        assert loop.run_until_complete(waiter) == 7
        # The await iterator reads the state itself, as asyncio's C iterator does.
        assert calls == ["add_done_callback", "result"]

        calls.clear()
        other = Traced(loop=loop)
        task = loop.create_task(wait_on(other))
        spin(loop)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(task)
        assert calls[:2] == ["add_done_callback", "cancel"]
        assert other.cancelled()
    finally:
        loop.close()
