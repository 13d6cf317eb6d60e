"""Decoder tests for data_bridge.json.loads: valid documents, number edges, and one invalid
document per RFC 8259 rule with the exact error position (pos counts characters)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest

from data_bridge.json import JSON_MAX_DEPTH, JSONDecodeError, loads


@pytest.mark.parametrize(
    "doc",
    [
        "null",
        "true",
        "false",
        "0",
        "-0",
        "-0.0",
        "0.0",
        "1e5",
        "1E+5",
        "1e-5",
        "-1.5e-300",
        '""',
        '"\\u0000\\"\\\\\\/\\b\\f\\n\\r\\t"',
        '"\\ud83d\\ude00 \\u00e9 \\uFFFF \\u4E2D"',
        '"é中😀"',
        "[]",
        "{}",
        ' \t\r\n[ 1 , { "a" : [ ] } ] \n',
        '{"a":1,"a":2}',
        '{"a":{"b":{"c":[1,2,{"d":null}]}}}',
        "123456789012345678",
        "1234567890123456789",
        "12345678901234567890",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "1" * 500,
        "5e-324",
        "1.7976931348623157e308",
        "2.2250738585072014e-308",
        "1e400",
        "-1e400",
        "1e-400",
        "0.1",
        "0.30000000000000004",
        "9007199254740993",
        "9007199254740993.0",
        "123456789012345678901234567890.5e-10",
        "0.000000000000000000000000000001",
        "[1.0, 2.50, 3e2, 4E-2, -0.5]",
    ],
)
def test_valid_matches_stdlib(doc: str) -> None:
    expected = json.loads(doc)
    for data in (doc.encode(), doc, bytearray(doc.encode()), memoryview(doc.encode())):
        got = loads(data)
        assert got == expected or (got != got and expected != expected)
        assert type(got) is type(expected)
        if isinstance(expected, float):
            assert math.copysign(1, got) == math.copysign(1, expected)


def test_duplicate_keys_last_wins() -> None:
    assert loads(b'{"a":1,"b":2,"a":3}') == {"a": 3, "b": 2}
    assert list(loads(b'{"a":1,"b":2,"a":3}')) == ["a", "b"]


def test_ints_of_any_size() -> None:
    for n in (
        0,
        1,
        -1,
        2**63,
        -(2**63) - 1,
        2**64,
        10**18,
        10**19,
        -(10**19),
        10**300,
        -(10**4000),
    ):
        assert loads(str(n).encode()) == n
        assert type(loads(str(n))) is int


def test_float_corner_values_exact() -> None:
    for f in (
        5e-324,
        -5e-324,
        1.7976931348623157e308,
        2.2250738585072014e-308,
        2.225073858507201e-308,
        0.1,
        1 / 3,
        2**-1074 * 3,
        1e22,
        1e23,
        9007199254740992.0,
        4.35,
        8.41e21,
    ):
        assert loads(repr(f)) == f
        assert loads(repr(f).encode()) == f


def test_random_floats_correctly_rounded() -> None:
    import random

    r = random.Random(7)
    for _ in range(100_000):
        digits = str(r.randint(1, 10 ** r.randint(1, 19)))
        cut = r.randint(0, len(digits))
        text = digits[:cut] + "." + digits[cut:] if 0 < cut < len(digits) else digits + ".0"
        text += f"e{r.randint(-340, 320)}"
        assert loads(text) == float(text), text
    for _ in range(30_000):
        # halfway-ish and long significands go through the slow path
        text = f"{r.randint(1, 9)}.{r.getrandbits(80)}e{r.randint(-330, 310)}"
        assert loads(text) == float(text), text


def test_str_input_positions_are_characters() -> None:
    with pytest.raises(JSONDecodeError) as ei:
        loads('["é中😀", x]')
    assert ei.value.pos == 8
    with pytest.raises(JSONDecodeError) as ei:
        loads('["é中😀", x]'.encode())
    assert ei.value.pos == 8
    assert ei.value.doc == '["é中😀", x]'


def test_error_attributes_and_catchability() -> None:
    doc = '{\n  "a": 1,\n  "b": [1, 2,]\n}'
    with pytest.raises(json.JSONDecodeError) as ei:
        loads(doc)
    e = ei.value
    assert isinstance(e, JSONDecodeError) and isinstance(e, ValueError)
    assert e.pos == doc.index("]")
    assert (e.lineno, e.colno) == (3, 14)
    assert e.doc == doc
    assert "trailing comma" in e.msg


# (document, expected position in characters, fragment of the message)
INVALID: list[tuple[Any, int, str]] = [
    (b"", 0, "empty document"),
    (b"   \n ", 5, "empty document"),
    (b"[1,2,]", 5, "trailing comma"),
    (b'{"a":1,}', 7, "trailing comma"),
    (b"[1 2]", 3, "expected ','"),
    (b'{"a" 1}', 5, "expected ':'"),
    (b'{"a":1 "b":2}', 7, "expected ','"),
    (b"{1:2}", 1, "expected a string key"),
    (b"[1] // c", 4, "unexpected data"),
    (b"/* c */ 1", 0, "comments"),
    (b'{/*c*/"a":1}', 1, "comments"),
    (b"['a']", 1, "single quotes"),
    (b"{'a':1}", 1, "single quotes"),
    (b"01", 0, "leading zeros"),
    (b"[-012]", 2, "leading zeros"),
    (b"-", 1, "expected a digit"),
    (b"1.", 2, "decimal point"),
    (b"1.e5", 2, "decimal point"),
    (b".5", 0, "unexpected character"),
    (b"1e", 2, "exponent"),
    (b"1e+", 3, "exponent"),
    (b"+1", 0, "unexpected character"),
    (b"0x10", 1, "unexpected data"),
    (b"NaN", 0, "NaN"),
    (b"[Infinity]", 1, "Infinity"),
    (b"-Infinity", 0, "Infinity"),
    (b"nul", 0, "invalid literal"),
    (b"tru", 0, "invalid literal"),
    (b"True", 0, "unexpected character"),
    (b"[1] x", 4, "unexpected data"),
    (b"{} {}", 3, "unexpected data"),
    (b'"abc', 0, "unterminated string"),
    (b'["a\\', 1, "unterminated string"),
    (b"[1,", 3, "expected a value"),
    (b"[1", 0, "unterminated array"),
    (b'{"a":1', 0, "unterminated object"),
    (b"[", 1, "expected a value"),
    (b'"a\x01b"', 2, "control character"),
    (b'"a\nb"', 2, "control character"),
    (b'"tab\there"', 4, "control character"),
    (b'"\\x41"', 1, "invalid escape"),
    (b'"\\u12G4"', 1, "invalid \\u escape"),
    (b'"\\u12"', 1, "invalid \\u escape"),
    (b'"ab\\ud800"', 3, "lone high surrogate"),
    (b'"\\ud800\\u0041"', 1, "lone high surrogate"),
    (b'"\\ud800x"', 1, "lone high surrogate"),
    (b'"\\udc00"', 1, "lone low surrogate"),
    (b'"\\ude00\\ud83d"', 1, "lone low surrogate"),
    (b'"\xc0\xaf"', 1, "overlong"),
    (b'"\xe0\x80\xaf"', 1, "overlong"),
    (b'"\xf0\x80\x80\xaf"', 1, "overlong"),
    (b'"\xed\xa0\x80"', 1, "encoded surrogate"),
    (b'"\xed\xbf\xbf"', 1, "encoded surrogate"),
    (b'"\xf4\x90\x80\x80"', 1, "above U+10FFFF"),
    (b'"\xf5\x80\x80\x80"', 1, "above U+10FFFF"),
    (b'"\xff"', 1, "invalid start byte"),
    (b'"\x80"', 1, "continuation byte"),
    (b'"\xe4\xb8"', 1, "truncated"),
    (b'"\xe4\xb8x"', 1, "truncated"),
    (b'"\xf0\x9f\x98', 1, "truncated"),
    (b'"\xc3', 1, "truncated"),
    (b'"\xc3\xa9\xe4"', 2, "truncated"),
    (b"\xef\xbb\xbf{}", 0, "unexpected character"),
    (b"[\x00]", 1, "unexpected character"),
    (b"[1]\x00", 3, "unexpected data"),
    (b'{"a"}', 4, "expected ':'"),
    (b'{"a":}', 5, "expected a value"),
    (b"[,1]", 1, "expected a value"),
    (b"{,}", 1, "expected a string key"),
    (b"[1,,2]", 3, "expected a value"),
]


@pytest.mark.parametrize(("doc", "pos", "fragment"), INVALID)
def test_invalid_documents(doc: bytes, pos: int, fragment: str) -> None:
    with pytest.raises(JSONDecodeError) as ei:
        loads(doc)
    assert ei.value.pos == pos, ei.value
    assert fragment in ei.value.msg, ei.value
    # The stdlib rejects these too, except where it is laxer than RFC 8259 (NaN,
    # Infinity, lone surrogates).
    if not any(w in fragment for w in ("NaN", "Infinity", "surrogate")):
        with pytest.raises(ValueError):
            json.loads(doc.decode("utf-8", "surrogatepass"))
    try:
        text = doc.decode("utf-8")
    except UnicodeDecodeError:
        return
    with pytest.raises(JSONDecodeError) as ei2:
        loads(text)
    assert ei2.value.pos == pos


def test_invalid_utf8_outside_strings() -> None:
    with pytest.raises(JSONDecodeError, match="unexpected character"):
        loads(b"[\xff]")


def test_depth_limit() -> None:
    ok = "[" * JSON_MAX_DEPTH + "]" * JSON_MAX_DEPTH
    assert loads(ok) == json.loads(ok)
    too_deep = "[" * (JSON_MAX_DEPTH + 1) + "]" * (JSON_MAX_DEPTH + 1)
    with pytest.raises(JSONDecodeError, match="nesting") as ei:
        loads(too_deep)
    assert ei.value.pos == JSON_MAX_DEPTH
    for opener in ("[", '{"a":'):
        with pytest.raises(JSONDecodeError, match="nesting"):
            loads(opener * 100_000)
    with pytest.raises(JSONDecodeError, match="nesting"):
        loads(b"[" * 10_000_000)


def test_huge_int_over_str_digits_limit() -> None:
    if not hasattr(sys, "get_int_max_str_digits"):
        pytest.skip("no int max str digits limit on this Python")
    with pytest.raises(JSONDecodeError, match="digits") as ei:
        loads(b"[" + b"9" * 5000 + b"]")
    assert ei.value.pos == 1


def test_lone_surrogate_in_str_input() -> None:
    with pytest.raises(JSONDecodeError, match="surrogate") as ei:
        loads('["ab\ud800"]')
    assert ei.value.pos == 4


def test_wrong_input_types() -> None:
    for bad in (None, 1, 1.5, ["[]"], object()):
        with pytest.raises(TypeError):
            loads(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        loads()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        loads(b"[]", b"[]")  # type: ignore[call-arg]


def test_non_contiguous_memoryview() -> None:
    m = memoryview(b"[1, 2]")[::2]
    with pytest.raises((TypeError, ValueError, BufferError)):
        loads(m)


def test_string_kinds() -> None:
    for s in ("ascii", "latin é ÿ", "ucs2 中 \uffff", "ucs4 😀 \U0010ffff", "é" * 1000 + "😀"):
        doc = json.dumps(s, ensure_ascii=False)
        assert loads(doc.encode()) == s
        doc = json.dumps(s, ensure_ascii=True)
        assert loads(doc.encode()) == s


def test_key_cache_collisions() -> None:
    # many distinct short keys, repeated: every lookup must return the right key
    keys = [f"k{i}" for i in range(5000)] + ["x" * 64, "x" * 65, ""]
    doc = json.dumps([{k: i} for i, k in enumerate(keys * 2)])
    assert loads(doc.encode()) == json.loads(doc)


def test_key_cache_near_misses() -> None:
    """Keys that differ in one byte at any position must never be confused by the cache."""
    for n in range(1, 70):
        base = "".join(chr(97 + (i % 26)) for i in range(n))
        keys = [base] + [base[:i] + "Z" + base[i + 1 :] for i in range(n)]
        doc = json.dumps([{k: k} for k in keys * 3])
        got = loads(doc.encode())
        assert got == json.loads(doc)
        assert all(list(d)[0] == v for d in got for v in d.values())


def test_whitespace_runs() -> None:
    """Runs of RFC 8259 whitespace of every length, anywhere; other spaces are errors."""
    for n in range(0, 40):
        for ws in (" ", "\n", "\t", "\r", " \r\n\t"):
            pad = (ws * n)[:n]
            doc = f'{pad}[{pad}1{pad},{pad}{{{pad}"a"{pad}:{pad}null{pad}}}{pad}]{pad}'
            assert loads(doc.encode()) == [1, {"a": None}]
    for bad in ("\f", "\v", "\u00a0", "\u2028"):
        with pytest.raises(JSONDecodeError) as ei:
            loads(("[1," + " " * 20 + bad + "2]").encode())
        assert ei.value.pos == 23


def test_objects_behave_as_dicts_built_by_python() -> None:
    """Objects are built as finished hash tables (CPython 3.11): every key must be found,
    the dict must stay usable (insert, delete, resize, copy) and be tracked by the cyclic
    collector exactly when the stdlib's would be."""
    import gc
    import random

    r = random.Random(11)
    for n in (1, 5, 6, 10, 11, 21, 22, 85, 86, 170, 171, 1000, 5462, 70000):
        src = {f"{r.random()}{i}": i for i in range(n)}
        doc = json.dumps(src)
        got = loads(doc.encode())
        assert got == src and list(got) == list(src)
        assert all(got[k] == v for k, v in src.items())
        assert "missing" not in got
        got["new"] = -1
        del got[next(iter(src))]
        got.update({str(i): i for i in range(300)})
        assert len(got) == n + 300 and got["new"] == -1
        assert got.copy() == got
    for doc in ('{"a":1}', '{"a":"x","b":null}', '{"a":[]}', '{"a":{}}', '{"a":{"b":1}}'):
        assert gc.is_tracked(loads(doc)) == gc.is_tracked(json.loads(doc)), doc
    # Lists are allocated and tracked by the decoder itself (3.11): tracked as the stdlib's
    # are, found by the collector through their items, and usable as any list.
    for doc in ("[]", "[1]", "[1.5, 2.5]", '["a", null, true]', "[[1, 2], [3, 4, 5, 6, 7]]"):
        got = loads(doc)
        assert gc.is_tracked(got) == gc.is_tracked(json.loads(doc)) and got == json.loads(doc)
        got.append(0)
        got.insert(0, -1)
        assert got[1:-1] == json.loads(doc) and len(got) == len(json.loads(doc)) + 2
    outer = loads(b"[[1.5, 2.5], [3.5]]")
    assert any(x is outer[0] for x in gc.get_referents(outer))
    cyclic = loads(b'{"a":[]}')
    cyclic["a"].append(cyclic)
    ring = loads(b"[[0.5, 1.5]]")
    ring[0].append(ring)
    del cyclic, ring
    assert gc.collect() >= 2


