"""Parameter markers (Query, Path, Header, Cookie, Body) end to end: sources, aliases,
list parameters and constraints, with FastAPI's 422 entries. The routes are in
tests/py/apps/main_app.py under /params."""

from __future__ import annotations

import json
from typing import Annotated

import httpx
import pytest
from conftest import exchange
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from data_bridge.api import App, Body, Header, Path, Query
from data_bridge.api._plan import RouteDefinitionError


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def test_defaults_and_sources(client):
    r = client.get("/params/search?q=abc", headers={"User-Agent": "probe/1"})
    assert r.status_code == 200
    assert r.json() == {
        "q": "abc",
        "limit": 10,
        "ratio": 0.5,
        "ids": [],
        "tags": [],
        "user_agent": "probe/1",
        "x_trace": [],
        "theme": "light",
    }


def test_lists_aliases_headers_and_cookies(client):
    r = client.get(
        "/params/search?q=abc&ids=3&limit=5&ids=1&tag=a%20b&tag=c&ratio=0.25",
        headers=[("X-Trace", "one"), ("x-trace", "two"), ("Cookie", 'a=1; theme="dark"; b=2')],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ids"] == [3, 1]
    assert body["tags"] == ["a b", "c"]
    assert body["limit"] == 5 and body["ratio"] == 0.25
    assert body["x_trace"] == ["one", "two"]
    assert body["theme"] == "dark"


def test_numeric_constraints(client):
    r = client.get("/params/search?q=abc&limit=0&ratio=1")
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {
            "type": "greater_than_equal",
            "loc": ["query", "limit"],
            "msg": "Input should be greater than or equal to 1",
            "input": "0",
            "ctx": {"ge": 1},
        },
        {
            "type": "less_than",
            "loc": ["query", "ratio"],
            "msg": "Input should be less than 1",
            "input": "1",
            "ctx": {"lt": 1},
        },
    ]
    r = client.get("/params/search?q=abc&limit=101&ratio=0")
    assert [(e["type"], e["ctx"]) for e in r.json()["detail"]] == [
        ("less_than_equal", {"le": 100}),
        ("greater_than", {"gt": 0}),
    ]


def test_string_constraints(client):
    cases = {
        "a": ("string_too_short", "String should have at least 2 characters", {"min_length": 2}),
        "abcdefghijk": (
            "string_too_long",
            "String should have at most 10 characters",
            {"max_length": 10},
        ),
        "ab1": (
            "string_pattern_mismatch",
            "String should match pattern '^[a-z]+$'",
            {"pattern": "^[a-z]+$"},
        ),
    }
    for value, (kind, msg, ctx) in cases.items():
        r = client.get("/params/search", params={"q": value})
        assert r.status_code == 422
        assert r.json()["detail"] == [
            {"type": kind, "loc": ["query", "q"], "msg": msg, "input": value, "ctx": ctx}
        ]


def test_lax_int_strings_follow_pydantic(client):
    """Integer strings are read like pydantic's lax mode: each case agrees with
    TypeAdapter(int) on whether it is an integer and on its value."""
    to_int = TypeAdapter(int).validate_python
    cases = [" 7 ", "+7", "-0.0", "1_000", "1.0", "2.00", "1.", "0.", ".0", "1.5", "1__0", "1_"]
    for text in cases:
        r = client.get("/params/search", params={"q": "abc", "ids": text})
        try:
            expected = to_int(text)
        except ValueError:
            assert r.status_code == 422, text
            assert r.json()["detail"][0]["type"] == "int_parsing"
        else:
            assert r.status_code == 200, (text, r.text)
            assert r.json()["ids"] == [expected]


def test_list_errors_and_list_length(client):
    r = client.get("/params/search?q=abc&ids=1&ids=x&ids=2&ids=y")
    assert r.status_code == 422
    assert [(e["type"], e["loc"], e["input"]) for e in r.json()["detail"]] == [
        ("int_parsing", ["query", "ids", 1], "x"),
        ("int_parsing", ["query", "ids", 3], "y"),
    ]
    r = client.get("/params/search?q=abc&tag=a&tag=b&tag=c&tag=d")
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["type"] == "too_long" and err["loc"] == ["query", "tag"]
    assert err["msg"] == "List should have at most 3 items after validation, not 4"
    assert err["ctx"] == {"max_length": 3}


