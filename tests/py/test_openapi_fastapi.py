"""The OpenAPI document of an app is FastAPI's document of the same app.

Each builder below makes one app from the module it is given, ``data_bridge.api`` or
``fastapi`` (0.165.0, the version the compatibility harness pins), and the two documents
must be equal. A few literal checks keep the file meaningful when FastAPI is absent.
"""

import importlib
import types
import warnings
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, computed_field

import data_bridge.api as db_api


class Image(BaseModel):
    url: str
    name: str | None = None


class Item(BaseModel):
    """An item.\fInternal notes the document leaves out."""

    name: str
    price: float = Field(gt=0, description="In euros")
    tags: list[str] = []
    image: Image | None = None


class Priced(BaseModel):
    net: float

    @computed_field  # type: ignore[prop-decorator]
    @property
    def gross(self) -> float:
        return self.net * 1.2


class Message(BaseModel):
    message: str


def sub(api: types.ModuleType, name: str) -> types.ModuleType:
    return importlib.import_module(f"{api.__name__}.{name}")


def params_and_dependencies(api: types.ModuleType) -> Any:
    app = api.FastAPI()

    def pagination(skip: int = 0, limit: Annotated[int, api.Query(le=100)] = 10) -> dict:
        return {"skip": skip, "limit": limit}

    def token(x_token: Annotated[str, api.Header()], t: str | None = None) -> str:
        return x_token

    @app.get("/items/{item_id}", tags=["items"], dependencies=[api.Depends(token)])
    def read_item(
        item_id: Annotated[int, api.Path(title="The id", ge=1)],
        page: Annotated[dict, api.Depends(pagination)],
        q: Annotated[str, api.Query(min_length=2, description="Search", deprecated=True)],
        session: Annotated[str | None, api.Cookie()] = None,
        hidden: Annotated[str | None, api.Query(include_in_schema=False)] = None,
        user_agent: Annotated[str | None, api.Header()] = None,
        tag: Annotated[list[str], api.Query(alias="tag-name")] = [],  # noqa: B006
    ) -> dict:
        """Reads an item.

        With details.\f
        Not in the document.
        """
        return {}

    @app.get("/plain/{name}", summary="A plain one", deprecated=True, operation_id="plain")
    def plain(name, flag: bool = False):  # noqa: ANN001
        return {}

    return app


def bodies(api: types.ModuleType) -> Any:
    app = api.FastAPI()

    @app.post("/items/", response_model=Item, status_code=201)
    def create(item: Item) -> Any:
        return item

    @app.put("/items/{item_id}")
    def update(
        item_id: int,
        item: Item,
        importance: Annotated[int, api.Body(gt=0)],
        note: Annotated[str | None, api.Body()] = None,
    ) -> dict:
        return {}

    @app.post("/embedded/")
    def embedded(item: Annotated[Item, api.Body(embed=True)]) -> Item:
        return item

    @app.post("/many/")
    def many(items: list[Item], optional: bool = True) -> list[Item]:
        return items

    @app.post("/login/")
    def login(username: Annotated[str, api.Form()], password: Annotated[str, api.Form()]) -> dict:
        return {}

    @app.post("/priced/")
    def priced(p: Priced) -> Priced:
        return p

    return app


def responses_and_classes(api: types.ModuleType) -> Any:
    responses = sub(api, "responses")
    app = api.FastAPI()
    router = api.APIRouter(
        prefix="/r", tags=["r"], responses={404: {"description": "Not found here"}}
    )

    @router.get(
        "/items/{item_id}",
        response_model=Item,
        responses={
            404: {"model": Message},
            "5XX": {"description": "Server trouble"},
            "default": {"content": {"text/plain": {}}},
            302: {"description": "Moved", "headers": {"Location": {"schema": {"type": "string"}}}},
        },
        response_description="The item",
    )
    def read(item_id: str) -> Any:
        return {}

    app.include_router(router)

    @app.get("/page", response_class=responses.HTMLResponse)
    def page() -> str:
        return "<p>hi</p>"

    @app.get("/text", response_class=responses.PlainTextResponse, responses={200: {"model": Item}})
    def text() -> str:
        return "hi"

    @app.delete("/items/{item_id}", status_code=204)
    def delete(item_id: int) -> None:
        return None

    @app.get("/redirect", response_class=responses.RedirectResponse)
    def redirect() -> Any:
        return "/page"

    @app.get(
        "/extra",
        openapi_extra={
            "x-custom": {"a": 1},
            "responses": {"200": {"description": "Overridden"}},
            "parameters": [{"name": "x", "in": "query", "schema": {"type": "string"}}],
        },
    )
    def extra(y: int = 0) -> dict:
        return {}

    @app.get("/hidden", include_in_schema=False)
    def hidden() -> dict:
        return {}

    return app


