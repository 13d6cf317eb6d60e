"""``jsonable_encoder``: any value to JSON-compatible Python data, as FastAPI's does.

Responses do not go through it (the native codec encodes models, dataclasses, datetimes,
UUIDs, Decimals and Enums itself); it exists for application code that stores or
compares such data (``jsonable_encoder(item)`` before putting it in a database).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import ipaddress
import pathlib
import re
import types
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["jsonable_encoder"]

IncEx = set[int] | set[str] | dict[int, Any] | dict[str, Any] | None


def _decimal(value: decimal.Decimal) -> int | float:
    # FastAPI: an integral Decimal becomes an int, any other a float.
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(value)
    return float(value)


def _isoformat(value: datetime.date | datetime.time) -> str:
    return value.isoformat()


def _timedelta(value: datetime.timedelta) -> float:
    return value.total_seconds()


ENCODERS_BY_TYPE: dict[type[Any], Callable[[Any], Any]] = {
    bytes: lambda o: o.decode(),
    datetime.date: _isoformat,
    datetime.datetime: _isoformat,
    datetime.time: _isoformat,
    datetime.timedelta: _timedelta,
    decimal.Decimal: _decimal,
    enum.Enum: lambda o: o.value,
    frozenset: list,
    deque: list,
    types.GeneratorType: list,
    ipaddress.IPv4Address: str,
    ipaddress.IPv4Interface: str,
    ipaddress.IPv4Network: str,
    ipaddress.IPv6Address: str,
    ipaddress.IPv6Interface: str,
    ipaddress.IPv6Network: str,
    pathlib.Path: str,
    re.Pattern: lambda o: o.pattern,
    set: list,
    uuid.UUID: str,
}


def _is_model(obj: Any) -> bool:
    return hasattr(type(obj), "__pydantic_serializer__") and hasattr(obj, "model_dump")


def jsonable_encoder(
    obj: Any,
    include: IncEx = None,
    exclude: IncEx = None,
    by_alias: bool = True,
    exclude_unset: bool = False,
    exclude_defaults: bool = False,
    exclude_none: bool = False,
    custom_encoder: dict[Any, Callable[[Any], Any]] | None = None,
    sqlalchemy_safe: bool = True,
) -> Any:
    """Converts ``obj`` to dicts, lists, str, int, float, bool and None."""
    custom_encoder = custom_encoder or {}
    if custom_encoder:
        if type(obj) in custom_encoder:
            return custom_encoder[type(obj)](obj)
        for encoder_type, encoder in custom_encoder.items():
            if isinstance(obj, encoder_type):
                return encoder(obj)
    if include is not None and not isinstance(include, (set, dict)):
        include = set(include)
    if exclude is not None and not isinstance(exclude, (set, dict)):
        exclude = set(exclude)
    again = {
        "by_alias": by_alias,
        "exclude_unset": exclude_unset,
        "exclude_defaults": exclude_defaults,
        "exclude_none": exclude_none,
        "custom_encoder": custom_encoder,
        "sqlalchemy_safe": sqlalchemy_safe,
    }
    if _is_model(obj):
        data = obj.model_dump(
            mode="json",
            include=include,
            exclude=exclude,
            by_alias=by_alias,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
        )
        return jsonable_encoder(data, exclude_none=exclude_none, sqlalchemy_safe=sqlalchemy_safe)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        data = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return jsonable_encoder(data, include=include, exclude=exclude, **again)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, pathlib.PurePath):
        return str(obj)
    if isinstance(obj, (str, int, float, type(None))):
        return obj
    if isinstance(obj, dict):
        allowed = set(obj.keys())
        if include is not None:
            allowed &= set(include)
        if exclude is not None:
            allowed -= set(exclude)
        out = {}
        for key, value in obj.items():
            if (
                (not sqlalchemy_safe or not isinstance(key, str) or not key.startswith("_sa"))
                and (value is not None or not exclude_none)
                and key in allowed
            ):
                out[jsonable_encoder(key, **again)] = jsonable_encoder(value, **again)
        return out
    if isinstance(obj, (list, set, frozenset, tuple, deque, types.GeneratorType)):
        return [jsonable_encoder(item, include=include, exclude=exclude, **again) for item in obj]
    if type(obj) in ENCODERS_BY_TYPE:
        return ENCODERS_BY_TYPE[type(obj)](obj)
    for cls, encoder in ENCODERS_BY_TYPE.items():
        if isinstance(obj, cls):
            return encoder(obj)
    try:
        data = dict(obj)
    except Exception as dict_error:
        try:
            data = vars(obj)
        except Exception as vars_error:
            raise ValueError([dict_error, vars_error]) from vars_error
    return jsonable_encoder(data, include=include, exclude=exclude, **again)