def test_required_header_and_cookie_with_alias(client):
    r = client.get("/params/auth")
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"type": "missing", "loc": ["header", "x-api-key"], "msg": "Field required", "input": None},
        {"type": "missing", "loc": ["cookie", "sid"], "msg": "Field required", "input": None},
    ]
    r = client.get(
        "/params/auth",
        headers={"X-API-Key": "k1", "Cookie": "sid=0", "X-Raw_Name": "raw"},
    )
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {
            "type": "greater_than",
            "loc": ["cookie", "sid"],
            "msg": "Input should be greater than 0",
            "input": "0",
            "ctx": {"gt": 0},
        }
    ]
    r = client.get(
        "/params/auth", headers={"X-API-Key": "k1", "Cookie": "sid=7", "X-Raw_Name": "raw"}
    )
    assert r.json() == {"key": "k1", "sid": 7, "raw": "raw"}
    r = client.get("/params/auth", headers={"x-api-key": "k2", "Cookie": "other=1; sid=9"})
    assert r.json() == {"key": "k2", "sid": 9, "raw": "-"}


def test_header_values_are_latin1(client):
    r = client.get("/params/search?q=abc", headers={"User-Agent": "caf\xe9".encode("latin-1")})
    assert r.json()["user_agent"] == "caf\xe9"


def test_path_constraints(client):
    assert client.get("/params/items/1000").json() == {"item_id": 1000}
    r = client.get("/params/items/0")
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "greater_than_equal"
    assert r.json()["detail"][0]["loc"] == ["path", "item_id"]
    assert client.get("/params/items/1001").status_code == 422


def test_body_embed_and_scalar_bodies(client):
    r = client.post("/params/embed", json={"item": {"name": "pen", "price": 1}})
    assert r.status_code == 200 and r.json() == {"name": "pen"}
    r = client.post("/params/embed", json={"name": "pen", "price": 1})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "item"]
    assert r.json()["detail"][0]["type"] == "missing"

    assert client.post("/params/scalars", json={"count": 2}).json() == {"count": 2, "note": "n/a"}
    r = client.post("/params/scalars", json={"count": 0, "note": "toolong"})
    assert r.status_code == 422
    assert [(e["type"], e["loc"]) for e in r.json()["detail"]] == [
        ("greater_than", ["body", "count"]),
        ("string_too_long", ["body", "note"]),
    ]


def test_typed_list_body_is_validated(client):
    r = client.post("/params/items", json=[{"name": "a", "price": 1}, {"name": "b", "price": 2}])
    assert r.json() == {"names": ["a", "b"]}
    r = client.post("/params/items", json=[{"name": "a", "price": 1}, {"name": "b"}])
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", 1, "price"]


def test_markers_are_checked_at_definition_time():
    app = App()
    with pytest.raises(RouteDefinitionError, match="gt/ge/lt/le need an int or float"):

        @app.get("/a")
        def a(q: str = Query(..., ge=1)):
            return q

    with pytest.raises(RouteDefinitionError, match="pattern needs a str"):

        @app.get("/b")
        def b(q: int = Query(..., pattern="x")):
            return q

    with pytest.raises(RouteDefinitionError, match="names no parameter of the path"):

        @app.get("/c")
        def c(q: int = Path(...)):
            return q

    with pytest.raises(RouteDefinitionError, match="bad pattern"):

        @app.get("/d")
        def d(q: str = Query(..., pattern="(")):
            return q

    with pytest.raises(RouteDefinitionError, match="one marker"):

        @app.get("/e")
        def e(q: Annotated[str, Query()] = Header(...)):
            return q

    with pytest.raises(ValueError, match="min_length"):
        Query(min_length=-1)
    with pytest.raises(TypeError, match="pattern= or its old name regex="):
        with pytest.warns(UserWarning, match="`regex` has been deprecated"):
            Query(pattern="a", regex="b")
    assert Body(embed=True).embed and Header(convert_underscores=False).source == "header"


