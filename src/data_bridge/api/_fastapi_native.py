"""Unmodified FastAPI apps on the native path.

``compile_fastapi(app)`` takes a real ``fastapi.FastAPI`` (the package, not our drop-in)
and reads its route table: each ``APIRoute`` whose endpoint, dependencies, markers,
response model and response class the drop-in's machinery reproduces becomes a route of an
``App`` of ours (the same endpoint function, called directly by the native binder); the
FastAPI app itself stays behind it as the fallback (``Server.set_fallback``), served
through ASGI for every request no native route matches: the routes that could not be
compiled, Starlette routes and mounts, WebSocket routes, /docs and /openapi.json, its 404s
and 405s. So behaviour stays FastAPI's, and what can be native is.

The app's middleware is applied natively where data-bridge has it (CORS, GZip,
TrustedHost, HTTPSRedirect in the server; ``@app.middleware("http")`` and
BaseHTTPMiddleware around the native routes); requests for the fallback run through the
FastAPI app's own middleware stack, as they would alone. Any other ASGI middleware must
wrap every route, so it sends the whole app through ASGI. ``Compiled.explain()``
lists what was compiled and why the rest was not (``data-bridge --explain``).

What the compiled app shares with the FastAPI app: ``app.state``, the dependency
overrides, the lifespan (the FastAPI app's own lifespan context, whose state both paths
see), the exception handlers (FastAPI's defaults are ours already; custom ones are
called with our Request and the exception, and may return Starlette responses), and
``request.app`` (the FastAPI app, so ``url_for`` and app attributes are the same).
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from data_bridge.api import _foreign
from data_bridge.api._plan import build_plan

__all__ = ["Compiled", "compile_fastapi", "is_fastapi_app"]


def is_fastapi_app(app: Any) -> bool:
    """Whether app is a real ``fastapi.FastAPI`` (never imports FastAPI itself)."""
    module = sys.modules.get("fastapi.applications")
    cls = getattr(module, "FastAPI", None)
    return isinstance(cls, type) and isinstance(app, cls) and cls.__module__.startswith("fastapi")


@dataclass
class Compiled:
    """The outcome: ``app`` (ours; None when nothing could be compiled), the routes that
    take the native path, and (route, reason) for those served through ASGI."""

    source: Any
    app: Any = None
    native: list[str] = field(default_factory=list)
    fallback: list[tuple[str, str]] = field(default_factory=list)
    whole_app_reason: str | None = None

    def explain(self) -> str:
        lines = []
        if self.whole_app_reason is not None:
            lines.append(f"whole app through ASGI: {self.whole_app_reason}")
        lines.append(f"native routes ({len(self.native)}):")
        lines.extend(f"  {r}" for r in self.native)
        lines.append(f"through ASGI ({len(self.fallback)}):")
        lines.extend(f"  {r}: {why}" for r, why in self.fallback)
        return "\n".join(lines)


def _describe(route: Any) -> str:
    methods = ",".join(sorted(getattr(route, "methods", None) or ()))
    path = getattr(route, "path", "?")
    kind = type(route).__name__
    return f"{methods} {path}" if methods else f"{kind} {path}"


@functools.cache
def _response_classes() -> dict[tuple[str, str], Any]:
    from data_bridge.api import responses as ours

    table: dict[tuple[str, str], Any] = {}
    for name in (
        "Response",
        "JSONResponse",
        "HTMLResponse",
        "PlainTextResponse",
        "RedirectResponse",
        "StreamingResponse",
        "FileResponse",
    ):
        table[("starlette.responses", name)] = getattr(ours, name)
    table[("fastapi.responses", "ORJSONResponse")] = ours.ORJSONResponse
    table[("fastapi.responses", "UJSONResponse")] = ours.UJSONResponse
    return table


def _middleware_class(m: Any) -> Any:
    """Ours for a Starlette Middleware entry that the server applies natively (CORS, GZip,
    TrustedHost, HTTPSRedirect) or around native routes (BaseHTTPMiddleware, which
    ``@app.middleware("http")`` makes); None for any other ASGI middleware."""
    from data_bridge.api.applications import _is_base_http_middleware
    from data_bridge.api.middleware import cors, gzip, httpsredirect, trustedhost

    cls = getattr(m, "cls", None)
    key = (getattr(cls, "__module__", ""), getattr(cls, "__name__", ""))
    if getattr(m, "args", ()):
        return None
    if _is_base_http_middleware(cls):
        # BaseHTTPMiddleware itself or a subclass with its own dispatch: run by ours.
        return cls
    return {
        ("starlette.middleware.cors", "CORSMiddleware"): cors.CORSMiddleware,
        ("starlette.middleware.gzip", "GZipMiddleware"): gzip.GZipMiddleware,
        ("starlette.middleware.trustedhost", "TrustedHostMiddleware"): (
            trustedhost.TrustedHostMiddleware
        ),
        ("starlette.middleware.httpsredirect", "HTTPSRedirectMiddleware"): (
            httpsredirect.HTTPSRedirectMiddleware
        ),
    }.get(key)


def _value(v: Any) -> Any:
    """A FastAPI DefaultPlaceholder's value (anything else as it is)."""
    if type(v).__name__ == "DefaultPlaceholder" and hasattr(v, "value"):
        return v.value
    return v


def _response_class(route: Any) -> Any:
    cls = _value(route.response_class)
    ours = _response_classes().get((cls.__module__, cls.__qualname__))
    if ours is None:
        raise _foreign.Unsupported(f"response class {cls.__module__}.{cls.__qualname__}")
    return ours


def _samples(path: str) -> list[str]:
    """Concrete paths a route template matches (for shadowing checks)."""
    return [re.sub(r"\{[^}]*\}", value, path) for value in ("0", "x")]


