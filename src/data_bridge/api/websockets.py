"""WebSockets under FastAPI's and Starlette's names: ``WebSocket``, ``WebSocketDisconnect``,
``WebSocketState``, and the route wrapper that ``@app.websocket(path)`` registers.

The protocol runs in C (csrc/server/ws.c over csrc/ws/): the handshake check, the 101
answer, frame parsing with every RFC 6455 rule, automatic pongs and the close handshake.
This module is the application's side: a ``WebSocket`` is the request object of a
WebSocket route (a ``Request`` subclass, bound like one by the native binder, so path and
query parameters, headers, cookies and ``Depends`` work as on HTTP routes); ``accept()``
turns the connection into a ``_core.WebSocketSession``, whose ``receive()`` hands over each
message as the str or bytes built once from its payload, or a loop future when none has
arrived yet (no polling).

What happens around the endpoint is Starlette's: an exception before ``accept()`` is
answered 403 (a close) or 500, after it the session closes with 1011;
``WebSocketException`` closes with its code, a validation error with 1008; an endpoint that
returns without closing closes with 1000.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from data_bridge import _core
from data_bridge.api._asgi_bridge import _OUTER_SCOPES
from data_bridge.api.exceptions import (
    RequestValidationError,
    WebSocketException,
    WebSocketRequestValidationError,
)
from data_bridge.api.requests import Request, _ScopeView
from data_bridge.api.responses import JSONResponse, Response

__all__ = [
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketState",
    "websocket_callable",
]

# The default bound on one message (payload bytes), as uvicorn's --ws-max-size.
DEFAULT_MAX_SIZE = 16 * 1024 * 1024


class WebSocketState(enum.Enum):
    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3


class WebSocketDisconnect(Exception):
    """The peer closed the session (``code`` as it sent it; 1006 when the connection was
    lost without a close frame)."""

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"


_MESSAGE_TYPES = (str, bytes, tuple)
# An HTTP scheme's WebSocket counterpart (RFC 6455 §3; uvicorn's proxy headers do the same).
_WS_SCHEMES = {"http": "ws", "https": "wss"}


class WebSocket(Request):
    """A WebSocket connection (Starlette's interface). Made by the server for a WebSocket
    route's endpoint. The state lives in slots, set by ``_start`` before the endpoint
    runs: an idle session then has no instance ``__dict__`` (about 300 bytes) unless
    something caches in it (``headers``, ``scope``, ``state``)."""

    __slots__ = ("_client_state", "application_state", "_session", "_denied")

    # The test client's report channel (per-server subclass): callable(key, event, value).
    _test_sink: Callable[[str, str, Any], None] | None = None

    _client_state: WebSocketState
    application_state: WebSocketState
    _session: Any
    _denied: tuple[int, str] | None

    def _start(self) -> None:
        self._client_state = WebSocketState.CONNECTING
        self.application_state = WebSocketState.CONNECTING
        self._session = None
        self._denied = None

    @property
    def client_state(self) -> WebSocketState:
        """DISCONNECTED once a receive got the end (the session knows: its receive methods
        run without this object)."""
        session = self._session
        if session is not None and session.disconnected:
            return WebSocketState.DISCONNECTED
        return self._client_state

    @client_state.setter
    def client_state(self, value: WebSocketState) -> None:
        self._client_state = value

    @property
    def _url_scheme(self) -> str:
        """The websocket scope's scheme, which Starlette's url and base_url carry: ws, or
        wss on TLS; a trusted proxy's X-Forwarded-Proto mapped as uvicorn maps it."""
        scheme = super()._url_scheme
        return _WS_SCHEMES.get(scheme, scheme)

    @property
    def scope(self) -> typing.Mapping[str, Any]:
        cached = self.__dict__.get("_scope")
        if cached is None:
            view = _ScopeView(self)
            view._data["type"] = "websocket"
            view._data["scheme"] = self._url_scheme
            view._data.pop("method", None)
            view._data["subprotocols"] = self._subprotocols()
            cached = self.__dict__["_scope"] = view
        return cached

    def _subprotocols(self) -> list[str]:
        out: list[str] = []
        for value in self.headers.getlist("sec-websocket-protocol"):
            out += [p.strip() for p in value.split(",") if p.strip()]
        return out

    # Receiving -------------------------------------------------------------------------
    #
    # receive_text/bytes/json are not coroutines: each returns the session's awaitable
    # (csrc/app/websocket.c), which resolves with what Starlette's methods return or raise,
    # so a handler waiting for a message holds no frame for the method (memory per idle
    # connection) and a message costs no coroutine.

    def _receiving(self) -> Any:
        """The session, after the checks of Starlette's receive."""
        if self.application_state is not WebSocketState.CONNECTED:
            raise RuntimeError('WebSocket is not connected. Need to call "accept" first.')
        if self._client_state is WebSocketState.DISCONNECTED:
            raise RuntimeError('Cannot call "receive" once a disconnect message has been received.')
        return self._session

    async def receive(self) -> dict[str, Any]:
        """The next ASGI-style message: websocket.connect first (before accept), then
        websocket.receive, and websocket.disconnect once the peer closed."""
        if self._client_state is WebSocketState.CONNECTING:
            self._client_state = WebSocketState.CONNECTED
            return {"type": "websocket.connect"}
        if self.client_state is WebSocketState.DISCONNECTED:
            raise RuntimeError('Cannot call "receive" once a disconnect message has been received.')
        if self._session is None:
            raise RuntimeError('WebSocket is not connected. Need to call "accept" first.')
        message = self._session.receive()
        if not isinstance(message, _MESSAGE_TYPES):
            message = await message
        if isinstance(message, tuple):
            return {"type": "websocket.disconnect", "code": message[0], "reason": message[1]}
        if isinstance(message, str):
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}

    def receive_text(self) -> Awaitable[str]:
        return self._receiving().receive_text(WebSocketDisconnect)

    def receive_bytes(self) -> Awaitable[bytes]:
        return self._receiving().receive_bytes(WebSocketDisconnect)

    def receive_json(self, mode: str = "text") -> Awaitable[Any]:
        if mode not in ("text", "binary"):
            raise RuntimeError('The "mode" argument should be "text" or "binary".')
        return self._receiving().receive_json(WebSocketDisconnect, mode == "binary")

    async def iter_text(self) -> AsyncIterator[str]:
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            pass

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            pass

    async def iter_json(self) -> AsyncIterator[Any]:
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            pass

    # Sending ---------------------------------------------------------------------------

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if self.application_state is not WebSocketState.CONNECTING:
            raise RuntimeError('Cannot call "accept" more than once.')
        lines = []
        if subprotocol is not None:
            lines.append(b"sec-websocket-protocol: " + subprotocol.encode("latin-1") + b"\r\n")
        for name, value in headers or ():
            if isinstance(name, str):
                name = name.encode("latin-1")
            if isinstance(value, str):
                value = value.encode("latin-1")
            if any(c in value for c in b"\r\n\0") or any(c in name for c in b"\r\n\0: "):
                raise ValueError(f"invalid header {name!r}: {value!r}")
            lines.append(name + b": " + value + b"\r\n")
        self._client_state = WebSocketState.CONNECTED
        self._session = self._ws_accept(asyncio.get_running_loop(), b"".join(lines))
        self.application_state = WebSocketState.CONNECTED

    def _put(self, data: str | bytes) -> Any:
        """Queues one message: None, or a future to await while the output drains."""
        if self.application_state is WebSocketState.CONNECTING:
            raise RuntimeError('WebSocket is not connected. Need to call "accept" first.')
        if self.application_state is WebSocketState.DISCONNECTED:
            raise RuntimeError('Cannot call "send" once a close message has been sent.')
        try:
            waiter = self._session.send(data)
        except ConnectionResetError:
            self.application_state = WebSocketState.DISCONNECTED
            closed = self._session.closed
            raise WebSocketDisconnect(closed[0] if closed else 1006) from None
        return waiter

    async def _send_data(self, data: str | bytes) -> None:
        waiter = self._put(data)
        if waiter is not None:
            await waiter

    async def send_text(self, data: str) -> None:
        waiter = self._put(data)
        if waiter is not None:
            await waiter

    async def send_bytes(self, data: bytes) -> None:
        waiter = self._put(bytes(data))
        if waiter is not None:
            await waiter

    async def send_json(self, data: Any, mode: str = "text") -> None:
        if mode not in ("text", "binary"):
            raise RuntimeError('The "mode" argument should be "text" or "binary".')
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        await self._send_data(text if mode == "text" else text.encode("utf-8"))

    async def send(self, message: typing.Mapping[str, Any]) -> None:
        """An ASGI-style message: websocket.accept, websocket.send, websocket.close."""
        kind = message["type"]
        if kind == "websocket.accept":
            await self.accept(message.get("subprotocol"), message.get("headers"))
        elif kind == "websocket.send":
            text = message.get("text")
            await self._send_data(text if text is not None else message["bytes"])
        elif kind == "websocket.close":
            await self.close(message.get("code", 1000), message.get("reason"))
        else:
            raise RuntimeError(f'Unexpected ASGI message "{kind}"')

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        if self.application_state is WebSocketState.DISCONNECTED:
            raise RuntimeError('Cannot call "send" once a close message has been sent.')
        self.application_state = WebSocketState.DISCONNECTED
        if self._session is None:
            # Before accept: the handshake is refused (403, as uvicorn answers a close).
            self._denied = (code, reason or "")
            return
        self._session.close(code, reason or "")

    def __repr__(self) -> str:
        return f"<WebSocket {self.path!r}>"


