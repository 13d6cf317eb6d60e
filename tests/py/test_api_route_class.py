"""Custom APIRoute classes overriding get_route_handler (FastAPI's "Custom Request and
APIRoute class"): the overriding handler gets the Request, may hand the original handler a
Request subclass of its own (whose body() binding then reads), catch what it raises and
change the Response it returns. Each app is served by FastAPI itself too and the answers
compared; routes without such a class stay native (no Request is made for them)."""

import asyncio
import gzip
import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import pytest

from data_bridge import api as ours_api
from data_bridge.api.testclient import TestClient

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient as RTestClient  # noqa: E402


def _build(api: Any) -> Any:
    class GzipRequest(api.Request):
        async def body(self) -> bytes:
            if not hasattr(self, "_body"):
                body = await super().body()
                if "gzip" in self.headers.getlist("Content-Encoding"):
                    body = gzip.decompress(body)
                self._body = body
            return self._body

    class GzipRoute(api.routing.APIRoute):
        def get_route_handler(self) -> Callable[..., Any]:
            original = super().get_route_handler()

            async def handler(request: Any) -> Any:
                return await original(GzipRequest(request.scope, request.receive))

            return handler

    class LoggingRoute(api.routing.APIRoute):
        def get_route_handler(self) -> Callable[..., Any]:
            original = super().get_route_handler()

            async def handler(request: Any) -> Any:
                try:
                    return await original(request)
                except api.exceptions.RequestValidationError as exc:
                    body = await request.body()
                    detail = {"errors": exc.errors(), "body": body.decode()}
                    raise api.HTTPException(status_code=422, detail=detail) from None

            return handler

    class TimedRoute(api.routing.APIRoute):
        def get_route_handler(self) -> Callable[..., Any]:
            original = super().get_route_handler()

            async def handler(request: Any) -> Any:
                before = time.time()
                response = await original(request)
                response.headers["X-Response-Time"] = str(time.time() - before)
                response.headers["X-Route-Class"] = type(self).__name__
                return response

            return handler

    class Item(api_base_model()):
        name: str
        price: float

    async def token(x_token: Annotated[str, api.Header()]) -> str:
        if x_token != "secret":
            raise api.HTTPException(status_code=400, detail="bad token")
        return x_token

    app = api.FastAPI()
    gz = api.APIRouter(route_class=GzipRoute, prefix="/gz")
    logged = api.APIRouter(route_class=LoggingRoute, prefix="/log")
    timed = api.APIRouter(route_class=TimedRoute, prefix="/timed")

    @gz.post("/sum")
    async def gz_sum(numbers: Annotated[list[int], api.Body()]) -> Any:
        return {"sum": sum(numbers)}

    @gz.post("/items/{item_id}")
    async def gz_item(item_id: int, item: Item, q: str | None = None) -> Any:
        return {"item_id": item_id, "item": item, "q": q}

    @gz.post("/form")
    async def gz_form(name: Annotated[str, api.Form()]) -> Any:
        return {"name": name}

    @gz.get("/class")
    async def gz_class(request: api.Request) -> Any:
        return {"class": type(request).__name__, "path": request.url.path}

    @logged.post("/")
    async def log_sum(numbers: Annotated[list[int], api.Body()]) -> Any:
        return sum(numbers)

    @logged.get("/users/{user_id}")
    async def log_user(user_id: int, limit: Annotated[int, api.Query(le=10)] = 5) -> Any:
        return {"user_id": user_id, "limit": limit}

    @timed.get("/plain")
    async def timed_plain() -> Any:
        return {"message": "timed"}

    @timed.get("/deps", dependencies=[api.Depends(token)])
    async def timed_deps(q: int = 0) -> Any:
        return {"q": q}

    @timed.get("/text", response_class=api.responses.PlainTextResponse, status_code=201)
    async def timed_text() -> str:
        return "hello"

    @timed.get("/fail")
    async def timed_fail() -> Any:
        raise api.HTTPException(status_code=418, detail="teapot", headers={"X-Why": "tea"})

    @timed.get("/response")
    async def timed_response(response: api.Response) -> Any:
        response.set_cookie("seen", "1")
        response.status_code = 202
        return {"ok": True}

    @app.get("/native")
    async def native() -> Any:
        return {"native": True}

    app.include_router(gz)
    app.include_router(logged)
    app.include_router(timed)
    return app


def api_base_model() -> Any:
    import pydantic

    return pydantic.BaseModel


