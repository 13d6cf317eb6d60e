"""Raw socket operations (sock_*) on top of add_reader/add_writer."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Any

try:
    import ssl
except ImportError:  # pragma: no cover - Python built without OpenSSL
    ssl = None  # type: ignore[assignment]


class SocketsMixin:
    """loop.sock_* for non-blocking sockets."""

    def _sock_check(self, sock: socket.socket) -> None:
        if ssl is not None and isinstance(sock, ssl.SSLSocket):
            raise TypeError("Socket cannot be of type SSLSocket")
        if self.get_debug() and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    async def _sock_wait(self, sock: socket.socket, writer: bool, op: Callable[[], Any]) -> Any:
        """Waits until op() stops raising BlockingIOError; returns its result."""
        fut = self.create_future()
        fd = sock.fileno()

        def on_ready() -> None:
            if fut.done():
                return
            try:
                result = op()
            except (BlockingIOError, InterruptedError):
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        if writer:
            handle = self.add_writer(fd, on_ready)
        else:
            handle = self.add_reader(fd, on_ready)
        try:
            return await fut
        finally:
            # A later operation on the same fd replaces (and cancels) our handle; removing
            # the watcher then would remove *its* callback (asyncio's _sock_read_done rule).
            if not handle.cancelled():
                if writer:
                    self.remove_writer(fd)
                else:
                    self.remove_reader(fd)

    async def sock_recv(self, sock: socket.socket, n: int) -> bytes:
        self._sock_check(sock)
        try:
            return sock.recv(n)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._sock_wait(sock, False, lambda: sock.recv(n))

    async def sock_recv_into(self, sock: socket.socket, buf: Any) -> int:
        self._sock_check(sock)
        try:
            return sock.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._sock_wait(sock, False, lambda: sock.recv_into(buf))

    async def sock_recvfrom(self, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]:
        self._sock_check(sock)
        try:
            return sock.recvfrom(bufsize)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._sock_wait(sock, False, lambda: sock.recvfrom(bufsize))

    async def sock_recvfrom_into(
        self, sock: socket.socket, buf: Any, nbytes: int = 0
    ) -> tuple[int, Any]:
        self._sock_check(sock)
        if not nbytes:
            nbytes = len(buf)
        try:
            return sock.recvfrom_into(buf, nbytes)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._sock_wait(sock, False, lambda: sock.recvfrom_into(buf, nbytes))

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None:
        self._sock_check(sock)
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        view = memoryview(data).cast("B")
        if n == len(view):
            return
        pos = n

        def send_more() -> bool | None:
            nonlocal pos
            pos += sock.send(view[pos:])
            if pos < len(view):
                raise BlockingIOError
            return None

        await self._sock_wait(sock, True, send_more)

    async def sock_sendto(self, sock: socket.socket, data: Any, address: Any) -> int:
        self._sock_check(sock)
        try:
            return sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            pass
        return await self._sock_wait(sock, True, lambda: sock.sendto(data, address))

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        self._sock_check(sock)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            infos = await self.getaddrinfo(
                address[0], address[1], family=sock.family, type=sock.type, proto=sock.proto
            )
            address = infos[0][4]
        try:
            sock.connect(address)
            return
        except (BlockingIOError, InterruptedError):
            pass

        def check() -> None:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err in (errno.EINPROGRESS, errno.EALREADY, errno.EINTR):
                raise BlockingIOError
            if err != 0:
                raise OSError(err, f"Connect call failed {address}")

        await self._sock_wait(sock, True, check)

    async def sock_accept(self, sock: socket.socket) -> tuple[socket.socket, Any]:
        self._sock_check(sock)

        def accept() -> tuple[socket.socket, Any]:
            conn, addr = sock.accept()
            conn.setblocking(False)
            return conn, addr

        try:
            return accept()
        except (BlockingIOError, InterruptedError):
            pass
        return await self._sock_wait(sock, False, accept)
