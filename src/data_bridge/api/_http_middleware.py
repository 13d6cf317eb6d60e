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

Requests that match no route (404, 405) are answered by the server without the
middleware; docs/compat.md lists that difference.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from data_bridge.api import _foreign
from data_bridge.api.depends import BINDING_ERRORS
from data_bridge.api.exceptions import HTTPException, RequestValidationError
from data_bridge.api.requests import Request
from data_bridge.api.responses import JSONResponse, Response

__all__ = ["wrap"]

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

    async def endpoint(
        request: Any, args: tuple[Any, ...], kwargs: dict[str, Any], errors: Any
    ) -> Response:
        try:
            if errors is not None and not lenient:
                # As the server answers a request that did not bind (FastAPI's 422, or the
                # app's RequestValidationError handler).
                raise RequestValidationError(
                    [{**e, "loc": tuple(e["loc"])} if "loc" in e else e for e in errors]
                )
            if errors is not None:
                kwargs = {**kwargs, BINDING_ERRORS: errors}
            value = call(*args, **kwargs)
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

    @functools.wraps(call)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        request = kwargs.pop(REQUEST_KW)
        errors = kwargs.pop(BINDING_ERRORS, None)
        middleware = app._http_middleware

        async def call_at(index: int, req: Any) -> Response:
            if index == len(middleware):
                return await endpoint(req, args, kwargs, errors)

            async def call_next(next_request: Any) -> Response:
                return await call_at(index + 1, next_request)

            return await middleware[index](req, call_next)

        return await call_at(0, request)

    wrapped.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapped.__annotations__ = {**getattr(call, "__annotations__", {}), REQUEST_KW: Request}
    wrapped.__db_lenient__ = True  # type: ignore[attr-defined]
    return wrapped
