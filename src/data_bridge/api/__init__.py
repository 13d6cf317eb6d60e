"""FastAPI-style application API served by the native HTTP server."""

from data_bridge.api.app import App, Limits
from data_bridge.api.cors import CORSMiddleware
from data_bridge.api.depends import BackgroundTasks, Depends
from data_bridge.api.exceptions import HTTPException
from data_bridge.api.params import Body, Cookie, Form, Header, Path, Query
from data_bridge.api.request import QueryParams, Request
from data_bridge.api.responses import (
    FileResponse,
    Headers,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from data_bridge.api.routing import APIRouter, Route

__all__ = [
    "APIRouter",
    "App",
    "BackgroundTasks",
    "CORSMiddleware",
    "Body",
    "Cookie",
    "Depends",
    "FileResponse",
    "Form",
    "Header",
    "Headers",
    "HTMLResponse",
    "HTTPException",
    "JSONResponse",
    "Limits",
    "Path",
    "PlainTextResponse",
    "Query",
    "QueryParams",
    "Request",
    "Response",
    "Route",
    "StreamingResponse",
]
