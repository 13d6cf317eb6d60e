"""``@app.middleware("http")`` and BaseHTTPMiddleware: Python middleware around the native
request path.

The request is still parsed, routed and bound in C. What changes for an app with HTTP
middleware is the callable each route hands the server: ``wrap(call, ...)`` has the route
callable's signature plus a Request parameter and is lenient (called even when binding
failed), and runs ``dispatch(request, call_next)`` of each middleware, outermost first;
``call_next`` runs the route and returns its Response, as Starlette's ExceptionMiddleware
would answer it: the value converted by the route's response class, an HTTPException or a
RequestValidationError (from the C binder's errors) answered by the app's handlers. An
exception no handler takes goes up through the middleware, then becomes the server's 500.

Requests that match no route (404, 405, and redirect_slashes' 307) go through the
middleware too, as in Starlette, where the router sits inside the middleware stack:
``unrouted(app)`` is the handler the server then calls with the Request, which carries the
router's outcome (``_db_routing``); it raises the HTTPException Starlette's router raises
(so the app's exception handlers for 404 and 405 answer it) or returns the redirect. An
app without HTTP middleware and without such handlers has none: the server answers those
requests itself.

So do the answers of native guards (TrustedHost, HTTPSRedirect, a CORS preflight) added
before an HTTP middleware, which Starlette stacks inside it: the server hands such an
answer to the unrouted handler as the outcome ``(1, (depth, status, content type, body,
header lines))``, and it passes through the ``depth`` middleware outside that guard only.

Mounts (``app.mount``) are inside the middleware stack as well: an app with HTTP
middleware registers each mounted app with the server as answered by the unrouted handler
(``add_mount(prefix, target, (asgi_app, root_path))``; WebSocket upgrades still go to
the native target), whose Request then carries
``(0, (asgi_app, root_path))``. ``call_next`` runs the mounted app as Starlette's Mount
does (the whole path, ``root_path`` the prefix, the request's state shared) and returns its
answer as a Response the middleware may change: a complete body as a Response, anything
else (a stream, a HEAD's head) as a StreamingResponse fed by the app's messages. A
data-bridge App mounted there is called through its ASGI face on the serving loop
(``AsgiBridge``: its own native server, adopted socketpair). What the mounted app raises
before its response starts goes up through ``call_next`` to the app's exception handlers
and the middleware, as in Starlette; what it raises afterwards is reported as an exception
after the response. StaticFiles are routes, so they are wrapped as any route is. An app
without HTTP middleware keeps its mounts native (``asgi_dispatch``, the mounted App's
server, StaticFiles answered from the file cache).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from data_bridge.api import _foreign
from data_bridge.api._asgi_bridge import outer_scope
from data_bridge.api.background import report_exception
from data_bridge.api.depends import BINDING_ERRORS
from data_bridge.api.exceptions import HTTPException, RequestValidationError
from data_bridge.api.requests import Request, _ScopeView
from data_bridge.api.responses import JSONResponse, Response, StreamingResponse

__all__ = ["call_mount", "handles_unrouted", "unrouted", "wrap"]

REQUEST_KW = "__db_mw_request__"


def _to_response(value: Any, response_class: type[Response], status_code: int) -> Response:
    """The Response the native layer would have written for a route's value."""
    if isinstance(value, Response):
        return value
    if _foreign.FOREIGN_RESPONSE is not None and isinstance(value, _foreign.FOREIGN_RESPONSE):
        return _foreign.native_response(value)  # a Starlette response (a compiled FastAPI app)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Response(
            bytes(value), status_code=status_code, media_type="application/octet-stream"
        )
    return response_class(value, status_code=status_code)


