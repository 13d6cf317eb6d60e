"""Requests under the ASGI root_path (a proxy's prefix, TestClient(root_path=...)): routed
on the rest of their path as Starlette's get_route_path does, with request.url, the scope's
path and url_for keeping the prefix; and app.dependency_overrides = None meaning none."""

from typing import Any

from data_bridge.api import Depends, FastAPI, Request
from data_bridge.api.testclient import TestClient


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}", name="item")
    def item(item_id: int, request: Request) -> dict[str, Any]:
        return {
            "id": item_id,
            "url": str(request.url),
            "path": request.scope["path"],
            "root": request.scope["root_path"],
            "for": str(request.url_for("item", item_id=7)),
        }

    @app.get("/slash/")
    def slash() -> str:
        return "ok"

    return app


def test_prefixed_requests_route_on_the_rest() -> None:
    client = TestClient(_app(), root_path="/api/v1", base_url="https://example.com")
    r = client.get("/api/v1/items/3?x=1")
    assert r.status_code == 200
    assert r.json() == {
        "id": 3,
        "url": "https://example.com/api/v1/items/3?x=1",
        "path": "/api/v1/items/3",
        "root": "/api/v1",
        "for": "https://example.com/api/v1/items/7",
    }
    # Without the prefix (a proxy that strips it): routed as is, the prefix added back.
    r = client.get("/items/4")
    assert r.json()["url"] == "https://example.com/api/v1/items/4"
    assert r.json()["path"] == "/api/v1/items/4"
    # A prefix that only starts the same is not the prefix.
    assert client.get("/api/v1x/items/3").status_code == 404
    # redirect_slashes looks under the prefix too, and redirects to the whole path.
    r = client.get("/api/v1/slash", follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"] == "https://example.com/api/v1/slash/"


def test_no_root_path() -> None:
    client = TestClient(_app())
    assert client.get("/api/v1/items/3").status_code == 404
    assert client.get("/items/3").json()["url"] == "http://testserver/items/3"


def test_dependency_overrides_set_to_none() -> None:
    app = FastAPI()

    def dep() -> str:
        return "real"

    @app.get("/")
    def index(v: str = Depends(dep)) -> str:
        return v

    client = TestClient(app)
    app.dependency_overrides[dep] = lambda: "fake"
    assert client.get("/").json() == "fake"
    app.dependency_overrides = None  # type: ignore[assignment]
    assert client.get("/").json() == "real"


def test_request_url_of_escaped_paths_is_starlettes() -> None:
    """request.url is built from the decoded path as Starlette's URL(scope=...) builds it:
    spaces and non-ASCII as they are, only "?", "#" and "\\" escaped; the query as sent."""
    import pytest

    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient as FastAPIClient

    def build(framework: Any, request_class: Any) -> Any:
        app = framework()

        @app.get("/p/{name}")
        def p(name: str, request: request_class) -> dict[str, Any]:  # type: ignore[valid-type]
            return {"name": name, "url": str(request.url), "path": request.url.path}

        return app

    ours = TestClient(build(FastAPI, Request))
    theirs = FastAPIClient(build(fastapi.FastAPI, fastapi.Request))
    for target in (
        "/p/a%20b?x=%20y",
        "/p/%C3%A9t%C3%A9",
        "/p/q%3Fmark",
        "/p/hash%23tag",
        "/p/back%5Cslash",
        "/p/plus+sign?q=a+b",
        "/p/%25percent",
    ):
        a, b = ours.get(target), theirs.get(target)
        assert (a.status_code, a.json()) == (b.status_code, b.json()), target
