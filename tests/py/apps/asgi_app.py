"""A raw ASGI 3 application (no framework) for tests/py/test_asgi_server.py, served by
``data_bridge.serve``. Behaviour is chosen by the path; DB_TEST_LIFESPAN picks how the
lifespan scope is answered ("ok", "fail", "raise", "ignore") and DB_TEST_LIFESPAN_LOG
names a file that records the lifespan events."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from typing import Any

LIFESPAN = os.environ.get("DB_TEST_LIFESPAN", "ok")
LIFESPAN_LOG = os.environ.get("DB_TEST_LIFESPAN_LOG")

# What /long observed, read back through /events.
events: list[str] = []
# /flow: bytes the producer had queued when the client started reading.
flow: dict[str, Any] = {}


def note(event: str) -> None:
    if LIFESPAN_LOG:
        with open(LIFESPAN_LOG, "a") as f:
            f.write(event + "\n")


async def lifespan(scope: dict, receive: Any, send: Any) -> None:
    if LIFESPAN == "raise":
        raise RuntimeError("no lifespan here")
    if LIFESPAN == "ignore":
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if LIFESPAN == "fail":
                note("startup-failed")
                await send({"type": "lifespan.startup.failed", "message": "database is down"})
                return
            scope["state"]["db"] = "connected"
            scope["state"]["shared"] = []
            note("startup")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            note("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def start(send: Any, status: int = 200, headers: list | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})


async def text(send: Any, body: bytes, status: int = 200, headers: list | None = None) -> None:
    await start(send, status, [(b"content-type", b"text/plain"), *(headers or [])])
    await send({"type": "http.response.body", "body": body})


def jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return {"seq": type(value).__name__, "items": [jsonable(v) for v in value]}
    return value


async def read_body(receive: Any) -> tuple[bytes, int]:
    body, pieces = b"", 0
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        body += message.get("body", b"")
        pieces += 1
        if not message.get("more_body", False):
            return body, pieces


async def long_stream(receive: Any, send: Any) -> None:
    """Streams until the client leaves; records how it learnt of it."""

    await read_body(receive)

    async def watch() -> None:
        message = await receive()
        events.append(f"receive:{message['type']}")

    watcher = asyncio.ensure_future(watch())
    await start(send, 200, [(b"content-type", b"text/plain")])
    try:
        for i in range(100000):
            await send({"type": "http.response.body", "body": b"tick %d\n" % i, "more_body": True})
            await asyncio.sleep(0.005)
    except OSError as exc:
        events.append(f"send:{type(exc).__name__}")
    await asyncio.wait([watcher], timeout=2)


async def flow_control(send: Any) -> None:
    """64 MiB in 256 KiB pieces as fast as send() lets it go."""
    piece = b"x" * 262144
    await start(send, 200, [(b"content-length", str(256 * len(piece)).encode())])
    flow["sent"] = 0
    for _ in range(256):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        flow["sent"] += len(piece)
    await send({"type": "http.response.body", "body": b""})


async def violation(kind: str, send: Any) -> None:
    body = {"type": "http.response.body", "body": b"x"}
    if kind == "body-before-start":
        await send(body)
    elif kind == "start-twice":
        await start(send)
        await start(send)
    elif kind == "unknown-type":
        await send({"type": "http.response.nonsense"})
    elif kind == "bad-status":
        await send({"type": "http.response.start", "status": "200"})
    elif kind == "bad-headers":
        await start(send, 200, [("content-type", "text/plain")])
    elif kind == "split-header":
        await start(send, 200, [(b"x-a", b"1\r\nx-injected: 1")])
    elif kind == "str-body":
        await start(send)
        await send({"type": "http.response.body", "body": "text"})
    elif kind == "no-start":
        return
    elif kind == "start-only":
        await start(send)
    elif kind == "raise":
        raise ValueError("boom before start")
    elif kind == "raise-mid-stream":
        await start(send)
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom mid-stream")
    elif kind == "start-mid-stream":
        await start(send)
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await start(send)
    elif kind == "after-complete":
        await text(send, b"done")
        try:
            await send(body)
        except RuntimeError:
            events.append("after-complete:RuntimeError")
    elif kind == "not-a-dict":
        await send([("type", "http.response.start")])
    elif kind == "short-content-length":
        await start(send, 200, [(b"content-length", b"10")])
        await send({"type": "http.response.body", "body": b"abc"})
    elif kind == "long-content-length":
        await start(send, 200, [(b"content-length", b"2")])
        await send({"type": "http.response.body", "body": b"abc"})


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    assert scope["type"] == "http"
    path = scope["path"]
    root_path = scope["root_path"]
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]  # routed on what follows root_path, as Starlette
    flow["requests"] = flow.get("requests", 0) + 1
    if path == "/hello":
        await text(send, b"Hello, world!")
    elif path.startswith("/scope"):
        await text(send, json.dumps(jsonable(scope)).encode(), headers=[(b"x-kind", b"scope")])
    elif path == "/echo":
        body, pieces = await read_body(receive)
        await text(send, body, headers=[(b"x-pieces", str(pieces).encode())])
    elif path == "/after-body":
        # receive() after the whole body and after the response: http.disconnect.
        await read_body(receive)
        await text(send, b"ok")
        message = await receive()
        events.append(f"after-response:{message['type']}")
    elif path == "/wait-disconnect":
        # The client leaves before the response started: receive() says so.
        await read_body(receive)
        message = await receive()
        events.append(f"pending:{message['type']}")
        try:
            await text(send, b"too late")
        except OSError as exc:
            events.append(f"pending-send:{type(exc).__name__}")
    elif path == "/pathsend":
        params = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&"))
        headers = [(b"content-type", b"application/octet-stream")]
        if "declare" in params:
            headers.append((b"content-length", params["declare"].encode()))
        await start(send, 200, headers)
        try:
            await send({"type": "http.response.pathsend", "path": params["path"]})
            events.append(f"pathsend:{params.get('tag')}:done")
        except OSError as exc:
            events.append(f"pathsend:{params.get('tag')}:{type(exc).__name__}")
    elif path == "/pathsend-first":
        await send({"type": "http.response.pathsend", "path": "/etc/hostname"})
    elif path == "/debug/blocks":
        events.clear()  # the test's own bookkeeping is not a leak
        gc.collect()
        await text(send, json.dumps({"blocks": sys.getallocatedblocks()}).encode())
    elif path == "/pid":
        await text(send, str(os.getpid()).encode())
    elif path == "/sleep":
        await asyncio.sleep(float(scope["query_string"].decode().partition("=")[2] or 1))
        await text(send, b"slept")
    elif path == "/two-receivers":
        # Two receive() calls waiting at once both get http.disconnect when the response
        # is complete.
        await read_body(receive)
        waiters = [asyncio.ensure_future(receive()), asyncio.ensure_future(receive())]
        await asyncio.sleep(0.01)
        await text(send, b"ok")
        done = await asyncio.gather(*waiters)
        events.append("two:" + ",".join(m["type"] for m in done))
    elif path == "/stream":
        n = int(scope["query_string"].decode().partition("=")[2] or 3)
        await start(send, 200, [(b"content-type", b"text/plain")])
        for i in range(n):
            await send({"type": "http.response.body", "body": b"piece %d;" % i, "more_body": True})
            await asyncio.sleep(0.001)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/stream-cl":
        await start(send, 200, [(b"content-length", b"12"), (b"content-type", b"text/plain")])
        for piece in (b"abcd", b"efgh", b"ijkl"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body"})
    elif path == "/declared-length":
        await start(send, 200, [(b"content-length", b"5")])
        await send({"type": "http.response.body", "body": b"hello"})
    elif path == "/close":
        await text(send, b"bye", headers=[(b"connection", b"close")])
    elif path == "/status":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/state":
        state = scope.get("state")
        state_info = {"present": state is not None}
        if state is not None:
            state["shared"].append(1)
            state["mine"] = True
            state_info.update(db=state["db"], shared=len(state["shared"]), keys=sorted(state))
        await text(send, json.dumps(state_info).encode())
    elif path == "/long":
        await long_stream(receive, send)
    elif path == "/flow":
        await flow_control(send)
    elif path == "/flow-stats":
        await text(send, json.dumps(flow).encode())
    elif path == "/events":
        await text(send, json.dumps(events).encode())
    elif path.startswith("/violation/"):
        await violation(path.rpartition("/")[2], send)
    else:
        await text(send, b"not found", status=404)


if __name__ == "__main__":
    from data_bridge import serve

    limits = json.loads(os.environ.get("DB_TEST_LIMITS", "{}"))
    workers = int(os.environ.get("DB_TEST_WORKERS", "1"))
    serve(
        app,
        "127.0.0.1",
        int(sys.argv[1]),
        log_level="info",
        graceful_timeout=3,
        workers=workers,
        **limits,
    )
