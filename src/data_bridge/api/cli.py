"""The command line: ``data-bridge module:app [--host H] [--port P] [--workers N]``.

Like ``uvicorn module:app``: imports the module (from the current directory too), finds
the attribute and serves it: an App on the native path, any other callable as an ASGI 3
application (``data_bridge.serve``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from data_bridge._serve import serve
from data_bridge.api.applications import App


def load_app(spec: str) -> Any:
    """Import ``module:attribute`` (``module`` alone means attribute ``app``)."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise SystemExit(f"error: expected MODULE:APP, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
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
    if not isinstance(obj, App) and not callable(obj):
        raise SystemExit(
            f"error: {spec!r} is a {type(obj).__name__}, not a data_bridge App or an ASGI app"
        )
    return obj


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="data-bridge", description=__doc__)
    parser.add_argument("app", help="MODULE:APP, e.g. main:app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--max-body", type=int, default=1024 * 1024, help="bytes (413 above)")
    parser.add_argument("--keepalive-timeout", type=float, default=5.0, help="seconds")
    parser.add_argument(
        "--root-path", default="", help="ASGI apps: the scope's root_path (a proxy's prefix)"
    )
    parser.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        default="auto",
        help="ASGI apps: the lifespan protocol (auto: used when the app supports it)",
    )
    args = parser.parse_args(argv)
    app = load_app(args.app)
    options: dict[str, Any] = {}
    if not isinstance(app, App):
        options = {"root_path": args.root_path, "lifespan": args.lifespan}
    serve(
        app,
        args.host,
        args.port,
        workers=args.workers,
        log_level=args.log_level,
        max_body=args.max_body,
        keepalive_timeout=args.keepalive_timeout,
        **options,
    )


if __name__ == "__main__":
    main()
