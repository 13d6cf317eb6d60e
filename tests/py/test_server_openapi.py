"""The OpenAPI document (/openapi.json) and Swagger UI page (/docs) of the test app."""

from __future__ import annotations

import httpx
import pytest
from openapi_spec_validator import validate

from data_bridge.api import App, Query


@pytest.fixture(scope="module")
def doc(server):
    r = httpx.get(server.url + "/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    return r.json()


def test_document_is_valid_openapi_3_1(doc):
    assert doc["openapi"] == "3.1.0"
    # As in FastAPI, the operations of a route with several methods share the route's one
    # operationId (a warning says so), which the validator rejects: the rest is checked.
    multi = doc["paths"]["/multi"]
    assert multi["get"]["operationId"] == multi["post"]["operationId"]
    validate(dict(doc, paths={k: v for k, v in doc["paths"].items() if k != "/multi"}))
    assert doc["info"] == {"title": "FastAPI", "version": "0.1.0"}
    # The documentation endpoints do not describe themselves.
    assert "/openapi.json" not in doc["paths"] and "/docs" not in doc["paths"]


def test_path_and_query_parameters(doc):
    op = doc["paths"]["/users/{user_id}"]["get"]
    assert op["summary"] == "Get User"
    assert op["operationId"] == "get_user_users__user_id__get"
    assert op["parameters"] == [
        {
            "name": "user_id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "title": "User Id"},
        },
        {
            "name": "verbose",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean", "title": "Verbose", "default": False},
        },
    ]
    assert op["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPValidationError"
    }
    assert "head" not in doc["paths"]["/users/{user_id}"]


def test_markers_and_constraints(doc):
    params = {p["name"]: p for p in doc["paths"]["/params/search"]["get"]["parameters"]}
    assert params["q"]["schema"] | {} == {
        "type": "string",
        "minLength": 2,
        "maxLength": 10,
        "pattern": "^[a-z]+$",
        "title": "Q",
    }
    assert params["limit"]["schema"]["minimum"] == 1 and params["limit"]["schema"]["maximum"] == 100
    assert params["ratio"]["schema"]["exclusiveMinimum"] == 0
    assert params["tag"]["schema"] == {
        "type": "array",
        "items": {"type": "string"},
        "maxItems": 3,
        "title": "Tag",
        "default": [],
    }
    assert params["user-agent"]["in"] == "header"
    assert params["user-agent"]["schema"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert params["theme"]["in"] == "cookie"


def test_request_bodies(doc):
    create = doc["paths"]["/items"]["post"]
    assert "201" in create["responses"]
    model = doc["paths"]["/model"]["post"]["requestBody"]
    assert model["required"] is True
    assert model["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Item"}
    item = doc["components"]["schemas"]["Item"]
    assert item["required"] == ["name", "price"]
    assert set(item["properties"]) == {"name", "price", "tags"}
    embed = doc["paths"]["/params/embed"]["post"]["requestBody"]["content"]["application/json"]
    body = doc["components"]["schemas"][embed["schema"]["$ref"].rsplit("/", 1)[1]]
    assert body["properties"]["item"]["$ref"] == "#/components/schemas/Item"
    assert body["required"] == ["item"]
    items = doc["paths"]["/params/items"]["post"]["requestBody"]["content"]["application/json"]
    assert items["schema"]["type"] == "array"
    assert items["schema"]["items"] == {"$ref": "#/components/schemas/Item"}


def test_swagger_ui_page(server):
    r = httpx.get(server.url + "/docs", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert 'url: "/openapi.json"' in r.text
    assert httpx.head(server.url + "/docs", timeout=10).status_code == 200


def test_documentation_can_be_turned_off_or_overridden():
    app = App(openapi_url=None)

    @app.get("/a")
    def a(q: int = Query(1, ge=0)):
        return q

    assert app._doc_routes() == []
    assert "/a" in app.openapi()["paths"]

    app = App(docs_url=None)
    assert [path for path, _ in app._doc_routes()] == ["/openapi.json", "/redoc"]
    app = App(docs_url=None, redoc_url=None)
    assert [path for path, _ in app._doc_routes()] == ["/openapi.json"]
    app = App()
    assert [path for path, _ in app._doc_routes()] == [
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
    ]

    app = App(title="T", version="9", description="About")

    @app.get("/docs")
    def my_docs():
        return "mine"

    # A user route keeps its path; the other pages are still served.
    assert [path for path, _ in app._doc_routes()] == [
        "/openapi.json",
        "/docs/oauth2-redirect",
        "/redoc",
    ]
    assert app.openapi()["info"] == {"title": "T", "version": "9", "description": "About"}


def test_included_router_routes_are_served(server):
    r = httpx.get(server.url + "/v1/accounts/7", timeout=10)
    assert r.json() == {"account": 7}
    r = httpx.post(server.url + "/v1/accounts/", json={"a": 1}, timeout=10)
    assert r.status_code == 201 and r.json() == {"created": {"a": 1}}
    assert httpx.get(server.url + "/v1/accounts/legacy", timeout=10).json() == []
    assert httpx.get(server.url + "/accounts/7", timeout=10).status_code == 404


def test_router_tags_summary_and_hidden_routes(doc):
    op = doc["paths"]["/v1/accounts/{account_id}"]["get"]
    assert op["tags"] == ["v1", "accounts"]
    assert op["summary"] == "Read one account"
    assert op["description"] == "One account by id."
    assert doc["paths"]["/v1/accounts/"]["post"]["tags"] == ["v1", "accounts", "writes"]
    assert "/v1/accounts/legacy" not in doc["paths"]


def test_router_prefix_rules():
    from data_bridge.api import APIRouter
    from data_bridge.api._plan import RouteDefinitionError

    with pytest.raises(ValueError, match="prefix"):
        APIRouter(prefix="api")
    with pytest.raises(ValueError, match="prefix"):
        APIRouter(prefix="/api/")
    router = APIRouter()

    @router.get("/items")
    def items():
        return []

    app = App()
    with pytest.raises(RouteDefinitionError, match="no handler parameter"):
        app.include_router(router, prefix="/{tenant}")
    with pytest.raises(ValueError, match="itself"):
        router.include_router(router)
    outer = APIRouter(prefix="/api")
    outer.include_router(router, prefix="/v2")
    app.include_router(outer)
    assert [r.path for r in app.routes] == ["/api/v2/items"]