def security(api: types.ModuleType) -> Any:
    sec = sub(api, "security")
    app = api.FastAPI()
    oauth2 = sec.OAuth2PasswordBearer(
        tokenUrl="token", scopes={"me": "Read me", "items": "Read items"}
    )
    api_key = sec.APIKeyHeader(name="X-Key", scheme_name="Key", description="The key")
    basic = sec.HTTPBasic()

    def current_user(
        security_scopes: sec.SecurityScopes, token: Annotated[str, api.Depends(oauth2)]
    ) -> str:
        return token

    def active_user(user: Annotated[str, api.Security(current_user, scopes=["me"])]) -> str:
        return user

    @app.get("/me")
    def me(user: Annotated[str, api.Security(active_user, scopes=["items"])]) -> dict:
        return {}

    @app.get("/key", dependencies=[api.Depends(api_key)])
    def key(credentials: Annotated[Any, api.Depends(basic)]) -> dict:
        return {}

    @app.post("/token")
    def token(form: Annotated[sec.OAuth2PasswordRequestForm, api.Depends()]) -> dict:
        return {}

    return app


def metadata_and_callbacks(api: types.ModuleType) -> Any:
    app = api.FastAPI(
        title="Shop",
        version="2.5",
        summary="A shop",
        description="Sells *things*.",
        terms_of_service="https://example.com/terms",
        contact={"name": "Team", "email": "team@example.com"},
        license_info={"name": "MIT", "identifier": "MIT"},
        openapi_tags=[{"name": "items", "description": "Items"}],
        servers=[{"url": "https://api.example.com"}],
    )
    callbacks = api.APIRouter()

    @callbacks.post("/{$request.body.callback_url}/events", response_model=Message)
    def event_callback(body: Message) -> None:
        pass

    @app.post("/subscribe", callbacks=callbacks.routes, tags=["items"])
    def subscribe(message: Message, callback_url: str | None = None) -> dict:
        return {}

    @app.webhooks.post("/new-item")
    def new_item(body: Item) -> None:
        pass

    return app


def separate_schemas_off(api: types.ModuleType) -> Any:
    app = api.FastAPI(separate_input_output_schemas=False)

    @app.post("/items/")
    def create(item: Item) -> Item:
        return item

    @app.post("/priced/")
    def priced(p: Priced) -> Priced:
        return p

    return app


class Profile(BaseModel):
    name: str
    age: int | None = None


def form_models(api: types.ModuleType) -> Any:
    app = api.FastAPI()

    @app.post("/profiles/")
    def create(profile: Profile = api.Form(), token: str = api.Form()) -> dict:  # noqa: B008
        return {}

    @app.post("/annotated/")
    def annotated(
        profile: Annotated[Profile, api.Form()], note: Annotated[str | None, api.Form()] = None
    ) -> dict:
        return {}

    @app.post("/single/")
    def single(profile: Annotated[Profile, api.Form()]) -> dict:
        return {}

    return app


def custom_security_scheme(api: types.ModuleType) -> Any:
    models = sub(api, "openapi.models")
    base = sub(api, "security.base")

    class CookieToken(base.SecurityBase):
        def __init__(self) -> None:
            self.model = models.APIKey(
                **{"in": models.APIKeyIn.cookie}, name="session", description="The session"
            )
            self.scheme_name = "CookieToken"

        def __call__(self, request: api.Request) -> str | None:
            return request.cookies.get("session")

    app = api.FastAPI()

    @app.get("/me")
    def me(session: Annotated[str | None, api.Depends(CookieToken())]) -> dict:
        return {}

    return app


BUILDERS = [
    params_and_dependencies,
    bodies,
    responses_and_classes,
    security,
    metadata_and_callbacks,
    separate_schemas_off,
    form_models,
    custom_security_scheme,
]


def document(builder: Any, api: types.ModuleType) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return builder(api).openapi()


@pytest.mark.parametrize("builder", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_same_document_as_fastapi(builder: Any) -> None:
    fastapi = pytest.importorskip("fastapi")
    if fastapi.__version__ != "0.165.0":
        pytest.skip(f"the expected documents are FastAPI 0.165.0's, not {fastapi.__version__}")
    ours = document(builder, db_api)
    theirs = document(builder, fastapi)
    assert ours == theirs


def test_parameters_in_dependency_order() -> None:
    op = document(params_and_dependencies, db_api)["paths"]["/items/{item_id}"]["get"]
    # Grouped by place; in each group the endpoint's own parameters, then those of its
    # dependencies in order (the route's dependencies=[...] first).
    assert [(p["in"], p["name"]) for p in op["parameters"]] == [
        ("path", "item_id"),
        ("query", "q"),
        ("query", "tag-name"),
        ("query", "t"),
        ("query", "skip"),
        ("query", "limit"),
        ("header", "user-agent"),
        ("header", "x-token"),
        ("cookie", "session"),
    ]
    q = op["parameters"][1]
    assert q["required"] is True and q["deprecated"] is True and q["description"] == "Search"
    assert op["parameters"][0]["schema"] == {"type": "integer", "minimum": 1, "title": "The id"}
    assert op["description"] == "Reads an item.\n\nWith details."
    assert op["tags"] == ["items"]


def test_bodies_and_input_output_schemas() -> None:
    doc = document(bodies, db_api)
    schemas = doc["components"]["schemas"]
    update = doc["paths"]["/items/{item_id}"]["put"]["requestBody"]
    assert update == {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/Body_update_items__item_id__put"}
            }
        },
    }
    assert schemas["Body_update_items__item_id__put"]["required"] == ["item", "importance"]
    assert schemas["Item"]["description"] == "An item."
    # A computed field is only in the serialization schema: two components.
    assert "Priced-Input" in schemas and "Priced-Output" in schemas
    assert "gross" in schemas["Priced-Output"]["properties"]
    login = doc["paths"]["/login/"]["post"]["requestBody"]["content"]
    assert list(login) == ["application/x-www-form-urlencoded"]


