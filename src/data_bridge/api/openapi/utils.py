"""OpenAPI 3.1 document and Swagger UI page for an App, built once when the app starts.

The document follows FastAPI's layout (summaries, operation ids, parameter and body
schemas with constraints, the 422 ``HTTPValidationError`` response), so tools written for
FastAPI's ``/openapi.json`` read ours. Parameter sources and keys come from the same route
plans the native binder uses (``_plan.build_plan``); body schemas come from pydantic when
it is installed.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from data_bridge.api import _plan
from data_bridge.api.params import Param

if TYPE_CHECKING:
    from data_bridge.api.routing import Route

__all__ = ["get_openapi", "openapi_document"]

_REF = "#/components/schemas/{model}"
_SCALAR_SCHEMAS = {
    _plan.CONV_STR: {"type": "string"},
    _plan.CONV_INT: {"type": "integer"},
    _plan.CONV_FLOAT: {"type": "number"},
    _plan.CONV_BOOL: {"type": "boolean"},
}
_IN = {
    _plan.ARG_PATH: "path",
    _plan.ARG_QUERY: "query",
    _plan.ARG_HEADER: "header",
    _plan.ARG_COOKIE: "cookie",
}
_VALIDATION_SCHEMAS = {
    "HTTPValidationError": {
        "properties": {
            "detail": {
                "items": {"$ref": _REF.format(model="ValidationError")},
                "type": "array",
                "title": "Detail",
            }
        },
        "type": "object",
        "title": "HTTPValidationError",
    },
    "ValidationError": {
        "properties": {
            "loc": {
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "type": "array",
                "title": "Location",
            },
            "msg": {"type": "string", "title": "Message"},
            "type": {"type": "string", "title": "Error Type"},
        },
        "type": "object",
        "required": ["loc", "msg", "type"],
        "title": "ValidationError",
    },
}


def _title(name: str) -> str:
    return name.replace("_", " ").title()


def _operation_id(route: Route, method: str) -> str:
    return re.sub(r"\W", "_", f"{route.name}{route.path}") + f"_{method.lower()}"


def _jsonable(value: Any) -> Any:
    """A default value as JSON can show it (None for what JSON has no form of)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return None


def _constraints(checks: Any) -> dict[str, Any]:
    if checks is None:
        return {}
    gt, ge, lt, le, min_length, max_length, pattern = checks
    out: dict[str, Any] = {}
    for key, value in (
        ("exclusiveMinimum", gt),
        ("minimum", ge),
        ("exclusiveMaximum", lt),
        ("maximum", le),
    ):
        if value is not None:
            out[key] = value
    return out | _length_constraints(min_length, max_length, pattern)


