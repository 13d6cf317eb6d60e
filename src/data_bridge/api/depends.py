"""Dependency injection: ``Depends`` as in FastAPI.

A parameter whose default (or ``Annotated`` metadata) is ``Depends(func)`` receives
``func``'s result. ``func``'s own parameters are bound from the request like a handler's
(path, query, header, cookie, body, ``Request``) and may depend on other functions in turn;
each dependency runs once per request (unless ``use_cache=False``). A dependency written as
a generator (``yield``) sets up, hands over the yielded value and tears down, as in
FastAPI 0.165: with ``scope="request"`` (the default) after the response was sent (a
streaming response's whole body, then the background tasks), with ``scope="function"``
as soon as the handler returned and its result was turned into the response, before
anything is sent. An exception from the handler (or from resolving a later dependency, or
from the response model) is thrown into every generator at its ``yield``, innermost
first, function scope before request scope, so ``except``/``finally`` see it and may
replace it; the exception left at the end is answered as usual. A generator that swallows
it leaves nothing to answer with: FastAPIError ("Response not awaited", a 500), as in
FastAPI. Routes (and routers and the app) also take ``dependencies=[Depends(...)]`` that
run for their side effects (auth checks).

How it is served: at registration the dependency tree is flattened into one signature of
all the request parameters it needs (the native binder binds them as usual, in C), and
the route's callable becomes a coroutine that resolves the tree and calls the handler.
Routes without dependencies are left untouched (no extra frame).
"""

from __future__ import annotations

import functools
import inspect
import logging
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from data_bridge.api import _foreign
from data_bridge.api._foreign import native_default, native_hints
from data_bridge.api._forms import (
    bind_form_fields,
    form_field,
    is_file_annotation,
    is_file_marker,
)
from data_bridge.api._param_models import group_dependency, param_model_of
from data_bridge.api._plan import (
    ARG_BODY,
    ARG_COOKIE,
    ARG_FORM,
    ARG_HEADER,
    ARG_PATH,
    ARG_QUERY,
    FLAG_EMBED,
    RouteDefinitionError,
    _marker_of,
    build_plan,
)
from data_bridge.api.background import BackgroundTasks, report_exception, start_background
from data_bridge.api.exceptions import DependencyScopeError, FastAPIError, RequestValidationError
from data_bridge.api.params import Param
from data_bridge.api.requests import Request
from data_bridge.api.responses import Response, StreamingResponse
from data_bridge.api.security.base import SecurityBase, SecurityScopes

__all__ = ["BackgroundTasks", "Depends", "Security", "with_dependencies"]

logger = logging.getLogger("data_bridge")


class Depends:
    """Marks a parameter as the result of ``dependency`` (called once per request)."""

    def __init__(
        self,
        dependency: Callable[..., Any] | None = None,
        *,
        use_cache: bool = True,
        scope: str | None = None,
    ) -> None:
        if dependency is not None and not callable(dependency):
            raise TypeError(f"Depends() takes a callable, got {dependency!r}")
        if scope not in (None, "function", "request"):
            raise ValueError(f"Depends(scope=...) is 'function' or 'request', not {scope!r}")
        self.dependency = dependency
        self.use_cache = use_cache
        self.scope = scope

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__qualname__", self.dependency)
        cache = "" if self.use_cache else ", use_cache=False"
        return f"{type(self).__name__}({name}{cache})"


class Security(Depends):
    """A dependency that also declares the OAuth2 ``scopes`` it needs."""

    def __init__(
        self,
        dependency: Callable[..., Any] | None = None,
        *,
        scopes: Sequence[str] | None = None,
        use_cache: bool = True,
    ) -> None:
        super().__init__(dependency, use_cache=use_cache)
        self.scopes = list(scopes or [])


