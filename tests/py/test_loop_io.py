"""File-descriptor watching, raw socket operations, signals and DNS on the loop. Each test
runs on asyncio's loop and on PyLoop."""

import asyncio
import os
import signal
import socket
import sys
import threading
import time

import pytest
from loop_fixtures import *  # noqa: F403  (the loop and loop_factory fixtures)
from loop_fixtures import is_pyloop


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


# ---- add_reader / add_writer ----


def test_add_reader_fires_when_readable(loop, pair):
    a, b = pair
    got = []

    def on_readable(tag):
        got.append((tag, a.recv(100)))
        loop.remove_reader(a.fileno())
        loop.stop()

    loop.add_reader(a.fileno(), on_readable, "tag")
    loop.call_later(0.01, b.send, b"hello")
    guard = loop.call_later(3, loop.stop)
    loop.run_forever()
    guard.cancel()
    assert got == [("tag", b"hello")]


def test_add_reader_accepts_file_object_and_replaces(loop, pair):
    a, b = pair
    got = []
    loop.add_reader(a, got.append, "first")
    loop.add_reader(a, got.append, "second")
    b.send(b"x")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert got and set(got) == {"second"}
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(a) is False


def test_remove_reader_stops_callbacks(loop, pair):
    a, b = pair
    got = []
    loop.add_reader(a.fileno(), got.append, 1)
    assert loop.remove_reader(a.fileno()) is True
    b.send(b"x")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert got == []


def test_stop_serving_removes_the_reader_and_closes(loop, pair):
    """asyncio's selector loop has the private _stop_serving(sock), which CPython's
    test_prompt_cancellation calls: PyLoop has it too."""
    a, b = pair
    got = []
    loop.add_reader(a.fileno(), got.append, 1)
    b.send(b"x")  # readable, but no longer watched once _stop_serving returns
    loop._stop_serving(a)
    assert a.fileno() == -1
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert got == []


def test_add_writer_fires_when_writable(loop, pair):
    a, _ = pair
    got = []

    def on_writable():
        got.append(True)
        loop.remove_writer(a.fileno())
        loop.stop()

    loop.add_writer(a.fileno(), on_writable)
    guard = loop.call_later(3, loop.stop)
    loop.run_forever()
    guard.cancel()
    assert got == [True]
    assert loop.remove_writer(a.fileno()) is False


def test_reader_and_writer_on_same_fd(loop, pair):
    a, b = pair
    events = []

    def on_w():
        events.append("w")
        loop.remove_writer(a)

    def on_r():
        events.append("r")
        a.recv(10)
        loop.remove_reader(a)

    loop.add_reader(a, on_r)
    loop.add_writer(a, on_w)
    b.send(b"z")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert sorted(events) == ["r", "w"]


def test_reader_callback_exception_goes_to_handler(loop, pair):
    a, b = pair
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def bad():
        loop.remove_reader(a)
        raise ValueError("reader")

    loop.add_reader(a, bad)
    b.send(b"x")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert len(contexts) == 1 and isinstance(contexts[0]["exception"], ValueError)


def test_add_reader_invalid_fd(loop):
    with pytest.raises(ValueError):
        loop.add_reader(-1, print)
    with pytest.raises((ValueError, TypeError)):
        loop.add_reader("not a file", print)


def test_add_reader_closed_loop(loop, pair):
    a, _ = pair
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_reader(a, print)
    assert loop.remove_reader(a) is False


def test_close_loop_with_readers(loop, pair):
    a, _ = pair
    loop.add_reader(a, print)
    loop.add_writer(a, print)
    loop.close()
    assert loop.is_closed()


