"""Differential fuzz target for the data_bridge.json decoder (atheris / libFuzzer).

Every input is decoded by data_bridge.json.loads and by the stdlib (after a strict UTF-8
decode). They must agree: the same value when both accept; when only the stdlib accepts,
the document must use one of the extensions the stdlib allows and RFC 8259 does not (NaN
and Infinity literals, lone surrogates in \\u escapes) or exceed one of our documented
limits (nesting depth, int digits). An accepted document must also survive
dumps -> loads unchanged. Any other outcome, or any exception other than
JSONDecodeError, is a finding.

Run for about 30 s (seeds are generated into a temporary corpus directory):
    PYTHONPATH=src .venv/bin/python fuzz/fuzz_json.py -max_total_time=30
Extra arguments go to libFuzzer (e.g. -runs=100000, a corpus directory, a crash file).
The C code is not coverage-instrumented in the normal build, so libFuzzer is guided by the
harness's Python coverage and comparisons only: mostly random mutation of the seeds, at
tens of thousands of inputs per second. (A _core built with clang's
-fsanitize-coverage does not load next to atheris 3.0's bundled libFuzzer.)
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import struct
import sys
import tempfile
from typing import Any

import atheris

with atheris.instrument_imports():
    from data_bridge.json import JSON_MAX_DEPTH, JSONDecodeError, JSONEncodeError, dumps, loads

SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")
SEEDS = [
    b'{"a": [1, 2.5, -0.0, 1e400, "x\\u00e9\\ud83d\\ude00", true, false, null]}',
    b"[123456789012345678901234567890, -9223372036854775809, 5e-324, 1.7976931348623157e308]",
    b'{"k": {"k": {"k": []}}, "": "\\"\\\\\\/\\b\\f\\n\\r\\t"}',
    '["é中😀", {"ключ": "значение"}]'.encode(),
    b"  [ ]  ",
    b'"plain string with some length to cross 16 bytes"',
]


def same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def depth(text: str) -> int:
    """Bracket nesting depth outside strings (upper bound is fine for the excuse)."""
    d = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            d += 1
            best = max(best, d)
        elif ch in "]}":
            d -= 1
    return best


def has_inf(v: Any) -> bool:
    if isinstance(v, float):
        return math.isinf(v)
    if isinstance(v, list):
        return any(has_inf(x) for x in v)
    if isinstance(v, dict):
        return any(has_inf(x) for x in v.values())
    return False


# Without coverage of the C code the mutations are blind, so most inputs are not used as
# bytes: they drive a generator of valid JSON text (random structure, numbers, escapes,
# UTF-8, whitespace), which is then damaged by a few token-level edits. Near-valid
# documents are what reach the strictness rules (a trailing comma, a lone surrogate, a
# leading zero inside an otherwise valid document).
WS = [b"", b" ", b"\n", b"\t", b"\r\n  "]
EDIT_TOKENS = [
    b",",
    b":",
    b"[",
    b"]",
    b"{",
    b"}",
    b'"',
    b"'",
    b"\\",
    b"0",
    b"-",
    b".",
    b"e",
    b"+",
    b"/",
    b"//",
    b"/*",
    b"NaN",
    b"Infinity",
    b"\\ud800",
    b"\\udc00",
    b"\\u00",
    b"\x00",
    b"\x1f",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe4\xb8",
    b"\xff",
    b" ",
    b"true",
    b"nul",
    b"00",
    b"1e",
    b"[" * 600,
]
STRING_PIECES = [
    b"a",
    b"key",
    b" ",
    b"\\n",
    b'\\"',
    b"\\\\",
    b"\\/",
    b"\\b\\f\\r\\t",
    b"\\u0041",
    b"\\u00e9",
    b"\\u4e2d",
    b"\\ud83d\\ude00",
    b"\\uDBFF\\uDFFF",
    b"\xc3\xa9",
    b"\xe4\xb8\xad",
    b"\xf0\x9f\x98\x80",
    b"\xf4\x8f\xbf\xbf",
    b"0123456789abcdef" * 2,
]
NUMBERS = [
    b"0",
    b"-0",
    b"-0.0",
    b"1",
    b"-1",
    b"5e-324",
    b"1.7976931348623157e308",
    b"2.5E+3",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"123456789012345678",
    b"0.1",
    b"9007199254740993",
    b"1e400",
    b"1e-400",
    b"4.35",
    b"1" * 40 + b".5e-10",
]


def gen_value(rnd: random.Random, depth: int, out: list[bytes]) -> None:
    kind = rnd.randint(0, 9 if depth < 8 else 5)
    ws = rnd.choice(WS)
    if kind == 0:
        out.append(rnd.choice([b"null", b"true", b"false"]))
    elif kind == 1:
        out.append(rnd.choice(NUMBERS))
    elif kind == 2:
        out.append(str(rnd.randint(-(2**70), 2**70)).encode())
    elif kind == 3:
        digits = str(rnd.randint(0, 10 ** rnd.randint(1, 20)))
        frac = rnd.randint(0, 25)
        if 0 < frac < len(digits):
            digits = digits[:-frac] + "." + digits[-frac:]
        out.append(f"{digits}e{rnd.randint(-350, 350)}".encode())
    elif kind in (4, 5):
        out.append(b'"' + b"".join(rnd.choices(STRING_PIECES, k=rnd.randint(0, 6))) + b'"')
    elif kind in (6, 7):
        out.append(b"[" + ws)
        for i in range(rnd.randint(0, 4)):
            if i:
                out.append(b"," + ws)
            gen_value(rnd, depth + 1, out)
        out.append(ws + b"]")
    else:
        out.append(b"{" + ws)
        for i in range(rnd.randint(0, 4)):
            if i:
                out.append(b"," + ws)
            key = b"".join(rnd.choices(STRING_PIECES, k=rnd.randint(0, 3)))
            out.append(b'"' + key + b'"' + ws + b":" + ws)
            gen_value(rnd, depth + 1, out)
        out.append(ws + b"}")


def expand(data: bytes) -> bytes:
    """Inputs starting with 0 are used as they are; any other input seeds a generator."""
    if not data or data[0] == 0:
        return data[1:]
    rnd = random.Random(data)
    parts: list[bytes] = []
    gen_value(rnd, 0, parts)
    doc = b"".join(parts)
    for _ in range(rnd.choice([0, 1, 1, 2])):
        pos = rnd.randint(0, len(doc))
        op = rnd.randint(0, 2)
        tok = rnd.choice(EDIT_TOKENS)
        if op == 0:
            doc = doc[:pos] + tok + doc[pos:]
        elif op == 1:
            doc = doc[:pos] + doc[pos + rnd.randint(1, 3) :]
        else:
            doc = doc[:pos] + tok + doc[pos + 1 :]
    return doc


@atheris.instrument_func
def test_one_input(raw: bytes) -> None:
    data = expand(raw)
    try:
        ours: Any = loads(data)
        ok = True
    except JSONDecodeError as e:
        ok = False
        err = e
    try:
        text = data.decode("utf-8")
        theirs = json.loads(text)
        std_ok = True
    except (UnicodeDecodeError, ValueError, RecursionError):
        std_ok = False
    if ok:
        if not std_ok:
            raise AssertionError(f"accepted what the stdlib rejects: {data!r}")
        if not same(ours, theirs):
            raise AssertionError(f"differs from the stdlib: {data!r}: {ours!r} != {theirs!r}")
        if not has_inf(ours):
            if not same(loads(dumps(ours)), ours):
                raise AssertionError(f"round trip changed {data!r}")
        return
    if not (0 <= err.pos <= len(data)):
        raise AssertionError(f"error position {err.pos} outside the document {data!r}")
    if std_ok:
        excused = (
            "NaN" in text
            or "Infinity" in text
            or SURROGATE_ESCAPE.search(text) is not None
            or depth(text) > JSON_MAX_DEPTH
            or "digits" in err.msg
        )
        if not excused:
            raise AssertionError(f"rejected a valid document {data!r}: {err}")


def main() -> None:
    assert issubclass(JSONEncodeError, TypeError)
    args = list(sys.argv)
    if not any(os.path.isdir(a) for a in args[1:]):
        corpus = tempfile.mkdtemp(prefix="fuzz_json_")
        for i, seed in enumerate(SEEDS):
            with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
                f.write(b"\x00" + seed)
        args.append(corpus)
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
