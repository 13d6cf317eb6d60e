"""The command line with uvicorn's options: each flag run in a real process on 127.0.0.1
and its effect checked on the wire."""

from __future__ import annotations

import calendar
import json
import logging
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, Reader

APP = textwrap.dedent(
    """
    import asyncio, os
    from data_bridge.api import App, Request

    app = App()

    @app.get("/")
    def index():
        return {"pid": os.getpid()}

    @app.get("/slow")
    async def slow(t: float = 0.5):
        await asyncio.sleep(t)
        return {"slept": t}

    @app.get("/where")
    def where(request: Request):
        return {
            "client": list(request.client) if request.client else None,
            "url": str(request.url),
            "root_path": request.scope.get("root_path"),
            "env": os.environ.get("DB_CLI_TEST"),
        }

    @app.post("/count")
    async def count(request: Request):
        n = 0
        async for piece in request.stream():
            n += len(piece)
        return {"n": n}

    def make():
        return app

    async def asgi(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": scope["root_path"].encode()})
    """
)


def child_env(**extra: str) -> dict[str, str]:
    """The test run's own PYTHONPATH first (e.g. a sanitizer build of the extension), then
    the source tree, as conftest's ServerProcess does."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (env.get("PYTHONPATH", ""), str(ROOT / "src")) if p
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cli:
    """``python -m data_bridge`` with the given arguments, in a directory holding the test
    app (``cliapp``), stopped and reaped at the end of the test."""

    def __init__(self, tmp: Path, *args: str, port: int | None = None, env=None) -> None:
        (tmp / "cliapp.py").write_text(APP)
        self.port = free_port() if port is None else port
        self.log = tempfile.TemporaryFile()
        e = child_env()
        e.update(env or {})
        argv = [sys.executable, "-m", "data_bridge", *args]
        if "--uds" not in args and "--fd" not in args:
            argv += ["--port", str(self.port)]
        self.proc = subprocess.Popen(
            argv,
            cwd=tmp,
            env=e,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str = "/", timeout: float = 15) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return httpx.get(self.url + path, timeout=5)
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server did not start: {self.output()}") from None
                time.sleep(0.05)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"server did not stop: {self.output()}") from None


@pytest.fixture
def cli(tmp_path: Path):
    started: list[Cli] = []

    def start(*args: str, **kw) -> Cli:
        c = Cli(tmp_path, *args, **kw)
        started.append(c)
        return c

    yield start
    for c in started:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait(timeout=10)


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "cliapp.py").write_text(APP)
    env = child_env()
    return subprocess.run(
        [sys.executable, "-m", "data_bridge", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_defaults_server_and_date_headers(cli) -> None:
    c = cli("cliapp:app")
    r = c.wait_ready()
    assert r.headers["server"] == "data-bridge"
    assert "date" in r.headers
    assert c.stop() == 0


def test_no_server_header_no_date_header_and_extra_headers(cli) -> None:
    c = cli(
        "cliapp:app",
        "--no-server-header",
        "--no-date-header",
        "--header",
        "X-One: 1",
        "--header",
        "x-two:a:b",
    )
    r = c.wait_ready()
    assert "server" not in r.headers and "date" not in r.headers
    assert r.headers["x-one"] == "1" and r.headers["x-two"] == "a:b"
    # Error answers from the server carry them too.
    assert httpx.get(c.url + "/nope").headers["x-one"] == "1"
    assert c.stop() == 0


def test_header_named_server_replaces_ours(cli) -> None:
    c = cli("cliapp:app", "--header", "Server: edge")
    assert c.wait_ready().headers.get_list("server") == ["edge"]
    assert c.stop() == 0


def test_root_path_for_app_and_asgi(cli) -> None:
    c = cli("cliapp:app", "--root-path", "/api")
    assert c.wait_ready("/where").json()["root_path"] == "/api"
    assert c.stop() == 0
    a = cli("cliapp:asgi", "--root-path", "/api")
    assert a.wait_ready().text == "/api"
    assert a.stop() == 0


def test_factory_and_app_dir(cli, tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "elsewhere.py").write_text(APP)
    c = cli("elsewhere:make", "--factory", "--app-dir", str(sub))
    assert "pid" in c.wait_ready().json()
    assert c.stop() == 0


def test_env_file(cli, tmp_path: Path) -> None:
    (tmp_path / "vars.env").write_text("DB_CLI_TEST=from-file\n")
    c = cli("cliapp:app", "--env-file", "vars.env")
    assert c.wait_ready("/where").json()["env"] == "from-file"
    assert c.stop() == 0


def test_uds(cli, tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    c = cli("cliapp:app", "--uds", str(path))
    deadline = time.monotonic() + 15
    while not path.exists():
        assert c.proc.poll() is None and time.monotonic() < deadline, c.output()
        time.sleep(0.05)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666)
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
        r = client.get("http://x/where")
    assert r.status_code == 200 and r.json()["client"] is None
    assert c.stop() == 0


def test_fd(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    (tmp_path / "cliapp.py").write_text(APP)
    env = child_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_bridge", "cliapp:app", "--fd", str(sock.fileno())],
        cwd=tmp_path,
        env=env,
        pass_fds=(sock.fileno(),),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    sock.close()
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert r.status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err


def test_limit_concurrency_answers_503(cli) -> None:
    c = cli("cliapp:app", "--limit-concurrency", "2")
    c.wait_ready()
    held = socket.create_connection(("127.0.0.1", c.port), timeout=5)
    try:
        held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert Reader(held).read_response().status == 200
        # Two open connections: uvicorn's count includes the connection asking.
        s = socket.create_connection(("127.0.0.1", c.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = Reader(s)
        r = reader.read_response()
        assert r.status == 503 and r.body == b"Service Unavailable"
        assert r.header("connection") == "close" and reader.at_eof()
        assert r.header("retry-after") == "1"
        s.close()
    finally:
        held.close()
    time.sleep(0.2)
    assert httpx.get(c.url).status_code == 200
    assert c.stop() == 0


def test_max_upload_bounds_streamed_bodies(cli) -> None:
    c = cli("cliapp:app", "--max-body", "1024", "--max-upload", "4096")
    c.wait_ready()
    # Over --max-body, so read as it arrives; --max-upload bounds it.
    assert httpx.post(c.url + "/count", content=b"x" * 3000).json() == {"n": 3000}
    r = httpx.post(c.url + "/count", content=b"x" * 5000)
    assert r.status_code == 413
    assert c.stop() == 0


def test_limit_max_requests_stops_the_process(cli) -> None:
    c = cli("cliapp:app", "--limit-max-requests", "3")
    c.wait_ready()
    for _ in range(2):
        httpx.get(c.url)
    assert c.proc.wait(timeout=10) == 0
    assert "maximum number of requests (3)" in c.output()


def test_timeout_keep_alive(cli) -> None:
    c = cli("cliapp:app", "--timeout-keep-alive", "1")
    c.wait_ready()
    s = socket.create_connection(("127.0.0.1", c.port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    reader = Reader(s)
    assert reader.read_response().status == 200
    t0 = time.monotonic()
    assert reader.at_eof(timeout=4)
    assert 0.5 < time.monotonic() - t0 < 3.5
    s.close()
    assert c.stop() == 0


def test_timeout_graceful_shutdown(cli) -> None:
    c = cli("cliapp:app", "--timeout-graceful-shutdown", "1")
    c.wait_ready()
    s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
    s.sendall(b"GET /slow?t=30 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    t0 = time.monotonic()
    c.proc.send_signal(signal.SIGTERM)
    r = Reader(s).read_response()
    assert r.status == 503
    assert c.proc.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 5
    s.close()


def test_graceful_shutdown_waits_by_default(cli) -> None:
    c = cli("cliapp:app")
    c.wait_ready()
    s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
    s.sendall(b"GET /slow?t=1.5 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    c.proc.send_signal(signal.SIGTERM)
    r = Reader(s).read_response()
    assert r.status == 200 and r.json() == {"slept": 1.5}
    assert c.proc.wait(timeout=10) == 0
    s.close()


def test_backlog_and_log_level_accepted(cli) -> None:
    c = cli("cliapp:app", "--backlog", "16", "--log-level", "debug")
    c.wait_ready()
    assert c.stop() == 0
    assert "serving on http://127.0.0.1:" in c.output()
    q = cli("cliapp:app", "--log-level", "warning")
    q.wait_ready()
    assert q.stop() == 0
    assert "serving on" not in q.output()


def test_lifespan_off_skips_startup(cli, tmp_path: Path) -> None:
    (tmp_path / "lifeapp.py").write_text(
        textwrap.dedent(
            """
            from data_bridge.api import App
            app = App()
            started = []
            @app.on_event("startup")
            def up():
                started.append(1)
            @app.get("/")
            def index():
                return {"started": len(started)}
            """
        )
    )
    c = cli("lifeapp:app", "--lifespan", "off")
    assert c.wait_ready().json() == {"started": 0}
    assert c.stop() == 0
    d = cli("lifeapp:app")
    assert d.wait_ready().json() == {"started": 1}
    assert d.stop() == 0


def test_web_concurrency_sets_workers(cli) -> None:
    c = cli("cliapp:app", env={"WEB_CONCURRENCY": "2"})
    c.wait_ready()
    pids = {httpx.get(c.url, headers={"connection": "close"}).json()["pid"] for _ in range(40)}
    assert c.stop() == 0
    assert "with 2 workers" in c.output()
    assert len(pids) >= 1


@pytest.mark.parametrize(
    "args, named",
    [
        (["--loop", "uvloop"], "--loop uvloop"),
        (["--http", "h11"], "--http h11"),
        (["--ws", "websockets"], "--ws websockets"),
        (["--interface", "wsgi"], "--interface wsgi"),
    ],
)
def test_unsupported_flags_are_refused_by_name(tmp_path: Path, args, named) -> None:
    r = run_cli(tmp_path, "cliapp:app", *args)
    assert r.returncode == 2
    assert named in r.stderr and "not supported" in r.stderr


def test_accepted_defaults_of_uvicorn(tmp_path: Path) -> None:
    r = run_cli(tmp_path, "--help")
    for flag in ("--uds", "--fd", "--limit-concurrency", "--header", "--forwarded-allow-ips"):
        assert flag in r.stdout
    bad = run_cli(tmp_path, "cliapp:app", "--header", "novalue")
    assert bad.returncode == 2 and "NAME:VALUE" in bad.stderr


# --- the access log ------------------------------------------------------------------

ACCESS = re.compile(r'INFO data_bridge\.access: (\S*) - "(\S+) (\S+) HTTP/(1\.[01])" (\d{3})$')


def access_lines(output: str) -> list[tuple[str, ...]]:
    return [m.groups() for line in output.splitlines() if (m := ACCESS.match(line))]


def test_access_log_lines(cli) -> None:
    c = cli("cliapp:app")
    c.wait_ready()
    s = socket.create_connection(("127.0.0.1", c.port), timeout=5)
    port = s.getsockname()[1]
    s.sendall(
        b"GET /where?a=1&b=%20 HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.0\r\nHost: x\r\n\r\n"
    )
    reader = Reader(s)
    assert reader.read_response().status == 200
    assert reader.read_response().status == 404
    s.close()
    assert c.stop() == 0
    lines = access_lines(c.output())
    assert (f"127.0.0.1:{port}", "GET", "/where?a=1&b=%20", "1.1", "200") in lines
    assert (f"127.0.0.1:{port}", "GET", "/missing", "1.0", "404") in lines


@pytest.mark.parametrize(
    "args, env, coloured",
    [
        (["--use-colors"], {}, True),
        (["--no-use-colors"], {}, False),
        ([], {"DATA_BRIDGE_USE_COLORS": "true"}, True),
        ([], {}, False),  # not a terminal: uvicorn's default is off there
    ],
)
def test_use_colors(cli, args, env, coloured) -> None:
    """--use-colors as uvicorn's: the level name in its colour, the access line's request
    in bold and its status in the colour of its class; off, the plain lines."""
    c = cli("cliapp:app", *args, env=env)
    c.wait_ready()
    httpx.get(c.url + "/missing", timeout=5)
    assert c.stop() == 0
    out = c.output()
    if coloured:
        assert "\x1b[32mINFO\x1b[0m data_bridge.access: 127.0.0.1:" in out
        assert '"\x1b[1mGET /missing HTTP/1.1\x1b[0m" \x1b[31m404\x1b[0m' in out
        assert "\x1b[32mINFO\x1b[0m data_bridge: " in out  # the server's own lines too
    else:
        assert "\x1b[" not in out
        assert ("GET", "/missing", "1.1", "404") in [line[1:] for line in access_lines(out)]


def test_access_log_written_client_per_request(cli) -> None:
    # The written log (logging as the command line sets it up) keeps the socket peer's text
    # from one request to the next: a trusted proxy's client on one request of a
    # keep-alive connection does not stick to the next, escaped control bytes included.
    c = cli("cliapp:app")
    c.wait_ready()
    s = socket.create_connection(("127.0.0.1", c.port), timeout=5)
    port = s.getsockname()[1]
    s.sendall(
        b"GET /missing/1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /missing/2 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.1.2.3\x9b\r\n\r\n"
        b"GET /missing/3 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /missing/4 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: [::1]:7\r\n\r\n"
        # Control bytes past the first words of the line (checked 8 bytes at a time).
        b"GET /missing/5 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: abcdefghijklmnop\x9bq\x85\r\n\r\n"
    )
    reader = Reader(s)
    for _ in range(5):
        assert reader.read_response().status == 404
    s.close()
    assert c.stop() == 0
    out = c.output()
    assert "\x9b" not in out
    lines = {x[2]: x[0] for x in access_lines(out) if x[2].startswith("/missing/")}
    assert lines == {
        "/missing/1": f"127.0.0.1:{port}",
        "/missing/2": "10.1.2.3\\x9b:0",
        "/missing/3": f"127.0.0.1:{port}",
        "/missing/4": "::1:7",
        "/missing/5": "abcdefghijklmnop\\x9bq\\x85:0",
    }, out


def test_access_log_asgi_and_uds(cli, tmp_path: Path) -> None:
    path = tmp_path / "a.sock"
    c = cli("cliapp:asgi", "--uds", str(path))
    deadline = time.monotonic() + 15
    while not path.exists():
        assert c.proc.poll() is None and time.monotonic() < deadline, c.output()
        time.sleep(0.05)
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
        assert client.post("http://x/p?q", content=b"x").status_code == 200
    assert c.stop() == 0
    # No IP address on a UNIX socket: the client is empty, as uvicorn's.
    assert ("", "POST", "/p?q", "1.1", "200") in access_lines(c.output())


def test_no_access_log(cli) -> None:
    c = cli("cliapp:app", "--no-access-log")
    c.wait_ready()
    httpx.get(c.url + "/where")
    assert c.stop() == 0
    assert access_lines(c.output()) == []
    assert "data_bridge.access" not in c.output()


def test_access_log_follows_log_level(cli) -> None:
    c = cli("cliapp:app", "--log-level", "warning")
    c.wait_ready()
    httpx.get(c.url + "/where")
    assert c.stop() == 0
    assert access_lines(c.output()) == []


# --- proxy headers ---------------------------------------------------------------------

PROXY_APP = textwrap.dedent(
    """
    from data_bridge.api import App, Request
    from data_bridge.api.middleware.httpsredirect import HTTPSRedirectMiddleware

    app = App()

    @app.get("/where")
    def where(request: Request):
        return {"client": list(request.client) if request.client else None,
                "url": str(request.url)}

    secure = App()
    secure.add_middleware(HTTPSRedirectMiddleware)

    @secure.get("/s")
    def s():
        return {"ok": True}

    async def asgi(scope, receive, send):
        import json
        body = json.dumps({"client": scope["client"], "scheme": scope["scheme"]}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    """
)


def get_raw(port: int, path: str, *headers: str) -> tuple[int, dict, bytes]:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    extra = "".join(h + "\r\n" for h in headers)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: example.com\r\n{extra}\r\n".encode())
    r = Reader(s).read_response()
    s.close()
    return r.status, dict((k.lower(), v) for k, v in r.headers), r.body


def test_proxy_headers_from_a_trusted_peer(cli, tmp_path: Path) -> None:
    (tmp_path / "proxyapp.py").write_text(PROXY_APP)
    c = cli("proxyapp:app")  # default --forwarded-allow-ips: 127.0.0.1,::1
    c.wait_ready("/where")
    _, _, body = get_raw(
        c.port, "/where?x=1", "X-Forwarded-Proto: https", "X-Forwarded-For: 203.0.113.7:4711"
    )
    data = json.loads(body)
    assert data == {"client": ["203.0.113.7", 4711], "url": "https://example.com/where?x=1"}
    # The rightmost untrusted hop: 127.0.0.1 (a trusted proxy) is skipped.
    _, _, body = get_raw(
        c.port, "/where", "X-Forwarded-For: 1.1.1.1, 198.51.100.2", "X-Forwarded-For: 127.0.0.1"
    )
    assert json.loads(body)["client"] == ["198.51.100.2", 0]
    # Every hop trusted: the leftmost; an IPv6 hop in brackets with a port.
    _, _, body = get_raw(c.port, "/where", "X-Forwarded-For: [::1]:80, 127.0.0.1")
    assert json.loads(body)["client"] == ["::1", 80]
    # An unknown protocol name is ignored; no headers: the peer.
    _, _, body = get_raw(c.port, "/where", "X-Forwarded-Proto: gopher")
    data = json.loads(body)
    assert data["url"].startswith("http://") and data["client"][0] == "127.0.0.1"
    assert c.stop() == 0
    # The access log names the forwarded client.
    assert ("203.0.113.7:4711", "GET", "/where?x=1", "1.1", "200") in access_lines(c.output())


def test_proxy_headers_from_an_untrusted_peer_are_ignored(cli, tmp_path: Path) -> None:
    (tmp_path / "proxyapp.py").write_text(PROXY_APP)
    c = cli("proxyapp:app", "--forwarded-allow-ips", "10.0.0.0/8, 192.0.2.1")
    c.wait_ready("/where")
    _, _, body = get_raw(c.port, "/where", "X-Forwarded-Proto: https", "X-Forwarded-For: 1.2.3.4")
    data = json.loads(body)
    assert data["client"][0] == "127.0.0.1" and data["url"].startswith("http://")
    assert c.stop() == 0


def test_forwarded_allow_ips_networks_and_star(cli, tmp_path: Path) -> None:
    (tmp_path / "proxyapp.py").write_text(PROXY_APP)
    c = cli("proxyapp:app", "--forwarded-allow-ips", "127.0.0.0/8")
    c.wait_ready("/where")
    _, _, body = get_raw(c.port, "/where", "X-Forwarded-For: 9.9.9.9, 10.1.1.1")
    assert json.loads(body)["client"] == ["10.1.1.1", 0]
    assert c.stop() == 0
    d = cli("proxyapp:app", "--forwarded-allow-ips", "*")
    d.wait_ready("/where")
    # "*": the leftmost hop, whatever follows.
    _, _, body = get_raw(d.port, "/where", "X-Forwarded-For: 9.9.9.9, 10.1.1.1")
    assert json.loads(body)["client"] == ["9.9.9.9", 0]
    assert d.stop() == 0


def test_no_proxy_headers(cli, tmp_path: Path) -> None:
    (tmp_path / "proxyapp.py").write_text(PROXY_APP)
    c = cli("proxyapp:app", "--no-proxy-headers")
    c.wait_ready("/where")
    _, _, body = get_raw(c.port, "/where", "X-Forwarded-Proto: https", "X-Forwarded-For: 1.2.3.4")
    data = json.loads(body)
    assert data["client"][0] == "127.0.0.1" and data["url"].startswith("http://")
    assert c.stop() == 0


def test_proxy_headers_asgi_scope(cli, tmp_path: Path) -> None:
    (tmp_path / "proxyapp.py").write_text(PROXY_APP)
    c = cli("proxyapp:asgi")
    c.wait_ready()
    _, _, body = get_raw(c.port, "/", "X-Forwarded-Proto: https", "X-Forwarded-For: 5.6.7.8")
    assert json.loads(body) == {"client": ["5.6.7.8", 0], "scheme": "https"}
    _, _, body = get_raw(c.port, "/")
    data = json.loads(body)
    assert data["scheme"] == "http" and data["client"][0] == "127.0.0.1"
    assert c.stop() == 0


FORWARDED_APP = textwrap.dedent(
    """
    from data_bridge.api import App, Request

    app = App()

    @app.get("/where")
    def where(request: Request):
        return {"client": list(request.client) if request.client else None,
                "url": str(request.url)}

    async def asgi(scope, receive, send):
        import json
        host = dict(scope["headers"]).get(b"host", b"").decode()
        body = json.dumps({"client": scope["client"], "scheme": scope["scheme"], "host": host})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body.encode()})
    """
)


def where(port: int, *headers: str) -> dict:
    status, _, body = get_raw(port, "/where", *headers)
    assert status == 200, body
    return json.loads(body)


def test_x_forwarded_host_only_when_asked_for(cli, tmp_path: Path) -> None:
    (tmp_path / "fwdapp.py").write_text(FORWARDED_APP)
    plain = cli("fwdapp:app")  # uvicorn's two fields: X-Forwarded-Host is not believed
    plain.wait_ready("/where")
    got = where(plain.port, "X-Forwarded-Host: evil.example", "X-Forwarded-For: 203.0.113.7")
    assert got == {"client": ["203.0.113.7", 0], "url": "http://example.com/where"}
    assert plain.stop() == 0
    c = cli("fwdapp:app", "--forwarded-headers", "x-forwarded-host")
    c.wait_ready("/where")
    got = where(
        c.port,
        "X-Forwarded-Host: public.example:8443",
        "X-Forwarded-Proto: https",
        "X-Forwarded-For: 203.0.113.7",
    )
    assert got == {"client": ["203.0.113.7", 0], "url": "https://public.example:8443/where"}
    # Two proxies appended to both lists: the host at the client's hop, not the internal
    # one the second proxy saw, nor what the client sent itself.
    got = where(
        c.port,
        "X-Forwarded-Host: spoofed.example, public.example, internal",
        "X-Forwarded-For: 10.9.9.9, 203.0.113.7, 127.0.0.1",
    )
    assert got == {"client": ["203.0.113.7", 0], "url": "http://public.example/where"}
    # A proxy that sets the field rather than appending: its one item.
    got = where(c.port, "X-Forwarded-Host: one.example", "X-Forwarded-For: 1.2.3.4, 127.0.0.1")
    assert got["url"] == "http://one.example/where"
    # Not a Host value: the request's own Host stays.
    assert where(c.port, "X-Forwarded-Host: a b/c")["url"] == "http://example.com/where"
    assert c.stop() == 0
    # From a peer that is not trusted: nothing.
    d = cli(
        "fwdapp:app", "--forwarded-headers", "x-forwarded-host", "--forwarded-allow-ips", "10.0.0.1"
    )
    d.wait_ready("/where")
    got = where(d.port, "X-Forwarded-Host: public.example", "X-Forwarded-For: 203.0.113.7")
    assert got["url"] == "http://example.com/where" and got["client"][0] == "127.0.0.1"
    assert d.stop() == 0


def test_rfc7239_forwarded(cli, tmp_path: Path) -> None:
    (tmp_path / "fwdapp.py").write_text(FORWARDED_APP)
    c = cli("fwdapp:app", "--forwarded-headers", "forwarded")
    c.wait_ready("/where")
    # A quoted, bracketed IPv6 node with a port; the protocol name without case.
    got = where(c.port, 'Forwarded: for="[2001:db8::17]:4711";proto=HTTPS;host="public.example"')
    assert got == {"client": ["2001:db8::17", 4711], "url": "https://public.example/where"}
    # Elements over two fields, read from the right: 127.0.0.1 is a trusted proxy, so the
    # element of 203.0.113.5 is the client's, with its host and without a proto.
    got = where(
        c.port,
        "Forwarded: for=198.51.100.9;proto=https, for=203.0.113.5;host=a.example",
        'Forwarded: for=127.0.0.1;proto=https;host="internal:8000"',
    )
    assert got == {"client": ["203.0.113.5", 0], "url": "http://a.example/where"}
    # Every element trusted: the leftmost. Names RFC 7239 gives no address keep their text.
    got = where(c.port, "Forwarded: for=127.0.0.1;proto=https, for=127.0.0.1")
    assert got == {"client": ["127.0.0.1", 0], "url": "https://example.com/where"}
    assert where(c.port, "Forwarded: for=unknown")["client"] == ["unknown", 0]
    assert where(c.port, 'Forwarded: for="_hidden:_port"')["client"] == ["_hidden", 0]
    # In this mode X-Forwarded-* mean nothing; a field that breaks the grammar (a colon
    # outside quotes, a repeated parameter, an open quote) is not believed at all.
    for bad in (
        "X-Forwarded-For: 1.2.3.4",
        "Forwarded: for=1.2.3.4:80",
        "Forwarded: for=1.2.3.4;for=5.6.7.8",
        'Forwarded: for="1.2.3.4',
    ):
        got = where(c.port, bad, "X-Forwarded-Proto: https")
        assert got["client"][0] == "127.0.0.1" and got["url"] == "http://example.com/where", bad
    assert c.stop() == 0
    # The ASGI scope: client, scheme, and the host header replaced.
    a = cli("fwdapp:asgi", "--forwarded-headers", "forwarded")
    a.wait_ready()
    _, _, body = get_raw(a.port, "/", 'Forwarded: for="[::1]:9";proto=https;host=pub.example')
    assert json.loads(body) == {"client": ["::1", 9], "scheme": "https", "host": "pub.example"}
    _, _, body = get_raw(a.port, "/")
    assert json.loads(body) == {
        "client": ["127.0.0.1", json.loads(body)["client"][1]],
        "scheme": "http",
        "host": "example.com",
    }
    assert a.stop() == 0
    # From a peer that is not trusted: nothing.
    u = cli("fwdapp:app", "--forwarded-headers", "forwarded", "--forwarded-allow-ips", "10.0.0.1")
    u.wait_ready("/where")
    got = where(u.port, "Forwarded: for=203.0.113.5;proto=https;host=a.example")
    assert got["client"][0] == "127.0.0.1" and got["url"] == "http://example.com/where"
    assert u.stop() == 0


def test_forwarded_headers_bad_value(cli) -> None:
    c = cli("cliapp:app", "--forwarded-headers", "both")
    assert c.proc.wait(timeout=15) == 2
    assert "invalid choice: 'both'" in c.output()


def test_https_redirect_honours_forwarded_proto(cli, tmp_path: Path) -> None:
    (tmp_path / "proxyapp.py").write_text(PROXY_APP)
    c = cli("proxyapp:secure")
    deadline = time.monotonic() + 15
    while True:
        try:
            status, headers, _ = get_raw(c.port, "/s")
            break
        except OSError:
            assert c.proc.poll() is None and time.monotonic() < deadline, c.output()
            time.sleep(0.05)
    assert status == 307 and headers["location"] == "https://example.com/s"
    status, _, body = get_raw(c.port, "/s", "X-Forwarded-Proto: https")
    assert status == 200 and json.loads(body) == {"ok": True}
    assert c.stop() == 0
    d = cli("proxyapp:secure", "--forwarded-allow-ips", "10.0.0.1")
    time.sleep(0.1)
    deadline = time.monotonic() + 15
    while True:
        try:
            status, _, _ = get_raw(d.port, "/s", "X-Forwarded-Proto: https")
            break
        except OSError:
            assert d.proc.poll() is None and time.monotonic() < deadline, d.output()
            time.sleep(0.05)
    assert status == 307
    assert d.stop() == 0


def test_options_from_data_bridge_environment_variables(cli) -> None:
    env = {
        "DATA_BRIDGE_ROOT_PATH": "/api",
        "DATA_BRIDGE_ACCESS_LOG": "false",
        "DATA_BRIDGE_HEADER": "X-A:1 X-B:2",
        "DATA_BRIDGE_SERVER_HEADER": "0",
    }
    c = cli("cliapp:app", env=env)
    r = c.wait_ready("/where")
    assert r.json()["root_path"] == "/api"
    assert r.headers["x-a"] == "1" and r.headers["x-b"] == "2"
    assert "server" not in r.headers
    # The command line wins over the environment.
    d = cli("cliapp:app", "--root-path", "/v2", env=env)
    assert d.wait_ready("/where").json()["root_path"] == "/v2"
    assert c.stop() == 0 and d.stop() == 0
    assert "data_bridge.access" not in c.output()


def test_bad_environment_value_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "cliapp.py").write_text(APP)
    for name, value in (("DATA_BRIDGE_WORKERS", "many"), ("DATA_BRIDGE_ACCESS_LOG", "maybe")):
        r = subprocess.run(
            [sys.executable, "-m", "data_bridge", "cliapp:app"],
            cwd=tmp_path,
            env=child_env(**{name: value}),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 2 and name in r.stderr
    assert "DATA_BRIDGE_" in run_cli(tmp_path, "--help").stdout


def test_timeout_header_closes_a_slow_head_not_a_slow_body(cli) -> None:
    c = cli("cliapp:app", "--timeout-header", "1")
    c.wait_ready()
    with socket.create_connection(("127.0.0.1", c.port), timeout=10) as slow:
        # A head trickled one line every 0.3 s (slowloris) never completes: 408 and close
        # after about a second (the sweep looks once a second), far before 30 s.
        t0 = time.monotonic()
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        got = b""
        while not got.endswith(b"\n") or b"408" not in got:
            time.sleep(0.3)
            try:
                slow.sendall(b"X-Slow: 1\r\n")
                chunk = slow.recv(4096, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        assert got.startswith(b"HTTP/1.1 408"), got
        assert time.monotonic() - t0 < 4
    with socket.create_connection(("127.0.0.1", c.port), timeout=10) as s:
        # A complete head whose body comes later has the request timeout for the body.
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
        time.sleep(2.5)
        s.sendall(b"{}")
        assert Reader(s).read_response().status == 405
    assert c.stop() == 0


def trickle(
    port: int, length: int, piece: bytes, every: float, limit: float
) -> tuple[bytes, float]:
    """POSTs a body of `length` bytes to /count, `piece` every `every` seconds, until the
    body is sent, the server answers or closes, or `limit` seconds pass: what the server
    sent and when it was complete (seconds after the head)."""
    head = f"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
    pieces = [piece[: length - sent] for sent in range(0, length, len(piece))]
    return trickle_raw(port, head, pieces, every, limit)


def test_min_body_rate_answers_a_slow_body_408(cli) -> None:
    c = cli("cliapp:app", "--min-body-rate", "1000", "--min-body-grace", "1")
    c.wait_ready()
    # 20 bytes a second against 1000: 408 and close once the grace is over (the sweep looks
    # once a second), long before the 30 s request timeout.
    got, took = trickle(c.port, 10_000, b"x" * 10, 0.5, 8)
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert b"connection: close" in got.lower() and b"too slowly" in got
    assert took < 4
    # Faster than the minimum (4000 bytes a second), even for longer than the grace: served.
    got, took = trickle(c.port, 8_000, b"y" * 1000, 0.25, 8)
    assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b'{"n":8000}'), got
    assert took > 1.5
    assert httpx.get(c.url + "/", timeout=5).status_code == 200
    assert c.stop() == 0


def test_min_body_rate_from_the_environment_and_checked(cli) -> None:
    c = cli(
        "cliapp:app", env={"DATA_BRIDGE_MIN_BODY_RATE": "1000", "DATA_BRIDGE_MIN_BODY_GRACE": "0.5"}
    )
    c.wait_ready()
    got, took = trickle(c.port, 10_000, b"x" * 10, 0.5, 8)
    assert got.startswith(b"HTTP/1.1 408 ") and took < 4, got
    assert c.stop() == 0
    # Off by default: the same trickle is still being read after the grace would be over.
    d = cli("cliapp:app")
    d.wait_ready()
    got, took = trickle(d.port, 10_000, b"x" * 10, 0.5, 3)
    assert got == b"" and took >= 3
    assert d.stop() == 0
    bad = cli("cliapp:app", "--min-body-rate", "-5")
    assert bad.proc.wait(timeout=15) != 0
    assert "min_body_rate must be a positive number" in bad.output()


BODY_APP = textwrap.dedent(
    """
    import asyncio, json
    from data_bridge.api import App, Request, StreamingResponse, UploadFile
    from data_bridge.api import _forms
    from data_bridge.api.requests import ClientDisconnect

    app = App()
    # Parts over 1 KiB go to a temporary file at once, and every file made is kept here so
    # that /spooled can say whether the server's end of the request closed it.
    UploadFile.spool_max_size = 1024
    spooled = []
    events = []
    _spool = _forms._spool

    def spy():
        f = _spool()
        spooled.append(f)
        return f

    _forms._spool = spy

    @app.get("/")
    def index():
        return {}

    @app.get("/spooled")
    def spooled_files():
        return {"closed": [f.closed for f in spooled], "events": events}

    @app.post("/upload")
    async def upload(file: UploadFile):
        return {"size": file.size}

    @app.post("/consume")
    async def consume(request: Request, delay: float = 0.0):
        n = 0
        try:
            async for piece in request.stream():
                n += len(piece)
                if delay:
                    await asyncio.sleep(delay)
        except ClientDisconnect:
            events.append("disconnect")
            raise
        return {"n": n}

    @app.post("/echo")
    async def echo(request: Request):
        async def pieces():
            try:
                async for piece in request.stream():
                    yield piece
            except ClientDisconnect:
                events.append("echo disconnect")
                raise
        return StreamingResponse(pieces())

    async def asgi(scope, receive, send):
        if scope["type"] != "http":
            return
        if scope["path"] == "/events":
            body = json.dumps(events).encode()
        else:
            n = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    events.append("http.disconnect")
                    return
                n += len(message.get("body", b""))
                if not message.get("more_body"):
                    break
            body = str(n).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    """
)


def trickle_raw(
    port: int, head: bytes, pieces: list[bytes], every: float, limit: float
) -> tuple[bytes, float]:
    """Sends head, then one of pieces every `every` seconds, until all are sent and the
    answer is complete, the server closes, or `limit` seconds pass: what the server sent
    and when (seconds after the head)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        t0 = time.monotonic()
        got, todo = b"", list(pieces)
        while time.monotonic() - t0 < limit:
            if todo:
                try:
                    s.sendall(todo.pop(0))
                except OSError:
                    break
            time.sleep(every if todo else 0.05)
            if not select.select([s], [], [], 0)[0]:
                continue
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            got += chunk
            if not chunk or (b"\r\n\r\n" in got and got.endswith((b"}", b"slowly"))):
                break
        return got, time.monotonic() - t0


