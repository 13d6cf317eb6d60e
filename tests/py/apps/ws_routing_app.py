"""A GET route and a WebSocket route on one path, an HTTP-only and a WebSocket-only path
(tests/py/test_api_ws_routing.py)."""

import sys

from data_bridge.api import FastAPI, WebSocket

app = FastAPI()


@app.get("/same")
async def same_get():
    return {"http": "same"}


@app.websocket("/same")
async def same_ws(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_text("ws " + websocket.url.path)
    await websocket.close()


@app.post("/postonly")
async def post_only():
    return {"http": "post"}


@app.websocket("/wsonly")
async def only_ws(websocket: WebSocket):
    await websocket.accept()
    await websocket.close()


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
