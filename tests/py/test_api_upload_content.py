"""The content of uploaded files on its way from the request to the handler: parsed by
``_core.MultipartParser`` from the connection's buffer (a body received whole is its
single-piece case, a streamed one is fed piece by piece in C), one bytes object per part,
kept by the UploadFile's BytesIO without a copy, files over the spooling size written to a
rolled-over SpooledTemporaryFile; and the multipart scanner's delimiter search (memmem,
then a CR scan for a delimiter cut by the piece's end) on contents full of
near-delimiters."""

from __future__ import annotations

import random
import tempfile
from typing import Any

import pytest

from data_bridge import _core
from data_bridge.api import FastAPI, UploadFile
from data_bridge.api.datastructures import UploadFile as UploadFileType
from data_bridge.api.testclient import TestClient

BOUNDARY = "XyZzY"
NEAR = [
    b"\r",
    b"\r\n",
    b"\r\n-",
    b"\r\n--",
    b"\r\n--X",
    b"\r\n--XyZz",
    b"\r\n--XyZzY-",
    b"--XyZzY",
    b"\n--XyZzY",
    b"abc",
]


def random_parts(rng: random.Random) -> tuple[bytes, list[tuple[str, bool, bytes]]]:
    parts = []
    body = b""
    for i in range(rng.randint(1, 4)):
        pieces = [
            rng.choice([*NEAR, bytes([rng.randrange(256)]) * rng.randint(0, 5)])
            for _ in range(rng.randint(0, 12))
        ]
        content = b"".join(pieces).replace(b"\r\n--XyZzY", b"\r\n--XyZzQ")
        is_file = rng.random() < 0.5
        fname = '; filename="f.bin"' if is_file else ""
        body += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="p{i}"{fname}\r\n\r\n'.encode()
            + content
            + b"\r\n"
        )
        parts.append((f"p{i}", is_file, content))
    return body + f"--{BOUNDARY}--\r\n".encode(), parts


def rolled_spool() -> Any:
    spooled = tempfile.SpooledTemporaryFile(max_size=4)
    spooled.rollover()
    return spooled


def parse(body: bytes | memoryview, step: int = 0, spool_max: int = 1 << 20) -> list[Any]:
    """The parts of body fed whole (step 0) or in pieces of step bytes, each content read
    back as bytes (from the spooled file when it went to one) and checked to be there."""
    ctype = f"multipart/form-data; boundary={BOUNDARY}"
    parser = _core.MultipartParser(ctype, rolled_spool, spool_max=spool_max)
    size = len(body)
    for at in range(0, size, step or max(size, 1)):
        parser.feed(body[at : at + (step or size)])
    out = []
    for name, filename, ctype_, headers, content, length in parser.finish():
        if not isinstance(content, bytes):
            assert filename is not None and length > spool_max
            assert content.tell() == length  # positioned at its end, as written
            content.seek(0)
            data = content.read()
            content.close()
            content = data
        assert len(content) == length
        out.append((name, filename, ctype_, headers, content))
    return out


def test_parts_with_near_delimiters() -> None:
    rng = random.Random(13)
    for _ in range(2000):
        body, parts = random_parts(rng)
        got = parse(body)
        assert [(p[0], p[1] is not None, p[4]) for p in got] == parts
        # A memoryview (no bytes of the body) parses the same; so does the body in pieces
        # of any size, and with every file over a few bytes written to its file.
        assert parse(memoryview(body)) == got
        step = rng.choice([1, 2, 3, 7, 16, 40])
        assert parse(body, step) == got
        assert parse(body, step, spool_max=rng.choice([0, 3])) == got


def test_parts_through_the_server() -> None:
    """The same bodies posted: the server's Request is parsed from its buffer."""
    app = FastAPI()

    @app.post("/parts")
    async def read_parts(file: list[UploadFile]) -> list[str]:
        return [(await f.read()).hex() for f in file]

    client = TestClient(app)
    rng = random.Random(7)
    for _ in range(200):
        _, parts = random_parts(rng)
        files = [("file", ("f.bin", content)) for _, _, content in parts]
        r = client.post("/parts", files=files)
        assert r.status_code == 200
        assert r.json() == [content.hex() for _, _, content in parts]


# Bodies the server receives whole (up to its 64 KiB body window) and streamed ones (fed
# to the parser in C as they arrive) up to the spooling size, which stays in memory.
@pytest.mark.parametrize("size", [0, 1000, 60_000, 300_000, UploadFileType.spool_max_size])
def test_spooled_content_is_shared_then_copied_on_write(size: int) -> None:
    app = FastAPI()
    data = random.Random(size).randbytes(size)

    @app.post("/up", max_body_size=4 * 1024 * 1024)
    async def up(file: UploadFile) -> dict[str, object]:
        first = await file.read()
        await file.seek(0)
        again = await file.read()
        await file.seek(0)
        await file.write(b"changed")
        await file.seek(0)
        after = await file.read()
        return {
            "same": first == again == data,
            "shared": first is again,  # one bytes object: the BytesIO holds the part's
            "rolled": bool(getattr(file.file, "_rolled", False)),
            "after": after[:7].decode("latin-1"),
            "length": len(after),
        }

    r = TestClient(app).post("/up", files={"file": ("f.bin", data)})
    body = r.json()
    assert body["same"] and not body["rolled"]
    assert body["shared"]  # one object: the BytesIO returned the part's bytes both times
    assert body["after"] == "changed" and body["length"] == max(size, 7)


def test_large_upload_rolls_over_to_disk() -> None:
    app = FastAPI()
    data = random.Random(1).randbytes(UploadFileType.spool_max_size + 1)

    @app.post("/up", max_body_size=4 * 1024 * 1024)
    async def up(file: UploadFile) -> dict[str, object]:
        return {"same": await file.read() == data, "rolled": file.file._rolled}

    r = TestClient(app).post("/up", files={"file": ("f.bin", data)})
    assert r.json() == {"same": True, "rolled": True}
