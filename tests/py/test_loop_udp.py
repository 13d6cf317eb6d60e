"""UDP on the loop (create_datagram_endpoint and its transport). Each test runs on asyncio's
loop and on PyLoop with the same body and the same expectations."""

import asyncio
import contextvars
import gc
import os
import socket
import sys

import pytest
from loop_fixtures import *  # noqa: F403  (the loop and loop_factory fixtures)
from loop_fixtures import is_pyloop

# asyncio sends empty datagrams from Python 3.13 on; before, sendto(b"") does nothing.
SENDS_EMPTY = sys.version_info >= (3, 13)


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data.upper(), addr)


class Collector(asyncio.DatagramProtocol):
    def __init__(self):
        self.got = asyncio.Queue()
        self.errors = []
        self.lost = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.got.put_nowait((data, addr))

    def error_received(self, exc):
        self.errors.append(exc)

    def connection_lost(self, exc):
        self.lost = ("lost", exc)


def test_udp_echo(loop):
    async def main():
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        client, proto = await loop.create_datagram_endpoint(Collector, remote_addr=addr)
        assert client.get_extra_info("peername") == addr
        client.sendto(b"one")
        client.sendto(b"two")
        got = [await asyncio.wait_for(proto.got.get(), 2) for _ in range(2)]
        with pytest.raises(ValueError):
            client.sendto(b"x", ("127.0.0.1", 1))
        with pytest.raises(TypeError):
            client.sendto("text")
        client.close()
        server.close()
        await asyncio.sleep(0.01)
        return [d for d, _ in got], proto.lost

    data, lost = loop.run_until_complete(main())
    assert data == [b"ONE", b"TWO"]
    assert lost == ("lost", None)


def test_udp_unconnected_sendto(loop):
    async def main():
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        client, proto = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
        client.sendto(b"hi", addr)
        data, from_addr = await asyncio.wait_for(proto.got.get(), 2)
        client.close()
        server.close()
        return data, from_addr == addr

    assert loop.run_until_complete(main()) == (b"HI", True)


def test_udp_with_sock_and_errors(loop):
    async def main():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        tr, _ = await loop.create_datagram_endpoint(Collector, sock=s)
        assert tr.get_extra_info("sockname") == s.getsockname()
        tr.abort()
        with pytest.raises(ValueError):
            await loop.create_datagram_endpoint(Collector)
        s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with pytest.raises(ValueError):
                await loop.create_datagram_endpoint(Collector, sock=s2, local_addr=("127.0.0.1", 0))
        finally:
            s2.close()

    loop.run_until_complete(main())


def test_udp_connected_to_closed_port_reports_error(loop):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()

    async def main():
        tr, proto = await loop.create_datagram_endpoint(Collector, remote_addr=("127.0.0.1", port))
        for _ in range(50):
            tr.sendto(b"ping")
            await asyncio.sleep(0.005)
            if proto.errors:
                break
        tr.close()
        return proto.errors

    errors = loop.run_until_complete(main())
    assert errors and isinstance(errors[0], ConnectionRefusedError)


class Raw(asyncio.DatagramProtocol):
    """Echoes without changing the data; records connection events."""

    def __init__(self):
        self.events = []

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)

    def connection_lost(self, exc):
        self.events.append(("lost", exc))


def open_fds():
    return len(os.listdir("/proc/self/fd"))


async def echo_pair(loop, server_factory=Echo, **client_kwargs):
    server, sproto = await loop.create_datagram_endpoint(
        server_factory, local_addr=("127.0.0.1", 0)
    )
    addr = server.get_extra_info("sockname")
    client, proto = await loop.create_datagram_endpoint(
        Collector, remote_addr=addr, **client_kwargs
    )
    return server, sproto, client, proto, addr


def test_udp_many_datagrams_in_windows(loop):
    async def main():
        server, _, client, proto, _ = await echo_pair(loop, Raw)
        got = []
        for window in range(20):
            for i in range(50):
                client.sendto(b"%d:%d" % (window, i))
            for _ in range(50):
                got.append((await asyncio.wait_for(proto.got.get(), 5))[0])
        client.close()
        server.close()
        await asyncio.sleep(0)
        return got

    got = loop.run_until_complete(main())
    assert len(got) == 1000
    assert sorted(got) == sorted(b"%d:%d" % (w, i) for w in range(20) for i in range(50))


