"""Connection memory: what an idle keep-alive connection costs each server (issue 20).

For each server (data-bridge, FastAPI + Uvicorn, nginx; started as bench/run.py starts
them, with a keep-alive timeout long enough for the run), one process on 127.0.0.1 opens
N connections (default 10,000) with plain non-blocking sockets and a selector, sends one
`GET /json` on each, reads each response, and keeps every connection open and idle. The
server's RSS (VmRSS of the process and its descendants, from /proc/PID/status) is read
before the first round, with the N connections idle, and after the client closed them.
That is repeated for several rounds (default 5): growth from round to round shows memory
that the server keeps and does not reuse. KiB per connection = (RSS with the connections
idle - RSS before the first round) / N.

Goals (issue 20): at most 2 KiB per idle connection in every round, and RSS after the
connections close within 10% of RSS before them.

The benchmark raises its own file-descriptor limit (RLIMIT_NOFILE, inherited by the
servers it starts) and lowers N, saying so, when the machine's hard limit is too small.

Results are printed and written to bench/RESULTS.md between `<!-- connmem:start -->`
and `<!-- connmem:end -->`.

Usage: python bench/conn_memory.py [--connections 10000] [--rounds 5]
       [--servers databridge,fastapi,nginx] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import resource
import selectors
import signal
import socket
import string
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from run import (
    APPS_DIR,
    NGINX_TEMPLATE,
    RESULTS_PATH,
    SERVER_ALIASES,
    SERVER_NAMES,
    Server,
    _env_with_path,
    app_python,
    databridge_env,
    free_port,
    machine_line,
    nginx_binary,
    process_tree,
    running,
    tool_versions,
    wait_ready,
)

MARK_START = "<!-- connmem:start -->"
MARK_END = "<!-- connmem:end -->"
KEEPALIVE_S = 600  # every server keeps idle connections this long (the run is shorter)
REQUEST = b"GET /json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
CONNECT_BATCH = 256  # connections being set up at once (the listen backlogs are >= 511)
ROUND_TIMEOUT_S = 120.0
SETTLE_S = 2.5  # after the last response / the last close, before RSS is read
FD_SPARE = 64  # descriptors the client needs besides its connections
GOAL_KIB = 2.0
GOAL_AFTER_PERCENT = 10.0


@dataclass
class Round:
    idle_kib: int  # RSS with the connections idle
    closed_kib: int  # RSS after they closed


@dataclass
class Outcome:
    key: str
    before_kib: int = 0
    rounds: list[Round] = field(default_factory=list)
    skipped: str | None = None

    def per_conn(self, r: Round, n: int) -> float:
        return (r.idle_kib - self.before_kib) / n

    def after_percent(self) -> float:
        return 100.0 * (self.rounds[-1].closed_kib - self.before_kib) / self.before_kib


# --------------------------------------------------------------------------------------
# Servers


def start_server(key: str, tmp: Path, python: str, conns: int) -> Server:
    port = free_port()
    log = tmp / f"{key}.log"
    if key == "databridge":
        env, reason = databridge_env(python)
        if env is None:
            raise RuntimeError(f"data_bridge does not import: {reason}")
        code = (
            "import sys; from databridge_app import app; "
            "app.run(host='127.0.0.1', port=int(sys.argv[1]), "
            f"keepalive_timeout={KEEPALIVE_S}, backlog=4096)"
        )
        return Server(key, [python, "-c", code, str(port)], port, log, env=env, cwd=APPS_DIR)
    if key == "fastapi":
        argv = [
            python,
            "-m",
            "uvicorn",
            "fastapi_app:app",
            "--app-dir",
            str(APPS_DIR),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-keep-alive",
            str(KEEPALIVE_S),
            "--backlog",
            "4096",
        ]
        return Server(key, argv, port, log, env=_env_with_path(None), cwd=APPS_DIR)
    if key == "nginx":
        prefix = tmp / "nginx"
        prefix.mkdir(exist_ok=True)
        conf = prefix / "nginx.conf"
        text = string.Template(NGINX_TEMPLATE.read_text()).substitute(
            prefix=str(prefix),
            port=port,
            worker_connections=conns + FD_SPARE,
            static=str(prefix),  # the /static/ location is not used here
        )
        # The template's 75 s keep-alive would end connections of a slow round.
        conf.write_text(
            text.replace("keepalive_timeout 75s;", f"keepalive_timeout {KEEPALIVE_S}s;")
        )
        argv = [nginx_binary(), "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
        return Server(key, argv, port, log, cwd=prefix)
    raise ValueError(key)


def rss_kib(root: int) -> int:
    """VmRSS of the process and its descendants (nginx: master and worker), in KiB."""
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


# --------------------------------------------------------------------------------------
# Client


class Conn:
    __slots__ = ("sock", "buf", "sent", "done")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.sent = False
        self.done = False


def _response_complete(buf: bytes) -> bool:
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if not buf.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected response {buf[:80]!r}")
    return len(buf) >= end + 4 + length


def open_idle_connections(port: int, n: int) -> list[socket.socket]:
    """n connections, each of which sent one request and read its whole response; they
    stay open (and idle) until the caller closes them."""
    sel = selectors.DefaultSelector()
    done: list[socket.socket] = []
    active = 0
    started = 0
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    try:
        while len(done) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(done)} of {n} connections answered in time")
            while started < n and active < CONNECT_BATCH:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex(("127.0.0.1", port))
                if err not in (0, errno.EINPROGRESS):
                    s.close()
                    raise RuntimeError(f"connect: {errno.errorcode.get(err, err)}")
                sel.register(s, selectors.EVENT_WRITE, Conn(s))
                started += 1
                active += 1
            for key, _events in sel.select(timeout=1.0):
                c: Conn = key.data
                if not c.sent:
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise RuntimeError(f"connect: {errno.errorcode.get(err, err)}")
                    c.sock.sendall(REQUEST)  # 40 bytes into an empty socket buffer
                    c.sent = True
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                data = c.sock.recv(65536)
                if not data:
                    raise RuntimeError("the server closed a connection before answering")
                c.buf += data
                if _response_complete(c.buf):
                    sel.unregister(c.sock)
                    c.buf = b""
                    done.append(c.sock)
                    active -= 1
    except BaseException:
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        for s in done:
            s.close()
        raise
    finally:
        sel.close()
    return done


# --------------------------------------------------------------------------------------
# Measurement


def measure(key: str, tmp: Path, python: str, n: int, rounds: int) -> Outcome:
    out = Outcome(key)
    server = start_server(key, tmp, python, n)
    with running(server):
        wait_ready(server)
        # A warm-up round of a few connections, so that what the first requests set up
        # once (imports, caches, the loop's fd table) is in the baseline.
        for s in open_idle_connections(server.port, 200):
            s.close()
        time.sleep(SETTLE_S)
        out.before_kib = rss_kib(server.proc.pid)
        print(f"  {SERVER_NAMES[key]:<11} RSS before: {out.before_kib / 1024:7.1f} MiB", flush=True)
        for i in range(rounds):
            socks = open_idle_connections(server.port, n)
            time.sleep(SETTLE_S)
            idle = rss_kib(server.proc.pid)
            for s in socks:
                s.close()
            time.sleep(SETTLE_S)
            closed = rss_kib(server.proc.pid)
            if server.proc.poll() is not None:
                raise RuntimeError(f"{key} exited:\n{server.log_tail()}")
            r = Round(idle, closed)
            out.rounds.append(r)
            print(
                f"  {SERVER_NAMES[key]:<11} round {i + 1}: {idle / 1024:7.1f} MiB with {n} idle"
                f" ({out.per_conn(r, n):5.2f} KiB/conn), {closed / 1024:7.1f} MiB after close",
                flush=True,
            )
    return out


def raise_fd_limit(n: int) -> tuple[int, str | None]:
    """Raises RLIMIT_NOFILE for this process and the servers it starts; returns the number
    of connections that fit and a note when the hard limit forced fewer than asked."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + FD_SPARE
    if hard != resource.RLIM_INFINITY and hard < want:
        fit = max(1, hard - FD_SPARE)
        note = (
            f"the machine caps open files at {hard} (hard RLIMIT_NOFILE): "
            f"{fit} connections instead of {n}"
        )
        want, n = hard, fit
    else:
        note = None
    if soft == resource.RLIM_INFINITY or soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    print(f"RLIMIT_NOFILE raised to {want} (hard limit {hard})", flush=True)
    return n, note


