"""WebSockets on the native server: the upgrade, frames (csrc/ws through server/ws.c), the
close handshake, backpressure, FastAPI's API (data_bridge.api.websockets) and the test
client's websocket_connect. Against a real port with the `websockets` client and raw
sockets (for what a well-behaved client never sends), and in process with TestClient."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from conftest import Reader, ServerProcess
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from data_bridge import _core
from data_bridge.api import FastAPI, WebSocket, WebSocketDisconnect
from data_bridge.api.testclient import TestClient


@pytest.fixture(scope="module")
def ws() -> Iterator[ServerProcess]:
    srv = ServerProcess("ws_app.py").start()
    yield srv
    code, log = srv.stop()
    assert code == 0, log


def url(srv: ServerProcess, path: str) -> str:
    return f"ws://127.0.0.1:{srv.port}{path}"


def events(srv: ServerProcess) -> list[Any]:
    return httpx.get(srv.url + "/events").json()


def wait_event(srv: ServerProcess, wanted: list[Any], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wanted in events(srv):
            return
        time.sleep(0.02)
    raise AssertionError(f"{wanted} not in {events(srv)}")


# --- raw frames ------------------------------------------------------------------------


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawWS:
    def __init__(self, srv: ServerProcess, path: str = "/echo") -> None:
        self.sock = srv.connect()
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.reader = Reader(self.sock)
        resp = self.reader.read_response(head_request=True)
        assert resp.status == 101, resp.status
        self.response = resp

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_frame(self) -> tuple[bool, int, bytes]:
        buf = self.reader
        while True:
            b = buf.buf
            if len(b) >= 2:
                n = b[1] & 0x7F
                pos = 2
                if n == 126 and len(b) >= 4:
                    n, pos = struct.unpack_from("!H", b, 2)[0], 4
                elif n == 127 and len(b) >= 10:
                    n, pos = struct.unpack_from("!Q", b, 2)[0], 10
                if n < 126 or pos > 2:
                    assert not b[1] & 0x80, "a server frame must not be masked"
                    if len(b) >= pos + n:
                        buf.buf = b[pos + n :]
                        return bool(b[0] & 0x80), b[0] & 0x0F, bytes(b[pos : pos + n])
            if not buf._fill():
                raise ConnectionError("closed")

    def expect_close(self, code: int) -> None:
        fin, op, payload = self.recv_frame()
        assert op == 0x8, (op, payload)
        assert struct.unpack("!H", payload[:2])[0] == code
        assert self.reader.at_eof()

    def close(self) -> None:
        self.sock.close()


# --- the handshake ---------------------------------------------------------------------


def handshake(srv: ServerProcess, path: str, headers: bytes) -> Any:
    s = srv.connect()
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
    return Reader(s).read_response()


def test_accept_key_rfc_example(ws: ServerProcess) -> None:
    # RFC 6455 §1.3's example key and accept value.
    resp = handshake(
        ws,
        "/echo",
        b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    )
    assert resp.status == 101
    assert resp.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert resp.header("upgrade").lower() == "websocket"


def test_bad_handshakes(ws: ServerProcess) -> None:
    key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    up = b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    assert handshake(ws, "/echo", up + key).status == 400  # no version
    resp = handshake(ws, "/echo", up + key + b"Sec-WebSocket-Version: 8\r\n")
    assert resp.status == 426
    assert resp.header("sec-websocket-version") == "13"
    bad_key = b"Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n"
    assert handshake(ws, "/echo", up + bad_key).status == 400
    no_conn = b"Upgrade: websocket\r\n" + key + b"Sec-WebSocket-Version: 13\r\n"
    assert handshake(ws, "/echo", no_conn).status == 400
    # A plain GET of a WebSocket route: no route matches it (FastAPI answers 404).
    plain = httpx.get(ws.url + "/echo")
    assert plain.status_code == 404
    assert plain.json() == {"detail": "Not Found"}


def test_no_route_and_failure_before_accept(ws: ServerProcess) -> None:
    up = (
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    )
    # No WebSocket route: Starlette closes before accepting, which uvicorn answers 403
    # with an empty body (as the /guarded refusal below).
    missing = handshake(ws, "/missing", up)
    guarded = handshake(ws, "/guarded", up)
    assert (missing.status, missing.body) == (403, b"")
    assert missing.header("content-length") == guarded.header("content-length") == "0"
    assert handshake(ws, "/fail-before-accept", up).status == 500
    # Refused by a dependency (WebSocketException before accept): 403, as uvicorn.
    assert handshake(ws, "/guarded", up).status == 403


# --- with a real client ----------------------------------------------------------------


def test_echo_text_and_binary(ws: ServerProcess) -> None:
    with connect(url(ws, "/echo")) as c:
        c.send("héllo")
        assert c.recv() == "héllo"
        c.send(b"\x00\xffbin")
        assert c.recv() == b"\x00\xffbin"
        big = "z" * 60000
        c.send(big)
        assert c.recv() == big
        c.send("")
        assert c.recv() == ""


def test_fragmented_from_client(ws: ServerProcess) -> None:
    with connect(url(ws, "/echo")) as c:
        c.send(["frag", "mented", " message"])
        assert c.recv() == "fragmented message"
        c.send([b"a", b"b", b"c"])
        assert c.recv() == b"abc"


def test_fragments_with_interleaved_ping_raw(ws: ServerProcess) -> None:
    r = RawWS(ws)
    r.send(frame(0x1, b"one ", fin=False) + frame(0x9, b"pp") + frame(0x0, b"two", fin=True))
    assert r.recv_frame() == (True, 0xA, b"pp")
    assert r.recv_frame() == (True, 0x1, b"one two")
    # The same message fed byte by byte.
    for byte in frame(0x1, "é".encode() * 3):
        r.send(bytes([byte]))
    assert r.recv_frame() == (True, 0x1, "ééé".encode())
    r.close()


def test_permessage_deflate(ws: ServerProcess) -> None:
    # The websockets client offers permessage-deflate with client_max_window_bits: agreed
    # with context takeover and 12-bit windows (as the websockets server answers).
    with connect(url(ws, "/echo")) as c:
        agreed = c.response.headers["sec-websocket-extensions"]
        assert agreed == (
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        )
        for message in ["short", "long " * 2000, b"\x00\x01" * 5000, "é" * 3000]:
            c.send(message)
            assert c.recv() == message
        # A compressed message that inflates past the bound (64 KiB here): 1009.
        c.send("a" * 70000)
        with pytest.raises(ConnectionClosed) as info:
            c.recv()
    assert info.value.rcvd.code == 1009
    # Declined when not offered.
    with connect(url(ws, "/echo"), compression=None) as c:
        assert "sec-websocket-extensions" not in c.response.headers
        c.send("plain " * 100)
        assert c.recv() == "plain " * 100


def test_ping_pong(ws: ServerProcess) -> None:
    with connect(url(ws, "/echo")) as c:
        pong = c.ping(b"are you there")
        assert pong.wait(5)


def test_too_big(ws: ServerProcess) -> None:
    with connect(url(ws, "/echo"), max_size=None) as c:
        c.send("y" * 65537)
        with pytest.raises(ConnectionClosed) as info:
            c.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_invalid_utf8(ws: ServerProcess) -> None:
    r = RawWS(ws)
    r.send(frame(0x1, b"ok \xc3\x28 bad"))
    r.expect_close(1007)
    # Split across fragments: the first is valid so far, the second breaks it.
    r = RawWS(ws)
    r.send(frame(0x1, b"abc\xe2\x82", fin=False) + frame(0x0, b"\x28"))
    r.expect_close(1007)


def test_unmasked_client_frame(ws: ServerProcess) -> None:
    r = RawWS(ws)
    r.send(frame(0x1, b"naked", mask=False))
    r.expect_close(1002)


def test_protocol_errors(ws: ServerProcess) -> None:
    r = RawWS(ws)
    r.send(frame(0x3, b"reserved opcode"))
    r.expect_close(1002)
    r = RawWS(ws)
    r.send(frame(0x9, b"p" * 126))  # a control frame over 125 bytes
    r.expect_close(1002)
    r = RawWS(ws)
    r.send(frame(0x0, b"continuation of nothing"))
    r.expect_close(1002)


def test_close_from_client(ws: ServerProcess) -> None:
    httpx.post(ws.url + "/events/clear")
    r = RawWS(ws, "/record/client-close")
    r.send(frame(0x8, struct.pack("!H", 4321) + b"see you"))
    r.expect_close(4321)  # echoed (RFC 6455 §5.5.1), then the server closes TCP
    wait_event(ws, ["client-close", 4321, "see you"])


def test_close_from_server(ws: ServerProcess) -> None:
    r = RawWS(ws, "/server-close")
    assert r.recv_frame() == (True, 0x1, b"closing")
    fin, op, payload = r.recv_frame()
    assert op == 0x8 and struct.unpack("!H", payload[:2])[0] == 4000 and payload[2:] == b"done here"
    # The server waits for our close before it closes the connection.
    assert not r.reader.at_eof(timeout=0.3)
    r.send(frame(0x8, payload[:2]))
    assert r.reader.at_eof()


def test_close_with_real_client(ws: ServerProcess) -> None:
    with connect(url(ws, "/server-close")) as c:
        assert c.recv() == "closing"
        with pytest.raises(ConnectionClosed) as info:
            c.recv()
    assert info.value.rcvd.code == 4000 and info.value.rcvd.reason == "done here"


def test_disconnect_mid_receive(ws: ServerProcess) -> None:
    httpx.post(ws.url + "/events/clear")
    r = RawWS(ws, "/record/abrupt")
    time.sleep(0.05)
    r.close()  # no close frame: 1006
    wait_event(ws, ["abrupt", 1006, ""])
    with connect(url(ws, "/record/polite")) as c:
        c.close(code=4002, reason="later")
    wait_event(ws, ["polite", 4002, "later"])


def test_failure_after_accept_closes_1011(ws: ServerProcess) -> None:
    with connect(url(ws, "/fail-after-accept")) as c:
        with pytest.raises(ConnectionClosed) as info:
            c.recv()
    assert info.value.rcvd.code == 1011


def test_params_headers_subprotocol(ws: ServerProcess) -> None:
    with connect(
        url(ws, "/params/7?q=hey"), additional_headers={"x-token": "tok"}, subprotocols=["chat"]
    ) as c:
        assert c.subprotocol == "chat"
        data = json.loads(c.recv())
        with pytest.raises(ConnectionClosed) as info:
            c.recv()
    assert data == {
        "item_id": 7,
        "q": "hey",
        "token": "tok",
        "path": "/params/7",
        "query": {"q": "hey"},
        "path_params": {"item_id": "7"},
        "type": "websocket",
    }
    assert info.value.rcvd.code == 4001 and info.value.rcvd.reason == "bye"


def test_headers_read_after_accept(ws: ServerProcess) -> None:
    headers = [
        ("X-Token", "first"),
        ("x-token", "second"),
        ("X-Other", "é".encode().decode("latin-1")),
    ]
    with connect(url(ws, "/headers-after-accept"), additional_headers=headers) as c:
        local = c.socket.getsockname()  # before the server's close ends the socket
        c.send("go")
        data = json.loads(c.recv())
    assert data == {
        "one": "first",
        "missing": "none",
        "all": [["x-token", "first"], ["x-token", "second"], ["x-other", "Ã©"]],
        "mapping": ["first", "second"],
        "client": ["127.0.0.1", local[1]],
        "server": ["127.0.0.1", ws.port],
    }


def test_dependency_and_validation(ws: ServerProcess) -> None:
    with connect(url(ws, "/guarded?token=abc")) as c:
        assert c.recv() == "token abc"
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        connect(url(ws, "/params/notanint"))
    assert info.value.response.status_code == 403


def test_iter_json(ws: ServerProcess) -> None:
    httpx.post(ws.url + "/events/clear")
    with connect(url(ws, "/iter")) as c:
        for i in range(3):
            c.send(json.dumps({"i": i}))
            assert json.loads(c.recv()) == {"got": {"i": i}, "n": i + 1}
    wait_event(ws, ["iter-end", 3])


def test_backpressure_slow_reader(ws: ServerProcess) -> None:
    """A client that does not read: the server's output stays bounded (send() waits for
    the drain), and everything arrives once it reads."""
    httpx.post(ws.url + "/events/clear")
    r = RawWS(ws, "/flood")
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    r.send(frame(0x1, b"200 65000"))
    time.sleep(0.5)
    assert ["flood", "sent"] not in events(ws)  # 13 MB cannot all be queued
    got = 0
    while got < 200:
        fin, op, payload = r.recv_frame()
        assert op == 0x2 and len(payload) == 65000
        got += 1
    wait_event(ws, ["flood", "sent"])
    r.close()


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_ping_flood_without_reading_is_bounded(ws: ServerProcess) -> None:
    """A client that sends pings and never reads the pongs: the server stops reading once
    its queued output passes the write limit (1 MiB), so its memory stays bounded and the
    client's writes block."""
    assert ws.proc is not None
    before = rss_kib(ws.proc.pid)
    r = RawWS(ws)
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    ping = frame(0x9, b"p" * 125)
    batch = ping * 1000  # 131 KB of pings, 127 KB of pongs
    r.sock.settimeout(2)
    sent = 0
    with pytest.raises(TimeoutError):
        while sent < 200_000_000:
            r.sock.sendall(batch)
            sent += len(batch)
    grown = rss_kib(ws.proc.pid) - before
    # The write limit, a read buffer and the kernel's accounting: far below what was sent.
    assert sent < 100_000_000, sent
    assert grown < 16 * 1024, grown
    r.close()
    with connect(url(ws, "/echo")) as c:  # the others are served meanwhile
        c.send("ok")
        assert c.recv(timeout=5) == "ok"


