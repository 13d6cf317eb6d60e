"""The FastAPI-style API end to end: a real server process, an httpx client."""

from __future__ import annotations

import concurrent.futures
import sys
import time

import httpx
import pytest


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def test_plaintext_sync_handler(client):
    r = client.get("/plaintext")
    assert r.status_code == 200
    assert r.text == "Hello, World!"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-length"] == "13"
    assert "date" in r.headers


def test_json_async_handler(client):
    r = client.get("/json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "message": "Hello, World!",
        "status": "success",
        "timestamp": 1234567890,
        "data": {"key": "value"},
    }


def test_path_and_query_params(client):
    assert client.get("/users/42").json()["id"] == 42
    assert client.get("/users/42").json()["verbose"] is False
    assert client.get("/users/-7?verbose=true").json() == {
        "id": -7,
        "name": "User -7",
        "email": "user-7@example.com",
        "active": True,
        "verbose": True,
    }
    for word, value in [
        ("1", True),
        ("yes", True),
        ("On", True),
        ("0", False),
        ("off", False),
        ("NO", False),
        ("f", False),
    ]:
        assert client.get(f"/users/1?verbose={word}").json()["verbose"] is value


def test_big_int_path_param(client):
    assert client.get("/users/123456789012345678901234567890").json()["id"] == (
        123456789012345678901234567890
    )


def test_typed_params(client):
    r = client.get("/types/2.5/true/h%C3%A9llo%20w?n=3&x=-1e3")
    assert r.json() == {"f": 2.5, "b": True, "s": "héllo w", "n": 3, "opt": None, "x": -1000.0}
    r = client.get("/types/1/0/a?opt=5&n=+4")
    assert r.json()["opt"] == 5 and r.json()["n"] == 4 and r.json()["b"] is False
    # The last occurrence wins, '+' is a space in a query.
    assert client.get("/types/1/1/a?n=1&n=2").json()["n"] == 2


def test_path_converter(client):
    assert client.get("/files/a/b/c.txt").json() == {"rest": "a/b/c.txt"}


def test_422_path_conversion(client):
    r = client.get("/users/abc")
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            {
                "type": "int_parsing",
                "loc": ["path", "user_id"],
                "msg": "Input should be a valid integer, unable to parse string as an integer",
                "input": "abc",
            }
        ]
    }


def test_422_reports_every_error(client):
    r = client.get("/types/x/maybe/s?n=1.5")
    assert r.status_code == 422
    errors = r.json()["detail"]
    assert [(e["type"], e["loc"]) for e in errors] == [
        ("float_parsing", ["path", "f"]),
        ("bool_parsing", ["path", "b"]),
        ("int_parsing", ["query", "n"]),
    ]


def test_422_missing_query(client):
    r = client.get("/required")
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"type": "missing", "loc": ["query", "q"], "msg": "Field required", "input": None}
    ]
    assert client.get("/required?q=3").json() == {"q": 3}


def test_json_body(client):
    r = client.post("/items", json={"name": "widget", "price": 9.99, "tags": ["a", "b"]})
    assert r.status_code == 201
    assert r.json() == {"name": "widget", "price": 9.99, "tags": ["a", "b"]}


def test_body_wrong_type_and_malformed(client):
    r = client.post("/items", json=[1, 2])
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "dict_type"
    assert r.json()["detail"][0]["loc"] == ["body"]
    r = client.post("/items", content=b'{"a": 1,}', headers={"content-type": "application/json"})
    assert r.status_code == 422
    detail = r.json()["detail"][0]
    assert detail["type"] == "json_invalid"
    assert detail["loc"][0] == "body" and isinstance(detail["loc"][1], int)
    r = client.post("/items")
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "missing"
    assert client.post("/list", json=[1, 2, 3]).json() == {"n": 3}


def test_pydantic_model_body(client):
    r = client.post("/model", json={"name": "a", "price": "2.5"})
    assert r.json() == {"name": "a", "price": 2.5, "tags": []}
    r = client.post("/model", json={"name": "a", "price": "cheap"})
    assert r.status_code == 422
    err = r.json()["detail"][0]
    assert err["loc"] == ["body", "price"] and err["type"] == "float_parsing"
    r = client.post("/embed", json={"item": {"name": "x", "price": 1}, "note": {"k": 1}})
    assert r.json() == {"item": "x", "note": {"k": 1}}
    r = client.post("/embed", json={"item": {"name": "x", "price": 1}})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "note"]


