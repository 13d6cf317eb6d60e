"""The benchmark app for Litestar: the scenarios of bench/apps/databridge_app.py written the
way a Litestar user tunes for speed, with msgspec Structs for the typed bodies (Litestar's
native, fastest path: msgspec decodes, validates and encodes them in C). bench/run.py serves
it with `uvicorn litestar_app:app --loop uvloop --http httptools --no-access-log
--log-level warning` (one worker, pinned to one core), as it serves FastAPI."""

from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException


@get("/plaintext", media_type="text/plain", sync_to_thread=False)
def plaintext() -> str:
    return "Hello, World!"


@get("/json")
async def json_response() -> dict[str, Any]:
    return {
        "message": "Hello, World!",
        "status": "success",
        "timestamp": 1234567890,
        "data": {"key": "value"},
    }


@get("/users/{user_id:int}")
async def get_user(user_id: int, verbose: bool = False) -> dict[str, Any]:
    return {
        "id": user_id,
        "name": f"User {user_id}",
        "email": f"user{user_id}@example.com",
        "active": True,
    }


@post("/items", status_code=201)
async def create_item(data: dict[str, Any]) -> dict[str, Any]:
    return data


# --- typed scenarios: msgspec Structs ----------------------------------------------------


class Item(msgspec.Struct):
    id: int
    name: str
    price: float
    tags: list[str] = []
    active: bool = True


ITEMS = [Item(id=i, name=f"item {i}", price=i * 1.5, tags=["a", "b"]) for i in range(100)]


@get("/models")
async def list_models() -> list[Item]:
    return ITEMS


class Product(msgspec.Struct):
    name: str
    price: float
    description: str | None = None
    tax: float | None = None


@post("/products", status_code=201)
async def create_product(data: Product) -> Product:
    return data


class Customer(msgspec.Struct):
    name: str
    email: str


class Line(msgspec.Struct):
    sku: str
    quantity: Annotated[int, msgspec.Meta(gt=0)]
    price: float


class Order(msgspec.Struct):
    id: int
    customer: Customer
    lines: list[Line]
    note: str | None = None


class OrderOut(Order):
    total: float = 0.0


@post("/orders", status_code=201)
async def create_order(data: Order) -> OrderOut:
    total = sum(line.quantity * line.price for line in data.lines)
    return OrderOut(
        id=data.id, customer=data.customer, lines=data.lines, note=data.note, total=total
    )


# The same two scenarios under /ms (the Structs above) and with standard-library
# dataclasses under /dc (issue 17).


@get("/ms/models")
async def list_models_ms() -> list[Item]:
    return ITEMS


@post("/ms/orders", status_code=201)
async def create_order_ms(data: Order) -> OrderOut:
    total = sum(line.quantity * line.price for line in data.lines)
    return OrderOut(
        id=data.id, customer=data.customer, lines=data.lines, note=data.note, total=total
    )


@dataclass
class ItemDC:
    id: int
    name: str
    price: float
    tags: list[str] = field(default_factory=list)
    active: bool = True


ITEMS_DC = [ItemDC(id=i, name=f"item {i}", price=i * 1.5, tags=["a", "b"]) for i in range(100)]


@get("/dc/models")
async def list_models_dc() -> list[ItemDC]:
    return ITEMS_DC


@dataclass
class CustomerDC:
    name: str
    email: str


@dataclass
class LineDC:
    sku: str
    quantity: Annotated[int, msgspec.Meta(gt=0)]
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


@post("/dc/orders", status_code=201)
async def create_order_dc(data: OrderDC) -> OrderOutDC:
    total = sum(line.quantity * line.price for line in data.lines)
    return OrderOutDC(data.id, data.customer, data.lines, data.note, total)


async def current_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException("Not authenticated")
    return token


async def current_user(token: str) -> dict[str, Any]:
    return {"user": token, "scopes": ["read"]}


async def active_user(user: dict[str, Any]) -> dict[str, Any]:
    return {**user, "active": True}


@get(
    "/me",
    dependencies={
        "token": Provide(current_token),
        "user": Provide(current_user),
        "active": Provide(active_user),
    },
)
async def me(active: dict[str, Any]) -> dict[str, Any]:
    return active


@get("/cookie")
async def cookie() -> Response[dict[str, bool]]:
    return Response({"ok": True}, cookies=[Cookie(key="session", value="abc123", httponly=True)])


app = Litestar(
    route_handlers=[
        plaintext,
        json_response,
        get_user,
        create_item,
        list_models,
        create_order,
        list_models_ms,
        create_order_ms,
        list_models_dc,
        create_order_dc,
        me,
        cookie,
    ],
    openapi_config=None,
    debug=False,
)
