"""Serving: ``data_bridge.serve(app)`` for an App (the native path) or any ASGI 3 app.

An ASGI application is served by the same native server as an App: the request is
parsed, limited and framed in C, and ``csrc/asgi/`` builds the ``http`` scope and the
receive/send callables in C for each request; no Python code of ours runs per request.
This module drives what runs once per process: the lifespan protocol (ASGI www spec,
"Lifespan Protocol") around serving, signals and the graceful shutdown, and workers.
``Config`` holds uvicorn's options under uvicorn's names (the command line fills it).
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import random
import signal
import socket
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from data_bridge import _core, access_log, pyloop
from data_bridge._supervisor import METRICS_SLOT_SIZE, Supervisor
from data_bridge._tls import SSL_PROTOCOL_VERSION, TLSOptions, reload_on_sighup
from data_bridge.access_log import use_format as use_access_format
from data_bridge.log_colors import ColourFormatter

logger = logging.getLogger("data_bridge")
# One record per response in uvicorn's format (uvicorn.access's counterpart).
access_logger = logging.getLogger("data_bridge.access")

# The exit status when the application's lifespan startup failed (as uvicorn's).
STARTUP_FAILURE = 3


def _log(message: str, exc: BaseException | None) -> None:
    """The logger the native ASGI driver reports through (violations, app exceptions)."""
    logger.error(message, exc_info=exc)


class Lifespan:
    """Runs an ASGI application's lifespan: one Task for the whole serving time, sent
    ``lifespan.startup`` before the server listens and ``lifespan.shutdown`` after it
    closed. ``state`` is the dict the application may fill at startup; each request's scope
    gets a shallow copy of it.

    As uvicorn's ``lifespan="auto"``: an application that raises on the lifespan scope
    before sending anything does not support the protocol, and is served without it.
    """

    def __init__(self, app: Callable[..., Any], loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.state: dict[str, Any] = {}
        self.supported = True
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._startup: asyncio.Future[str | None] = loop.create_future()
        self._shutdown: asyncio.Future[str | None] = loop.create_future()
        self._sent = False
        self.task: asyncio.Task[None] | None = None

    async def _receive(self) -> dict[str, Any]:
        return await self._inbox.get()

    async def _send(self, message: dict[str, Any]) -> None:
        self._sent = True
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self._settle(self._startup, None)
        elif kind == "lifespan.startup.failed":
            self._settle(self._startup, str(message.get("message", "")) or "startup failed")
        elif kind == "lifespan.shutdown.complete":
            self._settle(self._shutdown, None)
        elif kind == "lifespan.shutdown.failed":
            self._settle(self._shutdown, str(message.get("message", "")) or "shutdown failed")
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message type {kind!r}")

    @staticmethod
    def _settle(fut: asyncio.Future[str | None], error: str | None) -> None:
        if not fut.done():
            fut.set_result(error)

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            if not self._sent and not self._startup.done():
                self.supported = False
                logger.info("ASGI 'lifespan' protocol appears unsupported (%r)", exc)
            elif not self._startup.done():
                logger.error("Exception in ASGI lifespan startup", exc_info=exc)
                self._settle(self._startup, f"{type(exc).__name__}: {exc}")
            else:
                logger.error("Exception in ASGI lifespan", exc_info=exc)
                self._settle(self._shutdown, f"{type(exc).__name__}: {exc}")
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            # An application that returned early: nobody waits for what it never sends.
            if not self._sent:
                self.supported = False
            self._settle(self._startup, None)
            self._settle(self._shutdown, None)

    async def startup(self) -> None:
        """Sends lifespan.startup and waits for the answer; raises RuntimeError with the
        application's message when startup failed."""
        self.task = self.loop.create_task(self._main())
        await self._inbox.put({"type": "lifespan.startup"})
        error = await self._startup
        if error is not None:
            raise RuntimeError(error)

    async def shutdown(self) -> None:
        """Sends lifespan.shutdown and waits for the answer (errors are logged)."""
        if self.task is None or self.task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        error = await self._shutdown
        if error is not None:
            logger.error("ASGI lifespan shutdown failed: %s", error)
        await asyncio.wait([self.task])