def test_small_objects_colliding_keys() -> None:
    """Objects of 1 to 5 members fill CPython's smallest table (8 slots), whose index is
    built in a register: keys chosen at run time to share their slot (hash & 7), so that
    every insertion probes, must each be found by CPython's own lookup, in order, with
    colliding non-members absent; duplicates at every pair of positions (cached short keys
    and long ones, which are distinct str objects) keep the stdlib's last-one-wins."""
    by_slot: dict[int, list[str]] = {}
    for i in range(400):
        k = f"key{i}"
        by_slot.setdefault(hash(k) & 7, []).append(k)
    slot = max(by_slot, key=lambda s: len(by_slot[s]))
    same = by_slot[slot]
    assert len(same) >= 10
    other = next(k for s, ks in by_slot.items() if s != slot for k in ks)
    for n in range(1, 6):
        for keys in (same[:n], [other, *same[: n - 1]], [*same[: n - 1], other], same[5 : 5 + n]):
            src = {k: i for i, k in enumerate(keys)}
            got = loads(json.dumps(src).encode())
            assert got == src and list(got) == list(src)
            assert all(got[k] == v for k, v in src.items())
            assert all(k not in got for k in same[n + 5 :])
            got["extra"] = 1
            assert all(got[k] == v for k, v in src.items()) and got["extra"] == 1
        long_keys = ["x" * 70 + k for k in same[:n]]
        for keys in (same[:n], long_keys):
            for i in range(n):
                for j in range(i + 1, n):
                    dup = list(keys)
                    dup[j] = dup[i]
                    doc = "{" + ",".join(f'"{k}":{v}' for v, k in enumerate(dup)) + "}"
                    got, expected = loads(doc.encode()), json.loads(doc)
                    assert got == expected and list(got) == list(expected), doc


