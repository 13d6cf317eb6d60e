"""Shared fixtures: a real server process on 127.0.0.1 and small raw-socket helpers."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"


class ServerProcess:
    """A child process serving one of tests/py/apps on a free port."""

    def __init__(
        self,
        app: str,
        limits: dict | None = None,
        workers: int | None = None,
        graceful: float | None = None,
    ) -> None:
        self.app = app
        self.graceful = graceful
        self.limits = limits or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.workers = workers

    def start(self) -> ServerProcess:
        env = dict(os.environ)
        # The test run's own PYTHONPATH comes first (e.g. a sanitizer build of the
        # extension), the source tree is the fallback.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (env.get("PYTHONPATH", ""), str(ROOT / "src")) if p
        )
        env["DB_TEST_LIMITS"] = json.dumps(self.limits)
        if self.workers:
            env["DB_TEST_WORKERS"] = str(self.workers)
        if self.graceful is not None:
            env["DB_TEST_GRACEFUL"] = str(self.graceful)
        # Port 0 would be simplest, but the log line is at warning level in the app, so
        # the port is chosen here: bind, read it, close, pass it on.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        # The log goes to a file, not a pipe: nobody reads a pipe while the tests run, and
        # a full pipe would block the server on its next log line.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, str(APPS / self.app), str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early: {self.read_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not start listening in time")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def read_log(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> tuple[int, str]:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return self.proc.returncode, self.read_log()

    def connect(self, timeout: float = 5) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    srv = ServerProcess("main_app.py").start()
    yield srv
    code, err = srv.stop()
    # A clean shutdown on SIGTERM, and nothing but expected handler errors logged.
    assert code == 0, err


class Response:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> object:
        return json.loads(self.body)


class Reader:
    """Reads HTTP/1.1 responses from a raw socket (Content-Length framing only)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        # A bytearray, so that receiving a large body is not quadratic (tests may assign
        # bytes here; _fill turns them back into a bytearray).
        self.buf: bytes | bytearray = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        if not isinstance(self.buf, bytearray):
            self.buf = bytearray(self.buf)
        self.buf += data
        return True

    def read_response(self, head_request: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"closed before a full response head: {self.buf!r}")
        end = self.buf.find(b"\r\n\r\n")
        head = bytes(self.buf[:end])
        self.buf = bytearray(self.buf[end + 4 :])
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) (.*)$", lines[0])
        assert m, lines[0]
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
        status = int(m.group(1))
        length = 0
        for k, v in headers:
            if k.lower() == "content-length":
                length = int(v)
        if head_request or status in (204, 304) or status < 200:
            length = 0
        while len(self.buf) < length:
            if not self._fill():
                raise ConnectionError("closed before the full body")
        body = bytes(self.buf[:length])
        del self.buf[:length]
        return Response(status, m.group(2), headers, body)  # type: ignore[arg-type]

    def at_eof(self, timeout: float = 3) -> bool:
        """True when the server closes the connection (after any buffered bytes)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


def exchange(srv: ServerProcess, raw: bytes, head_request: bool = False) -> tuple[Response, Reader]:
    s = srv.connect()
    s.sendall(raw)
    reader = Reader(s)
    return reader.read_response(head_request), reader