def test_form_models_are_flattened() -> None:
    schemas = document(form_models, db_api)["components"]["schemas"]
    body = schemas["Body_create_profiles__post"]
    # The model's fields and the plain fields are keys of one form.
    assert body["allOf"] == [{"$ref": "#/components/schemas/Profile"}]
    assert body["properties"] == {"token": {"type": "string", "title": "Token"}}
    assert body["required"] == ["token"]


def test_responses_merge_and_media_types() -> None:
    doc = document(responses_and_classes, db_api)
    read = doc["paths"]["/r/items/{item_id}"]["get"]["responses"]
    assert read["200"]["description"] == "The item"
    # The route's 404 replaces the router's (no deep merge of responses=).
    assert read["404"] == {
        "description": "Not Found",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
    }
    assert read["5XX"] == {"description": "Server trouble"}
    assert read["default"]["description"] == "Default Response"
    assert read["302"]["description"] == "Moved"
    page = doc["paths"]["/page"]["get"]["responses"]["200"]
    assert page["content"] == {"text/html": {"schema": {"type": "string"}}}
    assert doc["paths"]["/items/{item_id}"]["delete"]["responses"]["204"] == {
        "description": "Successful Response"
    }
    assert "307" in doc["paths"]["/redirect"]["get"]["responses"]
    extra = doc["paths"]["/extra"]["get"]
    assert extra["x-custom"] == {"a": 1}
    assert extra["responses"]["200"]["description"] == "Overridden"
    assert [p["name"] for p in extra["parameters"]] == ["y", "x"]
    assert "/hidden" not in doc["paths"]


def test_security_requirements() -> None:
    doc = document(security, db_api)
    assert doc["paths"]["/me"]["get"]["security"] == [{"OAuth2PasswordBearer": ["items", "me"]}]
    assert doc["paths"]["/key"]["get"]["security"] == [{"Key": []}, {"HTTPBasic": []}]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["Key"] == {
        "type": "apiKey",
        "description": "The key",
        "in": "header",
        "name": "X-Key",
    }
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "token"


def test_metadata_callbacks_and_webhooks() -> None:
    doc = document(metadata_and_callbacks, db_api)
    assert doc["info"]["summary"] == "A shop"
    assert doc["info"]["license"] == {"name": "MIT", "identifier": "MIT"}
    assert doc["servers"] == [{"url": "https://api.example.com"}]
    assert doc["tags"] == [{"name": "items", "description": "Items"}]
    callbacks = doc["paths"]["/subscribe"]["post"]["callbacks"]
    event = callbacks["event_callback"]["/{$request.body.callback_url}/events"]["post"]
    assert event["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Message"
    }
    assert doc["webhooks"]["/new-item"]["post"]["operationId"] == "new_item_new_item_post"


def test_duplicate_operation_id_warns() -> None:
    app = db_api.FastAPI()

    @app.get("/a", operation_id="same")
    def a() -> dict:
        return {}

    @app.get("/b", operation_id="same")
    def b() -> dict:
        return {}

    with pytest.warns(UserWarning, match="Duplicate Operation ID same"):
        app.openapi()


@pytest.mark.parametrize("builder", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_document_validates_as_openapi_model(builder: Any) -> None:
    from data_bridge.api.openapi.models import OpenAPI

    doc = document(builder, db_api)
    model = OpenAPI(**doc)
    assert model.model_dump(mode="json", by_alias=True, exclude_none=True) == doc


def test_security_scheme_model_objects() -> None:
    doc = document(custom_security_scheme, db_api)
    assert doc["components"]["securitySchemes"] == {
        "CookieToken": {
            "type": "apiKey",
            "in": "cookie",
            "name": "session",
            "description": "The session",
        }
    }
    assert doc["paths"]["/me"]["get"]["security"] == [{"CookieToken": []}]
