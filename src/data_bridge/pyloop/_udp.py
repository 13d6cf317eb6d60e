"""UDP: create_datagram_endpoint and its transport."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import stat
import warnings
from asyncio import transports, trsock
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from data_bridge.pyloop._util import _set_result, start_transport

_unset = object()

logger = logging.getLogger("asyncio")


if TYPE_CHECKING:
    from data_bridge.pyloop._loop import Loop


class DatagramMixin:
    """loop.create_datagram_endpoint."""

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        local_addr: Any = None,
        remote_addr: Any = None,
        *,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        reuse_address: Any = _unset,
        reuse_port: bool | None = None,
        allow_broadcast: bool | None = None,
        sock: socket.socket | None = None,
    ) -> tuple[Any, asyncio.BaseProtocol]:
        if sock is not None:
            if sock.type != socket.SOCK_DGRAM:
                raise ValueError(f"A UDP Socket was expected, got {sock!r}")
            opts = {
                "local_addr": local_addr,
                "remote_addr": remote_addr,
                "family": family,
                "proto": proto,
                "flags": flags,
                "reuse_address": reuse_address,
                "reuse_port": reuse_port,
                "allow_broadcast": allow_broadcast,
            }
            given = ", ".join(f"{k}={v}" for k, v in opts.items() if v and v is not _unset)
            if given:
                raise ValueError(
                    f"socket modifier keyword arguments can not be used when sock is specified. "
                    f"({given})"
                )
            sock.setblocking(False)
            r_addr = None
        else:
            if reuse_address is not _unset:
                if reuse_address:
                    raise ValueError(
                        "Passing `reuse_address=True` is no longer supported, as the usage of "
                        "SO_REUSEPORT in UDP poses a significant security concern."
                    )
                warnings.warn(
                    "The *reuse_address* parameter has been deprecated as of 3.5.10 and is "
                    "scheduled for removal in 3.11.",
                    DeprecationWarning,
                    stacklevel=2,
                )
            pairs: list[tuple[tuple[int, int], tuple[Any, Any]]] = []
            if not (local_addr or remote_addr):
                if family == 0:
                    raise ValueError("unexpected address family")
                pairs.append(((family, proto), (None, None)))
            elif hasattr(socket, "AF_UNIX") and family == socket.AF_UNIX:
                for addr in (local_addr, remote_addr):
                    if addr is not None and not isinstance(addr, str):
                        raise TypeError("string is expected")
                if local_addr and local_addr[0] not in (0, "\x00"):
                    try:
                        if stat.S_ISSOCK(os.stat(local_addr).st_mode):
                            os.remove(local_addr)
                    except FileNotFoundError:
                        pass
                pairs.append(((family, proto), (local_addr, remote_addr)))
            else:
                infos: dict[tuple[int, int], list[Any]] = {}
                for idx, addr in ((0, local_addr), (1, remote_addr)):
                    if addr is None:
                        continue
                    if not (isinstance(addr, tuple) and len(addr) == 2):
                        raise TypeError("2-tuple is expected")
                    result = await self.getaddrinfo(
                        *addr, family=family, type=socket.SOCK_DGRAM, proto=proto, flags=flags
                    )
                    if not result:
                        raise OSError("getaddrinfo() returned empty list")
                    for fam, _, pro, _, address in result:
                        key = (fam, pro)
                        infos.setdefault(key, [None, None])
                        if infos[key][idx] is None:
                            infos[key][idx] = address
                for key, (la, ra) in infos.items():
                    if (local_addr and la is None) or (remote_addr and ra is None):
                        continue
                    pairs.append((key, (la, ra)))
                if not pairs:
                    raise ValueError("can not get address information")
            exceptions: list[OSError] = []
            for (fam, pro), (local_address, remote_address) in pairs:
                sock = None
                r_addr = None
                try:
                    sock = socket.socket(family=fam, type=socket.SOCK_DGRAM, proto=pro)
                    if reuse_port:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    if allow_broadcast:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                    sock.setblocking(False)
                    if local_addr:
                        sock.bind(local_address)
                    if remote_addr:
                        if not allow_broadcast:
                            await self.sock_connect(sock, remote_address)
                        r_addr = remote_address
                except OSError as exc:
                    if sock is not None:
                        sock.close()
                    exceptions.append(exc)
                except BaseException:
                    if sock is not None:
                        sock.close()
                    raise
                else:
                    break
            else:
                raise exceptions[0]
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = self._make_datagram_transport(sock, protocol, r_addr, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol

    def _make_datagram_transport(
        self,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        address: Any,
        waiter: asyncio.Future[None],
    ) -> Any:
        """The native transport (csrc/loop/udp.c) for IPv4/IPv6; AF_UNIX datagram sockets use
        _DatagramTransport, because libuv's uv_udp_send only takes IPv4/IPv6 destinations."""
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return _DatagramTransport(self, sock, protocol, address, waiter)  # type: ignore[arg-type]
        extra: dict[str, Any] = {"socket": trsock.TransportSocket(sock)}
        try:
            extra["sockname"] = sock.getsockname()
        except OSError:
            extra["sockname"] = None
        try:
            extra["peername"] = sock.getpeername()
        except OSError:
            extra["peername"] = None
        sock.setblocking(False)
        # libuv gets its own descriptor (closed by uv_close); the socket object stays usable,
        # as with asyncio, and the transport closes it before connection_lost().
        fd = os.dup(sock.fileno())
        try:
            transport = self._udp_open(fd, sock.family, address, sock, extra)  # type: ignore[attr-defined]
        except BaseException:
            os.close(fd)
            raise
        transport.set_protocol(protocol)
        # asyncio schedules connection_made, the first read and the waiter in this order.
        start_transport(self, transport, waiter)
        return transport