def test_udp_large_datagram_and_buffer_types(loop):
    async def main():
        server, _, client, proto, addr = await echo_pair(loop, Raw)
        big = os.urandom(60 * 1024)
        client.sendto(big)
        client.sendto(bytearray(b"from a bytearray"))
        client.sendto(memoryview(b"..a memoryview..")[2:-2], addr)
        got = [(await asyncio.wait_for(proto.got.get(), 5))[0] for _ in range(3)]
        client.close()
        server.close()
        await asyncio.sleep(0)
        return big, got

    big, got = loop.run_until_complete(main())
    assert got == [big, b"from a bytearray", b"a memoryview"]


def test_udp_too_large_datagram_goes_to_error_received(loop):
    async def main():
        server, _, client, proto, _ = await echo_pair(loop, Raw)
        client.sendto(b"x" * 70000)  # larger than any UDP payload: EMSGSIZE
        client.sendto(b"still open")
        data, _ = await asyncio.wait_for(proto.got.get(), 5)
        closing = client.is_closing()
        client.close()
        server.close()
        await asyncio.sleep(0)
        return proto.errors, data, closing

    errors, data, closing = loop.run_until_complete(main())
    assert [type(e) for e in errors] == [OSError] and errors[0].errno == 90  # EMSGSIZE
    assert data == b"still open"
    assert closing is False


def test_udp_empty_datagrams(loop):
    async def main():
        server, _, client, proto, addr = await echo_pair(loop, Raw)
        client.sendto(b"")
        client.sendto(b"after")
        first = (await asyncio.wait_for(proto.got.get(), 5))[0]
        # An empty datagram from elsewhere reaches datagram_received as b"".
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.bind(("127.0.0.1", 0))
        listener, lproto = await loop.create_datagram_endpoint(
            Collector, local_addr=("127.0.0.1", 0)
        )
        raw.sendto(b"", listener.get_extra_info("sockname"))
        empty, from_addr = await asyncio.wait_for(lproto.got.get(), 5)
        raw_addr = raw.getsockname()
        raw.close()
        for tr in (client, server, listener):
            tr.close()
        await asyncio.sleep(0)
        return first, empty, from_addr == raw_addr

    first, empty, same_addr = loop.run_until_complete(main())
    assert first == (b"" if SENDS_EMPTY else b"after")
    assert empty == b"" and same_addr


def test_udp_sender_address_and_extra_info(loop):
    async def main():
        server, sproto = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        client, _ = await loop.create_datagram_endpoint(Collector, remote_addr=addr)
        client.sendto(b"who")
        data, from_addr = await asyncio.wait_for(sproto.got.get(), 5)
        info = {
            "from_is_client": from_addr == client.get_extra_info("sockname"),
            "server_peer": server.get_extra_info("peername"),
            "client_peer": client.get_extra_info("peername") == addr,
            "default": server.get_extra_info("nope", "dflt"),
        }
        for tr in (client, server):
            s = tr.get_extra_info("socket")
            info.setdefault("sockets", []).append(
                (s.family, s.type, s.getsockname() == tr.get_extra_info("sockname"))
            )
        info["protocol"] = server.get_protocol() is sproto
        other = Collector()
        server.set_protocol(other)
        info["switched"] = server.get_protocol() is other
        server.set_protocol(sproto)
        info["buffer"] = server.get_write_buffer_size()
        # asyncio's transport is an asyncio.Transport (a DatagramTransport only from 3.13).
        info["transport"] = isinstance(server, asyncio.Transport)
        client.close()
        server.close()
        await asyncio.sleep(0)
        return info

    info = loop.run_until_complete(main())
    assert info["from_is_client"] and info["client_peer"]
    assert info["server_peer"] is None
    assert info["default"] == "dflt"
    assert info["sockets"] == [(socket.AF_INET, socket.SOCK_DGRAM, True)] * 2
    assert info["protocol"] and info["switched"] and info["transport"]
    assert info["buffer"] == 0


