"""File bodies sent by the server with sendfile(2) (csrc/server/sendfile.c, csrc/files/body.c):
FileResponse and StaticFiles over TCP and through the TestClient's socketpair, against
Starlette's FileResponse where bytes can differ (multipart/byteranges), and the cases a
server must survive: a slow reader (memory stays flat), a client that leaves mid-file
(every descriptor closed), a file truncated while it is sent, HEAD, pipelined requests
behind a file and keep-alive after it."""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Reader, ServerProcess

from data_bridge.api import FastAPI
from data_bridge.api.responses import FileResponse
from data_bridge.api.staticfiles import StaticFiles
from data_bridge.api.testclient import TestClient

BIG = 50 * 1024 * 1024 + 7


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("files")
    (d / "big.bin").write_bytes(os.urandom(BIG))
    (d / "small.txt").write_bytes(b"0123456789" * 6554)  # 64 KiB + 4
    (d / "empty.txt").write_bytes(b"")
    return d


@pytest.fixture(scope="module")
def srv(root: Path) -> Iterator[ServerProcess]:
    os.environ["DB_TEST_STATIC"] = str(root)
    try:
        s = ServerProcess("files_app.py").start()
    finally:
        del os.environ["DB_TEST_STATIC"]
    yield s
    code, log = s.stop()
    assert code == 0, log


