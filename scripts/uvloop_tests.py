"""uvloop's own test suite on PyLoop, uvloop and asyncio's loop, one table.

    uvloop_tests.py [--timeout SECONDS] [--loops pyloop,uvloop,asyncio] [module ...]

The pinned uvloop sdist is downloaded once with pip into build/uvloop-tests/dist (checked
against its sha256) and its tests/ extracted to build/uvloop-tests/src. uvloop's test
modules define each group of tests once, in a mixin, and run it twice: combined with
`uvloop._testbase.UVTestCase` (a uvloop loop) and with `AIOTestCase` (asyncio's). Only
those shared tests run here; the tests a `Test_UV_*` class adds on its own test uvloop's
internals. The PyLoop variant of a group is the same mixin combined with PyLoopTestCase
below, our shim over uvloop's `BaseTestCase`.

Each module runs once per loop in a process of its own, every test under the CPython
suite's watchdog (tests/py/loop_cpython_suite.py: a hang is reported by name and, if the
test does not return, the module resumes after it in a new process). Prints a Markdown
table of the passed tests per module (docs/loop-suite.md); `make uvloop-tests` runs it.
Outcome files and logs are kept under build/uvloop-tests/<loop>/.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import os
import subprocess
import sys
import tarfile
import unittest
from pathlib import Path
from typing import Any

UVLOOP_VERSION = "0.23.0"
SDIST_SHA256 = "28d160f51ab4da3b187063652e643dea6831072add4adc1e6d62afbe73b6be27"

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "uvloop-tests"
SDIST = BUILD / "dist" / f"uvloop-{UVLOOP_VERSION}.tar.gz"
SOURCES = BUILD / "src"
LOOPS = ["pyloop", "uvloop", "asyncio"]
# The modules with tests shared by both of uvloop's variants. test_aiohttp needs aiohttp
# and skips itself without it.
MODULES = [
    "test_base",
    "test_context",
    "test_dns",
    "test_executors",
    "test_pipes",
    "test_process",
    "test_signals",
    "test_sockets",
    "test_tcp",
    "test_udp",
    "test_unix",
    "test_aiohttp",
]

# Why PyLoop does not pass these (test method name -> reason); printed after the table.
KNOWN = {
    "test_shutdown_timeout_handler_not_set": "a TCP EOF without close_notify while reading is "
    "paused: PyLoop keeps asyncio's behaviour (the data is delivered once reading resumes, "
    "then connection_lost), which CPython's test_ssl test of the same name asserts; uvloop "
    "drops the data and closes at once, which this test asserts (it waits until the watchdog)",
}

sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "py"))
from loop_suite_compare import Counts, print_table, run_resumable  # noqa: E402

# --- the sources ------------------------------------------------------------------------


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_sources() -> None:
    if not SDIST.is_file():
        print(f"uvloop-tests: downloading the uvloop=={UVLOOP_VERSION} sdist", flush=True)
        # --no-binary for uvloop alone: its build requirements (needed by pip to read the
        # sdist's metadata) come as wheels.
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
        command += ["--no-binary", "uvloop", f"uvloop=={UVLOOP_VERSION}", "-d", str(SDIST.parent)]
        subprocess.run(command, check=True)
    digest = sha256(SDIST)
    if digest != SDIST_SHA256:
        raise SystemExit(f"uvloop-tests: {SDIST} has sha256 {digest}, expected {SDIST_SHA256}")
    stamp = SOURCES / ".complete"
    if stamp.is_file() and stamp.read_text() == UVLOOP_VERSION:
        return
    prefix = f"uvloop-{UVLOOP_VERSION}/tests/"
    with tarfile.open(SDIST) as tar:
        for member in tar.getmembers():
            if not (member.isfile() and member.name.startswith(prefix)):
                continue
            name = member.name[len(prefix) :]
            if ".." in Path(name).parts or name.startswith("/"):
                raise SystemExit(f"uvloop-tests: unsafe path in the sdist: {member.name}")
            data = tar.extractfile(member)
            assert data is not None
            target = SOURCES / "tests" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data.read())
    stamp.write_text(UVLOOP_VERSION)


# --- one module on one loop (in its own process) ----------------------------------------


def shared_groups(mod: Any) -> list[tuple[type, type, tuple[type, ...]]]:
    """(uvloop class, asyncio class, their mixins) for each group of tests that the module
    runs on both of uvloop's variants."""
    from uvloop import _testbase as tb

    classes = [c for c in vars(mod).values() if isinstance(c, type)]
    classes = [c for c in classes if c.__module__ == mod.__name__]

    def mixins(cls: type) -> tuple[type, ...]:
        return tuple(b for b in cls.__bases__ if not issubclass(b, tb.BaseTestCase))

    uv = [c for c in classes if issubclass(c, tb.UVTestCase) and mixins(c)]
    aio = {mixins(c): c for c in classes if issubclass(c, tb.AIOTestCase) and mixins(c)}
    return [(c, aio[mixins(c)], mixins(c)) for c in uv if mixins(c) in aio]


