"""Mounts inside the middleware stack, against FastAPI itself serving the same app:
@app.middleware("http"), BaseHTTPMiddleware subclasses and pure ASGI middleware see the
requests of a mounted raw ASGI app, a StaticFiles, a sub-app with its own routes and
middleware, a mounted Starlette app and nested mounts; they change the mount's answers,
answer for it, catch what it raises; the app's exception handlers take what a raw mount
raises; native middleware (GZip, CORS, TrustedHost) applies to mounts. An app without HTTP
middleware keeps its mounts native."""

from pathlib import Path
from typing import Any

import pytest

from data_bridge import api as ours_api
from data_bridge.api.middleware.base import BaseHTTPMiddleware as OurBase
from data_bridge.api.middleware.cors import CORSMiddleware as OurCORS
from data_bridge.api.middleware.gzip import GZipMiddleware as OurGZip
from data_bridge.api.middleware.trustedhost import TrustedHostMiddleware as OurTrusted
from data_bridge.api.staticfiles import StaticFiles as OurStatic
from data_bridge.api.testclient import TestClient

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient as RTestClient  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware.base import BaseHTTPMiddleware as SBase  # noqa: E402
from starlette.middleware.cors import CORSMiddleware as SCORS  # noqa: E402
from starlette.middleware.gzip import GZipMiddleware as SGZip  # noqa: E402
from starlette.middleware.trustedhost import TrustedHostMiddleware as STrusted  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.staticfiles import StaticFiles as SStatic  # noqa: E402


class Boom(Exception):
    pass


class Teapot(Exception):
    pass


HEADERS = (
    "x-tag",
    "x-mw",
    "x-seen",
    "x-raw",
    "x-sub",
    "x-asgi",
    "content-type",
    "content-length",
    "content-encoding",
    "location",
    "etag",
    "last-modified",
    "access-control-allow-origin",
)


