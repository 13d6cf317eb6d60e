"""FastAPI's tutorial tests, run against FastAPI and against data-bridge.

    fastapi_tests.py report   both runs, then data-bridge's passes once more (a test that
                              fails then is flaky); writes docs/compat.md and
                              tests/fastapi_compat/passing.txt (`make fastapi-tests`)
    fastapi_tests.py check    data-bridge only, the tests in passing.txt (failures once more,
                              in a new process); fails if one of them no longer passes
                              (`make fastapi-check`, part of `make test`)

The pinned FastAPI sdist is downloaded once with pip into build/fastapi-tests/dist and
its `tests/test_tutorial` (with the `tests/` modules it imports), `docs_src` and
`pyproject.toml` (FastAPI's pytest configuration) are extracted; every pytest process runs
in its own copy of them under build/fastapi-tests/work. The data-bridge run loads
`tests/fastapi_compat/db_fastapi_shim.py`, which resolves `fastapi` to `data_bridge.api`;
both runs load `db_fastapi_outcomes.py`, which records each test's outcome as it happens.
A test that hangs is ended by pytest-timeout (thread method: the process exits) and a test
that crashes the interpreter ends it too: the runner counts that test as failed and resumes
the rest of the run in a new process. The exit code is non-zero when the harness itself
fails (pytest usage or internal error, no test collected, the real fastapi imported in the
data-bridge run) and, in check mode, when a test of passing.txt does not pass.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

FASTAPI_VERSION = "0.165.0"
SDIST_SHA256 = "dd94d4128319c1e1d50535ab023ab698f850a4d2822f0e181747b46f4ff3c0ab"

ROOT = Path(__file__).resolve().parent.parent
COMPAT_DIR = ROOT / "tests" / "fastapi_compat"
PASSING_FILE = COMPAT_DIR / "passing.txt"
FLAKY_FILE = COMPAT_DIR / "flaky.txt"

# Why the tests that fail on data-bridge fail: the features they need and their issues.
KNOWN_GAPS: list[tuple[str, str]] = []
# Where data-bridge differs from FastAPI on purpose, and why (written by hand).
DIFFERENCES: list[tuple[str, str]] = [
    (
        "Percent-encoded paths in the test client",
        "routes match the path decoded once, as uvicorn gives it to Starlette"
        " (`/p/%2525` binds `%25`, `/p/a%2Fb` does not match `/p/{name}`); Starlette's"
        " TestClient decodes the path a second time (httpx's decoded `url.path`, then"
        " `unquote`), so under FastAPI's TestClient alone `/p/%2525` binds `%`. Our"
        " TestClient sends the target through the real server, which answers as it does"
        " behind a socket",
    ),
    (
        "Request body limit",
        "a body the server holds whole (a JSON or form body, `request.body()`) may be up to"
        " 16 MiB by default (`max_body`, `--max-body`; per app, router or route with"
        " FastAPI's `max_body_size=`), beyond it 413; FastAPI has no limit unless one is set."
        " Unbounded, one request could take any amount of memory; 16 MiB (uvicorn's largest"
        " WebSocket message, ours too) is far above what JSON APIs are sent, and above 1 MiB"
        " so that FastAPI's form limits (`max_part_size`, 1 MiB per field) decide for form"
        " bodies, as they do in FastAPI. Uploads (File/UploadFile) and bodies a handler"
        " streams are not held whole: `max_upload` bounds them, unlimited by default",
    ),
    (
        "JSON bodies are decoded by the C codec, not `json.loads`",
        'so `patch("json.loads")` (test_body\'s test_other_exceptions) does not reach a'
        " valid body. What a client sees is FastAPI's: a syntax error is a 422 json_invalid"
        " with json's position and message, and a body json.loads cannot read otherwise"
        " (bytes that are not UTF-8/16/32 text) is FastAPI's 400 \"There was an error parsing"
        ' the body", found by asking json.loads on the error path only. Calling json.loads'
        " for every body would cost the native path its decoder",
    ),
    (
        "OpenTelemetry (`FastAPI(telemetry=...)`)",
        "FastAPI's server spans (name, kind, attributes, status, the caller's traceparent),"
        " its operation spans (dependencies, endpoint, serialization), its two HTTP metrics"
        " and its log records (validation failures, unhandled exceptions) are produced for"
        " every routed request, as FastAPI produces them, once a provider is configured when"
        " the server starts (FastAPI looks at each request; an app without one keeps every"
        " route native). Not produced: the telemetry of requests no route answers (404, 405,"
        " what native middleware answers before routing: the native router answers them"
        " without Python), `fastapi.telemetry.get_telemetry_data` and OTLP"
        " auto-configuration from the environment; the server span ends when the response"
        " is made, before its body is written",
    ),
    (
        "GET routes answer HEAD",
        "as Starlette's plain routes do (the headers of the GET response, no body), where"
        " FastAPI's APIRoute answers HEAD with 405; a 405 for another method therefore lists"
        " `Allow: GET, HEAD` where FastAPI lists `GET`. Proxies and load balancers probe with"
        " HEAD, and answering it costs nothing on the native path",
    ),
    (
        "`Vary` from GZip and CORS together",
        "each middleware writes its own `Vary` line (`Vary: Origin` and `Vary: Accept-Encoding`),"
        " where Starlette joins them into one line in the order the middleware ran. A client"
        " or cache reads repeated `Vary` lines as one comma-separated list (RFC 9110 §5.3), so"
        " the meaning is the same; the native path adds the CORS line before the response"
        " exists, which keeps it out of the handler's way",
    ),
    (
        "CORS headers under HTTP middleware",
        "the `Access-Control-*` and `Vary: Origin` lines of a request that is no preflight are"
        " added to the final response, also when CORSMiddleware was added before an"
        ' `@app.middleware("http")`. Starlette adds them inside that middleware, so there it'
        " sees them, and a response it makes in place of the inner one has none. A preflight's"
        " answer, and TrustedHost's and HTTPSRedirect's, pass through the middleware outside"
        " them as in Starlette",
    ),
]
COMPAT_DOC = ROOT / "docs" / "compat.md"
BUILD = ROOT / "build" / "fastapi-tests"
DIST = BUILD / "dist"
SDIST = DIST / f"fastapi-{FASTAPI_VERSION}.tar.gz"
SOURCES = BUILD / f"sources-{FASTAPI_VERSION}"
TUTORIAL = "tests/test_tutorial"
EXTRACT_REVISION = 2  # bump when extract_sources() takes other files

FASTAPI = "fastapi"
DATA_BRIDGE = "data-bridge"

# Outcomes of one test, as recorded.
PASSED, FAILED, SKIPPED, XFAILED, XPASSED = "passed", "failed", "skipped", "xfailed", "xpassed"

Outcomes = dict[str, "Result"]


@dataclass
class Result:
    outcome: str
    error: str | None = None
    seconds: float = 0.0  # setup + call + teardown


@dataclass
class Shard:
    run: str
    index: int
    count: int
    files: list[str]


@dataclass
class ShardResult:
    shard: Shard
    results: Outcomes = field(default_factory=dict)
    collected: set[str] = field(default_factory=set)
    collect_errors: dict[str, str] = field(default_factory=dict)
    fatal: str | None = None  # why the shard stopped before finishing its tests
    harness_error: str | None = None  # pytest usage/internal error, no tests, ...
    attempts: int = 0
    seconds: float = 0.0


@dataclass
class RunResult:
    run: str
    shards: list[ShardResult]
    seconds: float  # wall time from the first shard's start to the last one's end

    @property
    def results(self) -> Outcomes:
        merged: Outcomes = {}
        for shard in self.shards:
            merged.update(shard.results)
        return merged

    @property
    def collected(self) -> set[str]:
        return set().union(*(shard.collected for shard in self.shards))

    @property
    def harness_errors(self) -> list[str]:
        return [s.harness_error for s in self.shards if s.harness_error]

    def error_for_missing(self, nodeid: str) -> str:
        """Why a test has no outcome in this run: its module's collection error, or the
        reason its shard stopped."""
        for shard in self.shards:
            for collector, error in shard.collect_errors.items():
                if nodeid == collector or nodeid.startswith((collector + "::", collector + "/")):
                    return error
        module = nodeid.split("::")[0]
        for shard in self.shards:
            if shard.fatal and module in shard.shard.files:
                return shard.fatal
        return "not collected"


# --- the sources ------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"fastapi-tests: {message}", flush=True)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_sdist(python: str) -> None:
    if not SDIST.is_file():
        DIST.mkdir(parents=True, exist_ok=True)
        log(f"downloading the fastapi=={FASTAPI_VERSION} sdist")
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"fastapi=={FASTAPI_VERSION}",
                "-d",
                str(DIST),
            ],
            check=True,
        )
    digest = sha256(SDIST)
    if digest != SDIST_SHA256:
        raise SystemExit(f"fastapi-tests: {SDIST} has sha256 {digest}, expected {SDIST_SHA256}")


_TESTS_IMPORT = re.compile(r"^\s*(?:from|import)\s+(tests(?:\.\w+)*)", re.MULTILINE)
# Files of the repository that tests open by path ("./docs/en/docs/img/favicon.png").
_FILE_LITERAL = re.compile(r"[\"']\.?/?((?:docs|tests)/[\w./-]+\.\w+)[\"']")


def _wanted(path: str) -> bool:
    return path.startswith((TUTORIAL + "/", "docs_src/")) or path in (
        "pyproject.toml",
        "tests/__init__.py",
        "tests/utils.py",
    )


def extract_sources() -> None:
    """Extracts what the tutorial tests need into SOURCES (once per version)."""
    done = SOURCES / ".complete"
    stamp = f"{FASTAPI_VERSION} {EXTRACT_REVISION}\n"
    if done.is_file() and done.read_text() == stamp:
        return
    shutil.rmtree(SOURCES, ignore_errors=True)
    prefix = f"fastapi-{FASTAPI_VERSION}/"
    with tarfile.open(SDIST) as tar:
        members = {
            m.name[len(prefix) :]: m
            for m in tar.getmembers()
            if m.isfile() and m.name.startswith(prefix)
        }
        for name in members:
            if ".." in Path(name).parts or name.startswith("/"):
                raise SystemExit(f"fastapi-tests: unsafe path in the sdist: {name}")

        def write(name: str) -> None:
            data = tar.extractfile(members[name])
            assert data is not None
            target = SOURCES / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data.read())

        chosen = {name for name in members if _wanted(name)}
        # Add the other modules of tests/ that the chosen files import, transitively
        # (tests/test_tutorial/test_opentelemetry/conftest.py imports tests.test_telemetry).
        pending = [name for name in chosen if name.endswith(".py")]
        while pending:
            data = tar.extractfile(members[pending.pop()])
            assert data is not None
            text = data.read().decode("utf-8", "replace")
            for path in _FILE_LITERAL.findall(text):
                if path in members and path not in chosen:
                    chosen.add(path)
            for module in _TESTS_IMPORT.findall(text):
                parts = module.split(".")
                for i in range(1, len(parts) + 1):
                    base = "/".join(parts[:i])
                    for candidate in (base + "/__init__.py", base + ".py"):
                        if candidate in members and candidate not in chosen:
                            chosen.add(candidate)
                            pending.append(candidate)
        for name in sorted(chosen):
            write(name)
    done.write_text(stamp)
    log(f"extracted {len(chosen)} files of the sdist into {SOURCES.relative_to(ROOT)}")


def tutorial_files() -> list[str]:
    return sorted(
        p.relative_to(SOURCES).as_posix() for p in (SOURCES / TUTORIAL).rglob("test_*.py")
    )


def split(files: Iterable[str], count: int) -> list[list[str]]:
    """Test files in `count` shards of about equal size (bytes of source)."""
    shards: list[list[str]] = [[] for _ in range(count)]
    sizes = [0] * count
    for name in sorted(files, key=lambda f: (-(SOURCES / f).stat().st_size, f)):
        i = sizes.index(min(sizes))
        shards[i].append(name)
        sizes[i] += (SOURCES / name).stat().st_size
    return [sorted(s) for s in shards if s]


# --- running pytest ---------------------------------------------------------------------


@dataclass
class Options:
    python: str
    test_timeout: float
    deadline: float  # time.monotonic() after which no shard starts or goes on
    tag: str  # "report" or "check": names the work directories
    src: Path  # the directory holding the data_bridge package


def pytest_command(opts: Options, run: str, files: list[str], basetemp: Path) -> list[str]:
    plugins = ["-p", "db_fastapi_shim"] if run == DATA_BRIDGE else []
    return [
        opts.python,
        "-m",
        "pytest",
        *plugins,
        "-p",
        "db_fastapi_outcomes",
        "-p",
        "no:cacheprovider",
        "--rootdir=.",
        "--continue-on-collection-errors",
        f"--timeout={opts.test_timeout:g}",
        "--timeout-method=thread",
        f"--basetemp={basetemp}",
        "-q",
        *files,
    ]


def pytest_env(run: str, src: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONSTARTUP")}
    paths = [str(COMPAT_DIR)]
    if run == DATA_BRIDGE:
        paths.append(str(src))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONFAULTHANDLER"] = "1"
    return env


def final_result(reports: list[dict[str, Any]]) -> Result:
    """One test's outcome from its setup/call/teardown reports."""
    for report in reports:
        if report["outcome"] == "failed":
            return Result(FAILED, str(report.get("error") or "failed"))
    by_when = {str(r["when"]): r for r in reports}
    call = by_when.get("call")
    if call is None:
        return Result(SKIPPED)  # skipped in setup (skip marks, skipif)
    if call["outcome"] == "skipped":
        return Result(XFAILED if call.get("xfail") else SKIPPED)
    return Result(XPASSED if call.get("xfail") else PASSED)