def test_duplicate_keys_everywhere() -> None:
    """Duplicates (same text, whether the key cache shares the str or not) keep the first
    position and the last value, as the stdlib does."""
    long_key = "k" * 80
    for doc in (
        '{"a":1,"a":2}',
        '{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"a":7}',
        '{"é":1,"e":2,"é":3}',
        f'{{"{long_key}":1,"x":2,"{long_key}":3}}',
        '{"a":1,"\\u0061":2}',
        "{" + ",".join(f'"k{i % 50}":{i}' for i in range(200)) + "}",
    ):
        got, expected = loads(doc.encode()), json.loads(doc)
        assert got == expected and list(got) == list(expected), doc


def test_numbers_in_every_position_and_length() -> None:
    """The one-pass number reader (8-byte loads) against the stdlib: every digit count on
    both sides of the point, near the end of the document and inside containers."""
    for ni in range(0, 22):
        for nf in (0, 1, 7, 8, 9, 15, 16, 17, 19, 20, 25):
            int_part = "0" if ni == 0 else "9876543210123456789012"[:ni]
            for text in (int_part, f"{int_part}.{'1234567890' * 3}"[: len(int_part) + 1 + nf]):
                if text.endswith("."):
                    continue
                for sign in ("", "-"):
                    t = sign + text
                    for doc in (t, f"[{t}]", f'{{"k":{t},"l":[{t},{t}]}}', f"[{t}    ]"):
                        got, expected = loads(doc.encode()), json.loads(doc)
                        assert repr(got) == repr(expected), doc
    for doc in ("0.000000000000000000001234", "0.0000", "-0.0e5", "1.5e", "12.", "01.5", "-"):
        try:
            expected: Any = json.loads(doc)
        except ValueError:
            with pytest.raises(JSONDecodeError):
                loads(doc.encode())
        else:
            assert repr(loads(doc.encode())) == repr(expected)


