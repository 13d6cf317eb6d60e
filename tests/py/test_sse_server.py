"""Server-Sent Events on a real server with a streaming httpx client and raw sockets:
Last-Event-ID reaches the handler, each event is on the wire as soon as it is yielded, a
client that leaves cancels the generator (also while it waits), a client that stops
reading stalls the generator (bounded output), and the same through StreamingResponse."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Reader, ServerProcess


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    srv = ServerProcess("sse_app.py").start()
    yield srv
    code, log = srv.stop()
    assert code == 0, log


def key() -> str:
    return uuid.uuid4().hex


def state(srv: ServerProcess, k: str) -> dict[str, Any]:
    return httpx.get(f"{srv.url}/state/{k}", timeout=5).json()


def wait_for(check: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def parse(text: str) -> list[dict[str, str]]:
    """Events as the WHATWG parser sees them (field: value; comments dropped)."""
    out = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = fields[name] + "\n" + value if name in fields else value
        if fields:
            out.append(fields)
    return out


def test_last_event_id_resumes(server: ServerProcess) -> None:
    r = httpx.get(f"{server.url}/resume", timeout=5)
    assert r.headers["content-type"].startswith("text/event-stream")
    assert [e["id"] for e in parse(r.text)] == ["0", "1", "2", "3"]
    assert json.loads(parse(r.text)[0]["data"]) == {"item": "alpha"}
    r = httpx.get(f"{server.url}/resume", headers={"Last-Event-ID": "1"}, timeout=5)
    assert [(e["id"], json.loads(e["data"])["item"]) for e in parse(r.text)] == [
        ("2", "gamma"),
        ("3", "delta"),
    ]


def test_each_event_is_flushed(server: ServerProcess) -> None:
    start = time.monotonic()
    with httpx.stream("GET", f"{server.url}/two?gap=1.5", timeout=5) as r:
        chunks = r.iter_raw()
        first = next(chunks)
        took = time.monotonic() - start
        assert first == b'data: "one"\n\n'
        assert took < 1.0, took  # not held back until the generator's next event
        rest = b"".join(chunks)
    assert rest == b'data: "two"\n\n'


def test_disconnect_cancels_a_producing_generator(server: ServerProcess) -> None:
    k = key()
    with httpx.stream("GET", f"{server.url}/forever?key={k}&pause=0.01", timeout=5) as r:
        lines = r.iter_lines()
        for _ in range(6):
            next(lines)
    assert wait_for(lambda: state(server, k)["closed"] == 1)
    rec = state(server, k)
    assert rec["started"] == 1 and rec["cancelled"] == 1


def test_disconnect_cancels_a_waiting_generator(server: ServerProcess) -> None:
    k = key()
    with httpx.stream("GET", f"{server.url}/idle?key={k}", timeout=5) as r:
        chunks = r.iter_raw()  # kept: a dropped iterator closes the response
        assert next(chunks) == b'data: {"hello": true}\n\n'  # as FastAPI writes it
        time.sleep(0.2)
        assert state(server, k)["closed"] == 0
    assert wait_for(lambda: state(server, k)["closed"] == 1)


def test_streaming_response_with_last_event_id(server: ServerProcess) -> None:
    k = key()
    url = f"{server.url}/plain-sse?key={k}"
    with httpx.stream("GET", url, headers={"Last-Event-ID": "2"}, timeout=5) as r:
        got = b""
        for chunk in r.iter_raw():
            got += chunk
            if b": waiting" in got:
                break
    assert got == b"data: delta\nid: 3\n\n: waiting\n\n"
    assert wait_for(lambda: state(server, k)["closed"] == 1)


def test_slow_reader_stalls_the_generator(server: ServerProcess) -> None:
    """A client that stops reading: the generator waits (the writer's drain), so what it
    produced stays within the write limit (1 MiB) plus the kernel's socket buffers."""
    k = key()
    size = 64 * 1024
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.settimeout(5)
    s.connect(("127.0.0.1", server.port))
    s.sendall(f"GET /forever?key={k}&size={size} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    last, stable = -1, 0
    deadline = time.monotonic() + 20
    while stable < 10:
        assert time.monotonic() < deadline, "the generator never stalled"
        produced = state(server, k)["produced"]
        stable = stable + 1 if produced == last else 0
        last = produced
        time.sleep(0.02)
    try:
        wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        wmem_max = 4 * 1024 * 1024
    # The write limit, the kernel's buffers, and the events held by the SSE machinery
    # (one in its queue, one being written, one in the generator).
    bound = 2 * 1024 * 1024 + wmem_max + 2 * 64 * 1024 + 4 * size
    assert 0 < last * size <= bound, (last, bound)
    reader = Reader(s)
    got = 0
    while got < 4 * last * size:
        assert reader._fill()
        got += len(reader.buf)
        reader.buf = b""
    assert state(server, k)["produced"] > last
    s.close()
    assert wait_for(lambda: state(server, k)["closed"] == 1)
