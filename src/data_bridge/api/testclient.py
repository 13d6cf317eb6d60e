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
"""

from __future__ import annotations

import asyncio
import socket
import threading
import weakref
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import httpx

from data_bridge import pyloop
from data_bridge.api import _stream, background

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


def _background_tasks() -> set[asyncio.Task[Any]]:
    return set(background.running) | set(_stream._tasks)


def _close_server(server: Any) -> None:
    try:
        server.close()
    except Exception:  # noqa: S110 - the loop may be closed at interpreter exit
        pass
