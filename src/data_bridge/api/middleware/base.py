"""BaseHTTPMiddleware (Starlette's name): Python middleware with ``dispatch(request,
call_next)`` around each route of the native path (see api/_http_middleware.py for how it
runs). ``@app.middleware("http")`` is this class with ``dispatch=`` the function."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from data_bridge.api.responses import Response

__all__ = ["BaseHTTPMiddleware"]

Dispatch = Callable[[Any, Callable[[Any], Awaitable[Response]]], Awaitable[Response]]


class BaseHTTPMiddleware:
    """Starlette's BaseHTTPMiddleware: subclass it and override ``dispatch(request,
    call_next)``, or pass ``dispatch=``; ``app.add_middleware(cls, **options)`` makes it."""

    def __init__(self, app: Any = None, dispatch: Dispatch | None = None) -> None:
        self.app = app
        self.dispatch_func = dispatch if dispatch is not None else self.dispatch

    async def dispatch(self, request: Any, call_next: Callable[[Any], Awaitable[Response]]) -> Any:
        raise NotImplementedError  # pragma: no cover - overridden