@dataclass
class _Node:
    call: Callable[..., Any]
    use_cache: bool
    # (parameter name, leaf name) for request values, (parameter name, node) for results.
    leaves: list[str] = field(default_factory=list)
    # (parameter name, BackgroundTasks or Response): objects made once per request.
    special: list[tuple[str, Any]] = field(default_factory=list)
    children: list[tuple[str, _Node]] = field(default_factory=list)
    kind: str = "call"  # "call", "async", "gen" or "agen"
    # Scopes of the Security() dependencies from the route down to this one.
    scopes: list[str] = field(default_factory=list)
    # Depends(scope=...) as declared, or "request" for a generator (FastAPI's computed
    # scope): part of the cache key, and for a generator when its teardown runs.
    scope: str | None = None

    def subtree_leaves(self) -> set[str]:
        """The request parameters this dependency and its own dependencies need."""
        cached = self.__dict__.get("_subtree")
        if cached is None:
            cached = set(self.leaves)
            for _, child in self.children:
                cached |= child.subtree_leaves()
            self.__dict__["_subtree"] = cached
        return cached

    @property
    def cache_key(self) -> Any:
        # As FastAPI: the same dependency with other required OAuth2 scopes, or in another
        # scope, is another value.
        if self.scopes or self.scope is not None:
            return (self.call, tuple(self.scopes), self.scope)
        return self.call

    @property
    def function_scope(self) -> bool:
        """A generator torn down before the response is sent (``scope="function"``)."""
        return self.scope == "function"


def _depends_of(annotation: Any, default: Any) -> tuple[Any, Depends | None]:
    if typing.get_origin(annotation) is typing.Annotated:
        args = typing.get_args(annotation)
        for meta in args[1:]:
            if isinstance(meta, Depends):
                return args[0], meta
    if isinstance(default, Depends):
        return annotation, default
    return annotation, None


def _param_model(annotation: Any, default: Any) -> tuple[Any, Param, Any] | None:
    """(model, marker, default) for a parameter model of query/header/cookie/form fields."""
    if not (typing.get_origin(annotation) is typing.Annotated or isinstance(default, Param)):
        return None
    inner, marker, value = _marker_of(annotation, default)
    model = param_model_of(inner, marker)
    if marker is not None and model is not None:
        required = value is Ellipsis or value is inspect.Parameter.empty
        return model, marker, Ellipsis if required else value
    return None


def _sub_response() -> Response:
    """The injected ``response: Response`` of a request: an empty 200 with no headers,
    made without Response.__init__ (it renders nothing)."""
    sub = Response.__new__(Response)
    sub.__dict__.update(status_code=200, body=b"", raw_headers=[])
    return sub


# The keyword through which the native binder hands a lenient route its binding errors
# (csrc/app/invoke.c), and a leaf name for errors no parameter claims.
BINDING_ERRORS = "__db_binding_errors__"
_UNKNOWN_LEAF = "\x00unknown"
_SOURCE_ORDER = {"path": 0, "query": 1, "header": 2, "cookie": 3, "body": 4}
_SOURCE_NAMES = {
    ARG_PATH: "path",
    ARG_QUERY: "query",
    ARG_HEADER: "header",
    ARG_COOKIE: "cookie",
    ARG_FORM: "body",
    ARG_BODY: "body",
}

# The hidden parameter through which a route with file parameters receives the Request.
_FORM_REQUEST = "__db_form_request__"


def _take_file_form_fields(flat: _Flattener) -> list[Any]:
    """When the request parameters include a file (File(), UploadFile), every form
    parameter is bound from the parsed multipart form in Python (_forms.py) instead of by
    the native binder: they are taken out of the flattened signature, which gets the
    Request instead. Returns the form fields, or [] for routes without files."""
    found = []
    has_file = False
    for name, param in flat.params.items():
        annotation = flat.annotations.get(name, param.annotation)
        if not (
            typing.get_origin(annotation) is typing.Annotated or isinstance(param.default, Param)
        ):
            if is_file_annotation(annotation):
                found.append((name, annotation, None, param.default))
                has_file = True
            continue
        inner, marker, default = _marker_of(annotation, param.default)
        if is_file_annotation(inner) or is_file_marker(marker):
            has_file = True
        if (marker is not None and marker.source == "form") or is_file_annotation(inner):
            found.append((name, inner, marker, default))
    if not has_file:
        return []
    fields = []
    for name, annotation, marker, default in found:
        fields.append(form_field(name, annotation, marker, default))
        del flat.params[name]
        flat.annotations.pop(name, None)
    flat.params[_FORM_REQUEST] = inspect.Parameter(
        _FORM_REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request
    )
    flat.annotations[_FORM_REQUEST] = Request
    return fields


