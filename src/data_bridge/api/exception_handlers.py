"""FastAPI's default exception handlers, importable to reuse from custom ones
(``return await http_exception_handler(request, exc)``)."""

from __future__ import annotations

from typing import Any

from data_bridge.api.encoders import jsonable_encoder
from data_bridge.api.exceptions import HTTPException, RequestValidationError
from data_bridge.api.responses import JSONResponse, Response

__all__ = [
    "http_exception_handler",
    "request_validation_exception_handler",
    "websocket_request_validation_exception_handler",
]


def _no_body(status_code: int) -> bool:
    # RFC 9110 §15.2, §15.3.5, §15.4.5: 1xx, 204 and 304 responses carry no content.
    return status_code < 200 or status_code in (204, 304)


def http_exception_response(exc: HTTPException) -> Response:
    headers = getattr(exc, "headers", None)
    if _no_body(exc.status_code):
        return Response(status_code=exc.status_code, headers=headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)


async def http_exception_handler(request: Any, exc: HTTPException) -> Response:
    """``{"detail": exc.detail}`` with the exception's status and headers."""
    return http_exception_response(exc)


async def request_validation_exception_handler(
    request: Any, exc: RequestValidationError
) -> JSONResponse:
    """422 with ``{"detail": exc.errors()}``."""
    return validation_error_response(exc)


async def websocket_request_validation_exception_handler(websocket: Any, exc: Any) -> None:
    """Closes the WebSocket with 1008 (policy violation) and the errors as the reason."""
    await websocket.close(code=1008, reason=str(jsonable_encoder(exc.errors())))
