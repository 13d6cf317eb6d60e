"""The supervisor of worker processes (``--workers N``): forks N workers sharing the
listening socket, replaces a worker that exits (a crash, or ``--limit-max-requests``),
backs off when workers die at start in a loop and gives up after a few, drains on SIGTERM
or SIGINT and rolls the workers one by one on SIGHUP.

The supervisor never accepts on the socket; it keeps it open so that a replacement can be
forked at any time (the kernel's accept queue is shared, so connections wait there while a
worker is replaced). Signals are turned into flags by handlers and wake the main loop
through ``signal.set_wakeup_fd``; everything else happens in that loop, one step at a time,
so that no decision is taken inside a signal handler.
"""

from __future__ import annotations

import logging
import mmap
import os
import select
import signal
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger("data_bridge")

# A worker's exit status when the application's startup failed (_serve.STARTUP_FAILURE):
# replacing it would fail the same way, so the supervisor stops (as gunicorn does when a
# worker cannot boot).
STARTUP_FAILURE = 3
# A worker that dies (non-zero status or a signal) sooner than this after it was forked
# counts as a failure at start; so many in a row mean a crash loop.
QUICK_DEATH = 2.0
CRASH_LOOP_LIMIT = 5
# Margin past the graceful timeout after which workers still draining are killed.
KILL_MARGIN = 5.0

# The metrics slot of a worker (csrc/server/server.h: server_metrics_t): requests,
# responses by class (5), abandoned, connections opened, closed, restarts, reserved (6).
METRICS_SLOT_SIZE = 128
_SLOT = struct.Struct("<15Q")


def settle_slot(area: mmap.mmap, slot: int, died: bool) -> None:
    """After the slot's worker exited: what it had in flight and its open connections are
    gone (its gauges, differences of counters, go back to zero), and a death counts as a
    restart. The counters stay, so totals summed over the slots never go down."""
    offset = slot * METRICS_SLOT_SIZE
    v = list(_SLOT.unpack_from(area, offset))
    v[6] = max(v[6], v[0] - sum(v[1:6]))  # abandoned = requests - responses
    v[8] = v[7]  # closed = opened
    if died:
        v[9] += 1
    _SLOT.pack_into(area, offset, *v)


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)


