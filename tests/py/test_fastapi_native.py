"""Unmodified FastAPI apps compiled to native routes (api/_fastapi_native.py).

tests/py/apps/fastapi_native_app.py is written against the real ``fastapi`` package. It
is served by data-bridge in a child process (its APIRoutes compiled to native routes, the
FastAPI app behind them for the rest) and, in this process, by FastAPI itself through its
own TestClient; every request below must get the same status, body and headers from
both. What is compiled and what stays with FastAPI is checked too, so a change that
quietly sends routes back through ASGI fails here."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import APPS, ROOT, ServerProcess

pytest.importorskip("fastapi")  # requirements/fastapi-tests.txt (make fastapi-deps)

import sys  # noqa: E402

sys.path.insert(0, str(APPS))
import fastapi_native_app  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from data_bridge.api._fastapi_native import compile_fastapi  # noqa: E402


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerProcess]:
    server = ServerProcess("fastapi_native_app.py").start()
    yield server
    code, log = server.stop()
    assert code == 0, log
    for marker in ("AddressSanitizer", "runtime error:", "Task was destroyed"):
        assert marker not in log, log


@pytest.fixture(scope="module")
def reference(srv: ServerProcess) -> Iterator[TestClient]:
    # The same base URL, so that url_for and Host agree.
    with TestClient(fastapi_native_app.app, base_url=srv.url) as client:
        yield client


def test_what_is_compiled() -> None:
    compiled = compile_fastapi(fastapi_native_app.app)
    assert compiled.whole_app_reason is None
    assert set(compiled.native) == {
        "GET /big",
        "GET /items/{item_id}",
        "POST /items",
        "GET /headers",
        "GET /search",
        "GET /events",
        "GET /me",
        "POST /token",
        "GET /cookie",
        "GET /direct",
        "GET /plain",
        "GET /html",
        "GET /go",
        "GET /teapot/{name}",
        "GET /request",
        "POST /upload",
        "GET /v1/ping",
    }
    reasons = dict(compiled.fallback)
    assert reasons["GET /custom"] == "route class TimedRoute"
    assert "GET,HEAD /starlette" in reasons and "GET,HEAD /openapi.json" in reasons
    assert "GET /custom" in compiled.explain()


CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/items/5", {"params": {"q": "abc"}}),
    ("GET", "/items/0", {}),
    ("GET", "/items/abc", {}),
    ("GET", "/items/404", {}),
    ("GET", "/items/5", {"params": {"q": "toolong"}}),
    ("GET", "/items/5", {"params": {"q": "AB"}}),
    ("GET", "/items/5", {"params": {"page-size": "200"}}),
    ("GET", "/items/5", {"params": {"page-size": "7"}}),
    ("POST", "/items", {"json": {"item": {"name": "w", "price": 2.5}, "quantity": 3}}),
    ("POST", "/items", {"json": {"item": {"name": "w", "price": 2.5, "note": "n"}}}),
    ("POST", "/items", {"json": {"item": {"name": "", "price": -1}}}),
    ("POST", "/items", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("POST", "/items", {"json": {"item": {"name": "w", "price": 1}, "quantity": 0}}),
    (
        "GET",
        "/headers",
        {
            "headers": [
                ("User-Agent", "tester"),
                ("X-Token", "a"),
                ("X-Token", "b"),
                ("strange_header", "s"),
            ],
            "cookies": {"session": "abc"},
        },
    ),
    ("GET", "/search", {"params": {"term": "x", "skip": "2"}}),
    ("GET", "/search", {"params": {"skip": "no"}}),
    ("GET", "/me", {}),
    ("GET", "/me", {"headers": {"Authorization": "Bearer tok-read"}}),
    ("GET", "/me", {"headers": {"Authorization": "Bearer tok"}}),
    ("GET", "/me", {"headers": {"Authorization": "Basic abc"}}),
    ("POST", "/token", {"data": {"username": "ann", "password": "secret"}}),
    ("POST", "/token", {"data": {"username": "ann", "password": "wrong"}}),
    ("POST", "/token", {"data": {"username": "ann"}}),
    ("GET", "/cookie", {}),
    ("GET", "/direct", {}),
    ("GET", "/plain", {}),
    ("GET", "/html", {}),
    ("GET", "/go", {}),
    ("GET", "/teapot/earl", {}),
    ("GET", "/request", {"params": {"a": "1"}}),
    ("POST", "/upload", {"files": {"file": ("a.txt", b"hello")}, "data": {"label": "L"}}),
    ("POST", "/upload", {"data": {"label": "L"}}),
    ("GET", "/v1/ping", {}),
    ("GET", "/custom", {}),
    ("GET", "/starlette", {}),
    ("GET", "/nope", {}),
    ("DELETE", "/items/5", {}),
    ("GET", "/openapi.json", {}),
    ("GET", "/big", {}),
    ("GET", "/big", {"headers": {"Accept-Encoding": "gzip"}}),
    ("GET", "/plain", {"headers": {"Origin": "https://app.example"}}),
    ("GET", "/plain", {"headers": {"Origin": "https://evil.example"}}),
    (
        "OPTIONS",
        "/items",
        {
            "headers": {
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "X-Token",
            }
        },
    ),
    (
        "OPTIONS",
        "/items",
        {"headers": {"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}},
    ),
]

HEADERS = (
    "content-type",
    "content-encoding",
    "vary",
    "x-mw",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-max-age",
    "set-cookie",
    "location",
    "www-authenticate",
    "allow",
    "x-why",
    "x-extra",
    "x-direct",
)


def _answer(r: httpx.Response) -> tuple[int, Any, dict[str, list[str]]]:
    if r.headers.get("content-type", "").startswith("application/json"):
        body: Any = json.loads(r.content)
    else:
        body = r.content
    headers = {h: r.headers.get_list(h) for h in HEADERS if h in r.headers}
    if "vary" in headers:
        # Several Vary lines are one comma-separated list (RFC 9110 §5.3): the server writes
        # each policy's line, Starlette appends to one; the set of names must agree.
        headers["vary"] = sorted(v.strip() for line in headers["vary"] for v in line.split(","))
    return r.status_code, body, headers


@pytest.mark.parametrize(("method", "path", "kw"), CASES, ids=[f"{m} {p}" for m, p, _ in CASES])
def test_same_answer_as_fastapi(
    srv: ServerProcess, reference: TestClient, method: str, path: str, kw: dict[str, Any]
) -> None:
    kw = dict(kw)
    cookies = kw.pop("cookies", None)
    with httpx.Client(base_url=srv.url, cookies=cookies, follow_redirects=False) as client:
        ours = client.request(method, path, **kw)
    reference.cookies.clear()
    if cookies:
        reference.cookies.update(cookies)
    theirs = reference.request(method, path, follow_redirects=False, **kw)
    assert _answer(ours) == _answer(theirs)


def test_dependency_teardown_and_background(srv: ServerProcess) -> None:
    with httpx.Client(base_url=srv.url) as client:
        before = len(client.get("/events").json())
        assert client.get("/search").status_code == 200
        assert client.get("/cookie").status_code == 202
        # The background task runs after the response was written: wait for it (bounded).
        deadline = time.monotonic() + 5
        while True:
            events = client.get("/events").json()[before:]
            if "background" in events or time.monotonic() > deadline:
                break
            time.sleep(0.02)
    assert events[:2] == ["open", "close"] and "background" in events


def test_whole_app_through_asgi_with_asgi_middleware() -> None:
    from fastapi import FastAPI

    class Tag:
        """Pure ASGI middleware: it must wrap every route, so nothing is compiled."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await self.app(scope, receive, send)

    app = FastAPI()
    app.add_middleware(Tag)

    @app.get("/")
    async def root() -> dict:
        return {}

    compiled = compile_fastapi(app)
    assert compiled.app is None
    assert "Tag" in (compiled.whole_app_reason or "")
    assert compiled.native == []


def test_explain_on_the_command_line() -> None:
    env = dict(os.environ)
    # The run's own PYTHONPATH first (a sanitizer build), the source tree as the fallback.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT / "src")) if p)
    argv = [sys.executable, "-m", "data_bridge", "fastapi_native_app:app", "--app-dir", str(APPS)]
    out = subprocess.run(
        [*argv, "--explain"], capture_output=True, text=True, timeout=60, env=env, check=True
    ).stdout
    assert "native routes (17):" in out
    assert "GET /custom: route class TimedRoute" in out
