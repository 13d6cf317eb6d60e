"""Instructions per operation for PyLoop, uvloop and asyncio, counted by callgrind.

Wall-clock loop benchmarks swing by 10-40% on a shared machine; instruction counts do not
(same binary, same input, same count). For each case this runs a small driver under
`valgrind --tool=callgrind` at two sizes and reports (Ir(n2) - Ir(n1)) / (n2 - n1): the
instructions one more operation costs, start-up excluded. The "floor" row drives the
ping-pong coroutines with bare coro.send(None) calls, no loop and no Task: what any event
loop must at least spend on `await asyncio.sleep(0)`, which bounds how far ahead of
uvloop a loop can get on that benchmark.

Writes the table into bench/RESULTS.md between <!-- loop-instr:start --> and
<!-- loop-instr:end -->.

Usage: .venv/bin/python bench/loop_instructions.py [--no-write]
(needs valgrind; takes about two minutes)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- loop-instr:start -->", "<!-- loop-instr:end -->"
SIZES = (10_000, 60_000)

DRIVER = r"""
import asyncio, sys
kind, case, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, sys.argv[4])
if kind == "PyLoop":
    from data_bridge import pyloop
    new_loop = pyloop.new_event_loop
elif kind == "uvloop":
    import uvloop
    new_loop = uvloop.new_event_loop
else:
    new_loop = asyncio.SelectorEventLoop

async def worker(k):
    for _ in range(k):
        await asyncio.sleep(0)

if case == "floor":
    live = [worker(n // 10) for _ in range(10)]
    while live:
        nxt = []
        for c in live:
            try:
                c.send(None)
                nxt.append(c)
            except StopIteration:
                pass
        live = nxt
    sys.exit(0)
loop = new_loop()
if case == "call_soon":
    count = [0]
    def cb():
        count[0] += 1
    def start():
        for _ in range(n):
            loop.call_soon(cb)
        loop.call_soon(loop.stop)
    loop.call_soon(start)
    loop.run_forever()
elif case == "ping_pong":
    async def main():
        await asyncio.gather(*(worker(n // 10) for _ in range(10)))
    loop.run_until_complete(main())
elif case == "future":
    async def main():
        for _ in range(n):
            fut = loop.create_future()
            loop.call_soon(fut.set_result, None)
            await fut
    loop.run_until_complete(main())
loop.close()
"""

CASES = [
    ("call_soon + run (batch)", "call_soon"),
    ("task ping-pong (sleep(0))", "ping_pong"),
    ("future create/resolve/await", "future"),
]


def instructions(kind: str, case: str, n: int) -> int:
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            DRIVER,
            kind,
            case,
            str(n),
            str(ROOT / "src"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    m = re.search(r"refs:\s+([\d,]+)", out.stderr)
    if m is None:
        raise RuntimeError(f"no callgrind total in: {out.stderr[-500:]}")
    return int(m.group(1).replace(",", ""))


def per_op(kind: str, case: str) -> float:
    small, large = (instructions(kind, case, n) for n in SIZES)
    return (large - small) / (SIZES[1] - SIZES[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = ap.parse_args()
    try:
        import uvloop  # noqa: F401

        kinds = ["PyLoop", "uvloop", "asyncio"]
    except ImportError:
        kinds = ["PyLoop", "asyncio"]
    rows = []
    for title, case in CASES:
        res = {k: per_op(k, case) for k in kinds}
        rows.append((title, res))
        print(title, {k: round(v) for k, v in res.items()}, flush=True)
    floor = per_op("PyLoop", "floor")  # the kind is irrelevant: no loop is created
    print("ping-pong floor (coroutines alone)", round(floor), flush=True)

    header = "| operation | " + " | ".join(f"{k} instr/op" for k in kinds)
    header += " | uvloop / PyLoop |" if "uvloop" in kinds else " |"
    lines = [header, "| --- |" + " ---: |" * (len(kinds) + ("uvloop" in kinds))]
    for title, res in rows:
        cells = " | ".join(f"{res[k]:,.0f}" for k in kinds)
        ratio = f" | {res['uvloop'] / res['PyLoop']:.2f}× |" if "uvloop" in res else " |"
        lines.append(f"| {title} | {cells}{ratio}")
    pp = dict(rows)["task ping-pong (sleep(0))"]
    note = (
        f"Ping-pong floor (the same coroutines driven by bare `send(None)`, no loop, no "
        f"Task): {floor:,.0f} instructions per round trip"
    )
    if "uvloop" in pp:
        note += (
            f"; a loop and Task costing nothing would be {pp['uvloop'] / floor:.2f}× uvloop. "
            f"Above the floor: PyLoop {pp['PyLoop'] - floor:,.0f}, "
            f"uvloop {pp['uvloop'] - floor:,.0f} (loop plus CPython's Task step)."
        )
    table = "\n".join(lines)
    print()
    print(table)
    print(note)
    if args.no_write:
        return
    section = "\n".join(
        [
            START,
            "## Event loop instruction counts (callgrind)",
            "",
            "- Command: `.venv/bin/python bench/loop_instructions.py`",
            f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}; Python "
            f"{platform.python_version()}",
            f"- Method: instructions (callgrind Ir) at n = {SIZES[0]:,} and {SIZES[1]:,}, "
            "difference divided by the difference in n; each includes the driver's own "
            "Python (the loop scheduling a callback, the callback). Deterministic, unlike "
            "the wall-clock table above.",
            "",
            table,
            "",
            note,
            END,
        ]
    )
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start, end = text.find(START), text.find(END)
    if start != -1 and end != -1:
        text = text[:start] + section + text[end + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
