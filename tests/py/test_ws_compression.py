"""permessage-deflate (RFC 7692) with context takeover on the native server: interop with the
`websockets` and aiohttp clients over many messages, and the wire checked with zlib from a
raw socket (the windows kept between messages, 12-bit windows, the client's
no_context_takeover requests honoured, the inflated-size bound)."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time
import zlib
from collections.abc import Iterator

import aiohttp
import pytest
from conftest import Reader, ServerProcess
from test_websockets import RawWS, frame
from websockets.sync.client import connect

TAIL = b"\x00\x00\xff\xff"


@pytest.fixture(scope="module")
def ws() -> Iterator[ServerProcess]:
    srv = ServerProcess("ws_app.py").start()
    yield srv
    code, log = srv.stop()
    assert code == 0, log


def messages(n: int) -> list[str | bytes]:
    """Chat-like messages of many sizes, text and binary, repetitive as real traffic is."""
    out: list[str | bytes] = []
    for i in range(n):
        body = {"user": f"u{i % 7}", "seq": i, "text": "hello there " * (i % 40), "ok": True}
        text = json.dumps(body)
        out.append(text if i % 3 else text.encode() + bytes(range(i % 256)))
    out += ["é" * 5000, os.urandom(3000), "", b"", "z" * 60000]
    return out


def test_websockets_client_many_messages(ws: ServerProcess) -> None:
    with connect(f"ws://127.0.0.1:{ws.port}/echo") as c:
        agreed = c.response.headers["sec-websocket-extensions"]
        assert "no_context_takeover" not in agreed  # the windows are kept
        for m in messages(400):
            c.send(m)
            assert c.recv(timeout=5) == m


def test_websockets_client_without_takeover(ws: ServerProcess) -> None:
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True
    )
    with connect(f"ws://127.0.0.1:{ws.port}/echo", extensions=[factory], compression=None) as c:
        agreed = c.response.headers["sec-websocket-extensions"]
        assert "server_no_context_takeover" in agreed
        assert "client_no_context_takeover" in agreed
        for m in messages(100):
            c.send(m)
            assert c.recv(timeout=5) == m


def test_aiohttp_client_many_messages(ws: ServerProcess) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"ws://127.0.0.1:{ws.port}/echo", compress=15) as c:
                assert c.compress == 12  # the client_max_window_bits we asked for
                for m in messages(400):
                    if isinstance(m, str):
                        await c.send_str(m)
                        assert (await c.receive(timeout=5)).data == m
                    else:
                        await c.send_bytes(m)
                        assert (await c.receive(timeout=5)).data == m

    asyncio.run(main())


def test_aiohttp_client_small_server_window(ws: ServerProcess) -> None:
    """aiohttp's compress=10 offers server_max_window_bits=10: our deflater takes it."""

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            url = f"ws://127.0.0.1:{ws.port}/echo"
            async with session.ws_connect(url, compress=10) as c:
                agreed = c._response.headers["sec-websocket-extensions"]
                assert "server_max_window_bits=10" in agreed
                for m in messages(100):
                    if isinstance(m, str):
                        await c.send_str(m)
                    else:
                        await c.send_bytes(m)
                    assert (await c.receive(timeout=5)).data == m

    asyncio.run(main())


class DeflateWS(RawWS):
    """A raw client that offers permessage-deflate and compresses with zlib itself."""

    def __init__(self, srv: ServerProcess, offer: str) -> None:
        self.sock = srv.connect()
        key = b"dGhlIHNhbXBsZSBub25jZQ=="
        self.sock.sendall(
            b"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Extensions: " + offer.encode() + b"\r\n\r\n"
        )
        self.reader = Reader(self.sock)
        resp = self.reader.read_response(head_request=True)
        assert resp.status == 101
        self.response = resp
        self.extensions = dict((k.lower(), v) for k, v in resp.headers).get(
            "sec-websocket-extensions", ""
        )

    def recv_raw(self) -> tuple[int, int, bytes]:
        """(first byte, opcode, payload) of the next frame."""
        while True:
            b = self.reader.buf
            if len(b) >= 2:
                n, pos = b[1] & 0x7F, 2
                if n == 126 and len(b) >= 4:
                    n, pos = struct.unpack_from("!H", b, 2)[0], 4
                elif n == 127 and len(b) >= 10:
                    n, pos = struct.unpack_from("!Q", b, 2)[0], 10
                if (n < 126 or pos > 2) and len(b) >= pos + n:
                    self.reader.buf = b[pos + n :]
                    return b[0], b[0] & 0x0F, b[pos : pos + n]
            if not self.reader._fill():
                raise ConnectionError("closed")


def compressed_frame(comp: zlib._Compress, payload: bytes) -> bytes:
    data = comp.compress(payload) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(TAIL)
    raw = frame(0x1, data[:-4])
    return bytes([raw[0] | 0x40]) + raw[1:]  # RSV1: a compressed message (RFC 7692 §6)