def _impartial(call: Any) -> Any:
    while isinstance(call, functools.partial):
        call = call.func
    return call


def _unwrapped(call: Any) -> Any:
    try:
        return inspect.unwrap(_impartial(call))
    except ValueError:  # a __wrapped__ cycle
        return _impartial(call)


def _kind_of(call: Any, target: Any) -> str:
    """How a dependency is called: "agen" or "gen" (a generator dependency), "async"
    (awaited without asking inspect.isawaitable each request) or "call" (its result is
    awaited if it is awaitable). As FastAPI decides: through functools.partial layers,
    functools.wraps decorators (``__wrapped__``) and a callable instance's ``__call__``."""
    candidates = [target, _impartial(call), _unwrapped(call)]
    if not inspect.isclass(candidates[-1]):
        for owner in (_impartial(call), _unwrapped(call)):
            dunder = getattr(owner, "__call__", None)  # noqa: B004 (callable instances)
            if dunder is not None:
                candidates += [_impartial(dunder), _unwrapped(dunder)]
    if any(inspect.isasyncgenfunction(c) for c in candidates):
        return "agen"
    if any(inspect.isgeneratorfunction(c) for c in candidates):
        return "gen"
    if inspect.iscoroutinefunction(target):
        return "async"
    return "call"


class _Flattener:
    """Walks the dependency tree once, collecting the request parameters it needs."""

    def __init__(self, where: str, overrides: Mapping[Any, Any]) -> None:
        self.where = where
        self.overrides = overrides
        self.uses_response = False
        # (security scheme, scopes) of every security dependency met, for OpenAPI.
        self.security: list[tuple[Any, list[str]]] = []
        self.params: dict[str, inspect.Parameter] = {}
        self.annotations: dict[str, Any] = {}
        self.active: list[Callable[..., Any]] = []
        self.uses_background = False

    def node(
        self,
        call: Callable[..., Any],
        use_cache: bool = True,
        scopes: Sequence[str] = (),
        scope: str | None = None,
    ) -> _Node:
        original = call
        call = self.overrides.get(call, call)
        if call in self.active:
            raise RouteDefinitionError(f"dependency cycle through {call!r} ({self.where})")
        self.active.append(call)
        try:
            node = self._node(call, use_cache, list(scopes), scope)
            if isinstance(original, SecurityBase):
                self.security.append((original, list(scopes)))
            return node
        finally:
            self.active.pop()

    def _node(
        self, call: Callable[..., Any], use_cache: bool, scopes: list[str], scope: str | None
    ) -> _Node:
        target = call
        if inspect.isclass(call):
            target = call.__init__  # type: ignore[misc]
        elif not (inspect.isfunction(call) or inspect.ismethod(call)):
            target = getattr(call, "__call__", call)  # noqa: B004 (callable instances)
        try:
            hints = typing.get_type_hints(target, include_extras=True)
        except Exception as exc:
            raise RouteDefinitionError(
                f"cannot resolve annotations of {call!r} ({self.where}): {exc}"
            ) from exc
        hints = native_hints(hints)
        kind = _kind_of(call, target)
        if scope is None and kind in ("gen", "agen"):
            scope = "request"
        node = _Node(call, use_cache, kind=kind, scopes=scopes, scope=scope)
        for p in inspect.signature(call).parameters.values():
            default = native_default(p.default)
            if default is not p.default:
                p = p.replace(default=default)
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise RouteDefinitionError(
                    f"*args/**kwargs and positional-only parameters are not supported in "
                    f"{call!r} ({self.where})"
                )
            annotation = hints.get(p.name, inspect.Parameter.empty)
            inner, dep = _depends_of(annotation, p.default)
            if dep is not None:
                sub = dep.dependency
                if sub is None:  # Depends() with the annotation as the dependency
                    sub = inner
                if not callable(sub):
                    raise RouteDefinitionError(
                        f"Depends() of {p.name!r} needs a callable ({self.where})"
                    )
                if node.kind in ("gen", "agen") and scope == "request" and dep.scope == "function":
                    # As FastAPI: its teardown would come before this one's.
                    name = getattr(call, "__name__", "<unnamed_callable>")
                    raise DependencyScopeError(
                        f'The dependency "{name}" has a scope of "request", it cannot depend '
                        'on dependencies with scope "function".'
                    )
                sub_scopes = scopes + list(getattr(dep, "scopes", []))
                child = self.node(sub, dep.use_cache, sub_scopes, dep.scope)
                node.children.append((p.name, child))
                continue
            group = _param_model(annotation, p.default)
            if group is not None:
                model, marker, value = group
                reader = group_dependency(model, marker, p.name, value)
                node.children.append((p.name, self.node(reader, True, scopes)))
                continue
            if inner is BackgroundTasks:
                node.special.append((p.name, BackgroundTasks))
                self.uses_background = True
                continue
            if inner is SecurityScopes:
                node.special.append((p.name, SecurityScopes))
                continue
            if isinstance(inner, type) and issubclass(inner, Response):
                node.special.append((p.name, Response))
                self.uses_response = True
                continue
            self._leaf(p, annotation)
            node.leaves.append(p.name)
        return node

    def _leaf(self, p: inspect.Parameter, annotation: Any) -> None:
        leaf = p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
        seen = self.params.get(p.name)
        if seen is None:
            self.params[p.name] = leaf
            if annotation is not inspect.Parameter.empty:
                self.annotations[p.name] = annotation
            return
        if seen.annotation != leaf.annotation or (
            seen.default is not leaf.default and seen.default != leaf.default
        ):
            raise RouteDefinitionError(
                f"parameter {p.name!r} is declared differently by two dependencies ({self.where})"
            )


