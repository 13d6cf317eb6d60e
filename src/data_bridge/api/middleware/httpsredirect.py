"""HTTPSRedirect: Starlette's HTTPSRedirectMiddleware, applied by the native server.

``app.add_middleware(HTTPSRedirectMiddleware)`` as in FastAPI: every plain-HTTP request
is answered with a 307 to the same URL on https (the port dropped when it is 80 or 443),
before routing (csrc/app/guard.c). The server speaks plain HTTP only, so every request is
redirected; put the TLS terminator in front of it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HTTPSRedirectMiddleware"]

GUARD_HTTPS_REDIRECT = 2


class HTTPSRedirectMiddleware:
    """The HTTPS redirect policy (Starlette's/FastAPI's HTTPSRedirectMiddleware)."""

    def __init__(self, app: Any = None) -> None:
        self.app = app

    def apply(self, server: Any, through: int = -1) -> None:
        """Adds this policy to a native server (``_core.Server``), after the outer ones;
        ``through``: how many HTTP middleware its answers pass through (-1: none)."""
        server.add_guard(GUARD_HTTPS_REDIRECT, b"", False, through)