def pyloop_case() -> type:
    from uvloop import _testbase as tb

    from data_bridge import pyloop

    class PyLoopTestCase(tb.BaseTestCase):
        """uvloop's test base with a PyLoop: its setUp sets the policy from new_policy()
        and the loop from new_loop(). `implementation` is neither 'uvloop' nor 'asyncio',
        so the tests take their non-asyncio branches (asyncio's known bugs and missing
        features are skipped only for asyncio)."""

        implementation = "pyloop"

        def new_loop(self) -> asyncio.AbstractEventLoop:
            return pyloop.new_event_loop()

        def new_policy(self) -> Any:
            return pyloop.EventLoopPolicy()

    return PyLoopTestCase


def module_suite(loop: str, module: str) -> unittest.TestSuite:
    sys.path.insert(0, str(SOURCES))
    mod = importlib.import_module(f"tests.{module}")
    suite = unittest.TestSuite()
    for uv_cls, aio_cls, mixins in shared_groups(mod):
        names = sorted({n for m in mixins for n in dir(m) if n.startswith("test_")})
        if loop == "uvloop":
            cls = uv_cls
        elif loop == "asyncio":
            cls = aio_cls
        else:
            attrs: dict[str, Any] = {"__module__": mod.__name__}
            if "NEW_LOOP" in vars(uv_cls):
                # test_signals runs scripts in a child process that make their loop with
                # this expression (PYTHONPATH reaches src/ there).
                attrs["NEW_LOOP"] = "__import__('data_bridge.pyloop').pyloop.new_event_loop()"
            name = uv_cls.__name__.replace("UV", "PyLoop")
            cls = type(name, (*mixins, pyloop_case()), attrs)
        suite.addTests(cls(n) for n in names)
    return suite


def run_child(loop: str, module: str, timeout: float, outcomes: Path) -> int:
    import loop_cpython_suite as runner

    runner.TimedResult.watchdog = runner.Watchdog(timeout)
    suite, runner.TimedResult.outcomes = runner.resume(outcomes, module_suite(loop, module))
    with open(os.devnull, "w") as devnull:
        result = unittest.TextTestRunner(
            verbosity=0, stream=devnull, resultclass=runner.TimedResult
        ).run(suite)
    for test, tb in result.failures + result.errors:
        print(f"FAIL: {test.id()}\n{tb}", flush=True)
    for test, reason in result.skipped:
        print(f"skipped: {test.id()}: {reason}", flush=True)
    return 0


# --- all modules on all loops -----------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--loops", default=",".join(LOOPS))
    parser.add_argument("--child", nargs=3, metavar=("LOOP", "MODULE", "OUTCOMES"))
    parser.add_argument("modules", nargs="*")
    args = parser.parse_args()
    if args.child:
        import loop_cpython_suite

        loop, module, outcomes = args.child
        loop_cpython_suite.exit_now(run_child(loop, module, args.timeout, Path(outcomes)))
    import uvloop

    if uvloop.__version__ != UVLOOP_VERSION:
        raise SystemExit(
            f"uvloop-tests: uvloop {uvloop.__version__} is installed, the tests are "
            f"{UVLOOP_VERSION}'s (requirements/loop-compare.txt)"
        )
    ensure_sources()
    loops = args.loops.split(",")
    env_path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    os.environ["PYTHONPATH"] = env_path
    results: dict[str, dict[str, Counts]] = {}
    for module in args.modules or MODULES:
        results[module] = {}
        for loop in loops:
            path = BUILD / loop / f"{module}.txt"
            command = [sys.executable, __file__, "--timeout", str(args.timeout)]
            command += ["--child", loop, module, str(path)]
            results[module][loop] = run_resumable(command, path)
        cells = ", ".join(f"{loop} {c.passed}/{c.total}" for loop, c in results[module].items())
        print(f"{module}: {cells}", file=sys.stderr, flush=True)
    print_table(results, loops)
    if "pyloop" in loops:
        print_pyloop_misses(list(results))
    return 0


def print_pyloop_misses(modules: list[str]) -> None:
    """PyLoop's tests that did not pass, with the reason when it is known."""
    for module in modules:
        path = BUILD / "pyloop" / f"{module}.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            what, _, test_id = line.partition("\t")
            if what in ("fail", "hung"):
                name = test_id.rsplit(".", 1)[-1]
                print(f"PyLoop {what}: {test_id}: {KNOWN.get(name, 'not explained yet')}")


if __name__ == "__main__":
    sys.exit(main())
