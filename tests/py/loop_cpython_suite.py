"""Runs CPython's own asyncio tests (the test.test_asyncio package shipped with the
interpreter) with PyLoop as the event loop.

    .venv/bin/python tests/py/loop_cpython_suite.py [--loop pyloop|asyncio|uvloop]
        [--timeout SECONDS] [--outcomes FILE module] [module ...]

Loop-agnostic modules get PyLoop through the event loop policy (asyncio.new_event_loop()
returns a PyLoop, even after a test resets the policy). For the modules whose test mixins
take a loop factory (events, sock_lowlevel, subprocess), a PyLoop variant of each test class
is generated; for those whose concrete test class names a selector loop (server, sendfile,
sslproto, unix_events), that class is subclassed to make a PyLoop. Of the modules that
otherwise test a loop's internals (events, base_events, unix_events), the classes that get
their loop from the policy run too. Prints a summary per module; exit status 1 if anything
failed. `--loop asyncio` or `--loop uvloop` runs the same selection on that loop instead,
for comparison; scripts/loop_suite_compare.py runs it on the three loops, module by module
with `--outcomes` (each test's outcome written to FILE as it happens, and a rerun resumes
after the tests already there), and prints docs/loop-suite.md's table.

Every test runs under a watchdog (`--timeout`, 60 s by default): a test still running then
gets a TestTimeout raised in the main thread (again every 5 s, so that a cleanup waiting on
a stuck thread is interrupted too), is reported as TIMEOUT by name and fails the run; one
that still does not return is ended by faulthandler, which prints every thread's stack
(the test's frame names it) and exits with status 1.

Last full run (Python 3.11.7), tests run per module: see docs/loop-suite.md. All pass but
the known failures in KNOWN below, all tests of asyncio internals rather than behaviour. A
known failure is reported and does not fail the run; anything else does (`make test` runs
this script).
"""

from __future__ import annotations

import asyncio
import faulthandler
import importlib
import importlib.util
import os
import signal
import sys
import threading
import time
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
if len(sys.argv) > 1 and sys.argv[1] == "--stage":
    sys.path.insert(0, sys.argv.pop(2))
    sys.argv.pop(1)

from data_bridge import pyloop  # noqa: E402

POLICY_MODULES = [
    "test_locks",
    "test_queues",
    "test_streams",
    "test_taskgroups",
    "test_timeouts",
    "test_runners",
    "test_pep492",
    "test_tasks",
    "test_futures",
    "test_futures2",
    "test_context",
    "test_waitfor",
    "test_buffered_proto",
    "test_protocols",
    "test_transports",
    "test_threads",
    "test_ssl",
]

# module -> (mixins combined with test_utils.TestCase and a create_event_loop() for PyLoop,
# the module's other classes that get their loop from the policy)
MIXIN_MODULES: dict[str, tuple[list[str], list[str]]] = {
    "test_events": (
        ["EventLoopTestsMixin", "SubprocessTestsMixin"],
        [
            "HandleTests",
            "TimerTests",
            "AbstractEventLoopTests",
            "PolicyTests",
            "TestPyGetEventLoop",
            "TestCGetEventLoop",
            "TestServer",
            "TestAbstractServer",
        ],
    ),
    "test_sock_lowlevel": (["BaseSockTestsMixin"], []),
    "test_subprocess": (["SubprocessMixin"], []),
}
# Mixins that do not make their loop in setUp themselves.
MIXINS_WITHOUT_SETUP = {"SubprocessMixin", "SubprocessTestsMixin"}
# module -> its classes that get their loop from the policy (the rest of the module tests
# BaseEventLoop's internals).
POLICY_CLASSES = {
    "test_base_events": ["RunningLoopTests"],
}
# module -> (concrete selector test class, its loop factory method, the module's other
# classes that get their loop from the policy): the first is subclassed for PyLoop.
SUBCLASS_MODULES = {
    "test_server": ("SelectorStartServerTests", "new_loop", []),
    "test_sendfile": ("SelectEventLoopTests", "create_event_loop", []),
    "test_sslproto": ("SelectorStartTLSTests", "new_loop", ["SslProtoHandshakeTests"]),
    # The rest of test_unix_events tests the selector loop's signal and pipe internals.
    "test_unix_events": ("SelectorEventLoopUnixSocketTests", "setUp", ["TestFunctional"]),
}


