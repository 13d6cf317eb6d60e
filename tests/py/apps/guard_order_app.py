"""TrustedHost and CORS added before an @app.middleware("http"): their answers pass out
through it (tests/py/test_api_guard_order.py)."""

import sys

from data_bridge.api import FastAPI
from data_bridge.api.middleware.cors import CORSMiddleware
from data_bridge.api.middleware.trustedhost import TrustedHostMiddleware

app = FastAPI()
app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1"])
app.add_middleware(CORSMiddleware, allow_origins=["https://front.example"], allow_methods=["PUT"])


@app.middleware("http")
async def outer(request, call_next):
    response = await call_next(request)
    response.headers["x-outer"] = str(response.status_code)
    return response


@app.get("/x")
async def x():
    return {"a": 1}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
