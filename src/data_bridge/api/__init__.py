"""FastAPI-style application API served by the native HTTP server."""

from data_bridge.api.app import App, Limits, Route
from data_bridge.api.exceptions import HTTPException
from data_bridge.api.request import QueryParams, Request
from data_bridge.api.responses import (
    Headers,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)

__all__ = [
    "App",
    "Headers",
    "HTMLResponse",
    "HTTPException",
    "JSONResponse",
    "Limits",
    "PlainTextResponse",
    "QueryParams",
    "Request",
    "Response",
    "Route",
]
