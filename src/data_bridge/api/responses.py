"""Response classes, as in FastAPI/Starlette.

A handler may return one of these instead of a plain value to choose the status code,
headers and media type. The body is rendered to bytes when the response is created; the
native server then writes the status line, Date, Content-Length and these headers.
StreamingResponse and FileResponse produce their body while it is sent (see
``_run_stream``, the coroutine that feeds the native writer).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import mimetypes
import os
import stat
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

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
        self._set_status(status_code, media_type)
        self.body = self.render(content)
        self.raw_headers = self._build_headers(headers)

    def _set_status(self, status_code: int, media_type: str | None) -> None:
        if not isinstance(status_code, int) or not 100 <= status_code <= 999:
            raise ValueError(f"invalid status code {status_code!r}")
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type

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


ContentStream = AsyncIterable[str | bytes] | Iterable[str | bytes]

_STOP = object()


async def _iterate_in_threadpool(iterator: Iterator[str | bytes]) -> AsyncIterator[str | bytes]:
    """A sync iterator's pieces, each produced in the loop's thread pool (as Starlette
    does), so that an iterator that blocks (file or database reads) does not stall the
    loop; the request's context is copied into each call."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    while True:
        chunk = await loop.run_in_executor(None, context.run, next, iterator, _STOP)
        if chunk is _STOP:
            return
        yield chunk  # type: ignore[misc]


class StreamingResponse(Response):
    """A response whose body is produced piece by piece by an iterator.

    ``content`` is an async iterable (an ``async def`` generator) or a sync iterable of
    ``bytes``/``str`` (``str`` is encoded with ``charset``); a sync iterator is advanced in
    the loop's thread pool. The server sends the head at once, then each piece as it comes,
    as HTTP/1.1 chunks (or raw bytes when ``headers`` declare a Content-Length, which must
    then be exact; close-delimited for HTTP/1.0 clients). The producer waits while the
    client reads slower than it produces. If the client goes away, iteration stops and the
    iterator is closed (an async generator's ``finally`` runs); an exception from the
    iterator is logged and the connection is closed without the last chunk, so the client
    sees a truncated body. A HEAD request gets the head only and the iterator is closed
    without being consumed. The request's BackgroundTasks run after the stream ended.
    """

    body_iterator: AsyncIterator[str | bytes]
    # BackgroundTasks of the request, run once the body was sent (set by the route).
    background: Any = None

    def __init__(
        self,
        content: ContentStream,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self._set_status(status_code, media_type)
        self.body = b""
        self._source: object = content
        if isinstance(content, AsyncIterable):
            self.body_iterator = content.__aiter__()
        elif isinstance(content, Iterable) and not isinstance(content, (str, bytes)):
            self.body_iterator = _iterate_in_threadpool(iter(content))
        else:
            raise TypeError(
                f"StreamingResponse content must be an iterable of bytes or str, "
                f"not {type(content).__name__}"
            )
        self.raw_headers = self._build_headers(headers)

    def _stream_head(self) -> tuple[int, list[tuple[str, str]], int | None]:
        """(status, headers, declared Content-Length or None), asked by the server just
        before it sends the head. The server does the framing: Transfer-Encoding given
        by the application is dropped, Content-Length is passed on separately."""
        length = None
        headers = []
        for name, value in self.raw_headers:
            if name == "content-length":
                value = value.strip()
                if not value.isdigit() or not value.isascii():
                    raise ValueError(f"invalid Content-Length {value!r}")
                length = int(value)
            elif name != "transfer-encoding":
                headers.append((name, value))
        return self.status_code, headers, length

    async def _close_iterator(self) -> None:
        """Finalises the iterator: ``aclose()`` of an async generator (its ``finally`` and
        ``async with`` exits run), ``close()`` of a sync generator."""
        aclose = getattr(self.body_iterator, "aclose", None)
        if aclose is not None:
            await aclose()
        close = getattr(self._source, "close", None)
        if close is not None and not isinstance(self._source, AsyncIterable):
            try:
                close()
            except ValueError:
                pass  # still running in a worker thread (cancelled mid-next())


FILE_CHUNK = 64 * 1024


class FileResponse(StreamingResponse):
    """The content of a file, streamed in 64 KiB pieces (never loaded whole).

    The media type is guessed from ``filename`` (or the path) when not given; the head
    carries Content-Length, Last-Modified (an IMF-fixdate, RFC 9110 §5.6.7) and an ETag
    (the same as Starlette's: an MD5 of mtime and size); ``filename`` adds
    ``Content-Disposition: attachment`` with ``filename*`` for non-ASCII names (RFC 6266,
    RFC 8187). As in Starlette, the path is checked when the response is sent, not when it
    is made: a missing path or a directory is an error of the handler (logged, answered
    500 ``{"detail": "Internal Server Error"}``).
    """

    chunk_size = FILE_CHUNK

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        filename: str | None = None,
        content_disposition_type: str = "attachment",
    ) -> None:
        self.path = os.fspath(path)
        self.filename = filename
        if media_type is None:
            media_type = mimetypes.guess_type(filename or self.path)[0] or "text/plain"
        super().__init__(self._read(), status_code, headers, media_type)
        if filename is not None:
            self.set_header(
                "content-disposition", _content_disposition(content_disposition_type, filename)
            )

    def _stream_head(self) -> tuple[int, list[tuple[str, str]], int | None]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise RuntimeError(f"File at path {self.path} does not exist.") from None
        if not stat.S_ISREG(st.st_mode):
            raise RuntimeError(f"File at path {self.path} is not a file.")
        names = {name for name, _ in self.raw_headers}
        if "content-length" not in names:
            self.raw_headers.append(("content-length", str(st.st_size)))
        if "last-modified" not in names:
            self.raw_headers.append(("last-modified", formatdate(st.st_mtime, usegmt=True)))
        if "etag" not in names:
            base = f"{st.st_mtime}-{st.st_size}".encode()
            digest = hashlib.md5(base, usedforsecurity=False).hexdigest()
            self.raw_headers.append(("etag", f'"{digest}"'))
        return super()._stream_head()

    async def _read(self) -> AsyncIterator[bytes]:
        # Reads happen on the loop thread: a 64 KiB read of a regular file is served from
        # the page cache in microseconds, far below a thread-pool round trip (nginx reads
        # files on its event loop too unless aio is configured). See docs/architecture.md.
        with open(self.path, "rb") as f:
            while chunk := f.read(self.chunk_size):
                yield chunk


def _content_disposition(kind: str, filename: str) -> str:
    """RFC 6266 §4.3: ``filename`` for every recipient (ASCII, quoted-string escaped), and
    ``filename*`` (RFC 8187 ext-value, UTF-8, percent-encoded) when the name is not plain
    ASCII; recipients that understand ``filename*`` prefer it."""
    ascii_name = "".join(c if " " <= c < "\x7f" else "?" for c in filename)
    quoted = ascii_name.replace("\\", "\\\\").replace('"', '\\"')
    if ascii_name == filename:
        return f'{kind}; filename="{quoted}"'
    return f"{kind}; filename=\"{quoted}\"; filename*=utf-8''{quote(filename, safe='')}"
