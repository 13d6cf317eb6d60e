"""The example app served by `make run` (the API tour from the README)."""

import asyncio
from typing import Annotated

from pydantic import BaseModel

from data_bridge.api import (
    APIRouter,
    App,
    Depends,
    Header,
    HTTPException,
    JSONResponse,
    PlainTextResponse,
    Query,
    Request,
)

app = App(title="Example")  # the OpenAPI document is at /openapi.json, Swagger UI at /docs


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
    user = {
        "id": user_id,
        "name": f"User {user_id}",
        "email": f"user{user_id}@example.com",
        "active": True,
    }
    if verbose:
        user["bio"] = "A verbose description."
    return user


@app.post("/items", status_code=201)
async def create_item(item: dict):
    if "name" not in item:
        raise HTTPException(400, "an item needs a name")
    return item


@app.put("/items/{item_id}")
async def replace_item(item_id: int, item: dict):
    return JSONResponse({"id": item_id, **item}, status_code=200)


@app.get("/raw")
async def raw(request: Request):
    await asyncio.sleep(0.001)
    return {
        "path": request.path,
        "q": request.query_params.get("q"),
        "ua": request.headers.get("user-agent"),
    }


# Markers, dependencies and a response model, grouped in a router.
class Book(BaseModel):
    title: str
    year: int


BOOKS = [Book(title="Dune", year=1965), Book(title="Solaris", year=1961)]


def reader(x_reader: Annotated[str, Header(min_length=1)] = "guest"):
    return x_reader


books = APIRouter(prefix="/books", tags=["books"])


@books.get("", response_model=list[Book])
async def list_books(
    since: Annotated[int, Query(ge=0, description="first year")] = 0,
    who: str = Depends(reader),
):
    return [b for b in BOOKS if b.year >= since]


app.include_router(books)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=8000)
