"""Running and stopping the loop, errors and the exception handler, debug mode, futures,
tasks, executors and async generators. Each test runs on asyncio's loop and on PyLoop."""

import asyncio
import concurrent.futures
import contextvars
import logging
import sys
import threading
import time

import pytest
from loop_fixtures import *  # noqa: F403  (the loop and loop_factory fixtures)
from loop_fixtures import is_pyloop

var = contextvars.ContextVar("var", default="unset")


# ---- run_forever / run_until_complete / stop / close ----


def test_run_until_complete_coroutine(loop):
    async def main():
        await asyncio.sleep(0.001)
        return 42

    assert loop.run_until_complete(main()) == 42


def test_run_until_complete_future(loop):
    fut = loop.create_future()
    loop.call_later(0.01, fut.set_result, "done")
    assert loop.run_until_complete(fut) == "done"


def test_run_until_complete_raises_task_exception(loop):
    async def main():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        loop.run_until_complete(main())


def test_run_until_complete_stopped_early(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed."):
        loop.run_until_complete(fut)
    fut.cancel()


def test_run_until_complete_rejects_non_awaitable(loop):
    with pytest.raises(TypeError):
        loop.run_until_complete(42)


def test_is_running_and_running_loop(loop):
    seen = {}

    async def main():
        seen["running"] = loop.is_running()
        seen["get_running_loop"] = asyncio.get_running_loop()
        seen["get_event_loop"] = asyncio.get_event_loop()

    assert not loop.is_running()
    loop.run_until_complete(main())
    assert not loop.is_running()
    assert seen == {"running": True, "get_running_loop": loop, "get_event_loop": loop}
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_run_forever_while_running(loop):
    errors = []

    def nested():
        try:
            loop.run_forever()
        except RuntimeError as e:
            errors.append(str(e))
        loop.stop()

    loop.call_soon(nested)
    loop.run_forever()
    assert errors == ["This event loop is already running"]


def test_two_loops_in_one_thread_refused(loop, loop_factory):
    other = loop_factory()
    errors = []

    def nested():
        coro = asyncio.sleep(0)
        try:
            other.run_until_complete(coro)
        except RuntimeError as e:
            coro.close()
            errors.append(str(e))
        loop.stop()

    loop.call_soon(nested)
    loop.run_forever()
    other.close()
    assert errors == ["Cannot run the event loop while another loop is running"]


def test_close_is_idempotent_and_refuses_running(loop):
    errors = []

    def try_close():
        try:
            loop.close()
        except RuntimeError as e:
            errors.append(str(e))
        loop.stop()

    loop.call_soon(try_close)
    loop.run_forever()
    assert errors == ["Cannot close a running event loop"]
    assert not loop.is_closed()
    loop.close()
    assert loop.is_closed()
    loop.close()
    assert loop.is_closed()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_forever()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_until_complete(coro)
    coro.close()


def test_close_drops_pending_callbacks(loop):
    out = []
    loop.call_soon(out.append, 1)
    loop.call_later(0.001, out.append, 2)
    loop.close()
    assert out == []


def test_loop_reusable_after_run(loop):
    for i in range(3):
        assert loop.run_until_complete(asyncio.sleep(0.001, result=i)) == i


# ---- errors ----


def test_callback_exception_goes_to_handler_and_loop_continues(loop):
    contexts = []
    out = []

    def bad():
        raise ZeroDivisionError("bad callback")

    loop.set_exception_handler(lambda lp, ctx: contexts.append((lp, ctx)))
    h = loop.call_soon(bad)
    loop.call_soon(out.append, "after")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["after"]
    assert len(contexts) == 1
    lp, ctx = contexts[0]
    assert lp is loop
    assert ctx["message"].startswith("Exception in callback")
    assert "bad" in ctx["message"]
    assert isinstance(ctx["exception"], ZeroDivisionError)
    assert ctx["handle"] is h


def test_timer_callback_exception_goes_to_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    loop.call_later(0.001, lambda: 1 / 0)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)


def test_default_exception_handler_logs(loop, caplog):
    def bad():
        raise KeyError("logged")

    loop.call_soon(bad)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.run_forever()
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    assert records[0].getMessage().startswith("Exception in callback")
    assert records[0].exc_info[0] is KeyError


def test_exception_handler_get_set(loop):
    assert loop.get_exception_handler() is None

    def handler(lp, ctx):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None
    with pytest.raises(TypeError):
        loop.set_exception_handler(42)


def test_failing_exception_handler_falls_back_to_default(loop, caplog):
    def handler(lp, ctx):
        raise RuntimeError("handler broke")

    loop.set_exception_handler(handler)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "original"})
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any("Unhandled error in exception handler" in m for m in msgs)


def test_call_exception_handler_direct(loop, caplog):
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "custom message", "extra": 1})
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any(m.startswith("custom message") and "extra: 1" in m for m in msgs)


def test_keyboard_interrupt_in_callback_propagates(loop):
    out = []

    def interrupt():
        raise KeyboardInterrupt

    loop.call_soon(interrupt)
    loop.call_soon(out.append, "later")
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert not loop.is_running()
    # The remaining callback is still queued and runs on the next run.
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert out == ["later"]


def test_system_exit_in_task_propagates(loop):
    async def main():
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        loop.run_until_complete(main())


