"""The example app served by `make run` (the API tour from the README)."""

import asyncio

from data_bridge.api import App, HTTPException, JSONResponse, Request

app = App(title="Example")


@app.get("/plaintext")
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


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=8000)
