"""Pydantic models through data_bridge.json.dumps: a list of 100 small models.

Compares, for the same 100 records (int, str, float, list[str], bool):
- data_bridge dumps of the models (plain models: written natively from __dict__),
- data_bridge dumps of the same records as dicts (the target: within 2x of this),
- data_bridge dumps of models whose class is not plain (one to_json call per model:
  the path every model took before the native one),
- pydantic's TypeAdapter(list[Item]).dump_json(by_alias=True),
- orjson.dumps of TypeAdapter.dump_python(...) (pydantic to dicts, then orjson),
- msgspec.json.encode of the equivalent msgspec.Struct list, if msgspec is installed.

Prints a table and writes it into bench/RESULTS.md between the markers
<!-- json-models:start --> and <!-- json-models:end -->.

Usage: PYTHONPATH=src python bench/bench_json_models.py [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path
from typing import Any

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, TypeAdapter

from bench_json import best_times, cpu_model, fmt
from data_bridge import json as dbjson

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- json-models:start -->", "<!-- json-models:end -->"


class Item(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str]
    ok: bool


class NotPlainItem(Item):
    # Any serialization setting makes the class not plain: one to_json call per model.
    model_config = ConfigDict(ser_json_inf_nan="constants")


def records() -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "name": f"item {i}",
            "price": i * 1.25,
            "tags": ["a", "bb", f"t{i}"],
            "ok": i % 2 == 0,
        }
        for i in range(100)
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = ap.parse_args()
    budget, repeats = 0.5, 7

    dicts = records()
    models = [Item(**d) for d in dicts]
    not_plain = [NotPlainItem(**d) for d in dicts]
    adapter = TypeAdapter(list[Item])
    expected = json.loads(adapter.dump_json(models, by_alias=True))
    assert json.loads(dbjson.dumps(models)) == expected == json.loads(dbjson.dumps(not_plain))

    fns = {
        "data_bridge dumps(models)": dbjson.dumps,
        "data_bridge dumps(dicts)": lambda _: dbjson.dumps(dicts),
        "data_bridge dumps(not-plain models)": lambda _: dbjson.dumps(not_plain),
        "pydantic TypeAdapter.dump_json": lambda m: adapter.dump_json(m, by_alias=True),
        "orjson.dumps(TypeAdapter.dump_python)": lambda m: orjson.dumps(adapter.dump_python(m)),
    }
    versions = f"pydantic {pydantic.VERSION}, orjson {orjson.__version__}"
    try:
        import msgspec

        class SItem(msgspec.Struct):
            id: int
            name: str
            price: float
            tags: list[str]
            ok: bool

        structs = [SItem(**d) for d in dicts]
        assert json.loads(msgspec.json.encode(structs)) == expected
        fns["msgspec.json.encode(Structs)"] = lambda _: msgspec.json.encode(structs)
        versions += f", msgspec {msgspec.__version__}"
    except ImportError:
        print("msgspec not installed: its row is skipped", file=sys.stderr)

    times = best_times(fns, models, budget, repeats)
    base = times["data_bridge dumps(dicts)"]
    lines = [
        "## Pydantic models (a list of 100 small models)",
        "",
        "- Command: `PYTHONPATH=src .venv/bin/python bench/bench_json_models.py`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {cpu_model()}, {platform.system()} {platform.release()}",
        f"- Software: Python {platform.python_version()}, {versions}",
        f"- Method: time per call, best of {repeats} timed loops (~{budget:.1f} s per row), "
        "taking turns loop by loop. Each record: int, str, float, list[str] of 3, bool.",
        "",
        "| encoder | time | vs data_bridge dumps(dicts) |",
        "| --- | ---: | ---: |",
    ]
    for name, t in times.items():
        lines.append(f"| {name} | {fmt(t)} | {t / base:.2f}× |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_results(table)
    return 0


def write_results(table: str) -> None:
    """Replaces only the text between our markers (appending them if absent)."""
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
