"""Request bodies consumed as they arrive (issues 13 and 14): a route that takes the
Request (or files) and an ASGI app get a chunked body, or one over max_body, piece by piece
while it is received. Uploads are parsed as they come with file parts spooled to temporary
files, so a large upload barely moves the server's memory; limits answer 413/400 with a
message; a client that leaves mid-upload leaves no file or descriptor behind;
request.stream() and ASGI receive() see the pieces, and a consumer that stops reading
stops the server reading the socket; pipelined requests after a streamed body are served.

The app is tests/py/apps/upload_app.py, served with max_body 1024 so that modest bodies
are streamed (with DB_TEST_BIG_ROUTE, a route allowing 256 MiB raises the server's limit,
which must not make the uploads to the other routes arrive whole)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from conftest import Reader, ServerProcess

BOUNDARY = "----db-upload-7d1f"
# ASan keeps freed memory in quarantine: RSS says nothing under it.
ASAN = "asan" in os.environ.get("LD_PRELOAD", "")


@pytest.fixture(scope="module")
def tmpdir_for_server(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-tmp")


@pytest.fixture(scope="module")
def srv(tmpdir_for_server: Path) -> Iterator[ServerProcess]:
    # The server's temporary files go to a directory of its own, checked after uploads.
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmpdir_for_server)
    try:
        server = ServerProcess("upload_app.py", limits={"max_body": 1024}).start()
    finally:
        if old is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = old
    yield server
    code, log = server.stop()
    assert code == 0, log
    # Nothing a sanitizer build reports, no Task left behind, no handler error logged.
    for marker in ("AddressSanitizer", "runtime error:", "Task was destroyed", "Traceback"):
        assert marker not in log, log


def rss_kib(server: ServerProcess) -> int:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(server: ServerProcess) -> int:
    assert server.proc is not None
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


def multipart(fields: list[tuple[str, str | None, bytes]]) -> bytes:
    """A multipart/form-data body: (name, filename or None, content) per part."""
    out = []
    for name, filename, content in fields:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
        if filename is not None:
            head += "Content-Type: application/octet-stream\r\n"
        out.append(head.encode() + b"\r\n" + content + b"\r\n")
    out.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(out)


def head(path: str, length: int | None = None, ctype: str | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: t"]
    if ctype is not None:
        lines.append(f"Content-Type: {ctype}")
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


MP = f"multipart/form-data; boundary={BOUNDARY}"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def awkward_content(n: int) -> bytes:
    """Content full of what a multipart parser must not be fooled by: CR, LF, dashes and
    a near-boundary, mixed with random bytes."""
    rng = random.Random(n)
    near = f"\r\n--{BOUNDARY[:-1]}".encode()
    pieces = [b"\r\n", b"\r", b"--", near, b"\r\n--", bytes(rng.randrange(256) for _ in range(7))]
    out = b""
    while len(out) < n:
        out += rng.choice(pieces)
    return out[:n]


@pytest.mark.parametrize("chunked", [False, True])
def test_upload_split_at_every_byte_boundary(srv, chunked):
    content = awkward_content(900)
    body = multipart([("note", None, b"hello"), ("file", "a.bin", content)])
    assert len(body) > 1024  # streamed
    expect = {"filename": "a.bin", "size": len(content)}
    expect["sha256"] = hashlib.sha256(content).hexdigest()
    s = srv.connect()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = Reader(s)
    if chunked:
        # Two chunks, so that the framing itself is split at every byte too.
        raw = head("/upload", None, MP) + chunk(body[:500]) + chunk(body[500:]) + b"0\r\n\r\n"
    else:
        raw = head("/upload", len(body), MP) + body
    for i in range(1, len(raw)):
        s.sendall(raw[:i])
        time.sleep(0.001)
        s.sendall(raw[i:])
        r = reader.read_response()
        assert r.status == 200, (i, r.body)
        got = r.json()
        assert {k: got[k] for k in expect} == expect, i
        assert got["note"] == "hello"
    s.close()


@pytest.mark.parametrize("seed", range(12))
def test_upload_in_random_chunks(srv, seed):
    rng = random.Random(seed)
    files = [(f"f{i}", f"n{i}.bin", awkward_content(rng.randrange(0, 300_000))) for i in range(3)]
    body = multipart([("files", name, content) for _, name, content in files])
    s = srv.connect()
    reader = Reader(s)
    chunked = seed % 2 == 0
    s.sendall(head("/files", None if chunked else len(body), MP))
    pos = 0
    while pos < len(body):
        n = rng.choice([1, 2, 7, 100, 4096, 65536, 200_000])
        piece = body[pos : pos + n]
        pos += n
        s.sendall(chunk(piece) if chunked else piece)
        if rng.random() < 0.2:
            time.sleep(0.002)
    if chunked:
        s.sendall(b"0\r\n\r\n")
    r = reader.read_response()
    assert r.status == 200, r.body
    assert r.json() == [
        {"filename": name, "size": len(c), "sha256": hashlib.sha256(c).hexdigest()}
        for _, name, c in files
    ]
    s.close()


def test_uploads_read_into_their_buffers_then_pipelined(srv):
    """Once a file part has its buffer, the server reads the next pieces straight into it
    (server_conn_body_read_into). Pieces that end anywhere around a part's end (inside a
    near-delimiter, right after the delimiter, inside the next part's headers), parts that
    end inside such a piece with more parts after them, and a pipelined request sent in
    the same write as the body's end must all come out exactly."""
    rng = random.Random(99)
    for round_ in range(16):
        sizes = [
            rng.randrange(70_000, 400_000),
            rng.randrange(0, 3000),
            rng.randrange(70_000, 200_000),
        ]
        files = [(f"n{i}.bin", awkward_content(n)) for i, n in enumerate(sizes)]
        body = multipart([("files", name, content) for name, content in files])
        # Cut points near each part's end, where a direct read meets the delimiter.
        ends = [body.find(f"--{BOUNDARY}".encode(), 1000)]
        while ends[-1] != -1:
            ends.append(body.find(f"--{BOUNDARY}".encode(), ends[-1] + 1))
        cuts = sorted({max(1, e + rng.randrange(-80, 80)) for e in ends[:-1]} | {len(body) // 3})
        s = srv.connect()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = Reader(s)
        s.sendall(head("/files", len(body), MP) + body[: cuts[0]])
        for a, b in zip(cuts, cuts[1:], strict=False):
            time.sleep(0.003)
            s.sendall(body[a:b])
        time.sleep(0.003)
        s.sendall(body[cuts[-1] :] + b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        r = reader.read_response()
        assert r.status == 200, (round_, r.body)
        assert r.json() == [
            {"filename": name, "size": len(c), "sha256": hashlib.sha256(c).hexdigest()}
            for name, c in files
        ], round_
        assert reader.read_response().status == 200
        s.close()


def upload_watching_rss(server: ServerProcess, mib: int) -> tuple[dict[str, Any], int]:
    """Uploads mib MiB to /upload over a raw socket, sampling the server's RSS while the
    body arrives (a buffer freed at the end would leave no trace afterwards). Returns the
    answer, checked against what was sent, and the RSS growth in KiB."""
    block = hashlib.sha256(b"seed").digest() * 32768  # 1 MiB
    size = mib * len(block)
    pre = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
    pre += "Content-Type: application/octet-stream\r\n\r\n"
    post = f"\r\n--{BOUNDARY}--\r\n".encode()
    length = len(pre) + size + len(post)
    # A first upload warms up what is allocated once (imports, pools).
    warm = multipart([("file", "w.bin", block * 3)])
    r = httpx.post(server.url + "/upload", content=warm, headers={"content-type": MP})
    assert r.is_success
    base = rss_kib(server)
    s = server.connect(timeout=60)
    reader = Reader(s)
    s.sendall(head("/upload", length, MP) + pre.encode())
    peak = base
    digest = hashlib.sha256()
    for i in range(mib):
        s.sendall(block)
        digest.update(block)
        if i % 8 == 0:
            peak = max(peak, rss_kib(server))
    s.sendall(post)
    answer = reader.read_response()
    s.close()
    assert answer.status == 200, answer.body
    got = answer.json()
    assert isinstance(got, dict)
    assert got["size"] == size and got["sha256"] == digest.hexdigest() and got["rolled"]
    return got, max(peak, rss_kib(server)) - base


@pytest.mark.skipif(ASAN, reason="RSS under ASan")
def test_large_upload_keeps_memory_flat(srv, tmpdir_for_server):
    """200 MiB through a File() parameter: written to disk as it arrives, so the server's
    RSS grows by far less than 16 MiB (measured while it arrives and after)."""
    _, grown = upload_watching_rss(srv, 200)
    assert grown < 16 * 1024, grown
    # The spooled file was closed with the request.
    assert os.listdir(tmpdir_for_server) == []


def test_request_stream_gives_pieces_as_they_arrive(srv):
    s = srv.connect()
    reader = Reader(s)
    s.sendall(head("/stream"))
    pieces = [b"a" * 10, b"b" * 3000, b"c" * 70000]
    for p in pieces:
        s.sendall(chunk(p))
        time.sleep(0.05)
    s.sendall(b"0\r\n\r\n")
    got = reader.read_response().json()
    data = b"".join(pieces)
    assert got["total"] == len(data) and got["sha256"] == hashlib.sha256(data).hexdigest()
    # Each piece was handed over when it arrived (the last one in at most 64 KiB parts),
    # then b"" as Starlette's stream() ends.
    assert got["sizes"][0] == 10 and got["sizes"][1] == 3000 and got["sizes"][-1] == 0
    assert max(got["sizes"]) <= 65536
    s.close()


def test_request_stream_with_content_length(srv):
    data = os.urandom(300_000)
    r = httpx.post(srv.url + "/stream", content=data)
    got = r.json()
    assert got["total"] == len(data) and got["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(got["sizes"]) > 2 and max(got["sizes"]) <= 65536


def test_streaming_response_reads_the_body_after_the_handler_returned(srv):
    data = os.urandom(500_000)
    r = httpx.post(srv.url + "/echo", content=iter([data[:1000], data[1000:]]))
    assert r.status_code == 200 and r.content == data
    # Interleaved: each piece is echoed before the next is sent.
    s = srv.connect()
    s.sendall(head("/echo") + chunk(b"first"))
    seen = b""
    while b"first" not in seen:
        seen += s.recv(65536)
    assert seen.startswith(b"HTTP/1.1 200 ") and b"transfer-encoding: chunked" in seen
    s.sendall(chunk(b"second") + b"0\r\n\r\n")
    while not seen.endswith(b"0\r\n\r\n"):
        seen += s.recv(65536)
    assert seen.endswith(b"6\r\nsecond\r\n0\r\n\r\n")
    s.close()


def test_body_of_a_streamed_request_and_its_limit(srv):
    data = b"x" * 1000
    r = httpx.post(srv.url + "/body", content=iter([data[:500], data[500:]]))  # chunked
    assert r.json() == {"size": 1000, "sha256": hashlib.sha256(data).hexdigest()}
    # body() keeps the route's limit (max_body): over it, 413 whether declared or not.
    r = httpx.post(srv.url + "/body", content=b"y" * 2000)
    assert r.status_code == 413
    assert r.json() == {"detail": "Request body exceeds the configured limit"}
    r = httpx.post(srv.url + "/body", content=iter([b"y" * 1000, b"y" * 1000]))
    assert r.status_code == 413


def test_small_json_route_keeps_the_whole_body_path(srv):
    # A route that binds its body is never streamed: max_body applies as before.
    r = httpx.post(srv.url + "/json", json={"a": 1})
    assert r.json() == {"a": 1}
    r = httpx.post(srv.url + "/json", json={"a": "x" * 2000})
    assert r.status_code == 413


def test_pipelined_requests_after_streamed_bodies(srv):
    data = b"p" * 5000
    reqs = [
        head("/stream") + chunk(data[:100]) + chunk(data[100:]) + b"0\r\n\r\n",
        b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n",
        head("/stream", len(data)) + data,
        head("/noread") + chunk(b"ignored") + b"0\r\n\r\n",  # whole, though not read
        b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n",
    ]
    s = srv.connect()
    s.sendall(b"".join(reqs))
    reader = Reader(s)
    for expect in ("stream", "events", "stream", "noread", "events"):
        r = reader.read_response()
        assert r.status == 200, (expect, r.body)
        if expect == "stream":
            assert r.json()["total"] == len(data)
    s.close()


def test_a_kept_streamed_request_keeps_its_fields(srv):
    """The server holds a streamed Request until its request ends (to tell it the body is
    gone): that reference alone does not make the fields be copied at the end, one the
    handler kept does."""
    data = b"k" * 200_000
    r = httpx.post(srv.url + "/keep?a=1", content=data, headers={"x-kept": "yes"})
    assert r.json() == {"size": len(data)}
    got = httpx.get(srv.url + "/kept").json()
    assert got == {
        "method": "POST",
        "path": "/keep",
        "query": "a=1",
        "header": "yes",
        "client": "127.0.0.1",
    }


def test_unread_body_closes_the_connection(srv):
    s = srv.connect()
    s.sendall(head("/noread", 10_000_000) + b"z" * 100_000)
    reader = Reader(s)
    r = reader.read_response()
    assert r.status == 200 and r.json() == {"read": "no"}
    # The rest of the body is not read for nothing: the connection closes.
    assert r.header("connection") == "close" or reader.at_eof()
    assert reader.at_eof()


def test_form_limits(srv):
    files = [("f", f"{i}.txt", b"x") for i in range(3)]
    r = httpx.post(
        srv.url + "/form?max_files=2",
        content=multipart(files + [("pad", None, b"p" * 1100)]),
        headers={"content-type": MP},
    )
    assert r.status_code == 400
    assert r.json() == {"detail": "Too many files. Maximum number of files is 2."}
    r = httpx.post(
        srv.url + "/form?max_part_size=1024",
        content=multipart([("field", None, b"v" * 2000)]),
        headers={"content-type": MP},
    )
    assert r.status_code == 400
    assert r.json() == {"detail": "Part exceeded maximum size of 1KB."}
    r = httpx.post(
        srv.url + "/form?max_file_size=1500",
        content=multipart([("f", "big.bin", b"b" * 2000)]),
        headers={"content-type": MP},
    )
    assert r.status_code == 413
    assert r.json() == {"detail": "File exceeded the maximum upload size."}
    r = httpx.post(
        srv.url + "/form?max_size=1500",
        content=multipart([("f", "a.bin", b"b" * 1000), ("g", "b.bin", b"c" * 1000)]),
        headers={"content-type": MP},
    )
    assert r.status_code == 413
    assert r.json() == {"detail": "Form exceeded the maximum size."}
    # Truncated: the body ends before the close delimiter.
    body = multipart([("f", "a.bin", b"d" * 2000)])[:-30]
    r = httpx.post(srv.url + "/form", content=body, headers={"content-type": MP})
    assert r.status_code == 400 and "detail" in r.json()


def test_malformed_chunked_stream_is_400_and_closes(srv):
    s = srv.connect()
    s.sendall(head("/stream") + chunk(b"ok") + b"zz\r\nbad\r\n")
    reader = Reader(s)
    r = reader.read_response()
    assert r.status == 400
    assert r.json() == {"detail": "Invalid chunked request body"}
    assert reader.at_eof()


def test_client_leaving_mid_upload_leaves_nothing(srv, tmpdir_for_server):
    before = open_fds(srv)
    content_len = 50 * 1024 * 1024
    pre = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f"; filename="x.bin"\r\n\r\n'
    for _ in range(3):
        s = srv.connect()
        s.sendall(head("/form", len(pre) + content_len + 100, MP) + pre.encode())
        s.sendall(b"q" * (3 * 1024 * 1024))  # past the spool's 1 MiB: on disk by now
        time.sleep(0.2)
        s.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = httpx.get(srv.url + "/events").json()
        if events.count("form-disconnect") >= 3 and open_fds(srv) <= before:
            break
        time.sleep(0.05)
    assert events.count("form-disconnect") >= 3
    assert open_fds(srv) <= before
    assert os.listdir(tmpdir_for_server) == []


def test_is_disconnected_while_a_body_streams(srv):
    s = srv.connect()
    s.sendall(head("/watch", 10_000_000) + b"w" * 2000)
    time.sleep(0.1)
    s.close()
    deadline = time.monotonic() + 5
    while "watch-disconnected" not in httpx.get(srv.url + "/events").json():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_asgi_receive_gives_more_body_pieces(srv):
    s = srv.connect()
    reader = Reader(s)
    s.sendall(head("/asgi/pieces"))
    for p in (b"1" * 5, b"2" * 100_000):
        s.sendall(chunk(p))
        time.sleep(0.05)
    s.sendall(b"0\r\n\r\n")
    messages = reader.read_response().json()
    assert messages[0] == [5, True]
    assert all(more for _, more in messages[:-1]) and messages[-1] == [0, False]
    assert sum(n for n, _ in messages) == 100_005
    assert max(n for n, _ in messages) <= 65536
    # A small body with a Content-Length is still one message.
    r = httpx.post(srv.url + "/asgi/small", content=b"abc")
    assert r.json() == [[3, False]]


def test_asgi_app_that_stops_reading_stops_the_server_reading(srv):
    """While the app holds (does not call receive()), the server reads no more than its
    window: what the client manages to send is what the kernel buffers take, and the
    server's memory does not grow with the body."""
    total = 256 * 1024 * 1024
    s = srv.connect(timeout=30)
    reader = Reader(s)
    base = rss_kib(srv)
    s.sendall(head("/asgi/x?hold", total))
    block = b"h" * (1 << 20)
    s.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            sent += s.send(block)
        except BlockingIOError:
            time.sleep(0.01)
    grown = rss_kib(srv) - base
    # Loopback buffers take a few MiB (up to tcp_rmem's max with autotuning), far from
    # all of it; the server itself holds one 64 KiB window.
    assert sent < total // 3, sent
    assert ASAN or grown < 8 * 1024, grown
    s.setblocking(True)
    left = total - sent
    while left:
        n = s.send(block[: min(left, len(block))])
        left -= n
    messages = reader.read_response().json()
    assert sum(n for n, _ in messages) == total
    assert messages[-1][1] is False
    assert "asgi-holding" in json.loads(httpx.get(srv.url + "/events").content)
    s.close()


def test_max_upload_is_413(tmp_path):
    limits = {"max_body": 1024, "max_upload": 200_000}
    server = ServerProcess("upload_app.py", limits=limits).start()
    try:
        r = httpx.post(server.url + "/stream", content=b"u" * 300_000)
        assert r.status_code == 413
        assert r.json() == {"detail": "Request body exceeds the configured limit"}
        r = httpx.post(server.url + "/stream", content=iter([b"u" * 150_000, b"u" * 150_000]))
        assert r.status_code == 413
        r = httpx.post(server.url + "/stream", content=b"u" * 150_000)
        assert r.json()["total"] == 150_000
    finally:
        code, log = server.stop()
    assert code == 0, log


@pytest.mark.parametrize("seed", range(20))
def test_garbled_streamed_bodies_never_break_the_server(srv, seed):
    """Valid framing with bytes flipped, cut short or followed by junk, to every kind of
    streamed route: each gets an answer or a closed connection, and the server serves on."""
    rng = random.Random(seed)
    path = rng.choice(["/upload", "/form", "/stream", "/body", "/asgi/x", "/noread"])
    body = multipart([("file", "g.bin", awkward_content(rng.randrange(1000, 20000)))])
    chunked = rng.random() < 0.5
    raw = bytearray(
        b"".join(chunk(body[i : i + 999]) for i in range(0, len(body), 999)) + b"0\r\n\r\n"
        if chunked
        else body
    )
    for _ in range(rng.randrange(1, 6)):
        raw[rng.randrange(len(raw))] = rng.randrange(256)
    if rng.random() < 0.3:
        raw = raw[: rng.randrange(len(raw))]
    s = srv.connect(timeout=3)
    s.sendall(head(path, None if chunked else len(body), MP))
    try:
        for i in range(0, len(raw), 4096):
            s.sendall(raw[i : i + 4096])
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    except OSError:  # reset, broken pipe, not connected (closed first), timeout
        pass
    s.close()
    assert httpx.get(srv.url + "/events").status_code == 200


@pytest.mark.skipif(ASAN, reason="RSS under ASan")
def test_a_route_allowing_large_bodies_leaves_uploads_streamed():
    os.environ["DB_TEST_BIG_ROUTE"] = "1"
    try:
        server = ServerProcess("upload_app.py", limits={"max_body": 1024}).start()
    finally:
        del os.environ["DB_TEST_BIG_ROUTE"]
    try:
        # The server's max_body is now 256 MiB; a 64 MiB upload still goes to disk as it
        # arrives (a body over 64 KiB to a route that reads its own body streams).
        _, grown = upload_watching_rss(server, 64)
        assert grown < 16 * 1024, grown
        assert httpx.post(server.url + "/big-json", json={"a": "b" * 2_000_000}).json() == 1
        # The other routes keep their own limit (1024), whether the body came whole (it
        # fits the window) or streamed.
        for content in (b"j" * 2000, b"j" * 200_000):
            assert httpx.post(server.url + "/body", content=content).status_code == 413
            r = httpx.post(server.url + "/json", content=b'{"a":"' + content + b'"}')
            assert r.status_code == 413
        assert httpx.post(server.url + "/body", content=b"k" * 1000).json()["size"] == 1000
    finally:
        code, log = server.stop()
    assert code == 0, log


def _upload_app(api: Any) -> Any:
    """The same routes written against FastAPI or data_bridge.api (annotations set as
    objects: this module's are strings, which cannot name the api argument)."""
    app = api.FastAPI()

    async def up(file, note):
        data = await file.read()
        return {"size": len(data), "sha": hashlib.sha256(data).hexdigest(), "note": note}

    up.__annotations__ = {
        "file": Annotated[api.UploadFile, api.File()],
        "note": Annotated[str, api.Form()],
    }
    app.post("/up")(up)

    async def stream(request):
        h = hashlib.sha256()
        async for piece in request.stream():
            h.update(piece)
        return {"sha": h.hexdigest()}

    stream.__annotations__ = {"request": api.Request}
    app.post("/stream")(stream)
    return app


def test_test_client_uploads_match_fastapi():
    """Through the in-process test client (the same server, on a socketpair), a large
    upload and a streamed body give what FastAPI gives."""
    import fastapi
    from fastapi.testclient import TestClient as FastAPIClient

    import data_bridge.api as db_api
    from data_bridge.api.testclient import TestClient

    data = awkward_content(4096) * 768  # 3 MiB
    answers = []
    for api, client_class in ((fastapi, FastAPIClient), (db_api, TestClient)):
        with client_class(_upload_app(api)) as client:
            up = client.post("/up", files={"file": ("a.bin", data)}, data={"note": "n"})
            chunked = client.post("/stream", content=iter([data[:100], data[100:]]))
            answers.append((up.status_code, up.json(), chunked.json()))
    assert answers[0] == answers[1]
    assert answers[1][1]["size"] == len(data)
