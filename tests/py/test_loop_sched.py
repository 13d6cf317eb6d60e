"""Scheduling on the loop: call_soon, call_later, call_at, call_soon_threadsafe, time, handles
and contexts. Each test runs on asyncio's loop and on PyLoop (see loop_fixtures)."""

import asyncio
import contextvars
import sys
import threading
import time

import pytest
from loop_fixtures import *  # noqa: F403  (the loop and loop_factory fixtures)
from loop_fixtures import is_pyloop

var = contextvars.ContextVar("var", default="unset")


def test_call_soon_order_and_args(loop):
    out = []
    loop.call_soon(out.append, 1)
    loop.call_soon(lambda a, b: out.append(a + b), 2, 3)
    loop.call_soon(out.append, 3)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == [1, 5, 3]


def test_callbacks_scheduled_during_pass_run_next_pass(loop):
    out = []

    def first():
        out.append("first")
        loop.call_soon(out.append, "nested")
        loop.stop()

    loop.call_soon(first)
    loop.call_soon(out.append, "second")
    loop.run_forever()
    assert out == ["first", "second"]
    # The nested callback waits in the ready queue for the next run.
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["first", "second", "nested"]


def test_stop_before_run_forever_runs_one_iteration(loop):
    out = []
    loop.call_soon(out.append, 1)
    loop.stop()
    loop.run_forever()
    assert out == [1]
    assert not loop.is_running()


def test_handle_cancel_before_run(loop):
    out = []
    h = loop.call_soon(out.append, 1)
    assert not h.cancelled()
    h.cancel()
    assert h.cancelled()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == []


def test_handle_cancel_after_run(loop):
    out = []
    h = loop.call_soon(out.append, 1)
    loop.call_soon(loop.stop)
    loop.run_forever()
    h.cancel()
    assert h.cancelled()
    assert out == [1]


def test_handle_repr_names_callback(loop):
    def my_callback():
        pass

    h = loop.call_soon(my_callback)
    assert "my_callback" in repr(h)
    th = loop.call_later(10, my_callback)
    assert "my_callback" in repr(th) and "when=" in repr(th)
    h.cancel()
    th.cancel()
    assert "cancelled" in repr(th)


def test_call_later_order_and_when(loop):
    out = []
    t0 = loop.time()
    h = loop.call_later(0.03, out.append, "c")
    loop.call_later(0.01, out.append, "a")
    loop.call_later(0.02, out.append, "b")
    loop.call_later(0.04, loop.stop)
    assert t0 + 0.03 <= h.when() <= loop.time() + 0.03
    loop.run_forever()
    assert out == ["a", "b", "c"]
    assert loop.time() - t0 >= 0.04


def test_timer_never_fires_early(loop):
    results = []
    for delay in (0.001, 0.005, 0.0123, 0.02):
        box = {}
        box["h"] = loop.call_later(
            delay, lambda box=box: results.append((box["h"].when(), loop.time()))
        )
    loop.call_later(0.03, loop.stop)
    loop.run_forever()
    assert len(results) == 4
    for when, fired_at in results:
        assert fired_at >= when


def test_equal_deadlines_all_fire(loop):
    # asyncio's heapq does not keep scheduling order for equal deadlines; only the set is
    # part of the contract.
    out = []
    when = loop.time() + 0.01
    for i in range(20):
        loop.call_at(when, out.append, i)
    loop.call_at(when + 0.01, loop.stop)
    loop.run_forever()
    assert sorted(out) == list(range(20))


def test_call_at_uses_loop_time(loop):
    out = []
    now = loop.time()
    assert abs(now - time.monotonic()) < 0.01
    loop.call_at(now + 0.02, lambda: out.append(loop.time()))
    loop.call_at(now + 0.03, loop.stop)
    loop.run_forever()
    assert out and out[0] >= now + 0.02


