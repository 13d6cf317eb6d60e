"""data_bridge.log_colors: uvicorn's colours for log lines (--use-colors)."""

from __future__ import annotations

import logging

import pytest

from data_bridge.log_colors import ColourFormatter, style

FMT = "%(levelname)s %(name)s: %(message)s"


def record(name: str, level: int, msg: str, args: tuple[object, ...]) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


@pytest.mark.parametrize(
    "level, code",
    [
        (5, "34"),
        (logging.DEBUG, "36"),
        (logging.INFO, "32"),
        (logging.WARNING, "33"),
        (logging.ERROR, "31"),
        (logging.CRITICAL, "91"),
    ],
)
def test_level_names_in_their_colours(level: int, code: str) -> None:
    rec = record("data_bridge", level, "started on %s", ("x",))
    rec.levelname = logging.getLevelName(level) if level != 5 else "TRACE"
    line = ColourFormatter(FMT, use_colors=True).format(rec)
    assert line == f"\x1b[{code}m{rec.levelname}\x1b[0m data_bridge: started on x"
    # The record itself is left as it was (other handlers format it too).
    assert "\x1b" not in rec.levelname


@pytest.mark.parametrize(
    "status, code", [(101, "97"), (200, "32"), (304, "33"), (404, "31"), (503, "91")]
)
def test_access_lines_bold_request_and_status_by_class(status: int, code: str) -> None:
    args = ("127.0.0.1:5000", "GET", "/a?b=1", "1.1", status)
    rec = record("data_bridge.access", logging.INFO, '%s - "%s %s HTTP/%s" %d', args)
    line = ColourFormatter(FMT, use_colors=True).format(rec)
    assert line == (
        "\x1b[32mINFO\x1b[0m data_bridge.access: 127.0.0.1:5000 - "
        f'"\x1b[1mGET /a?b=1 HTTP/1.1\x1b[0m" \x1b[{code}m{status}\x1b[0m'
    )


def test_off_is_the_plain_formatter() -> None:
    args = ("127.0.0.1:5000", "GET", "/", "1.1", 200)
    rec = record("data_bridge.access", logging.INFO, '%s - "%s %s HTTP/%s" %d', args)
    assert ColourFormatter(FMT).format(rec) == logging.Formatter(FMT).format(rec)
    assert style("x", None) == "x"
