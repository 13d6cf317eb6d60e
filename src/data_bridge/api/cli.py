"""The command line: ``data-bridge module:app [options]``, also ``python -m data_bridge``.

Takes uvicorn's options with uvicorn's names and defaults (``uvicorn --help``), so that a
Dockerfile's ``uvicorn main:app --host 0.0.0.0 --workers 4`` works with ``data-bridge`` in
its place. Imports the module (from --app-dir, the current directory by default), finds
the attribute and serves it: an App on the native path, any other callable as an ASGI 3
application (``data_bridge._serve``). An option of uvicorn's that the server cannot honour
yet is refused by name rather than ignored.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from data_bridge import __version__
from data_bridge._serve import LOG_LEVELS, Config, serve_config
from data_bridge._tls import SSL_PROTOCOL_VERSION
from data_bridge.api.applications import App, Limits

# uvicorn options not supported yet, refused when given: name -> what is missing. Those
# with a value are accepted at their default (the value uvicorn itself would use).
UNSUPPORTED_FLAGS = {
    "--http2": "HTTP/2",
    "--reset-contextvars": "fresh contextvars per request (each request already runs in "
    "a copy of the context)",
}
UNSUPPORTED_VALUES = {
    "--h11-max-incomplete-event-size": "h11",
    "--timeout-worker-healthcheck": "worker health checks",
}
# Choice options: the values that describe this server; any other is refused.
ACCEPTED_CHOICES = {
    "--loop": ("auto", "pyloop"),
    "--http": ("auto",),
    "--ws": ("auto", "none"),
    "--interface": ("auto", "asgi3"),
}


def load_app(spec: str, factory: bool = False) -> Any:
    """Import ``module:attribute`` (``module`` alone means attribute ``app``); with
    ``factory``, call the attribute with no arguments for the application (--factory)."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise SystemExit(f"error: expected MODULE:APP, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"error: cannot import {module_name!r}: {exc}") from exc
    obj = module
    for part in (attr or "app").split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"error: {module_name!r} has no attribute {attr or 'app'!r}") from None
    if factory:
        if not callable(obj):
            raise SystemExit(f"error: --factory: {spec!r} is not callable")
        obj = obj()
    if not isinstance(obj, App) and not callable(obj):
        raise SystemExit(
            f"error: {spec!r} is a {type(obj).__name__}, not a data_bridge App or an ASGI app"
        )
    return obj


def _header(value: str) -> tuple[str, str]:
    name, sep, rest = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {value!r}")
    return name.strip(), rest.strip()


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return default