# A generator dependency that was entered: (kind, generator, torn down in function scope).
_Entered = tuple[str, Any, bool]


async def _unwind(stack: list[_Entered], exc: BaseException | None) -> BaseException | None:
    """Exits the generators of ``stack`` innermost first, as an AsyncExitStack exits its
    contexts: each is resumed at its ``yield`` with the exception left by those inside it
    thrown in, or resumed plainly when there is none. A generator that raises replaces the
    exception; one that returns swallows it, so the next ones exit plainly. Returns the
    exception left at the end (None when there is none)."""
    while stack:
        kind, gen, _ = stack.pop()
        try:
            if exc is None:
                if kind == "agen":
                    await gen.__anext__()
                else:
                    next(gen)
            elif kind == "agen":
                await gen.athrow(exc)
            else:
                gen.throw(exc)
        except (StopIteration, StopAsyncIteration):
            exc = None
            continue
        except BaseException as raised:  # noqa: BLE001 - handed on like AsyncExitStack does
            exc = raised
            continue
        # As contextlib's context managers: a dependency yields once.
        if kind == "agen":
            await gen.aclose()
        else:
            gen.close()
        exc = RuntimeError(f"dependency generator {gen!r} yielded more than once")
    return exc


def _split_scopes(stack: list[_Entered]) -> tuple[list[_Entered], list[_Entered]]:
    """The entered generators of scope "function" and those of scope "request", each in
    the order they were entered."""
    function = [entry for entry in stack if entry[2]]
    if not function:
        return function, stack
    return function, [entry for entry in stack if not entry[2]]


def _not_awaited() -> FastAPIError:
    return FastAPIError(
        "Response not awaited. There's a high chance that the application code is raising "
        "an exception and a dependency with yield has a block with a bare except, or a block "
        "with except Exception, and is not raising the exception again. Read more about it "
        "in the docs: https://fastapi.tiangolo.com/tutorial/dependencies/"
        "dependencies-with-yield/#dependencies-with-yield-and-except"
    )


