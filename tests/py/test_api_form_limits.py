"""Form fields and FastAPI's form_limits: Form() parameters bound from urlencoded and
multipart bodies alike, the limits (max_fields, max_files, max_part_size) layered app ->
router -> include -> route, and Starlette's 400s, each checked against FastAPI itself
serving the same app."""

from typing import Annotated, Any

import pytest

from data_bridge import api as ours_api
from data_bridge.api.testclient import TestClient

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient as RTestClient  # noqa: E402


def _build(api: Any) -> Any:
    app = api.FastAPI(form_limits={"max_fields": 3})
    router = api.APIRouter(form_limits={"max_part_size": 64})

    @app.post("/notes")
    async def notes(text: Annotated[str, api.Form()], n: Annotated[int, api.Form()] = 0) -> Any:
        return {"text": text, "n": n}

    @app.post("/tags")
    async def tags(tag: Annotated[list[str], api.Form()]) -> Any:
        return {"tags": tag}

    @app.post("/wide", form_limits={"max_fields": 10, "max_part_size": 10})
    async def wide(text: Annotated[str, api.Form()]) -> Any:
        return {"text": text}

    @router.post("/small")
    async def small(text: Annotated[str, api.Form()]) -> Any:
        return {"size": len(text)}

    @router.post("/upload")
    async def upload(
        text: Annotated[str, api.Form()], files: Annotated[list[api.UploadFile], api.File()]
    ) -> Any:
        return {"text": text, "files": [f.filename for f in files]}

    app.include_router(router, prefix="/r")
    app.include_router(router, prefix="/r2", form_limits={"max_files": 1})
    return app


def _requests() -> list[tuple[str, dict[str, Any]]]:
    many = {"text": "a", "n": "2", "x": "1", "y": "2"}
    return [
        ("/notes", {"data": {"text": "hello", "n": "5"}}),
        ("/notes", {"files": {"text": (None, "hello"), "n": (None, "7")}}),
        ("/notes", {"files": {"text": (None, "a%20b+c")}}),  # multipart: not decoded
        ("/notes", {"data": {"text": "a%20b+c"}}),
        ("/notes", {"files": {"n": (None, "x")}}),  # 422s from a multipart body
        ("/notes", {"data": many}),  # 4 fields > 3
        ("/notes", {"files": {k: (None, v) for k, v in many.items()}}),
        ("/tags", {"files": [("tag", (None, "a")), ("tag", (None, "b"))]}),
        ("/tags", {"data": {"tag": ["a", "b", "c"]}}),
        ("/wide", {"data": {"text": "x" * 20}}),  # over 10 bytes
        ("/wide", {"files": {"text": (None, "x" * 20)}}),
        ("/wide", {"data": {"text": "ok", **{f"f{i}": "1" for i in range(8)}}}),
        ("/r/small", {"data": {"text": "x" * 100}}),
        ("/r/small", {"data": {"text": "x" * 50}}),
        ("/r/small", {"files": {"text": (None, "x" * 100)}}),
        ("/r/upload", {"data": {"text": "t"}, "files": [("files", ("a.txt", b"1"))]}),
        (
            "/r2/upload",
            {"data": {"text": "t"}, "files": [("files", ("a.txt", b"1")), ("files", ("b", b"2"))]},
        ),
        ("/r/upload", {"files": [("text", (None, "t")), ("files", ("a.txt", b"1"))]}),
    ]


@pytest.mark.parametrize("case", range(len(_requests())))
def test_same_as_fastapi(case: int) -> None:
    path, kwargs = _requests()[case]
    mine = TestClient(_build(ours_api)).post(path, **kwargs)
    ref = RTestClient(_build(fastapi)).post(path, **kwargs)
    assert mine.status_code == ref.status_code, (mine.text, ref.text)
    assert mine.json() == ref.json()


def test_a_truncated_multipart_body_is_a_400() -> None:
    # Stricter than FastAPI's parser (python-multipart ignores the missing close delimiter
    # and FastAPI then reports the fields as missing): the body is malformed, and says so.
    r = TestClient(_build(ours_api)).post(
        "/notes",
        content=b"--zz\r\nbroken",
        headers={"content-type": "multipart/form-data; boundary=zz"},
    )
    assert r.status_code == 400
    assert r.json() == {"detail": "the multipart body ended before its close delimiter"}


def test_bad_form_limits_are_refused_as_fastapi_refuses_them() -> None:
    import pydantic

    for bad in ({"max_fields": -1}, {"max_feilds": 1}, {"max_files": "3"}, {"max_files": True}):
        with pytest.raises(pydantic.ValidationError):
            ours_api.FastAPI(form_limits=bad)
        with pytest.raises(pydantic.ValidationError):
            fastapi.FastAPI(form_limits=bad)