def _exit_with_parent() -> None:
    """Linux: the worker gets SIGTERM when the supervisor dies (prctl PR_SET_PDEATHSIG), so
    that a supervisor killed with SIGKILL leaves no orphans serving on."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


@dataclass
class _Worker:
    pid: int
    started: float
    ready_fd: int
    slot: int = 0
    ready: bool = False
    retiring: bool = False


class Supervisor:
    """``target(ready, slot)`` runs in each worker; it calls ``ready()`` once it listens,
    counts into metrics slot ``slot`` (when there is a ``metrics`` area: at least
    ``slots_needed(workers)`` slots), and returns (or raises SystemExit) when done."""

    def __init__(
        self,
        target: Callable[[Callable[[], None], int], None],
        workers: int,
        graceful_timeout: float | None,
        metrics: mmap.mmap | None = None,
    ) -> None:
        self.target = target
        self.metrics = metrics
        self.count = workers
        self.graceful_timeout = graceful_timeout
        self.workers: dict[int, _Worker] = {}
        self.stopping = False
        self.kill_at: float | None = None
        self.exit_code = 0
        self.quick_deaths = 0
        self.spawn_at = 0.0  # backoff: no spawn before this time
        self.reload_queue: list[int] = []
        self.reload_new: int | None = None
        self._signals: list[int] = []
        self._old_handlers: dict[int, object] = {}
        self._wake_r = self._wake_w = -1

    @staticmethod
    def slots_needed(workers: int) -> int:
        """While the workers roll, old ones drain beside their replacements: twice the
        workers, and one spare."""
        return 2 * workers + 1

    # --- workers ---------------------------------------------------------------------

    def _free_slot(self) -> int:
        used = {w.slot for w in self.workers.values()}
        for slot in range(self.slots_needed(self.count)):
            if slot not in used:
                return slot
        return 0  # cannot happen with slots_needed; sharing a slot is still safe (atomic adds)

    def _spawn(self) -> int:
        slot = self._free_slot()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(r)
            code = 0
            try:
                self._child_signals()

                def ready() -> None:
                    try:
                        os.write(w, b"r")
                        os.close(w)
                    except OSError:
                        pass

                self.target(ready, slot)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                logger.exception("worker failed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        os.close(w)
        self.workers[pid] = _Worker(pid, time.monotonic(), r, slot)
        logger.info("started worker %d", pid)
        return pid

    def _child_signals(self) -> None:
        parent = os.getppid()
        _exit_with_parent()
        if os.getppid() != parent:
            os._exit(1)  # the supervisor died before the request above took effect
        signal.set_wakeup_fd(-1)
        os.close(self._wake_r)
        os.close(self._wake_w)
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        # A terminal's Ctrl-C reaches the whole process group: the worker leaves SIGINT to
        # the supervisor, which asks each worker to drain with SIGTERM.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _describe(self, status: int) -> tuple[int, str]:
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return code, f"killed by {name}"
        return code, f"exited with status {code}"

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            os.close(worker.ready_fd)
            code, how = self._describe(status)
            if self.metrics is not None:
                died = not (self.stopping or worker.retiring) and code != 0
                settle_slot(self.metrics, worker.slot, died)
            if self.stopping or worker.retiring:
                logger.info("worker %d %s", pid, how)
                continue
            self._worker_died(worker, code, how)

    def _worker_died(self, worker: _Worker, code: int, how: str) -> None:
        now = time.monotonic()
        if code == STARTUP_FAILURE:
            logger.error("worker %d %s: the application failed to start; stopping", worker.pid, how)
            self.exit_code = STARTUP_FAILURE
            self._stop()
            return
        if code == 0:
            # A worker leaves by itself after --limit-max-requests: a recycle, not a crash.
            logger.info("worker %d %s; replacing it", worker.pid, how)
            self.quick_deaths = 0
        else:
            if now - worker.started < QUICK_DEATH:
                self.quick_deaths += 1
            else:
                self.quick_deaths = 0
            logger.error("worker %d %s; replacing it", worker.pid, how)
            if self.quick_deaths >= CRASH_LOOP_LIMIT:
                logger.error(
                    "%d workers died within %.0f s of starting in a row: crash loop, stopping",
                    self.quick_deaths,
                    QUICK_DEATH,
                )
                self.exit_code = 1
                self._stop()
                return
            if self.quick_deaths:
                # Exponential backoff while they die at start: 0.2 s, 0.4 s, ... 5 s.
                self.spawn_at = now + min(0.1 * 2**self.quick_deaths, 5.0)
        if worker.pid == self.reload_new:
            self.reload_new = None

    def _check_ready(self, readable: list[int]) -> None:
        for worker in self.workers.values():
            if not worker.ready and worker.ready_fd in readable:
                try:
                    worker.ready = os.read(worker.ready_fd, 1) == b"r"
                except OSError:
                    pass

    # --- signals and steps -----------------------------------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGCHLD:
                continue  # reaped in every step
            if signum == signal.SIGHUP:
                if not self.stopping:
                    logger.info("SIGHUP: restarting the workers one by one")
                    self.reload_queue = [p for p, w in self.workers.items() if not w.retiring]
                continue
            if self.stopping:
                logger.warning("second signal: killing the workers")
                self._kill_all(signal.SIGKILL)
                continue
            logger.info("shutting down (signal %d): the workers drain", signum)
            self._stop()

    def _stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.reload_queue = []
        self._kill_all(signal.SIGTERM)
        if self.graceful_timeout is not None:
            self.kill_at = time.monotonic() + self.graceful_timeout + KILL_MARGIN

    def _kill_all(self, sig: int) -> None:
        for pid in list(self.workers):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _step(self) -> None:
        now = time.monotonic()
        if self.stopping:
            if self.kill_at is not None and now >= self.kill_at and self.workers:
                logger.warning("workers still running after the graceful timeout: killed")
                self._kill_all(signal.SIGKILL)
                self.kill_at = None
            return
        live = [w for w in self.workers.values() if not w.retiring]
        if self.reload_queue:
            if self.reload_new is None and now >= self.spawn_at:
                self.reload_new = self._spawn()
            elif self.reload_new is not None and self.workers[self.reload_new].ready:
                # The replacement listens: the old worker drains and leaves.
                old = self.reload_queue.pop(0)
                self.reload_new = None
                if old in self.workers:
                    self.workers[old].retiring = True
                    os.kill(old, signal.SIGTERM)
                if not self.reload_queue:
                    logger.info("all workers restarted")
            return
        while len(live) < self.count and now >= self.spawn_at:
            self._spawn()
            live = [w for w in self.workers.values() if not w.retiring]

    def run(self) -> int:
        """Runs until every worker is gone after a stop; returns the exit status."""
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        old_wakeup = signal.set_wakeup_fd(self._wake_w)
        for signum in _SIGNALS:
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)
        try:
            while True:
                self._handle_signals()
                self._reap()
                self._step()
                if self.stopping and not self.workers:
                    return self.exit_code
                fds = [self._wake_r] + [w.ready_fd for w in self.workers.values() if not w.ready]
                timeout = 0.1 if self.reload_queue or self.spawn_at > time.monotonic() else 1.0
                readable, _, _ = select.select(fds, [], [], timeout)
                if self._wake_r in readable:
                    try:
                        os.read(self._wake_r, 512)
                    except BlockingIOError:
                        pass
                self._check_ready(readable)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in self._old_handlers.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]
            os.close(self._wake_r)
            os.close(self._wake_w)
