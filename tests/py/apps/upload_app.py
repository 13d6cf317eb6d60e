"""Routes that read their request bodies as they arrive, for tests/py/test_server_upload.py:
uploads (File/UploadFile, request.form()), request.stream(), a handler that does not read
its body, and an ASGI app mounted at /asgi whose receive() pieces the tests inspect.
DB_TEST_LIMITS (JSON) gives the server limits."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from typing import Annotated, Any

from data_bridge.api import App, File, Form, Request, UploadFile
from data_bridge.api.requests import ClientDisconnect
from data_bridge.api.responses import StreamingResponse

app = App()
# What the handlers observed, read back through /events.
events: list[Any] = []


async def digest(upload: UploadFile) -> dict[str, Any]:
    h = hashlib.sha256()
    while chunk := await upload.read(1 << 16):
        h.update(chunk)
    return {"filename": upload.filename, "size": upload.size, "sha256": h.hexdigest()}


@app.post("/upload")
async def upload(file: Annotated[UploadFile, File()], note: Annotated[str, Form()] = "") -> Any:
    return {**await digest(file), "note": note, "rolled": bool(file.file._rolled)}


@app.post("/files")
async def files(files: Annotated[list[UploadFile], File()]) -> list[dict[str, Any]]:
    return [await digest(f) for f in files]


@app.post("/form")
async def form(request: Request) -> dict[str, Any]:
    try:
        q = request.query_params
        data = await request.form(
            max_files=int(q.get("max_files", "1000")),
            max_fields=int(q.get("max_fields", "1000")),
            max_part_size=int(q.get("max_part_size", str(1 << 20))),
            max_file_size=int(q.get("max_file_size", "0")) or None,
            max_size=int(q.get("max_size", "0")) or None,
        )
    except ClientDisconnect:
        events.append("form-disconnect")
        raise
    out: dict[str, Any] = {}
    for key, value in data.multi_items():
        out[key] = await digest(value) if isinstance(value, UploadFile) else value
    await data.close()
    return out


@app.post("/stream")
async def stream(request: Request) -> dict[str, Any]:
    sizes = []
    h = hashlib.sha256()
    async for piece in request.stream():
        sizes.append(len(piece))
        h.update(piece)
        if request.query_params.get("slow"):
            await asyncio.sleep(0.05)
    return {"sizes": sizes, "total": sum(sizes), "sha256": h.hexdigest()}


@app.post("/body")
async def body(request: Request) -> dict[str, Any]:
    data = await request.body()
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.post("/watch")
async def watch(request: Request) -> dict[str, bool]:
    """Reads the first piece, then waits for the client to leave."""
    async for _ in request.stream():
        break
    for _ in range(250):
        if await request.is_disconnected():
            events.append("watch-disconnected")
            break
        await asyncio.sleep(0.02)
    return {"disconnected": await request.is_disconnected()}


@app.post("/echo")
async def echo(request: Request) -> StreamingResponse:
    """The body sent back as it arrives, read after the handler returned."""

    async def pieces() -> Any:
        async for piece in request.stream():
            yield piece

    return StreamingResponse(pieces(), media_type="application/octet-stream")


# The last streamed Request a handler kept, read back by /kept after its request ended.
kept: list[Request] = []


@app.post("/keep")
async def keep(request: Request) -> dict[str, int]:
    size = sum([len(piece) async for piece in request.stream()])
    kept[:] = [request]
    return {"size": size}


@app.get("/kept")
def get_kept() -> dict[str, Any]:
    r = kept[0]
    return {
        "method": r.method,
        "path": r.url.path,
        "query": r.url.query,
        "header": r.headers.get("x-kept"),
        "client": r.client is not None and r.client.host,
    }


@app.post("/noread")
async def noread(request: Request) -> dict[str, str]:
    return {"read": "no"}


@app.post("/json")
async def json_body(item: dict[str, Any]) -> dict[str, Any]:
    return item


if os.environ.get("DB_TEST_BIG_ROUTE"):

    @app.post("/big-json", max_body_size=256 * 1024 * 1024)
    async def big_json(item: dict[str, Any]) -> int:
        """A route allowed large bodies: the server's max_body becomes its limit, which
        must not make uploads to the other routes arrive whole."""
        return len(item)


@app.get("/events")
def get_events() -> list[Any]:
    return events


async def asgi_echo(scope: dict, receive: Any, send: Any) -> None:
    """Answers with the sizes of the http.request messages it received (more_body
    flags too); ?slow sleeps between receive() calls, ?hold after the first one, ?stop
    reads one message only."""
    query = scope.get("query_string", b"").decode()
    messages = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            events.append("asgi-" + message["type"])
            return
        messages.append([len(message["body"]), message.get("more_body", False)])
        if "stop" in query or not message.get("more_body", False):
            break
        if "slow" in query:
            await asyncio.sleep(0.02)
        if "hold" in query and len(messages) == 1:
            # Stops reading for a while: the server must stop reading the socket too.
            events.append("asgi-holding")
            await asyncio.sleep(1.5)
    body = json.dumps(messages).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


app.mount("/asgi", asgi_echo)


if __name__ == "__main__":
    limits = json.loads(os.environ.get("DB_TEST_LIMITS", "{}"))
    app.run(host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", **limits)
