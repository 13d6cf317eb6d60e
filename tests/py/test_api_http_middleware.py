"""@app.middleware("http") and BaseHTTPMiddleware around the native path, against FastAPI
itself serving the same app: headers added, the order of several middleware, answers that
skip call_next, HTTPExceptions, 422s and exception handlers passing through, request.state
shared with the handler, exceptions no handler takes."""

from typing import Any

import pytest

from data_bridge import api as ours_api
from data_bridge.api.middleware.base import BaseHTTPMiddleware as OurBase
from data_bridge.api.testclient import TestClient

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient as RTestClient  # noqa: E402
from starlette.middleware.base import BaseHTTPMiddleware as SBase  # noqa: E402


class Boom(Exception):
    pass


class Teapot(Exception):
    pass


def _build(api: Any, base: type) -> Any:
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
    async def inner(request: Any, call_next: Any) -> Any:
        if request.url.path == "/short":
            return api.responses.JSONResponse({"short": True}, status_code=202)
        try:
            response = await call_next(request)
        except Boom:
            return api.responses.PlainTextResponse("caught boom", status_code=503)
        response.headers["x-inner"] = str(response.status_code)
        return response

    app.add_middleware(Tagger, tag="a")
    app.add_middleware(Tagger, tag="b")

    @app.exception_handler(Teapot)
    async def teapot(request: Any, exc: Teapot) -> Any:
        return api.responses.JSONResponse({"teapot": True}, status_code=418)

    @app.get("/items/{item_id}")
    async def item(item_id: int, request: api.Request) -> Any:
        if item_id == 0:
            raise api.HTTPException(404, "no item", headers={"x-why": "zero"})
        if item_id == 1:
            raise Boom()
        if item_id == 2:
            raise Teapot()
        return {"id": item_id, "trail": request.state.trail}

    @app.get("/sync")
    def sync() -> str:
        return "plain"

    @app.get("/short")
    def never() -> str:  # the middleware answers without calling it
        raise AssertionError("not reached")

    @app.post("/model", status_code=201)
    def model(body: dict[str, int]) -> dict[str, int]:
        return body

    return app


@pytest.mark.parametrize(
    "method, path, kwargs",
    [
        ("GET", "/items/5", {}),
        ("GET", "/items/0", {}),
        ("GET", "/items/1", {}),
        ("GET", "/items/2", {}),
        ("GET", "/items/x", {}),
        ("GET", "/sync", {}),
        ("POST", "/model", {"json": {"a": 1}}),
        ("POST", "/model", {"json": {"a": "x"}}),
        ("GET", "/short", {}),
        ("GET", "/openapi.json", {}),
        # No route takes these: the router answers inside the middleware stack.
        ("GET", "/nothing", {}),
        ("HEAD", "/nothing", {}),
        ("POST", "/nothing", {"json": {"a": 1}}),
        ("POST", "/sync", {}),
        ("DELETE", "/items/5", {}),
        ("GET", "/sync/", {}),
        ("GET", "/items/5/?q=1", {}),
    ],
)
def test_same_as_fastapi(method: str, path: str, kwargs: dict[str, Any]) -> None:
    mine = TestClient(_build(ours_api, OurBase)).request(
        method, path, follow_redirects=False, **kwargs
    )
    ref = RTestClient(_build(fastapi, SBase)).request(
        method, path, follow_redirects=False, **kwargs
    )
    assert mine.status_code == ref.status_code, mine.text
    for header in ("x-tag", "x-inner", "x-why", "content-type", "location", "content-length"):
        assert mine.headers.get(header) == ref.headers.get(header), header
    assert mine.content == ref.content or mine.json() == ref.json()
    assert ("allow" in mine.headers) == ("allow" in ref.headers)


