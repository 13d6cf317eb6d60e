"""Keep-alive pings of WebSocket sessions (server/ws_ping.c) and uvicorn's --ws-* options:
pings arrive on an idle session, a missing pong closes it with 1011 as uvicorn's
websockets implementation does, pongs (and traffic) keep it open; the options given to
run() and on the command line. Short intervals, raw sockets."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, ServerProcess
from test_websockets import RawWS, frame, wait_event
from websockets.sync.client import connect

INTERVAL = 0.2
TIMEOUT = 0.3


@pytest.fixture(scope="module")
def pinging() -> Iterator[ServerProcess]:
    srv = ServerProcess(
        "ws_app.py", limits={"ws_ping_interval": INTERVAL, "ws_ping_timeout": TIMEOUT}
    ).start()
    yield srv
    code, log = srv.stop()
    assert code == 0, log


def next_frame(r: RawWS, timeout: float) -> tuple[bool, int, bytes]:
    r.sock.settimeout(timeout)
    try:
        return r.recv_frame()
    finally:
        r.sock.settimeout(None)


def test_idle_session_is_pinged(pinging: ServerProcess) -> None:
    r = RawWS(pinging)
    payloads = []
    start = time.monotonic()
    for _ in range(3):
        fin, op, payload = next_frame(r, 2)
        assert (fin, op) == (True, 0x9)
        assert len(payload) == 4
        payloads.append(payload)
        r.send(frame(0xA, payload))  # the pong: the session stays open
    elapsed = time.monotonic() - start
    # Three intervals, each restarted by the pong (the sweep is not involved: 200 ms).
    assert 3 * INTERVAL * 0.9 <= elapsed < 3 * INTERVAL + 1.0, elapsed
    assert len(set(payloads)) == 3  # each ping has its own payload
    r.send(frame(0x1, b"still here"))
    while True:
        fin, op, payload = next_frame(r, 2)
        if op != 0x9:
            break
    assert (op, payload) == (0x1, b"still here")
    r.close()


def test_missing_pong_closes_1011(pinging: ServerProcess) -> None:
    httpx.post(pinging.url + "/events/clear")
    r = RawWS(pinging, "/record/silent")
    start = time.monotonic()
    fin, op, payload = next_frame(r, 2)
    assert op == 0x9
    fin, op, payload = next_frame(r, 2)  # no pong sent: the close comes
    elapsed = time.monotonic() - start
    assert op == 0x8
    assert struct.unpack("!H", payload[:2])[0] == 1011
    assert payload[2:] == b"keepalive ping timeout"
    assert INTERVAL + TIMEOUT * 0.9 <= elapsed < INTERVAL + TIMEOUT + 1.0, elapsed
    assert r.reader.at_eof(timeout=2)  # and the server closes the connection
    # The application saw the connection lost: no close frame came from the peer.
    wait_event(pinging, ["silent", 1006, ""])


def test_wrong_pong_does_not_count(pinging: ServerProcess) -> None:
    r = RawWS(pinging)
    fin, op, payload = next_frame(r, 2)
    assert op == 0x9
    r.send(frame(0xA, b"nope"))  # an unsolicited pong (RFC 6455 §5.5.3)
    fin, op, payload = next_frame(r, 2)
    assert op == 0x8 and struct.unpack("!H", payload[:2])[0] == 1011


def test_traffic_postpones_pings(pinging: ServerProcess) -> None:
    r = RawWS(pinging)
    # A message every 50 ms for 1 s: the session is never idle for 200 ms.
    for i in range(20):
        r.send(frame(0x1, b"m%d" % i))
        fin, op, payload = next_frame(r, 2)
        assert (op, payload) == (0x1, b"m%d" % i)
        time.sleep(0.05)
    # Idle now: the ping comes.
    fin, op, payload = next_frame(r, 2)
    assert op == 0x9
    r.close()


def test_real_client_answers_pings(pinging: ServerProcess) -> None:
    with connect(f"ws://127.0.0.1:{pinging.port}/echo") as c:
        time.sleep(5 * INTERVAL)
        c.send("after pings")
        assert c.recv(timeout=5) == "after pings"


def test_no_timeout_keeps_pinging() -> None:
    srv = ServerProcess(
        "ws_app.py", limits={"ws_ping_interval": INTERVAL, "ws_ping_timeout": None}
    ).start()
    try:
        r = RawWS(srv)
        for _ in range(3):  # never answered, never closed
            fin, op, payload = next_frame(r, 2)
            assert op == 0x9
        r.close()
    finally:
        code, log = srv.stop()
    assert code == 0, log


def test_many_sessions_time_out_and_others_stay(pinging: ServerProcess) -> None:
    silent = [RawWS(pinging) for _ in range(20)]
    with connect(f"ws://127.0.0.1:{pinging.port}/echo") as polite:
        for r in silent:
            assert next_frame(r, 3)[1] == 0x9
        for r in silent:
            fin, op, payload = next_frame(r, 3)
            assert op == 0x8 and struct.unpack("!H", payload[:2])[0] == 1011
            r.close()
        polite.send("alive")
        assert polite.recv(timeout=5) == "alive"


# --- the command line ------------------------------------------------------------------

WS_APP = textwrap.dedent(
    """
    from data_bridge.api import App, WebSocket

    app = App()

    @app.get("/")
    def index():
        return {}

    @app.websocket("/echo")
    async def echo(websocket: WebSocket):
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text)
    """
)


def child_env() -> dict[str, str]:
    """The test run's own PYTHONPATH first (e.g. a sanitizer build), then the source tree,
    as conftest's ServerProcess does."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (env.get("PYTHONPATH", ""), str(ROOT / "src")) if p
    )
    return env


