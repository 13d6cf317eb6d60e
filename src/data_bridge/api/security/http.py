"""HTTP authentication schemes (RFC 9110 §11): Basic (RFC 7617), Bearer (RFC 6750) and
Digest, read from the Authorization header."""

from __future__ import annotations

import binascii
from base64 import b64decode

from pydantic import BaseModel

from data_bridge.api.exceptions import HTTPException
from data_bridge.api.requests import Request
from data_bridge.api.security.base import SecurityBase, scheme_model
from data_bridge.api.security.utils import get_authorization_scheme_param

__all__ = [
    "HTTPAuthorizationCredentials",
    "HTTPBase",
    "HTTPBasic",
    "HTTPBasicCredentials",
    "HTTPBearer",
    "HTTPDigest",
]


class HTTPBasicCredentials(BaseModel):
    username: str
    password: str


class HTTPAuthorizationCredentials(BaseModel):
    scheme: str
    credentials: str


class HTTPBase(SecurityBase):
    """Any HTTP authentication scheme: the header's (scheme, credentials)."""

    def __init__(
        self,
        *,
        scheme: str,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        self.scheme = scheme
        self.model = scheme_model(type="http", description=description, scheme=scheme)
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error

    def make_authenticate_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.scheme.title()}

    def make_not_authenticated_error(self) -> HTTPException:
        return HTTPException(401, "Not authenticated", headers=self.make_authenticate_headers())

    def _credentials(self, request: Request, expected: str | None) -> tuple[str, str] | None:
        authorization = request.headers.get("authorization")
        scheme, credentials = get_authorization_scheme_param(authorization)
        if not (authorization and scheme and credentials) or (
            expected is not None and scheme.lower() != expected
        ):
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return scheme, credentials

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:
        found = self._credentials(request, None)
        if found is None:
            return None
        return HTTPAuthorizationCredentials(scheme=found[0], credentials=found[1])


class HTTPBasic(HTTPBase):
    """Basic authentication: the decoded user name and password."""

    def __init__(
        self,
        *,
        scheme_name: str | None = None,
        realm: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(
            scheme="basic", scheme_name=scheme_name, description=description, auto_error=auto_error
        )
        self.realm = realm

    def make_authenticate_headers(self) -> dict[str, str]:
        if self.realm:
            return {"WWW-Authenticate": f'Basic realm="{self.realm}"'}
        return {"WWW-Authenticate": "Basic"}

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        authorization = request.headers.get("authorization")
        scheme, param = get_authorization_scheme_param(authorization)
        if not authorization or scheme.lower() != "basic":
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        # Malformed credentials are refused even with auto_error=False, as FastAPI does:
        # the client did try Basic authentication.
        try:
            data = b64decode(param, validate=False).decode("ascii")
        except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
            raise self.make_not_authenticated_error() from exc
        username, separator, password = data.partition(":")
        if not separator:
            raise self.make_not_authenticated_error()
        return HTTPBasicCredentials(username=username, password=password)


class HTTPBearer(HTTPBase):
    """Bearer tokens: the scheme and the token."""

    def __init__(
        self,
        *,
        bearerFormat: str | None = None,  # noqa: N803 - FastAPI's name
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(
            scheme="bearer", scheme_name=scheme_name, description=description, auto_error=auto_error
        )
        self.model = scheme_model(
            type="http", description=description, scheme="bearer", bearerFormat=bearerFormat
        )

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:
        found = self._credentials(request, "bearer")
        if found is None:
            return None
        return HTTPAuthorizationCredentials(scheme=found[0], credentials=found[1])


class HTTPDigest(HTTPBase):
    """Digest authentication: the scheme and the unparsed credentials."""

    def __init__(
        self,
        *,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(
            scheme="digest", scheme_name=scheme_name, description=description, auto_error=auto_error
        )

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:
        found = self._credentials(request, "digest")
        if found is None:
            return None
        return HTTPAuthorizationCredentials(scheme=found[0], credentials=found[1])
