"""ASGI 3 applications served by the native server (csrc/asgi/, data_bridge.serve): a raw
ASGI app (tests/py/apps/asgi_app.py) and a real Starlette app (apps/starlette_app.py),
each in a child process on 127.0.0.1, exercised with httpx and raw sockets.

Covered: the http scope field by field, request bodies (Content-Length and chunked),
responses in one message and streamed with more_body (chunked, declared Content-Length,
HTTP/1.0, HEAD), flow control against a reader that does not read, http.disconnect
(after the response, and a client leaving a long stream), protocol violations (500 or a
closed connection, logged with the message type, the server serving on), malformed
requests answered by the parser without reaching the app, the lifespan protocol
(startup/shutdown, failure, unsupported, state), and the command line."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import APPS, ROOT, Reader, ServerProcess


def start_app(app: str, **env: str) -> ServerProcess:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return ServerProcess(app).start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def lifespan_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("asgi") / "lifespan.log"


@pytest.fixture(scope="module")
def asgi(lifespan_log: Path) -> Iterator[ServerProcess]:
    srv = start_app("asgi_app.py", DB_TEST_LIFESPAN_LOG=str(lifespan_log))
    yield srv
    code, log = srv.stop()
    assert code == 0, log
    assert_clean(log)
    # The lifespan ran around serving: startup before the first request, shutdown after
    # the server closed.
    assert lifespan_log.read_text().split() == ["startup", "shutdown"]


@pytest.fixture(scope="module")
def starlette_srv() -> Iterator[ServerProcess]:
    srv = ServerProcess("starlette_app.py").start()
    yield srv
    code, log = srv.stop()
    assert code == 0, log
    assert_clean(log)


def assert_clean(log: str) -> None:
    """Nothing a sanitizer build would report (make pytest-asan runs these tests on one),
    and no Task left behind at shutdown."""
    for marker in ("AddressSanitizer", "runtime error:", "Task was destroyed but it is pending"):
        assert marker not in log, log


def get(path: str, version: str = "1.1", method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode()


def read_head(reader: Reader) -> tuple[str, dict[str, str]]:
    while b"\r\n\r\n" not in reader.buf:
        if not reader._fill():
            raise ConnectionError(f"closed before a full response head: {reader.buf!r}")
    head, _, reader.buf = reader.buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def read_chunks(reader: Reader) -> tuple[list[bytes], bool]:
    """The chunks of a chunked body and whether the last-chunk arrived."""
    chunks = []
    while True:
        while b"\r\n" not in reader.buf:
            if not reader._fill():
                return chunks, False
        line, _, rest = reader.buf.partition(b"\r\n")
        size = int(line, 16)
        while len(rest) < size + 2:
            if not reader._fill():
                return chunks, False
            line, _, rest = reader.buf.partition(b"\r\n")
        if size == 0:
            reader.buf = rest[2:]
            return chunks, True
        chunks.append(rest[:size])
        reader.buf = rest[size + 2 :]


def events(srv: ServerProcess) -> list[str]:
    return httpx.get(srv.url + "/events").json()


def wait_for_event(srv: ServerProcess, event: str, timeout: float = 5) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = events(srv)
        if event in seen:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{event!r} not in {events(srv)}")


# --- responses -----------------------------------------------------------------------


def test_hello(asgi: ServerProcess) -> None:
    r = httpx.get(asgi.url + "/hello")
    assert r.status_code == 200
    assert r.text == "Hello, world!"
    assert r.headers["content-type"] == "text/plain"
    assert r.headers["content-length"] == "13"
    assert "transfer-encoding" not in r.headers
    assert "date" in r.headers


def test_scope_fields(asgi: ServerProcess) -> None:
    s = asgi.connect()
    client_port = s.getsockname()[1]
    s.sendall(
        b"GET /scope/caf%C3%A9/a%2Fb?x=1&y=%20z HTTP/1.1\r\nHost: t\r\n"
        b"X-Custom-Header: Some Value\r\nx-dup: 1\r\nX-Dup: 2\r\n\r\n"
    )
    r = Reader(s).read_response()
    s.close()
    assert r.status == 200
    scope = r.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    # path is percent-decoded (UTF-8), raw_path is the bytes as sent.
    assert scope["path"] == "/scope/café/a/b"
    assert scope["raw_path"] == {"bytes": "/scope/caf%C3%A9/a%2Fb"}
    assert scope["query_string"] == {"bytes": "x=1&y=%20z"}
    assert scope["root_path"] == ""
    # Headers: a list of (name, value) byte pairs, names lowercased, order and duplicates
    # kept, values as sent.
    assert scope["headers"]["seq"] == "list"
    pairs = [tuple(v["bytes"] for v in pair["items"]) for pair in scope["headers"]["items"]]
    assert pairs == [
        ("host", "t"),
        ("x-custom-header", "Some Value"),
        ("x-dup", "1"),
        ("x-dup", "2"),
    ]
    assert scope["client"] == {"seq": "tuple", "items": ["127.0.0.1", client_port]}
    assert scope["server"] == {"seq": "tuple", "items": ["127.0.0.1", asgi.port]}
    assert set(scope["state"]) == {"db", "shared"}


def test_scope_addresses_per_connection(asgi: ServerProcess) -> None:
    # Each connection's own client port on every request of it, interleaved with another
    # connection's (the addresses are kept per connection, the host strings shared).
    socks = [asgi.connect(), asgi.connect()]
    readers = [Reader(s) for s in socks]
    for _ in range(2):
        for s, reader in zip(socks, readers, strict=True):
            s.sendall(get("/scope"))
            scope = reader.read_response().json()
            assert scope["client"] == {"seq": "tuple", "items": ["127.0.0.1", s.getsockname()[1]]}
            assert scope["server"] == {"seq": "tuple", "items": ["127.0.0.1", asgi.port]}
    for s in socks:
        s.close()


def test_scope_http10_and_methods(asgi: ServerProcess) -> None:
    s = asgi.connect()
    s.sendall(get("/scope", version="1.0", method="DELETE"))
    r = Reader(s).read_response()
    s.close()
    scope = r.json()
    assert scope["http_version"] == "1.0"
    assert scope["method"] == "DELETE"
    assert scope["query_string"] == {"bytes": ""}
    r = httpx.request("PURGE", asgi.url + "/scope")
    assert r.json()["method"] == "PURGE"


def test_echo_body(asgi: ServerProcess) -> None:
    body = os.urandom(300_000)
    r = httpx.post(asgi.url + "/echo", content=body)
    assert r.status_code == 200
    assert r.content == body
    # Over the 64 KiB read window, the body comes as it arrives: pieces of at most 64 KiB.
    assert int(r.headers["x-pieces"]) >= 300_000 // 65536 + 1
    # Within it, the server reads the whole body before dispatching: one message.
    r = httpx.post(asgi.url + "/echo", content=body[:65536])
    assert r.content == body[:65536] and r.headers["x-pieces"] == "1"
    r = httpx.post(asgi.url + "/echo", content=b"")
    assert r.content == b"" and r.headers["x-pieces"] == "1"


def test_chunked_request_body(asgi: ServerProcess) -> None:
    s = asgi.connect()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    for piece in (b"hello ", b"chunked ", b"world"):
        s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        time.sleep(0.02)
    s.sendall(b"0\r\n\r\n")
    reader = Reader(s)
    r = reader.read_response()
    assert r.status == 200
    assert r.body == b"hello chunked world"
    # Keep-alive goes on after it.
    s.sendall(get("/hello"))
    assert reader.read_response().body == b"Hello, world!"
    s.close()


def test_body_over_limit_never_reaches_app(asgi: ServerProcess) -> None:
    before = httpx.get(asgi.url + "/flow-stats").json()["requests"]
    from data_bridge.api.applications import Limits

    r = httpx.post(asgi.url + "/echo", content=b"x" * (Limits.max_body + 1))
    assert r.status_code == 413
    after = httpx.get(asgi.url + "/flow-stats").json()["requests"]
    assert after == before + 1  # only the /flow-stats request itself


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ],
)
def test_malformed_requests_never_reach_app(asgi: ServerProcess, raw: bytes, status: int) -> None:
    before = httpx.get(asgi.url + "/flow-stats").json()["requests"]
    s = asgi.connect()
    s.sendall(raw)
    reader = Reader(s)
    r = reader.read_response()
    assert r.status == status
    assert reader.at_eof()
    s.close()
    after = httpx.get(asgi.url + "/flow-stats").json()["requests"]
    assert after == before + 1


def test_slow_app_does_not_block_other_connections(asgi: ServerProcess) -> None:
    slow = asgi.connect()
    slow.sendall(get("/sleep?s=1.5"))
    time.sleep(0.05)
    t0 = time.monotonic()
    for _ in range(5):
        assert httpx.get(asgi.url + "/hello").text == "Hello, world!"
    assert time.monotonic() - t0 < 1.0
    assert Reader(slow).read_response().body == b"slept"
    slow.close()


def test_concurrent_receivers_get_disconnect(asgi: ServerProcess) -> None:
    assert httpx.post(asgi.url + "/two-receivers", content=b"x").text == "ok"
    wait_for_event(asgi, "two:http.disconnect,http.disconnect")


def test_pipelined_requests_answered_in_order(asgi: ServerProcess) -> None:
    s = asgi.connect()
    s.sendall(get("/stream?n=2") + get("/hello") + get("/scope?third"))
    reader = Reader(s)
    status, headers = read_head(reader)
    assert headers["transfer-encoding"] == "chunked"
    chunks, complete = read_chunks(reader)
    assert complete and b"".join(chunks) == b"piece 0;piece 1;"
    assert reader.read_response().body == b"Hello, world!"
    assert reader.read_response().json()["query_string"] == {"bytes": "third"}
    s.close()


# --- streaming responses -------------------------------------------------------------


def test_streaming_more_body_chunked(asgi: ServerProcess) -> None:
    s = asgi.connect()
    s.sendall(get("/stream?n=4"))
    reader = Reader(s)
    status, headers = read_head(reader)
    assert status == "HTTP/1.1 200 OK"
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    chunks, complete = read_chunks(reader)
    assert complete
    assert chunks == [b"piece 0;", b"piece 1;", b"piece 2;", b"piece 3;"]
    s.sendall(get("/hello"))
    assert reader.read_response().body == b"Hello, world!"
    s.close()


def test_streaming_with_declared_content_length(asgi: ServerProcess) -> None:
    s = asgi.connect()
    s.sendall(get("/stream-cl") + get("/declared-length"))
    reader = Reader(s)
    r = reader.read_response()
    assert r.header("content-length") == "12"
    assert r.header("transfer-encoding") is None
    assert r.body == b"abcdefghijkl"
    r = reader.read_response()
    assert r.header("content-length") == "5" and r.body == b"hello"
    s.close()


def test_declared_length_in_one_message_is_a_complete_response(asgi: ServerProcess) -> None:
    # Written as one complete response (one write): framed the same for GET, HEAD (the head
    # alone, the length kept) and HTTP/1.0, and the connection serves on.
    s = asgi.connect()
    s.sendall(get("/declared-length", method="HEAD") + get("/declared-length") + get("/hello"))
    reader = Reader(s)
    status, headers = read_head(reader)
    assert status == "HTTP/1.1 200 OK" and headers["content-length"] == "5"
    r = reader.read_response()
    assert r.header("content-length") == "5" and r.body == b"hello"
    assert r.header("transfer-encoding") is None
    assert reader.read_response().body == b"Hello, world!"
    s.close()
    s = asgi.connect()
    s.sendall(get("/declared-length", version="1.0"))
    reader = Reader(s)
    r = reader.read_response()
    assert r.header("content-length") == "5" and r.body == b"hello"
    assert reader.at_eof()
    s.close()


def test_streaming_http10_is_close_delimited(asgi: ServerProcess) -> None:
    s = asgi.connect()
    s.sendall(get("/stream?n=3", version="1.0"))
    reader = Reader(s)
    status, headers = read_head(reader)
    assert "transfer-encoding" not in headers and "content-length" not in headers
    assert reader.at_eof()
    assert reader.buf == b"piece 0;piece 1;piece 2;"
    s.close()


def test_head_and_204_have_no_body(asgi: ServerProcess) -> None:
    s = asgi.connect()
    s.sendall(get("/stream?n=3", method="HEAD") + get("/status") + get("/hello"))
    reader = Reader(s)
    status, headers = read_head(reader)
    assert status == "HTTP/1.1 200 OK"
    r = reader.read_response()
    assert r.status == 204 and r.header("content-length") is None and r.body == b""
    assert reader.read_response().body == b"Hello, world!"
    s.close()


def test_connection_close_header(asgi: ServerProcess) -> None:
    s = asgi.connect()
    s.sendall(get("/close"))
    reader = Reader(s)
    r = reader.read_response()
    assert r.body == b"bye"
    assert r.header("connection") == "close"
    assert reader.at_eof()
    s.close()


def test_flow_control(asgi: ServerProcess) -> None:
    """The producer waits in send() while the client does not read: far less than the
    64 MiB it has to send is queued meanwhile."""
    s = asgi.connect(timeout=20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(get("/flow"))
    time.sleep(0.7)
    queued = httpx.get(asgi.url + "/flow-stats").json()["sent"]
    total = 64 * 1024 * 1024
    assert 0 < queued < total // 4, queued
    reader = Reader(s)
    status, headers = read_head(reader)
    assert int(headers["content-length"]) == total
    got = len(reader.buf)
    while got < total:
        data = s.recv(1 << 20)
        assert data
        got += len(data)
    assert got == total
    s.close()
    assert httpx.get(asgi.url + "/flow-stats").json()["sent"] == total


# --- http.response.pathsend ---------------------------------------------------------


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pathsend") / "data.bin"
    path.write_bytes(os.urandom(5 * 1024 * 1024 + 123))
    return path


def test_scope_announces_pathsend(asgi: ServerProcess) -> None:
    extensions = httpx.get(asgi.url + "/scope").json()["extensions"]
    assert extensions == {"http.response.pathsend": {}}


def test_pathsend_sends_the_file(asgi: ServerProcess, data_file: Path) -> None:
    """5 MiB through a reader that waits first: the file goes out as the output drains."""
    s = asgi.connect(timeout=20)
    s.sendall(get(f"/pathsend?path={data_file}") + get("/hello"))
    time.sleep(0.3)
    reader = Reader(s)
    r = reader.read_response()
    assert r.status == 200
    assert r.header("content-length") == str(data_file.stat().st_size)
    assert r.header("content-type") == "application/octet-stream"
    assert r.body == data_file.read_bytes()
    assert reader.read_response().body == b"Hello, world!"
    s.close()
    wait_for_event(asgi, "pathsend:None:done")


def test_pathsend_head_and_declared_length(asgi: ServerProcess, data_file: Path) -> None:
    s = asgi.connect()
    s.sendall(get(f"/pathsend?path={data_file}", method="HEAD"))
    reader = Reader(s)
    r = reader.read_response(head_request=True)
    assert r.status == 200 and r.header("content-length") == str(data_file.stat().st_size)
    # A content-length header of the application frames the body (here: the first 10
    # bytes of the file).
    s.sendall(get(f"/pathsend?path={data_file}&declare=10") + get("/hello"))
    r = reader.read_response()
    assert r.body == data_file.read_bytes()[:10]
    assert reader.read_response().body == b"Hello, world!"
    s.close()


def test_pathsend_errors(asgi: ServerProcess, tmp_path: Path) -> None:
    for path in (f"/pathsend?path={tmp_path}/missing", f"/pathsend?path={tmp_path}"):
        r = httpx.get(asgi.url + path)
        assert r.status_code == 500
    assert httpx.get(asgi.url + "/pathsend-first").status_code == 500
    log = asgi.read_log()
    assert "(message type 'http.response.pathsend'): cannot open" in log
    assert "is not a regular file" in log
    assert "http.response.pathsend must follow http.response.start" in log
    assert httpx.get(asgi.url + "/hello").text == "Hello, world!"


def test_pathsend_client_leaves(asgi: ServerProcess, tmp_path: Path) -> None:
    """The client leaves while a 64 MiB file is being sent: the server's file body ends,
    its descriptors (the file's and the socket's) are closed, and the server serves on.
    send() completed when the file was handed to the server."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: zeros, no disk
    assert asgi.proc is not None
    fds = Path(f"/proc/{asgi.proc.pid}/fd")
    time.sleep(0.2)  # the earlier tests' connections are closed by now
    before = len(list(fds.iterdir()))
    s = asgi.connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(get(f"/pathsend?path={big}&tag=leave"))
    reader = Reader(s)
    read_head(reader)
    wait_for_event(asgi, "pathsend:leave:done")
    # Socket, file and the socket's duplicate polled for POLLOUT (sendfile.c).
    assert len(list(fds.iterdir())) >= before + 2
    s.close()
    deadline = time.monotonic() + 5
    while len(list(fds.iterdir())) > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(list(fds.iterdir())) == before
    assert httpx.get(asgi.url + "/hello").text == "Hello, world!"


