"""Routing on the percent-decoded path, as Starlette routes on scope["path"]: our
TestClient (which runs the server's own parser and router over a socketpair) against
FastAPI's, case by case, and a real server for what Starlette's TestClient cannot show."""

from __future__ import annotations

import os
import tempfile
from typing import Any
from urllib.parse import quote, unquote

import pytest
from conftest import ServerProcess, exchange
from fastapi import FastAPI as StarFastAPI
from fastapi.staticfiles import StaticFiles as StarStaticFiles
from fastapi.testclient import TestClient as StarClient

from data_bridge.api import FastAPI, Request, WebSocket
from data_bridge.api.staticfiles import StaticFiles
from data_bridge.api.testclient import TestClient
from data_bridge.api.websockets import WebSocketDisconnect

CASES = [
    "/p/a%2Fb",  # a decoded '/' splits the segment: no /p/{name} ...
    "/q/a%2Fb",  # ... but /q/{x}/{y}
    "/f/a%2Fb",  # and {rest:path}
    "/p/a%2fb?z=1",
    "/p/%2E%2E",
    "/p/%2e%2e",
    "/q/%2E%2E/x",
    "/p/%7Bname%7D",
    "/it%65ms",  # a literal segment written encoded
    "/%69tems",
    "/ITEMS",
    "/p/%25",
    "/p/%zz",  # bad escapes stay as they are (unquote)
    "/p/abc%",
    "/p/%",
    "/p/%2",
    "/p/a%00b",  # a decoded NUL
    "/p/%ff",  # invalid UTF-8: U+FFFD
    "/p/%e9",
    "/p/%C3%A9",
    "/p/a%3Fb",
    "/p/a%23b",
    "/p/a%20b",
    "/n/%31%32",  # an int parameter
    "/a%20b",  # literals a target cannot carry as they are
    "/a%20b%3Fc%23d",
    "/a b",
    "/onlyp%6Fst",  # 405 on the decoded path
    "/sl%61sh",  # redirect_slashes on the decoded path
    "/sl%61sh?k=%20",
    "/slash%2F",
    "/items%2F",
    "/it%65ms/",
    "/r/a%20b",  # Locations carry the decoded path, quoted
    "/r/a%3Fb",
    "/r/%C3%A9",
    "/r/a%5Cb",
    "/r/%7B%7D",
    "/st%61tic/x.txt",
    "/static/x%2etxt",
    "/static/%2e%2e/secret.txt",  # never out of the directory
    "/static/%2E%2E%2Fsecret.txt",
    "/static/..%2Fsecret.txt",
    "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/static/a%00b",
    "/static/%ff",
    "/static/x.txt%00",
    "/s%75b/x",  # a mounted app's prefix
    "/s%75b/%2e%2e",
    "/s%75b",
    "/f/",  # an empty {rest:path}, as Starlette's ".*"
    "/f",  # redirect_slashes to it
    "/static",  # a StaticFiles mount's bare prefix: redirected to "/static/"
    "/static/",
]


def build(fa: Any, files: Any, directory: str, middleware: bool = False) -> Any:
    app = fa()
    sub = fa()
    if middleware:
        # 404, 405, redirect_slashes and the mounts then reach the app's middleware.

        @app.middleware("http")
        async def mark(request: Any, call_next: Any) -> Any:
            response = await call_next(request)
            response.headers["x-mw"] = quote(request.url.path)
            return response

    @app.get("/p/{name}")
    def p(name: str) -> dict[str, str]:
        return {"name": name}

    @app.get("/q/{x}/{y}")
    def q(x: str, y: str) -> dict[str, str]:
        return {"x": x, "y": y}

    @app.get("/f/{rest:path}")
    def f(rest: str) -> dict[str, str]:
        return {"rest": rest}

    @app.get("/n/{n}")
    def n(n: int) -> dict[str, int]:
        return {"n": n}

    @app.get("/items")
    def items() -> str:
        return "items"

    @app.get("/a b")
    def a_b() -> str:
        return "space"

    @app.get("/a b?c#d")
    def a_b_c_d() -> str:
        return "space, ? and #"

    @app.post("/onlypost")
    def onlypost() -> str:
        return "post"

    @app.get("/slash/")
    def slash() -> str:
        return "slash"

    @app.get("/r/{name}/")
    def r(name: str) -> dict[str, str]:
        return {"name": name}

    @sub.get("/{name}")
    def sub_name(name: str) -> dict[str, str]:
        return {"sub": name}

    app.mount("/static", files(directory=directory))
    app.mount("/sub", sub)
    return app


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "middleware"])
def clients(request: Any) -> Any:
    d = tempfile.mkdtemp()
    os.makedirs(d + "/pub")
    with open(d + "/pub/x.txt", "w") as fh:
        fh.write("X")
    with open(d + "/secret.txt", "w") as fh:
        fh.write("S")
    mw = request.param
    ours = TestClient(build(FastAPI, StaticFiles, d + "/pub", mw), follow_redirects=False)
    theirs = StarClient(build(StarFastAPI, StarStaticFiles, d + "/pub", mw), follow_redirects=False)
    return ours, theirs


