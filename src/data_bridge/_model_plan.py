"""Per-class encoding plans for pydantic models (used by the C JSON encoder).

The encoder (csrc/json/encode_model.c) writes a "plain" pydantic v2 model straight from
its instance ``__dict__`` instead of calling the model's pydantic-core serializer, which
costs a few microseconds per call. ``plan(cls)`` decides, once per class, whether that
is safe, and if so describes the fields; the C side caches the answer keyed by the class.

A class is plain only when its serializer would write exactly ``{"field": value, ...}``
with the field names as keys, in definition order, and with values whose JSON form is
the one the encoder writes for the core types. Everything that can change that is
refused: aliases, excluded fields, computed fields, field or model serializers,
``extra="allow"``, root models, serialization-related configuration, serializer
functions in ``Annotated`` metadata, and every annotation outside a small set (str, int,
float, bool, None, Optional of those, list and dict[str, ...] of those, other models).
The decision is taken from the public model API (fields, config, decorators) and then
checked against the core schema the serializer was built from, so that a mechanism this
module does not know about makes the class not plain rather than encoded wrongly.

The answer is a tuple with one ``(key, name, spec)`` per field: ``key`` the bytes the
encoder writes before the value (``{"name":`` for the first field, ``,"name":`` for the
others), ``name`` the field name (the ``__dict__`` key), and ``spec`` the allowed values:
``(kind, nullable, arg)`` with kind one of "str", "int", "float", "bool", "none" (arg
None), "list" or "dict" (arg the item spec) or "model" (arg the model class). None means
not plain (the encoder calls the serializer's ``to_json``); NotImplemented means not
plain yet (the class is not fully defined, so the answer must not be cached).
"""

from __future__ import annotations

import types
import typing
from typing import Any

from data_bridge._core import dumps

Spec = tuple[str, bool, Any]

_SCALARS: dict[Any, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    type(None): "none",
    None: "none",
}

# Configuration keys that only affect validation, JSON schema or the class itself, never
# what the serializer writes for the annotations accepted here. A key outside this set
# (or ``_DEFAULT_ONLY`` with a value other than its default) makes the class not plain.
_CONFIG_HARMLESS = frozenset(
    {
        "title",
        "frozen",
        "str_to_lower",
        "str_to_upper",
        "str_strip_whitespace",
        "str_min_length",
        "str_max_length",
        "populate_by_name",
        "validate_by_alias",
        "validate_by_name",
        "validate_assignment",
        "validate_default",
        "validate_return",
        "revalidate_instances",
        "arbitrary_types_allowed",
        "from_attributes",
        "loc_by_alias",
        "allow_inf_nan",
        "strict",
        "hide_input_in_errors",
        "protected_namespaces",
        "defer_build",
        "json_schema_extra",
        "json_schema_mode_override",
        "json_schema_serialization_defaults_required",
        "model_title_generator",
        "field_title_generator",
        "use_attribute_docstrings",
        "regex_engine",
        "cache_strings",
        "validation_error_cause",
        "coerce_numbers_to_str",
        "use_enum_values",
        "val_json_bytes",
        "val_temporal_unit",
        "url_preserve_empty_path",
        # Only matters for fields with aliases, which are refused anyway.
        "serialize_by_alias",
    }
)
_DEFAULT_ONLY: dict[str, Any] = {
    "extra": (None, "ignore", "forbid"),
    "ser_json_timedelta": (None, "iso8601"),
    "ser_json_temporal": (None, "iso8601"),
    "ser_json_bytes": (None, "utf8"),
    "ser_json_inf_nan": (None, "null"),
    "polymorphic_serialization": (None, False),
    "json_encoders": (None,),
    "alias_generator": (None,),
    "ignored_types": (None, ()),
    "plugin_settings": (None,),
    "schema_generator": (None,),
}

# Annotated metadata that constrains validation only (annotated_types' Gt, MaxLen, ...,
# pydantic's Strict, its general metadata for pattern=..., and validator functions).
_METADATA_MODULES = ("annotated_types",)
_METADATA_NAMES = frozenset(
    {
        "Strict",
        "_PydanticGeneralMetadata",
        "AfterValidator",
        "BeforeValidator",
        "WrapValidator",
    }
)

# Field attributes that change what is written (exclude_if is new in pydantic 2.12).
_FIELD_REFUSED = ("alias", "serialization_alias", "exclude_if")

# Field schema keys (core schema) that change what is written.
_SCHEMA_FIELD_REFUSED = ("serialization_alias", "serialization_exclude", "serialization_exclude_if")

