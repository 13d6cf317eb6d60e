"""The benchmark app for FastAPI: the same handlers as bench/apps/databridge_app.py, with
ORJSONResponse as the default response class and PlainTextResponse for /plaintext, which
is how a FastAPI user tunes for speed. The typed routes (response models) use JSONResponse:
with a response model FastAPI 0.165 serializes straight to bytes through pydantic there,
its fastest path (it deprecates ORJSONResponse for that reason). bench/run.py serves it with
`uvicorn fastapi_app:app --loop uvloop --http httptools --no-access-log --log-level warning`
(one worker, pinned to one core)."""

import os
from typing import Annotated

from fastapi import Depends, FastAPI, Response, UploadFile
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