def test_call_later_zero_and_negative_delay(loop):
    out = []
    loop.call_later(-1, out.append, "neg")
    loop.call_later(0, out.append, "zero")
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert out == ["neg", "zero"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 asyncio does not type-check the delay")
def test_call_later_none_delay_is_type_error(loop):
    with pytest.raises(TypeError):
        loop.call_later(None, print)
    with pytest.raises(TypeError):
        loop.call_at(None, print)


def test_cancelled_timers_do_not_fire_and_do_not_hold_loop(loop):
    out = []
    handles = [loop.call_later(0.01 + i * 1e-5, out.append, i) for i in range(1000)]
    for h in handles[1:]:
        h.cancel()
    loop.call_later(0.05, loop.stop)
    t0 = time.monotonic()
    loop.run_forever()
    assert out == [0]
    assert time.monotonic() - t0 < 1.0


def test_cancel_timer_from_earlier_callback(loop):
    out = []
    late = loop.call_later(0.02, out.append, "late")
    loop.call_later(0.01, late.cancel)
    loop.call_later(0.03, loop.stop)
    loop.run_forever()
    assert out == []
    assert late.cancelled()


def test_context_copied_when_not_given(loop):
    seen = []
    var.set("outer")

    def cb():
        seen.append(var.get())
        var.set("inner")

    loop.call_soon(cb)
    loop.call_soon(lambda: seen.append(var.get()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["outer", "outer"]
    assert var.get() == "outer"


def test_context_argument_is_used(loop):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in-ctx")
    seen = []

    def cb():
        seen.append(var.get())
        var.set("changed")

    loop.call_soon(cb, context=ctx)
    loop.call_later(0.001, lambda: seen.append(var.get()), context=ctx)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert seen == ["in-ctx", "changed"]
    assert ctx[var] == "changed"


def test_unknown_keyword_rejected(loop):
    with pytest.raises(TypeError):
        loop.call_soon(print, bogus=1)


def test_call_soon_threadsafe_wakes_waiting_loop(loop):
    # Nothing is scheduled: the loop blocks in poll until the thread wakes it.
    out = []

    def worker():
        time.sleep(0.05)
        loop.call_soon_threadsafe(out.append, "from-thread")
        loop.call_soon_threadsafe(loop.stop)

    guard = loop.call_later(5, loop.stop)
    t = threading.Thread(target=worker)
    t0 = time.monotonic()
    t.start()
    loop.run_forever()
    t.join()
    guard.cancel()
    assert out == ["from-thread"]
    assert time.monotonic() - t0 < 2


def test_gil_released_while_waiting(loop):
    # The worker needs the GIL after each sleep; if the loop held it while polling, the
    # worker could not progress until the 3 s guard timer fired.
    progress = []

    def worker():
        for i in range(10):
            time.sleep(0.005)
            progress.append(i)
        loop.call_soon_threadsafe(loop.stop)

    guard = loop.call_later(3, loop.stop)
    t = threading.Thread(target=worker)
    t0 = time.monotonic()
    t.start()
    loop.run_forever()
    elapsed = time.monotonic() - t0
    t.join()
    guard.cancel()
    assert progress == list(range(10))
    assert elapsed < 1.5


def test_call_soon_threadsafe_many_threads(loop):
    counter = []
    n_threads, per_thread = 4, 250

    def worker():
        for _ in range(per_thread):
            loop.call_soon_threadsafe(counter.append, 1)

    def check():
        if len(counter) == n_threads * per_thread:
            loop.stop()
        else:
            loop.call_later(0.001, check)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    guard = loop.call_later(5, loop.stop)
    loop.call_soon(check)
    for t in threads:
        t.start()
    loop.run_forever()
    for t in threads:
        t.join()
    guard.cancel()
    assert len(counter) == n_threads * per_thread


def test_time_is_monotonic_and_fine_grained(loop):
    a = loop.time()
    b = loop.time()
    assert b >= a
    samples = {loop.time() for _ in range(100)}
    # A millisecond clock would give one or two distinct values.
    assert len(samples) > 10


def test_closed_loop_refuses_scheduling(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon(print)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_later(1, print)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_at(1, print)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon_threadsafe(print)


def test_closed_attribute_follows_close(loop):
    """asyncio's BaseEventLoop and uvloop's Loop both expose _closed; uvloop's own tests
    and some libraries read it instead of calling is_closed()."""
    assert loop._closed is False
    loop.close()
    assert loop._closed is True


def test_callback_can_cancel_itself(loop):
    out = []
    holder = {}

    def cb():
        holder["h"].cancel()
        out.append("ran")

    holder["h"] = loop.call_soon(cb)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["ran"]


def test_sleep_zero_ping_pong(loop):
    async def worker(n):
        for _ in range(n):
            await asyncio.sleep(0)
        return n

    async def main():
        return await asyncio.gather(worker(1000), worker(500))

    assert loop.run_until_complete(main()) == [1000, 500]


def test_handle_cycles_are_collected(loop):
    import gc
    import weakref

    class Owner:
        def method(self):
            pass

    owner = Owner()
    owner.handle = loop.call_soon(owner.method)
    owner.timer = loop.call_later(0.001, owner.method)
    ref = weakref.ref(owner)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    del owner
    gc.collect()
    assert ref() is None


def test_pending_handle_keeps_callback_alive(loop):
    import gc
    import weakref

    class Owner:
        def method(self):
            self.ran = True

    owner = Owner()
    owner.handle = loop.call_soon(owner.method)
    ref = weakref.ref(owner)
    del owner
    gc.collect()
    assert ref() is not None
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert ref().ran


def test_timers_fire_when_due_before_polling(loop):
    # Regression: a timer that became due between arming libuv's timer and polling fired
    # in libuv's pre-poll timer phase (UV_RUN_ONCE), after which the poll blocked forever.
    # PyLoop's test hook sleeps in exactly that window to make the race deterministic.
    import random

    watchdog = threading.Timer(10, lambda: loop.call_soon_threadsafe(loop.stop))
    watchdog.start()
    rnd = random.Random(7)

    async def sleeper():
        for _ in range(10):
            await asyncio.sleep(rnd.uniform(0.0005, 0.002))

    async def main():
        await asyncio.gather(*(sleeper() for _ in range(20)))
        return "done"

    if is_pyloop(loop):
        loop._set_test_poll_delay(3000)
    try:
        assert loop.run_until_complete(main()) == "done"
    finally:
        watchdog.cancel()


def test_debug_mode_records_where_handles_were_created(loop):
    """In debug mode a handle remembers the stack that scheduled it: its repr says
    "created at file:line", and an exception in its callback carries source_traceback."""
    loop.set_debug(True)
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def boom():
        raise ValueError("boom")

    here = sys._getframe().f_lineno + 1
    handle = loop.call_soon(boom)
    timer = loop.call_later(10, boom)
    assert handle._source_traceback[-1].lineno == here
    assert handle._source_traceback[-1].filename == __file__
    assert f"created at {__file__}:{here}>" in repr(handle)
    assert timer._source_traceback[-1].lineno == here + 1
    timer.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    (ctx,) = contexts
    assert isinstance(ctx["exception"], ValueError)
    assert ctx["source_traceback"][-1].lineno == here


def test_no_source_traceback_outside_debug_mode(loop):
    loop.set_debug(False)
    handle = loop.call_soon(lambda: None)
    assert handle._source_traceback is None
    assert "created at" not in repr(handle)
    handle.cancel()


def test_debug_turned_on_by_a_callback_does_not_time_it(loop, caplog):
    """asyncio times a callback only if debug was on when it started: one that turns
    debug on is not reported as slow (PyLoop once reported it as taking the clock's whole
    value in seconds)."""
    loop.set_debug(False)
    loop.slow_callback_duration = 0.05
    loop.call_soon(loop.set_debug, True)
    loop.call_soon(loop.stop)
    with caplog.at_level("WARNING", logger="asyncio"):
        loop.run_forever()
    assert loop.get_debug()
    assert not [r for r in caplog.records if "took" in r.getMessage()]
