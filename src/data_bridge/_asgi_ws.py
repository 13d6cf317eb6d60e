"""The ASGI ``websocket`` scope for applications served by ``data_bridge.serve``.

csrc/asgi/websocket.c hands every request with ``Upgrade: websocket`` here, with its scope
(built as the http one) and a ``_core._WebSocketUpgrade`` holding the pending request.
``run`` starts a Task that checks the handshake (RFC 6455 §4.2.1: 400, or 426 with the
version spoken), calls the application with the websocket scope and drives its messages
(spec "WebSocket", www 2.4): ``websocket.connect`` first, ``websocket.receive`` per
message, ``websocket.disconnect`` with the peer's code; ``websocket.accept`` answers 101
(the protocol then runs in C, server/ws.c), ``websocket.send``, ``websocket.close`` (before
accept: 403), and the denial extension ``websocket.http.response.start``/``body``. An
application that raises or returns without accepting gets 500 or 403 before the accept,
a close 1011 or 1000 after it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

__all__ = ["run"]

_tasks: set[asyncio.Task[None]] = set()


def run(app: Any, scope: dict[str, Any], upgrade: Any, loop: Any, log: Any) -> None:
    # Never finishes the request synchronously: the server has not made it pending yet.
    task = loop.create_task(_serve(app, scope, upgrade, log))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _tokens(headers: list[tuple[bytes, bytes]], name: bytes) -> list[str]:
    out: list[str] = []
    for key, value in headers:
        if key == name:
            out += [t.strip() for t in value.decode("latin-1").split(",") if t.strip()]
    return out


def _handshake_status(scope: dict[str, Any]) -> int:
    headers = scope["headers"]
    if scope.get("method") != "GET" or scope.get("http_version") == "1.0":
        return 400
    if "upgrade" not in [t.lower() for t in _tokens(headers, b"connection")]:
        return 400
    versions = [v for k, v in headers if k == b"sec-websocket-version"]
    if not versions:
        return 400
    if versions[0].strip() != b"13":
        return 426
    keys = [v for k, v in headers if k == b"sec-websocket-key"]
    try:
        valid = bool(keys) and len(base64.b64decode(keys[0].strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        valid = False
    return 0 if valid else 400


def _lines(headers: Any) -> bytes:
    out = []
    for name, value in headers or ():
        if any(c in bytes(value) for c in b"\r\n\0") or any(c in bytes(name) for c in b"\r\n\0: "):
            raise RuntimeError(f"invalid header {name!r}: {value!r}")
        out.append(bytes(name) + b": " + bytes(value) + b"\r\n")
    return b"".join(out)


async def _serve(app: Any, http_scope: dict[str, Any], upgrade: Any, log: Any) -> None:
    try:
        status = _handshake_status(http_scope)
        if status:
            extra = b"sec-websocket-version: 13\r\n" if status == 426 else b""
            upgrade.respond(status, b"content-type: text/plain\r\n" + extra, b"Bad handshake")
            return
        await _drive(app, http_scope, upgrade, log)
    finally:
        upgrade.finish()


async def _drive(app: Any, http_scope: dict[str, Any], upgrade: Any, log: Any) -> None:
    loop = asyncio.get_running_loop()
    scope = dict(http_scope)
    scope["type"] = "websocket"
    # RFC 6455 §3: ws and wss; a proxy's X-Forwarded-Proto of ws or wss is kept (uvicorn).
    scheme = http_scope.get("scheme", "http")
    scope["scheme"] = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    scope.pop("method", None)
    scope["subprotocols"] = _tokens(scope["headers"], b"sec-websocket-protocol")
    scope["extensions"] = {"websocket.http.response": {}}
    state = {"connected": False, "session": None, "closed": False, "responded": False}
    denial: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        if not state["connected"]:
            state["connected"] = True
            return {"type": "websocket.connect"}
        session = state["session"]
        if session is None:
            if state["closed"]:
                return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
            # Nothing arrives before the accept: wait for it (or for ever).
            await loop.create_future()
        message = session.receive()
        if not isinstance(message, (str, bytes, tuple)):
            message = await message
        if isinstance(message, tuple):
            return {"type": "websocket.disconnect", "code": message[0], "reason": message[1]}
        if isinstance(message, str):
            return {"type": "websocket.receive", "text": message, "bytes": None}
        return {"type": "websocket.receive", "bytes": message, "text": None}

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        session = state["session"]
        if state["closed"] or state["responded"]:
            raise OSError("the WebSocket is closed")
        if session is None:
            if kind == "websocket.accept":
                lines = b""
                if message.get("subprotocol") is not None:
                    lines += b"sec-websocket-protocol: " + message["subprotocol"].encode() + b"\r\n"
                lines += _lines(message.get("headers"))
                state["session"] = upgrade.accept(loop, lines)
            elif kind == "websocket.close":
                state["closed"] = True
                upgrade.respond(403, b"content-type: text/plain\r\n", b"")
            elif kind == "websocket.http.response.start":
                denial["status"] = message["status"]
                # The server frames the body it is given whole: its own Content-Length.
                denial["headers"] = _lines(
                    (k, v)
                    for k, v in message.get("headers") or ()
                    if bytes(k).lower() not in (b"content-length", b"transfer-encoding")
                )
                denial["body"] = b""
            elif kind == "websocket.http.response.body" and "status" in denial:
                denial["body"] += bytes(message.get("body", b""))
                if not message.get("more_body", False):
                    state["responded"] = True
                    upgrade.respond(denial["status"], denial["headers"], denial["body"])
            else:
                raise RuntimeError(f"expected websocket.accept or websocket.close, got {kind!r}")
            return
        if kind == "websocket.send":
            data = message.get("text")
            if data is None:
                data = message.get("bytes")
            if data is None:
                raise RuntimeError("websocket.send needs text or bytes")
            try:
                waiter = session.send(data)
            except ConnectionResetError as exc:
                raise OSError("the client closed the connection") from exc
            if waiter is not None:
                await waiter
        elif kind == "websocket.close":
            state["closed"] = True
            session.close(message.get("code", 1000), message.get("reason") or "")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} after the accept")

    try:
        await app(scope, receive, send)
    except BaseException as exc:
        if log is not None:
            log("Exception in ASGI application (websocket)", exc)
        if state["session"] is not None:
            if not state["closed"]:
                state["session"].close(1011, "")
        elif not state["closed"] and not state["responded"]:
            upgrade.respond(500, b"content-type: text/plain\r\n", b"Internal Server Error")
        if not isinstance(exc, Exception):
            raise
        return
    if state["session"] is not None:
        if not state["closed"]:
            state["session"].close(1000, "")
    elif not state["closed"] and not state["responded"]:
        # Returned without accepting: refused, as uvicorn answers.
        upgrade.respond(403, b"content-type: text/plain\r\n", b"")