def run_shard(opts: Options, shard: Shard, only: set[str] | None) -> ShardResult:
    """Runs one shard's test files in a fresh work directory, resuming after a crash."""
    result = ShardResult(shard)
    name = f"{shard.run}-{shard.index}"
    work = BUILD / "work" / opts.tag / name
    logs = BUILD / "logs" / opts.tag
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(SOURCES, work)
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob(name + "-*"):
        old.unlink()
    skip_file = work / ".skip"
    only_file = work / ".only"
    skip: set[str] = set()
    env = pytest_env(shard.run, opts.src)
    env["DB_FASTAPI_SKIP"] = str(skip_file)
    env["DB_FASTAPI_COLLECT_TIMEOUT"] = f"{opts.test_timeout:g}"
    if only is not None:
        only_file.write_text("".join(n + "\n" for n in sorted(only)))
        env["DB_FASTAPI_ONLY"] = str(only_file)
    started = time.monotonic()
    while True:
        result.attempts += 1
        remaining = opts.deadline - time.monotonic()
        if remaining <= 0:
            result.fatal = "not run: the overall time limit was reached"
            break
        skip_file.write_text("".join(n + "\n" for n in sorted(skip)))
        events_file = logs / f"{name}-{result.attempts}.jsonl"
        log_file = logs / f"{name}-{result.attempts}.log"
        env["DB_FASTAPI_OUTCOMES"] = str(events_file)
        # pytest collects a file named on its command line even when a hook ignores it.
        files = [f for f in shard.files if f not in skip]
        if not files:
            break
        cmd = pytest_command(opts, shard.run, files, work / ".tmp")
        killed = False
        with log_file.open("w") as out:
            proc = subprocess.Popen(
                cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                returncode = proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                returncode = proc.wait()
                killed = True
        events = read_events(events_file)
        reports: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        last_start: str | None = None
        last_module: str | None = None
        finish: int | None = None
        order: list[str] = []  # this attempt's tests, in run order
        for event in events:
            kind = event["event"]
            if kind == "collected":
                order = [str(n) for n in event["nodeids"]]
                result.collected.update(order)
                last_module = None
            elif kind == "collectstart":
                last_module = str(event["nodeid"])
            elif kind == "collect_error":
                result.collect_errors[str(event["nodeid"])] = str(event["error"])
                last_module = None
            elif kind == "start":
                last_start = str(event["nodeid"])
                last_module = None
            elif kind == "report":
                reports[str(event["nodeid"])].append(event)
            elif kind == "finish":
                finish = int(event["exitstatus"])
        for nodeid, node_reports in reports.items():
            if any(r["when"] == "teardown" for r in node_reports):
                result.results[nodeid] = final_result(node_reports)
                result.results[nodeid].seconds = sum(r.get("duration", 0) for r in node_reports)
                skip.add(nodeid)
        if finish in (0, 1) or (finish == 5 and result.attempts > 1):
            break  # done (a resumed run whose tests are all recorded collects none)
        if finish == 5:
            result.harness_error = f"pytest collected no tests; see {log_file.relative_to(ROOT)}"
            break
        # The process died, or pytest stopped the session (a UsageError raised inside a test
        # stops it with status 4): pin it on the test (or module) it was in, then resume.
        if finish is not None:
            reason = f"pytest stopped with status {finish} ({EXIT_NAMES.get(finish, 'unknown')})"
            reason += last_error(log_file)
        elif killed:
            reason = "killed: the overall time limit was reached"
        elif "+ Timeout +" in tail(log_file):
            reason = f"timeout: more than {opts.test_timeout:g} s (pytest-timeout)"
        else:
            reason = f"the test process died (exit code {returncode})" + last_error(log_file)
        culprit = culprit_test(order, last_start, result.results)
        if (culprit or last_module) in skip:
            result.fatal = reason
            result.harness_error = (
                f"no progress after {reason} in {culprit or last_module}; see"
                f" {log_file.relative_to(ROOT)}"
            )
            break
        if culprit is not None:
            result.results[culprit] = Result(FAILED, reason)
            skip.add(culprit)
        elif last_module is not None:
            result.collect_errors[last_module] = reason
            skip.add(last_module)
        else:
            result.fatal = reason
            result.harness_error = (
                f"pytest ended outside any test: {reason}; see {log_file.relative_to(ROOT)}"
            )
            break
        if killed:
            result.fatal = reason
            break
        log(f"[{name}] {reason} in {culprit or last_module}; resuming")
    result.seconds = time.monotonic() - started
    return result


def culprit_test(order: list[str], last_start: str | None, results: Outcomes) -> str | None:
    """The test a run ended in: the last one started if it did not finish, else the next
    one due (pytest applies a test's filterwarnings marks before it logs the start)."""
    if last_start is not None and last_start not in results:
        return last_start
    if last_start is None:
        following = order  # empty if it ended in collection: the module is blamed then
    else:
        following = order[order.index(last_start) + 1 :] if last_start in order else []
    return next((n for n in following if n not in results), None)


EXIT_NAMES = {
    2: "interrupted",
    3: "internal error",
    4: "usage error",
    5: "no tests collected",
}


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by the process dying
    return events


_LAST_ERROR = re.compile(
    r"^(?:E\s+|INTERNALERROR> )?((?:[A-Za-z_][\w.]*(?:Error|Exception)\b|Fatal Python error:).*)$",
    re.MULTILINE,
)


def last_error(path: Path) -> str:
    """`: <the last exception line>` of a log, or nothing."""
    found = _LAST_ERROR.findall(tail(path))
    return f": {found[-1].strip()[:200]}" if found else ""


def tail(path: Path, size: int = 20000) -> str:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        return f.read().decode("utf-8", "replace")


def run_all(opts: Options, plan: list[Shard], only: set[str] | None, jobs: int) -> list[RunResult]:
    """Runs the shards, `jobs` at a time, in the order given; one RunResult per run."""
    lock = threading.Lock()
    spans: dict[str, list[float]] = {}

    def one(shard: Shard) -> ShardResult:
        begin = time.monotonic()
        res = run_shard(opts, shard, only)
        end = time.monotonic()
        with lock:
            span = spans.setdefault(shard.run, [begin, end])
            span[0], span[1] = min(span[0], begin), max(span[1], end)
        counts = collections.Counter(r.outcome for r in res.results.values())
        summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "no tests"
        log(
            f"[{shard.run} {shard.index + 1}/{shard.count}] {len(shard.files)} files: {summary}"
            f" in {res.seconds:.1f} s"
            + (f", {len(res.collect_errors)} collection errors" if res.collect_errors else "")
        )
        return res

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        done = list(pool.map(one, plan))
    runs = []
    for run in dict.fromkeys(s.run for s in plan):
        span = spans[run]
        runs.append(RunResult(run, [r for r in done if r.shard.run == run], span[1] - span[0]))
    return runs


# --- the report ---------------------------------------------------------------------------


def module_of(nodeid: str) -> str:
    return nodeid.split("::")[0]


def directory_of(nodeid: str) -> str:
    return Path(module_of(nodeid)).parent.as_posix().removeprefix(TUTORIAL + "/")


def is_openapi(nodeid: str) -> bool:
    return "openapi" in nodeid.split("::")[-1].split("[")[0]


_STATUS_ASSERT = re.compile(r"^(?:AssertionError: )?assert (\d{3}) == (\d{3})$")


def normalize_error(error: str) -> str:
    """The grouping key of an error: file paths, addresses, parameter names and the details
    of assertions dropped; assertions sorted into a few kinds."""
    error = re.sub(r" \((?:/|[A-Za-z]:\\)[^)]*\)", "", error)
    error = re.sub(r"0x[0-9a-fA-F]+", "0x…", error)
    error = re.sub(r" \((?:parameter |data_bridge\.api has ).*$", "", error)
    if not error.startswith(("AssertionError", "assert ")):
        return error[:160]
    status = _STATUS_ASSERT.match(error)
    body = error.removeprefix("AssertionError: ").removeprefix("assert ")
    if status:
        return f"AssertionError: status {status[1]} where FastAPI answers {status[2]}"
    if body.startswith('{"detail":"Not Found"'):
        return "AssertionError: 404 Not Found"
    if body.startswith('{"detail":[{"type":'):
        return "AssertionError: 422, a validation error"
    if body.startswith(("{'openapi'", "{'info'", "{'components'", "{'paths'")):
        return "AssertionError: the OpenAPI document differs"
    if body.startswith("{'detail': ["):
        return "AssertionError: the validation error's body differs"
    return "AssertionError: another check on the response"


def outcome_of(run: RunResult, universe: Iterable[str]) -> Outcomes:
    results = run.results
    return {
        nodeid: results.get(nodeid) or Result(FAILED, run.error_for_missing(nodeid))
        for nodeid in universe
    }


def pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "–"


def git_describe(where: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def package_version(python: str, name: str) -> str:
    out = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "not installed"


def write_report(
    opts: Options, fa_run: RunResult, db_run: RunResult, argv: list[str], flaky: Outcomes
) -> None:
    universe = sorted(fa_run.collected | db_run.collected | set(fa_run.results))
    fa = outcome_of(fa_run, universe)
    db = outcome_of(db_run, universe)
    db.update({n: r for n, r in flaky.items() if n in db})
    fa_pass = {n for n in universe if fa[n].outcome == PASSED}
    db_pass = {n for n in universe if db[n].outcome == PASSED and n not in flaky}
    both = fa_pass & db_pass

    lines: list[str] = []
    add = lines.append
    today = datetime.date.today().isoformat()
    python_version = subprocess.run(
        [opts.python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    add("# FastAPI compatibility: FastAPI's tutorial tests on data-bridge")
    add("")
    add(
        f"FastAPI {FASTAPI_VERSION}'s own tests of its tutorial (`{TUTORIAL}` of the sdist, with"
        " the `docs_src` applications they import and FastAPI's pytest configuration), run"
        " unchanged twice: against FastAPI itself, and against data-bridge with `fastapi` (and"
        " the `starlette` modules data-bridge has) resolved to `data_bridge.api` by the import"
        " shim `tests/fastapi_compat/db_fastapi_shim.py`. Generated by"
        " `scripts/fastapi_tests.py`; do not edit by hand."
    )
    add("")
    add(f"- Date: {today}; data-bridge `{git_describe(opts.src)}`; Python {python_version};")
    add(
        f"  FastAPI {package_version(opts.python, 'fastapi')}, Starlette"
        f" {package_version(opts.python, 'starlette')}."
    )
    add(f"- Command: `make fastapi-tests` (that is, `{' '.join(argv)}`).")
    add(
        f"- Each test has {opts.test_timeout:g} s (pytest-timeout); a test that hangs or"
        " crashes counts as failed and the rest of its run goes on in a new process."
    )
    add(
        f"- Time: FastAPI run {fa_run.seconds:.0f} s, data-bridge run {db_run.seconds:.0f} s"
        " (wall clock, test files split over parallel pytest processes)."
    )
    add(
        "- A test counts as OpenAPI when its function name contains `openapi`; every other"
        " test is a behaviour test. A test file that fails to import counts each of its tests"
        " (as collected on FastAPI) as failed."
    )
    add("")
    add("## Totals")
    add("")
    add("| tests | collected | pass on FastAPI | pass on data-bridge | share of FastAPI's passes |")
    add("| --- | ---: | ---: | ---: | ---: |")
    for label, pick in (
        ("behaviour", lambda n: not is_openapi(n)),
        ("OpenAPI", is_openapi),
        ("all", lambda n: True),
    ):
        total = [n for n in universe if pick(n)]
        fp = [n for n in total if n in fa_pass]
        dp = [n for n in total if n in db_pass]
        ok = [n for n in fp if n in db_pass]
        add(f"| {label} | {len(total)} | {len(fp)} | {len(dp)} | {pct(len(ok), len(fp))} |")
    add("")
    add(
        f"Of the {len(fa_pass)} tests that pass on FastAPI, **{len(both)}"
        f" ({pct(len(both), len(fa_pass))}) pass on data-bridge**."
    )
    extra = sorted(db_pass - fa_pass)
    if extra:
        add(
            f" {len(extra)} tests pass on data-bridge but not on FastAPI: "
            + ", ".join(f"`{n}`" for n in extra)
            + "."
        )
    fa_bad = [n for n in universe if fa[n].outcome not in (PASSED, SKIPPED, XFAILED)]
    if fa_bad:
        add("")
        add("Tests that do not pass on FastAPI here (left out of the share):")
        add("")
        for n in fa_bad:
            add(f"- `{n}`: {fa[n].outcome}: {fa[n].error}")
    fa_collect = {c: e for sh in fa_run.shards for c, e in sh.collect_errors.items()}
    if fa_collect:
        add("")
        add("Test files that do not import on FastAPI here (their tests are not counted):")
        add("")
        for c, e in sorted(fa_collect.items()):
            add(f"- `{c}`: {md_text(e)}")
    if flaky:
        add("")
        add(
            "Flaky on data-bridge (passed, then failed when run again, or listed in"
            " `tests/fastapi_compat/flaky.txt`; counted as failing and left out of"
            " `passing.txt`):"
        )
        add("")
        for n, r in sorted(flaky.items()):
            add(f"- `{n}`: {md_text(r.error or r.outcome)}")
    add("")
    add("## Per tutorial directory")
    add("")
    add(f"Passing tests, data-bridge / FastAPI, per directory of `{TUTORIAL}`.")
    add("")
    add("| directory | behaviour | OpenAPI | all |")
    add("| --- | ---: | ---: | ---: |")
    by_dir: dict[str, list[str]] = collections.defaultdict(list)
    for n in universe:
        by_dir[directory_of(n)].append(n)

    def cell(nodes: list[str]) -> str:
        fp = [n for n in nodes if n in fa_pass]
        return f"{sum(1 for n in fp if n in db_pass)} / {len(fp)}" if nodes else "–"

    for d in sorted(by_dir):
        nodes = by_dir[d]
        behaviour = [n for n in nodes if not is_openapi(n)]
        openapi = [n for n in nodes if is_openapi(n)]
        add(f"| `{d}` | {cell(behaviour)} | {cell(openapi)} | {cell(nodes)} |")
    add("")
    add("## Known gaps")
    add("")
    add(
        "What the remaining failures need, and where that work is tracked (written by hand in"
        " scripts/fastapi_tests.py, KNOWN_GAPS):"
    )
    add("")
    for gap, reason in KNOWN_GAPS:
        add(f"- {gap}: {reason}")
    if not KNOWN_GAPS:
        add("- None: each remaining failure is a difference kept on purpose (below).")
    add("")
    add("## Differences kept on purpose")
    add("")
    add("Where data-bridge answers otherwise by design (scripts/fastapi_tests.py, DIFFERENCES):")
    add("")
    for topic, reason in DIFFERENCES:
        add(f"- {topic}: {reason}")
    add("")
    add("## What fails on data-bridge, by first error")
    add("")
    add(
        "Every test file with a test that passes on FastAPI and fails on data-bridge, grouped"
        " by the error of its first such test (assertion failures by kind). Counts are"
        " the failing tests of the file."
    )
    add("")
    failing_by_module: dict[str, list[str]] = collections.defaultdict(list)
    for n in universe:
        if n in fa_pass and n not in db_pass:
            failing_by_module[module_of(n)].append(n)
    groups: dict[str, list[tuple[str, int, str]]] = collections.defaultdict(list)
    for module, nodes in failing_by_module.items():
        first = db[nodes[0]].error or db[nodes[0]].outcome
        groups[normalize_error(first)].append((module, len(nodes), first))
    ordered = sorted(groups.items(), key=lambda kv: (-sum(c for _, c, _ in kv[1]), kv[0]))
    if not ordered:
        add("Nothing: every test that passes on FastAPI passes on data-bridge.")
    add("| first error | files | tests |")
    add("| --- | ---: | ---: |")
    for key, members in ordered:
        add(f"| {md_cell(key)} | {len(members)} | {sum(c for _, c, _ in members)} |")
    for key, members in ordered:
        add("")
        add(f"### {md_text(key)}")
        add("")
        for module, count, first in sorted(members):
            detail = f": {md_text(first[:200])}" if normalize_error(first) != first else ""
            add(f"- `{module.removeprefix(TUTORIAL + '/')}` ({count}){detail}")
    add("")
    COMPAT_DOC.write_text("\n".join(lines))

    previous = read_passing() if PASSING_FILE.is_file() else set()
    header = [
        f"# Tests of FastAPI {FASTAPI_VERSION}'s {TUTORIAL} that pass on data-bridge"
        f" ({len(db_pass)} of {len(universe)} collected; {len(fa_pass)} pass on FastAPI).",
        f"# Written by `make fastapi-tests` on {today}; `make fastapi-check` (in `make test`)",
        "# fails when one of them stops passing. See docs/compat.md.",
    ]
    PASSING_FILE.write_text("\n".join(header + sorted(db_pass)) + "\n")
    lost = sorted(previous - db_pass)
    if lost:
        log(f"{len(lost)} tests of the previous passing.txt no longer pass, among them:")
        for n in lost[:20]:
            log(f"  {n}: {db[n].error}")
    log(f"{len(db_pass - previous)} tests pass that were not in the previous passing.txt")

    results = {
        "fastapi_version": FASTAPI_VERSION,
        "date": today,
        "runs": {
            run.run: {n: {"outcome": o[n].outcome, "error": o[n].error} for n in universe}
            for run, o in ((fa_run, fa), (db_run, db))
        },
    }
    (BUILD / "results.json").write_text(json.dumps(results, indent=1))

    log(
        f"FastAPI: {len(fa_pass)} of {len(universe)} pass"
        f" ({sum(1 for n in fa_pass if not is_openapi(n))} behaviour,"
        f" {sum(1 for n in fa_pass if is_openapi(n))} OpenAPI) in {fa_run.seconds:.1f} s"
    )
    log(
        f"data-bridge: {len(db_pass)} of {len(universe)} pass"
        f" ({sum(1 for n in db_pass if not is_openapi(n))} behaviour,"
        f" {sum(1 for n in db_pass if is_openapi(n))} OpenAPI) in {db_run.seconds:.1f} s;"
        f" {len(both)} of FastAPI's {len(fa_pass)} passes ({pct(len(both), len(fa_pass))})"
    )
    slowest = sorted(db_run.results.items(), key=lambda kv: -kv[1].seconds)[:5]
    log("slowest on data-bridge: " + ", ".join(f"{n} {r.seconds:.1f} s" for n, r in slowest))
    for key, members in ordered[:8]:
        log(f"  {sum(c for _, c, _ in members):5d} tests, {len(members):3d} files: {key}")
    log(f"wrote {COMPAT_DOC.relative_to(ROOT)}, {PASSING_FILE.relative_to(ROOT)}")


def md_text(text: str) -> str:
    return text.replace("`", "'").replace("<", "&lt;").replace(">", "&gt;")


def md_cell(text: str) -> str:
    return md_text(text).replace("|", "\\|")


def read_nodeids(path: Path) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def read_passing() -> set[str]:
    return read_nodeids(PASSING_FILE)


# --- main -----------------------------------------------------------------------------------


def run_subset(opts: Options, wanted: set[str], jobs: int) -> tuple[Outcomes, list[str], float]:
    """The data-bridge run of the tests `wanted` only: outcomes, harness errors, seconds."""
    available = set(tutorial_files())
    files = sorted({module_of(n) for n in wanted} & available)
    if not files:
        return {n: Result(FAILED, "its test file is not in the sdist") for n in wanted}, [], 0.0
    parts = split(files, jobs)
    plan = [Shard(DATA_BRIDGE, i, len(parts), part) for i, part in enumerate(parts)]
    (db_run,) = run_all(opts, plan, wanted, jobs)
    return outcome_of(db_run, wanted), db_run.harness_errors, db_run.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("report", "check"))
    parser.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    parser.add_argument(
        "--src",
        type=Path,
        default=ROOT / "src",
        help="the directory holding the data_bridge package (default: src/ of this checkout)",
    )
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--test-timeout", type=float, default=30.0, help="seconds per test")
    parser.add_argument(
        "--total-timeout",
        type=float,
        default=None,
        help="seconds for everything (default: 1800 for report, 240 for check)",
    )
    args = parser.parse_args()
    total = args.total_timeout or (1800.0 if args.mode == "report" else 240.0)
    jobs = max(1, args.jobs)
    argv = [
        Path(args.python).relative_to(ROOT).as_posix()
        if Path(args.python).is_relative_to(ROOT)
        else args.python
    ]
    argv += ["scripts/fastapi_tests.py", args.mode]

    ensure_sdist(args.python)
    extract_sources()
    opts = Options(
        args.python, args.test_timeout, time.monotonic() + total, args.mode, args.src.resolve()
    )

    if args.mode == "report":
        files = tutorial_files()
        if not files:
            log(f"no test files under {TUTORIAL} in the sdist")
            return 1
        parts = split(files, jobs)
        plan = [
            Shard(run, i, len(parts), part)
            for run in (FASTAPI, DATA_BRIDGE)
            for i, part in enumerate(parts)
        ]
        runs = run_all(opts, plan, None, jobs)
        errors = [f"{r.run}: {e}" for r in runs for e in r.harness_errors]
        if errors:
            for e in errors:
                log(e)
            log("the harness failed; docs/compat.md and passing.txt left as they were")
            return 1
        fa_run, db_run = runs
        # Run data-bridge's passes once more: a test that fails then is flaky and stays
        # out of passing.txt (make test must not fail by chance).
        passes = {n for n, r in db_run.results.items() if r.outcome == PASSED}
        again, errors, seconds = run_subset(replace(opts, tag="report-confirm"), passes, jobs)
        if errors:
            for e in errors:
                log(f"{DATA_BRIDGE} (confirmation): {e}")
            return 1
        flaky = {n: r for n, r in again.items() if r.outcome != PASSED}
        known = read_nodeids(FLAKY_FILE) if FLAKY_FILE.is_file() else set()
        for n in passes:
            if n not in flaky and (n in known or module_of(n) in known):
                flaky[n] = Result(FAILED, f"listed in {FLAKY_FILE.relative_to(ROOT)}")
        log(f"confirmation run of the {len(passes)} passes: {len(flaky)} flaky ({seconds:.1f} s)")
        write_report(opts, fa_run, db_run, argv, flaky)
        return 0

    # check
    if not PASSING_FILE.is_file():
        log(f"{PASSING_FILE.relative_to(ROOT)} is missing: run `make fastapi-tests`")
        return 1
    wanted = read_passing()
    if not wanted:
        log("passing.txt lists no test: nothing passes on data-bridge yet, nothing to check")
        return 0
    db, errors, seconds = run_subset(opts, wanted, jobs)
    failed = sorted(n for n in wanted if db[n].outcome != PASSED)
    lost = failed
    if failed and not errors:
        # One retry in a fresh process: a test that passes then is flaky, not lost.
        log(f"{len(failed)} failed; running them once more")
        retry, errors, more = run_subset(replace(opts, tag=opts.tag + "-retry"), set(failed), jobs)
        seconds += more
        lost = [n for n in failed if retry[n].outcome != PASSED]
        for n in failed:
            if n not in lost:
                log(f"flaky (failed, then passed): {n}: {db[n].error}")
        db.update({n: retry[n] for n in lost})
    for e in errors:
        log(f"harness: {e}")
    log(
        f"{len(wanted) - len(lost)} of the {len(wanted)} tests in passing.txt pass on data-bridge"
        f" ({seconds:.1f} s)"
    )
    if lost:
        log(f"{len(lost)} of them no longer pass:")
        for n in lost:
            log(f"  {n}: {db[n].outcome}: {db[n].error}")
        log("fix them, or run `make fastapi-tests` to rewrite passing.txt if this is intended")
    return 1 if lost or errors else 0


if __name__ == "__main__":
    sys.exit(main())
