"""The App called as an ASGI 3 application: ``await app(scope, receive, send)``.

Run by another ASGI server (uvicorn, granian, hypercorn), mounted in a Starlette or
FastAPI app, or called by an ASGI test tool (httpx's ASGITransport), the App keeps its
native path: its server runs on a PyLoop in a thread of its own (or on the caller's loop
when that is the PyLoop data-bridge serves on: an App behind pure ASGI middleware), and
each ASGI request is written as HTTP/1.1 bytes into a socketpair that server adopts, so
routing, binding, errors and documents are exactly the native ones. The response is read
back from the socket and sent as ``http.response.start`` and ``http.response.body``
messages as it arrives (streams stay streams). This costs a thread hop (none on the
caller's loop) and an HTTP round trip per request on top of the native path: serving the
App with data-bridge itself (``data-bridge module:app``) is the fast way; this is the
compatible one.

A ``websocket`` scope is served the same way: the upgrade request (the scope's path,
query string, headers and subprotocols; no permessage-deflate offered) goes into a
socketpair the native server adopts, and the bridge speaks WebSocket on it as a client
(RFC 6455), its frames read and written in C (``_core.WsClientCodec``, csrc/asgi/ws_peer.c
over csrc/ws/): the 101 becomes ``websocket.accept`` (subprotocol and extra headers), any
other answer a refusal (``websocket.http.response.*`` where the caller offers that
extension, else ``websocket.close``); then messages are relayed both ways until either
side closes, with the close handshake of §5.5.1 and §7 and pongs for the server's pings.

The lifespan protocol runs the App's startup and shutdown on that thread. Callers on
asyncio (or uvloop) use their loop's socket methods; other async libraries (trio, through
anyio) wait on the socket with anyio.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import hashlib
import os
import socket
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

from data_bridge import _core, pyloop

__all__ = ["AsgiBridge", "outer_scope"]

# The ASGI scope of each request in flight through a bridge, by the descriptor of the
# socketpair end the native server adopted for it: what outer middleware put in the scope
# (Starlette's SessionMiddleware's "session", an auth middleware's "user") reaches the
# native Request's ``scope`` (requests.py) through it.
_OUTER_SCOPES: dict[int, dict[str, Any]] = {}


def outer_scope(request: Any) -> dict[str, Any] | None:
    """The ASGI scope the request came in with through the App's ASGI face, if any."""
    if not _OUTER_SCOPES:
        return None
    fd = request._fd
    return None if fd is None else _OUTER_SCOPES.get(fd)


# Fields the calling server frames itself (RFC 9110 §7.6.1), or writes itself (Date).
_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"date"}

# Fields of a websocket scope the bridge writes itself into the upgrade request (RFC 6455
# §4.1), or leaves out: permessage-deflate is not offered on the socketpair (nothing to
# save there; the calling server compresses for its own client if it agreed to).
_WS_OWN = {
    b"connection",
    b"upgrade",
    b"sec-websocket-key",
    b"sec-websocket-version",
    b"sec-websocket-extensions",
    b"sec-websocket-protocol",
    b"content-length",
    b"transfer-encoding",
}
# Fields of the 101 answer that are the handshake's own: the rest are the headers the
# application gave its accept (websocket.accept's "headers").
_WS_HANDSHAKE = {
    b"upgrade",
    b"connection",
    b"sec-websocket-accept",
    b"sec-websocket-extensions",
    b"sec-websocket-protocol",
    b"date",
    b"server",
}
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
# Opcodes (§5.2).
_OP_TEXT, _OP_BINARY, _OP_PONG = 0x1, 0x2, 0xA
# How long the bridge waits for the server's close frame after sending its own (§7.1.1:
# the client waits for the server to close first).
_WS_CLOSE_WAIT = 5.0


def _stop_soon(loop: asyncio.AbstractEventLoop) -> None:
    """Stops a bridge's loop from any thread, unless its thread has closed it already
    (close() ran first): a finalizer must not raise."""
    try:
        loop.call_soon_threadsafe(loop.stop)
    except RuntimeError:  # "Event loop is closed"
        pass


