"""The app that `make run` serves (examples/app.py) answers its routes as documented."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
from conftest import ROOT


def test_example_app_serves_the_readme_routes():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "import runpy, sys; "
        f"runpy.run_path({str(ROOT / 'examples' / 'app.py')!r})['app']"
        f".run(host='127.0.0.1', port={port}, log_level='warning')"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT / "src")) if p)
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "app did not start"
                time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            assert c.get("/plaintext").text == "Hello, World!"
            assert c.get("/json").json()["message"] == "Hello, World!"
            assert c.get("/users/3?verbose=1").json()["bio"] == "A verbose description."
            r = c.post("/items", json={"name": "x"})
            assert r.status_code == 201 and r.json() == {"name": "x"}
            r = c.post("/items", json={"price": 1})
            assert r.status_code == 400 and r.json() == {"detail": "an item needs a name"}
            assert c.put("/items/2", json={"a": 1}).json() == {"id": 2, "a": 1}
            raw = c.get("/raw?q=z", headers={"user-agent": "t"}).json()
            assert raw == {"path": "/raw", "q": "z", "ua": "t"}
            assert c.get("/books?since=1962").json() == [{"title": "Dune", "year": 1965}]
            assert c.get("/books?since=-1").status_code == 422
            assert "/books" in c.get("/openapi.json").json()["paths"]
            assert c.get("/docs").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode(errors="replace")
