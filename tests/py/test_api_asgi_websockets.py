"""WebSocket routes of an App reached through its ASGI face (api/_asgi_bridge.py): behind
pure ASGI middleware (Starlette's SessionMiddleware and AuthenticationMiddleware, a
middleware that adds a scope key, one that refuses), in the TestClient (which runs them
through the same ASGI stack as HTTP requests), under data-bridge's own server, under
uvicorn and mounted in a Starlette app. Most tests are differential: the same app code
on FastAPI with FastAPI's TestClient and on data_bridge.api with ours must give the same
transcript. The client end's frames are C (_core.WsClientCodec over csrc/ws/).

No ``from __future__ import annotations``: the endpoints' annotations name each flavour's
classes through locals, which must be evaluated where the endpoints are defined."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import fastapi
import fastapi.testclient
import httpx
import pytest
from conftest import APPS, ROOT, ServerProcess
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount
from starlette.testclient import TestClient as StarletteTestClient
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

import data_bridge.api as db_api
import data_bridge.api.testclient as db_testclient
from data_bridge import _core
from data_bridge.api._asgi_bridge import _OUTER_SCOPES, AsgiBridge

FLAVOURS = ("fastapi", "data_bridge")


def flavour(name: str) -> SimpleNamespace:
    mod = fastapi if name == "fastapi" else db_api
    client = fastapi.testclient if name == "fastapi" else db_testclient
    return SimpleNamespace(
        name=name,
        FastAPI=mod.FastAPI,
        Request=mod.Request,
        WebSocket=mod.WebSocket,
        WebSocketDisconnect=mod.WebSocketDisconnect,
        WebSocketException=mod.WebSocketException,
        TestClient=client.TestClient,
    )


class Tag:
    """A pure ASGI middleware that adds a key to every scope."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope["tag"] = f"tagged {scope['type']}"
        await self.app(scope, receive, send)


class Refuse:
    """A pure ASGI middleware that refuses WebSocket sessions under /refused by closing."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and scope["path"].startswith("/refused"):
            await send({"type": "websocket.close", "code": 4403, "reason": "not you"})
            return
        await self.app(scope, receive, send)


class HeaderAuth(AuthenticationBackend):
    async def authenticate(self, conn: Any) -> Any:
        name = conn.headers.get("x-user")
        if name is None:
            return None
        return AuthCredentials(["authenticated"]), SimpleUser(name)


def make_app(f: SimpleNamespace, log: list[Any]) -> Any:
    """The same app code for both flavours; log collects what endpoints saw."""
    app = f.FastAPI()
    app.add_middleware(Refuse)
    app.add_middleware(Tag)
    app.add_middleware(AuthenticationMiddleware, backend=HeaderAuth())
    app.add_middleware(SessionMiddleware, secret_key="test-secret")
    WebSocket, WebSocketDisconnect = f.WebSocket, f.WebSocketDisconnect  # noqa: N806

    @app.get("/login")
    def login(request: f.Request, user: str) -> dict[str, str]:  # type: ignore[name-defined]
        request.session["user"] = user
        return {"user": user}

    @app.websocket("/ws/{room}")
    async def room(websocket: WebSocket, room: str, q: str = "") -> None:  # type: ignore[valid-type]
        offered = websocket.scope["subprotocols"]
        await websocket.accept(
            subprotocol=offered[-1] if offered else None, headers=[(b"x-extra", b"1")]
        )
        user = websocket.user
        await websocket.send_json(
            {
                "room": room,
                "q": q,
                "session": dict(websocket.session),
                "tag": websocket.scope.get("tag"),
                "user": user.display_name if user.is_authenticated else None,
                "auth": list(websocket.auth.scopes) if websocket.auth else None,
                "subprotocols": offered,
            }
        )
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    log.append(("disconnect", message["code"], message.get("reason") or ""))
                    return
                text = message.get("text")
                if text == "close":
                    await websocket.close(4001, "closing on request")
                    return
                if text == "raise":
                    raise RuntimeError("raised after accept")
                if text is not None:
                    await websocket.send_text("echo " + text)
                else:
                    await websocket.send_bytes(b"echo " + message["bytes"])
        except WebSocketDisconnect as exc:
            log.append(("disconnect", exc.code, exc.reason))

    @app.websocket("/json")
    async def json_echo(websocket: WebSocket) -> None:  # type: ignore[valid-type]
        await websocket.accept()
        data = await websocket.receive_json()
        await websocket.send_json({"got": data})
        data = await websocket.receive_json(mode="binary")
        await websocket.send_json({"got": data}, mode="binary")
        await websocket.close()

    @app.websocket("/raise")
    async def raise_early(websocket: WebSocket) -> None:  # type: ignore[valid-type]
        raise RuntimeError("raised before accept")

    @app.websocket("/policy")
    async def policy(websocket: WebSocket) -> None:  # type: ignore[valid-type]
        raise f.WebSocketException(code=1008, reason="policy says no")

    @app.websocket("/refused/ws")
    async def refused(websocket: WebSocket) -> None:  # type: ignore[valid-type]
        await websocket.accept()  # never reached: the middleware refuses

    return app


def run_both(scenario: Callable[[SimpleNamespace, Any, list[Any]], Any]) -> Any:
    """The scenario's transcript on FastAPI and on data_bridge.api: they must agree."""
    results = {}
    for name in FLAVOURS:
        f = flavour(name)
        log: list[Any] = []
        app = make_app(f, log)
        with f.TestClient(app) as client:
            results[name] = scenario(f, client, log)
    assert results["data_bridge"] == results["fastapi"]
    return results["data_bridge"]