def test_watching_a_transports_socket_is_refused_until_it_closes(loop, pair):
    """asyncio refuses add_reader/add_writer/remove_* on the socket of an open transport
    (the transport does its own I/O on it), by the socket object or its fd."""
    a, b = pair

    async def main():
        tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
        for method in (loop.add_reader, loop.add_writer):
            for fileobj in (a, a.fileno()):
                with pytest.raises(RuntimeError, match="is used by transport"):
                    method(fileobj, print)
        for method in (loop.remove_reader, loop.remove_writer):
            with pytest.raises(RuntimeError, match="is used by transport"):
                method(a)
        # Another socket is not affected.
        assert loop.remove_reader(b) is False
        tr.close()
        # A closing transport no longer refuses (asyncio checks is_closing()).
        assert loop.remove_reader(a.fileno()) is False
        await asyncio.sleep(0)

    loop.run_until_complete(main())


# ---- sock_* ----


def test_sock_recv_sendall(loop, pair):
    a, b = pair

    async def main():
        await loop.sock_sendall(a, b"ping")
        got = await loop.sock_recv(b, 100)
        buf = bytearray(10)
        loop.call_later(0.01, a.send, b"pong")
        n = await loop.sock_recv_into(b, buf)
        return got, bytes(buf[:n])

    assert loop.run_until_complete(main()) == (b"ping", b"pong")


def test_sock_sendall_large_blocks_and_completes(loop, pair):
    a, b = pair
    payload = os.urandom(4 * 1024 * 1024)

    async def reader():
        chunks = []
        total = 0
        while total < len(payload):
            data = await loop.sock_recv(b, 65536)
            chunks.append(data)
            total += len(data)
        return b"".join(chunks)

    async def main():
        r = asyncio.ensure_future(reader())
        await loop.sock_sendall(a, payload)
        return await r

    assert loop.run_until_complete(main()) == payload


def test_sock_connect_accept(loop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]

    async def main():
        client = socket.socket()
        client.setblocking(False)
        accept = asyncio.ensure_future(loop.sock_accept(listener))
        await loop.sock_connect(client, ("127.0.0.1", port))
        conn, addr = await accept
        assert addr[0] == "127.0.0.1"
        assert conn.gettimeout() == 0
        await loop.sock_sendall(client, b"over tcp")
        got = await loop.sock_recv(conn, 100)
        conn.close()
        eof = await loop.sock_recv(client, 100)
        client.close()
        return got, eof

    try:
        assert loop.run_until_complete(main()) == (b"over tcp", b"")
    finally:
        listener.close()


def test_sock_connect_refused(loop):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()

    async def main():
        s = socket.socket()
        s.setblocking(False)
        try:
            await loop.sock_connect(s, ("127.0.0.1", port))
        finally:
            s.close()

    with pytest.raises(ConnectionRefusedError):
        loop.run_until_complete(main())


def test_sock_recv_cancelled(loop, pair):
    a, b = pair

    async def main():
        t = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        # The fd is free again: a new reader works.
        b.send(b"after")
        return await loop.sock_recv(a, 10)

    assert loop.run_until_complete(main()) == b"after"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="loop.sock_recvfrom/sock_sendto are 3.11+")
def test_sock_udp_sendto_recvfrom(loop):
    s1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (s1, s2):
        s.setblocking(False)
        s.bind(("127.0.0.1", 0))

    async def main():
        await loop.sock_sendto(s1, b"dgram", s2.getsockname())
        data, addr = await loop.sock_recvfrom(s2, 100)
        return data, addr == s1.getsockname()

    try:
        assert loop.run_until_complete(main()) == (b"dgram", True)
    finally:
        s1.close()
        s2.close()


# ---- signals ----


def test_signal_handler_runs_callback(loop):
    got = []

    def on_signal(tag):
        got.append(tag)
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, on_signal, "usr1")
    try:
        loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
        guard = loop.call_later(3, loop.stop)
        loop.run_forever()
        guard.cancel()
    finally:
        assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert got == ["usr1"]
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_signal_from_thread_wakes_idle_loop(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR2, lambda: (got.append(1), loop.stop()))

    def later():
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGUSR2)

    t = threading.Thread(target=later)
    t.start()
    guard = loop.call_later(3, loop.stop)
    t0 = time.monotonic()
    loop.run_forever()
    t.join()
    guard.cancel()
    loop.remove_signal_handler(signal.SIGUSR2)
    assert got == [1]
    assert time.monotonic() - t0 < 2


