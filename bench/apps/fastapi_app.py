"""The benchmark app for FastAPI: the same handlers as bench/apps/databridge_app.py, with
ORJSONResponse as the default response class and PlainTextResponse for /plaintext, which
is how a FastAPI user tunes for speed. bench/run.py serves it with
`uvicorn fastapi_app:app --loop uvloop --http httptools --no-access-log --log-level warning`
(one worker, pinned to one core)."""

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse, PlainTextResponse

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
