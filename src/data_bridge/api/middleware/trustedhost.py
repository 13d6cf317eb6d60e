"""TrustedHost: Starlette's TrustedHostMiddleware rules, applied by the native server.

``app.add_middleware(TrustedHostMiddleware, allowed_hosts=["example.com", "*.example.com"])``
as in FastAPI. The server checks the Host header before routing (csrc/app/guard.c): a
host that is no allowed name and matches no ``*.domain`` pattern gets 400 "Invalid host
header", or a 307 to the same URL on "www." + host when that is allowed and
``www_redirect`` is on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ENFORCE_DOMAIN_WILDCARD", "TrustedHostMiddleware"]

ENFORCE_DOMAIN_WILDCARD = "Domain wildcard patterns must be like '*.example.com'."
GUARD_TRUSTED_HOST = 1


class TrustedHostMiddleware:
    """The trusted-host policy (same options as Starlette's/FastAPI's)."""

    def __init__(
        self,
        app: Any = None,
        allowed_hosts: Sequence[str] | None = None,
        www_redirect: bool = True,
    ) -> None:
        if allowed_hosts is None:
            allowed_hosts = ["*"]
        for pattern in allowed_hosts:
            if "*" in pattern[1:] or (
                pattern.startswith("*") and pattern != "*" and not pattern.startswith("*.")
            ):
                raise AssertionError(ENFORCE_DOMAIN_WILDCARD)
            if "\0" in pattern:
                raise ValueError(f"a host pattern may not contain NUL: {pattern!r}")
        self.app = app
        self.allowed_hosts = [pattern.lower() for pattern in allowed_hosts]
        self.allow_any = "*" in allowed_hosts
        self.www_redirect = www_redirect

    def apply(self, server: Any, through: int = -1) -> None:
        """Adds this policy to a native server (``_core.Server``), after the outer ones;
        ``through``: how many HTTP middleware its answers pass through (-1: none)."""
        patterns = b"".join(p.encode("utf-8") + b"\0" for p in self.allowed_hosts)
        server.add_guard(GUARD_TRUSTED_HOST, patterns, self.www_redirect, through)
