"""Route registration under FastAPI's names: ``APIRouter`` and ``APIRoute``.

An ``APIRouter`` groups routes (with a common prefix, tags, dependencies, responses) and
``router.include_router(other, prefix=...)`` copies another router's routes in, as in
FastAPI. Registration only records routes and checks each handler's signature; the
native plans are built when the app starts (``FastAPI.build_server``).

What the server calls for a route (``APIRoute.callable``) is the endpoint itself when
nothing has to happen around it, so plain routes run with no Python frame of ours. Routes
with dependencies, a ``response_model``, a non-JSON ``response_class``, an injected
``Response`` or ``BackgroundTasks`` get one coroutine (depends.py) that resolves the
dependencies, calls the endpoint and turns the result into the response
(``_Responder``): a model result is validated and serialized to JSON bytes by
pydantic-core in one call, with no dict in between.

A route class that overrides ``get_route_handler`` (FastAPI's "custom Request and APIRoute
class") takes a Python path, and only that route: the server calls its handler with the
Request, and the original handler (``APIRoute.get_route_handler()``, a ``_RouteHandler``)
binds the route's parameters with the native binder (``_core.Binder``) from the body the
handler's Request gives (``await request.body()``, which a Request subclass may
override) and returns a Response the overriding handler can change.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import math
import re
import typing
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from enum import Enum
from typing import Any, TypeVar

from data_bridge import _core
from data_bridge.api import _foreign
from data_bridge.api._http_middleware import _to_response
from data_bridge.api._msgspec import StructAdapter, is_struct_annotation, struct_errors
from data_bridge.api._plan import RouteDefinitionError, build_plan, path_param_names
from data_bridge.api.datastructures import Default, DefaultPlaceholder
from data_bridge.api.depends import Depends, with_dependencies
from data_bridge.api.exceptions import (
    FastAPIError,
    HTTPException,
    RequestValidationError,
    ResponseValidationError,
)
from data_bridge.api.requests import Request
from data_bridge.api.responses import JSONResponse, Response, StreamingResponse
from data_bridge.json import dumps as json_dumps
from data_bridge.json import loads as json_loads

__all__ = [
    "METHOD_CODES",
    "WEBSOCKET_METHOD_CODE",
    "APIRoute",
    "APIRouter",
    "APIWebSocketRoute",
    "Route",
    "generate_unique_id",
]

F = TypeVar("F", bound=Callable[..., Any])

# http_method_t values shared with csrc/http/http.h.
METHOD_CODES = {
    "GET": 0,
    "HEAD": 1,
    "POST": 2,
    "PUT": 3,
    "PATCH": 4,
    "DELETE": 5,
    "OPTIONS": 6,
    "TRACE": 7,
    "CONNECT": 8,
}
# The router's code of WebSocket routes (APP_METHOD_WEBSOCKET, csrc/app/app_internal.h).
WEBSOCKET_METHOD_CODE: int = _core.METHOD_WEBSOCKET


def generate_unique_id(route: APIRoute) -> str:
    """FastAPI's default operationId: name + path + first method, non-word chars as '_'."""
    operation_id = re.sub(r"\W", "_", f"{route.name}{route.path_format}")
    return f"{operation_id}_{sorted(route.methods)[0].lower()}"


def _resolve_default(*values: Any) -> Any:
    """The first value given explicitly, else the innermost default's value."""
    for value in values:
        if not isinstance(value, DefaultPlaceholder):
            return value
    last = values[-1]
    return last.value if isinstance(last, DefaultPlaceholder) else last


def _is_response_class(annotation: Any) -> bool:
    try:
        return isinstance(annotation, type) and issubclass(annotation, Response)
    except TypeError:
        return False


def _return_annotation(endpoint: Callable[..., Any]) -> Any:
    """The endpoint's return annotation, resolved; None when absent."""
    try:
        hints = typing.get_type_hints(endpoint, include_extras=True)
    except Exception:
        return None
    annotation = hints.get("return")
    if annotation is None or annotation is type(None):
        return None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        # A union that includes a Response class (``-> Response | dict``) is no model, and
        # FastAPI refuses to guess: response_model=None says not to use the annotation.
        if any(_is_response_class(a) for a in typing.get_args(annotation)):
            raise FastAPIError(
                "Invalid args for response field! Hint: check that "
                f"{annotation} is a valid Pydantic field type. If you are using a return "
                "type annotation that is not a valid Pydantic field (e.g. Union[Response, "
                "dict, None]) you can disable generating the response model from the type "
                "annotation with the path operation decorator parameter response_model=None."
            )
    if _is_response_class(annotation):
        return None
    return annotation


