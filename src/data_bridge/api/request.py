"""The Request object a handler receives when it declares a parameter of this type.

Fields come from the native request lazily: nothing is converted unless it is read, and
what is read is cached. ``body()`` and ``json()`` are awaitable as in Starlette.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

from data_bridge import _core
from data_bridge import json as _json
from data_bridge.api.responses import Headers


class QueryParams(Mapping[str, str]):
    """The query string as a read-only multi-mapping; ``[key]`` gives the last value."""

    __slots__ = ("_list", "_dict")

    def __init__(self, query_string: str = "") -> None:
        self._list = parse_qsl(query_string, keep_blank_values=True)
        self._dict = dict(self._list)

    def __getitem__(self, key: str) -> str:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def getlist(self, key: str) -> list[str]:
        return [v for k, v in self._list if k == key]

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._list)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"


class Request(_core.Request):
    """An HTTP request (method, path, query, headers, body)."""

    @property
    def headers(self) -> Headers:
        cached = self.__dict__.get("_headers")
        if cached is None:
            cached = self.__dict__["_headers"] = Headers(self.raw_headers)
        return cached

    @property
    def query_params(self) -> QueryParams:
        cached = self.__dict__.get("_query_params")
        if cached is None:
            cached = self.__dict__["_query_params"] = QueryParams(self.query_string)
        return cached

    async def body(self) -> bytes:
        """The whole request body (already received before the handler ran)."""
        return self._body

    async def json(self) -> Any:
        """The body decoded as JSON by the native codec."""
        return _json.loads(self._body)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path!r}>"
