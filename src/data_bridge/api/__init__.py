"""data_bridge.api: FastAPI's public API, served by the native HTTP server.

``from data_bridge.api import FastAPI`` (or ``App``, the same class) and the rest of the
names ``fastapi`` exports at its top level; the submodules mirror FastAPI's
(``data_bridge.api.responses``, ``.routing``, ``.security``, ``.testclient``, ...).
"""

from data_bridge.api import status
from data_bridge.api.applications import App, FastAPI, Limits
from data_bridge.api.background import BackgroundTasks
from data_bridge.api.datastructures import FormData, Headers, QueryParams, UploadFile
from data_bridge.api.depends import Depends, Security
from data_bridge.api.exceptions import HTTPException, WebSocketException
from data_bridge.api.middleware.cors import CORSMiddleware
from data_bridge.api.params import Body, Cookie, File, Form, Header, Path, Query
from data_bridge.api.requests import Request
from data_bridge.api.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from data_bridge.api.routing import APIRoute, APIRouter, Route
from data_bridge.api.websockets import WebSocket, WebSocketDisconnect

__version__ = "0.165.0"

__all__ = [
    "APIRoute",
    "APIRouter",
    "App",
    "BackgroundTasks",
    "Body",
    "CORSMiddleware",
    "Cookie",
    "Depends",
    "FastAPI",
    "File",
    "FileResponse",
    "FormData",
    "Form",
    "HTMLResponse",
    "HTTPException",
    "Header",
    "Headers",
    "JSONResponse",
    "Limits",
    "Path",
    "PlainTextResponse",
    "Query",
    "QueryParams",
    "RedirectResponse",
    "Request",
    "Response",
    "Route",
    "Security",
    "StreamingResponse",
    "UploadFile",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketException",
    "status",
]
