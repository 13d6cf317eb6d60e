"""What a route declares, read as FastAPI reads it for the OpenAPI document.

The native binder compiles a route's flattened signature (``_plan.build_plan``); the
document needs more than that: which dependency declared a parameter (parameters are
listed in dependency order, security schemes come from the dependency tree), the markers'
documentation fields (title, description, examples, deprecated, include_in_schema) and a
pydantic ``FieldInfo`` per parameter, from which pydantic generates the JSON schemas as
it does for FastAPI. So the dependency tree is walked here once more, with FastAPI's rules:

- ``Depends``/``Security`` (as default or in ``Annotated``) is a sub-dependency;
- ``Request``, ``Response``, ``BackgroundTasks``, ``SecurityScopes``, ... are injected;
- a marker (``Query``, ``Path``, ``Header``, ``Cookie``, ``Body``, ``Form``, ``File``)
  chooses the source; without one a parameter named in the path is a path parameter, an
  ``UploadFile`` a file, a non-scalar type (model, mapping, sequence, dataclass) the body,
  and anything else a query parameter.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    AliasPath,
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    TypeAdapter,
    WithJsonSchema,
    create_model,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from data_bridge.api import params as _params
from data_bridge.api._msgspec import is_struct_annotation, struct_schema
from data_bridge.api._plan import path_param_names

__all__ = ["Dependant", "ModelField", "get_dependant", "lenient_issubclass"]

try:  # Python 3.10+
    from types import UnionType
except ImportError:  # pragma: no cover
    UnionType = typing.Union  # type: ignore[assignment,misc]

Undefined = PydanticUndefined

# Kinds of request values, as FastAPI names the places ("in") of parameters.
PATH, QUERY, HEADER, COOKIE = "path", "query", "header", "cookie"
BODY, FORM, FILE = "body", "form", "file"
BODY_KINDS = (BODY, FORM, FILE)

_MEDIA_TYPES = {
    BODY: "application/json",
    FORM: "application/x-www-form-urlencoded",
    FILE: "multipart/form-data",
}

# Types whose parameters are injected rather than read from the request.
_INJECTED = {
    "Request",
    "WebSocket",
    "HTTPConnection",
    "Response",
    "BackgroundTasks",
    "SecurityScopes",
}

# FieldInfo attributes carried into the TypeAdapter of a field (pydantic's
# FieldInfo.asdict() keys, for pydantic versions that lack it).
_FIELD_ATTRS = (
    "default",
    "default_factory",
    "alias",
    "alias_priority",
    "validation_alias",
    "serialization_alias",
    "title",
    "field_title_generator",
    "description",
    "examples",
    "exclude",
    "exclude_if",
    "discriminator",
    "deprecated",
    "json_schema_extra",
    "frozen",
    "validate_default",
    "repr",
    "init",
    "init_var",
    "kw_only",
)

# Marker attributes passed on to pydantic's Field().
_MARKER_ATTRS = (
    "alias",
    "alias_priority",
    "validation_alias",
    "serialization_alias",
    "title",
    "description",
    "gt",
    "ge",
    "lt",
    "le",
    "min_length",
    "max_length",
    "pattern",
    "discriminator",
    "strict",
    "multiple_of",
    "allow_inf_nan",
    "max_digits",
    "decimal_places",
    "examples",
    "deprecated",
    "json_schema_extra",
    "default_factory",
)


def lenient_issubclass(cls: Any, parents: Any) -> bool:
    try:
        return isinstance(cls, type) and issubclass(cls, parents)
    except TypeError:
        return False


class ParamInfo(FieldInfo):
    """The FieldInfo of a request value. A FieldInfo subclass, like FastAPI's markers, so
    that pydantic keeps the object whole (attributes set after construction included)
    when it becomes a field of a generated body model."""

    __slots__ = ()


def _param_info(info: FieldInfo) -> ParamInfo:
    """``info`` as a ParamInfo (the same attributes, metadata list copied)."""
    out = ParamInfo.__new__(ParamInfo)
    for name in FieldInfo.__slots__:
        if hasattr(info, name):
            value = getattr(info, name)
            if name in ("metadata", "_attributes_set"):
                value = copy.copy(value)
            object.__setattr__(out, name, value)
    return out


def _field_attributes(info: FieldInfo) -> dict[str, Any]:
    asdict = getattr(info, "asdict", None)
    if asdict is not None:
        return dict(asdict()["attributes"])
    return {
        name: getattr(info, name)
        for name in _FIELD_ATTRS
        if getattr(info, name, Undefined) is not Undefined
    }


class ModelField:
    """One value of the request or response: a pydantic FieldInfo (annotation, default,
    alias, constraints, documentation) and the schema mode it is described in."""

    def __init__(
        self,
        name: str,
        field_info: FieldInfo,
        *,
        mode: str = "validation",
        kind: str | None = None,
        marker: Any = None,
        config: ConfigDict | None = None,
    ) -> None:
        self.name = name
        self.field_info = field_info
        self.mode = mode
        self.kind = kind  # PATH ... FILE for request values, None for responses
        self.marker = marker  # the marker the field was declared with, if any
        self.config = config
        self._adapter: TypeAdapter[Any] | None = None

    @property
    def alias(self) -> str:
        alias = self.field_info.alias
        return alias if alias is not None else self.name

    @property
    def validation_alias(self) -> str | None:
        alias = self.field_info.validation_alias
        return alias if isinstance(alias, str) and alias else None

    @property
    def serialization_alias(self) -> str | None:
        return self.field_info.serialization_alias or None

    @property
    def adapter(self) -> TypeAdapter[Any]:
        if self._adapter is None:
            info = self.field_info
            with warnings.catch_warnings():
                # pydantic warns that alias & co. mean nothing to a bare TypeAdapter.
                warnings.simplefilter("ignore")
                annotation = info.annotation
                if is_struct_annotation(annotation):
                    # msgspec's schema, for a type pydantic cannot describe.
                    annotation = Annotated[Any, WithJsonSchema(struct_schema(annotation))]
                args = (annotation, *info.metadata, Field(**_field_attributes(info)))
                self._adapter = TypeAdapter(Annotated[args], config=self.config)  # type: ignore[valid-type]
        return self._adapter

    def doc_attr(self, name: str, default: Any = None) -> Any:
        """A documentation attribute of the marker (include_in_schema, openapi_examples,
        example, media_type, embed, convert_underscores)."""
        for source in (self.marker, self.field_info):
            if source is not None and hasattr(source, name):
                return getattr(source, name)
        return default

    @property
    def media_type(self) -> str:
        media = self.doc_attr("media_type")
        return media if isinstance(media, str) else _MEDIA_TYPES.get(self.kind or BODY, "")

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __repr__(self) -> str:
        return f"ModelField({self.name!r}, {self.kind}, {self.field_info!r})"


def response_field(name: str, annotation: Any) -> ModelField:
    return ModelField(name, FieldInfo(annotation=annotation), mode="serialization")


@dataclasses.dataclass(eq=False)
class Dependant:
    """A node of the dependency tree: the endpoint or one dependency."""

    call: Callable[..., Any] | None
    name: str | None = None
    path_params: list[ModelField] = dataclasses.field(default_factory=list)
    query_params: list[ModelField] = dataclasses.field(default_factory=list)
    header_params: list[ModelField] = dataclasses.field(default_factory=list)
    cookie_params: list[ModelField] = dataclasses.field(default_factory=list)
    body_params: list[ModelField] = dataclasses.field(default_factory=list)
    dependencies: list[Dependant] = dataclasses.field(default_factory=list)
    own_scopes: list[str] = dataclasses.field(default_factory=list)
    parent_scopes: list[str] = dataclasses.field(default_factory=list)
    use_cache: bool = True
    scope: str | None = None
    uses_security_scopes: bool = False

    def params_of(self, kind: str) -> list[ModelField]:
        return {
            PATH: self.path_params,
            QUERY: self.query_params,
            HEADER: self.header_params,
            COOKIE: self.cookie_params,
        }[kind]

    @property
    def scopes(self) -> list[str]:
        out = list(self.parent_scopes)
        for scope in self.own_scopes:
            if scope not in out:
                out.append(scope)
        return out


# --- classification -------------------------------------------------------------------


def _is_depends(obj: Any) -> bool:
    from data_bridge.api.depends import Depends

    return isinstance(obj, Depends)


def _marker_kind(obj: Any) -> str | None:
    """PATH ... FILE for a parameter marker, None for anything else."""
    if isinstance(obj, _params.Param):
        names = [c.__name__ for c in type(obj).__mro__]
    elif isinstance(obj, FieldInfo):
        # A FieldInfo subclass with FastAPI's marker names (not a plain pydantic Field).
        names = [c.__name__ for c in type(obj).__mro__ if c is not FieldInfo]
    else:
        return None
    for name, kind in (
        ("File", FILE),
        ("Form", FORM),
        ("Body", BODY),
        ("Path", PATH),
        ("Query", QUERY),
        ("Header", HEADER),
        ("Cookie", COOKIE),
    ):
        if name in names:
            return kind
    if isinstance(obj, _params.Param):
        return {"path": PATH, "query": QUERY, "header": HEADER, "cookie": COOKIE}.get(
            getattr(obj, "source", ""), QUERY
        )
    return None


def _is_injected(annotation: Any) -> bool:
    if not isinstance(annotation, type):
        return False
    from data_bridge import _core

    if issubclass(annotation, _core.Request):
        return True
    return any(
        c.__name__ in _INJECTED
        and c.__module__.split(".")[0] in ("data_bridge", "starlette", "fastapi")
        for c in annotation.__mro__
    )


def _is_upload_file(annotation: Any) -> bool:
    return lenient_issubclass(annotation, _upload_file_classes())


def _upload_file_classes() -> tuple[type, ...]:
    """The UploadFile class(es) of data_bridge.api, wherever they are defined."""
    import sys

    found: list[type] = []
    for module in ("data_bridge.api.datastructures", "data_bridge.api"):
        cls = getattr(sys.modules.get(module), "UploadFile", None)
        if isinstance(cls, type) and cls not in found:
            found.append(cls)
    return tuple(found)


def _is_union(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin is typing.Union or origin is UnionType


_SEQUENCES: tuple[type, ...] = (list, tuple, set, frozenset, Sequence)


def _is_sequence_type(annotation: Any) -> bool:
    import collections

    if lenient_issubclass(annotation, (str, bytes)):
        return False
    return lenient_issubclass(annotation, (*_SEQUENCES, collections.deque))


def is_upload_file_annotation(annotation: Any) -> bool:
    """UploadFile, Optional[UploadFile] or a sequence of those."""
    if _is_union(annotation):
        return any(is_upload_file_annotation(a) for a in typing.get_args(annotation))
    if _is_upload_file(annotation):
        return True
    origin = typing.get_origin(annotation)
    if _is_sequence_type(origin):
        args = typing.get_args(annotation)
        return bool(args) and all(is_upload_file_annotation(a) for a in args)
    return False


def _is_complex(annotation: Any) -> bool:
    return (
        lenient_issubclass(annotation, (BaseModel, Mapping, *_upload_file_classes()))
        or _is_sequence_type(annotation)
        or dataclasses.is_dataclass(annotation)
    )


def is_complex_annotation(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if _is_union(annotation):
        return any(is_complex_annotation(a) for a in typing.get_args(annotation))
    if origin is Annotated:
        return is_complex_annotation(typing.get_args(annotation)[0])
    return (
        _is_complex(annotation)
        or _is_complex(origin)
        or is_struct_annotation(annotation)  # a msgspec Struct is a body
        or hasattr(origin, "__pydantic_core_schema__")
        or hasattr(origin, "__get_pydantic_core_schema__")
    )


def is_scalar_annotation(annotation: Any) -> bool:
    return annotation is Ellipsis or not is_complex_annotation(annotation)


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The model of ``Model`` or ``Optional[Model]``."""
    if _is_union(annotation):
        args = typing.get_args(annotation)
        if len(args) == 2 and type(None) in args:
            annotation = next(a for a in args if a is not type(None))
    return annotation if lenient_issubclass(annotation, BaseModel) else None


