"""Two workers on two cores: data-bridge ``--workers 2`` against ``uvicorn --workers 2``
(uvloop, httptools) and ``granian --workers 2`` serving the FastAPI app, with the same
endpoints as bench/run.py (bench/apps), and the cost of observability on data-bridge
(access log, JSON access log, metrics: the command line's options; bench/run.py gets the
same from BENCH_OBSERVE in bench/apps/databridge_app.py).

    python bench/workers.py [--duration 10] [--warmup 2] [--connections 64]
                            [--servers databridge,uvicorn,granian,databridge+log,...]

Unlike bench/run.py nothing is pinned: the servers' two workers and wrk (two threads)
share the machine's cores, as a two-core deployment would with its clients elsewhere.
Reported per server and endpoint: requests/s, p50/p99 latency, and CPU time of the whole
process tree (supervisor and workers) per request, the fair figure when wrk shares the
cores. The table goes to stdout; bench/RESULTS.md is not touched.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (  # noqa: E402  (bench/run.py, beside this file)
    APPS_DIR,
    Server,
    _env_with_path,
    app_python,
    cpu_seconds,
    databridge_env,
    fmt_latency,
    free_port,
    parse_wrk,
    process_tree,
    running,
    wait_ready,
)

WORKERS = 2
# Endpoints of bench/apps served by both apps.
PATHS = ("/json", "/users/42")
# data-bridge variants: what each turns on (the names of BENCH_OBSERVE).
OBSERVE = {
    "databridge": "",
    "databridge+log": "access-log",
    "databridge+jsonlog": "access-log-json",
    "databridge+metrics": "metrics",
}
DEFAULT_SERVERS = ("databridge", "uvicorn", "granian", *list(OBSERVE)[1:])


def start(key: str, python: str, tmp: Path) -> Server:
    port = free_port()
    log = tmp / f"{key}.log"
    if key in OBSERVE:
        env, reason = databridge_env(python)
        if env is None:
            raise RuntimeError(f"data_bridge does not import: {reason}")
        argv = [python, "-m", "data_bridge", "databridge_app:app", "--workers", str(WORKERS)]
        argv += ["--port", str(port), "--log-level", "info"]
        if OBSERVE[key].startswith("access-log"):
            argv += ["--access-log-format", "json" if "json" in OBSERVE[key] else "uvicorn"]
        else:
            argv.append("--no-access-log")
        if OBSERVE[key] == "metrics":
            argv += ["--metrics", "/metrics"]
        return Server(key, argv, port, log, env=env, cwd=APPS_DIR)
    env = _env_with_path(None)
    if key == "uvicorn":
        argv = [python, "-m", "uvicorn", "fastapi_app:app", "--workers", str(WORKERS)]
        argv += ["--port", str(port), "--loop", "uvloop", "--http", "httptools"]
        argv += ["--no-access-log", "--log-level", "warning"]
        return Server(key, argv, port, log, env=env, cwd=APPS_DIR)
    if key == "granian":
        argv = [python, "-m", "granian", "--interface", "asgi", "--workers", str(WORKERS)]
        argv += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
        argv.append("fastapi_app:app")
        return Server(key, argv, port, log, env=env, cwd=APPS_DIR)
    raise ValueError(f"unknown server {key!r}")


def wrk(binary: str, port: int, path: str, seconds: int, connections: int) -> str:
    import subprocess

    argv = [binary, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    argv.append(f"http://127.0.0.1:{port}{path}")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr}")
    return proc.stdout


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--servers", default=",".join(DEFAULT_SERVERS))
    args = p.parse_args(argv)
    binary = shutil.which("wrk")
    if binary is None:
        print("wrk not found (Debian: apt-get install wrk; `make bench-deps`)", file=sys.stderr)
        return 2
    python = app_python()
    rows = []
    with tempfile.TemporaryDirectory(prefix="db-workers-") as tmpdir:
        tmp = Path(tmpdir)
        for key in args.servers.split(","):
            try:
                server = start(key, python, tmp)
            except RuntimeError as exc:
                rows.append(f"| {key} | skipped: {exc} | | | | |")
                continue
            with running(server):
                try:
                    wait_ready(server)
                    time.sleep(0.5)  # every worker up, not only the first
                except RuntimeError as exc:
                    rows.append(f"| {key} | skipped: {str(exc).splitlines()[0]} | | | | |")
                    continue
                for path in PATHS:
                    wrk(binary, server.port, path, args.warmup, args.connections)
                    tree = process_tree(server.proc.pid)
                    before = cpu_seconds(tree)
                    out = wrk(binary, server.port, path, args.duration, args.connections)
                    tree = sorted(set(tree) | set(process_tree(server.proc.pid)))
                    used = cpu_seconds(tree) - before
                    r = parse_wrk(out)
                    per = used * 1e6 / r.requests if r.requests else float("nan")
                    errors = r.socket_errors + r.bad_status
                    rows.append(
                        f"| {key} | GET {path} | {r.rps:,.0f} | {fmt_latency(r.p50_us)} / "
                        f"{fmt_latency(r.p99_us)} | {per:.1f} | {errors} |"
                    )
    print(f"{WORKERS} workers, wrk -t2 -c{args.connections} -d{args.duration}s, nothing pinned\n")
    print("| server | request | req/s | p50 / p99 | CPU µs/request | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
