"""Route plans: what each handler parameter is bound to, decided once at startup.

The rules follow FastAPI's: a parameter named in the path template is a path parameter;
one annotated with ``Request`` receives the request; ``dict``, ``list``, ``bytes`` and
pydantic models come from the JSON body; scalars (``str``, ``int``, ``float``, ``bool``,
optionally ``Optional[...]``) come from the query string. The markers of params.py
(``Query``, ``Path``, ``Header``, ``Cookie``, ``Body``, as defaults or inside ``Annotated``)
choose the source explicitly and add an alias and constraints; other body types (scalars,
``list[Model]``, ...) and constrained bodies are validated by a pydantic ``TypeAdapter``.
The result is a list of tuples that the native layer (csrc/app/plan.c) turns into a C array.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import inspect
import ipaddress
import pathlib
import re
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any

from data_bridge import _core
from data_bridge.api._foreign import native_default, native_hints
from data_bridge.api._msgspec import StructAdapter, is_struct_annotation, struct_errors
from data_bridge.api.params import Param

# Shared with csrc/app/app_internal.h.
ARG_PATH, ARG_QUERY, ARG_BODY, ARG_REQUEST, ARG_HEADER, ARG_COOKIE, ARG_FORM = range(7)
CONV_STR, CONV_INT, CONV_FLOAT, CONV_BOOL = 0, 1, 2, 3
CONV_ANY, CONV_DICT, CONV_LIST, CONV_MODEL, CONV_BYTES = 4, 5, 6, 7, 8
FLAG_OPTIONAL, FLAG_KWONLY, FLAG_EMBED, FLAG_LIST = 0x100, 0x200, 0x400, 0x800

_SCALARS = {str: CONV_STR, int: CONV_INT, float: CONV_FLOAT, bool: CONV_BOOL}
_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::path)?\}")

# (name, source, conv | flags, default, validator, path_index, key, checks): see plan.c.
ParamSpec = tuple[str, int, int, Any, Any, int, str, Any]


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


def _ctx_value(value: Any) -> Any:
    """A ctx value as FastAPI's jsonable_encoder leaves it: numbers and strings as they
    are, an exception (a validator's ValueError) as {} (its attributes), others as text."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, BaseException):
        return {}
    return str(value)


def _validation_errors(exc: Any) -> list[dict[str, Any]]:
    """A pydantic ValidationError's entries as FastAPI's 422 shows them."""
    errors = []
    for err in exc.errors(include_url=False):
        given = err.get("input")
        if isinstance(given, (bytes, bytearray)):
            # A body that was not declared as JSON: shown as text, as FastAPI's
            # jsonable_encoder shows bytes.
            given = bytes(given).decode("utf-8", "replace")
        entry = {
            "type": err["type"],
            "loc": list(err["loc"]),
            "msg": err["msg"],
            "input": given,
        }
        if "ctx" in err:
            entry["ctx"] = {k: _ctx_value(v) for k, v in err["ctx"].items()}
        errors.append(entry)
    return errors


def _model_validator(
    model: Any,
    validate_fn: Callable[[Any], Any] | None = None,
    validate_json_fn: Callable[[Any], Any] | None = None,
) -> Callable[[Any], tuple[bool, Any]]:
    """The binder's validator: (True, value) or (False, errors). With validate_json_fn it
    also gets a ``json`` form that validates the raw body bytes in one pass (the binder
    uses it when the model is the only body parameter); that form returns None for bytes
    that are not valid JSON, which the binder then reports as FastAPI does."""
    import pydantic

    # FastAPI validates with from_attributes=True: an object with the fields' attributes
    # is accepted, and a value that is neither gives "model_attributes_type".
    check = validate_fn or functools.partial(model.model_validate, from_attributes=True)

    def validate(value: Any) -> tuple[bool, Any]:
        try:
            return True, check(value)
        except pydantic.ValidationError as exc:
            return False, _validation_errors(exc)

    if validate_json_fn is not None:

        def validate_json(raw: Any) -> tuple[bool, Any] | None:
            try:
                return True, validate_json_fn(raw)
            except pydantic.ValidationError as exc:
                # Invalid JSON, or an error about the document as a whole (whose input
                # would be the raw bytes): the binder's general path reports those exactly
                # as FastAPI does, from the decoded value.
                if any(
                    e["type"] == "json_invalid" or isinstance(e.get("input"), memoryview)
                    for e in exc.errors(include_url=False)
                ):
                    return None
                return False, _validation_errors(exc)

        validate.json = validate_json  # type: ignore[attr-defined]
    return validate


def _struct_validator(annotation: Any) -> Callable[[Any], tuple[bool, Any]]:
    """The binder's validator for msgspec Structs (_msgspec.py): the raw body decoded and
    validated by msgspec in one pass (None for invalid JSON, which the binder reports as
    FastAPI does), a decoded value converted."""
    import msgspec

    adapter = StructAdapter(annotation)

    def validate(value: Any) -> tuple[bool, Any]:
        try:
            return True, adapter.validate_python(value)
        except msgspec.ValidationError as exc:
            return False, struct_errors(exc, (), value)

    def validate_json(raw: Any) -> tuple[bool, Any] | None:
        try:
            return True, adapter.validate_json(raw)
        except msgspec.ValidationError as exc:
            # Decoded again, on this error path only, for the input the error reports.
            # msgspec validates while it parses, so the rest of the body may still be
            # invalid JSON: then that is the error, as FastAPI reports it.
            try:
                doc = msgspec.json.decode(raw)
            except msgspec.DecodeError:
                return None
            return False, struct_errors(exc, (), doc)
        except msgspec.DecodeError:
            return None

    validate.json = validate_json  # type: ignore[attr-defined]
    return validate


def _body_conv(annotation: Any) -> tuple[int, Any] | None:
    if annotation is Any:
        return CONV_ANY, None
    if annotation is bytes:
        return CONV_BYTES, None
    origin = typing.get_origin(annotation) or annotation
    # Bare (or Any-typed) containers are passed as decoded; typed ones (list[int],
    # list[Model], dict[str, int]) are validated element by element by a TypeAdapter.
    if origin is dict and all(a is Any for a in typing.get_args(annotation)[1:]):
        return CONV_DICT, None
    if origin is list and all(a is Any for a in typing.get_args(annotation)):
        return CONV_LIST, None
    if is_struct_annotation(annotation):
        return CONV_MODEL, _struct_validator(annotation)
    if _is_model(annotation):
        # The raw bytes go to a native decoder when the model's plan allows (the same
        # results and errors as model_validate_json, which it falls back to).
        from data_bridge._model_decode import decoder_for

        decode = decoder_for(annotation) or annotation.model_validate_json
        return CONV_MODEL, _model_validator(annotation, None, decode)
    return None


def _marker_of(annotation: Any, default: Any) -> tuple[Any, Param | None, Any]:
    """Splits ``Annotated[T, Query(...)]`` and ``= Query(...)`` into (T, marker, default)."""
    marker: Param | None = None
    if typing.get_origin(annotation) is typing.Annotated:
        args = typing.get_args(annotation)
        annotation = args[0]
        for meta in args[1:]:
            if isinstance(meta, Param):
                marker = meta
    if isinstance(default, Param):
        if marker is not None:
            raise RouteDefinitionError("a parameter takes one marker (Annotated or default)")
        marker = default
        default = marker.default
    elif marker is not None and marker.default is not ...:
        raise RouteDefinitionError(
            "inside Annotated, give the default as the parameter's default, not the marker's"
        )
    return annotation, marker, default


def is_sequence_annotation(annotation: Any) -> bool:
    """Whether a form/query/header field of this type takes every occurrence of its name:
    a list, set, tuple or frozenset, also inside Annotated or Optional/Union."""
    if annotation in (list, set, tuple, frozenset):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return is_sequence_annotation(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(
            is_sequence_annotation(a) for a in typing.get_args(annotation) if a is not type(None)
        )
    return origin in (list, set, tuple, frozenset)


def _list_item(annotation: Any) -> Any | None:
    """T for ``list[T]`` (``List[T]``, ``set[T]``, ``tuple[T, ...]``) with a scalar or
    text-validated T; None otherwise."""
    if annotation in (list, set, frozenset, tuple):
        return str  # a bare list: its items are the strings sent, as FastAPI reads them
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, set, frozenset, tuple) and not args:
        return str
    if origin in (list, set, frozenset) and len(args) == 1:
        item = args[0]
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = args[0]
    else:
        return None
    return item if item in _SCALARS or _is_text_type(item) else None


# Types pydantic reads from one text value (a dataclass, TypedDict or model is a body).
_TEXT_TYPES: tuple[type, ...] = (
    enum.Enum,
    uuid.UUID,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    decimal.Decimal,
    pathlib.PurePath,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
    str,
    int,
    float,
)


def _is_text_type(annotation: Any) -> bool:
    """Whether a value of this type is read from one text value by pydantic (Enum, UUID,
    datetime, date, time, timedelta, Decimal, Literal, Path, ...), not a container or a
    model."""
    if annotation in _SCALARS or annotation is Any:
        return False
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return True
    if origin is typing.Annotated:
        return _is_text_type(typing.get_args(annotation)[0]) or (
            typing.get_args(annotation)[0] in _SCALARS
        )
    if origin is not None or not isinstance(annotation, type):
        return False
    if issubclass(annotation, _TEXT_TYPES):
        return True
    # FastAPI's rule (field_annotation_is_scalar): any class but a model, a mapping, a
    # sequence, a dataclass or an upload is read from one value (pydantic's HttpUrl,
    # EmailStr, a custom type with a validator, ...).
    return not _is_complex_class(annotation)


def _is_complex_class(cls: type) -> bool:
    import collections.abc
    import dataclasses

    if dataclasses.is_dataclass(cls) or issubclass(
        cls, (collections.abc.Mapping, list, tuple, set, frozenset, bytearray)
    ):
        return True
    if getattr(cls, "__pydantic_core_schema__", None) is not None and hasattr(cls, "model_fields"):
        return True  # a pydantic model
    if is_struct_annotation(cls):
        return True  # a msgspec Struct: a body
    from data_bridge.api.datastructures import UploadFile

    return issubclass(cls, UploadFile)


def _annotated_extras(annotation: Any) -> tuple[Any, ...]:
    """The metadata of ``Annotated[T, ...]`` other than parameter markers (pydantic's
    AfterValidator, Field constraints, ...), which a value must also pass."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return ()
    return tuple(m for m in typing.get_args(annotation)[1:] if not isinstance(m, Param))


def _text_conv(
    annotation: Any, marker: Param | None, where: str, extras: tuple[Any, ...] = ()
) -> tuple[int, Callable[[Any], tuple[bool, Any]] | None]:
    """(conv, validator) for a value read from text: the binder's own conversion for
    str/int/float/bool, else str and a pydantic validator of the type (with the marker's
    constraints and the Annotated metadata, e.g. an AfterValidator) that the binder calls
    on the text."""
    if extras and (annotation in _SCALARS or _is_text_type(annotation)):
        validator = _adapter_validator(typing.Annotated[(annotation, *extras)], marker)
        if validator is not None:
            return CONV_STR, validator
    if annotation in _SCALARS:
        return _SCALARS[annotation], None
    if _is_text_type(annotation):
        validator = _adapter_validator(annotation, marker)
        if validator is not None:
            return CONV_STR, validator
    raise RouteDefinitionError(
        f"unsupported parameter type {annotation!r}: str, int, float, bool, a type pydantic "
        f"reads from text (Enum, UUID, datetime, Decimal, Literal, ...) or a list of those "
        f"({where})"
    )


def _checks(marker: Param | None, conv: int, is_list: bool, where: str) -> Any:
    """The constraints tuple for the native binder, or None."""
    if marker is None:
        return None
    numeric = marker.has_numeric_bounds()
    lengths = marker.has_length_bounds()
    if not (numeric or lengths or marker.pattern is not None):
        return None
    if numeric and conv not in (CONV_INT, CONV_FLOAT):
        raise RouteDefinitionError(f"gt/ge/lt/le need an int or float parameter ({where})")
    if numeric and is_list:
        raise RouteDefinitionError(f"gt/ge/lt/le do not apply to a list ({where})")
    if lengths and not (is_list or conv == CONV_STR):
        raise RouteDefinitionError(f"min_length/max_length need a str or list ({where})")
    pattern = None
    if marker.pattern is not None:
        if conv != CONV_STR or is_list:
            raise RouteDefinitionError(f"pattern needs a str parameter ({where})")
        try:
            pattern = re.compile(marker.pattern)
        except re.error as exc:
            raise RouteDefinitionError(f"bad pattern {marker.pattern!r} ({where}): {exc}") from exc
    return (
        marker.gt,
        marker.ge,
        marker.lt,
        marker.le,
        marker.min_length,
        marker.max_length,
        pattern,
    )


def _adapter_validator(annotation: Any, marker: Param | None) -> Callable[[Any], Any] | None:
    """A pydantic TypeAdapter validator for other body types (scalars, list[Model], ...),
    carrying the marker's constraints; None when pydantic is not installed."""
    try:
        import pydantic
    except ImportError:
        return None
    target = annotation
    if marker is not None and (
        marker.has_numeric_bounds() or marker.has_length_bounds() or marker.pattern
    ):
        field = pydantic.Field(
            gt=marker.gt,
            ge=marker.ge,
            lt=marker.lt,
            le=marker.le,
            min_length=marker.min_length,
            max_length=marker.max_length,
            pattern=marker.pattern,
        )
        target = typing.Annotated[annotation, field]
    try:
        adapter = pydantic.TypeAdapter(target)
    except pydantic.PydanticSchemaGenerationError:
        return None
    from data_bridge._model_decode import adapter_decoder_for

    return _model_validator(
        adapter,
        functools.partial(adapter.validate_python, from_attributes=True),
        adapter_decoder_for(adapter) or adapter.validate_json,
    )


def build_plan(path: str, handler: Callable[..., Any]) -> list[ParamSpec]:
    """Compile the handler's signature into parameter specs for the native binder."""
    where = f"{getattr(handler, '__qualname__', handler)!s} for {path!r}"
    try:
        hints = typing.get_type_hints(handler, include_extras=True)
    except Exception as exc:  # an unresolvable forward reference
        raise RouteDefinitionError(f"cannot resolve annotations of {where}: {exc}") from exc
    hints = native_hints(hints)
    names = path_param_names(path)
    if len(set(names)) != len(names):
        raise RouteDefinitionError(f"duplicate path parameter in {path!r}")
    specs: list[ParamSpec] = []
    seen_path: set[str] = set()
    body_indexes: list[int] = []
    explicit_embed: set[int] = set()
    for param in inspect.signature(handler).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise RouteDefinitionError(f"*args/**kwargs are not supported ({where})")
        if param.kind is param.POSITIONAL_ONLY:
            raise RouteDefinitionError(f"positional-only parameters are not supported ({where})")
        pwhere = f"parameter {param.name!r} of {where}"
        raw_default = Ellipsis if param.default is param.empty else native_default(param.default)
        raw_annotation = hints.get(param.name, str)
        annotation, marker, default = _marker_of(raw_annotation, raw_default)
        extras = _annotated_extras(raw_annotation)
        flags = FLAG_KWONLY if param.kind is param.KEYWORD_ONLY else 0
        inner, optional = _unwrap_optional(annotation)
        if optional:
            flags |= FLAG_OPTIONAL
        key = param.name
        if marker is not None and marker.alias is not None:
            key = marker.alias
        if isinstance(inner, type) and issubclass(inner, _core.Request):
            if marker is not None:
                raise RouteDefinitionError(f"a Request parameter takes no marker ({pwhere})")
            specs.append((param.name, ARG_REQUEST, flags, Ellipsis, None, -1, key, None))
            continue
        source = marker.source if marker is not None else ""
        if source == "path" or (not source and param.name in names):
            if param.name not in names:
                raise RouteDefinitionError(f"Path() names no parameter of the path ({pwhere})")
            conv, text_validator = _text_conv(inner, marker, pwhere, extras)
            seen_path.add(param.name)
            specs.append(
                (
                    param.name,
                    ARG_PATH,
                    conv | flags,
                    Ellipsis,
                    text_validator,
                    names.index(param.name),
                    param.name,
                    None if text_validator else _checks(marker, conv, False, pwhere),
                )
            )
            continue
        if source in ("query", "header", "cookie", "form") or (
            not source and (inner in _SCALARS or _is_text_type(inner))
        ):
            text_validator = None
            item = _list_item(inner)
            if item is not None and source in ("query", "header", "form"):
                conv, text_validator = _text_conv(item, marker, pwhere)
                is_list = True
                flags |= FLAG_LIST
            else:
                conv, text_validator = _text_conv(inner, marker, pwhere, extras)
                is_list = False
            arg_source = {
                "query": ARG_QUERY,
                "header": ARG_HEADER,
                "cookie": ARG_COOKIE,
                "form": ARG_FORM,
            }.get(source, ARG_QUERY)
            if arg_source == ARG_HEADER and marker is not None and marker.alias is None:
                if getattr(marker, "convert_underscores", True):
                    key = param.name.replace("_", "-")
            checks = _checks(marker, conv, is_list, pwhere)
            if text_validator is not None and not is_list:
                checks = None  # the validator carries the marker's constraints
            specs.append(
                (
                    param.name,
                    arg_source,
                    conv | flags,
                    default,
                    text_validator,
                    -1,
                    key,
                    checks,
                )
            )
            continue
        body = _body_conv(inner)
        if marker is not None and (
            marker.has_numeric_bounds() or marker.has_length_bounds() or marker.pattern
        ):
            body = None  # constraints go through a pydantic validator
        if body is None:
            validator = _adapter_validator(annotation if optional else inner, marker)
            if validator is None:
                raise RouteDefinitionError(
                    f"unsupported annotation {annotation!r} for parameter {param.name!r} ({where})"
                )
            body = (CONV_MODEL, validator)
            if optional:
                flags &= ~FLAG_OPTIONAL  # the validator itself accepts None
        conv, validator = body
        if marker is not None and getattr(marker, "embed", False):
            flags |= FLAG_EMBED
            explicit_embed.add(len(specs))
        body_indexes.append(len(specs))
        specs.append((param.name, ARG_BODY, conv | flags, default, validator, -1, key, None))
    sources = {spec[1] for spec in specs}
    if ARG_FORM in sources and ARG_BODY in sources:
        raise RouteDefinitionError(f"Form() and JSON body parameters cannot be mixed ({where})")
    missing = set(names) - seen_path
    if missing:
        raise RouteDefinitionError(
            f"path parameters {sorted(missing)} have no handler parameter ({where})"
        )
    if len(body_indexes) > 1:
        # FastAPI embeds several body parameters as keys of one JSON object.
        for i in body_indexes:
            name, source_, conv, default, validator, index, key, checks = specs[i]
            specs[i] = (name, source_, conv | FLAG_EMBED, default, validator, index, key, checks)
    return specs