def test_unretrieved_task_exception_reported(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def fail():
        raise ValueError("never retrieved")

    async def main():
        t = loop.create_task(fail())
        await asyncio.sleep(0.01)
        del t

    loop.run_until_complete(main())
    import gc

    gc.collect()
    assert any(isinstance(c.get("exception"), ValueError) for c in contexts)


# ---- debug ----


def test_debug_flag(loop):
    assert loop.get_debug() in (False, True)
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


def test_slow_callback_logged_in_debug(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    loop.call_soon(time.sleep, 0.03)
    loop.call_soon(loop.stop)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_forever()
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any(m.startswith("Executing") and "took" in m for m in msgs)


# ---- futures and tasks ----


def test_create_future(loop):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    loop.call_soon(fut.set_result, 7)
    assert loop.run_until_complete(fut) == 7


@pytest.mark.skipif(sys.version_info < (3, 11), reason="create_task(context=) is 3.11+")
def test_create_task_name_and_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "task-ctx")

    async def body():
        return var.get()

    async def main():
        t1 = loop.create_task(body(), name="named")
        t2 = loop.create_task(body(), context=ctx)
        assert t1.get_name() == "named"
        return await t1, await t2

    assert loop.run_until_complete(main()) == ("unset", "task-ctx")


def test_task_factory(loop):
    created = []

    def factory(lp, coro, **kwargs):
        t = asyncio.Task(coro, loop=lp, **kwargs)
        created.append(t)
        return t

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    async def main():
        return await loop.create_task(asyncio.sleep(0, result="x"))

    assert loop.run_until_complete(main()) == "x"
    assert len(created) == 2  # run_until_complete's task and the inner one
    loop.set_task_factory(None)
    with pytest.raises(TypeError):
        loop.set_task_factory(1)


def test_task_cancellation(loop):
    async def forever():
        await asyncio.sleep(3600)

    async def main():
        t = loop.create_task(forever())
        await asyncio.sleep(0.001)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        return t.cancelled()

    assert loop.run_until_complete(main()) is True


# ---- executors ----


def test_run_in_executor_result(loop):
    async def main():
        return await loop.run_in_executor(None, lambda a, b: a * b, 6, 7)

    assert loop.run_until_complete(main()) == 42


def test_default_executor_threads_are_named_after_the_loop(loop):
    """uvloop's test_thread_name_prefix_in_default_executor: the default executor's threads
    carry the implementation's name (asyncio_N on asyncio's loop, pyloop_N on PyLoop)."""

    async def main():
        return await loop.run_in_executor(None, lambda: threading.current_thread().name)

    name = loop.run_until_complete(main())
    prefix = "pyloop_" if is_pyloop(loop) else "asyncio_"
    assert name.startswith(prefix) and name[len(prefix) :].isdigit()


def test_run_in_executor_runs_in_parallel(loop):
    def blocking():
        time.sleep(0.2)
        return threading.get_ident()

    async def main():
        return await asyncio.gather(*(loop.run_in_executor(None, blocking) for _ in range(3)))

    t0 = time.monotonic()
    idents = loop.run_until_complete(main())
    elapsed = time.monotonic() - t0
    assert len(set(idents)) == 3
    assert threading.get_ident() not in idents
    assert elapsed < 0.45


def test_run_in_executor_exception(loop):
    def fail():
        raise OSError("from thread")

    async def main():
        await loop.run_in_executor(None, fail)

    with pytest.raises(OSError, match="from thread"):
        loop.run_until_complete(main())


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="3.10 asyncio accepts other executors with a warning"
)
def test_set_default_executor(loop):
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="custom")
    loop.set_default_executor(executor)

    async def main():
        return await loop.run_in_executor(None, lambda: threading.current_thread().name)

    try:
        assert loop.run_until_complete(main()).startswith("custom")
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(TypeError):
        loop.set_default_executor(object())


def test_explicit_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:

        async def main():
            return await loop.run_in_executor(ex, sum, [1, 2, 3])

        assert loop.run_until_complete(main()) == 6


def test_shutdown_default_executor(loop):
    async def main():
        await loop.run_in_executor(None, time.sleep, 0.01)
        await loop.shutdown_default_executor()
        with pytest.raises(RuntimeError):
            loop.run_in_executor(None, time.sleep, 0)

    loop.run_until_complete(main())


# ---- async generators ----


def test_shutdown_asyncgens_finalizes_generators(loop):
    finalized = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            finalized.append(True)

    holder = []

    async def main():
        g = agen()
        holder.append(g)
        assert await g.__anext__() == 1

    loop.run_until_complete(main())
    assert finalized == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert finalized == [True]


def test_asyncgen_finalized_when_collected(loop):
    finalized = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            finalized.append(True)

    async def main():
        g = agen()
        await g.__anext__()
        del g
        for _ in range(5):
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert finalized == [True]


def test_asyncgen_hooks_restored_after_run(loop):
    import sys

    before = sys.get_asyncgen_hooks()
    loop.run_until_complete(asyncio.sleep(0))
    assert sys.get_asyncgen_hooks() == before


def test_debug_refuses_call_soon_from_other_thread(loop):
    loop.set_debug(True)
    errors = []

    def worker():
        try:
            loop.call_soon(print)
        except RuntimeError as e:
            errors.append(str(e))
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(lambda: threading.Thread(target=worker).start())
    loop.run_forever()
    assert errors and "Non-thread-safe operation" in errors[0]


def test_debug_rejects_non_callable(loop):
    loop.set_debug(True)
    with pytest.raises(TypeError):
        loop.call_soon(42)
    with pytest.raises(TypeError):
        loop.call_later(1, "not callable")
