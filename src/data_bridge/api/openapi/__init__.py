"""OpenAPI: the document (``utils.get_openapi``) and the documentation pages (``docs``)."""
