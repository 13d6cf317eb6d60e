"""OpenID Connect: the scheme's discovery URL in the document, the Authorization header
passed through to the application."""

from __future__ import annotations

from data_bridge.api.exceptions import HTTPException
from data_bridge.api.requests import Request
from data_bridge.api.security.base import SecurityBase, scheme_model

__all__ = ["OpenIdConnect"]


class OpenIdConnect(SecurityBase):
    def __init__(
        self,
        *,
        openIdConnectUrl: str,  # noqa: N803 - FastAPI's name
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        self.model = scheme_model(
            type="openIdConnect", description=description, openIdConnectUrl=openIdConnectUrl
        )
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def make_not_authenticated_error(self) -> HTTPException:
        return HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})

    async def __call__(self, request: Request) -> str | None:
        authorization = request.headers.get("authorization")
        if not authorization:
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return authorization