def _requests() -> list[tuple[str, str, dict[str, Any]]]:
    numbers = json.dumps([1] * 1000).encode()
    big = json.dumps(list(range(20000))).encode()  # over 64 KiB: a streamed body
    json_type = {"Content-Type": "application/json"}
    gz_json = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    item = json.dumps({"name": "x", "price": 1.5}).encode()
    return [
        ("POST", "/gz/sum", {"content": numbers, "headers": json_type}),
        ("POST", "/gz/sum", {"content": gzip.compress(numbers), "headers": gz_json}),
        ("POST", "/gz/sum", {"content": gzip.compress(big), "headers": gz_json}),
        ("POST", "/gz/sum", {"content": big, "headers": json_type}),
        ("POST", "/gz/sum", {"content": gzip.compress(b'{"a": 1}'), "headers": gz_json}),
        ("POST", "/gz/sum", {"content": gzip.compress(b"[1, 2"), "headers": gz_json}),
        ("POST", "/gz/sum", {"content": b"", "headers": json_type}),
        ("POST", "/gz/sum", {"content": b"[1, 2]", "headers": gz_json}),  # not gzip: 400
        ("POST", "/gz/sum", {"content": b'[1, "\xff"]', "headers": json_type}),  # not UTF-8
        ("POST", "/gz/items/7?q=z", {"content": gzip.compress(item), "headers": gz_json}),
        ("POST", "/gz/items/x", {"content": gzip.compress(b'{"name": 1}'), "headers": gz_json}),
        ("POST", "/gz/form", {"data": {"name": "ann"}}),
        ("POST", "/gz/form", {"files": {"name": (None, "bob")}}),
        ("POST", "/gz/form", {"data": {}}),
        ("GET", "/gz/class", {}),
        ("POST", "/log/", {"json": [1, 2, 3]}),
        ("POST", "/log/", {"json": {"numbers": [1, 2, 3]}}),
        ("GET", "/log/users/3?limit=2", {}),
        ("GET", "/log/users/three?limit=20", {}),
        ("GET", "/timed/plain", {}),
        ("GET", "/timed/deps?q=4", {"headers": {"X-Token": "secret"}}),
        ("GET", "/timed/deps?q=4", {"headers": {"X-Token": "nope"}}),
        ("GET", "/timed/deps?q=four", {}),
        ("GET", "/timed/text", {}),
        ("GET", "/timed/fail", {}),
        ("GET", "/timed/response", {}),
        ("GET", "/native", {}),
    ]


@pytest.fixture(scope="module")
def clients() -> tuple[Any, Any]:
    return TestClient(_build(ours_api)), RTestClient(_build(fastapi))


def _seen(response: Any) -> tuple[Any, ...]:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    headers = {
        k: v
        for k, v in response.headers.items()
        if k in ("content-type", "set-cookie", "x-why", "x-route-class")
    }
    return response.status_code, body, headers, "x-response-time" in response.headers


