"""CORS: Starlette's CORSMiddleware rules, applied by the native server.

``app.add_middleware(CORSMiddleware, allow_origins=[...], ...)`` as in FastAPI. There is no
middleware stack: the server asks this policy only about requests that carry an Origin
header. A preflight (OPTIONS with Access-Control-Request-Method) is answered at once,
200 "OK" or 400 "Disallowed CORS origin, method, headers"; any other request gets the
Access-Control-* headers added to whatever response it ends with, errors included.
Header blocks that do not depend on the request are built once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["CORSMiddleware"]

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
SAFELISTED_HEADERS = {"accept", "accept-language", "content-language", "content-type"}


def _lines(headers: dict[str, str]) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())


def _check_value(what: str, value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"{what} may not contain CR, LF or NUL: {value!r}")
    return value


class CORSMiddleware:
    """The CORS policy (same options as Starlette's/FastAPI's CORSMiddleware)."""

    def __init__(
        self,
        app: Any = None,
        allow_origins: Iterable[str] = (),
        allow_methods: Iterable[str] = ("GET",),
        allow_headers: Iterable[str] = (),
        allow_credentials: bool = False,
        allow_origin_regex: str | None = None,
        allow_private_network: bool = False,
        expose_headers: Iterable[str] = (),
        max_age: int = 600,
    ) -> None:
        origins = [_check_value("an origin", o) for o in allow_origins]
        methods = [_check_value("a method", m).upper() for m in allow_methods]
        if "*" in methods:
            methods = list(ALL_METHODS)
        headers = [_check_value("a header name", h) for h in allow_headers]
        exposed = [_check_value("a header name", h) for h in expose_headers]
        self.allow_all_origins = "*" in origins
        self.allow_all_headers = "*" in headers
        self.allow_origins = set(origins)
        self.allow_methods = methods
        self.allow_headers = sorted(SAFELISTED_HEADERS | {h.lower() for h in headers})
        self.allow_credentials = allow_credentials
        self.origin_regex = re.compile(allow_origin_regex) if allow_origin_regex else None
        self.allow_private_network = allow_private_network
        self.explicit_preflight_origin = not self.allow_all_origins or allow_credentials

        simple: dict[str, str] = {}
        if self.allow_all_origins:
            simple["Access-Control-Allow-Origin"] = "*"
        if allow_credentials:
            simple["Access-Control-Allow-Credentials"] = "true"
        if exposed:
            simple["Access-Control-Expose-Headers"] = ", ".join(exposed)
        self._simple = _lines(simple)

        # A preflight's answer depends on all of these request headers (Starlette 1.x).
        preflight: dict[str, str] = {
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
            "Access-Control-Request-Private-Network"
        }
        if not self.explicit_preflight_origin:
            preflight["Access-Control-Allow-Origin"] = "*"
        preflight["Access-Control-Allow-Methods"] = ", ".join(methods)
        preflight["Access-Control-Max-Age"] = str(int(max_age))
        if not self.allow_all_headers:
            preflight["Access-Control-Allow-Headers"] = ", ".join(self.allow_headers)
        if allow_credentials:
            preflight["Access-Control-Allow-Credentials"] = "true"
        self._preflight = preflight

    def is_allowed_origin(self, origin: str) -> bool:
        if self.allow_all_origins:
            return True
        if self.origin_regex is not None and self.origin_regex.fullmatch(origin):
            return True
        return origin in self.allow_origins

    def __call__(
        self,
        origin: str,
        request_method: str | None,
        request_headers: str | None,
        private_network: str | None,
    ) -> bytes | tuple[int, bytes, bytes, bytes] | None:
        """The server's hook for a request with an Origin: header lines to add, or a whole
        preflight answer. (A request without one gets ``Vary: Origin`` from the server.)"""
        if any(c in origin for c in "\r\n"):  # cannot be echoed into a header
            return None
        if request_method is not None:
            return self._preflight_answer(origin, request_method, request_headers, private_network)
        extra = self._simple
        if (self.allow_all_origins and self.allow_credentials) or (
            not self.allow_all_origins and self.is_allowed_origin(origin)
        ):
            # Credentials allowed: the specific origin, never "*" (Fetch standard, CORS
            # check), as Starlette answers.
            extra = extra.replace(b"Access-Control-Allow-Origin: *\r\n", b"")
            extra += f"Access-Control-Allow-Origin: {origin}\r\n".encode("latin-1")
        # Every answer depends on the Origin (Starlette 1.x adds it in each case).
        return extra + b"Vary: Origin\r\n"

    def _preflight_answer(
        self, origin: str, method: str, requested: str | None, private_network: str | None
    ) -> tuple[int, bytes, bytes, bytes]:
        headers = dict(self._preflight)
        failures = []
        if self.is_allowed_origin(origin):
            if self.explicit_preflight_origin:
                headers["Access-Control-Allow-Origin"] = origin
        else:
            failures.append("origin")
        if method not in self.allow_methods:
            failures.append("method")
        if self.allow_all_headers and requested is not None:
            if not any(c in requested for c in "\r\n"):
                headers["Access-Control-Allow-Headers"] = requested
        elif requested is not None:
            for name in requested.lower().split(","):
                if name.strip() not in self.allow_headers:
                    failures.append("headers")
                    break
        if private_network is not None:
            # Private Network Access: the request asks to reach a private address.
            if self.allow_private_network:
                headers["Access-Control-Allow-Private-Network"] = "true"
            else:
                failures.append("private-network")
        body = b"Disallowed CORS " + ", ".join(failures).encode() if failures else b"OK"
        status = 400 if failures else 200
        return status, b"text/plain; charset=utf-8", body, _lines(headers)
