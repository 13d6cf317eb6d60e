"""Instructions per operation for PyLoop, uvloop and asyncio, counted by callgrind.

Wall-clock loop benchmarks swing by 10-40% on a shared machine; instruction counts do not
(same binary, same input, same count). For each case this runs a small driver under
`valgrind --tool=callgrind` at two sizes and reports (Ir(n2) - Ir(n1)) / (n2 - n1): the
instructions one more operation costs, start-up excluded. The "floor" row drives the
ping-pong coroutines round-robin from a tiny C extension compiled on the spot (PyIter_Send,
no loop, no Task, no Python driver code): what any event loop must at least spend on
`await asyncio.sleep(0)`, which bounds how far ahead of uvloop a loop can get on that
benchmark. (Driving them from a Python loop instead would count that loop's own bytecode
as part of the floor and overstate it by about a third.)

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
import sysconfig
import tempfile
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
    sys.path.insert(0, sys.argv[5])
    import floor_driver
    floor_driver.drive([worker(n // 10) for _ in range(10)])
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
elif case == "task_create":
    async def nop():
        return 1
    async def main():
        for _ in range(n // 100):
            batch = [loop.create_task(nop()) for _ in range(100)]
            for t in batch:
                await t
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

# Round-robin PyIter_Send over a list of coroutines until all return: the floor driver.
FLOOR_C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *drive(PyObject *self, PyObject *list)
{
    Py_ssize_t live = PyList_GET_SIZE(list);
    PyObject **c = PyMem_Malloc((live + 1) * sizeof(PyObject *));
    (void)self;
    if (c == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < live; i++)
        c[i] = Py_NewRef(PyList_GET_ITEM(list, i));
    while (live > 0) {
        Py_ssize_t kept = 0;
        for (Py_ssize_t i = 0; i < live; i++) {
            PyObject *res;
            PySendResult r = PyIter_Send(c[i], Py_None, &res);
            if (r == PYGEN_NEXT) {
                Py_DECREF(res);
                c[kept++] = c[i];
                continue;
            }
            if (r == PYGEN_ERROR) {
                for (Py_ssize_t j = i; j < live; j++)
                    Py_DECREF(c[j]);
                for (Py_ssize_t j = 0; j < kept; j++)
                    Py_DECREF(c[j]);
                PyMem_Free(c);
                return NULL;
            }
            Py_DECREF(res);
            Py_DECREF(c[i]);
        }
        live = kept;
    }
    PyMem_Free(c);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {{"drive", drive, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "floor_driver", NULL, -1, methods};
PyMODINIT_FUNC PyInit_floor_driver(void) { return PyModule_Create(&mod); }
"""


def build_floor_driver(where: Path) -> None:
    """Compiles FLOOR_C into `where` for this interpreter."""
    src = where / "floor_driver.c"
    src.write_text(FLOOR_C)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    include = sysconfig.get_paths()["include"]
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    subprocess.run(
        [
            cc,
            "-O2",
            "-shared",
            "-fPIC",
            f"-I{include}",
            str(src),
            "-o",
            str(where / f"floor_driver{suffix}"),
        ],
        check=True,
    )


CASES = [
    ("call_soon + run (batch)", "call_soon"),
    ("task ping-pong (sleep(0))", "ping_pong"),
    ("task create + await", "task_create"),
    ("future create/resolve/await", "future"),
]


def instructions(kind: str, case: str, n: int, extra: str = "") -> int:
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
            extra,
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


def per_op(kind: str, case: str, extra: str = "") -> float:
    small, large = (instructions(kind, case, n, extra) for n in SIZES)
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
    with tempfile.TemporaryDirectory() as tmp:
        build_floor_driver(Path(tmp))
        floor = per_op("PyLoop", "floor", tmp)  # the kind is irrelevant: no loop is created
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
        f"Ping-pong floor (the same coroutines driven round-robin by PyIter_Send from C, no "
        f"loop, no Task): {floor:,.0f} instructions per round trip"
    )
    if "uvloop" in pp:
        note += (
            f"; a loop and Task costing nothing would be {pp['uvloop'] / floor:.2f}× uvloop. "
            f"Above the floor: PyLoop {pp['PyLoop'] - floor:,.0f}, "
            f"uvloop {pp['uvloop'] - floor:,.0f} (loop plus Task step: PyLoop's native Task, "
            f"CPython's Task for uvloop)."
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
