"""Forms with files: multipart/form-data parsed in C, UploadFile and File() parameters,
request.form(), and FastAPI's answers to missing or malformed parts."""

from typing import Annotated

from data_bridge.api import FastAPI, File, Form, Request, UploadFile
from data_bridge.api.testclient import TestClient


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/bytes")
    def as_bytes(file: Annotated[bytes, File()]):
        return {"size": len(file), "head": file[:4].hex()}

    @app.post("/upload")
    async def upload(file: UploadFile):
        data = await file.read()
        return {
            "filename": file.filename,
            "content_type": file.content_type,
            "size": file.size,
            "data": data.decode("latin-1"),
        }

    @app.post("/mixed")
    async def mixed(
        token: Annotated[str, Form()],
        files: list[UploadFile],
        count: Annotated[int, Form()] = 1,
        note: Annotated[str | None, Form()] = None,
    ):
        return {"token": token, "names": [f.filename for f in files], "count": count, "note": note}

    @app.post("/optional")
    async def optional(file: UploadFile | None = None):
        return {"file": None if file is None else file.filename}

    @app.post("/form")
    async def form(request: Request):
        data = await request.form()
        return {k: v if isinstance(v, str) else v.filename for k, v in data.multi_items()}

    return app


def test_file_contents_and_metadata():
    client = TestClient(make_app())
    binary = bytes(range(256)) * 8
    r = client.post("/bytes", files={"file": ("b.bin", binary)})
    assert r.json() == {"size": 2048, "head": "00010203"}
    r = client.post("/upload", files={"file": ("a.txt", b"line1\r\n--x\r\nline2", "text/plain")})
    assert r.json() == {
        "filename": "a.txt",
        "content_type": "text/plain",
        "size": 17,
        "data": "line1\r\n--x\r\nline2",
    }


def test_fields_and_several_files():
    client = TestClient(make_app())
    files = [("files", ("a", b"1")), ("files", ("b", b"2"))]
    r = client.post("/mixed", data={"token": "t", "count": "3"}, files=files)
    assert r.json() == {"token": "t", "names": ["a", "b"], "count": 3, "note": None}
    r = client.post("/mixed", data={"count": "x"}, files=files[:1])
    assert [(e["type"], e["loc"]) for e in r.json()["detail"]] == [
        ("missing", ["body", "token"]),
        ("int_parsing", ["body", "count"]),
    ]
    assert client.post("/optional").json() == {"file": None}
    assert client.post("/optional", files={"file": ("z", b"")}).json() == {"file": "z"}


def test_missing_and_malformed_bodies():
    client = TestClient(make_app())
    assert client.post("/bytes").json() == {
        "detail": [
            {"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": None}
        ]
    }
    bad = {"content-type": "multipart/form-data; boundary=x"}
    r = client.post(
        "/upload", content=b"--x\r\nContent-Disposition: form-data\r\n\r\nv", headers=bad
    )
    assert r.status_code == 400
    r = client.post("/upload", content=b"--x\r\nno colon\r\n\r\n--x--", headers=bad)
    assert r.status_code == 400
    r = client.post("/upload", content=b"data", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400


def test_request_form_reads_both_encodings():
    client = TestClient(make_app())
    assert client.post("/form", data={"a": "1", "b": "2"}).json() == {"a": "1", "b": "2"}
    r = client.post("/form", data={"a": "1"}, files={"f": ("name.txt", b"x")})
    assert r.json() == {"a": "1", "f": "name.txt"}
