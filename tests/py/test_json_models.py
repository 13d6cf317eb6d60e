"""Pydantic models in data_bridge.json.dumps: the native path for plain models
(src/data_bridge/_model_plan.py, csrc/json/encode_model.c) against pydantic's own
serializer, the fallback to it, the plan cache's bounds, and reference leaks."""

from __future__ import annotations

import contextlib
import datetime
import gc
import json
import math
import re
import sys
import warnings
import weakref
from collections.abc import Iterator
from typing import Annotated, Any, Generic, Optional, TypeVar, Union

import pytest

pydantic = pytest.importorskip("pydantic")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from pydantic import (  # noqa: E402
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    TypeAdapter,
    computed_field,
    create_model,
    field_serializer,
    model_serializer,
)

from data_bridge import json as dbjson  # noqa: E402
from data_bridge._model_plan import plan  # noqa: E402
from data_bridge.json import JSONEncodeError, dumps  # noqa: E402


class Item(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str]
    ok: bool


class Inner(BaseModel):
    v: int = 0
    s: str | None = None


class Rich(BaseModel):
    i: int
    s: str
    f: float
    b: bool
    n: None = None
    # Both spellings of Optional, and the | form below.
    oi: Optional[int] = None  # noqa: UP045
    of: Union[float, None] = None  # noqa: UP007
    ls: list[str] = []
    lli: list[list[int]] = []
    dsf: dict[str, float] = {}
    dlo: dict[str, list[bool | None]] = {}
    inner: Inner = Inner()
    oinner: Inner | None = None
    linner: list[Inner] = []
    dinner: dict[str, Inner] = {}
    pipe: int | None = None


class Node(BaseModel):
    v: int = 0
    child: Node | None = None


class SubInner(Inner):
    secret: str = "must not leak"


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    x: int = Field(alias="X")
    y: str = Field(serialization_alias="Why")


class WithComputed(BaseModel):
    a: int

    @computed_field
    def double(self) -> int:
        return self.a * 2


class WithFieldSerializer(BaseModel):
    a: int

    @field_serializer("a")
    def ser_a(self, v: int) -> str:
        return f"<{v}>"


class WithModelSerializer(BaseModel):
    a: int

    @model_serializer
    def ser(self) -> dict[str, Any]:
        return {"custom": self.a}


class WithDatetime(BaseModel):
    when: datetime.datetime
    n: int = 1


