"""PyLoop's TLS protocol: asyncio's sslproto.SSLProtocol with uvloop's shutdown semantics.

PyLoop runs TLS as asyncio does, an SSLProtocol (ssl.SSLObject over memory BIOs) sitting
between the native stream transport and the application's protocol. asyncio's 3.11+
implementation descends from uvloop's, but PyLoop is a drop-in for uvloop too, and the two
differ where a connection ends; this subclass keeps uvloop's behaviour there:

- close() flushes first: the application data written before close() (even while the
  socket's buffer is full) is encrypted and sent before close_notify, and the shutdown
  waits for the socket to take it (asyncio sends close_notify at once and drops the rest).
- Once closing, incoming application data is read and discarded, never delivered, and a
  close_notify the peer sends meanwhile still reaches eof_received(), even while reading
  is paused. Reading before unwrap() is also what keeps OpenSSL from failing the shutdown
  with APPLICATION_DATA_AFTER_CLOSE_NOTIFY when the peer sent data just before its own
  close_notify (bpo-39951).
- A TCP EOF without close_notify keeps asyncio's behaviour, not uvloop's: the data received
  before it is still delivered (once the application reads again, if it paused reading),
  then eof_received() and connection_lost(None). uvloop drops that data and closes at once;
  CPython's test_ssl and uvloop's own tests each assert their loop's way in a test named
  test_shutdown_timeout_handler_not_set, and delivering what the peer sent wins here.
- The first application data after the handshake is delivered in a later loop iteration,
  after the callbacks of start_tls()'s waiter, so that the caller gets the TLS transport
  before any data arrives for it.
- Callbacks into the application run in the transport's context (see transport.c) also
  when an application call elsewhere triggers them: pause_writing() from a write(),
  data after resume_reading(), eof_received() during close().
- A protocol with get_buffer() that is not an asyncio.Protocol is a buffered protocol, as
  the native transport and uvloop treat it.
- get_extra_info("uvloop.sslproto") returns the protocol, as on uvloop; after
  connection_lost() the socket's extra info (sockname, peername, socket) still answers.

Python 3.10's sslproto is a different design (an _SSLPipe), so there PyLoop uses asyncio's
class unchanged.
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl
import sys
from asyncio import sslproto
from collections.abc import Callable
from typing import Any

if sys.version_info >= (3, 11):
    _State = sslproto.SSLProtocolState
    _AGAIN = sslproto.SSLAgainErrors
    _READ_MAX = 256 * 1024
    _KEPT_EXTRA = ("sockname", "peername", "socket")

    class SSLProtocol(sslproto.SSLProtocol):
        _app_context: contextvars.Context | None = None
        _defer_first_read = False
        _closed_by_app = False
        _lost_extra: dict[str, Any] = {}  # replaced in connection_lost, never mutated

        # --- contexts ---------------------------------------------------------------------

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # The native transport calls its protocol in its own context; keep it for the
            # callbacks that application calls trigger (start_tls() runs this method in the
            # caller's context, so the transport is asked rather than the current one used).
            get_context = getattr(transport, "_get_context", None)
            self._app_context = get_context() if get_context is not None else None
            super().connection_made(transport)

        def _in_app_context(self, fn: Callable[..., Any], *args: Any) -> Any:
            """fn(*args) in the transport's context; directly if that context is the
            current one (Context.run refuses to enter a context twice)."""
            ctx = self._app_context
            if ctx is None:
                return fn(*args)
            entered = False

            def call() -> Any:
                nonlocal entered
                entered = True
                return fn(*args)

            try:
                return ctx.run(call)
            except RuntimeError:
                if entered:
                    raise
                return fn(*args)

        def _control_app_writing(self) -> None:
            # Runs after every write: the context is entered only when pause_writing() or
            # resume_writing() is due.
            size = self._get_write_buffer_size()
            if self._app_writing_paused:
                due = size <= self._outgoing_low_water
            else:
                due = size >= self._outgoing_high_water
            if due:
                self._in_app_context(super()._control_app_writing)

        def _resume_reading(self) -> None:
            if not self._app_reading_paused:
                return
            self._app_reading_paused = False
            self._loop.call_soon(self._resume_after_pause, context=self._app_context)

        def _resume_after_pause(self) -> None:
            if self._state == _State.WRAPPED:
                self._do_read()
            elif self._state == _State.FLUSHING:
                self._do_flush()
            elif self._state == _State.SHUTDOWN:
                self._do_shutdown()

        # --- protocols and extra info ---------------------------------------------------

        def _set_app_protocol(self, app_protocol: asyncio.BaseProtocol) -> None:
            super()._set_app_protocol(app_protocol)
            get_buffer = getattr(app_protocol, "get_buffer", None)
            if get_buffer is not None and not isinstance(app_protocol, asyncio.Protocol):
                self._app_protocol_get_buffer = get_buffer
                self._app_protocol_buffer_updated = app_protocol.buffer_updated  # type: ignore[attr-defined]
                self._app_protocol_is_buffer = True

        def _get_extra_info(self, name: str, default: Any = None) -> Any:
            if name == "uvloop.sslproto":
                return self
            if self._transport is None and name in self._lost_extra:
                return self._lost_extra[name]
            return super()._get_extra_info(name, default)

        def connection_lost(self, exc: BaseException | None) -> None:
            # After connection_lost the socket's details still answer, as they do on the
            # closed plain transport (asyncio's SSL transport answers `default` from here
            # on). Copied rather than the transport kept: no cycle through its protocol.
            if self._transport is not None:
                get = self._transport.get_extra_info
                try:
                    self._lost_extra = {k: get(k) for k in _KEPT_EXTRA}
                except AttributeError:
                    # TLS over TLS: asyncio's inner _SSLProtocolTransport raises once its
                    # own protocol has gone (its _ssl_protocol is None by then).
                    pass
            super().connection_lost(exc)

        # --- the first data after the handshake -----------------------------------------

        def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
            # asyncio's method ends by reading what came with the handshake's last flight;
            # _do_read below turns that one read into a call_soon queued behind the
            # waiter's callbacks (which hand start_tls()'s caller the TLS transport).
            self._defer_first_read = handshake_exc is None
            try:
                super()._on_handshake_complete(handshake_exc)
            finally:
                self._defer_first_read = False

        def _do_read(self) -> None:
            if self._defer_first_read:
                self._defer_first_read = False
                # The handshake's last flight (a client's Finished, a server's session
                # tickets) leaves now, as the read would have sent it: the peer finishes its
                # handshake before any application data follows.
                self._process_outgoing()
                self._loop.call_soon(self._do_read, context=self._app_context)
                return
            super()._do_read()

        # --- shutdown ---------------------------------------------------------------------

        def _discard_incoming(self) -> None:
            """Reads and drops the application data received while closing; a close_notify
            among it goes to the application's eof_received()."""
            close_notify = False
            try:
                while True:
                    if not self._sslobj.read(_READ_MAX):
                        close_notify = True
                        break
            except _AGAIN:
                pass
            except ssl.SSLZeroReturnError:
                close_notify = True
            if close_notify:
                self._in_app_context(self._call_eof_received)

        def _start_shutdown(self) -> None:
            if self._state == _State.WRAPPED:
                self._closed_by_app = True
            self._in_app_context(super()._start_shutdown)

        def _do_flush(self) -> None:
            if self._eof_received and not self._closed_by_app:
                # The peer's TCP EOF (see eof_received): what it sent before is delivered
                # once the application reads again (resume_reading() calls back here), then
                # eof_received() and the close.
                if self._app_reading_paused:
                    return
                self._do_read()
                self._set_state(_State.SHUTDOWN)
                self._do_shutdown()
                return
            # FLUSHING after close(): what the application wrote before close() goes out
            # before close_notify; resume_writing() calls back here while the socket is full.
            try:
                self._discard_incoming()
                self._do_write()
                self._control_ssl_reading()
            except Exception as exc:
                self._on_shutdown_complete(exc)
                return
            if self._eof_received or not self._get_write_buffer_size():
                self._set_state(_State.SHUTDOWN)
                self._do_shutdown()

        def _do_shutdown(self) -> None:
            if self._eof_received:
                # No close_notify can follow the peer's TCP EOF: done once the application
                # has heard of the EOF (asyncio's behaviour).
                self._process_outgoing()
                self._in_app_context(self._call_eof_received)
                self._on_shutdown_complete(None)
                return
            # SHUTDOWN: send close_notify and wait for the peer's (buffer_updated and
            # resume_writing call back here); done once ours has left the outgoing BIO.
            try:
                self._discard_incoming()
                try:
                    self._sslobj.unwrap()
                except _AGAIN:
                    self._process_outgoing()
                    return
                self._process_outgoing()
                if not self._get_write_buffer_size():
                    self._on_shutdown_complete(None)
            except Exception as exc:
                self._on_shutdown_complete(exc)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._state == _State.FLUSHING:
                self._do_flush()
            elif self._state == _State.SHUTDOWN:
                self._do_shutdown()

else:  # pragma: no cover - Python 3.10
    SSLProtocol = sslproto.SSLProtocol  # type: ignore[misc,assignment]
