"""A real-world client on the loop: httpx's AsyncClient (anyio's asyncio backend) talking
to a small HTTP/1.1 server made with asyncio streams, run once on asyncio's loop and once
on PyLoop with the same body."""

from __future__ import annotations

import asyncio
import json

import httpx
from loop_fixtures import *  # noqa: F403  (the loop and loop_factory fixtures)


async def serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request with its method, path and body length, keeping the connection."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ")
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = await reader.readexactly(length)
            payload = json.dumps({"method": method, "path": path, "len": len(body)}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass
    finally:
        writer.close()


def test_httpx_async_client(loop):
    async def body() -> list[dict]:
        server = await asyncio.start_server(serve_http, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        results = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for i in range(3):  # sequential requests reuse one keep-alive connection
                results.append((await client.get(f"/get/{i}")).json())
            posts = await asyncio.gather(
                *(client.post("/post", content=b"x" * (1000 * i)) for i in range(1, 6))
            )
            results.extend(r.json() for r in posts)
        server.close()
        await server.wait_closed()
        return results

    results = loop.run_until_complete(body())
    assert results[:3] == [{"method": "GET", "path": f"/get/{i}", "len": 0} for i in range(3)]
    assert sorted(r["len"] for r in results[3:]) == [1000, 2000, 3000, 4000, 5000]
