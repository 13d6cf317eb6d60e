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
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from data_bridge.api import _foreign
from data_bridge.api.depends import BINDING_ERRORS
from data_bridge.api.exceptions import HTTPException, RequestValidationError
from data_bridge.api.requests import Request
from data_bridge.api.responses import JSONResponse, Response

__all__ = ["handles_unrouted", "unrouted", "wrap"]

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
    app: Any, request: Any, endpoint: Callable[[Any], Awaitable[Response]]
) -> Response:
    """``dispatch(request, call_next)`` of each HTTP middleware, outermost first, around
    ``endpoint(request)``."""
    middleware = app._http_middleware

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

    def decide(request: Any) -> Response:
        status, value = request._db_routing  # set by the server (csrc/app/invoke.c)
        if status == 307:  # redirect_slashes: the location is already the whole URL
            return Response(b"", status_code=307, headers={"location": value})
        raise HTTPException(status, headers={"Allow": value} if status == 405 else None)

    async def handler(request: Request) -> Response:
        async def endpoint(req: Any) -> Response:
            return await _answer(app, req, lambda: decide(request), JSONResponse, 200)

        return await _run_chain(app, request, endpoint)

    return handler
