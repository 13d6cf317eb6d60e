"""An unmodified FastAPI application (the real ``fastapi`` package, written as FastAPI's
users write them) whose routes data-bridge compiles to native ones, for
tests/py/test_fastapi_native.py. The same module is served by data-bridge in a child
process and run in-process on FastAPI's own TestClient: the answers must agree."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Body,
    Cookie,
    Depends,
    FastAPI,
    File,
    Form,
    Header,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    Security,
    UploadFile,
)
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm, SecurityScopes
from pydantic import BaseModel, Field
from starlette.responses import PlainTextResponse as StarlettePlain

EVENTS: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
    app.state.started = "yes"
    yield {"greeting": "hello from lifespan"}


app = FastAPI(lifespan=lifespan)
app.add_middleware(GZipMiddleware, minimum_size=500)
app.add_middleware(
    CORSMiddleware,
    allow_origins=["https://app.example"],
    allow_methods=["GET", "POST"],
    allow_headers=["X-Token"],
    allow_credentials=True,
)


@app.middleware("http")
async def tag_responses(request: Request, call_next):  # noqa: ANN001, ANN201
    response = await call_next(request)
    response.headers["X-Mw"] = request.method
    return response


@app.get("/big")
async def big() -> dict:
    return {"data": ["x" * 40] * 40}


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []
    note: str | None = None


class ItemOut(BaseModel):
    name: str
    price: float
    total: float
    note: str | None = None


class Teapot(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


@app.exception_handler(Teapot)
async def teapot_handler(request: Request, exc: Teapot) -> JSONResponse:
    return JSONResponse(status_code=418, content={"teapot": exc.name, "path": request.url.path})


@app.get("/items/{item_id}")
async def read_item(
    item_id: Annotated[int, Path(ge=1, le=1000)],
    q: Annotated[str | None, Query(max_length=5, pattern="^[a-z]+$")] = None,
    limit: int = Query(10, alias="page-size", lt=100),
) -> dict:
    if item_id == 404:
        raise HTTPException(status_code=404, detail="Item not found", headers={"X-Why": "gone"})
    return {"item_id": item_id, "q": q, "limit": limit}


@app.post("/items", status_code=201, response_model=ItemOut, response_model_exclude_none=True)
async def create_item(item: Item, quantity: int = Body(1, gt=0)) -> ItemOut:
    return ItemOut(name=item.name, price=item.price, total=item.price * quantity, note=item.note)


@app.get("/headers")
def read_headers(
    user_agent: Annotated[str | None, Header()] = None,
    x_token: Annotated[list[str] | None, Header()] = None,
    strange_header: Annotated[str | None, Header(convert_underscores=False)] = None,
    session: Annotated[str | None, Cookie()] = None,
) -> dict:
    return {"ua": user_agent, "tokens": x_token, "strange": strange_header, "session": session}


def pagination(skip: int = 0, limit: int = 100) -> dict:
    return {"skip": skip, "limit": limit}


class Finder:
    def __init__(self, term: str = "", page: Annotated[dict, Depends(pagination)] = None) -> None:
        self.term = term
        self.page = page


def resource() -> Iterator[str]:
    EVENTS.append("open")
    try:
        yield "resource"
    finally:
        EVENTS.append("close")


@app.get("/search")
async def search(
    finder: Annotated[Finder, Depends()],
    page: Annotated[dict, Depends(pagination)],
    res: Annotated[str, Depends(resource)],
) -> dict:
    return {"term": finder.term, "page": page, "same": finder.page == page, "res": res}


@app.get("/events")
async def events() -> list[str]:
    return EVENTS


oauth2 = OAuth2PasswordBearer(tokenUrl="token", scopes={"read": "Read", "write": "Write"})


async def current_user(scopes: SecurityScopes, token: Annotated[str, Depends(oauth2)]) -> dict:
    granted = token.split("-")[1:]
    for scope in scopes.scopes:
        if scope not in granted:
            raise HTTPException(
                status_code=401,
                detail="Not enough permissions",
                headers={"WWW-Authenticate": f'Bearer scope="{scopes.scope_str}"'},
            )
    return {"token": token, "scopes": scopes.scopes}


@app.get("/me")
async def me(user: Annotated[dict, Security(current_user, scopes=["read"])]) -> dict:
    return user


@app.post("/token")
async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict:
    if form.password != "secret":
        raise HTTPException(status_code=400, detail="Incorrect username or password")
    return {"access_token": f"{form.username}-read", "token_type": "bearer"}


@app.get("/cookie")
async def set_cookie(response: Response, background: BackgroundTasks) -> dict:
    response.set_cookie("visited", "1", max_age=60, httponly=True)
    response.headers["X-Extra"] = "yes"
    response.status_code = 202
    background.add_task(EVENTS.append, "background")
    return {"ok": True}


@app.get("/direct")
async def direct() -> JSONResponse:
    return JSONResponse({"direct": True}, status_code=203, headers={"X-Direct": "1"})


@app.get("/plain", response_class=PlainTextResponse)
async def plain() -> str:
    return "plain text"


@app.get("/html", response_class=HTMLResponse)
async def html() -> str:
    return "<h1>hi</h1>"


@app.get("/go")
async def go() -> RedirectResponse:
    return RedirectResponse("/plain")


@app.get("/teapot/{name}")
async def teapot(name: str) -> dict:
    raise Teapot(name)


@app.get("/request")
async def read_request(request: Request) -> dict:
    return {
        "path": request.url.path,
        "query": str(request.query_params),
        "started": request.app.state.started,
        "greeting": request.state.greeting,
        "url_for": str(request.url_for("read_item", item_id=7)),
    }


@app.post("/upload")
async def upload(file: UploadFile = File(...), label: str = Form(...)) -> dict:  # noqa: B008
    data = await file.read()
    return {"filename": file.filename, "size": len(data), "label": label}


router = APIRouter(prefix="/v1", tags=["v1"], dependencies=[Depends(pagination)])


@router.get("/ping")
async def ping() -> dict:
    return {"pong": True}


app.include_router(router)


class TimedRoute(APIRoute):
    """A custom route class (it could wrap the handler): FastAPI serves it."""


custom = APIRouter(route_class=TimedRoute)


@custom.get("/custom")
async def custom_route() -> dict:
    return {"custom": True}


app.include_router(custom)


async def starlette_endpoint(request):  # noqa: ANN001, ANN201 (a Starlette endpoint)
    return StarlettePlain("from starlette")


app.add_route("/starlette", starlette_endpoint)


if __name__ == "__main__":
    from data_bridge import serve

    native = os.environ.get("DB_TEST_NATIVE", "1") != "0"
    serve(app, "127.0.0.1", int(sys.argv[1]), log_level="info", graceful_timeout=3, native=native)
