"""Buffers lent to connections (issue 20): a connection holds a read buffer and a parsed
request head only while a request is partly received or being served, and output buffers
only while output is queued; an idle keep-alive connection holds none. Request bytes
split at every boundary, pipelined requests in one read, bodies over many reads, a
connection idle with half a request, a slow reader during a streaming response and churn
must all still be answered exactly, and the pools must shrink again after a burst.

The counts come from /debug/buffers (the server's `buffers`), asked over a connection of
its own: that request holds one read buffer and one head while it is served."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Reader, ServerProcess

# What the /debug/buffers request itself holds while it is served.
BASE = {"blocks_lent": 1, "heads_lent": 1}


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerProcess]:
    # A server of its own: connections left by other modules' tests would hold buffers.
    server = ServerProcess("main_app.py").start()
    yield server
    code, log = server.stop()
    assert code == 0, log


def buffers(server: ServerProcess) -> dict[str, int]:
    return httpx.get(f"{server.url}/debug/buffers", timeout=5).json()


def wait_for(predicate, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def lent(server: ServerProcess, blocks: int = 1, heads: int = 1) -> bool:
    b = buffers(server)
    return b["blocks_lent"] == blocks and b["heads_lent"] == heads


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def post(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def chunked_post(path: str, pieces: list[bytes]) -> bytes:
    out = [f"POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".encode()]
    for p in pieces:
        out.append(b"%x\r\n%s\r\n" % (len(p), p))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def test_idle_keep_alive_connections_hold_nothing(srv):
    socks = []
    try:
        for _ in range(40):
            s = srv.connect()
            s.sendall(get("/json"))
            assert Reader(s).read_response().status == 200
            socks.append(s)
        # Forty idle keep-alive connections: nothing lent but the stats request's own.
        assert wait_for(lambda: lent(srv))
        # Half a request head: the read buffer stays, the head goes back (the head is
        # parsed again from the bytes when the rest arrives).
        for s in socks[:10]:
            s.sendall(b"GET /users/5 HTTP/1.1\r\nHo")
        assert wait_for(lambda: lent(srv, blocks=11))
        for s in socks[:10]:
            s.sendall(b"st: t\r\n\r\n")
            assert Reader(s).read_response().json()["id"] == 5
        assert wait_for(lambda: lent(srv))
    finally:
        for s in socks:
            s.close()


def test_request_split_at_every_byte_boundary(srv):
    body = b'{"name": "widget", "price": 9.99, "tags": ["a", "b"]}'
    raw = post("/echo", body)
    s = srv.connect()
    reader = Reader(s)
    for cut in range(1, len(raw)):
        s.sendall(raw[:cut])
        time.sleep(0.001)  # a read of its own, most of the time
        s.sendall(raw[cut:])
        r = reader.read_response()
        assert r.status == 200, cut
        assert r.body == body, cut
    # And one byte per send, head and body.
    for i in range(len(raw)):
        s.sendall(raw[i : i + 1])
    assert reader.read_response().body == body
    s.close()
    assert wait_for(lambda: lent(srv))


def test_pipelined_requests_in_one_read(srv):
    reqs, expect = [], []
    for i in range(60):
        if i % 3 == 0:
            reqs.append(get(f"/users/{i}"))
            expect.append(("id", i))
        elif i % 3 == 1:
            b = b"x" * (i * 37)
            reqs.append(post("/echo", b))
            expect.append(("echo", b))
        else:
            reqs.append(chunked_post("/echo", [b"ab", b"c" * i, b"d"]))
            expect.append(("echo", b"ab" + b"c" * i + b"d"))
    s = srv.connect()
    s.sendall(b"".join(reqs))
    reader = Reader(s)
    for kind, value in expect:
        r = reader.read_response()
        assert r.status == 200
        if kind == "id":
            assert r.json()["id"] == value
        else:
            assert r.body == value
    assert wait_for(lambda: lent(srv))
    s.close()


@pytest.mark.parametrize("chunked", [False, True])
def test_body_spanning_many_reads(srv, chunked):
    """A body larger than one lent buffer, sent in pieces: the buffer grows past the
    block, the body arrives intact, and the grown buffer is not kept afterwards."""
    data = os.urandom(300 * 1024)
    pieces = [data[i : i + 7000] for i in range(0, len(data), 7000)]
    raw = chunked_post("/echo", pieces) if chunked else post("/echo", data)
    s = srv.connect()
    reader = Reader(s)
    for i in range(0, len(raw), 9000):
        s.sendall(raw[i : i + 9000])
        if i % 90000 == 0:
            time.sleep(0.005)
    r = reader.read_response()
    assert r.status == 200
    assert r.header("x-length") == str(len(data))
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(data).digest()
    # The same connection goes on with a small request.
    s.sendall(get("/users/2"))
    assert reader.read_response().json()["id"] == 2
    assert wait_for(lambda: lent(srv))
    s.close()


def test_idle_with_half_a_request_then_completed(srv):
    """Half a request (head and part of the body) waits across sweeps, which trim the
    pools: its buffer is lent, never trimmed, and the request completes later."""
    body = b"0123456789" * 50
    raw = post("/echo", body)
    half = len(raw) - 200
    s = srv.connect()
    s.sendall(raw[:half])
    assert wait_for(lambda: lent(srv, blocks=2, heads=2))  # head parsed, body pending
    time.sleep(2.2)  # two sweeps
    assert lent(srv, blocks=2, heads=2)
    s.sendall(raw[half:])
    reader = Reader(s)
    assert reader.read_response().body == body
    # Then a head cut in the middle of its request line, completed after a sweep.
    s.sendall(b"GET /users/")
    time.sleep(1.2)
    s.sendall(b"9 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert reader.read_response().json()["id"] == 9
    assert wait_for(lambda: lent(srv))
    s.close()


def test_gated_stream_holds_no_read_buffer(srv):
    """While a response streams, the connection reads on (to notice a client that
    leaves) but holds a read buffer only for pipelined bytes read ahead."""
    k = os.urandom(8).hex()
    s = srv.connect()
    s.sendall(get(f"/stream/gated?key={k}"))
    reader = Reader(s)
    while b"first;" not in reader.buf:
        assert reader._fill()
    assert wait_for(lambda: lent(srv))
    s.sendall(get("/users/3") + get("/users/4"))
    assert wait_for(lambda: lent(srv, blocks=2))
    assert httpx.get(f"{srv.url}/stream/release", params={"key": k}).status_code == 200
    # The rest of the stream, then the two read-ahead requests, in order.
    while b"0\r\n\r\n" not in reader.buf:
        assert reader._fill()
    reader.buf = reader.buf[reader.buf.index(b"0\r\n\r\n") + 5 :]
    assert reader.read_response().json()["id"] == 3
    assert reader.read_response().json()["id"] == 4
    assert wait_for(lambda: lent(srv))
    s.close()


def test_slow_reader_during_a_streaming_response(srv, tmp_path: Path):
    """A file streamed to a client that stops reading, with requests pipelined behind
    it while it stalls: every byte arrives, then the pipelined answers, in order."""
    path = tmp_path / "big.bin"
    data = os.urandom(6 * 1024 * 1024 + 5)
    path.write_bytes(data)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    s.settimeout(10)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(f"GET /file?path={path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    time.sleep(0.5)  # the server fills the socket and its write limit, then waits
    s.sendall(b"".join(get(f"/users/{i}") for i in range(20)))
    time.sleep(0.3)
    reader = Reader(s)
    while b"\r\n\r\n" not in reader.buf:
        assert reader._fill()
    head, _, reader.buf = reader.buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert f"content-length: {len(data)}".encode() in head.lower()
    got = hashlib.sha256()
    n = 0
    while n < len(data):
        if not reader.buf:
            assert reader._fill()
        take = reader.buf[: len(data) - n]
        got.update(take)
        n += len(take)
        reader.buf = reader.buf[len(take) :]
    assert got.digest() == hashlib.sha256(data).digest()
    for i in range(20):
        assert reader.read_response().json()["id"] == i
    assert wait_for(lambda: lent(srv))
    s.close()


def test_many_connections_churning(srv):
    """Connections that leave at every stage (mid-head, mid-body, with a response
    queued, mid-stream, after a response) give everything back; so does a burst of
    connections holding partial requests, and the pools shrink again afterwards."""
    k = os.urandom(8).hex()
    stages = [
        b"GET /json HTTP/1.1\r\nHo",
        post("/echo", b"y" * 4000)[:-1000],
        get("/json") * 30,
        get(f"/stream/forever?key={k}&size=65536"),
        get("/json"),
    ]
    for round_ in range(30):
        socks = []
        for raw in stages:
            s = srv.connect()
            s.sendall(raw)
            socks.append(s)
        if round_ % 2:
            Reader(socks[-1]).read_response()
        time.sleep(0.01)
        for s in socks:
            s.close()
    burst = []
    try:
        for _ in range(100):
            s = srv.connect()
            s.sendall(b"GET /json HTTP/1.1\r\n")
            burst.append(s)
        assert wait_for(lambda: buffers(srv)["blocks_lent"] >= 101)
    finally:
        for s in burst:
            s.close()
    assert wait_for(lambda: lent(srv))
    assert httpx.get(f"{srv.url}/json", timeout=5).status_code == 200
    # Blocks unused for a whole sweep interval are freed: the free lists shrink back to
    # what the stats requests use.
    assert wait_for(lambda: buffers(srv)["blocks_free"] <= 2, timeout=10)
    assert buffers(srv)["heads_free"] <= 2
    assert buffers(srv)["connections"] <= 2
