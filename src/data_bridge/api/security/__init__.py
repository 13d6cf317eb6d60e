"""Security schemes under FastAPI's names: dependencies that read credentials from the
request and declare themselves in the OpenAPI document (``securitySchemes``)."""

# The names are imported on first use, so that the security base (which the dependency
# machinery needs) does not import pydantic with it.
from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "APIKeyCookie": "api_key",
    "APIKeyHeader": "api_key",
    "APIKeyQuery": "api_key",
    "HTTPAuthorizationCredentials": "http",
    "HTTPBasic": "http",
    "HTTPBasicCredentials": "http",
    "HTTPBearer": "http",
    "HTTPDigest": "http",
    "OAuth2": "oauth2",
    "OAuth2AuthorizationCodeBearer": "oauth2",
    "OAuth2PasswordBearer": "oauth2",
    "OAuth2PasswordRequestForm": "oauth2",
    "OAuth2PasswordRequestFormStrict": "oauth2",
    "OpenIdConnect": "open_id_connect_url",
    "SecurityScopes": "base",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
