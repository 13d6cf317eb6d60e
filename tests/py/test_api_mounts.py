"""app.mount(path, app): a data-bridge App (its own routes, handlers and documents under the
prefix, natively), any ASGI application (run by the native ASGI driver, as Starlette's
Mount runs it: the whole path, root_path = the prefix) and a WSGI application through
WSGIMiddleware."""

from typing import Any

import pytest

from data_bridge.api import FastAPI, HTTPException, Request
from data_bridge.api.middleware.wsgi import WSGIMiddleware
from data_bridge.api.responses import JSONResponse
from data_bridge.api.testclient import TestClient


async def raw_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    text = repr((scope["path"], scope["root_path"], scope["raw_path"], body)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-raw", b"1")]})
    await send({"type": "http.response.body", "body": text})


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Wsgi", "yes")])
    parts = [environ["SCRIPT_NAME"], environ["PATH_INFO"], environ["QUERY_STRING"]]
    return ["|".join(parts).encode(), b"|", body, b"|", environ["HTTP_X_TWICE"].encode()]


def _main() -> FastAPI:
    sub = FastAPI(title="Sub")

    @sub.get("/items/{item_id}")
    def sub_item(item_id: int, request: Request) -> dict[str, Any]:
        return {"id": item_id, "url": str(request.url), "root": request.scope["root_path"]}

    @sub.get("/boom")
    def boom() -> None:
        raise ValueError("boom")

    @sub.exception_handler(ValueError)
    async def on_value_error(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"sub handled": str(exc)}, status_code=418)

    app = FastAPI()

    @app.get("/items/{item_id}")
    def main_item(item_id: int) -> dict[str, Any]:
        if item_id == 0:
            raise HTTPException(404, "none")
        return {"main": item_id}

    app.mount("/sub", sub)
    app.mount("/raw", raw_asgi)
    app.mount("/wsgi", WSGIMiddleware(wsgi_app))
    return app


def test_a_mounted_app_keeps_its_routes_handlers_and_documents() -> None:
    client = TestClient(_main())
    assert client.get("/items/3").json() == {"main": 3}
    r = client.get("/sub/items/4?x=1")
    assert r.json() == {"id": 4, "url": "http://testserver/sub/items/4?x=1", "root": "/sub"}
    assert client.get("/sub/items/x").status_code == 422
    assert client.get("/sub/boom").json() == {"sub handled": "boom"}
    assert client.get("/sub/nothing").status_code == 404
    doc = client.get("/sub/openapi.json").json()
    assert doc["info"]["title"] == "Sub"
    assert doc["servers"] == [{"url": "/sub"}]
    assert list(doc["paths"]) == ["/items/{item_id}", "/boom"]
    assert "/sub/items/{item_id}" not in client.get("/openapi.json").json()["paths"]
    r = client.get("/sub", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "http://testserver/sub/"


def test_an_asgi_app_under_a_prefix() -> None:
    client = TestClient(_main())
    r = client.post("/raw/a%20b/c?q=1", content=b"payload")
    assert r.headers["x-raw"] == "1"
    assert r.text == repr(("/raw/a b/c", "/raw", b"/raw/a%20b/c", b"payload"))
    # Not under the prefix: the main app's own 404.
    assert client.get("/rawx").json() == {"detail": "Not Found"}


def test_a_wsgi_app_under_a_prefix() -> None:
    client = TestClient(_main())
    r = client.post(
        "/wsgi/p/q?x=1",
        content=b"body",
        headers=[("x-twice", "a"), ("x-twice", "b")],
    )
    assert r.status_code == 201 and r.headers["x-wsgi"] == "yes"
    assert r.text == "/wsgi|/p/q|x=1|body|a,b"


def test_real_starlette_and_fastapi_apps_mounted() -> None:
    starlette = pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    def hello(request: Any) -> Any:
        return PlainTextResponse(f"{request.url.path} {request.scope['root_path']}")

    app = FastAPI()
    app.mount("/st", Starlette(routes=[Route("/hello", hello)]))
    fastapi = pytest.importorskip("fastapi")
    real = fastapi.FastAPI()

    @real.get("/ping/{n}")
    def ping(n: int) -> dict[str, int]:
        return {"pong": n}

    app.mount("/fa", real)
    client = TestClient(app)
    assert starlette is not None
    assert client.get("/st/hello").text == "/st/hello /st"
    assert client.get("/st/missing").status_code == 404
    assert client.get("/fa/ping/5").json() == {"pong": 5}
    assert client.get("/fa/ping/x").status_code == 422
    assert client.get("/fa/openapi.json").json()["paths"] == {
        "/ping/{n}": client.get("/fa/openapi.json").json()["paths"]["/ping/{n}"]
    }


def test_mount_refuses_what_is_not_an_app() -> None:
    with pytest.raises(TypeError):
        FastAPI().mount("/x", 42)


def test_websocket_session_of_a_mounted_app_in_the_test_client() -> None:
    """The test client hears the end of a mounted App's WebSocket session (as of the
    parent's own): leaving the block does not wait, and an exception the endpoint raised is
    raised there, as Starlette's TestClient does."""
    import time

    from data_bridge.api import WebSocket

    sub = FastAPI()

    @sub.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    @sub.websocket("/boom")
    async def boom(websocket: WebSocket) -> None:
        await websocket.accept()
        raise RuntimeError("mounted session failed")

    app = FastAPI()
    app.mount("/sub", sub)
    client = TestClient(app)
    started = time.monotonic()
    with client.websocket_connect("/sub/ws") as session:
        assert session.receive_text() == "hi"
    assert time.monotonic() - started < 5
    with pytest.raises(RuntimeError, match="mounted session failed"):
        with client.websocket_connect("/sub/boom") as session:
            session.receive_text()