@dataclass
class Config:
    """How to serve: uvicorn's options, with uvicorn's names and defaults (see
    ``uvicorn --help``), plus the server limits of ``Limits`` in ``limits``."""

    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    fd: int | None = None
    workers: int = 1
    log_level: str = "info"
    access_log: bool = True
    proxy_headers: bool = True
    forwarded_allow_ips: str | None = None
    # Ours: which fields the trusted proxies set ("x-forwarded", "x-forwarded-host",
    # "forwarded": RFC 7239).
    forwarded_headers: str = "x-forwarded"
    # Ours: a body that comes slower than this many bytes a second on average, after
    # min_body_grace seconds, is answered 408 and its connection closed (a body read as it
    # arrives: over the time the server waited for it; its reader sees a disconnect).
    min_body_rate: float | None = None
    min_body_grace: float = 5.0
    root_path: str = ""
    limit_concurrency: int | None = None
    limit_max_requests: int | None = None
    limit_max_requests_jitter: int = 0
    timeout_graceful_shutdown: float | None = None
    headers: Sequence[tuple[str, str]] = ()
    server_header: bool = True
    date_header: bool = True
    lifespan: str = "auto"
    # Ours: the path answering Prometheus metrics summed over the workers (None: off).
    metrics: str | None = None
    # WebSockets, with uvicorn's defaults (None disables pings / their timeout);
    # ws_max_size None: the App's own ws_max_size (16 MiB unless set), 16 MiB otherwise.
    ws_max_size: int | None = None
    ws_max_queue: int = 32
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float | None = 20.0
    ws_per_message_deflate: bool = True
    # Ours: a real fastapi.FastAPI app has its routes compiled to native ones where the
    # drop-in reproduces them (api/_fastapi_native.py); False serves it all through ASGI.
    native: bool = True
    # Ours: seconds a request head has to arrive once its first byte came (None: only the
    # request timeout, 30 s for head and body together).
    timeout_header: float | None = None
    # Ours: MiB of resident memory above which a worker is replaced (None: no limit); it
    # runs a supervisor even for one worker.
    max_worker_rss: int | None = None
    # Ours: the access log's format, "uvicorn" (text) or "json" (data_bridge.access_log).
    access_log_format: str = "uvicorn"
    # uvicorn's --use-colors / --no-use-colors: coloured lines from the log handler this
    # server installs (data_bridge.log_colors); None: when its stream is a terminal.
    use_colors: bool | None = None
    # Ours: answer GET /health (liveness) and /ready (readiness, data_bridge.health) natively.
    health: bool = False
    # Ours: seconds an App's handler may run; then its task is cancelled and the request
    # answered 504 (None: as long as it takes).
    timeout_handler: float | None = None
    # TLS (uvicorn's --ssl-*; see data_bridge._tls): on when a key or certificate is given.
    ssl_keyfile: str | os.PathLike[str] | None = None
    ssl_certfile: str | os.PathLike[str] | None = None
    ssl_keyfile_password: str | None = None
    ssl_version: int = SSL_PROTOCOL_VERSION
    ssl_cert_reqs: int = 0  # ssl.CERT_NONE
    ssl_ca_certs: str | os.PathLike[str] | None = None
    ssl_ciphers: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)

    def tls(self) -> TLSOptions:
        return TLSOptions(
            keyfile=self.ssl_keyfile,
            certfile=self.ssl_certfile,
            keyfile_password=self.ssl_keyfile_password,
            version=self.ssl_version,
            cert_reqs=self.ssl_cert_reqs,
            ca_certs=self.ssl_ca_certs,
            ciphers=self.ssl_ciphers,
        )

    def server_options(self) -> dict[str, Any]:
        """The keyword arguments of ``_core.Server`` that carry this configuration."""
        lines = [(k.strip().lower(), v.strip()) for k, v in self.headers]
        # As uvicorn: the Server header unless --no-server-header, or a --header gave one.
        if self.server_header and "server" not in dict(lines):
            lines.insert(0, ("server", "data-bridge"))
        text = []
        for name, value in lines:
            if not name or any(ch in name + value for ch in "\r\n\0") or ":" in name:
                raise ValueError(f"invalid response header {name!r}: {value!r}")
            text.append(f"{name}: {value}\r\n")
        options: dict[str, Any] = {
            "date_header": self.date_header,
            "limit_concurrency": self.limit_concurrency or 0,
            "ws_max_queue": self.ws_max_queue,
            "ws_ping_interval": self.ws_ping_interval or 0.0,
            "ws_ping_timeout": self.ws_ping_timeout or 0.0,
            "ws_per_message_deflate": self.ws_per_message_deflate,
        }
        if self.ws_max_size is not None:
            options["ws_max_size"] = self.ws_max_size
        if text:
            options["default_headers"] = "".join(text).encode("latin-1")
        if self.timeout_header is not None:
            if not self.timeout_header > 0:
                raise ValueError("timeout_header must be a positive number of seconds")
            options["header_timeout"] = self.timeout_header
        if self.timeout_handler is not None:
            if not self.timeout_handler > 0:
                raise ValueError("timeout_handler must be a positive number of seconds")
            options["handler_timeout"] = self.timeout_handler
        if self.min_body_rate is not None:
            if not self.min_body_rate > 0:
                raise ValueError("min_body_rate must be a positive number of bytes a second")
            if not self.min_body_grace >= 0:
                raise ValueError("min_body_grace must be a number of seconds, 0 or more")
            options["min_body_rate"] = float(self.min_body_rate)
            options["min_body_grace"] = float(self.min_body_grace)
        if self.forwarded_headers not in ("x-forwarded", "x-forwarded-host", "forwarded"):
            raise ValueError(
                "forwarded_headers must be 'x-forwarded', 'x-forwarded-host' or 'forwarded'"
            )
        if self.proxy_headers:
            # uvicorn's default: $FORWARDED_ALLOW_IPS, else the local host.
            trusted = self.forwarded_allow_ips
            if trusted is None:
                trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
            options["forwarded_allow_ips"] = trusted
            options["forwarded_headers"] = self.forwarded_headers
        return options

    def max_requests(self) -> int | None:
        """--limit-max-requests with its jitter (uvicorn: a random 0..jitter added per
        process, so that workers started together do not all restart together)."""
        if self.limit_max_requests is None:
            return None
        return self.limit_max_requests + random.randint(0, max(0, self.limit_max_requests_jitter))