def test_response_classes(client):
    r = client.put("/items/5", json={"a": 1})
    assert r.status_code == 202 and r.json() == {"id": 5, "a": 1}
    assert r.headers["x-put"] == "yes"
    r = client.delete("/items/5")
    assert r.status_code == 204 and r.content == b"" and "content-length" not in r.headers
    assert client.patch("/items/1", json={"b": 1, "a": 2}).json() == {
        "id": 1,
        "patched": ["a", "b"],
    }
    r = client.get("/html")
    assert r.headers["content-type"] == "text/html; charset=utf-8" and r.text == "<h1>hi</h1>"
    r = client.get("/text")
    assert r.status_code == 203 and r.text == "plain"
    r = client.get("/bytes")
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == b"\x00\x01\x02"
    assert client.get("/none").json() is None


def test_request_object(client):
    r = client.get("/raw?q=hello&z=1", headers={"User-Agent": "tester", "X-Multi": "a"})
    assert r.json() == {
        "path": "/raw",
        "q": "hello",
        "ua": "tester",
        "query": "q=hello&z=1",
        "x": ["a"],
    }
    body = bytes(range(256)) * 40
    r = client.post("/echo", content=body)
    assert r.content == body and r.headers["x-length"] == str(len(body))


def test_multi_method_route(client):
    assert client.get("/multi").json() == {"method": "GET"}
    assert client.post("/multi").json() == {"method": "POST"}


def test_http_exception(client):
    r = client.get("/http-error")
    assert r.status_code == 418
    assert r.json() == {"detail": "I'm a teapot"}
    assert r.headers["x-error"] == "tea"
    r = client.get("/http-error-default")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_handler_exception_is_500_and_server_keeps_serving(client):
    for path in ("/boom", "/boom-async", "/unencodable"):
        r = client.get(path)
        assert r.status_code == 500
        assert r.text == "Internal Server Error"
        assert client.get("/plaintext").status_code == 200


def test_response_splitting_is_refused(client):
    r = client.get("/bad-header")
    assert r.status_code == 500
    assert "set-cookie" not in r.headers


