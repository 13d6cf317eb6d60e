"""Data structures of requests and responses, under FastAPI's (Starlette's) names:
``Headers``, ``QueryParams``, ``URL``, ``Address``, ``State`` and ``Default``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, NamedTuple, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "URL",
    "Address",
    "Default",
    "DefaultPlaceholder",
    "FormData",
    "Headers",
    "QueryParams",
    "State",
    "UploadFile",
]

T = TypeVar("T")


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only view of (name, value) pairs; repeated names are kept."""

    __slots__ = ("_list",)

    def __init__(self, raw: list[tuple[str, str]] | None = None) -> None:
        self._list = raw if raw is not None else []

    def __getitem__(self, key: str) -> str:
        key = key.lower()
        for name, value in self._list:
            if name == key:
                return value
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        key = key.lower()
        return any(name == key for name, _ in self._list)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._list)

    def keys(self) -> list[str]:  # type: ignore[override]
        return [name for name, _ in self._list]

    def values(self) -> list[str]:  # type: ignore[override]
        return [value for _, value in self._list]

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return list(self._list)

    def getlist(self, key: str) -> list[str]:
        key = key.lower()
        return [value for name, value in self._list if name == key]

    @property
    def raw(self) -> list[tuple[str, str]]:
        return list(self._list)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self._list) == sorted(other._list)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._list)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"


class QueryParams(Mapping[str, str]):
    """The query string as a read-only multi-mapping; ``[key]`` gives the last value."""

    __slots__ = ("_list", "_dict")

    def __init__(self, query_string: str = "") -> None:
        self._list = parse_qsl(query_string, keep_blank_values=True)
        self._dict = dict(self._list)

    def __getitem__(self, key: str) -> str:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def getlist(self, key: str) -> list[str]:
        return [v for k, v in self._list if k == key]

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._list)

    def __str__(self) -> str:
        # As Starlette's: the query string again (urlencoded), e.g. for building URLs.
        return urlencode(self._list)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class Address(NamedTuple):
    """The peer of a connection: ``request.client``."""

    host: str
    port: int


class URL(str):
    """A URL as a string with its parts as attributes (Starlette's ``URL``)."""

    __slots__ = ()

    @property
    def _parts(self) -> Any:
        return urlsplit(self)

    @property
    def scheme(self) -> str:
        return str(self._parts.scheme)

    @property
    def netloc(self) -> str:
        return str(self._parts.netloc)

    @property
    def hostname(self) -> str | None:
        return self._parts.hostname

    @property
    def port(self) -> int | None:
        return self._parts.port

    @property
    def path(self) -> str:
        return str(self._parts.path)

    @property
    def query(self) -> str:
        return str(self._parts.query)

    @property
    def fragment(self) -> str:
        return str(self._parts.fragment)

    @property
    def components(self) -> Any:
        return self._parts

    def replace(self, **changes: Any) -> URL:  # type: ignore[override]
        parts = self._parts
        if "hostname" in changes or "port" in changes:
            host = changes.pop("hostname", parts.hostname) or ""
            port = changes.pop("port", parts.port)
            changes["netloc"] = f"{host}:{port}" if port is not None else host
        return URL(urlunsplit(parts._replace(**changes)))

    def include_query_params(self, **params: Any) -> URL:
        query = dict(parse_qsl(self.query, keep_blank_values=True))
        query.update({k: str(v) for k, v in params.items()})
        return self.replace(query=urlencode(query))

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"


class State:
    """An object for arbitrary attributes: ``app.state`` and ``request.state``."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_state", dict(state or {}))

    def __setattr__(self, key: str, value: Any) -> None:
        self._state[key] = value

    def __getattr__(self, key: str) -> Any:
        try:
            return self._state[key]
        except KeyError:
            raise AttributeError(f"'State' object has no attribute '{key}'") from None

    def __delattr__(self, key: str) -> None:
        del self._state[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)


class DefaultPlaceholder(Generic[T]):
    """A default value that was not given explicitly (FastAPI's ``Default(...)``), so that
    a router's or the app's setting can take its place."""

    def __init__(self, value: T) -> None:
        self.value = value

    def __bool__(self) -> bool:
        return bool(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DefaultPlaceholder) and other.value == self.value

    def __hash__(self) -> int:
        return hash(("DefaultPlaceholder", self.value))

    def __repr__(self) -> str:
        return f"Default({self.value!r})"


def Default(value: T) -> Any:  # noqa: N802 - FastAPI's name
    """Marks ``value`` as a default that was not chosen by the user."""
    return DefaultPlaceholder(value)


class FormData(Mapping[str, Any]):
    """A form's fields, in order, repeated names kept (Starlette's FormData): ``[name]``
    gives the last value, ``getlist(name)`` every one; values are str or UploadFile."""

    def __init__(self, items: list[tuple[str, Any]] | None = None) -> None:
        self._list = list(items or [])
        self._dict = dict(self._list)

    def __getitem__(self, key: str) -> Any:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def getlist(self, key: str) -> list[Any]:
        return [v for k, v in self._list if k == key]

    def multi_items(self) -> list[tuple[str, Any]]:
        return list(self._list)

    async def close(self) -> None:
        for _, value in self._list:
            if isinstance(value, UploadFile):
                await value.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"


class UploadFile:
    """An uploaded file of a multipart/form-data request: ``filename``, ``content_type``,
    ``size``, ``headers`` and its content in ``file`` (a spooled temporary file: in memory
    up to 1 MiB, on disk beyond), read with ``await read()``."""

    spool_max_size = 1024 * 1024

    def __init__(
        self,
        file: Any,
        *,
        size: int | None = None,
        filename: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        self.file = file
        self.size = size
        self.filename = filename
        self.headers = headers if headers is not None else Headers()

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    async def read(self, size: int = -1) -> bytes:
        return bytes(self.file.read(size))

    async def write(self, data: bytes) -> None:
        if self.size is not None:
            self.size += len(data)
        self.file.write(data)

    async def seek(self, offset: int) -> None:
        self.file.seek(offset)

    async def close(self) -> None:
        self.file.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(filename={self.filename!r}, size={self.size!r}, "
            f"headers={self.headers!r})"
        )

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.is_instance_schema(cls)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "contentMediaType": "application/octet-stream"}