# Requests a second one worker can plausibly take in a burst (keep-alive, small responses):
# what run_until_signalled's max-requests check assumes when it has seen less.
_PEAK_RATE = 50_000.0


def run_until_signalled(
    loop: asyncio.AbstractEventLoop,
    server: Any,
    graceful_timeout: float | None,
    spare: asyncio.Task[Any] | None = None,
    max_requests: int | None = None,
    worker: bool = False,
    early: Sequence[int] = (),
) -> None:
    """Runs the loop until SIGINT or SIGTERM (or, with max_requests, until the server
    dispatched that many requests), then closes the server: requests in progress finish
    (those still running after graceful_timeout are cancelled, but not ``spare``, the
    lifespan's Task; None waits for them as long as they take, as uvicorn's default); a
    second signal stops at once. A ``worker`` leaves SIGINT to its supervisor (a terminal's
    Ctrl-C reaches the whole process group; the supervisor then sends SIGTERM). ``early``:
    signals that came while the process started (watch_early_signals), acted on now."""
    stopping = False

    def give_up() -> None:
        # Handlers still running after the graceful timeout are cancelled: each answers
        # 503 and its connection closes, which completes server.close().
        pending = [t for t in asyncio.all_tasks(loop) if not t.done() and t is not spare]
        if pending:
            logger.warning("cancelling %d handlers still running", len(pending))
        for task in pending:
            task.cancel()
        loop.call_later(1.0, loop.stop)

    def stop(reason: str) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        logger.info("shutting down (%s)", reason)
        server.close(callback=loop.stop)
        if graceful_timeout is not None:
            loop.call_later(graceful_timeout, give_up)

    def on_signal(signum: int) -> None:
        if worker and signum == signal.SIGINT:
            return
        if stopping:
            loop.stop()  # a second signal: stop without waiting
            return
        stop(f"signal {signum}")

    last = [0, loop.time()]  # the count and the time of the previous look

    def check_requests() -> None:
        # The request path only counts, in C; this looks at the count. uvicorn looks ten
        # times a second, but a keep-alive connection here can carry ~8,000 requests in
        # 0.1 s, so a worker would serve hundreds past its maximum. The next look is
        # planned for when half the remaining requests could have come, at the rate just
        # seen or at _PEAK_RATE if that is more (a burst after a quiet moment): at most
        # 0.1 s away, and at least 1 ms, which keeps the overshoot to a few requests.
        if stopping:
            return
        count, now = server.requests, loop.time()
        if count >= max_requests:
            stop(f"maximum number of requests ({max_requests}) reached")
            return
        rate = max((count - last[0]) / max(now - last[1], 1e-6), _PEAK_RATE)
        last[0], last[1] = count, now
        delay = (max_requests - count) / rate / 2
        loop.call_later(min(0.1, max(0.001, delay)), check_requests)

    server.handle_signals(on_signal)
    for signum in early:
        on_signal(signum)
    if max_requests is not None:
        loop.call_later(min(0.1, max(0.001, max_requests / _PEAK_RATE / 2)), check_requests)
    loop.run_forever()


