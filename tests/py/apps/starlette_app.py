"""A real Starlette application (routes, JSON, streaming, a pure ASGI middleware, a
BaseHTTPMiddleware, lifespan state) served through data-bridge's ASGI driver, for
tests/py/test_asgi_server.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    StreamingResponse,
)
from starlette.routing import Route


class TagMiddleware:
    """Pure ASGI middleware: adds x-tag to every response and counts requests."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.count += 1

        async def tagged(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-tag", str(self.count).encode())]
            await send(message)

        await self.app(scope, receive, tagged)


class TimingMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-base-middleware"] = "yes"
        return response


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from lifespan"}


async def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, Starlette!")


async def item(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "id": request.path_params["item_id"],
            "q": request.query_params.get("q"),
            "tags": request.query_params.getlist("tag"),
        }
    )


async def echo(request: Request) -> JSONResponse:
    data = await request.json()
    return JSONResponse({"received": data, "length": len(await request.body())}, status_code=201)


async def stream(request: Request) -> StreamingResponse:
    n = int(request.query_params.get("n", "5"))

    async def gen() -> AsyncIterator[bytes]:
        for i in range(n):
            yield json.dumps({"i": i}).encode() + b"\n"
            await asyncio.sleep(0.001)

    return StreamingResponse(gen(), media_type="application/x-ndjson")


async def state(request: Request) -> JSONResponse:
    return JSONResponse({"greeting": request.state.greeting})


async def info(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "url": str(request.url),
            "client": list(request.client) if request.client else None,
            "headers": dict(request.headers),
        }
    )


async def file(request: Request) -> FileResponse:
    return FileResponse(request.query_params["path"], filename="data.bin")


async def disconnected(request: Request) -> JSONResponse:
    # is_disconnected() awaits receive() inside a cancelled anyio scope: after the body,
    # receive() waits, and the cancellation must leave the request intact.
    body = await request.body()
    first = await request.is_disconnected()
    second = await request.is_disconnected()
    return JSONResponse({"body": body.decode(), "disconnected": [first, second]})


async def fail(request: Request) -> PlainTextResponse:
    raise RuntimeError("handler failed")


app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/items/{item_id:int}", item),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
        Route("/state", state),
        Route("/info", info),
        Route("/fail", fail),
        Route("/disconnected", disconnected, methods=["POST"]),
        Route("/file", file),
    ],
    middleware=[Middleware(TagMiddleware), Middleware(TimingMiddleware)],
    lifespan=lifespan,
)


if __name__ == "__main__":
    from data_bridge import serve

    serve(app, "127.0.0.1", int(sys.argv[1]), log_level="info", graceful_timeout=3)
