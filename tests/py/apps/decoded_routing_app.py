"""Routes on the percent-decoded path on a real server, for
tests/py/test_api_decoded_routing.py."""

from __future__ import annotations

import json
import os
import sys

from data_bridge.api import FastAPI

app = FastAPI()


@app.get("/p/{name}")
def p(name: str) -> dict[str, str]:
    return {"name": name}


@app.get("/q/{x}/{y}")
def q(x: str, y: str) -> dict[str, str]:
    return {"x": x, "y": y}


@app.get("/items")
def items() -> str:
    return "items"


@app.get("/slash/")
def slash() -> str:
    return "slash"


if __name__ == "__main__":
    limits = json.loads(os.environ.get("DB_TEST_LIMITS", "{}"))
    app.run(host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", **limits)