def watch_early_signals(server: Any) -> list[int]:
    """A worker's SIGINT and SIGTERM, watched from the moment its server exists: a signal
    that comes while it starts (the lifespan, listen) is recorded in the returned list for
    run_until_signalled, which then drains at once. The supervisor forks a worker with
    SIGTERM blocked and it stays blocked until now, so there is no moment at which the
    default action could kill a worker that already listens (and lose the connections
    waiting in its accept queue)."""
    early: list[int] = []
    server.handle_signals(early.append)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM,))
    return early


def bind_socket(config: Config) -> socket.socket:
    """The listening socket of the configuration (--fd, --uds, or --host/--port), made in
    the supervisor so that every worker accepts on it."""
    from data_bridge.api.applications import Limits

    backlog = Limits(**config.limits).backlog
    if config.fd is not None:
        sock = socket.socket(fileno=config.fd)
        if sock.type != socket.SOCK_STREAM:
            raise SystemExit(f"error: --fd {config.fd} is not a stream socket")
        return sock
    if config.uds is not None:
        path = config.uds
        # A socket file left by an earlier run is replaced, as asyncio's
        # create_unix_server does; any other file is not touched.
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        # uvicorn makes the socket usable by any local user (a proxy in another account).
        os.chmod(path, 0o666)
        sock.listen(backlog)
        return sock
    host = config.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, config.port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"error: cannot bind {host}:{config.port}: {exc.strerror}") from None
    sock.listen(backlog)
    return sock


def describe(config: Config, sock: socket.socket) -> str:
    if sock.family == socket.AF_UNIX:
        return f"unix socket {sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if config.tls().enabled else "http"
    return f"{scheme}://{shown}:{port}"


def listen(server: Any, sock: socket.socket) -> None:
    """Hands the listening socket to the native server, which owns its descriptor from
    then on (libuv closes it with the listener)."""
    server.listen_fd(sock)
    sock.detach()