def _float_docs(text: str) -> list[str]:
    """text alone (near the end: the general path), and inside containers with at least 32
    bytes after it (the straight-line path of json_dec_number_fast)."""
    pad = " " * 40
    return [text, f"[{text},{pad}1]", f'{{"a":[{text}, {text}],"b":{text}{pad}}}', f"[{text}]"]


def test_fast_path_floats_every_length() -> None:
    """json_dec_number_fast: 1-7 integer digits, 1-15 fraction digits (the second 8-byte word
    read without a branch), the 19-digit limit and just past it, significands on both sides
    of 2^53 (Clinger's division below, the Eisel-Lemire product above), against float()."""
    import random

    r = random.Random(17)
    texts = []
    for ni in range(1, 8):
        for nf in range(1, 20):
            for _ in range(40):
                ip = str(r.randint(10 ** (ni - 1) if ni > 1 else 0, 10**ni - 1))
                fp = "".join(r.choice("0123456789") for _ in range(nf))
                texts.append(f"{ip}.{fp}")
    # Significands around 2^53 = 9007199254740992 split at every point the fast path takes.
    for m in range(2**53 - 3, 2**53 + 4):
        s = str(m)
        for cut in range(1, 8):
            texts.append(f"{s[:cut]}.{s[cut:]}")
    texts += ["0.0", "0.000000000000000", "0.5", "0.1", "0.3", "1.0", "2.5", "9999999.999999999999"]
    texts += ["0.000000000000001", "0.999999999999999", "1.7976931348623157", "4.9406564584124654"]
    for text in texts:
        for sign in ("", "-"):
            t = sign + text
            expected = float(t)
            for doc in _float_docs(t):
                got = loads(doc.encode())
                while not isinstance(got, float):
                    got = got[0] if isinstance(got, list) else got["a"][1]
                assert repr(got) == repr(expected), doc