def run_server(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    (tmp_path / "wsapp.py").write_text(WS_APP)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = child_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_bridge", "wsapp:app", "--port", str(port), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            return proc, port
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("server did not start") from None
            time.sleep(0.05)


def test_cli_ws_options(tmp_path: Path) -> None:
    proc, port = run_server(
        tmp_path,
        "--ws-ping-interval",
        "0.2",
        "--ws-ping-timeout",
        "0.3",
        "--ws-max-size",
        "1000",
        "--ws-per-message-deflate",
        "false",
    )
    try:
        url = f"ws://127.0.0.1:{port}/echo"
        with connect(url, max_size=None) as c:
            # Compression refused, messages up to 1000 bytes.
            assert "sec-websocket-extensions" not in c.response.headers
            c.send("x" * 1000)
            assert c.recv(timeout=5) == "x" * 1000
            c.send("x" * 1001)
            with pytest.raises(Exception) as info:
                c.recv(timeout=5)
            assert info.value.rcvd.code == 1009  # type: ignore[attr-defined]
        srv = ServerProcess("wsapp.py")  # only its connect(): the port is the CLI's
        srv.port = port
        r = RawWS(srv, "/echo")
        assert next_frame(r, 2)[1] == 0x9
        fin, op, payload = next_frame(r, 2)
        assert op == 0x8 and struct.unpack("!H", payload[:2])[0] == 1011
        r.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_cli_ws_option_values(tmp_path: Path) -> None:
    from data_bridge.api.cli import build_parser

    args = build_parser().parse_args(["m:app"])
    # uvicorn's defaults.
    assert (args.ws_max_size, args.ws_max_queue) == (16777216, 32)
    assert (args.ws_ping_interval, args.ws_ping_timeout) == (20.0, 20.0)
    assert args.ws_per_message_deflate is True
    args = build_parser().parse_args(
        ["m:app", "--ws-ping-interval", "0", "--ws-ping-timeout", "none"]
    )
    assert (args.ws_ping_interval, args.ws_ping_timeout) == (None, None)
    for bad in (
        ["--ws-ping-interval", "-1"],
        ["--ws-per-message-deflate", "maybe"],
        ["--ws-max-queue", "x"],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "data_bridge", "wsapp:app", *bad],
            cwd=tmp_path,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 2, (bad, r.stderr)
