"""A Starlette app with WebSocket routes (and a raw ASGI one using the denial extension),
served through data-bridge's ASGI driver: the websocket scope of csrc/asgi/websocket.c and
data_bridge/_asgi_ws.py, for tests/py/test_websockets.py."""

from __future__ import annotations

import sys
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

events: list[Any] = []


async def echo(ws: WebSocket) -> None:
    await ws.accept(subprotocol="chat" if "chat" in ws.scope["subprotocols"] else None)
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                events.append(["disconnect", message["code"]])
                return
            if message.get("text") is not None:
                await ws.send_text("echo:" + message["text"])
            else:
                await ws.send_bytes(message["bytes"])
    except WebSocketDisconnect as exc:
        events.append(["disconnect", exc.code])


async def scope_view(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_json(
        {
            "type": ws.scope["type"],
            "scheme": ws.scope["scheme"],
            "path": ws.scope["path"],
            "query": ws.scope["query_string"].decode(),
            "method": ws.scope.get("method"),
        }
    )
    await ws.close(code=4005, reason="seen")


async def deny(ws: WebSocket) -> None:
    await ws.close(code=1008)


async def boom(ws: WebSocket) -> None:
    await ws.accept()
    raise RuntimeError("boom after accept")


async def get_events(request: Any) -> JSONResponse:
    return JSONResponse(events)


starlette_app = Starlette(
    routes=[
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/scope", scope_view),
        WebSocketRoute("/deny", deny),
        WebSocketRoute("/boom", boom),
        Route("/events", get_events),
    ]
)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket" and scope["path"] == "/denial":
        # The websocket.http.response extension: an HTTP answer instead of the upgrade.
        assert (await receive())["type"] == "websocket.connect"
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"x-why", b"token")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})
        return
    await starlette_app(scope, receive, send)


if __name__ == "__main__":
    from data_bridge import serve

    serve(app, "127.0.0.1", int(sys.argv[1]), log_level="warning", graceful_timeout=3)
