"""CORS (app.add_middleware(CORSMiddleware, ...)) on the test app: the policy in
tests/py/apps/main_app.py allows https://app.example, GET and POST, the X-Token header,
credentials, and exposes X-Request-Id."""

from __future__ import annotations

import httpx
import pytest

from data_bridge.api import App, CORSMiddleware

ALLOWED = "https://app.example"


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def test_allowed_origin_on_simple_requests(client):
    r = client.get("/json", headers={"Origin": ALLOWED})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert r.headers["vary"] == "Origin"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert r.headers["access-control-expose-headers"] == "X-Request-Id"
    # Parked handlers, errors and 422s get the headers too.
    for path in ("/slow?delay=0.01", "/nowhere", "/users/x"):
        r = client.get(path, headers={"Origin": ALLOWED})
        assert r.headers["access-control-allow-origin"] == ALLOWED, path


def test_other_origins_and_no_origin(client):
    r = client.get("/json", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    r = client.get("/json")
    assert not any(k.startswith("access-control-") for k in r.headers)


def test_preflight(client):
    r = client.options(
        "/items",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-token, content-type",
        },
    )
    assert r.status_code == 200 and r.text == "OK"
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert r.headers["access-control-allow-methods"] == "GET, POST"
    assert r.headers["access-control-allow-headers"] == (
        "accept, accept-language, content-language, content-type, x-token"
    )
    assert r.headers["access-control-max-age"] == "300"
    assert r.headers["access-control-allow-credentials"] == "true"
    r = client.options(
        "/items",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "x-other",
        },
    )
    assert r.status_code == 400
    assert r.text == "Disallowed CORS origin, method, headers"
    # A plain OPTIONS (not a preflight) goes to the router as usual.
    r = client.options("/items", headers={"Origin": ALLOWED})
    assert r.status_code == 405
    assert r.headers["access-control-allow-origin"] == ALLOWED


def test_policy_rules_without_a_server():
    # Starlette 1.x's rules (FastAPI 0.165's Starlette): every answer varies on Origin.
    everyone = CORSMiddleware(allow_origins=["*"], allow_headers=["*"], allow_methods=["*"])
    assert everyone("https://a", None, None, None) == (
        b"Access-Control-Allow-Origin: *\r\nVary: Origin\r\n"
    )
    # With credentials allowed the origin is echoed, never "*".
    credentials = CORSMiddleware(allow_origins=["*"], allow_credentials=True)
    assert credentials("https://a", None, None, None) == (
        b"Access-Control-Allow-Credentials: true\r\n"
        b"Access-Control-Allow-Origin: https://a\r\nVary: Origin\r\n"
    )
    status, _, body, lines = everyone("https://a", "PATCH", "X-Any, X-Thing", None)
    assert status == 200 and body == b"OK"
    assert b"Access-Control-Allow-Headers: X-Any, X-Thing\r\n" in lines
    assert b"Access-Control-Allow-Origin: *\r\n" in lines
    assert lines.startswith(
        b"Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
        b"Access-Control-Request-Private-Network\r\n"
    )
    # Private Network Access preflights: refused unless allowed.
    status, _, body, _ = everyone("https://a", "GET", None, "true")
    assert status == 400 and body == b"Disallowed CORS private-network"
    private = CORSMiddleware(allow_origins=["*"], allow_private_network=True)
    status, _, _, lines = private("https://a", "GET", None, "true")
    assert status == 200 and b"Access-Control-Allow-Private-Network: true\r\n" in lines
    regex = CORSMiddleware(allow_origin_regex=r"https://.*\.example\.org")
    assert regex("https://x.example.org", None, None, None).startswith(
        b"Access-Control-Allow-Origin: https://x.example.org"
    )
    assert regex("https://x.example.org.evil", None, None, None) == b"Vary: Origin\r\n"
    strict = CORSMiddleware(allow_origins=["https://a"])
    assert strict("https://a\r\nX: y", None, None, None) is None
    with pytest.raises(ValueError, match="CR, LF"):
        CORSMiddleware(expose_headers=["X\r\nSet-Cookie: a=b"])


def test_add_middleware_refuses_what_it_cannot_apply():
    with pytest.raises(TypeError, match="class or callable"):
        App().add_middleware("CORSMiddleware")
