"""Route plans: what each handler parameter is bound to, decided once at startup.

The rules follow FastAPI's: a parameter named in the path template is a path parameter;
one annotated with ``Request`` receives the request; ``dict``, ``list``, ``bytes`` and
pydantic models come from the JSON body; scalars (``str``, ``int``, ``float``, ``bool``,
optionally ``Optional[...]``) come from the query string. The result is a list of tuples
that the native layer (csrc/app/plan.c) turns into a C array.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from data_bridge import _core

# Shared with csrc/app/app_internal.h.
ARG_PATH, ARG_QUERY, ARG_BODY, ARG_REQUEST = 0, 1, 2, 3
CONV_STR, CONV_INT, CONV_FLOAT, CONV_BOOL = 0, 1, 2, 3
CONV_ANY, CONV_DICT, CONV_LIST, CONV_MODEL, CONV_BYTES = 4, 5, 6, 7, 8
FLAG_OPTIONAL, FLAG_KWONLY, FLAG_EMBED = 0x100, 0x200, 0x400

_SCALARS = {str: CONV_STR, int: CONV_INT, float: CONV_FLOAT, bool: CONV_BOOL}
_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::path)?\}")

ParamSpec = tuple[str, int, int, Any, Any, int]


class RouteDefinitionError(TypeError):
    """A handler signature that cannot be served, reported at startup."""


def path_param_names(path: str) -> list[str]:
    return _PARAM_RE.findall(path)


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _is_model(annotation: Any) -> bool:
    try:
        import pydantic
    except ImportError:
        return False
    return isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)


def _model_validator(model: Any) -> Callable[[Any], tuple[bool, Any]]:
    import pydantic

    def validate(value: Any) -> tuple[bool, Any]:
        try:
            return True, model.model_validate(value)
        except pydantic.ValidationError as exc:
            errors = []
            for err in exc.errors(include_url=False):
                entry = {
                    "type": err["type"],
                    "loc": list(err["loc"]),
                    "msg": err["msg"],
                    "input": err.get("input"),
                }
                if "ctx" in err:
                    entry["ctx"] = {k: str(v) for k, v in err["ctx"].items()}
                errors.append(entry)
            return False, errors

    return validate


def _body_conv(annotation: Any) -> tuple[int, Any] | None:
    if annotation is Any:
        return CONV_ANY, None
    if annotation is bytes:
        return CONV_BYTES, None
    origin = typing.get_origin(annotation) or annotation
    if origin is dict:
        return CONV_DICT, None
    if origin is list:
        return CONV_LIST, None
    if _is_model(annotation):
        return CONV_MODEL, _model_validator(annotation)
    return None


def build_plan(path: str, handler: Callable[..., Any]) -> list[ParamSpec]:
    """Compile the handler's signature into parameter specs for the native binder."""
    where = f"{getattr(handler, '__qualname__', handler)!s} for {path!r}"
    try:
        hints = typing.get_type_hints(handler)
    except Exception as exc:  # an unresolvable forward reference
        raise RouteDefinitionError(f"cannot resolve annotations of {where}: {exc}") from exc
    names = path_param_names(path)
    if len(set(names)) != len(names):
        raise RouteDefinitionError(f"duplicate path parameter in {path!r}")
    specs: list[ParamSpec] = []
    seen_path: set[str] = set()
    body_indexes: list[int] = []
    for param in inspect.signature(handler).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise RouteDefinitionError(f"*args/**kwargs are not supported ({where})")
        if param.kind is param.POSITIONAL_ONLY:
            raise RouteDefinitionError(f"positional-only parameters are not supported ({where})")
        annotation = hints.get(param.name, str)
        flags = FLAG_KWONLY if param.kind is param.KEYWORD_ONLY else 0
        default = Ellipsis if param.default is param.empty else param.default
        inner, optional = _unwrap_optional(annotation)
        if optional:
            flags |= FLAG_OPTIONAL
        if isinstance(inner, type) and issubclass(inner, _core.Request):
            specs.append((param.name, ARG_REQUEST, flags, Ellipsis, None, -1))
            continue
        if param.name in names:
            if inner not in _SCALARS:
                raise RouteDefinitionError(
                    f"path parameter {param.name!r} must be str, int, float or bool ({where})"
                )
            seen_path.add(param.name)
            specs.append(
                (
                    param.name,
                    ARG_PATH,
                    _SCALARS[inner] | flags,
                    Ellipsis,
                    None,
                    names.index(param.name),
                )
            )
            continue
        if inner in _SCALARS:
            specs.append((param.name, ARG_QUERY, _SCALARS[inner] | flags, default, None, -1))
            continue
        body = _body_conv(inner)
        if body is None:
            raise RouteDefinitionError(
                f"unsupported annotation {annotation!r} for parameter {param.name!r} ({where})"
            )
        conv, validator = body
        body_indexes.append(len(specs))
        specs.append((param.name, ARG_BODY, conv | flags, default, validator, -1))
    missing = set(names) - seen_path
    if missing:
        raise RouteDefinitionError(
            f"path parameters {sorted(missing)} have no handler parameter ({where})"
        )
    if len(body_indexes) > 1:
        # FastAPI embeds several body parameters as keys of one JSON object.
        for i in body_indexes:
            name, source, conv, default, validator, index = specs[i]
            specs[i] = (name, source, conv | FLAG_EMBED, default, validator, index)
    return specs