# Type nesting accepted in one annotation (list[list[...]]); deeper is not plain.
_MAX_SPEC_DEPTH = 16


def plan(cls: type) -> tuple[tuple[bytes, str, Spec], ...] | dict[str, Any] | None | Any:
    """The encoding plan of the model class ``cls``, None, or NotImplemented (see the
    module docstring). For a standard-library dataclass (written as pydantic would only
    for a response model: see ``dataclass_plan``) the plan is a dict of its fields and the
    serializer that writes an instance that does not fit them."""
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover - only called for pydantic models
        return None
    if _is_std_dataclass(cls):
        try:
            return dataclass_plan(cls)
        except Exception:  # noqa: BLE001 - as for models below
            return None
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        return None
    if not getattr(cls, "__pydantic_complete__", False):
        return NotImplemented
    try:
        return _plan(cls, BaseModel)
    except Exception:  # noqa: BLE001 - an unexpected class shape is simply not plain
        return None


def _plan(cls: Any, base_model: type) -> tuple[tuple[bytes, str, Spec], ...] | None:
    if cls.__pydantic_root_model__ or cls.model_computed_fields:
        return None
    decorators = cls.__pydantic_decorators__
    if decorators.field_serializers or decorators.model_serializers:
        return None
    if not _config_is_plain(cls.model_config):
        return None
    fields = []
    for i, (name, field) in enumerate(cls.model_fields.items()):
        if any(getattr(field, attr, None) is not None for attr in _FIELD_REFUSED):
            return None
        if field.exclude:
            return None
        if not all(_metadata_is_plain(m) for m in field.metadata):
            return None
        spec = _spec(field.annotation, base_model, 0)
        if spec is None:
            return None
        key = (b"{" if i == 0 else b",") + dumps(name) + b":"
        fields.append((key, name, spec))
    if not _schema_agrees(cls, [name for _, name, _ in fields]):
        return None
    return tuple(fields)


def _config_is_plain(config: Any) -> bool:
    for key, value in config.items():
        if key in _CONFIG_HARMLESS:
            continue
        allowed = _DEFAULT_ONLY.get(key)
        if allowed is None or value not in allowed:
            return False
    return True


def _metadata_is_plain(m: Any) -> bool:
    t = type(m)
    module = t.__module__ or ""
    if module.split(".")[0] in _METADATA_MODULES:
        return True
    return module.startswith("pydantic.") and t.__name__ in _METADATA_NAMES


def _spec(ann: Any, base_model: type, depth: int) -> Spec | None:
    if depth > _MAX_SPEC_DEPTH:
        return None
    kind = _SCALARS.get(ann) if _hashable(ann) else None
    if kind is not None:
        return (kind, False, None)
    if isinstance(ann, type) and not typing.get_args(ann) and typing.get_origin(ann) is None:
        # A model class itself (a parametrized generic model is a real subclass too).
        if issubclass(ann, base_model) and ann is not base_model:
            return ("model", False, ann)
        return None
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Union or origin is types.UnionType:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(rest) == len(args):
            return None
        inner = _spec(rest[0], base_model, depth + 1)
        if inner is None:
            return None
        return (inner[0], True, inner[2])
    if origin is list and len(args) == 1:
        item = _spec(args[0], base_model, depth + 1)
        return None if item is None else ("list", False, item)
    if origin is dict and len(args) == 2 and args[0] is str:
        item = _spec(args[1], base_model, depth + 1)
        return None if item is None else ("dict", False, item)
    return None


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _schema_agrees(cls: Any, names: list[str]) -> bool:
    """Checks the core schema the serializer was built from: a model schema without a
    serializer of its own, fields in the same order with no serialization alias or
    exclusion, no computed fields, and no 'serialization' key anywhere in a field's
    schema (nested models are checked when their own plan is made)."""
    schema = cls.__pydantic_core_schema__
    definitions = {}
    if schema.get("type") == "definitions":
        definitions = {d.get("ref"): d for d in schema.get("definitions", ())}
        schema = schema["schema"]
    if schema.get("type") == "definition-ref":
        schema = definitions.get(schema.get("schema_ref"), {})
    if schema.get("type") != "model" or schema.get("cls") is not cls:
        return False
    if "serialization" in schema or schema.get("root_model"):
        return False
    inner = schema.get("schema", {})
    if inner.get("type") != "model-fields" or inner.get("computed_fields"):
        return False
    if inner.get("extras_schema") is not None or "serialization" in inner:
        return False
    fields = inner.get("fields", {})
    if list(fields) != names:
        return False
    for field in fields.values():
        if any(field.get(k) is not None for k in _SCHEMA_FIELD_REFUSED):
            return False
        if _has_serializer(field.get("schema", {})):
            return False
    return True


