"""HTTP benchmark: data-bridge against FastAPI + Uvicorn, Litestar (msgspec Structs for the
typed bodies) + Uvicorn and nginx, one after another.

Method (the design's "Benchmark method", used unchanged): each server is pinned to core 0
and wrk to core 1 (`taskset`), wrk runs 1 thread and 64 connections, first a warm-up and
then the measured run. Around the measured run the server's CPU time (utime + stime from
/proc/PID/stat of the server process and every descendant, e.g. nginx's worker) is read
and divided by the number of requests wrk completed. Requests/s, p50 and p99 come from
`wrk --latency`. The pipelined scenarios use bench/pipeline.lua (16 requests per write).

Results are printed and written to bench/RESULTS.md between `<!-- http:start -->` and
`<!-- http:end -->`; the rest of that file belongs to other benchmarks.

With --tls every server speaks HTTPS with the same certificate (a P-256 key made by the
openssl command into the temporary directory; data-bridge and uvicorn through their
--ssl-certfile/--ssl-keyfile options) and wrk connects over TLS, keeping its connections
alive; nginx is left out. Those results go between `<!-- https:start -->` and
`<!-- https:end -->`. E.g. the TLS keep-alive JSON comparison:
    python bench/run.py --tls --servers databridge,fastapi --scenarios json

Usage: python bench/run.py [--duration 10] [--quick] [--tls]
       [--servers databridge,fastapi,litestar,nginx]

The ASGI comparison (issue 14): the unmodified FastAPI app through ASGI and the raw ASGI
hello-world (bench/apps/asgi_hello.py), each on data-bridge, Uvicorn and Granian:
    python bench/run.py --servers fastapi-asgi,fastapi,fastapi-granian,asgi-databridge,\
asgi-uvicorn,asgi-granian --scenarios json,user,items,hello

Every server is started in its own process group and killed on exit, whatever happens.
Everything listens on 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gzip
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
APPS_DIR = BENCH_DIR / "apps"
RESULTS_PATH = BENCH_DIR / "RESULTS.md"
PIPELINE_LUA = BENCH_DIR / "pipeline.lua"
NGINX_TEMPLATE = BENCH_DIR / "nginx.conf.template"
MARK_START = "<!-- http:start -->"
MARK_END = "<!-- http:end -->"
TLS_MARK_START = "<!-- https:start -->"
TLS_MARK_END = "<!-- https:end -->"

ITEM_BODY = '{"name":"widget","price":9.99,"tags":["a","b"]}'
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT_S = 30.0
BUSY_WARN_PERCENT = 15.0  # other load on the server core above which the report warns

SERVER_NAMES = {
    "databridge": "data-bridge",
    "fastapi": "FastAPI",
    "litestar": "Litestar",
    "nginx": "nginx",
    "databridge-gzip": "data-bridge+GZip",
    "fastapi-gzip": "FastAPI+GZip",
    "databridge-http": "data-bridge+http mw",
    "fastapi-http": "FastAPI+http mw",
    "fastapi-native": "FastAPI app on data-bridge",
    "databridge-log": "data-bridge+access log",
    "databridge-jsonlog": "data-bridge+JSON access log",
    "databridge-metrics": "data-bridge+metrics",
    "fastapi-asgi": "FastAPI app on data-bridge (ASGI)",
    "fastapi-granian": "FastAPI app on Granian",
    "asgi-databridge": "raw ASGI on data-bridge",
    "asgi-uvicorn": "raw ASGI on Uvicorn",
    "asgi-granian": "raw ASGI on Granian",
}
# The middleware variants (issue 14): the same apps with BENCH_MIDDLEWARE set.
MIDDLEWARE_SERVERS = {
    "databridge-gzip": ("databridge", "gzip"),
    "fastapi-gzip": ("fastapi", "gzip"),
    "databridge-http": ("databridge", "http"),
    "fastapi-http": ("fastapi", "http"),
}
# The uvicorn-served peers: each an app module in bench/apps, what it needs to import.
UVICORN_APPS = {
    "fastapi": ("fastapi_app:app", "import fastapi, uvicorn, uvloop, httptools, orjson"),
    "litestar": ("litestar_app:app", "import litestar, msgspec, uvicorn, uvloop, httptools"),
    "asgi-uvicorn": ("asgi_hello:app", "import uvicorn, uvloop, httptools"),
}
# The cost of observability (issue 16): data-bridge's app with BENCH_OBSERVE set, the
# access log written to the server's log file; compare CPU/request with "databridge".
OBSERVE_SERVERS = {
    "databridge-log": "access-log",
    "databridge-jsonlog": "access-log-json",
    "databridge-metrics": "metrics",
}
# The ASGI comparison (issue 14 (a) and (b)): the unmodified FastAPI app served through
# ASGI by data-bridge (--no-native) and by Granian (uvicorn's is "fastapi"), on the JSON,
# path-parameter and POST scenarios; the raw ASGI hello-world (bench/apps/asgi_hello.py) on
# the three servers, on its one scenario. Each runs only those.
ASGI_FASTAPI_SCENARIOS = frozenset({"json", "user", "items"})
RAW_ASGI_SERVERS = frozenset({"asgi-databridge", "asgi-uvicorn", "asgi-granian"})
SERVER_SCENARIOS = {
    # The observability variants only where their cost is measured.
    **{key: frozenset({"plaintext", "json"}) for key in OBSERVE_SERVERS},
    "fastapi-asgi": ASGI_FASTAPI_SCENARIOS,
    "fastapi-granian": ASGI_FASTAPI_SCENARIOS,
    **{key: frozenset({"hello"}) for key in RAW_ASGI_SERVERS},
}
# Servers run by data-bridge's command line (they need data_bridge importable), and what
# the other Python servers need to import.
DATABRIDGE_SERVERS = frozenset(
    {"databridge", "fastapi-native", "fastapi-asgi", "asgi-databridge", *OBSERVE_SERVERS}
)
PREREQS = {
    "fastapi-native": "import fastapi, orjson",
    "fastapi-asgi": "import fastapi, orjson",
    "fastapi-granian": "import fastapi, orjson, granian, uvloop",
    "asgi-granian": "import granian, uvloop",
}
SERVER_ALIASES = {"data-bridge": "databridge", "data_bridge": "databridge", "db": "databridge"}


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    method: str
    path: str
    body: str | None = None
    depth: int = 1  # requests per write; > 1 means pipelined
    expect_status: int = 200
    expect_type: str = "application/json"
    expect_body: object = None  # JSON value, str for text/plain, bytes compared as they are
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request
    # The path whose ETag, asked of each server before its run, is sent as If-None-Match
    # (every server computes its own validator: nginx's differs from Starlette's).
    etag_of: str | None = None
    typed: bool = False  # a FastAPI feature (models, Depends, ...): nginx has no equivalent
    # Run only on these servers (None: on every server except the middleware variants).
    only: frozenset[str] | None = None
    issue: int = 0  # the issue whose targets it measures (0: issues 2 and 12)

    @property
    def pipelined(self) -> bool:
        return self.depth > 1


def build_scenarios(depth: int, files: BenchFiles | None = None) -> list[Scenario]:
    json_body = {
        "message": "Hello, World!",
        "status": "success",
        "timestamp": 1234567890,
        "data": {"key": "value"},
    }
    user_body = {"id": 42, "name": "User 42", "email": "user42@example.com", "active": True}
    gets = [
        Scenario(
            "plaintext",
            "GET /plaintext",
            "GET",
            "/plaintext",
            expect_type="text/plain",
            expect_body="Hello, World!",
        ),
        Scenario("json", "GET /json", "GET", "/json", expect_body=json_body),
        Scenario("user", "GET /users/42", "GET", "/users/42", expect_body=user_body),
    ]
    post = Scenario(
        "items",
        "POST /items",
        "POST",
        "/items",
        body=ITEM_BODY,
        expect_status=201,
        expect_body=json.loads(ITEM_BODY),
    )
    typed = build_typed_scenarios()
    json_1k = {"items": [{"id": i, "name": f"item {i}", "price": i * 1.5} for i in range(24)]}
    middleware = [
        Scenario(
            "json1k",
            "GET /json1k (1 KiB, gzip accepted)",
            "GET",
            "/json1k",
            expect_body=json_1k,
            headers=(("Accept-Encoding", "gzip"),),
            typed=True,
            only=frozenset({"databridge", "fastapi", *MIDDLEWARE_SERVERS}),
        )
    ]
    piped = [
        Scenario(
            s.key + "-pipelined",
            f"{s.title} (pipelined {depth})",
            s.method,
            s.path,
            depth=depth,
            expect_type=s.expect_type,
            expect_body=s.expect_body,
        )
        for s in gets
    ]
    issue13 = build_file_scenarios(files) if files is not None else []
    hello = Scenario(
        "hello",
        "GET / (raw ASGI hello-world)",
        "GET",
        "/",
        expect_type="text/plain",
        expect_body="Hello, World!",
        only=RAW_ASGI_SERVERS,
        issue=14,
    )
    return [*gets, post, *piped, *typed, *middleware, *issue13, hello]


@dataclass(frozen=True)
class BenchFiles:
    """What the issue 13 scenarios serve and send, made once per run in the temporary
    directory: static files (the same bytes and mtimes for every server) and the body of
    the multipart upload."""

    static_dir: Path
    small: bytes  # static/64k.bin
    large: bytes  # static/10m.bin
    upload_path: Path
    upload_size: int


UPLOAD_BOUNDARY = "----data-bridge-bench-boundary"


def make_bench_files(tmp: Path) -> BenchFiles:
    # nginx's worker runs as another user (nobody) when started as root: it must be able to
    # reach the files through the temporary directory (mkdtemp makes it 0700).
    tmp.chmod(0o755)
    static = tmp / "static"
    static.mkdir(mode=0o755)
    rng = random.Random(13)
    small = rng.randbytes(64 * 1024)
    large = rng.randbytes(10 * 1024 * 1024)
    (static / "64k.bin").write_bytes(small)
    (static / "10m.bin").write_bytes(large)
    content = rng.randbytes(1024 * 1024)
    upload = (
        (
            f"--{UPLOAD_BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="file"; filename="data.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{UPLOAD_BOUNDARY}--\r\n".encode()
    )
    upload_path = tmp / "upload.body"
    upload_path.write_bytes(upload)
    return BenchFiles(static, small, large, upload_path, len(content))


def build_file_scenarios(files: BenchFiles) -> list[Scenario]:
    """Issue 13: a login form (OAuth2PasswordRequestForm, urlencoded), a 1 MiB multipart
    upload (UploadFile read whole, its size returned), StaticFiles with a 64 KiB file
    (plain, and revalidated with If-None-Match: 304) and a 10 MiB one; nginx serves the
    same files from the same directory."""
    python_only = frozenset({"databridge", "fastapi"})
    static = frozenset({"databridge", "fastapi", "nginx"})
    octets = "application/octet-stream"
    return [
        Scenario(
            "form",
            "POST /login (OAuth2 password form)",
            "POST",
            "/login",
            body="grant_type=password&username=alice&password=s3cret&scope=read+write",
            headers=(("Content-Type", "application/x-www-form-urlencoded"),),
            expect_body={"access_token": "alice", "token_type": "bearer"},
            typed=True,
            only=python_only,
            issue=13,
        ),
        Scenario(
            "upload",
            "POST /upload (1 MiB multipart file)",
            "POST",
            "/upload",
            body=f"@{files.upload_path}",
            headers=(("Content-Type", f"multipart/form-data; boundary={UPLOAD_BOUNDARY}"),),
            expect_body={"size": files.upload_size},
            typed=True,
            only=python_only,
            issue=13,
        ),
        Scenario(
            "static64k",
            "GET /static/64k.bin",
            "GET",
            "/static/64k.bin",
            expect_type=octets,
            expect_body=files.small,
            only=static,
            issue=13,
        ),
        Scenario(
            "static64k-304",
            "GET /static/64k.bin (If-None-Match: 304)",
            "GET",
            "/static/64k.bin",
            expect_status=304,
            etag_of="/static/64k.bin",
            only=static,
            issue=13,
        ),
        Scenario(
            "static10m",
            "GET /static/10m.bin",
            "GET",
            "/static/10m.bin",
            expect_type=octets,
            expect_body=files.large,
            only=static,
            issue=13,
        ),
    ]


def build_typed_scenarios() -> list[Scenario]:
    """The FastAPI features real apps use (issues 12 and 17), with the same handlers in
    bench/apps/databridge_app.py and bench/apps/fastapi_app.py. Issue 12's three: a
    pydantic-model POST with response_model (FastAPI's tutorial Item), a three-level
    Depends chain behind an OAuth2 bearer header, and a handler that sets a cookie through
    an injected Response. Issue 17's typed bodies: a response_model list of 100 pydantic
    models and a nested model POST (100 line items) with response_model (and both again
    with dataclasses and with msgspec Structs, below)."""
    items = [
        {"id": i, "name": f"item {i}", "price": i * 1.5, "tags": ["a", "b"], "active": True}
        for i in range(100)
    ]
    order = {
        "id": 7,
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "lines": [{"sku": f"sku-{i}", "quantity": i % 5 + 1, "price": 2.5} for i in range(100)],
        "note": None,
    }
    order_out = {**order, "total": sum(line["quantity"] * 2.5 for line in order["lines"])}
    product = {"name": "Foo", "description": "A very nice Item", "price": 35.4, "tax": 3.2}
    return [
        Scenario(
            "models",
            "GET /models (list[Model] ×100)",
            "GET",
            "/models",
            expect_body=items,
            typed=True,
            issue=17,
        ),
        Scenario(
            "order",
            "POST /orders (nested model, 100 lines)",
            "POST",
            "/orders",
            body=json.dumps(order, separators=(",", ":")),
            expect_status=201,
            expect_body=order_out,
            typed=True,
            issue=17,
        ),
        Scenario(
            "product",
            "POST /products (pydantic model, response_model)",
            "POST",
            "/products",
            body=json.dumps(product, separators=(",", ":")),
            expect_status=201,
            expect_body=product,
            typed=True,
        ),
        Scenario(
            "depends",
            "GET /me (3 Depends, OAuth2 bearer)",
            "GET",
            "/me",
            headers=(("Authorization", "Bearer token-42"),),
            expect_body={"user": "token-42", "scopes": ["read"], "active": True},
            typed=True,
        ),
        Scenario(
            "cookie",
            "GET /cookie (Response injected)",
            "GET",
            "/cookie",
            expect_body={"ok": True},
            typed=True,
        ),
        # Issue 17: the same two typed bodies as standard-library dataclasses and as msgspec
        # Structs (FastAPI cannot take Structs: its app decodes and encodes them by hand).
        *(
            Scenario(
                f"{key}-{flavor}",
                f"{title} ({name})",
                method,
                f"/{flavor}{path}",
                body=body,
                expect_status=status,
                expect_body=expect,
                typed=True,
                issue=17,
            )
            for flavor, name in (("dc", "dataclasses"), ("ms", "msgspec Structs"))
            for key, title, method, path, body, status, expect in (
                ("models", "GET /models (list ×100)", "GET", "/models", None, 200, items),
                (
                    "order",
                    "POST /orders (nested, 100 lines)",
                    "POST",
                    "/orders",
                    json.dumps(order, separators=(",", ":")),
                    201,
                    order_out,
                ),
            )
        ),
    ]


@dataclass
class WrkResult:
    requests: int
    rps: float
    # None when wrk prints 0: wrk 4.1 corrects for coordinated omission by adding samples
    # below the histogram's recorded minimum, and its percentile walk then never reaches the
    # rank. That happens in pipelined runs whose batches take many per-response intervals.
    p50_us: float | None
    p99_us: float | None
    socket_errors: int
    bad_status: int


@dataclass
class Measurement:
    wrk: WrkResult
    cpu_s: float
    wall_s: float
    core_busy_s: float  # all non-idle time of the server's core, whoever used it

    @property
    def others_percent(self) -> float:
        """Share of the server's core used by other processes (or stolen by the host):
        when it is high, req/s and latency understate the server; CPU/request holds."""
        if not self.wall_s:
            return float("nan")
        return max(0.0, 100.0 * (self.core_busy_s - self.cpu_s) / self.wall_s)

    @property
    def cpu_us_per_req(self) -> float:
        return self.cpu_s * 1e6 / self.wrk.requests if self.wrk.requests else float("nan")

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s else float("nan")


@dataclass
class ServerOutcome:
    key: str
    skipped: str | None = None
    results: dict[str, Measurement] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# Processes


class Server:
    """A started server: its process group is killed by stop(), which is idempotent."""

    def __init__(
        self,
        key: str,
        argv: list[str],
        port: int,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.key = key
        self.port = port
        self.log = log
        self.argv = argv
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.proc.poll() is not None:
            _kill_group(self.proc.pid, signal.SIGKILL)  # stray children, if any
            return
        _kill_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        # Children that ignored SIGTERM (or outlived their parent) go too.
        _kill_group(self.proc.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(server: Server, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.key} exited with status {server.proc.returncode} before listening:\n"
                + server.log_tail()
            )
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(
        f"{server.key} did not listen on port {server.port} within {timeout:.0f} s:\n"
        + server.log_tail()
    )


def process_tree(root: int) -> list[int]:
    """The root and all its descendants, found through the ppid field of /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces): index 0 is
    the state, 1 ppid, 11 utime, 12 stime (proc(5) fields 3, 4, 14, 15)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(")") + 2 :].split()


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the given processes; each already covers all of its threads."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def core_busy_seconds(cpu_index: int) -> float:
    """Non-idle time of one core from /proc/stat (user nice system idle iowait irq softirq
    steal ...): everything but idle and iowait, steal included since it was not ours."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu_index} "):
                ticks = [int(x) for x in line.split()[1:9]]
                return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK
    return float("nan")


# --------------------------------------------------------------------------------------
# wrk

_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def _to_us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unparsable wrk latency {text!r}")
    return float(m.group(1)) * _UNITS_US[m.group(2)]


def parse_wrk(out: str) -> WrkResult:
    def grab(pattern: str) -> re.Match[str]:
        m = re.search(pattern, out, re.MULTILINE)
        if m is None:
            raise ValueError(f"wrk output lacks {pattern!r}:\n{out}")
        return m

    requests = int(grab(r"^\s*(\d+) requests in ").group(1))
    rps = float(grab(r"^Requests/sec:\s*([\d.]+)").group(1))
    p50 = _to_us(grab(r"^\s*50%\s+(\S+)").group(1))
    p99 = _to_us(grab(r"^\s*99%\s+(\S+)").group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = sum(int(g) for g in sock.groups()) if sock else 0
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(
        requests, rps, p50 or None, p99 or None, socket_errors, int(bad.group(1)) if bad else 0
    )


@dataclass(frozen=True)
class Config:
    duration: int
    warmup: int
    connections: int
    server_cpu: int
    client_cpu: int
    wrk: str
    tls: TLSFiles | None = None  # --tls: every server speaks HTTPS with these files

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path


def make_certificate(tmp: Path) -> TLSFiles:
    """A self-signed certificate for 127.0.0.1 with a P-256 key (the openssl command, as
    installed by the Makefile's apt-deps); wrk does not verify it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("--tls needs the openssl command (Debian: apt-get install openssl)")
    files = TLSFiles(tmp / "cert.pem", tmp / "key.pem")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(files.key),
            "-out",
            str(files.cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return files


def scenario_headers(port: int, sc: Scenario) -> tuple[tuple[str, str], ...]:
    """The scenario's headers, with If-None-Match set to the server's own ETag of
    sc.etag_of when it names a path."""
    if sc.etag_of is None:
        return sc.headers
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", sc.etag_of)
        resp = conn.getresponse()
        resp.read()
        etag = resp.getheader("ETag")
    finally:
        conn.close()
    if not etag:
        raise RuntimeError(f"{sc.title}: GET {sc.etag_of} gave no ETag")
    return (*sc.headers, ("If-None-Match", etag))


def wrk_argv(cfg: Config, sc: Scenario, port: int, seconds: int) -> list[str]:
    argv = [
        "taskset",
        "-c",
        str(cfg.client_cpu),
        cfg.wrk,
        "-t1",
        f"-c{cfg.connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    for name, value in scenario_headers(port, sc):
        argv += ["-H", f"{name}: {value}"]
    url = f"{cfg.scheme}://127.0.0.1:{port}{sc.path}"
    if sc.pipelined or sc.method != "GET" or sc.body is not None:
        argv += ["-s", str(PIPELINE_LUA), url, "--", str(sc.depth), sc.method, sc.body or ""]
    else:
        argv.append(url)
    return argv


def run_wrk(cfg: Config, sc: Scenario, port: int, seconds: int) -> str:
    argv = wrk_argv(cfg, sc, port, seconds)
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 60, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr}")
    return proc.stdout


def measure(cfg: Config, server: Server, sc: Scenario) -> Measurement:
    if cfg.warmup > 0:
        run_wrk(cfg, sc, server.port, cfg.warmup)
    tree = process_tree(server.proc.pid)
    before = cpu_seconds(tree)
    core_before = core_busy_seconds(cfg.server_cpu)
    t0 = time.monotonic()
    out = run_wrk(cfg, sc, server.port, cfg.duration)
    wall = time.monotonic() - t0
    core_after = core_busy_seconds(cfg.server_cpu)
    # A process that appeared during the run (none expected) counts with all of its time.
    tree = sorted(set(tree) | set(process_tree(server.proc.pid)))
    after = cpu_seconds(tree)
    if server.proc.poll() is not None:
        raise RuntimeError(f"{server.key} died during {sc.title}:\n{server.log_tail()}")
    return Measurement(parse_wrk(out), after - before, wall, core_after - core_before)


def check_response(port: int, sc: Scenario, tls: bool = False) -> str | None:
    """One plain request before the load: the server must answer like the others do."""
    conn: http.client.HTTPConnection
    if tls:
        # The benchmark's own self-signed certificate: not verified, as wrk does not.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Content-Type": "application/json"} if sc.body is not None else {}
        headers.update(dict(scenario_headers(port, sc)))
        body: bytes | str | None = sc.body
        if isinstance(body, str) and body.startswith("@"):
            body = Path(body[1:]).read_bytes()  # pipeline.lua's "@FILE"
        conn.request(sc.method, sc.path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        if resp.getheader("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        ctype = resp.getheader("Content-Type") or ""
    except (OSError, RuntimeError, http.client.HTTPException) as exc:
        return f"{sc.title}: request failed: {exc}"
    finally:
        conn.close()
    if resp.status != sc.expect_status:
        return f"{sc.title}: status {resp.status}, expected {sc.expect_status}"
    if resp.status == 304:
        return None if not raw else f"{sc.title}: a 304 with a body"
    if not ctype.startswith(sc.expect_type):
        return f"{sc.title}: content-type {ctype!r}, expected {sc.expect_type}"
    if isinstance(sc.expect_body, bytes):
        return None if raw == sc.expect_body else f"{sc.title}: body differs from the file"
    try:
        value: object = raw.decode() if sc.expect_type == "text/plain" else json.loads(raw)
    except ValueError:
        return f"{sc.title}: unreadable body {raw[:80]!r}"
    if value != sc.expect_body:
        return f"{sc.title}: body {raw[:120]!r} differs from the expected one"
    return None


# --------------------------------------------------------------------------------------
# Servers


def app_python() -> str:
    """The interpreter for the Python apps: the project's .venv when there is one."""
    venv = REPO_DIR / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _env_with_path(extra: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if env.get("PYTHONPATH"):
        # The apps run from bench/apps: a relative entry (`make bench` sets PYTHONPATH=src)
        # must keep pointing where it pointed here.
        env["PYTHONPATH"] = os.pathsep.join(
            os.path.abspath(p) if p else p for p in env["PYTHONPATH"].split(os.pathsep)
        )
    if extra:
        env["PYTHONPATH"] = extra + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
    return env


def databridge_env(python: str) -> tuple[dict[str, str] | None, str]:
    """An environment in which data_bridge.api imports (as installed, or from src/), or
    None and the reason."""
    reason = ""
    for extra in (None, str(REPO_DIR / "src")):
        env = _env_with_path(extra)
        proc = subprocess.run(
            [python, "-c", "import data_bridge.api; data_bridge.api.App"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode == 0:
            return env, ""
        lines = proc.stderr.strip().splitlines()
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
    return None, reason


def start_server(
    key: str,
    cfg: Config,
    tmp: Path,
    python: str,
    db_env: dict[str, str] | None,
    extra_env: dict[str, str] | None = None,
) -> Server:
    if key in OBSERVE_SERVERS:
        env = {"BENCH_OBSERVE": OBSERVE_SERVERS[key]}
        server = start_server("databridge", cfg, tmp, python, db_env, env)
        server.key = key
        return server
    if key in MIDDLEWARE_SERVERS:
        base, kind = MIDDLEWARE_SERVERS[key]
        server = start_server(base, cfg, tmp, python, db_env, {"BENCH_MIDDLEWARE": kind})
        server.key = key
        return server

    # The issue 13 scenarios' static files (make_bench_files), mounted by both apps.
    extra_env = {**(extra_env or {}), "BENCH_STATIC": str(tmp / "static")}

    def with_extra(env: dict[str, str] | None) -> dict[str, str] | None:
        return {**(env or os.environ), **extra_env}

    port = free_port()
    pin = ["taskset", "-c", str(cfg.server_cpu)]
    log = tmp / f"{key}.log"
    if cfg.tls is not None:
        if key == "databridge":
            # bench/apps/databridge_app.py hands these to App.run(ssl_certfile=, ssl_keyfile=).
            tls_env = {
                "BENCH_SSL_CERTFILE": str(cfg.tls.cert),
                "BENCH_SSL_KEYFILE": str(cfg.tls.key),
            }
            extra_env = {**(extra_env or {}), **tls_env}
        elif key not in UVICORN_APPS:
            raise ValueError(f"{key} has no TLS set-up in this benchmark")
    if key == "databridge":
        argv = [*pin, python, str(APPS_DIR / "databridge_app.py"), str(port)]
        return Server(key, argv, port, log, env=with_extra(db_env), cwd=APPS_DIR)
    if key in ("fastapi-native", "fastapi-asgi", "asgi-databridge"):
        # The unmodified FastAPI app (fastapi_app.py, the uvicorn peer's) served by
        # data-bridge's command line: its routes compiled to native ones (issue 14 item 6),
        # or through ASGI (--no-native); or the raw ASGI hello-world.
        target = "asgi_hello:app" if key == "asgi-databridge" else UVICORN_APPS["fastapi"][0]
        argv = [
            *pin,
            python,
            "-m",
            "data_bridge",
            target,
            "--app-dir",
            str(APPS_DIR),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            *(["--no-native"] if key == "fastapi-asgi" else []),
        ]
        return Server(key, argv, port, log, env=with_extra(db_env), cwd=APPS_DIR)
    if key in ("fastapi-granian", "asgi-granian"):
        # Granian's ASGI interface, one worker (its Rust runtime on one thread), HTTP/1.1
        # as the others, uvloop as with uvicorn.
        target = "asgi_hello:app" if key == "asgi-granian" else UVICORN_APPS["fastapi"][0]
        argv = [
            *pin,
            python,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--http",
            "1",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
            "--working-dir",
            str(APPS_DIR),
            target,
        ]
        return Server(key, argv, port, log, env=with_extra(_env_with_path(None)), cwd=APPS_DIR)
    if key in UVICORN_APPS:
        argv = [
            *pin,
            python,
            "-m",
            "uvicorn",
            UVICORN_APPS[key][0],
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
        ]
        if cfg.tls is not None:
            argv += ["--ssl-certfile", str(cfg.tls.cert), "--ssl-keyfile", str(cfg.tls.key)]
        return Server(key, argv, port, log, env=with_extra(_env_with_path(None)), cwd=APPS_DIR)
    if key == "nginx":
        prefix = tmp / "nginx"
        prefix.mkdir(exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(
            string.Template(NGINX_TEMPLATE.read_text()).substitute(
                prefix=str(prefix), port=port, worker_connections=1024, static=str(tmp / "static")
            )
        )
        argv = [
            *pin,
            nginx_binary(),
            "-p",
            str(prefix),
            "-c",
            str(conf),
            "-e",
            str(prefix / "error.log"),
        ]
        return Server(key, argv, port, log, cwd=prefix)
    raise ValueError(key)


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise RuntimeError("nginx not found (Debian: apt-get install nginx-light)")
    return found


def python_prereq(python: str, key: str) -> str | None:
    key = MIDDLEWARE_SERVERS.get(key, (key,))[0]
    if key in PREREQS:
        imports = PREREQS[key]
    elif key in UVICORN_APPS:
        imports = UVICORN_APPS[key][1]
    else:
        return None
    proc = subprocess.run(
        [python, "-c", imports],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return lines[-1] if lines else "import failed"
    return None


def bench_server(
    outcome: ServerOutcome,
    cfg: Config,
    scenarios: list[Scenario],
    tmp: Path,
    python: str,
    db_env: dict[str, str] | None,
) -> None:
    """Fills outcome scenario by scenario, so a server that fails late keeps its results."""
    key = outcome.key
    server = start_server(key, cfg, tmp, python, db_env)
    with running(server):
        wait_ready(server)
        for sc in scenarios:
            if sc.typed and key == "nginx":
                continue
            runs_here = key in sc.only if sc.only is not None else key not in MIDDLEWARE_SERVERS
            if not runs_here or sc.key not in SERVER_SCENARIOS.get(key, {sc.key}):
                continue
            problem = check_response(server.port, sc, cfg.tls is not None)
            if problem:
                outcome.problems.append(problem)
                print(f"  warning: {SERVER_NAMES[key]}: {problem}", flush=True)
            m = measure(cfg, server, sc)
            outcome.results[sc.key] = m
            notes = []
            if m.wrk.socket_errors:
                notes.append(f"{m.wrk.socket_errors} socket errors")
            if m.wrk.bad_status:
                notes.append(f"{m.wrk.bad_status} 4xx/5xx")
            print(
                f"  {SERVER_NAMES[key]:<11} {sc.title:<34} {m.wrk.rps:>10.0f} req/s  "
                f"p50 {fmt_latency(m.wrk.p50_us):>8}  p99 {fmt_latency(m.wrk.p99_us):>8}  "
                f"{m.cpu_us_per_req:>7.1f} µs CPU/req  {m.cpu_percent:>4.0f}% CPU"
                f"  (others {m.others_percent:.0f}%)"
                + (f"  ({', '.join(notes)})" if notes else ""),
                flush=True,
            )
            if notes:
                outcome.problems.append(f"{sc.title}: {', '.join(notes)}")


# --------------------------------------------------------------------------------------
# Report


def fmt_latency(us: float | None) -> str:
    if us is None:
        return "n/a"
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.2f} ms"
    return f"{us:.0f} µs"


def fmt_ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or a != a or b != b:
        return None
    return a / b


def machine_line() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (nproc), {model}, Linux {platform.release()}"


def tool_versions(python: str) -> str:
    parts = []
    proc = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    parts.append(f"Python {proc.stdout.strip() or '?'} (apps)")
    proc = subprocess.run(
        [python, "-c", "import fastapi, uvicorn; print(fastapi.__version__, uvicorn.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode == 0:
        fa, uv = proc.stdout.split()
        parts.append(f"FastAPI {fa}, Uvicorn {uv}")
    proc = subprocess.run(
        [
            python,
            "-c",
            "import importlib.metadata as m; print(m.version('litestar'), m.version('msgspec'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode == 0:
        ls, ms = proc.stdout.split()
        parts.append(f"Litestar {ls} (msgspec {ms})")
    proc = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('granian'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode == 0:
        parts.append(f"Granian {proc.stdout.strip()}")
    try:
        out = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True, timeout=10)
        parts.append(out.stderr.strip().replace("nginx version: ", ""))
    except (RuntimeError, OSError):
        pass
    return ", ".join(parts)


def render(
    cfg: Config,
    command: str,
    scenarios: list[Scenario],
    outcomes: dict[str, ServerOutcome],
    python: str,
    depth: int,
) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out: list[str] = []
    w = out.append
    w("## HTTPS server (wrk, TLS keep-alive)" if cfg.tls else "## HTTP server (wrk)")
    w("")
    w(f"- Command: `{command}`")
    w(f"- Date: {now}")
    w(f"- Machine: {machine_line()}")
    w(f"- Software: {tool_versions(python)}, {wrk_version(cfg.wrk)}")
    w(
        f"- Method: server pinned to core {cfg.server_cpu}, wrk pinned to core {cfg.client_cpu}"
        f" (`taskset -c {cfg.client_cpu} wrk -t1 -c{cfg.connections} -d{cfg.duration}s --latency`),"
        f" {cfg.warmup} s warm-up then {cfg.duration} s measured per scenario. CPU µs/req is the"
        " server's utime+stime (all its processes and threads, from /proc/PID/stat) over the"
        f" measured run divided by the requests wrk completed. Pipelined runs send {depth}"
        " requests per write (bench/pipeline.lua); their p50/p99 are per batch, as wrk reports"
        " them (n/a where wrk's latency correction leaves it without a percentile)."
        ' "Others on its core" is the rest of the server core\'s busy time (/proc/stat, steal'
        " included): other processes on a shared machine; when it is high, req/s and latency"
        " understate that server while CPU µs/req still holds."
    )
    if cfg.duration < 10:
        w(f"- Note: a {cfg.duration} s smoke run; quote only runs of at least 10 s.")
    busy = [m.others_percent for oc in outcomes.values() for m in oc.results.values()]
    if busy and max(busy) > BUSY_WARN_PERCENT:
        w(
            f"- Warning: the server core was shared: other processes used up to {max(busy):.0f}%"
            f" of it (median {sorted(busy)[len(busy) // 2]:.0f}%). req/s and latency understate"
            " the servers; CPU µs/req is the figure to compare, and even it is inflated by"
            " cache contention. Re-run on a quiet machine before quoting."
        )
    w("")
    for key, oc in outcomes.items():
        if oc.skipped:
            w(f"- {SERVER_NAMES[key]}: skipped: {oc.skipped}")
        for p in oc.problems:
            w(f"- {SERVER_NAMES[key]}: warning: {p}")
    if any(oc.skipped or oc.problems for oc in outcomes.values()):
        w("")

    def get(key: str, sc: Scenario) -> Measurement | None:
        oc = outcomes.get(key)
        return None if oc is None else oc.results.get(sc.key)

    for sc in scenarios:
        w(f"### {sc.title}")
        w("")
        w("| server | req/s | p50 | p99 | CPU µs/req | server CPU | others on its core |")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for key in outcomes:
            m = get(key, sc)
            if m is None:
                w(f"| {SERVER_NAMES[key]} | – | – | – | – | – | – |")
                continue
            w(
                f"| {SERVER_NAMES[key]} | {m.wrk.rps:,.0f} | {fmt_latency(m.wrk.p50_us)} | "
                f"{fmt_latency(m.wrk.p99_us)} | {m.cpu_us_per_req:.1f} | {m.cpu_percent:.0f}% | "
                f"{m.others_percent:.0f}% |"
            )
        w("")

    w("### Ratios")
    w("")
    w("Throughput × is data-bridge's req/s over the peer's; CPU/request ÷ is the peer's CPU per")
    w("request over data-bridge's (higher is better for data-bridge in both); CPU/request vs")
    w("nginx is data-bridge's CPU per request over nginx's (1.00× = as cheap as nginx). The last")
    w("column is the unmodified FastAPI app (bench/apps/fastapi_app.py): uvicorn's CPU per")
    w("request over data-bridge's serving it with its routes compiled to native ones.")
    w("")
    w(
        "| scenario | throughput × FastAPI | CPU/request ÷ FastAPI | CPU/request ÷ Litestar |"
        " throughput × nginx | CPU/request vs nginx | FastAPI app: uvicorn ÷ data-bridge |"
    )
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for sc in scenarios:
        if sc.only is not None and "databridge" not in sc.only:
            continue  # the ASGI comparison's own scenario: its table follows
        db, fa, ng = get("databridge", sc), get("fastapi", sc), get("nginx", sc)
        ls, fn = get("litestar", sc), get("fastapi-native", sc)
        w(
            f"| {sc.title} | {fmt_ratio(ratio(rps(db), rps(fa)))} | "
            f"{fmt_ratio(ratio(cpu(fa), cpu(db)))} | {fmt_ratio(ratio(cpu(ls), cpu(db)))} | "
            f"{fmt_ratio(ratio(rps(db), rps(ng)))} | {fmt_ratio(ratio(cpu(db), cpu(ng)))} | "
            f"{fmt_ratio(ratio(cpu(fa), cpu(fn)))} |"
        )
    w("")
    asgi = [
        (sc, fa, gr)
        for sc in scenarios
        for fa, gr in (
            ("fastapi-asgi", "fastapi-granian")
            if sc.key in ASGI_FASTAPI_SCENARIOS
            else ("asgi-databridge", "asgi-granian")
            if sc.key == "hello"
            else (None, None),
        )
        if fa is not None and (get(fa, sc) or get(gr, sc))
    ]
    if asgi:
        w("### ASGI (issue 14)")
        w("")
        w("data-bridge serving the unmodified FastAPI app through ASGI (`--no-native`) and the")
        w("raw ASGI hello-world, against Granian and Uvicorn serving the same app: data-bridge's")
        w("req/s over the peer's, and the peer's CPU per request over data-bridge's.")
        w("")
        w(
            "| scenario | throughput × Granian | CPU/request ÷ Granian | throughput × Uvicorn |"
            " CPU/request ÷ Uvicorn |"
        )
        w("| --- | ---: | ---: | ---: | ---: |")
        for sc, ours, granian in asgi:
            uv = "fastapi" if ours == "fastapi-asgi" else "asgi-uvicorn"
            m, g, u = get(ours, sc), get(granian, sc), get(uv, sc)
            w(
                f"| {sc.title} | {fmt_ratio(ratio(rps(m), rps(g)))} | "
                f"{fmt_ratio(ratio(cpu(g), cpu(m)))} | {fmt_ratio(ratio(rps(m), rps(u)))} | "
                f"{fmt_ratio(ratio(cpu(u), cpu(m)))} |"
            )
        w("")
    w("### Targets (issues 2, 12, 13, 14 and 17)")
    w("")
    w("| target | measured | result |")
    w("| --- | --- | --- |")
    for line in targets(scenarios, get):
        w(line)
    return "\n".join(out)


def rps(m: Measurement | None) -> float | None:
    return None if m is None else m.wrk.rps


def cpu(m: Measurement | None) -> float | None:
    return None if m is None or not m.wrk.requests else m.cpu_us_per_req


Getter = Callable[[str, Scenario], "Measurement | None"]


def targets(scenarios: list[Scenario], get: Getter) -> list[str]:
    rows = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("PASS" if ok else "MISS")

    def cpu_rule(label: str, chosen: list[Scenario], factor: float, peer: str = "fastapi") -> str:
        ratios = [
            (sc.title, ratio(cpu(get(peer, sc)), cpu(get("databridge", sc)))) for sc in chosen
        ]
        known = [(t, r) for t, r in ratios if r is not None]
        ok = None if not chosen or len(known) < len(chosen) else all(r >= factor for _, r in known)
        worst = min(known, key=lambda tr: tr[1]) if known else None
        return (
            f"| {label} | "
            + (f"worst: {worst[0]} at ÷{worst[1]:.2f}" if worst else "no data")
            + f" | {verdict(ok)} |"
        )

    # 1. CPU per request at most 1/5 of FastAPI's on every scenario of issue 2 (untyped).
    untyped = [sc for sc in scenarios if not sc.typed and not sc.issue]
    rows.append(cpu_rule("CPU/request ≤ 1/5 of FastAPI's on every untyped scenario", untyped, 5))
    # 2. Pipelined throughput at least 30x FastAPI's.
    piped = [
        (sc.title, ratio(rps(get("databridge", sc)), rps(get("fastapi", sc))))
        for sc in scenarios
        if sc.pipelined
    ]
    known = [(t, r) for t, r in piped if r is not None]
    ok2 = None if not piped or len(known) < len(piped) else all(r >= 30 for _, r in known)
    worst = min(known, key=lambda tr: tr[1]) if known else None
    rows.append(
        "| pipelined throughput ≥ 30× FastAPI's | "
        + (f"worst: {worst[0]} at {worst[1]:.1f}×" if worst else "no data")
        + f" | {verdict(ok2)} |"
    )
    # 3. CPU per /plaintext request within 1.3x of nginx's.
    plain = next((sc for sc in scenarios if sc.key == "plaintext"), None)
    r3 = None if plain is None else ratio(cpu(get("databridge", plain)), cpu(get("nginx", plain)))
    rows.append(
        "| CPU per /plaintext request ≤ 1.3× nginx's | "
        + ("no data" if r3 is None else f"{r3:.2f}×")
        + f" | {verdict(None if r3 is None else r3 <= 1.3)} |"
    )
    # 4. Issue 12: at least 8x less CPU per request than FastAPI on its three scenarios
    # (the model POST, the Depends chain, the injected Response).
    typed = [sc for sc in scenarios if sc.typed and not sc.issue]
    rows.append(cpu_rule("issue 12: CPU/request ≤ 1/8 of FastAPI's, typed scenarios", typed, 8))
    # 5. Issue 17: at least 10x less CPU than FastAPI on each typed body scenario: the list
    # of 100 models and the nested POST, with pydantic models, dataclasses and Structs.
    bodies = [sc for sc in scenarios if sc.issue == 17]
    rows.append(cpu_rule("issue 17: CPU/request ≤ 1/10 of FastAPI's, typed bodies", bodies, 10))
    # Issue 14 (d): the App with GZip and with one @app.middleware("http") against FastAPI
    # with the same middleware (8x less CPU), and GZip within 1.2x of the uncompressed
    # native path's CPU on a 1 KiB JSON body.
    j1k = next((sc for sc in scenarios if sc.key == "json1k"), None)
    for kind in ("gzip", "http"):
        r = None
        if j1k is not None:
            r = ratio(cpu(get(f"fastapi-{kind}", j1k)), cpu(get(f"databridge-{kind}", j1k)))
        rows.append(
            f"| issue 14: CPU/request ≤ 1/8 of FastAPI's, both with {kind} middleware, /json1k | "
            + ("no data" if r is None else f"÷{r:.2f}")
            + f" | {verdict(None if r is None else r >= 8)} |"
        )
    r = (
        None
        if j1k is None
        else ratio(cpu(get("databridge-gzip", j1k)), cpu(get("databridge", j1k)))
    )
    rows.append(
        "| issue 14: GZip ≤ 1.2× the uncompressed native path's CPU/request, /json1k | "
        + ("no data" if r is None else f"{r:.2f}×")
        + f" | {verdict(None if r is None else r <= 1.2)} |"
    )
    # Issue 14 (c): the unmodified FastAPI app on the native path against uvicorn serving
    # it, on the JSON, path-parameter and POST scenarios: at least 8x less CPU.
    same_app = [sc for sc in scenarios if sc.key in ("json", "user", "items")]
    ratios = [
        (sc.title, ratio(cpu(get("fastapi", sc)), cpu(get("fastapi-native", sc))))
        for sc in same_app
    ]
    known = [(t, r) for t, r in ratios if r is not None]
    ok14 = None if not same_app or len(known) < len(same_app) else all(r >= 8 for _, r in known)
    worst = min(known, key=lambda tr: tr[1]) if known else None
    rows.append(
        "| issue 14: an unmodified FastAPI app, CPU/request ≤ 1/8 of uvicorn's serving it |"
        + (f" worst: {worst[0]} at ÷{worst[1]:.2f}" if worst else " no data")
        + f" | {verdict(ok14)} |"
    )
    # Issue 14 (a): the same FastAPI app through ASGI, at least Granian's throughput at
    # less CPU per request; (b) the raw ASGI hello-world at 1.3x Granian's throughput.
    for label, ours, peer, keys, factor in (
        (
            "issue 14 (a): FastAPI app through ASGI, throughput ≥ Granian's at less CPU/request",
            "fastapi-asgi",
            "fastapi-granian",
            ASGI_FASTAPI_SCENARIOS,
            1.0,
        ),
        (
            "issue 14 (b): raw ASGI hello-world, throughput ≥ 1.3× Granian's",
            "asgi-databridge",
            "asgi-granian",
            frozenset({"hello"}),
            1.3,
        ),
    ):
        chosen = [sc for sc in scenarios if sc.key in keys]
        pairs = [
            (
                sc.title,
                ratio(rps(get(ours, sc)), rps(get(peer, sc))),
                ratio(cpu(get(peer, sc)), cpu(get(ours, sc))),
            )
            for sc in chosen
        ]
        known = [(t, x, c) for t, x, c in pairs if x is not None and c is not None]
        ok = (
            None
            if not chosen or len(known) < len(chosen)
            else all(x >= factor and (factor > 1 or c > 1) for _, x, c in known)
        )
        worst = min(known, key=lambda txc: txc[1]) if known else None
        rows.append(
            f"| {label} | "
            + (f"worst: {worst[0]} at {worst[1]:.2f}×, CPU ÷{worst[2]:.2f}" if worst else "no data")
            + f" | {verdict(ok)} |"
        )
    # Issue 13: forms and uploads at least 8x less CPU per request than FastAPI; static
    # files within 1.3x of nginx's CPU per request.
    forms = [sc for sc in scenarios if sc.issue == 13 and sc.typed]
    rows.append(cpu_rule("issue 13: CPU/request ≤ 1/8 of FastAPI's, form and upload", forms, 8))
    for sc in (sc for sc in scenarios if sc.issue == 13 and not sc.typed):
        r = ratio(cpu(get("databridge", sc)), cpu(get("nginx", sc)))
        rows.append(
            f"| issue 13: CPU/request ≤ 1.3× nginx's, {sc.title} | "
            + ("no data" if r is None else f"{r:.2f}×")
            + f" | {verdict(None if r is None else r <= 1.3)} |"
        )
    # 6. Issue 17: at least 2x less CPU than Litestar (msgspec Structs for the pydantic
    # scenarios, dataclasses and Structs for theirs) on the typed bodies.
    rows.append(
        cpu_rule(
            "issue 17: CPU/request ≤ 1/2 of Litestar's (msgspec), typed bodies",
            bodies,
            2,
            peer="litestar",
        )
    )
    return rows


def wrk_version(wrk: str) -> str:
    proc = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
    m = re.search(r"wrk (\S+)", proc.stdout + proc.stderr)
    return f"wrk {m.group(1)}" if m else "wrk"


def write_results(section: str, tls: bool = False) -> None:
    mark_start, mark_end = (TLS_MARK_START, TLS_MARK_END) if tls else (MARK_START, MARK_END)
    block = f"{mark_start}\n{section}\n{mark_end}"
    text = RESULTS_PATH.read_text() if RESULTS_PATH.exists() else "# Benchmark results\n"
    start, end = text.find(mark_start), text.find(mark_end)
    if start != -1 and end > start:
        text = text[:start] + block + text[end + len(mark_end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = RESULTS_PATH.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(RESULTS_PATH)


# --------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=int, default=10, help="measured seconds per run (10)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per run (2)")
    p.add_argument(
        "--quick", action="store_true", help="3 s runs after a 1 s warm-up: a smoke test"
    )
    p.add_argument(
        "--servers",
        default=",".join(SERVER_NAMES),
        help=f"comma-separated subset of {','.join(SERVER_NAMES)}",
    )
    p.add_argument(
        "--scenarios",
        default="",
        help="comma-separated scenario keys (default: all): plaintext,json,user,"
        "items,plaintext-pipelined,json-pipelined,user-pipelined,models,order,depends,"
        "cookie,models-dc,order-dc,models-ms,order-ms,json1k,form,upload,static64k,"
        "static64k-304,static10m,hello",
    )
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--pipeline-depth", type=int, default=16)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    p.add_argument(
        "--tls",
        action="store_true",
        help="HTTPS: the same certificate for every server, wrk over TLS (nginx left out)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 3, 1
    if args.duration < 1 or args.warmup < 0:
        p.error("--duration must be at least 1 second, --warmup at least 0")
    return args


def _on_signal(signum: int, _frame: object) -> None:
    # Turn SIGTERM/SIGHUP into an exception so that every `finally` stops its server.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)

    wrk = shutil.which("wrk")
    if wrk is None:
        print("error: wrk not found on PATH (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    if shutil.which("taskset") is None:
        print("error: taskset not found (Debian: util-linux)", file=sys.stderr)
        return 2
    cpus = os.sched_getaffinity(0)
    if args.server_cpu not in cpus or args.client_cpu not in cpus:
        print(
            f"error: cores {args.server_cpu} and {args.client_cpu} must be available "
            f"(have {sorted(cpus)}); see --server-cpu/--client-cpu",
            file=sys.stderr,
        )
        return 2

    keys = []
    for name in args.servers.split(","):
        name = SERVER_ALIASES.get(name.strip().lower(), name.strip().lower())
        if name not in SERVER_NAMES:
            print(
                f"error: unknown server {name!r}; choose from {', '.join(SERVER_NAMES)}",
                file=sys.stderr,
            )
            return 2
        if name not in keys:
            keys.append(name)
    # Removed when the run ends (or, after an early return, by its finalizer).
    tmp_dir = tempfile.TemporaryDirectory(prefix="db-bench-")
    tmp = Path(tmp_dir.name)
    scenarios = build_scenarios(args.pipeline_depth, make_bench_files(tmp))
    if args.scenarios:
        wanted = {s.strip() for s in args.scenarios.split(",")}
        unknown = wanted - {s.key for s in scenarios}
        if unknown:
            print(f"error: unknown scenarios {sorted(unknown)}", file=sys.stderr)
            return 2
        scenarios = [s for s in scenarios if s.key in wanted]

    if args.tls and "nginx" in keys:
        keys.remove("nginx")
        print("--tls: nginx is left out (no TLS set-up for it here)", flush=True)
    cfg = Config(
        args.duration, args.warmup, args.connections, args.server_cpu, args.client_cpu, wrk
    )
    python = app_python()
    command = "python bench/run.py" + ("" if not argv else " " + " ".join(argv))
    per_server = len(scenarios) * (cfg.duration + cfg.warmup)
    print(
        f"HTTP benchmark: {', '.join(SERVER_NAMES[k] for k in keys)}; {len(scenarios)} "
        f"scenarios, about {per_server} s per server",
        flush=True,
    )

    outcomes: dict[str, ServerOutcome] = {}
    db_env: dict[str, str] | None = None
    with tmp_dir:
        if args.tls:
            cfg = dataclasses.replace(cfg, tls=make_certificate(tmp))
        for key in keys:
            skipped = None
            if key in DATABRIDGE_SERVERS:
                if db_env is None:
                    db_env, reason = databridge_env(python)
                if db_env is None:
                    skipped = f"data_bridge.api not importable ({reason})"
                elif python_prereq(python, key):
                    skipped = f"{python_prereq(python, key)} with {python}"
            elif key == "nginx":
                try:
                    nginx_binary()
                except RuntimeError as exc:
                    skipped = str(exc)
            else:
                missing = python_prereq(python, key)
                if missing:
                    skipped = f"its Python stack is not importable with {python} ({missing})"
            if skipped:
                print(f"{SERVER_NAMES[key]}: skipped: {skipped}", flush=True)
                outcomes[key] = ServerOutcome(key, skipped=skipped)
                continue
            print(f"{SERVER_NAMES[key]}:", flush=True)
            outcome = outcomes[key] = ServerOutcome(key)
            try:
                bench_server(outcome, cfg, scenarios, tmp, python, db_env)
            except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as exc:
                print(f"{SERVER_NAMES[key]}: failed: {exc}", file=sys.stderr, flush=True)
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                outcome.problems.append(f"failed: {first}")

    section = render(cfg, command, scenarios, outcomes, python, args.pipeline_depth)
    # The file first, so that a closed stdout (e.g. `| head`) cannot lose the results.
    if not args.no_write:
        write_results(section, tls=args.tls)
    print()
    print(section)
    if not args.no_write:
        print(f"\nwritten to {RESULTS_PATH.relative_to(REPO_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