def _shadowed(path: str, methods: set[str], earlier: list[Any]) -> Any:
    """The earlier ASGI-served route that would take requests for ``path`` first: one
    whose path matches and that takes one of ``methods`` (Starlette keeps looking past a
    route whose path matches with another method)."""
    samples = _samples(path)
    for route in earlier:
        regex = getattr(route, "path_regex", None)
        taken = getattr(route, "methods", None)
        if taken is not None and not set(taken) & methods:
            continue
        if regex is None or any(regex.match(s) for s in samples):
            return route
    return None


def _exception_handlers(source: Any, app: Any) -> None:
    """The FastAPI app's custom exception handlers on ours (its defaults are ours)."""
    import fastapi.exception_handlers as defaults
    from fastapi.exceptions import RequestValidationError as FastAPIValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from data_bridge.api.exceptions import HTTPException, RequestValidationError

    default = {
        defaults.http_exception_handler,
        defaults.request_validation_exception_handler,
        defaults.websocket_request_validation_exception_handler,
    }
    for key, handler in source.exception_handlers.items():
        if handler in default:
            continue
        if key is FastAPIValidationError:
            app.add_exception_handler(RequestValidationError, handler)
        elif key is StarletteHTTPException:
            app.add_exception_handler(StarletteHTTPException, handler)
            app.add_exception_handler(HTTPException, handler)
        else:
            app.add_exception_handler(key, handler)


def _route_contexts(source: Any) -> list[tuple[Any, Any]]:
    """(original route, effective route) pairs in matching order. FastAPI 0.16x keeps
    included routers as _IncludedRouter entries whose routes take the include's prefix,
    dependencies and defaults: iter_route_contexts gives each effective route; older
    versions list the routes themselves."""
    import fastapi.routing

    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:
        return [(route, route) for route in source.routes]
    return [(ctx.original_route, ctx) for ctx in contexts(source.routes)]


def _compile_route(app: Any, original: Any, route: Any, overrides: dict[Any, Any]) -> None:
    """Adds the route (``route``: its effective attributes) to app, planned now so that a
    failure surfaces here (the route then stays with FastAPI); raises TypeError
    (Unsupported, RouteDefinitionError) or ValueError when it cannot be native."""
    from fastapi.routing import APIRoute

    if type(original) is not APIRoute:
        raise _foreign.Unsupported(f"route class {type(original).__qualname__}")
    ours = app.add_api_route(
        route.path,
        route.endpoint,
        response_model=route.response_model,
        status_code=route.status_code,
        dependencies=[_foreign.native_default(d) for d in route.dependencies],
        methods=sorted(route.methods),
        name=route.name,
        response_model_include=route.response_model_include,
        response_model_exclude=route.response_model_exclude,
        response_model_by_alias=route.response_model_by_alias,
        response_model_exclude_unset=route.response_model_exclude_unset,
        response_model_exclude_defaults=route.response_model_exclude_defaults,
        response_model_exclude_none=route.response_model_exclude_none,
        response_class=_response_class(route),
        strict_content_type=bool(_value(getattr(route, "strict_content_type", True))),
        max_body_size=getattr(route, "max_body_size", None),
        form_limits=getattr(route, "form_limits", None) or None,
    )
    try:
        call = ours.callable(None, overrides)
        build_plan(ours.path, call)
    except BaseException:
        app.routes.remove(ours)
        raise


def compile_fastapi(source: Any) -> Compiled:
    """Our App for the FastAPI app ``source`` (see the module's docstring)."""
    from fastapi.routing import APIRoute
    from starlette.routing import Mount

    from data_bridge.api.applications import App
    from data_bridge.api.requests import Request

    out = Compiled(source)
    foreign = [m for m in source.user_middleware if _middleware_class(m) is None]
    if foreign:
        names = ", ".join(getattr(m.cls, "__name__", repr(m.cls)) for m in foreign)
        out.whole_app_reason = f"ASGI middleware that must wrap every route ({names})"
        out.fallback = [(_describe(r), "whole app through ASGI") for r in source.routes]
        return out
    app = App(
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=source.router.redirect_slashes,
        root_path=source.root_path,
        lifespan=lambda _app: source.router.lifespan_context(source),
        # Its OpenTelemetry settings trace the compiled routes as FastAPI traces its own.
        telemetry=getattr(source, "_telemetry", None),
    )
    app.state = source.state
    app.dependency_overrides = source.dependency_overrides
    # request.app is the FastAPI app: url_for, app.state and the app's own attributes.
    app._request_class = type(
        "Request",
        (Request,),
        {"app": source, "_state_app": app, "__module__": Request.__module__},
    )
    _exception_handlers(source, app)
    # Starlette's order: user_middleware[0] is the outermost; add_middleware puts the one
    # added last outermost.
    for m in reversed(source.user_middleware):
        app.add_middleware(_middleware_class(m), *m.args, **m.kwargs)
    overrides = source.dependency_overrides or {}
    earlier: list[Any] = []
    for original, route in _route_contexts(source):
        described = _describe(route)
        if not isinstance(original, APIRoute) or isinstance(original, Mount):
            earlier.append(route)
            out.fallback.append((described, f"{type(original).__name__}: served by FastAPI"))
            continue
        hidden = _shadowed(route.path, set(route.methods), earlier)
        if hidden is not None:
            earlier.append(route)
            out.fallback.append((described, f"behind {_describe(hidden)}, which matches first"))
            continue
        try:
            _compile_route(app, original, route, overrides)
        except (TypeError, ValueError) as exc:
            earlier.append(route)
            out.fallback.append((described, str(exc) or type(exc).__name__))
            continue
        out.native.append(described)
    if out.native:
        _foreign.enable()
        out.app = app
    return out