def _serve_once(
    app: Any,
    config: Config,
    sock: socket.socket,
    announce: str = "",
    ready: Callable[[], None] | None = None,
    metrics: tuple[Any, int] | None = None,
) -> None:
    """One serving process: the loop, the server, the lifespan, until a signal.
    ``announce`` is logged and ``ready`` (a worker's, telling the supervisor) called once
    the application started and the server listens. ``metrics``: the shared memory and
    this process's slot in it."""
    from data_bridge.api._fastapi_native import compile_fastapi, is_fastapi_app
    from data_bridge.api.applications import App, Limits

    lim = Limits(**config.limits)
    early: list[int] = []
    loop = pyloop.new_event_loop()
    asyncio.set_event_loop(loop)
    # An unmodified FastAPI app: its compilable routes served by an App of ours, the app
    # itself behind them (set_fallback below).
    source = None
    if not isinstance(app, App) and config.native and is_fastapi_app(app):
        compiled = compile_fastapi(app)
        logger.info(
            "FastAPI app: %d routes native, %d through ASGI%s",
            len(compiled.native),
            len(compiled.fallback),
            f" ({compiled.whole_app_reason})" if compiled.whole_app_reason else "",
        )
        if compiled.app is not None:
            source, app = app, compiled.app
    if isinstance(app, App) and app._asgi_middleware:
        # Pure ASGI middleware around the App: served as that ASGI app, its innermost the
        # App's ASGI face on this loop (each request still parsed, routed, bound natively).
        from data_bridge.api._asgi_bridge import AsgiBridge

        app = app._asgi_chain(AsgiBridge(app, loop=loop))
    try:
        options = config.server_options()
        # Each process reads the certificate files itself (a worker after the fork).
        tls_options = config.tls()
        tls = tls_options.context() if tls_options.enabled else None
        life: Lifespan | None = None
        if isinstance(app, App):
            server = app.build_server(
                loop,
                lim,
                root_path=config.root_path or None,
                scheme="https" if tls is not None else "http",
                server_options=options,
            )
            if ready is not None:
                early = watch_early_signals(server)
            if config.lifespan != "off":
                try:
                    loop.run_until_complete(app._startup_app())
                except Exception:
                    # As uvicorn: the application cannot start, the process exits 3.
                    logger.exception("Application startup failed")
                    raise SystemExit(STARTUP_FAILURE) from None
            if source is not None:
                # The lifespan ran once (the App's runs the FastAPI app's own); requests
                # served through ASGI see the same state.
                server.set_fallback(
                    _core.AsgiApp(
                        source,
                        loop,
                        log=_log,
                        root_path=config.root_path,
                        state=app._lifespan_state if config.lifespan != "off" else None,
                    )
                )
        else:
            server = _core.Server(
                loop,
                max_body=lim.max_body,
                # An ASGI app reads every large or chunked body as it arrives; max_body
                # still bounds what it may receive unless max_upload says otherwise.
                max_upload=lim.max_upload or lim.max_body,
                max_target=lim.max_target,
                max_header_bytes=lim.max_header_bytes,
                max_headers=lim.max_headers,
                keepalive_timeout=lim.keepalive_timeout,
                request_timeout=lim.request_timeout,
                send_timeout=lim.send_timeout,
                backlog=lim.backlog,
                **options,
            )
            if ready is not None:
                early = watch_early_signals(server)
            life = Lifespan(app, loop) if config.lifespan != "off" else None
            if life is not None:
                try:
                    loop.run_until_complete(life.startup())
                except RuntimeError as exc:
                    logger.error("ASGI lifespan startup failed: %s", exc)
                    raise SystemExit(STARTUP_FAILURE) from None
                if not life.supported and config.lifespan == "on":
                    logger.error("the ASGI application does not support the lifespan protocol")
                    raise SystemExit(STARTUP_FAILURE)
            state = life.state if life is not None and life.supported else None
            server.set_asgi(
                _core.AsgiApp(app, loop, log=_log, root_path=config.root_path, state=state)
            )
        if tls is not None:
            server.set_tls(tls)
            reload_on_sighup(loop, server, tls_options)
        if metrics is not None and config.metrics:
            server.set_metrics(metrics[0], metrics[1], config.metrics)
        if config.health:
            from data_bridge import health

            server.set_health(health.HEALTH_PATH, health.READY_PATH, health.ready)
        # As uvicorn: the access log is written when enabled and someone would see it; off,
        # the server is not even asked to copy the request line.
        if (
            config.access_log
            and access_logger.isEnabledFor(logging.INFO)
            and access_logger.hasHandlers()
        ):
            written = written_access_log_fd(config)
            if written is not None:
                # The same lines as logging would write, written by the server in batches.
                fd, json_lines = written
                prefix = b"" if json_lines else b"INFO data_bridge.access: "
                server.set_access_log_fd(fd, prefix, json_lines)
            else:
                server.set_access_log(access_logger.info)
        listen(server, sock)
        if announce:
            logger.info("%s", announce)
        if ready is not None:
            ready()
        own = life.task if life is not None else None
        graceful = config.timeout_graceful_shutdown
        run_until_signalled(
            loop,
            server,
            graceful,
            own,
            config.max_requests(),
            worker=ready is not None,
            early=early,
        )
        # An application may go on after its response is complete (work after the last
        # send): its Tasks get the graceful timeout too, then are cancelled.
        pending = [t for t in asyncio.all_tasks(loop) if not t.done() and t is not own]
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=graceful))
            left = [t for t in pending if not t.done()]
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=1.0))
        if isinstance(app, App):
            if config.lifespan != "off":
                loop.run_until_complete(app._shutdown_app())
        elif life is not None and life.supported:
            loop.run_until_complete(life.shutdown())
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def written_access_log_fd(config: Config) -> tuple[int, bool] | None:
    """The descriptor the server may write the access log to itself, and whether in JSON,
    when logging is as configure_logging (uvicorn's format) or use_format (JSON) left it:
    the access records would reach only the stream handler installed there (no other
    handler or filter on the way, its format untouched). None otherwise: the records then
    go through logging."""
    if config.access_log_format == "json":
        fd = _written_json_fd()
        return None if fd is None else (fd, True)
    handler = _own_handler
    if config.access_log_format != "uvicorn" or not isinstance(handler, logging.StreamHandler):
        return None
    node: logging.Logger | None = access_logger
    while node is not None:
        if node.filters or node.handlers != ([handler] if node.parent is None else []):
            return None
        if not node.propagate and node.parent is not None:
            return None
        node = node.parent
    if handler.filters or handler.level > logging.INFO or handler.formatter is None:
        return None
    if handler.formatter._fmt != LOG_FORMAT or getattr(handler.formatter, "use_colors", False):
        return None  # another format, or coloured lines (which logging writes)
    fd = _stream_fd(handler)
    return None if fd is None else (fd, False)