async def _unwind_after_error(stack: list[_Entered], exc: BaseException) -> BaseException:
    """Tears every entered generator down with ``exc`` (raised by the handler, by a later
    dependency or by the function-scope teardown), function scope first, and returns the
    exception to answer with. A generator that swallowed the exception leaves no response:
    FastAPI then fails with FastAPIError (a 500), so this does too (from a function-scope
    generator, that error is what the request-scope ones see; FastAPI hands them an
    UnboundLocalError from its own code there)."""
    function, request = _split_scopes(stack)
    left = await _unwind(function, exc)
    if left is None:
        left = _not_awaited()
    left = await _unwind(request, left)
    return _not_awaited() if left is None else left


class _AfterResponse:
    """A response's background when the request entered request-scope generator
    dependencies: the background work first (the response's own, or the request's
    BackgroundTasks), then their teardown, as FastAPI exits its request stack after the
    response was sent. An exception from the teardown cannot change the response any
    more: it is reported (logged, or raised by the test client)."""

    def __init__(self, background: Any, stack: list[_Entered], where: str) -> None:
        self.background = background
        self.stack = stack
        self.where = where

    async def __call__(self) -> None:
        exc: BaseException | None = None
        try:
            if self.background is not None:
                await self.background()
        except BaseException as raised:
            exc = raised
            raise
        finally:
            left = await _unwind(self.stack, exc)
            if left is not None and left is not exc:
                report_exception(left, self.where)


async def _close_form(form_request: Any) -> None:
    """Closes the uploaded files of a request whose handler failed."""
    if form_request is not None and "_form" in form_request.__dict__:
        await form_request.__dict__["_form"].close()


async def _resolve(
    node: _Node, request_values: dict[str, Any], cache: dict[Any, Any], stack: list[_Entered]
) -> Any:
    key = node.cache_key
    if node.use_cache and key in cache:
        return cache[key]
    kwargs = {name: request_values[name] for name in node.leaves}
    for name, kind in node.special:
        kwargs[name] = SecurityScopes(node.scopes) if kind is SecurityScopes else cache[kind]
    for name, child in node.children:
        kwargs[name] = await _resolve(child, request_values, cache, stack)
    if node.kind == "agen":
        gen = node.call(**kwargs)
        value = await gen.__anext__()
        stack.append(("agen", gen, node.function_scope))
    elif node.kind == "gen":
        gen = node.call(**kwargs)
        value = next(gen)
        stack.append(("gen", gen, node.function_scope))
    elif node.kind == "async":
        value = await node.call(**kwargs)
    else:
        value = node.call(**kwargs)
        if inspect.isawaitable(value):
            value = await value
    if node.use_cache:
        cache[key] = value
    return value


