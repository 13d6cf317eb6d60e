"""The raw ASGI hello-world of the ASGI comparison (issue 14 (b)): no framework, one
response, the same app served by data-bridge (`data-bridge asgi_hello:app`), by uvicorn
(`--loop uvloop --http httptools`) and by granian (`--interface asgi`), so that the servers'
own cost per request is what differs. It supports the lifespan protocol, as a real
application does, so no server has to guess."""

from typing import Any

BODY = b"Hello, World!"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(BODY))]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        raise RuntimeError(f"only HTTP is served here, not {scope['type']!r}")
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