def _written_json_fd() -> int | None:
    """The JSON format's half of written_access_log_fd: the records reach only the stdout
    handler use_format added (the access logger does not propagate), which is still a plain
    StreamHandler with a plain JsonAccessFormatter, writing "\n" after each line to a
    stream that writes ASCII as it is."""
    handler = access_log.own_json_handler
    if handler is None or type(handler) is not logging.StreamHandler:
        return None
    node = access_logger
    if node.filters or node.handlers != [handler] or node.propagate:
        return None
    if handler.filters or handler.level > logging.INFO or handler.terminator != "\n":
        return None
    if type(handler.formatter) is not access_log.JsonAccessFormatter:
        return None
    encoding = getattr(handler.stream, "encoding", None) or "ascii"
    try:
        if "{}\n".encode(encoding) != b"{}\n":
            return None
    except (LookupError, UnicodeError):
        return None
    return _stream_fd(handler)


def _stream_fd(handler: logging.StreamHandler) -> int | None:
    """The descriptor under the handler's stream, flushed so that what logging wrote comes
    before the server's lines; None when it has none."""
    try:
        handler.flush()
        return handler.stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


LOG_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": 5,  # uvicorn's TRACE level, below DEBUG
}


# The format of the handler configure_logging installs, and that handler (None when the
# application or --log-config configured logging).
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
_own_handler: logging.Handler | None = None


def configure_logging(level: str, use_colors: bool | None = None) -> None:
    """The log level of data-bridge's loggers and, unless the application or --log-config
    configured logging, a handler on stderr in LOG_FORMAT, coloured as ``use_colors`` says
    (None: when stderr is a terminal, as uvicorn decides)."""
    global _own_handler
    if level not in LOG_LEVELS:
        raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
    if not logging.getLogger().handlers and not logger.handlers:
        logging.basicConfig(format=LOG_FORMAT)
        _own_handler = logging.getLogger().handlers[0]
        if use_colors is None:
            stream = getattr(_own_handler, "stream", None)
            try:
                use_colors = bool(stream is not None and stream.isatty())
            except (AttributeError, ValueError):
                use_colors = False
        _own_handler.setFormatter(ColourFormatter(LOG_FORMAT, use_colors=use_colors))
    logger.setLevel(LOG_LEVELS[level])
    access_logger.setLevel(LOG_LEVELS[level])


