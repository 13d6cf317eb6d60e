"""JSON codec benchmark: data_bridge.json vs orjson, ssrjson, msgspec and the stdlib json.

Measures dumps (Python objects -> bytes) and loads (bytes -> Python objects) on the shared
corpora (../shared/data/json from the repository root: twitter.json, citm_catalog.json,
geo_floats.json) and on a small API-sized dict, prints a table and writes it into
bench/RESULTS.md between the markers <!-- json:start --> and <!-- json:end -->.

Each cell is the best of several repeats of a timed loop (the minimum is the least noisy
estimate on a shared machine). The stdlib's dumps is measured as
json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() so that all of them
produce the same compact UTF-8 bytes (ssrjson through dumps_to_bytes, msgspec through
msgspec.json.encode/decode). ssrjson and msgspec are peers only when importable (both are in
requirements/bench.txt); a missing one is reported and left out of the table.

The cyclic GC is in the same state for every library's timed loops: disabled by default
(pure codec speed), enabled with --gc on (then data_bridge's loads pausing it inside a call
counts, and the peers pay for their collections); the output says which.

Usage: PYTHONPATH=src python bench/bench_json.py [--quick] [--no-write] [--docs NAME ...]
       [--ops dumps|loads ...] [--clock wall|cpu] [--gc off|on]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from data_bridge import json as dbjson

ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIR = ROOT / ".." / "shared" / "data" / "json"
RESULTS = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- json:start -->", "<!-- json:end -->"
SMALL = {
    "message": "Hello, World!",
    "status": "success",
    "timestamp": 1234567890,
    "data": {"key": "value"},
}


def std_dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


LIBS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    "data_bridge": (dbjson.dumps, dbjson.loads),
    "orjson": (orjson.dumps, orjson.loads),
}
VERSIONS = {"orjson": orjson.__version__}
MISSING: list[str] = []
try:
    import ssrjson

    LIBS["ssrjson"] = (ssrjson.dumps_to_bytes, ssrjson.loads)
    VERSIONS["ssrjson"] = ssrjson.__version__
except ImportError:
    MISSING.append("ssrjson")
try:
    import msgspec

    LIBS["msgspec"] = (msgspec.json.encode, msgspec.json.decode)
    VERSIONS["msgspec"] = msgspec.__version__
except ImportError:
    MISSING.append("msgspec")
LIBS["json"] = (std_dumps, json.loads)
PEERS = [lib for lib in LIBS if lib != "data_bridge"]


def best_times(
    fns: dict[str, Callable[[Any], Any]],
    arg: Any,
    budget: float,
    repeats: int,
    clock: Callable[[], float] = time.perf_counter,
    gc_on: bool = False,
) -> dict[str, float]:
    """Seconds per call for each function: the best of `repeats` timed loops, each sized to
    about budget/repeats, with the functions taking turns loop by loop so that a noisy
    neighbour on the shared machine hits all of them alike. clock is wall time by default;
    time.thread_time (--clock cpu) leaves out the time the process waits for a CPU, which
    is steadier on a machine shared with other work.

    Every library's timed loop runs in the same cyclic-GC state: collected beforehand, then
    disabled for the loop (the default), or enabled (gc_on). With the collector on, a
    library that pauses it inside a call (data_bridge's loads does for documents of 4 KiB
    or more) keeps that product behaviour, and the others pay for their collections."""
    numbers = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        fn(arg)
        one = max(time.perf_counter() - t0, 1e-7)
        numbers[name] = max(1, int(budget / repeats / one))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            number = numbers[name]
            gc.collect()
            if not gc_on:
                gc.disable()
            try:
                t0 = clock()
                for _ in range(number):
                    fn(arg)
                elapsed = clock() - t0
            finally:
                gc.enable()
            best[name] = min(best[name], elapsed / number)
    return best


def fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.2f} µs"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter timing budget")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    ap.add_argument("--docs", nargs="+", help="only these documents (file names or 'small')")
    ap.add_argument("--ops", nargs="+", choices=("dumps", "loads"), default=["dumps", "loads"])
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time.perf_counter (default) or the thread's CPU time (steadier when shared)",
    )
    ap.add_argument(
        "--gc",
        choices=("off", "on"),
        default="off",
        help="cyclic GC state during every library's timed loops: off (default) or on",
    )
    args = ap.parse_args()
    budget, repeats = (0.3, 3) if args.quick else (1.5, 15)
    for lib in MISSING:
        print(
            f"note: {lib} is not importable; left out (pip install -r requirements/bench.txt)",
            file=sys.stderr,
        )

    cases: list[tuple[str, bytes]] = []
    for name in ("twitter.json", "citm_catalog.json", "geo_floats.json"):
        path = CORPUS_DIR / name
        if not path.exists():
            print(f"skipping {name}: not found at {CORPUS_DIR.resolve()}", file=sys.stderr)
            continue
        cases.append((name, path.read_bytes()))
    cases.append(("small API dict", orjson.dumps(SMALL)))
    if args.docs:
        wanted = {"small API dict" if d == "small" else d for d in args.docs}
        cases = [(name, data) for name, data in cases if name in wanted]

    print(f"cyclic GC during the timed loops: {args.gc} for every library", flush=True)
    rows = []
    for name, data in cases:
        obj = json.loads(data)
        assert dbjson.loads(data) == obj
        assert dbjson.loads(dbjson.dumps(obj)) == obj
        for op in args.ops:
            arg = obj if op == "dumps" else data
            fns = {lib: (enc if op == "dumps" else dec) for lib, (enc, dec) in LIBS.items()}
            clock = time.thread_time if args.clock == "cpu" else time.perf_counter
            times = best_times(fns, arg, budget, repeats, clock, gc_on=args.gc == "on")
            rows.append((name, op, times))
            print(
                f"{name:18} {op:5} "
                + "  ".join(f"{lib} {fmt(t):>10}" for lib, t in times.items())
                + "".join(
                    f"  {lib}/db {times[lib] / times['data_bridge']:.2f}x"
                    for lib in PEERS
                    if lib != "json"
                ),
                flush=True,
            )

    lines = [
        "## JSON codec (data_bridge.json vs " + ", ".join(PEERS) + ")",
        "",
        "- Command: `PYTHONPATH=src .venv/bin/python bench/bench_json.py"
        + (" --quick" if args.quick else "")
        + (" --clock cpu" if args.clock == "cpu" else "")
        + (" --gc on" if args.gc == "on" else "")
        + "`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs, {cpu_model()}, {platform.system()} "
        f"{platform.release()}",
        f"- Software: Python {platform.python_version()}, "
        + ", ".join(f"{lib} {v}" for lib, v in VERSIONS.items())
        + "".join(f" ({lib} not installed)" for lib in MISSING),
        "- Method: "
        + ("CPU time (thread_time)" if args.clock == "cpu" else "wall time")
        + " per call, best of "
        f"{repeats} timed loops (~{budget:.1f} s per cell), the libraries taking turns "
        "loop by loop; stdlib dumps is "
        '`json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()`. '
        "\"data_bridge vs X\" is X's time over data_bridge's (above 1.00× means "
        "data_bridge is faster). "
        + (
            "Cyclic GC enabled during every library's timed loops (collected before each); "
            "data_bridge's loads pauses it inside a call on documents of 4 KiB or more, the "
            "peers do not."
            if args.gc == "on"
            else "Cyclic GC disabled during every library's timed loops (collected before "
            "each), so no library pays for collections or gains from pausing them."
        ),
        "",
        "| document | op | data_bridge | "
        + " | ".join(PEERS)
        + " | "
        + " | ".join(f"data_bridge vs {lib}" for lib in PEERS)
        + " |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in PEERS * 2) + " |",
    ]
    for name, op, t in rows:
        lines.append(
            f"| {name} | {op} | {fmt(t['data_bridge'])} | "
            + " | ".join(fmt(t[lib]) for lib in PEERS)
            + " | "
            + " | ".join(f"{t[lib] / t['data_bridge']:.2f}×" for lib in PEERS)
            + " |"
        )
    table = "\n".join(lines)
    print()
    print(table)
    if not args.no_write:
        write_results(table)
    return 0


def write_results(table: str) -> None:
    """Replaces only the text between our markers (creating file or markers if absent)."""
    block = f"{START}\n{table}\n{END}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
