"""Mounts under @app.middleware("http") on a real server, for
tests/py/test_api_mount_middleware.py: a raw ASGI app (echo of its scope and body, or a
streamed answer), a sub-App (with a WebSocket route), a Starlette app's WebSocket route,
and the StaticFiles of DB_TEST_STATIC."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from data_bridge.api import FastAPI, Request, WebSocket

app = FastAPI()


@app.middleware("http")
async def mark(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["x-mw"] = f"{request.url.path}|{request.scope['root_path']}"
    return response


async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-raw", b"1")]})
    if scope["path"].endswith("/stream"):
        for n in range(3):
            await send({"type": "http.response.body", "body": b"%d;" % n, "more_body": True})
            await asyncio.sleep(0.01)
    text = f"{scope['path']} {scope['root_path']} {size}"
    await send({"type": "http.response.body", "body": text.encode()})


sub = FastAPI()


@sub.get("/hi")
def hi(request: Request) -> dict[str, str]:
    return {"root": request.scope["root_path"]}


async def echo(websocket: Any) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text() + "!")
    await websocket.close()


@sub.websocket("/ws")
async def sub_ws(websocket: WebSocket) -> None:
    await echo(websocket)


app.mount("/raw", raw)
app.mount("/st", Starlette(routes=[WebSocketRoute("/ws", echo)]))
app.mount("/sub", sub)
if "DB_TEST_STATIC" in os.environ:
    from data_bridge.api.staticfiles import StaticFiles

    app.mount("/static", StaticFiles(directory=os.environ["DB_TEST_STATIC"]))

if __name__ == "__main__":
    limits = json.loads(os.environ.get("DB_TEST_LIMITS", "{}"))
    app.run(host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", **limits)
