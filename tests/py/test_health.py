"""--health with real processes: /health and /ready answered by the server, readiness
following the registered checks (data_bridge.health) and going to 503 while draining, and
neither probe counted in metrics or the access log. Every wait is bounded."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
from conftest import Reader
from test_cli import Cli

APP = """
import asyncio, os
from data_bridge.api import App
from data_bridge.health import readiness_check

app = App()

@readiness_check
def flag_file():
    if os.path.exists("raise"):
        raise RuntimeError("checker broke")
    return not os.path.exists("down")

@app.get("/")
def index():
    return {"pid": os.getpid()}

@app.get("/slow")
async def slow(t: float = 1.0):
    await asyncio.sleep(t)
    return {"slept": t}
"""


def start(tmp_path: Path, *args: str) -> Cli:
    (tmp_path / "healthapp.py").write_text(APP)
    return Cli(tmp_path, "healthapp:app", "--health", *args)


def kill(c: Cli) -> None:
    try:
        os.killpg(c.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    c.proc.wait(timeout=10)


def test_health_and_ready_follow_the_checks(tmp_path: Path) -> None:
    c = start(tmp_path, "--workers", "2", "--metrics", "/metrics")
    try:
        c.wait_ready()
        r = httpx.get(c.url + "/health", timeout=5)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        assert httpx.get(c.url + "/ready", timeout=5).status_code == 200
        assert httpx.head(c.url + "/ready", timeout=5).status_code == 200
        (tmp_path / "down").write_text("")
        for _ in range(6):  # every worker says so
            r = httpx.get(c.url + "/ready", headers={"connection": "close"}, timeout=5)
            assert r.status_code == 503 and r.json() == {"status": "not ready"}
        # Liveness does not depend on readiness.
        assert httpx.get(c.url + "/health", timeout=5).status_code == 200
        (tmp_path / "down").unlink()
        (tmp_path / "raise").write_text("")
        assert httpx.get(c.url + "/ready", timeout=5).status_code == 503
        (tmp_path / "raise").unlink()
        assert httpx.get(c.url + "/ready", timeout=5).status_code == 200
        # Other methods and paths go to the application as before.
        assert httpx.post(c.url + "/ready", timeout=5).status_code == 404
        metrics = httpx.get(c.url + "/metrics", timeout=5).text
        assert "data_bridge_requests_total 2\n" in metrics  # wait_ready's GET / and the POST
        assert c.stop() == 0
        out = c.output()
        assert "checker broke" in out
        assert '"GET /ready' not in out and '"GET /health' not in out
    finally:
        kill(c)


def test_ready_is_503_while_draining(tmp_path: Path) -> None:
    c = start(tmp_path)
    try:
        c.wait_ready()
        busy = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        probe = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        busy.sendall(b"GET /slow?t=1.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        c.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # An accepted connection's probe during the drain: not ready, and closed after.
        probe.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        r = Reader(probe).read_response()
        assert r.status == 503 and b"draining" in r.body
        assert Reader(busy).read_response().status == 200
        assert c.proc.wait(timeout=10) == 0
        busy.close()
        probe.close()
    finally:
        kill(c)


def test_without_health_the_paths_are_the_applications(tmp_path: Path) -> None:
    (tmp_path / "healthapp.py").write_text(APP)
    c = Cli(tmp_path, "healthapp:app")
    try:
        c.wait_ready()
        assert httpx.get(c.url + "/health", timeout=5).status_code == 404
        assert c.stop() == 0
    finally:
        kill(c)