def _length_constraints(min_length: Any, max_length: Any, pattern: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if min_length is not None:
        out["minLength"] = min_length
    if max_length is not None:
        out["maxLength"] = max_length
    if pattern is not None:
        out["pattern"] = pattern.pattern
    return out


def _param_schema(spec: _plan.ParamSpec) -> dict[str, Any]:
    _name, _source, convflags, default, _validator, _index, key, checks = spec
    conv, flags = convflags & 0xFF, convflags & ~0xFF
    item = dict(_SCALAR_SCHEMAS.get(conv, {}))
    limits = _constraints(checks)
    if flags & _plan.FLAG_LIST:
        schema: dict[str, Any] = {"type": "array", "items": item}
        if "minLength" in limits:
            schema["minItems"] = limits.pop("minLength")
        if "maxLength" in limits:
            schema["maxItems"] = limits.pop("maxLength")
    else:
        schema = item | limits
    if flags & _plan.FLAG_OPTIONAL:
        schema = {"anyOf": [schema, {"type": "null"}]}
    schema["title"] = _title(key)
    if default is not Ellipsis:
        schema["default"] = _jsonable(default)
    return schema


def _body_schema(annotation: Any, components: dict[str, Any]) -> dict[str, Any]:
    """JSON schema of one body value; pydantic model definitions go to components."""
    inner, optional = _plan._unwrap_optional(annotation)
    if inner is bytes:
        schema: dict[str, Any] = {"type": "string", "format": "binary"}
    elif inner is Any:
        schema = {}
    else:
        try:
            import pydantic
        except ImportError:
            origin = typing.get_origin(inner) or inner
            return {"type": "object"} if origin is dict else {"type": "array"}
        try:
            schema = pydantic.TypeAdapter(inner).json_schema(ref_template=_REF)
        except pydantic.PydanticUserError:
            schema = {}
        components.update(schema.pop("$defs", {}))
        if schema.get("title") and "$ref" not in schema and schema.get("type") == "object":
            if isinstance(inner, type) and issubclass(inner, pydantic.BaseModel):
                components[inner.__name__] = schema
                schema = {"$ref": _REF.format(model=inner.__name__)}
    if optional:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def _operation(route: Route, method: str, components: dict[str, Any]) -> dict[str, Any]:
    call = route.callable()  # the flattened signature when the route has dependencies
    specs = _plan.build_plan(route.path, call)
    hints = typing.get_type_hints(call, include_extras=True)
    signature = inspect.signature(call)
    op: dict[str, Any] = {}
    if route.tags:
        op["tags"] = list(route.tags)
    op["summary"] = route.summary or _title(route.name)
    doc = route.description or inspect.getdoc(route.endpoint)
    if doc:
        op["description"] = doc
    op["operationId"] = _operation_id(route, method)
    if route.deprecated:
        op["deprecated"] = True
    parameters = []
    bodies = []
    form_fields: dict[str, dict[str, Any]] = {}
    form_required: list[str] = []
    for spec in specs:
        name, source, convflags, default = spec[0], spec[1], spec[2], spec[3]
        key = spec[6]
        annotation, marker, _ = _plan._marker_of(
            hints.get(name, str), signature.parameters[name].default
        )
        if source in _IN:
            param: dict[str, Any] = {
                "name": key,
                "in": _IN[source],
                "required": source == _plan.ARG_PATH or default is Ellipsis,
                "schema": _param_schema(spec),
            }
            if isinstance(marker, Param):
                if marker.description:
                    param["description"] = marker.description
                if marker.deprecated:
                    param["deprecated"] = True
                if not marker.include_in_schema:
                    continue
            parameters.append(param)
        elif source == _plan.ARG_FORM:
            form_fields[key] = _param_schema(spec)
            if default is Ellipsis:
                form_required.append(key)
        elif source == _plan.ARG_BODY:
            schema = _body_schema(annotation, components)
            if isinstance(marker, Param):
                schema = schema | _length_constraints(marker.min_length, marker.max_length, None)
                for key_, value in (
                    ("exclusiveMinimum", marker.gt),
                    ("minimum", marker.ge),
                    ("exclusiveMaximum", marker.lt),
                    ("maximum", marker.le),
                    ("pattern", marker.pattern),
                ):
                    if value is not None:
                        schema[key_] = value
            bodies.append((key, schema, default, convflags & _plan.FLAG_EMBED))
    if parameters:
        op["parameters"] = parameters
    if form_fields:
        body_name = f"Body_{_operation_id(route, method)}"
        components[body_name] = {
            "properties": form_fields,
            "type": "object",
            "required": form_required,
            "title": body_name,
        }
        op["requestBody"] = {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"$ref": _REF.format(model=body_name)}
                }
            },
            "required": bool(form_required),
        }
    if bodies:
        if len(bodies) == 1 and not bodies[0][3]:
            key, schema, default, _ = bodies[0]
            body_schema = schema
            required = default is Ellipsis
        else:
            body_name = f"Body_{_operation_id(route, method)}"
            components[body_name] = {
                "properties": {
                    key: ({"title": _title(key)} | schema) for key, schema, _, _ in bodies
                },
                "type": "object",
                "required": [key for key, _, default, _ in bodies if default is Ellipsis],
                "title": body_name,
            }
            body_schema = {"$ref": _REF.format(model=body_name)}
            required = any(default is Ellipsis for _, _, default, _ in bodies)
        op["requestBody"] = {
            "content": {"application/json": {"schema": body_schema}},
            "required": required,
        }
    result_schema: dict[str, Any] = {}
    if route.response_model is not None:
        result_schema = _body_schema(route.response_model, components)
    op["responses"] = {
        str(route.effective_status_code): {
            "description": "Successful Response",
            "content": {"application/json": {"schema": result_schema}},
        }
    }
    if parameters or bodies or form_fields:
        op["responses"]["422"] = {
            "description": "Validation Error",
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model="HTTPValidationError")}}
            },
        }
    return op


def openapi_document(
    title: str,
    version: str,
    routes: list[Route],
    description: str | None = None,
    skip: Callable[[Route], bool] = lambda route: False,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the given routes."""
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {}
    any_validation = False
    for route in routes:
        if skip(route) or not route.include_in_schema:
            continue
        path = re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*):path\}", r"{\1}", route.path)
        for method in route.methods:
            if method == "HEAD" and "GET" in route.methods:
                continue
            op = _operation(route, method, components)
            any_validation |= "422" in op["responses"]
            paths.setdefault(path, {})[method.lower()] = op
    doc: dict[str, Any] = {"openapi": "3.1.0", "info": info, "paths": paths}
    if any_validation:
        components.update(_VALIDATION_SCHEMAS)
    if components:
        doc["components"] = {"schemas": dict(sorted(components.items()))}
    return doc


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
    """FastAPI's ``get_openapi``: the OpenAPI document of ``routes``."""
    doc = openapi_document(title, version, list(routes), description)
    info = doc["info"]
    if summary:
        info["summary"] = summary
    if terms_of_service:
        info["termsOfService"] = terms_of_service
    if contact:
        info["contact"] = contact
    if license_info:
        info["license"] = license_info
    if servers:
        doc["servers"] = servers
    if tags:
        doc["tags"] = tags
    if external_docs:
        doc["externalDocs"] = external_docs
    return doc