class _DatagramTransport(transports._FlowControlMixin, asyncio.DatagramTransport):
    """UDP transport on add_reader/add_writer (asyncio's selector semantics), used for
    AF_UNIX datagram sockets."""

    max_size = 256 * 1024

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        protocol: Any,
        address: Any,
        waiter: asyncio.Future[None] | None,
    ) -> None:
        super().__init__(None, loop)
        self._extra["socket"] = trsock.TransportSocket(sock)
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        try:
            self._extra["peername"] = sock.getpeername()
        except OSError:
            self._extra["peername"] = None
        self._sock: socket.socket | None = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._address = address
        self._buffer: collections.deque[tuple[bytes, Any]] = collections.deque()
        self._buffer_size = 0
        self._closing = False
        self._conn_lost = 0
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(self._add_reader)
        if waiter is not None:
            loop.call_soon(_set_result, waiter)

    def __repr__(self) -> str:
        return f"<_DatagramTransport fd={self._fd} closing={self._closing}>"

    def __del__(self, _warn: Any = warnings.warn) -> None:
        # asyncio's _SelectorTransport.__del__: the reader watcher keeps a receiving transport
        # alive, so this runs once the loop has closed (or reading never started).
        if self._sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._sock.close()
            self._sock = None

    def _add_reader(self) -> None:
        if not self._closing:
            self._loop.add_reader(self._fd, self._read_ready)

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def is_closing(self) -> bool:
        return self._closing

    def get_protocol(self) -> Any:
        return self._protocol

    def set_protocol(self, protocol: Any) -> None:
        self._protocol = protocol

    def _read_ready(self) -> None:
        if self._conn_lost or self._sock is None:
            return
        try:
            data, addr = self._sock.recvfrom(self.max_size)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._protocol.error_received(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on datagram transport")
        else:
            self._protocol.datagram_received(data, addr)

    def sendto(self, data: Any, addr: Any = None) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            addr = self._address
        if self._conn_lost and self._address:
            if self._conn_lost >= 5:
                logger.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return
        if not self._buffer and self._sock is not None:
            try:
                # Without an address the datagram goes to the connected peer, as in uvloop:
                # an unnamed socketpair() end has no peername to compare with, and
                # socket.sendto(data, None) is a TypeError (asyncio 3.11's shortcoming).
                if self._extra["peername"] or addr is None:
                    self._sock.send(data)
                else:
                    self._sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._loop.add_writer(self._fd, self._sendto_ready)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
        self._buffer.append((bytes(data), addr))
        self._buffer_size += len(data)
        self._maybe_pause_protocol()

    def _sendto_ready(self) -> None:
        while self._buffer and self._sock is not None:
            data, addr = self._buffer.popleft()
            self._buffer_size -= len(data)
            try:
                if self._extra["peername"] or addr is None:
                    self._sock.send(data)
                else:
                    self._sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                self._buffer.appendleft((data, addr))
                self._buffer_size += len(data)
                break
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
        self._maybe_resume_protocol()
        if not self._buffer:
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._call_connection_lost(None)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._buffer:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        self._force_close(None)

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if not isinstance(exc, OSError):
            self._loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._conn_lost:
            return
        if self._buffer:
            self._buffer.clear()
            self._buffer_size = 0
            self._loop.remove_writer(self._fd)
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._fd)
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self._protocol = None
