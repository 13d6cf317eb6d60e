"""Parameters of any class that is not a model, mapping, sequence, dataclass or upload are
read from one value (FastAPI's field_annotation_is_scalar): pydantic's HttpUrl and other
types validated from text are query parameters, not a JSON body, as in FastAPI."""

from typing import Any

import pytest
from pydantic import AnyUrl, BaseModel, HttpUrl

from data_bridge import api as ours_api
from data_bridge.api.testclient import TestClient

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient as RTestClient  # noqa: E402


class Item(BaseModel):
    id: str


def _build(api: Any) -> Any:
    app = api.FastAPI()

    @app.post("/items")
    def create(item: Item, callback: HttpUrl | None = None, origin: AnyUrl | None = None) -> Any:
        return {"id": item.id, "callback": str(callback), "origin": str(origin)}

    return app


@pytest.mark.parametrize(
    "query",
    ["", "?callback=https://example.com/x", "?callback=not-a-url", "?origin=ftp://h/p"],
)
def test_url_query_parameters_as_fastapi(query: str) -> None:
    body = {"id": "a1"}
    mine = TestClient(_build(ours_api)).post("/items" + query, json=body)
    ref = RTestClient(_build(fastapi)).post("/items" + query, json=body)
    assert mine.status_code == ref.status_code
    assert mine.json() == ref.json()
    assert _build(ours_api).openapi()["paths"]["/items"]["post"]["parameters"][0]["in"] == "query"
