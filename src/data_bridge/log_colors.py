"""Coloured log lines (``--use-colors``), as uvicorn colours them: the level name in the
level's colour, and in access lines the request line in bold and the status in the colour
of its class. Off (``--no-use-colors``) the lines are the plain ones; unset, colours are
used when the handler's stream is a terminal, as uvicorn decides.

While colours are on, the access log goes through logging (the server's own writer in
csrc/app/access.c writes plain lines only: data_bridge._serve.written_access_log_fd).
"""

from __future__ import annotations

import copy
import logging

__all__ = ["ColourFormatter", "style"]

_RESET = "\x1b[0m"
# ANSI SGR codes of the colours uvicorn names (click.style's foreground colours).
_CODES = {
    "blue": "34",
    "cyan": "36",
    "green": "32",
    "yellow": "33",
    "red": "31",
    "bright_red": "91",
    "bright_white": "97",
    "bold": "1",
}
_LEVEL_COLOURS = {
    5: "blue",  # TRACE
    logging.DEBUG: "cyan",
    logging.INFO: "green",
    logging.WARNING: "yellow",
    logging.ERROR: "red",
    logging.CRITICAL: "bright_red",
}
_STATUS_COLOURS = {1: "bright_white", 2: "green", 3: "yellow", 4: "red", 5: "bright_red"}
ACCESS_LOGGER = "data_bridge.access"


def style(text: str, colour: str | None) -> str:
    """``text`` in ``colour`` (one of _CODES' names), reset after; as it is for None."""
    if colour is None:
        return text
    return f"\x1b[{_CODES[colour]}m{text}{_RESET}"


class ColourFormatter(logging.Formatter):
    """A logging.Formatter whose lines are coloured when ``use_colors`` is true. The
    access logger's records (args: client, method, target, HTTP version, status) get the
    request line in bold and the status coloured by its class."""

    def __init__(self, fmt: str | None = None, use_colors: bool = False) -> None:
        super().__init__(fmt)
        self.use_colors = use_colors

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        if not self.use_colors:
            return super().formatMessage(record)
        record = copy.copy(record)
        record.levelname = style(record.levelname, _LEVEL_COLOURS.get(record.levelno))
        args = record.args
        if record.name == ACCESS_LOGGER and isinstance(args, tuple) and len(args) == 5:
            client, method, target, version, status = args
            line = style(f"{method} {target} HTTP/{version}", "bold")
            code = status if isinstance(status, int) else 0
            record.message = (
                f'{client} - "{line}" {style(str(status), _STATUS_COLOURS.get(code // 100))}'
            )
        return super().formatMessage(record)