def _is_json_field(field: ModelField) -> bool:
    from pydantic import Json

    return any(type(item) is Json for item in field.field_info.metadata)


def param_model(field: ModelField) -> type[BaseModel] | None:
    """The model whose fields a query/header/cookie/form parameter stands for."""
    annotation = field.field_info.annotation
    if field.kind in (QUERY, HEADER, COOKIE):
        annotation = model_of(annotation)
    if lenient_issubclass(annotation, BaseModel) and not _is_json_field(field):
        return annotation
    return None


def form_models(field: ModelField) -> list[type[BaseModel]]:
    """The models a form parameter stands for (one, or the members of a union)."""
    if field.kind not in (FORM, FILE) or field.doc_attr("embed") or _is_json_field(field):
        return []
    model = model_of(field.field_info.annotation)
    if model is not None:
        return [model]
    annotation = field.field_info.annotation
    if not _is_union(annotation):
        return []
    models = []
    for arg in typing.get_args(annotation):
        if arg is type(None):
            continue
        if typing.get_origin(arg) is Annotated:
            arg = typing.get_args(arg)[0]
        if not lenient_issubclass(arg, BaseModel):
            return []
        models.append(arg)
    return models if len(models) > 1 else []


@functools.lru_cache(maxsize=1024)
def model_fields(model: type[BaseModel], kind: str | None = None) -> list[ModelField]:
    """The fields of a parameter model, as parameters of the model's kind (the same
    objects each time: the schemas generated are looked up by field)."""
    out = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        config = None
        if not (
            lenient_issubclass(annotation, (BaseModel, dict))
            or dataclasses.is_dataclass(annotation)
        ):
            config = model.model_config
        out.append(ModelField(name, info, kind=kind, config=config))
    return out