def test_many_concurrent_connections(ws: ServerProcess) -> None:
    async def one(i: int) -> str:
        async with websockets.connect(url(ws, "/echo")) as c:
            await c.send(f"m{i}")
            return await c.recv()

    async def main() -> list[str]:
        return await asyncio.gather(*(one(i) for i in range(300)))

    assert asyncio.run(main()) == [f"m{i}" for i in range(300)]


def test_idle_sessions_hold_no_buffers(ws: ServerProcess) -> None:
    socks = [RawWS(ws) for _ in range(50)]
    for s in socks:
        s.send(frame(0x1, b"x"))
        assert s.recv_frame() == (True, 0x1, b"x")
    time.sleep(0.2)
    stats = httpx.get(ws.url + "/debug/server").json()
    assert stats["connections"] >= 50
    # Idle sessions keep no read or write buffer (only the stats request's own).
    assert stats["blocks_lent"] <= 2, stats
    for s in socks:
        s.close()


def test_no_reference_leaks(ws: ServerProcess) -> None:
    def load(rounds: int) -> None:
        for i in range(rounds):
            with connect(url(ws, "/echo")) as c:
                c.send("t" * (i % 100))
                c.recv()
                c.send(b"b" * (i % 300))
                c.recv()
            r = RawWS(ws, f"/record/leak{i}")
            r.close()
            r = RawWS(ws)
            r.send(frame(0x1, b"\xff"))
            r.expect_close(1007)
            with connect(url(ws, "/server-close")) as c:
                c.recv()
            with pytest.raises(websockets.exceptions.InvalidStatus):
                connect(url(ws, "/guarded"))

    def blocks() -> int:
        time.sleep(0.3)
        return httpx.get(ws.url + "/debug/blocks").json()["blocks"]

    load(60)  # warm caches, interned strings, free lists
    before = blocks()
    load(200)
    after = blocks()
    if after - before >= 400:
        # Once more before concluding: a late warm-up (a free list, a cache) does not
        # repeat, a leak does.
        before = after
        load(200)
        after = blocks()
    # 200 rounds are 1,200 sessions: a leak of one object per session shows as thousands.
    assert after - before < 400, (before, after)


