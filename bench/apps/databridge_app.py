"""The benchmark app for data-bridge: the handlers of issue 2, written exactly as a user
would write them. bench/run.py starts it as `python databridge_app.py PORT` pinned to one
core; bench/apps/fastapi_app.py holds the same handlers for FastAPI."""

import sys

from data_bridge.api import App

app = App()


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
    return {
        "id": user_id,
        "name": f"User {user_id}",
        "email": f"user{user_id}@example.com",
        "active": True,
    }


@app.post("/items", status_code=201)
async def create_item(item: dict):
    return item


if __name__ == "__main__":
    PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    app.run(host="127.0.0.1", port=PORT)
