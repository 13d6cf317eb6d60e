"""--reload with real processes: an edited file is served by a new server process, watched
patterns and directories are honoured, a broken edit waits for the next one, and the
reloader stops with its child. Every wait is bounded."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
from test_cli import Cli, run_cli

APP = """
import os
from data_bridge.api import App

app = App()

@app.get("/")
def index():
    return {{"version": {version}, "pid": os.getpid()}}
"""


def write_app(d: Path, version: object) -> None:
    (d / "reloadapp.py").write_text(APP.format(version=version))


def answer(c: Cli) -> dict | None:
    try:
        return httpx.get(c.url, timeout=2).json()
    except (httpx.TransportError, ValueError):
        return None


def wait_version(c: Cli, version: int, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        got = answer(c)
        if got is not None and got["version"] == version:
            return got
        assert time.monotonic() < deadline, f"version {version} not served: {c.output()}"
        time.sleep(0.05)


def stop(c: Cli) -> None:
    try:
        assert c.stop() == 0
    finally:
        try:
            os.killpg(c.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_an_edited_file_is_served(tmp_path: Path) -> None:
    write_app(tmp_path, 1)
    c = Cli(tmp_path, "reloadapp:app", "--reload", "--reload-delay", "0.1")
    try:
        first = wait_version(c, 1, 15)
        write_app(tmp_path, 2)
        second = wait_version(c, 2)
        assert second["pid"] != first["pid"]
        # A broken edit: the old process is stopped, the error logged, and the next good
        # edit is served.
        (tmp_path / "reloadapp.py").write_text("def broken(:\n")
        deadline = time.monotonic() + 10
        while "SyntaxError" not in c.output():
            assert time.monotonic() < deadline, c.output()
            time.sleep(0.05)
        write_app(tmp_path, 3)
        wait_version(c, 3)
        # A file the app imports, in a subdirectory, counts as well.
        pkg = tmp_path / "pkg"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("VERSION = 4\n")
        (tmp_path / "reloadapp.py").write_text(APP.format(version="__import__('pkg').VERSION"))
        wait_version(c, 4)
        (pkg / "__init__.py").write_text("VERSION = 5\n")
        wait_version(c, 5)
        assert "detected changes in" in c.output()
    finally:
        stop(c)
    # The child stopped with the reloader: the port is free.
    assert answer(c) is None


def test_reload_dir_include_and_exclude(tmp_path: Path) -> None:
    write_app(tmp_path, 1)
    watched = tmp_path / "conf"
    watched.mkdir()
    (watched / "settings.toml").write_text("a = 1\n")
    (watched / "skip.toml").write_text("a = 1\n")
    c = Cli(
        tmp_path,
        "reloadapp:app",
        "--reload",
        "--reload-delay",
        "0.1",
        "--reload-dir",
        str(watched),
        "--reload-include",
        "*.toml",
        "--reload-exclude",
        "skip.*",
    )
    try:
        pid = wait_version(c, 1, 15)["pid"]
        # Outside the watched directory: no restart.
        write_app(tmp_path, 2)
        (watched / "skip.toml").write_text("a = 2\n")
        time.sleep(0.6)
        assert answer(c) == {"version": 1, "pid": pid}
        # A matching file in it: a new process, which imports the edited module.
        (watched / "settings.toml").write_text("a = 2\n")
        wait_version(c, 2)
    finally:
        stop(c)


def test_reload_with_workers_is_refused(tmp_path: Path) -> None:
    r = run_cli(tmp_path, "cliapp:app", "--reload", "--workers", "2")
    assert r.returncode == 2
    assert "--reload" in r.stderr and "--workers" in r.stderr
