"""Corpus and leak tests for data_bridge.json: the shared corpora (twitter, citm_catalog,
geo_floats) decode exactly as the stdlib decodes them and survive a round trip; repeated
dumps/loads of the corpora and of failing inputs do not leak."""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from data_bridge.json import JSONDecodeError, JSONEncodeError, dumps, loads

CORPUS_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "json"
NAMES = ["twitter.json", "citm_catalog.json", "geo_floats.json"]


def corpus(name: str) -> bytes:
    path = CORPUS_DIR / name
    if not path.exists():
        pytest.skip(f"corpus {name} not found at {CORPUS_DIR.resolve()} (../shared/data/json)")
    return path.read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_corpus_decodes_like_stdlib(name: str) -> None:
    data = corpus(name)
    expected = json.loads(data)
    assert loads(data) == expected
    assert loads(data.decode()) == expected
    assert loads(bytearray(data)) == expected


@pytest.mark.parametrize("name", NAMES)
def test_corpus_roundtrip_and_stdlib_agreement(name: str) -> None:
    obj = json.loads(corpus(name))
    out = dumps(obj)
    assert out == json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    assert loads(out) == obj
    pretty = dumps(obj, indent=2, sort_keys=True)
    assert pretty == json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True).encode()


FAILING_DOCS = [
    b"[1,2,]",
    b'{"a":1,}',
    b'"\xed\xa0\x80"',
    b'"\\ud800"',
    b"[" * 600,
    b"01",
    b'{"k": [1, 2, {"x": "unterminated}',
    b'"' + b"x" * 1000 + b"\x01",
]


class Unserialisable:
    pass


def failing_dumps() -> None:
    circular: list[Any] = []
    circular.append(circular)
    for bad in (
        circular,
        {"a": float("nan")},
        [1, Unserialisable()],
        {1: 2},
        "\ud800" * 3,
        {"k": ["v"] * 100 + [Unserialisable()]},
    ):
        with pytest.raises(JSONEncodeError):
            dumps(bad)
    with pytest.raises(ZeroDivisionError):
        dumps([Unserialisable()], default=lambda o: 1 / 0)


def workload() -> None:
    for name in NAMES:
        path = CORPUS_DIR / name
        if path.exists():
            data = path.read_bytes()
            dumps(loads(data))
            loads(data.decode())
    for doc in FAILING_DOCS:
        with pytest.raises(JSONDecodeError):
            loads(doc)
    failing_dumps()
    dumps({"small": [1, 2.5, "x", None, True]}, sort_keys=True, indent=2, default=str)


def measure(fn: Callable[[], None], rounds: int) -> int:
    """Traced memory growth over `rounds` calls after a warm-up (bytes)."""
    for _ in range(3):
        fn()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds):
            fn()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before


def test_no_leak_tracemalloc() -> None:
    if not (CORPUS_DIR / NAMES[0]).exists():
        pytest.skip(f"corpora not found at {CORPUS_DIR.resolve()}")
    # One leaked reference per value in the corpora would be megabytes per round.
    growth = measure(workload, 10)
    assert growth < 256 * 1024, f"memory grew by {growth} bytes over 10 rounds"


def test_no_refcount_leak() -> None:
    total = getattr(sys, "gettotalrefcount", None)
    objs: list[Any] = [
        {"a": [1, 2.5, "é", None, True, 10**30, {"b": []}]},
        [{f"k{i}": "v" * i} for i in range(50)],
    ]

    def small() -> None:
        for o in objs:
            loads(dumps(o))
        for doc in FAILING_DOCS:
            with pytest.raises(JSONDecodeError):
                loads(doc)
        failing_dumps()

    if total is None:
        growth = measure(small, 2000)
        assert growth < 64 * 1024, f"memory grew by {growth} bytes over 2000 rounds"
        return
    small()
    gc.collect()
    before = total()
    for _ in range(200):
        small()
    gc.collect()
    assert total() - before < 200


@pytest.mark.parametrize("name", NAMES)
def test_corpus_dumps_of_our_own_loads(name: str) -> None:
    """Dicts built by loads (presized tables) encode like the stdlib's dicts."""
    data = corpus(name)
    ours = loads(data)
    assert (
        dumps(ours)
        == json.dumps(json.loads(data), ensure_ascii=False, separators=(",", ":")).encode()
    )
    assert dumps(ours, sort_keys=True) == dumps(json.loads(data), sort_keys=True)