def test_plain_client_still_works_without_markers(client):
    # The existing parameter rules are unchanged by the markers.
    assert client.get("/users/5?verbose=true").json()["verbose"] is True
    assert httpx.get(client.base_url.join("/plaintext")).text == "Hello, World!"


def test_form_fields(client):
    r = client.post(
        "/form/login?next_url=/home",
        content=b"username=ann+lee&password=p%26ss&remember=on&scopes=a&scopes=b",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "username": "ann lee",
        "password_len": 4,
        "remember": True,
        "scopes": ["a", "b"],
        "next": "/home",
    }
    r = client.post("/form/login", data={"username": "bo", "password": "x"})  # httpx's form
    assert r.json()["remember"] is False and r.json()["scopes"] == []


def test_form_errors(client):
    r = client.post("/form/login", data={"username": "a"})
    assert r.status_code == 422
    assert [(e["type"], e["loc"]) for e in r.json()["detail"]] == [
        ("string_too_short", ["body", "username"]),
        ("missing", ["body", "password"]),
    ]
    # A body of another type has no form fields: they are missing, as in FastAPI.
    r = client.post("/form/login", json={"username": "ann", "password": "x"})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "username"], ["body", "password"]]


def test_form_in_openapi(client):
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/form/login"]["post"]["requestBody"]
    ref = body["content"]["application/x-www-form-urlencoded"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["required"] == ["username", "password"]
    assert schema["properties"]["scopes"]["type"] == "array"


def test_form_and_json_body_cannot_mix():
    from data_bridge.api import Form

    app = App()
    with pytest.raises(RouteDefinitionError, match="cannot be mixed"):

        @app.post("/x")
        def x(a: str = Form(...), b: dict = Body(...)):
            return a


# Generated requests against the marker routes: whatever the query, headers and cookies,
# the answer is 200 or a well-formed 422 (never a 500, never a dropped connection), and
# a 200 carries exactly what a reference reading of the same bytes expects.
_keys = st.sampled_from(["q", "limit", "ratio", "ids", "tag", "x", "", "q%20", "%71"])
_values = st.one_of(
    st.sampled_from(
        ["abc", "ab", "a", "0", "1", "100", "101", "-3", "1_0", "+7+", "0.5", "0.", "2.00", "x"]
    ),
    st.text(alphabet="abz019+%_-.", max_size=12),  # no raw space: the target would be a 400
    st.binary(max_size=6).map(lambda b: "".join(f"%{c:02X}" for c in b)),
)


def _reference_query(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    from urllib.parse import unquote_plus

    out: dict[str, list[str]] = {}
    for k, v in pairs:
        out.setdefault(unquote_plus(k), []).append(unquote_plus(v, errors="replace"))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pairs=st.lists(st.tuples(_keys, _values), max_size=8),
    cookie=st.text(alphabet='abtheme=;" xyz', max_size=30),
    traces=st.lists(st.text(alphabet="abc 12", max_size=5), max_size=3),
)
def test_generated_requests_never_fail(server, pairs, cookie, traces):
    pairs = [("q", "abc"), *pairs]  # a valid q first, so that many requests get a 200
    query = "&".join(f"{k}={v}" for k, v in pairs)
    headers = "".join(f"X-Trace: {t}\r\n" for t in traces)
    if cookie.strip():
        headers += f"Cookie: {cookie}\r\n"
    raw = (
        f"GET /params/search?{query} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n"
    ).encode("latin-1")
    resp, _ = exchange(server, raw)
    event(f"status {resp.status}")
    assert resp.status in (200, 422), (resp.status, resp.body)
    body = json.loads(resp.body)
    if resp.status == 422:
        for err in body["detail"]:
            assert set(err) >= {"type", "loc", "msg", "input"}
            assert err["loc"][0] in ("query", "header", "cookie")
        return
    ref = _reference_query(pairs)
    assert body["q"] == ref["q"][-1]  # required: present, and the last occurrence wins
    assert body["x_trace"] == [t.strip() for t in traces]
    if "ids" in ref:
        # pydantic's own lax str -> int is the reference ("1.0" is 1, "1." is refused).
        to_int = TypeAdapter(int).validate_python
        assert body["ids"] == [to_int(v) for v in ref["ids"]]
    if "tag" in ref:
        assert body["tags"] == ref["tag"]
