"""Jinja2 templates under Starlette's names (jinja2 is an optional dependency):
``templates = Jinja2Templates(directory="templates")`` and, in a handler,
``return templates.TemplateResponse(request, "item.html", {"id": id})``. The template
sees the context, ``request`` and ``url_for`` (the app's routes and mounted static files).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from data_bridge.api.responses import HTMLResponse

__all__ = ["Jinja2Templates", "_TemplateResponse"]


class _TemplateResponse(HTMLResponse):
    """An HTML response rendered from a template; keeps the template and context (tests
    read them)."""

    def __init__(
        self,
        template: Any,
        context: dict[str, Any],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: Any = None,
    ) -> None:
        self.template = template
        self.context = context
        super().__init__(template.render(context), status_code, headers, media_type, background)


class Jinja2Templates:
    """Templates of ``directory`` (or of a given jinja2 ``env``)."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        *,
        context_processors: list[Callable[[Any], dict[str, Any]]] | None = None,
        env: Any = None,
        **env_options: Any,
    ) -> None:
        try:
            import jinja2
        except ImportError as exc:
            raise ImportError("Jinja2Templates needs jinja2 (pip install jinja2)") from exc
        if (directory is None) == (env is None):
            raise ValueError("give either directory= or env=")
        if env is None:
            env_options.setdefault("loader", jinja2.FileSystemLoader(directory))
            env_options.setdefault("autoescape", True)
            env = jinja2.Environment(**env_options)
        self.env = env
        self.context_processors = list(context_processors or [])

        @jinja2.pass_context
        def url_for(context: Any, name: str, /, **path_params: Any) -> Any:
            # A URL (a str with .path, .scheme, ...), as Starlette's templates get it.
            return context["request"].url_for(name, **path_params)

        self.env.globals.setdefault("url_for", url_for)

    def get_template(self, name: str) -> Any:
        return self.env.get_template(name)

    def TemplateResponse(  # noqa: N802 - Starlette's name
        self,
        request: Any,
        name: str,
        context: dict[str, Any] | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: Any = None,
    ) -> _TemplateResponse:
        """The rendered template ``name`` with ``context`` (plus ``request``)."""
        context = dict(context or {})
        context.setdefault("request", request)
        for processor in self.context_processors:
            context.update(processor(request))
        return _TemplateResponse(
            self.get_template(name), context, status_code, headers, media_type, background
        )
