"""FastAPI's built-in OpenTelemetry (``FastAPI(telemetry={...})``) on the native server.

FastAPI traces every request when an OpenTelemetry provider is configured (the global one
or one given in ``telemetry``): a SERVER span named ``"<METHOD> <route>"`` with the HTTP
semantic-convention attributes, INTERNAL operation spans ``fastapi.dependencies``,
``fastapi.endpoint`` and ``fastapi.serialization`` under it, the
``http.server.request.duration`` and ``http.server.active_requests`` metrics, and log
records of requests that did not bind (``fastapi.validation.failed``) and of exceptions no
handler took (``http.server.request.exception``).

Here that is decided once, when the server is built (``Telemetry.for_app``): with no
provider configured (OpenTelemetry's default proxies) or telemetry turned off, nothing
changes and every route stays native. Otherwise each route's callable is wrapped
(``Telemetry.wrap``): the wrapper takes the Request, is called even when binding failed
(so a 422 is traced as FastAPI traces it), turns the result into the Response (so the
status is known) and records the span and the metrics; the endpoint runs inside
``fastapi.endpoint`` through the route's ``call_handler``, so dependencies and
serialization are the time before and after it.

Differences (docs/compat.md): requests no route answers (404, 405) and what native
middleware answers before routing are not traced; the span ends when the Response is
made, before its body is written; ``get_telemetry_data`` is not provided.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from data_bridge.api.depends import BINDING_ERRORS
from data_bridge.api.exceptions import HTTPException, RequestValidationError
from data_bridge.api.requests import Request
from data_bridge.api.responses import JSONResponse, Response

__all__ = ["Telemetry", "config_of"]

REQUEST_KW = "__db_telemetry_request__"

_DEFAULTS: dict[str, Any] = {
    "tracer_provider": None,
    "meter_provider": None,
    "logger_provider": None,
    "tracing": True,
    "metrics": True,
    "logs": True,
    "operation_spans": True,
    "auto_configure": False,
    "exclude": None,
}
_KNOWN = frozenset(_DEFAULTS)
_HTTP_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)
# OpenTelemetry's semantic conventions (HTTP server spans and metrics).
_SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
_DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
_SENSITIVE_QUERY_PARAMETERS = frozenset(
    {"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "sig", "X-Goog-Signature"}
)
# The providers OpenTelemetry's API hands out until an SDK is configured.
_DEFERRED_PROVIDERS = frozenset(
    {
        ("opentelemetry.trace", "ProxyTracerProvider"),
        ("opentelemetry.metrics._internal", "_ProxyMeterProvider"),
        ("opentelemetry._logs._internal", "ProxyLoggerProvider"),
    }
)


def config_of(telemetry: Mapping[str, Any] | None) -> dict[str, Any]:
    """FastAPI's telemetry settings over its defaults; an unknown key is a TypeError."""
    given = dict(telemetry or {})
    unknown = set(given) - _KNOWN
    if unknown:
        raise TypeError(f"unknown telemetry settings: {sorted(unknown)}")
    config = dict(_DEFAULTS)
    config["auto_configure"] = os.getenv("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true"
    config.update(given)
    return config


def _unconfigured(provider: Any) -> bool:
    cls = type(provider)
    return (cls.__module__, cls.__name__) in _DEFERRED_PROVIDERS


def _exception_type(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_response(value: Any) -> bool:
    from data_bridge.api import _foreign

    foreign = _foreign.FOREIGN_RESPONSE
    return isinstance(value, Response) or (foreign is not None and isinstance(value, foreign))


@contextlib.contextmanager
def background_operation(function: Any) -> Iterator[None]:
    """FastAPI's ``fastapi.background_task`` span around one task of a traced request's
    BackgroundTasks (nothing outside a traced request)."""
    state = _current.get()
    if state is None or not state.operations:
        yield
        return
    span = state.telemetry.tracer.start_span(
        "fastapi.background_task", attributes={"code.function.name": _function_name(function)}
    )
    try:
        yield
    except Exception as exc:
        span.set_attribute("error.type", _exception_type(exc))
        span.set_status(state.telemetry.error)
        raise
    finally:
        span.end()


def _function_name(function: Any) -> str:
    module = getattr(function, "__module__", type(function).__module__)
    qualname = getattr(function, "__qualname__", type(function).__qualname__)
    return f"{module}.{qualname}"


class _HeaderGetter:
    """OpenTelemetry's Getter over a request's (lowercase name, value) pairs."""

    def get(self, carrier: list[tuple[str, str]], key: str) -> list[str] | None:
        key = key.lower()
        values = [v for k, v in carrier if k == key]
        if not values:
            return None
        if key == "baggage":
            return [",".join(values)]  # the baggage propagator reads the first value only
        return values

    def keys(self, carrier: list[tuple[str, str]]) -> list[str]:
        return list(dict.fromkeys(k for k, _ in carrier))


_GETTER = _HeaderGetter()

# The request being traced, for the route's call_handler (operation spans). Set in the
# request's own copy of the context and never reset: a handler that waited goes on in a
# Task's copy, where resetting a token of the first one would fail.
_current: contextvars.ContextVar[_Request | None] = contextvars.ContextVar(
    "data_bridge_telemetry_request", default=None
)


def _server_attributes(request: Request, scheme: str) -> dict[str, Any]:
    authority = request.header("host")
    if authority is None:
        server = request._sockname
        return {} if server is None else {"server.address": server[0], "server.port": server[1]}
    try:
        url = urlsplit("//" + authority)
        address, port = url.hostname, url.port
    except ValueError:
        return {}  # a malformed Host must not fail the request
    if url.username is not None or url.path or url.query or url.fragment or address is None:
        return {}
    if port is None:
        port = 443 if scheme == "https" else 80
    return {"server.address": address, "server.port": port}


class Telemetry:
    """The tracer and instruments of one server, and the wrappers of its routes."""

    def __init__(
        self, app: Any, tracer: Any, meter_provider: Any, logger: Any, operation_spans: bool
    ) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, StatusCode

        from data_bridge import __version__

        self.app = app
        self.exclude: Callable[[Any], bool] | None = app._telemetry["exclude"]
        self.tracer = tracer
        self.logger = logger
        self.operations = tracer is not None and operation_spans
        self.trace = trace
        self.kind = SpanKind.SERVER
        self.error = StatusCode.ERROR
        self.duration: Any = None
        self.active: Any = None
        if meter_provider is not None:
            meter = meter_provider.get_meter("data_bridge.api", __version__, schema_url=_SCHEMA_URL)
            self.duration = meter.create_histogram(
                "http.server.request.duration",
                unit="s",
                description="Duration of HTTP server requests.",
                explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
            )
            self.active = meter.create_up_down_counter(
                "http.server.active_requests",
                unit="{request}",
                description="Number of active HTTP server requests.",
            )
        known = os.getenv("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "").strip()
        self.methods = (
            frozenset(m.strip() for m in known.split(",") if m.strip()) if known else _HTTP_METHODS
        )

    @classmethod
    def for_app(cls, app: Any) -> Telemetry | None:
        """The app's telemetry when a provider it may use is configured, else None (then
        nothing is wrapped). Decided when the server is built, as providers are set up
        before serving."""
        config = app._telemetry
        if not (config["tracing"] or config["metrics"] or config["logs"]):
            return None
        try:
            from opentelemetry import _logs, metrics, trace
        except ImportError:
            return None
        from data_bridge import __version__

        tracer = None
        if config["tracing"]:
            provider = config["tracer_provider"] or trace.get_tracer_provider()
            if not (
                (config["tracer_provider"] is None and _unconfigured(provider))
                or isinstance(provider, trace.NoOpTracerProvider)
            ):
                tracer = provider.get_tracer("data_bridge.api", __version__, schema_url=_SCHEMA_URL)
        meter_provider = None
        if config["metrics"]:
            provider = config["meter_provider"] or metrics.get_meter_provider()
            if not (
                (config["meter_provider"] is None and _unconfigured(provider))
                or isinstance(provider, metrics.NoOpMeterProvider)
            ):
                meter_provider = provider
        logger = None
        if config["logs"]:
            provider = config["logger_provider"] or _logs.get_logger_provider()
            if not (
                (config["logger_provider"] is None and _unconfigured(provider))
                or isinstance(provider, _logs.NoOpLoggerProvider)
            ):
                logger = provider.get_logger("data_bridge.api", __version__, schema_url=_SCHEMA_URL)
        if tracer is None and meter_provider is None and logger is None:
            return None
        return cls(app, tracer, meter_provider, logger, bool(config["operation_spans"]))

    def log_validation_failed(self, errors: Any, route: str) -> None:
        """FastAPI's record of a request that did not bind."""
        from opentelemetry._logs import SeverityNumber

        self.logger.emit(
            event_name="fastapi.validation.failed",
            timestamp=time.time_ns(),
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            body="Request validation failed",
            attributes={"fastapi.validation.error_count": len(errors), "http.route": route},
        )

    def log_exception(self, exc: BaseException, route: str) -> None:
        """FastAPI's record of an exception no handler took."""
        from opentelemetry._logs import SeverityNumber

        self.logger.emit(
            exception=exc,
            event_name="http.server.request.exception",
            timestamp=time.time_ns(),
            severity_number=SeverityNumber.ERROR,
            severity_text="ERROR",
            body="Unhandled exception in FastAPI request",
            attributes={"http.route": route},
        )

    # -- operation spans ---------------------------------------------------------------

    def call_handler(
        self, endpoint: Any, inner: Callable[..., Any] | None
    ) -> Callable[..., Any] | None:
        """The route's call_handler: the endpoint inside ``fastapi.endpoint``, after a
        ``fastapi.dependencies`` span from the request's start (parameters were bound
        natively then, dependencies resolved since). None without operation spans."""
        if not self.operations:
            return inner
        from opentelemetry import context as otel_context

        from data_bridge.api.routing import _is_generator

        name = _function_name(endpoint)
        generator = _is_generator(endpoint)

        async def run(handler: Callable[..., Any], /, **kwargs: Any) -> Any:
            state = _current.get()
            if state is None:  # an excluded request
                result = inner(handler, **kwargs) if inner is not None else handler(**kwargs)
                return await result if inspect.isawaitable(result) else result
            state.operation("fastapi.dependencies", state.started, end=True)
            if generator:
                # FastAPI traces no endpoint of a stream (JSON Lines, SSE): its items are
                # made while the response is written.
                state.stage = "done"
                result = inner(handler, **kwargs) if inner is not None else handler(**kwargs)
                return await result if inspect.isawaitable(result) else result
            state.stage = "endpoint"
            span = self.tracer.start_span(
                "fastapi.endpoint", attributes={"code.function.name": name}
            )
            # The endpoint's own spans are its children (no detach: see _current).
            otel_context.attach(self.trace.set_span_in_context(span))
            try:
                result = inner(handler, **kwargs) if inner is not None else handler(**kwargs)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                if not isinstance(exc, (HTTPException, RequestValidationError)):
                    span.set_attribute("error.type", _exception_type(exc))
                    span.set_status(self.error)
                span.end()
                state.stage = "done"
                raise
            finally:
                otel_context.attach(state.context)
            span.end()
            if _is_response(result):
                state.stage = "done"  # a Response is sent as it is: nothing to serialize
            else:
                state.stage = "serialization"
                state.serialize_from = time.time_ns()
            return result

        return run

    # -- the request span --------------------------------------------------------------

    def wrap(
        self,
        call: Callable[..., Any],
        *,
        route_path: str,
        endpoint: Any,
        response_class: type[Response],
        status_code: int,
        operations: bool = True,
    ) -> Callable[..., Any]:
        """The route callable ``call`` traced and measured (see the module's comment)."""
        from data_bridge.api._http_middleware import _to_response

        app = self.app
        lenient = bool(getattr(call, "__db_lenient__", False))
        signature = inspect.signature(call)
        params = [p for p in signature.parameters.values() if p.name != BINDING_ERRORS]
        extra = inspect.Parameter(REQUEST_KW, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
        params.insert(at, extra)
        function_name = _function_name(endpoint)
        telemetry = self

        async def respond(request: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Response:
            errors = kwargs.pop(BINDING_ERRORS, None)
            try:
                if errors is not None and not lenient:
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
                if isinstance(exc, RequestValidationError) and telemetry.logger is not None:
                    # The request did not bind (natively, or a dependency's parameters).
                    telemetry.log_validation_failed(exc.errors(), route_path)
                handled = app._exception_hook(exc, request)
                if handled is NotImplemented:
                    if isinstance(exc, HTTPException):
                        return JSONResponse(
                            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
                        )
                    if telemetry.logger is not None:
                        telemetry.log_exception(exc, route_path)
                    raise
                if inspect.isawaitable(handled):
                    handled = await handled
                return _to_response(handled, JSONResponse, 200)

        @functools.wraps(call)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            request = kwargs.pop(REQUEST_KW)
            if telemetry.exclude is not None and telemetry.exclude(request.scope):
                return await respond(request, args, kwargs)
            state = _Request(telemetry, request, route_path, function_name, operations)
            _current.set(state)
            try:
                response = await respond(request, args, kwargs)
            except BaseException as exc:
                # An exception no handler takes is the server's 500 (as Starlette's
                # ServerErrorMiddleware answers it before re-raising).
                state.finish(500 if isinstance(exc, Exception) else None, exc)
                raise
            state.finish(response.status_code, None)
            return response

        traced.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        traced.__annotations__ = {**getattr(call, "__annotations__", {}), REQUEST_KW: Request}
        traced.__db_lenient__ = True  # type: ignore[attr-defined]
        return traced


class _Request:
    """One traced request: its server span, its metric attributes and its stage."""

    __slots__ = (
        "active_attributes",
        "attributes",
        "context",
        "function_name",
        "operations",
        "span",
        "stage",
        "started",
        "serialize_from",
        "started_counter",
        "telemetry",
    )

    def __init__(
        self, telemetry: Telemetry, request: Any, route: str, function_name: str, operations: bool
    ) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry import propagate

        self.telemetry = telemetry
        self.operations = operations and telemetry.operations
        self.function_name = function_name
        self.started = time.time_ns()
        self.started_counter = time.perf_counter()
        self.stage = "dependencies"
        self.serialize_from = 0
        method = request.method
        known = method if method in telemetry.methods else "_OTHER"
        scheme = request._url_scheme
        self.attributes: dict[str, Any] = {
            "url.scheme": scheme,
            "http.request.method": known,
            "network.protocol.version": "1.1",
        }
        self.active_attributes = {"url.scheme": scheme, "http.request.method": known}
        if telemetry.active is not None:
            telemetry.active.add(1, self.active_attributes)
        self.span: Any = None
        self.context: Any = None
        if telemetry.tracer is not None:
            span_method = "HTTP" if known == "_OTHER" else known
            attributes = {**self.attributes, **_server_attributes(request, scheme)}
            attributes["url.path"] = request.full_path
            if request.query_string:
                attributes["url.query"] = urlencode(
                    [
                        (k, "REDACTED" if k in _SENSITIVE_QUERY_PARAMETERS else v)
                        for k, v in parse_qsl(request.query_string, keep_blank_values=True)
                    ]
                )
            if known != method:
                attributes["http.request.method_original"] = method
            attributes["http.route"] = route
            parent = propagate.extract(request.raw_headers, getter=_GETTER)
            self.span = telemetry.tracer.start_span(
                f"{span_method} {route}",
                context=parent,
                kind=telemetry.kind,
                attributes=attributes,
                start_time=self.started,
            )
            # The handler's own spans are children of this one. Each request runs in its
            # own copy of the context, so nothing is detached afterwards (a handler that
            # waited goes on in a Task's copy, where a detach would fail).
            self.context = telemetry.trace.set_span_in_context(self.span, parent)
            otel_context.attach(self.context)
        self.attributes["http.route"] = route

    def operation(
        self, name: str, start: int, *, end: bool, error: BaseException | None = None
    ) -> None:
        telemetry = self.telemetry
        if not self.operations:
            return
        span = telemetry.tracer.start_span(
            name, attributes={"code.function.name": self.function_name}, start_time=start
        )
        if error is not None:
            span.set_attribute("error.type", _exception_type(error))
            span.set_status(telemetry.error)
        if end:
            span.end()

    def finish(self, status: int | None, error: BaseException | None) -> None:
        """Ends the request: the operation span in progress, the server span, the metrics."""
        telemetry = self.telemetry
        attributes = self.attributes
        operational = error is not None and not isinstance(
            error, (HTTPException, RequestValidationError)
        )
        if self.stage == "dependencies":
            self.operation(
                "fastapi.dependencies", self.started, end=True, error=error if operational else None
            )
        elif self.stage == "serialization" and error is None:
            self.operation("fastapi.serialization", self.serialize_from, end=True)
        elif self.stage == "serialization":
            self.operation(
                "fastapi.serialization",
                self.serialize_from,
                end=True,
                error=error if operational else None,
            )
        if status is not None:
            attributes["http.response.status_code"] = status
        failed = error is not None or status is None or status >= 500
        if failed:
            attributes["error.type"] = (
                _exception_type(error)
                if error is not None
                else str(status or "incomplete_response")
            )
        span = self.span
        if span is not None:
            span.set_attributes(attributes)
            if failed:
                span.set_status(telemetry.error)
        if telemetry.duration is not None:
            telemetry.duration.record(
                max(0.0, time.perf_counter() - self.started_counter), attributes
            )
        if telemetry.active is not None:
            telemetry.active.add(-1, self.active_attributes)
        if span is not None:
            span.end()
