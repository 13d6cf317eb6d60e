"""msgspec.Struct bodies and responses, through msgspec when it is installed (an optional
dependency): a body parameter typed with a Struct (or ``list[Struct]``, ``Struct | None``)
is decoded and validated by ``msgspec.json.decode(body, type=...)`` straight from the body
bytes, a response model that is one is checked with ``msgspec.convert`` and written by
``msgspec.json.encode``, and a Struct returned without a response model is written by the
JSON encoder through ``msgspec.to_builtins``. A failed validation is a 422 in FastAPI's
shape, its location read from msgspec's message (``... - at `$.lines[0].qty```).
"""

from __future__ import annotations

import re
import typing
from typing import Any

__all__ = ["StructAdapter", "is_struct_annotation", "struct_errors", "struct_schema"]

_AT = re.compile(r" - at `\$((?:\.[^.\[`]+|\[\d+\])*)`$")
_PART = re.compile(r"\.([^.\[`]+)|\[(\d+)\]")


def _msgspec() -> Any:
    try:
        import msgspec
    except ImportError:
        return None
    return msgspec


def is_struct_annotation(annotation: Any) -> bool:
    """Whether the annotation is a Struct, or holds one (list[Struct], Struct | None)."""
    msgspec = _msgspec()
    if msgspec is None:
        return False
    if isinstance(annotation, type):
        return issubclass(annotation, msgspec.Struct)
    return any(is_struct_annotation(a) for a in typing.get_args(annotation))


def struct_errors(exc: Exception, prefix: tuple[Any, ...], value: Any) -> list[dict[str, Any]]:
    """One FastAPI-style error from a msgspec.ValidationError (msgspec reports the first)."""
    message = str(exc)
    loc: list[Any] = list(prefix)
    found = _AT.search(message)
    if found:
        message = message[: found.start()]
        for name, index in _PART.findall(found.group(1)):
            loc.append(int(index) if index else name)
    missing = message.startswith("Object missing required field `")
    # The input is the value at the error's location, as pydantic reports it (for a
    # missing field, the object that lacks it).
    value = _at(value, loc[len(prefix) :])
    if missing:
        loc.append(message.split("`")[1])
    return [
        {
            "type": "missing" if missing else "value_error",
            "loc": tuple(loc),
            "msg": "Field required" if missing else message,
            "input": value,
        }
    ]


def _at(value: Any, path: list[Any]) -> Any:
    """The part of a decoded value a location names (None when it does not exist)."""
    for part in path:
        if isinstance(part, int) and isinstance(value, list) and -len(value) <= part < len(value):
            value = value[part]
        elif isinstance(part, str) and isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return None
    return value


class StructAdapter:
    """What the route machinery asks of a pydantic TypeAdapter, done by msgspec."""

    def __init__(self, annotation: Any) -> None:
        self.annotation = annotation
        self._msgspec = msgspec = _msgspec()
        # A Decoder made once for the type (msgspec.json.decode looks the type up on every
        # call); it reads any buffer, so the body is not copied.
        self._decode = msgspec.json.Decoder(annotation).decode
        self._encode = msgspec.json.Encoder().encode

    def validate_python(self, value: Any, from_attributes: bool = False) -> Any:
        return self._msgspec.convert(value, self.annotation, from_attributes=from_attributes)

    def validate_json(self, raw: Any) -> Any:
        return self._decode(raw)

    def dump_json(self, value: Any, **_options: Any) -> bytes:
        # FastAPI's include/exclude options are pydantic's; a Struct's own settings
        # (rename, omit_defaults) decide its output.
        return self._encode(value)


def struct_schema(annotation: Any) -> dict[str, Any]:
    """msgspec's JSON Schema of the annotation with its definitions inlined (OpenAPI shows
    the Struct's fields where it is used)."""
    msgspec = _msgspec()
    schema = msgspec.json.schema(annotation)
    defs = schema.pop("$defs", {})

    def inline(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.rsplit("/", 1)[1]
                if name in seen:  # recursive: leave an open object
                    return {"type": "object", "title": name}
                return inline(defs[name], seen | {name})
            return {k: inline(v, seen) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v, seen) for v in node]
        return node

    return inline(schema, frozenset())
