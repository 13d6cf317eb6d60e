"""TestClient: requests run in process through the native server (socketpair, no port)."""

from __future__ import annotations

import gc
import weakref
from contextlib import asynccontextmanager

import pytest
from pydantic import BaseModel

from data_bridge.api import (
    BackgroundTasks,
    FastAPI,
    HTTPException,
    Request,
    Response,
    StreamingResponse,
)
from data_bridge.api.background import BackgroundTask
from data_bridge.api.exceptions import ResponseValidationError
from data_bridge.api.responses import JSONResponse
from data_bridge.api.testclient import TestClient


class Item(BaseModel):
    name: str
    price: float
    tax: float | None = None


def make_app() -> FastAPI:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app):
        events.append("lifespan-start")
        yield {"db": "connected"}
        events.append("lifespan-end")

    app = FastAPI(lifespan=lifespan, on_startup=[lambda: events.append("startup")])
    app.state.events = events

    @app.post("/items/")
    async def create(item: Item) -> Item:
        return item

    @app.get("/items/{item_id}")
    async def read(item_id: int, q: str | None = None):
        if item_id == 404:
            raise HTTPException(404, "Item not found", headers={"x-error": "yes"})
        return {"item_id": item_id, "q": q}

    @app.get("/cookie")
    def set_cookie(response: Response):
        response.set_cookie("session", "abc", httponly=True)
        return {"ok": True}

    @app.get("/echo-cookie")
    def echo_cookie(request_cookie: str | None = None):
        return {"cookie": request_cookie}

    @app.get("/boom")
    def boom():
        raise ValueError("boom")

    @app.get("/bad-model", response_model=Item)
    def bad_model():
        return {"name": "x"}

    @app.get("/redirect")
    def redirect():
        return Response(status_code=307, headers={"location": "/items/1"})

    @app.get("/stream")
    async def stream():
        async def gen():
            for i in range(3):
                yield f"{i},"

        return StreamingResponse(gen(), media_type="text/plain")

    @app.head("/head")
    def head():
        return Response(b"", headers={"x-head": "1"})

    return app


@pytest.fixture
def app() -> FastAPI:
    return make_app()


def test_json_body_and_validation(app):
    client = TestClient(app)
    r = client.post("/items/", json={"name": "Foo", "price": "50.5"})
    assert r.status_code == 200
    assert r.json() == {"name": "Foo", "price": 50.5, "tax": None}
    r = client.post("/items/", json={"name": "Foo"})
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["body", "price"],
                "msg": "Field required",
                "input": {"name": "Foo"},
            }
        ]
    }


def test_path_query_and_errors(app):
    client = TestClient(app)
    assert client.get("/items/3?q=x").json() == {"item_id": 3, "q": "x"}
    r = client.get("/items/404")
    assert (r.status_code, r.json(), r.headers["x-error"]) == (
        404,
        {"detail": "Item not found"},
        "yes",
    )
    assert client.get("/nowhere").status_code == 404
    assert client.post("/items/3").status_code == 405
    assert client.get("/items/abc").status_code == 422


def test_cookies_are_kept_across_requests(app):
    client = TestClient(app)
    r = client.get("/cookie")
    assert r.json() == {"ok": True}
    assert "HttpOnly" in r.headers["set-cookie"]
    assert client.cookies["session"] == "abc"


def test_server_exceptions_are_raised_or_answered(app):
    with pytest.raises(ValueError, match="boom"):
        TestClient(app).get("/boom")
    r = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert (r.status_code, r.text) == (500, "Internal Server Error")


def test_response_model_failure_is_a_response_validation_error(app):
    with pytest.raises(ResponseValidationError) as info:
        TestClient(app).get("/bad-model")
    assert info.value.errors()[0]["loc"] == ("response", "price")


def test_redirects_streams_and_head(app):
    client = TestClient(app)
    r = client.get("/redirect")
    assert r.status_code == 200 and r.url.path == "/items/1"
    r = client.get("/redirect", follow_redirects=False)
    assert r.status_code == 307
    assert client.get("/stream").text == "0,1,2,"
    r = client.head("/head")
    assert r.status_code == 200 and r.headers["x-head"] == "1" and r.content == b""


def test_large_bodies_both_ways(app):
    client = TestClient(app)
    name = "x" * 500_000
    r = client.post("/items/", json={"name": name, "price": 1})
    assert r.json()["name"] == name


def test_lifespan_runs_with_the_context_manager(app):
    events = app.state.events
    with TestClient(app) as client:
        assert events == ["startup", "lifespan-start"]
        assert client.get("/items/1").status_code == 200
    assert events == ["startup", "lifespan-start", "lifespan-end"]


def test_dependency_overrides_apply_to_the_next_request():
    from data_bridge.api import Depends

    app = FastAPI()

    def real() -> str:
        return "real"

    @app.get("/dep")
    def dep(value: str = Depends(real)):
        return {"value": value}

    client = TestClient(app)
    assert client.get("/dep").json() == {"value": "real"}
    app.dependency_overrides[real] = lambda: "fake"
    assert client.get("/dep").json() == {"value": "fake"}
    app.dependency_overrides.clear()
    assert client.get("/dep").json() == {"value": "real"}


def test_a_dropped_client_releases_its_server(app):
    client = TestClient(app)
    assert client.get("/items/1").status_code == 200
    ref = weakref.ref(client)
    del client
    gc.collect()
    assert ref() is None


def test_refuses_to_run_inside_a_running_loop(app):
    import asyncio

    async def inside():
        TestClient(app).get("/items/1")

    with pytest.raises(RuntimeError, match="outside a running event loop"):
        asyncio.run(inside())


def test_background_work_has_finished_when_the_call_returns():
    log: list[str] = []
    app = FastAPI()

    @app.post("/tasks")
    def tasks(background: BackgroundTasks):
        background.add_task(log.append, "tasks")
        return {"ok": 1}

    @app.get("/response")
    def response():
        return JSONResponse({"ok": 2}, background=BackgroundTask(log.append, "response"))

    @app.get("/both")
    async def both(background: BackgroundTasks):
        background.add_task(log.append, "both")
        return JSONResponse({"ok": 3})

    client = TestClient(app)
    assert client.post("/tasks").json() == {"ok": 1} and log == ["tasks"]
    assert client.get("/response").json() == {"ok": 2} and log[-1] == "response"
    assert client.get("/both").json() == {"ok": 3} and log[-1] == "both"


def test_root_path_of_the_server_reaches_requests_and_the_document():
    app = FastAPI()

    @app.get("/where")
    def where(request: Request):
        return {"root_path": request.scope["root_path"], "url": str(request.url)}

    client = TestClient(app, root_path="/api/v1")
    assert client.get("/where").json() == {
        "root_path": "/api/v1",
        "url": "http://testserver/api/v1/where",
    }
    assert client.get("/openapi.json").json()["servers"] == [{"url": "/api/v1"}]
    assert "servers" not in TestClient(app).get("/openapi.json").json()


def test_client_address_int_keys_and_timedeltas():
    import datetime

    app = FastAPI()

    @app.get("/peer")
    def peer(request: Request):
        return {"client": list(request.client), "host": request.client.host}

    @app.get("/data")
    def data():
        return {1: "one", "d": datetime.timedelta(minutes=1, microseconds=500)}

    client = TestClient(app)
    assert client.get("/peer").json() == {"client": ["testclient", 50000], "host": "testclient"}
    assert client.get("/data").json() == {"1": "one", "d": 60.0005}
