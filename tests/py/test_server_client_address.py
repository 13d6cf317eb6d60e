"""request.client and scope["client"]/["server"]: the connection's addresses, as uvicorn
reports them (the peer's and the local socket's (host, port)), over real sockets: the
test server process on 127.0.0.1, an in-process server on ::1 and one on a Unix socket."""

import asyncio
import json
import os
import socket
import tempfile

import pytest
from conftest import Reader

from data_bridge import pyloop
from data_bridge.api import BackgroundTasks, FastAPI, Request


def get(sock: socket.socket, path: str) -> dict:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: example.com:81\r\n\r\n".encode())
    r = Reader(sock).read_response()
    assert r.status == 200, r.body
    return r.json()  # type: ignore[return-value]


def test_client_and_server_addresses_on_ipv4(server):
    with server.connect() as s:
        mine = s.getsockname()
        got = get(s, "/request/addresses")
        expected_client = [mine[0], mine[1]]
        assert got == {
            "client": expected_client,
            "scope_client": expected_client,
            "server": ["127.0.0.1", server.port],
        }
        # The same on the next request of the connection.
        assert get(s, "/request/addresses")["client"] == expected_client
    with server.connect() as other:
        assert get(other, "/request/addresses")["client"] == list(other.getsockname()[:2])


def addresses_app(kept: list[Request]) -> FastAPI:
    app = FastAPI()

    @app.get("/")
    def addresses(request: Request, background: BackgroundTasks):
        # The request outlives the response: its background reads the client again.
        kept.append(request)
        background.add_task(lambda: kept.append(request.client))
        return {"client": request.client, "server": request.scope["server"]}

    @app.get("/later")
    def later(request: Request):
        kept.append(request)  # kept, the addresses not read before the response
        return {}

    return app


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str):
    writer.write(f"GET {path} HTTP/1.1\r\nHost: example.com:81\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = await reader.readexactly(length)
    return head, body


def serve(app: FastAPI, listen, connect) -> list:
    """Runs the app's native server on a PyLoop in this thread; ``listen(server)`` starts
    it, ``connect()`` opens a client connection on which / and /later are asked."""
    loop = pyloop.new_event_loop()
    server = app.build_server(loop)

    async def main():
        target = listen(server)
        reader, writer = await connect(target)
        try:
            _, body = await exchange(reader, writer, "/")
            _, later = await exchange(reader, writer, "/later")
            await asyncio.sleep(0.05)  # the background task
            return [writer.get_extra_info("sockname"), body, later]
        finally:
            writer.close()

    try:
        return loop.run_until_complete(main())
    finally:
        server.close()
        loop.run_until_complete(asyncio.sleep(0.05))
        loop.close()


def test_ipv6_and_a_request_kept_after_its_response():
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    kept: list = []
    ports: list[int] = []

    def listen(server):
        ports.append(server.listen("::1", 0))
        return ports[0]

    sockname, body, _ = serve(
        addresses_app(kept), listen, lambda port: asyncio.open_connection("::1", port)
    )
    mine = ["::1", sockname[1]]
    assert json.loads(body) == {"client": mine, "server": ["::1", ports[0]]}
    first, client_later, second = kept
    assert list(client_later) == mine and list(first.client) == mine
    # Detached after its response without having been read: asked while detaching.
    assert list(second.client) == mine
    assert list(second.scope["server"]) == ["::1", ports[0]]


def test_unix_socket_has_no_client():
    kept: list = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen()

        def listen(server):
            server.listen_fd(listener.detach())
            return path

        _, body, _ = serve(addresses_app(kept), listen, asyncio.open_unix_connection)
    # No address: the client is None, the server is read from the Host header.
    assert json.loads(body) == {"client": None, "server": ["example.com", 81]}
    assert kept[1] is None and kept[2].client is None
