"""TLS in the native server (csrc/tls, csrc/server/tls.c) with uvicorn's --ssl-* options:
real clients (httpx, ``openssl s_client``, the ``websockets`` client, raw ssl sockets)
against a server process on 127.0.0.1, with certificates made by ``trustme`` for the test.
Bad TLS input (plain HTTP, garbage, abandoned handshakes, no client certificate) must close
that one connection and leave the server serving."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from conftest import ROOT, Reader
from websockets.sync.client import connect as ws_connect

APP = textwrap.dedent(
    """
    import asyncio, hashlib, time
    from data_bridge.api import (
        App, FileResponse, Request, Response, StreamingResponse, UploadFile, WebSocket
    )
    from data_bridge.api.middleware.httpsredirect import HTTPSRedirectMiddleware

    app = App()
    app.add_middleware(HTTPSRedirectMiddleware)

    @app.get("/")
    def index(request: Request):
        return {"scheme": request.url.scheme, "url": str(request.url)}

    @app.post("/echo")
    async def echo(request: Request):
        body = await request.body()
        return {"n": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    @app.post("/hash")
    async def hash_stream(request: Request, slow: float = 0):
        h, n, largest = hashlib.sha256(), 0, 0
        async for piece in request.stream():
            await asyncio.sleep(slow)  # the window fills, the session holds the rest
            h.update(piece)
            n += len(piece)
            largest = max(largest, len(piece))
        return {"n": n, "sha256": h.hexdigest(), "streamed": request._streamed,
                "largest": largest}

    @app.post("/upload")
    async def upload(file: UploadFile):
        data = await file.read()
        return {"n": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "rolled": bool(file.file._rolled)}

    @app.get("/big")
    def big(n: int):
        return Response(bytes(i % 251 for i in range(n)), media_type="application/octet-stream")

    @app.get("/zeros")
    def zeros(n: int, sleep: float = 0):
        time.sleep(sleep)  # a handler that blocks the loop
        return Response(bytes(n), media_type="application/octet-stream")

    @app.get("/file")
    def file():
        return FileResponse("data.bin")

    @app.get("/stream")
    def stream():
        async def pieces():
            for i in range(40):
                yield (f"piece {i};" * 300).encode()
                await asyncio.sleep(0)
        return StreamingResponse(pieces(), media_type="text/plain")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"{websocket.scope['scheme']} {websocket.url.scheme} {text}")
        await websocket.close()

    async def asgi(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": scope["scheme"].encode()})
    """
)


class Certs:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM
    files in a directory."""

    def __init__(self, directory: Path, name: str = "") -> None:
        self.ca = trustme.CA()
        server = self.ca.issue_cert("127.0.0.1", "localhost")
        client = self.ca.issue_cert("client@example.org")
        self.dir = directory
        self.cert = directory / f"cert{name}.pem"
        self.key = directory / f"key{name}.pem"
        self.ca_file = directory / f"ca{name}.pem"
        self.client = directory / f"client{name}.pem"
        with open(self.cert, "wb") as f:
            for blob in server.cert_chain_pems:
                f.write(blob.bytes())
        server.private_key_pem.write_to_path(str(self.key))
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        client.private_key_and_cert_chain_pem.write_to_path(str(self.client))

    def client_context(self, client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if client_cert:
            ctx.load_cert_chain(str(self.client))
        return ctx


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("tls"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TLSServer:
    """``python -m data_bridge tlsapp:ATTR --ssl-*`` in a child process."""

    def __init__(self, tmp: Path, certs: Certs, *args: str, attr: str = "app") -> None:
        (tmp / "tlsapp.py").write_text(APP)
        (tmp / "data.bin").write_bytes(os.urandom(1_500_000))  # for /file
        self.certs = certs
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (env.get("PYTHONPATH", ""), str(ROOT / "src")) if p
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "data_bridge",
                f"tlsapp:{attr}",
                "--port",
                str(self.port),
                "--ssl-certfile",
                str(certs.cert),
                "--ssl-keyfile",
                str(certs.key),
                *args,
            ],
            cwd=tmp,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client(self, **kw: object) -> httpx.Client:
        kw.setdefault("verify", self.certs.client_context())
        return httpx.Client(base_url=self.url, timeout=10, **kw)  # type: ignore[arg-type]

    def wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server did not start: {self.output()}") from None
                time.sleep(0.05)

    def tls_socket(self, ctx: ssl.SSLContext | None = None, ragged: bool = True) -> ssl.SSLSocket:
        """A TLS connection; ``ragged=False``: a close without close_notify raises
        ssl.SSLEOFError instead of reading as the end of the data."""
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return (ctx or self.certs.client_context()).wrap_socket(
            raw, server_hostname="127.0.0.1", suppress_ragged_eofs=ragged
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"server did not stop: {self.output()}") from None


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., TLSServer]]:
    started: list[TLSServer] = []

    def run(certs: Certs, *args: str, attr: str = "app") -> TLSServer:
        srv = TLSServer(tmp_path, certs, *args, attr=attr)
        started.append(srv)
        srv.wait_ready()
        return srv

    yield run
    for srv in started:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(timeout=10)