# Tests that fail on PyLoop by design, with the reason. Matched by the end of the test id.
KNOWN = {
    "test_create_server_multiple_hosts_ipv4": "patches asyncio.base_events.socket; PyLoop "
    "binds real sockets",
    "test_create_server_multiple_hosts_ipv6": "patches asyncio.base_events.socket; PyLoop "
    "binds real sockets",
    "test_timeout_rounding": "calls the selector loop's private _run_once",
    "test_create_unix_server_bind_error": "patches asyncio.unix_events.socket; PyLoop binds "
    "real sockets",
}

CREATED = [0]
DEFAULT_TIMEOUT = 60.0
# After the first TestTimeout, how often it is raised again while the test has not returned,
# and how long after its deadline faulthandler ends the process.
REPEAT_SECONDS = 5.0
HARD_GRACE_SECONDS = 30.0
# The watchdog's signal: one that no asyncio test uses (SIGALRM is theirs).
WATCHDOG_SIGNAL = signal.SIGVTALRM
ALL_MODULES = POLICY_MODULES + list(MIXIN_MODULES) + list(SUBCLASS_MODULES) + list(POLICY_CLASSES)

_ORIGINAL_POLICY = asyncio.DefaultEventLoopPolicy


def policy_base(loop_name: str) -> type[asyncio.AbstractEventLoopPolicy]:
    if loop_name == "pyloop":
        return pyloop.EventLoopPolicy
    if loop_name == "asyncio":
        return _ORIGINAL_POLICY
    if loop_name == "uvloop":
        import uvloop

        return uvloop.EventLoopPolicy
    raise SystemExit(f"unknown loop {loop_name!r}: pyloop, asyncio or uvloop")


def install_policy(loop_name: str = "pyloop") -> None:
    base = policy_base(loop_name)

    class CountingPolicy(base):  # type: ignore[valid-type,misc]
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            CREATED[0] += 1
            loop = super().new_event_loop()
            if not hasattr(loop, "_default_executor"):
                # uvloop keeps its executor in a C field, but the tests' close_loop() helper
                # reads BaseEventLoop._default_executor and would fail nearly every test
                # at teardown; None makes it just call loop.close(), which shuts the
                # executor down in uvloop too.
                loop._default_executor = None  # type: ignore[attr-defined]
            return loop

    # tearDownModule() in the CPython tests calls set_event_loop_policy(None), which makes
    # asyncio instantiate asyncio.DefaultEventLoopPolicy again: point that at ours.
    asyncio.DefaultEventLoopPolicy = CountingPolicy  # type: ignore[misc]
    asyncio.set_event_loop_policy(CountingPolicy())


class TestTimeout(BaseException):
    """Raised in the main thread when a test overruns. Not an Exception, so that the test's
    own `except Exception` (or a loop callback's error handler) does not swallow it."""


