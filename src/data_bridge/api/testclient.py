"""TestClient: httpx's client API against an App, in process, through the native server.

Each request is written as HTTP/1.1 bytes into one end of a socketpair whose other end the
app's native server adopts (``_core.Server.adopt``), so every request runs the same parser,
router, binding and response writer as in production, without a port. The server lives on
a PyLoop owned by the client's thread and shared by every TestClient of that thread; the
loop runs only while a request (or the lifespan) is in progress.

As in Starlette's TestClient: ``with TestClient(app)`` runs the app's startup and lifespan
and its shutdown on exit; ``raise_server_exceptions=True`` re-raises in the test what a
handler raised (the server still answers 500); the base URL is ``http://testserver``;
cookies set by responses are kept for later requests.

``client.websocket_connect(path)`` opens a WebSocket session the same way (the upgrade
request, then masked frames as a browser sends them, written and parsed here); the loop
runs while a call of the session waits, so the application runs between those calls only
when one waits for it. The application's side reports to the client what Starlette's test
client learns from the ASGI messages (a refusal's close code, an exception the endpoint
raised, the end of the endpoint) through the server's ``websocket_sink``, keyed by the
session's Sec-WebSocket-Key.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import threading
import weakref
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote

import httpx

from data_bridge import pyloop
from data_bridge.api import _stream, background
from data_bridge.api.websockets import WebSocketDisconnect as _WebSocketDisconnect

__all__ = ["TestClient"]

T = TypeVar("T")

_local = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    """The PyLoop of this thread's test clients (made on first use, kept for the thread)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = pyloop.new_event_loop()
    return loop


class _Runner:
    """Runs coroutines on the test loop, in the calling thread."""

    def __init__(self) -> None:
        self.loop = _thread_loop()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError(
                "TestClient is synchronous: call it outside a running event loop "
                "(use httpx.AsyncClient against a served app in async code)"
            )
        return self.loop.run_until_complete(coro)


class _ResponseReader:
    """Incremental HTTP/1.1 response parser for the client end of the socketpair (RFC 9112:
    status line, fields, then a Content-Length, chunked or close-delimited body)."""

    def __init__(self, method: str) -> None:
        self.head_only = method == "HEAD"
        self.buf = bytearray()
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.done = False
        self._state = "head"
        self._remaining = 0
        self._chunked = False
        self._until_close = False

    def feed(self, data: bytes) -> None:
        if not data:  # the server closed the connection
            if self._until_close:
                self.done = True
                return
            raise httpx.RemoteProtocolError("server closed the connection before a full response")
        self.buf += data
        self._advance()

    def _advance(self) -> None:
        while not self.done:
            if self._state == "head":
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buf[:end])
                del self.buf[: end + 4]
                self._parse_head(head)
            elif self._state == "length":
                take = min(self._remaining, len(self.buf))
                self.body += self.buf[:take]
                del self.buf[:take]
                self._remaining -= take
                if self._remaining:
                    return
                self.done = True
            elif self._state == "chunk-size":
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return
                line = bytes(self.buf[:end]).split(b";", 1)[0].strip()
                del self.buf[: end + 2]
                try:
                    self._remaining = int(line, 16)
                except ValueError as exc:
                    raise httpx.RemoteProtocolError(f"bad chunk size {line!r}") from exc
                self._state = "chunk" if self._remaining else "trailers"
            elif self._state == "chunk":
                if len(self.buf) < self._remaining + 2:
                    return
                self.body += self.buf[: self._remaining]
                del self.buf[: self._remaining + 2]
                self._state = "chunk-size"
            elif self._state == "trailers":
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return
                del self.buf[: end + 2]
                if end == 0:
                    self.done = True
            else:  # close-delimited
                self.body += self.buf
                self.buf.clear()
                return

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise httpx.RemoteProtocolError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        if 100 <= status < 200:  # 100 Continue and other interim responses
            return
        self.status = status
        self.reason = parts[2] if len(parts) > 2 else b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers.append((name.strip(), value.strip()))
        lowered = {k.lower(): v for k, v in self.headers}
        if self.head_only or status in (204, 304):
            self.done = True
        elif lowered.get(b"transfer-encoding", b"").lower() == b"chunked":
            self._state = "chunk-size"
        elif b"content-length" in lowered:
            self._remaining = int(lowered[b"content-length"])
            self._state = "length"
            self.done = self._remaining == 0
        else:
            self._state = "close"
            self._until_close = True