def test_context_takeover_on_the_wire(ws: ServerProcess) -> None:
    r = DeflateWS(ws, "permessage-deflate; client_max_window_bits")
    agreed = r.extensions
    assert agreed == "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    comp = zlib.compressobj(wbits=-12)  # the client's window, kept (no takeover refused)
    decomp = zlib.decompressobj(wbits=-12)  # the server's window, 12 bits as agreed
    message = json.dumps({"items": [{"id": i, "name": f"item {i}"} for i in range(40)]})
    sizes = []
    for _ in range(5):
        r.send(compressed_frame(comp, message.encode()))
        first, op, payload = r.recv_raw()
        assert op == 0x1 and first & 0x40  # compressed by the server too
        sizes.append(len(payload))
        assert decomp.decompress(payload + TAIL).decode() == message
    # The later echoes refer back to the first one: a few bytes each.
    assert sizes[0] > 200 and max(sizes[1:]) < 20, sizes
    r.close()


def test_idle_session_releases_and_resumes(ws: ServerProcess) -> None:
    """Idle for two sweeps (a second each), a session lets its zlib states go: its next echo
    is compressed afresh (no reference back: full size again, yet read by our decompressor
    that kept its window), and the client's next message, which refers back into the
    previous one within the agreed 12-bit window, is inflated from the window the server
    kept. Then the states are kept again while messages flow."""
    r = DeflateWS(ws, "permessage-deflate; client_max_window_bits")
    comp = zlib.compressobj(wbits=-12)
    decomp = zlib.decompressobj(wbits=-12)
    message = json.dumps({"items": [{"id": i, "name": f"item {i}"} for i in range(40)]})

    def echo() -> int:
        r.send(compressed_frame(comp, message.encode()))
        first, op, payload = r.recv_raw()
        assert op == 0x1 and first & 0x40
        assert decomp.decompress(payload + TAIL).decode() == message
        return len(payload)

    full, again = echo(), echo()
    assert full > 200 and again < 20
    time.sleep(2.5)
    sent = comp.compress(message.encode()) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert len(sent) < 24  # the client's message is a reference into its window
    r.send(bytes([frame(0x1, sent[:-4])[0] | 0x40]) + frame(0x1, sent[:-4])[1:])
    first, op, payload = r.recv_raw()
    assert op == 0x1 and first & 0x40
    assert decomp.decompress(payload + TAIL).decode() == message
    assert len(payload) > 200  # compressed by a new deflater
    assert echo() < 20  # and that one is kept again
    r.close()

    with connect(f"ws://127.0.0.1:{ws.port}/echo") as c:
        for m in messages(20):
            c.send(m)
            assert c.recv(timeout=5) == m
        time.sleep(2.5)
        for m in messages(20):
            c.send(m)
            assert c.recv(timeout=5) == m


def test_client_window_larger_than_agreed_is_read(ws: ServerProcess) -> None:
    """12 bits agreed for the client, which then reaches 8 KiB back: read all the same
    (the server inflates with a 32 KiB window, so the outcome never depends on how the
    payload was cut into reads; zlib's check of a smaller window does)."""
    r = DeflateWS(ws, "permessage-deflate; client_max_window_bits")
    comp = zlib.compressobj(wbits=-15)
    noise = os.urandom(8192).hex().encode()[:8192]
    r.send(compressed_frame(comp, noise))
    assert r.recv_raw()[1] == 0x1
    r.send(compressed_frame(comp, noise[:2000]))
    first, op, payload = r.recv_raw()
    assert op == 0x1 and first & 0x40
    r.close()


def test_server_no_context_takeover_on_the_wire(ws: ServerProcess) -> None:
    r = DeflateWS(ws, "permessage-deflate; server_no_context_takeover")
    agreed = r.extensions
    assert "server_no_context_takeover" in agreed
    comp = zlib.compressobj(wbits=-15)
    message = b"abcdefgh" * 100
    for _ in range(3):
        r.send(compressed_frame(comp, message))
        first, op, payload = r.recv_raw()
        # Each echo stands alone: a fresh decompressor reads it.
        assert zlib.decompressobj(wbits=-15).decompress(payload + TAIL) == message
    r.close()


def test_bound_after_many_messages(ws: ServerProcess) -> None:
    """The inflated-size bound (64 KiB in this app) holds with the window kept."""
    r = DeflateWS(ws, "permessage-deflate; client_max_window_bits")
    comp = zlib.compressobj(wbits=-12)
    for i in range(50):
        r.send(compressed_frame(comp, b"x%d" % i * 100))
        assert r.recv_raw()[1] == 0x1
    r.send(compressed_frame(comp, b"\x00" * (1 << 20)))  # 1 MiB from about 1 KiB
    first, op, payload = r.recv_raw()
    assert op == 0x8 and struct.unpack("!H", payload[:2])[0] == 1009
    r.close()