@pytest.mark.parametrize(("method", "path", "kwargs"), _requests())
def test_same_answer_as_fastapi(
    clients: tuple[Any, Any], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    ours, theirs = clients
    assert _seen(ours.request(method, path, **kwargs)) == _seen(
        theirs.request(method, path, **kwargs)
    )


def test_body_limit_applies_to_the_handler_request() -> None:
    """The route's max_body_size bounds what the handler's Request reads through receive(),
    as it bounds request.body() (413), whether the body came whole or streamed."""
    app = ours_api.FastAPI()
    router = ours_api.APIRouter(route_class=_passthrough_route(ours_api))

    @router.post("/small", max_body_size=100)
    async def small(data: Annotated[Any, ours_api.Body()]) -> Any:
        return {"n": len(data)}

    app.include_router(router)
    client = TestClient(app)
    assert client.post("/small", json=[1] * 10).json() == {"n": 10}
    assert client.post("/small", json=[1] * 100).status_code == 413
    chunked = (piece for piece in (b"[", b"1," * 50, b"1]"))  # no Content-Length
    headers = {"content-type": "application/json"}
    assert client.post("/small", content=chunked, headers=headers).status_code == 413


def _passthrough_route(api: Any) -> Any:
    class Route(api.routing.APIRoute):
        def get_route_handler(self) -> Callable[..., Any]:
            original = super().get_route_handler()

            async def handler(request: Any) -> Any:
                return await original(api.Request(request.scope, request.receive))

            return handler

    return Route


def test_request_made_from_the_scope() -> None:
    """Request(scope, receive) of the server's request: the same fields, state shared, the
    body read through receive() and kept as _body."""
    app = ours_api.FastAPI()
    seen: dict[str, Any] = {}

    class Route(ours_api.routing.APIRoute):
        def get_route_handler(self) -> Callable[..., Any]:
            original = super().get_route_handler()

            async def handler(request: Any) -> Any:
                request.state.marker = "set by the route"
                made = ours_api.Request(request.scope, request.receive)
                seen["missing_body"] = not hasattr(made, "_body")
                seen["fields"] = (
                    made.method,
                    str(made.url),
                    made.headers["x-a"],
                    made.query_params["q"],
                    made.path_params,
                    made.cookies,
                    made.client,
                    made.app is app,
                    made.state.marker,
                )
                seen["body"] = await made.body()
                seen["kept"] = made._body
                seen["json"] = await made.json()
                return await original(made)

            return handler

    router = ours_api.APIRouter(route_class=Route)

    @router.post("/things/{tid}")
    async def things(tid: int, request: ours_api.Request) -> Any:
        return {"tid": tid, "body": (await request.body()).decode()}

    app.include_router(router)
    client = TestClient(app, cookies={"c": "d"})
    response = client.post("/things/5?q=1", json={"k": "v"}, headers={"x-a": "b"})
    assert response.json() == {"tid": 5, "body": '{"k":"v"}'}
    assert seen["missing_body"]
    assert seen["fields"] == (
        "POST",
        "http://testserver/things/5?q=1",
        "b",
        "1",
        {"tid": "5"},
        {"c": "d"},
        ("testclient", 50000),
        True,
        "set by the route",
    )
    assert seen["body"] == seen["kept"] == b'{"k":"v"}'
    assert seen["json"] == {"k": "v"}


def test_receive_of_the_server_request() -> None:
    """request.receive of the server's Request: the body as http.request messages."""
    app = ours_api.FastAPI()
    messages: list[Any] = []

    class Route(ours_api.routing.APIRoute):
        def get_route_handler(self) -> Callable[..., Any]:
            original = super().get_route_handler()

            async def handler(request: Any) -> Any:
                while True:
                    message = await request.receive()
                    messages.append(message)
                    if not message.get("more_body"):
                        break
                messages.append(await request.receive())
                return await original(request)

            return handler

    router = ours_api.APIRouter(route_class=Route)

    @router.post("/echo")
    async def echo() -> Any:
        return {"ok": True}

    app.include_router(router)
    client = TestClient(app)
    assert client.post("/echo", content=b"abc").json() == {"ok": True}
    assert messages == [
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
        {"type": "http.disconnect"},
    ]


def test_original_handler_outside_a_request() -> None:
    app = ours_api.FastAPI()
    router = ours_api.APIRouter(route_class=_passthrough_route(ours_api))

    @router.get("/x")
    async def x() -> Any:
        return 1

    app.include_router(router)
    route = next(r for r in app.routes if r.path == "/x")
    handler = ours_api.routing.APIRoute.get_route_handler(route)
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    with pytest.raises(RuntimeError, match="outside a request"):
        asyncio.run(handler(ours_api.Request(scope)))


def test_routes_without_a_custom_class_stay_native() -> None:
    """Only routes of a class that overrides get_route_handler are served through it."""
    app = _build(ours_api)
    custom = {r.path for r in app.routes if getattr(r, "custom_route_handler", False)}
    assert "/native" not in custom
    assert {"/gz/sum", "/log/", "/timed/plain"} <= custom
    plain = ours_api.APIRouter(route_class=type("Plain", (ours_api.routing.APIRoute,), {}))

    @plain.get("/p")
    async def p() -> Any:
        return 1

    assert not plain.routes[0].custom_route_handler


def _build_with_middleware(api: Any) -> Any:
    app = _build(api)

    @app.middleware("http")
    async def tag(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["X-Route-Class"] = "middleware saw " + response.headers.get(
            "x-route-class", "none"
        )
        return response

    return app


@pytest.fixture(scope="module")
def middleware_clients() -> tuple[Any, Any]:
    return TestClient(_build_with_middleware(ours_api)), RTestClient(
        _build_with_middleware(fastapi)
    )


@pytest.mark.parametrize(("method", "path", "kwargs"), _requests())
def test_under_http_middleware_as_fastapi(
    middleware_clients: tuple[Any, Any], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    """@app.middleware("http") runs around a custom route handler and sees its Response."""
    ours, theirs = middleware_clients
    assert _seen(ours.request(method, path, **kwargs)) == _seen(
        theirs.request(method, path, **kwargs)
    )