def _request_bytes(request: httpx.Request, body: bytes) -> bytes:
    target = request.url.raw_path or b"/"
    lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    has_length = False
    for name, value in request.headers.raw:
        low = name.lower()
        if low == b"transfer-encoding":
            continue  # the body is sent whole, with its length
        if low == b"content-length":
            has_length = True
        lines.append(name + b": " + value)
    if body and not has_length:
        lines.append(b"content-length: " + str(len(body)).encode("ascii"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Transport(httpx.BaseTransport):
    def __init__(self, client: TestClient) -> None:
        self._client = weakref.ref(client)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        client = self._client()
        if client is None:
            raise RuntimeError("the TestClient is gone")
        body = request.read()
        if client.app._asgi_middleware:
            reader = client._runner.run(client._exchange_asgi(request, body))
        else:
            data = _request_bytes(request, body)
            reader = client._runner.run(client._exchange(data, request.method))
        headers = [(k, v) for k, v in reader.headers]
        # A stream, not content=: httpx would add a Content-Length the server did not send
        # (a chunked or close-delimited body).
        response = httpx.Response(
            reader.status,
            headers=headers,
            stream=httpx.ByteStream(bytes(reader.body)),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reader.reason},
        )
        response.read()
        return response


class TestClient(httpx.Client):
    """An httpx.Client whose requests are served by ``app`` in this process."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: Any,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        root_path: str = "",
        backend: str = "asyncio",
        backend_options: dict[str, Any] | None = None,
        cookies: httpx._types.CookieTypes | None = None,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
    ) -> None:
        self.app = app
        self.raise_server_exceptions = raise_server_exceptions
        self.root_path = root_path
        self.client_address = client
        self._runner = _Runner()
        self._server: Any = None
        self._server_key: Any = None
        self._finalizer: Any = None
        self._entered = 0
        # WebSocket sessions' reports from the server side: key -> [(event, value)], and
        # the futures of sessions waiting for their endpoint to end.
        self._ws_events: dict[str, list[tuple[str, Any]]] = {}
        self._ws_waiters: dict[str, asyncio.Future[None]] = {}
        merged = {"user-agent": "testclient"}
        if headers:
            merged.update(headers)
        super().__init__(
            base_url=base_url,
            headers=merged,
            transport=_Transport(self),
            follow_redirects=follow_redirects,
            cookies=cookies,
        )

    # The server -----------------------------------------------------------------

    def _ensure_server(self) -> Any:
        """The app's native server on the test loop, built again when the app changed
        since (routes added, ``dependency_overrides`` set or cleared)."""
        key = self.app._server_key()
        if self._server is not None and key != self._server_key:
            self._finalizer()
            self._server = None
        if self._server is None:
            self._server = self.app.build_server(
                self._runner.loop,
                root_path=self.root_path or None,
                client=self.client_address,
                scheme="https" if self.base_url.scheme == "https" else "http",
                websocket_sink=_ws_sink(self._ws_events, self._ws_waiters),
            )
            self._server_key = key
            # The native server holds itself until closed: close it with the client.
            self._finalizer = weakref.finalize(self, _close_server, self._server)
        return self._server

    async def _exchange(self, data: bytes, method: str) -> _ResponseReader:
        server = self._ensure_server()
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        try:
            ours.setblocking(False)
            server.adopt(theirs.fileno())
            theirs.detach()  # the server owns that fd now
            reader = _ResponseReader(method)
            before = _background_tasks()
            with self.app._capture_exceptions() as captured:
                try:
                    await loop.sock_sendall(ours, data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # answered (and closed) before the whole body was sent: read it
                while not reader.done:
                    reader.feed(await loop.sock_recv(ours, 262144))
                # As Starlette's client: the request's background work (BackgroundTasks,
                # a streaming response's end) has finished when the call returns.
                started = _background_tasks() - before
                if started:
                    await asyncio.wait(started)
        finally:
            theirs.close()
            ours.close()
        if captured and self.raise_server_exceptions:
            raise captured[0]
        return reader

    def _asgi_stack(self) -> Any:
        """The app's pure ASGI middleware around its ASGI face, on this client's loop."""
        from data_bridge.api._asgi_bridge import AsgiBridge

        key = self.app._server_key()
        cached = self.__dict__.get("_asgi")
        if cached is None or cached[0] != key:
            if cached is not None:
                cached[1].close()
            options = {
                "client": self.client_address,
                "websocket_sink": _ws_sink(self._ws_events, self._ws_waiters),
            }
            bridge = AsgiBridge(self.app, loop=self._runner.loop, build_options=options)
            cached = self.__dict__["_asgi"] = (key, bridge, self.app._asgi_chain(bridge))
        return cached[2]

    async def _exchange_asgi(self, request: httpx.Request, body: bytes) -> _AsgiResponse:
        """A request through the app's pure ASGI middleware, as Starlette's client drives
        an ASGI app: the scope made from the request, the body in one message."""
        stack = self._asgi_stack()
        url = request.url
        path, _, _ = url.raw_path.partition(b"?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": url.scheme,
            "path": unquote(path.decode("ascii")),
            "raw_path": path,
            "root_path": self.root_path,
            "query_string": url.query,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": self.client_address,
            "server": (url.host, url.port or (443 if url.scheme == "https" else 80)),
            "extensions": {},
        }
        out = _AsgiResponse()
        finished = asyncio.Event()
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out.status = message["status"]
                out.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                out.body += message.get("body", b"")

        before = _background_tasks()
        with self.app._capture_exceptions() as captured:
            try:
                await stack(scope, receive, send)
            except Exception:
                if self.raise_server_exceptions:
                    raise
                if not out.status:
                    out.status, out.body = 500, bytearray(b"Internal Server Error")
            finally:
                finished.set()
            started = _background_tasks() - before
            if started:
                await asyncio.wait(started)
        if captured and self.raise_server_exceptions:
            raise captured[0]
        return out

    def websocket_connect(
        self,
        url: str,
        subprotocols: list[str] | None = None,
        **kwargs: Any,
    ) -> WebSocketTestSession:
        """A WebSocket session with the app (a context manager), as Starlette's."""
        headers = dict(kwargs.pop("headers", None) or {})
        if subprotocols:
            headers["sec-websocket-protocol"] = ", ".join(subprotocols)
        request = self.build_request("GET", url, headers=headers, **kwargs)
        if self.app._asgi_middleware:
            return _AsgiWebSocketSession(self, request)
        return WebSocketTestSession(self, request)

    # Lifespan -----------------------------------------------------------------------

    def __enter__(self) -> TestClient:
        if self._entered == 0:
            self._ensure_server()
            self._runner.run(self.app._startup_app())
        self._entered += 1
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._entered -= 1
        if self._entered == 0:
            self._runner.run(self.app._shutdown_app())
        super().__exit__(*exc_info)


class _AsgiResponse:
    """A response collected from ASGI messages (what _Transport reads of a reader)."""

    def __init__(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()


def _background_tasks() -> set[asyncio.Task[Any]]:
    return set(background.running) | set(_stream._tasks)


def _close_server(server: Any) -> None:
    try:
        server.close()
    except Exception:  # noqa: S110 - the loop may be closed at interpreter exit
        pass


def _ws_sink(
    events: dict[str, list[tuple[str, Any]]], waiters: dict[str, asyncio.Future[None]]
) -> Any:
    # Holds the client's dicts, not the client (its finalizer closes the server).
    def sink(key: str, event: str, value: Any) -> None:
        events.setdefault(key, []).append((event, value))
        if event == "done":
            waiter = waiters.pop(key, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    return sink


class WebSocketTestSession:
    """The client side of one WebSocket session (Starlette's ``WebSocketTestSession``)."""

    __test__ = False

    def __init__(self, client: TestClient, request: httpx.Request) -> None:
        self._client = client
        self._request = request
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._key = base64.b64encode(os.urandom(16)).decode("ascii")
        self._closed = False  # our close frame was sent
        self._close: tuple[int, str] | None = None  # the server's close frame
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] | None = None

    # Connecting ------------------------------------------------------------------------

    def __enter__(self) -> WebSocketTestSession:
        client = self._client
        request = self._request
        request.headers["connection"] = "upgrade"
        request.headers["upgrade"] = "websocket"
        request.headers["sec-websocket-key"] = self._key
        request.headers["sec-websocket-version"] = "13"
        data = _request_bytes(request, b"")
        try:
            status, headers = client._runner.run(self._handshake(data))
        except BaseException:
            self._close_socket()
            raise
        if status != 101:
            self._close_socket()
            self._raise_reported()
            denied = self._event("denied")
            if denied is not None:
                raise _disconnect(*denied)
            raise _disconnect(1000, "")
        self.extra_headers = headers
        for name, value in headers:
            if name.lower() == b"sec-websocket-protocol":
                self.accepted_subprotocol = value.decode("latin-1")
        return self

    async def _handshake(self, data: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
        server = self._client._ensure_server()
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        self._sock = ours
        ours.setblocking(False)
        server.adopt(theirs.fileno())
        theirs.detach()  # the server owns that fd now
        await loop.sock_sendall(ours, data)
        while b"\r\n\r\n" not in self._buf:
            chunk = await loop.sock_recv(ours, 65536)
            if not chunk:
                break
            self._buf += chunk
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return 0, []
        lines = bytes(self._buf[:end]).split(b"\r\n")
        del self._buf[: end + 4]
        status = int(lines[0].split(b" ", 2)[1])
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip(), value.strip()))
        return status, headers

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if not self._closed:
                self.close(1000)
            self._client._runner.run(self._wait_done())
        finally:
            self._close_socket()
        self._raise_reported()

    async def _wait_done(self) -> None:
        if self._event("done", pop=False) is not None:
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._client._ws_waiters[self._key] = waiter
        try:
            await asyncio.wait_for(waiter, 30)
        finally:
            self._client._ws_waiters.pop(self._key, None)

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _event(self, kind: str, pop: bool = True) -> Any:
        events = self._client._ws_events.get(self._key, [])
        for i, (event, value) in enumerate(events):
            if event == kind:
                if pop:
                    del events[i]
                return value if value is not None else True
        return None

    def _raise_reported(self) -> None:
        error = self._event("error")
        if error is not None and self._client.raise_server_exceptions:
            raise error

    # Sending ---------------------------------------------------------------------------

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        # RFC 6455 §5.2/§5.3: a client masks every frame.
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = _mask(payload, mask)
        self._client._runner.run(self._write(head + mask + masked))

    async def _write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(self._sock, data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed first: what it sent is still read
        # Let the server take the frame in before the test goes on.
        for _ in range(3):
            await asyncio.sleep(0)

    def send(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        if kind == "websocket.receive":
            if message.get("text") is not None:
                self.send_text(message["text"])
            else:
                self.send_bytes(message["bytes"])
        elif kind == "websocket.disconnect":
            self.close(message.get("code", 1000), message.get("reason"))
        else:
            raise RuntimeError(f"unexpected message type {kind!r}")

    def send_text(self, data: str) -> None:
        self._send_frame(0x1, data.encode("utf-8"))

    def send_bytes(self, data: bytes) -> None:
        self._send_frame(0x2, bytes(data))

    def send_json(self, data: Any, mode: str = "text") -> None:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if mode == "text":
            self.send_text(text)
        else:
            self.send_bytes(text.encode("utf-8"))

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        payload = struct.pack("!H", code) + (reason or "").encode("utf-8")
        self._send_frame(0x8, payload)

    # Receiving -------------------------------------------------------------------------

    def receive(self) -> dict[str, Any]:
        """The next message the app sent: websocket.send (text or bytes) or
        websocket.close. An exception the endpoint raised is raised here instead."""
        if self._close is not None:
            self._raise_reported()
            return {"type": "websocket.close", "code": self._close[0], "reason": self._close[1]}
        opcode, payload = self._client._runner.run(self._read_message())
        if opcode == 0x8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            self._close = (code, payload[2:].decode("utf-8", "replace"))
            self._raise_reported()
            return {"type": "websocket.close", "code": code, "reason": self._close[1]}
        if opcode == 0x1:
            return {"type": "websocket.send", "text": payload.decode("utf-8")}
        return {"type": "websocket.send", "bytes": payload}

    async def _read_message(self) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        parts: list[bytes] = []
        first = 0
        while True:
            frame = _parse_frame(self._buf)
            if frame is None:
                chunk = await loop.sock_recv(self._sock, 262144) if self._sock else b""
                if not chunk:
                    return 0x8, struct.pack("!H", 1006)
                self._buf += chunk
                continue
            fin, opcode, payload = frame
            if opcode == 0x9:  # a ping: answered as RFC 6455 §5.5.2 asks
                await loop.sock_sendall(self._sock, _client_frame(0xA, payload))
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x8:
                return opcode, payload
            if opcode:
                first = opcode
            parts.append(payload)
            if fin:
                return first, b"".join(parts)

    def receive_text(self) -> str:
        message = self.receive()
        self._raise_on_close(message)
        return message["text"]

    def receive_bytes(self) -> bytes:
        message = self.receive()
        self._raise_on_close(message)
        return message["bytes"]

    def receive_json(self, mode: str = "text") -> Any:
        message = self.receive()
        self._raise_on_close(message)
        text = message["text"] if mode == "text" else message["bytes"].decode("utf-8")
        return json.loads(text)

    @staticmethod
    def _raise_on_close(message: Mapping[str, Any]) -> None:
        if message["type"] == "websocket.close":
            raise _disconnect(message.get("code", 1000), message.get("reason", ""))


class WebSocketDenialResponse(httpx.Response, _WebSocketDisconnect):  # type: ignore[misc]
    """Raised by ``websocket_connect`` when the application refused the handshake with an
    HTTP response of its own (the WebSocket Denial Response extension), as Starlette's
    client does: a ``WebSocketDisconnect`` (code 1000) that is also the response."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        httpx.Response.__init__(self, status, headers=headers, content=body)
        self.code = 1000
        self.reason = ""


class _AsgiWebSocketSession(WebSocketTestSession):
    """A session with an app that has pure ASGI middleware: run through the same ASGI stack
    as its HTTP requests (the middleware around the App's ASGI face, _asgi_bridge.py), as
    Starlette's client drives a websocket scope: the stack runs as a task of the test loop
    with two queues, the messages to it (websocket.connect, websocket.receive,
    websocket.disconnect) and those it sends. What the App's side reports through the
    server's ``websocket_sink`` (an exception of the endpoint, a refusal's close code, the
    endpoint's end) is keyed by the session's Sec-WebSocket-Key, which the bridge passes on
    to the native server."""

    __test__ = False

    def __init__(self, client: TestClient, request: httpx.Request) -> None:
        super().__init__(client, request)
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def _scope(self) -> dict[str, Any]:
        request = self._request
        request.headers["connection"] = "upgrade"
        request.headers["upgrade"] = "websocket"
        request.headers["sec-websocket-key"] = self._key
        request.headers["sec-websocket-version"] = "13"
        url = request.url
        path, _, _ = url.raw_path.partition(b"?")
        subprotocols = []
        for value in request.headers.get_list("sec-websocket-protocol"):
            subprotocols += [p.strip() for p in value.split(",") if p.strip()]
        return {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if url.scheme == "https" else "ws",
            "path": unquote(path.decode("ascii")),
            "raw_path": path,
            "root_path": self._client.root_path,
            "query_string": url.query,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": self._client.client_address,
            "server": (url.host, url.port or (443 if url.scheme == "https" else 80)),
            "subprotocols": subprotocols,
            "extensions": {"websocket.http.response": {}},
        }

    async def _run(self, stack: Any, scope: dict[str, Any]) -> None:
        async def receive() -> dict[str, Any]:
            return await self._to_app.get()

        async def send(message: dict[str, Any]) -> None:
            self._from_app.put_nowait(message)

        await stack(scope, receive, send)

    async def _next(self) -> dict[str, Any]:
        """The next message the stack sent; a close (1000) once it returned without one
        (its exception raised, unless the client keeps server exceptions)."""
        if self._from_app.empty() and self._task is not None and not self._task.done():
            getter = asyncio.ensure_future(self._from_app.get())
            await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                return getter.result()
            getter.cancel()
        if not self._from_app.empty():
            return self._from_app.get_nowait()
        self._raise_failure()
        return {"type": "websocket.close", "code": 1000, "reason": ""}

    def _raise_failure(self) -> None:
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._client.raise_server_exceptions:
            self._task = None  # raised once
            raise exc

    def __enter__(self) -> WebSocketTestSession:
        client = self._client
        stack = client._asgi_stack()
        scope = self._scope()
        self._to_app.put_nowait({"type": "websocket.connect"})

        async def start() -> dict[str, Any]:
            self._task = asyncio.ensure_future(self._run(stack, scope))
            return await self._next()

        try:
            message = client._runner.run(start())
            if message["type"] == "websocket.accept":
                self.accepted_subprotocol = message.get("subprotocol")
                self.extra_headers = message.get("headers")
                return self
            # Refused: by the App (its report says how) or by a middleware.
            denial = None
            if message["type"] == "websocket.http.response.start":
                body = bytearray()
                while True:
                    part = client._runner.run(self._next())
                    if part["type"] != "websocket.http.response.body":
                        break
                    body += part.get("body", b"")
                    if not part.get("more_body", False):
                        break
                headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
                denial = WebSocketDenialResponse(message["status"], headers, bytes(body))
            client._runner.run(self._finish())
        except BaseException:
            self._cancel()
            raise
        self._raise_reported()
        self._raise_failure()
        denied = self._event("denied")
        if denied is not None:
            raise _disconnect(*denied)
        if denial is not None:
            raise denial
        raise _disconnect(message.get("code", 1000), message.get("reason") or "")

    async def _finish(self) -> None:
        """Waits for the stack to return, then for the endpoint's end when one started."""
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task}, timeout=30)
        if self._event("started", pop=False) is not None:
            await self._wait_done()

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if not self._closed:
                self.close(1000)
            self._client._runner.run(self._finish())
        finally:
            self._cancel()
        self._raise_reported()
        self._raise_failure()
        self._client._ws_events.pop(self._key, None)

    def _put(self, message: dict[str, Any]) -> None:
        self._to_app.put_nowait(message)

        async def settle() -> None:
            # Let the stack take the message in before the test goes on.
            for _ in range(3):
                await asyncio.sleep(0)

        self._client._runner.run(settle())

    def send_text(self, data: str) -> None:
        self._put({"type": "websocket.receive", "text": data})

    def send_bytes(self, data: bytes) -> None:
        self._put({"type": "websocket.receive", "bytes": bytes(data)})

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self._put({"type": "websocket.disconnect", "code": code, "reason": reason or ""})

    def receive(self) -> dict[str, Any]:
        if self._close is not None:
            self._raise_reported()
            return {"type": "websocket.close", "code": self._close[0], "reason": self._close[1]}
        message = self._client._runner.run(self._next())
        if message["type"] == "websocket.close":
            self._close = (message.get("code", 1000), message.get("reason") or "")
            self._raise_reported()
            return {"type": "websocket.close", "code": self._close[0], "reason": self._close[1]}
        if message.get("text") is not None:
            return {"type": "websocket.send", "text": message["text"]}
        return {"type": "websocket.send", "bytes": message.get("bytes") or b""}


def _disconnect(code: int, reason: str) -> BaseException:
    from data_bridge.api.websockets import WebSocketDisconnect

    return WebSocketDisconnect(code, reason)


def _mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    # XOR with the key repeated (RFC 6455 §5.3), on big integers rather than per byte.
    n = len(payload)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def _client_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + _mask(payload, mask)


def _parse_frame(buf: bytearray) -> tuple[bool, int, bytes] | None:
    """Takes one whole server frame off the front of buf: (fin, opcode, payload)."""
    if len(buf) < 2:
        return None
    fin = bool(buf[0] & 0x80)
    opcode = buf[0] & 0x0F
    n = buf[1] & 0x7F
    pos = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack_from("!H", buf, 2)[0]
        pos = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack_from("!Q", buf, 2)[0]
        pos = 10
    if len(buf) < pos + n:
        return None
    payload = bytes(buf[pos : pos + n])
    del buf[: pos + n]
    return fin, opcode, payload
