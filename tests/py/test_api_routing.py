"""Routing as FastAPI does it: redirect_slashes, route arguments, include_router layering,
url_path_for, inferred response models, response classes and injected responses."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Annotated

import pytest
from pydantic import BaseModel

from data_bridge.api import APIRouter, Depends, FastAPI, Header, HTTPException, Response
from data_bridge.api.responses import (
    HTMLResponse,
    ORJSONResponse,
    PlainTextResponse,
    StreamingResponse,
)
from data_bridge.api.routing import NoMatchFound
from data_bridge.api.testclient import TestClient


class UserIn(BaseModel):
    name: str
    password: str


class UserOut(BaseModel):
    name: str


def test_redirect_slashes_both_ways_with_the_query():
    app = FastAPI()

    @app.get("/items/")
    def items(q: str | None = None):
        return {"q": q}

    @app.post("/users")
    def users():
        return 1

    client = TestClient(app)
    r = client.get("/items?q=1", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, "http://testserver/items/?q=1")
    assert client.get("/items?q=1").json() == {"q": "1"}
    # Any method of the other path counts, as in Starlette (the redirect then gives 405).
    assert client.get("/users/", follow_redirects=False).headers["location"] == (
        "http://testserver/users"
    )
    assert client.get("/nothing/").status_code == 404
    assert client.get("/").status_code == 404

    off = FastAPI(redirect_slashes=False)
    off.get("/items/")(items)
    assert TestClient(off).get("/items").status_code == 404


def test_unknown_route_arguments_are_refused():
    app = FastAPI()
    with pytest.raises(TypeError, match="frobnicate"):
        app.get("/a", frobnicate=True)
    # FastAPI keeps unknown constructor arguments in app.extra.
    assert FastAPI(not_an_argument=1).extra == {"not_an_argument": 1}


def test_response_model_filters_and_is_inferred_from_the_annotation():
    app = FastAPI()

    @app.post("/users", response_model=UserOut, status_code=201)
    def create(user: UserIn):
        return user

    @app.get("/inferred")
    def inferred() -> UserOut:
        return UserIn(name="a", password="secret")  # type: ignore[return-value]

    @app.get("/list", response_model=list[UserOut])
    def listing():
        return [{"name": "a", "password": "x"}, UserIn(name="b", password="y")]

    @app.get("/unset", response_model=UserOut, response_model_exclude_unset=True)
    def unset():
        return {"name": "n"}

    client = TestClient(app)
    r = client.post("/users", json={"name": "a", "password": "p"})
    assert (r.status_code, r.json()) == (201, {"name": "a"})
    assert client.get("/inferred").json() == {"name": "a"}
    assert client.get("/list").json() == [{"name": "a"}, {"name": "b"}]
    assert client.get("/unset").json() == {"name": "n"}


@pytest.mark.filterwarnings("ignore::data_bridge.api.exceptions.FastAPIDeprecationWarning")
def test_response_classes_and_injected_response():
    app = FastAPI(default_response_class=ORJSONResponse)

    @app.get("/html", response_class=HTMLResponse)
    def html():
        return "<h1>hi</h1>"

    @app.get("/text", response_class=PlainTextResponse)
    def text():
        return "plain"

    @app.get("/json")
    def json_():
        return {"a": 1}

    @app.get("/status")
    def status(response: Response):
        response.status_code = 202
        response.headers["x-extra"] = "1"
        response.set_cookie("k", "v", max_age=10, secure=True, samesite="strict")
        return {"ok": True}

    @app.get("/direct")
    def direct(response: Response):
        response.set_cookie("k", "v")
        return PlainTextResponse("direct", headers={"x-own": "y"})

    client = TestClient(app)
    r = client.get("/html")
    assert (r.text, r.headers["content-type"]) == ("<h1>hi</h1>", "text/html; charset=utf-8")
    assert client.get("/text").headers["content-type"] == "text/plain; charset=utf-8"
    assert client.get("/json").json() == {"a": 1}
    r = client.get("/status")
    assert (r.status_code, r.json(), r.headers["x-extra"]) == (202, {"ok": True}, "1")
    cookie = r.headers["set-cookie"]
    assert "k=v" in cookie and "Max-Age=10" in cookie and "Secure" in cookie
    assert "SameSite=strict" in cookie
    r = client.get("/direct")
    assert (r.text, r.headers["x-own"], r.headers["set-cookie"].startswith("k=v")) == (
        "direct",
        "y",
        True,
    )


def test_include_router_layers_prefixes_tags_dependencies_and_responses():
    calls: list[str] = []

    def outer():
        calls.append("outer")

    def inner():
        calls.append("inner")

    router = APIRouter(prefix="/items", tags=["items"], dependencies=[Depends(inner)])

    @router.get("/{item_id}", responses={404: {"description": "Not found"}})
    def read(item_id: int):
        return {"item_id": item_id}

    app = FastAPI()
    app.include_router(
        router, prefix="/v1", tags=["v1"], dependencies=[Depends(outer)], responses={418: {}}
    )
    route = app.routes[-1]
    assert route.path == "/v1/items/{item_id}"
    assert route.tags == ["v1", "items"]
    assert set(route.responses) == {404, 418}
    assert TestClient(app).get("/v1/items/3").json() == {"item_id": 3}
    assert calls == ["outer", "inner"]
    assert app.url_path_for("read", item_id=3) == "/v1/items/3"
    with pytest.raises(NoMatchFound):
        app.url_path_for("read")
    with pytest.raises(ValueError, match="prefix"):
        app.include_router(router, prefix="/bad/")


def test_router_events_are_merged_into_the_app():
    events: list[str] = []
    router = APIRouter(on_startup=[lambda: events.append("router-up")])
    app = FastAPI(on_shutdown=[lambda: events.append("app-down")])
    app.include_router(router)
    with TestClient(app):
        assert events == ["router-up"]
    assert events == ["router-up", "app-down"]


def test_strict_content_type_for_json_bodies():
    app = FastAPI()

    @app.post("/items")
    def create(item: UserOut):
        return item

    @app.post("/raw")
    def raw(data: dict):
        return data

    lax = FastAPI(strict_content_type=False)
    lax.post("/items")(create)
    body = '{"name": "Foo"}'
    client = TestClient(app)
    assert client.post("/items", content=body).status_code == 422
    r = client.post("/items", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 422 and r.json()["detail"][0]["input"] == body
    r = client.post("/raw", content=body, headers={"Content-Type": "text/plain"})
    assert r.json()["detail"][0]["type"] == "dict_type"
    for ctype in ("application/json", "application/JSON; charset=utf-8", "application/ld+json"):
        assert client.post("/items", content=body, headers={"Content-Type": ctype}).json() == {
            "name": "Foo"
        }
    assert TestClient(lax).post("/items", content=body).json() == {"name": "Foo"}


def test_response_model_never_writes_a_subclass_extra_fields():
    class Public(BaseModel):
        name: str

    class Private(Public):
        secret: str

    class Box(BaseModel):
        owner: Public

    app = FastAPI()

    @app.get("/one", response_model=Public)
    def one():
        return Private(name="a", secret="s")

    @app.get("/many", response_model=list[Public])
    def many():
        return [Public(name="p"), Private(name="a", secret="s")]

    @app.get("/nested", response_model=Box)
    def nested():
        return Box(owner=Private(name="a", secret="s"))

    @app.get("/exact", response_model=list[Public])
    def exact():
        return [Public(name=str(i)) for i in range(3)]

    client = TestClient(app)
    assert client.get("/one").json() == {"name": "a"}
    assert client.get("/many").json() == [{"name": "p"}, {"name": "a"}]
    assert client.get("/nested").json() == {"owner": {"name": "a"}}
    assert client.get("/exact").json() == [{"name": "0"}, {"name": "1"}, {"name": "2"}]


def test_generator_endpoints_stream_json_lines_or_raw_bodies():
    app = FastAPI()

    @app.get("/items")
    async def items() -> AsyncIterable[UserOut]:
        yield UserOut(name="a")
        yield {"name": "b", "password": "hidden"}

    @app.get("/sync")
    def sync():
        yield {"n": 1, "s": "é", "f": float("nan")}
        yield [2]

    @app.get("/raw", response_class=StreamingResponse)
    async def raw() -> AsyncIterable[str]:
        yield "a"
        yield "b"

    client = TestClient(app)
    r = client.get("/items")
    assert r.headers["content-type"] == "application/jsonl"
    assert r.text == '{"name":"a"}\n{"name":"b"}\n'
    # Untyped items are written as FastAPI writes them: json.dumps's separators and ASCII
    # escapes, NaN as null.
    assert client.get("/sync").text == '{"n": 1, "s": "\\u00e9", "f": null}\n[2]\n'
    assert client.get("/raw").text == "ab"


def test_dependencies_run_in_order_when_binding_fails():
    calls: list[str] = []

    def verify_token(x_token: Annotated[str, Header()]):
        calls.append("token")
        if x_token != "good":
            raise HTTPException(400, "X-Token header invalid")

    def verify_key(x_key: Annotated[str, Header()]):
        calls.append("key")
        return x_key

    app = FastAPI()

    @app.post("/items", dependencies=[Depends(verify_token), Depends(verify_key)])
    def create(item: UserIn, q: int):
        return item

    client = TestClient(app)
    # The token dependency bound and runs first: its 400 answers, as FastAPI's would.
    r = client.post("/items", headers={"X-Token": "bad"})
    assert (r.status_code, r.json(), calls) == (
        400,
        {"detail": "X-Token header invalid"},
        ["token"],
    )
    # Every binding error at once when no dependency answers first.
    calls.clear()
    r = client.post("/items", headers={"X-Token": "good"}, json={"name": "n"})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [
        ["header", "x-key"],
        ["query", "q"],
        ["body", "password"],
    ]
    assert calls == ["token"]


def test_str_results_are_json_unless_the_response_class_is_text():
    app = FastAPI()

    @app.get("/json")
    def as_json():
        return "Rick"

    @app.get("/text", response_class=PlainTextResponse)
    def as_text():
        return "Rick"

    @app.get("/html", response_class=HTMLResponse)
    async def as_html():
        return "<b>Rick</b>"

    client = TestClient(app)
    r = client.get("/json")
    assert (r.headers["content-type"], r.text) == ("application/json", '"Rick"')
    r = client.get("/text")
    assert (r.headers["content-type"], r.text) == ("text/plain; charset=utf-8", "Rick")
    r = client.get("/html")
    assert (r.headers["content-type"], r.text) == ("text/html; charset=utf-8", "<b>Rick</b>")
    assert [route.text_content_type() for route in app.routes[-3:]] == [
        None,
        b"text/plain; charset=utf-8",
        b"text/html; charset=utf-8",
    ]


def test_max_body_size_per_route_router_and_app():
    app = FastAPI(max_body_size=100)
    big = APIRouter(prefix="/big", max_body_size=10_000)

    @app.post("/small")
    def small(data: dict):
        return {"n": len(data)}

    @big.post("/upload")
    def upload(data: dict):
        return {"n": len(data)}

    @big.post("/tight", max_body_size=50)
    def tight(data: dict):
        return {"n": len(data)}

    app.include_router(big)
    client = TestClient(app)
    payload = {"k": "x" * 200}
    assert client.post("/small", json=payload).status_code == 413
    assert client.post("/small", json={"a": 1}).json() == {"n": 1}
    assert client.post("/big/upload", json=payload).json() == {"n": 1}
    assert client.post("/big/tight", json={"a": "x" * 60}).status_code == 413
    with pytest.raises(ValueError, match="non-negative"):
        FastAPI(max_body_size=-1)


def test_redirect_response_class_and_response_unions():
    from data_bridge.api.exceptions import FastAPIError
    from data_bridge.api.responses import RedirectResponse

    app = FastAPI()

    @app.get("/go", response_class=RedirectResponse)
    async def go():
        return "https://example.com/there"

    r = TestClient(app).get("/go", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, "https://example.com/there")

    with pytest.raises(FastAPIError, match="response_model=None"):

        @app.get("/portal")
        async def portal() -> Response | dict:
            return {}

    @app.get("/portal2", response_model=None)
    async def portal2() -> Response | dict:
        return {"ok": 1}

    assert TestClient(app).get("/portal2").json() == {"ok": 1}
