"""TLS on PyLoop where it follows uvloop's TLS layer rather than asyncio's sslproto
(src/data_bridge/pyloop/_sslproto.py): flushing and discarding on close(), close_notify
during shutdown, the first data after start_tls(), the contexts the application's
callbacks run in, duck-typed buffered protocols. These run on PyLoop only: asyncio's loop
differs on purpose here (uvloop's own tests skip each of these checks on asyncio). The
peers are blocking threads driving ssl.SSLObject over memory BIOs, so each step on the
wire is explicit."""

import asyncio
import contextvars
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator

import pytest
from loop_fixtures import *  # noqa: F403  (tls_files; `loop` is redefined below)

from data_bridge import pyloop

# Python 3.10's sslproto is another design; PyLoop uses it unchanged there (_sslproto.py).
pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="PyLoop's TLS protocol builds on 3.11's sslproto"
)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = pyloop.new_event_loop()
    try:
        yield lp
    finally:
        lp.close()


def contexts(tls_files):
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=cert)
    return server_ctx, client_ctx


class BioPeer:
    """One TLS endpoint over a blocking socket and memory BIOs."""

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, server_side: bool) -> None:
        sock.settimeout(10)
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        hostname = None if server_side else "localhost"
        self.obj = ctx.wrap_bio(
            self.incoming, self.outgoing, server_side=server_side, server_hostname=hostname
        )

    def flush(self) -> None:
        if self.outgoing.pending:
            self.sock.sendall(self.outgoing.read())

    def feed(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("TCP EOF")
        self.incoming.write(chunk)

    def until(self, step: Callable[[], object]) -> object:
        while True:
            try:
                return step()
            except ssl.SSLWantReadError:
                self.flush()
                self.feed()

    def handshake(self) -> None:
        self.until(self.obj.do_handshake)

    def read_to_close_notify(self) -> bytes:
        data = bytearray()
        while True:
            try:
                chunk = self.until(lambda: self.obj.read(65536))
            except ssl.SSLZeroReturnError:
                return bytes(data)
            if not chunk:
                return bytes(data)
            data += chunk  # type: ignore[operator]


def run_peer(target: Callable[[], None]) -> tuple[threading.Thread, dict[str, BaseException]]:
    errors: dict[str, BaseException] = {}

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors["peer"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def finish(thread: threading.Thread, errors: dict[str, BaseException]) -> None:
    thread.join(10)
    assert not thread.is_alive(), "the peer thread did not finish"
    if "peer" in errors:
        raise errors["peer"]


class Events(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: list[object] = []
        self.lost = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        self.events.append(("data", data))

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        self.lost.set_result(exc)


def test_close_discards_trailing_data_before_unwrap(loop, tls_files):
    """bpo-39951: the peer's data that crosses our close_notify is read and dropped, so
    OpenSSL's unwrap() does not fail with APPLICATION_DATA_AFTER_CLOSE_NOTIFY."""
    server_ctx, client_ctx = contexts(tls_files)
    listener = socket.create_server(("127.0.0.1", 0))
    closed = threading.Event()

    def peer():
        conn, _ = listener.accept()
        with conn:
            p = BioPeer(conn, server_ctx, server_side=True)
            p.handshake()
            p.flush()
            assert closed.wait(10)
            p.obj.write(b"trailing")  # crosses the client's close_notify
            p.flush()
            assert p.read_to_close_notify() == b""
            p.obj.unwrap()
            p.flush()

    thread, errors = run_peer(peer)

    async def main():
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", listener.getsockname()[1], ssl=client_ctx, server_hostname="localhost"
        )
        writer.close()
        closed.set()
        await asyncio.wait_for(writer.wait_closed(), 10)
        return await reader.read()

    assert loop.run_until_complete(main()) == b""
    finish(thread, errors)
    listener.close()


def test_close_while_reading_paused_delivers_eof_not_data(loop, tls_files):
    """close() with reading paused: the data the peer sent meanwhile is dropped, its
    close_notify still reaches eof_received(), then connection_lost(None). asyncio's
    sslproto left the data in the SSL object and never finished the shutdown."""
    server_ctx, client_ctx = contexts(tls_files)
    listener = socket.create_server(("127.0.0.1", 0))

    def peer():
        conn, _ = listener.accept()
        with conn:
            p = BioPeer(conn, server_ctx, server_side=True)
            p.handshake()
            p.obj.write(b"unread")
            p.flush()
            assert p.read_to_close_notify() == b""
            p.obj.unwrap()
            p.flush()
            assert conn.recv(1) == b""  # the client closed its socket

    thread, errors = run_peer(peer)

    async def main():
        tr, proto = await loop.create_connection(
            lambda: Events(loop),
            "127.0.0.1",
            listener.getsockname()[1],
            ssl=client_ctx,
            server_hostname="localhost",
        )
        tr.pause_reading()
        tr.close()
        assert await asyncio.wait_for(proto.lost, 10) is None
        return proto.events

    assert loop.run_until_complete(main()) == ["made", "eof", ("lost", None)]
    finish(thread, errors)
    listener.close()


def test_close_flushes_what_was_written_while_the_socket_was_full(loop, tls_files):
    """Data written while the TLS layer's own writing is paused, then close(): all of it
    goes out before close_notify. The SSL protocol is get_extra_info('uvloop.sslproto')."""
    server_ctx, client_ctx = contexts(tls_files)
    listener = socket.create_server(("127.0.0.1", 0))
    chunk, count = 128 * 1024, 16
    received: list[int] = []

    def peer():
        conn, _ = listener.accept()
        with conn:
            p = BioPeer(conn, server_ctx, server_side=True)
            p.handshake()
            p.flush()
            received.append(len(p.read_to_close_notify()))
            p.obj.unwrap()
            p.flush()

    thread, errors = run_peer(peer)

    async def main():
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", listener.getsockname()[1], ssl=client_ctx, server_hostname="localhost"
        )
        sslproto = writer.get_extra_info("uvloop.sslproto")
        assert isinstance(sslproto, asyncio.sslproto.SSLProtocol)
        sslproto.pause_writing()  # as if the socket's buffer were full
        for _ in range(count):
            writer.write(b"x" * chunk)
        writer.close()
        sslproto.resume_writing()
        await asyncio.wait_for(writer.wait_closed(), 10)

    loop.run_until_complete(main())
    finish(thread, errors)
    assert received == [chunk * count]
    listener.close()


def test_first_data_after_start_tls_comes_after_its_caller_resumes(loop, tls_files):
    """The client's first application data arrives with its last handshake flight; it is
    delivered only after start_tls()'s caller has the TLS transport."""
    server_ctx, client_ctx = contexts(tls_files)
    order: list[str] = []
    done = loop.create_future()

    class Upgrading(asyncio.Protocol):
        def connection_made(self, transport):
            self.tls = None
            # The ClientHello stays unread until start_tls() (in the task) takes over.
            transport.pause_reading()

            async def upgrade():
                self.tls = await loop.start_tls(transport, self, server_ctx, server_side=True)
                order.append("start_tls returned")

            loop.create_task(upgrade())

        def data_received(self, data):
            order.append(f"data {data.decode()} via {'tls' if self.tls else 'plain'}")
            if self.tls is not None:
                self.tls.write(data)
                done.set_result(None)

    async def main():
        server = await loop.create_server(Upgrading, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        def client():
            with socket.create_connection(("127.0.0.1", port)) as sock:
                p = BioPeer(sock, client_ctx, server_side=False)
                p.handshake()
                p.obj.write(b"hello")  # together with the client's Finished
                p.flush()
                assert p.until(lambda: p.obj.read(5)) == b"hello"

        thread, errors = run_peer(client)
        await asyncio.wait_for(done, 10)
        await loop.run_in_executor(None, finish, thread, errors)
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    assert order == ["start_tls returned", "data hello via tls"]


def test_duck_typed_buffered_protocol_after_start_tls(loop, tls_files):
    """A protocol with get_buffer()/buffer_updated() that is not an asyncio.Protocol is
    a buffered protocol over TLS too, as over the native transport."""
    server_ctx, client_ctx = contexts(tls_files)
    listener = socket.create_server(("127.0.0.1", 0))

    def peer():
        conn, _ = listener.accept()
        with conn:
            p = BioPeer(conn, server_ctx, server_side=True)
            p.handshake()
            p.obj.write(b"buffered")
            p.flush()
            assert p.read_to_close_notify() == b""
            p.obj.unwrap()
            p.flush()

    thread, errors = run_peer(peer)

    class Buffered(asyncio.BaseProtocol):
        def __init__(self):
            self.buf = bytearray(4)
            self.got = bytearray()
            self.full = loop.create_future()

        def get_buffer(self, sizehint):
            return self.buf

        def buffer_updated(self, nbytes):
            self.got += self.buf[:nbytes]
            if len(self.got) == 8:
                self.full.set_result(bytes(self.got))

    async def main():
        proto = Buffered()
        tr, _ = await loop.create_connection(lambda: proto, "127.0.0.1", listener.getsockname()[1])
        tls = await loop.start_tls(tr, proto, client_ctx, server_hostname="localhost")
        got = await asyncio.wait_for(proto.full, 10)
        tls.close()
        await asyncio.sleep(0.1)
        return got

    assert loop.run_until_complete(main()) == b"buffered"
    finish(thread, errors)
    listener.close()


def test_callbacks_triggered_by_application_calls_run_in_the_transports_context(loop, tls_files):
    """pause_writing() from a write() made in another context, and the data delivered after
    resume_reading() called from another context, run in the transport's context."""
    server_ctx, client_ctx = contexts(tls_files)
    cvar: contextvars.ContextVar[str] = contextvars.ContextVar("cvar", default="outer")
    listener = socket.create_server(("127.0.0.1", 0))
    sent = threading.Event()

    def peer():
        conn, _ = listener.accept()
        with conn:
            p = BioPeer(conn, server_ctx, server_side=True)
            p.handshake()
            p.flush()
            assert sent.wait(10)
            p.obj.write(b"later")
            p.flush()
            p.read_to_close_notify()
            p.obj.unwrap()
            p.flush()

    thread, errors = run_peer(peer)

    class Recorder(Events):
        def data_received(self, data):
            self.events.append(("data", cvar.get()))

        def pause_writing(self):
            self.events.append(("pause_writing", cvar.get()))

        def resume_writing(self):
            self.events.append(("resume_writing", cvar.get()))

    async def main():
        cvar.set("transport")
        tr, proto = await loop.create_connection(
            lambda: Recorder(loop),
            "127.0.0.1",
            listener.getsockname()[1],
            ssl=client_ctx,
            server_hostname="localhost",
        )

        async def writer():
            cvar.set("writer")
            tr.set_write_buffer_limits(high=256, low=128)
            while not tr.get_write_buffer_size():  # until the socket is full
                tr.write(b"q" * 16384)

        tr.pause_reading()
        await loop.create_task(writer())
        sent.set()
        await asyncio.sleep(0.2)  # "later" waits in the SSL object

        def resume():
            cvar.set("resumer")
            tr.resume_reading()

        loop.call_soon(resume)
        for _ in range(100):
            if ("data", "transport") in proto.events:
                break
            await asyncio.sleep(0.02)
        tr.close()
        await asyncio.wait_for(proto.lost, 10)
        return proto.events

    events = loop.run_until_complete(main())
    finish(thread, errors)
    listener.close()
    assert ("pause_writing", "transport") in events
    assert ("data", "transport") in events
    assert all(e[1] == "transport" for e in events if isinstance(e, tuple) and e[0] != "lost")


def test_extra_info_still_answers_after_connection_lost(loop, tls_files):
    """The peer answers and closes at once (as CPython's test_create_ssl_unix_connection's
    server does); the TLS transport's sockname/peername still answer afterwards, as a
    closed plain transport's do. asyncio's SSL transport answers None once connection_lost
    has run, which made that CPython test depend on when connection_lost ran."""
    server_ctx, client_ctx = contexts(tls_files)
    listener = socket.create_server(("127.0.0.1", 0))

    def peer():
        conn, _ = listener.accept()
        with conn:
            p = BioPeer(conn, server_ctx, server_side=True)
            p.handshake()
            p.obj.write(b"bye")
            p.flush()

    thread, errors = run_peer(peer)

    async def main():
        tr, proto = await loop.create_connection(
            lambda: Events(loop),
            "127.0.0.1",
            listener.getsockname()[1],
            ssl=client_ctx,
            server_hostname="localhost",
        )
        sockname = tr.get_extra_info("sockname")
        await asyncio.wait_for(proto.lost, 10)
        return tr, sockname

    tr, sockname = loop.run_until_complete(main())
    finish(thread, errors)
    assert tr.get_extra_info("sockname") == sockname
    assert tr.get_extra_info("peername") == listener.getsockname()
    assert tr.get_extra_info("socket") is not None
    assert tr.get_extra_info("ssl_object") is not None
    listener.close()


def test_tcp_eof_while_reading_paused_delivers_the_data_on_resume(loop, tls_files):
    """The peer sends data then a TCP FIN without close_notify while the application has
    paused reading: asyncio's behaviour, kept on PyLoop (uvloop drops the data), is to
    deliver the data once reading resumes, then eof_received() and connection_lost(None)."""
    server_ctx, client_ctx = contexts(tls_files)
    listener = socket.create_server(("127.0.0.1", 0))
    fin_sent = threading.Event()

    def peer():
        conn, _ = listener.accept()
        with conn:
            p = BioPeer(conn, server_ctx, server_side=True)
            p.handshake()
            p.flush()
            assert p.until(lambda: p.obj.read(5)) == b"ready"
            p.obj.write(b"extra bytes")
            p.flush()
            conn.shutdown(socket.SHUT_WR)
            fin_sent.set()
            assert conn.recv(1) == b""

    thread, errors = run_peer(peer)

    async def main():
        tr, proto = await loop.create_connection(
            lambda: Events(loop),
            "127.0.0.1",
            listener.getsockname()[1],
            ssl=client_ctx,
            server_hostname="localhost",
        )
        tr.pause_reading()
        tr.write(b"ready")
        await loop.run_in_executor(None, fin_sent.wait, 10)
        await asyncio.sleep(0.2)  # the FIN has arrived; the data waits in the SSL object
        assert proto.events == ["made"]
        tr.resume_reading()
        assert await asyncio.wait_for(proto.lost, 10) is None
        return proto.events

    events = loop.run_until_complete(main())
    finish(thread, errors)
    listener.close()
    assert events == ["made", ("data", b"extra bytes"), "eof", ("lost", None)]


def test_tls_over_tls_closes_without_errors(loop, tls_files):
    """start_tls() over a TLS transport, both ends on the loop: when the connection ends,
    the outer TLS transport has already gone (asyncio's raises AttributeError from
    get_extra_info then); connection_lost reaches both protocols with no error reported."""
    server_ctx, client_ctx = contexts(tls_files)
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    server_done = loop.create_future()

    class Inner(asyncio.Protocol):
        def connection_made(self, transport):
            async def upgrade():
                tls = await loop.start_tls(transport, self, server_ctx, server_side=True)
                self.tls = tls

            self.tls = None
            loop.create_task(upgrade())

        def data_received(self, data):
            self.tls.write(data.upper())

        def connection_lost(self, exc):
            server_done.set_result(exc)

    async def main():
        server = await loop.create_server(Inner, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        client = Events(loop)
        tr, _ = await loop.create_connection(
            lambda: client, "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
        )
        inner = await loop.start_tls(tr, client, client_ctx, server_hostname="localhost")
        inner.write(b"twice")
        for _ in range(200):
            if ("data", b"TWICE") in client.events:
                break
            await asyncio.sleep(0.01)
        inner.close()
        assert await asyncio.wait_for(client.lost, 10) is None
        await asyncio.wait_for(server_done, 10)
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.05)
        return client.events

    events = loop.run_until_complete(main())
    assert ("data", b"TWICE") in events and events[-1] == ("lost", None)
    assert errors == []