def _has_serializer(node: Any) -> bool:
    if isinstance(node, dict):
        if "serialization" in node:
            return True
        if node.get("type") in ("model", "definition-ref"):
            return False
        # Default values are data, not schema; metadata holds JSON-schema hooks.
        return any(_has_serializer(v) for k, v in node.items() if k not in ("metadata", "default"))
    if isinstance(node, (list, tuple)):
        return any(_has_serializer(v) for v in node)
    return False


# ---- standard-library dataclasses, as pydantic writes them --------------------------------
#
# data_bridge.json.dumps writes a dataclass by its values, as orjson does; a response model
# that is a dataclass must be written as pydantic's serializer writes it (an int in a float
# field is 5.0, NaN is null), so the responder asks the encoder for that mode
# (_core.dumps_as_model) and the encoder then uses these plans, checking every value against
# the declared type exactly like a model's. The plan is read from the core schema pydantic
# builds for the class, and anything but plain fields of the accepted types is refused.

_DC_SCALARS = {"str": "str", "int": "int", "float": "float", "bool": "bool", "none": "none"}


def _is_std_dataclass(cls: Any) -> bool:
    import dataclasses

    return (
        isinstance(cls, type)
        and dataclasses.is_dataclass(cls)
        and "__pydantic_serializer__" not in cls.__dict__
        and "__slots__" not in cls.__dict__
    )


def dataclass_plan(cls: Any, depth: int = 0) -> dict[str, Any] | None:
    """{"fields": ((key, name, spec), ...), "serializer": pydantic's} for a plain
    standard-library dataclass, else None."""
    from pydantic import TypeAdapter

    if depth > _MAX_SPEC_DEPTH or getattr(cls, "__pydantic_config__", None):
        return None
    adapter = TypeAdapter(cls)
    schema = adapter.core_schema
    defs: dict[Any, Any] = {}
    if schema.get("type") == "definitions":
        defs = {d.get("ref"): d for d in schema.get("definitions", ())}
        schema = schema.get("schema", {})
    if schema.get("type") == "definition-ref":
        schema = defs.get(schema.get("schema_ref"), {})
    if schema.get("type") != "dataclass" or schema.get("cls") is not cls:
        return None
    if "serialization" in schema or set(schema.get("config") or {}) - {"title"}:
        return None
    inner = schema.get("schema", {})
    if inner.get("type") != "dataclass-args" or inner.get("computed_fields"):
        return None
    fields = []
    for i, field in enumerate(inner.get("fields", ())):
        if field.get("type") != "dataclass-field" or field.get("init_only"):
            return None
        if any(field.get(k) is not None for k in _SCHEMA_FIELD_REFUSED):
            return None
        node = field.get("schema", {})
        if _has_serializer(node):
            return None
        spec = _schema_spec(node, defs, depth)
        if spec is None:
            return None
        name = field["name"]
        key = (b"{" if i == 0 else b",") + dumps(name) + b":"
        fields.append((key, name, spec))
    return {"fields": tuple(fields), "serializer": adapter.serializer}


def _schema_spec(node: dict[str, Any], defs: dict[Any, Any], depth: int) -> Spec | None:
    """The spec of a field's core schema: the scalars, nullable, list, dict[str, ...] and
    nested plain dataclasses; a default only wraps the value's schema."""
    if depth > _MAX_SPEC_DEPTH:
        return None
    t = node.get("type")
    if t == "definition-ref":
        return _schema_spec(defs.get(node.get("schema_ref"), {}), defs, depth + 1)
    if t == "default":
        return _schema_spec(node.get("schema", {}), defs, depth + 1)
    if t in _DC_SCALARS:
        return (_DC_SCALARS[t], False, None)
    if t == "nullable":
        inner = _schema_spec(node.get("schema", {}), defs, depth + 1)
        return None if inner is None else (inner[0], True, inner[2])
    if t == "list":
        item = _schema_spec(node.get("items_schema", {"type": "any"}), defs, depth + 1)
        return None if item is None else ("list", False, item)
    if t == "dict" and (node.get("keys_schema") or {}).get("type") == "str":
        item = _schema_spec(node.get("values_schema", {"type": "any"}), defs, depth + 1)
        return None if item is None else ("dict", False, item)
    if t == "dataclass":
        nested = node.get("cls")
        if _is_std_dataclass(nested) and dataclass_plan(nested, depth + 1) is not None:
            return ("model", False, nested)
    return None