def _response_only_call(
    handler: Callable[..., Any],
    responder: Callable[[Any, Any], Any] | None,
    leaves: tuple[str, ...],
    special: list[tuple[str, Any]],
) -> Callable[..., Any]:
    """The route's callable when the one thing to inject is the ``response: Response``
    (FastAPI's tutorial's set_cookie and header routes): what the general callable does for
    such a route (no dependencies, no BackgroundTasks, no generators to unwind), without
    its bookkeeping."""
    names = tuple(name for name, _ in special)

    async def call(**request_values: Any) -> Any:
        sub_response = _sub_response()
        kwargs = {name: request_values[name] for name in leaves}
        for name in names:
            kwargs[name] = sub_response
        result = handler(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        if _foreign.FOREIGN_RESPONSE is not None:
            result = _foreign.convert_result(result)
        if responder is not None:
            result = responder(result, sub_response)
        if isinstance(result, Response) and isinstance(result.background, _AfterResponse):
            # A Response object returned again (a module-level one): its own background,
            # not the teardown of an earlier request (as the general callable decides).
            inner = result.background.background
            if inner is not None:
                result.background = inner
        return result

    return call


def with_dependencies(
    handler: Callable[..., Any],
    dependencies: Iterable[Depends],
    where: str,
    call_handler: Callable[..., Any] | None = None,
    responder: Callable[[Any, Any], Any] | None = None,
    overrides: Mapping[Any, Any] | None = None,
    path: str | None = None,
    *,
    form_limits: tuple[int, int, int] = (1000, 1000, 1024 * 1024),
) -> Callable[..., Any]:
    """The route's callable: ``handler`` itself when nothing depends on anything and no
    call_handler or responder is given, else a coroutine function over the flattened
    request parameters that resolves the tree, runs the handler (through
    ``call_handler(handler, **kwargs)`` when given, e.g. in a thread) and passes its result
    with the injected ``Response`` (or None) to ``responder``. ``overrides`` replaces
    dependencies (``app.dependency_overrides``)."""
    extra = list(dependencies)
    flat = _Flattener(where, overrides or {})
    root = flat.node(handler)
    form_fields = _take_file_form_fields(flat)
    if (
        not form_fields
        and not root.children
        and not extra
        and not flat.uses_background
        and not flat.uses_response
        and call_handler is None
        and (responder is None or getattr(responder, "trivial", False))
    ):
        return handler
    if any(d.dependency is None for d in extra):
        raise RouteDefinitionError(f"dependencies=[Depends()] needs a callable ({where})")
    side = [
        flat.node(d.dependency, d.use_cache, list(getattr(d, "scopes", [])), d.scope)
        for d in extra
        if d.dependency is not None
    ]
    leaf_names = list(flat.params)
    trivial = getattr(responder, "trivial", False)

    async def call(**request_values: Any) -> Any:
        # Set by the native binder (routes marked lenient) when binding failed: the
        # dependencies whose own parameters bound still run, in FastAPI's order, and may
        # answer first (an auth check's 401 before a body's 422).
        binding_errors = request_values.pop(BINDING_ERRORS, None)
        grouped = _by_leaf(binding_errors) if binding_errors else None
        failed = set(grouped) if grouped else None
        form_request: Any = None
        background = BackgroundTasks()
        sub_response = _sub_response() if flat.uses_response else None
        cache: dict[Any, Any] = {BackgroundTasks: background, Response: sub_response}
        stack: list[_Entered] = []
        try:
            if form_fields:
                form_request = request_values.pop(_FORM_REQUEST)
                request_values.update(
                    await bind_form_fields(form_request, form_fields, form_limits)
                )
            for node in side:
                if failed is None or not node.subtree_leaves() & failed:
                    await _resolve(node, request_values, cache, stack)
            kwargs = {name: request_values[name] for name in root.leaves}
            for name, kind in root.special:
                kwargs[name] = SecurityScopes([]) if kind is SecurityScopes else cache[kind]
            for name, child in root.children:
                if failed is None or not child.subtree_leaves() & failed:
                    kwargs[name] = await _resolve(child, request_values, cache, stack)
            if grouped:
                raise RequestValidationError(_in_fastapi_order(grouped))
            if call_handler is not None:
                result = call_handler(handler, **kwargs)
            else:
                result = handler(**kwargs)
            if inspect.isawaitable(result):
                result = await result
            if _foreign.FOREIGN_RESPONSE is not None:
                result = _foreign.convert_result(result)
            # Inside the function scope, as in FastAPI: a response model's validation error
            # reaches the generators too.
            if responder is not None and (sub_response is not None or not trivial):
                result = responder(result, sub_response)
        except BaseException as exc:
            await _close_form(form_request)
            if not stack:
                raise
            raise await _unwind_after_error(stack, exc)  # noqa: B904 - exc or one chained to it
        request_scope = stack
        if stack:
            function_scope, request_scope = _split_scopes(stack)
            if function_scope:
                left = await _unwind(function_scope, None)
                if left is not None:
                    await _close_form(form_request)
                    raise await _unwind_after_error(request_scope, left)
        if form_fields and not isinstance(result, StreamingResponse):
            # As FastAPI: the uploaded files are closed once the handler is done with
            # them (a streaming response may still read them: those close with the form).
            form = form_request.__dict__.get("_form") if form_request is not None else None
            if form is not None:
                await form.close()
        # What runs after the response was written (the native layer starts a Response's
        # background then; a stream's, after its body): as in FastAPI, the request's
        # BackgroundTasks unless the response has a background of its own, then the
        # teardown of the request-scope generators.
        after: Any = background if background.tasks else None
        if isinstance(result, Response):
            if result.background is not None:
                after = result.background
                if isinstance(after, _AfterResponse):
                    # A Response object returned again (a module-level one): its own
                    # background, not the teardown of an earlier request.
                    after = after.background
            if request_scope:
                after = _AfterResponse(after, request_scope, where)
            if after is not None:
                result.background = after
        else:
            if request_scope:
                after = _AfterResponse(after, request_scope, where)
            if after is not None:
                start_background(after)
        return result

    if (
        flat.uses_response
        and not form_fields
        and not side
        and not root.children
        and not flat.uses_background
        and call_handler is None
        and all(kind is Response for _, kind in root.special)
    ):
        call = _response_only_call(handler, responder, tuple(root.leaves), root.special)

    call.__name__ = getattr(handler, "__name__", "handler")
    call.__qualname__ = getattr(handler, "__qualname__", call.__name__)
    call.__doc__ = handler.__doc__
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [flat.params[name] for name in leaf_names]
    )
    call.__annotations__ = dict(flat.annotations)
    # The security schemes (with their scopes) the route depends on, for OpenAPI.
    call.__db_security__ = flat.security  # type: ignore[attr-defined]
    locations: dict[tuple[str, str], str] = {}
    body_leaves: list[str] = []
    source_rank: dict[str, int] = {}

    def _by_leaf(errors: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """The binder's errors grouped by the flattened parameter they are about (found by
        source and key; body errors go to the body parameter)."""
        if not source_rank and path is not None:
            for spec in build_plan(path, call):
                name, source, flags, key = spec[0], spec[1], spec[2], spec[6]
                where = _SOURCE_NAMES.get(source)
                source_rank[name] = _SOURCE_ORDER.get(where or "", 9)
                if where == "body" and not flags & FLAG_EMBED:
                    body_leaves.append(name)
                elif where is not None:
                    locations[(where, key)] = name
        out: dict[str, list[dict[str, Any]]] = {}
        for err in errors:
            loc = list(err.get("loc") or ())
            name = locations.get((loc[0], loc[1])) if len(loc) >= 2 else None
            if name is None and loc and loc[0] == "body" and body_leaves:
                name = body_leaves[0]
            out.setdefault(name or _UNKNOWN_LEAF, []).append(err)
        return out

    def _in_fastapi_order(grouped: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """FastAPI validates each dependency's own parameters after its dependencies', the
        route's dependencies before the endpoint's parameters, and within one function
        path, query, header and cookie parameters before the body."""
        order: list[str] = []

        def visit(node: _Node) -> None:
            for _, child in node.children:
                visit(child)
            order.extend(sorted(node.leaves, key=lambda leaf: source_rank.get(leaf, 9)))

        for node in side:
            visit(node)
        visit(root)
        # A parameter reached through several dependencies is reported at each, as
        # FastAPI does: a dependency that failed is not cached, so every place that needs
        # it solves (and reports) it again.
        listed = set(order)
        out: list[dict[str, Any]] = []
        for leaf in [*order, *(g for g in grouped if g not in listed)]:
            out += [{**e, "loc": tuple(e["loc"])} for e in grouped.get(leaf, [])]
        return out

    # Nodes (dependencies) that run when binding failed need their parameters mapped to
    # the binder's error locations: only routes with dependencies are lenient.
    call.__db_lenient__ = bool(root.children or side) and path is not None  # type: ignore[attr-defined]
    call.__db_responder__ = responder  # type: ignore[attr-defined]
    return call