def chunked(pieces: list[bytes]) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]


def test_min_body_rate_applies_to_streamed_bodies(cli, tmp_path: Path) -> None:
    (tmp_path / "bodyapp.py").write_text(BODY_APP)
    c = cli("bodyapp:app", "--min-body-rate", "5000", "--min-body-grace", "1")
    c.wait_ready()
    # An upload read by the multipart parser as it arrives (over the read window: it
    # streams): 3 KiB of content at once (a temporary file is made), then 10 bytes every
    # 0.5 s, far under 5000 bytes a second. 408 once the grace is over, and the file made
    # for the part is closed.
    boundary = "b0undary"
    lead = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b"u" * 3000
    head = (
        f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    got, took = trickle_raw(c.port, head, [lead] + [b"v" * 10] * 40, 0.5, 8)
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert b"connection: close" in got.lower() and b"too slowly" in got
    assert took < 4
    # request.stream() (chunked: it always streams) trickled under the rate: 408 too, and
    # the handler's read ended as a disconnect does (ClientDisconnect).
    head = b"POST /consume HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    got, took = trickle_raw(c.port, head, chunked([b"w" * 10] * 40), 0.5, 8)
    assert got.startswith(b"HTTP/1.1 408 ") and took < 4, got
    deadline = time.monotonic() + 5
    while True:
        state = httpx.get(c.url + "/spooled", timeout=5).json()
        if state["events"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert state["closed"] and all(state["closed"]), state
    assert state["events"] == ["disconnect"], state
    # Just above the rate (6250 bytes a second against 5000) for 3 s: served whole.
    pieces = [b"z" * 1562] * 12
    got, took = trickle_raw(c.port, head, chunked(pieces), 0.25, 10)
    assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b'{"n":18744}'), got
    assert took > 2.5
    assert c.stop() == 0


def test_min_body_rate_streamed_response_started_and_asgi(cli, tmp_path: Path) -> None:
    (tmp_path / "bodyapp.py").write_text(BODY_APP)
    c = cli("bodyapp:app", "--min-body-rate", "5000", "--min-body-grace", "1")
    c.wait_ready()
    # The response (an echo of the body) started before the body came too slowly: the
    # connection closes, with no 408 after the response's first bytes.
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    got, took = trickle_raw(c.port, head, chunked([b"e" * 10] * 40), 0.5, 8)
    assert got.startswith(b"HTTP/1.1 200 ") and b" 408 " not in got, got
    assert took < 4
    deadline = time.monotonic() + 5
    while "echo disconnect" not in httpx.get(c.url + "/spooled", timeout=5).json()["events"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert c.stop() == 0
    # An ASGI application's receive() gets http.disconnect; the client gets the 408.
    a = cli("bodyapp:asgi", "--min-body-rate", "5000", "--min-body-grace", "1")
    a.wait_ready("/events")
    head = b"POST /in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    got, took = trickle_raw(a.port, head, chunked([b"a" * 10] * 40), 0.5, 8)
    assert got.startswith(b"HTTP/1.1 408 ") and took < 4, got
    deadline = time.monotonic() + 5
    while httpx.get(a.url + "/events", timeout=5).json() != ["http.disconnect"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert a.stop() == 0


def test_min_body_rate_does_not_count_a_slow_reader(cli, tmp_path: Path) -> None:
    (tmp_path / "bodyapp.py").write_text(BODY_APP)
    c = cli("bodyapp:app", "--min-body-rate", "1000000", "--min-body-grace", "1")
    c.wait_ready()
    # A client sending 2 MB at once to a handler that takes 0.1 s over each piece (the
    # server's 64 KiB window: over 3 s in all, under 1 MB a second since the head): the
    # client waits on backpressure, not the server on the client, so it is not cut.
    body = b"q" * 2_000_000
    head = f"POST /consume?delay=0.1 HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", c.port), timeout=20) as s:
        t0 = time.monotonic()
        s.sendall(head.encode() + body)
        answer = Reader(s).read_response()
        took = time.monotonic() - t0
    assert answer.status == 200 and json.loads(answer.body) == {"n": len(body)}
    assert took > 2.5
    assert c.stop() == 0


def test_access_log_json_format_and_control_characters(cli) -> None:
    c = cli("cliapp:app", "--access-log-format", "json")
    c.wait_ready()
    s = socket.create_connection(("127.0.0.1", c.port), timeout=5)
    port = s.getsockname()[1]
    # A trusted proxy (127.0.0.1 by default) names a client with control bytes in it.
    s.sendall(
        b"GET /where?x=%22 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: ev\x9b[2Jil\x85x\r\n\r\n"
        b"GET /missing HTTP/1.0\r\nHost: x\r\n\r\n"
    )
    reader = Reader(s)
    assert reader.read_response().status == 200
    assert reader.read_response().status == 404
    s.close()
    assert c.stop() == 0
    out = c.output()
    entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(entries) >= 2, out
    first, second = entries[-2:]
    assert first["method"] == "GET" and first["path"] == "/where?x=%22"
    assert first["status"] == 200 and first["http_version"] == "1.1"
    assert first["client"].startswith("ev\\x9b[2Jil\\x85x")
    assert "\x9b" not in out and "\x85" not in out
    assert second == {**second, "client": f"127.0.0.1:{port}", "status": 404, "path": "/missing"}
    assert second["http_version"] == "1.0" and second["time"].endswith("Z")
    assert second["pid"] == c.proc.pid


# Requests whose access lines test the JSON escaping: quotes and backslashes in the target,
# and clients named by a trusted proxy (127.0.0.1 by default) with control bytes, Latin-1
# bytes, quotes, an IPv6 address; one without (the socket's peer), one in HTTP/1.0.
JSON_LOG_REQUESTS = [
    (b'GET /where?x=%22&q=a"b\\c HTTP/1.1', b"10.1.2.3"),
    (b'GET /missing/\\"/x HTTP/1.1', b"ev\x9b[2Jil\x85x"),
    (b"GET /where?caf%C3%A9 HTTP/1.1", b"caf\xe9\xff\xa0"),
    (b"POST /where HTTP/1.1", b'a"b\\c\td'),
    (b"GET /where?v6=1 HTTP/1.1", b"2001:db8::1"),
    (b"GET /where HTTP/1.1", None),
    (b"GET /missing HTTP/1.0", b"192.0.2.9"),
]


def json_access_lines(c: Cli) -> list[str]:
    """Sends JSON_LOG_REQUESTS on one connection, stops the server, and returns the JSON
    lines it logged for them, with the socket peer's port replaced by "PORT"."""
    c.wait_ready()
    with socket.create_connection(("127.0.0.1", c.port), timeout=5) as s:
        port = s.getsockname()[1]
        for line, client in JSON_LOG_REQUESTS:
            extra = b"X-Forwarded-For: " + client + b"\r\n" if client is not None else b""
            s.sendall(line + b"\r\nHost: x\r\nContent-Length: 0\r\n" + extra + b"\r\n")
        reader = Reader(s)
        for _ in JSON_LOG_REQUESTS:
            reader.read_response()
    assert c.stop() == 0
    out = c.output().replace(f":{port}", ":PORT")
    return [line for line in out.splitlines() if line.startswith("{")][1:]


def test_access_log_json_written_by_the_server_as_python_writes_it(cli, tmp_path: Path) -> None:
    from data_bridge.access_log import JsonAccessFormatter

    # Written by the server (logging as --access-log-format json leaves it) ...
    native = json_access_lines(cli("cliapp:app", "--access-log-format", "json"))
    # ... and through logging (a configuration of the user's with the same formatter).
    config = {
        "version": 1,
        "formatters": {"j": {"()": "data_bridge.access_log.JsonAccessFormatter"}},
        "handlers": {
            "h": {"class": "logging.StreamHandler", "formatter": "j", "stream": "ext://sys.stdout"}
        },
        "loggers": {"data_bridge.access": {"handlers": ["h"], "level": "INFO", "propagate": False}},
    }
    (tmp_path / "log.json").write_text(json.dumps(config))
    logged = json_access_lines(
        cli("cliapp:app", "--access-log-format", "json", "--log-config", "log.json")
    )
    assert len(native) == len(logged) == len(JSON_LOG_REQUESTS), (native, logged)
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    formatter = JsonAccessFormatter()
    for ours, theirs in zip(native, logged, strict=True):
        a, b = json.loads(ours), json.loads(theirs)
        assert (
            list(a)
            == list(b)
            == ["time", "client", "method", "path", "http_version", "status", "pid"]
        )
        assert stamp.match(a["time"]) and stamp.match(b["time"]), (a, b)
        for key in ("client", "method", "path", "http_version", "status"):
            assert a[key] == b[key], (key, ours, theirs)
        # Byte for byte what the formatter makes of the same record, at the same time.
        record = logging.LogRecord(
            "data_bridge.access",
            logging.INFO,
            "",
            0,
            '%s - "%s %s HTTP/%s" %d',
            (a["client"], a["method"], a["path"], a["http_version"], a["status"]),
            None,
        )
        when = calendar.timegm(time.strptime(a["time"][:19], "%Y-%m-%dT%H:%M:%S"))
        record.created = when + int(a["time"][20:23]) / 1000 + 0.0005
        record.msecs = float(int(a["time"][20:23]))
        record.process = a["pid"]
        assert formatter.format(record) == ours
    first = json.loads(native[0])
    assert first["path"] == '/where?x=%22&q=a"b\\c' and first["client"] == "10.1.2.3:0"
    assert json.loads(native[1])["client"].startswith("ev\\x9b[2Jil\\x85x")
    assert "\\u00e9\\u00ff\\u00a0" in native[2]
    assert json.loads(native[5])["client"] == "127.0.0.1:PORT"
    assert json.loads(native[6])["http_version"] == "1.0"


def test_access_log_json_written_only_when_logging_is_ours() -> None:
    import logging as logging_

    from data_bridge import _serve, access_log

    logger = logging_.getLogger("data_bridge.access")
    saved = (logger.handlers[:], logger.propagate, logger.level, access_log.own_json_handler)
    logger.handlers.clear()
    try:
        logger.setLevel(logging_.INFO)
        access_log.use_format(logger, "json")
        config = _serve.Config(access_log_format="json")
        written = _serve.written_access_log_fd(config)
        assert written is not None and written[1] is True
        # A filter, a second handler or another formatter: the records go through logging.
        handler = logger.handlers[0]
        handler.addFilter(lambda record: True)
        assert _serve.written_access_log_fd(config) is None
        handler.filters.clear()
        handler.setFormatter(logging_.Formatter("%(message)s"))
        assert _serve.written_access_log_fd(config) is None
        handler.setFormatter(access_log.JsonAccessFormatter())
        logger.addHandler(logging_.NullHandler())
        assert _serve.written_access_log_fd(config) is None
    finally:
        logger.handlers[:] = saved[0]
        logger.propagate, access_log.own_json_handler = saved[1], saved[3]
        logger.setLevel(saved[2])


TIMEOUT_APP = textwrap.dedent(
    """
    import asyncio, time
    from data_bridge.api import App

    app = App()
    cleaned = []

    @app.get("/sleep")
    async def sleep(t: float):
        try:
            await asyncio.sleep(t)
        except asyncio.CancelledError:
            cleaned.append(t)
            raise
        return {"slept": t}

    @app.get("/blocking", threaded=True)
    def blocking(t: float):
        time.sleep(t)
        return {"slept": t}

    @app.get("/cleaned")
    def was_cleaned():
        return cleaned
    """
)


def test_timeout_handler_answers_504_and_cancels(cli, tmp_path: Path) -> None:
    (tmp_path / "timeoutapp.py").write_text(TIMEOUT_APP)
    c = cli("timeoutapp:app", "--timeout-handler", "0.5")
    c.wait_ready("/cleaned")
    with httpx.Client(base_url=c.url, timeout=10) as client:
        assert client.get("/sleep?t=0.1").json() == {"slept": 0.1}
        t0 = time.monotonic()
        r = client.get("/sleep?t=5")
        assert r.status_code == 504 and r.json() == {"detail": "Gateway Timeout"}
        assert time.monotonic() - t0 < 3
        # The handler saw the cancellation; the keep-alive connection still serves.
        assert client.get("/cleaned").json() == [5.0]
        # A threaded def handler is answered 504 as well (its thread runs on: threads
        # cannot be stopped; a plain def handler runs on the loop and is not bounded).
        assert client.get("/blocking?t=1.5").status_code == 504
        assert client.get("/sleep?t=0.1").status_code == 200
    assert c.stop() == 0


def test_access_log_from_workers_in_whole_lines(cli) -> None:
    # Logging as the command line sets it up: the servers write the lines themselves, in
    # batches; two workers share stdout and no line is cut or mixed with another.
    c = cli("cliapp:app", "--workers", "2")
    c.wait_ready()
    targets = [f"/missing/{i}?pad={'x' * 150}" for i in range(400)]

    def send(part: list[str]) -> None:
        with httpx.Client(base_url=c.url, timeout=10) as client:
            for t in part:
                assert client.get(t).status_code == 404

    threads = [threading.Thread(target=send, args=(targets[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert c.stop() == 0
    out = c.output()
    lines = [x for x in access_lines(out) if x[2].startswith("/missing/")]
    assert sorted(x[2] for x in lines) == sorted(targets)
    assert all(x[4] == "404" for x in lines)
    assert out.count("data_bridge.access") == len(access_lines(out))


def test_access_log_through_a_log_config(cli, tmp_path: Path) -> None:
    # A logging configuration of the user's: records go through logging, its format applies.
    config = {
        "version": 1,
        "formatters": {"f": {"format": "ACCESS %(message)s"}},
        "handlers": {"h": {"class": "logging.StreamHandler", "formatter": "f"}},
        "loggers": {"data_bridge.access": {"handlers": ["h"], "level": "INFO"}},
    }
    (tmp_path / "log.json").write_text(json.dumps(config))
    c = cli("cliapp:app", "--log-config", "log.json")
    c.wait_ready()
    httpx.get(c.url + "/where?x=1", timeout=5)
    assert c.stop() == 0
    assert re.search(
        r'^ACCESS 127\.0\.0\.1:\d+ - "GET /where\?x=1 HTTP/1\.1" 200$', c.output(), re.M
    )


WS_PROXY_APP = textwrap.dedent(
    """
    from data_bridge.api import App, WebSocket

    app = App()

    @app.get("/")
    def index():
        return {"ok": True}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text(f"{websocket.url.scheme} {websocket.scope['scheme']}")
        await websocket.close()

    async def asgi(scope, receive, send):
        if scope["type"] == "lifespan":
            return
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": scope["scheme"]})
        await send({"type": "websocket.close"})
    """
)


def test_proxy_headers_websocket_scheme(cli, tmp_path: Path) -> None:
    """A WebSocket's URL and scope say ws or wss (Starlette's websocket scheme): wss behind
    a trusted proxy's X-Forwarded-Proto of https or wss, as uvicorn's proxy headers map it;
    likewise the websocket scope of an ASGI app."""
    from websockets.sync.client import connect

    (tmp_path / "wsproxyapp.py").write_text(WS_PROXY_APP)

    def scheme(port: int, proto: str | None) -> str:
        headers = {"X-Forwarded-Proto": proto} if proto else {}
        with connect(f"ws://127.0.0.1:{port}/ws", additional_headers=headers) as c:
            return str(c.recv(timeout=10))

    c = cli("wsproxyapp:app")
    c.wait_ready()
    assert [scheme(c.port, p) for p in (None, "http", "https", "ws", "wss")] == [
        "ws ws",
        "ws ws",
        "wss wss",
        "ws ws",
        "wss wss",
    ]
    assert c.stop() == 0
    d = cli("wsproxyapp:asgi")
    d.wait_ready()
    assert [scheme(d.port, p) for p in (None, "https", "wss")] == ["ws", "wss", "wss"]
    assert d.stop() == 0
