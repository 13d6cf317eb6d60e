"""The App: route registration with FastAPI-style decorators, and serving.

Registration only records routes. When the app starts, each handler's signature is
compiled into a plan (see _plan.py) and handed to the native server; from then on a
request runs entirely in C until the handler's own code.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import re
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from data_bridge import _core
from data_bridge import _serve as _serving
from data_bridge.api._foreign import is_foreign_http_exception
from data_bridge.api._http_middleware import handles_unrouted, unrouted
from data_bridge.api._http_middleware import wrap as wrap_http_middleware
from data_bridge.api._plan import build_plan
from data_bridge.api._stream import start_stream
from data_bridge.api._telemetry import Telemetry
from data_bridge.api._telemetry import config_of as telemetry_config
from data_bridge.api.background import exception_sinks, report_exception, start_background
from data_bridge.api.datastructures import State
from data_bridge.api.depends import Depends
from data_bridge.api.exception_handlers import http_exception_response, validation_error_response
from data_bridge.api.exceptions import (
    FastAPIDeprecationWarning,
    HTTPException,
    RequestValidationError,
)
from data_bridge.api.middleware.base import BaseHTTPMiddleware
from data_bridge.api.middleware.cors import CORSMiddleware
from data_bridge.api.middleware.gzip import GZipMiddleware
from data_bridge.api.middleware.httpsredirect import HTTPSRedirectMiddleware
from data_bridge.api.middleware.trustedhost import TrustedHostMiddleware
from data_bridge.api.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from data_bridge.api.openapi.utils import get_openapi
from data_bridge.api.requests import Request
from data_bridge.api.responses import JSONResponse, Response, StreamingResponse
from data_bridge.api.routing import (
    METHOD_CODES,
    WEBSOCKET_METHOD_CODE,
    APIRouter,
    _resolve_default,
    custom_route_endpoint,
    effective_form_limits,
)
from data_bridge.api.websockets import DEFAULT_MAX_SIZE as DEFAULT_WS_MAX_SIZE
from data_bridge.api.websockets import WebSocket
from data_bridge.json import dumps as json_dumps
from data_bridge.json import loads as json_loads


def _is_base_http_middleware(cls: Any) -> bool:
    """Ours or Starlette's BaseHTTPMiddleware (a subclass of either)."""
    if not isinstance(cls, type):
        return False
    return any(
        c.__name__ == "BaseHTTPMiddleware"
        and c.__module__ in ("data_bridge.api.middleware.base", "starlette.middleware.base")
        for c in cls.__mro__
    )


# Middleware the native server applies as policies (besides CORS).
NATIVE_MIDDLEWARE: tuple[type, ...] = (
    GZipMiddleware,
    TrustedHostMiddleware,
    HTTPSRedirectMiddleware,
)
# Every policy the server applies itself: the layers of App._layers that are not HTTP
# middleware.
_NATIVE_LAYER: tuple[type, ...] = (CORSMiddleware, *NATIVE_MIDDLEWARE)
GUARD_CORS = 3  # the CORS step's place among the guards (csrc/app/guard.c)

logger = logging.getLogger("data_bridge")

F = TypeVar("F", bound=Callable[..., Any])


def _request_body(request: Any) -> Any:
    """The request body for RequestValidationError.body: decoded JSON when it is JSON,
    else the bytes (None when empty)."""
    body = getattr(request, "_body", b"") if request is not None else b""
    if not body:
        return None
    try:
        return json_loads(body)
    except ValueError:
        return body


def _as_async_cm(cm: Any) -> Any:
    """A lifespan's context manager: async ones as they are, sync ones wrapped."""
    if hasattr(cm, "__aenter__"):
        return cm
    if hasattr(cm, "__enter__"):

        @contextlib.asynccontextmanager
        async def wrapper() -> AsyncIterator[Any]:
            with cm as value:
                yield value

        return wrapper()
    raise TypeError(f"lifespan must return a context manager, got {cm!r}")


_core.configure(
    response_class=Response,
    http_exception_class=HTTPException,
    request_class=Request,
    log_exception=report_exception,
    streaming_class=StreamingResponse,
    stream_start=start_stream,
    background_start=start_background,
)


