"""sock_sendfile and sendfile: the native zero-copy path and the read/write fallback."""

from __future__ import annotations

import asyncio
import errno
import io
import os
import socket
import stat
from typing import TYPE_CHECKING, Any

from data_bridge import _core

if TYPE_CHECKING:
    from data_bridge.pyloop._loop import Loop


class SendfileMixin:
    """loop.sock_sendfile and loop.sendfile."""

    async def sock_sendfile(
        self,
        sock: socket.socket,
        file: Any,
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool = True,
    ) -> int:
        if self.get_debug() and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        _check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except asyncio.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def _sock_sendfile_native(
        self, sock: socket.socket, file: Any, offset: int, count: int | None
    ) -> int:
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation) as err:
            raise asyncio.SendfileNotAvailableError("not a regular file") from err
        try:
            fsize = os.fstat(fileno).st_size
        except OSError as err:
            raise asyncio.SendfileNotAvailableError("not a regular file") from err
        blocksize = count if count else fsize
        if not blocksize:
            return 0
        total = 0
        try:
            while total < blocksize:
                chunk = min(blocksize - total, 0x7FFFF000)
                try:
                    sent = os.sendfile(sock.fileno(), fileno, offset + total, chunk)
                except (BlockingIOError, InterruptedError):
                    await self._sock_wait(sock, True, lambda: None)
                    continue
                except OSError as exc:
                    if total == 0 and exc.errno in (errno.ENOTSOCK, errno.EINVAL, errno.ENOSYS):
                        raise asyncio.SendfileNotAvailableError("os.sendfile() failed") from exc
                    raise
                if sent == 0:
                    break  # end of file
                total += sent
            return total
        finally:
            if total > 0:
                file.seek(offset + total)

    async def _sock_sendfile_fallback(
        self, sock: socket.socket, file: Any, offset: int, count: int | None
    ) -> int:
        if offset:
            file.seek(offset)
        blocksize = min(count, _SENDFILE_CHUNK) if count else _SENDFILE_CHUNK
        buf = bytearray(blocksize)
        total = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total, blocksize)
                    if blocksize <= 0:
                        break
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    break
                await self.sock_sendall(sock, view[:read])
                total += read
            return total
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset + total)

    async def sendfile(
        self,
        transport: Any,
        file: Any,
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool = True,
    ) -> int:
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        native = isinstance(transport, _core.StreamTransport)
        if not native and not getattr(transport, "_sendfile_compatible", None):
            raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
        if "b" not in getattr(file, "mode", "b"):
            raise ValueError("file should be opened in binary mode")
        _check_range(offset, count)
        if native:
            try:
                return await self._sendfile_native(transport, file, offset, count)
            except asyncio.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(
                f"fallback is disabled and native sendfile is not supported for "
                f"transport {transport!r}"
            )
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(
        self, transport: Any, file: Any, offset: int, count: int | None
    ) -> int:
        # os.sendfile() must not overtake data still queued in libuv: wait until the write
        # buffer is empty, refusing transport.write() meanwhile (asyncio's empty waiter), then
        # send from the file straight to a duplicate of the socket's fd. Reading is paused and
        # flow-control calls are held back by _SendfileProtocol, as asyncio does.
        try:
            fileno = file.fileno()
            if not stat.S_ISREG(os.fstat(fileno).st_mode):
                raise asyncio.SendfileNotAvailableError("not a regular file")
        except (AttributeError, io.UnsupportedOperation, OSError) as err:
            raise asyncio.SendfileNotAvailableError("not a regular file") from err
        proto = _SendfileProtocol(self, transport)
        try:
            await transport._make_empty_waiter()
            sock = socket.socket(fileno=os.dup(transport._fileno()))
            try:
                sock.setblocking(False)
                return await self._sock_sendfile_native(sock, file, offset, count)
            finally:
                sock.close()
        finally:
            transport._reset_empty_waiter()
            await proto.restore()

    async def _sendfile_fallback(
        self, transport: Any, file: Any, offset: int, count: int | None
    ) -> int:
        if offset:
            file.seek(offset)
        blocksize = min(count, 16384) if count else 16384
        buf = bytearray(blocksize)
        total = 0
        proto = _SendfileProtocol(self, transport)
        try:
            while True:
                if count:
                    blocksize = min(count - total, blocksize)
                    if blocksize <= 0:
                        return total
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    return total
                await proto.drain()
                transport.write(view[:read])
                total += read
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset + total)
            await proto.restore()


_SENDFILE_CHUNK = 256 * 1024


def _check_sendfile_params(sock: socket.socket, file: Any, offset: int, count: int | None) -> None:
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if sock.type != socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    _check_range(offset, count)


def _check_range(offset: int, count: int | None) -> None:
    """asyncio's checks of sendfile's offset and count (both sendfile flavours)."""
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")


class _SendfileProtocol(asyncio.Protocol):
    """Stands in for the transport's protocol during loop.sendfile(): receives the flow
    control calls, refuses incoming data, and hands everything back in restore()."""

    def __init__(self, loop: Loop, transport: Any) -> None:
        self._loop = loop
        self._transport = transport
        self._proto = transport.get_protocol()
        self._should_resume_reading = transport.is_reading()
        self._should_resume_writing = bool(getattr(transport, "_protocol_paused", False))
        transport.pause_reading()
        transport.set_protocol(self)
        self._write_ready: asyncio.Future[None] | None = None
        if self._should_resume_writing:
            self._write_ready = loop.create_future()

    async def drain(self) -> None:
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        fut = self._write_ready
        if fut is not None:
            await fut

    def connection_made(self, transport: Any) -> None:
        raise RuntimeError("Invalid state: connection should have been established already.")

    def connection_lost(self, exc: BaseException | None) -> None:
        fut = self._write_ready
        if fut is not None and not fut.done():
            if exc is None:
                fut.set_exception(ConnectionError("Connection is closed by peer"))
            else:
                fut.set_exception(exc)
        self._proto.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._write_ready is None:
            self._write_ready = self._loop.create_future()

    def resume_writing(self) -> None:
        fut = self._write_ready
        self._write_ready = None
        if fut is not None and not fut.done():
            fut.set_result(None)

    def data_received(self, data: bytes) -> None:
        raise RuntimeError("Invalid state: reading should be paused")

    def eof_received(self) -> bool:
        raise RuntimeError("Invalid state: reading should be paused")

    async def restore(self) -> None:
        self._transport.set_protocol(self._proto)
        if self._should_resume_reading:
            self._transport.resume_reading()
        if self._write_ready is not None:
            self._write_ready.cancel()
            self._write_ready = None
        if self._should_resume_writing:
            self._proto.resume_writing()