async def _answer(
    app: Any,
    request: Any,
    produce: Callable[[], Any],
    response_class: type[Response],
    status_code: int,
) -> Response:
    """The Response for the value ``produce()`` returns, or for what it raises as the app's
    exception handlers answer it (Starlette's ExceptionMiddleware, inside the middleware)."""
    try:
        value = produce()
        if inspect.isawaitable(value):
            value = await value
        return _to_response(value, response_class, status_code)
    except Exception as exc:
        handled = app._exception_hook(exc, request)
        if handled is NotImplemented:
            if isinstance(exc, HTTPException):
                return JSONResponse(
                    {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
                )
            raise
        if inspect.isawaitable(handled):
            handled = await handled
        return _to_response(handled, JSONResponse, 200)


async def _run_chain(
    app: Any,
    request: Any,
    endpoint: Callable[[Any], Awaitable[Response]],
    depth: int | None = None,
) -> Response:
    """``dispatch(request, call_next)`` of each HTTP middleware, outermost first, around
    ``endpoint(request)``; of the ``depth`` outermost only, when given."""
    middleware = app._http_middleware
    if depth is not None:
        middleware = middleware[:depth]

    async def call_at(index: int, req: Any) -> Response:
        if index == len(middleware):
            return await endpoint(req)

        async def call_next(next_request: Any) -> Response:
            return await call_at(index + 1, next_request)

        return await middleware[index](req, call_next)

    return await call_at(0, request)


def wrap(
    app: Any,
    call: Callable[..., Any],
    response_class: type[Response],
    status_code: int,
) -> Callable[..., Any]:
    """The route callable ``call`` run under the app's HTTP middleware."""
    lenient = bool(getattr(call, "__db_lenient__", False))
    signature = inspect.signature(call)
    params = [p for p in signature.parameters.values() if p.name != BINDING_ERRORS]
    extra = inspect.Parameter(REQUEST_KW, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
    # Keyword-only parameters go before a **kwargs one.
    at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
    params.insert(at, extra)

    @functools.wraps(call)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        request = kwargs.pop(REQUEST_KW)
        errors = kwargs.pop(BINDING_ERRORS, None)

        def produce() -> Any:
            if errors is not None and not lenient:
                # As the server answers a request that did not bind (FastAPI's 422, or the
                # app's RequestValidationError handler).
                raise RequestValidationError(
                    [{**e, "loc": tuple(e["loc"])} if "loc" in e else e for e in errors]
                )
            if errors is not None:
                return call(*args, **{**kwargs, BINDING_ERRORS: errors})
            return call(*args, **kwargs)

        async def endpoint(req: Any) -> Response:
            return await _answer(app, req, produce, response_class, status_code)

        return await _run_chain(app, request, endpoint)

    wrapped.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapped.__annotations__ = {**getattr(call, "__annotations__", {}), REQUEST_KW: Request}
    wrapped.__db_lenient__ = True  # type: ignore[attr-defined]
    return wrapped


def handles_unrouted(app: Any) -> bool:
    """Whether the router's 404 and 405 must reach Python: the app has HTTP middleware, or
    an exception handler that would answer them (one for 404 or 405, or for HTTPException
    or a base class of it short of Exception, which Starlette leaves to its
    ServerErrorMiddleware)."""
    if app._http_middleware:
        return True
    for key in app._exception_handlers:
        if isinstance(key, int):
            if key in (404, 405):
                return True
        elif issubclass(HTTPException, key) and key not in (Exception, BaseException):
            return True
    return False


def unrouted(app: Any) -> Callable[..., Any]:
    """The handler of requests no route takes, under the app's HTTP middleware (see the
    module's docstring): Starlette's router answers inside the middleware stack."""

    def decide(request: Any) -> Any:
        status, value = request._db_routing  # set by the server (csrc/app/invoke.c)
        if status == 0:  # a mount: (asgi_app, root_path)
            return call_mount(request, *value)
        if status == 1:  # a guard's answer (csrc/app/guard.c)
            return _guard_response(*value[1:])
        if status == 307:  # redirect_slashes: the location is already the whole URL
            return Response(b"", status_code=307, headers={"location": value})
        raise HTTPException(status, headers={"Allow": value} if status == 405 else None)

    async def handler(request: Request) -> Response:
        async def endpoint(req: Any) -> Response:
            return await _answer(app, req, lambda: decide(request), JSONResponse, 200)

        status, value = request._db_routing
        # A guard's answer passes through the middleware outside that guard only.
        return await _run_chain(app, request, endpoint, value[0] if status == 1 else None)

    return handler


def _guard_response(status: int, content_type: str | None, body: bytes, lines: bytes) -> Response:
    """The Response of a native guard's answer (TrustedHost's 400 or redirect,
    HTTPSRedirect's redirect, a CORS preflight's answer), as its Starlette counterpart
    returns it to the middleware outside it."""
    response = Response(body, status_code=status, media_type=content_type)
    for line in lines.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            response.raw_headers.append((name.strip().lower(), value.strip()))
    return response


async def call_mount(request: Any, asgi_app: Any, root_path: str) -> Response:
    """The answer of the ASGI app mounted at ``root_path`` to the request, as a Response
    (see the module's docstring)."""
    # Starlette's Mount updates the request's scope and hands it on: the mounted app sees
    # the whole path, root_path with the prefix, the app's own root_path kept, the
    # request's state (what middleware set); the middleware then sees those changes too.
    scope = request.scope
    scope = scope._data if isinstance(scope, _ScopeView) else scope
    if not isinstance(scope, dict):
        scope = dict(scope)
    scope["app_root_path"] = scope.get("app_root_path", scope["root_path"])
    scope["root_path"] = root_path
    scope["state"] = request.state._state
    # A request that reached this App through its ASGI face (a mounted App, pure ASGI
    # middleware): in Starlette that caller's scope is this very dict.
    outer = outer_scope(request)
    if outer is not None and outer is not scope:
        outer["app_root_path"] = outer.get("app_root_path", outer.get("root_path", ""))
        outer["root_path"] = root_path
    # The app's messages; send() returns once the message was taken (backpressure), the
    # end (None) is put without waiting.
    messages: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    finished = asyncio.Event()
    body_read = False

    async def receive() -> dict[str, Any]:
        # Once the body was read, a disconnect only when the response is over (a
        # StreamingResponse of the mounted app listens for one while it streams).
        nonlocal body_read
        if body_read:
            await finished.wait()
            return {"type": "http.disconnect"}
        message = await request.receive()
        body_read = message["type"] != "http.request" or not message.get("more_body", False)
        return dict(message)

    async def send(message: dict[str, Any]) -> None:
        messages.put_nowait(message)
        await messages.join()

    async def take() -> dict[str, Any] | None:
        message = await messages.get()
        messages.task_done()
        return message

    async def run() -> None:
        try:
            await asgi_app(scope, receive, send)
        finally:
            finished.set()
            messages.put_nowait(None)

    task = asyncio.get_running_loop().create_task(run())
    start = await take()
    if start is None:
        await task  # the app's exception, if it raised
        raise RuntimeError("No response returned.")
    if start["type"] != "http.response.start":
        task.cancel()
        raise RuntimeError(f"Unexpected message {start['type']!r}: a response must start first")
    status = int(start["status"])
    headers = [
        (bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1"))
        for k, v in start.get("headers") or ()
    ]
    first = await take()
    if (
        request.method != "HEAD"
        and first is not None
        and first["type"] == "http.response.body"
        and not first.get("more_body", False)
    ):
        # The whole body at once (the common case): a plain Response, framed natively.
        await _finish(task, request)
        response = Response(bytes(first.get("body", b"")), status_code=status)
        response.raw_headers = [(k, v) for k, v in headers if k != "content-length"]
        return response

    async def body() -> Any:
        message = first
        try:
            while message is not None:
                if message["type"] == "http.response.body" and message.get("body"):
                    yield bytes(message["body"])
                message = await take()
        finally:
            finished.set()
            if not task.done():
                task.cancel()
        await _finish(task, request)

    if request.method == "HEAD":
        # The head as the app sent it (its Content-Length included); the rest drained.
        async for _ in body():
            pass
        response = StreamingResponse(iter(()), status_code=status)
    else:
        response = StreamingResponse(body(), status_code=status)
    response.raw_headers = headers
    return response


async def _finish(task: asyncio.Task[None], request: Any) -> None:
    """Waits for the mounted app to return; what it raised after its response is
    reported as an exception after the response."""
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as exc:
        report_exception(exc, request)
