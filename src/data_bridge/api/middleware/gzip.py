"""GZip: Starlette's GZipMiddleware rules, applied by the native server (csrc/gzip/).

``app.add_middleware(GZipMiddleware, minimum_size=1000, compresslevel=5)`` as in FastAPI.
There is no middleware stack: the server compresses a complete response body of at least
``minimum_size`` bytes when the request's Accept-Encoding contains "gzip", unless the
response already has a Content-Encoding, is a 206, or has one of
``exclude_content_types``; such bodies get ``Vary: Accept-Encoding`` whether compressed
for this client or not. Streaming responses (StreamingResponse, FileResponse; SSE is
excluded by default) are compressed whatever their size, piece by piece (each flushed, so
the client can decode what arrived), as one gzip member sent chunked: Starlette decides on
the first piece, so a file under 64 KiB gets a Content-Length there and is chunked here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_EXCLUDED_CONTENT_TYPES", "GZipMiddleware"]

DEFAULT_EXCLUDED_CONTENT_TYPES = (
    "application/grpc",
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "audio/*",
    "font/woff",
    "font/woff2",
    "image/avif",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/event-stream",
    "video/*",
)


class GZipMiddleware:
    """The GZip policy (same options as Starlette's/FastAPI's GZipMiddleware)."""

    def __init__(
        self,
        app: Any = None,
        minimum_size: int = 500,
        compresslevel: int = 9,
        thread_minimum_size: int = 128 * 1024,
        *,
        exclude_content_types: tuple[str, ...] = DEFAULT_EXCLUDED_CONTENT_TYPES,
    ) -> None:
        if not 0 <= compresslevel <= 9:
            raise ValueError(f"compresslevel must be 0..9, got {compresslevel!r}")
        if minimum_size < 0:
            raise ValueError(f"minimum_size must be >= 0, got {minimum_size!r}")
        self.app = app
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel
        # Compression runs on the server's thread; kept for Starlette's signature.
        self.thread_minimum_size = thread_minimum_size
        self.exclude_content_types = tuple(
            t.partition(";")[0].strip().lower() for t in exclude_content_types
        )

    def apply(self, server: Any) -> None:
        """Configures a native server (``_core.Server``) with this policy."""
        excluded = b"".join(t.encode("latin-1") + b"\0" for t in self.exclude_content_types)
        server.set_gzip(self.compresslevel, self.minimum_size, excluded)