def flat_params(fields: Sequence[ModelField]) -> list[ModelField]:
    """Parameters with each parameter model replaced by its fields."""
    out: list[ModelField] = []
    for field in fields:
        model = param_model(field)
        if model is not None:
            out.extend(model_fields(model, field.kind))
        else:
            out.append(field)
    return out


# --- reading signatures ---------------------------------------------------------------


def _signature(call: Callable[..., Any]) -> inspect.Signature:
    try:
        signature = inspect.signature(call, eval_str=True)
    except NameError:
        signature = inspect.signature(call)
    unwrapped = inspect.unwrap(call)
    namespace = getattr(unwrapped, "__globals__", {})
    out = []
    for p in signature.parameters.values():
        annotation = p.annotation
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # noqa: S307 (annotations)
            except Exception:
                annotation = typing.ForwardRef(annotation)
            if annotation is type(None):
                annotation = None
        out.append(p.replace(annotation=annotation))
    return signature.replace(parameters=out)


def _marker_field_info(marker: Any, default: Any) -> FieldInfo:
    """A pydantic FieldInfo carrying a marker's default, alias, constraints and docs."""
    if isinstance(marker, FieldInfo):
        return _param_info(marker)
    kwargs: dict[str, Any] = {}
    for name in _MARKER_ATTRS:
        value = getattr(marker, name, None)
        if value is not None:
            kwargs[name] = value
    alias = kwargs.get("alias")
    if isinstance(alias, str):
        kwargs.setdefault("validation_alias", alias)
        kwargs.setdefault("serialization_alias", alias)
    if "default_factory" in kwargs:
        default = Undefined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ParamInfo(default=Undefined if default is Ellipsis else default, **kwargs)


