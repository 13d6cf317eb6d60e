"""Exceptions under FastAPI's names.

``HTTPException`` answers the request with its status and ``{"detail": ...}``;
``RequestValidationError`` carries the 422 entries of a request that did not bind;
``ResponseValidationError`` is raised when a handler's result does not fit its
``response_model`` (a server error: 500). Starlette's ``HTTPException`` is the same class
here, so a handler registered for either catches both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

__all__ = [
    "DependencyScopeError",
    "FastAPIDeprecationWarning",
    "FastAPIError",
    "HTTPException",
    "RequestValidationError",
    "ResponseValidationError",
    "ValidationException",
    "WebSocketException",
    "WebSocketRequestValidationError",
]


class HTTPException(Exception):
    """Answer the request with ``status_code`` and the JSON body ``{"detail": detail}``.

    As in FastAPI, ``detail`` defaults to the status's reason phrase and may be any
    JSON-encodable value; ``headers`` are added to the response.
    """

    def __init__(
        self,
        status_code: int,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if detail is None:
            try:
                detail = HTTPStatus(status_code).phrase
            except ValueError:
                detail = ""
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers) if headers is not None else None

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"


class WebSocketException(Exception):
    """Close a WebSocket with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"


class FastAPIDeprecationWarning(UserWarning):
    """A deprecated use of the API (a UserWarning, so that it is shown by default, as
    FastAPI's is)."""


class FastAPIError(RuntimeError):
    """A usage error of the API layer."""


class DependencyScopeError(FastAPIError):
    """A dependency depends on another one with a narrower scope: a generator dependency
    of scope "request" on one of scope "function" (whose teardown would come first)."""


class ValidationException(Exception):
    """Validation errors: ``errors()`` gives the entries (type, loc, msg, input, ctx)."""

    def __init__(self, errors: Sequence[Any]) -> None:
        self._errors = errors

    def errors(self) -> Sequence[Any]:
        return self._errors

    def __str__(self) -> str:
        lines = [f"{len(self._errors)} validation error{'s' if len(self._errors) != 1 else ''}:"]
        lines += [f"  {err}" for err in self._errors]
        return "\n".join(lines)


class RequestValidationError(ValidationException):
    """The request did not bind: answered 422 with ``{"detail": errors}`` by default."""

    def __init__(self, errors: Sequence[Any], *, body: Any = None) -> None:
        super().__init__(errors)
        self.body = body


class WebSocketRequestValidationError(ValidationException):
    pass


class ResponseValidationError(ValidationException):
    """A handler's result does not fit its response_model (answered 500)."""

    def __init__(self, errors: Sequence[Any], *, body: Any = None) -> None:
        super().__init__(errors)
        self.body = body