# --- disconnects ---------------------------------------------------------------------


def test_receive_after_response_is_disconnect(asgi: ServerProcess) -> None:
    r = httpx.post(asgi.url + "/after-body", content=b"abc")
    assert r.text == "ok"
    wait_for_event(asgi, "after-response:http.disconnect")


def test_disconnect_during_long_stream(asgi: ServerProcess) -> None:
    s = asgi.connect()
    s.sendall(get("/long"))
    reader = Reader(s)
    read_head(reader)
    while reader.buf.count(b"tick") < 3:
        assert reader._fill()
    s.close()
    # The pending receive() got http.disconnect, and the next send() raised an OSError.
    wait_for_event(asgi, "receive:http.disconnect")
    wait_for_event(asgi, "send:ConnectionResetError")
    assert httpx.get(asgi.url + "/hello").text == "Hello, world!"


def test_disconnect_before_response_started(asgi: ServerProcess) -> None:
    s = asgi.connect()
    s.sendall(b"POST /wait-disconnect HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
    time.sleep(0.2)
    s.close()
    wait_for_event(asgi, "pending:http.disconnect")
    wait_for_event(asgi, "pending-send:ConnectionResetError")
    assert httpx.get(asgi.url + "/hello").text == "Hello, world!"


def test_pipelined_bytes_wait_while_app_works(asgi: ServerProcess) -> None:
    """The server reads on while an application works (to notice a client that leaves);
    pipelined requests read meanwhile are answered afterwards, in order."""
    s = asgi.connect()
    s.sendall(get("/stream?n=30"))
    time.sleep(0.01)
    s.sendall(get("/hello") + get("/scope?x"))
    reader = Reader(s)
    read_head(reader)
    chunks, complete = read_chunks(reader)
    assert complete and len(chunks) == 30
    assert reader.read_response().body == b"Hello, world!"
    assert reader.read_response().json()["query_string"] == {"bytes": "x"}
    s.close()


# --- protocol violations -------------------------------------------------------------

BEFORE_START = [
    ("body-before-start", "'http.response.body'"),
    ("start-twice", "'http.response.start'"),
    ("unknown-type", "'http.response.nonsense'"),
    ("bad-status", "'http.response.start'"),
    ("bad-headers", "'http.response.start'"),
    ("split-header", "'http.response.start'"),
    ("str-body", "'http.response.body'"),
    ("not-a-dict", "None"),
]


@pytest.mark.parametrize(("kind", "type_repr"), BEFORE_START)
def test_violation_before_anything_sent_is_500(
    asgi: ServerProcess, kind: str, type_repr: str
) -> None:
    s = asgi.connect()
    s.sendall(get(f"/violation/{kind}"))
    reader = Reader(s)
    r = reader.read_response()
    assert r.status == 500
    assert r.body == b"Internal Server Error"
    # The connection stays usable and the server serves on.
    s.sendall(get("/hello"))
    assert reader.read_response().body == b"Hello, world!"
    s.close()
    log = asgi.read_log()
    assert f"ASGI protocol violation (message type {type_repr})" in log, log
    if kind == "split-header":
        assert "x-injected" not in r.headers


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("no-start", "returned without sending http.response.start"),
        ("start-only", "returned without completing the response"),
        ("raise", "ValueError: boom before start"),
    ],
)
def test_app_that_did_not_answer_gets_500(asgi: ServerProcess, kind: str, message: str) -> None:
    s = asgi.connect()
    s.sendall(get(f"/violation/{kind}"))
    reader = Reader(s)
    assert reader.read_response().status == 500
    s.sendall(get("/hello"))
    assert reader.read_response().body == b"Hello, world!"
    s.close()
    log = asgi.read_log()
    assert message in log, log
    if kind == "raise":
        assert "Exception in ASGI application" in log and "Traceback" in log


