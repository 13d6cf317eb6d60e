"""Response classes, as in FastAPI/Starlette.

A handler may return one of these instead of a plain value to choose the status code,
headers and media type. The body is rendered to bytes when the response is created; the
native server then writes the status line, Date, Content-Length and these headers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from data_bridge import json as _json


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


class Response:
    """A response with explicit content, status, headers and media type."""

    media_type: str | None = None
    charset = "utf-8"

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        if not isinstance(status_code, int) or not 100 <= status_code <= 999:
            raise ValueError(f"invalid status code {status_code!r}")
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.body = self.render(content)
        self.raw_headers = self._build_headers(headers)

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        if isinstance(content, (bytes, bytearray, memoryview)):
            return bytes(content)
        if isinstance(content, str):
            return content.encode(self.charset)
        raise TypeError(
            f"{type(self).__name__} content must be bytes or str, not {type(content).__name__}"
        )

    def _build_headers(self, headers: Mapping[str, str] | None) -> list[tuple[str, str]]:
        raw = [(str(k).lower(), str(v)) for k, v in (headers or {}).items()]
        if self.media_type is not None and not any(k == "content-type" for k, _ in raw):
            content_type = self.media_type
            if content_type.startswith("text/") and "charset=" not in content_type.lower():
                content_type += f"; charset={self.charset}"
            raw.append(("content-type", content_type))
        return raw

    @property
    def headers(self) -> Headers:
        return Headers(self.raw_headers)

    def set_header(self, name: str, value: str) -> None:
        """Set (replace) a header of this response."""
        name = name.lower()
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != name]
        self.raw_headers.append((name, value))


class JSONResponse(Response):
    """``content`` encoded as JSON by the native codec."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _json.dumps(content)


class PlainTextResponse(Response):
    media_type = "text/plain"


class HTMLResponse(Response):
    media_type = "text/html"