def test_sigint_handler_restores_default_int_handler(loop):
    loop.add_signal_handler(signal.SIGINT, print)
    assert loop.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_signal_handler_errors(loop):
    with pytest.raises(TypeError):
        loop.add_signal_handler("SIGINT", print)
    with pytest.raises(ValueError):
        loop.add_signal_handler(10_000, print)
    with pytest.raises(RuntimeError, match="cannot be caught"):
        loop.add_signal_handler(signal.SIGKILL, print)

    async def coro():
        pass

    with pytest.raises(TypeError):
        loop.add_signal_handler(signal.SIGUSR1, coro)
    with pytest.raises(TypeError):
        loop.remove_signal_handler("x")


def test_close_removes_signal_handlers(loop_factory):
    lp = loop_factory()
    lp.add_signal_handler(signal.SIGUSR1, print)
    lp.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


class Alarm(Exception):
    pass


@pytest.fixture
def alarm_handler():
    """A Python-level SIGALRM handler that raises Alarm, as a test runner's timeout does;
    arm it with signal.setitimer. Restored afterwards."""

    def on_alarm(signum, frame):
        raise Alarm

    old = signal.signal(signal.SIGALRM, on_alarm)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("waiting_on", ["nothing", "far_timer", "spinning_thread", "executor"])
def test_python_signal_handler_interrupts_waiting_loop(loop, alarm_handler, waiting_on):
    """A signal.signal() handler runs while the loop sleeps in its poll, and its exception
    leaves run_until_complete, as with asyncio's loop (whose epoll_wait returns EINTR and
    runs the handler; libuv retries EINTR, so PyLoop watches the signal wakeup fd)."""
    stop = threading.Event()
    spinner = None
    if waiting_on == "far_timer":
        loop.call_later(60, print)
    elif waiting_on == "spinning_thread":
        # Another thread busy in Python: it competes for the GIL; the signal may be
        # delivered to it, but the handler must still run in the main thread.
        def spin():
            while not stop.is_set():
                pass

        spinner = threading.Thread(target=spin)
        spinner.start()
    # If the handler never ran, this bounds the test: the loop stops and
    # run_until_complete raises RuntimeError instead of Alarm.
    guard = loop.call_later(5, loop.stop)
    if waiting_on == "executor":
        waited = loop.run_in_executor(None, stop.wait, 5)
    else:
        waited = loop.create_future()
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    t0 = time.monotonic()
    try:
        with pytest.raises(Alarm):
            loop.run_until_complete(waited)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        guard.cancel()
        if spinner is not None:
            spinner.join()
    assert elapsed < 2
    # The loop is still usable afterwards.
    assert loop.run_until_complete(asyncio.sleep(0, "again")) == "again"
    if waiting_on == "executor":
        loop.run_until_complete(waited)


def send_sigint_later(delay):
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_sigint_raises_keyboard_interrupt_from_run_forever(loop):
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler here")
    guard = loop.call_later(5, loop.stop)
    timer = send_sigint_later(0.1)
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
    finally:
        timer.join()
        guard.cancel()
    assert time.monotonic() - t0 < 2
    assert not loop.is_running()