# The hidden parameter through which the route wrapper receives the WebSocket.
_WS_PARAM = "__db_websocket__"
_BINDING_ERRORS = "__db_binding_errors__"


def _refusal(status: int) -> Response:
    if status == 404:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    if status == 426:
        # RFC 6455 §4.2.2: the versions the server speaks.
        return Response(
            b"Unsupported WebSocket version",
            status_code=426,
            headers={"sec-websocket-version": "13"},
            media_type="text/plain",
        )
    return Response(b"Bad WebSocket handshake", status_code=400, media_type="text/plain")


def websocket_callable(inner: Callable[..., Any], where: str) -> Callable[..., Any]:
    """What the server calls for a WebSocket route: ``inner`` (the endpoint, or the
    dependency resolver over it) with the handshake check before and Starlette's closing
    rules around it. The signature is inner's plus a hidden WebSocket parameter; the route
    is lenient, so binding errors reach here and close the session with 1008."""
    inner_lenient = bool(getattr(inner, "__db_lenient__", False))
    signature = inspect.signature(inner)
    try:
        hints = typing.get_type_hints(inner, include_extras=True)
    except Exception:  # resolved again (and reported) by build_plan
        hints = {}
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
    ]
    params.append(
        inspect.Parameter(_WS_PARAM, inspect.Parameter.KEYWORD_ONLY, annotation=WebSocket)
    )

    async def call(*args: Any, **kwargs: Any) -> Any:
        websocket: WebSocket = kwargs.pop(_WS_PARAM)
        websocket._start()
        sink = websocket._test_sink
        if sink is not None:
            # A test client's session learns that an endpoint runs (and will report "done").
            sink(websocket.header("sec-websocket-key", ""), "started", None)
        errors = None if inner_lenient else kwargs.pop(_BINDING_ERRORS, None)
        status = websocket._ws_check()
        if status:
            return _refusal(status)
        if _OUTER_SCOPES:
            # Reached through the App's ASGI face: the scope (with what outer middleware
            # put in it) is taken now, while the bridge has it for this connection.
            websocket.scope  # noqa: B018
        # Run on from the loop: the upgrade can only be answered once the server has
        # handed the request to this coroutine's Task (the first step runs inside the
        # server's dispatch).
        await asyncio.sleep(0)
        try:
            if errors:
                raise WebSocketRequestValidationError(errors)
            endpoint = inner(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - Starlette's rules in _after
            return await _after(websocket, exc)
        # The server's Driver runs the endpoint in this coroutine's place, then
        # _after(websocket, exc or None) (csrc/app/invoke.c): no frame of this wrapper
        # stays suspended around the endpoint for the whole session (memory per idle
        # connection), and the arguments live on in the endpoint's frame only.
        return _core._Tail(endpoint, _after, websocket)

    call.__name__ = getattr(inner, "__name__", "websocket_endpoint")
    call.__qualname__ = getattr(inner, "__qualname__", call.__name__)
    call.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in params if p.annotation is not p.empty}
    call.__db_lenient__ = True  # type: ignore[attr-defined]
    call.__db_security__ = getattr(inner, "__db_security__", [])  # type: ignore[attr-defined]
    return call


