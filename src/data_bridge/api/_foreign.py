"""FastAPI's and Starlette's own objects, read as ours: what lets an unmodified FastAPI app
(``fastapi.FastAPI``, the real package) take the native path (``_fastapi_native.py``).

At startup, the route planner (``_plan.py``) and the dependency flattener (``depends.py``)
read each signature through ``native_hints``/``native_default``: a ``fastapi.params``
marker (Query, Path, Header, Cookie, Body, Form, File, Depends, Security) becomes ours
with the same arguments, and the classes a handler may ask to be injected (Starlette's
Request, HTTPConnection, Response, BackgroundTasks, WebSocket, UploadFile, FastAPI's
SecurityScopes) become ours. Anything else from those packages in a signature is refused
(``Unsupported``), so the route is served by FastAPI itself rather than guessed at.

At request time, a Starlette response a handler returns is turned into ours by
``native_response`` (through ``_core.set_foreign_responses`` in the native layer and
``convert_result`` in the Python one), and a Starlette ``HTTPException`` gets the answer
ours gets. Nothing here runs for an app written against ``data_bridge.api``: the
translation looks at an object's module, never imports FastAPI, and costs one dict
look-up per annotation at startup.
"""

from __future__ import annotations

import functools
import operator
import types
import typing
from typing import Any

__all__ = [
    "Unsupported",
    "convert_result",
    "enable",
    "foreign_response_class",
    "is_foreign_http_exception",
    "native_default",
    "native_hints",
    "native_response",
]


class Unsupported(TypeError):
    """A FastAPI or Starlette object the native path does not reproduce (a TypeError, as
    the planner's RouteDefinitionError)."""


_FOREIGN_PACKAGES = ("fastapi", "starlette")


def _is_foreign(obj: Any) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.split(".", 1)[0] in _FOREIGN_PACKAGES


@functools.cache
def _class_table() -> dict[tuple[str, str], Any]:
    """(module, qualname) of a FastAPI/Starlette class → ours."""
    from data_bridge.api.background import BackgroundTasks
    from data_bridge.api.datastructures import UploadFile
    from data_bridge.api.requests import HTTPConnection, Request
    from data_bridge.api.responses import Response
    from data_bridge.api.security.base import SecurityScopes
    from data_bridge.api.websockets import WebSocket

    return {
        ("starlette.requests", "Request"): Request,
        ("starlette.requests", "HTTPConnection"): HTTPConnection,
        ("starlette.responses", "Response"): Response,
        ("starlette.background", "BackgroundTasks"): BackgroundTasks,
        ("fastapi.background", "BackgroundTasks"): BackgroundTasks,
        ("starlette.websockets", "WebSocket"): WebSocket,
        ("starlette.datastructures", "UploadFile"): UploadFile,
        ("fastapi.datastructures", "UploadFile"): UploadFile,
        ("fastapi.security.oauth2", "SecurityScopes"): SecurityScopes,
    }


def native_type(annotation: Any) -> Any:
    """The annotation with FastAPI/Starlette classes and markers replaced by ours (the
    same object when there is nothing to replace)."""
    if isinstance(annotation, type):
        if not _is_foreign(annotation):
            return annotation
        # Another class of theirs (OAuth2PasswordRequestForm as a class dependency,
        # HTTPBasicCredentials as a dependency's result) stays: the planner refuses it
        # where it would have to bind it as a value.
        return _class_table().get((annotation.__module__, annotation.__qualname__), annotation)
    origin = typing.get_origin(annotation)
    if origin is None:
        return annotation
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        base = native_type(args[0])
        meta = tuple(native_default(m) for m in args[1:])
        if base is args[0] and all(a is b for a, b in zip(meta, args[1:], strict=True)):
            return annotation
        return typing.Annotated[(base, *meta)]
    new = tuple(native_type(a) if not isinstance(a, list) else a for a in args)
    if all(a is b for a, b in zip(new, args, strict=True)):
        return annotation
    if origin is typing.Union:
        return typing.Union[new]  # noqa: UP007 (rebuilt from its parts)
    if origin is types.UnionType:
        return functools.reduce(operator.or_, new)
    if isinstance(annotation, types.GenericAlias):
        return types.GenericAlias(origin, new)
    copy_with = getattr(annotation, "copy_with", None)
    if copy_with is None:
        raise Unsupported(f"annotation {annotation!r}")
    return copy_with(new)


def native_hints(hints: dict[str, Any]) -> dict[str, Any]:
    """A signature's parameter annotations made ours (the return annotation is left as it
    is: the response model was decided by the route)."""
    return {
        name: value if name == "return" else native_type(value) for name, value in hints.items()
    }


# annotated_types / pydantic metadata objects of a FastAPI marker → our keyword.
_CONSTRAINTS = {
    "Gt": "gt",
    "Ge": "ge",
    "Lt": "lt",
    "Le": "le",
    "MultipleOf": "multiple_of",
    "MinLen": "min_length",
    "MaxLen": "max_length",
}
_GENERAL = frozenset(
    {"pattern", "strict", "allow_inf_nan", "max_digits", "decimal_places", "union_mode"}
)


