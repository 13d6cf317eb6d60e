"""Pipes and subprocesses."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from data_bridge.pyloop._util import start_transport

logger = logging.getLogger("asyncio")

if TYPE_CHECKING:
    from data_bridge.pyloop._loop import Loop


class PipesMixin:
    """connect_read_pipe/connect_write_pipe and subprocess_exec/shell."""

    async def _connect_pipe(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], pipe: Any, write: bool
    ) -> tuple[Any, asyncio.BaseProtocol]:
        mode = os.fstat(pipe.fileno()).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
            # asyncio's two messages, one per direction.
            if write:
                raise ValueError("Pipe transport is only for pipes, sockets and character devices")
            raise ValueError("Pipe transport is for pipes/sockets only.")
        protocol = protocol_factory()
        waiter = self.create_future()
        # The transport owns a duplicate of the fd; the pipe object is closed with it.
        fd = os.dup(pipe.fileno())
        try:
            transport = self._stream_open(fd, True, socket.AF_UNIX)
        except BaseException:
            os.close(fd)
            raise
        transport._set_extra("pipe", pipe)
        owned: Any = pipe
        if write:
            # asyncio watches FIFOs and sockets for the reader going away, not ttys. A socket
            # is read by the transport itself; libuv does not read a write-only FIFO, so a
            # duplicate of its fd is polled instead: epoll reports an error on it once the
            # read end is closed.
            transport._set_write_only(stat.S_ISSOCK(mode))
            if stat.S_ISFIFO(mode):
                owned = _FifoCloseWatch(self, transport, pipe)
        else:
            transport._set_read_only()
        transport._set_owned(owned)
        transport.set_protocol(protocol)
        start_transport(self, transport, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    async def connect_read_pipe(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], pipe: Any
    ) -> tuple[Any, asyncio.BaseProtocol]:
        return await self._connect_pipe(protocol_factory, pipe, False)

    async def connect_write_pipe(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], pipe: Any
    ) -> tuple[Any, asyncio.BaseProtocol]:
        return await self._connect_pipe(protocol_factory, pipe, True)

    def _watch_child(self, pid: int, transport: Any) -> None:
        """Reports the child's exit to transport._process_exited (pidfd, else a thread)."""

        def exited(status: int | None) -> None:
            if status is None:
                proc = getattr(transport, "_proc", None)
                returncode = proc.returncode if proc is not None else None
                if returncode is None:
                    logger.warning("Unknown child process pid %d, will report returncode 255", pid)
                    returncode = 255
            else:
                returncode = os.waitstatus_to_exitcode(status)
            if self.get_debug():
                logger.debug("process %s exited with returncode %s", pid, returncode)
            transport._process_exited(returncode)

        def reap() -> int | None:
            try:
                wpid, status = os.waitpid(pid, 0)
            except ChildProcessError:
                return None
            return status

        pidfd_open = getattr(os, "pidfd_open", None)
        pidfd = -1
        if pidfd_open is not None:
            try:
                pidfd = pidfd_open(pid)
            except OSError:
                pidfd = -1
        if pidfd >= 0:

            def on_pidfd() -> None:
                self.remove_reader(pidfd)
                os.close(pidfd)
                exited(reap())

            self.add_reader(pidfd, on_pidfd)
            return

        def wait_thread() -> None:
            status = reap()
            if not self.is_closed():
                self.call_soon_threadsafe(exited, status)

        threading.Thread(target=wait_thread, name=f"waitpid-{pid}", daemon=True).start()

    async def _make_subprocess_transport(
        self,
        protocol: asyncio.BaseProtocol,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        extra: Any = None,
        **kwargs: Any,
    ) -> Any:
        from asyncio import unix_events

        waiter = self.create_future()
        transp = unix_events._UnixSubprocessTransport(
            self,
            protocol,
            args,
            shell,
            stdin,
            stdout,
            stderr,
            bufsize,
            waiter=waiter,
            extra=extra,
            **kwargs,
        )
        self._watch_child(transp.get_pid(), transp)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transp.close()
            await transp._wait()
            raise
        return transp

    async def subprocess_shell(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        cmd: str | bytes,
        *,
        stdin: Any = subprocess.PIPE,
        stdout: Any = subprocess.PIPE,
        stderr: Any = subprocess.PIPE,
        universal_newlines: bool = False,
        shell: bool = True,
        bufsize: int = 0,
        encoding: str | None = None,
        errors: str | None = None,
        text: bool | None = None,
        **kwargs: Any,
    ) -> tuple[Any, asyncio.BaseProtocol]:
        if not isinstance(cmd, (bytes, str)):
            raise ValueError("cmd must be a string")
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if not shell:
            raise ValueError("shell must be True")
        if bufsize != 0:
            raise ValueError("bufsize must be 0")
        if text:
            raise ValueError("text must be False")
        if encoding is not None:
            raise ValueError("encoding must be None")
        if errors is not None:
            raise ValueError("errors must be None")
        protocol = protocol_factory()
        transport = await self._make_subprocess_transport(
            protocol, cmd, True, stdin, stdout, stderr, bufsize, **kwargs
        )
        return transport, protocol

    async def subprocess_exec(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        program: Any,
        *args: Any,
        stdin: Any = subprocess.PIPE,
        stdout: Any = subprocess.PIPE,
        stderr: Any = subprocess.PIPE,
        universal_newlines: bool = False,
        shell: bool = False,
        bufsize: int = 0,
        encoding: str | None = None,
        errors: str | None = None,
        text: bool | None = None,
        **kwargs: Any,
    ) -> tuple[Any, asyncio.BaseProtocol]:
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if shell:
            raise ValueError("shell must be False")
        if bufsize != 0:
            raise ValueError("bufsize must be 0")
        if text:
            raise ValueError("text must be False")
        if encoding is not None:
            raise ValueError("encoding must be None")
        if errors is not None:
            raise ValueError("errors must be None")
        popen_args = (program, *args)
        protocol = protocol_factory()
        transport = await self._make_subprocess_transport(
            protocol, popen_args, False, stdin, stdout, stderr, bufsize, **kwargs
        )
        return transport, protocol


class _FifoCloseWatch:
    """Watches a duplicate of a write FIFO's fd and closes the transport when the reader
    goes away; closed (with the pipe object) together with the transport."""

    def __init__(self, loop: Loop, transport: Any, pipe: Any) -> None:
        self._loop = loop
        self._transport = transport
        self._pipe = pipe
        self._fd: int | None = os.dup(pipe.fileno())
        loop.add_reader(self._fd, self._peer_closed)

    def _peer_closed(self) -> None:
        transport = self._transport
        self._stop()
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size():
            transport._force_close(BrokenPipeError())
        else:
            transport.close()

    def _stop(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            if not self._loop.is_closed():
                self._loop.remove_reader(fd)
            os.close(fd)

    def close(self) -> None:
        self._stop()
        self._transport = None
        self._pipe.close()
