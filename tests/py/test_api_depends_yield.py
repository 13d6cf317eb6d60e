"""Dependencies with yield: when their exit code runs and what it sees, as in FastAPI 0.165.

Each scenario is one app made from the module it is given, ``data_bridge.api`` or
``fastapi`` (0.165.0, the version the compatibility harness pins). The generators and the
handler append to a log what happens to them (entered, the exception thrown in at their
``yield``, exited), a streaming body logs when it is sent and a background task when it
runs; each request's status, body, log and the exception the test client raises must be
the same on both. A few literal checks keep the file meaningful when FastAPI is absent;
tests/py/test_server_depends.py checks the timing against the bytes on a real socket.
(No ``from __future__ import annotations``: the apps' annotations name local functions.)
"""

import functools
import importlib
import types
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

import data_bridge.api as db_api
from data_bridge.api.exceptions import DependencyScopeError, FastAPIError


class OwnerError(Exception):
    pass


class InternalError(Exception):
    pass


class Item(BaseModel):
    name: str


def dependency(
    log: list[str],
    name: str,
    *,
    is_async: bool = False,
    swallow: bool = False,
    translate: Any = None,
    raise_after: Any = None,
) -> Any:
    """A generator dependency named ``name`` that logs its life; on an exception it may
    swallow it, or raise ``translate(exc)`` instead; after a plain exit it may raise
    ``raise_after()``."""

    def on_exception(exc: BaseException) -> BaseException | None:
        log.append(f"{name} saw {type(exc).__name__}")
        if swallow:
            return None
        return translate(exc) if translate is not None else exc

    def after() -> None:
        log.append(f"{name} exit")
        if raise_after is not None:
            raise raise_after()

    if is_async:

        async def agen() -> Any:
            log.append(f"{name} enter")
            try:
                yield name
            except Exception as exc:  # noqa: BLE001
                replaced = on_exception(exc)
                if replaced is exc:
                    raise
                if replaced is not None:
                    raise replaced from exc
                return
            after()

        agen.__name__ = name
        return agen

    def gen() -> Any:
        log.append(f"{name} enter")
        try:
            yield name
        except Exception as exc:  # noqa: BLE001
            replaced = on_exception(exc)
            if replaced is exc:
                raise
            if replaced is not None:
                raise replaced from exc
            return
        after()

    gen.__name__ = name
    return gen


