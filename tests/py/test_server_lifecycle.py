"""Server lifetime: timeouts, graceful shutdown on signals, workers, and the leak check."""

from __future__ import annotations

import signal
import socket
import time

import httpx
import pytest
from conftest import Reader, ServerProcess, exchange

GET = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture(scope="module")
def short_timeouts():
    srv = ServerProcess(
        "main_app.py", {"keepalive_timeout": 0.5, "request_timeout": 1.0, "max_body": 1000}
    ).start()
    yield srv
    srv.stop()


def test_idle_keep_alive_connection_is_closed(short_timeouts):
    r, reader = exchange(short_timeouts, GET)
    assert r.status == 200
    start = time.monotonic()
    assert reader.at_eof(timeout=5)
    assert time.monotonic() - start < 4


def test_slow_request_gets_408(short_timeouts):
    s = short_timeouts.connect()
    s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n")  # never finished
    reader = Reader(s)
    s.settimeout(6)
    r = reader.read_response()
    assert r.status == 408
    assert reader.at_eof()


def test_slow_body_gets_408(short_timeouts):
    s = short_timeouts.connect()
    s.sendall(b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n{")
    reader = Reader(s)
    s.settimeout(6)
    assert reader.read_response().status == 408


def test_configured_body_limit(short_timeouts):
    r, reader = exchange(
        short_timeouts,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001,
    )
    assert r.status == 413
    r, reader = exchange(
        short_timeouts,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000,
    )
    assert r.status == 200


def start_parked_request(srv: ServerProcess, path: str) -> Reader:
    """Sends a request whose handler waits, and returns once the server has it parked (so
    that a signal sent next finds it in progress, however slow the machine is)."""
    s = srv.connect(timeout=30)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    deadline = time.monotonic() + 15
    while httpx.get(srv.url + "/debug/inflight").json()["tasks"] < 1:
        assert time.monotonic() < deadline, "the handler never started"
        time.sleep(0.02)
    return Reader(s)


def test_sigterm_finishes_requests_in_progress():
    srv = ServerProcess("main_app.py").start()
    reader = start_parked_request(srv, "/slow?delay=1.0")
    code, err = srv.stop(signal.SIGTERM)
    assert code == 0, err
    r = reader.read_response()
    assert r.status == 200 and r.json() == {"slept": 1.0}
    assert r.header("connection") == "close"
    assert reader.at_eof()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()


def test_handlers_past_the_graceful_timeout_get_503():
    srv = ServerProcess("main_app.py", graceful=0.5).start()
    reader = start_parked_request(srv, "/slow?delay=30")
    start = time.monotonic()
    code, err = srv.stop(signal.SIGTERM)
    assert code == 0, err
    assert time.monotonic() - start < 5
    r = reader.read_response()
    assert r.status == 503
    assert r.json() == {"detail": "Service Unavailable"}
    assert "cancelling 1 handlers" in err


def test_sigint_stops_the_server():
    srv = ServerProcess("main_app.py").start()
    with httpx.Client(base_url=srv.url) as c:
        assert c.get("/plaintext").status_code == 200
    code, err = srv.stop(signal.SIGINT)
    assert code == 0, err


def test_no_growth_after_many_requests(server):
    """Reference-leak check: thousands of requests of every kind (success, 404, 422,
    500, async, parked, Request objects, bodies, malformed) must not grow the server's
    count of allocated Python blocks."""

    def load(rounds: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            for i in range(rounds):
                c.get("/plaintext")
                c.get("/json")
                c.get(f"/users/{i}?verbose=1")
                c.get("/users/abc")
                c.get("/nope")
                c.post("/plaintext")
                c.post("/items", json={"i": i, "s": "x" * 50})
                c.post("/items", content=b"{bad")
                c.post("/model", json={"name": "a", "price": "bad"})
                c.get("/raw?q=1")
                c.get("/boom")
                c.get("/http-error")
                c.get("/slow?delay=0")
                c.get(f"/context/{i}?wait=1")
        s = server.connect()
        for _ in range(rounds // 10):
            s.sendall(GET * 4)
        s.close()
        for _ in range(rounds // 10):
            r, reader = exchange(server, b"GET / HTTP/1.1\r\nHost : t\r\n\r\n")
            reader.sock.close()

    def blocks() -> int:
        return httpx.get(server.url + "/debug/blocks").json()["blocks"]

    load(150)  # warm caches, interned strings, free lists
    before = blocks()
    load(400)
    after = blocks()
    # 400 rounds are ~6,000 requests: a leak of one object per request shows as thousands.
    assert after - before < 400, (before, after)


def test_workers_share_the_port():
    srv = ServerProcess("main_app.py", workers=2).start()
    try:
        pids = set()
        deadline = time.monotonic() + 10
        while len(pids) < 2 and time.monotonic() < deadline:
            # New connections each time: the kernel spreads them over the workers.
            pids.add(
                httpx.get(srv.url + "/debug/pid", headers={"connection": "close"}).json()["pid"]
            )
        assert len(pids) == 2
    finally:
        code, err = srv.stop(signal.SIGTERM)
    assert code == 0, err