def _stream_item(annotation: Any) -> Any:
    """The item type of a generator endpoint's annotation (AsyncIterable[Item],
    Iterator[str], ...): items are validated one by one, never the stream as a whole."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is not None and getattr(origin, "__module__", "") in ("collections.abc", "typing"):
        return args[0] if args else None
    return annotation


def _is_generator(endpoint: Callable[..., Any]) -> bool:
    call = endpoint if inspect.isfunction(endpoint) or inspect.ismethod(endpoint) else None
    if call is None:
        call = getattr(endpoint, "__call__", None)  # noqa: B004 - callable instances
    return inspect.isasyncgenfunction(call) or inspect.isgeneratorfunction(call)


class APIRoute:
    """One registered path operation (FastAPI's ``APIRoute``)."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        response_model: Any = Default(None),
        status_code: int | None = None,
        tags: Sequence[str | Enum] | None = None,
        dependencies: Sequence[Depends] | None = None,
        summary: str | None = None,
        description: str | None = None,
        response_description: str = "Successful Response",
        responses: dict[int | str, dict[str, Any]] | None = None,
        deprecated: bool | None = None,
        name: str | None = None,
        methods: Iterable[str] | None = None,
        operation_id: str | None = None,
        response_model_include: Any = None,
        response_model_exclude: Any = None,
        response_model_by_alias: bool = True,
        response_model_exclude_unset: bool = False,
        response_model_exclude_defaults: bool = False,
        response_model_exclude_none: bool = False,
        include_in_schema: bool = True,
        response_class: type[Response] | DefaultPlaceholder = Default(JSONResponse),
        dependency_overrides_provider: Any = None,
        callbacks: list[Any] | None = None,
        openapi_extra: dict[str, Any] | None = None,
        generate_unique_id_function: Callable[[APIRoute], str] | DefaultPlaceholder = Default(
            generate_unique_id
        ),
        threaded: bool = False,
        strict_content_type: bool | DefaultPlaceholder = Default(True),
        max_body_size: int | None = None,
        form_limits: Any = None,
    ) -> None:
        self.form_limits = _refuse_limits(max_body_size, form_limits)
        self.max_body_size = max_body_size
        self.path = path
        self.path_format = re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*):path\}", r"{\1}", path)
        self.endpoint = endpoint
        wanted = tuple(dict.fromkeys(m.upper() for m in (methods or ("GET",))))
        for m in wanted:
            if m not in METHOD_CODES:
                raise ValueError(f"unsupported method {m!r}")
        self.methods: set[str] = set(wanted)
        self._method_order = wanted
        if isinstance(response_model, DefaultPlaceholder):
            response_model = _return_annotation(endpoint)
        self.response_model = response_model
        if status_code is not None and not 100 <= int(status_code) <= 999:
            raise ValueError(f"invalid status code {status_code!r}")
        self.status_code = status_code
        self.tags: list[str | Enum] = list(tags or [])
        self.dependencies: list[Depends] = _check_dependencies(dependencies or ())
        self.name = name if name is not None else getattr(endpoint, "__name__", "")
        self.summary = summary
        self.description = description
        if description is None:
            doc = inspect.getdoc(endpoint)
            self.description = doc.split("\f")[0].strip() if doc else ""
        self.response_description = response_description
        self.responses = dict(responses or {})
        self.deprecated = deprecated
        self.operation_id = operation_id
        self.response_model_include = response_model_include
        self.response_model_exclude = response_model_exclude
        self.response_model_by_alias = response_model_by_alias
        self.response_model_exclude_unset = response_model_exclude_unset
        self.response_model_exclude_defaults = response_model_exclude_defaults
        self.response_model_exclude_none = response_model_exclude_none
        self.include_in_schema = include_in_schema
        self.response_class = response_class
        self.dependency_overrides_provider = dependency_overrides_provider
        self.callbacks = callbacks
        self.openapi_extra = openapi_extra
        self.generate_unique_id_function = generate_unique_id_function
        gen = _resolve_default(generate_unique_id_function)
        self.unique_id = self.operation_id or gen(self)
        self.threaded = threaded
        self.strict_content_type = strict_content_type
        if threaded and (
            inspect.iscoroutinefunction(endpoint) or inspect.isasyncgenfunction(endpoint)
        ):
            raise ValueError(
                f"threaded=True is for def handlers; {endpoint.__qualname__} is async def"
            )
        self.param_names = path_param_names(path)
        # Validate the signature (and the dependency tree) now, so that mistakes surface at
        # import time.
        build_plan(path, self.callable())

    def text_content_type(self) -> bytes | None:
        """The Content-Type of a str result when the route's response class is a plain
        text one (PlainTextResponse, HTMLResponse) and no model is involved: the native
        path then writes the str as the body. None: a str result is a JSON string."""
        cls = _resolve_default(self.response_class)
        media_type = _NATIVE_TEXT_TYPES.get(cls)
        if media_type is None or _Responder.for_route(self, "").adapter is not None:
            return None
        return f"{media_type}; charset=utf-8".encode("ascii")

    @property
    def effective_status_code(self) -> int:
        if self.status_code is not None:
            return int(self.status_code)
        cls = _resolve_default(self.response_class)
        code = getattr(cls, "status_code", None)
        return code if isinstance(code, int) else 200

    def copy_with(self, **changes: Any) -> APIRoute:
        """A new route with some arguments replaced (include_router's copies)."""
        args = {
            "response_model": self.response_model,
            "status_code": self.status_code,
            "tags": self.tags,
            "dependencies": self.dependencies,
            "summary": self.summary,
            "description": self.description,
            "response_description": self.response_description,
            "responses": self.responses,
            "deprecated": self.deprecated,
            "name": self.name,
            "methods": self._method_order,
            "operation_id": self.operation_id,
            "response_model_include": self.response_model_include,
            "response_model_exclude": self.response_model_exclude,
            "response_model_by_alias": self.response_model_by_alias,
            "response_model_exclude_unset": self.response_model_exclude_unset,
            "response_model_exclude_defaults": self.response_model_exclude_defaults,
            "response_model_exclude_none": self.response_model_exclude_none,
            "include_in_schema": self.include_in_schema,
            "response_class": self.response_class,
            "callbacks": self.callbacks,
            "openapi_extra": self.openapi_extra,
            "generate_unique_id_function": self.generate_unique_id_function,
            "threaded": self.threaded,
            "strict_content_type": self.strict_content_type,
            "max_body_size": self.max_body_size,
            "form_limits": self.form_limits,
        }
        path = changes.pop("path", self.path)
        args.update(changes)
        return type(self)(path, self.endpoint, **args)

    def callable(
        self,
        call_handler: Callable[..., Any] | None = None,
        overrides: dict[Any, Any] | None = None,
    ) -> Callable[..., Any]:
        """What the server calls: the endpoint itself when nothing is added, else a
        coroutine function with the same request parameters that resolves dependencies
        first (depends.py), runs the handler through ``call_handler(handler, *args,
        **kwargs)`` (e.g. in a thread) and turns its result into the response."""
        where = f"{self.name} for {self.path!r}"
        responder = _Responder.for_route(self, where)
        return with_dependencies(
            self.endpoint,
            self.dependencies,
            where,
            call_handler,
            responder,
            overrides,
            self.path,
            form_limits=effective_form_limits(self),
        )

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        """FastAPI's: the route's request handler, ``await handler(request)`` giving the
        Response. It binds the route's parameters from ``request`` (its body through
        ``await request.body()``, so a Request subclass's body() is what binding reads;
        the endpoint's Request parameter gets that request), runs the dependencies and the
        endpoint, and raises RequestValidationError when the request does not bind. A
        subclass overriding this method wraps what it returns; only such routes are served
        through it, every other route is bound and answered natively."""
        call = self.__dict__.get("_db_route_call")
        return _RouteHandler(self, call if call is not None else self.callable())

    @property
    def custom_route_handler(self) -> bool:
        """Whether this route's class overrides get_route_handler (then the server calls
        that handler for its requests)."""
        return type(self).get_route_handler is not APIRoute.get_route_handler

    def matches_name(self, name: str) -> bool:
        return self.name == name

    def url_path_for(self, name: str, **params: Any) -> str | None:
        if name != self.name or set(params) != set(self.param_names):
            return None
        path = self.path_format
        for key, value in params.items():
            path = path.replace("{" + key + "}", str(value))
        return path

    def __repr__(self) -> str:
        return f"APIRoute(path={self.path!r}, name={self.name!r}, methods={sorted(self.methods)})"


