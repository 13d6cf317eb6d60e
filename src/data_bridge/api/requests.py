"""The Request object a handler receives when it declares a parameter of this type.

Fields come from the native request lazily: nothing is converted unless it is read, and
what is read is cached. ``body()`` and ``json()`` are awaitable as in Starlette. Each app
serves its own subclass (``request.app`` is the app); ``request.state`` starts as a copy
of what the app's lifespan yielded. ``scope`` is a read-only ASGI-style view built on
first use, for code that reads it; the native path never builds one.

``Request(scope, receive)`` makes one as Starlette does (a custom route class wrapping the
request it is given, ASGI middleware): its fields come from the scope, its body from
``receive``, and ``_body`` is absent until ``body()`` stores it (subclasses that override
``body()`` test for it). ``request.receive`` of a request the server made gives its body as
ASGI ``http.request`` messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from http.cookies import _unquote  # type: ignore[attr-defined]
from typing import Any
from urllib.parse import quote

from data_bridge import _core
from data_bridge import json as _json
from data_bridge.api.datastructures import URL, Address, FormData, Headers, QueryParams, State

__all__ = ["ClientDisconnect", "HTTPConnection", "Request", "cookie_parser"]


class ClientDisconnect(Exception):
    """The client left before its request body was read to the end (Starlette's)."""


# The server's SERVER_BODY_* codes for a streamed body (csrc/server/server.h).
_BODY_DISCONNECTED = -1
_BODY_MALFORMED = -2
_BODY_TOO_LARGE = -3


def _body_error(code: int) -> Exception:
    from data_bridge.api.exceptions import HTTPException

    if code == _BODY_MALFORMED:
        return HTTPException(400, "Invalid chunked request body")
    if code == _BODY_TOO_LARGE:
        return HTTPException(413, "Request body exceeds the configured limit")
    return ClientDisconnect()


Message = dict[str, Any]


async def _empty_receive() -> Message:
    raise RuntimeError("Receive channel has not been made available")


async def _empty_send(message: Message) -> None:
    raise RuntimeError("Send channel has not been made available")


def cookie_parser(cookie_string: str) -> dict[str, str]:
    """The pairs of a Cookie header (RFC 6265 §5.4), read leniently as browsers send them
    and as Starlette does: ';'-separated, a pair without '=' is a value with an empty
    name, quoted values are unquoted; later duplicates win."""
    cookies: dict[str, str] = {}
    for chunk in cookie_string.split(";"):
        if "=" in chunk:
            key, val = chunk.split("=", 1)
        else:
            key, val = "", chunk
        key, val = key.strip(), val.strip()
        if key or val:
            cookies[key] = _unquote(val)
    return cookies


class Request(_core.Request):
    """An HTTP request (method, URL, headers, cookies, body)."""

    # The app serving this request; set on the per-app subclass (FastAPI.build_server).
    app: Any = None

    def __init__(
        self,
        scope: Mapping[str, Any],
        receive: Callable[[], Awaitable[Message]] = _empty_receive,
        send: Callable[[Message], Awaitable[None]] = _empty_send,
    ) -> None:
        """A request made from an ASGI scope, as Starlette's ``Request(scope, receive)``
        (the server makes its own without this)."""
        if scope.get("type") not in ("http", "websocket"):
            raise AssertionError("Request scope type must be 'http' or 'websocket'")
        headers = [
            (bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1"))
            for k, v in scope.get("headers") or ()
        ]
        client = scope.get("client")
        server = scope.get("server")
        self._init_from(
            scope.get("method", "GET"),
            scope.get("path", "/"),
            bytes(scope.get("query_string", b"")).decode("latin-1"),
            headers,
            dict(scope.get("path_params") or {}),
            None if client is None else tuple(client),
            None if server is None else tuple(server),
        )
        d = self.__dict__
        d["_scope"] = d["_asgi_scope"] = scope
        d["_receive"] = receive
        d["_send"] = send
        if "app" in scope:
            d["app"] = scope["app"]

    @property
    def receive(self) -> Callable[[], Awaitable[Message]]:
        """The ASGI receive callable: the given one, or for a request the server made, one
        that gives its body as ``http.request`` messages (then ``http.disconnect``)."""
        given = self.__dict__.get("_receive")
        return given if given is not None else self._receive_native

    async def _receive_native(self) -> Message:
        d = self.__dict__
        pieces = d.get("_receive_pieces")
        if pieces is None:
            pieces = d["_receive_pieces"] = self._limited_stream().__aiter__()
        if d.get("_receive_done"):
            return {"type": "http.disconnect"}
        piece = await anext(pieces, b"")
        if not piece:
            d["_receive_done"] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": piece, "more_body": True}

    @property
    def headers(self) -> Headers:
        cached = self.__dict__.get("_headers")
        if cached is None:
            cached = self.__dict__["_headers"] = Headers(self.raw_headers)
        return cached

    @property
    def query_params(self) -> QueryParams:
        cached = self.__dict__.get("_query_params")
        if cached is None:
            cached = self.__dict__["_query_params"] = QueryParams(self.query_string)
        return cached

    @property
    def cookies(self) -> dict[str, str]:
        cached = self.__dict__.get("_cookies")
        if cached is None:
            cached = {}
            for value in self.headers.getlist("cookie"):
                cached.update(cookie_parser(value))
            self.__dict__["_cookies"] = cached
        return cached

    # The App whose lifespan state requests start with, when request.app is another
    # object (the FastAPI app of a compiled one: api/_fastapi_native.py).
    _state_app: Any = None

    @property
    def state(self) -> State:
        cached = self.__dict__.get("_state")
        if cached is None:
            given = self.__dict__.get("_asgi_scope")
            if given is not None:
                # Starlette's: the scope's "state" (the request it was made from shares it).
                state = given.get("state")
                if isinstance(state, State):
                    cached = state
                else:
                    if state is None and isinstance(given, dict):
                        state = given["state"] = {}
                    cached = State(state if state is not None else {})
                self.__dict__["_state"] = cached
                return cached
            owner = self._state_app if self._state_app is not None else self.app
            initial = getattr(owner, "_lifespan_state", None) or {}
            cached = self.__dict__["_state"] = State(dict(initial))
        return cached

    # The root path the server was given (a proxy's prefix), set on a per-server subclass.
    server_root_path: str | None = None
    server_scheme: str = "http"  # "https" behind a TLS terminator (build_server(scheme=))

    @property
    def _url_scheme(self) -> str:
        """The URL scheme: what a trusted proxy's X-Forwarded-Proto says (--proxy-headers),
        else the server's own (the scope's, for a request made from one)."""
        given = self.__dict__.get("_asgi_scope")
        if given is not None:
            return str(given.get("scheme", "http"))
        return self._forwarded_scheme or self.server_scheme

    @property
    def root_path(self) -> str:
        given = self.__dict__.get("_asgi_scope")
        if given is not None:
            return str(given.get("root_path", ""))
        if self.server_root_path is not None:
            return self.server_root_path
        return str(getattr(self.app, "root_path", "") or "")

    @property
    def _url_host(self) -> str:
        """The URL's host: what a trusted proxy forwarded (--forwarded-headers
        x-forwarded-host or forwarded), else the Host field."""
        return self._forwarded_host or self.headers.get("host") or "testserver"

    @property
    def base_url(self) -> URL:
        host = self._url_host
        return URL(f"{self._url_scheme}://{host}{self.root_path}/")

    @property
    def full_path(self) -> str:
        """The path with the root_path in front (the ASGI scope's ``path``): the request's
        own path when it already starts with the root_path (the server routes it on the
        rest, as Starlette does), else the root_path added in front of it."""
        root = self.root_path.rstrip("/")
        path = self.path
        if not root or path == root or path.startswith(root + "/"):
            return path
        return root + path

    @property
    def url(self) -> URL:
        cached = self.__dict__.get("_url")
        if cached is None:
            host = self._url_host
            # As Starlette's URL(scope=...): the decoded path as it is, with only the
            # characters that would end it ("?", "#") and a backslash escaped.
            path = self.full_path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
            query = f"?{self.query_string}" if self.query_string else ""
            cached = self.__dict__["_url"] = URL(f"{self._url_scheme}://{host}{path}{query}")
        return cached

    # The peer a test client reports (Starlette's ("testclient", 50000)), per server.
    server_client: tuple[str, int] | None = None

    @property
    def client(self) -> Address | None:
        """The peer's address (host, port), asked of the socket on first read: IPv4 or
        IPv6 (without brackets); None on a Unix socket. The test client reports its own
        (Starlette's ("testclient", 50000) by default)."""
        if self.server_client is not None and "_asgi_scope" not in self.__dict__:
            return Address(*self.server_client)
        peer = self._peer
        return None if peer is None else Address(*peer)

    def url_for(self, name: str, /, **path_params: Any) -> URL:
        path = self.app.url_path_for(name, **path_params)
        return URL(str(self.base_url).rstrip("/") + path)

    @property
    def scope(self) -> Mapping[str, Any]:
        cached = self.__dict__.get("_scope")
        if cached is None:
            cached = self.__dict__["_scope"] = _ScopeView(self)
        return cached

    # Starlette's views of what middleware put in the scope.
    @property
    def session(self) -> dict[str, Any]:
        if "session" not in self.scope:
            raise AssertionError("SessionMiddleware must be installed to access request.session")
        return self.scope["session"]  # type: ignore[no-any-return]

    @property
    def auth(self) -> Any:
        if "auth" not in self.scope:
            raise AssertionError(
                "AuthenticationMiddleware must be installed to access request.auth"
            )
        return self.scope["auth"]

    @property
    def user(self) -> Any:
        if "user" not in self.scope:
            raise AssertionError(
                "AuthenticationMiddleware must be installed to access request.user"
            )
        return self.scope["user"]

    async def body(self) -> bytes:
        """The whole request body: received before the handler ran, or, for a streamed
        one (a route that takes the Request, with a chunked body or one over 64 KiB),
        read now and cached. Over the route's body limit (max_body_size, else the
        server's max_body): 413. A request made from a scope reads ``receive`` and keeps
        the result as ``_body``, as Starlette's does."""
        if "_receive" in self.__dict__:
            try:
                return self._body
            except AttributeError:
                pass
            chunks = [chunk async for chunk in self.stream()]
            self._body = b"".join(chunks)
            return self._body
        if not self._streamed:
            body = self._body
            limit = self._body_limit
            if limit and len(body) > limit:
                raise _body_error(_BODY_TOO_LARGE)
            return body
        cached = self.__dict__.get("_received")
        if cached is None:
            pieces = [piece async for piece in self._limited_stream()]
            cached = self.__dict__["_received"] = b"".join(pieces)
        return cached

    async def _limited_stream(self) -> AsyncIterator[bytes]:
        """stream() under the route's body limit (413 beyond it), for body() and the
        receive() of a request the server made."""
        limit = self._body_limit
        if not self._streamed or self.__dict__.get("_received") is not None:
            body = await self.body()  # checks the limit
            if body:
                yield body
            return
        declared = self.header("content-length")
        if limit and declared is not None and int(declared) > limit:
            # Known from the head: refused before a byte of it is read (the server closes
            # the connection after the answer rather than read it).
            raise _body_error(_BODY_TOO_LARGE)
        size = 0
        async for piece in self.stream():
            size += len(piece)
            if limit and size > limit:
                raise _body_error(_BODY_TOO_LARGE)
            if piece:
                yield piece

    async def json(self) -> Any:
        """The body decoded as JSON by the native codec."""
        return _json.loads(await self.body())

    async def form(
        self,
        *,
        max_files: int = 1000,
        max_fields: int = 1000,
        max_part_size: int = 1024 * 1024,
        max_file_size: int | None = None,
        max_size: int | None = None,
    ) -> FormData:
        """The form (urlencoded or multipart/form-data, parsed in C as it arrives), cached;
        files are UploadFile values. Beyond Starlette's limits: max_file_size bounds each
        file and max_size the whole multipart body (413 beyond; None: no limit)."""
        from data_bridge.api._forms import read_form

        return await read_form(
            self,
            max_files=max_files,
            max_fields=max_fields,
            max_part_size=max_part_size,
            max_file_size=max_file_size,
            max_size=max_size,
        )

    async def stream(self) -> AsyncIterator[bytes]:
        """The body in pieces as they arrive, then b"" (Starlette's). A body received
        whole before the handler ran (small, with a Content-Length) is one piece; a
        streamed one comes as the server reads it, at most 64 KiB at a time, and the server
        reads no further than what was asked for. Read once: a second stream() raises
        RuntimeError("Stream consumed") unless body() cached it first."""
        if "_receive" in self.__dict__:
            async for piece in self._stream_received():
                yield piece
            return
        received = self.__dict__.get("_received")
        if not self._streamed or received is not None:
            body = self._body if received is None else received
            if body:
                yield body
            yield b""
            return
        if self.__dict__.get("_stream_consumed"):
            raise RuntimeError("Stream consumed")
        self.__dict__["_stream_consumed"] = True
        loop = asyncio.get_running_loop()
        while True:
            waiter = loop.create_future()
            code = self._read_body(waiter)
            piece = await waiter if code is None else code
            if isinstance(piece, int):
                raise _body_error(piece)
            if not piece:
                break
            yield piece
        yield b""

    async def _stream_received(self) -> AsyncIterator[bytes]:
        """stream() of a request made from a scope: Starlette's, over ``receive``."""
        d = self.__dict__
        try:
            body = self._body
        except AttributeError:
            pass
        else:
            yield body
            yield b""
            return
        if d.get("_stream_consumed"):
            raise RuntimeError("Stream consumed")
        receive = d["_receive"]
        while not d.get("_stream_consumed"):
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                if not message.get("more_body", False):
                    d["_stream_consumed"] = True
                if chunk:
                    yield chunk
            elif message["type"] == "http.disconnect":
                d["_is_disconnected"] = True
                raise ClientDisconnect()
        yield b""

    async def is_disconnected(self) -> bool:
        """Whether the client left. A streamed body keeps the server reading, so a client
        that leaves is seen then; a body received whole before the handler ran stops the
        reading until the response (the server notices a departed client when it writes),
        so this is False for it."""
        if self.__dict__.get("_is_disconnected"):
            return True
        return bool(self._disconnected)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path!r}>"


HTTPConnection = Request


class _ScopeView(Mapping[str, Any]):
    """A read-only ASGI HTTP scope made from the request, on demand."""

    def __init__(self, request: Request) -> None:
        # As uvicorn: the socket's local address; where there is none (the test client's
        # socketpair), the Host header's, as Starlette's test client reports it.
        server = request._sockname
        if server is None:
            host = request.headers.get("host") or "testserver"
            name, _, port = host.partition(":")
            server = (name, int(port) if port.isdigit() else 80)
        client = request.client
        self._data: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request._url_scheme,
            "path": request.full_path,
            "raw_path": quote(request.path).encode("ascii"),
            "root_path": request.root_path,
            "query_string": request.query_string.encode("latin-1"),
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.raw_headers],
            "server": server,
            "client": None if client is None else (client[0], client[1]),
            "path_params": dict(request.path_params or {}),
            "app": request.app,
            "state": request.state,
        }
        # A mounted StaticFiles' route: the scope as Starlette's Mount leaves it.
        mount_root = request.__dict__.get("_db_mount_root")
        if mount_root is not None:
            self._data["app_root_path"] = self._data["root_path"]
            self._data["root_path"] = mount_root
        # Reached through the App's ASGI face: what outer ASGI middleware added to the
        # scope (a session, a user, auth, their own keys) is part of it.
        from data_bridge.api._asgi_bridge import outer_scope

        outer = outer_scope(request)
        if outer:
            for key, value in outer.items():
                self._data.setdefault(key, value)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):  # type: ignore[no-untyped-def]  # noqa: ANN204
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)