def _marker_kwargs(marker: Any) -> dict[str, Any]:
    """Our marker's keyword arguments for a FastAPI marker (a pydantic FieldInfo)."""
    from pydantic_core import PydanticUndefined

    default = marker.default
    kw: dict[str, Any] = {"default": Ellipsis if default is PydanticUndefined else default}
    for name in ("title", "description", "examples", "deprecated", "json_schema_extra"):
        value = getattr(marker, name, None)
        if value is not None:
            kw[name] = value
    if marker.default_factory is not None:
        kw["default_factory"] = marker.default_factory
        kw["default"] = Ellipsis
    if marker.alias is not None:
        kw["alias"] = marker.alias
    if marker.validation_alias is not None and marker.validation_alias != marker.alias:
        kw["validation_alias"] = marker.validation_alias
    if marker.serialization_alias is not None and marker.serialization_alias != marker.alias:
        kw["serialization_alias"] = marker.serialization_alias
    if not getattr(marker, "include_in_schema", True):
        kw["include_in_schema"] = False
    openapi_examples = getattr(marker, "openapi_examples", None)
    if openapi_examples is not None:
        kw["openapi_examples"] = openapi_examples
    if marker.discriminator is not None:
        kw["discriminator"] = marker.discriminator
    for item in marker.metadata:
        name = type(item).__name__
        if name in _CONSTRAINTS:
            key = _CONSTRAINTS[name]
            kw[key] = getattr(item, key)
        elif name == "_PydanticGeneralMetadata":
            for key, value in vars(item).items():
                if key not in _GENERAL:
                    raise Unsupported(f"marker constraint {key!r}")
                kw[key] = value
        else:
            raise Unsupported(f"marker metadata {item!r}")
    return kw


def native_default(value: Any) -> Any:
    """A parameter's default (or an Annotated metadata item) with a FastAPI marker
    replaced by ours; anything else as it is."""
    cls = type(value)
    if cls.__module__ != "fastapi.params":
        return value
    from data_bridge.api import params
    from data_bridge.api.depends import Depends, Security

    name = cls.__name__
    if name == "Security":
        return Security(value.dependency, scopes=list(value.scopes), use_cache=value.use_cache)
    if name == "Depends":
        return Depends(value.dependency, use_cache=value.use_cache, scope=value.scope)
    ours = getattr(params, name, None)
    if ours is None or name == "Param":
        raise Unsupported(f"fastapi.params.{name}")
    kw = _marker_kwargs(value)
    if name == "Header":
        kw["convert_underscores"] = value.convert_underscores
    if name == "Body":
        kw["embed"] = value.embed
        kw["media_type"] = value.media_type
    elif name in ("Form", "File"):
        kw["media_type"] = value.media_type
    return ours(**kw)


# --- results -------------------------------------------------------------------------


@functools.cache
def foreign_response_class() -> type | None:
    """Starlette's Response class when Starlette is installed (None otherwise)."""
    try:
        from starlette.responses import Response
    except ImportError:
        return None
    return Response


def _headers(raw: Any) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]


def native_response(resp: Any) -> Any:
    """Ours for a Starlette response: its status, headers (as it rendered them), body or
    body iterator, and background."""
    from starlette.responses import FileResponse as SFile
    from starlette.responses import StreamingResponse as SStream

    from data_bridge.api.responses import FileResponse, Response, StreamingResponse

    if isinstance(resp, SFile):
        # Ours computes the file's own headers (length, etag, last-modified, ranges) from
        # the file when it is sent; the others come from Starlette's rendering.
        own = {"content-length", "last-modified", "etag", "accept-ranges"}
        out: Any = FileResponse(
            resp.path,
            status_code=resp.status_code,
            media_type=resp.media_type,
            background=resp.background,
            filename=resp.filename,
            stat_result=resp.stat_result,
        )
        out.raw_headers = [h for h in _headers(resp.raw_headers) if h[0] not in own] + [
            h for h in out.raw_headers if h[0] in own
        ]
        return out
    if isinstance(resp, SStream):
        out = StreamingResponse(
            resp.body_iterator, status_code=resp.status_code, background=resp.background
        )
        out.raw_headers = _headers(resp.raw_headers)
        return out
    out = Response.__new__(Response)
    out.__dict__.update(
        status_code=resp.status_code, body=bytes(resp.body), raw_headers=_headers(resp.raw_headers)
    )
    if resp.background is not None:
        out.background = resp.background
    return out


# Starlette's Response class once enable() ran (an unmodified FastAPI app is served):
# the Python layer's result paths check it; None costs them one comparison.
FOREIGN_RESPONSE: type | None = None


def enable() -> None:
    """Answer Starlette responses returned by handlers (and exception handlers) as ours,
    in the native layer and the Python one."""
    global FOREIGN_RESPONSE
    from data_bridge import _core

    cls = foreign_response_class()
    if cls is not None and FOREIGN_RESPONSE is None:
        _core.set_foreign_responses(cls, native_response)
        FOREIGN_RESPONSE = cls


def convert_result(result: Any) -> Any:
    """A handler's result with a Starlette response made ours (others unchanged)."""
    if FOREIGN_RESPONSE is not None and isinstance(result, FOREIGN_RESPONSE):
        return native_response(result)
    return result


def is_foreign_http_exception(exc: BaseException) -> bool:
    """Whether exc is Starlette's HTTPException (FastAPI's is a subclass)."""
    for cls in type(exc).__mro__:
        if cls.__name__ == "HTTPException" and cls.__module__ == "starlette.exceptions":
            return True
    return False