def test_udp_write_buffer_limits(loop):
    async def main():
        tr, _ = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
        limits = [tr.get_write_buffer_limits()]
        tr.set_write_buffer_limits(high=1000)
        limits.append(tr.get_write_buffer_limits())
        tr.set_write_buffer_limits(high=100, low=10)
        limits.append(tr.get_write_buffer_limits())
        with pytest.raises(ValueError):
            tr.set_write_buffer_limits(high=1, low=2)
        tr.close()
        await asyncio.sleep(0)
        return limits

    assert loop.run_until_complete(main()) == [(16384, 65536), (250, 1000), (10, 100)]


def test_udp_close_and_abort_call_connection_lost_once(loop):
    async def main():
        results = []
        for how in ("close", "abort", "close+abort", "abort+close", "close twice"):
            tr, proto = await loop.create_datagram_endpoint(Raw, local_addr=("127.0.0.1", 0))
            for step in how.replace(" twice", "+close").split("+"):
                getattr(tr, step)()
            # connection_lost comes from the loop, never from inside close()/abort().
            before = list(proto.events)
            closing = tr.is_closing()
            for _ in range(3):
                await asyncio.sleep(0)
            results.append((how, before, closing, list(proto.events), tr.get_protocol()))
        return results

    for how, before, closing, events, protocol in loop.run_until_complete(main()):
        assert before == ["made"], how
        assert closing is True, how
        assert events == ["made", ("lost", None)], how
        assert protocol is None or isinstance(protocol, Raw), how


def test_udp_sendto_on_closing_connected_transport(loop, caplog):
    async def main():
        server, sproto = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
        client, proto = await loop.create_datagram_endpoint(
            Collector, remote_addr=server.get_extra_info("sockname")
        )
        client.close()
        client.sendto(b"dropped while closing")
        await asyncio.sleep(0.01)
        for _ in range(6):  # asyncio only counts (and from the fifth on logs) these
            client.sendto(b"dropped after connection_lost")
        with pytest.raises(ValueError):
            client.sendto(b"x", ("127.0.0.1", 9))
        await asyncio.sleep(0.05)
        server.close()
        await asyncio.sleep(0)
        return sproto.got.qsize(), proto.lost, proto.errors

    with caplog.at_level("WARNING", logger="asyncio"):
        received, lost, errors = loop.run_until_complete(main())
    assert received == 0
    assert lost == ("lost", None)
    assert errors == []
    # Seven dropped sends: asyncio logs from the fifth on.
    assert [r.getMessage() for r in caplog.records] == ["socket.send() raised exception."] * 3


def test_udp_connection_made_before_waiter_and_data(loop):
    events = []

    class Order(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            events.append(("made", transport.is_closing()))

        def datagram_received(self, data, addr):
            events.append(("data", data))

        def connection_lost(self, exc):
            events.append(("lost", exc))

    async def main():
        tr, _ = await loop.create_datagram_endpoint(Order, local_addr=("127.0.0.1", 0))
        events.append("awaited")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"d", tr.get_extra_info("sockname"))
        s.close()
        while len(events) < 3:
            await asyncio.sleep(0.001)
        tr.close()
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert events == [("made", False), "awaited", ("data", b"d"), ("lost", None)]


def test_udp_datagram_received_exception_is_reported(loop):
    class Boom(Collector):
        def datagram_received(self, data, addr):
            if data == b"boom":
                raise RuntimeError("boom")
            super().datagram_received(data, addr)

    async def main():
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
        tr, proto = await loop.create_datagram_endpoint(Boom, local_addr=("127.0.0.1", 0))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"boom", tr.get_extra_info("sockname"))
        s.sendto(b"ok", tr.get_extra_info("sockname"))
        data, _ = await asyncio.wait_for(proto.got.get(), 5)
        s.close()
        closing = tr.is_closing()
        tr.close()
        await asyncio.sleep(0)
        return contexts, data, closing

    contexts, data, closing = loop.run_until_complete(main())
    assert [type(c["exception"]) for c in contexts] == [RuntimeError]
    assert data == b"ok" and closing is False