Route = APIRoute

# The server's Request of the request a custom route handler serves: what the original
# handler binds from (the handler may pass a Request of its own making). Set in the
# request's own context (each request runs in a copy), so it is never reset.
_SERVED_REQUEST: contextvars.ContextVar[Any] = contextvars.ContextVar("data_bridge_served_request")


class _RouteHandler:
    """The original handler of a route (what ``APIRoute.get_route_handler`` returns):
    ``await handler(request)`` binds the route's parameters natively (``_core.Binder``), the
    body from ``await request.body()``, calls the route's callable (dependencies, endpoint,
    response model) and returns a Response."""

    __slots__ = ("binder", "response_class", "status_code", "where")

    def __init__(self, route: APIRoute, call: Callable[..., Any]) -> None:
        self.binder = _core.Binder(
            call,
            route.path,
            build_plan(route.path, call),
            strict_content_type=bool(_resolve_default(route.strict_content_type)),
            lenient=bool(getattr(call, "__db_lenient__", False)),
            form_limits=effective_form_limits(route),
        )
        self.response_class = _resolve_default(route.response_class)
        self.status_code = route.effective_status_code
        self.where = f"{route.name} for {route.path!r}"

    async def __call__(self, request: Request) -> Response:
        served = _SERVED_REQUEST.get(None)
        if served is None:
            raise RuntimeError(
                f"the route handler of {self.where} was called outside a request of its route"
            )
        body = None
        if self.binder.needs_body:
            try:
                body = await request.body()
            except HTTPException:
                raise
            except Exception as exc:
                # FastAPI's answer to a body that cannot be read (a Request subclass's
                # body() failing: a gzip body that is not gzip).
                raise HTTPException(400, "There was an error parsing the body") from exc
        ok, value = self.binder.call(served, body, request)
        if not ok:
            errors = [{**e, "loc": tuple(e["loc"])} if "loc" in e else e for e in value]
            raise RequestValidationError(errors, body=_decoded_body(body))
        if inspect.isawaitable(value):
            value = await value
        return _to_response(value, self.response_class, self.status_code)


def _decoded_body(body: bytes | None) -> Any:
    """RequestValidationError.body: the JSON value of a JSON body, else the bytes (None
    when empty)."""
    if not body:
        return None
    try:
        return json_loads(body)
    except ValueError:
        return body


def custom_route_endpoint(handler: Callable[[Request], Awaitable[Any]]) -> Callable[..., Any]:
    """What the server calls for a route whose class overrides get_route_handler: the
    handler with the server's Request (and nothing bound natively before it)."""

    async def endpoint(request: Request) -> Any:
        _SERVED_REQUEST.set(request)
        return await handler(request)

    endpoint.__annotations__ = {"request": Request, "return": Any}
    return endpoint


class APIWebSocketRoute(APIRoute):
    """A WebSocket route (FastAPI's ``APIWebSocketRoute``): a GET that must be an upgrade
    (websockets.py checks the handshake), never in the OpenAPI document."""

    websocket = True

    def __init__(self, path: str, endpoint: Callable[..., Any], **kw: Any) -> None:
        kw["methods"] = ("GET",)
        kw["include_in_schema"] = False
        super().__init__(path, endpoint, **kw)

    def callable(
        self,
        call_handler: Callable[..., Any] | None = None,
        overrides: dict[Any, Any] | None = None,
    ) -> Callable[..., Any]:
        from data_bridge.api.websockets import websocket_callable

        where = f"{self.name} for {self.path!r}"
        inner = with_dependencies(
            self.endpoint, self.dependencies, where, None, None, overrides, self.path
        )
        return websocket_callable(inner, where)

    def __repr__(self) -> str:
        return f"APIWebSocketRoute(path={self.path!r}, name={self.name!r})"


class _MountRoute(APIRoute):
    """The route of a mounted StaticFiles."""

    mount_prefix = ""
    # The StaticFiles' _core.FileCache: the server answers the files it served before
    # without calling the route (csrc/app/files_cache.c).
    file_cache: Any = None

    def url_path_for(self, name: str, **path_params: Any) -> str | None:
        if name != self.name or set(path_params) != {"path"}:
            return None
        return self.mount_prefix + "/" + str(path_params["path"]).lstrip("/")