def test_shutdown_closes_sessions_1001() -> None:
    srv = ServerProcess("ws_app.py").start()
    try:
        mute = RawWS(srv)  # never answers the server's close
        with connect(url(srv, "/echo")) as polite:
            srv.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as info:
                polite.recv(timeout=5)
        assert info.value.rcvd.code == 1001  # going away (RFC 6455 §7.4.1)
        fin, op, payload = mute.recv_frame()
        assert op == 0x8 and struct.unpack("!H", payload)[0] == 1001
        # The mute peer is given up on after the graceful timeout; the server exits cleanly.
        assert srv.proc.wait(15) == 0
        mute.close()
    finally:
        srv.stop()


# --- the test client -------------------------------------------------------------------


def make_app() -> FastAPI:
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="v1", headers=[(b"x-extra", b"1")])
        data = await websocket.receive_json()
        await websocket.send_json({"echo": data})
        await websocket.send_bytes(await websocket.receive_bytes())
        await websocket.close(code=1000)

    @app.websocket("/deny")
    async def deny(websocket: WebSocket) -> None:
        await websocket.close(code=4003, reason="nope")

    @app.websocket("/raise")
    async def raises(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        raise ValueError("in the endpoint")

    class Teapot(Exception):
        pass

    @app.exception_handler(Teapot)
    async def on_teapot(websocket: WebSocket, exc: Teapot) -> None:
        await websocket.close(code=4018, reason="teapot")

    @app.websocket("/teapot")
    async def teapot(websocket: WebSocket) -> None:
        await websocket.accept()
        raise Teapot()

    @app.websocket("/forever")
    async def forever(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            await websocket.send_text(await websocket.receive_text())

    return app


def test_testclient_session() -> None:
    client = TestClient(make_app())
    with client.websocket_connect("/ws", subprotocols=["v1", "v2"]) as s:
        assert s.accepted_subprotocol == "v1"
        assert (b"x-extra", b"1") in s.extra_headers
        s.send_json({"a": 1})
        assert s.receive_json() == {"echo": {"a": 1}}
        s.send_bytes(b"\x01\x02")
        assert s.receive_bytes() == b"\x01\x02"
        with pytest.raises(WebSocketDisconnect) as info:
            s.receive_text()
        assert info.value.code == 1000


def test_testclient_denial_and_errors() -> None:
    client = TestClient(make_app())
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect("/deny"):
            pass
    assert (info.value.code, info.value.reason) == (4003, "nope")
    with pytest.raises(ValueError, match="in the endpoint"):
        with client.websocket_connect("/raise") as s:
            s.send_text("go")
            s.receive_text()
    # The endpoint's WebSocketDisconnect reaches the test as Starlette's client raises it.
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect("/forever") as s:
            s.send_text("x")
            assert s.receive_text() == "x"
    assert info.value.code == 1000
    # An exception handler of the app answers for the endpoint.
    with client.websocket_connect("/teapot") as s:
        with pytest.raises(WebSocketDisconnect) as info:
            s.receive_text()
    assert (info.value.code, info.value.reason) == (4018, "teapot")
    # Plain requests still work beside sessions.
    assert client.get("/ws").status_code == 404


def test_receive_methods_as_starlette() -> None:
    """receive_text/bytes/json resolve without a coroutine of their own (the session's
    awaitable) and keep Starlette's rules: KeyError for the other kind of message, JSON
    errors raised at the await, a timeout that does not lose the next message, a Task of
    its own, WebSocketDisconnect with the peer's code, client_state, and no receive after
    the end. The URL and the scope say ws (Starlette's websocket scheme), not http."""
    app = FastAPI()
    seen: list[Any] = []

    @app.websocket("/rules")
    async def rules(websocket: WebSocket) -> None:
        await websocket.accept()
        seen.append((websocket.url.scheme, str(websocket.base_url), websocket.scope["scheme"]))
        for method in (websocket.receive_text, websocket.receive_bytes, websocket.receive_json):
            try:
                await method()
            except (KeyError, ValueError) as exc:
                seen.append(
                    type(exc).__name__ + (f" {exc.args[0]}" if type(exc) is KeyError else "")
                )
        seen.append(await websocket.receive_json(mode="binary"))
        with pytest.raises(RuntimeError, match='"mode" argument'):
            websocket.receive_json(mode="other")
        try:
            await asyncio.wait_for(websocket.receive_text(), 0.05)
        except asyncio.TimeoutError:
            seen.append("timeout")
        await websocket.send_text("ready")
        seen.append(await websocket.receive_text())  # sent after the timeout: not lost
        task = asyncio.create_task(websocket.receive_text())
        await websocket.send_text("ready")
        seen.append(await task)
        seen.append(websocket.client_state.name)
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))
        seen.append(websocket.client_state.name)
        try:
            await websocket.receive_text()
        except RuntimeError as exc:
            seen.append(str(exc))

    client = TestClient(app)
    with client.websocket_connect("/rules") as s:
        s.send_bytes(b"binary")  # receive_text
        s.send_text("text")  # receive_bytes
        s.send_text("{not json")  # receive_json
        s.send_bytes(b'{"a": [1, 2]}')  # receive_json(mode="binary")
        assert s.receive_text() == "ready"
        s.send_text("after the timeout")
        assert s.receive_text() == "ready"
        s.send_text("in a task")
        s.close(4001, "bye")
    assert seen == [
        ("ws", "ws://testserver/", "ws"),
        "KeyError text",
        "KeyError bytes",
        "JSONDecodeError",
        {"a": [1, 2]},
        "timeout",
        "after the timeout",
        "in a task",
        "CONNECTED",
        (4001, "bye"),
        "DISCONNECTED",
        'Cannot call "receive" once a disconnect message has been received.',
    ]


