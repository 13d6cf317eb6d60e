"""The Loop class: the policy-level parts of asyncio.AbstractEventLoop (running, tasks,
executors, async generators, errors, DNS, signals). The I/O families are mixins, one
module each; the per-callback machinery is the native base class _core.Loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import logging
import os
import signal
import socket
import sys
import threading
import traceback
import warnings
import weakref
from asyncio import coroutines, events, futures, tasks
from collections.abc import Callable
from typing import Any, TypeVar

from data_bridge import _core
from data_bridge.pyloop._pipes import PipesMixin
from data_bridge.pyloop._sendfile import SendfileMixin
from data_bridge.pyloop._sockets import SocketsMixin
from data_bridge.pyloop._streams import StreamsMixin
from data_bridge.pyloop._udp import DatagramMixin
from data_bridge.pyloop._util import (
    _is_numeric_host,
    _run_until_complete_cb,
    _set_result,
    _sighandler_noop,
)

_T = TypeVar("_T")

logger = logging.getLogger("asyncio")

# Every open loop, so that a forked child can rebuild their libuv state.
_all_loops: weakref.WeakSet[Loop] = weakref.WeakSet()


class Loop(  # type: ignore[misc]
    _core.Loop,
    SocketsMixin,
    StreamsMixin,
    SendfileMixin,
    PipesMixin,
    DatagramMixin,
    asyncio.AbstractEventLoop,
):
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

    def _stop_serving(self, sock: socket.socket) -> None:
        """BaseSelectorEventLoop._stop_serving: stops watching a socket and closes it (code
        written against asyncio's loops calls it; CPython's test_events does)."""
        self.remove_reader(sock.fileno())
        sock.close()

    def _log_slow_callback(self, handle: Any, dt: float) -> None:
        logger.warning("Executing %r took %.3f seconds", handle, dt)

    # ---- futures and tasks ----

    # create_future() is native: the native Future (a C subclass of asyncio.Future).

    # create_task() is native too (_core.Loop.create_task): the native Task, or the task
    # factory's result, without a Python frame.

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
                # Threads named after the loop that started them ("pyloop_0", ...), as
                # asyncio's loop names its own "asyncio_N" and uvloop "uvloop_N".
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="pyloop")
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
