"""The OpenAPI 3.1 document of an app: ``get_openapi``, with FastAPI's signature and
FastAPI's document for the same routes.

Each operation has FastAPI's summary (from the route name), description (the docstring
up to a form feed), operationId (``route.unique_id``), parameters (path, query, header,
cookie, each group in dependency order; a required declaration wins over an optional one
of the same name), request body (the only body parameter, or a ``Body_<operation id>``
model of several), responses (the route's status code with the response model or the
response class's media type, ``responses=`` merged in, the 422 ``HTTPValidationError``
when there is something to validate), security requirements from security-scheme
dependencies, callbacks and ``openapi_extra``. Schemas come from pydantic
(``_schemas.get_definitions``) for every field of every route at once.
"""

from __future__ import annotations

import copy
import http.client
import inspect
import warnings
from collections.abc import Sequence
from enum import Enum
from typing import Any

from data_bridge.api.openapi import _fields, _schemas
from data_bridge.api.openapi._fields import ModelField
from data_bridge.api.openapi._schemas import REF_PREFIX, FieldMapping, field_schema

__all__ = ["get_openapi", "get_openapi_path"]

METHODS_WITH_BODY = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}

validation_error_definition = {
    "title": "ValidationError",
    "type": "object",
    "properties": {
        "loc": {
            "title": "Location",
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "msg": {"title": "Message", "type": "string"},
        "type": {"title": "Error Type", "type": "string"},
        "input": {"title": "Input"},
        "ctx": {"title": "Context", "type": "object"},
    },
    "required": ["loc", "msg", "type"],
}

validation_error_response_definition = {
    "title": "HTTPValidationError",
    "type": "object",
    "properties": {
        "detail": {
            "title": "Detail",
            "type": "array",
            "items": {"$ref": REF_PREFIX + "ValidationError"},
        }
    },
}

status_code_ranges: dict[str, str] = {
    "1XX": "Information",
    "2XX": "Success",
    "3XX": "Redirection",
    "4XX": "Client Error",
    "5XX": "Server Error",
    "DEFAULT": "Default Response",
}

_SSE_ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}

_STREAM_ORIGINS = {
    "AsyncIterable",
    "AsyncIterator",
    "AsyncGenerator",
    "Iterable",
    "Iterator",
    "Generator",
}


def deep_dict_update(main: dict[Any, Any], update: dict[Any, Any]) -> None:
    """Merges ``update`` into ``main``: dicts recursively, lists concatenated."""
    for key, value in update.items():
        current = main.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            deep_dict_update(current, value)
        elif key in main and isinstance(current, list) and isinstance(value, list):
            main[key] = current + value
        else:
            main[key] = value


def is_body_allowed_for_status_code(status_code: int | str | None) -> bool:
    if status_code is None:
        return True
    if status_code in {"default", "1XX", "2XX", "3XX", "4XX", "5XX"}:
        return True
    code = int(status_code)
    return not (code < 200 or code in {204, 205, 304})