class _Responder:
    """Turns an endpoint's result into the response of its route: validation against the
    response_model and serialization to JSON bytes in one pass through pydantic-core, the
    route's response class, status code, and an injected ``Response``'s headers, cookies
    and status."""

    def __init__(self, route: APIRoute, adapter: Any, response_class: Any, where: str) -> None:
        self.adapter = adapter
        self.status_code = route.effective_status_code
        self.explicit_status = route.status_code is not None
        self.response_class = response_class
        self.json_class = issubclass(response_class, JSONResponse) and not _custom_render(
            response_class
        )
        self.dump_args = {
            "include": route.response_model_include,
            "exclude": route.response_model_exclude,
            "by_alias": route.response_model_by_alias,
            "exclude_unset": route.response_model_exclude_unset,
            "exclude_defaults": route.response_model_exclude_defaults,
            "exclude_none": route.response_model_exclude_none,
        }
        self.where = where
        self.stream = _is_generator(route.endpoint)
        self.sse = self.stream and getattr(response_class, "media_type", None) == (
            "text/event-stream"
        )
        # unvalidated(result): the result is exactly the response model's class (or a list
        # of exactly it) and its validation would hand it back unchanged, so it is skipped.
        # exact(value): a validated value is exactly the class (a subclass instance passes
        # validation but must be written with the declared fields only); the native
        # encoder then writes it: from the model's fields (native), or a dataclass with
        # JSON_OPT_AS_MODEL, as pydantic's serializer writes it (as_model).
        self.unvalidated: Callable[[Any], bool] | None = None
        self.exact: Callable[[Any], bool] = _never
        self.native = self.as_model = False
        # Set by the app when its server writes this route's results with
        # JSON_OPT_AS_MODEL (add_route(json_as_model=True)) and nothing wraps the route:
        # exact dataclass results are then handed back as they are, like native models.
        self.raw_as_model = False
        plain_options = route.response_model_by_alias and not any(
            (
                route.response_model_include,
                route.response_model_exclude,
                route.response_model_exclude_unset,
                route.response_model_exclude_defaults,
                route.response_model_exclude_none,
            )
        )
        if isinstance(adapter, StructAdapter):
            self.unvalidated = _exact_check(adapter.annotation, _is_struct_class)
        elif adapter is not None:
            model = route.response_model
            self.unvalidated = _exact_check(model, _passes_unvalidated)
            if plain_options and response_class is JSONResponse:
                self.native = _is_model_class(_item_class(model))
                self.as_model = not self.native and _dataclass_is_plain(_item_class(model))
                if self.native or self.as_model:
                    self.exact = _exact_check(model, _always) or _never
        # Nothing to do unless a Response was injected: the native path encodes the
        # result itself (JSON, or the str body of a text response class).
        self.trivial = (
            adapter is None
            and not self.stream
            and (response_class in _NATIVE_JSON_CLASSES or response_class in _NATIVE_TEXT_TYPES)
        )

    @classmethod
    def for_route(cls, route: APIRoute, where: str) -> _Responder:
        response_class = _resolve_default(route.response_class)
        adapter = None
        model = route.response_model
        if model is not None and _is_generator(route.endpoint):
            model = _stream_item(model)
        if model is not None and is_struct_annotation(model):
            return cls(route, StructAdapter(model), response_class, where)
        if model is not None and model is not Any:
            try:
                import pydantic
            except ImportError as exc:
                raise RouteDefinitionError(f"response_model needs pydantic ({where})") from exc
            try:
                adapter = pydantic.TypeAdapter(model)
            except pydantic.PydanticSchemaGenerationError as exc:
                raise RouteDefinitionError(
                    f"Invalid args for response field! Hint: check that {model!r} is a valid "
                    f"Pydantic field type ({where})"
                ) from exc
        return cls(route, adapter, response_class, where)

    def validate(self, result: Any) -> Any:
        import pydantic

        if isinstance(self.adapter, StructAdapter):
            import msgspec

            try:
                return self.adapter.validate_python(result, from_attributes=True)
            except msgspec.ValidationError as exc:
                errors = struct_errors(exc, ("response",), result)
                raise ResponseValidationError(errors, body=result) from None
        try:
            return self.adapter.validate_python(result, from_attributes=True)
        except pydantic.ValidationError as exc:
            errors = [
                {
                    "type": e["type"],
                    "loc": ("response", *e["loc"]),
                    "msg": e["msg"],
                    "input": e.get("input"),
                }
                for e in exc.errors(include_url=False)
            ]
            raise ResponseValidationError(errors, body=result) from None

    def _stream(self, result: Any, status: int) -> Response:
        """A generator endpoint's response: with a streaming response_class, what it yields
        is the body; otherwise each item is one line of JSON (JSON Lines), validated and
        serialized like a response model's value, as FastAPI streams them."""
        if self.sse:
            from data_bridge.api.sse import event_stream

            return self.response_class(
                event_stream(result, self._serialize_data),
                status_code=status,
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            )
        if issubclass(self.response_class, StreamingResponse):
            return self.response_class(result, status_code=status)
        serialize = self._serialize_item
        if inspect.isasyncgen(result):

            async def lines() -> AsyncIterator[bytes]:
                async for item in result:
                    yield serialize(item)

            return StreamingResponse(lines(), status_code=status, media_type="application/jsonl")
        return StreamingResponse(
            (serialize(item) for item in result),
            status_code=status,
            media_type="application/jsonl",
        )

    def _serialize_data(self, item: Any) -> bytes:
        if self.adapter is not None:
            return bytes(self.adapter.dump_json(self.validate(item), **self.dump_args))
        return _stream_item_json(item)

    def _serialize_item(self, item: Any) -> bytes:
        return self._serialize_data(item) + b"\n"

    def __call__(self, result: Any, sub_response: Response | None) -> Any:
        if _foreign.FOREIGN_RESPONSE is not None:
            result = _foreign.convert_result(result)
        if self.stream and not isinstance(result, Response):
            status = self.status_code
            if sub_response is not None and sub_response._status_set:
                status = sub_response.status_code
            response = self._stream(result, status)
            if sub_response is not None:
                response._merge_sub_response(sub_response)
            return response
        if isinstance(result, Response):
            response = result
        else:
            status = self.status_code
            if sub_response is not None and sub_response._status_set:
                status = sub_response.status_code
            if self.adapter is not None:
                if self.unvalidated is not None and self.unvalidated(result):
                    value = result
                else:
                    value = self.validate(result)
                exact = self.exact(value)
                if exact and self.as_model:
                    # Dataclasses written by the native encoder as pydantic writes them
                    # (csrc/json/encode_model.c), the same bytes as adapter.dump_json:
                    # by the server itself when it writes this route's results so.
                    if self.raw_as_model and sub_response is None and status == self.status_code:
                        return value
                    response = self.response_class.__new__(self.response_class)
                    Response.__init__(response, None, status, None, None)
                    response.body = json_dumps(value, option=_OPT_AS_MODEL)
                elif exact and self.native:
                    # Exactly the declared model(s): the native encoder writes them from
                    # their fields (by alias; pydantic's own serializer for any model it
                    # cannot), the same bytes as pydantic would, several times faster.
                    if sub_response is None and status == self.status_code:
                        return value
                    response = self.response_class(value, status_code=status)
                elif self.json_class:
                    body = self.adapter.dump_json(value, **self.dump_args)
                    response = self.response_class.__new__(self.response_class)
                    Response.__init__(response, None, status, None, None)
                    response.body = body
                else:
                    content = self.adapter.dump_python(value, mode="json", **self.dump_args)
                    response = self.response_class(content, status_code=status)
            elif self.response_class in _NATIVE_JSON_CLASSES:
                # A JSON result with an injected response: made directly (no render or
                # header building in Response.__init__); the C codec encodes it.
                response = Response.__new__(self.response_class)
                response.__dict__.update(
                    status_code=status,
                    body=json_dumps(result),
                    raw_headers=[("content-type", "application/json")],
                )
            else:
                # Without a status of the route's (or the injected response's), the class's
                # own default applies: RedirectResponse's 307.
                if self.explicit_status or status != self.status_code:
                    response = self.response_class(result, status_code=status)
                else:
                    response = self.response_class(result)
        if sub_response is not None:
            response._merge_sub_response(sub_response)
        return response