def _from_annotated(annotation: Any, replace: Any = None, by: Any = None) -> FieldInfo:
    """FieldInfo.from_annotation for an ``Annotated`` type, with our marker (``replace``)
    swapped for its FieldInfo (``by``) and Depends objects left out."""
    base, *meta = typing.get_args(annotation)
    kept = []
    for item in meta:
        if item is replace:
            kept.append(by)
        elif isinstance(item, _params.Param) or _is_depends(item):
            continue
        else:
            kept.append(item)
    target = Annotated[(base, *kept)] if kept else base  # type: ignore[valid-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _param_info(FieldInfo.from_annotation(target))


@dataclasses.dataclass
class _Param:
    annotation: Any  # the type without Annotated
    depends: Any
    field: ModelField | None


def _analyze(name: str, annotation: Any, value: Any, path_names: set[str]) -> _Param:
    is_path = name in path_names
    if isinstance(annotation, typing.TypeAliasType if hasattr(typing, "TypeAliasType") else ()):
        annotation = annotation.__value__
    use_annotation: Any = Any if annotation is inspect.Parameter.empty else annotation
    type_annotation = use_annotation
    marker: Any = None
    depends: Any = None
    info: FieldInfo | None = None
    if typing.get_origin(use_annotation) is Annotated:
        args = typing.get_args(use_annotation)
        type_annotation = args[0]
        specific = [a for a in args[1:] if _marker_kind(a) is not None or _is_depends(a)]
        chosen = specific[-1] if specific else None
        if chosen is not None and not _is_depends(chosen):
            marker = chosen
            own = _marker_field_info(chosen, Undefined)
            info = _from_annotated(use_annotation, chosen, own)
            info.default = Undefined if value is inspect.Parameter.empty else value
            if value is not inspect.Parameter.empty:
                info.default_factory = None
        elif chosen is not None:
            depends = chosen
    if _is_depends(value):
        depends = value
    elif _marker_kind(value) is not None:
        marker = value
        info = _marker_field_info(value, getattr(value, "default", Undefined))
        info.annotation = type_annotation
    if depends is not None and depends.dependency is None:
        depends = _DependsView(type_annotation, depends)
    if depends is None and _is_injected(type_annotation):
        return _Param(type_annotation, None, None)
    kind = _marker_kind(marker) if marker is not None else None
    if info is None and depends is None:
        default = Undefined if value is inspect.Parameter.empty else value
        if is_path:
            kind = PATH
        elif is_upload_file_annotation(type_annotation):
            kind = FILE
        elif not is_scalar_annotation(type_annotation):
            kind = BODY
        else:
            kind = QUERY
        if typing.get_origin(use_annotation) is Annotated:
            info = _from_annotated(use_annotation)
            info.default = default
            if is_path:
                info.default_factory = None
        else:
            info = ParamInfo(annotation=use_annotation, default=default)
    if info is None:
        return _Param(type_annotation, depends, None)
    if is_path:
        kind = PATH
    if kind is None:
        kind = QUERY
    if kind == PATH:
        info.default = Undefined
        info.default_factory = None
    convert = kind == HEADER and getattr(marker, "convert_underscores", True)
    if not info.alias and convert:
        alias = name.replace("_", "-")
    else:
        alias = info.alias or name
    info.alias = alias
    return _Param(type_annotation, None, ModelField(name, info, kind=kind, marker=marker))