@pytest.fixture
def server(start: Callable[..., TLSServer], certs: Certs) -> Iterator[TLSServer]:
    srv = start(certs, "--timeout-keep-alive", "2", "--metrics", "/metrics")
    yield srv
    assert srv.stop() == 0, srv.output()


def assert_serving(srv: TLSServer) -> None:
    with srv.client() as c:
        assert c.get("/").json()["scheme"] == "https"


def assert_all_closed(srv: TLSServer, timeout: float = 8) -> None:
    """The server's open connections (its metrics gauge) fall to one: the scrape's own.
    A connection is counted until it is closed and its TLS session freed with it."""
    deadline = time.monotonic() + timeout
    while True:
        with srv.client() as c:
            text = c.get("/metrics").text
        gauge = re.search(r"^data_bridge_connections (\d+)$", text, re.M)
        assert gauge is not None, text
        if int(gauge.group(1)) == 1:
            return
        assert time.monotonic() < deadline, text
        time.sleep(0.2)


# --- real clients --------------------------------------------------------------------


def test_get_post_and_keep_alive_with_httpx(server: TLSServer) -> None:
    with server.client() as c:
        r = c.get("/")
        # The scheme is https, and HTTPSRedirectMiddleware lets the request through.
        assert r.status_code == 200
        assert r.json() == {"scheme": "https", "url": f"{server.url}/"}
        body = os.urandom(700_000)
        r = c.post("/echo", content=body)
        assert r.json() == {"n": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        for i in range(20):
            assert c.post("/echo", content=b"x" * i).json()["n"] == i
    assert "https://127.0.0.1" in server.output()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_streamed_bodies_over_tls(server: TLSServer) -> None:
    """A body over the window streams over TLS as over plain TCP: pieces no larger than the
    window (what the session decrypts beyond it waits inside the session), a multipart
    upload parsed as it arrives (in memory up to 1 MiB, rolled over to disk beyond), and
    the server's memory flat while 48 MiB go through."""
    with server.client() as c:
        body = os.urandom(3_000_000)
        got = c.post("/hash", content=body).json()
        assert got["n"] == len(body) and got["sha256"] == hashlib.sha256(body).hexdigest()
        assert got["streamed"] and 0 < got["largest"] <= 65536
        for size in (200_000, 1 << 20, 2_500_000):
            data = os.urandom(size)
            r = c.post("/upload", files={"file": ("f.bin", data)})
            assert r.json() == {
                "n": size,
                "sha256": hashlib.sha256(data).hexdigest(),
                "rolled": size > 1 << 20,
            }
        block = os.urandom(1 << 20)
        before = rss_kib(server.proc.pid)
        got = c.post("/hash", content=(block for _ in range(48))).json()
        assert got["n"] == 48 << 20 and got["streamed"]
        if "asan" not in os.environ.get("LD_PRELOAD", ""):  # ASan's quarantine keeps memory
            assert rss_kib(server.proc.pid) - before < 16 * 1024


def test_pipelined_request_after_a_streamed_tls_body(server: TLSServer) -> None:
    """Requests sent in the same records as the end of a streamed body, more of them than
    the window has room for, wait inside the TLS session while the body streams and are
    answered after it (not left for a socket event that never comes)."""
    body = os.urandom(300_000)
    head = f"POST /hash?slow=0.02 HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n"
    gets = 3000  # 84 KB of requests: beyond the window's room at the body's end
    with server.tls_socket() as s:
        s.sendall(head.encode() + body + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * gets)
        reader = Reader(s)
        first = reader.read_response()
        assert first.status == 200
        assert first.json()["sha256"] == hashlib.sha256(body).hexdigest()
        for _ in range(gets):
            r = reader.read_response()
            assert r.status == 200 and r.json()["scheme"] == "https"
    assert_serving(server)


def test_pipelined_requests_on_one_tls_connection(server: TLSServer) -> None:
    with server.tls_socket() as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" * 5)
        reader = Reader(s)  # type: ignore[arg-type]
        for _ in range(5):
            r = reader.read_response()
            assert r.status == 200 and r.json()["scheme"] == "https"
        assert s.selected_alpn_protocol() is None  # the socket offered none


def test_chunked_stream_and_large_response(server: TLSServer) -> None:
    with server.client() as c:
        r = c.get("/stream")
        assert r.headers["transfer-encoding"] == "chunked"
        assert r.text == "".join(f"piece {i};" * 300 for i in range(40))
        n = 5_000_000
        r = c.get("/big", params={"n": n})
        assert r.content == bytes(i % 251 for i in range(n))
        # Still the same connection afterwards.
        assert c.get("/").status_code == 200


@pytest.mark.parametrize("sleep", [0, 2.5])
def test_slow_reader_of_a_large_response_is_not_cut_off(server: TLSServer, sleep: float) -> None:
    # The keep-alive timeout (2 s here) starts once the response is queued, but while the
    # peer goes on reading it, the connection is not closed under it; also when the
    # handler blocked the loop for longer than the timeout (the deadline, taken from the
    # loop's cached time, has then passed before the response is even written).
    n = 24_000_000
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", server.port))
    with server.certs.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(f"GET /zeros?n={n}&sleep={sleep} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, _, body = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        got = len(body)
        t0 = time.monotonic()
        while got < n:
            chunk = s.recv(1 << 20)
            assert chunk, f"closed after {got} of {n} body bytes"
            got += len(chunk)
            if time.monotonic() - t0 < 5:
                time.sleep(0.02)  # slow for 5 s (past the timeout), then at full speed


def test_file_response_whole_and_ranged(server: TLSServer, tmp_path: Path) -> None:
    data = (tmp_path / "data.bin").read_bytes()
    with server.client() as c:
        assert c.get("/file").content == data
        r = c.get("/file", headers={"range": "bytes=1000-199999"})
        assert r.status_code == 206 and r.content == data[1000:200000]


def s_client(srv: TLSServer, *args: str) -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    r = subprocess.run(
        [
            openssl,
            "s_client",
            "-connect",
            f"127.0.0.1:{srv.port}",
            "-CAfile",
            str(srv.certs.ca_file),
            "-verify_return_error",
            "-ign_eof",
            *args,
        ],
        input=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        capture_output=True,
        timeout=20,
    )
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


@pytest.mark.parametrize("version, flag", [("TLSv1.2", "-tls1_2"), ("TLSv1.3", "-tls1_3")])
def test_openssl_s_client_alpn_and_versions(server: TLSServer, version: str, flag: str) -> None:
    out = s_client(server, flag, "-alpn", "h2,http/1.1")
    assert "ALPN protocol: http/1.1" in out
    assert f"Protocol  : {version}" in out or f"New, {version}" in out
    assert "Verify return code: 0 (ok)" in out
    assert "HTTP/1.1 200 OK" in out and '"scheme":"https"' in out


def test_s_client_without_alpn_and_tls_1_1_refused(server: TLSServer) -> None:
    out = s_client(server)
    assert "No ALPN negotiated" in out and "HTTP/1.1 200 OK" in out
    out = s_client(server, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert "HTTP/1.1 200" not in out
    assert_serving(server)


def test_wss_with_the_websockets_client(server: TLSServer) -> None:
    ctx = server.certs.client_context()
    with ws_connect(f"wss://127.0.0.1:{server.port}/ws", ssl=ctx, open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "wss wss hello"


def test_asgi_scope_scheme_is_https(start: Callable[..., TLSServer], certs: Certs) -> None:
    srv = start(certs, attr="asgi")
    with srv.client() as c:
        assert c.get("/").text == "https"
    assert srv.stop() == 0


# --- bad input -----------------------------------------------------------------------


def read_until_closed(sock: socket.socket, timeout: float = 5) -> bytes:
    """What the server sends before it closes the connection (fails on a timeout)."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return got
            got += data
    except ConnectionResetError:
        return got


def test_plain_http_and_garbage_close_the_connection(server: TLSServer) -> None:
    for payload in (
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        os.urandom(3000),
        b"\x16\x03\x01\x00\x05hello" + b"\x00" * 100,
    ):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(payload)
            got = read_until_closed(s)
            assert not got.startswith(b"HTTP/")
            # Nothing but, at most, a TLS alert record (content type 21).
            assert got == b"" or got[0] == 21
    assert_serving(server)
    assert_all_closed(server)


def client_hello() -> bytes:
    """A real ClientHello, as a TLS client's first flight."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_abandoned_handshakes(server: TLSServer) -> None:
    hello = client_hello()
    # Half a ClientHello, then the client goes away.
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(hello[: len(hello) // 2])
    # Half a ClientHello, then silence: the server closes it (keep-alive timeout, 2 s).
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(hello[: len(hello) // 2])
        t0 = time.monotonic()
        assert read_until_closed(s, timeout=8) == b""
        assert time.monotonic() - t0 < 6
    # A whole ClientHello, the server's answer never read, then gone.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(hello)
        time.sleep(0.1)
    assert_serving(server)
    assert_all_closed(server)


def test_idle_connection_gets_close_notify(server: TLSServer) -> None:
    with server.tls_socket(ragged=False) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert Reader(s).read_response().status == 200  # type: ignore[arg-type]
        # The keep-alive timeout ends it with close_notify: a clean end of data (b""), where
        # a bare FIN would raise ssl.SSLEOFError.
        s.settimeout(8)
        assert s.recv(100) == b""


def test_client_certificate_required(start: Callable[..., TLSServer], certs: Certs) -> None:
    srv = start(certs, "--ssl-cert-reqs", "2", "--ssl-ca-certs", str(certs.ca_file))
    with pytest.raises(httpx.TransportError), srv.client() as c:
        c.get("/")
    with srv.client(verify=certs.client_context(client_cert=True)) as c:
        assert c.get("/").json()["scheme"] == "https"
    # A certificate from another CA is refused too.
    other = Certs(certs.dir, name="-other")
    ctx = certs.client_context()
    ctx.load_cert_chain(str(other.client))
    with pytest.raises(httpx.TransportError), srv.client(verify=ctx) as c:
        c.get("/")
    assert srv.stop() == 0


def test_sighup_reloads_the_certificate(
    start: Callable[..., TLSServer], tmp_path: Path, certs: Certs
) -> None:
    first = Certs(tmp_path, name="-live")
    srv = start(first)
    old = srv.tls_socket(first.client_context())
    old.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    reader = Reader(old)  # type: ignore[arg-type]
    assert reader.read_response().status == 200
    # New files in place of the old ones, then SIGHUP.
    second = Certs(tmp_path, name="-next")
    shutil.copy(second.cert, first.cert)
    shutil.copy(second.key, first.key)
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "certificate reloaded" not in srv.output():
        assert time.monotonic() < deadline, srv.output()
        time.sleep(0.05)
    # New connections get the new certificate: the old CA no longer verifies it.
    with pytest.raises(ssl.SSLCertVerificationError):
        srv.tls_socket(first.client_context()).close()
    with srv.tls_socket(second.client_context()) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert Reader(s).read_response().status == 200  # type: ignore[arg-type]
    # The connection opened before keeps its session.
    old.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert reader.read_response().status == 200
    old.close()
    # A reload that fails keeps the current certificate.
    first.key.write_text("not a key")
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "certificate not reloaded" not in srv.output():
        assert time.monotonic() < deadline, srv.output()
        time.sleep(0.05)
    with srv.tls_socket(second.client_context()) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert Reader(s).read_response().status == 200  # type: ignore[arg-type]
    assert srv.stop() == 0


def test_connection_close_ends_with_close_notify(server: TLSServer) -> None:
    with server.tls_socket(ragged=False) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        reader = Reader(s)  # type: ignore[arg-type]
        assert reader.read_response().status == 200
        assert reader.at_eof()


def test_http10_stream_ends_with_close_notify(server: TLSServer) -> None:
    # An HTTP/1.0 streamed body is delimited by the close (RFC 9112 §6.3): close_notify is
    # what tells the client the body is complete, not truncated.
    with server.tls_socket(ragged=False) as s:
        s.sendall(b"GET /stream HTTP/1.0\r\nHost: localhost\r\n\r\n")
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert body.decode() == "".join(f"piece {i};" * 300 for i in range(40))


SCRIPT = textwrap.dedent(
    """
    import sys
    import data_bridge
    from tlsapp import app, asgi

    port, cert, key, which = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    if which == "run":
        app.run("127.0.0.1", port, ssl_certfile=cert, ssl_keyfile=key, log_level="warning")
    else:
        data_bridge.serve(asgi, "127.0.0.1", port, ssl_certfile=cert, ssl_keyfile=key)
    """
)


@pytest.mark.parametrize("which", ["run", "serve"])
def test_app_run_and_serve_take_the_ssl_options(tmp_path: Path, certs: Certs, which: str) -> None:
    """App.run(ssl_certfile=, ssl_keyfile=) serves an App, data_bridge.serve an ASGI app;
    both see the https scheme."""
    (tmp_path / "tlsapp.py").write_text(APP)
    (tmp_path / "script.py").write_text(SCRIPT)
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (env.get("PYTHONPATH", ""), str(ROOT / "src"), str(tmp_path)) if p
    )
    argv = [sys.executable, "script.py", str(port), str(certs.cert), str(certs.key), which]
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with httpx.Client(verify=certs.client_context(), timeout=5) as c:
                    r = c.get(f"https://127.0.0.1:{port}/")
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert (r.json()["scheme"] if which == "run" else r.text) == "https"
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def test_workers_serve_tls(start: Callable[..., TLSServer], certs: Certs) -> None:
    srv = start(certs, "--workers", "2")
    deadline = time.monotonic() + 15
    while True:  # the supervisor's socket listens before the workers are up
        try:
            with srv.client() as c:
                assert c.get("/").json()["scheme"] == "https"
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, srv.output()
            time.sleep(0.1)
    for _ in range(10):
        with srv.client() as c:
            assert c.get("/", headers={"connection": "close"}).status_code == 200
    assert srv.stop() == 0


# --- configuration -------------------------------------------------------------------


def test_encrypted_key_with_password(
    start: Callable[..., TLSServer], tmp_path: Path, certs: Certs
) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(certs.key.read_bytes(), password=None)
    encrypted = tmp_path / "key-encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    base = ["--ssl-certfile", str(certs.cert), "--ssl-keyfile", str(encrypted)]
    r = run_cli(tmp_path, *base)
    assert r.returncode != 0 and "give its password" in r.stderr
    r = run_cli(tmp_path, *base, "--ssl-keyfile-password", "wrong")
    assert r.returncode != 0 and "wrong password" in r.stderr
    srv = start(certs, "--ssl-keyfile", str(encrypted), "--ssl-keyfile-password", "s3cret")
    assert_serving(srv)
    assert srv.stop() == 0


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "tlsapp.py").write_text(APP)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (env.get("PYTHONPATH", ""), str(ROOT / "src")) if p
    )
    return subprocess.run(
        [sys.executable, "-m", "data_bridge", "tlsapp:app", "--port", str(free_port()), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_configuration_errors_are_named(tmp_path: Path, certs: Certs) -> None:
    cert, key = str(certs.cert), str(certs.key)
    cases = [
        (["--ssl-certfile", str(tmp_path / "none.pem"), "--ssl-keyfile", key], "certificate chain"),
        (["--ssl-keyfile", key], "ssl_certfile is required"),
        (["--ssl-certfile", cert, "--ssl-keyfile", str(certs.client)], "does not match"),
        (["--ssl-certfile", cert, "--ssl-keyfile", key, "--ssl-version", "3"], "TLS 1.0"),
        (["--ssl-certfile", cert, "--ssl-keyfile", key, "--ssl-cert-reqs", "5"], "ssl_cert_reqs"),
        (["--ssl-certfile", cert, "--ssl-keyfile", key, "--ssl-ciphers", "NOPE"], "no cipher"),
        (
            ["--ssl-certfile", cert, "--ssl-keyfile", key, "--ssl-ca-certs", "/nonexistent"],
            "CA certificates",
        ),
    ]
    for args, message in cases:
        r = run_cli(tmp_path, *args)
        assert r.returncode != 0, args
        assert message in r.stderr, (args, r.stderr)


def test_help_lists_the_ssl_options(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "data_bridge", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    for flag in (
        "--ssl-keyfile",
        "--ssl-certfile",
        "--ssl-keyfile-password",
        "--ssl-version",
        "--ssl-cert-reqs",
        "--ssl-ca-certs",
        "--ssl-ciphers",
    ):
        assert flag in r.stdout
