"""data_bridge.json: the C JSON codec of data-bridge (RFC 8259, UTF-8 bytes).

``dumps`` and ``loads`` are the C functions themselves (no Python frame in between), the
same codec the HTTP server uses for every request and response body.

``dumps(obj, *, default=None, sort_keys=False, indent=None, non_str_keys=False,
naive_utc=False, decimal_as_string=False, option=0) -> bytes``
    Compact UTF-8 JSON. Encodes dict (str keys; other keys with ``non_str_keys``), list,
    tuple, str, int (any size), float (shortest round-trip repr), bool, None and their
    subclasses; datetime/date/time (RFC 3339, as ``isoformat()``; naive datetimes get a
    ``Z`` with ``naive_utc``), UUID, Enum (its value), Decimal (a number, or a string with
    ``decimal_as_string``), dataclasses, pydantic v2 models (what
    ``model_dump_json(by_alias=True)`` writes; plain models are written natively from
    their ``__dict__``) and anything else through ``default``. ``indent`` is None or 2.
    ``option`` ORs in the ``OPT_*`` flags. NaN, Infinity, circular references and nesting
    deeper than ``JSON_MAX_DEPTH`` raise :class:`JSONEncodeError` (a ``TypeError``).

``loads(data) -> object``
    Parses one strict RFC 8259 document from bytes, bytearray, memoryview or str.
    Integers of any size become int; floats are correctly rounded; duplicate keys keep the
    last value. Any deviation raises :class:`JSONDecodeError` (a ``json.JSONDecodeError``)
    whose ``pos``, ``lineno`` and ``colno`` count characters (code points) from the start
    of the document, also for bytes input.
"""

from __future__ import annotations

from data_bridge._core import (
    JSON_MAX_DEPTH,
    OPT_DECIMAL_STRING,
    OPT_INDENT_2,
    OPT_NAIVE_UTC,
    OPT_NON_STR_KEYS,
    OPT_SORT_KEYS,
    JSONDecodeError,
    JSONEncodeError,
    dumps,
    loads,
)

__all__ = [
    "JSON_MAX_DEPTH",
    "OPT_DECIMAL_STRING",
    "OPT_INDENT_2",
    "OPT_NAIVE_UTC",
    "OPT_NON_STR_KEYS",
    "OPT_SORT_KEYS",
    "JSONDecodeError",
    "JSONEncodeError",
    "dumps",
    "loads",
]
