"""PyLoop: an asyncio event loop implemented in C on libuv.

The per-callback machinery (scheduling, timers, the ready queue, polling, the GIL protocol)
lives in the native base class ``data_bridge._core.Loop``. This module adds the
policy-level parts of ``asyncio.AbstractEventLoop`` that run once per loop or per task:
``run_forever``/``run_until_complete`` setup, tasks and futures, executors, async
generator finalization and exception handling.

Use it like uvloop::

    from data_bridge import pyloop
    pyloop.run(main())                      # like asyncio.run
    asyncio.run(main(), loop_factory=pyloop.new_event_loop)   # 3.12+
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import errno
import functools
import io
import itertools
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import traceback
import warnings
import weakref
from asyncio import coroutines, events, futures, sslproto, tasks, transports, trsock
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from data_bridge import _core

try:
    import ssl
except ImportError:  # pragma: no cover - Python built without OpenSSL
    ssl = None  # type: ignore[assignment]

__all__ = ["EventLoopPolicy", "Loop", "install", "new_event_loop", "run"]

_T = TypeVar("_T")
_unset = object()

logger = logging.getLogger("asyncio")


def _set_result(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)


def _run_until_complete_cb(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            # The loop stops by itself: the exception propagates out of run_forever().
            return
    futures._get_loop(fut).stop()


class Loop(_core.Loop, asyncio.AbstractEventLoop):  # type: ignore[misc]
    """The PyLoop event loop (drop-in for asyncio's default loop and uvloop)."""

    def __init__(self) -> None:
        self._exception_handler: Callable[..., Any] | None = None
        self._task_factory: Callable[..., Any] | None = None
        self._default_executor: concurrent.futures.Executor | None = None
        self._executor_shutdown_called = False
        self._asyncgens: weakref.WeakSet[Any] = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._thread_id: int | None = None
        self._wakeup_socks: tuple[socket.socket, socket.socket] | None = None
        self._signals: set[int] = set()
        _all_loops.add(self)
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth: int | None = None
        self.set_debug(coroutines._is_debug_mode())

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if not self.is_closed():
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    # ---- checks ----

    def _check_closed(self) -> None:
        if self.is_closed():
            raise RuntimeError("Event loop is closed")

    def _check_running(self) -> None:
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if events._get_running_loop() is not None:
            raise RuntimeError("Cannot run the event loop while another loop is running")

    def _check_thread(self) -> None:
        if self._thread_id is None:
            return
        if threading.get_ident() != self._thread_id:
            raise RuntimeError(
                "Non-thread-safe operation invoked on an event loop other than the current one"
            )

    # ---- running ----

    def _set_coroutine_origin_tracking(self, enabled: bool) -> None:
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(10)
        else:
            sys.set_coroutine_origin_tracking_depth(
                self._coroutine_origin_tracking_saved_depth or 0
            )
        self._coroutine_origin_tracking_enabled = enabled

    def _install_signal_wakeup(self) -> int | None:
        # libuv retries epoll_wait on EINTR, so a signal arriving while the loop waits would
        # not run Python's handlers until some other event came. The wakeup fd makes the
        # signal itself an event; the handlers then run from PyErr_CheckSignals().
        if threading.current_thread() is not threading.main_thread():
            return None
        if self._wakeup_socks is None:
            rsock, wsock = socket.socketpair()
            rsock.setblocking(False)
            wsock.setblocking(False)
            self._wakeup_socks = (rsock, wsock)
        try:
            old = signal.set_wakeup_fd(self._wakeup_socks[1].fileno(), warn_on_full_buffer=False)
        except (ValueError, OSError):
            return None
        self._watch_wakeup_fd(self._wakeup_socks[0].fileno())
        return old

    def _remove_signal_wakeup(self, old: int | None) -> None:
        if old is None:
            return
        self._unwatch_wakeup_fd()
        try:
            signal.set_wakeup_fd(old)
        except (ValueError, OSError):
            pass

    def run_forever(self) -> None:
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self.get_debug())
        old_agen_hooks = sys.get_asyncgen_hooks()
        old_wakeup: int | None = None
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(
                firstiter=self._asyncgen_firstiter_hook,
                finalizer=self._asyncgen_finalizer_hook,
            )
            events._set_running_loop(self)
            old_wakeup = self._install_signal_wakeup()
            self._run()
        finally:
            self._remove_signal_wakeup(old_wakeup)
            self._thread_id = None
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def run_until_complete(self, future: Any) -> Any:
        self._check_closed()
        self._check_running()
        new_task = not futures.isfuture(future)
        future = tasks.ensure_future(future, loop=self)
        if new_task:
            # An exception raised by a task we created is re-raised here; do not log it.
            future._log_destroy_pending = False
        future.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                # The caller sees the exception; mark it retrieved.
                future.exception()
            raise
        finally:
            future.remove_done_callback(_run_until_complete_cb)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def close(self) -> None:
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        if self.get_debug():
            logger.debug("Close %r", self)
        for sig in list(self._signals):
            try:
                self.remove_signal_handler(sig)
            except (RuntimeError, OSError, ValueError):
                self._signals.discard(sig)
        self._close_native()
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)
        if self._wakeup_socks is not None:
            for s in self._wakeup_socks:
                s.close()
            self._wakeup_socks = None

    # ---- debug ----

    def _log_slow_callback(self, handle: Any, dt: float) -> None:
        logger.warning("Executing %r took %.3f seconds", handle, dt)

    # ---- futures and tasks ----

    # create_future() is native (asyncio.Future(loop=self) without a Python frame).

    def create_task(
        self,
        coro: Coroutine[Any, Any, _T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[_T]:
        self._check_closed()
        if self._task_factory is None:
            if context is None:
                task = tasks.Task(coro, loop=self, name=name)
            else:
                task = tasks.Task(coro, loop=self, name=name, context=context)
        else:
            if context is None:
                task = self._task_factory(self, coro)
            else:
                task = self._task_factory(self, coro, context=context)
            if name is not None:
                try:
                    task.set_name(name)
                except AttributeError:
                    pass
        return task

    def set_task_factory(self, factory: Callable[..., Any] | None) -> None:
        if factory is not None and not callable(factory):
            raise TypeError("task factory must be a callable or None")
        self._task_factory = factory

    def get_task_factory(self) -> Callable[..., Any] | None:
        return self._task_factory

    # ---- async generators ----

    def _asyncgen_finalizer_hook(self, agen: Any) -> None:
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    def _asyncgen_firstiter_hook(self, agen: Any) -> None:
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call",
                ResourceWarning,
                stacklevel=2,
                source=self,
            )
        self._asyncgens.add(agen)

    async def shutdown_asyncgens(self) -> None:
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing_agens = list(self._asyncgens)
        self._asyncgens.clear()
        results = await asyncio.gather(
            *[ag.aclose() for ag in closing_agens], return_exceptions=True
        )
        for result, agen in zip(results, closing_agens, strict=True):
            if isinstance(result, Exception):
                self.call_exception_handler(
                    {
                        "message": f"an error occurred during closing of "
                        f"asynchronous generator {agen!r}",
                        "exception": result,
                        "asyncgen": agen,
                    }
                )

    # ---- executors ----

    def run_in_executor(
        self, executor: concurrent.futures.Executor | None, func: Callable[..., _T], *args: Any
    ) -> asyncio.Future[_T]:
        self._check_closed()
        if self.get_debug():
            self._check_thread()
            if asyncio.iscoroutine(func) or asyncio.iscoroutinefunction(func):
                raise TypeError("coroutines cannot be used with run_in_executor()")
        if executor is None:
            executor = self._default_executor
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio")
                self._default_executor = executor
        return futures.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor: concurrent.futures.Executor) -> None:
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor")
        self._default_executor = executor

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        self._executor_shutdown_called = True
        if self._default_executor is None:
            return
        future = self.create_future()
        executor = self._default_executor

        def _do_shutdown() -> None:
            try:
                executor.shutdown(wait=True)
                if not self.is_closed():
                    self.call_soon_threadsafe(_set_result, future)
            except Exception as ex:
                if not self.is_closed() and not future.cancelled():
                    self.call_soon_threadsafe(future.set_exception, ex)

        thread = threading.Thread(target=_do_shutdown)
        thread.start()
        try:
            if timeout is None:
                await future
            else:
                await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            warnings.warn(
                f"The executor did not finishing joining its threads within {timeout} seconds.",
                RuntimeWarning,
                stacklevel=2,
            )
            executor.shutdown(wait=False)
        else:
            thread.join()

    # ---- errors ----

    def get_exception_handler(self) -> Callable[..., Any] | None:
        return self._exception_handler

    def set_exception_handler(self, handler: Callable[..., Any] | None) -> None:
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        message = context.get("message") or "Unhandled exception in event loop"
        exception = context.get("exception")
        exc_info: Any
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        else:
            exc_info = False
        log_lines = [message]
        for key in sorted(context):
            if key in {"message", "exception"}:
                continue
            value = context[key]
            if key == "source_traceback":
                value = (
                    "Object created at (most recent call last):\n"
                    + "".join(traceback.format_list(value)).rstrip()
                )
            elif key == "handle_traceback":
                value = (
                    "Handle created at (most recent call last):\n"
                    + "".join(traceback.format_list(value)).rstrip()
                )
            else:
                value = repr(value)
            log_lines.append(f"{key}: {value}")
        logger.error("\n".join(log_lines), exc_info=exc_info)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler", exc_info=True)
            return
        try:
            self._exception_handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler(
                    {
                        "message": "Unhandled error in exception handler",
                        "exception": exc,
                        "context": context,
                    }
                )
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error(
                    "Exception in default exception handler while handling an unexpected "
                    "error in custom exception handler",
                    exc_info=True,
                )

    # ---- DNS (resolved off the loop thread; numeric addresses resolved inline) ----

    async def getaddrinfo(
        self,
        host: Any,
        port: Any,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        if _is_numeric_host(host) and (port is None or isinstance(port, (int, bytes, str))):
            try:
                # No name lookup can happen: answer without a thread round trip.
                return socket.getaddrinfo(
                    host, port, family, type, proto, flags | socket.AI_NUMERICHOST
                )
            except socket.gaierror:
                pass
        return await self.run_in_executor(
            None, socket.getaddrinfo, host, port, family, type, proto, flags
        )

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> Any:
        return await self.run_in_executor(None, socket.getnameinfo, sockaddr, flags)

    # ---- signals ----

    def _check_signal(self, sig: Any) -> None:
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        if sig not in signal.valid_signals():
            raise ValueError(f"invalid signal number {sig}")

    def add_signal_handler(self, sig: int, callback: Callable[..., Any], *args: Any) -> None:
        if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("set_wakeup_fd only works in main thread of the main interpreter")
        try:
            # Python's own bookkeeping first (signal.getsignal() then reports a handler, so
            # asyncio.Runner leaves SIGINT alone); libuv's handler then takes the signal.
            signal.signal(sig, _sighandler_noop)
            signal.siginterrupt(sig, False)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught") from None
            raise
        self._add_signal_watch(sig, callback, *args)
        self._signals.add(sig)

    def remove_signal_handler(self, sig: int) -> bool:
        self._check_signal(sig)
        if sig not in self._signals:
            return False
        self._signals.discard(sig)
        self._remove_signal_watch(sig)
        handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig:d} cannot be caught") from None
            raise
        return True

    # ---- raw sockets (on top of add_reader/add_writer) ----

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

    # ---- TCP and Unix streams (native transports) ----

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
            ssl_protocol = sslproto.SSLProtocol(
                self,
                protocol,
                sslcontext,
                waiter,
                server_side,
                server_hostname,
                **kwargs,
            )
            transport = self._make_transport(sock, ssl_protocol)
            self.call_soon(transport._start)
            app_transport = ssl_protocol._app_transport
        else:
            transport = self._make_transport(sock, protocol)
            self.call_soon(transport._start, waiter)
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
        elif server_hostname is not None:
            raise ValueError("server_hostname is only meaningful with ssl")
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

    # ---- sendfile ----

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
        if count is not None:
            if not isinstance(count, int):
                raise TypeError(f"count must be a positive integer (got {count!r})")
            if count <= 0:
                raise ValueError(f"count must be a positive integer (got {count!r})")
        if not isinstance(offset, int):
            raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
        if offset < 0:
            raise ValueError(f"offset must be a non-negative integer (got {offset!r})")
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
        # Data written through a libuv stream may still be queued in libuv, so os.sendfile()
        # on the socket could overtake it; the fallback keeps the ordering.
        raise asyncio.SendfileNotAvailableError(
            f"sendfile syscall is not supported for transport {transport!r}"
        )

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
        ssl_protocol = sslproto.SSLProtocol(
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

    # ---- pipes and subprocesses ----

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
        transport._set_owned(owned)
        transport.set_protocol(protocol)
        self.call_soon(transport._start, waiter)
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

    # ---- UDP ----

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
        transport = _DatagramTransport(self, sock, protocol, r_addr, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return transport, protocol


class _DatagramTransport(transports._FlowControlMixin, asyncio.DatagramTransport):
    """UDP transport on add_reader/add_writer (asyncio's selector semantics)."""

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
                if self._extra["peername"]:
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
                if self._extra["peername"]:
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
        transport._server = self
        if self._ssl_context is not None:
            kwargs: dict[str, Any] = {"ssl_handshake_timeout": self._ssl_handshake_timeout}
            if sys.version_info >= (3, 11):
                kwargs["ssl_shutdown_timeout"] = self._ssl_shutdown_timeout
            waiter = self._loop.create_future()
            ssl_protocol = sslproto.SSLProtocol(
                self._loop, protocol, self._ssl_context, waiter, True, None, **kwargs
            )
            transport.set_protocol(ssl_protocol)
            waiter.add_done_callback(_retrieve_exception)
        else:
            transport.set_protocol(protocol)
        self._loop.call_soon(transport._start)

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
        for sock in self._sockets:
            sock.listen(self._backlog)
            fd = os.dup(sock.fileno())
            try:
                listener = self._loop._stream_listen(
                    fd, sock.family == socket.AF_UNIX, sock.family, self._backlog, self._accepted
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
        if self._waiters is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    if sys.version_info >= (3, 12):

        def close_clients(self) -> None:
            pass

        def abort_clients(self) -> None:
            pass


_SENDFILE_CHUNK = 256 * 1024


def _check_sendfile_params(sock: socket.socket, file: Any, offset: int, count: int | None) -> None:
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if sock.type != socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
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


def _retrieve_exception(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


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


_all_loops: weakref.WeakSet[Loop] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The child inherits the parent's epoll fd and signal pipe; libuv rebuilds them.
    for lp in list(_all_loops):
        if not lp.is_closed():
            try:
                lp._after_fork()
            except OSError:
                pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _sighandler_noop(signum: int, frame: Any) -> None:
    """Placeholder Python handler: libuv's own handler receives the signal."""


def _is_numeric_host(host: Any) -> bool:
    if host is None:
        return False
    if isinstance(host, bytes):
        try:
            host = host.decode("idna")
        except UnicodeError:
            return False
    if not isinstance(host, str):
        return False
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.partition("%")[0])
            return True
        except (OSError, ValueError):
            pass
    return False


def new_event_loop() -> Loop:
    """Return a new PyLoop."""
    return Loop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """An event loop policy whose loops are PyLoops (for code that calls set_event_loop_policy)."""

    def _loop_factory(self) -> Loop:  # type: ignore[override]
        return new_event_loop()

    def new_event_loop(self) -> Loop:
        return new_event_loop()


def install() -> None:
    """Make asyncio create PyLoops (asyncio.set_event_loop_policy(EventLoopPolicy()))."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run a coroutine on a new PyLoop, like asyncio.run()."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
            return runner.run(main)
    return _run_compat(main, debug=debug)


def _run_compat(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    if events._get_running_loop() is not None:
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = new_event_loop()
    try:
        events.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            to_cancel = tasks.all_tasks(loop)
            for task in to_cancel:
                task.cancel()
            if to_cancel:
                loop.run_until_complete(asyncio.gather(*to_cancel, return_exceptions=True))
            for task in to_cancel:
                if task.cancelled():
                    continue
                if task.exception() is not None:
                    loop.call_exception_handler(
                        {
                            "message": "unhandled exception during asyncio.run() shutdown",
                            "exception": task.exception(),
                            "task": task,
                        }
                    )
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            events.set_event_loop(None)
            loop.close()