class _DependsView:
    """``Depends()`` without a callable: the annotation is the dependency."""

    def __init__(self, dependency: Any, original: Any) -> None:
        self.dependency = dependency
        self.use_cache = getattr(original, "use_cache", True)
        self.scope = getattr(original, "scope", None)
        self.scopes = getattr(original, "scopes", None)


def get_dependant(
    path: str,
    call: Callable[..., Any],
    *,
    name: str | None = None,
    own_scopes: Sequence[str] = (),
    parent_scopes: Sequence[str] = (),
    use_cache: bool = True,
    scope: str | None = None,
) -> Dependant:
    dependant = Dependant(
        call,
        name=name,
        own_scopes=list(own_scopes),
        parent_scopes=list(parent_scopes),
        use_cache=use_cache,
        scope=scope,
    )
    scopes = list(parent_scopes) + list(own_scopes)
    path_names = set(path_param_names(path))
    try:
        signature = _signature(call)
    except (TypeError, ValueError):
        return dependant
    for p in signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        details = _analyze(p.name, p.annotation, p.default, path_names)
        if details.depends is not None:
            dependant.dependencies.append(sub_dependant(path, details.depends, p.name, scopes))
            continue
        if details.field is None:
            if lenient_issubclass(details.annotation, object) and any(
                c.__name__ == "SecurityScopes" for c in getattr(details.annotation, "__mro__", ())
            ):
                dependant.uses_security_scopes = True
            continue
        field = details.field
        if field.kind in BODY_KINDS:
            dependant.body_params.append(field)
        else:
            dependant.params_of(field.kind or QUERY).append(field)
    return dependant