def serve_config(app: Any, config: Config, sock: socket.socket | None = None) -> None:
    """Serve ``app`` as ``config`` says until SIGINT or SIGTERM; on ``sock`` when given (a
    listening socket bound by the caller: the reloader's), else on one bound here."""
    from data_bridge.api.applications import App

    if not isinstance(app, App) and not callable(app):
        raise TypeError(f"expected an App or an ASGI 3 callable, got {type(app).__name__}")
    if config.lifespan not in ("auto", "on", "off"):
        raise ValueError("lifespan must be 'auto', 'on' or 'off'")
    config.server_options()  # header errors before anything is bound
    if config.tls().enabled:
        config.tls().context()  # certificate errors too (each process loads its own later)
    if config.metrics is not None and not config.metrics.startswith("/"):
        raise ValueError("the metrics path must start with '/'")
    if config.max_worker_rss is not None and config.max_worker_rss <= 0:
        raise ValueError("max_worker_rss must be a positive number of MiB")
    configure_logging(config.log_level, config.use_colors)
    if config.access_log:
        use_access_format(access_logger, config.access_log_format)
    supervised = config.workers > 1 or config.max_worker_rss is not None
    area = None
    if config.metrics:
        # Shared memory (an anonymous MAP_SHARED mapping) made before forking: each worker
        # counts into its slot, a scrape sums them all.
        # Room for workers added by SIGTTIN: twice the workers, at least 8 more.
        most = max(2 * config.workers, config.workers + 8)
        slots = 1 if not supervised else Supervisor.slots_needed(most)
        area = mmap.mmap(-1, slots * METRICS_SLOT_SIZE)
    if sock is None:
        sock = bind_socket(config)
    where = describe(config, sock)
    if not supervised:
        _serve_once(
            app,
            config,
            sock,
            f"data-bridge serving on {where} (pid {os.getpid()})",
            metrics=(area, 0) if area is not None else None,
        )
    else:
        logger.info(
            "data-bridge serving on %s with %d workers (supervisor pid %d)",
            where,
            config.workers,
            os.getpid(),
        )

        def target(ready: Callable[[], None], slot: int) -> None:
            _serve_once(
                app,
                config,
                sock,
                ready=ready,
                metrics=(area, slot) if area is not None else None,
            )

        try:
            rss = config.max_worker_rss
            code = Supervisor(
                target,
                config.workers,
                config.timeout_graceful_shutdown,
                area,
                max_rss=rss << 20 if rss is not None else None,
            ).run()
        finally:
            sock.close()
        if code:
            raise SystemExit(code)


def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    log_level: str = "info",
    graceful_timeout: float | None = 10.0,
    root_path: str = "",
    lifespan: str = "auto",
    **options: Any,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM. An App (``data_bridge.api.App`` or
    ``FastAPI`` of ``data_bridge.api``) takes the native path; any other callable is served
    as an ASGI 3 application. Keyword arguments are ``Config`` fields (uvicorn's options:
    uds, fd, limit_concurrency, headers, ...) or set ``Limits`` fields (max_body,
    keepalive_timeout, ...). ``lifespan``: "auto" (the protocol is used unless the
    application does not support it), "on" (required) or "off". Exits with status 3 when
    the application's lifespan startup failed."""
    from data_bridge.api.applications import Limits

    names = set(Config.__dataclass_fields__) - {"limits"}
    limit_names = set(Limits.__dataclass_fields__)
    config_args = {k: v for k, v in options.items() if k in names}
    limits = {k: v for k, v in options.items() if k not in names}
    unknown = set(limits) - limit_names
    if unknown:
        raise TypeError(f"unknown serving options: {', '.join(sorted(unknown))}")
    config = Config(
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        timeout_graceful_shutdown=graceful_timeout,
        root_path=root_path,
        lifespan=lifespan,
        limits=limits,
        **config_args,
    )
    serve_config(app, config)
