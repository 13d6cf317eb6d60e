"""Dependency injection (Depends) end to end: the routes under /deps of main_app.py."""

from __future__ import annotations

import time

import httpx
import pytest
from conftest import Reader

from data_bridge.api import App, Depends, Query
from data_bridge.api._plan import RouteDefinitionError


def log(client):
    """The dependency log since the last call (its last entry is this request's own audit)."""
    entries = client.get("/deps/log").json()
    assert entries[-1] == "audit:ann"
    return entries[:-1]


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=10, headers={"X-User": "ann"}) as c:
        c.get("/deps/log")  # start from an empty log
        yield c


def test_dependencies_receive_request_values(client):
    r = client.get("/deps/items/5?offset=20&limit=3&verbose=yes")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "item_id": 5,
        "page": {"offset": 20, "limit": 3},
        "user": "ann",
        "verbose": True,
        "cached": True,
        "fresh": True,
    }
    # The router's dependency ran too (once: current_user is cached for the request).
    assert log(client) == ["audit:ann"]


def test_dependency_errors_are_the_requests_errors(client):
    r = client.get("/deps/items/5?offset=-1", headers={"X-User": "ann"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "offset"]
    r = httpx.get(client.base_url.join("/deps/items/5"), timeout=10)
    assert r.status_code == 422
    # current_user is needed twice (by the router's audit and by the route): as FastAPI,
    # its error is reported at each, since a dependency that failed is not cached.
    missing = {
        "type": "missing",
        "loc": ["header", "x-user"],
        "msg": "Field required",
        "input": None,
    }
    assert r.json()["detail"] == [missing, missing]
    r = client.get("/deps/items/5", headers={"X-User": "banned"})
    assert r.status_code == 403 and r.json() == {"detail": "banned"}
    client.get("/deps/log")


def test_generator_dependencies_tear_down_after_the_handler(client):
    assert client.get("/deps/session").json() == {"db": "session", "res": "resource"}
    assert log(client) == [
        "audit:ann",
        "open",
        "aopen",
        "handler:session:resource",
        "aclose",
        "close",
    ]
    r = client.get("/deps/session?fail=true")
    assert r.status_code == 500
    entries = log(client)
    assert entries[:4] == ["audit:ann", "open", "aopen", "handler:session:resource"]
    # The handler's exception is thrown into the generators, innermost first: the async
    # one does not catch it (no "aclose"), the sync one rolls back, then closes.
    assert entries[4:] == ["rollback", "close"]


def test_request_scope_exits_after_the_response_is_sent(client):
    # The generator's exit waits for /deps/release: the response comes first.
    r = client.get("/deps/hold/request?key=r1")
    assert r.status_code == 200 and r.json() == {"key": "r1"}
    assert log(client) == ["audit:ann", "held:r1"]
    assert client.get("/deps/release?key=r1").json() == {"released": "r1"}
    deadline = time.monotonic() + 5
    entries: list[str] = []
    while "released:r1" not in entries and time.monotonic() < deadline:
        entries += log(client)
    assert "released:r1" in entries


def test_function_scope_exits_before_the_response_is_sent(server, client):
    s = server.connect()
    try:
        s.sendall(b"GET /deps/hold/function?key=f1 HTTP/1.1\r\nHost: t\r\nX-User: ann\r\n\r\n")
        # Nothing arrives while the generator's exit waits...
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(1)
        assert client.get("/deps/release?key=f1").json() == {"released": "f1"}
        # ...and the response once it is done.
        s.settimeout(5)
        r = Reader(s).read_response()
        assert r.status == 200 and r.json() == {"key": "f1"}
    finally:
        s.close()
    assert log(client) == ["audit:ann", "held:f1", "audit:ann", "released:f1"]


def test_openapi_shows_the_flattened_parameters(server):
    doc = httpx.get(server.url + "/openapi.json", timeout=10).json()
    params = doc["paths"]["/deps/items/{item_id}"]["get"]["parameters"]
    assert {(p["name"], p["in"]) for p in params} == {
        ("item_id", "path"),
        ("offset", "query"),
        ("limit", "query"),
        ("x-user", "header"),
        ("verbose", "query"),
    }


def test_dependency_definitions_are_checked():
    app = App()

    def a(b=Depends(lambda: 1)):
        return b

    def loop_a(x=Depends(lambda: None)):
        return x

    def first(q: int = 1):
        return q

    def second(q: str = "x"):
        return q

    with pytest.raises(RouteDefinitionError, match="declared differently"):

        @app.get("/conflict")
        def conflict(a=Depends(first), b=Depends(second)):
            return a, b

    def cyc1(x=Depends(lambda: None)):
        return x

    def cyc2(y=Depends(cyc1)):
        return y

    cyc1.__defaults__ = (Depends(cyc2),)
    with pytest.raises(RouteDefinitionError, match="cycle"):

        @app.get("/cycle")
        def cycle(z=Depends(cyc1)):
            return z

    with pytest.raises(TypeError, match="Depends"):
        app.get("/bad", dependencies=[lambda: None])
    with pytest.raises(TypeError, match="callable"):
        Depends(42)

    @app.get("/fine")
    def fine(q: int = Query(1), v=Depends(a)):
        return q

    assert app.routes[-1].callable() is not fine
    assert [p for p in app.openapi()["paths"]["/fine"]["get"]["parameters"]][0]["name"] == "q"