class ExtraAllow(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: int = 1


class InfNan(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")
    f: float


class Excluded(BaseModel):
    a: int
    hidden: str = Field(default="x", exclude=True)


class Validated(BaseModel):
    a: Annotated[int, AfterValidator(lambda v: v + 1)]
    s: str = Field(default="x", max_length=10, pattern="^[a-z]*$")


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int


class Holder(BaseModel):
    root: RootModel[list[int]]
    item: Item


def reference(obj: Any) -> bytes:
    """What pydantic writes for obj (a model or a list of them), by alias."""
    if isinstance(obj, list):
        return TypeAdapter(list[Any]).dump_json(obj, by_alias=True, serialize_as_any=True)
    return type(obj).__pydantic_serializer__.to_json(obj, by_alias=True)


def same(obj: Any) -> bytes:
    """dumps(obj), checked against pydantic: equal values, and equal bytes once float
    numbers are written alike (both write the shortest round-trip digits, but pydantic
    writes 1e-8 and 0.00006103515625 where repr() writes 1e-08 and 6.103515625e-05)."""
    ours, theirs = dumps(obj), reference(obj)
    assert json.loads(ours) == json.loads(theirs)
    assert _floats_alike(ours) == _floats_alike(theirs)
    return ours


# A JSON string, a number, or any other single byte.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|.', re.S)


def _floats_alike(b: bytes) -> bytes:
    def one(m: re.Match[bytes]) -> bytes:
        t = m[0]
        if t[:1] in b"-0123456789" and (b"." in t or b"e" in t or b"E" in t):
            return repr(float(t)).encode()
        return t

    return _TOKEN.sub(one, b)


def fits(x: Any) -> bool:
    """True when every float in x is finite and every int fits in 64 bits (what the
    native path writes itself)."""
    if isinstance(x, dict):
        return all(fits(v) for v in x.values())
    if isinstance(x, list):
        return all(fits(v) for v in x)
    if isinstance(x, float):
        return math.isfinite(x)
    if isinstance(x, int):
        return -(2**63) <= x < 2**63
    return True


class _Spy:
    """Stands in for a class's __pydantic_serializer__ and counts to_json calls."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, 0

    def to_json(self, obj: Any, **kw: Any) -> bytes:
        self.calls += 1
        return self.real.to_json(obj, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@contextlib.contextmanager
def serializer_calls(cls: type) -> Iterator[_Spy]:
    real = cls.__dict__["__pydantic_serializer__"]
    spy = _Spy(real)
    type.__setattr__(cls, "__pydantic_serializer__", spy)
    try:
        yield spy
    finally:
        type.__setattr__(cls, "__pydantic_serializer__", real)


# ---- plans -------------------------------------------------------------------------


def test_plans() -> None:
    assert plan(Item) == (
        (b'{"id":', "id", ("int", False, None)),
        (b',"name":', "name", ("str", False, None)),
        (b',"price":', "price", ("float", False, None)),
        (b',"tags":', "tags", ("list", False, ("str", False, None))),
        (b',"ok":', "ok", ("bool", False, None)),
    )
    assert plan(Node)[1] == (b',"child":', "child", ("model", True, Node))
    for cls in (Rich, Inner, SubInner, Validated, Page[Item], Page[int], Holder):
        assert plan(cls) is not None, cls
    for cls in (
        Aliased,
        WithComputed,
        WithFieldSerializer,
        WithModelSerializer,
        WithDatetime,
        ExtraAllow,
        InfNan,
        Excluded,
        RootModel[list[int]],
        Page,
    ):
        assert plan(cls) is None, cls
    refused = (Any, tuple[int, ...], set[int], int | str, dict[int, int], list, bytes, Node | Inner)
    for ann in refused:
        assert plan(create_model("M", a=(ann, ...))) is None, ann
    assert plan(int) is None


def test_incomplete_model_is_asked_again() -> None:
    class Later(BaseModel):
        x: Undefined  # type: ignore[name-defined]  # noqa: F821

    assert plan(Later) is NotImplemented


# ---- the native path against pydantic ----------------------------------------------

ints = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers())
floats = st.floats(allow_nan=True, allow_infinity=True)
texts = st.text()
inner = st.builds(Inner, v=ints, s=st.none() | texts)


@settings(max_examples=300, deadline=None)
@given(
    i=ints,
    s=texts,
    f=floats,
    b=st.booleans(),
    oi=st.none() | ints,
    of=st.none() | floats,
    ls=st.lists(texts, max_size=4),
    lli=st.lists(st.lists(ints, max_size=3), max_size=3),
    dsf=st.dictionaries(texts, floats, max_size=3),
    dlo=st.dictionaries(texts, st.lists(st.none() | st.booleans(), max_size=3), max_size=3),
    inner=inner,
    oinner=st.none() | inner,
    linner=st.lists(inner, max_size=3),
    dinner=st.dictionaries(texts, inner, max_size=2),
    pipe=st.none() | ints,
)
def test_rich_models_match_pydantic(**kw: Any) -> None:
    m = Rich(**kw)
    ours = same(m)
    assert same([m, m]) == b"[" + ours + b"," + ours + b"]"
    if fits(m.model_dump()):
        # No surprise for the plan: written without the serializer.
        with serializer_calls(Rich) as spy:
            assert dumps(m) == ours
        assert spy.calls == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(
            Item,
            id=ints,
            name=texts,
            price=st.floats(allow_nan=False, allow_infinity=False),
            tags=st.lists(texts, max_size=4),
            ok=st.booleans(),
        ),
        max_size=20,
    )
)
def test_lists_of_models_match_pydantic(items: list[Item]) -> None:
    same(items)
    assert json.loads(dumps({"items": items})) == {"items": json.loads(reference(items))}


def test_nested_optional_and_generic_models() -> None:
    n = Node(v=1, child=Node(v=2, child=Node()))
    assert same(n) == b'{"v":1,"child":{"v":2,"child":{"v":0,"child":null}}}'
    page = Page[Item](items=[Item(id=1, name="a", price=1.5, tags=[], ok=True)], total=1)
    same(page)
    with serializer_calls(Page[Item]) as spy:
        dumps(page)
    assert spy.calls == 0
    same(Holder(root=RootModel[list[int]]([1, 2]), item=page.items[0]))
    same(Validated(a=1, s="abc"))


def test_subclass_instances_match_pydantic() -> None:
    class Outer(BaseModel):
        inner: Inner
        items: list[Inner]
        maybe: Inner | None = None

    o = Outer(inner=SubInner(v=1), items=[Inner(), SubInner(v=2)], maybe=SubInner(v=3, s="x"))
    out = same(o)
    assert b"leak" not in out
    assert (
        out == b'{"inner":{"v":1,"s":null},"items":[{"v":0,"s":null},{"v":2,"s":null}],'
        b'"maybe":{"v":3,"s":"x"}}'
    )
    # On its own a subclass instance is a model of its own class.
    assert dumps(SubInner(v=1)) == b'{"v":1,"s":null,"secret":"must not leak"}'


# ---- the fallback ------------------------------------------------------------------


def test_aliases_are_written_by_alias() -> None:
    a = Aliased(X=1, y="z")
    assert same(a) == b'{"X":1,"Why":"z"}'
    assert dumps([a], sort_keys=True) == b'[{"Why":"z","X":1}]'
    assert json.loads(dumps(a, indent=2)) == {"X": 1, "Why": "z"}


@pytest.mark.parametrize(
    "obj",
    [
        WithComputed(a=2),
        WithFieldSerializer(a=2),
        WithModelSerializer(a=2),
        WithDatetime(when=datetime.datetime(2020, 1, 2, 3, 4, 5)),
        ExtraAllow(a=2, b=[1, "x"]),
        InfNan(f=math.inf),
        Excluded(a=1),
    ],
)
def test_models_that_are_not_plain(obj: BaseModel) -> None:
    with serializer_calls(type(obj)) as spy:
        same(obj)
    assert spy.calls == 2  # dumps and the reference


def test_instances_that_do_not_fit_their_plan() -> None:
    class MyStr(str):
        pass

    cases = [
        Item.model_construct(id=1, name="a", price=2.0, tags=[]),  # missing field
        Item.model_construct(id=1, name=MyStr("sub"), price=2.0, tags=[], ok=True),
        Item.model_construct(id=1, name="a", price=3, tags=[], ok=True),  # int in float
        Item(id=1, name="a", price=math.nan, tags=[], ok=True),
        Item(id=2**64, name="a", price=1.0, tags=[], ok=True),
        Item.model_construct(id=True, name="a", price=1.0, tags=[], ok=True),
        Item.model_construct(id=1, name="a", price=1.0, tags=("t",), ok=True),
        Item.model_construct(id=1, name="a", price=1.0, tags=["t", MyStr("u")], ok=1),
    ]
    reordered = Item(id=1, name="a", price=1.0, tags=[], ok=True)
    del reordered.__dict__["id"]
    reordered.__dict__["id"] = 5
    extra_key = Item(id=1, name="a", price=1.0, tags=[], ok=True)
    extra_key.__dict__["zzz"] = 1
    cases += [reordered, extra_key]
    for obj in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with serializer_calls(Item) as spy:
                out = same(obj)
                # Only what came before the model was kept when it was abandoned.
                assert dumps(["x", obj, "y"]) == b'["x",' + out + b',"y"]'
        assert spy.calls == 3, obj  # two dumps and the reference
    assert dumps(cases[2]) == b'{"id":1,"name":"a","price":3.0,"tags":[],"ok":true}'
    assert dumps(reordered) == b'{"name":"a","price":1.0,"tags":[],"ok":true,"id":5}'


def test_nested_model_falls_back_alone() -> None:
    class Outer(BaseModel):
        a: Item
        b: Item

    item = Item(id=1, name="a", price=1.5, tags=[], ok=True)
    o = Outer(a=item, b=Item.model_construct(id=2, name="b", price=1.0, tags=[]))  # no ok
    with serializer_calls(Outer) as outer_spy, serializer_calls(Item) as item_spy:
        assert same(o) == (
            b'{"a":{"id":1,"name":"a","price":1.5,"tags":[],"ok":true},'
            b'"b":{"id":2,"name":"b","price":1.0,"tags":[]}}'
        )
        outer_spy.calls = item_spy.calls = 0
        dumps(o)
    assert (outer_spy.calls, item_spy.calls) == (0, 1)


def test_serializer_running_python_code_inside_a_plain_model() -> None:
    class Reentrant(BaseModel):
        a: int

        @field_serializer("a")
        def ser_a(self, v: int) -> Any:
            return json.loads(dumps({"inner": [Inner(v=v)]}))

    class Outer(BaseModel):
        items: list[Reentrant]
        tail: str = "t"

    o = Outer(items=[Reentrant(a=i) for i in range(5)])
    same(o)


# ---- depth, cycles, cache ----------------------------------------------------------


def test_depth_limit_and_cycles() -> None:
    n = Node()
    for i in range(dbjson.JSON_MAX_DEPTH + 10):
        n = Node(v=i, child=n)
    with pytest.raises(JSONEncodeError, match="maximum nesting depth of 512"):
        dumps(n)
    shallow = Node()
    for i in range(100):
        shallow = Node(v=i, child=shallow)
    same(shallow)
    loop = Node.model_construct(v=1, child=None)
    loop.__dict__["child"] = loop
    with pytest.raises(JSONEncodeError, match="circular reference"):
        dumps(loop)


def test_cache_does_not_keep_classes_alive() -> None:
    refs = []
    for i in range(3000):
        cls = create_model(f"Dyn{i}", x=(int, 0), child=(Inner | None, None))
        assert dumps([cls(x=i)]) == b'[{"x":%d,"child":null}]' % i
        refs.append(weakref.ref(cls))
        del cls
    gc.collect()
    assert sum(r() is not None for r in refs) == 0
    # The long-lived classes still work after all that eviction.
    same(Rich(i=1, s="s", f=1.0, b=True))


def test_no_growth_over_many_encodes() -> None:
    class Outer(BaseModel):
        a: Inner
        b: Inner

    objs: list[Any] = [
        [Item(id=i, name="n", price=1.5, tags=["a"], ok=True) for i in range(10)],
        Rich(i=1, s="s", f=1.0, b=True, linner=[Inner(), Inner(v=2)], dinner={"k": Inner()}),
        Item.model_construct(id=1, name="a", price=2.0, tags=[]),
        Outer(a=Inner(v=1), b=Inner.model_construct(v=2)),
        Aliased(X=1, y="z"),
        Node(v=1, child=Node(v=2)),
    ]
    bad = Node.model_construct(v=1, child=None)
    bad.__dict__["child"] = bad

    def run(n: int) -> None:
        for _ in range(n):
            for o in objs:
                dumps(o)
            with contextlib.suppress(JSONEncodeError):
                dumps(bad)

    run(2000)
    gc.collect()
    before = sys.getallocatedblocks()
    run(20000)  # 140,000 encodes
    gc.collect()
    assert sys.getallocatedblocks() - before < 200


def test_lone_surrogate_is_refused() -> None:
    # pydantic refuses it too (PydanticSerializationError); ours is the encoder's error.
    m = Item(id=1, name="a\ud800", price=1.0, tags=[], ok=True)
    with pytest.raises(JSONEncodeError, match=r"lone surrogate U\+D800 at index 1"):
        dumps([m])
    assert dumps(["after"]) == b'["after"]'