def failure(f: SimpleNamespace, call: Callable[[], Any]) -> Any:
    """What call raised, as comparable data."""
    try:
        call()
    except f.WebSocketDisconnect as exc:
        return ("disconnect", exc.code, exc.reason)
    except Exception as exc:
        return (type(exc).__name__, str(exc))
    return None


# The TestClient, differential ----------------------------------------------------------


def test_session_auth_scope_keys_params_and_subprotocol() -> None:
    def scenario(f: SimpleNamespace, client: Any, log: list[Any]) -> Any:
        assert client.get("/login", params={"user": "ann"}).json() == {"user": "ann"}
        with client.websocket_connect(
            "/ws/lobby?q=7", subprotocols=["chat", "superchat"], headers={"x-user": "bob"}
        ) as ws:
            first = ws.receive_json()
            extra = [(bytes(k), bytes(v)) for k, v in ws.extra_headers or []]
            return first, ws.accepted_subprotocol, (b"x-extra", b"1") in extra

    assert run_both(scenario) == (
        {
            "room": "lobby",
            "q": "7",
            "session": {"user": "ann"},
            "tag": "tagged websocket",
            "user": "bob",
            "auth": ["authenticated"],
            "subprotocols": ["chat", "superchat"],
        },
        "superchat",
        True,
    )


def test_without_session_cookie_or_user() -> None:
    def scenario(f: SimpleNamespace, client: Any, log: list[Any]) -> Any:
        with client.websocket_connect("/ws/empty") as ws:
            return ws.receive_json(), ws.accepted_subprotocol

    first, subprotocol = run_both(scenario)
    assert (first["session"], first["user"], first["auth"], subprotocol) == ({}, None, [], None)


def test_echo_text_bytes_json() -> None:
    def scenario(f: SimpleNamespace, client: Any, log: list[Any]) -> Any:
        out = []
        with client.websocket_connect("/ws/echo") as ws:
            ws.receive_json()
            ws.send_text("héllo")
            out.append(ws.receive_text())
            ws.send_bytes(b"\x00\xff")
            out.append(ws.receive_bytes())
            ws.send({"type": "websocket.receive", "text": "as message"})
            out.append(ws.receive())
        with client.websocket_connect("/json") as ws:
            ws.send_json({"a": [1, "ü"]})
            out.append(ws.receive_json())
            ws.send_json({"b": None}, mode="binary")
            out.append(ws.receive_json(mode="binary"))
            out.append(failure(f, ws.receive_text))
        return out

    assert run_both(scenario) == [
        "echo héllo",
        b"echo \x00\xff",
        {"type": "websocket.send", "text": "echo as message"},
        {"got": {"a": [1, "ü"]}},
        {"got": {"b": None}},
        ("disconnect", 1000, ""),
    ]


