"""Plans for decoding pydantic models straight from JSON bytes (``_core.ModelDecoder``).

``decoder_for(cls)`` returns a callable with ``cls.model_validate_json``'s contract for
bytes-like input: the C decoder (csrc/json/decode_model.c) builds the instance itself
when the input is certain to be valid and hands everything else to
``cls.model_validate_json``, so results and errors are always pydantic's.

The plan is read from the model's core schema, the description pydantic-core validates
with, so a mechanism this module does not know about makes the model unplannable rather
than decoded wrongly. Accepted: models whose fields are str, int, float, bool, Any,
Optional of those, list and dict[str, ...] of those, and other such models (recursion
included), with gt/ge/lt/le (int and float), multiple_of (int) and min/max length (str,
list, dict), and defaults that are values (not factories, not validated). Refused:
validators of any kind, aliases, strict mode, string transformations, extra="allow" or
"forbid", unions beyond Optional, init or post-init hooks, private attributes, pydantic
plugins, and any schema key or configuration value outside what is listed here. None
means "use model_validate_json".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_SCALAR_KINDS = {"str": "str", "int": "int", "float": "float", "bool": "bool", "any": "any"}

# Schema keys that never change what validation accepts or returns, per node type.
_COMMON_KEYS = frozenset({"type", "metadata", "ref", "serialization"})
_ALLOWED_KEYS: dict[str, frozenset[str]] = {
    "str": frozenset({"min_length", "max_length"}),
    "int": frozenset({"gt", "ge", "lt", "le", "multiple_of"}),
    "float": frozenset({"gt", "ge", "lt", "le", "allow_inf_nan"}),
    "bool": frozenset(),
    "any": frozenset(),
    "list": frozenset({"items_schema", "min_length", "max_length", "fail_fast"}),
    "dict": frozenset({"keys_schema", "values_schema", "min_length", "max_length"}),
    "nullable": frozenset({"schema"}),
}
_CHECK_KEYS = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length")

# Model configuration (the core schema's "config") that does not affect what validation
# of the accepted field types returns; a key outside this set, or a truthy value of one in
# _CONFIG_FALSY, makes the model unplannable.
_CONFIG_HARMLESS = frozenset(
    {
        "title",
        "loc_by_alias",
        "hide_input_in_errors",
        "validation_error_cause",
        "cache_strings",
        "from_attributes",
        "revalidate_instances",
        "allow_inf_nan",  # non-finite floats always go to pydantic
        "ser_json_timedelta",
        "ser_json_temporal",
        "ser_json_bytes",
        "ser_json_inf_nan",
        "serialize_by_alias",
        "regex_engine",
        "validate_by_alias",
        "validate_by_name",
        "populate_by_name",
        "frozen",
        "val_json_bytes",
        "val_temporal_unit",
        "url_preserve_empty_path",
        "polymorphic_serialization",
    }
)
_CONFIG_FALSY = frozenset(
    {
        "strict",
        "str_strip_whitespace",
        "str_to_lower",
        "str_to_upper",
        "coerce_numbers_to_str",
        "validate_default",
    }
)


_FLAVOR_DATACLASS = 1  # csrc/json/decode_model.c's FLAVOR_*
_FLAVOR_TYPED_DICT = 2


class _Unplannable(Exception):
    pass


def _check_keys(schema: dict[str, Any], allowed: frozenset[str]) -> None:
    extra = set(schema) - _COMMON_KEYS - allowed
    if extra:
        raise _Unplannable(f"{schema['type']} schema with {sorted(extra)}")


def _checks(schema: dict[str, Any], kind: str) -> dict[str, Any] | None:
    out = {k: schema[k] for k in _CHECK_KEYS if schema.get(k) is not None}
    for key, value in out.items():
        if key in ("min_length", "max_length"):
            if type(value) is not int or value < 0:
                raise _Unplannable(f"{key}={value!r}")
        elif kind == "int":
            if type(value) is not int or not -(2**63) <= value < 2**63:
                raise _Unplannable(f"int {key}={value!r}")
            if key == "multiple_of" and value <= 0:
                raise _Unplannable(f"int {key}={value!r}")
        elif type(value) not in (int, float) or key == "multiple_of":
            raise _Unplannable(f"float {key}={value!r}")
    return out or None


class _Planner:
    def __init__(self, definitions: dict[str, Any]) -> None:
        self.definitions = definitions
        self.models: list[Any] = []  # (cls, fields) once built; None while building
        self.index: dict[type, int] = {}

    def spec(self, schema: dict[str, Any], nullable: bool = False) -> tuple[Any, ...]:
        kind = schema.get("type")
        if kind == "definition-ref":
            ref = schema["schema_ref"]
            if ref not in self.definitions:
                raise _Unplannable(f"unknown reference {ref}")
            _check_keys(schema, frozenset({"schema_ref"}))
            return self.spec(self.definitions[ref], nullable)
        if kind == "definitions":
            for d in schema["definitions"]:
                self.definitions[d["ref"]] = d
            return self.spec(schema["schema"], nullable)
        if kind == "nullable":
            _check_keys(schema, _ALLOWED_KEYS["nullable"])
            if nullable:
                raise _Unplannable("nested Optional")
            return self.spec(schema["schema"], True)
        if kind in _SCALAR_KINDS:
            _check_keys(schema, _ALLOWED_KEYS[kind])
            return (_SCALAR_KINDS[kind], nullable, None, _checks(schema, kind))
        if kind == "list":
            _check_keys(schema, _ALLOWED_KEYS["list"])
            items = schema.get("items_schema", {"type": "any"})
            return ("list", nullable, self.spec(items), _checks(schema, "list"))
        if kind == "dict":
            _check_keys(schema, _ALLOWED_KEYS["dict"])
            keys = schema.get("keys_schema", {"type": "str"})
            if keys.get("type") not in ("str", "any") or set(keys) - _COMMON_KEYS:
                raise _Unplannable("dict keys other than str")
            values = schema.get("values_schema", {"type": "any"})
            return ("dict", nullable, self.spec(values), _checks(schema, "dict"))
        if kind == "model":
            return ("model", nullable, self.model(schema), None)
        if kind == "dataclass":
            return ("model", nullable, self.dataclass(schema), None)
        if kind == "typed-dict":
            return ("model", nullable, self.typed_dict(schema), None)
        raise _Unplannable(f"schema type {kind!r}")

    def model(self, schema: dict[str, Any]) -> int:
        cls = schema["cls"]
        if cls in self.index:
            return self.index[cls]
        _check_keys(
            schema,
            frozenset({"cls", "schema", "config", "custom_init", "root_model", "post_init"}),
        )
        if schema.get("custom_init") or schema.get("root_model") or schema.get("post_init"):
            raise _Unplannable(f"{cls.__name__}: custom __init__, root model or post-init")
        _check_model_class(cls)
        _check_config(schema.get("config") or {})
        inner = schema["schema"]
        if inner.get("type") != "model-fields":
            raise _Unplannable(f"model schema {inner.get('type')!r}")
        _check_keys(inner, frozenset({"fields", "model_name", "computed_fields", "extra_behavior"}))
        if inner.get("extra_behavior") not in (None, "ignore"):
            raise _Unplannable("extra_behavior")
        index = len(self.models)
        self.index[cls] = index
        self.models.append(None)
        fields = []
        for name, field in inner["fields"].items():
            # The decoder compares key bytes with the name (csrc/json/decode_model.c).
            if not name.isidentifier():
                raise _Unplannable(f"field name {name!r}")
            if field.get("type") != "model-field":
                raise _Unplannable(f"field {name}: {field.get('type')}")
            _check_keys(
                field,
                frozenset({"schema", "serialization_alias", "serialization_exclude", "frozen"}),
            )
            fields.append(self.field(name, field["schema"]))
        self.models[index] = (cls, tuple(fields))
        return index

    def field(self, name: str, schema: dict[str, Any]) -> tuple[Any, ...]:
        """(name, spec, default): default () when required, (value,), or (factory,
        "factory") for a default_factory that takes no arguments."""
        default: tuple[Any, ...] = ()
        if schema.get("type") == "default":
            _check_keys(
                schema,
                frozenset(
                    {"schema", "default", "default_factory", "default_factory_takes_data"}
                    | {"validate_default"}
                ),
            )
            if schema.get("validate_default") or schema.get("default_factory_takes_data"):
                raise _Unplannable(f"field {name}: validated default or factory taking data")
            if "default" in schema:
                default = (schema["default"],)
            elif callable(schema.get("default_factory")):
                default = (schema["default_factory"], "factory")
            else:
                raise _Unplannable(f"field {name}: default")
            schema = schema["schema"]
        return (name, self.spec(schema), default)

    def dataclass(self, schema: dict[str, Any]) -> int:
        """A dataclass (stdlib or pydantic's) made as pydantic-core makes it: tp_new, then
        __dict__ in field order; no __post_init__, no slots, no init-only fields."""
        cls = schema["cls"]
        if cls in self.index:
            return self.index[cls]
        _check_keys(
            schema,
            frozenset({"cls", "schema", "config", "fields", "frozen", "post_init", "slots"}),
        )
        if schema.get("post_init") or schema.get("slots"):
            raise _Unplannable(f"{cls.__name__}: __post_init__ or slots")
        decorators = getattr(cls, "__pydantic_decorators__", None)
        if decorators is not None and (
            decorators.validators
            or decorators.field_validators
            or decorators.root_validators
            or decorators.model_validators
        ):
            raise _Unplannable("validators")
        _check_config(schema.get("config") or {})
        args = schema["schema"]
        if args.get("type") != "dataclass-args":
            raise _Unplannable(f"dataclass schema {args.get('type')!r}")
        _check_keys(
            args,
            frozenset(
                {"fields", "dataclass_name", "computed_fields", "collect_init_only"}
                | {"extra_behavior"}
            ),
        )
        if args.get("collect_init_only") or args.get("extra_behavior") not in (None, "ignore"):
            raise _Unplannable("init-only fields or extra")
        index = len(self.models)
        self.index[cls] = index
        self.models.append(None)
        fields = []
        for field in args["fields"]:
            name = field.get("name")
            if field.get("type") != "dataclass-field" or not isinstance(name, str):
                raise _Unplannable(f"dataclass field {name!r}")
            if not name.isidentifier():
                raise _Unplannable(f"field name {name!r}")
            _check_keys(
                field,
                frozenset(
                    {"name", "schema", "kw_only", "init", "serialization_alias"}
                    | {"serialization_exclude", "frozen"}
                ),
            )
            if field.get("init") is False or field.get("init_only"):
                raise _Unplannable(f"field {name}: init=False")
            fields.append(self.field(name, field["schema"]))
        self.models[index] = (cls, tuple(fields), _FLAVOR_DATACLASS)
        return index

    def typed_dict(self, schema: dict[str, Any]) -> int:
        """A TypedDict: a plain dict with its keys in definition order, NotRequired keys
        absent when the input lacks them."""
        cls = schema["cls"]
        if cls in self.index:
            return self.index[cls]
        _check_keys(
            schema, frozenset({"cls", "fields", "config", "computed_fields", "extra_behavior"})
        )
        if schema.get("extra_behavior") not in (None, "ignore") or schema.get("computed_fields"):
            raise _Unplannable("TypedDict with extra or computed fields")
        _check_config(schema.get("config") or {})
        index = len(self.models)
        self.index[cls] = index
        self.models.append(None)
        fields = []
        for name, field in schema["fields"].items():
            if field.get("type") != "typed-dict-field" or not name.isidentifier():
                raise _Unplannable(f"TypedDict field {name!r}")
            _check_keys(
                field,
                frozenset({"schema", "required", "serialization_alias", "serialization_exclude"}),
            )
            planned = self.field(name, field["schema"])
            if not field.get("required", True) and not planned[2]:
                planned = (name, planned[1], (None, None, "omit"))
            fields.append(planned)
        self.models[index] = (cls, tuple(fields), _FLAVOR_TYPED_DICT)
        return index


def _check_config(config: dict[str, Any]) -> None:
    for key, value in config.items():
        if key in _CONFIG_FALSY:
            if value:
                raise _Unplannable(f"config {key}={value!r}")
        elif key == "extra_fields_behavior":
            if value not in (None, "ignore"):
                raise _Unplannable(f"extra={value!r}")
        elif key not in _CONFIG_HARMLESS:
            raise _Unplannable(f"config {key}")


def _check_model_class(cls: type) -> None:
    import pydantic
    import pydantic_core

    if not (isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)):
        raise _Unplannable("not a BaseModel")
    # A plugin (pydantic.plugin) wraps the validator to observe every validation.
    if type(cls.__pydantic_validator__) is not pydantic_core.SchemaValidator:
        raise _Unplannable("validator is wrapped (a pydantic plugin)")
    decorators = cls.__pydantic_decorators__
    if (
        decorators.validators
        or decorators.field_validators
        or decorators.root_validators
        or decorators.model_validators
    ):
        raise _Unplannable("validators")
    if cls.__private_attributes__ or cls.__pydantic_post_init__ is not None:
        raise _Unplannable("private attributes or model_post_init")


def _plan(cls: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    import pydantic

    _check_model_class(cls)
    if getattr(cls.model_validate_json, "__func__", None) is not getattr(
        pydantic.BaseModel.model_validate_json, "__func__", None
    ):
        raise _Unplannable("model_validate_json is overridden")
    if not cls.__pydantic_complete__:
        raise _Unplannable("not fully defined")
    models, root = _plan_schema(cls.__pydantic_core_schema__)
    if root[0] != "model" or root[1]:
        raise _Unplannable("the schema is not a model")
    return models, root


def _plan_schema(schema: dict[str, Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    planner = _Planner({})
    try:
        root = planner.spec(schema)
    except (KeyError, TypeError, AttributeError) as exc:
        raise _Unplannable(f"unexpected core schema ({exc!r})") from exc
    return tuple(planner.models), root


def why_not_native(cls: Any) -> str | None:
    """Why ``cls`` is left to pydantic's model_validate_json, or None when it is decoded
    natively."""
    try:
        _plan(cls)
    except _Unplannable as exc:
        return str(exc)
    return None


def decoder_for(cls: Any) -> Callable[[Any], Any] | None:
    """A callable equal to ``cls.model_validate_json`` for bytes-like input, decoding
    natively where the plan allows; None when the model cannot be planned."""
    from data_bridge._core import ModelDecoder

    try:
        models, root = _plan(cls)
    except _Unplannable:
        return None
    return ModelDecoder(models, root, cls.model_validate_json)


def adapter_decoder_for(adapter: Any) -> Callable[[Any], Any] | None:
    """The same for a pydantic ``TypeAdapter`` (a ``list[Model]`` body, ...): a callable
    equal to ``adapter.validate_json``, or None when its type cannot be planned."""
    import pydantic_core

    from data_bridge._core import ModelDecoder

    try:
        if getattr(adapter, "_config", None) is not None:
            raise _Unplannable("TypeAdapter with a config")
        if type(adapter.validator) is not pydantic_core.SchemaValidator:
            raise _Unplannable("validator is wrapped (a pydantic plugin)")
        models, root = _plan_schema(adapter.core_schema)
    except (_Unplannable, AttributeError):
        return None
    return ModelDecoder(models, root, adapter.validate_json)
