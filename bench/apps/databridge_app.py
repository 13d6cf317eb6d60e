"""The benchmark app for data-bridge: the handlers of issue 2, written exactly as a user
would write them. bench/run.py starts it as `python databridge_app.py PORT` pinned to one
core; bench/apps/fastapi_app.py holds the same handlers for FastAPI."""

import os
import sys
from dataclasses import dataclass, field
from typing import Annotated

import msgspec
from pydantic import BaseModel, Field

from data_bridge.api import App, Depends, PlainTextResponse, Response, UploadFile
from data_bridge.api.middleware.gzip import GZipMiddleware
from data_bridge.api.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from data_bridge.api.staticfiles import StaticFiles

app = App()


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


@app.get("/models", response_model=list[Item])
async def list_models():
    return ITEMS


class Product(BaseModel):
    """FastAPI's tutorial model ("Request Body"): issue 12's pydantic-model POST."""

    name: str
    description: str | None = None
    price: float
    tax: float | None = None


@app.post("/products", response_model=Product, status_code=201)
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


@app.post("/orders", response_model=OrderOut, status_code=201)
async def create_order(order: Order):
    total = sum(line.quantity * line.price for line in order.lines)
    return OrderOut(**order.__dict__, total=total)


# The same two typed scenarios with standard-library dataclasses and with msgspec Structs
# (issue 17): the same data, the same JSON in and out.


@dataclass
class ItemDC:
    id: int
    name: str
    price: float
    tags: list[str] = field(default_factory=list)
    active: bool = True


ITEMS_DC = [ItemDC(id=i, name=f"item {i}", price=i * 1.5, tags=["a", "b"]) for i in range(100)]


@app.get("/dc/models", response_model=list[ItemDC])
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


@app.post("/dc/orders", response_model=OrderOutDC, status_code=201)
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


@app.get("/ms/models", response_model=list[ItemMS])
async def list_models_ms():
    return ITEMS_MS


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


@app.post("/ms/orders", response_model=OrderOutMS, status_code=201)
async def create_order_ms(order: OrderMS):
    total = sum(line.quantity * line.price for line in order.lines)
    return OrderOutMS(order.id, order.customer, order.lines, order.note, total)


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


# The upload body is 1 MiB of file plus its multipart framing: over the server's default
# 1 MiB body limit, so the route allows more (FastAPI has no body limit).
@app.post("/upload", max_body_size=4 * 1024 * 1024)
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


# --- observability cost (issue 16): BENCH_OBSERVE=access-log,access-log-json,metrics ------
# Any of them, comma separated: the access log on (uvicorn's text, or JSON) and/or metrics
# counted (scraped at /metrics). Compare CPU per request with and without.
OBSERVE = set(filter(None, os.environ.get("BENCH_OBSERVE", "").split(",")))

if __name__ == "__main__":
    PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    # As the uvicorn peers run: --no-access-log (App.run logs access at info, as uvicorn),
    # unless BENCH_OBSERVE asks for it; bench/run.py --tls: the certificate every server gets.
    tls = {
        "ssl_certfile": os.environ.get("BENCH_SSL_CERTFILE"),
        "ssl_keyfile": os.environ.get("BENCH_SSL_KEYFILE"),
    }
    app.run(
        host="127.0.0.1",
        port=PORT,
        access_log=bool(OBSERVE & {"access-log", "access-log-json"}),
        access_log_format="json" if "access-log-json" in OBSERVE else "uvicorn",
        metrics="/metrics" if "metrics" in OBSERVE else None,
        **tls,
    )