@pytest.mark.parametrize(
    "text",
    [
        "-0.0",
        "-0.000000000000",
        "0e0",
        "-0e-400",
        "4.9406564584124654e-324",
        "2.4703282292062327e-324",
        "2.4703282292062328e-324",
        "2.2250738585072011e-308",
        "2.2250738585072012e-308",
        "2.2250738585072014e-308",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1e-342",
        "1e-343",
        "1e308",
        "1e309",
        "123456789012345678e-360",
        "9007199254740993e-15",
        "9007199254740993e+15",
        "1.2345678901234567e-22",
        "1.2345678901234567e22",
        "1.2345678901234567e23",
        "12345678.9",
        "1234567.89012345678",
        "1234567.890123456789",
        # exact ties between two doubles (round half to even), up to 19 digits
        "9007199254740993.0",
        "9007199254740995.0",
        "9007199254740993e0",
        "18014398509481986.0",
        "18014398509481990e0",
        "900719925474099.3e1",
        "4503599627370496.5",
        "4503599627370497.5",
    ],
)
def test_float_boundaries(text: str) -> None:
    """Exponents near the limits of the fast paths, subnormals, overflow and -0.0."""
    for t in (text, "-" + text.lstrip("-")):
        expected = float(t)
        for doc in _float_docs(t):
            got = loads(doc.encode())
            while not isinstance(got, float):
                got = got[0] if isinstance(got, list) else got["a"][1]
            assert repr(got) == repr(expected), doc


