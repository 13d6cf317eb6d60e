"""GZip, TrustedHost and HTTPSRedirect middleware, applied natively (csrc/gzip/,
csrc/app/guard.c), against Starlette's own middleware serving the same app: the same
statuses, Location, Content-Encoding, Vary, Content-Length and bodies for the same
requests, and the middleware order of add_middleware."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from typing import Any

import pytest

from data_bridge import pyloop
from data_bridge.api import FastAPI
from data_bridge.api.middleware.cors import CORSMiddleware
from data_bridge.api.middleware.gzip import GZipMiddleware
from data_bridge.api.middleware.httpsredirect import HTTPSRedirectMiddleware
from data_bridge.api.middleware.trustedhost import TrustedHostMiddleware
from data_bridge.api.responses import (
    FileResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from data_bridge.api.testclient import TestClient

fastapi = pytest.importorskip("fastapi")  # FastAPI itself, with Starlette's middleware
from fastapi.middleware.gzip import GZipMiddleware as RGZip  # noqa: E402
from fastapi.middleware.httpsredirect import HTTPSRedirectMiddleware as RHTTPSRedirect  # noqa: E402
from fastapi.middleware.trustedhost import TrustedHostMiddleware as RTrustedHost  # noqa: E402
from fastapi.responses import FileResponse as RFile  # noqa: E402
from fastapi.responses import PlainTextResponse as RPlain  # noqa: E402
from fastapi.responses import Response as RResponse  # noqa: E402
from fastapi.responses import StreamingResponse as RStreaming  # noqa: E402
from fastapi.testclient import TestClient as RTestClient  # noqa: E402

fastapi = pytest.importorskip("fastapi")  # FastAPI itself, with Starlette's middleware

BIG = {"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(60)]}
TEXT = "lorem ipsum dolor sit amet " * 80


def _routes(app: Any, plain: type, response: type, streaming: type, file_response: type) -> Any:
    @app.get("/big")
    def big() -> dict[str, Any]:
        return BIG

    @app.get("/small")
    def small() -> dict[str, Any]:
        return {"a": 1}

    @app.get("/text")
    def text() -> Any:
        return plain(TEXT)

    @app.get("/png")
    def png() -> Any:
        return response(TEXT.encode(), media_type="image/png")

    @app.get("/encoded")
    def encoded() -> Any:
        return response(TEXT.encode(), media_type="text/plain", headers={"content-encoding": "br"})

    @app.get("/partial")
    def partial() -> Any:
        return response(TEXT.encode(), status_code=206, media_type="text/plain")

    @app.get("/p/{rest:path}")
    def path(rest: str) -> dict[str, str]:
        return {"rest": rest}

    @app.get("/stream")
    def stream() -> Any:
        def pieces() -> Any:
            for i in range(50):
                yield f"piece {i} " * 20

        return streaming(pieces(), media_type="text/plain")

    @app.get("/tiny-stream")
    def tiny_stream() -> Any:
        return streaming(iter([b"ab"]), media_type="text/plain")

    @app.get("/events")
    def events() -> Any:
        return streaming(iter(["data: x\n\n"] * 100), media_type="text/event-stream")

    @app.get("/file")
    def file() -> Any:
        return file_response(__file__, media_type="text/plain")

    return app


def _ours(middleware: list[tuple[type, dict[str, Any]]]) -> FastAPI:
    app = _routes(
        FastAPI(openapi_url=None), PlainTextResponse, Response, StreamingResponse, FileResponse
    )
    for cls, options in middleware:
        app.add_middleware(cls, **options)
    return app


def _theirs(middleware: list[tuple[type, dict[str, Any]]]) -> Any:
    app = _routes(fastapi.FastAPI(openapi_url=None), RPlain, RResponse, RStreaming, RFile)
    names = {
        GZipMiddleware: RGZip,
        TrustedHostMiddleware: RTrustedHost,
        HTTPSRedirectMiddleware: RHTTPSRedirect,
    }
    for cls, options in middleware:
        app.add_middleware(names[cls], **options)
    return app


HEADERS = ("location", "content-encoding", "vary", "content-type", "content-length")


def _picture(response: Any) -> tuple[Any, ...]:
    # Bodies as httpx decodes them (Content-Encoding undone): the content is the point.
    return (
        response.status_code,
        {h: response.headers.get(h) for h in HEADERS},
        response.content,
    )


def _both(
    middleware: list[tuple[type, dict[str, Any]]],
    requests: list[tuple[str, dict[str, str]]],
    base_url: str = "http://testserver",
) -> None:
    ours = TestClient(_ours(middleware), base_url=base_url, follow_redirects=False)
    theirs = RTestClient(_theirs(middleware), base_url=base_url, follow_redirects=False)
    for target, headers in requests:
        mine = _picture(ours.get(target, headers=headers))
        ref = _picture(theirs.get(target, headers=headers))
        if target == "/file":
            # Starlette compresses a file that fits its first 64 KiB piece as one body (with a
            # Content-Length); streams are compressed here as they go, chunked.
            mine[1].pop("content-length")
            ref[1].pop("content-length")
        assert mine == ref, (target, headers)


GZIP_REQUESTS = [
    (path, {"accept-encoding": enc})
    for path in (
        "/big",
        "/small",
        "/text",
        "/png",
        "/encoded",
        "/partial",
        "/nope",
        "/stream",
        "/events",
        "/file",
    )
    for enc in ("gzip", "gzip, deflate, br", "identity", "GZIP", "br;q=1, gzip;q=0")
]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"minimum_size": 1000, "compresslevel": 5},
        {"minimum_size": 0},
        {"exclude_content_types": ("text/plain",)},
    ],
)
def test_gzip_as_starlette(options: dict[str, Any]) -> None:
    _both([(GZipMiddleware, options)], GZIP_REQUESTS)


def _raw_exchange(app: FastAPI, request: bytes) -> tuple[bytes, bytes]:
    """One request over a socketpair the native server adopts: the raw head and body."""
    loop = pyloop.new_event_loop()
    server = app.build_server(loop)
    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        server.adopt(theirs.fileno())
        theirs.detach()

        async def talk() -> bytes:
            await loop.sock_sendall(ours, request)
            data = b""
            while chunk := await loop.sock_recv(ours, 65536):
                data += chunk
            return data

        data = loop.run_until_complete(asyncio.wait_for(talk(), 10))
        done = loop.create_future()
        server.close(callback=lambda: done.set_result(None))
        loop.run_until_complete(done)
    finally:
        ours.close()
        loop.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head + b"\r\n", body


def test_gzip_bodies_are_real_gzip_and_head_gets_the_compressed_length() -> None:
    app = _ours([(GZipMiddleware, {"compresslevel": 1})])
    req = b"GET /big HTTP/1.1\r\nhost: x\r\naccept-encoding: gzip\r\nconnection: close\r\n\r\n"
    head, raw = _raw_exchange(app, req)
    assert b"\r\ncontent-encoding: gzip\r\n" in head and b"\r\nvary: Accept-Encoding" in head
    assert f"\r\ncontent-length: {len(raw)}\r\n".encode() in head
    assert len(raw) < len(json.dumps(BIG)) / 4
    assert raw[:2] == b"\x1f\x8b"  # RFC 1952 member
    assert json.loads(gzip.decompress(raw)) == BIG
    head_only, nothing = _raw_exchange(app, req.replace(b"GET", b"HEAD", 1))
    assert nothing == b""
    assert f"\r\ncontent-length: {len(raw)}\r\n".encode() in head_only


def test_gzip_vary_joins_an_existing_vary() -> None:
    app = _ours([(GZipMiddleware, {}), (CORSMiddleware, {"allow_origins": ["https://a.example"]})])
    r = TestClient(app).get(
        "/big", headers={"accept-encoding": "gzip", "origin": "https://a.example"}
    )
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["vary"] == "Origin, Accept-Encoding"


HOST_REQUESTS = [
    ("/small", {"host": host})
    for host in (
        "example.com",
        "EXAMPLE.com:8000",
        "api.example.com",
        "a.b.example.com",
        "evil.com",
        "example.com.evil.com",
        "other.org",
        "www.other.org",
        "[::1]:80",
        "[zz::1]",
        "[v1.x]",
    )
] + [
    ("/p/a%20b?q=1&x=%2F", {"host": "other.org"}),
    ("/p/%3Fodd%23", {"host": "other.org"}),
]


def test_host_values_the_parser_refuses_get_400_before_any_middleware() -> None:
    # RFC 9112 §3.2 / RFC 3986 §3.2.2: the HTTP parser answers these itself (uvicorn's
    # parsers let them through to Starlette's middleware, which then also answers 400).
    client = TestClient(_ours([(TrustedHostMiddleware, {"allowed_hosts": ["example.com"]})]))
    for host in ("bad host", "example.com:", "a@b"):
        r = client.get("/small", headers={"host": host})
        assert r.status_code == 400, host


@pytest.mark.parametrize("www_redirect", [True, False])
def test_trusted_host_as_starlette(www_redirect: bool) -> None:
    options = {
        "allowed_hosts": ["example.com", "*.example.com", "www.other.org", "[::1]"],
        "www_redirect": www_redirect,
    }
    _both([(TrustedHostMiddleware, options)], HOST_REQUESTS)


def test_trusted_host_patterns_are_checked() -> None:
    with pytest.raises(AssertionError):
        TrustedHostMiddleware(allowed_hosts=["ex*ample.com"])
    with pytest.raises(AssertionError):
        TrustedHostMiddleware(allowed_hosts=["*example.com"])
    _both([(TrustedHostMiddleware, {"allowed_hosts": ["*"]})], [("/small", {"host": "any.where"})])


REDIRECT_REQUESTS = [
    ("/small", {}),
    ("/small?x=1&y=%2F", {}),
    ("/p/a%20b/%C3%A9?q=%3C", {}),
    ("/p/%3F%23%5C", {}),
    ("/small", {"host": "example.com:80"}),
    ("/small", {"host": "Example.COM:443"}),
    ("/small", {"host": "example.com:8443"}),
    ("/small", {"host": "[::1]:8000"}),
    ("/small", {"host": "example.com"}),
]


def test_https_redirect_as_starlette() -> None:
    _both([(HTTPSRedirectMiddleware, {})], REDIRECT_REQUESTS)
    # Over https nothing is redirected.
    _both([(HTTPSRedirectMiddleware, {})], REDIRECT_REQUESTS[:3], base_url="https://testserver")


def test_middleware_order_is_starlettes() -> None:
    # TrustedHost added last is outermost: an unknown host gets 400, not a redirect.
    order_a = [
        (HTTPSRedirectMiddleware, {}),
        (TrustedHostMiddleware, {"allowed_hosts": ["example.com"]}),
    ]
    # HTTPSRedirect outermost: everything is redirected first.
    order_b = list(reversed(order_a))
    requests = [("/small", {"host": "example.com"}), ("/small", {"host": "evil.com"})]
    _both(order_a, requests)
    _both(order_b, requests)
    both = TestClient(_ours(order_a), follow_redirects=False)
    assert both.get("/small", headers={"host": "evil.com"}).status_code == 400
    other = TestClient(_ours(order_b), follow_redirects=False)
    assert other.get("/small", headers={"host": "evil.com"}).status_code == 307


def test_other_middleware_classes_are_pure_asgi_middleware() -> None:
    # (Served around the App's ASGI face: tests/py/test_api_asgi_middleware.py.)
    class Custom:
        def __init__(self, app: Any) -> None:
            self.app = app

    app = FastAPI()
    app.add_middleware(Custom)
    assert app._asgi_middleware == [(Custom, (), {})]
    with pytest.raises(TypeError, match="class or callable"):
        app.add_middleware(42)  # type: ignore[arg-type]


def test_gzip_streams_are_one_member_flushed_per_piece() -> None:
    app = _ours([(GZipMiddleware, {"compresslevel": 6})])
    req = b"GET /stream HTTP/1.1\r\nhost: x\r\naccept-encoding: gzip\r\nconnection: close\r\n\r\n"
    head, raw = _raw_exchange(app, req)
    assert b"\r\ntransfer-encoding: chunked\r\n" in head and b"content-length" not in head
    assert b"\r\ncontent-encoding: gzip\r\n" in head
    # De-chunk, then one gzip member holding every piece.
    body, rest = b"", raw
    while True:
        size, _, rest = rest.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        body, rest = body + rest[:n], rest[n + 2 :]
    assert gzip.decompress(body).decode() == "".join(f"piece {i} " * 20 for i in range(50))
    # A stream the client does not take gzip for keeps its pieces and gets Vary.
    head, raw = _raw_exchange(app, req.replace(b"gzip", b"identity"))
    assert b"content-encoding" not in head and b"\r\nvary: Accept-Encoding\r\n" in head
