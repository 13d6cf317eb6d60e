"""The loop's light awaitable (csrc/loop/waiter.c, `_core._Waiter`): what a WebSocket
session's receive() hands out while no message is there. A native Task that awaits one is
woken without a done callback; any other Task goes through its Future protocol; either way
it has to behave as a Future from loop.create_future() would for the one coroutine that
awaits it."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from data_bridge import _core, pyloop


@pytest.fixture
def loop() -> Iterator[Any]:
    lp = pyloop.Loop()
    yield lp
    lp.close()


async def wait(waiter: Any) -> Any:
    return await waiter


def test_native_task_gets_the_value(loop: Any) -> None:
    waiter = _core._Waiter(loop)
    task = loop.create_task(wait(waiter))
    loop.call_later(0.01, waiter.set_result, ("a", 1))
    assert loop.run_until_complete(task) == ("a", 1)  # a tuple is not unpacked
    assert waiter.done() and not waiter.cancelled() and waiter.result() == ("a", 1)
    assert repr(waiter) == "<_Waiter finished>"


def test_native_task_waits_without_a_callback(loop: Any) -> None:
    """The task is recorded in the waiter: it is what the task waits for, and nothing else
    (no bound wakeup) was made for it."""
    waiter = _core._Waiter(loop)
    task = loop.create_task(wait(waiter))

    async def check() -> None:
        await asyncio.sleep(0)
        assert task._fut_waiter is waiter
        assert not waiter.done()
        # The native path took no done callback: the Future protocol's slot is still free.
        assert waiter.remove_done_callback(print) == 0
        waiter.set_result(7)

    loop.run_until_complete(check())
    assert loop.run_until_complete(task) == 7


def test_resolved_before_the_await(loop: Any) -> None:
    waiter = _core._Waiter(loop)
    waiter.set_result("ready")
    assert loop.run_until_complete(wait(waiter)) == "ready"
    with pytest.raises(asyncio.InvalidStateError):
        waiter.set_result("again")


def test_an_exception_is_raised_at_the_await(loop: Any) -> None:
    waiter = _core._Waiter(loop)
    task = loop.create_task(wait(waiter))
    error = KeyError("text")
    loop.call_later(0.01, waiter.set_exception, error)
    with pytest.raises(KeyError) as info:
        loop.run_until_complete(task)
    assert info.value is error
    assert waiter.done() and not waiter.cancelled() and waiter.exception() is error
    with pytest.raises(TypeError, match="exception instance"):
        _core._Waiter(loop).set_exception(KeyError)
    with pytest.raises(asyncio.InvalidStateError):
        waiter.set_exception(ValueError())


def test_cancelling_the_task_cancels_the_wait(loop: Any) -> None:
    waiter = _core._Waiter(loop)
    seen: list[str] = []

    async def body() -> None:
        try:
            await waiter
        except asyncio.CancelledError as exc:
            seen.append(str(exc.args[0]) if exc.args else "")
            raise

    task = loop.create_task(body())
    loop.call_later(0.01, task.cancel, "stop")
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert seen == ["stop"]
    assert waiter.cancelled() and repr(waiter) == "<_Waiter cancelled>"
    with pytest.raises(asyncio.CancelledError):
        waiter.result()
    with pytest.raises(asyncio.InvalidStateError):
        waiter.set_result(1)  # a producer then keeps its value for the next receive


def test_wait_for_times_out(loop: Any) -> None:
    waiter = _core._Waiter(loop)

    async def body() -> None:
        await asyncio.wait_for(wait(waiter), 0.01)

    with pytest.raises(asyncio.TimeoutError):
        loop.run_until_complete(body())
    assert waiter.cancelled()


def test_a_foreign_task_uses_the_future_protocol(loop: Any) -> None:
    """asyncio's own Task (not the loop's native one): _asyncio_future_blocking,
    get_loop(), add_done_callback(context=), result() and cancel(msg)."""
    waiter = _core._Waiter(loop)
    task = asyncio.Task(wait(waiter), loop=loop)
    assert type(task) is not type(loop.create_task(asyncio.sleep(0)))
    loop.call_later(0.01, waiter.set_result, "via callback")
    assert loop.run_until_complete(task) == "via callback"

    waiter = _core._Waiter(loop)
    task = asyncio.Task(wait(waiter), loop=loop)
    loop.call_later(0.01, task.cancel, "bye")
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert waiter.cancelled() and waiter.get_loop() is loop


def test_one_task_at_a_time(loop: Any) -> None:
    waiter = _core._Waiter(loop)
    first = loop.create_task(wait(waiter))
    second = loop.create_task(wait(waiter))
    with pytest.raises(RuntimeError, match="await wasn't used with future|already awaits"):
        loop.run_until_complete(second)
    waiter.set_result(1)
    assert loop.run_until_complete(first) == 1


def test_another_loop_is_refused(loop: Any) -> None:
    other = pyloop.Loop()
    try:
        waiter = _core._Waiter(other)
        with pytest.raises(RuntimeError, match="attached to a different loop"):
            loop.run_until_complete(loop.create_task(wait(waiter)))
    finally:
        other.close()


def test_an_exception_thrown_in_abandons_the_wait(loop: Any) -> None:
    """A coroutine that stops awaiting (an exception thrown in at the await) leaves the
    waiter cancelled: whoever resolves it sees that and keeps the value."""
    waiter = _core._Waiter(loop)
    coro = wait(waiter)
    assert coro.send(None) is waiter
    with pytest.raises(ValueError, match="out"):
        coro.throw(ValueError("out"))
    assert waiter.cancelled()
    with pytest.raises(asyncio.InvalidStateError):
        waiter.set_result(1)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="needs a PyLoop"):
        _core._Waiter(asyncio.new_event_loop())
    with pytest.raises(TypeError):
        _core._Waiter()


def test_small_and_collected(loop: Any) -> None:
    """The point of the type: far smaller than a Future, and a task waiting on a waiter
    nobody else holds is freed with it (the cycle task → coroutine → waiter → task)."""
    waiter = _core._Waiter(loop)
    assert sys.getsizeof(waiter) <= 80 < sys.getsizeof(loop.create_future())

    class Marker:
        pass

    freed: list[bool] = []

    async def body(w: Any, marker: Marker) -> None:
        await w

    def run_one() -> None:
        marker = Marker()
        weakref.finalize(marker, freed.append, True)
        task = loop.create_task(body(_core._Waiter(loop), marker))
        loop.run_until_complete(asyncio.sleep(0.001))
        assert not task.done()
        task._log_destroy_pending = False

    run_one()
    gc.collect()
    assert freed == [True]
