"""Differential and round-trip tests of data_bridge.json against the stdlib json module,
with hypothesis-generated documents (deep, wide, unicode-heavy, number edges)."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_bridge.json import JSONDecodeError, dumps, loads

# Text without lone surrogates (they have no UTF-8 form, and strict JSON rejects them).
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
edge_floats = st.sampled_from(
    [
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        1.7976931348623157e308,
        2.2250738585072014e-308,
        0.1,
        1e16,
        1e-7,
        123456789.123,
        2.0**53,
        2.0**-1074 * 3,
    ]
)
edge_ints = st.sampled_from([0, -1, 2**53, 2**63 - 1, 2**63, -(2**63), 2**64, -(2**64), 10**40])
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | edge_ints
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | edge_floats
    | text
)
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=8) | st.dictionaries(text, children, max_size=8),
    max_leaves=60,
)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(a: Any, b: Any) -> bool:
    """Equality that also distinguishes -0.0 from 0.0 and int from float. Iterative: the
    deep-nesting tests compare 512 levels, beyond Python's recursion limit once a tracer
    (hypothesis on 3.12+) adds its own frames."""
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if struct.pack("<d", x) != struct.pack("<d", y):
                return False
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
        elif isinstance(x, dict):
            if list(x) != list(y):
                return False
            pending.extend((x[k], y[k]) for k in x)
        elif x != y:
            return False
    return True


@SETTINGS
@given(documents)
def test_roundtrip_exact(doc: Any) -> None:
    assert same(loads(dumps(doc)), doc)


@SETTINGS
@given(documents)
def test_dumps_equals_stdlib(doc: Any) -> None:
    expected = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    assert dumps(doc) == expected


@SETTINGS
@given(documents)
def test_loads_equals_stdlib_on_stdlib_output(doc: Any) -> None:
    for ensure_ascii in (True, False):
        for indent in (None, 1):
            s = json.dumps(doc, ensure_ascii=ensure_ascii, indent=indent)
            assert same(loads(s.encode()), json.loads(s))
            assert same(loads(s), json.loads(s))


@SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_repr_roundtrip(f: float) -> None:
    assert dumps(f) == repr(f).encode()
    assert same(loads(dumps(f)), f)


@SETTINGS
@given(
    st.integers(min_value=0, max_value=10**25),
    st.integers(min_value=0, max_value=30),
    st.integers(min_value=-400, max_value=400),
    st.booleans(),
)
def test_number_text_parses_like_float(mant: int, frac: int, exp: int, neg: bool) -> None:
    digits = str(mant)
    if frac and frac < len(digits):
        digits = digits[:-frac] + "." + digits[-frac:]
    doc = ("-" if neg else "") + digits + f"e{exp}"
    assert same(loads(doc), json.loads(doc))


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.integers(min_value=1, max_value=3000), st.sampled_from(["[", '{"k":', '[{"a":']))
def test_deep_nesting(depth: int, opener: str) -> None:
    closer = {"[": "]", '{"k":': "}", '[{"a":': "}]"}[opener]
    doc = opener * depth + "1" + closer * depth
    levels = depth * (2 if opener == '[{"a":' else 1)
    if levels <= 512:
        # The expected value is built directly: the stdlib's C scanner hits the C recursion
        # limit of 3.12+ at these depths under hypothesis's own stack use.
        expected: object = 1
        for _ in range(depth):
            if opener == "[":
                expected = [expected]
            elif opener == '{"k":':
                expected = {"k": expected}
            else:
                expected = [{"a": expected}]
        assert same(loads(doc), expected)
        assert same(loads(dumps(loads(doc))), expected)
    else:
        try:
            loads(doc)
        except JSONDecodeError as e:
            assert "nesting" in e.msg
        else:
            raise AssertionError("depth limit not enforced")


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.integers(), min_size=1000, max_size=5000))
def test_wide(xs: list[int]) -> None:
    doc = {str(i): [x, float(x) if abs(x) < 2**53 else x] for i, x in enumerate(xs)}
    assert same(loads(dumps(doc)), doc)


@SETTINGS
@given(st.binary(max_size=64))
def test_arbitrary_bytes_agree_with_stdlib(data: bytes) -> None:
    """Either both accept with the same result, or we reject (we are stricter)."""
    try:
        ours = loads(data)
    except JSONDecodeError:
        ours = JSONDecodeError
    try:
        theirs = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        theirs = JSONDecodeError
    if ours is not JSONDecodeError:
        assert same(ours, theirs) or (isinstance(theirs, float) and math.isnan(theirs))