def make_app(api: types.ModuleType, log: list[str]) -> Any:
    app = api.FastAPI()
    responses = importlib.import_module(f"{api.__name__}.responses")
    Depends = api.Depends  # noqa: N806 - the name the annotations below use

    def http_400(exc: BaseException) -> BaseException:
        return api.HTTPException(400, f"translated {type(exc).__name__}")

    func = dependency(log, "func")
    func_async = dependency(log, "func_async", is_async=True)
    req = dependency(log, "req")
    req_async = dependency(log, "req_async", is_async=True)

    def fail(what: str) -> None:
        log.append(f"handler raises {what}")
        if what == "value":
            raise ValueError("from the handler")
        if what == "http":
            raise api.HTTPException(404, "not here")
        if what == "owner":
            raise OwnerError("not yours")
        if what == "internal":
            raise InternalError("too dangerous")

    def stream(*parts: str) -> Any:
        def body() -> Any:
            log.append("body sent")
            yield ",".join(parts)

        return responses.StreamingResponse(body())

    # Both scopes, sync and async, with sub-dependencies: who exits when.
    def outer(
        inner: Annotated[str, Depends(req_async)], log_it: Annotated[str, Depends(req)]
    ) -> Any:
        log.append("outer enter")
        yield f"outer({inner},{log_it})"
        log.append("outer exit")

    @app.get("/scopes")
    def scopes(
        background: api.BackgroundTasks,
        f: Annotated[str, Depends(func, scope="function")],
        fa: Annotated[str, Depends(func_async, scope="function")],
        o: Annotated[str, Depends(outer)],
        r: Annotated[str, Depends(req, scope="request")],
        fail_with: str = "",
    ) -> Any:
        log.append("handler")
        background.add_task(log.append, "background")
        fail(fail_with)
        return stream(f, fa, o, r)

    @app.get("/plain")
    def plain(
        f: Annotated[str, Depends(func, scope="function")],
        r: Annotated[str, Depends(req)],
        fail_with: str = "",
    ) -> Any:
        log.append("handler")
        fail(fail_with)
        return {"f": f, "r": r}

    translating = dependency(log, "translating", translate=http_400)

    @app.get("/translate")
    def translate(t: Annotated[str, Depends(translating)], fail_with: str = "owner") -> Any:
        fail(fail_with)
        return t

    swallowing = dependency(log, "swallowing", swallow=True)

    @app.get("/swallow")
    def swallow(s: Annotated[str, Depends(swallowing)], fail_with: str = "internal") -> Any:
        fail(fail_with)
        return s

    def unavailable() -> BaseException:
        return api.HTTPException(503, "after yield")

    late_func = dependency(log, "late_func", raise_after=unavailable)
    late_req = dependency(log, "late_req", raise_after=lambda: ValueError("after yield"))

    @app.get("/late/function", dependencies=[Depends(late_func, scope="function")])
    def late_function() -> Any:
        log.append("handler")
        return {"ok": True}

    @app.get("/late/request", dependencies=[Depends(late_req)])
    def late_request() -> Any:
        log.append("handler")
        return {"ok": True}

    @app.get("/late/both", dependencies=[Depends(late_req), Depends(late_func, scope="function")])
    def late_both() -> Any:
        log.append("handler")
        return {"ok": True}

    @app.get("/model", response_model=Item)
    def model(r: Annotated[str, Depends(req)], f: Annotated[str, Depends(func, scope="function")]):
        log.append("handler")
        return {"title": "no name"}

    # Generator dependencies behind functools.partial and functools.wraps.
    def tagged(tag: str, q: str = "") -> Any:
        log.append(f"tagged {tag} enter")
        yield f"{tag}{q}"
        log.append(f"tagged {tag} exit")

    def passthrough(func: Any) -> Any:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

        return wrapper

    wrapped = passthrough(dependency(log, "wrapped", is_async=True))

    @app.get("/wrapped")
    def wrapped_deps(
        p: Annotated[str, Depends(functools.partial(tagged, "partial"))],
        w: Annotated[str, Depends(wrapped, scope="function")],
    ) -> Any:
        log.append("handler")
        return [p, w]

    counter = [0]

    def session() -> Any:
        counter[0] += 1
        n = counter[0]
        log.append(f"session {n} open")
        yield n
        log.append(f"session {n} closed")

    @app.get("/cache")
    def cache(
        a: Annotated[int, Depends(session, scope="function")],
        b: Annotated[int, Depends(session, scope="request")],
        c: Annotated[int, Depends(session)],
        d: Annotated[int, Depends(session, scope="function")],
    ) -> Any:
        return [a, b, c, d]

    return app


def run(api: types.ModuleType, path: str, raise_server_exceptions: bool) -> dict[str, Any]:
    """What a client sees of one request, and the log of what ran."""
    testclient = importlib.import_module(f"{api.__name__}.testclient")
    log: list[str] = []
    client = testclient.TestClient(
        make_app(api, log), raise_server_exceptions=raise_server_exceptions
    )
    out: dict[str, Any] = {}
    try:
        response = client.get(path)
    except Exception as exc:  # noqa: BLE001 - compared between the two
        out["raised"] = (type(exc).__name__, str(exc).splitlines()[0].split(".")[0])
    else:
        out["status"] = response.status_code
        out["body"] = response.text
    out["log"] = log
    return out


SCENARIOS = [
    "/scopes",
    "/scopes?fail_with=value",
    "/scopes?fail_with=http",
    "/plain",
    "/plain?fail_with=owner",
    "/translate",
    "/translate?fail_with=http",
    "/translate?fail_with=none",
    "/swallow",
    "/swallow?fail_with=http",
    "/swallow?fail_with=none",
    "/late/function",
    "/late/request",
    "/late/both",
    "/model",
    "/cache",
    "/wrapped?q=1",
]


def fastapi_or_skip() -> types.ModuleType:
    fastapi = pytest.importorskip("fastapi")
    if fastapi.__version__ != "0.165.0":
        pytest.skip(f"the expected behaviour is FastAPI 0.165.0's, not {fastapi.__version__}")
    return fastapi


@pytest.mark.parametrize("raise_server_exceptions", [True, False], ids=["raise", "no-raise"])
@pytest.mark.parametrize("path", SCENARIOS)
def test_same_as_fastapi(path: str, raise_server_exceptions: bool) -> None:
    fastapi = fastapi_or_skip()
    ours = run(db_api, path, raise_server_exceptions)
    theirs = run(fastapi, path, raise_server_exceptions)
    assert ours == theirs


def test_function_scope_exits_before_the_body_request_scope_after() -> None:
    got = run(db_api, "/scopes", True)
    assert got["status"] == 200
    log = got["log"]
    assert log.index("func exit") < log.index("body sent") < log.index("req exit")
    assert log.index("func_async exit") < log.index("body sent")
    # Request scope: after the body and the background tasks, innermost first.
    assert log[log.index("body sent") :] == [
        "body sent",
        "background",
        "outer exit",
        "req exit",
        "req_async exit",
    ]