@pytest.mark.parametrize(
    "kind", ["raise-mid-stream", "start-mid-stream", "long-content-length", "short-content-length"]
)
def test_violation_after_head_closes_connection(asgi: ServerProcess, kind: str) -> None:
    s = asgi.connect()
    s.sendall(get(f"/violation/{kind}"))
    reader = Reader(s)
    status, headers = read_head(reader)
    assert status == "HTTP/1.1 200 OK"
    assert reader.at_eof()
    # The body was cut short: no last-chunk, or fewer bytes than declared.
    if "content-length" in headers:
        assert len(reader.buf) < int(headers["content-length"])
    else:
        assert not reader.buf.endswith(b"0\r\n\r\n")
    s.close()
    assert httpx.get(asgi.url + "/hello").text == "Hello, world!"
    log = asgi.read_log()
    if kind == "raise-mid-stream":
        assert "ValueError: boom mid-stream" in log
    elif kind == "start-mid-stream":
        assert "ASGI protocol violation (message type 'http.response.start')" in log
    elif kind == "long-content-length":
        assert "more body bytes than the content-length header declared" in log
    else:
        assert "fewer body bytes than its content-length header declared" in log


def test_send_after_complete_raises_and_response_stands(asgi: ServerProcess) -> None:
    s = asgi.connect()
    s.sendall(get("/violation/after-complete") + get("/hello"))
    reader = Reader(s)
    assert reader.read_response().body == b"done"
    assert reader.read_response().body == b"Hello, world!"
    s.close()
    wait_for_event(asgi, "after-complete:RuntimeError")


