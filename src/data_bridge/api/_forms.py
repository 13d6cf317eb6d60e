"""Forms with files: ``request.form()`` and the binding of ``File()``/``UploadFile`` and
``Form()`` parameters of routes that take files.

The bytes are parsed in C as they arrive (csrc/form through ``_core.MultipartParser``,
fed from ``request.stream()``): a part with a filename becomes an ``UploadFile`` (its
content written to a spooled temporary file as it comes), any other part a str. A route
that declares a file parameter has all its form parameters bound here, from the parsed
form, validated by pydantic and reported as FastAPI does (``["body", name]``); routes with
only ``Form()`` fields of a urlencoded body keep the native binder.
"""

from __future__ import annotations

import asyncio
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
from data_bridge.api.requests import _body_error

__all__ = ["FormField", "bind_form_fields", "form_field", "is_file_annotation", "read_form"]

_MISSING = object()


def _media_type(request: Any) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _spooled(data: bytes) -> tempfile.SpooledTemporaryFile[bytes]:
    """A SpooledTemporaryFile holding data (at most the spooling size: the parser spools
    larger files itself), as Starlette's UploadFile has one. Its in-memory file is a BytesIO
    made on data itself: CPython's BytesIO shares an initial bytes object until it is
    written to, and a read() of all of it returns that object, so neither the spooling nor
    a handler's ``await file.read()`` copies the content."""
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
    max_file_size: int | None = None,
    max_size: int | None = None,
) -> FormData:
    """The request's form (cached on the request): urlencoded or multipart/form-data; any
    other body gives an empty form. A multipart body is parsed as it arrives (file parts
    over the spooling size go to temporary files, never whole into memory). A malformed
    body, or one over Starlette's limits (files, fields, bytes of a field), is answered 400
    with Starlette's message; one over max_file_size (bytes of one file) or max_size (bytes
    of the whole body), 413."""
    cached = request.__dict__.get("_form")
    if cached is not None:
        return cached
    media_type = _media_type(request)
    items: list[tuple[str, Any]] = []
    if media_type == "multipart/form-data":
        items = await _read_multipart(
            request, max_files, max_fields, max_part_size, max_file_size, max_size
        )
    elif media_type == "application/x-www-form-urlencoded":
        body = await request.body()
        items = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        _check_urlencoded(body, max_fields, max_part_size)
    form = FormData(items)
    request.__dict__["_form"] = form
    return form


def _spool() -> Any:
    """The file of a file part larger than the spooling size, as Starlette's UploadFile
    holds one then: a SpooledTemporaryFile rolled over to disk (an unnamed temporary file,
    gone once closed); the parser writes the content to its descriptor."""
    spooled = tempfile.SpooledTemporaryFile(max_size=UploadFile.spool_max_size)
    spooled.rollover()
    return spooled


def _form_error(exc: ValueError) -> HTTPException:
    status = exc.args[1] if len(exc.args) > 1 else 400
    return HTTPException(status, str(exc.args[0]) if exc.args else "Invalid form body")


async def _read_multipart(
    request: Any,
    max_files: int,
    max_fields: int,
    max_part_size: int,
    max_file_size: int | None,
    max_size: int | None,
) -> list[tuple[str, Any]]:
    """The fields of a multipart body. A native Request's body is read by the parser in C
    (whole or streamed, one path); any other request's is fed to it as request.stream()
    yields it. Every file made is closed when the body fails (malformed, over a limit, the
    client gone)."""
    try:
        parser = _core.MultipartParser(
            request.headers.get("content-type", ""),
            _spool,
            max_files=max_files,
            max_fields=max_fields,
            max_part_size=max_part_size,
            max_file_size=max_file_size or 0,
            max_size=max_size or 0,
            spool_max=UploadFile.spool_max_size,
        )
    except ValueError as exc:
        raise _form_error(exc) from None
    try:
        if isinstance(request, _core.Request) and "_received" not in request.__dict__:
            parts = await _read_native(parser, request)
        else:
            async for piece in request.stream():
                if piece:
                    parser.feed(piece)
            parts = parser.finish()
    except ValueError as exc:
        parser.close()
        raise _form_error(exc) from None
    except BaseException:
        parser.close()
        raise
    items: list[tuple[str, Any]] = []
    for name, filename, _content_type, headers, content, size in parts:
        if filename is None:
            items.append((name, content.decode("utf-8", "replace")))
            continue
        if isinstance(content, bytes):
            file = _spooled(content)
        else:
            file = content
            file.seek(0)
        lowered = [(k.lower(), v) for k, v in headers]
        upload = UploadFile(file, size=size, filename=filename, headers=Headers(lowered))
        items.append((name, upload))
    return items


async def _read_native(parser: Any, request: Any) -> list[Any]:
    """The parts of a native Request's body, read by the parser itself: at once for a body
    received whole, else as the server reads it (the future gets the parts)."""
    if request._streamed:
        if request.__dict__.get("_stream_consumed"):
            raise RuntimeError("Stream consumed")
        request.__dict__["_stream_consumed"] = True
    waiter = asyncio.get_running_loop().create_future()
    result = parser.read(request, waiter)
    if result is None:
        result = await waiter
    if isinstance(result, int):
        raise _body_error(result)
    return result


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