def sub_dependant(
    path: str, depends: Any, name: str | None = None, parent_scopes: Sequence[str] = ()
) -> Dependant:
    own = list(getattr(depends, "scopes", None) or [])
    return get_dependant(
        path,
        depends.dependency,
        name=name,
        own_scopes=own,
        parent_scopes=parent_scopes,
        use_cache=getattr(depends, "use_cache", True),
        scope=getattr(depends, "scope", None),
    )


def route_dependant(
    path: str, endpoint: Callable[..., Any], dependencies: Sequence[Any]
) -> Dependant:
    """The endpoint's tree, with the route's ``dependencies=[...]`` first."""
    root = get_dependant(path, endpoint)
    root.dependencies[:0] = [
        sub_dependant(path, d) for d in dependencies if d.dependency is not None
    ]
    return root


# --- security -------------------------------------------------------------------------


def security_scheme(call: Any) -> Any | None:
    """The security scheme object a dependency is (FastAPI's SecurityBase: ``model`` and
    ``scheme_name``), or None."""
    while isinstance(call, functools.partial):
        call = call.func
    call = inspect.unwrap(call) if callable(call) else call
    try:
        from data_bridge.api.security.base import SecurityBase  # type: ignore[import-not-found]
    except ImportError:
        SecurityBase = None  # noqa: N806
    if SecurityBase is not None:
        return call if isinstance(call, SecurityBase) else None
    if inspect.isclass(call) or inspect.isroutine(call):
        return None
    if getattr(call, "model", None) is not None and isinstance(
        getattr(call, "scheme_name", None), str
    ):
        return call
    return None


def _generator_call(call: Any) -> bool:
    target = call
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target):
        return True
    if inspect.isclass(target):
        return False
    dunder = getattr(target, "__call__", None)  # noqa: B004
    return inspect.isgeneratorfunction(dunder) or inspect.isasyncgenfunction(dunder)


def _uses_scopes(dependant: Dependant, cache: dict[int, bool]) -> bool:
    key = id(dependant)
    if key not in cache:
        cache[key] = bool(
            dependant.own_scopes
            or dependant.uses_security_scopes
            or security_scheme(dependant.call) is not None
            or any(_uses_scopes(d, cache) for d in dependant.dependencies)
        )
    return cache[key]


def cache_key(dependant: Dependant, cache: dict[int, bool]) -> tuple[Any, ...]:
    """What identifies a dependency that runs once per request (FastAPI's cache key)."""
    scopes = tuple(sorted(set(dependant.scopes))) if _uses_scopes(dependant, cache) else ()
    scope = dependant.scope or ("request" if _generator_call(dependant.call) else "")
    return (_Identity(dependant.call), scopes, scope)


class _Identity:
    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        try:
            return hash(self.obj)
        except TypeError:
            return id(self.obj)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Identity):
            return NotImplemented
        if self.obj is other.obj:
            return True
        try:
            return bool(self.obj == other.obj)
        except Exception:
            return False


