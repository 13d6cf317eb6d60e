"""The WebSocket and SSE benchmark app on FastAPI (bench/ws_bench.py), served by uvicorn
(websockets implementation) and by granian (--interface asgi). The same code as
ws_databridge_app.py."""

from __future__ import annotations

from collections.abc import AsyncIterable

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.sse import EventSourceResponse

app = FastAPI()
clients: set[WebSocket] = set()
BROADCAST = "b" * 64


@app.get("/")
def index() -> dict[str, bool]:
    return {"ok": True}


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


@app.websocket("/broadcast")
async def broadcast(websocket: WebSocket) -> None:
    await websocket.accept()
    clients.add(websocket)
    try:
        await websocket.send_text("hi")  # registered: the client may start
        while True:
            await websocket.receive_text()
            for client in list(clients):
                await client.send_text(BROADCAST)
    except WebSocketDisconnect:
        pass
    finally:
        clients.discard(websocket)


@app.get("/sse", response_class=EventSourceResponse)
async def sse() -> AsyncIterable[dict[str, object]]:
    i = 0
    while True:
        yield {"i": i, "text": "an event of about sixty-four bytes"}
        i += 1
