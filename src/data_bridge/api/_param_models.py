"""Parameter models: a pydantic model as a group of query, header, cookie or form fields
(``filters: Annotated[FilterParams, Query()]``), as FastAPI reads them.

Such a parameter becomes a dependency (depends.py) that takes the ``Request`` and
validates the model from the request's values of that source: each field is looked up
under its alias (for headers, the name with '_' as '-' unless ``convert_underscores`` is
off), list fields take every occurrence, and the values the model does not declare are
passed along too, so ``extra="forbid"`` refuses them. Errors are located under the source
and the looked-up name (``["header", "save-data"]``), as in FastAPI's 422. The scalar
parameters of the native binder are not involved: this costs a Python frame per request,
only on routes that declare a parameter model.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Annotated, Any

from data_bridge.api._plan import is_sequence_annotation
from data_bridge.api.exceptions import RequestValidationError
from data_bridge.api.params import Param
from data_bridge.api.requests import Request

__all__ = ["group_dependency", "is_param_model", "param_model_of"]

_SOURCES = ("query", "header", "cookie", "form")


def param_model_of(annotation: Any, marker: Param | None) -> Any:
    """The model of a parameter that is a model of query/header/cookie/form fields
    (``Model`` or ``Model | None``), or None."""
    if marker is None or marker.source not in _SOURCES:
        return None
    try:
        import pydantic
    except ImportError:
        return None

    def is_model(t: Any) -> bool:
        return isinstance(t, type) and issubclass(t, pydantic.BaseModel)

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(args) == 1 and len(typing.get_args(annotation)) == 2:
        annotation = args[0]  # Optional[Model]
    if is_model(annotation):
        return annotation
    if len(args) > 1 and all(is_model(a) for a in args):
        # A union of models (tagged by Form(discriminator=...)): read from the same fields.
        return typing.Union[tuple(args)]  # noqa: UP007 - built at run time
    return None


def _members(model: Any) -> list[Any]:
    args = typing.get_args(model)
    return list(args) if args else [model]


def is_param_model(annotation: Any, marker: Param | None) -> bool:
    """Whether a parameter is a model of query/header/cookie/form fields."""
    return param_model_of(annotation, marker) is not None


async def _values(request: Request, source: str) -> list[tuple[str, Any]]:
    if source == "query":
        return request.query_params.multi_items()
    if source == "header":
        return request.headers.items()
    if source == "cookie":
        return list(request.cookies.items())
    from data_bridge.api._forms import read_form

    return (await read_form(request)).multi_items()


def group_dependency(
    model: Any, marker: Param, name: str, default: Any = Ellipsis
) -> Callable[..., Any]:
    """The dependency that builds ``model`` from the request's ``marker.source`` values.
    With a default (an optional model), a request with none of the model's fields gives
    the default instead, as FastAPI does."""
    source = marker.source
    where = "body" if source == "form" else source  # FastAPI locates form fields in the body
    convert = getattr(marker, "convert_underscores", True)
    # field name -> (the key looked up in the request, the key handed to the model, list?)
    fields: dict[str, tuple[str, str, bool]] = {}
    for member in _members(model):
        for field_name, info in member.model_fields.items():
            key = info.alias or field_name
            lookup = key
            if source == "header":
                lookup = (key.replace("_", "-") if convert and not info.alias else key).lower()
            fields.setdefault(field_name, (lookup, key, is_sequence_annotation(info.annotation)))
    by_lookup = {lookup: field for field, (lookup, _, _) in fields.items()}
    import pydantic

    if len(_members(model)) > 1:
        target = model
        if marker.discriminator:
            target = Annotated[model, pydantic.Field(discriminator=marker.discriminator)]
        validate = pydantic.TypeAdapter(target).validate_python
    else:
        validate = model.model_validate

    async def read(request: Request) -> Any:
        received: dict[str, list[Any]] = {}
        for key, value in await _values(request, source):
            received.setdefault(key.lower() if source == "header" else key, []).append(value)
        data: dict[str, Any] = {}
        shown: dict[str, Any] = {}
        for _field_name, (lookup, key, many) in fields.items():
            values = received.get(lookup)
            if values:
                data[key] = values if many else values[-1 if source != "header" else 0]
                shown[lookup] = data[key]
        if default is not Ellipsis and not shown:
            return default
        for key, values in received.items():
            if key not in by_lookup:
                data[key] = shown[key] = values if len(values) > 1 else values[0]
        try:
            return validate(data)
        except pydantic.ValidationError as exc:
            errors = []
            for err in exc.errors(include_url=False):
                loc = list(err["loc"])
                if loc and loc[0] in fields:
                    loc[0] = fields[loc[0]][0]
                entry = {
                    "type": err["type"],
                    "loc": (where, *loc),
                    "msg": err["msg"],
                    "input": shown if err.get("input") is data else err.get("input"),
                }
                if "ctx" in err:
                    entry["ctx"] = {k: _plain(v) for k, v in err["ctx"].items()}
                errors.append(entry)
            raise RequestValidationError(errors) from None

    read.__name__ = f"{name}_{source}_model"
    read.__qualname__ = read.__name__
    read.__db_param_model__ = (model, marker)  # type: ignore[attr-defined]
    return read


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
