"""The base of the security schemes."""

from __future__ import annotations

from typing import Any

__all__ = ["SecurityBase", "SecurityScopes"]


class SecurityBase:
    """A security scheme: ``model`` is its OpenAPI Security Scheme Object (a dict with
    the document's own key names, None values left out) and ``scheme_name`` its key
    under ``components.securitySchemes``."""

    model: dict[str, Any]
    scheme_name: str


def scheme_model(**fields: Any) -> dict[str, Any]:
    """An OpenAPI object from keyword fields, without the unset (None) ones."""
    return {k: v for k, v in fields.items() if v is not None}


class SecurityScopes:
    """Declared as a dependency's parameter: the scopes required by every ``Security``
    on the way from the path operation down to that dependency."""

    def __init__(self, scopes: list[str] | None = None) -> None:
        self.scopes: list[str] = list(scopes or [])
        self.scope_str: str = " ".join(self.scopes)

    def __repr__(self) -> str:
        return f"SecurityScopes({self.scopes!r})"
