"""Memory of a large upload (issue 13: a 1 GiB upload raises the server's RSS by less than
16 MiB): one multipart/form-data POST of SIZE MiB (default 1024) to the UploadFile route of
tests/py/apps/upload_app.py, sent over one loopback connection, while the server's VmRSS
is sampled every 20 ms. Prints the response's status line and the RSS before, at peak and
the growth.

    PYTHONPATH=src .venv/bin/python bench/upload_rss.py [SIZE_MIB]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def vm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    size = (int(sys.argv[1]) if len(sys.argv) > 1 else 1024) << 20
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DB_TEST_LIMITS="{}")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT / "src")) if p)
    app = ROOT / "tests" / "py" / "apps" / "upload_app.py"
    proc = subprocess.Popen(
        [sys.executable, str(app), str(port)], env=env, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        time.sleep(0.5)
        before = vm_rss(proc.pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], vm_rss(proc.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        boundary = "BOUNDARYxyz"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        chunk = bytes(range(256)) * 4096  # 1 MiB
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(
                (
                    "POST /upload HTTP/1.1\r\nHost: bench\r\n"
                    f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                    f"Content-Length: {len(head) + size + len(tail)}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
                + head
            )
            for _ in range(size // len(chunk)):
                c.sendall(chunk)
            c.sendall(tail)
            response = b""
            while data := c.recv(65536):
                response += data
        seconds = time.monotonic() - start
        done.set()
        sampler.join()
    finally:
        proc.terminate()
        proc.wait(10)
    print(response.split(b"\r\n", 1)[0].decode())
    report = {
        "size_mib": size >> 20,
        "rss_before_kib": before,
        "rss_peak_kib": peak[0],
        "growth_mib": round((peak[0] - before) / 1024, 2),
        "seconds": round(seconds, 1),
    }
    print(json.dumps(report))
    return 0 if response.startswith(b"HTTP/1.1 200") else 1


if __name__ == "__main__":
    raise SystemExit(main())
