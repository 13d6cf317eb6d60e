"""FastAPI's built-in OpenTelemetry (FastAPI(telemetry={...})): the spans and metrics of the
same app served by FastAPI itself and by data-bridge, compared; an app without a configured
provider is not wrapped at all (its routes stay native)."""

import asyncio
from typing import Annotated, Any

import pytest

from data_bridge import api as ours_api
from data_bridge.api.testclient import TestClient

fastapi = pytest.importorskip("fastapi")
pytest.importorskip("opentelemetry.sdk")
from fastapi.testclient import TestClient as RTestClient  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _build(api: Any, telemetry: dict[str, Any]) -> Any:
    app = api.FastAPI(telemetry=telemetry)

    def common(q: int = 0) -> int:
        return q

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, c: Annotated[int, api.Depends(common)]) -> Any:
        if item_id == 404:
            raise api.HTTPException(status_code=404, detail="missing")
        if item_id == 500:
            raise RuntimeError("boom")
        return {"item_id": item_id, "c": c}

    @app.get("/slow")
    async def slow() -> Any:
        await asyncio.sleep(0.01)
        return {"slow": True}

    @app.post("/sync", status_code=201)
    def sync(body: dict[str, int]) -> Any:
        return body

    class TimedRoute(api.routing.APIRoute):
        def get_route_handler(self) -> Any:
            original = super().get_route_handler()

            async def handler(request: Any) -> Any:
                response = await original(request)
                response.headers["X-Timed"] = "1"
                return response

            return handler

    @app.get("/text")
    async def text() -> Any:
        return api.responses.PlainTextResponse("x")

    @app.get("/stream")
    async def stream() -> Any:
        async def body() -> Any:
            yield b"a"

        return api.responses.StreamingResponse(body())

    @app.get("/lines")
    async def lines() -> Any:
        yield {"a": 1}

    @app.get("/later")
    async def later(tasks: api.BackgroundTasks) -> Any:
        tasks.add_task(lambda: None)
        return {"ok": True}

    router = api.APIRouter(route_class=TimedRoute)

    @router.get("/timed/{n}")
    async def timed(n: int) -> Any:
        return {"n": n}

    app.include_router(router)
    return app


def _spans(exporter: InMemorySpanExporter) -> list[Any]:
    out = []
    spans = exporter.get_finished_spans()
    server = next((s for s in spans if s.kind.name == "SERVER"), None)
    for s in spans:
        out.append(
            (
                s.name,
                s.kind.name,
                dict(s.attributes or {}),
                s.status.status_code.name,
                # Operation spans are children of the server span; the server span's parent
                # is the caller's (traceparent).
                "server"
                if server is not None and s.parent and s.parent.span_id == server.context.span_id
                else (format(s.parent.span_id, "016x") if s.parent else None),
                format(s.context.trace_id, "032x")
                if s.parent and s.kind.name == "SERVER"
                else None,
            )
        )
    exporter.clear()
    return sorted(out, key=repr)


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/items/2?q=3&sig=secret", {}),
    ("GET", "/items/two", {}),
    ("GET", "/items/404", {}),
    ("GET", "/items/500", {}),
    ("GET", "/items/2", {"headers": {"traceparent": PARENT}}),
    ("GET", "/slow", {}),
    ("POST", "/sync", {"json": {"a": 1}}),
    ("POST", "/sync", {"json": [1]}),
    ("GET", "/openapi.json", {}),
    ("GET", "/timed/3", {}),
    ("GET", "/timed/x", {}),
    ("GET", "/text", {}),
    ("GET", "/stream", {}),
    ("GET", "/lines", {}),
    ("GET", "/later", {}),
]


def _run(api: Any, client_class: Any, telemetry: dict[str, Any]) -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = _build(api, {"tracer_provider": provider, **telemetry})
    seen = []
    with client_class(app, raise_server_exceptions=False) as client:
        for method, path, kwargs in REQUESTS:
            response = client.request(method, path, **kwargs)
            seen.append((method, path, response.status_code, _spans(exporter)))
    provider.shutdown()
    return seen