class AsgiBridge:
    """The App's native server on a thread of its own, answering ASGI calls; or, given
    ``loop`` (the PyLoop the caller runs on: data-bridge serving an App behind pure ASGI
    middleware, a TestClient), on that loop, with no thread hop."""

    def __init__(
        self,
        app: Any,
        loop: asyncio.AbstractEventLoop | None = None,
        build_options: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        # More arguments of App.build_server (a TestClient's client address).
        self._build_options = build_options or {}
        self._servers: dict[tuple[str, str], Any] = {}
        self._thread: threading.Thread | None = None
        if loop is not None:
            self.loop = loop
            return
        self.loop = pyloop.new_event_loop()
        self._thread = threading.Thread(
            target=_run, args=(self.loop,), name="data-bridge-asgi", daemon=True
        )
        self._thread.start()
        # When the App (and so this bridge) is gone, its loop stops and its thread ends.
        weakref.finalize(self, _stop_soon, self.loop)

    def close(self) -> None:
        """Closes the servers and stops the thread (after the lifespan's shutdown; an
        App called without the lifespan protocol keeps its thread, a daemon, until the
        process ends: its servers keep the App alive until closed)."""

        def stop() -> None:
            for server in self._servers.values():
                server.close()
            self._servers.clear()
            if self._thread is not None:
                self.loop.call_later(0.1, self.loop.stop)

        if self._thread is None:
            stop()
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(stop)

    def _on_loop(self, func: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        async def run() -> Any:
            result = func()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop)

    async def _await(self, func: Callable[[], Any]) -> Any:
        if self._thread is None:  # on the caller's own loop
            result = func()
            if asyncio.iscoroutine(result):
                result = await result
            return result
        future = self._on_loop(func)
        if _on_asyncio():
            return await asyncio.wrap_future(future)
        import anyio.to_thread

        return await anyio.to_thread.run_sync(future.result)

    async def _server(self, root_path: str, scheme: str) -> Any:
        key = (root_path, scheme)
        server = self._servers.get(key)
        if server is None:
            server = await self._await(
                lambda: self.app.build_server(
                    self.loop, root_path=root_path or None, scheme=scheme, **self._build_options
                )
            )
            self._servers[key] = server
        return server

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(f"the App does not serve {scope['type']!r} over ASGI")
        from data_bridge.api.testclient import _ResponseReader

        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        async with self._connection(scope) as ours:
            await _sendall(ours, _request_bytes(scope, bytes(body)))
            reader = _ResponseReader(scope["method"])
            started = False
            sent = 0
            while not reader.done:
                reader.feed(await _recv(ours))
                if not started and reader.status:
                    headers = [(k.lower(), v) for k, v in reader.headers]
                    await send(
                        {
                            "type": "http.response.start",
                            "status": reader.status,
                            "headers": [(k, v) for k, v in headers if k not in _HOP_BY_HOP],
                        }
                    )
                    started = True
                if started and len(reader.body) > sent and not reader.done:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": bytes(reader.body[sent:]),
                            "more_body": True,
                        }
                    )
                    sent = len(reader.body)
            await send({"type": "http.response.body", "body": bytes(reader.body[sent:])})

    @contextlib.asynccontextmanager
    async def _connection(self, scope: dict[str, Any]) -> AsyncIterator[socket.socket]:
        """Our end of a socketpair whose other end the native server (for the scope's
        root_path and scheme) has adopted, with the scope registered for it in
        _OUTER_SCOPES; both ends closed and the scope forgotten afterwards."""
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        server = await self._server(scope.get("root_path", ""), scheme)
        _enter_mount(self.app, scope)
        ours, theirs = socket.socketpair()
        fd = theirs.fileno()
        _OUTER_SCOPES[fd] = scope
        try:
            ours.setblocking(False)

            def adopt() -> None:
                server.adopt(theirs.fileno())
                theirs.detach()  # the server owns that fd now

            await self._await(adopt)
            yield ours
        finally:
            ours.close()
            theirs.close()
            # The server may have closed its end and the number been reused meanwhile.
            if _OUTER_SCOPES.get(fd) is scope:
                del _OUTER_SCOPES[fd]

    async def _websocket(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        """A websocket scope through the native server (see the module's docstring)."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return  # the client left before the handshake
        key = _ws_key(scope)
        async with self._connection(scope) as ours:
            await _sendall(ours, _upgrade_bytes(scope, key))
            head = bytearray()
            while b"\r\n\r\n" not in head:
                chunk = await _recv(ours)
                if not chunk:
                    break
                head += chunk
            status, headers, rest = _ws_response_head(head)
            if status != 101:
                await _ws_refused(scope, send, ours, bytes(head))
                return
            accept = dict(headers).get(b"sec-websocket-accept", b"")
            if accept != _accept_value(key):
                # §4.1: the client fails the connection; the server's side sees it end.
                await send({"type": "websocket.close", "code": 1011, "reason": ""})
                return
            subprotocol = dict(headers).get(b"sec-websocket-protocol")
            await send(
                {
                    "type": "websocket.accept",
                    "subprotocol": None if subprotocol is None else subprotocol.decode("latin-1"),
                    "headers": [(k, v) for k, v in headers if k not in _WS_HANDSHAKE],
                }
            )
            await _WsRelay(ours, receive, send).run(rest)

    async def _lifespan(
        self,
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "lifespan.startup":
                try:
                    await self._await(self.app._startup_app)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif kind == "lifespan.shutdown":
                try:
                    await self._await(self.app._shutdown_app)
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                self.close()
                return


def _mount_prefixes(app: Any) -> list[str]:
    """The App's mount prefixes (app.mount's and StaticFiles'), remembered on the App until
    its routes or mounts change."""
    from data_bridge.api.routing import _MountRoute

    routes = getattr(app, "routes", ())
    mounts = getattr(app, "mounts", ())
    key = (len(routes), len(mounts))
    cached = getattr(app, "_db_mount_prefixes", None)
    if cached is not None and cached[0] == key:
        return cached[1]  # type: ignore[no-any-return]
    prefixes = [prefix for prefix, _, _ in mounts]
    prefixes += [r.mount_prefix for r in routes if isinstance(r, _MountRoute)]
    try:
        app._db_mount_prefixes = (key, prefixes)
    except AttributeError:
        pass
    return prefixes


def _enter_mount(app: Any, scope: dict[str, Any]) -> None:
    """A request for one of the App's mounts updates the caller's scope as Starlette's
    Mount does (root_path with the prefix, app_root_path kept), so the ASGI middleware
    around the App sees it after the call as around a Starlette app."""
    prefixes = _mount_prefixes(app)
    if not prefixes:
        return
    root = scope.get("root_path", "")
    path = scope.get("path", "")
    if root and (path == root or path.startswith(root.rstrip("/") + "/")):
        path = path[len(root.rstrip("/")) :]
    for prefix in prefixes:
        if path.startswith(prefix + "/"):
            scope["app_root_path"] = scope.get("app_root_path", root)
            scope["root_path"] = root.rstrip("/") + prefix
            return


def _run(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.run_forever()
    finally:
        loop.close()


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _sendall(sock: socket.socket, data: bytes) -> None:
    if _on_asyncio():
        await asyncio.get_running_loop().sock_sendall(sock, data)
        return
    import anyio

    view = memoryview(data)
    while view:
        # anyio 4.7 renamed wait_socket_writable (now deprecated) to wait_writable.
        await (getattr(anyio, "wait_writable", None) or anyio.wait_socket_writable)(sock)
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            continue


async def _recv(sock: socket.socket) -> bytes:
    if _on_asyncio():
        return await asyncio.get_running_loop().sock_recv(sock, 262144)
    import anyio

    while True:
        await (getattr(anyio, "wait_readable", None) or anyio.wait_socket_readable)(sock)
        try:
            return sock.recv(262144)
        except BlockingIOError:
            continue


def _head_lines(scope: dict[str, Any], method: bytes, skip: set[bytes]) -> list[bytes]:
    """The request line and the scope's fields but those in skip (the whole path: the
    server routes on what follows root_path, as Starlette does)."""
    target = scope.get("raw_path") or quote(scope["path"]).encode("ascii")
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    lines = [method + b" " + target + b" HTTP/1.1"]
    has_host = False
    for name, value in scope.get("headers", []):
        low = bytes(name).lower()
        if low in skip:
            continue
        has_host = has_host or low == b"host"
        lines.append(bytes(name) + b": " + bytes(value))
    if not has_host:
        server = scope.get("server") or ("localhost", 80)
        lines.append(b"host: " + f"{server[0]}:{server[1]}".encode("latin-1"))
    return lines


def _request_bytes(scope: dict[str, Any], body: bytes) -> bytes:
    """The HTTP/1.1 request of an ASGI http scope."""
    # The body is sent whole, with its own length.
    skip = {b"content-length", b"transfer-encoding", b"connection"}
    lines = _head_lines(scope, scope["method"].encode("ascii"), skip)
    lines.append(b"content-length: " + str(len(body)).encode("ascii"))
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# WebSocket ----------------------------------------------------------------------------


def _ws_key(scope: dict[str, Any]) -> bytes:
    """The Sec-WebSocket-Key of the upgrade: the scope's own when it is one (§4.1: the
    base64 of 16 bytes), so the App sees the key its client sent (and a TestClient finds
    its session's reports by it), else 16 random bytes."""
    for name, value in scope.get("headers", []):
        if bytes(name).lower() == b"sec-websocket-key":
            value = bytes(value).strip()
            try:
                if len(base64.b64decode(value, validate=True)) == 16:
                    return value
            except (binascii.Error, ValueError):
                pass
            break
    return base64.b64encode(os.urandom(16))


def _accept_value(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a key (§4.2.2 item 5.4)."""
    return base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())  # noqa: S324 - the RFC's


def _upgrade_bytes(scope: dict[str, Any], key: bytes) -> bytes:
    """The opening handshake of a websocket scope (§4.1): GET with the upgrade fields, the
    scope's other fields, its subprotocols in Sec-WebSocket-Protocol."""
    lines = _head_lines(scope, b"GET", _WS_OWN)
    lines += [
        b"connection: Upgrade",
        b"upgrade: websocket",
        b"sec-websocket-key: " + key,
        b"sec-websocket-version: 13",
    ]
    subprotocols = scope.get("subprotocols") or ()
    if subprotocols:
        lines.append(b"sec-websocket-protocol: " + ", ".join(subprotocols).encode("latin-1"))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _ws_response_head(data: bytearray) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The status and (lowercased) fields of the server's answer to the upgrade, and the
    bytes after its head (frames already sent); status 0 when there is no whole head."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return 0, [], b""
    lines = bytes(data[:end]).split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return 0, [], b""
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
    return status, headers, bytes(data[end + 4 :])


async def _ws_refused(
    scope: dict[str, Any],
    send: Callable[[dict[str, Any]], Awaitable[None]],
    sock: socket.socket,
    data: bytes,
) -> None:
    """The server refused the upgrade (403 for a close before the accept, 404, 400...):
    that response through the WebSocket Denial Response extension where the caller offers
    it, else a close (as a Starlette app refuses)."""
    from data_bridge.api.testclient import _ResponseReader

    extensions = scope.get("extensions") or {}
    if "websocket.http.response" not in extensions:
        await send({"type": "websocket.close", "code": 1000, "reason": ""})
        return
    reader = _ResponseReader("GET")
    try:
        if data:
            reader.feed(data)
        while not reader.done:
            reader.feed(await _recv(sock))
    except Exception:  # noqa: BLE001 - no whole answer: refused all the same
        await send({"type": "websocket.close", "code": 1000, "reason": ""})
        return
    headers = [(k.lower(), v) for k, v in reader.headers]
    await send(
        {
            "type": "websocket.http.response.start",
            "status": reader.status,
            "headers": [(k, v) for k, v in headers if k not in _HOP_BY_HOP],
        }
    )
    await send({"type": "websocket.http.response.body", "body": bytes(reader.body)})


class _WsRelay:
    """Relays one accepted WebSocket both ways: the server's messages to ``send``, the
    caller's ``receive`` to the server as masked frames, until either side closes."""

    def __init__(
        self,
        sock: socket.socket,
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        self.sock = sock
        self.receive = receive
        self.send = send
        self.codec = _core.WsClientCodec()
        self.close_sent = False  # our close frame went to the server
        self.left = False  # the caller's client is gone (websocket.disconnect, or send failed)

    async def run(self, pending: bytes) -> None:
        await _first_of(self._from_server(pending), self._from_caller())

    async def _write(self, frame: bytes) -> None:
        try:
            await _sendall(self.sock, frame)
        except OSError:
            pass  # the server closed: _from_server sees the end

    async def _from_server(self, data: bytes) -> None:
        while True:
            for item in self.codec.feed(data) if data else ():
                kind = item[0]
                if kind == "text":
                    if not await self._deliver({"type": "websocket.send", "text": item[1]}):
                        return
                elif kind == "bytes":
                    if not await self._deliver({"type": "websocket.send", "bytes": item[1]}):
                        return
                elif kind == "ping":
                    # §5.5.2: a pong with the same payload (unless we are closing).
                    if not self.close_sent:
                        await self._write(self.codec.frame(_OP_PONG, item[1]))
                elif kind == "close":
                    code, reason = item[1], item[2]
                    if not self.close_sent:
                        # §5.5.1: the endpoint answers a close with a close, echoing the code.
                        self.close_sent = True
                        await self._write(self.codec.close_frame(None if code == 1005 else code))
                    if not self.left:
                        # 1005 (no code in the frame) has no ASGI form: the default, 1000.
                        await self._deliver(
                            {
                                "type": "websocket.close",
                                "code": 1000 if code == 1005 else code,
                                "reason": reason,
                            }
                        )
                    return
                elif kind == "error":
                    # §7.1.7: the connection is failed, with that code to the server.
                    if not self.close_sent:
                        self.close_sent = True
                        await self._write(self.codec.close_frame(item[1]))
                    if not self.left:
                        await self._deliver({"type": "websocket.close", "code": 1011})
                    return
            data = await _recv(self.sock)
            if not data:
                # The connection ended without a close frame (§7.1.5: 1006, which no close
                # frame may carry): the caller's client learns of an internal error.
                if not self.left:
                    await self._deliver({"type": "websocket.close", "code": 1011})
                return

    async def _deliver(self, message: dict[str, Any]) -> bool:
        """Sends message to the caller; False when its client is gone (the server then
        sees the connection end, 1006, as when a client leaves without a close frame)."""
        try:
            await self.send(message)
        except OSError:
            self.left = True
            return False
        return True

    async def _from_caller(self) -> None:
        codec = self.codec
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                if text is not None:
                    await self._write(codec.frame(_OP_TEXT, text))
                else:
                    await self._write(codec.frame(_OP_BINARY, message.get("bytes") or b""))
            elif kind == "websocket.disconnect":
                self.left = True
                code = message.get("code", 1000)
                if self.close_sent:
                    return
                if code == 1006:
                    # Gone without a close frame: the server sees the same (§7.1.5).
                    return
                self.close_sent = True
                await self._write(_close_frame(codec, code, message.get("reason") or ""))
                # §7.1.1: the server answers and closes the connection; _from_server
                # returns then (or this, should it not).
                await _sleep(_WS_CLOSE_WAIT)
                return


def _close_frame(codec: Any, code: int, reason: str) -> bytes:
    """The close frame for a websocket.disconnect's code and reason: without the reason
    when it does not fit (over 123 bytes, §5.5.1), empty for 1005 and for a code no close
    frame may carry."""
    try:
        return codec.close_frame(code, reason)  # type: ignore[no-any-return]
    except ValueError:
        pass
    try:
        return codec.close_frame(code)  # type: ignore[no-any-return]
    except ValueError:
        return codec.close_frame()  # type: ignore[no-any-return]


async def _first_of(*coros: Awaitable[None]) -> None:
    """Runs the coroutines until one of them returns (or raises); the others are
    cancelled."""
    if _on_asyncio():
        tasks = [asyncio.ensure_future(c) for c in coros]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
        await asyncio.wait(tasks)
        for task in done:
            task.result()
        return
    import anyio

    async with anyio.create_task_group() as group:

        async def run(coro: Awaitable[None]) -> None:
            await coro
            group.cancel_scope.cancel()

        for coro in coros:
            group.start_soon(run, coro)


async def _sleep(seconds: float) -> None:
    if _on_asyncio():
        await asyncio.sleep(seconds)
        return
    import anyio

    await anyio.sleep(seconds)
