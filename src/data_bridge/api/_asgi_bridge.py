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

The lifespan protocol runs the App's startup and shutdown on that thread. Callers on
asyncio (or uvloop) use their loop's socket methods; other async libraries (trio, through
anyio) wait on the socket with anyio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from data_bridge import pyloop

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
        if scope["type"] != "http":
            raise RuntimeError(f"the App does not serve {scope['type']!r} over ASGI yet")
        from data_bridge.api.testclient import _ResponseReader

        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
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
        finally:
            ours.close()
            theirs.close()
            # The server may have closed its end and the number been reused meanwhile.
            if _OUTER_SCOPES.get(fd) is scope:
                del _OUTER_SCOPES[fd]

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


def _request_bytes(scope: dict[str, Any], body: bytes) -> bytes:
    """The HTTP/1.1 request of an ASGI http scope (the whole path: the server routes on
    what follows root_path, as Starlette does)."""
    target = scope.get("raw_path") or quote(scope["path"]).encode("ascii")
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    lines = [scope["method"].encode("ascii") + b" " + target + b" HTTP/1.1"]
    has_host = False
    for name, value in scope.get("headers", []):
        low = bytes(name).lower()
        if low in (b"content-length", b"transfer-encoding", b"connection"):
            continue  # the body is sent whole, with its own length
        has_host = has_host or low == b"host"
        lines.append(bytes(name) + b": " + bytes(value))
    if not has_host:
        server = scope.get("server") or ("localhost", 80)
        lines.append(b"host: " + f"{server[0]}:{server[1]}".encode("latin-1"))
    lines.append(b"content-length: " + str(len(body)).encode("ascii"))
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