def test_404_and_405(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    r = client.post("/plaintext")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"
    assert r.json() == {"detail": "Method Not Allowed"}
    r = client.request("DELETE", "/items")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


def test_head_answers_like_get_without_body(client):
    r = client.head("/json")
    assert r.status_code == 200
    assert r.content == b""
    assert int(r.headers["content-length"]) == len(client.get("/json").content)


def test_awaiting_real_futures(client):
    assert client.get("/slow?delay=0.01").json() == {"slept": 0.01}
    assert client.get("/gather").json() == {"parts": [0, 1, 4, 9, 16]}
    assert client.get("/wait-for").json() == {"timed_out": True}
    assert client.get("/wait-for?timeout=30&sleep=0.01").json() == {"timed_out": False}
    assert client.get("/event-queue").json() == {"items": [0, 1, 2], "task": True}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout/TaskGroup are 3.11+")
def test_timeouts_and_task_groups_in_handlers(client):
    # asyncio.timeout() is entered before the handler first suspends: it needs a current
    # task then, and its cancellation must reach the Task that adopts the coroutine.
    assert client.get("/timeout?delay=0").json() == {"timed_out": False}
    assert client.get("/timeout?delay=0.01").json() == {"timed_out": False}
    assert client.get("/timeout?delay=5").json() == {"timed_out": True}
    assert client.get("/task-group").json() == {"results": [0, 1, 2]}


def test_handlers_await_real_io_on_pyloop(client):
    # A TCP round trip to a stream server started by a startup hook, a subprocess, and
    # blocking work in the default executor (which runs while the loop waits: the GIL is
    # released during the poll).
    assert client.get("/io/tcp?text=hello").json() == {"reply": "HELLO"}
    assert client.get("/io/subprocess").json() == {"out": "42", "code": 0}
    assert client.get("/io/executor").json() == {"parallel": True}


def test_context_is_per_request(client):
    assert client.get("/context/a").json() == {"before": "unset", "after": "a"}
    assert client.get("/context/b?wait=1").json() == {"before": "unset", "after": "b"}
    assert client.get("/context/c").json() == {"before": "unset", "after": "c"}


def test_slow_handlers_do_not_block_fast_ones(server):
    def get(path: str) -> tuple[float, int]:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            r = c.get(path)
            return time.monotonic(), r.status_code

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        slow = [pool.submit(get, "/slow?delay=1.0") for _ in range(6)]
        time.sleep(0.1)
        fast_done, fast_status = pool.submit(get, "/plaintext").result()
        results = [f.result() for f in slow]
    assert fast_status == 200
    # The fast request finished while all six slow ones were still asleep ...
    assert fast_done < min(done for done, _ in results)
    # ... and the slow ones slept concurrently, not one after another (6 s).
    assert max(done for done, _ in results) - start < 4.0
    assert all(status == 200 for _, status in results)


def test_threaded_def_handler_runs_off_the_loop_thread(server):
    """threaded=True: a def handler that blocks (here on an Event) does not stop the server;
    the request that releases it is served meanwhile on the loop thread."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        waiting = pool.submit(
            lambda: httpx.get(server.url + "/threaded/wait", params={"timeout": 10}, timeout=15)
        )
        time.sleep(0.2)
        assert not waiting.done()
        released = httpx.get(server.url + "/threaded/release", timeout=5)
        assert released.status_code == 200
        r = waiting.result(timeout=15)
    assert r.status_code == 200
    assert r.json() == {"released": True, "on_loop_thread": False}


def test_threaded_def_handler_binding_errors_and_status(client):
    r = client.post("/threaded/echo/3?q=y", json={"name": "pen", "price": 1.5})
    assert r.status_code == 201
    assert r.json() == {"n": 3, "item": "pen", "q": "y"}
    r = client.post("/threaded/echo/-1", json={"name": "pen", "price": 1.5})
    assert r.status_code == 418 and r.json() == {"detail": "negative"}
    r = client.post("/threaded/echo/x", json={"name": "pen"})
    assert r.status_code == 422
    locs = [e["loc"] for e in r.json()["detail"]]
    assert ["path", "n"] in locs and ["body", "price"] in locs


def test_threaded_is_refused_for_async_handlers():
    from data_bridge.api import App

    app = App()
    with pytest.raises(ValueError, match="threaded=True is for def handlers"):

        @app.get("/x", threaded=True)
        async def handler():
            return {}


def test_exception_handlers(client):
    r = client.get("/errors/stock/pen")
    assert r.status_code == 409
    assert r.json() == {"error": "out of stock", "item": "pen", "path": "/errors/stock/pen"}
    # The most specific handler wins (Backorder is an OutOfStock); raised after parking.
    r = client.get("/errors/backorder/ink")
    assert r.status_code == 200
    assert r.json() == {"backorder": "ink", "method": "GET"}
    # HTTPException keeps its own answer; a handler for a subclass of it is used.
    r = client.get("/errors/http/404")
    assert r.status_code == 404 and r.json() == {"detail": "from handler"}
    r = client.get("/errors/http/418?teapot=true")
    assert r.status_code == 418 and r.text == "short and stout"


def test_exception_handler_that_suspends_is_a_500(client):
    r = client.get("/errors/suspending")
    assert r.status_code == 500
    assert r.text == "Internal Server Error"
    assert client.get("/plaintext").status_code == 200


def test_exception_handler_registration_is_checked():
    from data_bridge.api import App

    app = App()
    with pytest.raises(TypeError, match="exception class"):
        app.add_exception_handler(int, lambda r, e: None)
    with pytest.raises(TypeError, match="callable"):
        app.add_exception_handler(ValueError, "nope")


def test_response_model_validates_and_filters(client):
    r = client.post("/rm/users", json={"name": "ann", "password": "secret", "age": 30})
    assert r.status_code == 201
    assert r.json() == {"name": "ann", "age": 30}
    assert client.get("/rm/users").json() == [{"name": "a", "age": 1}, {"name": "b", "age": 2}]
    assert client.get("/rm/threaded?name=z").json() == {"name": "z", "age": 3}
    r = client.get("/rm/raw")
    assert r.text == "as is"
    r = client.get("/rm/broken")
    assert r.status_code == 500 and r.text == "Internal Server Error"


def test_response_model_in_openapi(client):
    doc = client.get("/openapi.json").json()
    ok = doc["paths"]["/rm/users"]["post"]["responses"]["201"]["content"]["application/json"]
    assert ok["schema"] == {"$ref": "#/components/schemas/UserOut"}
    listed = doc["paths"]["/rm/users"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["items"] == {"$ref": "#/components/schemas/UserOut"}
    assert "password" not in doc["components"]["schemas"]["UserOut"]["properties"]


def test_background_tasks_run_after_the_response(client):
    start = time.monotonic()
    r = client.post("/bg/n1")
    assert time.monotonic() - start < 0.3  # the response did not wait for the slow task
    assert r.json() == {"queued": 2, "who": "dep"}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        log = client.get("/bg-log").json()
        if "async:n1" in log:
            break
        time.sleep(0.05)
    # In order: the dependency's sync task (run in the thread pool) before the handler's.
    assert log == ["sync:dep:True", "async:n1"]
