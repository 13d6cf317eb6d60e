"""TCP and Unix stream connections and servers on native transports, and TLS upgrade."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import errno
import functools
import itertools
import os
import socket
import stat
import sys
import weakref
from asyncio import trsock
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from data_bridge import _core
from data_bridge.pyloop._sslproto import SSLProtocol
from data_bridge.pyloop._util import _retrieve_exception, start_transport

if TYPE_CHECKING:
    from data_bridge.pyloop._loop import Loop

try:
    import ssl
except ImportError:  # pragma: no cover - Python built without OpenSSL
    ssl = None  # type: ignore[assignment]


class StreamsMixin:
    """create_connection/create_server and their Unix and TLS variants."""

    def _make_transport(self, sock: socket.socket, protocol: asyncio.BaseProtocol) -> Any:
        is_pipe = sock.family == socket.AF_UNIX
        extra: dict[str, Any] = {}
        try:
            extra["sockname"] = sock.getsockname()
        except OSError:
            pass
        try:
            extra["peername"] = sock.getpeername()
        except OSError:
            extra["peername"] = None
        family = sock.family
        sock.setblocking(False)
        # libuv gets its own descriptor; the socket object stays usable (callers may still
        # setsockopt() on it, as with asyncio) and is closed together with the transport.
        fd = os.dup(sock.fileno())
        try:
            transport = self._stream_open(fd, is_pipe, family)
        except BaseException:
            os.close(fd)
            raise
        transport._set_owned(sock)
        # add_reader()/add_writer() on this socket now raise, as with asyncio's loop.
        self._register_transport_fd(sock.fileno(), transport)
        extra["socket"] = trsock.TransportSocket(sock)
        for k, v in extra.items():
            transport._set_extra(k, v)
        transport.set_protocol(protocol)
        return transport

    async def _connect_transport(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        ssl: Any,
        server_hostname: str | None,
        server_side: bool = False,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[Any, asyncio.BaseProtocol]:
        protocol = protocol_factory()
        waiter = self.create_future()
        if ssl:
            sslcontext = None if isinstance(ssl, bool) else ssl
            if sslcontext is None:
                import ssl as ssl_mod

                sslcontext = ssl_mod.create_default_context()
            kwargs: dict[str, Any] = {"ssl_handshake_timeout": ssl_handshake_timeout}
            if sys.version_info >= (3, 11):
                kwargs["ssl_shutdown_timeout"] = ssl_shutdown_timeout
            ssl_protocol = SSLProtocol(
                self,
                protocol,
                sslcontext,
                waiter,
                server_side,
                server_hostname,
                **kwargs,
            )
            transport = self._make_transport(sock, ssl_protocol)
            start_transport(self, transport)
            app_transport = ssl_protocol._app_transport
        else:
            transport = self._make_transport(sock, protocol)
            start_transport(self, transport, waiter)
            app_transport = transport
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return app_transport, protocol

    async def _connect_one(
        self, exceptions: list[OSError], info: Any, local_infos: list[Any] | None
    ) -> socket.socket:
        """One connection attempt of create_connection; failures go to `exceptions`."""
        fam, type_, prot, _cname, address = info
        sock = socket.socket(fam, type_, prot)
        try:
            sock.setblocking(False)
            if local_infos is not None:
                bind_errors: list[OSError] = []
                for lfam, _, _, _, laddr in local_infos:
                    if lfam != fam:
                        continue
                    try:
                        sock.bind(laddr)
                        break
                    except OSError as exc:
                        msg = (
                            f"error while attempting to bind on address {laddr!r}: "
                            f"{exc.strerror.lower()}"
                        )
                        bind_errors.append(OSError(exc.errno, msg))
                else:
                    if bind_errors:
                        raise bind_errors.pop()
                    raise OSError(f"no matching local address with family={fam} found")
            await self.sock_connect(sock, address)
            return sock
        except OSError as exc:
            exceptions.append(exc)
            sock.close()
            raise
        except BaseException:
            sock.close()
            raise

    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | None = None,
        *,
        ssl: Any = None,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        sock: socket.socket | None = None,
        local_addr: Any = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        happy_eyeballs_delay: float | None = None,
        interleave: int | None = None,
        all_errors: bool = False,
    ) -> tuple[Any, asyncio.BaseProtocol]:
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if server_hostname is None and ssl:
            if not host:
                raise ValueError("You must set server_hostname when using ssl without a host")
            server_hostname = host
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            infos = await self.getaddrinfo(
                host, port, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
            )
            if not infos:
                raise OSError("getaddrinfo() returned empty list")
            local_infos = None
            if local_addr is not None:
                local_infos = await self.getaddrinfo(
                    *local_addr, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
                )
                if not local_infos:
                    raise OSError("getaddrinfo() returned empty list")
            if happy_eyeballs_delay is not None and interleave is None:
                interleave = 1  # asyncio's default for Happy Eyeballs
            if interleave:
                infos = _interleave_addrinfos(infos, interleave)
            exceptions: list[OSError] = []
            if happy_eyeballs_delay is None:
                for info in infos:
                    try:
                        sock = await self._connect_one(exceptions, info, local_infos)
                    except OSError:
                        continue
                    break
            else:
                # RFC 8305: start the next attempt after `delay` unless one succeeded.
                from asyncio import staggered

                sock, _, _ = await staggered.staggered_race(
                    [
                        functools.partial(self._connect_one, exceptions, info, local_infos)
                        for info in infos
                    ],
                    happy_eyeballs_delay,
                    loop=self,
                )
            if sock is None:
                if all_errors:
                    raise ExceptionGroup("create_connection failed", exceptions)  # noqa: F821
                if len(exceptions) == 1:
                    raise exceptions[0]
                model = str(exceptions[0])
                if all(str(exc) == model for exc in exceptions):
                    raise exceptions[0]
                raise OSError(
                    "Multiple exceptions: {}".format(", ".join(str(exc) for exc in exceptions))
                )
        else:
            if sock is None:
                raise ValueError("host and port was not specified and no sock specified")
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        return await self._connect_transport(
            sock,
            protocol_factory,
            ssl,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )

    async def connect_accepted_socket(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        sock: socket.socket,
        *,
        ssl: Any = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[Any, asyncio.BaseProtocol]:
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        return await self._connect_transport(
            sock,
            protocol_factory,
            ssl,
            None,
            server_side=True,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: Any = None,
        port: int | None = None,
        *,
        family: int = socket.AF_UNSPEC,
        flags: int = socket.AI_PASSIVE,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        reuse_address: bool | None = None,
        reuse_port: bool | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
    ) -> Server:
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        if ssl_handshake_timeout is not None and ssl is None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and ssl is None:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            if reuse_address is None:
                reuse_address = os.name == "posix" and sys.platform != "cygwin"
            if host == "":
                hosts: list[Any] = [None]
            elif isinstance(host, str) or not hasattr(host, "__iter__"):
                hosts = [host]
            else:
                hosts = list(host)
            infos_lists = await asyncio.gather(
                *[
                    self.getaddrinfo(h, port, family=family, type=socket.SOCK_STREAM, flags=flags)
                    for h in hosts
                ]
            )
            infos = {info for lst in infos_lists for info in lst}
            sockets: list[socket.socket] = []
            completed = False
            try:
                for af, socktype, proto, _canonname, sa in infos:
                    try:
                        s = socket.socket(af, socktype, proto)
                    except OSError:
                        continue
                    sockets.append(s)
                    if reuse_address:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
                    if reuse_port:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    if af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
                    try:
                        s.bind(sa)
                    except OSError as err:
                        raise OSError(
                            err.errno,
                            f"error while attempting to bind on address {sa!r}: "
                            f"{err.strerror.lower()}",
                        ) from None
                completed = True
            finally:
                if not completed:
                    for s in sockets:
                        s.close()
        else:
            if sock is None:
                raise ValueError("Neither host/port nor sock were specified")
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A Stream Socket was expected, got {sock!r}")
            sockets = [sock]
        for s in sockets:
            s.setblocking(False)
        server = Server(
            self,
            sockets,
            protocol_factory,
            ssl,
            backlog,
            ssl_handshake_timeout,
            ssl_shutdown_timeout,
        )
        if start_serving:
            server._start_serving()
            await asyncio.sleep(0)
        return server

    async def create_unix_connection(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        path: str | None = None,
        *,
        ssl: Any = None,
        sock: socket.socket | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[Any, asyncio.BaseProtocol]:
        if ssl:
            if server_hostname is None:
                raise ValueError("you have to pass server_hostname when using ssl")
        else:
            # Checked before connecting, as asyncio's unix loop does.
            if server_hostname is not None:
                raise ValueError("server_hostname is only meaningful with ssl")
            if ssl_handshake_timeout is not None:
                raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
            if ssl_shutdown_timeout is not None:
                raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("no path and sock were specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        return await self._connect_transport(
            sock,
            protocol_factory,
            ssl,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )

    async def create_unix_server(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        path: str | None = None,
        *,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
    ) -> Server:
        if isinstance(ssl, bool):
            raise TypeError("ssl argument must be an SSLContext or None")
        if ssl_handshake_timeout is not None and not ssl:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None and not ssl:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        if path is not None:
            if sock is not None:
                raise ValueError("path and sock can not be specified at the same time")
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if path[0] not in (0, "\x00"):
                try:
                    if stat.S_ISSOCK(os.stat(path).st_mode):
                        os.remove(path)
                except FileNotFoundError:
                    pass
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(errno.EADDRINUSE, f"Address {path!r} is already in use") from None
                raise
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError("path was not specified, and no sock specified")
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        sock.setblocking(False)
        server = Server(
            self,
            [sock],
            protocol_factory,
            ssl,
            backlog,
            ssl_handshake_timeout,
            ssl_shutdown_timeout,
        )
        if start_serving:
            server._start_serving()
            await asyncio.sleep(0)
        return server

    # ---- TLS upgrade ----

    async def start_tls(
        self,
        transport: Any,
        protocol: asyncio.BaseProtocol,
        sslcontext: Any,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> Any:
        if ssl is None:
            raise RuntimeError("Python ssl module is not available")
        if not isinstance(sslcontext, ssl.SSLContext):
            raise TypeError(
                f"sslcontext is expected to be an instance of ssl.SSLContext, got {sslcontext!r}"
            )
        if not isinstance(transport, _core.StreamTransport) and not getattr(
            transport, "_start_tls_compatible", False
        ):
            raise TypeError(f"transport {transport!r} is not supported by start_tls()")
        waiter = self.create_future()
        kwargs: dict[str, Any] = {"ssl_handshake_timeout": ssl_handshake_timeout}
        if sys.version_info >= (3, 11):
            kwargs["ssl_shutdown_timeout"] = ssl_shutdown_timeout
        ssl_protocol = SSLProtocol(
            self,
            protocol,
            sslcontext,
            waiter,
            server_side,
            server_hostname,
            call_connection_made=False,
            **kwargs,
        )
        # Hold reading so that no application data reaches the old protocol meanwhile.
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        conmade_cb = self.call_soon(ssl_protocol.connection_made, transport)
        resume_cb = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            conmade_cb.cancel()
            resume_cb.cancel()
            raise
        return ssl_protocol._app_transport


class Server(asyncio.AbstractServer):
    """asyncio.Server's behaviour for native listeners."""

    def __init__(
        self,
        loop: Loop,
        sockets: list[socket.socket],
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        ssl_context: Any,
        backlog: int,
        ssl_handshake_timeout: float | None,
        ssl_shutdown_timeout: float | None,
    ) -> None:
        self._loop = loop
        self._sockets: list[socket.socket] | None = sockets
        self._listeners: list[Any] = []
        self._active_count = 0
        self._waiters: list[asyncio.Future[None]] | None = []
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._serving = False
        self._serving_forever_fut: asyncio.Future[None] | None = None
        # Accepted transports, for close_clients()/abort_clients() (3.13's API).
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} sockets={self.sockets!r}>"

    def _accepted(self, transport: Any) -> None:
        try:
            protocol = self._protocol_factory()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport.abort()
            # asyncio reports this only in debug mode.
            if self._loop.get_debug():
                self._loop.call_exception_handler(
                    {
                        "message": "Error on transport creation for incoming connection",
                        "exception": exc,
                    }
                )
            return
        self._active_count += 1
        self._clients.add(transport)
        transport._server = self
        if self._ssl_context is not None:
            kwargs: dict[str, Any] = {"ssl_handshake_timeout": self._ssl_handshake_timeout}
            if sys.version_info >= (3, 11):
                kwargs["ssl_shutdown_timeout"] = self._ssl_shutdown_timeout
            waiter = self._loop.create_future()
            ssl_protocol = SSLProtocol(
                self._loop, protocol, self._ssl_context, waiter, True, None, **kwargs
            )
            transport.set_protocol(ssl_protocol)
            waiter.add_done_callback(_retrieve_exception)
        else:
            transport.set_protocol(protocol)
        start_transport(self._loop, transport)

    def _detach(self) -> None:
        self._active_count -= 1
        if self._active_count == 0 and self._sockets is None:
            self._wakeup()

    def _wakeup(self) -> None:
        waiters = self._waiters
        self._waiters = None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def _start_serving(self) -> None:
        if self._serving:
            return
        self._serving = True
        assert self._sockets is not None
        # asyncio accepts in the context current when serving starts (the reader handle
        # its _start_serving registers copies it): the protocol factory runs there, and
        # each accepted transport's context is a copy of it.
        accepted = functools.partial(contextvars.copy_context().run, self._accepted)
        for sock in self._sockets:
            sock.listen(self._backlog)
            fd = os.dup(sock.fileno())
            try:
                listener = self._loop._stream_listen(
                    fd, sock.family == socket.AF_UNIX, sock.family, self._backlog, accepted
                )
            except BaseException:
                os.close(fd)
                raise
            self._listeners.append(listener)

    def get_loop(self) -> Loop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[Any, ...]:
        if self._sockets is None:
            return ()
        return tuple(trsock.TransportSocket(s) for s in self._sockets)

    def close(self) -> None:
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        for listener in self._listeners:
            listener.close()
        self._listeners = []
        for sock in sockets:
            if sock.family == socket.AF_UNIX and sys.version_info >= (3, 13):
                # 3.13's create_unix_server(cleanup_socket=True) default; older asyncio
                # leaves the path behind.
                _unlink_unix_socket(sock)
            sock.close()
        self._serving = False
        if self._serving_forever_fut is not None and not self._serving_forever_fut.done():
            self._serving_forever_fut.cancel()
            self._serving_forever_fut = None
        if self._active_count == 0:
            self._wakeup()

    async def start_serving(self) -> None:
        self._start_serving()
        await asyncio.sleep(0)

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        # 3.12.1+: wait until the server is closed and all its connections are gone. Up to
        # 3.11, asyncio (and uvloop) return at once once close() has been called, even with
        # connections still open; code written for those versions relies on it.
        if self._waiters is None:
            return
        if sys.version_info < (3, 12) and self._sockets is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def close_clients(self) -> None:
        """Close every connection accepted by this server (asyncio 3.13's API)."""
        for transport in list(self._clients):
            transport.close()

    def abort_clients(self) -> None:
        """Abort every connection accepted by this server (asyncio 3.13's API)."""
        for transport in list(self._clients):
            transport.abort()


def _interleave_addrinfos(infos: list[Any], first_family_count: int = 1) -> list[Any]:
    """RFC 8305 address ordering: alternate families, starting with `first_family_count`
    addresses of the first family."""
    by_family: dict[int, list[Any]] = collections.OrderedDict()
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    lists = list(by_family.values())
    reordered: list[Any] = []
    if first_family_count > 1:
        reordered.extend(lists[0][: first_family_count - 1])
        del lists[0][: first_family_count - 1]
    for group in itertools.zip_longest(*lists):
        reordered.extend(x for x in group if x is not None)
    return reordered


def _unlink_unix_socket(sock: socket.socket) -> None:
    try:
        path = sock.getsockname()
    except OSError:
        return
    if isinstance(path, str) and path and path[0] != "\x00":
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)
        except OSError:
            pass
