"""Serving: ``data_bridge.serve(app)`` for an App (the native path) or any ASGI 3 app.

An ASGI application is served by the same native server as an App: the request is
parsed, limited and framed in C, and ``csrc/asgi/`` builds the ``http`` scope and the
receive/send callables in C for each request; no Python code of ours runs per request.
This module drives what runs once per process: the lifespan protocol (ASGI www spec,
"Lifespan Protocol") around serving, signals and the graceful shutdown, and workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

from data_bridge import _core, pyloop

logger = logging.getLogger("data_bridge")

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


def run_until_signalled(
    loop: asyncio.AbstractEventLoop,
    server: Any,
    graceful_timeout: float,
    spare: asyncio.Task[Any] | None = None,
) -> None:
    """Runs the loop until SIGINT or SIGTERM, then closes the server: requests in progress
    finish (those still running after graceful_timeout are cancelled, but not ``spare``,
    the lifespan's Task); a second signal stops at once."""
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

    def on_signal(signum: int) -> None:
        nonlocal stopping
        if stopping:
            loop.stop()  # a second signal: stop without waiting
            return
        stopping = True
        logger.info("shutting down (signal %d)", signum)
        server.close(callback=loop.stop)
        loop.call_later(graceful_timeout, give_up)

    server.handle_signals(on_signal)
    loop.run_forever()


def listen(server: Any, host: str, port: int, sock: socket.socket | None) -> None:
    if sock is not None:
        server.listen_fd(sock)
        return
    bound = server.listen(host, port)
    shown = f"[{host}]" if ":" in host else host
    logger.info("data-bridge serving on http://%s:%d (pid %d)", shown, bound, os.getpid())


def run_workers(
    serve_one: Callable[[str, int, socket.socket | None], None],
    host: str,
    port: int,
    workers: int,
    backlog: int,
) -> None:
    """Forks ``workers`` processes sharing one listening socket; each runs
    ``serve_one(host, port, sock)``. Returns when they all exited; SIGINT and SIGTERM are
    forwarded to them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    bound = sock.getsockname()[1]
    logger.info("data-bridge serving on http://%s:%d with %d workers", host, bound, workers)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                serve_one(host, bound, sock)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                logger.exception("worker failed")
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    sock.close()

    def forward(signum: int, frame: object) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    status = 0
    for pid in children:
        while True:
            try:
                _, st = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        status = status or os.waitstatus_to_exitcode(st)
    if status:
        raise SystemExit(status)


def _serve_asgi_once(
    app: Callable[..., Any],
    host: str,
    port: int,
    sock: socket.socket | None,
    limits: Any,
    graceful_timeout: float,
    root_path: str,
    lifespan: str,
) -> None:
    loop = pyloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        server = _core.Server(
            loop,
            max_body=limits.max_body,
            max_target=limits.max_target,
            max_header_bytes=limits.max_header_bytes,
            max_headers=limits.max_headers,
            keepalive_timeout=limits.keepalive_timeout,
            request_timeout=limits.request_timeout,
            backlog=limits.backlog,
        )
        life = Lifespan(app, loop) if lifespan != "off" else None
        if life is not None:
            try:
                loop.run_until_complete(life.startup())
            except RuntimeError as exc:
                logger.error("ASGI lifespan startup failed: %s", exc)
                raise SystemExit(STARTUP_FAILURE) from None
            if not life.supported and lifespan == "on":
                logger.error("the ASGI application does not support the lifespan protocol")
                raise SystemExit(STARTUP_FAILURE)
        state = life.state if life is not None and life.supported else None
        server.set_asgi(_core.AsgiApp(app, loop, log=_log, root_path=root_path, state=state))
        listen(server, host, port, sock)
        own = life.task if life is not None else None
        run_until_signalled(loop, server, graceful_timeout, own)
        # An application may go on after its response is complete (work after the last
        # send): its Tasks get the graceful timeout too, then are cancelled.
        pending = [t for t in asyncio.all_tasks(loop) if not t.done() and t is not own]
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=graceful_timeout))
            left = [t for t in pending if not t.done()]
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=1.0))
        if life is not None and life.supported:
            loop.run_until_complete(life.shutdown())
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    log_level: str = "info",
    graceful_timeout: float = 10.0,
    root_path: str = "",
    lifespan: str = "auto",
    **limits: Any,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM. An App (``data_bridge.api.App`` or
    ``FastAPI`` of ``data_bridge.api``) takes the native path (``App.run``); any other
    callable is served as an ASGI 3 application. Keyword arguments set ``Limits`` fields
    (max_body, keepalive_timeout, ...). ``lifespan``: "auto" (the protocol is used unless
    the application does not support it), "on" (required) or "off". Exits with status 3
    when the application's lifespan startup failed."""
    from data_bridge.api.applications import App, Limits

    if isinstance(app, App):
        if root_path:
            raise TypeError("root_path is not supported for an App here; set App(root_path=...)")
        app.run(
            host,
            port,
            workers=workers,
            log_level=log_level,
            graceful_timeout=graceful_timeout,
            **limits,
        )
        return
    if not callable(app):
        raise TypeError(f"expected an App or an ASGI 3 callable, got {type(app).__name__}")
    if lifespan not in ("auto", "on", "off"):
        raise ValueError("lifespan must be 'auto', 'on' or 'off'")
    if not logging.getLogger().handlers and not logger.handlers:
        logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    lim = Limits(**limits)

    def serve_one(h: str, p: int, sock: socket.socket | None) -> None:
        _serve_asgi_once(app, h, p, sock, lim, graceful_timeout, root_path, lifespan)

    if workers <= 1:
        serve_one(host, port, None)
    else:
        run_workers(serve_one, host, port, workers, lim.backlog)
