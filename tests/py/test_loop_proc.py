"""Pipes and subprocesses on the loop. Each test runs on asyncio's loop and on PyLoop (UDP:
test_loop_udp.py)."""

import asyncio
import os
import sys

import pytest
from loop_fixtures import *  # noqa: F403  (the loop and loop_factory fixtures)

# ---- pipes ----


def test_read_and_write_pipes(loop):
    class Reader(asyncio.Protocol):
        def __init__(self):
            self.data = bytearray()
            self.done = loop.create_future()

        def data_received(self, data):
            self.data += data

        def eof_received(self):
            pass

        def connection_lost(self, exc):
            self.done.set_result(bytes(self.data))

    async def main():
        rfd, wfd = os.pipe()
        rpipe, wpipe = os.fdopen(rfd, "rb", 0), os.fdopen(wfd, "wb", 0)
        rtr, reader = await loop.connect_read_pipe(Reader, rpipe)
        wtr, _ = await loop.connect_write_pipe(asyncio.Protocol, wpipe)
        assert rtr.get_extra_info("pipe") is rpipe
        wtr.write(b"through ")
        wtr.write(b"a pipe")
        wtr.close()
        got = await reader.done
        await asyncio.sleep(0.01)
        return got, rpipe.closed, wpipe.closed

    got, rclosed, wclosed = loop.run_until_complete(main())
    assert got == b"through a pipe"
    assert rclosed and wclosed


def test_write_eof_on_a_write_pipe_closes_it(loop):
    """A write pipe has no half-close: write_eof() closes it once flushed, so the reader
    sees EOF and the protocol gets connection_lost(None), as asyncio's write pipe does (a
    subprocess reading its stdin to the end used to wait forever on PyLoop)."""

    class Writer(asyncio.Protocol):
        def __init__(self):
            self.lost = loop.create_future()

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        rfd, wfd = os.pipe()
        rpipe, wpipe = os.fdopen(rfd, "rb", 0), os.fdopen(wfd, "wb", 0)
        wtr, writer = await loop.connect_write_pipe(Writer, wpipe)
        assert wtr.can_write_eof()
        wtr.write(b"all of it")
        wtr.write_eof()
        assert wtr.is_closing()
        lost = await asyncio.wait_for(writer.lost, 5)
        got = await loop.run_in_executor(None, rpipe.read)
        rpipe.close()
        return lost, got, wpipe.closed

    lost, got, wclosed = loop.run_until_complete(main())
    assert lost is None
    assert got == b"all of it"
    assert wclosed


def test_subprocess_stdin_write_eof_ends_the_childs_input(loop):
    class Proto(asyncio.SubprocessProtocol):
        def __init__(self):
            self.out = bytearray()
            self.lost = loop.create_future()

        def pipe_data_received(self, fd, data):
            self.out += data

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        code = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"
        transport, proto = await loop.subprocess_exec(Proto, sys.executable, "-c", code)
        stdin = transport.get_pipe_transport(0)
        stdin.write(b"echoed")
        stdin.write_eof()
        await asyncio.wait_for(proto.lost, 10)
        transport.close()
        return bytes(proto.out), transport.get_returncode()

    assert loop.run_until_complete(main()) == (b"echoed", 0)


def test_pipe_transports_have_one_direction(loop):
    """asyncio's write pipe raises NotImplementedError for pause_reading() (its base
    ReadTransport's), and its read pipe has no write(): PyLoop's pipes refuse the same."""

    async def main():
        rfd, wfd = os.pipe()
        rpipe, wpipe = os.fdopen(rfd, "rb", 0), os.fdopen(wfd, "wb", 0)
        rtr, _ = await loop.connect_read_pipe(asyncio.Protocol, rpipe)
        wtr, _ = await loop.connect_write_pipe(asyncio.Protocol, wpipe)
        with pytest.raises(NotImplementedError):
            wtr.pause_reading()
        with pytest.raises((NotImplementedError, AttributeError)):
            rtr.write(b"wrong way")
        rtr.close()
        wtr.close()
        await asyncio.sleep(0.01)

    loop.run_until_complete(main())


def test_pipe_transport_rejects_regular_file(loop, tmp_path):
    f = open(tmp_path / "f", "wb")  # noqa: SIM115

    async def main():
        await loop.connect_write_pipe(asyncio.Protocol, f)

    try:
        with pytest.raises(
            ValueError, match="Pipe transport is only for pipes, sockets and character devices"
        ):
            loop.run_until_complete(main())
    finally:
        f.close()


# ---- subprocesses ----


def test_subprocess_exec_communicate(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; data = sys.stdin.read(); sys.stdout.write(data.upper()); "
            "sys.stderr.write('err'); sys.exit(7)",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(b"hello child")
        return out, err, proc.returncode

    assert loop.run_until_complete(main()) == (b"HELLO CHILD", b"err", 7)


def test_subprocess_shell_and_wait(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            "echo shell-out; exit 3", stdout=asyncio.subprocess.PIPE
        )
        out = await proc.stdout.read()
        code = await proc.wait()
        return out, code

    assert loop.run_until_complete(main()) == (b"shell-out\n", 3)


def test_subprocess_kill_and_timeout(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.05)
        proc.kill()
        return await proc.wait()

    assert loop.run_until_complete(main()) == -9


def test_subprocess_many_lines(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "for i in range(2000): print(i)",
            stdout=asyncio.subprocess.PIPE,
        )
        lines = []
        while line := await proc.stdout.readline():
            lines.append(int(line))
        await proc.wait()
        return lines

    assert loop.run_until_complete(main()) == list(range(2000))


def test_subprocess_argument_errors(loop):
    async def main():
        with pytest.raises(ValueError):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, "true", shell=True)
        with pytest.raises(ValueError):
            await loop.subprocess_shell(asyncio.SubprocessProtocol, ["true"])
        with pytest.raises(ValueError):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, "true", bufsize=1)
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("/nonexistent/program")

    loop.run_until_complete(main())


def test_write_pipe_notices_reader_closing(loop):
    class WriteProto(asyncio.Protocol):
        def __init__(self):
            self.lost = loop.create_future()

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        rfd, wfd = os.pipe()
        wpipe = os.fdopen(wfd, "wb", 0)
        tr, proto = await loop.connect_write_pipe(WriteProto, wpipe)
        tr.write(b"x")
        await asyncio.sleep(0.01)
        os.close(rfd)
        exc = await asyncio.wait_for(proto.lost, 2)
        return exc, wpipe.closed

    exc, closed = loop.run_until_complete(main())
    assert exc is None or isinstance(exc, BrokenPipeError)
    assert closed


def test_subprocess_cancelled_during_creation(loop):
    async def main():
        task = asyncio.ensure_future(
            loop.subprocess_exec(asyncio.SubprocessProtocol, "sleep", "30")
        )
        loop.call_soon(task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)

    loop.run_until_complete(main())
