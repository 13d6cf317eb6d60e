"""JSON bodies that do not decode, against FastAPI itself: a syntax error is a 422
json_invalid (with json's position and message); bytes that are not text in any of JSON's
encodings (invalid UTF-8) are FastAPI's 400 "There was an error parsing the body", on
every kind of body parameter and on routes with dependencies."""

from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from data_bridge import api as ours_api
from data_bridge.api.testclient import TestClient

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient as RTestClient  # noqa: E402


class Item(BaseModel):
    name: str


def _build(api: Any) -> Any:
    app = api.FastAPI()

    async def dep(x_key: Annotated[str | None, api.Header()] = None) -> str | None:
        return x_key

    @app.post("/model")
    async def model(item: Item) -> Any:
        return item

    @app.post("/dict")
    async def as_dict(data: dict[str, Any]) -> Any:
        return data

    @app.post("/list")
    async def as_list(numbers: Annotated[list[int], api.Body()]) -> Any:
        return numbers

    @app.post("/embedded")
    async def embedded(item: Item, n: Annotated[int, api.Body()]) -> Any:
        return {"item": item, "n": n}

    @app.post("/deps", dependencies=[api.Depends(dep)])
    async def with_deps(item: Item, key: Annotated[Any, api.Depends(dep)]) -> Any:
        return {"item": item, "key": key}

    return app


BODIES = [
    b'{"name": "\xff\xfe"}',  # not UTF-8
    b'{"name": "a\xc3"}',  # a truncated sequence
    b'\xff\xfe{"name": 1}',  # a UTF-16 byte order mark, then not UTF-16
    b'{"name": "x",}',  # a syntax error
    b"\x00\x00\x00{",  # UTF-32 by json's detection, then a syntax error
    b'{"name": "caf\xc3\xa9"}',  # fine
]


@pytest.fixture(scope="module")
def clients() -> tuple[Any, Any]:
    return TestClient(_build(ours_api)), RTestClient(_build(fastapi))


@pytest.mark.parametrize("path", ["/model", "/dict", "/list", "/embedded", "/deps"])
@pytest.mark.parametrize("body", BODIES)
def test_undecodable_body_as_fastapi(clients: tuple[Any, Any], path: str, body: bytes) -> None:
    ours, theirs = clients
    headers = {"content-type": "application/json"}
    mine = ours.post(path, content=body, headers=headers)
    ref = theirs.post(path, content=body, headers=headers)
    assert (mine.status_code, mine.json()) == (ref.status_code, ref.json())
