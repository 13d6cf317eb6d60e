"""Static files under Starlette's name: ``app.mount("/static", StaticFiles(directory=...),
name="static")`` serves the files of a directory.

A path is resolved under the directory and refused when it leaves it (``..``, or a
symbolic link pointing outside, unless ``follow_symlink``); a file is sent by the native
streaming writer (FileResponse: Content-Length, Last-Modified, ETag), and answered 304 when
the request's If-None-Match or If-Modified-Since says the client has it (RFC 9110 §13.1).
``html=True`` serves ``index.html`` for a directory (redirecting ``/dir`` to ``/dir/``)
and ``404.html`` for a missing file. A missing file otherwise, and other methods than GET
and HEAD, raise HTTPException(404) and (405) as Starlette's do, which the app's exception
handlers answer (FastAPI's ``{"detail": "Not Found"}``).

Each file served is remembered in ``file_cache`` (a ``_core.FileCache``) under the request
path, with its stat() identity and its header lines: the server answers the next request
for that path itself (200 by sendfile(2), or 304) while the file is unchanged, without
calling this class; whatever it cannot decide alone (a Range, a changed file, a path it
has not seen) still comes here. See csrc/app/files_cache.c.
"""

from __future__ import annotations

import os
import stat
from email.utils import parsedate_to_datetime
from typing import Any

from data_bridge.api.exceptions import HTTPException
from data_bridge.api.responses import FileResponse, RedirectResponse, Response

__all__ = ["NotModifiedResponse", "StaticFiles"]


class NotModifiedResponse(Response):
    """304: the client's copy is current; only the validators are sent back."""

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        kept = {"cache-control", "content-location", "date", "etag", "expires", "vary"}
        super().__init__(None, 304, {k: v for k, v in headers if k in kept})


class StaticFiles:
    """Files of ``directory``, to be mounted on the app."""

    def __init__(
        self,
        *,
        directory: str | os.PathLike[str] | None = None,
        packages: list[Any] | None = None,
        html: bool = False,
        check_dir: bool = True,
        follow_symlink: bool = False,
    ) -> None:
        if packages:
            raise TypeError("StaticFiles(packages=...) is not supported; give directory=")
        if directory is None:
            raise TypeError("StaticFiles needs directory=")
        self.directory = os.fspath(directory)
        self.html = html
        self.follow_symlink = follow_symlink
        if check_dir and not os.path.isdir(self.directory):
            raise RuntimeError(f"Directory '{self.directory}' does not exist")
        from data_bridge import _core

        self.file_cache = _core.FileCache(follow_symlink=follow_symlink)

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        """(full path, stat) of ``path`` under the directory, or ("", None) when it is
        missing or would leave the directory."""
        if "\x00" in path:
            return "", None  # no file has a NUL in its name (a decoded %00: 404, as Starlette)
        root = os.path.realpath(self.directory)
        joined = os.path.join(root, path)
        full = os.path.abspath(joined) if self.follow_symlink else os.path.realpath(joined)
        if os.path.commonpath([full, root]) != root:
            return "", None
        try:
            return full, os.stat(full)
        except (FileNotFoundError, NotADirectoryError, PermissionError, OSError):
            return "", None

    def get_response(self, path: str, method: str, headers: Any) -> Response:
        """The answer for ``path`` (relative to the mount point)."""
        # Raised, as Starlette's StaticFiles does: the app's exception handlers answer
        # them (FastAPI's {"detail": "Not Found"}).
        if method not in ("GET", "HEAD"):
            raise HTTPException(405, headers={"Allow": "GET, HEAD"})
        parts = [p for p in path.split("/") if p]
        relative = os.path.normpath(os.path.join(*parts)) if parts else "."
        if relative.startswith(".."):
            raise HTTPException(404)
        full, st = self.lookup_path(relative)
        if st is not None and stat.S_ISREG(st.st_mode):
            return self._file(full, st, headers, path)
        if st is not None and stat.S_ISDIR(st.st_mode) and self.html:
            index, index_st = self.lookup_path(os.path.join(relative, "index.html"))
            if index_st is not None and stat.S_ISREG(index_st.st_mode):
                if path and not path.endswith("/"):
                    return RedirectResponse(path.rsplit("/", 1)[-1] + "/", status_code=307)
                return self._file(index, index_st, headers, path)
        if self.html:
            missing, missing_st = self.lookup_path("404.html")
            if missing_st is not None and stat.S_ISREG(missing_st.st_mode):
                return FileResponse(missing, status_code=404, stat_result=missing_st)
        raise HTTPException(404)

    def _file(self, full: str, st: os.stat_result, headers: Any, key: str) -> Response:
        response = FileResponse(full, stat_result=st)
        own = response.file_headers(st)
        # The server answers key itself from now on, while the file stays this one: the
        # same header lines as the responses below give it (FileResponse._stream_head's
        # for the whole file, and the 304's).
        head = [*response.raw_headers, *own, ("accept-ranges", "bytes")]
        values = dict(own)
        self.file_cache.remember(
            key,
            full,
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            [(k, v) for k, v in head if k not in ("content-length", "transfer-encoding")],
            NotModifiedResponse(own).raw_headers,
            values["etag"],
            values["last-modified"],
        )
        if self._not_modified(own, headers):
            return NotModifiedResponse(own)
        return response

    @staticmethod
    def _not_modified(own: list[tuple[str, str]], headers: Any) -> bool:
        """RFC 9110 §13.1.2: If-None-Match decides when present; otherwise
        If-Modified-Since (§13.1.3) against Last-Modified."""
        values = dict(own)
        etag = values.get("etag", "")
        if_none_match = headers.get("if-none-match")
        if if_none_match is not None:
            tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
            return "*" in tags or etag in tags
        since = headers.get("if-modified-since")
        if since and "last-modified" in values:
            try:
                return parsedate_to_datetime(values["last-modified"]) <= parsedate_to_datetime(
                    since
                )
            except (TypeError, ValueError):
                return False
        return False
