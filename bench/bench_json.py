"""JSON codec benchmark: data_bridge.json vs orjson vs the stdlib json, in one run.

Measures dumps (Python objects -> bytes) and loads (bytes -> Python objects) on the shared
corpora (../shared/data/json from the repository root: twitter.json, citm_catalog.json,
geo_floats.json) and on a small API-sized dict, prints a table and writes it into
bench/RESULTS.md between the markers <!-- json:start --> and <!-- json:end -->.

Each cell is the best of several repeats of a timed loop (the minimum is the least noisy
estimate on a shared machine). The stdlib's dumps is measured as
json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() so that all three
produce the same compact UTF-8 bytes.

Usage: PYTHONPATH=src python bench/bench_json.py [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
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
    "json": (std_dumps, json.loads),
}


def best_times(
    fns: dict[str, Callable[[Any], Any]], arg: Any, budget: float, repeats: int
) -> dict[str, float]:
    """Seconds per call for each function: the best of `repeats` timed loops, each sized to
    about budget/repeats, with the functions taking turns loop by loop so that a noisy
    neighbour on the shared machine hits all of them alike."""
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
            t0 = time.perf_counter()
            for _ in range(number):
                fn(arg)
            best[name] = min(best[name], (time.perf_counter() - t0) / number)
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
    args = ap.parse_args()
    budget, repeats = (0.3, 3) if args.quick else (1.5, 15)

    cases: list[tuple[str, bytes]] = []
    for name in ("twitter.json", "citm_catalog.json", "geo_floats.json"):
        path = CORPUS_DIR / name
        if not path.exists():
            print(f"skipping {name}: not found at {CORPUS_DIR.resolve()}", file=sys.stderr)
            continue
        cases.append((name, path.read_bytes()))
    cases.append(("small API dict", orjson.dumps(SMALL)))

    rows = []
    for name, data in cases:
        obj = json.loads(data)
        assert dbjson.loads(data) == obj
        assert dbjson.loads(dbjson.dumps(obj)) == obj
        for op in ("dumps", "loads"):
            arg = obj if op == "dumps" else data
            fns = {lib: (enc if op == "dumps" else dec) for lib, (enc, dec) in LIBS.items()}
            times = best_times(fns, arg, budget, repeats)
            rows.append((name, op, times))
            print(
                f"{name:18} {op:5} "
                + "  ".join(f"{lib} {fmt(t):>10}" for lib, t in times.items())
                + f"  orjson/data_bridge {times['orjson'] / times['data_bridge']:.2f}x",
                flush=True,
            )

    lines = [
        "## JSON codec (data_bridge.json vs orjson vs json)",
        "",
        "- Command: `PYTHONPATH=src .venv/bin/python bench/bench_json.py`"
        + (" --quick" if args.quick else ""),
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {os.cpu_count()} CPUs, {cpu_model()}, {platform.system()} "
        f"{platform.release()}",
        f"- Software: Python {platform.python_version()}, orjson {orjson.__version__}",
        "- Method: time per call, best of "
        f"{repeats} timed loops (~{budget:.1f} s per cell), the three libraries taking turns "
        "loop by loop; stdlib dumps is "
        '`json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()`. '
        "\"data_bridge vs X\" is X's time over data_bridge's (above 1.00× means "
        "data_bridge is faster). loads pauses the cyclic GC while it decodes a document "
        "of 4 KiB or more (one collection afterwards at most); orjson and json do not.",
        "",
        "| document | op | data_bridge | orjson | json | data_bridge vs orjson | "
        "data_bridge vs json |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, op, t in rows:
        lines.append(
            f"| {name} | {op} | {fmt(t['data_bridge'])} | {fmt(t['orjson'])} | "
            f"{fmt(t['json'])} | {t['orjson'] / t['data_bridge']:.2f}× | "
            f"{t['json'] / t['data_bridge']:.2f}× |"
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