@pytest.mark.parametrize("telemetry", [{}, {"operation_spans": False}])
def test_spans_as_fastapi(telemetry: dict[str, Any]) -> None:
    ours = _run(ours_api, TestClient, telemetry)
    theirs = _run(fastapi, RTestClient, telemetry)
    for mine, ref in zip(ours, theirs, strict=True):
        assert mine == ref


def test_metrics_as_fastapi() -> None:
    def run(api: Any, client_class: Any) -> Any:
        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
        app = _build(api, {"meter_provider": meter_provider, "tracing": False})
        with client_class(app, raise_server_exceptions=False) as client:
            for method, path, kwargs in REQUESTS:
                client.request(method, path, **kwargs)
        data = reader.get_metrics_data()
        points: dict[str, Any] = {}
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.data.data_points:
                        key = (metric.name, metric.unit, tuple(sorted(p.attributes.items())))
                        points[key] = getattr(p, "count", None) or getattr(p, "value", None)
        meter_provider.shutdown()
        return points

    assert run(ours_api, TestClient) == run(fastapi, RTestClient)


def test_exclude_and_off() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = _build(
        ours_api,
        {"tracer_provider": provider, "exclude": lambda scope: scope["path"] == "/slow"},
    )
    client = TestClient(app)
    assert client.get("/slow").json() == {"slow": True}
    assert exporter.get_finished_spans() == ()
    assert client.get("/items/1").status_code == 200
    assert len(exporter.get_finished_spans()) == 4
    exporter.clear()
    off = TestClient(_build(ours_api, {"tracer_provider": provider, "tracing": False}))
    assert off.get("/items/1").status_code == 200
    assert exporter.get_finished_spans() == ()
    provider.shutdown()


def test_no_provider_no_wrapping() -> None:
    """Without a configured provider (OpenTelemetry's default proxy) the routes are not
    wrapped: the server gets the route callables themselves."""
    from data_bridge.api._telemetry import Telemetry

    app = _build(ours_api, {})
    assert Telemetry.for_app(app) is None
    with pytest.raises(TypeError, match="unknown telemetry settings"):
        ours_api.FastAPI(telemetry={"tracng": False})


def test_compiled_fastapi_app_keeps_its_settings() -> None:
    """An unmodified FastAPI app compiled to native routes traces them with its own
    telemetry settings."""
    from data_bridge.api._fastapi_native import compile_fastapi

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    source = fastapi.FastAPI(telemetry={"tracer_provider": provider, "operation_spans": False})

    @source.get("/items/{i}")
    async def item(i: int) -> Any:
        return {"i": i}

    compiled = compile_fastapi(source)
    assert compiled.native == ["GET /items/{i}"]
    assert TestClient(compiled.app).get("/items/3").json() == {"i": 3}
    spans = exporter.get_finished_spans()
    assert [(s.name, s.kind.name, s.attributes["http.response.status_code"]) for s in spans] == [
        ("GET /items/{i}", "SERVER", 200)
    ]
    provider.shutdown()


def test_log_records_as_fastapi() -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    def run(api: Any, client_class: Any) -> list[Any]:
        exporter = InMemoryLogRecordExporter()
        provider = LoggerProvider(shutdown_on_exit=False)
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        app = _build(api, {"logger_provider": provider, "tracing": False, "metrics": False})
        seen = []
        with client_class(app, raise_server_exceptions=False) as client:
            for method, path, kwargs in REQUESTS:
                client.request(method, path, **kwargs)
                for data in exporter.get_finished_logs():
                    record = data.log_record
                    attributes = dict(record.attributes or {})
                    attributes.pop("exception.stacktrace", None)
                    seen.append(
                        (path, record.event_name, record.severity_text, record.body, attributes)
                    )
                exporter.clear()
        provider.shutdown()
        return seen

    ours = run(ours_api, TestClient)
    assert ours == run(fastapi, RTestClient)
    assert {r[1] for r in ours} == {"fastapi.validation.failed", "http.server.request.exception"}
