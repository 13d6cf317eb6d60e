"""msgspec.Struct bodies and responses (api/_msgspec.py): decoded and validated by msgspec
from the body bytes, 422s in FastAPI's shape with the location msgspec reports, response
models checked and written by msgspec, Structs returned without one written by the JSON
encoder, and their schemas in the OpenAPI document."""

from typing import Any

import pytest

msgspec = pytest.importorskip("msgspec")

from data_bridge.api import FastAPI  # noqa: E402
from data_bridge.api.testclient import TestClient  # noqa: E402


class Line(msgspec.Struct):
    sku: str
    qty: int


class Order(msgspec.Struct):
    id: int
    lines: list[Line] = []
    note: str | None = None


class Renamed(msgspec.Struct, rename="camel", omit_defaults=True):
    first_name: str
    extra: int = 0


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/orders")
    def create(order: Order) -> Order:
        return order

    @app.post("/many")
    def many(orders: list[Order]) -> dict[str, int]:
        return {"n": len(orders)}

    @app.get("/untyped")
    def untyped() -> Any:
        return [Renamed("Ada"), Renamed("Bob", extra=2)]

    @app.get("/bad", response_model=Order)
    def bad() -> Any:
        return {"id": "x"}

    return app


def test_bodies_responses_and_errors() -> None:
    client = TestClient(_app(), raise_server_exceptions=False)
    body = {"id": 1, "lines": [{"sku": "a", "qty": 2}]}
    assert client.post("/orders", json=body).json() == {**body, "note": None}
    assert client.post("/many", json=[body, {"id": 2}]).json() == {"n": 2}
    r = client.post("/orders", json={"id": 1, "lines": [{"sku": "a", "qty": "2"}]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "lines", 0, "qty"]
    assert "Expected `int`, got `str`" in r.json()["detail"][0]["msg"]
    # The input is the value at the location, as pydantic reports it; for a missing
    # field, the object without it.
    assert r.json()["detail"][0]["input"] == "2"
    r = client.post("/orders", json={"lines": []})
    assert r.json()["detail"][0] == {
        "type": "missing",
        "loc": ["body", "id"],
        "msg": "Field required",
        "input": {"lines": []},
    }
    r = client.post("/orders", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    # msgspec stops at the first wrong value, before the rest of the body: invalid JSON
    # after it is still reported as invalid JSON.
    r = client.post(
        "/orders", content=b'{"id": "x", nope', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    # A Struct written by the encoder follows its own settings (rename, omit_defaults).
    assert client.get("/untyped").json() == [{"firstName": "Ada"}, {"firstName": "Bob", "extra": 2}]
    assert client.get("/bad").status_code == 500  # a response that is not an Order


def test_openapi_shows_the_struct() -> None:
    doc = _app().openapi()
    body = doc["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    assert schema["properties"]["id"] == {"type": "integer"}
    assert schema["properties"]["lines"]["items"]["properties"]["qty"] == {"type": "integer"}
    assert schema["required"] == ["id"]
