"""The benchmark app for FastAPI: the same handlers as bench/apps/databridge_app.py, with
ORJSONResponse as the default response class and PlainTextResponse for /plaintext, which
is how a FastAPI user tunes for speed. The typed routes (response models) use JSONResponse:
with a response model FastAPI 0.165 serializes straight to bytes through pydantic there,
its fastest path (it deprecates ORJSONResponse for that reason). bench/run.py serves it with
`uvicorn fastapi_app:app --loop uvloop --http httptools --no-access-log --log-level warning`
(one worker, pinned to one core)."""

import os
from dataclasses import dataclass, field
from typing import Annotated

import msgspec
from fastapi import Depends, FastAPI, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, ORJSONResponse, PlainTextResponse
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

app = FastAPI(default_response_class=ORJSONResponse)


@app.get("/plaintext", response_class=PlainTextResponse)
def plaintext():
    return "Hello, World!"


@app.get("/json")
async def json_response():
    return {
        "message": "Hello, World!",
        "status": "success",
        "timestamp": 1234567890,
        "data": {"key": "value"},
    }


@app.get("/users/{user_id}")
async def get_user(user_id: int, verbose: bool = False):
    return {
        "id": user_id,
        "name": f"User {user_id}",
        "email": f"user{user_id}@example.com",
        "active": True,
    }


@app.post("/items", status_code=201)
async def create_item(item: dict):
    return item


# --- typed scenarios (issues 12 and 17): the same code in both apps ---------------------


class Item(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str] = []
    active: bool = True


ITEMS = [Item(id=i, name=f"item {i}", price=i * 1.5, tags=["a", "b"]) for i in range(100)]


@app.get("/models", response_model=list[Item], response_class=JSONResponse)
async def list_models():
    return ITEMS


class Product(BaseModel):
    """FastAPI's tutorial model ("Request Body"): issue 12's pydantic-model POST."""

    name: str
    description: str | None = None
    price: float
    tax: float | None = None


@app.post("/products", response_model=Product, status_code=201, response_class=JSONResponse)
async def create_product(product: Product):
    return product


class Customer(BaseModel):
    name: str
    email: str


class Line(BaseModel):
    sku: str
    quantity: int = Field(gt=0)
    price: float


class Order(BaseModel):
    id: int
    customer: Customer
    lines: list[Line]
    note: str | None = None


class OrderOut(Order):
    total: float


@app.post("/orders", response_model=OrderOut, status_code=201, response_class=JSONResponse)
async def create_order(order: Order):
    total = sum(line.quantity * line.price for line in order.lines)
    return OrderOut(**order.__dict__, total=total)


# The same two typed scenarios with standard-library dataclasses (FastAPI validates and
# serializes them through pydantic) and with msgspec Structs, which FastAPI cannot take as
# parameters or response models: a FastAPI user decodes and encodes them by hand (issue 17).


@dataclass
class ItemDC:
    id: int
    name: str
    price: float
    tags: list[str] = field(default_factory=list)
    active: bool = True


ITEMS_DC = [ItemDC(id=i, name=f"item {i}", price=i * 1.5, tags=["a", "b"]) for i in range(100)]


@app.get("/dc/models", response_model=list[ItemDC], response_class=JSONResponse)
async def list_models_dc():
    return ITEMS_DC


@dataclass
class CustomerDC:
    name: str
    email: str


@dataclass
class LineDC:
    sku: str
    quantity: Annotated[int, Field(gt=0)]
    price: float


@dataclass
class OrderDC:
    id: int
    customer: CustomerDC
    lines: list[LineDC]
    note: str | None = None


@dataclass
class OrderOutDC(OrderDC):
    total: float = 0.0


@app.post("/dc/orders", response_model=OrderOutDC, status_code=201, response_class=JSONResponse)
async def create_order_dc(order: OrderDC):
    total = sum(line.quantity * line.price for line in order.lines)
    return OrderOutDC(order.id, order.customer, order.lines, order.note, total)


class ItemMS(msgspec.Struct):
    id: int
    name: str
    price: float
    tags: list[str] = []
    active: bool = True


ITEMS_MS = [ItemMS(id=i, name=f"item {i}", price=i * 1.5, tags=["a", "b"]) for i in range(100)]
ITEMS_MS_ENCODER = msgspec.json.Encoder()


@app.get("/ms/models")
async def list_models_ms():
    return Response(ITEMS_MS_ENCODER.encode(ITEMS_MS), media_type="application/json")


class CustomerMS(msgspec.Struct):
    name: str
    email: str


class LineMS(msgspec.Struct):
    sku: str
    quantity: Annotated[int, msgspec.Meta(gt=0)]
    price: float


class OrderMS(msgspec.Struct):
    id: int
    customer: CustomerMS
    lines: list[LineMS]
    note: str | None = None


class OrderOutMS(OrderMS):
    total: float = 0.0


ORDER_MS_DECODER = msgspec.json.Decoder(OrderMS)


@app.post("/ms/orders", status_code=201)
async def create_order_ms(request: Request):
    try:
        order = ORDER_MS_DECODER.decode(await request.body())
    except msgspec.ValidationError as exc:
        raise RequestValidationError([{"msg": str(exc), "loc": ["body"]}]) from None
    total = sum(line.quantity * line.price for line in order.lines)
    out = OrderOutMS(order.id, order.customer, order.lines, order.note, total)
    return Response(ITEMS_MS_ENCODER.encode(out), status_code=201, media_type="application/json")


oauth2 = OAuth2PasswordBearer(tokenUrl="token")


async def current_token(token: Annotated[str, Depends(oauth2)]) -> str:
    return token


async def current_user(token: Annotated[str, Depends(current_token)]) -> dict:
    return {"user": token, "scopes": ["read"]}


async def active_user(user: Annotated[dict, Depends(current_user)]) -> dict:
    return {**user, "active": True}


@app.get("/me")
async def me(user: Annotated[dict, Depends(active_user)]):
    return user


@app.get("/cookie")
async def cookie(response: Response):
    response.set_cookie("session", "abc123", httponly=True)
    return {"ok": True}


# --- middleware scenarios (issue 14): BENCH_MIDDLEWARE=gzip or http ---------------------

JSON_1K = {"items": [{"id": i, "name": f"item {i}", "price": i * 1.5} for i in range(24)]}


@app.get("/json1k")
async def json_1k():
    return JSON_1K


# --- issue 13: forms, uploads, static files ----------------------------------------------


@app.post("/login")
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()]):
    return {"access_token": form.username, "token_type": "bearer"}


@app.post("/upload")
async def upload(file: UploadFile):
    data = await file.read()
    return {"size": len(data)}


if os.environ.get("BENCH_STATIC"):
    app.mount("/static", StaticFiles(directory=os.environ["BENCH_STATIC"]), name="static")


if os.environ.get("BENCH_MIDDLEWARE") == "gzip":
    app.add_middleware(GZipMiddleware)
elif os.environ.get("BENCH_MIDDLEWARE") == "http":

    @app.middleware("http")
    async def add_header(request, call_next):
        response = await call_next(request)
        response.headers["x-bench"] = "1"
        return response
