"""Real-world asyncio on the loop: sleep, gather, wait_for, Event, Queue, locks, TaskGroup,
timeouts, and running through pyloop.run / asyncio.Runner / the policy. Each test runs on
asyncio's loop and on PyLoop."""

import asyncio
import builtins
import sys
import time

import pytest
from loop_fixtures import *  # noqa: F403  (the loop and loop_factory fixtures)
from loop_fixtures import is_pyloop

from data_bridge import pyloop


def test_sleep_duration(loop):
    async def main():
        t0 = loop.time()
        await asyncio.sleep(0.05)
        return loop.time() - t0

    assert 0.05 <= loop.run_until_complete(main()) < 0.5


def test_gather_and_wait_for(loop):
    async def value(v, delay):
        await asyncio.sleep(delay)
        return v

    async def main():
        got = await asyncio.gather(value(1, 0.02), value(2, 0.01), value(3, 0))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 0.02)
        fast = await asyncio.wait_for(value("fast", 0.001), 1)
        return got, fast

    assert loop.run_until_complete(main()) == ([1, 2, 3], "fast")


def test_wait_first_completed(loop):
    async def main():
        slow = asyncio.ensure_future(asyncio.sleep(1))
        fast = asyncio.ensure_future(asyncio.sleep(0.01, "f"))
        done, pending = await asyncio.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)
        slow.cancel()
        return [d.result() for d in done], len(pending)

    assert loop.run_until_complete(main()) == (["f"], 1)


def test_event_queue_lock(loop):
    async def main():
        event = asyncio.Event()
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=2)
        lock = asyncio.Lock()
        log = []

        async def producer():
            for i in range(5):
                await queue.put(i)
            await queue.put(-1)

        async def consumer():
            while (item := await queue.get()) != -1:
                async with lock:
                    log.append(item)
            event.set()

        await asyncio.gather(producer(), consumer(), event.wait())
        return log

    assert loop.run_until_complete(main()) == [0, 1, 2, 3, 4]


def test_semaphore_and_condition(loop):
    async def main():
        sem = asyncio.Semaphore(2)
        active = []
        peak = []

        async def worker():
            async with sem:
                active.append(1)
                peak.append(len(active))
                await asyncio.sleep(0.005)
                active.pop()

        await asyncio.gather(*(worker() for _ in range(6)))
        cond = asyncio.Condition()
        woke = []

        async def waiter():
            async with cond:
                await cond.wait()
                woke.append(1)

        tasks = [asyncio.ensure_future(waiter()) for _ in range(3)]
        await asyncio.sleep(0.001)
        async with cond:
            cond.notify_all()
        await asyncio.gather(*tasks)
        return max(peak), len(woke)

    assert loop.run_until_complete(main()) == (2, 3)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="TaskGroup and timeout need 3.11")
def test_taskgroup_and_timeout(loop):
    async def main():
        results = []

        async def child(i):
            await asyncio.sleep(0.001 * i)
            results.append(i)

        async with asyncio.TaskGroup() as tg:
            for i in range(5):
                tg.create_task(child(i))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await asyncio.sleep(1)
        return sorted(results)

    assert loop.run_until_complete(main()) == [0, 1, 2, 3, 4]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="TaskGroup needs 3.11")
def test_taskgroup_error_cancels_siblings(loop):
    async def main():
        cancelled = []

        async def sleeper():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        async def failer():
            await asyncio.sleep(0.005)
            raise ValueError("tg")

        with pytest.raises(builtins.ExceptionGroup) as info:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(sleeper())
                tg.create_task(failer())
        return cancelled, info.value.exceptions[0]

    cancelled, exc = loop.run_until_complete(main())
    assert cancelled == [True]
    assert isinstance(exc, ValueError)


def test_many_concurrent_sleeps(loop):
    async def main():
        t0 = time.monotonic()
        await asyncio.gather(*(asyncio.sleep(0.01 + (i % 10) * 0.001) for i in range(2000)))
        return time.monotonic() - t0

    assert loop.run_until_complete(main()) < 2


def test_to_thread(loop):
    async def main():
        return await asyncio.to_thread(sum, range(10))

    assert loop.run_until_complete(main()) == 45


def test_run_helper(loop_factory):
    async def main():
        await asyncio.sleep(0.001)
        return type(asyncio.get_running_loop())

    if loop_factory is pyloop.new_event_loop:
        assert pyloop.run(main()) is pyloop.Loop
        assert pyloop.run(main(), debug=True) is pyloop.Loop
    else:
        assert issubclass(asyncio.run(main()), asyncio.AbstractEventLoop)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner needs 3.11")
def test_runner_with_loop_factory(loop_factory):
    async def main():
        return asyncio.get_running_loop()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        lp = runner.run(main())
        assert runner.get_loop() is lp
    assert lp.is_closed()


def test_run_cancels_leftover_tasks():
    cancelled = []

    async def leftover():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        asyncio.ensure_future(leftover())
        await asyncio.sleep(0)

    pyloop.run(main())
    assert cancelled == [True]


def test_install_policy():
    old = asyncio.get_event_loop_policy()
    try:
        pyloop.install()
        lp = asyncio.new_event_loop()
        try:
            assert isinstance(lp, pyloop.Loop)
        finally:
            lp.close()
    finally:
        asyncio.set_event_loop_policy(old)


def test_loop_is_abstract_event_loop(loop):
    assert isinstance(loop, asyncio.AbstractEventLoop)
    if is_pyloop(loop):
        assert isinstance(loop, pyloop.Loop)
