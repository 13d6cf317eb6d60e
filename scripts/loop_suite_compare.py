"""CPython's asyncio tests on PyLoop, asyncio's own loop and uvloop, one table.

    loop_suite_compare.py [--timeout SECONDS] [--loops pyloop,asyncio,uvloop] [module ...]

Runs tests/py/loop_cpython_suite.py once per module and loop, in a process of its own, with
`--outcomes` so that each test's outcome is written as it happens. A test that hangs past
the suite's watchdog and is then ended by faulthandler (its process exits) is counted as
hung, and the module resumes after it in a new process, so one loop's hang costs that loop
one test rather than the rest of the module. Prints a Markdown table of the passed tests
per module (the table in docs/loop-suite.md), then each loop's hung tests. `make
loop-suite-compare` runs it; outcome files are kept under build/loop-suite/<loop>/.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "tests" / "py" / "loop_cpython_suite.py"
OUT_DIR = ROOT / "build" / "loop-suite"
LOOPS = ["pyloop", "asyncio", "uvloop"]
# Resumed processes per module and loop before giving up (each is one more hung test).
MAX_RESUMES = 20

sys.path.insert(0, str(SUITE.parent))
from loop_cpython_suite import ALL_MODULES  # noqa: E402


@dataclass
class Counts:
    total: int = 0
    passed: int = 0
    hung: list[str] = field(default_factory=list)
    finished: bool = False


def read_outcomes(path: Path) -> Counts:
    counts = Counts()
    started: set[str] = set()
    done: set[str] = set()
    for line in path.read_text().splitlines() if path.exists() else []:
        what, _, detail = line.partition("\t")
        if what == "total":
            counts.total = int(detail)
        elif what == "start":
            started.add(detail)
        else:
            done.add(detail)
            counts.passed += what == "pass"
            if what == "hung":
                counts.hung.append(detail)
    counts.finished = bool(counts.total) and started <= done and len(done) >= counts.total
    return counts


def run_resumable(command: list[str], path: Path) -> Counts:
    """Runs `command` (a suite process for one module and loop, writing its outcomes to
    `path`) until every test has an outcome; a process that ended mid-test is resumed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.with_suffix(".log").unlink(missing_ok=True)
    counts = Counts()
    for _ in range(MAX_RESUMES + 1):
        with path.with_suffix(".log").open("a") as log:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        counts = read_outcomes(path)
        if counts.finished or not counts.total:
            break
    return counts


def run_module(loop: str, module: str, timeout: float) -> Counts:
    path = OUT_DIR / loop / f"{module}.txt"
    command = [sys.executable, str(SUITE), "--loop", loop, "--timeout", str(timeout)]
    return run_resumable(command + ["--outcomes", str(path), module], path)


def print_table(results: dict[str, dict[str, Counts]], loops: list[str]) -> None:
    """The Markdown table of passed tests per module and loop, then the hung tests."""
    print("| module | tests | " + " | ".join(loops) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in loops) + " |")
    sums = dict.fromkeys(loops, 0)
    tests = 0
    for module, by_loop in results.items():
        total = max(c.total for c in by_loop.values())
        tests += total
        cells = []
        for loop, c in by_loop.items():
            sums[loop] += c.passed
            note = f" ({len(c.hung)} hung)" if c.hung else ""
            note += "" if c.finished else " (did not finish)"
            cells.append(f"{c.passed}{note}")
        print(f"| {module} | {total} | " + " | ".join(cells) + " |")
    print(f"| **total** | **{tests}** | " + " | ".join(f"**{sums[lp]}**" for lp in loops) + " |")
    for loop in loops:
        for module, by_loop in results.items():
            for test_id in by_loop[loop].hung:
                print(f"hung on {loop}: {module} {test_id}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--loops", default=",".join(LOOPS))
    parser.add_argument("modules", nargs="*")
    args = parser.parse_args()
    loops = args.loops.split(",")
    modules = args.modules or ALL_MODULES
    results: dict[str, dict[str, Counts]] = {}
    for module in modules:
        results[module] = {loop: run_module(loop, module, args.timeout) for loop in loops}
        cells = ", ".join(f"{loop} {c.passed}/{c.total}" for loop, c in results[module].items())
        print(f"{module}: {cells}", file=sys.stderr, flush=True)
    print_table(results, loops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
