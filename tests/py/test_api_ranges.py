"""Range requests on FileResponse and StaticFiles (RFC 9110 §14; the header parsed in C,
csrc/files/range.c), against FastAPI's FileResponse (Starlette's rules) on the same file:
single ranges, suffixes, open ends, several ranges (multipart/byteranges, merged), 416,
Starlette's 400s, If-Range, HEAD, and ranges ignored for other methods."""

import re
from pathlib import Path
from typing import Any

import pytest

from data_bridge import api as ours_api
from data_bridge.api.testclient import TestClient

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient as RTestClient  # noqa: E402

DATA = bytes(range(256)) * 40  # 10240 bytes


def _build(api: Any, path: Path) -> Any:
    app = api.FastAPI()

    @app.get("/file")
    def file() -> Any:
        return api.responses.FileResponse(path, media_type="application/octet-stream")

    return app


RANGES = [
    "bytes=0-99",
    "bytes=100-",
    "bytes=-300",
    "bytes=-20000",
    "bytes=10230-20000",
    "bytes=0-0",
    "bytes=0-9,20-29",
    "bytes=50-99,0-60,200-210",
    "bytes=0-9, 9-20 ,  , 5000-",
    "Bytes = 1-2",
    "bytes=10240-",
    "bytes=5-3",
    "bytes=abc",
    "bytes=",
    "items=0-1",
    "bytes 0-1",
    "bytes=1-2,x-y",
    "bytes=" + ",".join(["0-1"] * 101),
]


def _picture(r: Any) -> tuple[Any, ...]:
    ctype = r.headers.get("content-type", "")
    body = r.content
    boundary = re.search(r"boundary=(\w+)", ctype)
    if boundary:  # random boundaries: compare with ours normalised
        body = body.replace(boundary.group(1).encode(), b"B")
        ctype = ctype.replace(boundary.group(1), "B")
    return (
        r.status_code,
        ctype,
        r.headers.get("content-range"),
        r.headers.get("content-length"),
        r.headers.get("accept-ranges"),
        body,
    )


@pytest.mark.parametrize("value", RANGES)
def test_same_as_fastapi(tmp_path: Path, value: str) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    mine = TestClient(_build(ours_api, path)).get("/file", headers={"range": value})
    ref = RTestClient(_build(fastapi, path)).get("/file", headers={"range": value})
    assert _picture(mine) == _picture(ref)


def test_if_range_head_and_other_methods(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    client = TestClient(_build(ours_api, path))
    full = client.get("/file")
    assert full.headers["accept-ranges"] == "bytes" and full.content == DATA
    etag, modified = full.headers["etag"], full.headers["last-modified"]
    for validator, status in ((etag, 206), (modified, 206), ('"other"', 200), ("W/" + etag, 200)):
        r = client.get("/file", headers={"range": "bytes=0-9", "if-range": validator})
        assert r.status_code == status, validator
        assert r.content == (DATA[:10] if status == 206 else DATA)
    head = client.head("/file", headers={"range": "bytes=10-19"})
    assert head.status_code == 206 and head.headers["content-length"] == "10"
    assert head.content == b""
