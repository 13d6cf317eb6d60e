"""The App called as an ASGI 3 application (``await app(scope, receive, send)``): through
httpx's ASGITransport on asyncio and trio, mounted in a real Starlette app, and the
lifespan protocol; every answer the native path's (the same routing, binding, errors and
documents)."""

import asyncio
from typing import Any

import httpx
import pytest

from data_bridge.api import FastAPI, HTTPException, Request
from data_bridge.api.responses import StreamingResponse


def _app(events: list[str]) -> FastAPI:
    app = FastAPI(
        on_startup=[lambda: events.append("startup")],
        on_shutdown=[lambda: events.append("shutdown")],
    )

    @app.get("/items/{item_id}")
    async def item(item_id: int, request: Request, q: str | None = None) -> dict[str, Any]:
        if item_id == 0:
            raise HTTPException(404, "no item", headers={"x-why": "zero"})
        return {"id": item_id, "q": q, "url": str(request.url)}

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"a", b"b", b"c"]), media_type="text/plain")

    return app


async def _exercise(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/items/3?q=x")
        assert r.json() == {"id": 3, "q": "x", "url": "http://test/items/3?q=x"}
        r = await client.get("/items/0")
        assert r.status_code == 404 and r.headers["x-why"] == "zero"
        assert r.json() == {"detail": "no item"}
        r = await client.get("/items/nope")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "item_id"]
        r = await client.post("/echo", json={"a": [1, 2]})
        assert r.json() == {"a": [1, 2]}
        r = await client.get("/stream")
        assert r.text == "abc" and "transfer-encoding" not in r.headers
        r = await client.get("/openapi.json")
        assert "/items/{item_id}" in r.json()["paths"]


def test_asgi_transport_on_asyncio() -> None:
    asyncio.run(_exercise(_app([])))


def test_asgi_transport_on_trio() -> None:
    trio = pytest.importorskip("trio")
    trio.run(_exercise, _app([]))


def test_lifespan_protocol() -> None:
    events: list[str] = []
    app = _app(events)
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert events == ["startup", "shutdown"]


def test_mounted_in_starlette() -> None:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    outer = Starlette(routes=[Mount("/api", app=_app([]))])
    with TestClient(outer) as client:
        r = client.get("/api/items/5")
        assert r.json() == {"id": 5, "q": None, "url": "http://testserver/api/items/5"}
        assert client.get("/api/nothing").status_code == 404