def test_large_messages() -> None:
    text = "".join(chr(0x41 + i % 26) for i in range(300_000)) + "€"
    data = bytes(range(256)) * 800  # 200 KiB

    def scenario(f: SimpleNamespace, client: Any, log: list[Any]) -> Any:
        with client.websocket_connect("/ws/big") as ws:
            ws.receive_json()
            ws.send_text(text)
            got_text = ws.receive_text()
            ws.send_bytes(data)
            got_bytes = ws.receive_bytes()
        return got_text == "echo " + text, got_bytes == b"echo " + data, len(got_bytes)

    assert run_both(scenario) == (True, True, len(data) + 5)


def test_close_from_server_with_code_and_reason() -> None:
    def scenario(f: SimpleNamespace, client: Any, log: list[Any]) -> Any:
        with client.websocket_connect("/ws/close") as ws:
            ws.receive_json()
            ws.send_text("close")
            as_message = ws.receive()
        with client.websocket_connect("/ws/close") as ws:
            ws.receive_json()
            ws.send_text("close")
            return as_message, failure(f, ws.receive_text)

    assert run_both(scenario) == (
        {"type": "websocket.close", "code": 4001, "reason": "closing on request"},
        ("disconnect", 4001, "closing on request"),
    )


def test_close_from_client_reaches_the_endpoint() -> None:
    def scenario(f: SimpleNamespace, client: Any, log: list[Any]) -> Any:
        with client.websocket_connect("/ws/bye") as ws:
            ws.receive_json()
            ws.close(4002, "client bye")
        after_close = list(log)
        with client.websocket_connect("/ws/plain") as ws:
            ws.receive_json()
        return after_close, log

    assert run_both(scenario) == (
        [("disconnect", 4002, "client bye")],
        [("disconnect", 4002, "client bye"), ("disconnect", 1000, "")],
    )


def test_route_raising_before_and_after_accept() -> None:
    def scenario(f: SimpleNamespace, client: Any, log: list[Any]) -> Any:
        before = failure(f, lambda: client.websocket_connect("/raise").__enter__())

        def after() -> None:
            with client.websocket_connect("/ws/x") as ws:
                ws.receive_json()
                ws.send_text("raise")
                ws.receive_text()

        return before, failure(f, after)

    assert run_both(scenario) == (
        ("RuntimeError", "raised before accept"),
        ("RuntimeError", "raised after accept"),
    )


def test_refusals() -> None:
    def scenario(f: SimpleNamespace, client: Any, log: list[Any]) -> Any:
        def attempt(path: str) -> Callable[[], None]:
            def go() -> None:
                with client.websocket_connect(path):
                    pass

            return go

        return [failure(f, attempt(p)) for p in ("/refused/ws", "/policy", "/nowhere")]

    assert run_both(scenario) == [
        ("disconnect", 4403, "not you"),  # the middleware's close before the accept
        ("disconnect", 1008, "policy says no"),  # WebSocketException before the accept
        ("disconnect", 1000, ""),  # no such route
    ]


def test_raise_server_exceptions_false() -> None:
    app = make_app(flavour("data_bridge"), [])
    client = db_testclient.TestClient(app, raise_server_exceptions=False)
    with client.websocket_connect("/ws/x") as ws:
        ws.receive_json()
        ws.send_text("raise")
        assert ws.receive() == {"type": "websocket.close", "code": 1011, "reason": ""}


# The App called as an ASGI application (no TestClient) ----------------------------------


def plain_app() -> Any:
    app = db_api.FastAPI()

    @app.websocket("/echo")
    async def echo(websocket: db_api.WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text.upper())

    return app


