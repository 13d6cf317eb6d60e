"""Supervised workers (--workers N) with real processes: a dead worker is replaced, a
crash loop stops the supervisor, SIGTERM drains, SIGHUP rolls the workers, and
--limit-max-requests recycles them. Every wait is bounded."""

from __future__ import annotations

import os
import signal
import socket
import textwrap
import time
from pathlib import Path

import httpx
from conftest import Reader
from test_cli import Cli

APP = textwrap.dedent(
    """
    import asyncio, os
    from data_bridge.api import App

    app = App()

    @app.get("/")
    def index():
        return {"pid": os.getpid()}

    @app.get("/slow")
    async def slow(t: float = 1.0):
        await asyncio.sleep(t)
        return {"pid": os.getpid(), "slept": t}

    @app.get("/crash")
    def crash():
        os._exit(7)

    broken = App()

    @broken.get("/")
    def index2():
        return {}

    @broken.on_event("startup")
    def fail():
        if os.environ.get("DB_FAIL_HOW") == "crash":
            os._exit(9)
        raise RuntimeError("no database")
    """
)


def start(tmp_path: Path, *args: str, env=None) -> Cli:
    (tmp_path / "supapp.py").write_text(APP)
    return Cli(tmp_path, *args, env=env)


def pids_of(c: Cli, n: int = 60) -> set[int]:
    out = set()
    for _ in range(n):
        out.add(httpx.get(c.url, headers={"connection": "close"}, timeout=5).json()["pid"])
    return out


