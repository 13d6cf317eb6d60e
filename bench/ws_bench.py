"""WebSocket and SSE benchmark (issue 15): data-bridge against FastAPI on uvicorn (its
websockets implementation) and FastAPI on granian (--interface asgi), in one run.

Scenarios, each against the same app code (bench/apps/ws_databridge_app.py and
ws_fastapi_app.py differ only in their imports):

- echo: 64-byte text messages over 100 connections, one message in flight per connection
  (round trips), and 16 in flight (the client writes many frames per write);
- broadcast: 1,000 connections, one sends "go", the endpoint sends a 64-byte message to
  every connection; a round ends when all 1,000 got it;
- SSE: 100 clients of an endpoint yielding JSON events as fast as it can;
- idle memory: the server's RSS (process tree, /proc/PID/status) with 1,000 idle
  WebSockets open, minus its RSS before, per connection (socket buffers are kernel memory,
  not in RSS); idlez: the same with permessage-deflate agreed (client_max_window_bits
  offered) and one compressed 300-byte message echoed on each connection first, so that
  the server made its zlib states, measured after 3 s idle instead of 1.

Method (bench/run.py's): each server pinned to core 0 and the load generator to core 1
with taskset. The load generator is bench/wsload.c (`make bench-ws` builds it into
build/wsload): one C thread on epoll, frames masked with a fixed key and pipelined, so
that it is not what limits the servers (its CPU time is reported). The server's CPU time
(utime+stime of its process tree from /proc/PID/stat) is read when the load generator
starts measuring (after a 0.5 s warm-up) and when it ends, and divided by the messages
(or events, or deliveries) counted in that window.

Prints a markdown section with the exact command (the lead pastes it into
bench/RESULTS.md). Usage:

    python bench/ws_bench.py [--duration 10] [--servers databridge,uvicorn,granian]
                             [--scenarios idle,echo,echo16,broadcast,sse]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from run import (
    APPS_DIR,
    REPO_DIR,
    Server,
    _env_with_path,
    app_python,
    cpu_seconds,
    databridge_env,
    free_port,
    machine_line,
    process_tree,
    running,
    wait_ready,
)

WSLOAD = REPO_DIR / "build" / "wsload"
SERVER_CPU, CLIENT_CPU = 0, 1
NAMES = {
    "databridge": "data-bridge",
    "uvicorn": "FastAPI + uvicorn (websockets)",
    "granian": "FastAPI + granian (ASGI)",
}
GOAL_IDLE_KIB = 4.0
SCENARIOS = ("idle", "idlez", "echo", "echo16", "broadcast", "sse")


@dataclass
class Result:
    rate: float | None = None  # messages (events, broadcasts) per second
    cpu_us: float | None = None  # server CPU per message (event, delivery)
    client_cpu_percent: float | None = None
    extra: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def start(key: str, tmp: Path, python: str, db_env: dict[str, str] | None) -> Server:
    port = free_port()
    pin = ["taskset", "-c", str(SERVER_CPU)]
    log = tmp / f"{key}.log"
    if key == "databridge":
        argv = [*pin, python, str(APPS_DIR / "ws_databridge_app.py"), str(port)]
        return Server(key, argv, port, log, env=db_env, cwd=APPS_DIR)
    env = _env_with_path(None)
    if key == "uvicorn":
        argv = [
            *pin,
            python,
            "-m",
            "uvicorn",
            "ws_fastapi_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--ws",
            "websockets",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        return Server(key, argv, port, log, env=env, cwd=APPS_DIR)
    if key == "granian":
        granian = str(Path(python).parent / "granian")
        argv = [
            *pin,
            granian,
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
            "ws_fastapi_app:app",
        ]
        return Server(key, argv, port, log, env=env, cwd=APPS_DIR)
    raise ValueError(key)


def rss_kib(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def load(server: Server, *args: str, timeout: float = 120) -> tuple[dict[str, float], float, float]:
    """Runs wsload on the client core: its JSON line, the server's CPU seconds between its
    "go" and its end, and the load generator's own CPU seconds."""
    argv = ["taskset", "-c", str(CLIENT_CPU), str(WSLOAD), args[0], str(server.port), *args[1:]]
    t_start = os.times()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        if line.strip() != "go":
            proc.kill()
            raise RuntimeError(f"wsload: {line.strip()} {proc.communicate(timeout=10)[1].strip()}")
        pids = process_tree(server.proc.pid)
        cpu0 = cpu_seconds(pids)
        out, err = proc.communicate(timeout=timeout)
        cpu1 = cpu_seconds(pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"wsload exited {proc.returncode}: {err.strip()}")
    t_end = os.times()
    client = (t_end.children_user - t_start.children_user) + (
        t_end.children_system - t_start.children_system
    )
    return json.loads(out.strip().splitlines()[-1]), cpu1 - cpu0, client


def echo(server: Server, conns: int, seconds: float, depth: int) -> Result:
    data, cpu, client = load(server, "echo", "/echo", str(conns), str(seconds), "64", str(depth))
    n, t = data["messages"], data["seconds"]
    return Result(n / t, cpu / n * 1e6 if n else None, client / (t + 0.5) * 100)