def test_messages_queued_while_the_app_is_busy() -> None:
    """Messages that arrive while nobody receives wait in the session's queue (reading
    pauses at ws_max_queue, 32, and resumes as the application takes them), in order."""
    app = FastAPI()

    @app.websocket("/busy")
    async def busy(websocket: WebSocket) -> None:
        await websocket.accept()
        await asyncio.sleep(0.2)
        got = [await websocket.receive_text() for _ in range(100)]
        await websocket.send_json({"ordered": got == [f"m{i}" for i in range(100)]})

    client = TestClient(app)
    with client.websocket_connect("/busy") as s:
        for i in range(100):
            s.send_text(f"m{i}")
        assert s.receive_json() == {"ordered": True}


def test_tail_hands_the_rest_to_the_driver() -> None:
    """_core._Tail (what a WebSocket route's wrapper returns so that no frame of its own
    waits around the endpoint): the Driver runs the awaitable in the handler's place, then
    then(arg, exc or None), whose result is the answer; an exception of the awaitable, or
    an object that cannot be awaited, reaches then."""
    app = FastAPI()
    seen: list[tuple[str, str | None]] = []

    async def work() -> int:
        await asyncio.sleep(0)
        return 1  # dropped, as `await endpoint` drops it

    async def boom() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def then(arg: str, exc: BaseException | None) -> dict[str, str]:
        seen.append((arg, type(exc).__name__ if exc is not None else None))
        return {"then": arg}

    @app.get("/tail/{kind}")
    async def tail(kind: str) -> Any:
        await asyncio.sleep(0)  # parked: the Driver drives the rest
        awaitable = work() if kind == "ok" else boom() if kind == "raise" else 42
        return _core._Tail(awaitable, then, kind)

    client = TestClient(app)
    for kind in ("ok", "raise", "bad"):
        assert client.get(f"/tail/{kind}").json() == {"then": kind}
    assert seen == [("ok", None), ("raise", "ValueError"), ("bad", "TypeError")]
    with pytest.raises(TypeError, match="then must be callable"):
        _core._Tail(work, 1, None)