class Watchdog:
    """Interrupts the running test once it has run `seconds`. A thread waits for the
    deadline and sends WATCHDOG_SIGNAL to the main thread: a real signal, so that a loop
    blocked in epoll_wait (asyncio: EINTR; PyLoop: the signal wakeup fd) or a thread join
    returns to Python, whose handler then raises TestTimeout."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.current: str | None = None
        self.fired = False
        self._deadline = 0.0
        self._cond = threading.Condition()
        self._main = threading.main_thread().ident
        threading.Thread(target=self._watch, name="suite-watchdog", daemon=True).start()

    def start(self, test_id: str) -> None:
        # A test may have replaced or reset the handler (add/remove_signal_handler).
        signal.signal(WATCHDOG_SIGNAL, self._on_signal)
        with self._cond:
            self.current = test_id
            self.fired = False
            self._deadline = time.monotonic() + self.seconds
            self._cond.notify()
        faulthandler.dump_traceback_later(self.seconds + HARD_GRACE_SECONDS, exit=True)

    def stop(self) -> None:
        faulthandler.cancel_dump_traceback_later()
        with self._cond:
            self.current = None
            self._cond.notify()

    def _watch(self) -> None:
        with self._cond:
            while True:
                if self.current is None:
                    self._cond.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self.fired = True
                self._deadline = time.monotonic() + REPEAT_SECONDS
                assert self._main is not None
                signal.pthread_kill(self._main, WATCHDOG_SIGNAL)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.current is not None and self.fired:
            raise TestTimeout(f"{self.current} still running after {self.seconds:g} s")


class TimedResult(unittest.TextTestResult):
    watchdog: Watchdog
    # The slowest test of the whole run (seconds, id), to judge the timeout against.
    slowest: tuple[float, str] = (0.0, "")
    # With --outcomes: each test's start and outcome, written as they happen.
    outcomes: TextIO | None = None
    _started = 0.0
    _counts = (0, 0)

    def _count_not_passed(self) -> tuple[int, int]:
        return len(self.failures) + len(self.errors), len(self.skipped)

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._started = time.monotonic()
        self._counts = self._count_not_passed()
        record(self.outcomes, "start", test.id())
        self.watchdog.start(test.id())

    def stopTest(self, test: unittest.TestCase) -> None:
        self.watchdog.stop()
        elapsed = time.monotonic() - self._started
        if elapsed > TimedResult.slowest[0]:
            TimedResult.slowest = (elapsed, test.id())
        failed, skipped = self._count_not_passed()
        outcome = "fail" if failed > self._counts[0] else "pass"
        if outcome == "pass" and skipped > self._counts[1]:
            outcome = "skip"
        record(self.outcomes, outcome, test.id())
        super().stopTest(test)


def record(outcomes: TextIO | None, what: str, detail: str) -> None:
    if outcomes is not None:
        outcomes.write(f"{what}\t{detail}\n")
        outcomes.flush()


def resume(path: Path, suite: unittest.TestSuite) -> tuple[unittest.TestSuite, TextIO]:
    """With --outcomes: the tests of `suite` that the file records no outcome for. A test
    that started and has none was running when faulthandler ended the process: it is
    recorded as hung, and the run resumes after it."""
    started: list[str] = []
    done: set[str] = set()
    if path.exists():
        for line in path.read_text().splitlines():
            what, _, test_id = line.partition("\t")
            if what == "start":
                started.append(test_id)
            elif what != "total":
                done.add(test_id)
    out = path.open("a")
    if not path.stat().st_size:
        record(out, "total", str(suite.countTestCases()))
    for test_id in started:
        if test_id not in done:
            record(out, "hung", test_id)
            done.add(test_id)
    rest = unittest.TestSuite(t for t in iter_tests(suite) if t.id() not in done)
    return rest, out


def iter_tests(suite: unittest.TestSuite) -> Iterator[unittest.TestCase]:
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from iter_tests(item)
        else:
            yield item  # type: ignore[misc]


def mixin_suite(modname: str, mixins: list[str], policy_classes: list[str]) -> unittest.TestSuite:
    mod = importlib.import_module(f"test.test_asyncio.{modname}")
    from test.test_asyncio import utils as test_utils

    suite = unittest.TestSuite()
    for name in mixins:
        mixin = getattr(mod, name)
        cls = type(
            f"PyLoop{name}",
            (mixin, test_utils.TestCase),
            {"create_event_loop": lambda self: asyncio.new_event_loop()},
        )
        if name in MIXINS_WITHOUT_SETUP:
            # CPython's concrete classes make the loop (and, for asyncio's own loop on
            # 3.11, attach a child watcher to it; the default ThreadedChildWatcher needs
            # no attaching, PyLoop and uvloop no watcher at all).
            cls.setUp = lambda self: (  # type: ignore[method-assign]
                test_utils.TestCase.setUp(self),
                setattr(self, "loop", asyncio.new_event_loop()),
                self.set_event_loop(self.loop),
            )[-1]
        suite.addTests(unittest.defaultTestLoader.loadTestsFromTestCase(cls))
    suite.addTests(policy_class_suite(mod, policy_classes))
    return suite


def policy_class_suite(mod: Any, names: list[str]) -> unittest.TestSuite:
    suite = unittest.TestSuite()
    for name in names:
        # TestCGetEventLoop exists only when the C _asyncio module does.
        if hasattr(mod, name):
            suite.addTests(unittest.defaultTestLoader.loadTestsFromTestCase(getattr(mod, name)))
    return suite


def subclass_suite(
    modname: str, clsname: str, method: str, policy_classes: list[str]
) -> unittest.TestSuite:
    mod = importlib.import_module(f"test.test_asyncio.{modname}")
    base = getattr(mod, clsname)
    if method == "setUp":
        from test.test_asyncio import utils as test_utils

        # A test_utils.TestCase that makes its selector loop in setUp itself, with no
        # factory method: its setUp is replaced by one making the loop under test.
        def setup(self: Any) -> None:
            test_utils.TestCase.setUp(self)
            self.loop = asyncio.new_event_loop()
            self.set_event_loop(self.loop)

        attrs: dict[str, Any] = {"setUp": setup}
    else:
        attrs = {method: lambda self: asyncio.new_event_loop()}
    cls = type(f"PyLoop{clsname}", (base,), attrs)
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(cls)
    suite.addTests(policy_class_suite(mod, policy_classes))
    return suite


def parse_args(argv: list[str]) -> tuple[str, float, Path | None, list[str]]:
    loop_name, timeout, outcomes, modules = "pyloop", DEFAULT_TIMEOUT, None, []
    args = iter(argv)
    for arg in args:
        if arg == "--loop":
            loop_name = next(args, "")
        elif arg == "--outcomes":
            outcomes = Path(next(args, ""))
        elif arg == "--timeout":
            timeout = float(next(args, "0") or 0)
            if timeout <= 0:
                raise SystemExit("--timeout needs a positive number of seconds")
        else:
            modules.append(arg)
    if outcomes is not None and len(modules) != 1:
        raise SystemExit("--outcomes takes one module")
    return loop_name, timeout, outcomes, modules


def main() -> int:
    loop_name, timeout, outcomes, wanted = parse_args(sys.argv[1:])
    install_policy(loop_name)
    TimedResult.watchdog = Watchdog(timeout)
    wanted = wanted or ALL_MODULES
    total = passed = unexpected = known = skipped = 0
    for modname in wanted:
        CREATED[0] = 0
        if importlib.util.find_spec(f"test.test_asyncio.{modname}") is None:
            # test_ssl first shipped with 3.11.
            print(f"{modname}: not in this Python's test.test_asyncio, skipped", flush=True)
            continue
        if modname in MIXIN_MODULES:
            suite = mixin_suite(modname, *MIXIN_MODULES[modname])
        elif modname in POLICY_CLASSES:
            mod = importlib.import_module(f"test.test_asyncio.{modname}")
            suite = policy_class_suite(mod, POLICY_CLASSES[modname])
        elif modname in SUBCLASS_MODULES:
            suite = subclass_suite(modname, *SUBCLASS_MODULES[modname])
        else:
            suite = unittest.defaultTestLoader.loadTestsFromName(f"test.test_asyncio.{modname}")
        if outcomes is not None:
            suite, TimedResult.outcomes = resume(outcomes, suite)
        with open(os.devnull, "w") as devnull:
            runner = unittest.TextTestRunner(verbosity=0, stream=devnull, resultclass=TimedResult)
            result = runner.run(suite)
        install_policy(loop_name)
        bad = [(t, "FAIL", tb) for t, tb in result.failures] + [
            (t, "ERROR", tb) for t, tb in result.errors
        ]
        # Counted per test: one test can fail and then error in its cleanup as well.
        mod_unexpected: set[str] = set()
        mod_known: set[str] = set()
        for test, kind, tb in bad:
            name = test.id().rsplit(".", 1)[-1]
            if "TestTimeout" in tb:
                # A hang is never a known failure: it would stall the run if the watchdog
                # did not end it.
                mod_unexpected.add(test.id())
                print(f"  TIMEOUT: {test.id()} (over {timeout:g} s)\n{tb}")
            elif name in KNOWN:
                mod_known.add(test.id())
                print(f"  known {kind}: {test.id()} ({KNOWN[name]})")
            else:
                mod_unexpected.add(test.id())
                print(f"  {kind}: {test.id()}\n{tb}")
        mod_known -= mod_unexpected
        mod_skipped = len(result.skipped)
        # A skipped test can still error in its cleanup: counted once, as not passed.
        not_passed = mod_unexpected | mod_known | {t.id() for t, _ in result.skipped}
        mod_passed = result.testsRun - len(not_passed)
        total += result.testsRun
        passed += mod_passed
        unexpected += len(mod_unexpected)
        known += len(mod_known)
        skipped += mod_skipped
        print(
            f"{modname}: ran {result.testsRun}, passed {mod_passed}, known failures "
            f"{len(mod_known)}, unexpected failures {len(mod_unexpected)}, skipped "
            f"{mod_skipped}, loops created {CREATED[0]}",
            flush=True,
        )
    print(
        f"CPython asyncio suite on {loop_name}: {total} run, {passed} passed, "
        f"{known} known failures, {unexpected} unexpected failures, {skipped} skipped"
    )
    print(f"slowest test: {TimedResult.slowest[1]} ({TimedResult.slowest[0]:.1f} s)")
    return 1 if unexpected else 0


def exit_now(code: int) -> None:
    """Exits without joining threads: a failed test can leave a non-daemon thread blocked
    for good (a peer waiting on a socket the loop never wrote to), and the interpreter's
    exit would wait for it, stalling the run after its last test."""
    stray = [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if stray:
        print(f"threads left running by the tests: {', '.join(stray)}")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