# --------------------------------------------------------------------------------------
# Report


def render(
    command: str, n: int, rounds: int, outcomes: list[Outcome], python: str, note: str | None
) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out: list[str] = []
    w = out.append
    w("## Connection memory (idle keep-alive connections)")
    w("")
    w(f"- Command: `{command}`")
    w(f"- Date: {now}")
    w(f"- Machine: {machine_line()}")
    w(f"- Software: {tool_versions(python)}")
    w(
        f"- Method: {n} connections on 127.0.0.1, each sends one `GET /json` and reads the"
        f" response, then all stay open and idle; {rounds} rounds, the client closing every"
        " connection after each. RSS is VmRSS of the server process and its children (nginx:"
        f" master + worker), read {SETTLE_S} s after the last response and after the last close."
        " KiB/conn = (RSS with the connections idle - RSS before the first round) / connections."
        " Every server gets a 600 s keep-alive timeout for the run."
    )
    if note:
        w(f"- Note: {note}")
    w("")
    head = " | ".join(f"round {i + 1}" for i in range(rounds))
    w(f"| server | RSS before | {head} | RSS after close | after vs before |")
    w("| --- | ---: | " + " | ".join("---:" for _ in range(rounds)) + " | ---: | ---: |")
    for oc in outcomes:
        name = SERVER_NAMES[oc.key]
        if oc.skipped or len(oc.rounds) < rounds:
            w(f"| {name} | skipped: {oc.skipped or 'incomplete'} |")
            continue
        cells = " | ".join(f"{oc.per_conn(r, n):.2f} KiB" for r in oc.rounds)
        w(
            f"| {name} | {oc.before_kib / 1024:.1f} MiB | {cells} |"
            f" {oc.rounds[-1].closed_kib / 1024:.1f} MiB | {oc.after_percent():+.1f}% |"
        )
    w("")
    db = next((oc for oc in outcomes if oc.key == "databridge" and not oc.skipped), None)
    if db is not None and len(db.rounds) == rounds:
        worst = max(db.per_conn(r, n) for r in db.rounds)
        after = db.after_percent()
        w("| goal (issue 20) | measured | result |")
        w("| --- | --- | --- |")
        w(
            f"| ≤ {GOAL_KIB:.0f} KiB per idle connection in every round | worst {worst:.2f} KiB"
            f" | {'PASS' if worst <= GOAL_KIB else 'MISS'} |"
        )
        w(
            f"| RSS after close within {GOAL_AFTER_PERCENT:.0f}% of RSS before | {after:+.1f}%"
            f" | {'PASS' if abs(after) <= GOAL_AFTER_PERCENT else 'MISS'} |"
        )
    return "\n".join(out)


