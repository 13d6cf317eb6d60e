"""WebSocket routes and HTTP routes in one router, against FastAPI: an upgrade matches
WebSocket routes only and any other request HTTP routes only (Starlette's websocket and
http scopes), so a GET route and a WebSocket route can share a path in either order; an
HTTP request to a WebSocket-only path is a 404 (never a 405, never a redirect_slashes
307), and an upgrade to a path without a WebSocket route is refused as uvicorn refuses it
(403, empty body)."""

from typing import Any

import pytest

from data_bridge import api as ours_api
from data_bridge.api.testclient import TestClient

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient as RTestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect as SDisconnect  # noqa: E402


def _build(api: Any, ws_first: bool) -> Any:
    app = api.FastAPI()

    def add_ws() -> None:
        @app.websocket("/same")
        async def same_ws(websocket: api.WebSocket) -> None:
            await websocket.accept()
            await websocket.send_text("ws " + websocket.url.path)
            await websocket.close()

        @app.websocket("/items/{item_id}")
        async def item_ws(websocket: api.WebSocket, item_id: int) -> None:
            await websocket.accept()
            await websocket.send_json({"ws": item_id})
            await websocket.close()

        @app.websocket("/wsonly")
        async def only_ws(websocket: api.WebSocket) -> None:
            await websocket.accept()
            await websocket.send_text("only")
            await websocket.close()

    def add_http() -> None:
        @app.get("/same")
        async def same_get() -> dict[str, str]:
            return {"http": "same"}

        @app.get("/items/{item_id}")
        async def item_get(item_id: int) -> dict[str, int]:
            return {"http": item_id}

        @app.post("/postonly")
        async def post_only() -> dict[str, str]:
            return {"http": "post"}

    for add in (add_ws, add_http) if ws_first else (add_http, add_ws):
        add()
    return app


@pytest.fixture(params=[False, True], ids=["http-first", "ws-first"])
def clients(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    return (
        TestClient(_build(ours_api, request.param), follow_redirects=False),
        RTestClient(_build(fastapi, request.param), follow_redirects=False),
    )


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/same"),
        ("HEAD", "/same"),
        ("GET", "/items/3"),
        ("GET", "/items/x"),
        ("POST", "/same"),
        ("GET", "/wsonly"),
        ("POST", "/wsonly"),
        ("GET", "/wsonly/"),
        ("GET", "/postonly"),
    ],
)
def test_http_requests_like_fastapi(clients: tuple[Any, Any], method: str, path: str) -> None:
    mine, ref = clients
    a, b = mine.request(method, path), ref.request(method, path)
    if method == "HEAD" and b.status_code == 405:
        pytest.skip("GET routes answer HEAD here (docs/compat.md)")
    assert (a.status_code, a.content) == (b.status_code, b.content)
    allow = a.headers.get("allow")
    if allow is not None:  # GET routes answer HEAD here, so Allow lists it (docs/compat.md)
        allow = ", ".join(m for m in allow.split(", ") if m != "HEAD")
    assert allow == b.headers.get("allow")


@pytest.mark.parametrize("path", ["/same", "/items/5", "/wsonly"])
def test_websocket_sessions_like_fastapi(clients: tuple[Any, Any], path: str) -> None:
    mine, ref = clients
    with mine.websocket_connect(path) as a, ref.websocket_connect(path) as b:
        assert a.receive() == b.receive()


@pytest.mark.parametrize("path", ["/postonly", "/missing", "/items/x"])
def test_upgrades_without_a_websocket_route_are_refused(
    clients: tuple[Any, Any], path: str
) -> None:
    mine, ref = clients
    with pytest.raises(SDisconnect) as theirs:
        with ref.websocket_connect(path):
            pass
    with pytest.raises(ours_api.WebSocketDisconnect) as ours:
        with mine.websocket_connect(path):
            pass
    assert ours.value.code == theirs.value.code


def test_on_a_real_server() -> None:
    """Over a socket: the upgrade to an HTTP-only path is uvicorn's 403 with an empty body,
    and both kinds of route answer on the shared path."""
    import socket

    import httpx
    from conftest import Reader, ServerProcess
    from websockets.sync.client import connect

    srv = ServerProcess("ws_routing_app.py").start()
    try:
        assert httpx.get(f"{srv.url}/same").json() == {"http": "same"}
        with connect(f"ws://127.0.0.1:{srv.port}/same") as session:
            assert session.recv(timeout=5) == "ws /same"
        with socket.create_connection(("127.0.0.1", srv.port)) as s:
            s.sendall(
                b"GET /postonly HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            refused = Reader(s).read_response()
        assert (refused.status, refused.body) == (403, b"")
        assert httpx.get(f"{srv.url}/wsonly").status_code == 404
    finally:
        code, log = srv.stop()
    assert code == 0, log
