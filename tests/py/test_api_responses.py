"""Response helpers: set_cookie writes the standard library's Morsel text (what Starlette
sends) for every combination of attributes, through its direct path or SimpleCookie."""

import http.cookies
import itertools

from data_bridge.api.responses import RedirectResponse, Response


def morsel_text(key, value, max_age, path, domain, secure, httponly, samesite, partitioned):
    cookie: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
    cookie[key] = value
    morsel = cookie[key]
    if max_age is not None:
        morsel["max-age"] = max_age
    if path is not None:
        morsel["path"] = path
    if domain is not None:
        morsel["domain"] = domain
    if secure:
        morsel["secure"] = True
    if httponly:
        morsel["httponly"] = True
    if samesite is not None:
        morsel["samesite"] = samesite
    return cookie.output(header="").strip() + ("; Partitioned" if partitioned else "")


def test_set_cookie_text_equals_the_morsel_text():
    grid = itertools.product(
        ["session", "a_b"],
        ["abc123", "", "x y", 'q"t', "a;b", "\u00fc", "a,b"],
        [None, 0, 10],
        ["/", None, "/api"],
        [None, "example.com"],
        [False, True],
        [False, True],
        ["lax", "strict", "none", None],
        [False, True],
    )
    for args in grid:
        key, value, max_age, path, domain, secure, httponly, samesite, partitioned = args
        response = Response()
        response.set_cookie(
            key,
            value,
            max_age=max_age,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            partitioned=partitioned,
        )
        assert response.raw_headers[-1] == ("set-cookie", morsel_text(*args)), args


def test_delete_cookie_and_expires():
    response = Response()
    response.delete_cookie("session")
    text = response.raw_headers[-1][1]
    assert text.startswith('session=""; expires=') and "Max-Age=0" in text


def test_redirect_quotes_the_location():
    response = RedirectResponse("/a b?x=1")
    assert response.status_code == 307
    assert dict(response.raw_headers)["location"] == "/a%20b?x=1"
