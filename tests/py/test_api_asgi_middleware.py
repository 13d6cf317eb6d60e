"""Pure ASGI middleware on the App (``app.add_middleware`` of any ASGI class): in the
TestClient, served by data-bridge itself, and under another ASGI server's calling
convention (``await app(scope, receive, send)``). Starlette's SessionMiddleware and
OpenTelemetry's ASGI instrumentation are the real-world cases; a recording middleware
checks the order and what the middleware sees."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT

from data_bridge.api import FastAPI, Request
from data_bridge.api.middleware.gzip import GZipMiddleware
from data_bridge.api.testclient import TestClient


class Record:
    """A pure ASGI middleware: records the scope it saw and tags the response."""

    def __init__(self, app: Any, name: str, seen: list[str]) -> None:
        self.app = app
        self.name = name
        self.seen = seen

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.seen.append(f"{self.name}:{scope['method']} {scope['path']}")

        async def tagged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-" + self.name.encode(), b"1"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, tagged)


class Refuse:
    """Answers 403 itself for /blocked without calling the app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/blocked":
            await send({"type": "http.response.start", "status": 403, "headers": []})
            await send({"type": "http.response.body", "body": b"no"})
            return
        await self.app(scope, receive, send)


def make_app(seen: list[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int, q: str | None = None) -> dict:
        return {"item_id": item_id, "q": q}

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"body": (await request.body()).decode(), "client": list(request.client or [])}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("boom")

    app.add_middleware(Record, name="inner", seen=seen)
    app.add_middleware(Refuse)
    app.add_middleware(Record, name="outer", seen=seen)
    return app


def test_testclient_runs_the_middleware_in_starlette_order() -> None:
    seen: list[str] = []
    with TestClient(make_app(seen)) as client:
        r = client.get("/items/3", params={"q": "x"})
        assert r.status_code == 200 and r.json() == {"item_id": 3, "q": "x"}
        assert r.headers["x-outer"] == "1" and r.headers["x-inner"] == "1"
        # The last added is the outermost.
        assert seen == ["outer:GET /items/3", "inner:GET /items/3"]
        # Still the native binding behind the middleware.
        r = client.get("/items/abc")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "item_id"]
        r = client.post("/echo", content=b"hello")
        assert r.json() == {"body": "hello", "client": ["testclient", 50000]}
        r = client.get("/blocked")
        assert r.status_code == 403 and r.text == "no" and "x-inner" not in r.headers
        with pytest.raises(RuntimeError, match="boom"):
            client.get("/boom")
    quiet = TestClient(make_app([]), raise_server_exceptions=False)
    assert quiet.get("/boom").status_code == 500


def test_native_middleware_stays_native_next_to_asgi_middleware() -> None:
    app = make_app([])
    app.add_middleware(GZipMiddleware, minimum_size=10)

    @app.get("/big")
    async def big() -> dict:
        return {"data": "x" * 200}

    with TestClient(app) as client:
        r = client.get("/big", headers={"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip" and r.json() == {"data": "x" * 200}
        assert r.headers["x-outer"] == "1"


def test_session_middleware_from_starlette() -> None:
    pytest.importorskip("itsdangerous")
    from starlette.middleware.sessions import SessionMiddleware

    app = FastAPI()

    @app.get("/visit")
    async def visit(request: Request) -> dict:
        # Starlette's SessionMiddleware puts the session in the scope: the native
        # request behind the App's ASGI face sees it (and shares the dict).
        assert request.scope["session"] is request.session
        request.session["n"] = request.session.get("n", 0) + 1
        return {"n": request.session["n"]}

    app.add_middleware(SessionMiddleware, secret_key="test-secret")
    with TestClient(app) as client:
        assert client.get("/visit").json() == {"n": 1}
        assert "session" in client.cookies
        assert client.get("/visit").json() == {"n": 2}


def test_opentelemetry_asgi_instrumentation() -> None:
    pytest.importorskip("opentelemetry.instrumentation.asgi")
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = make_app([])
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=provider)
    with TestClient(app) as client:
        assert client.get("/items/7").status_code == 200
    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind.name == "SERVER"]
    assert len(server) == 1
    assert (
        server[0].attributes.get(
            "http.status_code", server[0].attributes.get("http.response.status_code")
        )
        == 200
    )


APP_SOURCE = """
import sys
from data_bridge import serve
sys.path.insert(0, {tests!r})
from test_api_asgi_middleware import make_app
seen = []
app = make_app(seen)

@app.get("/seen")
async def read_seen() -> list:
    return seen

serve(app, "127.0.0.1", int(sys.argv[1]), log_level="warning", graceful_timeout=2)
"""


def test_served_by_data_bridge(tmp_path: Path) -> None:
    script = tmp_path / "serve_app.py"
    script.write_text(textwrap.dedent(APP_SOURCE.format(tests=str(Path(__file__).parent))))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT / "src")) if p)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(proc.stdout.read().decode() if proc.stdout else "") from None
                time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            r = client.get("/items/5")
            assert r.status_code == 200 and r.json() == {"item_id": 5, "q": None}
            assert r.headers["x-outer"] == "1" and r.headers["x-inner"] == "1"
            assert client.get("/blocked").status_code == 403
            assert client.post("/echo", content=b"abc").json()["body"] == "abc"
            assert client.get("/seen").json()[:2] == ["outer:GET /items/5", "inner:GET /items/5"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out.decode()
    assert b"Traceback" not in out, out.decode()
