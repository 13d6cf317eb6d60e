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


def gen_value(fdp: Any, depth: int, out: list[bytes]) -> None:
    kind = fdp.ConsumeIntInRange(0, 9 if depth < 8 else 5)
    ws = WS[fdp.ConsumeIntInRange(0, len(WS) - 1)]
    if kind == 0:
        out.append([b"null", b"true", b"false"][fdp.ConsumeIntInRange(0, 2)])
    elif kind == 1:
        out.append(NUMBERS[fdp.ConsumeIntInRange(0, len(NUMBERS) - 1)])
    elif kind == 2:
        out.append(str(fdp.ConsumeIntInRange(-(2**70), 2**70)).encode())
    elif kind == 3:
        mant = fdp.ConsumeIntInRange(0, 10**20)
        frac = fdp.ConsumeIntInRange(0, 25)
        exp = fdp.ConsumeIntInRange(-350, 350)
        digits = str(mant)
        if 0 < frac < len(digits):
            digits = digits[:-frac] + "." + digits[-frac:]
        out.append(f"{digits}e{exp}".encode())
    elif kind in (4, 5):
        out.append(b'"')
        for _ in range(fdp.ConsumeIntInRange(0, 6)):
            out.append(STRING_PIECES[fdp.ConsumeIntInRange(0, len(STRING_PIECES) - 1)])
        out.append(b'"')
    elif kind in (6, 7):
        out.append(b"[" + ws)
        for i in range(fdp.ConsumeIntInRange(0, 4)):
            if i:
                out.append(b"," + ws)
            gen_value(fdp, depth + 1, out)
        out.append(ws + b"]")
    else:
        out.append(b"{" + ws)
        for i in range(fdp.ConsumeIntInRange(0, 4)):
            if i:
                out.append(b"," + ws)
            gen_value(fdp, 99, out)  # a scalar in place of the key; strings mostly
            out[-1] = out[-1] if out[-1].startswith(b'"') else b'"k"'
            out.append(ws + b":" + ws)
            gen_value(fdp, depth + 1, out)
        out.append(ws + b"}")


def expand(data: bytes) -> bytes:
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:
        return fdp.ConsumeBytes(fdp.remaining_bytes())
    parts: list[bytes] = []
    gen_value(fdp, 0, parts)
    doc = b"".join(parts)
    for _ in range(mode - 1):  # 0, 1 or 2 edits
        pos = fdp.ConsumeIntInRange(0, len(doc))
        op = fdp.ConsumeIntInRange(0, 2)
        tok = EDIT_TOKENS[fdp.ConsumeIntInRange(0, len(EDIT_TOKENS) - 1)]
        if op == 0:
            doc = doc[:pos] + tok + doc[pos:]
        elif op == 1:
            doc = doc[:pos] + doc[pos + fdp.ConsumeIntInRange(1, 3) :]
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