def _jsonable(value: Any) -> Any:
    """JSON-ready data, None-valued keys left out (FastAPI's jsonable_encoder with
    exclude_none, which its document goes through)."""
    if isinstance(value, dict):
        return {
            _jsonable(k) if not isinstance(k, str) else k: _jsonable(v)
            for k, v in value.items()
            if v is not None
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _jsonable(dump(mode="json", by_alias=True, exclude_none=True))
    try:
        from pydantic_core import to_jsonable_python

        return _jsonable(to_jsonable_python(value))
    except Exception:
        return str(value)


# --- routes ---------------------------------------------------------------------------


class _RouteInfo:
    """What the document needs of one route, computed once per get_openapi call."""

    def __init__(self, route: Any) -> None:
        self.route = route
        path = route.path_format if hasattr(route, "path_format") else route.path
        self.dependant = _fields.route_dependant(path, route.endpoint, route.dependencies)
        self.body_field = _fields.body_field(
            _fields.flat_body_params(self.dependant), route.unique_id
        )
        self.response_class = _response_class(route)
        self.stream_kind: str | None = None
        self.stream_item_field: ModelField | None = None
        model = route.response_model
        generator = inspect.isasyncgenfunction(route.endpoint) or inspect.isgeneratorfunction(
            route.endpoint
        )
        if generator:
            from data_bridge.api.datastructures import DefaultPlaceholder

            default_class = isinstance(route.response_class, DefaultPlaceholder)
            sse = _is_sse_class(self.response_class)
            if sse:
                self.stream_kind = "sse"
            elif default_class:
                self.stream_kind = "jsonl"
            item = _stream_item(model)
            if item is not None:
                if self.stream_kind is not None and not _is_server_sent_event(item):
                    self.stream_item_field = _fields.response_field(
                        "StreamItem_" + route.unique_id, item
                    )
                model = None
        self.response_field = (
            _fields.response_field("Response_" + route.unique_id, model) if model else None
        )
        self.response_fields: dict[Any, ModelField] = {}
        for code, response in (route.responses or {}).items():
            extra_model = response.get("model") if isinstance(response, dict) else None
            if extra_model:
                self.response_fields[code] = _fields.response_field(
                    f"Response_{code}_{route.unique_id}", extra_model
                )
        self.callbacks = [_RouteInfo(cb) for cb in (route.callbacks or []) if _is_api_route(cb)]

    def fields(self) -> list[ModelField]:
        out: list[ModelField] = []
        for cb in self.callbacks:
            if cb.route.include_in_schema:
                out.extend(cb.fields())
        if not self.route.include_in_schema:
            return out
        bodies = [self.body_field] if self.body_field else []
        responses = [self.response_field] if self.response_field else []
        responses += list(self.response_fields.values())
        if self.stream_item_field:
            responses.append(self.stream_item_field)
        return out + bodies + responses + _flat_params(self.dependant)


def _stream_item(annotation: Any) -> Any | None:
    import typing

    origin = typing.get_origin(annotation)
    if origin is None or getattr(origin, "__name__", None) not in _STREAM_ORIGINS:
        return None
    if getattr(origin, "__module__", "") not in ("collections.abc", "typing"):
        return None
    args = typing.get_args(annotation)
    return args[0] if args else Any


def _is_server_sent_event(item: Any) -> bool:
    return isinstance(item, type) and any(c.__name__ == "ServerSentEvent" for c in item.__mro__)


def _is_sse_class(cls: Any) -> bool:
    return isinstance(cls, type) and any(c.__name__ == "EventSourceResponse" for c in cls.__mro__)


def _response_class(route: Any) -> Any:
    cls = route.response_class
    while hasattr(cls, "value") and type(cls).__name__ == "DefaultPlaceholder":
        cls = cls.value
    return cls


def _is_api_route(route: Any) -> bool:
    from data_bridge.api.routing import APIRoute

    return isinstance(route, APIRoute)


def _flat_params(dependant: _fields.Dependant) -> list[ModelField]:
    groups: dict[str, list[ModelField]] = {k: [] for k in ("path", "query", "header", "cookie")}
    seen: set[tuple[Any, ...]] = set()
    cache: dict[int, bool] = {}
    stack = [dependant]
    while stack:
        current = stack.pop()
        key = _fields.cache_key(current, cache)
        if key in seen:
            continue
        seen.add(key)
        for kind, group in groups.items():
            group.extend(current.params_of(kind))
        stack.extend(reversed(current.dependencies))
    return [f for group in groups.values() for f in _fields.flat_params(group)]


# --- operations -----------------------------------------------------------------------


class _DependencyData:
    def __init__(self, dependant: _fields.Dependant) -> None:
        self.params: dict[str, list[ModelField]] = {
            k: [] for k in ("path", "query", "header", "cookie")
        }
        self.security: list[tuple[_fields.Dependant, list[str]]] = []
        seen: set[tuple[Any, ...]] = set()
        cache: dict[int, bool] = {}
        stack: list[tuple[_fields.Dependant, list[str], bool]] = [(dependant, [], True)]
        while stack:
            current, parent_scopes, is_root = stack.pop()
            key = _fields.cache_key(current, cache)
            if key in seen:
                continue
            seen.add(key)
            for kind, group in self.params.items():
                group.extend(current.params_of(kind))
            scopes = list(parent_scopes)
            for scope in current.scopes:
                if scope not in scopes:
                    scopes.append(scope)
            if not is_root and _fields.security_scheme(current.call) is not None:
                self.security.append((current, scopes))
            stack.extend((sub, scopes, False) for sub in reversed(current.dependencies))


def _security(
    security: list[tuple[_fields.Dependant, list[str]]],
) -> tuple[dict[str, Any], list[dict[str, list[str]]]]:
    definitions: dict[str, Any] = {}
    requirements: dict[str, list[str]] = {}
    for dependant, scopes in security:
        scheme = _fields.security_scheme(dependant.call)
        name = scheme.scheme_name
        definitions[name] = _jsonable(scheme.model)
        wanted = requirements.setdefault(name, [])
        for scope in scopes:
            if scope not in wanted:
                wanted.append(scope)
    return definitions, [{name: scopes} for name, scopes in requirements.items()]


def _parameters(
    data: _DependencyData, mapping: FieldMapping, separate: bool
) -> list[dict[str, Any]]:
    out = []
    for kind, group in data.params.items():
        for parent in group:
            if not parent.doc_attr("include_in_schema", True):
                continue
            model = _fields.param_model(parent)
            optional_model = (
                model is not None
                and parent.field_info.annotation is not model
                and not parent.field_info.is_required()
            )
            for param in _fields.flat_params([parent]):
                info = param.field_info
                convert = kind == "header" and param.doc_attr(
                    "convert_underscores", parent.doc_attr("convert_underscores", True)
                )
                alias, name = _fields.param_aliases(param, convert)[0]
                parameter: dict[str, Any] = {
                    "name": name,
                    "in": kind,
                    "required": info.is_required() and not optional_model,
                    "schema": field_schema(param, mapping, separate, alias),
                }
                if info.description:
                    parameter["description"] = info.description
                examples = param.doc_attr("openapi_examples")
                example = param.doc_attr("example")
                if examples:
                    parameter["examples"] = _jsonable(examples)
                elif example is not None and not _is_unset(example):
                    parameter["example"] = _jsonable(example)
                if getattr(info, "deprecated", None):
                    parameter["deprecated"] = True
                out.append(parameter)
    return out


def _is_unset(value: Any) -> bool:
    return type(value).__name__ in ("_Unset", "UnsetType", "_UnsetType")


def _request_body(
    field: ModelField | None, mapping: FieldMapping, separate: bool
) -> dict[str, Any] | None:
    if field is None:
        return None
    schema = field_schema(field, mapping, separate)
    out: dict[str, Any] = {}
    if field.field_info.is_required():
        out["required"] = True
    content: dict[str, Any] = {"schema": schema}
    examples = field.doc_attr("openapi_examples")
    example = field.doc_attr("example")
    if examples:
        content["examples"] = _jsonable(examples)
    elif example is not None and not _is_unset(example):
        content["example"] = _jsonable(example)
    out["content"] = {field.media_type: content}
    return out


def _default_status_code(response_class: Any) -> str | None:
    try:
        signature = inspect.signature(response_class.__init__)
    except (TypeError, ValueError):
        return None
    param = signature.parameters.get("status_code")
    if param is not None and isinstance(param.default, int):
        return str(param.default)
    return None


def _operation_metadata(route: Any, operation_ids: set[str]) -> dict[str, Any]:
    operation: dict[str, Any] = {}
    if route.tags:
        operation["tags"] = list(route.tags)
    operation["summary"] = route.summary or route.name.replace("_", " ").title()
    if route.description:
        operation["description"] = route.description
    operation_id = route.operation_id or route.unique_id
    if operation_id in operation_ids:
        endpoint = getattr(route.endpoint, "__name__", "<unnamed_endpoint>")
        message = f"Duplicate Operation ID {operation_id} for function {endpoint}"
        file_name = getattr(route.endpoint, "__globals__", {}).get("__file__")
        if file_name:
            message += f" at {file_name}"
        warnings.warn(message, stacklevel=1)
    operation_ids.add(operation_id)
    operation["operationId"] = operation_id
    if route.deprecated:
        operation["deprecated"] = route.deprecated
    return operation


def get_openapi_path(
    *,
    route: Any,
    operation_ids: set[str],
    mapping: FieldMapping,
    separate_input_output_schemas: bool = True,
    info: _RouteInfo | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(the path item of ``route``, its security schemes, extra component schemas)."""
    if info is None:
        info = _RouteInfo(route)
    separate = separate_input_output_schemas
    path: dict[str, Any] = {}
    security_schemes: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    if not route.include_in_schema:
        return path, security_schemes, definitions
    response_class = info.response_class
    media_type = getattr(response_class, "media_type", None)
    data = _DependencyData(info.dependant)
    has_params = any(_fields.flat_params(group) for group in data.params.values())
    for method in _methods(route):
        operation = _operation_metadata(route, operation_ids)
        schemes, requirements = _security(data.security)
        if requirements:
            operation.setdefault("security", []).extend(requirements)
        if schemes:
            security_schemes.update(schemes)
        parameters = _parameters(data, mapping, separate)
        if parameters:
            by_key = {(p["in"], p["name"]): p for p in parameters}
            by_key.update({(p["in"], p["name"]): p for p in parameters if p.get("required")})
            operation["parameters"] = list(by_key.values())
        if method in METHODS_WITH_BODY:
            body = _request_body(info.body_field, mapping, separate)
            if body:
                operation["requestBody"] = body
        if info.callbacks:
            callbacks = {}
            for cb in info.callbacks:
                cb_path, _cb_schemes, _cb_defs = get_openapi_path(
                    route=cb.route,
                    operation_ids=operation_ids,
                    mapping=mapping,
                    separate_input_output_schemas=separate,
                    info=cb,
                )
                callbacks[cb.route.name] = {cb.route.path: cb_path}
            operation["callbacks"] = callbacks
        if route.status_code is not None:
            status_code = str(int(route.status_code))
        else:
            status_code = _default_status_code(response_class) or "200"
        responses = operation.setdefault("responses", {})
        responses.setdefault(status_code, {})["description"] = route.response_description
        if is_body_allowed_for_status_code(route.status_code):
            content = responses[status_code].setdefault
            if info.stream_kind == "jsonl":
                item = (
                    field_schema(info.stream_item_field, mapping, separate)
                    if info.stream_item_field
                    else {}
                )
                content("content", {})["application/jsonl"] = {"itemSchema": item}
            elif info.stream_kind == "sse":
                item_schema = copy.deepcopy(_SSE_ITEM_SCHEMA)
                if info.stream_item_field:
                    item_schema["required"] = ["data"]
                    item_schema["properties"]["data"] = {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": field_schema(info.stream_item_field, mapping, separate),
                    }
                content("content", {})["text/event-stream"] = {"itemSchema": item_schema}
            elif media_type:
                schema: dict[str, Any] = {"type": "string"}
                if _is_json_class(response_class):
                    schema = (
                        field_schema(info.response_field, mapping, separate)
                        if info.response_field
                        else {}
                    )
                content("content", {}).setdefault(media_type, {})["schema"] = schema
        for code, extra in (route.responses or {}).items():
            process = copy.deepcopy(extra)
            process.pop("model", None)
            key = str(code).upper()
            if key == "DEFAULT":
                key = "default"
            response = responses.setdefault(key, {})
            field = info.response_fields.get(code)
            if field:
                target = (
                    process.setdefault("content", {})
                    .setdefault(media_type or "application/json", {})
                    .setdefault("schema", {})
                )
                deep_dict_update(target, field_schema(field, mapping, separate))
            status_text = status_code_ranges.get(str(code).upper())
            if status_text is None:
                try:
                    status_text = http.client.responses.get(int(code))
                except ValueError:
                    status_text = None
            description = (
                process.get("description")
                or response.get("description")
                or status_text
                or "Additional Response"
            )
            deep_dict_update(response, process)
            response["description"] = description
        if (has_params or info.body_field) and not any(
            s in responses for s in ("422", "4XX", "default")
        ):
            responses["422"] = {
                "description": "Validation Error",
                "content": {
                    "application/json": {"schema": {"$ref": REF_PREFIX + "HTTPValidationError"}}
                },
            }
            if "ValidationError" not in definitions:
                definitions["ValidationError"] = copy.deepcopy(validation_error_definition)
                definitions["HTTPValidationError"] = copy.deepcopy(
                    validation_error_response_definition
                )
        if route.openapi_extra:
            deep_dict_update(operation, copy.deepcopy(route.openapi_extra))
        path[method.lower()] = operation
    return path, security_schemes, definitions


def _methods(route: Any) -> list[str]:
    order = getattr(route, "_method_order", None)
    methods = list(order) if order else sorted(route.methods)
    return [m for m in methods if m in route.methods]


def _is_json_class(cls: Any) -> bool:
    from data_bridge.api.responses import JSONResponse

    return isinstance(cls, type) and issubclass(cls, JSONResponse)


def get_openapi(
    *,
    title: str,
    version: str,
    openapi_version: str = "3.1.0",
    summary: str | None = None,
    description: str | None = None,
    routes: Sequence[Any],
    webhooks: Sequence[Any] | None = None,
    tags: list[dict[str, Any]] | None = None,
    servers: list[dict[str, Any]] | None = None,
    terms_of_service: str | None = None,
    contact: dict[str, Any] | None = None,
    license_info: dict[str, Any] | None = None,
    separate_input_output_schemas: bool = True,
    external_docs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """FastAPI's ``get_openapi``: the OpenAPI document of ``routes`` (and ``webhooks``)."""
    info: dict[str, Any] = {"title": title, "version": version}
    if summary:
        info["summary"] = summary
    if description:
        info["description"] = description
    if terms_of_service:
        info["termsOfService"] = terms_of_service
    if contact:
        info["contact"] = contact
    if license_info:
        info["license"] = license_info
    output: dict[str, Any] = {"openapi": openapi_version, "info": info}
    if servers:
        output["servers"] = servers
    route_infos = [_RouteInfo(r) for r in routes if _is_api_route(r)]
    webhook_infos = [_RouteInfo(r) for r in (webhooks or []) if _is_api_route(r)]
    all_fields = [f for ri in route_infos + webhook_infos for f in ri.fields()]
    mapping, definitions = _schemas.get_definitions(all_fields, separate_input_output_schemas)
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    webhook_paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for infos, target in ((route_infos, paths), (webhook_infos, webhook_paths)):
        for ri in infos:
            path, schemes, path_definitions = get_openapi_path(
                route=ri.route,
                operation_ids=operation_ids,
                mapping=mapping,
                separate_input_output_schemas=separate_input_output_schemas,
                info=ri,
            )
            if path:
                target.setdefault(ri.route.path_format, {}).update(path)
            if schemes:
                components.setdefault("securitySchemes", {}).update(schemes)
            definitions.update(path_definitions)
    if definitions:
        components["schemas"] = {k: definitions[k] for k in sorted(definitions)}
    if components:
        output["components"] = components
    output["paths"] = paths
    if webhook_paths:
        output["webhooks"] = webhook_paths
    if tags:
        output["tags"] = tags
    if external_docs:
        output["externalDocs"] = external_docs
    return _jsonable(output)  # type: ignore[no-any-return]