def broadcast(server: Server, conns: int, rounds: int) -> Result:
    data, cpu, client = load(server, "bcast", "/broadcast", str(conns), str(rounds))
    t = data["seconds"]
    delivered = rounds * conns
    return Result(
        rounds / t,
        cpu / delivered * 1e6,
        client / t * 100,
        {"ms_per_broadcast": t / rounds * 1e3, "deliveries_per_s": delivered / t},
    )


def sse(server: Server, conns: int, seconds: float) -> Result:
    data, cpu, client = load(server, "sse", "/sse", str(conns), str(seconds))
    n, t = data["messages"], data["seconds"]
    return Result(n / t, cpu / n * 1e6 if n else None, client / (t + 0.5) * 100)


def idle_memory(server: Server, conns: int, mode: str = "idle", settle: float = 1.0) -> Result:
    """The marginal RSS of an idle WebSocket: a first batch of connections is opened (it
    pays the one-time costs: imports, caches, free lists, pools), then a second batch of
    the same size beside it; (RSS with both - RSS with the first) / its size, each read
    `settle` seconds after its batch is open (mode idlez: with permessage-deflate)."""
    argv = ["taskset", "-c", str(CLIENT_CPU), str(WSLOAD), mode, str(server.port), "/echo"]
    procs: list[subprocess.Popen[str]] = []
    rss = [rss_kib(server.proc.pid)]
    try:
        for _ in range(2):
            proc = subprocess.Popen(
                [*argv, str(conns)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            procs.append(proc)
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "go":
                raise RuntimeError(f"wsload {mode} failed")
            time.sleep(settle)
            rss.append(rss_kib(server.proc.pid))
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return Result(
        extra={"kib_per_conn": (rss[2] - rss[1]) / conns, "first": (rss[1] - rss[0]) / conns}
    )


def run_server(
    key: str, args: argparse.Namespace, tmp: Path, python: str, db_env: dict[str, str] | None
) -> dict[str, Result]:
    out: dict[str, Result] = {}
    server = start(key, tmp, python, db_env)
    with running(server):
        wait_ready(server)
        steps = [
            ("idle", lambda: idle_memory(server, args.idle_connections)),
            ("idlez", lambda: idle_memory(server, args.idle_connections, "idlez", 3.0)),
            ("echo", lambda: echo(server, args.connections, args.duration, 1)),
            ("echo16", lambda: echo(server, args.connections, args.duration, 16)),
            ("broadcast", lambda: broadcast(server, args.bcast_connections, args.bcast_rounds)),
            ("sse", lambda: sse(server, args.connections, args.duration)),
        ]
        for name, step in steps:
            if name not in args.scenarios:
                continue
            try:
                out[name] = step()
            except Exception as exc:  # noqa: BLE001 - reported in the table
                out[name] = Result(error=f"{type(exc).__name__}: {exc}")
                if server.proc.poll() is not None:
                    print(server.log_tail(), file=sys.stderr)
                    break
            time.sleep(0.5)
    return out


def fmt(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def ratio(a: float | None, b: float | None, lower_is_better: bool = False) -> str:
    if a is None or b is None or a == 0 or b == 0:
        return "—"
    return f"{(b / a if lower_is_better else a / b):.1f}x"


def render(args: argparse.Namespace, command: str, results: dict[str, dict[str, Result]]) -> str:
    keys = [k for k in args.servers if k in results]
    lines = [
        "## WebSockets and SSE",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine_line()}; servers on core {SERVER_CPU}, bench/wsload.c on core "
        f"{CLIENT_CPU}; {args.duration:g} s per measured run after a 0.5 s warm-up.",
        f"- Echo: 64-byte text messages over {args.connections} connections, 1 and 16 in "
        f"flight per connection. Broadcast: {args.bcast_rounds} rounds of one 64-byte message "
        f"to {args.bcast_connections} connections. SSE: {args.connections} clients, events "
        f"of ~64 bytes of JSON. Idle: RSS per WebSocket "
        f"of a second batch of {args.idle_connections} idle connections opened beside a first "
        "(the marginal cost; the first batch pays the one-time costs), 1 s after it opened; "
        "with permessage-deflate: after one compressed message echoed on each, 3 s after.",
        "- CPU: the server's utime+stime per message (echo), per delivered message "
        "(broadcast), per event (SSE), in microseconds. Client %: the load generator's CPU "
        "(under 100 means it was not the limit).",
        "",
        "| scenario | " + " | ".join(NAMES[k] for k in keys) + " | vs uvicorn | vs granian |",
        "| --- | " + " | ".join("---:" for _ in keys) + " | ---: | ---: |",
    ]

    def row(label: str, values: list[str], vs_u: str = "", vs_g: str = "") -> None:
        lines.append(f"| {label} | " + " | ".join(values) + f" | {vs_u} | {vs_g} |")

    def get(k: str, name: str) -> Result:
        return results[k].get(name) or Result(error="not run")

    def versus(name: str, attr: str, lower: bool = False) -> tuple[str, str]:
        db = getattr(get("databridge", name), attr) if "databridge" in keys else None
        u = getattr(get("uvicorn", name), attr) if "uvicorn" in keys else None
        g = getattr(get("granian", name), attr) if "granian" in keys else None
        return ratio(db, u, lower), ratio(db, g, lower)

    for name, label in (
        ("echo", "echo, messages/s"),
        ("echo16", "echo, 16 in flight, messages/s"),
        ("sse", "SSE, events/s"),
    ):
        if name not in args.scenarios:
            continue
        row(
            label,
            [fmt(get(k, name).rate) if not get(k, name).error else "error" for k in keys],
            *versus(name, "rate"),
        )
        row(
            f"… server CPU µs per {'event' if name == 'sse' else 'message'}",
            [fmt(get(k, name).cpu_us, 2) for k in keys],
            *versus(name, "cpu_us", True),
        )
        row("… load generator CPU %", [fmt(get(k, name).client_cpu_percent) for k in keys])
    if "broadcast" in args.scenarios:
        ms = [get(k, "broadcast").extra.get("ms_per_broadcast") for k in keys]
        row(
            "broadcast to 1,000, ms per round",
            [fmt(x, 2) for x in ms],
            ratio(
                ms[keys.index("databridge")] if "databridge" in keys else None,
                ms[keys.index("uvicorn")] if "uvicorn" in keys else None,
                True,
            ),
            ratio(
                ms[keys.index("databridge")] if "databridge" in keys else None,
                ms[keys.index("granian")] if "granian" in keys else None,
                True,
            ),
        )
        row(
            "… server CPU µs per delivered message",
            [fmt(get(k, "broadcast").cpu_us, 2) for k in keys],
            *versus("broadcast", "cpu_us", True),
        )
    for name, label in (
        ("idle", "idle WebSocket, KiB of RSS per connection"),
        ("idlez", "… with permessage-deflate (after one message), KiB"),
    ):
        if name in args.scenarios:
            kib = [get(k, name).extra.get("kib_per_conn") for k in keys]
            row(label, [fmt(x, 2) for x in kib])
    errors = [f"{NAMES[k]} {n}: {r.error}" for k in keys for n, r in results[k].items() if r.error]
    lines.append("")
    if "databridge" in keys:
        lines.append("Goals (issue 15): " + "; ".join(goals(results)) + ".")
    if errors:
        lines += ["", "Errors: " + "; ".join(errors)]
    return "\n".join(lines) + "\n"


def met(ok: bool) -> str:
    return "met" if ok else "not met"


def goals(results: dict[str, dict[str, Result]]) -> list[str]:
    """Issue 15's goals: at least 4x uvicorn's echo messages/s and at least granian's;
    an idle WebSocket under 4 KiB."""
    out = []
    e = results["databridge"].get("echo")
    u = results.get("uvicorn", {}).get("echo")
    g = results.get("granian", {}).get("echo")
    if e and e.rate and u and u.rate:
        x = e.rate / u.rate
        out.append(f"echo at least 4x uvicorn's messages/s: {met(x >= 4)} ({x:.1f}x)")
    if e and e.rate and g and g.rate:
        x = e.rate / g.rate
        out.append(f"echo at least granian's: {met(x >= 1)} ({x:.1f}x)")
    idle = results["databridge"].get("idle")
    if idle and "kib_per_conn" in idle.extra:
        k = idle.extra["kib_per_conn"]
        out.append(
            f"idle WebSocket under {GOAL_IDLE_KIB:g} KiB: {met(k < GOAL_IDLE_KIB)} ({k:.2f})"
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--servers", default="databridge,uvicorn,granian")
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--bcast-connections", type=int, default=1000)
    p.add_argument("--bcast-rounds", type=int, default=200)
    p.add_argument("--idle-connections", type=int, default=1000)
    p.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="which to run, comma-separated (idle alone: --scenarios idle)",
    )
    args = p.parse_args()
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(args.servers) - set(NAMES)
    if unknown:
        p.error(f"unknown servers: {', '.join(sorted(unknown))}")
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if not WSLOAD.exists():
        sys.exit(f"{WSLOAD} is missing: `make bench-ws` builds it (or run `make build/wsload`)")
    # Both ends hold every connection: raise the file-descriptor limit (inherited).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * max(args.bcast_connections, 2 * args.idle_connections) + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    python = app_python()
    db_env, why = databridge_env(python)
    results: dict[str, dict[str, Result]] = {}
    command = "python bench/ws_bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as tmp:
        for key in args.servers:
            if key == "databridge" and db_env is None:
                print(f"data-bridge skipped: {why}", file=sys.stderr)
                continue
            print(f"# {NAMES[key]} ...", file=sys.stderr, flush=True)
            results[key] = run_server(key, args, Path(tmp), python, db_env)
    print(render(args, command.strip(), results))


if __name__ == "__main__":
    main()
