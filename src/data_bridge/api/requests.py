"""The Request object a handler receives when it declares a parameter of this type.

Fields come from the native request lazily: nothing is converted unless it is read, and
what is read is cached. ``body()`` and ``json()`` are awaitable as in Starlette.
"""

from __future__ import annotations

from typing import Any

from data_bridge import _core
from data_bridge import json as _json
from data_bridge.api.datastructures import Headers, QueryParams


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
