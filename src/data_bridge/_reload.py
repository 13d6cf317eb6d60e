"""Auto-reload (``--reload``): a supervisor that watches source files and restarts the
serving process when one changes, for development.

The supervisor binds the listening socket, then forks a child that imports the application
and serves on that socket; the supervisor itself never imports the application, so each
child loads the code as it is on disk. Connections that arrive while a child is replaced
wait in the kernel's accept queue. Watching is polling: every ``delay`` seconds the
supervisor walks the watched directories and compares each matching file's modification
time and size with the previous pass (uvicorn's StatReload does the same; it needs no
dependency and sees edits on any file system, network and container mounts included).
Patterns are matched with ``fnmatch`` against a file's name and its path relative to the
watched directory; a directory whose name matches an exclude pattern is not entered.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from data_bridge._supervisor import _exit_with_parent

logger = logging.getLogger("data_bridge")

# uvicorn's defaults for --reload-include and --reload-exclude.
DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")
# Directories never entered: byte-code caches hold no source.
_SKIP_DIRS = ("__pycache__",)
# How long a child gets to drain after SIGTERM before it is killed.
STOP_TIMEOUT = 5.0

Snapshot = dict[str, tuple[int, int]]


class Watcher:
    """The files under ``dirs`` whose name matches ``includes`` and none of ``excludes``,
    with what ``changes`` compares between two passes."""

    def __init__(
        self, dirs: Sequence[str], includes: Sequence[str], excludes: Sequence[str]
    ) -> None:
        self.dirs = [str(Path(d).resolve()) for d in dirs] or [os.getcwd()]
        self.includes = tuple(includes) or DEFAULT_INCLUDES
        self.excludes = tuple(excludes) or DEFAULT_EXCLUDES
        self.files: Snapshot = self.snapshot()

    def _matches(self, name: str, rel: str, patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in patterns)

    def snapshot(self) -> Snapshot:
        out: Snapshot = {}
        for root in self.dirs:
            for here, dirnames, filenames in os.walk(root):
                rel_dir = os.path.relpath(here, root)
                rel_dir = "" if rel_dir == "." else rel_dir  # "./x" would match ".*"
                dirnames[:] = [
                    d
                    for d in dirnames
                    if d not in _SKIP_DIRS
                    and not self._matches(d, os.path.join(rel_dir, d), self.excludes)
                ]
                for name in filenames:
                    rel = os.path.join(rel_dir, name)
                    if not self._matches(name, rel, self.includes):
                        continue
                    if self._matches(name, rel, self.excludes):
                        continue
                    path = os.path.join(here, name)
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue  # removed while walking: the next pass sees it gone
                    out[path] = (st.st_mtime_ns, st.st_size)
        return out

    def changes(self) -> list[str]:
        """The files added, removed or modified since the previous call (or creation)."""
        now = self.snapshot()
        changed = [p for p, v in now.items() if self.files.get(p) != v]
        changed += [p for p in self.files if p not in now]
        self.files = now
        return sorted(changed)


class Reloader:
    """Runs ``target(sock)`` in a forked child, and again in a new child whenever a watched
    file changes, until SIGINT or SIGTERM; returns the exit status."""

    def __init__(
        self,
        target: Callable[[socket.socket], None],
        sock: socket.socket,
        watcher: Watcher,
        delay: float = 0.25,
    ) -> None:
        self.target = target
        self.sock = sock
        self.watcher = watcher
        self.delay = max(0.01, delay)
        self.child: int | None = None
        self._signals: list[int] = []

    def _spawn(self) -> None:
        # As the supervisor's: a SIGTERM for the new child waits until it has its handler.
        stops = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        pid = -1
        try:
            pid = os.fork()
        finally:
            if pid != 0:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        if pid == 0:
            code = 0
            try:
                # Its own process group: a terminal's Ctrl-C reaches the supervisor only,
                # which stops the child with one SIGTERM.
                os.setpgid(0, 0)
                _exit_with_parent()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(signum, signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
                # A .pyc records its source's mtime in whole seconds and its size: an edit
                # within the second that wrote it, keeping the size, would load the stale
                # code. Children write none, so each compiles what is on disk.
                sys.dont_write_bytecode = True
                self.target(self.sock)
            except SystemExit as exc:
                if isinstance(exc.code, str):
                    logger.error("%s", exc.code)  # load_app's "error: cannot import ..."
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                logger.exception("the server process failed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        self.child = pid
        logger.info("started server process %d", pid)

    def _stop_child(self) -> None:
        if self.child is None:
            return
        pid, self.child = self.child, None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while True:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            if time.monotonic() >= deadline:
                logger.warning("server process %d did not stop in time: killed", pid)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.02)

    def _reap(self) -> None:
        if self.child is None:
            return
        pid, status = os.waitpid(self.child, os.WNOHANG)
        if pid:
            self.child = None
            logger.error(
                "server process %d exited with status %d; waiting for a change",
                pid,
                os.waitstatus_to_exitcode(status),
            )

    def run(self) -> int:
        r, w = os.pipe()
        os.set_blocking(w, False)
        old_wakeup = signal.set_wakeup_fd(w)
        old = {
            s: signal.signal(s, lambda signum, frame: self._signals.append(signum))
            for s in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            logger.info("watching for changes in: %s", ", ".join(self.watcher.dirs))
            self._spawn()
            while not self._signals:
                select.select([r], [], [], self.delay)
                if self._signals:
                    break
                self._reap()
                changed = self.watcher.changes()
                if not changed:
                    continue
                shown = ", ".join(repr(os.path.relpath(p)) for p in changed[:5])
                logger.warning("detected changes in %s. Reloading...", shown)
                self._stop_child()
                self._spawn()
            logger.info("stopping the reloader (signal %d)", self._signals[0])
            self._stop_child()
            return 0
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in old.items():
                signal.signal(signum, handler)
            os.close(r)
            os.close(w)
