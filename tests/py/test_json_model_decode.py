"""Pydantic models decoded natively from JSON bytes (src/data_bridge/_model_decode.py,
csrc/json/decode_model.c) against pydantic's own model_validate_json: the same instances
(values, their types, __dict__ order, fields set) or the same errors, for generated
documents valid and not; which models are planned; copies of mutable defaults;
reference leaks; and that the server's body binding uses it."""

import dataclasses
import gc
import json
import sys
from typing import Annotated, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from typing_extensions import NotRequired, TypedDict

from data_bridge._model_decode import adapter_decoder_for, decoder_for, why_not_native


class Tag(BaseModel):
    name: str
    weight: float = 1.0


class Item(BaseModel):
    id: int
    name: str
    price: float = Field(gt=0, le=1000)
    qty: int = Field(default=1, ge=1, lt=100, multiple_of=1)
    flag: bool = False
    note: str | None = None
    tags: list[Tag] = []
    meta: dict[str, int] = {}
    extra: Any = None


class Code(BaseModel):
    code: str = Field(min_length=2, max_length=4)
    parts: list[int] = Field(default=[], max_length=3)


class Node(BaseModel):
    value: int
    children: list["Node"] = []


class Order(BaseModel):
    id: int
    items: list[Item]
    codes: list[Code] = []
    tree: Node | None = None
    scores: dict[str, float | None] = {}
    even: int = Field(default=0, multiple_of=2)


def _shape(value: Any) -> Any:
    """A comparable picture of a value: types included, models by class and __dict__."""
    if isinstance(value, BaseModel):
        return (
            type(value),
            [(k, _shape(v)) for k, v in value.__dict__.items()],
            sorted(value.model_fields_set),
            value.__pydantic_extra__,
            value.__pydantic_private__,
        )
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, dict):
        return [(k, _shape(v)) for k, v in value.items()]
    return (type(value), value)


def same_as_pydantic(cls: type[BaseModel], doc: bytes) -> None:
    decode = decoder_for(cls)
    assert decode is not None, why_not_native(cls)
    try:
        expected = cls.model_validate_json(doc)
    except ValidationError as exc:
        with pytest.raises(ValidationError) as got:
            decode(doc)
        assert repr(got.value.errors()) == repr(exc.errors())  # repr: NaN inputs
        return
    assert _shape(decode(doc)) == _shape(expected)


# ---- documents ------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
_any_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