def write_results(section: str) -> None:
    block = f"{MARK_START}\n{section}\n{MARK_END}"
    text = RESULTS_PATH.read_text() if RESULTS_PATH.exists() else "# Benchmark results\n"
    start, end = text.find(MARK_START), text.find(MARK_END)
    if start != -1 and end > start:
        text = text[:start] + block + text[end + len(MARK_END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = RESULTS_PATH.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(RESULTS_PATH)


def _on_signal(signum: int, _frame: object) -> None:
    # Turn SIGTERM/SIGHUP into an exception so that every `finally` stops its server.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--servers",
        default="databridge,fastapi,nginx",
        help="comma-separated subset of databridge,fastapi,nginx",
    )
    p.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = p.parse_args(argv)
    if args.connections < 1 or args.rounds < 1:
        p.error("--connections and --rounds must be at least 1")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    keys = []
    for name in args.servers.split(","):
        name = SERVER_ALIASES.get(name.strip().lower(), name.strip().lower())
        if name not in SERVER_NAMES:
            p.error(f"unknown server {name!r}; choose from {', '.join(SERVER_NAMES)}")
        if name not in keys:
            keys.append(name)

    n, note = raise_fd_limit(args.connections)
    if note:
        print(f"note: {note}", flush=True)
    python = app_python()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="db-connmem-") as tmpdir:
        for key in keys:
            print(f"{SERVER_NAMES[key]}:", flush=True)
            try:
                outcomes.append(measure(key, Path(tmpdir), python, n, args.rounds))
            except RuntimeError as exc:
                print(f"  skipped: {exc}", flush=True)
                outcomes.append(Outcome(key, skipped=str(exc).splitlines()[0]))
    command = "python bench/conn_memory.py" + ("" if not argv else " " + " ".join(argv))
    section = render(command, n, args.rounds, outcomes, python, note)
    print()
    print(section)
    if not args.no_write:
        write_results(section)
        print(f"\nwritten to {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