def _complete_now(awaitable: Any, handler: Callable[..., Any]) -> Any:
    """Runs an ``async def`` exception handler to completion at once. The answer to a
    failed request is written from native code that cannot wait, so the handler may build
    a response but not await I/O; one that suspends is an error (logged, answered 500)."""
    coro = awaitable.__await__()
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError(
        f"exception handler {getattr(handler, '__qualname__', handler)!r} awaited something "
        "that suspends; exception handlers must answer without waiting for I/O"
    )


def _call_in_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
    """threaded=True: runs a blocking ``def`` handler in the loop's default executor (a
    thread pool), in a copy of the request's context, as FastAPI runs ``def`` endpoints."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    return loop.run_in_executor(None, functools.partial(ctx.run, func, *args, **kwargs))


@dataclass
class Limits:
    """Server limits and timeouts; the defaults are safe for the open internet."""

    # Bytes of a body held whole (JSON and form bodies; request.body()): 413 beyond.
    # FastAPI has no limit; 16 MiB (uvicorn's largest WebSocket message, ours too) keeps
    # what FastAPI apps are sent working while one request's memory stays bounded.
    max_body: int = 16 * 1024 * 1024
    # Bytes of a body read as it arrives (uploads to routes with File/UploadFile or a
    # Request parameter, ASGI apps), which max_body does not bound: 413 beyond; None: no
    # limit (the form limits still apply).
    max_upload: int | None = None
    max_target: int = 8192
    max_header_bytes: int = 65536
    max_headers: int = 100
    keepalive_timeout: float = 5.0
    request_timeout: float = 30.0
    # Seconds a file body (FileResponse, StaticFiles) waits for a client that reads none of
    # it before its connection closes (nginx's send_timeout).
    send_timeout: float = 60.0
    backlog: int = 1024
    extra: dict[str, Any] = field(default_factory=dict)


class FastAPI(APIRouter):
    """A web application: handlers registered with decorators, served natively.

    The constructor takes FastAPI's arguments. Those that describe the API
    (``summary``, ``openapi_tags``, ``servers``, ``contact``, ...) go to the OpenAPI
    document; ``lifespan``/``on_startup``/``on_shutdown`` run around serving (and around
    ``with TestClient(app)``); ``exception_handlers`` and ``middleware`` register as
    ``add_exception_handler``/``add_middleware`` would.
    """

    def __init__(
        self,
        *,
        debug: bool = False,
        routes: list[Any] | None = None,
        title: str = "FastAPI",
        summary: str | None = None,
        description: str = "",
        version: str = "0.1.0",
        openapi_url: str | None = "/openapi.json",
        openapi_tags: list[dict[str, Any]] | None = None,
        servers: list[dict[str, Any]] | None = None,
        dependencies: Sequence[Depends] | None = None,
        default_response_class: type[Response] | None = None,
        redirect_slashes: bool = True,
        docs_url: str | None = "/docs",
        redoc_url: str | None = "/redoc",
        swagger_ui_oauth2_redirect_url: str | None = "/docs/oauth2-redirect",
        swagger_ui_init_oauth: dict[str, Any] | None = None,
        middleware: Sequence[Any] | None = None,
        exception_handlers: Mapping[Any, Callable[..., Any]] | None = None,
        on_startup: Sequence[Callable[[], Any]] | None = None,
        on_shutdown: Sequence[Callable[[], Any]] | None = None,
        lifespan: Callable[[Any], Any] | None = None,
        terms_of_service: str | None = None,
        contact: dict[str, Any] | None = None,
        license_info: dict[str, Any] | None = None,
        openapi_prefix: str = "",
        root_path: str = "",
        root_path_in_servers: bool = True,
        responses: dict[int | str, dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        webhooks: APIRouter | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        swagger_ui_parameters: dict[str, Any] | None = None,
        generate_unique_id_function: Callable[[Any], str] | None = None,
        separate_input_output_schemas: bool = True,
        openapi_external_docs: dict[str, Any] | None = None,
        strict_content_type: bool = True,
        max_body_size: int | None = None,
        form_limits: Any = None,
        telemetry: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        """``openapi_url`` serves the OpenAPI document and ``docs_url`` a Swagger UI page
        for it, as FastAPI does; None turns either off."""
        if routes:
            raise TypeError(
                "FastAPI(routes=...) is not supported: register routes with the decorators "
                "or include_router"
            )
        self.debug = debug
        self.title = title
        self.summary = summary
        self.description = description
        self.version = version
        self.openapi_url = openapi_url
        self.openapi_tags = openapi_tags
        self.servers = list(servers or [])
        self.docs_url = docs_url
        self.redoc_url = redoc_url
        self.swagger_ui_oauth2_redirect_url = swagger_ui_oauth2_redirect_url
        self.swagger_ui_init_oauth = swagger_ui_init_oauth
        self.swagger_ui_parameters = swagger_ui_parameters
        self.terms_of_service = terms_of_service
        self.contact = contact
        self.license_info = license_info
        if root_path:
            warnings.warn(
                "The `root_path` parameter is deprecated. Configure the server's root path "
                "instead, for example with `fastapi run --root-path /api/v1`.",
                FastAPIDeprecationWarning,
                stacklevel=2,
            )
        self.root_path = root_path or openapi_prefix
        self.root_path_in_servers = root_path_in_servers
        self.webhooks = webhooks if webhooks is not None else APIRouter()
        self.separate_input_output_schemas = separate_input_output_schemas
        self.openapi_external_docs = openapi_external_docs
        self.openapi_version = "3.1.0"
        self.extra = extra
        # FastAPI's OpenTelemetry settings (_telemetry.py): applied when the server is built.
        self._telemetry = telemetry_config(telemetry)
        self.state = State()
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        self.openapi_schema: dict[str, Any] | None = None
        self._openapi_routes = 0
        self._exception_handlers: dict[Any, Callable[..., Any]] = {}
        self._cors: CORSMiddleware | None = None
        # The native middleware (CORS, GZip, TrustedHost, HTTPSRedirect policies) and the
        # HTTP middleware (@app.middleware("http") / BaseHTTPMiddleware: dispatch(request,
        # call_next) callables) together, outermost first, as Starlette stacks
        # add_middleware calls: a guard added before an HTTP middleware sits inside it
        # (_guard_through). _native_middleware and _http_middleware are its two kinds, in
        # the same order (_add_layer); the HTTP ones run around each route
        # (_http_middleware.py).
        self._layers: list[Any] = []
        self._native_middleware: list[Any] = []
        self._http_middleware: list[Any] = []
        # Pure ASGI middleware (app.add_middleware of any other class): (class, args,
        # options), outermost first; they wrap the App's ASGI face (_asgi_bridge.py).
        self._asgi_middleware: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
        self.user_middleware: list[Any] = []
        self._lifespan_state: dict[str, Any] = {}
        self._request_class: type[Request] | None = None
        self._lifespan_stack: contextlib.AsyncExitStack | None = None
        super().__init__(
            dependencies=dependencies or (),
            default_response_class=default_response_class,
            responses=responses,
            callbacks=callbacks,
            deprecated=deprecated,
            include_in_schema=include_in_schema,
            redirect_slashes=redirect_slashes,
            generate_unique_id_function=generate_unique_id_function,
            on_startup=on_startup,
            on_shutdown=on_shutdown,
            lifespan=lifespan,
            strict_content_type=strict_content_type,
            max_body_size=max_body_size,
            form_limits=form_limits,
        )
        self.router = self  # FastAPI's app.router: the app routes itself
        # The bound on one WebSocket message (1009 beyond), as uvicorn's --ws-max-size
        # (which, given to run()/serve() or the command line, takes precedence).
        self.ws_max_size = DEFAULT_WS_MAX_SIZE
        for exc_class, handler in (exception_handlers or {}).items():
            self.add_exception_handler(exc_class, handler)
        for item in middleware or ():
            cls = getattr(item, "cls", item)
            self.add_middleware(cls, *getattr(item, "args", ()), **getattr(item, "kwargs", {}))

    # Registration: route/get/post/put/patch/delete/include_router come from APIRouter.

    def add_middleware(self, middleware_class: type[Any], *args: Any, **options: Any) -> None:
        """FastAPI's ``app.add_middleware``. CORSMiddleware, GZipMiddleware,
        TrustedHostMiddleware and HTTPSRedirectMiddleware are policies the server applies
        natively; BaseHTTPMiddleware (and ``@app.middleware("http")``) runs around each
        route after native parsing, routing and binding. Any other class is a pure ASGI
        middleware, ``cls(app, *args, **options)``: the App is then served through its
        ASGI face with the middleware around it (outside the native ones), each request
        still parsed, routed and bound in C behind it. As in Starlette, the last one added
        is the outermost."""
        if isinstance(middleware_class, type) and issubclass(middleware_class, CORSMiddleware):
            self._layers = [mw for mw in self._layers if not isinstance(mw, CORSMiddleware)]
            self._cors = middleware_class(None, *args, **options)
            self._add_layer(self._cors)
            return
        if _is_base_http_middleware(middleware_class):
            self._add_layer(middleware_class(None, *args, **options).dispatch_func)
            return
        if isinstance(middleware_class, type) and issubclass(middleware_class, NATIVE_MIDDLEWARE):
            self._add_layer(middleware_class(None, *args, **options))
            return
        if not callable(middleware_class):
            raise TypeError(f"middleware must be a class or callable, got {middleware_class!r}")
        self._asgi_middleware.insert(0, (middleware_class, args, options))
        self.__dict__.pop("_asgi_stack", None)

    def _add_layer(self, layer: Any) -> None:
        """Puts a native policy or an HTTP dispatch callable outermost, and splits the
        stack into its two kinds again."""
        self._layers.insert(0, layer)
        self._native_middleware = [mw for mw in self._layers if isinstance(mw, _NATIVE_LAYER)]
        self._http_middleware = [mw for mw in self._layers if not isinstance(mw, _NATIVE_LAYER)]

    def _guard_through(self, guard: Any) -> int:
        """How many HTTP middleware are outside a native guard, -1 for none. A guard inside
        one (added before it) hands its answers to the unrouted handler, which runs those
        middleware around them, as Starlette's stack passes the guard's response out through
        them (csrc/app/guard.c)."""
        outside = 0
        for layer in self._layers:
            if layer is guard:
                break
            if not isinstance(layer, _NATIVE_LAYER):
                outside += 1
        return outside if outside else -1

    def _asgi_chain(self, inner: Any) -> Any:
        """The pure ASGI middleware around ``inner`` (the App's ASGI face)."""
        app = inner
        for cls, args, options in reversed(self._asgi_middleware):
            app = cls(app, *args, **options)
        return app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The App as an ASGI 3 application (under another ASGI server, mounted in
        Starlette/FastAPI, or with httpx's ASGITransport): the native path on a thread of
        its own (_asgi_bridge.py)."""
        stack = self.__dict__.get("_asgi_stack")
        if stack is None:
            from data_bridge.api._asgi_bridge import AsgiBridge

            bridge = self.__dict__.get("_asgi_bridge")
            if bridge is None:
                bridge = self.__dict__["_asgi_bridge"] = AsgiBridge(self)
            stack = self.__dict__["_asgi_stack"] = self._asgi_chain(bridge)
        await stack(scope, receive, send)

    def middleware(self, middleware_type: str) -> Callable[[Any], Any]:
        """FastAPI's ``@app.middleware("http")``: ``async def func(request, call_next)``
        around every route (the request is still parsed, routed and bound natively)."""
        if middleware_type != "http":
            raise ValueError(f"only 'http' middleware is supported, got {middleware_type!r}")

        def decorator(func: Any) -> Any:
            self.add_middleware(BaseHTTPMiddleware, dispatch=func)
            return func

        return decorator

    def add_exception_handler(
        self, exc_class: type[BaseException] | int, handler: Callable[..., Any]
    ) -> None:
        """Answer exceptions of ``exc_class`` (and subclasses) raised by handlers, or
        HTTPExceptions with that status code, with ``handler(request, exc)``'s result,
        converted like a handler's return value."""
        if isinstance(exc_class, int):
            if not 100 <= exc_class <= 999:
                raise ValueError(f"invalid status code {exc_class!r}")
        elif not (isinstance(exc_class, type) and issubclass(exc_class, BaseException)):
            raise TypeError(f"an exception class or status code is expected, got {exc_class!r}")
        if not callable(handler):
            raise TypeError(f"the exception handler must be callable, got {handler!r}")
        self._exception_handlers[exc_class] = handler

    def exception_handler(self, exc_class: type[BaseException] | int) -> Callable[[F], F]:
        """Decorator form of add_exception_handler (FastAPI's ``@app.exception_handler``)."""

        def decorator(func: F) -> F:
            self.add_exception_handler(exc_class, func)
            return func

        return decorator

    def _handler_for(self, exc: BaseException) -> Callable[..., Any] | None:
        """The most specific handler registered for exc's class (or, for an HTTPException,
        its status code); None when there is none."""
        if isinstance(exc, HTTPException) or is_foreign_http_exception(exc):
            handler = self._exception_handlers.get(exc.status_code)  # type: ignore[attr-defined]
            if handler is not None:
                return handler
        for cls in type(exc).__mro__:
            handler = self._exception_handlers.get(cls)
            if handler is not None:
                return handler
        return None

    def _exception_hook(self, exc: BaseException, request: Any) -> Any:
        """Called by the native layer for an exception a handler raised: the result of the
        most specific registered handler; the default answer of a RequestValidationError
        (raised by Python-level binding: parameter models) is FastAPI's 422; otherwise
        NotImplemented (the native layer answers HTTPException itself, anything else 500)."""
        handler = self._handler_for(exc)
        if handler is None:
            if isinstance(exc, RequestValidationError):
                return validation_error_response(exc)
            if is_foreign_http_exception(exc):
                # Starlette's HTTPException (raised in an unmodified FastAPI app): answered
                # as ours.
                return http_exception_response(exc)  # type: ignore[arg-type]
            return NotImplemented
        result = handler(request, exc)
        if inspect.isawaitable(result):
            result = _complete_now(result, handler)
        return result

    def _validation_hook(self, errors: list[Any], request: Any) -> Any:
        """Called by the native layer for a request that did not bind, when the app has a
        RequestValidationError handler: that handler's answer."""
        # As pydantic's (and FastAPI's) errors(): locations are tuples.
        errors = [{**e, "loc": tuple(e["loc"])} if "loc" in e else e for e in errors]
        exc = RequestValidationError(errors, body=_request_body(request))
        return self._exception_hook(exc, request)

    # Serving -----------------------------------------------------------------------

    def build_server(
        self,
        loop: asyncio.AbstractEventLoop,
        limits: Limits | None = None,
        *,
        root_path: str | None = None,
        client: tuple[str, int] | None = None,
        scheme: str = "http",
        server_options: Mapping[str, Any] | None = None,
        websocket_sink: Callable[[str, str, Any], None] | None = None,
    ) -> Any:
        """Create the native server on ``loop`` with every route compiled. ``root_path``
        is the path prefix a proxy serves the app under (the ASGI ``root_path``, as
        uvicorn's ``--root-path`` and TestClient's ``root_path`` give it); the app's own
        ``root_path`` otherwise. ``scheme`` is "https" when TLS is terminated in front of
        the server (the test client's https base_url): request.url says so and
        HTTPSRedirectMiddleware lets the requests through. ``server_options``: further
        keyword arguments of ``_core.Server`` (the command line's date_header,
        limit_concurrency, default_headers)."""
        limits = limits or Limits()
        # Routes may allow larger bodies than the server's limit (max_body_size=): the
        # server reads up to the largest, and each route checks its own (the server's
        # limit for routes without one).
        route_limits = [r.max_body_size for r in self.routes if r.max_body_size is not None]
        server = _core.Server(
            loop,
            max_body=max([limits.max_body, *route_limits]),
            max_upload=limits.max_upload or 0,
            max_target=limits.max_target,
            max_header_bytes=limits.max_header_bytes,
            max_headers=limits.max_headers,
            keepalive_timeout=limits.keepalive_timeout,
            request_timeout=limits.request_timeout,
            send_timeout=limits.send_timeout,
            backlog=limits.backlog,
            redirect_slashes=self.redirect_slashes,
            **{"ws_max_size": self.ws_max_size, **(server_options or {})},
        )
        if self._request_class is None:
            # A Request subclass that knows this app (request.app, request.state).
            self._request_class = type(
                "Request", (Request,), {"app": self, "__module__": Request.__module__}
            )
        request_class = self._request_class
        if scheme not in ("http", "https"):
            raise ValueError(f"scheme must be 'http' or 'https', got {scheme!r}")
        server.set_secure(scheme == "https")
        server.set_root_path(root_path if root_path is not None else self.root_path or "")
        if root_path is not None or client is not None or scheme != "http":
            # This server's own view: the proxy's prefix, the peer the test client reports.
            request_class = type(
                "Request",
                (request_class,),
                {
                    "server_root_path": root_path,
                    "server_client": client,
                    "server_scheme": scheme,
                    "__module__": Request.__module__,
                },
            )
        server.set_request_class(request_class)
        ws_class = type(
            "WebSocket",
            (WebSocket, request_class),
            {
                "_test_sink": staticmethod(websocket_sink) if websocket_sink else None,
                "__module__": WebSocket.__module__,
            },
        )
        # FastAPI reads the overrides with `or {}`: None (as tests set it) means none.
        overrides = self.dependency_overrides or {}
        # FastAPI's OpenTelemetry, when a provider is configured: every route traced.
        telemetry = Telemetry.for_app(self)
        seen: set[tuple[str, str]] = set()
        for route in self.routes:
            # A method and path registered again is shadowed by the first registration,
            # as Starlette matches routes in order.
            shape = re.sub(r"\{[^}]*\}", "{}", route.path)
            is_ws = getattr(route, "websocket", False)
            # A WebSocket route has a method of its own in the router: an upgrade matches
            # WebSocket routes only, any other request HTTP routes only (as Starlette's
            # websocket and http scopes), so a GET route and a WebSocket route share a path.
            wanted = ("WEBSOCKET",) if is_ws else route.methods
            methods = [m for m in wanted if (m, shape) not in seen]
            if not methods:
                continue
            seen.update((m, shape) for m in methods)
            call_handler = _call_in_thread if route.threaded else None
            if telemetry is not None and not is_ws:
                call_handler = telemetry.call_handler(route.endpoint, call_handler)
            call = route_call = route.callable(call_handler, overrides)
            custom = not is_ws and route.custom_route_handler
            if custom:
                # The route class's own handler runs first, with the Request; it calls the
                # original handler (route.get_route_handler's), which binds from there.
                route.__dict__["_db_route_call"] = call
                try:
                    call = custom_route_endpoint(route.get_route_handler())
                finally:
                    del route.__dict__["_db_route_call"]
            if self._http_middleware and not is_ws:
                # Starlette's BaseHTTPMiddleware passes websocket scopes through untouched.
                call = wrap_http_middleware(
                    self,
                    call,
                    _resolve_default(route.response_class),
                    route.effective_status_code,
                )
            if telemetry is not None and not is_ws:
                call = telemetry.wrap(
                    call,
                    route_path=route.path_format,
                    endpoint=route.endpoint,
                    response_class=_resolve_default(route.response_class),
                    status_code=route.effective_status_code,
                )
            if is_ws:
                # The request object of a WebSocket route is a WebSocket of this server.
                server.set_request_class(ws_class)
            # A plain dataclass response model: the server writes the handler's exact
            # instances itself (JSON_OPT_AS_MODEL) when nothing wraps the route's callable.
            responder = getattr(call, "__db_responder__", None)
            as_model = call is route_call and getattr(responder, "as_model", False)
            if as_model:
                responder.raw_as_model = True
            server.add_route(
                [WEBSOCKET_METHOD_CODE] if is_ws else [METHOD_CODES[m] for m in methods],
                route.path,
                call,
                # A custom handler takes the Request alone: the path parameters are bound
                # later, by the original handler (its plan is made as if the path had none).
                build_plan("/" if custom else route.path, call),
                route.effective_status_code,
                strict_content_type=bool(_resolve_default(route.strict_content_type)),
                lenient=bool(getattr(call, "__db_lenient__", False)),
                text_content_type=route.text_content_type(),
                form_limits=effective_form_limits(route),
                max_body_size=(
                    route.max_body_size if route.max_body_size is not None else limits.max_body
                ),
                # A StaticFiles route answered by the server skips the route's callable, so
                # not when @app.middleware("http") must run around it.
                file_cache=None
                if self._http_middleware or telemetry is not None
                else getattr(route, "file_cache", None),
                keep_match=custom,
                json_as_model=as_model,
            )
            if is_ws:
                server.set_request_class(request_class)
        server.set_exception_hook(self._exception_hook)
        if any(
            isinstance(cls, type) and issubclass(RequestValidationError, cls)
            for cls in self._exception_handlers
        ):
            server.set_validation_hook(self._validation_hook)
        if self._cors is not None:
            server.set_cors_hook(self._cors)
        # Middleware answering before routing run in stack order; CORS takes its place
        # among them (alone, it runs first as it always did).
        guards = (TrustedHostMiddleware, HTTPSRedirectMiddleware)
        has_guard = any(isinstance(mw, guards) for mw in self._native_middleware)
        for mw in self._native_middleware:
            through = self._guard_through(mw)
            if isinstance(mw, CORSMiddleware):
                if has_guard or through >= 0:
                    server.add_guard(GUARD_CORS, b"", False, through)
            elif isinstance(mw, guards):
                mw.apply(server, through)
            else:
                mw.apply(server)
        for path, endpoint in self._doc_routes():
            if self._http_middleware:
                endpoint = wrap_http_middleware(self, endpoint, JSONResponse, 200)
            if telemetry is not None:
                endpoint = telemetry.wrap(
                    endpoint,
                    route_path=path,
                    endpoint=endpoint,
                    response_class=JSONResponse,
                    status_code=200,
                    operations=False,  # a plain route in FastAPI: no operation spans
                )
            server.add_route(
                [METHOD_CODES["GET"]],
                path,
                endpoint,
                build_plan(path, endpoint),
                200,
                lenient=bool(getattr(endpoint, "__db_lenient__", False)),
            )
        if handles_unrouted(self):
            # 404, 405 and redirect_slashes' 307 through the middleware and the exception
            # handlers, as Starlette's router answers inside them.
            handler = unrouted(self)
            server.add_route(
                [],
                "/",
                handler,
                build_plan("/", handler),
                404,
                max_body_size=limits.max_body,
                unrouted=True,
            )
        self._add_mounts(server, loop, limits, root_path, client, scheme, websocket_sink)
        return server

    def _add_mounts(
        self,
        server: Any,
        loop: asyncio.AbstractEventLoop,
        limits: Limits,
        root_path: str | None,
        client: tuple[str, int] | None,
        scheme: str,
        websocket_sink: Callable[[str, str, Any], None] | None = None,
    ) -> None:
        """The mounted apps (app.mount): a data-bridge App gets a server of its own that
        never listens (the parent's server hands it the requests under its prefix, with the
        prefix as its root_path); another ASGI app runs on the ASGI driver. Under HTTP
        middleware, which Starlette runs around mounts too, each is called from the
        unrouted handler inside the middleware (_http_middleware.call_mount): an ASGI app
        as it is, a data-bridge App through its ASGI face on this loop."""
        from data_bridge._serve import _log
        from data_bridge.api._asgi_bridge import AsgiBridge

        root = (root_path if root_path is not None else self.root_path or "").rstrip("/")
        for prefix, app, _name in self.mounts:
            if isinstance(app, FastAPI):
                # The test client's WebSocket reports come from the mounted App's sessions too.
                target = app.build_server(
                    loop,
                    limits,
                    root_path=root + prefix,
                    client=client,
                    scheme=scheme,
                    websocket_sink=websocket_sink,
                )
            else:
                target = _core.AsgiApp(app, loop, log=_log, root_path=root + prefix, mounted=True)
            if not self._http_middleware:
                server.add_mount(prefix, target)
                continue
            # The HTTP requests through the middleware; WebSocket upgrades, which it lets
            # through, to the native target.
            if isinstance(app, FastAPI):
                options = {"limits": limits, "client": client}
                app = AsgiBridge(app, loop=loop, build_options=options)
            server.add_mount(prefix, target, (app, root + prefix))

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of the registered routes (built once, then cached;
        routes registered later rebuild it)."""
        if self.openapi_schema is None or self._openapi_routes != len(self.routes):
            self.openapi_schema = get_openapi(
                title=self.title,
                version=self.version,
                openapi_version=self.openapi_version,
                summary=self.summary,
                description=self.description,
                terms_of_service=self.terms_of_service,
                contact=self.contact,
                license_info=self.license_info,
                routes=self.routes,
                webhooks=self.webhooks.routes,
                tags=self.openapi_tags,
                servers=self.servers,
                separate_input_output_schemas=self.separate_input_output_schemas,
                external_docs=self.openapi_external_docs,
            )
            self._openapi_routes = len(self.routes)
        return self.openapi_schema

    def _server_key(self) -> tuple[Any, ...]:
        """What a built server depends on beyond its routes' definitions: a TestClient
        rebuilds its server when this changes (routes added, dependency_overrides set)."""
        return (
            len(self.routes),
            tuple((id(k), id(v)) for k, v in (self.dependency_overrides or {}).items()),
            len(self._exception_handlers),
            self._cors is not None,
            len(self._native_middleware),
            len(self._http_middleware),
            len(self._asgi_middleware),
            tuple(id(app) for _, app, _ in self.mounts),
        )

    @contextlib.contextmanager
    def _capture_exceptions(self) -> Iterator[list[BaseException]]:
        """Collects (instead of logging) the exceptions handlers raise meanwhile: the test
        client re-raises them (raise_server_exceptions)."""
        captured: list[BaseException] = []
        exception_sinks.append(captured)
        try:
            yield captured
        finally:
            exception_sinks.remove(captured)

    async def _startup_app(self) -> None:
        """on_startup hooks, then the lifespan contexts (the app's and included routers'),
        entered in order; a dict a lifespan yields becomes the requests' ``state``."""
        await self._run_hooks(self.on_startup)
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            for lifespan in self._lifespans:
                state = await stack.enter_async_context(_as_async_cm(lifespan(self)))
                if state is not None:
                    if not isinstance(state, Mapping):
                        raise TypeError(
                            f"a lifespan may yield a mapping (the request state), not {state!r}"
                        )
                    self._lifespan_state.update(state)
        except BaseException:
            await stack.aclose()
            raise
        self._lifespan_stack = stack

    async def _shutdown_app(self) -> None:
        stack, self._lifespan_stack = self._lifespan_stack, None
        if stack is not None:
            await stack.aclose()
        await self._run_hooks(self.on_shutdown)

    def _doc_routes(self) -> list[tuple[str, Callable[[], Response]]]:
        """/openapi.json, /docs (with its OAuth2 redirect page) and /redoc, as FastAPI
        serves them, unless a user route has the path."""
        taken = {route.path for route in self.routes}
        out: list[tuple[str, Callable[[], Response]]] = []
        if not self.openapi_url:
            return out
        openapi_url = self.root_path + self.openapi_url

        def add(path: str | None, make: Callable[[], Response]) -> None:
            if path and path not in taken:
                out.append((path, make))

        if self.openapi_url not in taken:
            # Built on the first request, as FastAPI does: a schema that cannot be made
            # fails that request (500, logged), not the server's start. One document per
            # root path the app is served under.
            documents: dict[str, bytes] = {}

            def openapi_json(request: Request) -> Response:
                root_path = request.root_path.rstrip("/")
                if root_path not in documents:
                    schema = self.openapi()
                    if root_path and self.root_path_in_servers:
                        # As FastAPI: the root path is offered as the first server.
                        listed = {server.get("url") for server in schema.get("servers", [])}
                        if root_path not in listed:
                            servers = [{"url": root_path}, *schema.get("servers", [])]
                            schema = {**schema, "servers": servers}
                    documents[root_path] = json_dumps(schema)
                return Response(documents[root_path], media_type="application/json")

            openapi_json.__annotations__ = {"request": Request, "return": Response}
            out.append((self.openapi_url, openapi_json))
        oauth2_url = self.swagger_ui_oauth2_redirect_url
        if self.docs_url:
            swagger = get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{self.title} - Swagger UI",
                oauth2_redirect_url=self.root_path + oauth2_url if oauth2_url else None,
                init_oauth=self.swagger_ui_init_oauth,
                swagger_ui_parameters=self.swagger_ui_parameters,
            )
            add(self.docs_url, lambda: swagger)
            if oauth2_url:
                redirect = get_swagger_ui_oauth2_redirect_html()
                add(oauth2_url, lambda: redirect)
        if self.redoc_url:
            redoc = get_redoc_html(openapi_url=openapi_url, title=f"{self.title} - ReDoc")
            add(self.redoc_url, lambda: redoc)
        return out

    async def _run_hooks(self, hooks: list[Callable[[], Any]]) -> None:
        for hook in hooks:
            result = hook()
            if inspect.isawaitable(result):
                await result

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        workers: int = 1,
        log_level: str = "info",
        graceful_timeout: float | None = 10.0,
        **options: Any,
    ) -> None:
        """Serve until SIGINT or SIGTERM, then close cleanly.

        ``workers`` > 1 forks that many supervised processes sharing one listening socket.
        Other keyword arguments are those of ``data_bridge._serve.Config`` (uvicorn's
        options, e.g. ``ssl_certfile``/``ssl_keyfile`` for HTTPS) or set ``Limits`` fields
        (max_body, keepalive_timeout, ...).
        """
        _serving.serve(
            self,
            host,
            port,
            workers=workers,
            log_level=log_level,
            graceful_timeout=graceful_timeout,
            **options,
        )


App = FastAPI
