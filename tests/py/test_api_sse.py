"""Server-Sent Events: generator endpoints with EventSourceResponse, the event format,
ServerSentEvent fields and validation, keep-alive comments."""

import asyncio
from collections.abc import AsyncIterable

import pytest
from pydantic import BaseModel, ValidationError

from data_bridge.api import FastAPI
from data_bridge.api import sse as sse_module
from data_bridge.api.sse import EventSourceResponse, ServerSentEvent, format_sse_event
from data_bridge.api.testclient import TestClient


class Item(BaseModel):
    name: str


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items", response_class=EventSourceResponse)
    async def items() -> AsyncIterable[Item]:
        yield Item(name="a")
        yield {"name": "b", "extra": 1}

    @app.get("/events", response_class=EventSourceResponse)
    async def events() -> AsyncIterable[ServerSentEvent]:
        yield ServerSentEvent(data={"n": 1}, event="tick", id="1", retry=500)
        yield ServerSentEvent(raw_data="line1\nline2", comment="two lines")

    @app.get("/slow", response_class=EventSourceResponse)
    async def slow():
        await asyncio.sleep(0.25)
        yield "done"

    return app


def test_items_are_json_data_events():
    r = TestClient(make_app()).get("/items")
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    assert r.text == 'data: {"name":"a"}\n\ndata: {"name":"b"}\n\n'


def test_server_sent_event_fields():
    r = TestClient(make_app()).get("/events")
    assert r.text == (
        'event: tick\ndata: {"n": 1}\nid: 1\nretry: 500\n\n'
        ": two lines\ndata: line1\ndata: line2\n\n"
    )


def test_keepalive_comments_while_the_generator_waits(monkeypatch):
    monkeypatch.setattr(sse_module, "PING_INTERVAL", 0.05)
    text = TestClient(make_app()).get("/slow").text
    assert text.endswith('data: "done"\n\n')
    assert text.count(": ping\n\n") >= 2


def test_event_validation_and_format():
    with pytest.raises(ValidationError):
        ServerSentEvent(event="a\nb")
    with pytest.raises(ValidationError):
        ServerSentEvent(id="x\x00")
    with pytest.raises(ValidationError):
        ServerSentEvent(data=1, raw_data="1")
    with pytest.raises(ValidationError):
        ServerSentEvent(retry=-1)
    assert format_sse_event(data_str="a\r\nb") == b"data: a\ndata: b\n\n"
