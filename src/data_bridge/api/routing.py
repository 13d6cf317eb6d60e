"""Route registration: the decorators shared by App and APIRouter.

An ``APIRouter`` groups routes (with a common prefix and tags) in their own module, and
``app.include_router(router, prefix=...)`` copies them into the app, as in FastAPI.
Registration only records routes and checks each handler's signature; the native plans
are built when the app starts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from data_bridge.api._plan import build_plan

__all__ = ["METHOD_CODES", "APIRouter", "Route"]

F = TypeVar("F", bound=Callable[..., Any])

# http_method_t values shared with csrc/http/http.h.
METHOD_CODES = {
    "GET": 0,
    "HEAD": 1,
    "POST": 2,
    "PUT": 3,
    "PATCH": 4,
    "DELETE": 5,
    "OPTIONS": 6,
    "TRACE": 7,
    "CONNECT": 8,
}


@dataclass(frozen=True)
class Route:
    """One registered route."""

    path: str
    methods: tuple[str, ...]
    endpoint: Callable[..., Any]
    status_code: int = 200
    name: str = ""
    threaded: bool = False
    tags: tuple[str, ...] = ()
    summary: str | None = None
    description: str | None = None
    include_in_schema: bool = True
    deprecated: bool = False


def _check_prefix(prefix: str) -> str:
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValueError(f"a prefix must start with '/' and not end with '/': {prefix!r}")
    return prefix


class APIRouter:
    """A group of routes registered with FastAPI-style decorators."""

    def __init__(self, *, prefix: str = "", tags: Iterable[str] = ()) -> None:
        self.prefix = _check_prefix(prefix)
        self.tags = tuple(tags)
        self.routes: list[Route] = []

    def route(
        self,
        path: str,
        methods: Iterable[str] = ("GET",),
        *,
        status_code: int = 200,
        name: str | None = None,
        threaded: bool = False,
        tags: Iterable[str] = (),
        summary: str | None = None,
        description: str | None = None,
        include_in_schema: bool = True,
        deprecated: bool = False,
    ) -> Callable[[F], F]:
        """Register the decorated function for ``methods`` on ``path``.

        ``threaded=True`` runs a ``def`` handler in a thread pool instead of on the loop
        thread: for handlers that block (file or database calls without asyncio support).
        ``tags``, ``summary``, ``description`` (default: the docstring), ``deprecated`` and
        ``include_in_schema`` go to the OpenAPI document.
        """
        full = self.prefix + path
        if not full.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        wanted = tuple(m.upper() for m in methods)
        for m in wanted:
            if m not in METHOD_CODES:
                raise ValueError(f"unsupported method {m!r}")
        if not 100 <= status_code <= 999:
            raise ValueError(f"invalid status code {status_code!r}")
        all_tags = self.tags + tuple(t for t in tags if t not in self.tags)

        def decorator(func: F) -> F:
            if threaded and (inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)):
                raise ValueError(
                    f"threaded=True is for def handlers; {func.__qualname__} is async def"
                )
            # Validate the signature now, so mistakes surface at import time.
            build_plan(full, func)
            self.routes.append(
                Route(
                    full,
                    wanted,
                    func,
                    status_code,
                    name or getattr(func, "__name__", ""),
                    threaded,
                    all_tags,
                    summary,
                    description,
                    include_in_schema,
                    deprecated,
                )
            )
            return func

        return decorator

    def get(self, path: str, **kw: Any) -> Callable[[F], F]:
        return self.route(path, ("GET",), **kw)

    def post(self, path: str, **kw: Any) -> Callable[[F], F]:
        return self.route(path, ("POST",), **kw)

    def put(self, path: str, **kw: Any) -> Callable[[F], F]:
        return self.route(path, ("PUT",), **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[F], F]:
        return self.route(path, ("PATCH",), **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[F], F]:
        return self.route(path, ("DELETE",), **kw)

    def include_router(
        self, router: APIRouter, *, prefix: str = "", tags: Iterable[str] = ()
    ) -> None:
        """Add every route of ``router`` here, under ``prefix`` and with ``tags`` added."""
        if router is self:
            raise ValueError("a router cannot include itself")
        prefix = self.prefix + _check_prefix(prefix)
        extra = tuple(tags)
        for route in router.routes:
            path = prefix + route.path
            build_plan(path, route.endpoint)  # the prefix may not add path parameters
            merged = extra + tuple(t for t in route.tags if t not in extra)
            self.routes.append(replace(route, path=path, tags=merged))