def test_an_exception_no_handler_takes_is_a_500() -> None:
    app = ours_api.FastAPI()

    @app.middleware("http")
    async def passthrough(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    @app.get("/")
    def index() -> None:
        raise RuntimeError("unhandled")

    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/")
    assert r.status_code == 500 and r.text == "Internal Server Error"
    with pytest.raises(RuntimeError, match="unhandled"):
        TestClient(app).get("/")


def _routing_app(api: Any, middleware: str | None, handlers: bool) -> Any:
    """An app whose middleware (``http``: @app.middleware("http"); ``asgi``: a pure ASGI
    class) replaces 404s and tags every answer, with exception handlers for 404 and 405."""
    app = api.FastAPI()

    class Pure:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            async def tagged(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    extra = [(b"x-pure", str(message["status"]).encode())]
                    message = {**message, "headers": [*message["headers"], *extra]}
                await send(message)

            await self.app(scope, receive, tagged)

    if middleware == "asgi":
        app.add_middleware(Pure)
    elif middleware == "http":

        @app.middleware("http")
        async def replace(request: Any, call_next: Any) -> Any:
            response = await call_next(request)
            if response.status_code == 404 and request.url.path == "/replace":
                return api.responses.PlainTextResponse("replaced", status_code=410)
            response.headers["x-seen"] = f"{request.method} {response.status_code}"
            return response

    if handlers:

        @app.exception_handler(404)
        async def not_found(request: Any, exc: Any) -> Any:
            return api.responses.JSONResponse({"missing": request.url.path}, status_code=404)

        @app.exception_handler(405)
        async def not_allowed(request: Any, exc: Any) -> Any:
            return api.responses.PlainTextResponse(
                f"not {request.method}", status_code=405, headers=exc.headers
            )

    @app.get("/only-get")
    def only_get() -> int:
        return 1

    @app.put("/folder/")
    def folder() -> int:
        return 2

    return app


@pytest.mark.parametrize(
    "middleware, handlers",
    [("http", False), ("http", True), ("asgi", False), ("asgi", True), (None, True)],
)
@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/nothing"),
        ("GET", "/replace"),
        ("HEAD", "/nothing"),
        ("POST", "/only-get"),
        ("GET", "/folder/"),
        ("PUT", "/folder"),
        ("GET", "/only-get/?x=1"),
    ],
)
def test_unrouted_requests_go_through_middleware_and_handlers(
    middleware: str | None, handlers: bool, method: str, path: str
) -> None:
    mine = TestClient(_routing_app(ours_api, middleware, handlers)).request(
        method, path, follow_redirects=False
    )
    ref = RTestClient(_routing_app(fastapi, middleware, handlers)).request(
        method, path, follow_redirects=False
    )
    assert mine.status_code == ref.status_code, mine.text
    for header in ("x-seen", "x-pure", "location", "content-type", "content-length"):
        assert mine.headers.get(header) == ref.headers.get(header), header
    if "allow" in ref.headers:
        # The server also serves HEAD on GET routes (Starlette's Route does, FastAPI's
        # APIRoute does not) and says so: the rest of Allow is the same.
        allowed = set(mine.headers["allow"].split(", ")) - {"HEAD"}
        assert allowed == set(ref.headers["allow"].split(", "))
        assert mine.text.replace(", HEAD", "") == ref.text
    else:
        assert mine.content == ref.content
    assert "allow" not in mine.headers or ref.status_code == 405


def test_unrouted_requests_reach_python_only_when_something_there_answers_them() -> None:
    from data_bridge.api._http_middleware import handles_unrouted

    app = ours_api.FastAPI()
    assert not handles_unrouted(app)  # the server answers 404 and 405 itself

    @app.exception_handler(Exception)
    async def anything(request: Any, exc: Exception) -> Any:
        return ours_api.responses.PlainTextResponse("oops", status_code=500)

    # Starlette leaves Exception to ServerErrorMiddleware: never a 404's handler.
    assert not handles_unrouted(app)
    assert TestClient(app).get("/nothing").json() == {"detail": "Not Found"}
    app.add_exception_handler(ours_api.HTTPException, anything)
    assert handles_unrouted(app)
    assert TestClient(app).get("/nothing").text == "oops"


def test_unrouted_server_handler_must_take_the_request() -> None:
    from data_bridge import _core, pyloop
    from data_bridge.api._plan import build_plan

    def no_request() -> None:
        return None

    loop = pyloop.new_event_loop()
    try:
        server = ours_api.FastAPI().build_server(loop)
        with pytest.raises(TypeError, match="must take the Request"):
            server.add_route([], "/", no_request, build_plan("/", no_request), unrouted=True)
        with pytest.raises(ValueError, match="no methods"):
            server.add_route([0], "/", no_request, build_plan("/", no_request), unrouted=True)
        assert isinstance(server, _core.Server)
    finally:
        loop.close()


def test_only_http_middleware() -> None:
    with pytest.raises(ValueError):
        ours_api.FastAPI().middleware("websocket")


def test_starlettes_own_base_class_works_too() -> None:
    client = TestClient(_build(ours_api, SBase))
    r = client.get("/items/7")
    assert r.json() == {"id": 7, "trail": ["b", "a"]}
    assert r.headers["x-tag"] == "ab" and r.headers["x-inner"] == "200"