def get(path: str, method: str = "GET", headers: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nhost: t\r\n{headers}\r\n".encode()


def fds(srv: ServerProcess) -> int:
    assert srv.proc is not None
    return len(os.listdir(f"/proc/{srv.proc.pid}/fd"))


def rss_kib(srv: ServerProcess) -> int:
    assert srv.proc is not None
    status = Path(f"/proc/{srv.proc.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def settle_fds(srv: ServerProcess, target: int, timeout: float = 5) -> int:
    deadline = time.monotonic() + timeout
    while fds(srv) > target and time.monotonic() < deadline:
        time.sleep(0.02)
    return fds(srv)


def baseline_fds(srv: ServerProcess) -> int:
    time.sleep(0.2)  # earlier connections are closed by then
    return fds(srv)


def test_large_file_byte_exact(srv: ServerProcess, root: Path) -> None:
    data = (root / "big.bin").read_bytes()
    for route in ("/file", "/file-async"):
        r = httpx.get(f"{srv.url}{route}?path={root / 'big.bin'}", timeout=30)
        assert r.status_code == 200
        assert r.headers["content-length"] == str(BIG)
        assert r.content == data
    r = httpx.get(f"{srv.url}/static/big.bin", timeout=30)
    assert r.status_code == 200 and r.content == data
    r = httpx.get(f"{srv.url}/static/empty.txt")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"


def test_ranges(srv: ServerProcess, root: Path) -> None:
    data = (root / "big.bin").read_bytes()
    url = f"{srv.url}/static/big.bin"
    r = httpx.get(url, headers={"Range": "bytes=1000-2999999"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 1000-2999999/{BIG}"
    assert r.content == data[1000:3000000]
    r = httpx.get(url, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = httpx.get(url, headers={"Range": f"bytes={BIG}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{BIG}"


def parse_byteranges(body: bytes, ctype: str) -> list[tuple[str, bytes]]:
    boundary = ctype.split("boundary=")[1].encode()
    assert body.endswith(b"\r\n--" + boundary + b"--")
    parts = []
    for chunk in body[: -len(boundary) - 6].split(b"--" + boundary + b"\r\n")[1:]:
        head, _, content = chunk.partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        parts.append((head.decode(), content))
    return parts


def test_multi_range_matches_starlette(srv: ServerProcess, root: Path) -> None:
    """multipart/byteranges: the same parts as Starlette's FileResponse (the boundary is
    random in both), each range sent from the file by the server."""
    from starlette.applications import Starlette
    from starlette.responses import FileResponse as StarletteFileResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient as StarletteClient

    path = root / "big.bin"
    spec = "bytes=0-9,1000000-3999999,-5"
    peer = Starlette(routes=[Route("/f", lambda request: StarletteFileResponse(path))])
    want = StarletteClient(peer).get("/f", headers={"Range": spec})
    got = httpx.get(f"{srv.url}/file?path={path}", headers={"Range": spec}, timeout=30)
    assert got.status_code == want.status_code == 206
    assert got.headers["content-length"] == str(len(got.content))
    assert len(got.content) == len(want.content)
    ours = parse_byteranges(got.content, got.headers["content-type"])
    theirs = parse_byteranges(want.content, want.headers["content-type"])
    assert ours == theirs
    data = path.read_bytes()
    assert [c for _, c in ours] == [data[:10], data[1000000:4000000], data[-5:]]


def test_head_then_pipelined(srv: ServerProcess, root: Path) -> None:
    """HEAD gets the GET head with no body; a GET of the file and a small request
    pipelined behind it are answered in order on the same connection, which stays open."""
    s = srv.connect(timeout=30)
    reader = Reader(s)
    s.sendall(get("/static/big.bin", "HEAD") + get("/static/small.txt") + get("/hello"))
    r = reader.read_response(head_request=True)
    assert r.status == 200 and r.header("content-length") == str(BIG)
    r = reader.read_response()
    assert r.status == 200 and r.body == (root / "small.txt").read_bytes()
    assert reader.read_response().body == b"Hello, world!"
    s.sendall(
        get("/static/big.bin")
        + get("/hello")
        + get("/static/big.bin", headers="Range: bytes=5-9\r\n")
    )
    r = reader.read_response()
    assert r.status == 200 and len(r.body) == BIG
    assert r.body == (root / "big.bin").read_bytes()
    assert reader.read_response().body == b"Hello, world!"
    r = reader.read_response()
    assert r.status == 206 and r.body == (root / "big.bin").read_bytes()[5:10]
    s.close()


def test_slow_reader_keeps_memory_flat(srv: ServerProcess, root: Path) -> None:
    """A client that reads 50 MiB slowly: the server holds none of it (sendfile copies
    from the page cache as the socket drains), so its RSS does not grow with the file."""
    httpx.get(f"{srv.url}/static/small.txt")
    before = rss_kib(srv)
    s = srv.connect(timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    s.sendall(get("/static/big.bin"))
    got = 0
    peak = before
    next_sample = 0
    deadline = time.monotonic() + 60
    while got < BIG and time.monotonic() < deadline:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += len(chunk)
        if got < 8 << 20:
            time.sleep(0.002)  # slow for the first 8 MiB
        if got >= next_sample:  # the server's RSS about every MiB received
            peak = max(peak, rss_kib(srv))
            next_sample = got + (1 << 20)
    peak = max(peak, rss_kib(srv))
    s.close()
    assert got > BIG  # the head and the whole body
    assert peak - before < 4096, (before, peak)


def test_client_leaves_mid_file(srv: ServerProcess, root: Path) -> None:
    """The client closes after the head: the server's file body ends, the file's
    descriptor, the socket and its duplicate are closed, and the server serves on."""
    before = baseline_fds(srv)
    for route in ("/file", "/static/big.bin"):
        s = srv.connect()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(get(f"{route}?path={root / 'big.bin'}" if route == "/file" else route))
        assert s.recv(65536).startswith(b"HTTP/1.1 200 OK")
        time.sleep(0.1)
        assert fds(srv) >= before + 3  # socket, file, the socket's duplicate
        s.close()
        assert settle_fds(srv, before) == before
    assert httpx.get(f"{srv.url}/hello").text == "Hello, world!"


def test_file_truncated_while_sending(srv: ServerProcess, tmp_path: Path) -> None:
    """The file shrinks after the head declared its length: the body ends short, the
    connection closes (the client sees fewer bytes than Content-Length) and nothing is
    left open."""
    path = tmp_path / "shrinks.bin"
    data = os.urandom(20 * 1024 * 1024)
    path.write_bytes(data)
    before = baseline_fds(srv)
    s = srv.connect(timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(get(f"/file?path={path}"))
    received = s.recv(65536)
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert f"content-length: {len(data)}".encode() in received
    os.truncate(path, 1024 * 1024)
    while chunk := s.recv(1 << 20):
        received += chunk
    s.close()
    body = received.partition(b"\r\n\r\n")[2]
    assert 1024 * 1024 <= len(body) < len(data)
    # Bytes past the new end that were already in the socket's buffer go out as the
    # pages hold them now (sendfile queues page references, not copies): only what the
    # file still has is certain.
    assert body[: 1024 * 1024] == data[: 1024 * 1024]
    assert settle_fds(srv, before) == before
    assert httpx.get(f"{srv.url}/hello").text == "Hello, world!"


def test_background_runs_after_file(srv: ServerProcess, root: Path) -> None:
    path = root / "small.txt"
    r = httpx.get(f"{srv.url}/file-background?path={path}")
    assert r.content == path.read_bytes()
    assert str(path) in httpx.get(f"{srv.url}/done").text


def test_missing_file_is_500_and_nothing_leaks(srv: ServerProcess, root: Path) -> None:
    before = baseline_fds(srv)
    assert httpx.get(f"{srv.url}/file?path={root / 'missing'}").status_code == 500
    assert httpx.get(f"{srv.url}/static/missing").status_code == 404
    for _ in range(50):
        with httpx.Client() as c:
            for spec in ("bytes=0-0", "bytes=0-0,5-6", None):
                headers = {"Range": spec} if spec else {}
                assert c.get(f"{srv.url}/static/small.txt", headers=headers).status_code in (
                    200,
                    206,
                )
            c.head(f"{srv.url}/static/small.txt")
    assert settle_fds(srv, before) == before


def test_testclient_socketpair(root: Path) -> None:
    """The TestClient's socketpair (an AF_UNIX socket adopted by the server) takes
    sendfile(2) too."""
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=root), name="static")

    @app.get("/f")
    def f(path: str) -> FileResponse:
        return FileResponse(path)

    data = (root / "big.bin").read_bytes()
    client = TestClient(app)
    r = client.get("/static/big.bin")
    assert r.status_code == 200 and r.content == data
    r = client.get(f"/f?path={root / 'big.bin'}", headers={"Range": "bytes=7-70,1000-"})
    assert r.status_code == 206
    parts = parse_byteranges(r.content, r.headers["content-type"])
    assert [c for _, c in parts] == [data[7:71], data[1000:]]
    etag = client.get("/static/small.txt").headers["etag"]
    assert client.get("/static/small.txt", headers={"If-None-Match": etag}).status_code == 304
    r = client.head("/static/big.bin")
    assert r.status_code == 200 and r.headers["content-length"] == str(BIG) and r.content == b""


# --- StaticFiles answered by the server (csrc/app/files_cache.c) ------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "a.css").write_bytes(b"body { color: green; }\n" * 100)
    (tmp_path / "static" / "docs").mkdir()
    (tmp_path / "static" / "docs" / "index.html").write_text("<p>docs</p>")
    (tmp_path / "outside.txt").write_text("secret")
    return tmp_path


def counted_app(directory: Path, **kwargs: object) -> tuple[TestClient, list[str], StaticFiles]:
    """A TestClient on an app mounting StaticFiles whose Python get_response counts its
    calls: a request the server answers from the cache does not call it."""
    files = StaticFiles(directory=directory, **kwargs)  # type: ignore[arg-type]
    calls: list[str] = []
    python_answer = files.get_response

    def get_response(path: str, method: str, headers: object) -> object:
        calls.append(path)
        return python_answer(path, method, headers)

    files.get_response = get_response  # type: ignore[method-assign]
    app = FastAPI()
    app.mount("/static", files, name="static")
    return TestClient(app), calls, files


def without_date(headers: httpx.Headers) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.multi_items() if k != "date"]


def test_static_repeated_requests_answered_natively(site: Path) -> None:
    client, calls, files = counted_app(site / "static", html=True)
    first = client.get("/static/a.css")
    assert calls == ["a.css"] and files.file_cache.size == 1
    second = client.get("/static/a.css")
    assert calls == ["a.css"]  # the server answered
    assert second.status_code == 200 and second.content == first.content
    assert without_date(second.headers) == without_date(first.headers)
    head = client.head("/static/a.css")
    assert calls == ["a.css"] and head.content == b""
    assert without_date(head.headers) == without_date(first.headers)
    # A directory's index.html under html=True, remembered under its request path.
    assert client.get("/static/docs/").text == "<p>docs</p>"
    assert client.get("/static/docs/").text == "<p>docs</p>"
    assert calls == ["a.css", "docs/"]
    # Percent-encoded, the path is the same key.
    assert client.get("/static/%61.css").content == first.content
    assert calls == ["a.css", "docs/"]


def test_static_conditional_answers_match_python(site: Path) -> None:
    client, calls, files = counted_app(site / "static")
    r = client.get("/static/a.css")
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    files.file_cache.clear()
    python_304 = client.get("/static/a.css", headers={"If-None-Match": etag})
    assert python_304.status_code == 304 and len(calls) == 2
    for value in (etag, f'W/{etag}, "other"', "*", f' "x" ,{etag} '):
        native = client.get("/static/a.css", headers={"If-None-Match": value})
        assert native.status_code == 304 and native.content == b""
        assert without_date(native.headers) == without_date(python_304.headers)
    assert len(calls) == 2
    # A tag that does not match: the file, natively.
    r = client.get("/static/a.css", headers={"If-None-Match": '"other"'})
    assert r.status_code == 200 and len(calls) == 2
    # If-Modified-Since repeating Last-Modified: 304 natively; another date: Python decides.
    r = client.get("/static/a.css", headers={"If-Modified-Since": modified})
    assert r.status_code == 304 and len(calls) == 2
    r = client.get("/static/a.css", headers={"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert r.status_code == 200 and len(calls) == 3
    # A Range goes to Python (FileResponse, still sent with sendfile).
    r = client.get("/static/a.css", headers={"Range": "bytes=0-3"})
    assert r.status_code == 206 and r.content == b"body" and len(calls) == 4


def test_static_changed_file_goes_back_to_python(site: Path) -> None:
    client, calls, files = counted_app(site / "static")
    old = client.get("/static/a.css")
    path = site / "static" / "a.css"
    path.write_bytes(b"changed")
    os.utime(path, ns=(0, old_mtime_ns := path.stat().st_mtime_ns + 10**9))
    r = client.get("/static/a.css")
    assert r.content == b"changed" and r.headers["etag"] != old.headers["etag"]
    assert len(calls) == 2
    assert client.get("/static/a.css").content == b"changed" and len(calls) == 2
    assert path.stat().st_mtime_ns == old_mtime_ns
    path.unlink()
    assert client.get("/static/a.css").status_code == 404 and len(calls) == 3


def test_static_symlink_swapped_in_is_refused(site: Path) -> None:
    """A remembered file replaced by a symbolic link leaving the directory: the server's
    open refuses links (openat2 RESOLVE_NO_SYMLINKS), Python's check answers 404."""
    client, calls, _ = counted_app(site / "static")
    assert client.get("/static/a.css").status_code == 200
    target = site / "static" / "a.css"
    target.unlink()
    os.symlink(site / "outside.txt", target)
    r = client.get("/static/a.css")
    assert r.status_code == 404 and len(calls) == 2


def test_static_gzip_policy_streams_compressed(site: Path) -> None:
    from data_bridge.api.middleware.gzip import GZipMiddleware

    app = FastAPI()
    app.add_middleware(GZipMiddleware)
    app.mount("/static", StaticFiles(directory=site / "static"), name="static")
    client = TestClient(app)
    for _ in range(2):
        r = client.get("/static/a.css", headers={"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"
        assert r.content == (site / "static" / "a.css").read_bytes()


def test_http10_and_connection_close(srv: ServerProcess, root: Path) -> None:
    """The body is framed by Content-Length whatever the version; without keep-alive the
    connection is closed after the file's last byte (and only then)."""
    data = (root / "small.txt").read_bytes()
    for raw in (
        b"GET /static/small.txt HTTP/1.0\r\n\r\n",
        get("/static/small.txt", headers="connection: close\r\n"),
    ):
        s = srv.connect()
        s.sendall(raw)
        reader = Reader(s)
        r = reader.read_response()
        assert r.status == 200 and r.body == data
        assert r.header("connection") == "close"
        assert reader.at_eof()
        s.close()
    # HTTP/1.0 with keep-alive: answered and kept open for the next request.
    s = srv.connect()
    reader = Reader(s)
    s.sendall(b"GET /static/small.txt HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
    assert reader.read_response().body == data
    s.sendall(b"GET /hello HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
    assert reader.read_response().body == b"Hello, world!"
    s.close()


def test_client_that_stops_reading_times_out(root: Path) -> None:
    """send_timeout: a client that takes nothing more of a file body for that long loses
    its connection, and the file's descriptors are closed; one that keeps reading is not
    cut. (As nginx's send_timeout, the time runs between two writes that sent something:
    a reader slow enough that the socket's send buffer stays full for that long is cut.)"""
    os.environ["DB_TEST_STATIC"] = str(root)
    try:
        srv = ServerProcess("files_app.py", limits={"send_timeout": 2.0}).start()
    finally:
        del os.environ["DB_TEST_STATIC"]
    try:
        before = baseline_fds(srv)
        stalled = srv.connect(timeout=10)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        stalled.sendall(get("/static/big.bin"))
        slow = srv.connect(timeout=10)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        slow.sendall(get("/static/small.txt") + get("/static/big.bin"))
        slow_got = 0
        deadline = time.monotonic() + 4.5
        while time.monotonic() < deadline:  # about 2.5 MB/s
            slow_got += len(slow.recv(262144))
            time.sleep(0.1)
        # The stalled connection is gone; the slow one keeps its socket, file and dup.
        assert before + 2 <= fds(srv) <= before + 3
        received = 0
        while chunk := stalled.recv(1 << 20):  # what was in flight, then the close
            received += len(chunk)
        assert received < BIG
        stalled.close()
        slow.close()
        assert settle_fds(srv, before) == before
        assert slow_got > 0
    finally:
        code, log = srv.stop()
        assert code == 0, log


def test_static_http_middleware_runs_every_time(site: Path) -> None:
    """With @app.middleware("http") the server does not answer from the cache: the
    middleware runs around every static file, as around every route."""
    app = FastAPI()
    seen: list[str] = []

    @app.middleware("http")
    async def mark(request: object, call_next: object) -> object:
        seen.append(request.url.path)  # type: ignore[attr-defined]
        response = await call_next(request)  # type: ignore[operator]
        response.headers["x-mw"] = "1"
        return response

    app.mount("/static", StaticFiles(directory=site / "static"), name="static")
    client = TestClient(app)
    for _ in range(3):
        r = client.get("/static/a.css")
        assert r.status_code == 200 and r.headers["x-mw"] == "1"
    assert seen == ["/static/a.css"] * 3
