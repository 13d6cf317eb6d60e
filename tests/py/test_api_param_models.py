"""Parameter models (query/header/cookie/form fields as one pydantic model) and the
handlers of RequestValidationError, as FastAPI answers them."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from data_bridge.api import Cookie, FastAPI, Form, Header, HTTPException, Query, Request
from data_bridge.api.exception_handlers import request_validation_exception_handler
from data_bridge.api.exceptions import RequestValidationError
from data_bridge.api.responses import JSONResponse, PlainTextResponse
from data_bridge.api.testclient import TestClient


class FilterParams(BaseModel):
    model_config = {"extra": "forbid"}
    limit: int = Field(100, gt=0, le=100)
    order_by: Literal["created_at", "updated_at"] = "created_at"
    tags: list[str] = []


class CommonHeaders(BaseModel):
    host: str
    save_data: bool
    x_tag: list[str] = []


class Cookies(BaseModel):
    session_id: str
    tracker: str | None = None


class Login(BaseModel):
    username: str
    password: str


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/")
    def items(filters: Annotated[FilterParams, Query()]):
        return filters

    @app.get("/headers/")
    def headers(h: Annotated[CommonHeaders, Header()]):
        return h

    @app.get("/cookies/")
    def cookies(c: Annotated[Cookies, Cookie()]):
        return c

    @app.post("/login/")
    def login(data: Annotated[Login, Form()]):
        return data

    return app


def test_query_model():
    client = TestClient(make_app())
    assert client.get("/items/?limit=5&tags=a&tags=b").json() == {
        "limit": 5,
        "order_by": "created_at",
        "tags": ["a", "b"],
    }
    r = client.get("/items/?limit=0&order_by=x&tool=plumbus")
    assert r.status_code == 422
    assert [(e["type"], e["loc"]) for e in r.json()["detail"]] == [
        ("greater_than", ["query", "limit"]),
        ("literal_error", ["query", "order_by"]),
        ("extra_forbidden", ["query", "tool"]),
    ]


def test_header_model():
    client = TestClient(make_app())
    client.headers.clear()
    r = client.get("/headers/", headers=[("save-data", "true"), ("x-tag", "1"), ("x-tag", "2")])
    assert r.json() == {"host": "testserver", "save_data": True, "x_tag": ["1", "2"]}
    r = client.get("/headers/")
    assert r.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["header", "save-data"],
                "msg": "Field required",
                "input": {"host": "testserver"},
            }
        ]
    }


def test_cookie_and_form_models():
    client = TestClient(make_app())
    r = client.get("/cookies/", headers={"Cookie": "session_id=abc"})
    assert r.json() == {"session_id": "abc", "tracker": None}
    assert client.get("/cookies/").json()["detail"][0]["loc"] == ["cookie", "session_id"]
    assert client.post("/login/", data={"username": "u", "password": "p"}).json() == {
        "username": "u",
        "password": "p",
    }
    r = client.post("/login/", data={"username": "u"})
    assert r.json()["detail"][0]["loc"] == ["body", "password"]


def test_validation_error_handler_receives_native_binding_errors():
    app = FastAPI()

    @app.exception_handler(RequestValidationError)
    async def handler(request: Request, exc: RequestValidationError):
        if request.url.path == "/plain/1":
            return PlainTextResponse(str(len(exc.errors())), status_code=400)
        if request.url.path == "/reuse":
            return await request_validation_exception_handler(request, exc)
        return JSONResponse({"errors": exc.errors(), "body": exc.body}, status_code=418)

    @app.get("/plain/{n}")
    def plain(n: int, q: int):
        return n

    @app.post("/reuse")
    def reuse(x: int = Query()):
        return x

    @app.post("/body")
    def body(item: Login):
        return item

    @app.exception_handler(404)
    async def not_found(request: Request, exc: HTTPException):
        return JSONResponse({"missing": exc.detail}, status_code=404)

    @app.get("/raise")
    def raise_():
        raise HTTPException(404, "gone")

    client = TestClient(app)
    r = client.get("/plain/1?q=x")
    assert (r.status_code, r.text) == (400, "1")
    r = client.post("/reuse")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "x"]
    r = client.post("/body", json={"username": "u"})
    assert r.status_code == 418
    assert r.json()["body"] == {"username": "u"}
    assert r.json()["errors"][0]["loc"] == ["body", "password"]
    assert client.get("/raise").json() == {"missing": "gone"}


def test_parameters_of_types_read_from_text():
    from datetime import date
    from enum import Enum
    from uuid import UUID

    class ModelName(str, Enum):
        alexnet = "alexnet"
        resnet = "resnet"

    app = FastAPI()

    @app.get("/models/{name}")
    def model(name: ModelName, day: date | None = None, kinds: list[UUID] = Query([])):
        return {"alexnet": name is ModelName.alexnet, "day": day, "kinds": kinds}

    client = TestClient(app)
    uid = "6f0f3a8c-9a43-4c3d-8fd7-1f2f5b1fcd3a"
    r = client.get(f"/models/alexnet?day=2020-02-02&kinds={uid}")
    assert r.json() == {"alexnet": True, "day": "2020-02-02", "kinds": [uid]}
    r = client.get("/models/foo?day=x&kinds=y")
    assert [(e["type"], e["loc"]) for e in r.json()["detail"]] == [
        ("enum", ["path", "name"]),
        ("date_from_datetime_parsing", ["query", "day"]),
        ("uuid_parsing", ["query", "kinds", 0]),
    ]
    assert r.json()["detail"][0]["ctx"] == {"expected": "'alexnet' or 'resnet'"}


def test_model_body_validated_from_the_raw_json():
    from pydantic import field_validator

    class Item(BaseModel):
        name: str
        price: float = Field(gt=0)
        tags: list[str] = []

        @field_validator("name")
        @classmethod
        def strip(cls, value: str) -> str:
            return value.strip()

    app = FastAPI()

    @app.post("/items")
    def create(item: Item):
        return item

    @app.post("/maybe")
    def maybe(item: Item | None = None):
        return {"item": item}

    client = TestClient(app)
    assert client.post("/items", json={"name": " a ", "price": "2.5"}).json() == {
        "name": "a",
        "price": 2.5,
        "tags": [],
    }
    r = client.post("/items", json={"name": "a", "price": -1})
    assert r.json()["detail"] == [
        {
            "type": "greater_than",
            "loc": ["body", "price"],
            "msg": "Input should be greater than 0",
            "input": -1,
            "ctx": {"gt": 0},
        }
    ]
    # Errors about the document as a whole come from the decoded value, as in FastAPI.
    r = client.post("/items", json=[1, 2])
    assert r.json()["detail"][0]["type"] == "model_attributes_type"
    assert r.json()["detail"][0]["input"] == [1, 2]
    r = client.post(
        "/items", content=b'{"name": "a",', headers={"Content-Type": "application/json"}
    )
    assert r.json()["detail"] == [
        {
            "type": "json_invalid",
            "loc": ["body", 13],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": "Expecting property name enclosed in double quotes"},
        }
    ]
    assert client.post("/maybe", json=None).json() == {"item": None}


def test_optional_parameter_model_absent_gives_the_default():
    app = FastAPI()

    @app.get("/prefs")
    def prefs(preferences: Annotated[Cookies | None, Cookie()] = None):
        return preferences

    client = TestClient(app)
    assert client.get("/prefs").json() is None
    r = client.get("/prefs", headers={"Cookie": "session_id=s"})
    assert r.json() == {"session_id": "s", "tracker": None}
    r = client.get("/prefs", headers={"Cookie": "tracker=t"})
    assert r.json()["detail"][0]["loc"] == ["cookie", "session_id"]


class Person(BaseModel):
    kind: Literal["person"]
    name: str


class Company(BaseModel):
    kind: Literal["company"]
    company_name: str


def test_form_model_unions_with_a_discriminator():
    app = FastAPI()

    @app.post("/contacts")
    def contact(
        who: Annotated[Person | Company, Form(discriminator="kind")],
        token: Annotated[str, Form()],
    ):
        return {"who": who, "token": token}

    client = TestClient(app)
    r = client.post("/contacts", data={"kind": "company", "company_name": "Acme", "token": "t"})
    assert r.json() == {"who": {"kind": "company", "company_name": "Acme"}, "token": "t"}
    r = client.post("/contacts", data={"kind": "person", "token": "t"})
    assert r.json()["detail"][0]["loc"] == ["body", "person", "name"]
    r = client.post("/contacts", data={"kind": "robot", "token": "t"})
    assert r.json()["detail"][0]["type"] == "union_tag_invalid"


def test_dataclass_bodies_and_annotated_validators_on_query_parameters():
    from dataclasses import dataclass

    from pydantic import AfterValidator

    from data_bridge.api.middleware import Middleware
    from data_bridge.api.middleware.cors import CORSMiddleware

    @dataclass
    class Point:
        x: float
        y: float = 0.0

    def isbn(value: str | None) -> str | None:
        if value is not None and not value.startswith("isbn-"):
            raise ValueError('it must start with "isbn-"')
        return value

    app = FastAPI(middleware=[Middleware(CORSMiddleware, allow_origins=["https://a.example"])])

    @app.post("/move")
    def move(point: Point):
        return point

    @app.get("/book")
    def book(id: Annotated[str | None, AfterValidator(isbn)] = None):  # noqa: A002
        return {"id": id}

    client = TestClient(app)
    assert client.post("/move", json={"x": "1.5"}).json() == {"x": 1.5, "y": 0.0}
    r = client.post("/move", json={"x": "no"})
    assert r.json()["detail"][0]["loc"] == ["body", "x"]
    assert client.get("/book?id=isbn-1").json() == {"id": "isbn-1"}
    r = client.get("/book?id=x")
    assert r.json()["detail"][0]["type"] == "value_error"
    assert r.json()["detail"][0]["ctx"] == {"error": {}}
    assert client.get("/book").json() == {"id": None}
    r = client.get("/book", headers={"Origin": "https://a.example"})
    assert r.headers["access-control-allow-origin"] == "https://a.example"
