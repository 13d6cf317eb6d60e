"""The access log's formats. Each response is one record on the ``data_bridge.access``
logger whose arguments are uvicorn's: (client "host:port", method, target, HTTP version,
status). The default text format is uvicorn's; ``--access-log-format json`` writes one JSON
object a line with ``JsonAccessFormatter``, which a ``--log-config`` file may also name
(``"()": "data_bridge.access_log.JsonAccessFormatter"``).
"""

from __future__ import annotations

import json
import logging
import sys
import time

FORMATS = ("uvicorn", "json")

# The stdout handler use_format added for the JSON format (None while it added none): as
# long as the access records reach this handler alone, as it was made, the server writes
# its lines itself, byte for byte (csrc/app/access.c; _serve.written_access_log_fd).
own_json_handler: logging.StreamHandler | None = None


class JsonAccessFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601 with milliseconds), client, method,
    path (the request target as sent, query included), http_version, status, pid. JSON's
    escaping covers control characters; the server already wrote them as \\xNN. While the
    records reach only the handler use_format added, the server writes these same lines
    itself (csrc/app/access.c, app_access_write_json): a change here is made there too, and
    test_cli's comparison of the two checks that they agree."""

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            entry: dict[str, object] = {
                "time": self._time(record),
                "client": client,
                "method": method,
                "path": path,
                "http_version": version,
                "status": status,
                "pid": record.process,
            }
        else:  # a record of someone else's on this logger
            entry = {
                "time": self._time(record),
                "level": record.levelname,
                "message": record.getMessage(),
            }
        return json.dumps(entry, ensure_ascii=True, separators=(",", ":"))

    @staticmethod
    def _time(record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def use_format(logger: logging.Logger, fmt: str) -> None:
    """Gives ``logger`` the access-log format ``fmt``: "uvicorn" leaves it as configured;
    "json" formats its handlers' records as JSON, adding a stdout handler (where uvicorn
    writes its access log) when it has none of its own."""
    if fmt not in FORMATS:
        raise ValueError(f"access log format must be one of {', '.join(FORMATS)}")
    global own_json_handler
    if fmt == "uvicorn":
        return
    if not logger.handlers:
        own_json_handler = logging.StreamHandler(sys.stdout)
        logger.addHandler(own_json_handler)
        logger.propagate = False
    for handler in logger.handlers:
        handler.setFormatter(JsonAccessFormatter())
