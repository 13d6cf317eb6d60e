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
    ],
)
def test_same_as_fastapi(method: str, path: str, kwargs: dict[str, Any]) -> None:
    mine = TestClient(_build(ours_api, OurBase)).request(method, path, **kwargs)
    ref = RTestClient(_build(fastapi, SBase)).request(method, path, **kwargs)
    assert mine.status_code == ref.status_code, mine.text
    for header in ("x-tag", "x-inner", "x-why", "content-type"):
        assert mine.headers.get(header) == ref.headers.get(header), header
    assert mine.content == ref.content or mine.json() == ref.json()


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


def test_unrouted_requests_are_answered_without_the_middleware() -> None:
    # A difference from Starlette (docs/compat.md): 404 and 405 are decided by the native
    # router before any Python runs.
    r = TestClient(_build(ours_api, OurBase)).get("/nothing")
    assert r.status_code == 404 and "x-tag" not in r.headers


def test_only_http_middleware() -> None:
    with pytest.raises(ValueError):
        ours_api.FastAPI().middleware("websocket")


def test_starlettes_own_base_class_works_too() -> None:
    client = TestClient(_build(ours_api, SBase))
    r = client.get("/items/7")
    assert r.json() == {"id": 7, "trail": ["b", "a"]}
    assert r.headers["x-tag"] == "ab" and r.headers["x-inner"] == "200"
