"""The interactive documentation pages: Swagger UI, ReDoc and the OAuth2 redirect page,
under FastAPI's function names (assets from the jsDelivr CDN, as FastAPI's defaults)."""

from __future__ import annotations

import html
import json
from typing import Any

from data_bridge.api.responses import HTMLResponse

__all__ = [
    "get_redoc_html",
    "get_swagger_ui_html",
    "get_swagger_ui_oauth2_redirect_html",
    "swagger_ui_default_parameters",
]

swagger_ui_default_parameters: dict[str, Any] = {
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": True,
    "showExtensions": True,
    "showCommonExtensions": True,
}


def _js(value: Any) -> str:
    """A JSON value safe inside a <script> element (never closes it)."""
    return json.dumps(value).replace("</", "<\\/")


def get_swagger_ui_html(
    *,
    openapi_url: str,
    title: str,
    swagger_js_url: str = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js",
    swagger_css_url: str = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css",
    swagger_favicon_url: str = "https://fastapi.tiangolo.com/img/favicon.png",
    oauth2_redirect_url: str | None = None,
    init_oauth: dict[str, Any] | None = None,
    swagger_ui_parameters: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The Swagger UI page for the document at ``openapi_url``."""
    params = dict(swagger_ui_default_parameters)
    if swagger_ui_parameters:
        params.update(swagger_ui_parameters)
    config = "\n".join(f"        {_js(k)}: {_js(v)}," for k, v in params.items())
    page = f"""<!DOCTYPE html>
<html>
<head>
<link type="text/css" rel="stylesheet" href="{html.escape(swagger_css_url)}">
<link rel="shortcut icon" href="{html.escape(swagger_favicon_url)}">
<title>{html.escape(title)}</title>
</head>
<body>
<div id="swagger-ui">
</div>
<script src="{html.escape(swagger_js_url)}"></script>
<!-- `SwaggerUIBundle` is now available on the page -->
<script>
const ui = SwaggerUIBundle({{
        url: {_js(openapi_url)},
{config}
"""
    if oauth2_redirect_url:
        page += f"        oauth2RedirectUrl: window.location.origin + {_js(oauth2_redirect_url)},\n"
    page += """    presets: [
        SwaggerUIBundle.presets.apis,
        SwaggerUIBundle.SwaggerUIStandalonePreset
        ],
    })"""
    if init_oauth:
        page += f"\n        ui.initOAuth({_js(init_oauth)})"
    page += """
</script>
</body>
</html>
"""
    return HTMLResponse(page)


def get_redoc_html(
    *,
    openapi_url: str,
    title: str,
    redoc_js_url: str = "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js",
    redoc_favicon_url: str = "https://fastapi.tiangolo.com/img/favicon.png",
    with_google_fonts: bool = True,
) -> HTMLResponse:
    """The ReDoc page for the document at ``openapi_url``."""
    fonts = ""
    if with_google_fonts:
        fonts = (
            '<link href="https://fonts.googleapis.com/css?family=Montserrat:300,400,700|'
            'Roboto:300,400,700" rel="stylesheet">\n'
        )
    page = f"""<!DOCTYPE html>
<html>
<head>
<title>{html.escape(title)}</title>
<!-- needed for adaptive design -->
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1">
{fonts}<link rel="shortcut icon" href="{html.escape(redoc_favicon_url)}">
<style>
  body {{
    margin: 0;
    padding: 0;
  }}
</style>
</head>
<body>
<noscript>
    ReDoc requires Javascript to function. Please enable it to browse the documentation.
</noscript>
<redoc spec-url="{html.escape(openapi_url)}"></redoc>
<script src="{html.escape(redoc_js_url)}"> </script>
</body>
</html>
"""
    return HTMLResponse(page)


def get_swagger_ui_oauth2_redirect_html() -> HTMLResponse:
    """The page Swagger UI's OAuth2 flows return to: it hands the authorization response
    (code or token, state, error) back to the opener window."""
    page = """<!doctype html>
<html lang="en-US">
<head>
<title>Swagger UI: OAuth2 Redirect</title>
</head>
<body>
<script>
'use strict';
// Swagger UI opened this window for an OAuth2 flow and left its state on the opener
// (window.opener.swaggerUIRedirectOauth2): hand the authorization response back to it.
function finishOAuth2() {
    const oauth2 = window.opener.swaggerUIRedirectOauth2;
    const source = /code|token|error/.test(window.location.hash)
        ? window.location.hash.substring(1).replace('?', '&')
        : window.location.search.substring(1);
    const params = {};
    for (const [key, value] of new URLSearchParams(source)) {
        params[key] = value;
    }
    const stateMatches = params.state === oauth2.state;
    const flow = oauth2.auth.schema.get("flow");
    const codeFlow = ["accessCode", "authorizationCode", "authorization_code"].includes(flow);
    if (codeFlow && !oauth2.auth.code) {
        if (!stateMatches) {
            oauth2.errCb({authId: oauth2.auth.name, source: "auth", level: "warning",
                message: "Authorization may be unsafe: the state sent was not returned."});
        }
        if (params.code) {
            delete oauth2.state;
            oauth2.auth.code = params.code;
            oauth2.callback({auth: oauth2.auth, redirectUrl: oauth2.redirectUrl});
        } else {
            const reason = params.error
                ? "[" + params.error + "]: " + (params.error_description || "no code received.")
                : "[Authorization failed]: no code received from the server.";
            oauth2.errCb({authId: oauth2.auth.name, source: "auth", level: "error",
                message: reason});
        }
    } else {
        oauth2.callback({auth: oauth2.auth, token: params, isValid: stateMatches,
            redirectUrl: oauth2.redirectUrl});
    }
    window.close();
}
if (document.readyState !== 'loading') {
    finishOAuth2();
} else {
    document.addEventListener('DOMContentLoaded', finishOAuth2);
}
</script>
</body>
</html>
"""
    return HTMLResponse(page)
