"""StaticFiles mounted on an app, and Jinja2 templates."""

import os
from pathlib import Path

import pytest

from data_bridge.api import FastAPI, Request
from data_bridge.api.responses import HTMLResponse
from data_bridge.api.staticfiles import StaticFiles
from data_bridge.api.templating import Jinja2Templates
from data_bridge.api.testclient import TestClient


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "style.css").write_text("body { color: green; }")
    (tmp_path / "static" / "docs").mkdir()
    (tmp_path / "static" / "docs" / "index.html").write_text("<p>docs</p>")
    (tmp_path / "static" / "404.html").write_text("<p>missing</p>")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", tmp_path / "static" / "link.txt")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "item.html").write_text(
        "<a href=\"{{ url_for('item', id=id) }}\">{{ id }}</a>"
        "<link href=\"{{ url_for('static', path='/style.css') }}\">"
    )
    return tmp_path


def test_files_are_served_with_validators(site):
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=site / "static"), name="static")
    client = TestClient(app)
    r = client.get("/static/style.css")
    assert r.status_code == 200 and r.text == "body { color: green; }"
    assert r.headers["content-type"].startswith("text/css")
    etag, modified = r.headers["etag"], r.headers["last-modified"]
    assert client.get("/static/style.css", headers={"If-None-Match": etag}).status_code == 304
    r = client.get("/static/style.css", headers={"If-Modified-Since": modified})
    assert r.status_code == 304 and r.content == b""
    assert client.head("/static/style.css").headers["content-length"] == "22"
    assert client.get("/static/nothing.txt").status_code == 404
    assert client.get("/static/../secret.txt").status_code == 404
    assert client.get("/static/%2e%2e/secret.txt").status_code == 404
    assert client.get("/static/link.txt").status_code == 404  # points outside
    assert client.post("/static/style.css").status_code == 405
    assert "/static/{path:path}" not in str(app.openapi()["paths"])
    assert app.url_path_for("static", path="/style.css") == "/static/style.css"


def test_html_mode(site):
    app = FastAPI()
    app.mount("/site", StaticFiles(directory=site / "static", html=True), name="site")
    client = TestClient(app)
    r = client.get("/site/docs", follow_redirects=False)
    assert r.status_code == 307
    assert client.get("/site/docs/").text == "<p>docs</p>"
    r = client.get("/site/gone")
    assert (r.status_code, r.text) == (404, "<p>missing</p>")


def test_mount_refuses_what_it_cannot_serve(site):
    with pytest.raises(RuntimeError, match="does not exist"):
        StaticFiles(directory=site / "nope")
    with pytest.raises(TypeError, match="ASGI application"):
        FastAPI().mount("/sub", object())  # neither an App nor an ASGI callable


def test_templates_render_with_url_for(site):
    app = FastAPI()
    app.mount("/static", StaticFiles(directory=site / "static"), name="static")
    templates = Jinja2Templates(directory=site / "templates")

    @app.get("/items/{id}", response_class=HTMLResponse, name="item")
    def item(request: Request, id: str):
        return templates.TemplateResponse(request, "item.html", {"id": id})

    r = TestClient(app).get("/items/42")
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.text == (
        '<a href="http://testserver/items/42">42</a><link href="http://testserver/static/style.css">'
    )
    assert "&lt;b&gt;</a>" in TestClient(app).get("/items/<b>").text  # autoescaped