def test_fast_path_ints_every_length() -> None:
    """Integers of 1 to 19 digits inside containers (the straight-line path takes 1 to 15
    digits, the ints outside the interpreter's small-int cache below 2^30 allocated
    directly), and the boundaries of the small ints and of one 30-bit digit."""
    import random

    r = random.Random(23)
    values = [0, 1, 5, 255, 256, 257, 1000, 2**30 - 2, 2**30 - 1, 2**30, 2**30 + 1]
    values += [2**31, 2**53 + 1, 10**15 - 1, 10**15, 10**16, 2**63 - 1, 2**63, 10**19]
    for nd in range(1, 20):
        values += [r.randint(10 ** (nd - 1), 10**nd - 1) for _ in range(30)]
    pad = " " * 40
    for v in values:
        for sign in ("", "-"):
            t = f"{sign}{v}"
            expected = int(t)
            for doc in (f"[{t},{pad}1]", f'{{"a":{t}, "b":[{t}, {t}]{pad}}}', t, f"[{t}]"):
                got = loads(doc.encode())
                while not isinstance(got, int):
                    got = got[0] if isinstance(got, list) else got["a"]
                assert type(got) is int and got == expected and repr(got) == repr(expected), doc
                assert hash(got) == hash(expected) and got - expected == 0
    small = loads(b"[5, 256, -5" + b" " * 40 + b"]")
    assert small[0] is (4 + 1) and small[1] is (255 + 1) and small[2] is (-4 - 1)
    for doc in ("[00" + pad + "]", "[012345678" + pad + "]", "[0123456789012345" + pad + "]"):
        with pytest.raises(JSONDecodeError, match="leading zeros"):
            loads(doc.encode())