def test_udp_connected_errors_keep_transport_open(loop):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()

    async def main():
        tr, proto = await loop.create_datagram_endpoint(Collector, remote_addr=("127.0.0.1", port))
        for _ in range(100):
            tr.sendto(b"ping")
            await asyncio.sleep(0.005)
            if len(proto.errors) >= 2:
                break
        closing = tr.is_closing()
        tr.close()
        await asyncio.sleep(0)
        return proto.errors, closing, proto.lost

    errors, closing, lost = loop.run_until_complete(main())
    assert len(errors) >= 2
    assert all(isinstance(e, ConnectionRefusedError) for e in errors)
    assert closing is False
    assert lost == ("lost", None)


def test_udp_unconnected_send_to_closed_port_is_silent(loop):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    dead = probe.getsockname()
    probe.close()

    async def main():
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        tr, proto = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
        tr.sendto(b"nobody", dead)
        tr.sendto(b"hi", server.get_extra_info("sockname"))
        data, _ = await asyncio.wait_for(proto.got.get(), 5)
        tr.close()
        server.close()
        await asyncio.sleep(0)
        return data, proto.errors

    # An unconnected socket gets no ICMP errors on Linux (they are only reported to
    # connected sockets unless IP_RECVERR is set).
    assert loop.run_until_complete(main()) == (b"HI", [])


def test_udp_sendto_bad_address_is_fatal(loop):
    async def main():
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
        tr, proto = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
        tr.sendto(b"x", "not an address")
        closing = tr.is_closing()
        await asyncio.sleep(0.01)
        return [type(c["exception"]) for c in contexts], closing, proto.lost

    types, closing, lost = loop.run_until_complete(main())
    assert types == [TypeError]
    assert closing is True
    assert lost[0] == "lost" and isinstance(lost[1], TypeError)


def test_udp_sendto_name_resolution(loop):
    async def main():
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        port = server.get_extra_info("sockname")[1]
        tr, proto = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
        tr.sendto(b"by name", ("localhost", port))
        data, _ = await asyncio.wait_for(proto.got.get(), 5)
        tr.close()
        server.close()
        await asyncio.sleep(0)
        return data

    assert loop.run_until_complete(main()) == b"BY NAME"


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_udp_ipv6_echo(loop):
    async def main():
        try:
            server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback")
        addr = server.get_extra_info("sockname")
        tr, proto = await loop.create_datagram_endpoint(Collector, local_addr=("::1", 0))
        tr.sendto(b"six", addr)
        tr.sendto(b"short", addr[:2])
        got = [await asyncio.wait_for(proto.got.get(), 5) for _ in range(2)]
        tr.close()
        server.close()
        await asyncio.sleep(0)
        return got, addr

    got, addr = loop.run_until_complete(main())
    assert [d for d, _ in got] == [b"SIX", b"SHORT"]
    assert all(a == addr and len(a) == 4 for _, a in got)


def test_udp_reuse_port(loop):
    async def main():
        a, _ = await loop.create_datagram_endpoint(
            Collector, local_addr=("127.0.0.1", 0), reuse_port=True
        )
        addr = a.get_extra_info("sockname")
        b, _ = await loop.create_datagram_endpoint(Collector, local_addr=addr, reuse_port=True)
        same = b.get_extra_info("sockname") == addr
        opt = b.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        with pytest.raises(OSError):
            await loop.create_datagram_endpoint(Collector, local_addr=addr)
        a.close()
        b.close()
        await asyncio.sleep(0)
        return same, opt

    assert loop.run_until_complete(main()) == (True, 1)


def test_udp_allow_broadcast(loop):
    async def main():
        server, sproto = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        tr, _ = await loop.create_datagram_endpoint(
            Collector, remote_addr=addr, allow_broadcast=True
        )
        opt = tr.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
        # With allow_broadcast the socket is not connected: sendto() goes to remote_addr.
        peer = tr.get_extra_info("peername")
        tr.sendto(b"to remote_addr")
        data, _ = await asyncio.wait_for(sproto.got.get(), 5)
        with pytest.raises(ValueError):
            tr.sendto(b"x", ("127.0.0.1", 9))
        tr.close()
        server.close()
        await asyncio.sleep(0)
        return opt, peer, data

    assert loop.run_until_complete(main()) == (1, None, b"to remote_addr")


