"""Parameter markers: where a handler parameter comes from, and its constraints.

Used like FastAPI's, either as the default value or inside ``Annotated``::

    async def search(
        q: str = Query(..., min_length=1, max_length=50, pattern="^[a-z ]+$"),
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        ids: list[int] = Query([]),                  # ?ids=1&ids=2
        user_agent: str | None = Header(None),       # the "user-agent" header
        session: str = Cookie(...),
        username: str = Form(...),                    # a field of a urlencoded form body
        item_id: int = Path(..., gt=0),
        item: Item = Body(..., embed=True),          # {"item": {...}}
    ): ...

The markers are read once, when the route plan is built; the native binder applies the
source, alias and constraints to every request. A value that breaks a constraint gives a
422 entry like FastAPI's (``greater_than_equal``, ``string_too_short``,
``string_pattern_mismatch``, ... with ``ctx``).
"""

from __future__ import annotations

import warnings
from typing import Any

from data_bridge.api.exceptions import FastAPIDeprecationWarning

__all__ = ["Body", "Cookie", "File", "Form", "Header", "Param", "Path", "Query"]


class Param:
    """Base of the markers; ``default=...`` (Ellipsis) means required."""

    source = ""

    def __init__(
        self,
        default: Any = ...,
        *,
        alias: str | None = None,
        title: str | None = None,
        description: str | None = None,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        regex: str | None = None,
        examples: list[Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        default_factory: Any = None,
        alias_priority: int | None = None,
        validation_alias: Any = None,
        serialization_alias: str | None = None,
        discriminator: str | None = None,
        strict: bool | None = None,
        multiple_of: float | None = None,
        allow_inf_nan: bool | None = None,
        max_digits: int | None = None,
        decimal_places: int | None = None,
        example: Any = None,
        openapi_examples: dict[str, Any] | None = None,
        json_schema_extra: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        if regex is not None:
            warnings.warn(
                "`regex` has been deprecated, please use `pattern` instead",
                FastAPIDeprecationWarning,
                stacklevel=3,
            )
            if pattern is not None:
                raise TypeError("pass pattern= or its old name regex=, not both")
            pattern = regex
        if example is not None:
            warnings.warn(
                "`example` has been deprecated, please use `examples` instead",
                FastAPIDeprecationWarning,
                stacklevel=3,
            )
        for name, value in (("min_length", min_length), ("max_length", max_length)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        for name, value in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise TypeError(f"{name} must be a number, got {value!r}")
        self.default = default
        self.alias = alias
        self.title = title
        self.description = description
        self.gt, self.ge, self.lt, self.le = gt, ge, lt, le
        self.min_length = min_length
        self.max_length = max_length
        self.pattern = pattern
        self.examples = examples
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        if default_factory is not None and default is not ...:
            raise TypeError("cannot specify both default and default_factory")
        self.default_factory = default_factory
        self.alias_priority = alias_priority
        self.validation_alias = validation_alias
        self.serialization_alias = serialization_alias
        self.discriminator = discriminator
        self.strict = strict
        self.multiple_of = multiple_of
        self.allow_inf_nan = allow_inf_nan
        self.max_digits = max_digits
        self.decimal_places = decimal_places
        self.example = example
        self.openapi_examples = openapi_examples
        self.json_schema_extra = dict(json_schema_extra or {}, **extra) or None

    @property
    def required(self) -> bool:
        return self.default is ...

    def has_numeric_bounds(self) -> bool:
        return any(v is not None for v in (self.gt, self.ge, self.lt, self.le))

    def has_length_bounds(self) -> bool:
        return self.min_length is not None or self.max_length is not None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.default!r})"


class Query(Param):
    """A query-string parameter; ``list[...]`` collects every occurrence."""

    source = "query"


class Path(Param):
    """A path parameter (named in the route template); always required."""

    source = "path"


class Header(Param):
    """A request header. Without an alias, the name's underscores become hyphens
    (``user_agent`` reads ``User-Agent``) unless ``convert_underscores=False``."""

    source = "header"

    def __init__(self, default: Any = ..., *, convert_underscores: bool = True, **kw: Any) -> None:
        super().__init__(default, **kw)
        self.convert_underscores = convert_underscores


class Cookie(Param):
    """A cookie of the request's Cookie header."""

    source = "cookie"


class Form(Param):
    """A field of an HTML form body (``application/x-www-form-urlencoded``); ``list[...]``
    collects every occurrence. Fields of a body of another type are missing."""

    source = "form"

    def __init__(self, default: Any = ..., *, media_type: str | None = None, **kw: Any) -> None:
        super().__init__(default, **kw)
        self.media_type = media_type or "application/x-www-form-urlencoded"


class File(Form):
    """An uploaded file of a multipart/form-data body."""

    def __init__(self, default: Any = ..., *, media_type: str | None = None, **kw: Any) -> None:
        super().__init__(default, media_type=media_type or "multipart/form-data", **kw)


class Body(Param):
    """A JSON body parameter. ``embed=True`` expects ``{"<name>": value}`` even when it is
    the only body parameter."""

    source = "body"
    media_type = "application/json"

    def __init__(
        self,
        default: Any = ...,
        *,
        embed: bool | None = None,
        media_type: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(default, **kw)
        self.embed = bool(embed)
        if media_type is not None:
            self.media_type = media_type