def _maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly valid values, sometimes any JSON value (wrong types, out of range): a
    document has many fields, and most documents should still be valid."""
    return st.integers(0, 24).flatmap(lambda k: _any_json if k == 0 else valid)


_tag = st.fixed_dictionaries(
    {"name": _maybe(st.text(max_size=5))},
    optional={"weight": _maybe(st.floats(-10, 10) | st.integers(-10, 10))},
)
_item = st.fixed_dictionaries(
    {
        "id": _maybe(st.integers(-5, 2**40)),
        "name": _maybe(st.text(max_size=8)),
        "price": _maybe(st.floats(0, 1001) | st.integers(0, 1001)),
    },
    optional={
        "qty": _maybe(st.integers(0, 100)),
        "flag": _maybe(st.booleans()),
        "note": _maybe(st.none() | st.text(max_size=4)),
        "tags": _maybe(st.lists(_tag, max_size=3)),
        "meta": _maybe(st.dictionaries(st.text(max_size=3), st.integers(-3, 3), max_size=3)),
        "extra": _any_json,
        "unknown": _any_json,
    },
)
_code = st.fixed_dictionaries(
    {"code": _maybe(st.text(min_size=1, max_size=5))},
    optional={"parts": _maybe(st.lists(st.integers(0, 9), max_size=4))},
)
_node = st.recursive(
    st.fixed_dictionaries({"value": _maybe(st.integers(-9, 9))}),
    lambda inner: st.fixed_dictionaries(
        {"value": st.integers(-9, 9)}, optional={"children": st.lists(inner, max_size=3)}
    ),
    max_leaves=8,
)
_order = st.fixed_dictionaries(
    {"id": _maybe(st.integers()), "items": _maybe(st.lists(_item, max_size=4))},
    optional={
        "codes": _maybe(st.lists(_code, max_size=3)),
        "tree": _maybe(st.none() | _node),
        "scores": _maybe(st.dictionaries(st.text(max_size=3), st.none() | st.floats(-5, 5))),
        "even": _maybe(st.integers(-5, 5).map(lambda i: i * 2 + (i == 3))),
    },
)


@st.composite
def _documents(draw: st.DrawFn) -> bytes:
    doc = json.dumps(draw(_order), ensure_ascii=draw(st.booleans()))
    # Sometimes text around the document, a key spelled with an escape, a repeated key.
    edit = draw(st.integers(0, 9))
    if edit == 1:
        doc = f" \n{doc}\t "
    elif edit == 2:
        doc = doc.replace('"id"', '"\\u0069d"', 1)
    elif edit == 3 and doc.endswith("}"):
        doc = doc[:-1] + ', "id": 5}'
    elif edit == 4:
        doc = doc[: draw(st.integers(0, len(doc)))]
    return doc.encode("utf-8", "surrogatepass")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents())
def test_same_as_pydantic_on_generated_documents(doc: bytes) -> None:
    same_as_pydantic(Order, doc)


@pytest.mark.parametrize(
    "doc",
    [
        b'{"id": 1, "items": []}',
        b'{"id": 1, "items": [{"id": 2, "name": "a", "price": 3}]}',  # int for float
        b'{"id": "1", "items": []}',  # lax str -> int (pydantic's)
        b'{"id": 1.0, "items": []}',  # float token for int
        b'{"id": 12345678901234567890123, "items": []}',  # beyond 64 bits
        b'{"id": 1, "items": [{"id": 2, "name": "a", "price": 1e400}]}',  # inf
        b'{"id": 1, "items": [{"id": 2, "name": "a", "price": 0}]}',  # gt=0
        b'{"id": 1, "items": [{"id": 2, "name": "a", "price": 1000}]}',  # le=1000
        b'{"id": 1, "items": [{"id": 2, "name": "a", "price": 5, "qty": 100}]}',  # lt=100
        b'{"id": 1, "items": [], "even": 3}',
        b'{"id": 1, "items": [], "codes": [{"code": "a"}]}',  # min_length
        b'{"id": 1, "items": [], "codes": [{"code": "abcd", "parts": [1,2,3,4]}]}',
        b'{"id": 1, "items": [], "codes": [{"code": "\\u00e9\\u00e9"}]}',
        b'{"id": 1, "items": [], "tree": {"value": 1, "children": [{"value": 2}]}}',
        b'{"id": 1, "items": [], "scores": {"a": null, "b": 2}}',
        b'{"id": 1, "items": [], "id": 2}',  # last one counts
        b'{"id": 1}',  # missing field
        b'{"items": [], "id": 1, "zz": {"deep": [1, 2, {"x": null}]}}',  # extra ignored
        b'{"id": 1, "items": [], "zz": "\\ud800"}',  # lone surrogate in an ignored value
        b'{"id": 1, "items": [], "\\ud800": 1}',
        b'{"id": 1, "items": [],}',
        b'{"id": 1, "items": []} x',
        b"[]",
        b"",
        b"null",
        b'{"id": 1, "items": [{"id": 2, "name": "a", "price": NaN}]}',
        '{"id": 1, "items": [{"id": 2, "name": "é\u20ac😀", "price": 1.5}]}'.encode(),
        b'{"id": 1, "items": [{"id": 2, "name": "a", "price": 1.5, "flag": 1}]}',
        b'{"id": 1, "items": [{"id": 2, "name": "a", "price": 1.5, "note": null}]}',
        b'{"id": -0, "items": []}',
    ],
)
def test_same_as_pydantic_on_edge_cases(doc: bytes) -> None:
    same_as_pydantic(Order, doc)


def test_valid_documents_take_the_native_path() -> None:
    decode = decoder_for(Order)
    doc = json.dumps(
        {
            "id": 7,
            "items": [
                {"id": i, "name": f"n{i}", "price": 2.5, "tags": [{"name": "t"}]} for i in range(50)
            ],
            "tree": {"value": 1, "children": [{"value": 2, "children": []}]},
        }
    ).encode()
    out = decode(doc)
    assert decode.counts == (1, 0)
    assert out == Order.model_validate_json(doc)
    decode(b'{"id": "7", "items": []}')  # lax coercion: pydantic's
    assert decode.counts == (1, 1)
    # memoryview input, as the server passes the body
    assert decode(memoryview(doc)) == out


def test_instance_dicts_are_built_as_pydantic_builds_them() -> None:
    """The __dict__ of a decoded instance (made from a copy of a prebuilt table on 3.11)
    is the dict pydantic makes: same items in the same order, same size, tracked by the
    collector exactly when pydantic's is, and an ordinary dict afterwards (lookups,
    new attributes, deletion, growth far past its first table)."""
    decode = decoder_for(Order)
    doc = json.dumps(
        {
            "id": 7,
            "items": [{"id": i, "name": f"n{i}", "price": 2.5} for i in range(20)],
            "codes": [{"code": "abc"}],
        }
    ).encode()
    ours, theirs = decode(doc), Order.model_validate_json(doc)
    assert decode.counts == (1, 0)
    pairs = [(ours, theirs), *zip(ours.items, theirs.items, strict=True)]
    pairs += [(ours.codes[0], theirs.codes[0])]
    for a, b in pairs:
        assert list(a.__dict__.items()) == list(b.__dict__.items())
        assert sys.getsizeof(a.__dict__) == sys.getsizeof(b.__dict__)
        assert gc.is_tracked(a.__dict__) == gc.is_tracked(b.__dict__)
    item = ours.items[3]
    assert item.__dict__["name"] == "n3" and item.name == "n3"
    item.name = "changed"
    assert item.__dict__["name"] == "changed"
    for i in range(200):
        item.__dict__[f"extra{i}"] = i
    del item.__dict__["price"]
    assert "price" not in item.__dict__ and item.__dict__["extra199"] == 199
    assert list(item.__dict__)[:2] == ["id", "name"]
    # Many instances made and freed: the tables go back to the interpreter's free list.
    for _ in range(200):
        decode(doc)
    gc.collect()
    assert decode(doc) == theirs


def test_mutable_defaults_are_copies_and_hashable_ones_shared() -> None:
    decode = decoder_for(Item)
    a = decode(b'{"id": 1, "name": "a", "price": 1}')
    b = decode(b'{"id": 2, "name": "b", "price": 1}')
    assert decode.counts == (2, 0)
    assert a.tags == [] and a.tags is not b.tags and a.meta is not b.meta
    a.tags.append(Tag(name="x"))
    assert b.tags == [] and Item.model_fields["tags"].default == []
    assert a.model_fields_set == {"id", "name", "price"}


class _WithValidator(BaseModel):
    x: int

    @field_validator("x")
    @classmethod
    def _pos(cls, v: int) -> int:
        return v


class _WithModelValidator(BaseModel):
    x: int

    @model_validator(mode="after")
    def _check(self) -> "_WithModelValidator":
        return self


class _Aliased(BaseModel):
    x: int = Field(alias="X")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True)
    x: int


class _Forbid(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int


class _Allow(BaseModel):
    model_config = ConfigDict(extra="allow")
    x: int


class _Strip(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)
    x: str


class _Union(BaseModel):
    x: int | str


class _Private(BaseModel):
    x: int
    _p: int = PrivateAttr(default=1)


class _PostInit(BaseModel):
    x: int

    def model_post_init(self, context: Any) -> None:
        pass


class _Init(BaseModel):
    x: int

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)


class _Pattern(BaseModel):
    x: str = Field(pattern="^a")


class _Annotated(BaseModel):
    x: Annotated[int, AfterValidator(lambda v: v)]


class _ValidateDefault(BaseModel):
    x: int = Field(default=1, validate_default=True)


class _NestedBad(BaseModel):
    inner: _WithValidator


class _FloatMultiple(BaseModel):
    x: float = Field(multiple_of=0.5)


class _FactoryTakingData(BaseModel):
    x: list[int] = Field(default_factory=lambda data: [])


@dataclasses.dataclass
class _PostInitDC:
    x: int

    def __post_init__(self) -> None:
        pass


class _WithPostInitDataclass(BaseModel):
    inner: _PostInitDC


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0
    labels: list[str] = dataclasses.field(default_factory=list)


class Labels(TypedDict):
    name: str
    weight: NotRequired[float]
    tags: list[str]


class Shape(BaseModel):
    points: list[Point]
    made: list[int] = Field(default_factory=lambda: [1, 2])


@pytest.mark.parametrize(
    "cls",
    [
        _WithValidator,
        _WithModelValidator,
        _Aliased,
        _Strict,
        _Forbid,
        _Allow,
        _Strip,
        _Union,
        _Private,
        _PostInit,
        _Init,
        _Pattern,
        _Annotated,
        _ValidateDefault,
        _NestedBad,
        _FloatMultiple,
        _FactoryTakingData,
        _WithPostInitDataclass,
    ],
)
def test_models_with_other_mechanisms_are_left_to_pydantic(cls: type[BaseModel]) -> None:
    assert decoder_for(cls) is None
    assert why_not_native(cls)


def test_planned_models() -> None:
    for cls in (Order, Item, Code, Node, Tag):
        assert decoder_for(cls) is not None


def test_no_reference_leaks() -> None:
    decode = decoder_for(Order)
    good = json.dumps(
        {"id": 1, "items": [{"id": 1, "name": "x", "price": 2.0, "tags": [{"name": "t"}]}] * 5}
    ).encode()
    bad = [b'{"id": 1, "items": [{"id": 1}]}', b'{"id": 1, "items": [', b'{"id": "1", "items": []}']

    def run(n: int) -> None:
        for _ in range(n):
            decode(good)
            for doc in bad:
                try:
                    decode(doc)
                except ValidationError:
                    pass

    run(200)
    gc.collect()
    before = sys.getallocatedblocks()
    run(3000)
    gc.collect()
    assert sys.getallocatedblocks() - before < 200


def test_request_bodies_are_decoded_natively_with_fastapi_errors() -> None:
    from unittest import mock

    from data_bridge._core import ModelDecoder
    from data_bridge.api import FastAPI
    from data_bridge.api.testclient import TestClient

    made: list[ModelDecoder] = []
    real = ModelDecoder

    def spy(*args: Any) -> ModelDecoder:
        made.append(real(*args))
        return made[-1]

    with mock.patch("data_bridge._core.ModelDecoder", spy):
        app = FastAPI()

        @app.post("/orders")
        async def create(order: Order) -> dict[str, Any]:
            return {"id": order.id, "n": len(order.items), "set": sorted(order.model_fields_set)}

        client = TestClient(app)
        ok = client.post("/orders", json={"id": 3, "items": [{"id": 1, "name": "a", "price": 2}]})
    assert ok.status_code == 200
    assert ok.json() == {"id": 3, "n": 1, "set": ["id", "items"]}

    def counts() -> tuple[int, int]:
        return (sum(m.counts[0] for m in made), sum(m.counts[1] for m in made))

    assert made and counts() == (1, 0)
    lax = client.post("/orders", json={"id": "4", "items": []})
    assert lax.status_code == 200 and lax.json()["id"] == 4
    bad = client.post("/orders", json={"id": 1, "items": [{"id": 1, "name": "a", "price": 0}]})
    assert bad.status_code == 422
    assert bad.json() == {
        "detail": [
            {
                "type": "greater_than",
                "loc": ["body", "items", 0, "price"],
                "msg": "Input should be greater than 0",
                "input": 0,
                "ctx": {"gt": 0.0},
            }
        ]
    }
    assert counts() == (1, 2)


_point = st.fixed_dictionaries(
    {"x": _maybe(st.floats(-5, 5) | st.integers(-5, 5))},
    optional={"y": _maybe(st.floats(-5, 5)), "labels": _maybe(st.lists(st.text(max_size=3)))},
)

_labels = st.fixed_dictionaries(
    {"name": _maybe(st.text(max_size=3)), "tags": _maybe(st.lists(st.text(max_size=2)))},
    optional={"weight": _maybe(st.floats(-3, 3)), "other": _any_json},
)

_ADAPTED: list[Any] = [
    Labels,
    list[Labels],
    list[Item],
    Point,
    list[Point],
    Shape,
    dict[str, Tag],
    list[int],
    Annotated[list[Tag], Field(min_length=1, max_length=2)],
    Annotated[int, Field(gt=0)],
    list[Node | None],
]


@pytest.mark.parametrize("annotation", _ADAPTED)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_type_adapters_same_as_pydantic(annotation: Any, data: st.DataObject) -> None:
    adapter = TypeAdapter(annotation)
    decode = adapter_decoder_for(adapter)
    assert decode is not None
    value = data.draw(
        st.one_of(
            st.lists(_item, max_size=3),
            st.dictionaries(st.text(max_size=3), _tag, max_size=3),
            st.lists(st.integers(-3, 3), max_size=3),
            st.lists(_tag, max_size=3),
            st.integers(-2, 2),
            st.lists(st.none() | _node, max_size=3),
            _point,
            st.lists(_point, max_size=3),
            _labels,
            st.lists(_labels, max_size=3),
            st.fixed_dictionaries({"points": st.lists(_point, max_size=3)}),
            _any_json,
        )
    )
    doc = json.dumps(value).encode()
    try:
        expected = adapter.validate_json(doc)
    except ValidationError as exc:
        with pytest.raises(ValidationError) as got:
            decode(doc)
        assert repr(got.value.errors()) == repr(exc.errors())
        return
    assert _shape(decode(doc)) == _shape(expected)


def test_type_adapter_native_path_is_taken() -> None:
    adapter = TypeAdapter(list[Item])
    decode = adapter_decoder_for(adapter)
    doc = json.dumps([{"id": i, "name": "n", "price": 1.5} for i in range(5)]).encode()
    assert [i.id for i in decode(doc)] == list(range(5))
    assert decode.counts == (1, 0)
    assert adapter_decoder_for(TypeAdapter(int | str)) is None
    assert adapter_decoder_for(TypeAdapter(list[int], config={"strict": True})) is None


def test_dataclasses_and_default_factories() -> None:
    decode = decoder_for(Shape)
    assert decode is not None, why_not_native(Shape)
    a = decode(b'{"points": [{"x": 1}, {"x": 2.5, "y": 1, "labels": ["a"]}]}')
    b = decode(b'{"points": []}')
    assert decode.counts == (2, 0)
    assert a.points == [Point(1.0, 0.0, []), Point(2.5, 1.0, ["a"])]
    assert type(a.points[0].x) is float and a.points[0].labels is not a.points[1].labels
    assert a.made == [1, 2] and a.made is not b.made
    assert a.model_fields_set == {"points"}
    assert _shape(a) == _shape(
        Shape.model_validate_json(b'{"points": [{"x": 1}, {"x": 2.5, "y": 1, "labels": ["a"]}]}')
    )


def test_typed_dicts() -> None:
    adapter = TypeAdapter(list[Labels])
    decode = adapter_decoder_for(adapter)
    assert decode is not None
    doc = b'[{"tags": [], "name": "a", "x": 1}, {"name": "b", "weight": 2, "tags": ["t"]}]'
    out = decode(doc)
    assert decode.counts == (1, 0)
    assert (
        out
        == adapter.validate_json(doc)
        == [
            {"name": "a", "tags": []},
            {"name": "b", "weight": 2.0, "tags": ["t"]},
        ]
    )
    assert list(out[0]) == ["name", "tags"] and type(out[1]["weight"]) is float