def _raw(api: Any) -> Any:
    async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path.endswith("/boom"):
            raise Boom()
        if path.endswith("/teapot"):
            raise Teapot()
        if path.endswith("/crash"):
            raise RuntimeError("nobody catches this")
        if path.endswith("/http"):
            raise api.HTTPException(409, "conflict", headers={"x-raw": "http"})
        if path.endswith("/empty"):
            return
        text = repr((path, scope["root_path"], scope["raw_path"], body, scope["query_string"]))
        if path.endswith("/big"):
            text *= 100
        headers = [(b"x-raw", b"1"), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        if path.endswith("/stream"):
            for part in (b"one ", b"two ", b"three"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": text.encode()})

    return raw


def _starlette() -> Any:
    def hello(request: Any) -> Any:
        return PlainTextResponse(f"{request.url.path} {request.scope['root_path']}")

    return Starlette(routes=[Route("/hello", hello)])


def _build(api: Any, base: type, static: type, root: Path) -> Any:
    app = api.FastAPI()

    class Tagger(base):  # type: ignore[misc, valid-type]
        def __init__(self, app: Any, tag: str) -> None:
            super().__init__(app)
            self.tag = tag

        async def dispatch(self, request: Any, call_next: Any) -> Any:
            request.state.trail = [*getattr(request.state, "trail", []), self.tag]
            response = await call_next(request)
            response.headers["x-tag"] = response.headers.get("x-tag", "") + self.tag
            return response

    @app.middleware("http")
    async def outer(request: Any, call_next: Any) -> Any:
        if request.url.path == "/raw/short":
            return api.responses.JSONResponse({"short": True}, status_code=202)
        if request.url.path == "/raw/refuse":
            raise ValueError("refused")
        if request.url.path == "/raw/read":
            request.state.read = await request.body()  # the mount receives it still
        try:
            response = await call_next(request)
        except Boom:
            return api.responses.PlainTextResponse("caught boom", status_code=503)
        response.headers["x-mw"] = str(response.status_code)
        response.headers["x-seen"] = f"{request.scope['path']}|{request.scope['root_path']}"
        if request.url.path == "/raw/status":
            response.status_code = 299
        return response

    app.add_middleware(Tagger, tag="a")

    @app.exception_handler(Teapot)
    async def teapot(request: Any, exc: Teapot) -> Any:
        return api.responses.JSONResponse({"teapot": request.url.path}, status_code=418)

    @app.get("/plain")
    def plain() -> dict[str, str]:
        return {"plain": "yes"}

    sub = api.FastAPI()

    @sub.middleware("http")
    async def sub_mw(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-sub"] = f"{request.url.path}|{request.scope['root_path']}"
        return response

    @sub.get("/items/{item_id}")
    def item(item_id: int, request: api.Request) -> dict[str, Any]:
        return {"id": item_id, "root": request.scope["root_path"], "url": str(request.url)}

    @sub.post("/echo")
    async def echo(request: api.Request) -> dict[str, Any]:
        return {"body": (await request.body()).decode()}

    sub.mount("/deep", _raw(api))

    app.mount("/raw", _raw(api))
    app.mount("/static", static(directory=root), name="static")
    app.mount("/sub", sub)
    app.mount("/st", _starlette())
    return app


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("static")
    (path / "hello.txt").write_text("hello, static\n")
    (path / "big.txt").write_text("static text, compressible " * 200)
    (path / "dir").mkdir()
    (path / "dir" / "page.html").write_text("<p>page</p>")
    return path


@pytest.fixture(scope="module")
def clients(root: Path) -> tuple[Any, Any]:
    mine = TestClient(_build(ours_api, OurBase, OurStatic, root), raise_server_exceptions=False)
    ref = RTestClient(_build(fastapi, SBase, SStatic, root), raise_server_exceptions=False)
    return mine, ref


def _same(mine: Any, ref: Any) -> None:
    assert mine.status_code == ref.status_code, (mine.text, ref.text)
    for header in HEADERS:
        if header == "content-length" and (
            header not in ref.headers or "chunked" in mine.headers.get("transfer-encoding", "")
        ):
            # Chunked on one side: the framing is the server's choice (a file compressed
            # by GZip is streamed here, sent whole by Starlette when under 64 KiB).
            continue
        assert mine.headers.get(header) == ref.headers.get(header), header
    assert mine.content == ref.content


@pytest.mark.parametrize(
    "method, path, kwargs",
    [
        ("GET", "/raw/a%20b/c?q=1", {}),
        ("POST", "/raw/post", {"content": b"payload"}),
        ("PUT", "/raw/put", {"content": b"x" * 100_000}),
        ("HEAD", "/raw/head", {}),
        ("GET", "/raw/stream", {}),
        ("GET", "/raw/short", {}),
        ("GET", "/raw/status", {}),
        ("GET", "/raw/boom", {}),
        ("GET", "/raw/teapot", {}),
        ("GET", "/raw/http", {}),
        ("GET", "/raw/refuse", {}),
        ("GET", "/raw/crash", {}),
        ("POST", "/raw/read", {"content": b"read first"}),
        ("GET", "/raw/empty", {}),
        ("GET", "/raw", {}),
        ("GET", "/static/hello.txt", {}),
        ("HEAD", "/static/hello.txt", {}),
        ("GET", "/static/dir/page.html", {}),
        ("GET", "/static/missing.txt", {}),
        ("GET", "/sub/items/3?x=1", {}),
        ("GET", "/sub/items/x", {}),
        ("GET", "/sub/nothing", {}),
        ("POST", "/sub/items/3", {}),
        ("POST", "/sub/echo", {"content": b"sub body"}),
        ("GET", "/sub", {}),
        ("GET", "/sub/deep/x?y=2", {}),
        ("GET", "/sub/deep/teapot", {}),
        ("GET", "/st/hello", {}),
        ("GET", "/st/missing", {}),
        ("GET", "/plain", {}),
        ("GET", "/nothing", {}),
    ],
)
def test_same_as_fastapi(
    clients: tuple[Any, Any], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    mine, ref = clients
    _same(
        mine.request(method, path, follow_redirects=False, **kwargs),
        ref.request(method, path, follow_redirects=False, **kwargs),
    )


def test_a_method_static_files_refuse(clients: tuple[Any, Any]) -> None:
    # The route's 405 (Starlette's comes from StaticFiles inside the mount, whose root_path
    # the middleware then sees; here the router answers before the mount).
    mine, ref = clients
    a, b = mine.post("/static/hello.txt"), ref.post("/static/hello.txt")
    assert (
        a.status_code,
        a.content,
        a.headers["allow"],
        a.headers["x-mw"],
        a.headers["x-tag"],
    ) == (
        b.status_code,
        b.content,
        b.headers["allow"],
        b.headers["x-mw"],
        b.headers["x-tag"],
    )


def _native(api: Any, gzip: type, cors: type, trusted: type, http_mw: bool, root: Path) -> Any:
    app = api.FastAPI()
    if http_mw:
        # Inside the native ones (which answer before any Python middleware here).

        @app.middleware("http")
        async def mark(request: Any, call_next: Any) -> Any:
            response = await call_next(request)
            response.headers["x-mw"] = "1"
            return response

    app.add_middleware(gzip, minimum_size=100)
    app.add_middleware(cors, allow_origins=["https://a.example"])
    app.add_middleware(trusted, allowed_hosts=["testserver"])

    app.mount("/raw", _raw(api))
    app.mount("/static", _static_class(api)(directory=root))
    return app


def _static_class(api: Any) -> type:
    return OurStatic if api is ours_api else SStatic


@pytest.mark.parametrize("http_mw", [False, True])
@pytest.mark.parametrize(
    "path, headers",
    [
        ("/raw/big", {"accept-encoding": "gzip"}),
        ("/raw/small", {"accept-encoding": "gzip"}),
        ("/static/hello.txt", {"accept-encoding": "gzip"}),
        ("/static/big.txt", {"accept-encoding": "gzip"}),
        ("/raw/big", {}),
        ("/raw/x", {"origin": "https://a.example"}),
        ("/raw/x", {"origin": "https://b.example"}),
        ("/raw/x", {"host": "evil.example"}),
        ("/static/hello.txt", {"origin": "https://a.example"}),
        ("/static/hello.txt", {"host": "evil.example"}),
    ],
)
def test_native_middleware_applies_to_mounts(
    root: Path, http_mw: bool, path: str, headers: dict[str, str]
) -> None:
    if http_mw and path in ("/raw/small", "/static/hello.txt") and headers.get("accept-encoding"):
        # Starlette's GZipMiddleware around BaseHTTPMiddleware compresses whatever the size
        # (call_next's response always comes with more to follow); ours keeps
        # minimum_size, on routes as on mounts.
        pytest.skip("a known difference, not the mount's")
    headers = {"accept-encoding": "identity", **headers}
    mine = TestClient(_native(ours_api, OurGZip, OurCORS, OurTrusted, http_mw, root))
    ref = RTestClient(_native(fastapi, SGZip, SCORS, STrusted, http_mw, root))
    a, b = mine.get(path, headers=headers), ref.get(path, headers=headers)
    _same(a, b)
    if http_mw:
        return  # Starlette's GZip adds Vary to call_next's (streamed) responses regardless
    # The same Vary values (in the other order: CORS's before GZip's, on routes too).
    vary = [
        {v.strip() for line in r.headers.get_list("vary") for v in line.split(",")} for r in (a, b)
    ]
    assert vary[0] == vary[1]


def _scope_seer(api: Any, root: Path) -> Any:
    class SeeScope:
        """Pure ASGI middleware: reports the scope's path and root_path before and after
        the app ran (a Mount updates the scope it is given)."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            before = f"{scope['path']}|{scope.get('root_path', '')}"

            async def send_wrapper(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    after = f"{scope['path']}|{scope.get('root_path', '')}"
                    headers = [
                        *message.get("headers", []),
                        (b"x-asgi", f"{before}>{after}".encode()),
                    ]
                    message = {**message, "headers": headers}
                await send(message)

            await self.app(scope, receive, send_wrapper)

    app = api.FastAPI()
    app.add_middleware(SeeScope)

    @app.get("/plain")
    def plain() -> str:
        return "plain"

    sub = api.FastAPI()

    @sub.get("/hi")
    def hi() -> str:
        return "hi"

    app.mount("/raw", _raw(api))
    app.mount("/sub", sub)
    app.mount("/static", _static_class(api)(directory=root))
    return app


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/plain"),
        ("GET", "/raw/x?a=1"),
        ("POST", "/raw/y"),
        ("GET", "/sub/hi"),
        ("GET", "/sub/nope"),
        ("GET", "/static/hello.txt"),
        ("GET", "/nothing"),
    ],
)
def test_pure_asgi_middleware_sees_the_mounts(root: Path, method: str, path: str) -> None:
    mine = TestClient(_scope_seer(ours_api, root))
    ref = RTestClient(_scope_seer(fastapi, root))
    a, b = mine.request(method, path), ref.request(method, path)
    assert (a.status_code, a.content) == (b.status_code, b.content)
    # Before the call: the request's scope; after: the mount's root_path in it.
    assert a.headers.get("x-asgi") == b.headers["x-asgi"]


def test_a_real_server(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx
    from conftest import ServerProcess

    monkeypatch.setenv("DB_TEST_STATIC", str(root))
    srv = ServerProcess("mount_mw_app.py").start()
    try:
        with httpx.Client(base_url=srv.url) as client:
            r = client.get("/raw/a?x=1")
            assert (r.text, r.headers["x-mw"]) == ("/raw/a /raw 0", "/raw/a|/raw")
            r = client.post("/raw/up", content=b"x" * 300_000)  # streamed to the mount
            assert r.text == "/raw/up /raw 300000"
            r = client.get("/raw/stream")
            assert (r.text, r.headers["x-mw"]) == ("0;1;2;/raw/stream /raw 0", "/raw/stream|/raw")
            r = client.get("/sub/hi")
            assert (r.json(), r.headers["x-mw"]) == ({"root": "/sub"}, "/sub/hi|/sub")
            r = client.get("/static/hello.txt")
            assert (r.text, r.headers["x-mw"]) == ("hello, static\n", "/static/hello.txt|/static")
            r = client.get("/static/hello.txt")  # no native answer from the file cache
            assert r.headers["x-mw"] == "/static/hello.txt|/static"
            r = client.get("/sub", follow_redirects=False)
            assert (r.status_code, r.headers["x-mw"]) == (307, "/sub|")
        # WebSocket upgrades pass the HTTP middleware, to the mounted apps natively.
        from websockets.sync.client import connect

        for path in ("/sub/ws", "/st/ws"):
            with connect(f"ws://127.0.0.1:{srv.port}{path}") as session:
                session.send(path)
                assert session.recv(timeout=5) == path + "!"
    finally:
        code, log = srv.stop()
    assert code == 0, log


@pytest.mark.parametrize(
    "path", ["/api/raw/x?q=1", "/api/sub/items/3", "/api/sub/deep/q", "/api/static/hello.txt"]
)
def test_behind_a_proxy_prefix(root: Path, path: str) -> None:
    # The ASGI root_path a proxy gives (the test clients' root_path=): the mounts' scopes
    # carry it in front of their prefixes.
    mine = TestClient(_build(ours_api, OurBase, OurStatic, root), root_path="/api")
    ref = RTestClient(_build(fastapi, SBase, SStatic, root), root_path="/api")
    _same(mine.get(path), ref.get(path))
