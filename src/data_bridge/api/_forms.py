"""Forms with files: ``request.form()`` and the binding of ``File()``/``UploadFile`` and
``Form()`` parameters of routes that take files.

The bytes are parsed in C (csrc/form through ``_core.parse_multipart``); this module makes
the parts Python values: a part with a filename becomes an ``UploadFile`` (its content in
a spooled temporary file), any other part a str. A route that declares a file parameter
has all its form parameters bound here, from the parsed form, validated by pydantic and
reported as FastAPI does (``["body", name]``); routes with only ``Form()`` fields of a
urlencoded body keep the native binder.
"""

from __future__ import annotations

import inspect
import io
import tempfile
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from data_bridge import _core
from data_bridge.api._plan import is_sequence_annotation
from data_bridge.api.datastructures import FormData, Headers, UploadFile
from data_bridge.api.exceptions import HTTPException, RequestValidationError
from data_bridge.api.params import File, Param

__all__ = ["FormField", "bind_form_fields", "form_field", "is_file_annotation", "read_form"]

_MISSING = object()


def _media_type(request: Any) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _spooled(data: bytes) -> tempfile.SpooledTemporaryFile[bytes]:
    """A SpooledTemporaryFile holding data, as Starlette's UploadFile has one. Under the
    spooling size its in-memory file is a BytesIO made on data itself: CPython's BytesIO
    shares an initial bytes object until it is written to, and a read() of all of it
    returns that object, so neither the spooling nor a handler's ``await file.read()``
    copies the content. Larger content is written out (to disk) as before."""
    spooled = tempfile.SpooledTemporaryFile(max_size=UploadFile.spool_max_size)
    if len(data) <= UploadFile.spool_max_size and isinstance(
        getattr(spooled, "_file", None), io.BytesIO
    ):
        spooled._file = io.BytesIO(data)  # type: ignore[attr-defined]
    else:
        spooled.write(data)
        spooled.seek(0)
    return spooled


async def read_form(
    request: Any,
    max_files: int = 1000,
    max_fields: int = 1000,
    max_part_size: int = 1024 * 1024,
) -> FormData:
    """The request's form (cached on the request): urlencoded or multipart/form-data; any
    other body gives an empty form. A malformed multipart body, or one over the limits
    (Starlette's: files, fields, bytes of a field), is answered 400 with Starlette's
    message."""
    cached = request.__dict__.get("_form")
    if cached is not None:
        return cached
    media_type = _media_type(request)
    items: list[tuple[str, Any]] = []
    if media_type == "multipart/form-data":
        # A native Request is parsed from the connection's buffer (no bytes copy of the
        # body is made for it).
        source = request if isinstance(request, _core.Request) else request._body
        try:
            parts = _core.parse_multipart(
                request.headers.get("content-type", ""),
                source,
                max_files=max_files,
                max_fields=max_fields,
                max_part_size=max_part_size,
            )
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        for name, filename, _content_type, headers, data in parts:
            if filename is None:
                items.append((name, data.decode("utf-8", "replace")))
                continue
            spooled = _spooled(data)
            lowered = [(k.lower(), v) for k, v in headers]
            items.append(
                (
                    name,
                    UploadFile(
                        spooled, size=len(data), filename=filename, headers=Headers(lowered)
                    ),
                )
            )
    elif media_type == "application/x-www-form-urlencoded":
        body = request._body
        items = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        _check_urlencoded(body, max_fields, max_part_size)
    form = FormData(items)
    request.__dict__["_form"] = form
    return form


def _check_urlencoded(body: bytes, max_fields: int, max_part_size: int) -> None:
    """Starlette's FormParser limits: a field's raw name and value together at most
    max_part_size bytes, at most max_fields fields (400 otherwise)."""
    count = 0
    for field in body.split(b"&"):
        name, _, value = field.partition(b"=")
        if not name:
            continue
        if len(name) + len(value) > max_part_size:
            raise HTTPException(400, f"Field exceeded maximum size of {max_part_size // 1024}KB.")
        count += 1
        if count > max_fields:
            raise HTTPException(400, f"Too many fields. Maximum number of fields is {max_fields}.")


def is_file_annotation(annotation: Any) -> bool:
    """UploadFile, bytes-with-File, or a list / Optional of UploadFile."""
    if annotation is UploadFile:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return is_file_annotation(typing.get_args(annotation)[0])
    return any(is_file_annotation(a) for a in typing.get_args(annotation) if a is not type(None))


def _wants_bytes(annotation: Any) -> bool:
    if annotation is bytes:
        return True
    return any(_wants_bytes(a) for a in typing.get_args(annotation))


@dataclass
class FormField:
    """One form parameter bound from the parsed form."""

    name: str  # the handler parameter
    key: str  # the form field name (alias or name)
    many: bool  # list-typed: every occurrence
    to_bytes: bool  # bytes-typed: an UploadFile's content
    default: Any  # _MISSING when required
    validate: Callable[[Any], Any]


def form_field(name: str, annotation: Any, marker: Param | None, default: Any) -> FormField:
    import pydantic

    key = marker.alias if marker is not None and marker.alias else name
    adapter = pydantic.TypeAdapter(annotation)
    required = default is Ellipsis or default is inspect.Parameter.empty
    return FormField(
        name=name,
        key=key,
        many=is_sequence_annotation(annotation),
        to_bytes=_wants_bytes(annotation),
        default=_MISSING if required else default,
        validate=adapter.validate_python,
    )


async def bind_form_fields(
    request: Any, fields: list[FormField], limits: tuple[int, int, int] = (1000, 1000, 1 << 20)
) -> dict[str, Any]:
    """Every form parameter's value, or RequestValidationError with all the errors;
    limits are the route's (max_files, max_fields, max_part_size)."""
    import pydantic

    form = await read_form(request, *limits)
    values: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for field in fields:
        found = form.getlist(field.key)
        if not found or (not field.many and found[-1] == "" and field.default is not _MISSING):
            if field.default is _MISSING:
                errors.append(
                    {
                        "type": "missing",
                        "loc": ("body", field.key),
                        "msg": "Field required",
                        "input": None,
                    }
                )
            else:
                values[field.name] = field.default
            continue
        raw: Any = found if field.many else found[-1]
        if field.to_bytes:
            raw = [await _content(v) for v in raw] if field.many else await _content(raw)
        try:
            values[field.name] = field.validate(raw)
        except pydantic.ValidationError as exc:
            for err in exc.errors(include_url=False):
                errors.append(
                    {
                        "type": err["type"],
                        "loc": ("body", field.key, *err["loc"]),
                        "msg": err["msg"],
                        "input": _shown(err.get("input")),
                    }
                )
    if errors:
        await form.close()  # the handler will not run: nothing else closes the files
        raise RequestValidationError(errors)
    return values


async def _content(value: Any) -> Any:
    if isinstance(value, UploadFile):
        await value.seek(0)
        return await value.read()
    return value


def _shown(value: Any) -> Any:
    if isinstance(value, UploadFile):
        return value.filename
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def is_file_marker(marker: Param | None) -> bool:
    return isinstance(marker, File)
