"""HTTP/1.1 on the wire: keep-alive, pipelining, chunked bodies, 100-continue, HTTP/1.0,
and every malformed or oversized request with its status and connection handling."""

from __future__ import annotations

import socket
import time

import pytest
from conftest import Reader, exchange

from data_bridge.api.applications import Limits

MAX_BODY = Limits.max_body  # the default body limit (16 MiB)

GET = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"


def test_keep_alive_reuses_the_connection(server):
    s = server.connect()
    reader = Reader(s)
    for i in range(5):
        s.sendall(f"GET /users/{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        r = reader.read_response()
        assert r.status == 200 and r.json()["id"] == i
        assert r.header("connection") is None
    s.close()


def test_pipelining_keeps_order(server):
    s = server.connect()
    paths = [
        f"/users/{i}" if i % 3 else ("/slow?delay=0.02" if i % 2 else "/plaintext")
        for i in range(32)
    ]
    s.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for p in paths))
    reader = Reader(s)
    for i, p in enumerate(paths):
        r = reader.read_response()
        assert r.status == 200
        if p.startswith("/users/"):
            assert r.json()["id"] == i
        elif p.startswith("/slow"):
            assert r.json() == {"slept": 0.02}
        else:
            assert r.body == b"Hello, World!"
    s.close()


