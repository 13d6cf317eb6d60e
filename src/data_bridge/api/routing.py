"""Route registration: the decorators shared by App and APIRouter.

An ``APIRouter`` groups routes (with a common prefix and tags) in their own module, and
``app.include_router(router, prefix=...)`` copies them into the app, as in FastAPI.
Registration only records routes and checks each handler's signature; the native plans
are built when the app starts.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from data_bridge.api._plan import RouteDefinitionError, build_plan
from data_bridge.api.depends import Depends, with_dependencies

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
    dependencies: tuple[Depends, ...] = ()
    response_model: Any = None

    def callable(self, call_handler: Callable[..., Any] | None = None) -> Callable[..., Any]:
        """What the server calls: the endpoint itself when nothing is added, else a
        coroutine function with the same request parameters that resolves dependencies
        first (depends.py), runs the handler through ``call_handler(handler, *args,
        **kwargs)`` (e.g. in a thread) and validates the result against response_model."""
        where = f"{self.name} for {self.path!r}"
        call = with_dependencies(self.endpoint, self.dependencies, where, call_handler)
        if call is self.endpoint and call_handler is not None:
            call = _through(self.endpoint, call_handler, where)
        if self.response_model is not None:
            call = _validated(call, self.response_model, where)
        return call


def _adopt_signature(wrapper: Callable[..., Any], func: Callable[..., Any], where: str) -> None:
    """Gives wrapper func's request parameters (resolved annotations, for build_plan)."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise RouteDefinitionError(f"cannot resolve annotations of {where}: {exc}") from exc
    hints.pop("return", None)
    wrapper.__name__ = getattr(func, "__name__", "handler")
    wrapper.__qualname__ = getattr(func, "__qualname__", wrapper.__name__)
    wrapper.__doc__ = func.__doc__
    wrapper.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    wrapper.__annotations__ = hints


def _through(
    func: Callable[..., Any], call_handler: Callable[..., Any], where: str
) -> Callable[..., Any]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        result = call_handler(func, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    _adopt_signature(call, func, where)
    return call


def _validated(func: Callable[..., Any], model: Any, where: str) -> Callable[..., Any]:
    """response_model: the result is validated (and filtered: fields the model lacks are
    dropped) by a pydantic TypeAdapter, reading attributes of objects too, as FastAPI does.
    A Response passes through; a result that does not validate is a server error (500)."""
    try:
        import pydantic
    except ImportError as exc:
        raise RouteDefinitionError(f"response_model needs pydantic ({where})") from exc
    try:
        adapter = pydantic.TypeAdapter(model)
    except pydantic.PydanticSchemaGenerationError as exc:
        raise RouteDefinitionError(f"unusable response_model {model!r} ({where})") from exc
    from data_bridge.api.responses import Response

    async def call(*args: Any, **kwargs: Any) -> Any:
        result = func(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Response):
            return result
        return adapter.validate_python(result, from_attributes=True)

    _adopt_signature(call, func, where)
    return call


def _check_prefix(prefix: str) -> str:
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValueError(f"a prefix must start with '/' and not end with '/': {prefix!r}")
    return prefix


def _check_dependencies(dependencies: Iterable[Depends]) -> tuple[Depends, ...]:
    deps = tuple(dependencies)
    for d in deps:
        if not isinstance(d, Depends) or d.dependency is None:
            raise TypeError(f"dependencies take Depends(callable) items, got {d!r}")
    return deps


class APIRouter:
    """A group of routes registered with FastAPI-style decorators."""

    def __init__(
        self, *, prefix: str = "", tags: Iterable[str] = (), dependencies: Iterable[Depends] = ()
    ) -> None:
        self.prefix = _check_prefix(prefix)
        self.tags = tuple(tags)
        self.dependencies = _check_dependencies(dependencies)
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
        dependencies: Iterable[Depends] = (),
        response_model: Any = None,
    ) -> Callable[[F], F]:
        """Register the decorated function for ``methods`` on ``path``.

        ``threaded=True`` runs a ``def`` handler in a thread pool instead of on the loop
        thread: for handlers that block (file or database calls without asyncio support).
        ``tags``, ``summary``, ``description`` (default: the docstring), ``deprecated`` and
        ``include_in_schema`` go to the OpenAPI document. ``dependencies`` run before the
        handler for their effects (their results are not passed). ``response_model``
        validates and filters the result (and documents it).
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
        all_deps = self.dependencies + _check_dependencies(dependencies)

        def decorator(func: F) -> F:
            if threaded and (inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)):
                raise ValueError(
                    f"threaded=True is for def handlers; {func.__qualname__} is async def"
                )
            route = Route(
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
                all_deps,
                response_model,
            )
            # Validate the signature (and the dependency tree) now, so that mistakes
            # surface at import time.
            build_plan(full, route.callable())
            self.routes.append(route)
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
        self,
        router: APIRouter,
        *,
        prefix: str = "",
        tags: Iterable[str] = (),
        dependencies: Iterable[Depends] = (),
    ) -> None:
        """Add every route of ``router`` here, under ``prefix``, with ``tags`` added and
        ``dependencies`` (then this router's own) running before the route's."""
        if router is self:
            raise ValueError("a router cannot include itself")
        prefix = self.prefix + _check_prefix(prefix)
        extra = tuple(tags)
        deps = self.dependencies + _check_dependencies(dependencies)
        for route in router.routes:
            merged = extra + tuple(t for t in route.tags if t not in extra)
            new = replace(
                route,
                path=prefix + route.path,
                tags=merged,
                dependencies=deps + route.dependencies,
            )
            build_plan(new.path, new.callable())  # the prefix may not add path parameters
            self.routes.append(new)
