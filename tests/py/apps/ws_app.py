"""A data-bridge app with WebSocket routes, for tests/py/test_websockets.py."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from typing import Annotated, Any

from data_bridge.api import Depends, FastAPI, Header, WebSocket, WebSocketDisconnect, status
from data_bridge.api.exceptions import WebSocketException

app = FastAPI()
app.ws_max_size = 65536
events: list[Any] = []
servers: list[Any] = []

_build = app.build_server


def _capture(*args: Any, **kwargs: Any) -> Any:
    server = _build(*args, **kwargs)
    servers.append(server)
    return server


app.build_server = _capture  # type: ignore[method-assign]


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                events.append(("echo-disconnect", message["code"]))
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect as exc:
        events.append(("echo-disconnect", exc.code))


@app.websocket("/headers-after-accept")
async def headers_after_accept(websocket: WebSocket) -> None:
    # Read only once the request was detached (its fields kept compact until then).
    await websocket.accept()
    await websocket.receive_text()  # the client is ready: its socket stays open till now
    await websocket.send_json(
        {
            "one": websocket.header("x-token"),
            "missing": websocket.header("x-nothing", "none"),
            "all": [list(pair) for pair in websocket.raw_headers if pair[0].startswith("x-")],
            "mapping": websocket.headers.getlist("x-token"),
            "client": list(websocket.client or ()),
            "server": list(websocket.scope["server"] or ()),
        }
    )


@app.websocket("/record/{tag}")
async def record(websocket: WebSocket, tag: str) -> None:
    await websocket.accept()
    try:
        await websocket.receive_text()
    except WebSocketDisconnect as exc:
        events.append((tag, exc.code, exc.reason))


@app.websocket("/params/{item_id}")
async def params(
    websocket: WebSocket,
    item_id: int,
    q: str = "none",
    x_token: Annotated[str | None, Header()] = None,
) -> None:
    wanted = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol="chat" if "chat" in wanted else None)
    await websocket.send_json(
        {
            "item_id": item_id,
            "q": q,
            "token": x_token,
            "path": websocket.url.path,
            "query": dict(websocket.query_params),
            "path_params": websocket.path_params,
            "type": websocket.scope["type"],
        }
    )
    await websocket.close(code=4001, reason="bye")


async def need_token(websocket: WebSocket, token: str | None = None) -> str:
    if token is None:
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="no token")
    return token


@app.websocket("/guarded")
async def guarded(websocket: WebSocket, token: Annotated[str, Depends(need_token)]) -> None:
    await websocket.accept()
    await websocket.send_text(f"token {token}")
    await websocket.close()


@app.websocket("/server-close")
async def server_close(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("closing")
    await websocket.close(code=4000, reason="done here")
    events.append(("server-close", "sent"))


@app.websocket("/fail-after-accept")
async def fail_after_accept(websocket: WebSocket) -> None:
    await websocket.accept()
    raise RuntimeError("boom after accept")


@app.websocket("/fail-before-accept")
async def fail_before_accept(websocket: WebSocket) -> None:
    raise RuntimeError("boom before accept")


@app.websocket("/flood")
async def flood(websocket: WebSocket) -> None:
    """Sends n messages of size bytes as fast as send() lets it (backpressure)."""
    await websocket.accept()
    n, size = (int(x) for x in (await websocket.receive_text()).split())
    payload = b"x" * size
    try:
        for _ in range(n):
            await websocket.send_bytes(payload)
        events.append(("flood", "sent"))
    except WebSocketDisconnect as exc:
        events.append(("flood", exc.code))


@app.websocket("/iter")
async def iterate(websocket: WebSocket) -> None:
    await websocket.accept()
    count = 0
    async for item in websocket.iter_json():
        count += 1
        await websocket.send_json({"got": item, "n": count})
    events.append(("iter-end", count))


@app.get("/events")
async def get_events() -> list[Any]:
    return [list(e) for e in events]


@app.post("/events/clear")
async def clear_events() -> dict[str, bool]:
    events.clear()
    return {"ok": True}


@app.get("/debug/blocks")
async def blocks() -> dict[str, int]:
    events.clear()
    gc.collect()
    await asyncio.sleep(0)
    return {"blocks": sys.getallocatedblocks()}


@app.get("/debug/server")
async def server_stats() -> dict[str, Any]:
    server = servers[-1]
    return {"connections": server.connections, **server.buffers}


if __name__ == "__main__":
    options = json.loads(os.environ.get("DB_TEST_LIMITS", "{}"))
    app.run(
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        graceful_timeout=3,
        **options,
    )