def test_pipelined_posts_and_split_writes(server):
    body = b'{"name":"widget","price":9.99}'
    one = (
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    data = one * 10
    s = server.connect()
    # Dribble the bytes in uneven pieces: the parser must not care where reads split.
    for i in range(0, len(data), 7):
        s.sendall(data[i : i + 7])
    reader = Reader(s)
    for _ in range(10):
        r = reader.read_response()
        assert r.status == 201 and r.json() == {"name": "widget", "price": 9.99}
    s.close()


def test_chunked_request_body(server):
    s = server.connect()
    s.sendall(
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    for piece in (b'{"na', b'me": "chu', b'nked"}'):
        s.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        time.sleep(0.01)
    s.sendall(b"0\r\nX-Trailer: yes\r\n\r\n" + GET)
    reader = Reader(s)
    r = reader.read_response()
    assert r.status == 201 and r.json() == {"name": "chunked"}
    assert reader.read_response().body == b"Hello, World!"
    s.close()


def test_chunked_extensions_and_big_chunks(server):
    payload = bytes(range(256)) * 300
    chunks = b"".join(
        f"{len(payload[i : i + 5000]):X};ext=1\r\n".encode() + payload[i : i + 5000] + b"\r\n"
        for i in range(0, len(payload), 5000)
    )
    r, reader = exchange(
        server,
        b"POST /echo HTTP/1.1\r\nHost: t\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n",
    )
    assert r.status == 200 and r.body == payload
    reader.sock.close()


def test_expect_100_continue(server):
    s = server.connect()
    body = b'{"a": 1}'
    s.sendall(
        b"POST /items HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    reader = Reader(s)
    interim = reader.read_response()
    assert interim.status == 100
    s.sendall(body)
    r = reader.read_response()
    assert r.status == 201 and r.json() == {"a": 1}
    s.close()


def test_expect_100_continue_refused_when_too_large(server):
    r, reader = exchange(
        server,
        b"POST /items HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1),
    )
    assert r.status == 413
    assert reader.at_eof()


def test_http10_closes_by_default(server):
    r, reader = exchange(server, b"GET /plaintext HTTP/1.0\r\n\r\n")
    assert r.status == 200 and r.header("connection") == "close"
    assert reader.at_eof()


def test_http10_keep_alive(server):
    s = server.connect()
    reader = Reader(s)
    for _ in range(2):
        s.sendall(b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = reader.read_response()
        assert r.status == 200 and r.header("connection") == "keep-alive"
    s.close()


def test_connection_close_header(server):
    r, reader = exchange(
        server, b"GET /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + GET
    )
    assert r.status == 200 and r.header("connection") == "close"
    # The pipelined request after "Connection: close" is not answered.
    assert reader.at_eof()
    assert reader.buf == b""


def test_head_on_the_wire(server):
    r, reader = exchange(
        server, b"HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n" + GET, head_request=True
    )
    assert r.status == 200 and r.header("content-length") == "13" and r.body == b""
    assert reader.read_response().body == b"Hello, World!"
    reader.sock.close()


def test_absolute_form_target(server):
    r, reader = exchange(server, b"GET http://t/users/5?verbose=1 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert r.status == 200 and r.json()["id"] == 5 and r.json()["verbose"] is True
    reader.sock.close()


# Malformed requests: (raw bytes, status). Each one is answered, then the connection closes.
BAD = {
    "garbage": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    "no_version": (b"GET /plaintext\r\nHost: t\r\n\r\n", 400),
    "bad_version": (b"GET / HTTP/1.x\r\nHost: t\r\n\r\n", 400),
    "http2": (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    "http3": (b"GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505),
    "missing_host": (b"GET /plaintext HTTP/1.1\r\n\r\n", 400),
    "duplicate_host": (b"GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "space_before_colon": (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    "obs_fold": (b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n", 400),
    "bare_cr": (b"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", 400),
    "bare_lf": (b"GET / HTTP/1.1\nHost: t\n\n", 400),
    "ctl_in_value": (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x01b\r\n\r\n", 400),
    "bad_header_name": (b"GET / HTTP/1.1\r\nHost: t\r\nX(y): 1\r\n\r\n", 400),
    "empty_header_name": (b"GET / HTTP/1.1\r\nHost: t\r\n: 1\r\n\r\n", 400),
    "cl_and_te": (
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "two_content_lengths": (
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        400,
    ),
    "content_length_list": (
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Length: 2, 3\r\n\r\n{}",
        400,
    ),
    "negative_content_length": (
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        400,
    ),
    "plus_content_length": (
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Length: +2\r\n\r\n{}",
        400,
    ),
    "huge_content_length": (
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        400,
    ),
    "te_not_final_chunked": (
        b"POST /items HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        400,
    ),
    "te_unknown": (
        b"POST /items HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        501,
    ),
    "te_unknown_only": (
        b"POST /items HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: x-foo\r\n\r\n",
        501,
    ),
    "te_http10": (b"POST /items HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "bad_chunk_size": (
        b"POST /items HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\n{}\r\n0\r\n\r\n",
        400,
    ),
    "chunk_size_overflow": (
        b"POST /items HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"\r\nfffffffffffffffffffff\r\n",
        413,
    ),
    "chunk_missing_crlf": (
        b"POST /items HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
        400,
    ),
    "chunk_bare_lf": (
        b"POST /items HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\n{}\r\n0\r\n\r\n",
        400,
    ),
    "space_in_target": (b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "bad_method": (b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_request(server, name):
    raw, status = BAD[name]
    r, reader = exchange(server, raw)
    assert r.status == status, (name, r.status, r.body)
    assert r.header("connection") == "close"
    assert r.header("content-type") == "application/json"
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]
    assert reader.at_eof()
    reader.sock.close()


def test_unknown_method_on_known_path_is_405(server):
    r, reader = exchange(server, b"BREW /plaintext HTTP/1.1\r\nHost: t\r\n\r\n" + GET)
    assert r.status == 405 and r.header("allow") == "GET, HEAD"
    # A 405 is not a framing error: the connection stays usable.
    assert reader.read_response().body == b"Hello, World!"
    reader.sock.close()


def test_target_too_long_is_414(server):
    r, reader = exchange(server, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert r.status == 414
    assert reader.at_eof()


def test_target_at_limit_is_served(server):
    target = b"/users/1?pad=" + b"x" * (8192 - 13)
    assert len(target) == 8192
    r, reader = exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert r.status == 200
    reader.sock.close()


def test_header_block_too_large_is_431(server):
    big = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"v" * 1000) for i in range(70))
    r, reader = exchange(server, b"GET / HTTP/1.1\r\nHost: t\r\n" + big + b"\r\n")
    assert r.status == 431
    assert reader.at_eof()


def test_too_many_headers_is_431(server):
    many = b"".join(b"X-%d: v\r\n" % i for i in range(101))
    r, reader = exchange(server, b"GET /plaintext HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n")
    assert r.status == 431
    assert reader.at_eof()


def test_hundred_headers_are_fine(server):
    many = b"".join(b"X-%d: v\r\n" % i for i in range(99))
    r, reader = exchange(server, b"GET /plaintext HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n")
    assert r.status == 200
    reader.sock.close()


def test_body_over_limit_is_413(server):
    r, reader = exchange(
        server, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)
    )
    assert r.status == 413
    assert reader.at_eof()


def test_body_at_limit_is_accepted(server):
    body = b"x" * MAX_BODY
    r, reader = exchange(
        server,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % MAX_BODY + body,
    )
    assert r.status == 200 and len(r.body) == len(body)
    reader.sock.close()


def test_chunked_body_over_limit_is_413(server):
    s = server.connect()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"y" * 0x10000 + b"\r\n"
    reader = Reader(s)
    try:
        for _ in range(MAX_BODY // 0x10000 + 1):
            s.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = reader.read_response()
    assert r.status == 413
    assert reader.at_eof()


def test_client_disconnect_mid_request_does_not_hurt(server):
    for raw in (
        b"GET /plaintext HTTP/1.1\r\nHo",
        b'POST /items HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{"a"',
        b"GET /slow?delay=0.2 HTTP/1.1\r\nHost: t\r\n\r\n",
    ):
        s = server.connect()
        s.sendall(raw)
        s.shutdown(socket.SHUT_RDWR)
        s.close()
    r, reader = exchange(server, GET)
    assert r.status == 200
    reader.sock.close()
