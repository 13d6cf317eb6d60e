"""Uploads as real clients write them (issue 13): the bytes Chrome sends for a form with a
text field and two files (its WebKitFormBoundary framing, Content-Type per file, an empty
file), RFC 7578 §4.3's several files under one name, and curl's own upload (`curl -F`) sent
to a server process, each parsed by the native multipart parser and bound as FastAPI binds
them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from conftest import ServerProcess

from data_bridge.api import FastAPI, File, Form, UploadFile
from data_bridge.api.testclient import TestClient

CHROME_BOUNDARY = "----WebKitFormBoundaryq8Y3XRbHd2xz6Uvq"
CHROME_BODY = (
    f"--{CHROME_BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="title"\r\n'
    "\r\n"
    "Quarterly report\r\n"
    f"--{CHROME_BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="files"; filename="notes.txt"\r\n'
    "Content-Type: text/plain\r\n"
    "\r\n"
    "first line\r\nsecond line\r\n\r\n"
    f"--{CHROME_BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="files"; filename="empty.bin"\r\n'
    "Content-Type: application/octet-stream\r\n"
    "\r\n"
    "\r\n"
    f"--{CHROME_BOUNDARY}--\r\n"
).encode()


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/report")
    async def report(
        title: Annotated[str, Form()], files: Annotated[list[UploadFile], File()]
    ) -> dict:
        out = []
        for f in files:
            data = await f.read()
            out.append([f.filename, f.content_type, data.decode("latin-1")])
        return {"title": title, "files": out}

    return app


def test_chrome_form_bytes() -> None:
    client = TestClient(make_app())
    r = client.post(
        "/report",
        content=CHROME_BODY,
        headers={"content-type": f"multipart/form-data; boundary={CHROME_BOUNDARY}"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "title": "Quarterly report",
        "files": [
            ["notes.txt", "text/plain", "first line\r\nsecond line\r\n"],
            ["empty.bin", "application/octet-stream", ""],
        ],
    }


def test_rfc7578_several_files_under_one_name() -> None:
    # RFC 7578 §4.3: each file of a multiple-file field is a part of its own with the same
    # name (the deprecated multipart/mixed nesting of RFC 2388 is not used).
    body = (
        b"--AaB03x\r\n"
        b'Content-Disposition: form-data; name="title"\r\n\r\nfiles\r\n'
        b"--AaB03x\r\n"
        b'Content-Disposition: form-data; name="files"; filename="file1.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n... contents of file1.txt ...\r\n"
        b"--AaB03x\r\n"
        b'Content-Disposition: form-data; name="files"; filename="file2.gif"\r\n'
        b"Content-Type: image/gif\r\n\r\n...contents of file2.gif...\r\n"
        b"--AaB03x--\r\n"
    )
    r = TestClient(make_app()).post(
        "/report", content=body, headers={"content-type": "multipart/form-data; boundary=AaB03x"}
    )
    assert r.status_code == 200, r.text
    assert [f[:2] for f in r.json()["files"]] == [
        ["file1.txt", "text/plain"],
        ["file2.gif", "image/gif"],
    ]


@pytest.fixture(scope="module")
def upload_server() -> Iterator[ServerProcess]:
    server = ServerProcess("upload_app.py").start()
    yield server
    code, log = server.stop()
    assert code == 0, log


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("size", [0, 3, 70_000, 3_000_000])
def test_curl_upload(upload_server: ServerProcess, tmp_path: Path, size: int) -> None:
    # Small ones arrive whole, the larger ones stream (over the 64 KiB body window); curl
    # sends "Expect: 100-continue" for bodies over 1 MiB.
    data = bytes((i * 7 + 3) % 256 for i in range(size))
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    # curl is not built with the sanitizers: without the ASan runtime the test build
    # preloads into this process (make pytest-asan), which hangs it.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "-F", f"file=@{path}", "-F", "note=from curl"]
        + [f"{upload_server.url}/upload"],
        capture_output=True,
        timeout=60,
        check=True,
        env=env,
    ).stdout
    got = json.loads(out)
    assert got["filename"] == "payload.bin"
    assert got["size"] == size and got["note"] == "from curl"
    assert got["sha256"] == hashlib.sha256(data).hexdigest()