def _ws_seconds(value: str) -> float | None:
    # uvicorn's --ws-ping-interval/--ws-ping-timeout are floats; 0 (or "none", as None in
    # uvicorn's Config) disables.
    if value.strip().lower() in ("none", "0", "0.0"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or 'none', got {value!r}") from None
    if not seconds > 0 or seconds >= 1e9:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return seconds


def _bool(value: str) -> bool:
    # click's BOOL, which uvicorn's --ws-per-message-deflate uses.
    v = value.strip().lower()
    if v in ("1", "true", "t", "yes", "y", "on"):
        return True
    if v in ("0", "false", "f", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {value!r}")


def _add_ws_options(p: argparse.ArgumentParser) -> None:
    """uvicorn's WebSocket options, with its defaults and meanings."""
    p.add_argument(
        "--ws-max-size", type=int, default=16777216, help="bytes per WebSocket message (1009 above)"
    )
    p.add_argument(
        "--ws-max-queue",
        type=int,
        default=32,
        help="received messages left unread before the server stops reading",
    )
    p.add_argument(
        "--ws-ping-interval",
        type=_ws_seconds,
        default=20.0,
        help="seconds between keep-alive pings of an idle WebSocket ('none': no pings)",
    )
    p.add_argument(
        "--ws-ping-timeout",
        type=_ws_seconds,
        default=20.0,
        help="seconds a ping's pong may take before the close with 1011 ('none': no limit)",
    )
    p.add_argument(
        "--ws-per-message-deflate",
        type=_bool,
        default=True,
        help="permessage-deflate compression (true or false)",
    )


ENV_PREFIX = "DATA_BRIDGE_"
ENV_HELP = (
    "Every option can also come from an environment variable: DATA_BRIDGE_ and the option's "
    "long name in capitals with '-' as '_' (DATA_BRIDGE_PORT=9000, DATA_BRIDGE_ACCESS_LOG="
    "false); a flag takes true/false/1/0/yes/no, a repeatable option values separated by "
    "spaces (the command line's add to them). The command line wins over the environment."
)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def env_name(action: argparse.Action) -> str:
    """The environment variable of an option: its first long name, DATA_BRIDGE_ first."""
    long = next(o for o in action.option_strings if o.startswith("--"))
    return ENV_PREFIX + long[2:].upper().replace("-", "_")


def _env_defaults(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Sets the defaults of the parser's options from DATA_BRIDGE_* variables (as uvicorn's
    UVICORN_* through click's auto_envvar_prefix)."""
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        name = env_name(action)
        raw = environ.get(name)
        if raw is None:
            continue
        try:
            action.default = _env_value(action, raw)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            parser.error(f"{name}={raw!r}: {exc}")


def _env_value(action: argparse.Action, raw: str) -> Any:
    def convert(text: str) -> Any:
        value = action.type(text) if callable(action.type) else text
        if action.choices is not None and value not in action.choices:
            raise ValueError(f"expected one of {', '.join(map(str, action.choices))}")
        return value

    if isinstance(action, (argparse._StoreTrueAction, argparse.BooleanOptionalAction)):
        if raw.strip().lower() in _TRUE:
            return True
        if raw.strip().lower() in _FALSE:
            return False
        raise ValueError("expected true or false")
    if isinstance(action, argparse._AppendAction):
        return [convert(part) for part in raw.split()]
    return convert(raw)


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser, its defaults taken from ``environ`` (the process's
    environment by default) where a DATA_BRIDGE_* variable is set."""
    p = argparse.ArgumentParser(
        prog="data-bridge",
        description=__doc__,
        epilog=ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    on_off = argparse.BooleanOptionalAction
    p.add_argument("app", help="MODULE:APP, e.g. main:app")
    p.add_argument("--host", default="127.0.0.1", help="bind socket to this host")
    p.add_argument("--port", type=int, default=8000, help="bind to this port (0: any free)")
    p.add_argument("--uds", help="bind to a UNIX domain socket")
    p.add_argument("--fd", type=int, help="serve on the listening socket of this descriptor")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: $WEB_CONCURRENCY or 1)",
    )
    p.add_argument("--lifespan", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--env-file", help="environment configuration file (python-dotenv)")
    p.add_argument("--log-config", help="logging configuration file (.json, .yaml or .ini)")
    p.add_argument("--log-level", choices=tuple(LOG_LEVELS), default="info")
    p.add_argument(
        "--access-log", action=on_off, default=True, help="the access log (uvicorn.access)"
    )
    p.add_argument(
        "--access-log-format",
        choices=("uvicorn", "json"),
        default="uvicorn",
        help="ours: the access log's lines, uvicorn's text or one JSON object a line (time, "
        "client, method, path, http_version, status, pid) on stdout",
    )
    p.add_argument(
        "--proxy-headers",
        action=on_off,
        default=True,
        help="X-Forwarded-Proto and X-Forwarded-For from --forwarded-allow-ips",
    )
    p.add_argument(
        "--use-colors",
        action=on_off,
        default=None,
        help="coloured log lines (default: when stderr is a terminal)",
    )
    p.add_argument("--server-header", action=on_off, default=True, help="the Server header")
    p.add_argument("--date-header", action=on_off, default=True, help="the Date header")
    p.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="addresses trusted with proxy headers, comma separated; '*' for all "
        "(default: $FORWARDED_ALLOW_IPS or 127.0.0.1,::1)",
    )
    p.add_argument(
        "--forwarded-headers",
        choices=("x-forwarded", "x-forwarded-host", "forwarded"),
        default="x-forwarded",
        help="ours: which fields the trusted proxies set: X-Forwarded-For and -Proto "
        "(uvicorn's), those and X-Forwarded-Host, or RFC 7239 Forwarded (for=, proto=, "
        "host=) alone. A proxy passes on the fields it does not set, so name only those it "
        "sets (default: x-forwarded)",
    )
    p.add_argument("--root-path", default="", help="the ASGI root_path (a proxy's prefix)")
    p.add_argument(
        "--limit-concurrency",
        type=int,
        default=None,
        help="open connections at which requests are answered 503",
    )
    p.add_argument("--backlog", type=int, default=2048, help="listen(2) backlog")
    p.add_argument(
        "--limit-max-requests",
        type=int,
        default=None,
        help="requests after which a worker exits (and is replaced)",
    )
    p.add_argument(
        "--limit-max-requests-jitter",
        "--max-requests-jitter",
        dest="limit_max_requests_jitter",
        type=int,
        default=0,
        help="a random 0..N added to --limit-max-requests per worker, so that workers "
        "started together are not recycled together",
    )
    p.add_argument(
        "--timeout-keep-alive",
        "--keepalive-timeout",
        dest="timeout_keep_alive",
        type=float,
        default=5.0,
        help="seconds an idle keep-alive connection is kept",
    )
    p.add_argument(
        "--timeout-graceful-shutdown",
        type=float,
        default=None,
        help="seconds in-flight requests get after SIGTERM (default: as long as they take)",
    )
    p.add_argument(
        "--header",
        dest="headers",
        action="append",
        type=_header,
        default=[],
        help="a default response header NAME:VALUE (repeatable)",
    )
    _add_ws_options(p)
    # TLS, as uvicorn's options (names, defaults, help); data_bridge._tls.
    p.add_argument("--ssl-keyfile", default=None, help="SSL key file")
    p.add_argument("--ssl-certfile", default=None, help="SSL certificate file")
    p.add_argument("--ssl-keyfile-password", default=None, help="SSL keyfile password")
    p.add_argument(
        "--ssl-version",
        type=int,
        default=SSL_PROTOCOL_VERSION,
        help="SSL version to use (see stdlib ssl module's) (default: %(default)s)",
    )
    p.add_argument(
        "--ssl-cert-reqs",
        type=int,
        default=0,
        help="Whether client certificate is required (see stdlib ssl module's) "
        "(default: %(default)s)",
    )
    p.add_argument("--ssl-ca-certs", default=None, help="CA certificates file")
    p.add_argument(
        "--ssl-ciphers",
        default=None,
        help="Ciphers to use (see stdlib ssl module's). Defaults to OpenSSL's safe defaults.",
    )
    p.add_argument("--version", action="version", version=f"data-bridge {__version__}")
    p.add_argument("--app-dir", default="", help="look for APP in this directory")
    p.add_argument("--factory", action="store_true", help="APP is a () -> app factory")
    for flag, choices in ACCEPTED_CHOICES.items():
        p.add_argument(flag, default="auto", help=f"accepted: {', '.join(choices)}")
    for flag in UNSUPPORTED_FLAGS:
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    for flag in UNSUPPORTED_VALUES:
        p.add_argument(flag, action="append", help=argparse.SUPPRESS)
    _add_reload_options(p)
    # Ours.
    p.add_argument("--max-body", type=int, default=Limits.max_body, help="bytes (413 above)")
    p.add_argument(
        "--max-upload",
        type=int,
        default=None,
        help="bytes of a body read as it arrives: uploads, request.stream(), ASGI apps "
        "(413 above; default: no limit for an App, --max-body for an ASGI app)",
    )
    p.add_argument(
        "--metrics",
        metavar="PATH",
        default=None,
        help="answer GET PATH with Prometheus metrics summed over the workers (off by default)",
    )
    p.add_argument(
        "--native",
        action=on_off,
        default=True,
        help="compile an unmodified FastAPI app's routes to native ones (on by default)",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="list which routes of a FastAPI app take the native path and why the others "
        "do not, then exit",
    )
    p.add_argument(
        "--timeout-header",
        type=float,
        default=None,
        help="seconds a request head has to arrive once its first byte came; slower "
        "(slowloris) gets 408 and the connection closes (default: the 30 s request timeout)",
    )
    p.add_argument(
        "--min-body-rate",
        type=float,
        default=None,
        help="ours: bytes a second a request body must average once --min-body-grace has "
        "passed since its head; slower gets 408 and the connection closes (default: off). "
        "A body a handler reads as it arrives counts only the time the server waits for it",
    )
    p.add_argument(
        "--min-body-grace",
        type=float,
        default=5.0,
        help="ours: seconds a body may take before --min-body-rate applies (default: 5)",
    )
    p.add_argument(
        "--timeout-handler",
        type=float,
        default=None,
        help="seconds a route's handler may run; then it is cancelled and the request "
        "answered 504 (default: as long as it takes)",
    )
    p.add_argument(
        "--health",
        action="store_true",
        help="answer GET /health (liveness) and GET /ready (readiness: 503 while draining "
        "or while a data_bridge.health check fails) before the routes, for probes",
    )
    p.add_argument(
        "--max-worker-rss",
        type=int,
        metavar="MIB",
        default=None,
        help="a worker whose resident memory passes MIB MiB is replaced: its successor "
        "starts, then it finishes its requests and exits (runs a supervisor even with one "
        "worker)",
    )
    _env_defaults(p, os.environ if environ is None else environ)
    return p


def _add_reload_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reload",
        action="store_true",
        help="restart the server when a watched file changes (development; one process)",
    )
    p.add_argument(
        "--reload-dir",
        dest="reload_dirs",
        action="append",
        default=[],
        help="a directory to watch (repeatable; default: the current directory)",
    )
    p.add_argument(
        "--reload-include",
        dest="reload_includes",
        action="append",
        default=[],
        help="a glob of files to watch (repeatable; default: '*.py')",
    )
    p.add_argument(
        "--reload-exclude",
        dest="reload_excludes",
        action="append",
        default=[],
        help="a glob of files and directories not to watch (repeatable; default: '.*', "
        "'.py[cod]', '.sw.*', '~*')",
    )
    p.add_argument(
        "--reload-delay",
        type=float,
        default=0.25,
        help="seconds between two looks at the watched files",
    )


def _refuse(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    def attr(flag: str) -> str:
        return flag[2:].replace("-", "_")

    for flag, what in UNSUPPORTED_FLAGS.items():
        if getattr(args, attr(flag)):
            parser.error(f"{flag} is not supported by data-bridge yet ({what})")
    for flag, what in UNSUPPORTED_VALUES.items():
        if getattr(args, attr(flag)) is not None:
            parser.error(f"{flag} is not supported by data-bridge yet ({what})")
    for flag, choices in ACCEPTED_CHOICES.items():
        value = getattr(args, attr(flag))
        if value not in choices:
            parser.error(
                f"{flag} {value} is not supported by data-bridge (only {', '.join(choices)})"
            )
    if args.uds is not None and args.fd is not None:
        parser.error("--uds and --fd cannot be used together")
    if args.reload and (args.workers or 0) > 1:
        parser.error("--reload runs one server process: it cannot be used with --workers")


def _load_env_file(path: str) -> None:
    try:
        from dotenv import load_dotenv
    except ImportError:
        raise SystemExit(
            "error: --env-file needs python-dotenv (pip install python-dotenv)"
        ) from None
    if not os.path.isfile(path):
        raise SystemExit(f"error: --env-file {path!r} does not exist")
    load_dotenv(dotenv_path=path)


def _load_log_config(path: str) -> None:
    import logging.config

    if path.endswith(".json"):
        import json

        with open(path) as f:
            logging.config.dictConfig(json.load(f))
    elif path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise SystemExit("error: a YAML --log-config needs PyYAML") from None
        with open(path) as f:
            logging.config.dictConfig(yaml.safe_load(f))
    else:
        logging.config.fileConfig(path, disable_existing_loggers=False)


def _explain(app: object) -> None:
    from data_bridge.api._fastapi_native import compile_fastapi, is_fastapi_app
    from data_bridge.api.applications import App

    if is_fastapi_app(app):
        print(compile_fastapi(app).explain())
    elif isinstance(app, App):
        print("a data-bridge App: every route takes the native path")
    else:
        print("an ASGI application: served through the ASGI driver")


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    _refuse(parser, args)
    if args.env_file:
        _load_env_file(args.env_file)
    if args.log_config:
        _load_log_config(args.log_config)
    # As uvicorn: --app-dir ("" is the current directory) goes first on sys.path.
    app_dir = os.path.abspath(args.app_dir or os.getcwd())
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    workers = args.workers if args.workers is not None else _env_int("WEB_CONCURRENCY", 1)
    if args.reload:
        workers = 1
    config = Config(
        host=args.host,
        port=args.port,
        uds=args.uds,
        fd=args.fd,
        workers=max(1, workers),
        log_level=args.log_level,
        access_log=args.access_log,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        forwarded_headers=args.forwarded_headers,
        min_body_rate=args.min_body_rate,
        min_body_grace=args.min_body_grace,
        root_path=args.root_path,
        limit_concurrency=args.limit_concurrency,
        limit_max_requests=args.limit_max_requests,
        limit_max_requests_jitter=args.limit_max_requests_jitter,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        headers=args.headers,
        server_header=args.server_header,
        date_header=args.date_header,
        lifespan=args.lifespan,
        metrics=args.metrics,
        ws_max_size=args.ws_max_size,
        ws_max_queue=args.ws_max_queue,
        ws_ping_interval=args.ws_ping_interval,
        ws_ping_timeout=args.ws_ping_timeout,
        ws_per_message_deflate=args.ws_per_message_deflate,
        native=args.native,
        timeout_header=args.timeout_header,
        max_worker_rss=args.max_worker_rss,
        access_log_format=args.access_log_format,
        use_colors=args.use_colors,
        health=args.health,
        timeout_handler=args.timeout_handler,
        ssl_keyfile=args.ssl_keyfile,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile_password=args.ssl_keyfile_password,
        ssl_version=args.ssl_version,
        ssl_cert_reqs=args.ssl_cert_reqs,
        ssl_ca_certs=args.ssl_ca_certs,
        ssl_ciphers=args.ssl_ciphers,
        limits={
            "max_body": args.max_body,
            "max_upload": args.max_upload,
            "keepalive_timeout": args.timeout_keep_alive,
            "backlog": args.backlog,
        },
    )
    if args.explain:
        _explain(load_app(args.app, factory=args.factory))
        return
    if args.reload:
        _reload(args, config)
        return
    if args.reload_dirs or args.reload_includes or args.reload_excludes:
        logging.getLogger("data_bridge").warning("--reload-* options without --reload: ignored")
    app = load_app(args.app, factory=args.factory)
    try:
        serve_config(app, config)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def _reload(args: argparse.Namespace, config: Config) -> None:
    """--reload: this process binds the socket and watches; each server process it forks
    imports the application afresh (``data_bridge._reload``)."""
    from data_bridge._reload import Reloader, Watcher
    from data_bridge._serve import bind_socket, configure_logging

    try:
        config.server_options()
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    configure_logging(config.log_level, config.use_colors)
    watcher = Watcher(args.reload_dirs, args.reload_includes, args.reload_excludes)
    sock = bind_socket(config)

    def serve(sock: socket.socket) -> None:
        try:
            serve_config(load_app(args.app, factory=args.factory), config, sock=sock)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None

    try:
        code = Reloader(serve, sock, watcher, args.reload_delay).run()
    finally:
        sock.close()
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