# Response classes whose rendering the native path does itself: JSON through the C codec,
# and a str as the body of a text response.
_NATIVE_JSON_CLASSES: tuple[type[Response], ...] = (JSONResponse,)
_NATIVE_TEXT_TYPES: dict[Any, str] = {}


def _register_native_classes() -> None:
    from data_bridge.api.responses import (
        HTMLResponse,
        ORJSONResponse,
        PlainTextResponse,
        UJSONResponse,
    )

    global _NATIVE_JSON_CLASSES
    _NATIVE_JSON_CLASSES = (JSONResponse, ORJSONResponse, UJSONResponse)
    _NATIVE_TEXT_TYPES.update({PlainTextResponse: "text/plain", HTMLResponse: "text/html"})


_register_native_classes()


# JSON_OPT_AS_MODEL (csrc/json/json.h): dataclasses written as pydantic's serializer writes
# them.
_OPT_AS_MODEL = 1 << 8


def _stream_item_json(item: Any) -> bytes:
    """An untyped item of a JSON Lines or SSE stream as FastAPI writes it: jsonable_encoder,
    non-finite floats as null, then the standard library's json.dumps with its default
    separators and ASCII escapes ({"n": 1, "s": "\\u00e9"}), per item as FastAPI does."""
    import json

    from data_bridge.api.encoders import jsonable_encoder

    return json.dumps(_finite(jsonable_encoder(item))).encode()


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_finite(value) for value in data]
    return data


def _item_class(model: Any) -> Any:
    """M for a response model M or list[M]."""
    if typing.get_origin(model) is list:
        return typing.get_args(model)[0]
    return model


def _exact_check(model: Any, passes: Callable[[Any], bool]) -> Callable[[Any], bool] | None:
    """For a response model M or list[M] whose instances ``passes`` says validation hands
    back unchanged: a check that a result is exactly M (not a subclass, which validation
    would pass but whose extra fields M's serializer drops), or a list of exactly M."""
    if isinstance(model, type):
        return (lambda value: type(value) is model) if passes(model) else None
    if typing.get_origin(model) is list:
        args = typing.get_args(model)
        if len(args) == 1 and isinstance(args[0], type) and passes(args[0]):
            item, exact = args[0], _core.list_of_exact
            return lambda value: exact(value, item)
    return None


def _never(_value: Any) -> bool:
    return False


def _always(_cls: Any) -> bool:
    return True


def _is_model_class(cls: Any) -> bool:
    try:
        import pydantic
    except ImportError:
        return False
    return isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)


def _is_struct_class(cls: Any) -> bool:
    # msgspec.convert returns a Struct of exactly the type asked as it is (Structs are
    # validated when decoded, not again).
    return is_struct_annotation(cls)


def _passes_unvalidated(cls: Any) -> bool:
    """Whether pydantic's validation returns an instance of exactly cls as it is: models
    and standard-library dataclasses with revalidate_instances left at "never"."""
    import dataclasses

    if _is_model_class(cls):
        return cls.model_config.get("revalidate_instances", "never") == "never"
    if dataclasses.is_dataclass(cls) and "__pydantic_serializer__" not in cls.__dict__:
        config = getattr(cls, "__pydantic_config__", None) or {}
        return config.get("revalidate_instances", "never") == "never"
    return False