# --- leaks ---------------------------------------------------------------------------


def test_no_reference_leaks(asgi: ServerProcess, data_file: Path) -> None:
    """Thousands of requests of every kind (plain, bodies, streams, pathsend, violations,
    exceptions, disconnects) must not grow the server's count of allocated Python
    blocks."""

    def load(rounds: int) -> None:
        with httpx.Client(base_url=asgi.url, timeout=10) as c:
            for i in range(rounds):
                c.get("/hello")
                c.get(f"/scope/x%20{i}?a={i}", headers={"x-i": str(i)})
                c.post("/echo", content=b"y" * (i % 50 * 100))
                c.get("/stream?n=3")
                c.get("/stream-cl")
                c.get("/declared-length")
                c.get("/state")
                c.get("/violation/body-before-start")
                c.get("/violation/raise")
                c.get("/violation/no-start")
                with contextlib.suppress(httpx.RemoteProtocolError):
                    c.get("/violation/raise-mid-stream")  # a cut-short body
                c.get("/violation/after-complete")
                c.get(f"/pathsend?path={data_file}&declare=1000")
                c.get("/pathsend?path=/nonexistent")
                c.post("/two-receivers", content=b"z")
        for _ in range(rounds // 10):
            s = asgi.connect()
            s.sendall(b"POST /wait-disconnect HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nq")
            s.close()
            s = asgi.connect()
            s.sendall(get("/stream?n=50"))
            s.recv(10)
            s.close()

    def blocks() -> int:
        return httpx.get(asgi.url + "/debug/blocks").json()["blocks"]

    load(60)  # warm caches, interned strings, free lists
    time.sleep(0.5)
    before = blocks()
    load(200)
    time.sleep(0.5)
    after = blocks()
    # 200 rounds are ~3,000 requests: a leak of one object per request shows as thousands.
    assert after - before < 500, (before, after)


# --- lifespan ------------------------------------------------------------------------


def test_lifespan_state_is_copied_per_request(asgi: ServerProcess) -> None:
    first = httpx.get(asgi.url + "/state").json()
    second = httpx.get(asgi.url + "/state").json()
    assert first["present"] and first["db"] == "connected"
    # A shallow copy: the list made at startup is shared, keys set by a request are not.
    assert second["shared"] == first["shared"] + 1
    assert "mine" in first["keys"] and second["keys"] == first["keys"]


def test_lifespan_startup_failed(tmp_path: Path) -> None:
    """lifespan.startup.failed: the message is logged, the server never listens, and the
    process exits with status 3."""
    log_file = tmp_path / "events.log"
    env = dict(
        os.environ,
        DB_TEST_LIFESPAN="fail",
        DB_TEST_LIFESPAN_LOG=str(log_file),
        PYTHONPATH=str(ROOT / "src"),
    )
    proc = subprocess.run(
        [sys.executable, str(APPS / "asgi_app.py"), "0"],
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 3
    err = proc.stderr.decode()
    assert "ASGI lifespan startup failed: database is down" in err
    assert "serving on" not in err
    assert log_file.read_text().split() == ["startup-failed"]


@pytest.mark.parametrize("mode", ["raise", "ignore"])
def test_lifespan_unsupported(mode: str) -> None:
    srv = start_app("asgi_app.py", DB_TEST_LIFESPAN=mode)
    try:
        assert httpx.get(srv.url + "/state").json() == {"present": False}
        assert httpx.get(srv.url + "/hello").text == "Hello, world!"
    finally:
        code, log = srv.stop()
    assert code == 0, log
    assert_clean(log)
    if mode == "raise":
        assert "ASGI 'lifespan' protocol appears unsupported" in log


def test_graceful_shutdown_finishes_requests_then_lifespan(tmp_path: Path) -> None:
    """SIGTERM while a request is in progress: it is answered, then the lifespan shutdown
    runs, and the process exits 0."""
    log_file = tmp_path / "events.log"
    srv = start_app("asgi_app.py", DB_TEST_LIFESPAN_LOG=str(log_file))
    try:
        s = srv.connect()
        s.sendall(get("/sleep?s=0.5"))
        time.sleep(0.1)
        srv.proc.send_signal(signal.SIGTERM)
        r = Reader(s).read_response()
        assert r.status == 200 and r.body == b"slept"
        assert r.header("connection") == "close"
        s.close()
        srv.proc.wait(timeout=10)
    finally:
        code, log = srv.stop()
    assert code == 0, log
    assert_clean(log)
    assert log_file.read_text().split() == ["startup", "shutdown"]


def test_workers(tmp_path: Path) -> None:
    """workers=2: two processes share the listening socket, each with its lifespan."""
    log_file = tmp_path / "events.log"
    saved = os.environ.get("DB_TEST_LIFESPAN_LOG")
    os.environ["DB_TEST_LIFESPAN_LOG"] = str(log_file)
    try:
        srv = ServerProcess("asgi_app.py", workers=2).start()
    finally:
        if saved is None:
            os.environ.pop("DB_TEST_LIFESPAN_LOG", None)
        else:
            os.environ["DB_TEST_LIFESPAN_LOG"] = saved
    try:
        pids = set()
        deadline = time.monotonic() + 10
        while len(pids) < 2 and time.monotonic() < deadline:
            # New connections are spread over the workers by the kernel.
            pids.add(httpx.get(srv.url + "/pid", headers={"connection": "close"}).text)
        assert len(pids) == 2
        assert httpx.get(srv.url + "/state").json()["db"] == "connected"
    finally:
        code, log = srv.stop()
    assert code == 0, log
    assert_clean(log)
    assert sorted(log_file.read_text().split()) == ["shutdown", "shutdown", "startup", "startup"]


# --- the command line ----------------------------------------------------------------


def test_cli_serves_asgi_app() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "data_bridge",
            "asgi_app:app",
            "--port",
            str(port),
            "--root-path",
            "/api",
        ],
        cwd=APPS,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/hello")
                break
            except httpx.ConnectError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert r.text == "Hello, world!"
        assert httpx.get(f"http://127.0.0.1:{port}/state").json()["db"] == "connected"
        scope = httpx.get(f"http://127.0.0.1:{port}/scope/x%20y").json()
        # path and raw_path carry the root_path in front, as uvicorn's --root-path.
        assert scope["root_path"] == "/api"
        assert scope["path"] == "/api/scope/x y"
        assert scope["raw_path"] == {"bytes": "/api/scope/x%20y"}
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()
    assert_clean(err.decode())


def test_cli_keeps_app_on_native_path() -> None:
    """An App given to the CLI (and so to data_bridge.serve) is served by its routes, not
    as an ASGI application."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_bridge", "main_app:app", "--port", str(port)],
        cwd=APPS,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/users/7")
                break
            except httpx.ConnectError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert r.status_code == 200 and r.json()["id"] == 7
        # The native router's 422 (an ASGI app would never produce this body).
        bad = httpx.get(f"http://127.0.0.1:{port}/users/x").json()
        assert bad["detail"][0]["loc"] == ["path", "user_id"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()
    assert_clean(err.decode())


# --- Starlette -----------------------------------------------------------------------


def test_starlette_routes_and_middleware(starlette_srv: ServerProcess) -> None:
    with httpx.Client(base_url=starlette_srv.url) as client:
        r = client.get("/")
        assert r.status_code == 200 and r.text == "Hello, Starlette!"
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        # Both middlewares ran: the pure ASGI one and the BaseHTTPMiddleware.
        assert r.headers["x-base-middleware"] == "yes"
        first_tag = int(r.headers["x-tag"])
        r = client.get("/items/42", params=[("q", "x y"), ("tag", "a"), ("tag", "b")])
        assert r.json() == {"id": 42, "q": "x y", "tags": ["a", "b"]}
        assert int(r.headers["x-tag"]) == first_tag + 1
        assert client.get("/items/nope").status_code == 404
        assert client.post("/").status_code == 405


def test_starlette_json_body(starlette_srv: ServerProcess) -> None:
    payload = {"name": "widget", "sizes": [1, 2, 3], "nested": {"ok": True}}
    body = json.dumps(payload).encode()
    r = httpx.post(
        starlette_srv.url + "/echo", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 201
    assert r.json() == {"received": payload, "length": len(body)}


def test_starlette_streaming(starlette_srv: ServerProcess) -> None:
    with httpx.stream("GET", starlette_srv.url + "/stream", params={"n": 20}) as r:
        assert r.headers["content-type"] == "application/x-ndjson"
        assert r.headers["transfer-encoding"] == "chunked"
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert lines == [{"i": i} for i in range(20)]


def test_starlette_lifespan_state_and_request_info(starlette_srv: ServerProcess) -> None:
    assert httpx.get(starlette_srv.url + "/state").json() == {"greeting": "hello from lifespan"}
    info = httpx.get(starlette_srv.url + "/info?a=1", headers={"X-Thing": "v"}).json()
    assert info["url"] == f"{starlette_srv.url}/info?a=1"
    assert info["client"][0] == "127.0.0.1"
    assert info["headers"]["x-thing"] == "v"


def test_starlette_file_response_uses_pathsend(
    starlette_srv: ServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(os.urandom(300_000))
    r = httpx.get(starlette_srv.url + "/file", params={"path": str(path)})
    assert r.status_code == 200
    assert r.content == path.read_bytes()
    assert r.headers["content-length"] == "300000"
    assert r.headers["content-disposition"] == 'attachment; filename="data.bin"'
    assert "transfer-encoding" not in r.headers


def test_starlette_is_disconnected(starlette_srv: ServerProcess) -> None:
    r = httpx.post(starlette_srv.url + "/disconnected", content=b"payload")
    assert r.json() == {"body": "payload", "disconnected": [False, False]}


def test_starlette_handler_error_is_500(starlette_srv: ServerProcess) -> None:
    with httpx.Client(base_url=starlette_srv.url) as client:
        r = client.get("/fail")
        assert r.status_code == 500
        assert client.get("/").text == "Hello, Starlette!"
    assert "RuntimeError: handler failed" in starlette_srv.read_log()


# --- FastAPI (the real package) ------------------------------------------------------


@pytest.fixture(scope="module", params=["asgi", "native"])
def fastapi_srv(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    # fastapi comes with requirements/fastapi-tests.txt (make fastapi-check), not test.txt.
    # Served whole through the ASGI driver, and with its routes compiled to native ones
    # (tests/py/test_fastapi_native.py has the detailed comparison).
    pytest.importorskip("fastapi")
    srv = start_app("fastapi_app.py", DB_TEST_NATIVE="1" if request.param == "native" else "0")
    yield srv
    code, log = srv.stop()
    assert code == 0, log
    assert_clean(log)


def test_fastapi_app_through_asgi(fastapi_srv: ServerProcess) -> None:
    with httpx.Client(base_url=fastapi_srv.url) as client:
        assert client.get("/items/5", params={"q": "x"}).json() == {"item_id": 5, "q": "x"}
        r = client.get("/items/404")
        assert r.status_code == 404 and r.json() == {"detail": "Item not found"}
        r = client.get("/items/abc")
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["path", "item_id"]
        item = {"name": "widget", "price": 2.5, "tags": ["a"]}
        r = client.post("/items", json=item)
        assert r.status_code == 201 and r.json() == item
        assert client.post("/items", json={"name": "x"}).status_code == 422
        assert client.get("/sync").json() == {"sync": True}
        assert client.get("/numbers").text == "0\n1\n2\n3\n4\n"
        assert client.get("/openapi.json").json()["paths"]["/items/{item_id}"]
