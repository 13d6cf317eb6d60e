"""Middleware under FastAPI's (Starlette's) names.

The request path is native, so middleware is applied by the server as a policy rather
than as a wrapping ASGI stack: CORSMiddleware (``cors.py``), GZipMiddleware (``gzip.py``),
TrustedHostMiddleware (``trustedhost.py``) and HTTPSRedirectMiddleware
(``httpsredirect.py``) are supported, in Starlette's order; ``Middleware(cls, ...)``
entries of ``FastAPI(middleware=[...])`` name them the Starlette way. Other middleware
classes are refused by ``add_middleware`` with a TypeError.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["Middleware"]


class Middleware:
    """A middleware class with its arguments, for ``FastAPI(middleware=[...])``."""

    def __init__(self, cls: Any, *args: Any, **kwargs: Any) -> None:
        self.cls = cls
        self.args = args
        self.kwargs = kwargs

    def __iter__(self) -> Iterator[Any]:
        return iter((self.cls, self.args, self.kwargs))

    def __repr__(self) -> str:
        args = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        name = getattr(self.cls, "__name__", repr(self.cls))
        return f"Middleware({', '.join([name, *args])})"
