"""Encoder tests for data_bridge.json.dumps: every encodable type, options and errors."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import sys
import uuid
from collections import OrderedDict, namedtuple
from typing import Any, ClassVar

import pytest

from data_bridge import json as dbjson
from data_bridge.json import JSONEncodeError, dumps


def std(obj: Any, **kw: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), **kw).encode()


@pytest.mark.parametrize(
    "obj",
    [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**63,
        2**64,
        -(2**64) - 1,
        10**100,
        0.0,
        -0.0,
        1.5,
        0.1,
        1e16,
        1e15,
        1e-5,
        1e-4,
        5e-324,
        1.7976931348623157e308,
        2.2250738585072014e-308,
        123456789.123456789,
        "",
        "plain",
        'quote " backslash \\ slash /',
        "\x00\x01\x1f\x7f\b\f\n\r\t",
        "é latin-1 ÿ",
        "中文 UCS-2 \uffff",
        "emoji \U0001f600 UCS-4 \U0010ffff",
        [],
        {},
        [1, [2, [3, []]]],
        {"a": {"b": {"c": {}}}},
        (1, 2, 3),
        {"k": (1, "x", None)},
    ],
)
def test_matches_stdlib(obj: Any) -> None:
    assert dumps(obj) == std(obj)


def test_float_repr_random_bits() -> None:
    import random
    import struct

    r = random.Random(12345)
    for _ in range(200_000):
        f = struct.unpack("<d", struct.pack("<Q", r.getrandbits(64)))[0]
        if math.isfinite(f):
            assert dumps(f) == repr(f).encode(), f


def test_float_repr_powers_and_subnormals() -> None:
    vals = [2.0**i for i in range(-1074, 1024)] + [i * 5e-324 for i in range(1, 3000)]
    vals += [float(f"{m}e{e}") for e in range(-323, 308) for m in (1, 3, 7, 9.5)]
    for f in vals:
        assert dumps(f) == repr(f).encode()
        assert dumps(-f) == repr(-f).encode()


def test_float_repr_decimals_and_layout_switches() -> None:
    """Random 1-17 digit decimals (measured data: coordinates, prices) in every decade, and
    values around the switches between fixed and exponent notation (1e16 and 1e-4)."""
    import random

    r = random.Random(2026)
    vals = []
    for _ in range(100_000):
        digits = r.choice((1, 2, 6, 9, 12, 15, 15, 16, 16, 17, 17, r.randint(1, 17)))
        m = r.randrange(10 ** (digits - 1), 10**digits)
        vals.append(float(f"{m}e{r.randint(-330, 310)}"))
        vals.append(float(f"{m}e{r.randint(-8, 2) - digits}"))
        vals.append(float(f"{m}e{r.randint(14, 17) - digits}"))
    for e in (-5, -4, -3, 15, 16, 17):
        x = 10.0**e
        for _ in range(200):
            vals.append(x)
            x = math.nextafter(x, math.inf)
        x = 10.0**e
        for _ in range(200):
            x = math.nextafter(x, 0)
            vals.append(x)
    for f in vals:
        if math.isfinite(f):
            assert dumps(f) == repr(f).encode(), f
            assert dumps(-f) == repr(-f).encode(), f


def test_float_lists_pairs() -> None:
    """Lists of floats go two at a time through json_dtoa2: every length, mixed items, zeros,
    signs and layouts, against the stdlib."""
    import random

    r = random.Random(7)
    pool = [0.0, -0.0, 1.0, -1.5, 1e16, 1e-5, 5e-324, 1.7976931348623157e308, 123.456]
    for n in range(0, 12):
        for _ in range(200):
            items: list[Any] = []
            for _ in range(n):
                k = r.random()
                if k < 0.6:
                    items.append(r.uniform(-180, 180))
                elif k < 0.75:
                    items.append(r.choice(pool))
                elif k < 0.85:
                    items.append(r.randint(-5, 5))
                elif k < 0.9:
                    items.append("x")
                else:
                    items.append([r.random(), r.random()])
            assert dumps(items) == std(items), items
            assert dumps({"c": items}) == std({"c": items})
            assert dumps(tuple(items)) == std(tuple(items))
    floats = [struct_float(r.getrandbits(64)) for _ in range(20000)]
    floats = [f for f in floats if math.isfinite(f)]
    assert dumps(floats) == std(floats)
    assert dumps([floats]) == std([floats])


def struct_float(bits: int) -> float:
    import struct

    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def test_nonfinite_in_float_pairs_rejected() -> None:
    for v in (math.nan, math.inf, -math.inf):
        for items in ([1.0, v], [v, 1.0], [1.0, 2.0, v], [v, v]):
            with pytest.raises(JSONEncodeError, match="not allowed"):
                dumps(items)


class _Float(float):
    pass


def test_float_subclass_pairs() -> None:
    items = [1.5, _Float(2.5), _Float(3.25), 4.0]
    assert dumps(items) == b"[1.5,2.5,3.25,4.0]"


def test_nonfinite_floats_rejected() -> None:
    for v in (math.nan, math.inf, -math.inf):
        with pytest.raises(JSONEncodeError, match="not allowed"):
            dumps(v)
        with pytest.raises(JSONEncodeError):
            dumps({"a": [v]})


def test_subclasses() -> None:
    class S(str):
        pass

    class I(int):  # noqa: E742
        def __repr__(self) -> str:
            return "nope"

    class F(float):
        pass

    class Dct(dict):
        pass

    class L(list):
        pass

    P = namedtuple("P", "x y")
    obj = [S("s"), I(5), F(2.5), Dct(a=1), L([1]), P(1, 2), OrderedDict(z=1)]
    assert dumps(obj) == b'["s",5,2.5,{"a":1},[1],[1,2],{"z":1}]'
    assert dumps({S("k"): 1}) == b'{"k":1}'


def test_int_enum_and_str_enum() -> None:
    class IE(enum.IntEnum):
        A = 3

    class SE(str, enum.Enum):
        B = "b"

    class E(enum.Enum):
        C = [1, 2]
        D = 1.5

    assert dumps([IE.A, SE.B, E.C, E.D]) == b'[3,"b",[1,2],1.5]'


def test_datetime_types() -> None:
    tz = datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))
    cases = [
        datetime.datetime(2020, 1, 2, 3, 4, 5),
        datetime.datetime(2020, 1, 2, 3, 4, 5, 123),
        datetime.datetime(1, 1, 1),
        datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.timezone.utc),
        datetime.datetime(2020, 1, 2, tzinfo=tz),
        datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone(datetime.timedelta(seconds=61))),
        datetime.date(2024, 2, 29),
        datetime.time(23, 59, 1),
        datetime.time(0, 0, 0, 5),
        datetime.time(1, 2, tzinfo=datetime.timezone.utc),
    ]
    for c in cases:
        assert dumps(c) == f'"{c.isoformat()}"'.encode()
    naive = datetime.datetime(2020, 1, 2, 3, 4, 5)
    assert dumps(naive, naive_utc=True) == b'"2020-01-02T03:04:05Z"'
    aware = datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc)
    assert dumps(aware, naive_utc=True) == b'"2020-01-02T00:00:00+00:00"'
    assert dumps(naive, option=dbjson.OPT_NAIVE_UTC) == b'"2020-01-02T03:04:05Z"'


def test_uuid_decimal() -> None:
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert dumps(u) == b'"12345678-1234-5678-1234-567812345678"'
    assert dumps(decimal.Decimal("1.10")) == b"1.10"
    assert dumps(decimal.Decimal("-1E+5")) == b"-1E+5"
    assert json.loads(dumps(decimal.Decimal("-1E+5"))) == -1e5
    assert dumps(decimal.Decimal("1.10"), decimal_as_string=True) == b'"1.10"'
    for bad in ("NaN", "sNaN", "Infinity", "-Infinity"):
        with pytest.raises(JSONEncodeError):
            dumps(decimal.Decimal(bad))


def test_dataclass() -> None:
    @dataclasses.dataclass
    class Inner:
        v: float

    @dataclasses.dataclass
    class Outer:
        z: int
        a: str
        inner: Inner
        tags: list[str] = dataclasses.field(default_factory=list)
        cv: ClassVar[int] = 7

    o = Outer(1, "x", Inner(0.5), ["t"])
    assert dumps(o) == b'{"z":1,"a":"x","inner":{"v":0.5},"tags":["t"]}'
    assert dumps(o, sort_keys=True) == b'{"a":"x","inner":{"v":0.5},"tags":["t"],"z":1}'


def test_pydantic_model() -> None:
    pydantic = pytest.importorskip("pydantic")

    class M(pydantic.BaseModel):
        id: int
        when: datetime.date
        name: str = pydantic.Field(serialization_alias="Name")

    m = M(id=1, when=datetime.date(2020, 1, 1), name="n")
    # Written by alias, as FastAPI writes response models.
    assert json.loads(dumps(m)) == json.loads(m.model_dump_json(by_alias=True))
    assert dumps([m]) == b'[{"id":1,"when":"2020-01-01","Name":"n"}]'
    assert dumps([m], sort_keys=True) == b'[{"Name":"n","id":1,"when":"2020-01-01"}]'


def test_default() -> None:
    class X:
        pass

    assert dumps([X()], default=lambda o: {"x": 1}) == b'[{"x":1}]'
    assert dumps({1, 2}, default=sorted) == b"[1,2]"
    with pytest.raises(JSONEncodeError, match="not JSON serializable: X"):
        dumps(X())
    with pytest.raises(ZeroDivisionError):
        dumps(X(), default=lambda o: 1 / 0)
    # default that never converges is stopped by the depth limit
    with pytest.raises(JSONEncodeError, match="depth"):
        dumps(X(), default=lambda o: X())
    with pytest.raises(TypeError):
        dumps(1, default=5)


def test_default_mutating_container_is_safe() -> None:
    data: list[Any] = []

    class X:
        pass

    def default(o: Any) -> Any:
        data.clear()
        return "gone"

    data.extend([X(), {"a": "b" * 100}, [1, 2, 3]])
    assert dumps(data, default=default) == b'["gone"]'


def test_reentrant_dumps_in_default() -> None:
    class X:
        pass

    out = dumps([X(), "tail"], default=lambda o: dumps({"inner": [1]}).decode())
    assert out == b'["{\\"inner\\":[1]}","tail"]'


def test_circular_and_depth() -> None:
    a: list[Any] = []
    a.append(a)
    with pytest.raises(JSONEncodeError, match="circular reference"):
        dumps(a)
    d: dict[str, Any] = {}
    d["d"] = d
    with pytest.raises(JSONEncodeError, match="circular reference"):
        dumps(d)
    deep: Any = []
    for _ in range(dbjson.JSON_MAX_DEPTH):
        deep = [deep]
    with pytest.raises(JSONEncodeError, match="depth"):
        dumps(deep)
    ok: Any = 0
    for _ in range(dbjson.JSON_MAX_DEPTH):
        ok = [ok]
    assert json.loads(dumps(ok)) == ok


def test_short_member_values() -> None:
    # null, bools, ints and empty lists as member values take a fused path in the encoder
    doc = {"a": None, "b": True, "c": False, "d": [], "e": -(2**59), "f": 2**60, "g": [1, -2]}
    assert dumps(doc) == json.dumps(doc, separators=(",", ":")).encode()
    # an empty list as a member value is a nesting level, as anywhere else
    for levels in (dbjson.JSON_MAX_DEPTH - 2, dbjson.JSON_MAX_DEPTH - 1):
        member: Any = {"x": []}
        item: Any = [[]]
        for _ in range(levels):
            member, item = [member], [item]
        outcomes = []
        for value in (member, item):
            try:
                dumps(value)
                outcomes.append("ok")
            except JSONEncodeError:
                outcomes.append("depth")
        assert outcomes[0] == outcomes[1]
    assert "depth" in outcomes and dumps([{"x": []}]) == b'[{"x":[]}]'


def test_keys() -> None:
    with pytest.raises(JSONEncodeError, match="dict key must be str"):
        dumps({1: 2})
    with pytest.raises(JSONEncodeError, match="dict key must be str"):
        dumps({"a": 1, (1, 2): 2}, sort_keys=True)
    u = uuid.UUID(int=1)

    class E(enum.Enum):
        K = "kk"

    keys = {
        7: "i",
        2.5: "f",
        None: "n",
        True: "t",
        E.K: "e",
        datetime.date(2020, 1, 1): "d",
        u: "u",
        decimal.Decimal("1.5"): "dec",
    }
    out = json.loads(dumps(keys, non_str_keys=True))
    assert out == {
        "7": "i",
        "2.5": "f",
        "null": "n",
        "true": "t",
        "kk": "e",
        "2020-01-01": "d",
        str(u): "u",
        "1.5": "dec",
    }
    with pytest.raises(JSONEncodeError):
        dumps({(1,): 1}, non_str_keys=True)
    with pytest.raises(JSONEncodeError):
        dumps({math.nan: 1}, non_str_keys=True)
    assert dumps({2: 1, "1": 2}, non_str_keys=True, sort_keys=True) == b'{"1":2,"2":1}'


def test_sort_keys_and_indent_match_stdlib() -> None:
    obj = {"b": [1, {"y": 2, "x": [], "w": {}}], "a": "é", "": None, "B": (1.5,)}
    assert dumps(obj, sort_keys=True) == std(obj, sort_keys=True)
    expected = json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True).encode()
    assert dumps(obj, indent=2, sort_keys=True) == expected
    expected = json.dumps(obj, ensure_ascii=False, indent=2).encode()
    assert dumps(obj, indent=2) == expected
    assert dumps([], indent=2) == b"[]"
    assert dumps(obj, indent=None) == std(obj)
    with pytest.raises(ValueError):
        dumps(obj, indent=4)


def test_lone_surrogates_rejected() -> None:
    for s in ("\ud800", "a\udfff", "\udc00\ud800", "x" * 20 + "\ud83d"):
        with pytest.raises(JSONEncodeError, match="surrogate"):
            dumps(s)
        with pytest.raises(JSONEncodeError, match="surrogate"):
            dumps({s: 1})
    with pytest.raises(JSONEncodeError, match=r"lone surrogate U\+DFFF at index 1;"):
        dumps("a\udfff")


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        dumps()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        dumps(1, 2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        dumps(1, nope=True)  # type: ignore[call-arg]


def test_huge_int_over_str_digits_limit() -> None:
    if not hasattr(sys, "set_int_max_str_digits"):
        pytest.skip("no int max str digits limit on this Python")
    big = 10**5000
    with pytest.raises(JSONEncodeError, match="digits"):
        dumps(big)
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        assert dumps(big) == str(big).encode()
    finally:
        sys.set_int_max_str_digits(old)


def test_exception_classes() -> None:
    assert issubclass(JSONEncodeError, TypeError)
    assert issubclass(dbjson.JSONDecodeError, json.JSONDecodeError)
    assert issubclass(dbjson.JSONDecodeError, ValueError)
    assert dumps.__module__ == "data_bridge._core" or True


def test_string_escapes_at_every_length_and_position() -> None:
    """The short-string and block paths of the string writer, with escapes everywhere."""
    for n in range(0, 70):
        base = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_=+()"[:n]
        assert dumps(base) == std(base)
        for i in range(n):
            for ch in ('"', "\\", "\n", "\x00", "\x1f", "é", "中", "😀", "\x7f"):
                s = base[:i] + ch + base[i + 1 :]
                assert dumps(s) == std(s), (n, i, ch)
                assert dumps({s: s}) == std({s: s})


def test_results_of_varying_sizes() -> None:
    """dumps sizes its result from the previous one: shrinking and growing stay exact."""
    docs = [["x" * 100] * n for n in (10_000, 1, 0, 50_000, 3, 20_000, 20_000, 2)]
    for doc in docs + docs[::-1]:
        out = dumps(doc)
        assert out == std(doc)
        assert len(out) == len(std(doc))
        assert hash(out) == hash(bytes(out))


def test_c_api_appends_to_buffer() -> None:
    """json_encode (the server's entry point) appends to a db_buf_t and grows it."""
    from data_bridge import _core

    enc = _core._json_encode_append
    big = {"k": ["x" * 1000] * 300, "n": [1.5, 2**70, None]}
    assert enc(b"", big) == dumps(big)
    assert enc(b"HTTP/1.1 200 OK\r\n\r\n", [1, "a"]) == b'HTTP/1.1 200 OK\r\n\r\n[1,"a"]'
    assert enc(b"P", big, sort_keys=True, indent=2) == b"P" + dumps(big, sort_keys=True, indent=2)
    with pytest.raises(JSONEncodeError):
        enc(b"x", [float("nan")])
    with pytest.raises(JSONEncodeError):
        enc(b"x", object())


def test_dict_mutated_by_default_is_safe() -> None:
    """A default() that grows, shrinks or clears the dict being encoded never crashes."""

    class X:
        pass

    from data_bridge.json import loads

    for action, general in [(a, g) for a in ("grow", "delete", "clear") for g in (False, True)]:
        # loads builds presized (general-table) dicts; literals build str-keyed tables.
        d: dict[str, Any] = loads(json.dumps({f"k{i}": i for i in range(8)}))
        if not general:
            d = {f"k{i}": i for i in range(5)}
        d["x"] = X()
        d.update({f"z{i}": i for i in range(3)})

        def default(o: Any, d: dict[str, Any] = d, action: str = action) -> Any:  # noqa: B023
            if action == "grow":
                d.update({f"new{i}": i for i in range(100)})
            elif action == "delete":
                for k in [k for k in d if k.startswith("z")]:
                    del d[k]
            else:
                d.clear()
            return "X"

        try:
            out = dumps(d, default=default)
        except RuntimeError as e:
            assert "changed" in str(e)
        else:
            json.loads(out)


def test_dict_layouts() -> None:
    """Split-table dicts (instance __dict__), non-str keys and deleted slots."""

    class Obj:
        def __init__(self) -> None:
            self.a = 1
            self.b = [2]

    o = Obj()
    assert dumps(o.__dict__) == b'{"a":1,"b":[2]}'
    d = {f"k{i}": i for i in range(20)}
    for i in range(0, 20, 3):
        del d[f"k{i}"]
    assert dumps(d) == std(d)
    mixed = {"a": 1, 2: "b"}
    assert dumps(mixed, non_str_keys=True) == b'{"a":1,"2":"b"}'


def test_int_digit_boundaries() -> None:
    """Ints around the 30-bit digit, 10^k and 64-bit boundaries, and int subclasses."""

    class I(int):  # noqa: E742
        pass

    vals = [0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 10**8 - 1, 10**8, 10**16, 10**17]
    vals += [2**k + d for k in (29, 30, 31, 59, 60, 61, 62, 63, 64) for d in (-1, 0, 1)]
    for v in vals:
        for x in (v, -v, I(v), I(-v)):
            assert dumps(x) == str(int(x)).encode()
    assert dumps([10**4 + i for i in range(-3, 3)]) == b"[9997,9998,9999,10000,10001,10002]"


def test_member_ints_around_nine_digits() -> None:
    """A dict member's int of 9 digits is written inline (not by json_write_u64): every
    digit in every position, the 10^8 and 10^9 edges on both sides, negatives, and its
    neighbours in the same object so that the length and the comma show."""
    vals = [10**8 - 1, 10**8, 10**8 + 1, 10**9 - 1, 10**9, 10**9 + 1, 2**30 - 1, 2**30]
    vals += [int(str(d) * 9) for d in range(1, 10)]
    vals += [10**8 * h + t for h in range(1, 10) for t in (0, 1, 9, 10, 12345678, 99999999)]
    vals += [int("123456789"[i:] + "123456789"[:i]) for i in range(9)]
    for v in vals:
        for x in (v, -v):
            d = {"a": x, "b": 7, "c": [x], "d": x}
            assert dumps(d) == std(d), x
            assert dumps({"k": x}) == b'{"k":' + str(x).encode() + b"}"


SPECIALS = ['"', "\\", "\x7f", "é", "中", "😀", *map(chr, range(0x20))]


def test_short_ascii_strings_in_every_position() -> None:
    """Compact ASCII strings of 0..16 characters take a path that reads the 16 bytes ending
    at the string's end: every length, escapes at every index, as a top-level value, a key,
    a member value and a list item, next to other values so that the separators show."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_=+()"
    for n in range(0, 81):
        base = alphabet[:n]
        docs: list[Any] = [base, {base: base}, [base, base, 1, base], {"k": base, base: 2}]
        for i in range(n):
            for ch in SPECIALS:
                s = base[:i] + ch + base[i + 1 :]
                docs += [s, {s: s, "x": s}, [s, base, s], [1.5, s, None]]
        for doc in docs:
            assert dumps(doc) == std(doc), doc


def test_str_subclasses_and_shared_strings_of_short_lengths() -> None:
    """str subclasses keep their characters outside the object (not compact): they take
    the general path. Interned and sliced strings behave as any other."""

    class S(str):
        pass

    for n in range(0, 20):
        for ch in ("a", '"', "\n", "é", "中"):
            s = ch * n
            sub = S(s)
            assert dumps(sub) == std(s)
            assert dumps([sub, s, sub]) == std([s, s, s])
            assert dumps({sub: sub}) == std({s: s})
        word = sys.intern(f"key{n}")
        doc = {word: [word, word[1:], word[:-1]]}
        assert dumps(doc) == std(doc)


def test_lists_of_strings() -> None:
    """A list's str items are written with their ',' in one step; mixed with every other
    item type, empty, and nested."""
    items: list[Any] = ["", "a", "é", "x" * 40, "中" * 17, 1, 2.5, None, True, [], {}, ["s"]]
    for n in range(len(items) + 1):
        assert dumps(items[:n]) == std(items[:n])
        assert dumps(items[n:] + items[:n]) == std(items[n:] + items[:n])
    assert dumps([["a", "b"], ["c"], []]) == std([["a", "b"], ["c"], []])
    with pytest.raises(JSONEncodeError, match="lone surrogate"):
        dumps(["ok", "\ud800"])


def test_key_text_cache() -> None:
    """Written keys are remembered by key object: repeated keys, more keys than slots,
    keys made and dropped between calls (a new str may take a dropped one's address), and
    keys the cache leaves alone (escapes, non-ASCII, longer than 32 characters, subclasses)."""

    class S(str):
        pass

    alphabet = "abcdefghijklmnopqrstuvwxyz"
    for rnd in range(3):
        fresh = [
            "".join(alphabet[(i * 7 + j + rnd) % 26] for j in range(i % 37)) for i in range(700)
        ]
        doc = [{k: i for i, k in enumerate(fresh[s : s + 40])} for s in range(0, 700, 20)]
        assert dumps(doc) == std(doc)
        assert dumps(doc) == std(doc)
        del fresh, doc
    for n in range(0, 40):
        keys = [
            "k" * n,
            ("q" * n)[: n // 2] + '"' + "q" * (n // 2),
            "\n" * n,
            "é" * n,
            "中" * n,
            S("s" * n),
            "x" * n + "\x1f",
        ]
        doc = [{k: n for k in keys} for _ in range(3)]
        assert dumps(doc) == std(doc)
        assert dumps(doc, sort_keys=True) == std(doc, sort_keys=True)
        assert dumps(doc, indent=2) == json.dumps(doc, ensure_ascii=False, indent=2).encode()
    for i in range(2000):
        key = f"key{i % 300}"
        assert dumps({key: i, "id": i}) == std({key: i, "id": i})


def _fresh(s: str) -> str:
    """A new str with the same characters and no cached UTF-8 form (str.encode does not
    make one; PyUnicode_AsUTF8, which the encoder calls, does)."""
    return "".join(list(s))


def test_non_ascii_strings_of_every_kind() -> None:
    """Non-ASCII strs of every kind (1, 2 and 4 bytes per character), fresh (no cached
    UTF-8 form yet) and cached, with escapes and ASCII runs at every position, as the stdlib
    writes them."""
    import random

    r = random.Random(5)
    chars = [chr(c) for c in range(0x100)] + [
        "\u0100",
        "\u07ff",
        "\u0800",
        "\u4e2d",
        "\ue000",
        "\uffff",
        "\U00010000",
        "\U0001f600",
        "\U0010ffff",
    ]
    for _ in range(20_000):
        s = _fresh(
            "".join(
                r.choice(chars) if r.random() < 0.4 else r.choice("abc xyz")
                for _ in range(r.randint(1, 70))
            )
        )
        expected = json.dumps(s, ensure_ascii=False).encode()
        assert dumps(s) == expected
        assert dumps({_fresh(s): [_fresh(s)]}) == b"{%s:[%s]}" % (expected, expected)
    import ctypes

    for s in ("é" * 40 + '"\n', "中文" * 30 + "\\", "😀" * 9 + "\x00"):
        s = _fresh(s)
        first = dumps(s)
        ctypes.pythonapi.PyUnicode_AsUTF8.restype = ctypes.c_char_p
        ctypes.pythonapi.PyUnicode_AsUTF8.argtypes = [ctypes.py_object]
        ctypes.pythonapi.PyUnicode_AsUTF8(s)  # now cached: the copying path
        assert dumps(s) == first == json.dumps(s, ensure_ascii=False).encode()


def test_lone_surrogates_in_every_kind_rejected() -> None:
    for s in ("\ud800", "a\udfff", "é\ud800", "中\ud800x", "😀\udc00"):
        for obj in (_fresh(s), [_fresh(s)], {_fresh(s): 1}, {"k": _fresh(s)}):
            with pytest.raises(JSONEncodeError, match="lone surrogate"):
                dumps(obj)
