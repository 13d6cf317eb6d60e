"""Security schemes: credentials read from requests, FastAPI's 401 answers and headers,
scopes through Security(), and the request surface they use (headers, cookies, query)."""

import base64
from typing import Annotated

import pytest

from data_bridge.api import Depends, FastAPI, Request, Security
from data_bridge.api.security import (
    APIKeyCookie,
    APIKeyHeader,
    APIKeyQuery,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
    HTTPDigest,
    OAuth2AuthorizationCodeBearer,
    OAuth2PasswordBearer,
    OAuth2PasswordRequestForm,
    OAuth2PasswordRequestFormStrict,
    OpenIdConnect,
    SecurityScopes,
)
from data_bridge.api.testclient import TestClient

oauth2 = OAuth2PasswordBearer(tokenUrl="token", scopes={"me": "Read me", "items": "Items"})
optional_bearer = HTTPBearer(auto_error=False)


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/token")
    def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]):
        return {"user": form.username, "scopes": form.scopes, "grant": form.grant_type}

    @app.post("/strict")
    def strict(form: Annotated[OAuth2PasswordRequestFormStrict, Depends()]):
        return {"user": form.username}

    async def current(scopes: SecurityScopes, tok: Annotated[str, Depends(oauth2)]):
        return {"token": tok, "scopes": scopes.scopes}

    @app.get("/me")
    def me(user: Annotated[dict, Security(current, scopes=["me"])]):
        return user

    @app.get("/items")
    def items(user: Annotated[dict, Security(current, scopes=["items", "me"])]):
        return user

    schemes = {
        "basic": HTTPBasic(realm="simple"),
        "bearer": HTTPBearer(),
        "digest": HTTPDigest(),
        "header": APIKeyHeader(name="x-key"),
        "query": APIKeyQuery(name="key"),
        "cookie": APIKeyCookie(name="session"),
        "oidc": OpenIdConnect(openIdConnectUrl="/.well-known/openid-configuration"),
        "code": OAuth2AuthorizationCodeBearer(authorizationUrl="/auth", tokenUrl="/token"),
    }
    for name, scheme in schemes.items():

        def endpoint(value=Depends(scheme)):
            if isinstance(value, (HTTPBasicCredentials, HTTPAuthorizationCredentials)):
                return value.model_dump()
            return {"value": value}

        app.get(f"/s/{name}")(endpoint)

    @app.get("/optional")
    def optional(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(optional_bearer)]):
        return {"creds": creds.credentials if creds else None}

    @app.get("/request-view")
    def view(request: Request):
        return {"cookies": request.cookies, "host": request.url.hostname}

    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(make_app())


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def test_password_form(client):
    r = client.post("/token", data={"username": "a", "password": "b", "scope": "me items"})
    assert r.json() == {"user": "a", "scopes": ["me", "items"], "grant": None}
    r = client.post("/token", data={"username": "a", "password": "b", "grant_type": "bad"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "string_pattern_mismatch"
    r = client.post("/strict", data={"username": "a", "password": "b"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "grant_type"]
    r = client.post("/strict", data={"username": "a", "password": "b", "grant_type": "password"})
    assert r.json() == {"user": "a"}


def test_oauth2_bearer_and_scopes(client):
    r = client.get("/me")
    assert (r.status_code, r.json(), r.headers["www-authenticate"]) == (
        401,
        {"detail": "Not authenticated"},
        "Bearer",
    )
    assert client.get("/me", headers={"Authorization": "Basic x"}).status_code == 401
    assert client.get("/me", headers={"Authorization": "Bearer t"}).json() == {
        "token": "t",
        "scopes": ["me"],
    }
    assert client.get("/items", headers={"Authorization": "bearer t"}).json()["scopes"] == [
        "items",
        "me",
    ]


@pytest.mark.parametrize(
    ("path", "headers", "expected"),
    [
        ("/s/basic", basic("john", "p:w"), {"username": "john", "password": "p:w"}),
        ("/s/bearer", {"Authorization": "Bearer abc"}, {"scheme": "Bearer", "credentials": "abc"}),
        ("/s/digest", {"Authorization": "Digest x=1"}, {"scheme": "Digest", "credentials": "x=1"}),
        ("/s/header", {"X-Key": "k1"}, {"value": "k1"}),
        ("/s/oidc", {"Authorization": "Bearer z"}, {"value": "Bearer z"}),
        ("/s/code", {"Authorization": "Bearer c"}, {"value": "c"}),
    ],
)
def test_schemes_accept_credentials(client, path, headers, expected):
    assert client.get(path, headers=headers).json() == expected


def test_api_keys_in_query_and_cookie(client):
    assert client.get("/s/query?key=q1").json() == {"value": "q1"}
    assert client.get("/s/cookie", headers={"Cookie": "session=c1"}).json() == {"value": "c1"}


@pytest.mark.parametrize(
    ("path", "headers", "challenge"),
    [
        ("/s/basic", {}, 'Basic realm="simple"'),
        ("/s/basic", {"Authorization": "Basic %%%"}, 'Basic realm="simple"'),
        ("/s/basic", {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()}, None),
        ("/s/bearer", {"Authorization": "Basic abc"}, "Bearer"),
        ("/s/bearer", {"Authorization": "Bearer"}, "Bearer"),
        ("/s/digest", {}, "Digest"),
        ("/s/header", {}, "APIKey"),
        ("/s/query", {}, "APIKey"),
        ("/s/cookie", {}, "APIKey"),
        ("/s/oidc", {}, "Bearer"),
        ("/s/code", {"Authorization": "Token x"}, "Bearer"),
    ],
)
def test_missing_or_bad_credentials_are_401(client, path, headers, challenge):
    r = client.get(path, headers=headers)
    assert r.status_code == 401
    assert r.json() == {"detail": "Not authenticated"}
    assert r.headers["www-authenticate"] == (challenge or 'Basic realm="simple"')


def test_auto_error_false_gives_none(client):
    assert client.get("/optional").json() == {"creds": None}
    assert client.get("/optional", headers={"Authorization": "Bearer t"}).json() == {"creds": "t"}


def test_request_cookies_and_url(client):
    r = client.get("/request-view", headers={"Cookie": 'a=1; b="two"; c'})
    assert r.json() == {"cookies": {"a": "1", "b": "two", "": "c"}, "host": "testserver"}


def test_schemes_are_recorded_for_openapi():
    app = make_app()
    me = next(r for r in app.routes if r.path == "/me")
    recorded = me.callable().__db_security__
    assert [(type(s).__name__, scopes) for s, scopes in recorded] == [
        ("OAuth2PasswordBearer", ["me"])
    ]
    assert oauth2.model == {
        "type": "oauth2",
        "flows": {"password": {"tokenUrl": "token", "scopes": {"me": "Read me", "items": "Items"}}},
    }