def test_direct_objects_under_tracemalloc() -> None:
    """Floats and ints built without PyFloat_FromDouble/PyLong_FromLongLong still carry
    tracemalloc's trace while it runs, and are freed (no leak)."""
    import gc
    import tracemalloc

    doc = ("[" + ", ".join(f"[{i}.25, {i * 1000 + 7}]" for i in range(2000)) + "]").encode()
    tracemalloc.start()
    try:
        obj = loads(doc)
        assert tracemalloc.get_object_traceback(obj[100][0]) is not None
        assert tracemalloc.get_object_traceback(obj[100][1]) is not None
        assert tracemalloc.get_object_traceback(obj[100]) is not None
        del obj
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            loads(doc)
        gc.collect()
        assert tracemalloc.get_traced_memory()[0] - before < 64 * 1024
    finally:
        tracemalloc.stop()
    assert loads(doc) == json.loads(doc)


_SPECIALS = [
    "é",
    "ÿ",
    "Ā",
    "中",
    "\uffff",
    "😀",
    '\\"',
    "\\\\",
    "\\/",
    "\\n",
    "\\u00e9",
    "\\u4e2d",
    "\\ud83d\\ude00",
]


def test_strings_special_at_every_offset_around_blocks() -> None:
    """The string scanner reads 16 bytes (SSE2) and then 8 at a time: one non-ASCII
    character or escape at every offset from 0 to 40 (both sides of the 8-, 16- and
    32-byte boundaries), measured from the opening quote, in values and in keys, with the
    document ending right after the string and with room after it; and escapes split across
    a block boundary (a backslash as the last byte of a block)."""
    for special in _SPECIALS:
        for before in range(0, 41):
            for after in (0, 1, 7, 15, 17, 40):
                text = "a" * before + special + "b" * after
                for doc in (f'"{text}"', f'["{text}", 1]', f'{{"{text}": [1, "{text}"]}}'):
                    got, expected = loads(doc.encode()), json.loads(doc)
                    assert got == expected, doc
                    if isinstance(got, str):
                        # the narrowest kind, as CPython builds it
                        assert got.encode("utf-8", "surrogatepass") == expected.encode(
                            "utf-8", "surrogatepass"
                        )
                        # (one-character Latin-1 strs from the stdlib are the interpreter's
                        # shared ones, whose size grows once their UTF-8 form is cached)
                        if len(got) > 1:
                            assert sys.getsizeof(got) == sys.getsizeof(expected), doc


def test_invalid_utf8_and_controls_at_every_offset() -> None:
    """Invalid UTF-8 and raw control characters at every offset around the blocks keep
    their messages and positions."""
    bad = [
        b"\x80",
        b"\xc0\xaf",
        b"\xe0\x80\x80",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xff",
        b"\xc3",
        b"\x01",
        b"\x1f",
    ]
    for seq in bad:
        for before in range(0, 41):
            doc = b'["' + b"a" * before + seq + b'xyz", 1]'
            with pytest.raises(JSONDecodeError) as ei:
                loads(doc)
            assert ei.value.pos == 2 + before, (doc, ei.value.pos)
            if seq[0] < 0x20:
                assert "control character" in str(ei.value)
            else:
                assert "invalid UTF-8" in str(ei.value)


def test_empty_arrays_as_items() -> None:
    """parse_item's shortcut for "[]" against the stdlib, and the errors around it."""
    for doc in (
        "[]",
        "[[]]",
        "[[], []]",
        '{"a": [], "b": [[]]}',
        "[[ ]]",
        "[[],[],[[]]]",
        '{"a":[]}',
    ):
        got, expected = loads(doc.encode()), json.loads(doc)
        assert got == expected and got is not expected, doc
    lists = loads(b"[[], []]")
    assert lists[0] is not lists[1]
    lists[0].append(1)
    assert lists == [[1], []]
    for doc, pos in (("[[]", 0), ("[[]]]", 4), ('{"a": []', 0), ("[[],]", 4), ("[[]x]", 3)):
        with pytest.raises(JSONDecodeError) as ei:
            loads(doc.encode())
        assert ei.value.pos == pos, (doc, ei.value.pos)
