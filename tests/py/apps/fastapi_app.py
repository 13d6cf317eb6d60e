"""An unmodified FastAPI application (the real ``fastapi`` package) served by data-bridge,
through the ASGI driver or compiled to native routes, for tests/py/test_asgi_server.py."""

from __future__ import annotations

import os
import sys

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict:
    if item_id == 404:
        raise HTTPException(status_code=404, detail="Item not found")
    return {"item_id": item_id, "q": q}


@app.post("/items", status_code=201)
async def create_item(item: Item) -> Item:
    return item


@app.get("/sync")
def sync_route() -> dict:
    # A def endpoint: FastAPI runs it in anyio's thread pool.
    return {"sync": True}


@app.get("/numbers")
async def numbers() -> StreamingResponse:
    async def gen():
        for i in range(5):
            yield f"{i}\n"

    return StreamingResponse(gen(), media_type="text/plain")


if __name__ == "__main__":
    from data_bridge import serve

    # DB_TEST_NATIVE=0: the whole app through the ASGI driver; otherwise its routes are
    # compiled to native ones (api/_fastapi_native.py) with the app as the fallback.
    native = os.environ.get("DB_TEST_NATIVE", "1") != "0"
    serve(app, "127.0.0.1", int(sys.argv[1]), log_level="info", graceful_timeout=3, native=native)