# --- the ASGI websocket scope (an ASGI application served by data-bridge) -------------


@pytest.fixture(scope="module")
def asgi_ws() -> Iterator[ServerProcess]:
    srv = ServerProcess("asgi_ws_app.py").start()
    yield srv
    code, log = srv.stop()
    assert code == 0, log


def test_asgi_echo_and_disconnect(asgi_ws: ServerProcess) -> None:
    with connect(url(asgi_ws, "/echo"), subprotocols=["chat"]) as c:
        assert c.subprotocol == "chat"
        c.send("hi")
        assert c.recv() == "echo:hi"
        c.send(b"\x00bin" * 100)
        assert c.recv() == b"\x00bin" * 100
        c.close(code=4010)
    deadline = time.monotonic() + 5
    while ["disconnect", 4010] not in httpx.get(asgi_ws.url + "/events").json():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_asgi_scope(asgi_ws: ServerProcess) -> None:
    with connect(url(asgi_ws, "/scope?a=1")) as c:
        assert json.loads(c.recv()) == {
            "type": "websocket",
            "scheme": "ws",
            "path": "/scope",
            "query": "a=1",
            "method": None,
        }
        with pytest.raises(ConnectionClosed) as info:
            c.recv()
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4005, "seen")


def test_asgi_refusals(asgi_ws: ServerProcess) -> None:
    for path in ("/deny", "/nowhere"):  # a close before accept, Starlette's unknown route
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            connect(url(asgi_ws, path))
        assert info.value.response.status_code == 403
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        connect(url(asgi_ws, "/denial"))
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["x-why"] == "token" and response.body == b"no entry"
    with connect(url(asgi_ws, "/boom")) as c:
        with pytest.raises(ConnectionClosed) as closed:
            c.recv()
    assert closed.value.rcvd.code == 1011
    r = handshake(asgi_ws, "/echo", b"Upgrade: websocket\r\nConnection: Upgrade\r\n")
    assert r.status == 400
    assert httpx.get(asgi_ws.url + "/events").status_code == 200  # HTTP goes on


def test_asgi_protocol_errors(asgi_ws: ServerProcess) -> None:
    r = RawWS(asgi_ws)
    r.send(frame(0x1, b"\xff\xfe"))
    r.expect_close(1007)


def test_testclient_with_http_middleware() -> None:
    """@app.middleware("http") wraps HTTP routes only (BaseHTTPMiddleware passes websocket
    scopes through)."""
    app = make_app()
    seen: list[str] = []

    @app.middleware("http")
    async def record(request: Any, call_next: Any) -> Any:
        seen.append(request.url.path)
        return await call_next(request)

    client = TestClient(app)
    with client.websocket_connect("/ws", subprotocols=["v1"]) as s:
        s.send_json([1])
        assert s.receive_json() == {"echo": [1]}
        s.send_bytes(b"z")
        assert s.receive_bytes() == b"z"
    # The session never went through the middleware. A plain GET of the WebSocket route
    # matches no HTTP route: a 404 from inside the middleware, as FastAPI answers it.
    assert seen == []
    assert client.get("/ws").status_code == 404
    assert seen == ["/ws"]