def cleanup(c: Cli) -> None:
    """Kills what is left of the test's process group (supervisor and workers)."""
    try:
        os.killpg(c.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    c.proc.wait(timeout=10)


def worker_pids(c: Cli) -> set[int]:
    """The supervisor's children, from /proc."""
    out = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == c.proc.pid and fields[0] != "Z":
            out.add(int(d))
    return out


def wait_for(cond, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_killed_worker_is_replaced(tmp_path: Path) -> None:
    c = start(tmp_path, "supapp:app", "--workers", "2")
    try:
        c.wait_ready()
        wait_for(lambda: len(worker_pids(c)) == 2, what="two workers")
        before = worker_pids(c)
        victim = min(before)
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(worker_pids(c) - before) == 1, what="a replacement")
        # The replacement serves within a second; the survivor never stopped.
        wait_for(lambda: httpx.get(c.url, timeout=5).status_code == 200, 5, "service")
        assert time.monotonic() - t0 < 3
        assert victim not in worker_pids(c)
        # A worker that crashes in a handler is replaced as well.
        try:
            httpx.get(c.url + "/crash", headers={"connection": "close"}, timeout=5)
        except httpx.TransportError:
            pass
        # Reaped and replaced (the crashed worker may still show in /proc for a moment, so
        # the count alone could be two before the supervisor saw the death).
        wait_for(lambda: "exited with status 7; replacing it" in c.output(), what="the reaping")
        wait_for(lambda: len(worker_pids(c)) == 2, what="two workers again")
        assert c.stop() == 0
        out = c.output()
        assert f"worker {victim} killed by SIGKILL; replacing it" in out
    finally:
        cleanup(c)


def test_startup_failure_stops_the_supervisor(tmp_path: Path) -> None:
    c = start(tmp_path, "supapp:broken", "--workers", "2")
    try:
        assert c.proc.wait(timeout=20) == 3
    finally:
        cleanup(c)
    assert "the application failed to start; stopping" in c.output()


def test_crash_loop_gives_up(tmp_path: Path) -> None:
    c = start(tmp_path, "supapp:broken", "--workers", "2", env={"DB_FAIL_HOW": "crash"})
    t0 = time.monotonic()
    try:
        assert c.proc.wait(timeout=30) == 1
    finally:
        cleanup(c)
    out = c.output()
    assert "crash loop, stopping" in out
    # Backoff between the attempts: not all at once.
    assert time.monotonic() - t0 > 0.5
    assert out.count("started worker") <= 8


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    c = start(tmp_path, "supapp:app", "--workers", "2")
    try:
        c.wait_ready()
        socks = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
            s.sendall(b"GET /slow?t=1.5 HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        time.sleep(0.4)
        c.proc.send_signal(signal.SIGTERM)
        for s in socks:
            r = Reader(s).read_response()
            assert r.status == 200 and r.json()["slept"] == 1.5
            s.close()
        assert c.proc.wait(timeout=15) == 0
        # Nothing listens any more.
        try:
            socket.create_connection(("127.0.0.1", c.port), timeout=1).close()
            raise AssertionError("still accepting")
        except OSError:
            pass
    finally:
        cleanup(c)


def test_sigint_drains_too(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group: workers leave it to the supervisor and
    still finish their requests."""
    c = start(tmp_path, "supapp:app", "--workers", "2")
    try:
        c.wait_ready()
        s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        s.sendall(b"GET /slow?t=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        os.killpg(c.proc.pid, signal.SIGINT)
        r = Reader(s).read_response()
        assert r.status == 200
        s.close()
        assert c.proc.wait(timeout=15) == 0
    finally:
        cleanup(c)


def test_graceful_timeout_bounds_the_drain(tmp_path: Path) -> None:
    c = start(tmp_path, "supapp:app", "--workers", "2", "--timeout-graceful-shutdown", "1")
    try:
        c.wait_ready()
        s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        s.sendall(b"GET /slow?t=60 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        t0 = time.monotonic()
        c.proc.send_signal(signal.SIGTERM)
        assert Reader(s).read_response().status == 503
        s.close()
        assert c.proc.wait(timeout=15) == 0
        assert time.monotonic() - t0 < 6
    finally:
        cleanup(c)


def test_sighup_rolls_the_workers(tmp_path: Path) -> None:
    c = start(tmp_path, "supapp:app", "--workers", "2")
    try:
        c.wait_ready()
        wait_for(lambda: len(worker_pids(c)) == 2, what="two workers")
        before = worker_pids(c)
        # A request in flight on an old worker finishes during the roll.
        s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        s.sendall(b"GET /slow?t=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        c.proc.send_signal(signal.SIGHUP)
        failures = 0
        deadline = time.monotonic() + 20
        while not (worker_pids(c) and worker_pids(c).isdisjoint(before)):
            assert time.monotonic() < deadline, c.output()
            try:
                httpx.get(c.url, timeout=5)
            except httpx.TransportError:
                failures += 1
            time.sleep(0.02)
        assert Reader(s).read_response().status == 200
        s.close()
        assert failures == 0
        wait_for(lambda: len(worker_pids(c)) == 2, what="two new workers")
        assert c.stop() == 0
        assert "all workers restarted" in c.output()
    finally:
        cleanup(c)


def test_limit_max_requests_recycles_workers(tmp_path: Path) -> None:
    c = start(tmp_path, "supapp:app", "--workers", "2", "--limit-max-requests", "5")
    try:
        c.wait_ready()
        seen: set[int] = set()
        errors = 0
        for _ in range(60):
            try:
                seen.add(httpx.get(c.url, headers={"connection": "close"}, timeout=5).json()["pid"])
            except httpx.TransportError as exc:
                errors += 1
                print("error", repr(exc))  # shown with -s
            time.sleep(0.01)
        # Replaced as they reach the limit: more than two processes served.
        assert len(seen) > 2, c.output()
        assert errors == 0
        assert c.stop() == 0
        assert "exited with status 0; replacing it" in c.output()
    finally:
        cleanup(c)


def test_workers_exit_with_a_killed_supervisor(tmp_path: Path) -> None:
    c = start(tmp_path, "supapp:app", "--workers", "2")
    try:
        c.wait_ready()
        wait_for(lambda: len(worker_pids(c)) == 2, what="two workers")
        workers = worker_pids(c)
        c.proc.kill()
        c.proc.wait(timeout=10)

        def gone() -> bool:
            for pid in workers:
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                            return False
                except OSError:
                    pass
            return True

        wait_for(gone, 10, "orphaned workers to exit")
    finally:
        cleanup(c)


# --- metrics ---------------------------------------------------------------------------


def scrape(c: Cli) -> dict[str, float]:
    r = httpx.get(c.url + "/metrics", timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    out = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_single_process(tmp_path: Path) -> None:
    c = start(tmp_path, "supapp:app", "--metrics", "/metrics")
    try:
        c.wait_ready()  # one 200
        for _ in range(3):
            httpx.get(c.url + "/nope", timeout=5)  # 404s
        held = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        # Long enough to still be in flight at the scrape on a loaded machine.
        held.sendall(b"GET /slow?t=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        m = scrape(c)
        assert m["data_bridge_requests_total"] == 5  # the scrape does not count itself
        assert m['data_bridge_responses_total{class="2xx"}'] == 1
        assert m['data_bridge_responses_total{class="4xx"}'] == 3
        assert m["data_bridge_requests_in_flight"] == 1
        # The held connection and the scrape's own.
        assert m["data_bridge_connections"] == 2
        assert Reader(held).read_response().status == 200
        held.close()
        time.sleep(0.2)
        m = scrape(c)
        assert m["data_bridge_requests_in_flight"] == 0
        assert m['data_bridge_responses_total{class="2xx"}'] == 2
        assert c.stop() == 0
    finally:
        cleanup(c)


def test_metrics_summed_over_workers(tmp_path: Path) -> None:
    c = start(tmp_path, "supapp:app", "--workers", "2", "--metrics", "/metrics")
    try:
        c.wait_ready()
        wait_for(lambda: len(worker_pids(c)) == 2, what="two workers")
        pids = pids_of(c, 40)  # 40 more requests, spread over the workers
        assert len(pids) == 2
        m = scrape(c)
        assert m["data_bridge_requests_total"] == 41
        assert m['data_bridge_responses_total{class="2xx"}'] == 41
        # A killed worker: its counts stay, the restart is counted, nothing is left in flight.
        held = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        held.sendall(b"GET /slow?t=30 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        victim = [p for p in worker_pids(c)]
        m = scrape(c)
        assert m["data_bridge_requests_in_flight"] == 1
        for pid in victim:
            os.kill(pid, signal.SIGKILL)
        held.close()
        wait_for(lambda: len(worker_pids(c) - set(victim)) == 2, what="replacements")
        c.wait_ready()
        m = scrape(c)
        assert m["data_bridge_worker_restarts_total"] == 2
        assert m["data_bridge_requests_in_flight"] == 0
        assert m["data_bridge_requests_total"] >= 43
        assert m["data_bridge_requests_abandoned_total"] == 1
        assert c.stop() == 0
    finally:
        cleanup(c)


def test_sigttin_and_sigttou_scale_the_workers(tmp_path: Path) -> None:
    c = start(tmp_path, "supapp:app", "--workers", "2")
    try:
        c.wait_ready()
        wait_for(lambda: len(worker_pids(c)) == 2, what="two workers")
        os.kill(c.proc.pid, signal.SIGTTIN)
        wait_for(lambda: len(worker_pids(c)) == 3, what="a third worker")
        first = worker_pids(c)
        for _ in range(3):  # down to one, and never below
            os.kill(c.proc.pid, signal.SIGTTOU)
            time.sleep(0.2)
        try:
            wait_for(lambda: len(worker_pids(c)) == 1, what="one worker left")
        except AssertionError:
            raise AssertionError(c.output() + str(worker_pids(c))) from None
        time.sleep(0.5)
        (last,) = worker_pids(c)
        assert last in first  # an old worker was kept, none replaced
        assert httpx.get(c.url, timeout=5).json()["pid"] == last
        assert c.stop() == 0
        out = c.output()
        assert "scaling to 3 workers" in out and "scaling to 1 workers" in out
        assert "keeping 1 workers" in out
    finally:
        cleanup(c)


GROW = """
import asyncio, os
from data_bridge.api import App

app = App()
hoard = []

@app.get("/")
def index():
    return {"pid": os.getpid()}

@app.get("/grow")
def grow(mib: int):
    hoard.append(b"x" * (mib << 20))
    return {"pid": os.getpid()}

@app.get("/slow")
async def slow(t: float):
    await asyncio.sleep(t)
    return {"pid": os.getpid()}
"""


def test_max_worker_rss_replaces_the_worker_without_dropping_requests(tmp_path: Path) -> None:
    (tmp_path / "growapp.py").write_text(GROW)
    c = Cli(tmp_path, "growapp:app", "--max-worker-rss", "150")
    try:
        old = c.wait_ready().json()["pid"]
        assert "with 1 workers" in c.output()
        # A request in flight on the big worker is answered while it is replaced. Its
        # connection is made before the worker grows, so that it waits in the accept queue
        # of the only worker there is (made after, the replacement could take it).
        s = socket.create_connection(("127.0.0.1", c.port), timeout=15)
        s.sendall(b"GET /slow?t=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert httpx.get(c.url + "/grow?mib=200", timeout=10).json()["pid"] == old

        def replaced() -> bool:
            return httpx.get(c.url, timeout=5).json()["pid"] != old

        wait_for(replaced, 10, "a replacement worker")
        r = Reader(s).read_response()
        s.close()
        assert r.status == 200 and r.json()["pid"] == old
        wait_for(lambda: old not in worker_pids(c), 10, "the old worker to leave")
        assert c.stop() == 0
        assert f"worker {old} uses" in c.output()
    finally:
        cleanup(c)


ROUTES_APP = """
import os, time
from data_bridge.api import App

app = App()

@app.get("/items/{item_id}")
def item(item_id: int):
    return {"id": item_id}

@app.post("/items")
def create(body: dict):
    return body

@app.get("/block")
def block(t: float):
    time.sleep(t)  # blocks the loop: a lag
    return {}
"""


def test_metrics_routes_latency_bytes_and_loop_lag(tmp_path: Path) -> None:
    (tmp_path / "routesapp.py").write_text(ROUTES_APP)
    c = Cli(tmp_path, "routesapp:app", "--workers", "2", "--metrics", "/metrics")
    try:
        c.wait_ready("/items/0")
        sent = 0
        with httpx.Client(base_url=c.url, timeout=5) as client:
            for i in range(1, 11):
                assert client.get(f"/items/{i}").status_code == 200
            for _ in range(4):
                assert client.get("/items/x").status_code == 422
            for _ in range(3):
                r = client.post(
                    "/items", content=b'{"a": 1}', headers={"content-type": "application/json"}
                )
                assert r.status_code == 200
                sent += len(r.content)
            assert client.delete("/nope").status_code == 404
            assert client.get("/block?t=1.6").status_code == 200
        m = scrape(c)
        route = 'data_bridge_route_responses_total{{method="{}",route="{}",status="{}"}}'
        assert m[route.format("GET", "/items/{item_id}", "2xx")] == 11  # wait_ready's too
        assert m[route.format("GET", "/items/{item_id}", "4xx")] == 4
        assert m[route.format("POST", "/items", "2xx")] == 3
        assert m[route.format("DELETE", "", "4xx")] == 1
        assert m[route.format("GET", "/block", "2xx")] == 1
        total = m["data_bridge_requests_total"]
        assert total == 20
        assert m['data_bridge_request_duration_seconds_bucket{le="+Inf"}'] == total
        assert m["data_bridge_request_duration_seconds_count"] == total
        assert m['data_bridge_request_duration_seconds_bucket{le="1"}'] == total - 1
        assert m["data_bridge_request_duration_seconds_sum"] >= 1.6
        assert m["data_bridge_received_bytes_total"] > 20 * 30
        assert m["data_bridge_sent_bytes_total"] > 20 * 100 + sent
        # The blocked worker's once-a-second timer ran late by most of the block.
        assert m["data_bridge_loop_lag_seconds_total"] >= 0.5
        assert c.stop() == 0
    finally:
        cleanup(c)


SLOW_START = """
import asyncio, os
from data_bridge.api import App

app = App()

@app.on_event("startup")
async def start():
    with open(f"started-{os.getpid()}", "w"):
        pass
    await asyncio.sleep(1.5)

@app.on_event("shutdown")
def stop():
    with open(f"stopped-{os.getpid()}", "w"):
        pass

@app.get("/")
def index():
    return {"pid": os.getpid()}
"""


def test_sigterm_while_a_worker_starts_drains_it(tmp_path: Path) -> None:
    """A SIGTERM that reaches a worker before it watches signals (right after the fork, in
    its lifespan startup) is kept until it does: the worker finishes starting, drains and
    runs its shutdown, instead of being killed by the signal's default action."""
    (tmp_path / "slowapp.py").write_text(SLOW_START)
    c = Cli(tmp_path, "slowapp:app", "--workers", "2")
    try:
        wait_for(lambda: len(list(tmp_path.glob("started-*"))) == 2, 15, "two starting workers")
        c.proc.send_signal(signal.SIGTERM)
        assert c.proc.wait(timeout=15) == 0, c.output()
        out = c.output()
        assert "killed by SIGTERM" not in out, out
        started = {p.name.split("-")[1] for p in tmp_path.glob("started-*")}
        stopped = {p.name.split("-")[1] for p in tmp_path.glob("stopped-*")}
        assert started == stopped and len(started) == 2, out
        for pid in started:
            assert f"worker {pid} exited with status 0" in out, out
    finally:
        cleanup(c)