@pytest.mark.parametrize("url", CASES)
def test_as_fastapi(clients: Any, url: str) -> None:
    ours, theirs = clients
    for _ in range(2):  # the second time, StaticFiles' file may come from the native cache
        a, b = ours.get(url), theirs.get(url)
        assert (a.status_code, a.content) == (b.status_code, b.content), url
        assert a.headers.get("location") == b.headers.get("location"), url
        assert a.headers.get("x-mw") == b.headers.get("x-mw"), url


def test_405_on_decoded_path(clients: Any) -> None:
    ours, theirs = clients
    a, b = ours.post("/it%65ms"), theirs.post("/it%65ms")
    assert (
        (a.status_code, a.json())
        == (b.status_code, b.json())
        == (405, {"detail": "Method Not Allowed"})
    )


def test_request_path_and_raw_path() -> None:
    app = FastAPI()

    @app.get("/w/{name}")
    def w(name: str, request: Request) -> dict[str, Any]:
        return {
            "name": name,
            "path": request.url.path,
            "scope_path": request.scope["path"],
            "raw_path": request.scope["raw_path"].decode(),
            "params": request.path_params,
        }

    got = TestClient(app).get("/w/a%2525%20b").json()
    assert got == {
        "name": "a%25 b",
        "path": "/w/a%25 b",
        "scope_path": "/w/a%25 b",
        "raw_path": "/w/a%2525%20b",
        "params": {"name": "a%25 b"},
    }


def test_decoded_once(clients: Any) -> None:
    # Starlette's TestClient decodes the path twice (httpx's url.path, then unquote), so
    # it answers "%" here; uvicorn decodes raw_path once, and so do we.
    ours, _ = clients
    assert ours.get("/p/%2525").json() == {"name": unquote("%2525")} == {"name": "%25"}
    assert ours.get("/f/%252F").json() == {"rest": "%2F"}


@pytest.fixture(scope="module")
def server() -> Any:
    srv = ServerProcess("decoded_routing_app.py").start()
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    ("target", "status", "body"),
    [
        ("/p/%2525", 200, {"name": "%25"}),
        ("/p/a%2Fb", 404, {"detail": "Not Found"}),
        ("/q/a%2Fb", 200, {"x": "a", "y": "b"}),
        ("/it%65ms", 200, "items"),
        ("/p/%zz", 200, {"name": "%zz"}),
        ("/p/a%00b", 200, {"name": "a\x00b"}),
        ("/p/%ff%fe", 200, {"name": "\ufffd\ufffd"}),
        ("/p/" + "%41" * 1000, 200, {"name": "A" * 1000}),  # past the small buffer
    ],
)
def test_real_server(server: ServerProcess, target: str, status: int, body: Any) -> None:
    raw = f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    resp, reader = exchange(server, raw)
    assert (resp.status, resp.json()) == (status, body)


def test_real_server_redirect(server: ServerProcess) -> None:
    resp, _ = exchange(server, b"GET /sl%61sh?a=%20 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (resp.status, resp.header("location")) == (307, "http://x/slash/?a=%20")


def test_websocket_routes_on_decoded_path() -> None:
    app = FastAPI()

    @app.websocket("/ws/{name}")
    async def ws(websocket: WebSocket, name: str) -> None:
        await websocket.accept()
        await websocket.send_text(name + "|" + websocket.url.path)
        await websocket.close()

    client = TestClient(app)
    # FastAPI's TestClient says the same, but "%" for the last (it decodes twice).
    for url, text in [
        ("/w%73/x", "x|/ws/x"),
        ("/ws/a%20b", "a b|/ws/a b"),
        ("/ws/%2525", "%25|/ws/%25"),
    ]:
        with client.websocket_connect(url) as w:
            assert w.receive_text() == text
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/ws/a%2Fb") as w:
        w.receive_text()
