"""Files for tests/py/test_server_files.py: FileResponse of any path, the StaticFiles of
DB_TEST_STATIC mounted at /static, a FileResponse with a background task, and a small
route to pipeline behind them."""

from __future__ import annotations

import json
import os
import sys

from data_bridge.api import FastAPI
from data_bridge.api.background import BackgroundTask
from data_bridge.api.responses import FileResponse, PlainTextResponse
from data_bridge.api.staticfiles import StaticFiles

app = FastAPI()
app.mount("/static", StaticFiles(directory=os.environ["DB_TEST_STATIC"]), name="static")
done: list[str] = []


@app.get("/file")
def file_response(path: str) -> FileResponse:
    return FileResponse(path)


@app.get("/file-async")
async def file_response_async(path: str) -> FileResponse:
    return FileResponse(path)


@app.get("/file-background")
def file_background(path: str) -> FileResponse:
    return FileResponse(path, background=BackgroundTask(done.append, path))


@app.get("/done", response_class=PlainTextResponse)
def background_done() -> str:
    return "\n".join(done)


@app.get("/hello", response_class=PlainTextResponse)
def hello() -> str:
    return "Hello, world!"


if __name__ == "__main__":
    limits = json.loads(os.environ.get("DB_TEST_LIMITS", "{}"))
    app.run(host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", **limits)