def test_the_handlers_exception_is_thrown_in_and_may_be_replaced() -> None:
    got = run(db_api, "/translate", True)
    assert got["status"] == 400
    assert got["log"] == ["translating enter", "handler raises owner", "translating saw OwnerError"]
    got = run(db_api, "/scopes?fail_with=value", False)
    assert got["status"] == 500
    # Every generator sees it before the error is answered, function scope first, then
    # innermost first ("outer" has no except and does not log; it exits without "exit").
    assert got["log"][got["log"].index("handler raises value") + 1 :] == [
        "func_async saw ValueError",
        "func saw ValueError",
        "req saw ValueError",
        "req_async saw ValueError",
    ]


def test_a_swallowed_exception_leaves_no_response() -> None:
    got = run(db_api, "/swallow", True)
    assert got["raised"][0] == "FastAPIError"
    got = run(db_api, "/swallow", False)
    assert (got["status"], got["body"]) == (500, "Internal Server Error")


def test_errors_after_yield() -> None:
    # Function scope: before the response, so it is the answer.
    got = run(db_api, "/late/function", True)
    assert (got["status"], got["body"]) == (503, '{"detail":"after yield"}')
    # Request scope: the response was sent; the error is the server's (raised by the
    # test client when asked to).
    assert run(db_api, "/late/request", True)["raised"][0] == "ValueError"
    assert run(db_api, "/late/request", False)["status"] == 200


def test_function_scope_swallowing_fails_the_request() -> None:
    log: list[str] = []
    api = db_api
    app = api.FastAPI()
    swallowing = dependency(log, "swallowing", swallow=True)
    req = dependency(log, "req")

    @app.get("/")
    def endpoint(
        r: Annotated[str, api.Depends(req)],
        s: Annotated[str, api.Depends(swallowing, scope="function")],
    ) -> Any:
        raise InternalError("lost")

    from data_bridge.api.testclient import TestClient

    with pytest.raises(FastAPIError, match="Response not awaited"):
        TestClient(app).get("/")
    # The request-scope generator sees that there is no response.
    assert log == [
        "req enter",
        "swallowing enter",
        "swallowing saw InternalError",
        "req saw FastAPIError",
    ]
    assert TestClient(app, raise_server_exceptions=False).get("/").status_code == 500


@pytest.mark.parametrize("api_name", ["data_bridge.api", "fastapi"])
def test_request_scope_cannot_depend_on_function_scope(api_name: str) -> None:
    api = fastapi_or_skip() if api_name == "fastapi" else db_api
    scope_error = importlib.import_module(f"{api.__name__}.exceptions").DependencyScopeError
    if api is db_api:
        assert scope_error is DependencyScopeError
    app = api.FastAPI()

    def per_call() -> Any:
        yield 1

    def per_request(x: Annotated[int, api.Depends(per_call, scope="function")]) -> Any:
        yield x

    def plain(x: Annotated[int, api.Depends(per_call, scope="function")]) -> Any:
        return x

    with pytest.raises(scope_error, match='"per_request" has a scope of "request"'):

        @app.get("/broken")
        def broken(v: Annotated[int, api.Depends(per_request)]) -> Any:
            return v

    # A plain function may, and so may a function-scope generator.
    @app.get("/fine")
    def fine(
        v: Annotated[int, api.Depends(plain)],
        w: Annotated[int, api.Depends(per_request, scope="function")],
    ) -> Any:
        return v


@pytest.mark.parametrize("api_name", ["data_bridge.api", "fastapi"])
def test_a_response_object_returned_again(api_name: str) -> None:
    api = fastapi_or_skip() if api_name == "fastapi" else db_api
    testclient = importlib.import_module(f"{api.__name__}.testclient")
    log: list[str] = []
    app = api.FastAPI()
    shared = api.Response(content="same")
    req = dependency(log, "req")

    @app.get("/")
    def endpoint(r: Annotated[str, api.Depends(req)]) -> Any:
        log.append("handler")
        return shared

    client = testclient.TestClient(app)
    assert [client.get("/").text for _ in range(3)] == ["same"] * 3
    # Each request's generator exits once, after its own response.
    assert log == ["req enter", "handler", "req exit"] * 3
    if api is db_api:
        # The teardown is the response's background for its request only: it does not
        # pile up on an object returned again.
        assert getattr(shared.background, "background", None) is None