def _dataclass_is_plain(cls: Any) -> bool:
    from data_bridge._model_plan import _is_std_dataclass, dataclass_plan

    try:
        return _is_std_dataclass(cls) and dataclass_plan(cls) is not None
    except Exception:  # noqa: BLE001 - a class pydantic cannot plan is left to pydantic
        return False


def _custom_render(cls: type[Response]) -> bool:
    return cls.render is not JSONResponse.render


FORM_LIMIT_DEFAULTS = {"max_files": 1000, "max_fields": 1000, "max_part_size": 1024 * 1024}


def _refuse_limits(max_body_size: Any, form_limits: Any) -> dict[str, int]:
    """Checks ``max_body_size`` (a non-negative int or None) and ``form_limits`` (a dict of
    max_fields, max_files and max_part_size, each a non-negative int) as FastAPI does (a
    pydantic ValidationError for bad form limits); returns the form limits given ({} for
    None)."""
    if max_body_size is not None and (
        isinstance(max_body_size, bool) or not isinstance(max_body_size, int) or max_body_size < 0
    ):
        raise ValueError("max_body_size must be a non-negative integer or None")
    if form_limits is None:
        return {}
    return dict(_form_limits_adapter().validate_python(form_limits))


@functools.cache
def _form_limits_adapter() -> Any:
    import pydantic
    from typing_extensions import TypedDict

    @pydantic.with_config(pydantic.ConfigDict(strict=True, extra="forbid"))
    class FormLimits(TypedDict, total=False):
        max_fields: pydantic.NonNegativeInt
        max_files: pydantic.NonNegativeInt
        max_part_size: pydantic.NonNegativeInt

    return pydantic.TypeAdapter(FormLimits)


def effective_form_limits(route: APIRoute) -> tuple[int, int, int]:
    """(max_files, max_fields, max_part_size) of a route: its form_limits over Starlette's
    defaults."""
    limits = {**FORM_LIMIT_DEFAULTS, **route.form_limits}
    return limits["max_files"], limits["max_fields"], limits["max_part_size"]


def _first_limit(*limits: int | None) -> int | None:
    for limit in limits:
        if limit is not None:
            return limit
    return None


def _check_prefix(prefix: str) -> str:
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValueError(
            "A path prefix must start with '/' and must not end with '/', as the routes "
            f"will start with '/': {prefix!r}"
        )
    return prefix


def _check_dependencies(dependencies: Iterable[Depends]) -> list[Depends]:
    deps = list(dependencies)
    for d in deps:
        if not isinstance(d, Depends) or d.dependency is None:
            raise TypeError(f"dependencies take Depends(callable) items, got {d!r}")
    return deps


def _merge_responses(*layers: dict[Any, Any] | None) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for layer in layers:
        out.update(layer or {})
    return out


