"""StreamingResponse and FileResponse on the wire: chunked framing (exact bytes), pieces
sent as they are produced, declared Content-Length, HTTP/1.0 close-delimited bodies,
HEAD, failures mid-stream, client disconnects, backpressure against a slow reader,
pipelining and keep-alive after a stream, and files."""

from __future__ import annotations

import email.utils
import hashlib
import os
import re
import socket
import time
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import Reader, ServerProcess

from data_bridge.api import FileResponse, StreamingResponse


def get(path: str, version: str = "1.1", method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode()


def read_head(reader: Reader) -> tuple[str, dict[str, str]]:
    while b"\r\n\r\n" not in reader.buf:
        if not reader._fill():
            raise ConnectionError(f"closed before a full response head: {reader.buf!r}")
    head, _, reader.buf = reader.buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def open_gated_stream(
    srv: ServerProcess, k: str, after: bytes = b""
) -> tuple[socket.socket, Reader]:
    """Requests /stream/gated (followed by `after`, pipelined) and reads until its first
    piece arrived: the generator is then waiting at its gate."""
    s = srv.connect()
    s.sendall(get(f"/stream/gated?key={k}") + after)
    reader = Reader(s)
    read_head(reader)
    while b"first;" not in reader.buf:
        assert reader._fill()
    return s, reader


def read_chunks(reader: Reader) -> tuple[list[bytes], bool]:
    """The chunks of a chunked body, and whether the last-chunk arrived (False when the
    connection closed before it)."""
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
        assert rest[size : size + 2] == b"\r\n"
        reader.buf = rest[size + 2 :]
        if size == 0:
            return chunks, True
        chunks.append(rest[:size])


def read_to_eof(reader: Reader, timeout: float = 5) -> bytes:
    reader.sock.settimeout(timeout)
    while reader._fill():
        pass
    data, reader.buf = reader.buf, b""
    return data


def stats(server, key: str) -> dict[str, int]:
    return httpx.get(f"{server.url}/stream/stats", params={"key": key}, timeout=5).json()


def wait_for(predicate, timeout: float = 10):
    """Short polling with a deadline (the observed state lives in the server process)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def key() -> str:
    return uuid.uuid4().hex


# StreamingResponse -------------------------------------------------------------------


def test_chunked_framing_exact_bytes(server):
    s = server.connect()
    s.sendall(get("/stream/chunks?n=3"))
    reader = Reader(s)
    status, headers = read_head(reader)
    assert status == "HTTP/1.1 200 OK"
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers and "connection" not in headers
    assert headers["content-type"] == "text/plain; charset=utf-8"
    while not reader.buf.endswith(b"0\r\n\r\n"):
        assert reader._fill()
    assert reader.buf == b"6\r\nchunk0\r\n6\r\nchunk1\r\n6\r\nchunk2\r\n0\r\n\r\n"
    s.close()


def test_empty_stream_is_only_the_last_chunk(server):
    s = server.connect()
    s.sendall(get("/stream/chunks?n=0"))
    reader = Reader(s)
    read_head(reader)
    assert read_chunks(reader) == ([], True)
    assert reader.buf == b""
    s.close()


def test_str_chunks_are_utf8(server):
    r = httpx.get(f"{server.url}/stream/str", timeout=5)
    assert r.status_code == 200
    assert r.content == "héllo wörld".encode()
    assert r.headers["transfer-encoding"] == "chunked"


def test_sync_iterator(server):
    k = key()
    r = httpx.get(f"{server.url}/stream/sync", params={"key": k}, timeout=5)
    assert r.content == b"s0;s1;s2;s3;"
    assert r.headers["x-kind"] == "sync"
    assert "content-type" not in r.headers
    assert wait_for(lambda: stats(server, k)["finalized"] == 1)


def test_sync_iterator_runs_off_the_loop(server):
    """A sync iterator that blocks does not block the server: it is advanced in the
    thread pool, so the release request is served while it waits."""
    k = key()
    with httpx.Client(base_url=server.url, timeout=5) as client:
        with client.stream("GET", "/stream/blocking", params={"key": k}) as r:
            pieces = r.iter_raw()
            assert next(pieces) == b"a;"
            release = httpx.get(f"{server.url}/stream/release-thread", params={"key": k})
            assert release.status_code == 200
            assert b"".join(pieces) == b"b"


def test_first_piece_arrives_before_the_generator_finishes(server):
    k = key()
    with httpx.Client(base_url=server.url, timeout=5) as client:
        with client.stream("GET", "/stream/gated", params={"key": k}) as r:
            assert r.status_code == 200
            pieces = r.iter_raw()
            # The generator waits for the release after its first piece: receiving the
            # piece proves it was sent while the generator was still running.
            assert next(pieces) == b"first;"
            assert httpx.get(f"{server.url}/stream/release", params={"key": k}).status_code == 200
            assert b"".join(pieces) == b"second"


def test_parked_handler_and_dependencies_return_streams(server):
    with httpx.Client(base_url=server.url, timeout=5) as client:
        for _ in range(3):
            assert client.get("/stream/parked").content == b"/stream/parked;parked"
            assert client.get("/stream/depends", params={"n": 3}).content == b"dep0;dep1;dep2;"
    s = server.connect()
    s.sendall(get("/stream/parked") + get("/stream/depends") + get("/plaintext"))
    reader = Reader(s)
    read_head(reader)
    assert read_chunks(reader) == ([b"/stream/parked", b";parked"], True)
    read_head(reader)
    assert read_chunks(reader) == ([b"dep0;", b"dep1;"], True)
    assert reader.read_response().body == b"Hello, World!"
    s.close()


def test_background_tasks_run_after_the_stream(server):
    k = key()
    with httpx.Client(base_url=server.url, timeout=5) as client:
        with client.stream("GET", "/stream/background", params={"key": k}) as r:
            pieces = r.iter_raw()
            assert next(pieces) == b"first;"
            assert stats(server, k)["finalized"] == 0
            assert httpx.get(f"{server.url}/stream/release", params={"key": k}).status_code == 200
            assert b"".join(pieces) == b"second"
    assert wait_for(lambda: stats(server, k)["finalized"] == 1)


def test_shutdown_cuts_a_stream_that_never_ends():
    """At the graceful timeout the stream's task is cancelled like a parked handler: the
    body is cut short (no last chunk), the generator is closed, the server exits."""
    srv = ServerProcess("main_app.py", graceful=0.5).start()
    try:
        s, reader = open_gated_stream(srv, key())
    finally:
        code, log = srv.stop()
    assert code == 0, log
    chunks, complete = read_chunks(reader)
    assert chunks == [b"first;"] and not complete
    s.close()


def test_http10_gets_a_close_delimited_body(server):
    s = server.connect()
    s.sendall(get("/stream/chunks?n=3", version="1.0"))
    reader = Reader(s)
    status, headers = read_head(reader)
    assert status == "HTTP/1.1 200 OK"
    assert headers["connection"] == "close"
    assert "transfer-encoding" not in headers and "content-length" not in headers
    assert read_to_eof(reader) == b"chunk0chunk1chunk2"
    s.close()


def test_head_sends_the_head_and_never_runs_the_generator(server):
    k = key()
    s = server.connect()
    s.sendall(get(f"/stream/forever?key={k}", method="HEAD") + get("/plaintext"))
    reader = Reader(s)
    status, headers = read_head(reader)
    assert status == "HTTP/1.1 200 OK"
    assert headers["transfer-encoding"] == "chunked"
    assert headers["content-type"] == "application/octet-stream"
    # No body: the next response follows the head directly.
    r = reader.read_response()
    assert r.status == 200 and r.body == b"Hello, World!"
    assert stats(server, k) == {"started": 0, "produced": 0, "finalized": 0}
    s.close()


def test_head_of_a_sync_iterator_closes_it_unconsumed(server):
    k = key()
    r = httpx.head(f"{server.url}/stream/sync", params={"key": k}, timeout=5)
    assert r.status_code == 200 and r.content == b""
    assert stats(server, k)["produced"] == 0


def test_no_content_status_sends_no_body(server):
    k = key()
    s = server.connect()
    s.sendall(get(f"/stream/sync?key={k}&status=204") + get("/plaintext"))
    reader = Reader(s)
    status, headers = read_head(reader)
    assert status == "HTTP/1.1 204 No Content"
    assert "transfer-encoding" not in headers and "content-length" not in headers
    assert reader.read_response().body == b"Hello, World!"
    assert stats(server, k)["produced"] == 0
    s.close()


def test_cors_headers_on_a_stream(server):
    r = httpx.get(
        f"{server.url}/stream/chunks", headers={"Origin": "https://app.example"}, timeout=5
    )
    assert r.content == b"chunk0chunk1chunk2"
    assert r.headers["access-control-allow-origin"] == "https://app.example"


def test_declared_content_length_is_honoured(server):
    s = server.connect()
    reader = Reader(s)
    s.sendall(get("/stream/length?declared=15&pieces=3"))
    r = reader.read_response()
    assert r.status == 200 and r.body == b"123451234512345"
    assert r.header("content-length") == "15" and r.header("transfer-encoding") is None
    # Keep-alive goes on after an exact body.
    s.sendall(get("/plaintext"))
    assert reader.read_response().body == b"Hello, World!"
    s.close()


@pytest.mark.parametrize(
    ("declared", "pieces", "received"),
    [(12, 3, b"1234512345"), (20, 3, b"123451234512345")],
    ids=["too-much", "too-little"],
)
def test_content_length_mismatch_closes_the_connection(server, declared, pieces, received):
    s = server.connect()
    s.sendall(get(f"/stream/length?declared={declared}&pieces={pieces}"))
    reader = Reader(s)
    _, headers = read_head(reader)
    assert headers["content-length"] == str(declared)
    # Never more than declared, and the close tells the client the body is short.
    assert read_to_eof(reader) == received
    s.close()


def test_exception_mid_stream_truncates_the_body(server):
    s = server.connect()
    s.sendall(get("/stream/fail") + get("/plaintext"))
    reader = Reader(s)
    _, headers = read_head(reader)
    assert headers["transfer-encoding"] == "chunked"
    chunks, complete = read_chunks(reader)
    assert chunks == [b"before the failure;"] and not complete
    assert reader.buf == b""  # the pipelined request is not answered
    s.close()
    # httpx sees the truncation as an error, never as a well-formed body.
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{server.url}/stream/fail", timeout=5)
    assert httpx.get(f"{server.url}/plaintext", timeout=5).status_code == 200


def test_client_disconnect_finalizes_the_generator(server):
    k = key()
    s = server.connect()
    s.sendall(get(f"/stream/forever?key={k}&size=4096&pause=0.001"))
    reader = Reader(s)
    read_head(reader)
    while len(reader.buf) < 3 * 4096:
        assert reader._fill()
    s.close()
    assert wait_for(lambda: stats(server, k)["finalized"] == 1)
    assert stats(server, k)["started"] == 1
    assert httpx.get(f"{server.url}/plaintext", timeout=5).status_code == 200


@pytest.mark.parametrize("how", ["close", "half-close"])
def test_client_leaving_an_idle_stream_finalizes_it(server, how):
    """The generator waits (nothing is written): the server still notices the client
    leaving (it keeps reading while a response streams) and closes the generator."""
    k = key()
    s, reader = open_gated_stream(server, k, after=get("/plaintext"))
    if how == "close":
        s.close()
    else:
        s.shutdown(socket.SHUT_WR)
        assert reader.at_eof()
        s.close()
    assert wait_for(lambda: httpx.get(f"{server.url}/stream/gates").json().get(k) == "closed")


def test_slow_reader_stalls_the_producer(server):
    """The producer waits while the client does not read: what it made stays bounded by
    the connection's write limit (1 MiB) plus the kernel's socket buffers."""
    k = key()
    size = 64 * 1024
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.settimeout(5)
    s.connect(("127.0.0.1", server.port))
    s.sendall(get(f"/stream/forever?key={k}&size={size}"))
    # Stop reading; wait until production stops growing.
    last, stable = -1, 0
    deadline = time.monotonic() + 20
    while stable < 10:
        assert time.monotonic() < deadline, "the producer never stalled"
        produced = stats(server, k)["produced"]
        stable = stable + 1 if produced == last else 0
        last = produced
        time.sleep(0.02)
    # What can be queued: the server's write limit, the kernel's send buffer (its maximum,
    # autotuned), the client's small receive buffer (doubled by the kernel), a piece; and
    # 1 MiB of slack for kernel accounting.
    try:
        wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        wmem_max = 4 * 1024 * 1024
    bound = 2 * 1024 * 1024 + wmem_max + 2 * 64 * 1024 + 2 * size
    assert 0 < last * size <= bound, (last, bound)
    # Reading resumes production.
    reader = Reader(s)
    got = 0
    while got < 4 * last * size:
        assert reader._fill()
        got += len(reader.buf)
        reader.buf = b""
    assert stats(server, k)["produced"] > last
    # And leaving while the producer waits on the drain finalizes it.
    s.close()
    assert wait_for(lambda: stats(server, k)["finalized"] == 1)


def test_server_log_after_failures_and_disconnects():
    """A failing iterator is logged once with its traceback, as handler errors are; a
    client that leaves mid-stream is not an error and logs nothing."""
    srv = ServerProcess("main_app.py").start()
    try:
        k = key()
        s = srv.connect()
        s.sendall(get(f"/stream/forever?key={k}&size=4096&pause=0.001"))
        reader = Reader(s)
        read_head(reader)
        assert reader._fill()
        s.close()
        assert wait_for(lambda: stats(srv, k)["finalized"] == 1)
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"{srv.url}/stream/fail", timeout=5)
    finally:
        code, log = srv.stop()
    assert code == 0, log
    assert log.count("Traceback") == 1, log
    assert "Exception in streaming response for /stream/fail" in log
    assert "RuntimeError: stream broke" in log
    assert "/stream/forever" not in log and "ConnectionResetError" not in log


def test_pipelined_requests_after_a_stream_are_answered_in_order(server):
    s = server.connect()
    s.sendall(get("/plaintext") + get("/stream/chunks?n=2") + get("/users/7") + get("/plaintext"))
    reader = Reader(s)
    assert reader.read_response().body == b"Hello, World!"
    _, headers = read_head(reader)
    assert headers["transfer-encoding"] == "chunked"
    assert read_chunks(reader) == ([b"chunk0", b"chunk1"], True)
    assert reader.read_response().json()["id"] == 7
    assert reader.read_response().body == b"Hello, World!"
    s.close()


@pytest.mark.parametrize("count", [1, 120])
def test_requests_sent_during_a_stream_are_answered_after_it(server, count):
    """Requests that arrive while a response streams are read ahead (up to a limit, then
    reading pauses) and answered after the stream, in order."""
    k = key()
    s, reader = open_gated_stream(server, k)
    pad = "p" * 1000
    s.sendall(b"".join(get(f"/users/{i}?pad={pad}") for i in range(count)))
    assert httpx.get(f"{server.url}/stream/release", params={"key": k}).status_code == 200
    assert read_chunks(reader) == ([b"first;", b"second"], True)
    for i in range(count):
        assert reader.read_response().json()["id"] == i
    s.close()


def test_keep_alive_after_a_stream(server):
    s = server.connect()
    reader = Reader(s)
    for n in (1, 3, 2):
        s.sendall(get(f"/stream/chunks?n={n}"))
        read_head(reader)
        assert read_chunks(reader) == ([f"chunk{i}".encode() for i in range(n)], True)
    s.sendall(get("/users/3"))
    assert reader.read_response().json()["id"] == 3
    s.close()
    with httpx.Client(base_url=server.url, timeout=5) as client:
        for _ in range(3):
            assert client.get("/stream/chunks").content == b"chunk0chunk1chunk2"
        assert client.get("/plaintext").text == "Hello, World!"


def test_many_concurrent_streams(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(20):
            assert client.get("/stream/chunks", params={"n": 50}).content == b"".join(
                f"chunk{i}".encode() for i in range(50)
            )


def test_streaming_response_rejects_non_iterables():
    with pytest.raises(TypeError):
        StreamingResponse(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        StreamingResponse(iter([]), status_code=42)


# FileResponse ------------------------------------------------------------------------


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    return path


def test_file_content_and_headers(server, data_file):
    r = httpx.get(f"{server.url}/file", params={"path": str(data_file)}, timeout=5)
    assert r.status_code == 200
    assert r.content == b"a,b\n1,2\n"
    assert r.headers["content-length"] == "8"
    assert "transfer-encoding" not in r.headers
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    st = os.stat(data_file)
    assert r.headers["last-modified"] == email.utils.formatdate(st.st_mtime, usegmt=True)
    assert re.fullmatch(
        r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT",
        r.headers["last-modified"],
    )
    etag = hashlib.md5(f"{st.st_mtime}-{st.st_size}".encode(), usedforsecurity=False).hexdigest()
    assert r.headers["etag"] == f'"{etag}"'
    assert "content-disposition" not in r.headers


def test_file_media_type_guess_and_override(server, tmp_path):
    for name, expected in [
        ("page.html", "text/html; charset=utf-8"),
        ("data.json", "application/json"),
        ("image.png", "image/png"),
        ("blob.unknownext", "text/plain; charset=utf-8"),
    ]:
        path = tmp_path / name
        path.write_bytes(b"x")
        r = httpx.get(f"{server.url}/file", params={"path": str(path)}, timeout=5)
        assert r.headers["content-type"] == expected, name
    r = httpx.get(
        f"{server.url}/file",
        params={"path": str(tmp_path / "page.html"), "filename": "x.png"},
        timeout=5,
    )
    assert r.headers["content-type"] == "image/png"
    r = httpx.get(
        f"{server.url}/file",
        params={"path": str(tmp_path / "page.html"), "media_type": "application/x-custom"},
        timeout=5,
    )
    assert r.headers["content-type"] == "application/x-custom"


def test_file_content_disposition(server, data_file):
    r = httpx.get(
        f"{server.url}/file", params={"path": str(data_file), "filename": "my report.csv"}
    )
    assert r.headers["content-disposition"] == 'attachment; filename="my report.csv"'
    r = httpx.get(
        f"{server.url}/file", params={"path": str(data_file), "filename": "rapport é€.csv"}
    )
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"rapport ??.csv\"; filename*=utf-8''rapport%20%C3%A9%E2%82%AC.csv"
    )
    r = httpx.get(f"{server.url}/file", params={"path": str(data_file), "filename": 'a"b.csv'})
    assert r.headers["content-disposition"] == 'attachment; filename="a\\"b.csv"'


def test_file_head(server, data_file):
    s = server.connect()
    s.sendall(get(f"/file?path={data_file}", method="HEAD") + get("/plaintext"))
    reader = Reader(s)
    r = reader.read_response(head_request=True)
    assert r.status == 200 and r.body == b""
    assert r.header("content-length") == "8" and r.header("etag")
    assert reader.read_response().body == b"Hello, World!"
    s.close()


def test_missing_file_is_a_500(server, tmp_path):
    r = httpx.get(f"{server.url}/file", params={"path": str(tmp_path / "nope.txt")}, timeout=5)
    assert r.status_code == 500
    assert r.text == "Internal Server Error"
    r = httpx.get(f"{server.url}/file", params={"path": str(tmp_path)}, timeout=5)
    assert r.status_code == 500


def test_multi_mib_file_streamed_intact(server, tmp_path):
    path = tmp_path / "big.bin"
    data = os.urandom(5 * 1024 * 1024 + 123)
    path.write_bytes(data)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(2):
            with client.stream("GET", "/file", params={"path": str(path)}) as r:
                assert r.headers["content-length"] == str(len(data))
                assert r.headers["content-type"] == "application/octet-stream"
                got = b"".join(r.iter_raw())
            assert got == data
        assert client.get("/plaintext").text == "Hello, World!"


def test_file_response_is_lazy():
    # As in Starlette: the path is checked when the response is sent.
    FileResponse("/definitely/not/here.txt")
