"""The supervisor of worker processes (``--workers N``): forks N workers sharing the
listening socket, replaces a worker that exits (a crash, or ``--limit-max-requests``),
backs off when workers die at start in a loop and gives up after a few, drains on SIGTERM
or SIGINT, rolls the workers one by one on SIGHUP (and replaces one whose resident memory
passed --max-worker-rss the same way), and adds or removes a worker on SIGTTIN/SIGTTOU.

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

from data_bridge import _core

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

# The metrics slot of a worker (csrc/server/server.h: server_metrics_t). Its first words:
# requests, responses by class (5), abandoned, connections opened, closed, restarts,
# bytes in, bytes out, latency sum, loop lag; the rest (histogram, routes) is only counted.
METRICS_SLOT_SIZE: int = _core.METRICS_SLOT_SIZE
_SLOT = struct.Struct("<14Q")


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
    v[13] = 0  # its loop is gone: no lag
    _SLOT.pack_into(area, offset, *v)


_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGCHLD,
    signal.SIGTTIN,
    signal.SIGTTOU,
)
# Seconds between two looks at the workers' resident memory (--max-worker-rss).
RSS_INTERVAL = 1.0


def resident_bytes(pid: int) -> int | None:
    """The resident set size of a process (Linux /proc/PID/statm), None when unknown."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


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
    ``slots_needed(workers)`` slots), and returns (or raises SystemExit) when done. It
    starts with SIGTERM blocked and unblocks it once it has a handler for it, so a SIGTERM
    sent while it starts is answered by a drain, never by the default action."""

    def __init__(
        self,
        target: Callable[[Callable[[], None], int], None],
        workers: int,
        graceful_timeout: float | None,
        metrics: mmap.mmap | None = None,
        max_rss: int | None = None,
    ) -> None:
        self.target = target
        self.metrics = metrics
        self.count = workers
        # A worker whose resident memory goes above max_rss bytes is replaced as SIGHUP
        # replaces them: its successor listens first, then it drains.
        self.max_rss = max_rss
        self.rss_at = 0.0
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

    def _slot_count(self) -> int:
        if self.metrics is None:
            return self.slots_needed(self.count)
        return len(self.metrics) // METRICS_SLOT_SIZE

    def max_workers(self) -> int:
        """SIGTTIN adds workers up to what the metrics area has slots for (no bound
        without metrics)."""
        if self.metrics is None:
            return 1 << 16
        return max(1, (self._slot_count() - 1) // 2)

    def _free_slot(self) -> int:
        used = {w.slot for w in self.workers.values()}
        for slot in range(self._slot_count()):
            if slot not in used:
                return slot
        return 0  # cannot happen with slots_needed; sharing a slot is still safe (atomic adds)

    def _spawn(self) -> int:
        slot = self._free_slot()
        r, w = os.pipe()
        # Signals wait until the child has its own handlers: one sent to a worker that was
        # just forked (SIGTTOU retiring the newest) would otherwise reach the supervisor's
        # handler copied into the child, and be lost. SIGTERM waits longer, until the
        # target watches it (see the class docstring): at its default action it would kill
        # a worker that already listens, dropping the connections it accepted.
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            raise
        if pid == 0:  # the worker
            os.close(r)
            code = 0
            try:
                self._child_signals()
                signal.pthread_sigmask(signal.SIG_UNBLOCK, set(_SIGNALS) - {signal.SIGTERM})

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
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
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
            if signum in (signal.SIGTTIN, signal.SIGTTOU):
                if not self.stopping:
                    self._scale(1 if signum == signal.SIGTTIN else -1)
                continue
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

    def _scale(self, by: int) -> None:
        """SIGTTIN: one worker more (forked by the next step); SIGTTOU: one fewer (the
        newest drains and leaves), never below one."""
        wanted = min(max(1, self.count + by), self.max_workers())
        if wanted == self.count:
            logger.info("keeping %d workers", self.count)
            return
        self.count = wanted
        logger.info("scaling to %d workers", wanted)
        if by < 0:
            live = [w for w in self.workers.values() if not w.retiring]
            if len(live) > wanted:
                newest = max(live, key=lambda w: w.started)
                self._retire(newest.pid)

    def _retire(self, pid: int) -> None:
        if pid == self.reload_new:
            self.reload_new = None  # a roll's replacement scaled away: the roll forks another
        if pid in self.reload_queue:
            self.reload_queue.remove(pid)
        self.workers[pid].retiring = True
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def _check_rss(self, now: float) -> None:
        if self.max_rss is None or now < self.rss_at:
            return
        self.rss_at = now + RSS_INTERVAL
        for pid, worker in self.workers.items():
            if worker.retiring or not worker.ready or pid in self.reload_queue:
                continue
            rss = resident_bytes(pid)
            if rss is not None and rss > self.max_rss:
                logger.warning(
                    "worker %d uses %d MiB, above --max-worker-rss %d MiB: replacing it",
                    pid,
                    rss >> 20,
                    self.max_rss >> 20,
                )
                self.reload_queue.append(pid)

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
        self._check_rss(now)
        live = [w for w in self.workers.values() if not w.retiring]
        if self.reload_queue:
            if self.reload_new is None and now >= self.spawn_at:
                self.reload_new = self._spawn()
            elif self.reload_new is not None and self.workers[self.reload_new].ready:
                # The replacement listens: the old worker drains and leaves.
                old = self.reload_queue.pop(0)
                self.reload_new = None
                if old in self.workers:
                    self._retire(old)
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
                if self.max_rss is not None:
                    timeout = min(timeout, RSS_INTERVAL)
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