# --- bodies ---------------------------------------------------------------------------


def flat_body_params(dependant: Dependant) -> list[ModelField]:
    out: list[ModelField] = []
    stack = [dependant]
    while stack:
        current = stack.pop()
        out.extend(current.body_params)
        stack.extend(reversed(current.dependencies))
    return out


def should_embed(fields: list[ModelField]) -> bool:
    if not fields:
        return False
    if len({f.name for f in fields}) > 1:
        return True
    first = fields[0]
    if form_models(first) and any(
        not form_models(f) or f.field_info.annotation is not first.field_info.annotation
        for f in fields[1:]
    ):
        return True
    if first.doc_attr("embed"):
        return True
    return (
        first.kind in (FORM, FILE)
        and not lenient_issubclass(first.field_info.annotation, BaseModel)
        and not form_models(first)
    )


def body_field(fields: list[ModelField], name: str) -> ModelField | None:
    """The one field that describes the request body: the only body parameter, or a
    ``Body_<operation id>`` model of all of them (FastAPI's rule). Form parameters that are
    models stand for their fields, which are flattened into the form's schema."""
    if not fields:
        return None
    embed = should_embed(fields)
    first = fields[0]
    nullable_form_model = any(
        form_models(f) and type(None) in typing.get_args(f.field_info.annotation) for f in fields
    )
    if not embed and not nullable_form_model:
        return first
    model_name = "Body_" + name
    members = fields
    config: ConfigDict | None = None
    if any(form_models(f) for f in fields):
        members = [_form_member(index, f) for index, f in enumerate(fields)]
        config = {"json_schema_extra": functools.partial(_flatten_form_schema, fields)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(  # type: ignore[call-overload]
            model_name,
            __config__=config,
            **{f.name: (f.field_info.annotation, f.field_info) for f in members},
        )
    if not embed:
        info = copy.copy(first.field_info)
        info.annotation = model
        info.metadata = []
        info.discriminator = None
        return ModelField(first.name, info, kind=first.kind, marker=first.marker)
    required = any(f.field_info.is_required() for f in fields)
    kinds = {f.kind for f in fields}
    if FILE in kinds:
        kind = FILE
    elif FORM in kinds:
        kind = FORM
    else:
        kind = BODY
    media = _MEDIA_TYPES[kind]
    if kind != FILE:
        types = [f.media_type for f in fields if f.kind == kind]
        if kind == FORM and "multipart/form-data" in types:
            media = "multipart/form-data"
        elif len(set(types)) == 1:
            media = types[0]
    info = ParamInfo(annotation=model, alias="body", default=Undefined if required else None)
    field = ModelField("body", info, kind=kind)
    field.marker = _BodyDoc(media)
    return field


def _form_member(index: int, field: ModelField) -> ModelField:
    """A form parameter as field ``field_<index>`` of the body model; a model parameter
    gets its schema with the names the form uses."""
    info = copy.copy(field.field_info)
    models = form_models(field)
    if len(models) == 1:
        model = models[0]
        named = functools.partial(_form_model_schema, model)
        annotated: Any = Annotated[model, GetPydanticSchema(get_pydantic_json_schema=named)]
        info.annotation = annotated if info.annotation is model else annotated | None
    key = f"field_{index}"
    info.alias = info.validation_alias = info.serialization_alias = key
    info.title = info.title or field.name.replace("_", " ").title()
    return ModelField(key, info, kind=field.kind, marker=field.marker)


def param_aliases(field: ModelField, convert_underscores: bool = False) -> list[tuple[str, str]]:
    """(alias, request key) pairs of a parameter, preferred first: the validation alias
    (or alias), alias choices, and the field name when the model validates by name."""
    alias = field.validation_alias or field.alias
    key = alias
    if convert_underscores and alias == field.name:
        key = alias.replace("_", "-")
    validation_alias = field.field_info.validation_alias
    if field.kind == PATH or isinstance(validation_alias, AliasPath):
        return [(alias, key)]
    pairs = [(alias, key)]
    if isinstance(validation_alias, AliasChoices):
        if any(isinstance(c, AliasPath) for c in validation_alias.choices):
            return pairs
        pairs = [(c, c) for c in validation_alias.choices if isinstance(c, str)]
    config = field.config or {}
    if config.get("validate_by_alias") is False or config.get(
        "validate_by_name", config.get("populate_by_name", False)
    ):
        name = field.name.replace("_", "-") if convert_underscores else field.name
        if config.get("validate_by_alias") is False:
            return [(field.name, name)]
        if field.name not in [a for a, _ in pairs]:
            pairs.append((field.name, name))
    return pairs


def _form_model_schema(model: type[BaseModel], core_schema: Any, handler: Any) -> dict[str, Any]:
    """A form model's schema with its properties named as the form's keys."""
    schema = handler(core_schema)
    resolved = handler.resolve_ref_schema(schema)
    properties = resolved.get("properties", {})
    required = resolved.get("required", [])
    renames: dict[str, list[str]] = {}
    for field in model_fields(model):
        validation_alias = field.field_info.validation_alias
        if isinstance(validation_alias, AliasChoices):
            schema_name = validation_alias.choices[0]
        else:
            schema_name = field.validation_alias or field.alias
        names = [alias for alias, _ in param_aliases(field)]
        if (
            isinstance(schema_name, str)
            and schema_name in properties
            and (names[0] != schema_name or (len(names) > 1 and schema_name in required))
        ):
            renames[schema_name] = names
    if not renames:
        return schema
    resolved = copy.deepcopy(resolved)
    resolved["properties"] = {
        renames.get(name, [name])[0]: value for name, value in resolved["properties"].items()
    }
    resolved["required"] = []
    for name in required:
        names = renames.get(name, [name])
        if len(names) == 1:
            resolved["required"].append(names[0])
        else:
            resolved.setdefault("allOf", []).append({"anyOf": [{"required": [n]} for n in names]})
    return resolved


def _flatten_form_schema(params: list[ModelField], schema: dict[str, Any]) -> None:
    """The body model's schema as the form is sent: plain parameters are properties, each
    model parameter an ``allOf`` member (``anyOf`` with "none of its fields" when it may
    be left out)."""
    member_schemas = schema.pop("properties")
    schema.pop("required", None)
    properties: dict[str, Any] = {}
    required: list[str] = []
    conditions: list[dict[str, Any]] = []
    for index, param in enumerate(params):
        member = member_schemas[f"field_{index}"]
        models = form_models(param)
        if not models:
            alias = param_aliases(param)[0][0]
            if alias in properties:
                conditions.append({"properties": {alias: member}})
            else:
                properties[alias] = member
            if param.field_info.is_required() and alias not in required:
                required.append(alias)
            continue
        member.pop("default", None)
        if type(None) in typing.get_args(param.field_info.annotation):
            member["anyOf"] = [c for c in member["anyOf"] if c.get("type") != "null"]
            if any(m.model_config.get("extra") in ("allow", "forbid") for m in models):
                absent: dict[str, Any] = {"maxProperties": 0}
            else:
                names = sorted(
                    {
                        alias
                        for m in models
                        for item in model_fields(m)
                        for alias, _ in param_aliases(item)
                    }
                )
                absent = {"not": {"anyOf": [{"required": [n]} for n in names]}} if names else {}
            if param.field_info.is_required():
                conditions.append({"not": absent})
            else:
                member = {"anyOf": [absent, member]}
        conditions.append(member)
    if properties:
        schema["properties"] = properties
    if required:
        schema["required"] = required
    schema["allOf"] = conditions


@dataclasses.dataclass
class _BodyDoc:
    media_type: str
    openapi_examples: Any = None
    example: Any = None
    embed: bool = False