async def _after(websocket: WebSocket, raised: BaseException | None) -> Any:
    """Starlette's rules once the endpoint returned (raised None) or raised: the app's own
    exception handler, a close code for WebSocketException and validation errors, 1011 or
    500 for anything else (re-raised, or reported to the test client); what the server
    answers a refused handshake."""
    # The test client's name for the session, read from the request without building its
    # Headers (the WebSocket is kept for the whole session).
    sink = websocket._test_sink
    key = websocket.header("sec-websocket-key", "") if sink is not None else ""
    failure: BaseException | None = None
    try:
        if raised is not None:
            if not isinstance(raised, Exception):
                raise raised
            # The app's own handler for the exception's class, if it has one (Starlette's
            # ExceptionMiddleware calls it with the WebSocket), else the rules below.
            handler = _user_handler(websocket, raised)
            if handler is None:
                raise raised
            result = handler(websocket, raised)
            if inspect.isawaitable(result):
                await result
    except WebSocketException as exc:
        await _close_quietly(websocket, exc.code, exc.reason)
    except (WebSocketRequestValidationError, RequestValidationError) as exc:
        reason = json.dumps(_jsonable(exc.errors()))
        if websocket._session is not None and len(reason.encode()) > 123:
            reason = ""  # a close frame's reason has at most 123 bytes (RFC 6455 §5.5.1)
        await _close_quietly(websocket, 1008, reason)
    except BaseException as exc:  # noqa: BLE001 - reported below, as uvicorn does
        failure = exc
    if websocket._session is not None:
        if websocket.application_state is not WebSocketState.DISCONNECTED:
            websocket.application_state = WebSocketState.DISCONNECTED
            websocket._session.close(1011 if failure is not None else 1000, "")
        result = None
    elif websocket._denied is not None:
        if sink is not None:
            sink(key, "denied", websocket._denied)
        result = Response(b"", status_code=403)
    elif failure is None:
        # Returned without accepting or closing: refused, as Starlette's close.
        if sink is not None:
            sink(key, "denied", (1000, ""))
        result = Response(b"", status_code=403)
    else:
        result = Response(b"Internal Server Error", status_code=500, media_type="text/plain")
    if failure is not None:
        if sink is None:
            raise failure
        sink(key, "error", failure)
    if sink is not None:
        sink(key, "done", None)
    return result


def _user_handler(websocket: WebSocket, exc: BaseException) -> Callable[..., Any] | None:
    handlers = getattr(websocket.app, "_exception_handlers", None)
    if not handlers:
        return None
    for cls in type(exc).__mro__:
        if cls is Exception or cls is BaseException:
            # Starlette gives those to ServerErrorMiddleware, which serves HTTP only.
            return None
        handler = handlers.get(cls)
        if handler is not None:
            return handler
    return None


async def _close_quietly(websocket: WebSocket, code: int, reason: str | None) -> None:
    if websocket.application_state is not WebSocketState.DISCONNECTED:
        await websocket.close(code, reason)


def _jsonable(value: Any) -> Any:
    from data_bridge.api.encoders import jsonable_encoder

    return jsonable_encoder(value)