def test_sigint_in_runner_cancels_the_main_task(loop_factory):
    """asyncio.Runner's SIGINT handler cancels the main task (first Ctrl-C), so that the task
    sees CancelledError and the caller KeyboardInterrupt."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler here")
    seen = []

    async def main():
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    timer = send_sigint_later(0.1)
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(main())
    finally:
        timer.join()
    assert seen == ["cancelled"]
    assert time.monotonic() - t0 < 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_add_signal_handler_and_python_handler_together(loop, alarm_handler):
    got = []
    pending = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "usr1")
    try:
        pending.append(loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1))
        pending.append(loop.call_later(5, loop.stop))
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Alarm):
            loop.run_until_complete(loop.create_future())
        assert got == ["usr1"]
        # add_signal_handler keeps working after the interruption.
        pending.append(loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1))
        loop.run_until_complete(asyncio.sleep(0.1))
    finally:
        # Nothing may send SIGUSR1 once its default action (terminate) is back.
        for handle in pending:
            handle.cancel()
        loop.remove_signal_handler(signal.SIGUSR1)
    assert got == ["usr1", "usr1"]


def test_run_leaves_the_callers_wakeup_fd_in_place(loop):
    """Whatever the loop does with signal.set_wakeup_fd while it runs, the caller's wakeup fd
    is in place again afterwards."""
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        old = signal.set_wakeup_fd(a.fileno())
        try:
            loop.run_until_complete(asyncio.sleep(0.01))
        finally:
            assert signal.set_wakeup_fd(old) == a.fileno()
    finally:
        a.close()
        b.close()


# ---- DNS ----


def test_getaddrinfo_numeric_and_name(loop):
    async def main():
        numeric = await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        v6 = await loop.getaddrinfo("::1", "443", type=socket.SOCK_STREAM)
        name = await loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
        info = await loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST)
        return numeric, v6, name, info

    numeric, v6, name, info = loop.run_until_complete(main())
    assert numeric[0][4] == ("127.0.0.1", 80)
    assert v6[0][4][:2] == ("::1", 443)
    assert name and all(i[1] == socket.SOCK_STREAM for i in name)
    assert info[0] == "127.0.0.1"


def test_getaddrinfo_failure(loop):
    async def main():
        await loop.getaddrinfo("nonexistent.invalid", 80)

    with pytest.raises(socket.gaierror):
        loop.run_until_complete(main())


# ---- sendfile ----


@pytest.fixture
def data_file(tmp_path):
    payload = os.urandom(300_000)
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    with open(path, "rb") as f:
        yield f, payload


async def _recv_all(loop, sock, n):
    chunks = bytearray()
    while len(chunks) < n:
        data = await loop.sock_recv(sock, 65536)
        if not data:
            break
        chunks += data
    return bytes(chunks)


def test_sock_sendfile_native(loop, pair, data_file):
    a, b = pair
    f, payload = data_file

    async def main():
        recv = asyncio.ensure_future(_recv_all(loop, b, len(payload) - 1000))
        sent = await loop.sock_sendfile(a, f, 1000)
        return sent, await recv, f.tell()

    sent, got, pos = loop.run_until_complete(main())
    assert sent == len(payload) - 1000
    assert got == payload[1000:]
    assert pos == len(payload)


def test_sock_sendfile_count_and_fallback(loop, pair):
    import io

    a, b = pair
    payload = os.urandom(50_000)
    f = io.BytesIO(payload)

    async def main():
        recv = asyncio.ensure_future(_recv_all(loop, b, 20_000))
        sent = await loop.sock_sendfile(a, f, 10, 20_000)
        got = await recv
        with pytest.raises(asyncio.SendfileNotAvailableError):
            await loop.sock_sendfile(a, f, fallback=False)
        return sent, got, f.tell()

    sent, got, pos = loop.run_until_complete(main())
    assert (sent, got, pos) == (20_000, payload[10:20_010], 20_010)


def test_sock_sendfile_errors(loop, pair, tmp_path):
    a, _ = pair
    (tmp_path / "t.txt").write_text("text")

    async def main():
        with open(tmp_path / "t.txt") as text_file:
            with pytest.raises(ValueError):
                await loop.sock_sendfile(a, text_file)
        with open(tmp_path / "t.txt", "rb") as f:
            with pytest.raises(ValueError):
                await loop.sock_sendfile(a, f, -1)
            with pytest.raises(ValueError):
                await loop.sock_sendfile(a, f, 0, 0)
            with pytest.raises(TypeError):
                await loop.sock_sendfile(a, f, "0")

    loop.run_until_complete(main())


def test_transport_sendfile(loop, data_file):
    f, payload = data_file

    class Sink(asyncio.Protocol):
        def __init__(self):
            self.data = bytearray()
            self.done = loop.create_future()

        def data_received(self, data):
            self.data += data

        def eof_received(self):
            self.done.set_result(bytes(self.data))

    async def main():
        sinks = []

        def factory():
            sinks.append(Sink())
            return sinks[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        sent = await loop.sendfile(tr, f, 5, 200_000)
        tr.write(b"tail")
        tr.write_eof()
        got = await sinks[0].done
        tr.close()
        server.close()
        await server.wait_closed()
        return sent, got

    sent, got = loop.run_until_complete(main())
    assert sent == 200_000
    assert got == payload[5:200_005] + b"tail"


def test_transport_sendfile_keeps_order_and_refuses_bare_writes(loop, data_file):
    """Data queued before sendfile() reaches the peer first; while sendfile() runs,
    transport.write() raises RuntimeError (asyncio's rule); the transport is usable again
    afterwards, and reading resumes."""
    f, payload = data_file
    queued = os.urandom(16_000_000)  # more than the socket buffers hold: stays queued

    class Sink(asyncio.Protocol):
        def __init__(self):
            self.data = bytearray()
            self.done = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport
            transport.pause_reading()  # until the test has seen sendfile() waiting

        def data_received(self, data):
            self.data += data
            if bytes(self.data[-4:]) == b"ping":
                self.transport.write(b"pong")

        def eof_received(self):
            self.done.set_result(bytes(self.data))

    class Client(asyncio.Protocol):
        def __init__(self):
            self.got = bytearray()
            self.pong = loop.create_future()

        def data_received(self, data):
            self.got += data
            if self.got.endswith(b"pong") and not self.pong.done():
                self.pong.set_result(None)

    async def main():
        sinks = []

        def factory():
            sinks.append(Sink())
            return sinks[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tr, client = await loop.create_connection(Client, "127.0.0.1", port)
        tr.write(queued)
        started = loop.create_future()

        async def send():
            started.set_result(None)
            return await loop.sendfile(tr, f)

        task = asyncio.ensure_future(send())
        await started
        with pytest.raises(RuntimeError, match="sendfile is in progress"):
            tr.write(b"bare")
        assert not task.done()
        while not sinks:
            await asyncio.sleep(0.001)
        sinks[0].transport.resume_reading()
        sent = await task
        tr.write(b"ping")
        await asyncio.wait_for(client.pong, 5)  # reading resumed after sendfile
        tr.write_eof()
        got = await sinks[0].done
        tr.close()
        server.close()
        await server.wait_closed()
        return sent, got

    sent, got = loop.run_until_complete(main())
    assert sent == len(payload)
    assert got == queued + payload + b"ping"


def test_transport_sendfile_native_path_on_pyloop(loop, data_file, monkeypatch):
    """On PyLoop, sendfile() to a TCP transport uses os.sendfile (no read/write copy)."""
    if not is_pyloop(loop):
        pytest.skip("checks PyLoop's native path")
    f, payload = data_file
    calls = []
    real = os.sendfile

    def spy(*args):
        calls.append(args[3])
        return real(*args)

    monkeypatch.setattr(os, "sendfile", spy)

    async def main():
        got = bytearray()
        done = loop.create_future()

        class Sink(asyncio.Protocol):
            def data_received(self, data):
                got.extend(data)

            def eof_received(self):
                done.set_result(None)

        server = await loop.create_server(Sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        sent = await loop.sendfile(tr, f, 7, 100_000, fallback=False)
        tr.write_eof()
        await done
        tr.close()
        server.close()
        await server.wait_closed()
        return sent, bytes(got)

    sent, got = loop.run_until_complete(main())
    assert sent == 100_000 and got == payload[7:100_007]
    assert calls


def test_sock_recv_racing_cancel_then_new_recv(loop, pair):
    a, b = pair

    async def main():
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0)
        task.cancel()
        loop.call_later(0.01, b.send, b"second")
        data = await asyncio.wait_for(loop.sock_recv(a, 100), 2)
        return data, task.cancelled()

    assert loop.run_until_complete(main()) == (b"second", True)
