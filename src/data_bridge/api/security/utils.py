"""Helpers shared by the security schemes."""

from __future__ import annotations

__all__ = ["get_authorization_scheme_param"]


def get_authorization_scheme_param(authorization_header_value: str | None) -> tuple[str, str]:
    """Splits an Authorization header into (scheme, credentials) at the first space
    (RFC 9110 §11.6.2); ("", "") when absent."""
    if not authorization_header_value:
        return "", ""
    scheme, _, param = authorization_header_value.partition(" ")
    return scheme, param.strip()
