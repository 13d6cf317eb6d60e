"""Response models that are standard-library dataclasses or msgspec Structs.

A dataclass response model is written by the native encoder in pydantic's form
(JSON_OPT_AS_MODEL, csrc/json/encode_model.c: an int in a float field is 5.0, NaN is
null), and a result of exactly the declared class skips a validation that would hand it
back unchanged. Both must give the bytes pydantic (and so FastAPI) gives: every case
here is compared with pydantic's own serializer, and the routes with FastAPI's."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest

pydantic = pytest.importorskip("pydantic")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from pydantic import Field, TypeAdapter  # noqa: E402

from data_bridge import _core  # noqa: E402
from data_bridge._model_plan import dataclass_plan, plan  # noqa: E402
from data_bridge.api import App  # noqa: E402
from data_bridge.api.testclient import TestClient  # noqa: E402

AS_MODEL = 1 << 8  # JSON_OPT_AS_MODEL

# Values of the wrong type make pydantic's serializer warn, when it writes them for us as
# when it writes them itself (FastAPI's users see the same warnings).
pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")


@dataclass
class Point:
    x: float
    y: float = 0.0


@dataclass
class Item:
    id: int
    name: str
    price: float
    tags: list[str] = field(default_factory=list)
    where: Point | None = None
    named: dict[str, Point] = field(default_factory=dict)
    active: bool = True
    computed: int = field(default=7, init=False)


@dataclass
class SubPoint(Point):
    z: int = 1


@dataclass
class Aliased:
    a: Annotated[int, Field(alias="A")]


@dataclass
class WithDate:
    when: Any


def pydantic_bytes(model: Any, value: Any) -> bytes:
    return TypeAdapter(model).dump_json(value, by_alias=True, warnings=False)


def test_plans_of_dataclasses() -> None:
    fields = plan(Item)["fields"]
    assert [name for _, name, _ in fields] == [
        "id",
        "name",
        "price",
        "tags",
        "where",
        "named",
        "active",
        "computed",
    ]
    assert fields[4][2] == ("model", True, Point)
    # Anything whose output is not {"field": value, ...} of the core types is refused.
    assert plan(Aliased) is None
    assert plan(WithDate) is None
    assert dataclass_plan(Item) is not None


@pytest.mark.parametrize(
    "value",
    [
        Item(1, "a", 1.5, ["x"], Point(1.0, 2.0), {"p": Point(0.5)}),
        Item(1, "a", 5),  # an int in a float field: 5.0 for pydantic
        Item(1, "a", math.nan),  # NaN: null for pydantic
        Item(1, "a", math.inf, where=Point(math.inf)),
        Item("1", 2, 1.5, [3]),  # wrong types: pydantic's warnings-free inference
        Item(1, "é\u2028\U0001f600", 1e300),
        Item(True, "a", 1.0),  # a bool in an int field
        Item(1, "a", 1.0, where=SubPoint(1.0, 2.0, 3)),  # a subclass instance
        Item(1, "a", 1.0, tags=("t",)),  # a tuple in a list field
        Item(1, "a", 1.0, named={"k": Point(1.0), "j": {"x": 1}}),
    ],
)
def test_as_model_matches_pydantic(value: Item) -> None:
    assert _core.dumps(value, option=AS_MODEL) == pydantic_bytes(Item, value)
    assert _core.dumps([value, value], option=AS_MODEL) == pydantic_bytes(list[Item], [value] * 2)


def test_as_model_extra_attribute_left_to_pydantic() -> None:
    value = Item(1, "a", 1.0)
    value.extra = 5  # type: ignore[attr-defined]
    assert _core.dumps(value, option=AS_MODEL) == pydantic_bytes(Item, value)


def test_plain_dumps_still_writes_values() -> None:
    # The plan cached for the response path must not change what dumps() writes without
    # the option: a dataclass by its values, as orjson writes it.
    value = Point(5, 2)
    assert _core.dumps(value, option=AS_MODEL) == b'{"x":5.0,"y":2.0}'
    assert _core.dumps(value) == b'{"x":5,"y":2}'
    with pytest.raises(_core.JSONEncodeError if hasattr(_core, "JSONEncodeError") else Exception):
        _core.dumps(Point(math.nan))
    assert _core.dumps(Point(math.nan), option=AS_MODEL) == b'{"x":null,"y":0.0}'


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(
    id_=scalars,
    name=scalars,
    price=scalars,
    tags=st.lists(scalars, max_size=3),
    where=st.one_of(st.none(), st.builds(Point, scalars, scalars)),
)
def test_as_model_differential(id_: Any, name: Any, price: Any, tags: Any, where: Any) -> None:
    value = Item(id_, name, price, tags, where)
    try:
        expected = pydantic_bytes(list[Item], [value])
    except pydantic.PydanticSerializationError:
        with pytest.raises(Exception):  # noqa: B017 - whatever pydantic refuses
            _core.dumps([value], option=AS_MODEL)
        return
    assert _core.dumps([value], option=AS_MODEL) == expected


# ---- routes ------------------------------------------------------------------------------

ITEMS = [Item(i, f"item {i}", i * 1.5, ["a"]) for i in range(5)]


def build(framework: Any) -> Any:
    app = framework()

    @app.get("/list", response_model=list[Item])
    async def as_list() -> Any:
        return ITEMS

    @app.get("/one", response_model=Item)
    async def one() -> Any:
        return Item(1, "a", 5, where=Point(2))

    @app.get("/dict", response_model=Item)
    async def from_dict() -> Any:
        return {"id": 1, "name": "a", "price": 2, "where": {"x": 1}}

    @app.get("/sub", response_model=list[Point])
    async def sub() -> Any:
        return [Point(1.0), SubPoint(2.0, 3.0, 4)]

    @app.get("/nan", response_model=Item)
    async def nan() -> Any:
        return Item(1, "a", math.nan)

    @app.get("/bad", response_model=Item)
    async def bad() -> Any:
        return {"id": "x", "name": "a", "price": 1.0}

    @app.post("/echo", response_model=Item, status_code=201)
    async def echo(item: Item) -> Any:
        return item

    return app


@pytest.fixture(scope="module")
def clients() -> Any:
    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient as FastAPIClient

    return TestClient(build(App)), FastAPIClient(build(fastapi.FastAPI))


@pytest.mark.parametrize("path", ["/list", "/one", "/dict", "/sub", "/nan", "/bad"])
def test_routes_match_fastapi(clients: Any, path: str) -> None:
    ours, theirs = clients
    if path == "/bad":
        # A response that fails its model: a ResponseValidationError in both.
        for client in (ours, theirs):
            with pytest.raises(Exception, match="validation error"):
                client.get(path)
        return
    a, b = ours.get(path), theirs.get(path)
    assert (a.status_code, a.content) == (b.status_code, b.content)
    assert a.headers["content-type"] == b.headers["content-type"]


def test_body_and_response_match_fastapi(clients: Any) -> None:
    ours, theirs = clients
    body = {"id": 3, "name": "n", "price": 4, "tags": ["t"], "where": {"x": 1.5, "y": 2}}
    a, b = ours.post("/echo", json=body), theirs.post("/echo", json=body)
    assert (a.status_code, a.content) == (b.status_code, b.content)
    bad = {"id": "x", "name": "n", "price": 1}
    a, b = ours.post("/echo", json=bad), theirs.post("/echo", json=bad)
    assert (a.status_code, a.json()) == (b.status_code, b.json())


def test_exact_dataclass_results_are_written_by_the_server(
    clients: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without anything wrapping the route, the server writes exact dataclass results
    itself with JSON_OPT_AS_MODEL (no Response object per request); with an http
    middleware around it, the responder makes the Response. Both give FastAPI's bytes."""
    from data_bridge.api.responses import Response

    made: list[Any] = []
    init = Response.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        init(self, *args, **kwargs)

    ours, theirs = clients
    expected = {path: theirs.get(path).content for path in ("/list", "/one", "/nan")}
    monkeypatch.setattr(Response, "__init__", counting_init)
    for path, content in expected.items():
        assert ours.get(path).content == content
    assert made == []

    wrapped = build(App)

    @wrapped.middleware("http")
    async def passthrough(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    client = TestClient(wrapped)
    for path, content in expected.items():
        assert client.get(path).content == content
    assert made


# ---- msgspec Structs -----------------------------------------------------------------------


def test_struct_result_of_the_exact_class_skips_conversion() -> None:
    msgspec = pytest.importorskip("msgspec")

    class S(msgspec.Struct):
        id: int
        ratio: float = 0.5

    converted = 0
    real_convert = msgspec.convert

    app = App()

    @app.get("/one", response_model=S)
    async def one() -> Any:
        return S(1)

    @app.get("/many", response_model=list[S])
    async def many() -> Any:
        return [S(1), S(2, 1.5)]

    @app.get("/dict", response_model=S)
    async def from_dict() -> Any:
        return {"id": 3}

    @app.get("/bad", response_model=S)
    async def bad() -> Any:
        return {"id": "x"}

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal converted
        converted += 1
        return real_convert(*args, **kwargs)

    client = TestClient(app)
    msgspec.convert = counting
    try:
        assert client.get("/one").json() == {"id": 1, "ratio": 0.5}
        assert client.get("/many").json() == [{"id": 1, "ratio": 0.5}, {"id": 2, "ratio": 1.5}]
        assert converted == 0
        assert client.get("/dict").json() == {"id": 3, "ratio": 0.5}
        assert converted == 1
    finally:
        msgspec.convert = real_convert
    with pytest.raises(Exception, match="validation error"):
        client.get("/bad")
