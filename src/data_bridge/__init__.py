"""data-bridge: a Python web API framework whose request path is native C."""

__version__ = "0.1.0"


def serve(app: object, host: str = "127.0.0.1", port: int = 8000, **options: object) -> None:
    """Serve ``app`` on host:port until SIGINT or SIGTERM: an App on the native path, any
    other ASGI 3 application through the native server's ASGI driver. Options: workers,
    log_level, graceful_timeout, root_path, lifespan, the command line's (uds, fd,
    access_log, proxy_headers, forwarded_allow_ips, limit_concurrency, limit_max_requests,
    headers, server_header, date_header, metrics, ...; see ``data_bridge._serve.Config``)
    and the server limits (max_body, keepalive_timeout, ...)."""
    from data_bridge._serve import serve as _serve

    _serve(app, host, port, **options)  # type: ignore[arg-type]
