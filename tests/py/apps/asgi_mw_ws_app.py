"""An App behind pure ASGI middleware with WebSocket routes, for
tests/py/test_api_asgi_websockets.py: Starlette's SessionMiddleware and a middleware that
adds a key to every scope, served by data-bridge (python asgi_mw_ws_app.py PORT) or by
another ASGI server (uvicorn asgi_mw_ws_app:app)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from starlette.middleware.sessions import SessionMiddleware

from data_bridge.api import FastAPI, Request, WebSocket, WebSocketDisconnect


class Tag:
    """A pure ASGI middleware: every scope gets a "tag" (its type)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope["tag"] = f"tagged {scope['type']}"
        await self.app(scope, receive, send)


app = FastAPI()
app.add_middleware(Tag)
app.add_middleware(SessionMiddleware, secret_key="test-secret")


@app.get("/login")
def login(request: Request, user: str) -> dict[str, str]:
    request.session["user"] = user
    return {"user": user}


@app.websocket("/ws/{room}")
async def room(websocket: WebSocket, room: str, q: str = "") -> None:
    await websocket.accept(subprotocol=(websocket.scope["subprotocols"] or [None])[-1])
    await websocket.send_json(
        {
            "room": room,
            "q": q,
            "session": dict(websocket.session),
            "tag": websocket.scope.get("tag"),
            "scheme": websocket.url.scheme,
        }
    )
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "close":
                await websocket.close(4001, "closing on request")
                return
            if message.get("text") is not None:
                await websocket.send_text("echo " + message["text"])
            else:
                await websocket.send_bytes(b"echo " + message["bytes"])
    except WebSocketDisconnect:
        return


if __name__ == "__main__":
    limits = json.loads(os.environ.get("DB_TEST_LIMITS", "{}"))
    app.run(host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", **limits)