class APIRouter:
    """A group of routes registered with FastAPI's decorators."""

    def __init__(
        self,
        *,
        prefix: str = "",
        tags: Sequence[str | Enum] | None = None,
        dependencies: Sequence[Depends] | None = None,
        default_response_class: type[Response] | DefaultPlaceholder | None = None,
        responses: dict[int | str, dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        routes: list[Any] | None = None,
        redirect_slashes: bool = True,
        default: Any = None,
        dependency_overrides_provider: Any = None,
        route_class: type[APIRoute] = APIRoute,
        on_startup: Sequence[Callable[[], Any]] | None = None,
        on_shutdown: Sequence[Callable[[], Any]] | None = None,
        lifespan: Callable[[Any], Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        generate_unique_id_function: Callable[[APIRoute], str] | DefaultPlaceholder = Default(
            generate_unique_id
        ),
        strict_content_type: bool | DefaultPlaceholder = Default(True),
        max_body_size: int | None = None,
        form_limits: Any = None,
    ) -> None:
        self.form_limits = _refuse_limits(max_body_size, form_limits)
        self.max_body_size = max_body_size
        self.strict_content_type = strict_content_type
        if default is not None:
            raise TypeError("APIRouter(default=...) (an ASGI fallback app) is not supported")
        self.prefix = _check_prefix(prefix)
        self.tags: list[str | Enum] = list(tags or [])
        self.dependencies = _check_dependencies(dependencies or ())
        self.default_response_class = (
            default_response_class if default_response_class is not None else Default(JSONResponse)
        )
        self.responses = dict(responses or {})
        self.callbacks = callbacks or []
        self.redirect_slashes = redirect_slashes
        self.dependency_overrides_provider = dependency_overrides_provider
        self.route_class = route_class
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.generate_unique_id_function = (
            generate_unique_id_function
            if generate_unique_id_function is not None
            else Default(generate_unique_id)
        )
        self.on_startup: list[Callable[[], Any]] = list(on_startup or [])
        self.on_shutdown: list[Callable[[], Any]] = list(on_shutdown or [])
        self.lifespan_context = lifespan
        self._lifespans: list[Callable[[Any], Any]] = [lifespan] if lifespan else []
        self.routes: list[APIRoute] = list(routes or [])
        # app.mount(path, app) of anything but StaticFiles: (prefix, app, name), served by
        # the native server under the prefix (an ASGI app through the ASGI driver, a
        # data-bridge App through its own route table).
        self.mounts: list[tuple[str, Any, str | None]] = []

    # Registration ---------------------------------------------------------------------

    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        response_model: Any = Default(None),
        status_code: int | None = None,
        tags: Sequence[str | Enum] | None = None,
        dependencies: Sequence[Depends] | None = None,
        summary: str | None = None,
        description: str | None = None,
        response_description: str = "Successful Response",
        responses: dict[int | str, dict[str, Any]] | None = None,
        deprecated: bool | None = None,
        methods: Iterable[str] | None = None,
        operation_id: str | None = None,
        response_model_include: Any = None,
        response_model_exclude: Any = None,
        response_model_by_alias: bool = True,
        response_model_exclude_unset: bool = False,
        response_model_exclude_defaults: bool = False,
        response_model_exclude_none: bool = False,
        include_in_schema: bool = True,
        response_class: type[Response] | DefaultPlaceholder = Default(JSONResponse),
        name: str | None = None,
        route_class_override: type[APIRoute] | None = None,
        callbacks: list[Any] | None = None,
        openapi_extra: dict[str, Any] | None = None,
        generate_unique_id_function: Callable[[APIRoute], str] | DefaultPlaceholder = Default(
            generate_unique_id
        ),
        threaded: bool = False,
        strict_content_type: bool | DefaultPlaceholder = Default(True),
        max_body_size: int | None = None,
        form_limits: Any = None,
    ) -> APIRoute:
        route_class = route_class_override or self.route_class
        current_response_class = _resolve_default_class(response_class, self.default_response_class)
        route = route_class(
            self.prefix + path,
            endpoint,
            response_model=response_model,
            status_code=status_code,
            tags=self.tags + [t for t in (tags or []) if t not in self.tags],
            dependencies=self.dependencies + list(dependencies or []),
            summary=summary,
            description=description,
            response_description=response_description,
            responses=_merge_responses(self.responses, responses),
            deprecated=deprecated if deprecated is not None else self.deprecated,
            methods=methods,
            operation_id=operation_id,
            response_model_include=response_model_include,
            response_model_exclude=response_model_exclude,
            response_model_by_alias=response_model_by_alias,
            response_model_exclude_unset=response_model_exclude_unset,
            response_model_exclude_defaults=response_model_exclude_defaults,
            response_model_exclude_none=response_model_exclude_none,
            include_in_schema=include_in_schema and self.include_in_schema,
            response_class=current_response_class,
            name=name,
            dependency_overrides_provider=self.dependency_overrides_provider,
            callbacks=(callbacks or []) + self.callbacks or None,
            openapi_extra=openapi_extra,
            generate_unique_id_function=_pick_default(
                generate_unique_id_function, self.generate_unique_id_function
            ),
            threaded=threaded,
            strict_content_type=_pick_default(strict_content_type, self.strict_content_type),
            max_body_size=_first_limit(max_body_size, self.max_body_size),
            form_limits={**self.form_limits, **_refuse_limits(None, form_limits)},
        )
        self.routes.append(route)
        return route

    def add_api_websocket_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        name: str | None = None,
        *,
        dependencies: Sequence[Depends] | None = None,
    ) -> APIWebSocketRoute:
        route = APIWebSocketRoute(
            self.prefix + path,
            endpoint,
            name=name,
            dependencies=self.dependencies + list(dependencies or []),
        )
        self.routes.append(route)
        return route

    def websocket(
        self, path: str, name: str | None = None, *, dependencies: Sequence[Depends] | None = None
    ) -> Callable[[F], F]:
        _check_dependencies(dependencies or ())

        def decorator(func: F) -> F:
            self.add_api_websocket_route(path, func, name=name, dependencies=dependencies)
            return func

        return decorator

    def websocket_route(self, path: str, name: str | None = None) -> Callable[[F], F]:
        return self.websocket(path, name)

    def api_route(
        self, path: str, *, methods: Iterable[str] | None = None, **kw: Any
    ) -> Callable[[F], F]:
        _check_dependencies(kw.get("dependencies") or ())  # a mistake shows at the decorator
        unknown = set(kw) - _ROUTE_ARGS
        _refuse_limits(kw.get("max_body_size"), kw.get("form_limits"))
        if unknown:
            raise TypeError(f"unsupported route argument(s): {', '.join(sorted(unknown))}")

        def decorator(func: F) -> F:
            self.add_api_route(path, func, methods=methods, **kw)
            return func

        return decorator

    def route(self, path: str, methods: Iterable[str] | None = None, **kw: Any) -> Callable[[F], F]:
        """Register the decorated function for ``methods`` on ``path``."""
        return self.api_route(path, methods=methods, **kw)

    def get(self, path: str, **kw: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["GET"], **kw)

    def put(self, path: str, **kw: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["PUT"], **kw)

    def post(self, path: str, **kw: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["POST"], **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["DELETE"], **kw)

    def options(self, path: str, **kw: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["OPTIONS"], **kw)

    def head(self, path: str, **kw: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["HEAD"], **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["PATCH"], **kw)

    def trace(self, path: str, **kw: Any) -> Callable[[F], F]:
        return self.api_route(path, methods=["TRACE"], **kw)

    # Events ---------------------------------------------------------------------------

    def add_event_handler(self, event_type: str, func: Callable[[], Any]) -> None:
        if event_type == "startup":
            self.on_startup.append(func)
        elif event_type == "shutdown":
            self.on_shutdown.append(func)
        else:
            raise ValueError("event must be 'startup' or 'shutdown'")

    def on_event(self, event_type: str) -> Callable[[F], F]:
        """Register a startup or shutdown hook (sync or async). Deprecated, as in
        FastAPI: ``lifespan=`` replaces it."""
        warnings.warn(
            "on_event is deprecated, use lifespan event handlers instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        if event_type not in ("startup", "shutdown"):
            raise ValueError("event must be 'startup' or 'shutdown'")

        def decorator(func: F) -> F:
            self.add_event_handler(event_type, func)
            return func

        return decorator

    # Composition ----------------------------------------------------------------------

    def include_router(
        self,
        router: APIRouter,
        *,
        prefix: str = "",
        tags: Sequence[str | Enum] | None = None,
        dependencies: Sequence[Depends] | None = None,
        default_response_class: type[Response] | DefaultPlaceholder = Default(JSONResponse),
        responses: dict[int | str, dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        generate_unique_id_function: Callable[[APIRoute], str] | DefaultPlaceholder = Default(
            generate_unique_id
        ),
        max_body_size: int | None = None,
        form_limits: Any = None,
    ) -> None:
        """Add every route of ``router`` here, under ``prefix``, with ``tags``,
        ``dependencies``, ``responses`` and the other settings layered as FastAPI does
        (this router's, then the include's, then the route's own)."""
        if router is self:
            raise ValueError("a router cannot include itself")
        include_limits = _refuse_limits(max_body_size, form_limits)
        prefix = _check_prefix(prefix)
        if prefix == "" and not router.prefix and any(r.path == "" for r in router.routes):
            raise ValueError("Prefix and path cannot be both empty (path operation)")
        extra_tags = list(tags or [])
        for route in router.routes:
            route_class = _resolve_default_class(
                route.response_class, router.default_response_class, default_response_class
            )
            route_class = _resolve_default_class(route_class, self.default_response_class)
            new_tags = self.tags + [t for t in extra_tags if t not in self.tags]
            new_tags += [t for t in route.tags if t not in new_tags]
            new = route.copy_with(
                path=self.prefix + prefix + route.path,
                tags=new_tags,
                dependencies=self.dependencies + list(dependencies or []) + route.dependencies,
                responses=_merge_responses(self.responses, responses, route.responses),
                deprecated=route.deprecated or deprecated or self.deprecated,
                include_in_schema=route.include_in_schema
                and include_in_schema
                and self.include_in_schema,
                response_class=route_class,
                callbacks=(route.callbacks or []) + (callbacks or []) + self.callbacks or None,
                generate_unique_id_function=_pick_default(
                    route.generate_unique_id_function,
                    router.generate_unique_id_function,
                    generate_unique_id_function,
                    self.generate_unique_id_function,
                ),
                strict_content_type=_pick_default(
                    route.strict_content_type,
                    router.strict_content_type,
                    self.strict_content_type,
                ),
                max_body_size=_first_limit(route.max_body_size, max_body_size, self.max_body_size),
                form_limits={**self.form_limits, **include_limits, **route.form_limits},
            )
            self.routes.append(new)
        self.on_startup.extend(router.on_startup)
        self.on_shutdown.extend(router.on_shutdown)
        self._lifespans.extend(router._lifespans)

    def mount(self, path: str, app: Any, name: str | None = None) -> None:
        """Serves ``app`` under ``path``, as Starlette's Mount: the mounted app sees the
        whole path with ``root_path`` set to the prefix. StaticFiles is served natively (a
        GET/HEAD route ``path/{path:path}``, not in the OpenAPI document; ``url_path_for(
        name, path=...)`` gives a file's URL); a data-bridge App keeps its native path (its
        own routes, handlers and documents under the prefix); any other ASGI 3 application
        (Starlette, FastAPI, WSGIMiddleware around a WSGI app, ...) is run by the native
        ASGI driver."""
        from data_bridge.api.requests import Request
        from data_bridge.api.staticfiles import StaticFiles

        if not isinstance(app, StaticFiles):
            if not (callable(app) or hasattr(app, "build_server")):  # an ASGI app, or an App
                raise TypeError(f"mount() takes an ASGI application, got {app!r}")
            prefix = self.prefix + path.rstrip("/")
            if not prefix.startswith("/"):
                raise ValueError(f"a mount path must start with '/': {path!r}")
            self.mounts.append((prefix, app, name))
            return
        prefix = self.prefix + path.rstrip("/")
        files = app

        def serve(request: Request, path: str) -> Response:
            # request.scope's root_path as Starlette's Mount sets it (read lazily).
            view = request.__dict__.get("_scope")
            mount_root = request.root_path.rstrip("/") + prefix
            if view is None:
                request.__dict__["_db_mount_root"] = mount_root
            else:
                view._data["app_root_path"] = view._data["root_path"]
                view._data["root_path"] = mount_root
            return files.get_response(path, request.method, request.headers)

        # Resolved here: this module's annotations are strings and Request is local.
        serve.__annotations__ = {"request": Request, "path": str, "return": Response}

        route = _MountRoute(
            prefix + "/{path:path}",
            serve,
            methods=["GET", "HEAD"],
            name=name or "",
            include_in_schema=False,
        )
        route.mount_prefix = prefix
        route.file_cache = files.file_cache
        self.routes.append(route)

    def url_path_for(self, name: str, /, **path_params: Any) -> str:
        for route in self.routes:
            path = route.url_path_for(name, **path_params)
            if path is not None:
                return path
        raise NoMatchFound(name, path_params)


class NoMatchFound(Exception):
    """url_path_for found no route of that name and those parameters."""

    def __init__(self, name: str, path_params: dict[str, Any]) -> None:
        params = ", ".join(sorted(path_params))
        super().__init__(f'No route exists for name "{name}" and params "{params}".')


def _pick_default(*values: Any) -> Any:
    """The first explicitly given value, else the last default placeholder."""
    for value in values:
        if not isinstance(value, DefaultPlaceholder):
            return value
    return values[-1]


def _resolve_default_class(*values: Any) -> Any:
    """Like _pick_default for response classes: an explicit class wins; otherwise the
    placeholder of the innermost default stays (so an outer router may still set one)."""
    for value in values:
        if not isinstance(value, DefaultPlaceholder):
            return value
    for value in values:
        if isinstance(value, DefaultPlaceholder) and value.value is not JSONResponse:
            return value
    return values[-1]


_ROUTE_ARGS = frozenset(
    name
    for name in inspect.signature(APIRouter.add_api_route).parameters
    if name not in ("self", "path", "endpoint", "methods")
)