async def drive(
    app: Any, path: str, incoming: list[dict[str, Any]], extensions: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Calls app with a websocket scope on asyncio (not a PyLoop: the bridge runs its own
    thread), feeding incoming after each message it sends; returns what it sent."""
    sent: list[dict[str, Any]] = []
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    queue.put_nowait({"type": "websocket.connect"})
    pending = list(incoming)

    async def receive() -> dict[str, Any]:
        return await queue.get()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] in ("websocket.accept", "websocket.send") and pending:
            queue.put_nowait(pending.pop(0))

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.org")],
        "client": ("127.0.0.1", 5000),
        "server": ("example.org", 80),
        "subprotocols": [],
        "extensions": extensions if extensions is not None else {},
    }
    await asyncio.wait_for(app(scope, receive, send), 10)
    return sent


def test_app_as_asgi_app_on_asyncio() -> None:
    app = plain_app()
    sent = asyncio.run(
        drive(
            app,
            "/echo",
            [
                {"type": "websocket.receive", "text": "abc"},
                {"type": "websocket.receive", "text": "x" * 70_000},
                {"type": "websocket.disconnect", "code": 1001},
            ],
        )
    )
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.send"]
    assert sent[1]["text"] == "ABC"
    assert sent[2]["text"] == "X" * 70_000


def test_app_as_asgi_app_on_trio() -> None:
    # Other async libraries wait on the socketpair with anyio, and the relay's two loops
    # run in an anyio task group.
    trio = pytest.importorskip("trio")
    app = plain_app()

    async def main() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        tx, rx = trio.open_memory_channel(10)
        await tx.send({"type": "websocket.connect"})
        pending = [
            {"type": "websocket.receive", "text": "on trio"},
            {"type": "websocket.disconnect", "code": 1000},
        ]

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if pending:
                await tx.send(pending.pop(0))

        scope = {
            "type": "websocket",
            "path": "/echo",
            "query_string": b"",
            "headers": [],
            "subprotocols": [],
        }
        with trio.fail_after(10):
            await app(scope, rx.receive, send)
        return sent

    sent = trio.run(main)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send"]
    assert sent[1]["text"] == "ON TRIO"


def test_refusal_as_denial_response_or_close() -> None:
    app = plain_app()
    with_extension = asyncio.run(drive(app, "/nowhere", [], {"websocket.http.response": {}}))
    assert [m["type"] for m in with_extension] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert with_extension[0]["status"] == 403  # as the native server refuses an upgrade
    without = asyncio.run(drive(app, "/nowhere", []))
    assert without == [{"type": "websocket.close", "code": 1000, "reason": ""}]


def test_server_pings_are_answered() -> None:
    # A native server that pings every 50 ms and gives up after 200 ms without a pong:
    # the session outlives many intervals only if the bridge answers them.
    app = plain_app()
    bridge = AsgiBridge(
        app, build_options={"server_options": {"ws_ping_interval": 0.05, "ws_ping_timeout": 0.2}}
    )
    try:

        async def scenario() -> list[dict[str, Any]]:
            sent: list[dict[str, Any]] = []
            queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            queue.put_nowait({"type": "websocket.connect"})

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            scope = {
                "type": "websocket",
                "path": "/echo",
                "query_string": b"",
                "headers": [],
                "subprotocols": [],
            }
            task = asyncio.ensure_future(bridge(scope, queue.get, send))
            await asyncio.sleep(1.0)
            queue.put_nowait({"type": "websocket.receive", "text": "still here"})
            await asyncio.sleep(0.2)
            queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
            await asyncio.wait_for(task, 10)
            return sent

        sent = asyncio.run(scenario())
    finally:
        bridge.close()
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send"]
    assert sent[1]["text"] == "STILL HERE"


def test_mounted_in_starlette() -> None:
    inner = make_app(flavour("data_bridge"), [])
    outer = Starlette(routes=[Mount("/inner", app=inner)])
    with StarletteTestClient(outer) as client:
        with client.websocket_connect("/inner/ws/mounted?q=m", headers={"x-user": "eve"}) as ws:
            first = ws.receive_json()
            ws.send_bytes(b"bin")
            assert ws.receive_bytes() == b"echo bin"
    assert (first["room"], first["q"], first["user"], first["tag"]) == (
        "mounted",
        "m",
        "eve",
        "tagged websocket",
    )


def test_outer_scopes_are_released() -> None:
    app = make_app(flavour("data_bridge"), [])
    client = db_testclient.TestClient(app)
    for _ in range(3):
        with client.websocket_connect("/ws/r") as ws:
            ws.receive_json()
    assert _OUTER_SCOPES == {}


def test_client_codec() -> None:
    codec = _core.WsClientCodec()
    # RFC 6455 §5.7: unmasked server frames, a fragmented text with a ping between.
    frames = b"\x81\x05Hello\x01\x03Hel\x89\x02hi\x80\x02lo\x82\x01\x00\x88\x05\x03\xe9bye"
    assert codec.feed(frames[:7]) == [("text", "Hello")]
    assert codec.feed(frames[7:]) == [
        ("ping", b"hi"),
        ("text", "Hello"),
        ("bytes", b"\x00"),
        ("close", 1001, "bye"),
    ]
    frame = codec.frame(0x1, "héllo")
    assert frame[0] == 0x81 and frame[1] == 0x80 | 6  # FIN, text; MASK bit, length
    key, masked = frame[2:6], frame[6:]
    assert bytes(b ^ key[i % 4] for i, b in enumerate(masked)) == "héllo".encode()
    assert len(codec.frame(0x2, b"x" * 70_000)) == 2 + 8 + 4 + 70_000
    close = codec.close_frame(4000, "r")
    assert close[:2] == b"\x88\x83"
    with pytest.raises(ValueError):
        codec.close_frame(1006)
    with pytest.raises(ValueError):
        codec.frame(0x9, b"x" * 126)
    masked_from_server = _core.WsClientCodec()
    assert masked_from_server.feed(b"\x81\x81abcdx")[0][:2] == ("error", 1002)


# Real servers ------------------------------------------------------------------------


def login_cookie(base: str) -> str:
    response = httpx.get(f"{base}/login", params={"user": "ann"}, timeout=5)
    assert response.json() == {"user": "ann"}
    return response.headers["set-cookie"].split(";")[0]


def check_real_server(port: int) -> None:
    cookie = login_cookie(f"http://127.0.0.1:{port}")
    with connect(
        f"ws://127.0.0.1:{port}/ws/lobby?q=7",
        additional_headers={"cookie": cookie},
        subprotocols=["a", "b"],
        open_timeout=5,
        close_timeout=5,
    ) as ws:
        assert ws.subprotocol == "b"
        assert json.loads(ws.recv(timeout=5)) == {
            "room": "lobby",
            "q": "7",
            "session": {"user": "ann"},
            "tag": "tagged websocket",
            "scheme": "ws",
        }
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo hi"
        big = os.urandom(100_000)
        ws.send(big)
        assert ws.recv(timeout=5) == b"echo " + big
        ws.send("close")
        with pytest.raises(ConnectionClosed) as caught:
            ws.recv(timeout=5)
    assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (4001, "closing on request")
    with pytest.raises(InvalidStatus) as refused:
        with connect(f"ws://127.0.0.1:{port}/nowhere", open_timeout=5):
            pass
    assert refused.value.response.status_code == 403


def test_served_by_data_bridge_behind_session_middleware() -> None:
    srv = ServerProcess("asgi_mw_ws_app.py").start()
    try:
        check_real_server(srv.port)
    finally:
        code, log = srv.stop()
    assert code == 0, log


@pytest.fixture
def uvicorn_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (env.get("PYTHONPATH", ""), str(ROOT / "src")) if p
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "asgi_mw_ws_app:app",
            "--app-dir",
            str(APPS),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_served_by_uvicorn(uvicorn_port: int) -> None:
    check_real_server(uvicorn_port)