def test_udp_connected_sock_argument(loop):
    async def main():
        server, sproto = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(addr)
        tr, _ = await loop.create_datagram_endpoint(Collector, sock=s)
        peer = tr.get_extra_info("peername")
        tr.sendto(b"via sock")
        # asyncio sends with send() on a socket that has a peer: the address is ignored.
        tr.sendto(b"address ignored", ("127.0.0.1", 9))
        got = [(await asyncio.wait_for(sproto.got.get(), 5))[0] for _ in range(2)]
        with pytest.raises(ValueError):
            await loop.create_datagram_endpoint(
                Collector, sock=socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            )
        tr.close()
        server.close()
        await asyncio.sleep(0)
        return peer, got, s.fileno()

    peer, got, fileno = loop.run_until_complete(main())
    assert got == [b"via sock", b"address ignored"]
    assert peer is not None
    assert fileno == -1  # the transport closed the socket it was given


def test_udp_unix_datagram(loop, tmp_path):
    async def main():
        spath, cpath = str(tmp_path / "s.sock"), str(tmp_path / "c.sock")
        server, sproto = await loop.create_datagram_endpoint(
            Raw, local_addr=spath, family=socket.AF_UNIX
        )
        client, proto = await loop.create_datagram_endpoint(
            Collector, local_addr=cpath, remote_addr=spath, family=socket.AF_UNIX
        )
        client.sendto(b"over unix")
        data, from_addr = await asyncio.wait_for(proto.got.get(), 5)
        names = (server.get_extra_info("sockname"), client.get_extra_info("peername"))
        with pytest.raises(TypeError):
            await loop.create_datagram_endpoint(
                Collector, local_addr=("127.0.0.1", 0), family=socket.AF_UNIX
            )
        client.close()
        server.close()
        await asyncio.sleep(0)
        return data, from_addr, names, spath

    data, from_addr, names, spath = loop.run_until_complete(main())
    assert data == b"over unix"
    assert from_addr == spath
    assert names == (spath, spath)


def test_udp_sendto_without_address_on_a_socketpair(loop):
    """sendto(data) on an unnamed AF_UNIX socketpair() end (no peername to send to) goes to
    the connected peer, as in uvloop (uvloop's test_udp test_socketpair)."""
    if not is_pyloop(loop):
        pytest.skip("asyncio 3.11 calls socket.sendto(data, None) there: TypeError")

    async def main():
        s1, s2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with s1, s2:
            transport, _ = await loop.create_datagram_endpoint(Collector, sock=s1)
            transport.sendto(b"to the peer")
            got = await asyncio.wait_for(loop.run_in_executor(None, s2.recv, 100), 5)
            transport.close()
            await asyncio.sleep(0)
            return got

    assert loop.run_until_complete(main()) == b"to the peer"


def test_udp_callbacks_run_in_the_endpoints_context(loop):
    """connection_made and datagram_received run in a copy of the context the endpoint was
    made in, as on asyncio's loop (its reader handle copies it); PyLoop's native UDP
    transport used to run them in the loop's own context."""
    cvar: contextvars.ContextVar[str] = contextvars.ContextVar("cvar", default="outer")
    seen: list[tuple[str, str]] = []

    class Proto(asyncio.DatagramProtocol):
        def __init__(self):
            self.got = loop.create_future()

        def connection_made(self, transport):
            seen.append(("made", cvar.get()))

        def datagram_received(self, data, addr):
            seen.append(("data", cvar.get()))
            self.got.set_result(data)

    async def endpoint():
        cvar.set("inner")
        return await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))

    async def main():
        transport, proto = await loop.create_task(endpoint())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"ctx", transport.get_extra_info("sockname"))
            await asyncio.wait_for(proto.got, 5)
        transport.close()
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert seen == [("made", "inner"), ("data", "inner")]


def test_udp_endpoint_cycles_do_not_leak(loop):
    async def cycles(n):
        for _ in range(n):
            tr, proto = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
            tr.sendto(b"self", tr.get_extra_info("sockname"))
            await asyncio.wait_for(proto.got.get(), 5)
            tr.close()
            await asyncio.sleep(0)

    async def main():
        await cycles(100)  # warm caches (interned strings, free lists, the address cache)
        gc.collect()
        fds, blocks = open_fds(), sys.getallocatedblocks()
        await cycles(1000)
        await asyncio.sleep(0.01)
        gc.collect()
        return open_fds() - fds, sys.getallocatedblocks() - blocks

    fd_growth, block_growth = loop.run_until_complete(main())
    assert fd_growth <= 0
    # One leaked object per cycle would be 1,000 blocks at least.
    assert block_growth < 300


def _unresolvable_neighbour():
    """An address on a directly attached subnet that nobody answers ARP for: datagrams to it
    wait in the kernel's neighbour queue, charged to the sending socket, so a small send
    buffer fills up (loopback never pushes back on UDP). None when there is no such subnet."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            local = s.getsockname()[0]
    except OSError:
        return None
    if local.startswith("127."):
        return None
    parts = local.split(".")
    parts[3] = str((int(parts[3]) + 77) % 250 + 2)
    target = (".".join(parts), 9)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        probe.setblocking(False)
        try:
            for _ in range(64):
                probe.sendto(b"p" * 1000, target)
        except BlockingIOError:
            return target
        except OSError:
            return None
    return None


def test_udp_flow_control_pause_and_resume_writing(loop):
    target = _unresolvable_neighbour()
    if target is None:
        pytest.skip("no directly attached subnet to fill a send buffer with")

    class Flow(Collector):
        def __init__(self):
            super().__init__()
            self.flow = []

        def pause_writing(self):
            self.flow.append(("pause", self.transport.get_write_buffer_size()))

        def resume_writing(self):
            self.flow.append(("resume", self.transport.get_write_buffer_size()))

    async def main():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        tr, proto = await loop.create_datagram_endpoint(Flow, sock=s)
        tr.set_write_buffer_limits(high=1500, low=500)
        # About four datagrams fit in the kernel; the rest queue in the transport.
        for _ in range(8):
            tr.sendto(b"q" * 1000, target)
        queued = tr.get_write_buffer_size()
        # The neighbour lookup fails after ~3 s: the kernel drops what waited, the socket
        # becomes writable and the transport's queue drains.
        for _ in range(300):
            if tr.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.05)
        tr.close()
        await asyncio.sleep(0.01)
        return queued, proto.flow, proto.lost

    queued, flow, lost = loop.run_until_complete(main())
    assert queued > 1500
    assert flow[0][0] == "pause" and flow[0][1] > 1500
    assert flow[-1][0] == "resume" and flow[-1][1] <= 500
    assert lost == ("lost", None)


def test_udp_is_native_on_pyloop(loop):
    async def main():
        tr, _ = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
        name = type(tr).__module__ + "." + type(tr).__name__
        tr.close()
        await asyncio.sleep(0)
        return name

    name = loop.run_until_complete(main())
    if is_pyloop(loop):
        assert name == "data_bridge._core.DatagramTransport"


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc")
@pytest.mark.parametrize("family", ["inet", "unix"])
def test_udp_transport_left_open_at_loop_close_warns_and_is_closed(loop_factory, family, tmp_path):
    """asyncio's selector keeps a datagram transport alive until the loop closes; then its
    finalizer warns "unclosed transport" and closes the socket. PyLoop warns and closes at
    loop close. Either way no fd is left once the transport is dropped."""
    import warnings

    lp = loop_factory()
    fds_start = len(os.listdir("/proc/self/fd"))

    async def main():
        if family == "unix":
            return await lp.create_datagram_endpoint(
                Collector, local_addr=str(tmp_path / "d.sock"), family=socket.AF_UNIX
            )
        return await lp.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))

    tr, proto = lp.run_until_complete(main())
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        lp.close()
        del tr, proto
        for _ in range(3):
            gc.collect()
    found = [w for w in record if "unclosed transport" in str(w.message)]
    assert found and all(w.category is ResourceWarning for w in found)
    assert len(os.listdir("/proc/self/fd")) <= fds_start
