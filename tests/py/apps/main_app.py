"""The app that the server tests run in a child process (python main_app.py PORT).

Limits come from the DB_TEST_LIMITS environment variable (JSON), so tests can shrink
them. Each route exercises one feature; the tests name the route they use.
"""

import asyncio
import contextvars
import json
import os
import sys
import threading
from typing import Annotated

from pydantic import BaseModel

from data_bridge.api import (
    APIRouter,
    App,
    BackgroundTasks,
    Body,
    Cookie,
    CORSMiddleware,
    Depends,
    FileResponse,
    Form,
    Header,
    HTMLResponse,
    HTTPException,
    JSONResponse,
    Path,
    PlainTextResponse,
    Query,
    Request,
    Response,
    StreamingResponse,
)

app = App()
app.add_middleware(
    CORSMiddleware,
    allow_origins=["https://app.example"],
    allow_methods=["GET", "POST"],
    allow_headers=["X-Token"],
    allow_credentials=True,
    expose_headers=["X-Request-Id"],
    max_age=300,
)
request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")
LOOP_THREAD = [0]  # the loop thread's ident, recorded by a def handler running inline


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.get("/plaintext", response_class=PlainTextResponse)
def plaintext():
    return "Hello, World!"


@app.get("/json")
async def json_response():
    return {
        "message": "Hello, World!",
        "status": "success",
        "timestamp": 1234567890,
        "data": {"key": "value"},
    }


@app.get("/users/{user_id}")
async def get_user(user_id: int, verbose: bool = False):
    return {
        "id": user_id,
        "name": f"User {user_id}",
        "email": f"user{user_id}@example.com",
        "active": True,
        "verbose": verbose,
    }


@app.get("/types/{f}/{b}/{s}")
def types(f: float, b: bool, s: str, n: int = 7, opt: int | None = None, x: float = 1.5):
    return {"f": f, "b": b, "s": s, "n": n, "opt": opt, "x": x}


@app.get("/required")
def required(q: int):
    return {"q": q}


@app.get("/files/{rest:path}")
def files(rest: str):
    return {"rest": rest}


@app.post("/items", status_code=201)
async def create_item(item: dict):
    return item


@app.post("/list")
def take_list(values: list):
    return {"n": len(values)}


@app.post("/model")
def take_model(item: Item):
    return {"name": item.name, "price": item.price, "tags": item.tags}


@app.post("/embed")
def embed(item: Item, note: dict):
    return {"item": item.name, "note": note}


@app.post("/echo")
async def echo(request: Request):
    body = await request.body()
    return Response(
        body, media_type="application/octet-stream", headers={"x-length": str(len(body))}
    )


@app.put("/items/{item_id}")
def put_item(item_id: int, item: dict):
    return JSONResponse({"id": item_id, **item}, status_code=202, headers={"x-put": "yes"})


@app.delete("/items/{item_id}")
def delete_item(item_id: int):
    return Response(status_code=204)


@app.patch("/items/{item_id}")
def patch_item(item_id: int, item: dict):
    return {"id": item_id, "patched": sorted(item)}


@app.route("/multi", methods=["GET", "POST"])
def multi(request: Request):
    return {"method": request.method}


@app.get("/raw")
async def raw(request: Request):
    await asyncio.sleep(0.001)
    return {
        "path": request.path,
        "q": request.query_params.get("q"),
        "ua": request.headers.get("user-agent"),
        "query": request.query_string,
        "x": request.headers.getlist("x-multi"),
    }


@app.get("/html")
def html():
    return HTMLResponse("<h1>hi</h1>")


@app.get("/text")
def text():
    return PlainTextResponse("plain", status_code=203)


@app.get("/bytes")
def raw_bytes():
    return b"\x00\x01\x02"


@app.get("/none")
def none():
    return None


@app.get("/http-error")
def http_error():
    raise HTTPException(418, "I'm a teapot", headers={"x-error": "tea"})


@app.get("/http-error-default")
def http_error_default():
    raise HTTPException(404)


@app.get("/boom")
def boom():
    raise RuntimeError("boom")


@app.get("/boom-async")
async def boom_async():
    await asyncio.sleep(0)
    raise ValueError("async boom")


@app.get("/bad-header")
def bad_header():
    return Response("x", headers={"x-evil": "a\r\nset-cookie: pwned=1"})


@app.get("/unencodable")
def unencodable():
    return {"x": object()}


@app.get("/slow")
async def slow(delay: float = 0.5):
    await asyncio.sleep(delay)
    return {"slept": delay}


# threaded=True: a blocking def handler runs in the thread pool. /threaded/wait blocks its
# thread until /threaded/release is served, which only works if the loop keeps serving.
_threaded_gate = threading.Event()


@app.get("/threaded/wait", threaded=True)
def threaded_wait(timeout: float = 5.0):
    released = _threaded_gate.wait(timeout)
    _threaded_gate.clear()
    return {
        "released": released,
        "on_loop_thread": threading.get_ident() == LOOP_THREAD[0],
    }


@app.get("/threaded/release")
def threaded_release():
    LOOP_THREAD[0] = threading.get_ident()
    _threaded_gate.set()
    return {"ok": True}


@app.post("/threaded/echo/{n}", threaded=True, status_code=201)
def threaded_echo(n: int, item: Item, q: str = "x"):
    if n < 0:
        raise HTTPException(418, "negative")
    return {"n": n, "item": item.name, "q": q}


# Parameter markers: Query/Path/Header/Cookie/Body with aliases and constraints.
@app.get("/params/search")
async def params_search(
    q: str = Query(..., min_length=2, max_length=10, pattern="^[a-z]+$"),
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    ratio: float = Query(0.5, gt=0, lt=1),
    ids: list[int] = Query([]),
    tags: Annotated[list[str], Query(alias="tag", max_length=3)] = [],  # noqa: B006
    user_agent: str | None = Header(None),
    x_trace: list[str] = Header([]),
    theme: str = Cookie("light"),
):
    return {
        "q": q,
        "limit": limit,
        "ratio": ratio,
        "ids": ids,
        "tags": tags,
        "user_agent": user_agent,
        "x_trace": x_trace,
        "theme": theme,
    }


@app.get("/params/auth")
def params_auth(
    x_api_key: str = Header(...),
    session_id: int = Cookie(..., alias="sid", gt=0),
    raw_name: str = Header("-", alias="X-Raw_Name", convert_underscores=False),
):
    return {"key": x_api_key, "sid": session_id, "raw": raw_name}


@app.get("/params/items/{item_id}")
def params_item(item_id: int = Path(..., ge=1, le=1000)):
    return {"item_id": item_id}


@app.post("/params/embed")
def params_embed(item: Item = Body(..., embed=True)):
    return {"name": item.name}


@app.post("/params/scalars")
def params_scalars(count: int = Body(..., gt=0), note: str = Body("n/a", max_length=5)):
    return {"count": count, "note": note}


@app.post("/params/items")
def params_items(items: list[Item]):
    return {"names": [i.name for i in items]}


# APIRouter: a group of routes with a prefix and tags, included under a further prefix.
accounts = APIRouter(prefix="/accounts", tags=["accounts"])


@accounts.get("/{account_id}", summary="Read one account")
async def read_account(account_id: int):
    """One account by id."""
    return {"account": account_id}


@accounts.post("/", status_code=201, tags=["writes"])
async def create_account(body: dict):
    return {"created": body}


@accounts.get("/legacy", deprecated=True, include_in_schema=False)
def legacy_accounts():
    return []


app.include_router(accounts, prefix="/v1", tags=["v1"])


# Exception handlers: domain errors answered by the app's own handlers.
class OutOfStock(Exception):
    def __init__(self, item: str):
        self.item = item


class Backorder(OutOfStock):
    pass


class SuspendingHandlerError(Exception):
    pass


@app.exception_handler(OutOfStock)
async def out_of_stock(request, exc):
    return JSONResponse(
        {"error": "out of stock", "item": exc.item, "path": request.path}, status_code=409
    )


@app.exception_handler(Backorder)
def backorder(request, exc):
    return {"backorder": exc.item, "method": request.method}


@app.exception_handler(SuspendingHandlerError)
async def suspending_handler(request, exc):
    await asyncio.sleep(0.01)
    return {"never": True}


class TeapotError(HTTPException):
    pass


@app.exception_handler(TeapotError)
def teapot(request, exc):
    return PlainTextResponse("short and stout", status_code=exc.status_code)


@app.get("/errors/stock/{item}")
def errors_stock(item: str):
    raise OutOfStock(item)


@app.get("/errors/backorder/{item}")
async def errors_backorder(item: str):
    await asyncio.sleep(0.001)  # raised after the handler was parked
    raise Backorder(item)


@app.get("/errors/suspending")
def errors_suspending():
    raise SuspendingHandlerError()


@app.get("/errors/http/{code}")
def errors_http(code: int, teapot: bool = False):
    raise (TeapotError if teapot else HTTPException)(code, "from handler")


# Dependencies (Depends): sub-dependencies, caching, classes, generators, router level.
DEPS_LOG: list[str] = []


async def pagination(offset: int = Query(0, ge=0), limit: int = 10):
    return {"offset": offset, "limit": limit}


def current_user(x_user: str = Header(...)):
    if x_user == "banned":
        raise HTTPException(403, "banned")
    return {"name": x_user}


async def audit(user: Annotated[dict, Depends(current_user)]):
    DEPS_LOG.append(f"audit:{user['name']}")


class Settings:
    def __init__(self, verbose: bool = False):
        self.verbose = verbose


_counter = [0]


def counted():
    _counter[0] += 1
    return _counter[0]


def db_session(fail_teardown: bool = False):
    DEPS_LOG.append("open")
    try:
        yield "session"
    except ValueError:
        DEPS_LOG.append("rollback")
        raise
    finally:
        DEPS_LOG.append("close")


async def async_resource():
    DEPS_LOG.append("aopen")
    yield "resource"
    DEPS_LOG.append("aclose")


deps_router = APIRouter(prefix="/deps", dependencies=[Depends(audit)])


@deps_router.get("/items/{item_id}")
async def deps_items(
    item_id: int,
    page: dict = Depends(pagination),
    user: dict = Depends(current_user),
    settings: Settings = Depends(),
    first: int = Depends(counted),
    again: int = Depends(counted),
    fresh: int = Depends(counted, use_cache=False),
):
    return {
        "item_id": item_id,
        "page": page,
        "user": user["name"],
        "verbose": settings.verbose,
        "cached": first == again,
        "fresh": fresh != first,
    }


@deps_router.get("/session")
def deps_session(
    db: str = Depends(db_session), res: str = Depends(async_resource), fail: bool = False
):
    DEPS_LOG.append(f"handler:{db}:{res}")
    if fail:
        raise ValueError("boom")
    return {"db": db, "res": res}


# Generators whose exit waits until /deps/release?key= is asked: the tests see whether the
# response was sent before (scope "request") or only after (scope "function") their exit.
_RELEASES: dict[str, asyncio.Event] = {}


async def held(key: str):
    DEPS_LOG.append(f"held:{key}")
    yield key
    await _RELEASES.setdefault(key, asyncio.Event()).wait()
    DEPS_LOG.append(f"released:{key}")


@deps_router.get("/hold/request")
async def deps_hold_request(key: Annotated[str, Depends(held)]):
    return {"key": key}


@deps_router.get("/hold/function")
async def deps_hold_function(key: Annotated[str, Depends(held, scope="function")]):
    return {"key": key}


@deps_router.get("/release")
async def deps_release(key: str):
    _RELEASES.setdefault(key, asyncio.Event()).set()
    return {"released": key}


@deps_router.get("/log")
def deps_log():
    out = list(DEPS_LOG)
    DEPS_LOG.clear()
    return out


app.include_router(deps_router)


# response_model: results validated and filtered (the password never leaves).
class UserIn(BaseModel):
    name: str
    password: str
    age: int = 0


class UserOut(BaseModel):
    name: str
    age: int


@app.post("/rm/users", response_model=UserOut, status_code=201)
def rm_create(user: UserIn):
    return user


@app.get("/rm/users", response_model=list[UserOut])
async def rm_list():
    return [{"name": "a", "age": 1, "password": "x"}, UserIn(name="b", password="y", age=2)]


@app.get("/rm/broken", response_model=UserOut)
def rm_broken():
    return {"name": "no age"}


@app.get("/rm/raw", response_model=UserOut)
def rm_raw():
    return PlainTextResponse("as is")


@app.get("/rm/threaded", response_model=UserOut, threaded=True)
def rm_threaded(name: str = "t"):
    return {"name": name, "age": 3, "password": "p"}


# BackgroundTasks: work after the response.
BG_LOG: list[str] = []


async def bg_slow(note: str):
    await asyncio.sleep(0.3)
    BG_LOG.append(f"async:{note}")


def bg_blocking(note: str):
    BG_LOG.append(f"sync:{note}:{threading.get_ident() != LOOP_THREAD[0]}")


def bg_dependency(background: BackgroundTasks, who: str = "dep"):
    background.add_task(bg_blocking, who)
    return who


@app.post("/bg/{note}")
def bg_start(note: str, background: BackgroundTasks, who: str = Depends(bg_dependency)):
    LOOP_THREAD[0] = threading.get_ident()
    background.add_task(bg_slow, note)
    return {"queued": len(background.tasks), "who": who}


@app.get("/bg-log")
def bg_log():
    return BG_LOG


# Form(): fields of an application/x-www-form-urlencoded body.
@app.post("/form/login")
def form_login(
    username: str = Form(..., min_length=2),
    password: str = Form(...),
    remember: bool = Form(False),
    scopes: list[str] = Form([]),
    next_url: str = Query("/"),
):
    return {
        "username": username,
        "password_len": len(password),
        "remember": remember,
        "scopes": scopes,
        "next": next_url,
    }


@app.get("/gather")
async def gather():
    async def part(i: int) -> int:
        await asyncio.sleep(0.01 * i)
        return i * i

    return {"parts": await asyncio.gather(*(part(i) for i in range(5)))}


@app.get("/wait-for")
async def wait_for(timeout: float = 0.05, sleep: float = 10):
    try:
        await asyncio.wait_for(asyncio.sleep(sleep), timeout)
    except asyncio.TimeoutError:
        return {"timed_out": True}
    return {"timed_out": False}


@app.get("/timeout")
async def timeout_route(delay: float):
    try:
        async with asyncio.timeout(0.5):  # needs a current task during the first step
            await asyncio.sleep(delay)
    except TimeoutError:
        return {"timed_out": True}
    return {"timed_out": False}


@app.get("/task-group")
async def task_group():
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(asyncio.sleep(0.001 * i, i)) for i in range(3)]
    return {"results": [t.result() for t in tasks]}


echo_server: dict[str, int] = {}


@app.on_event("startup")
async def start_echo_server():
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readline()
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    echo_server["port"] = server.sockets[0].getsockname()[1]


@app.get("/io/tcp")
async def io_tcp(text: str):
    reader, writer = await asyncio.open_connection("127.0.0.1", echo_server["port"])
    writer.write(text.encode() + b"\n")
    await writer.drain()
    reply = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return {"reply": reply.decode().strip()}


@app.get("/io/subprocess")
async def io_subprocess():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "print(6 * 7)", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return {"out": out.decode().strip(), "code": proc.returncode}


@app.get("/io/executor")
async def io_executor():
    import time as _time

    loop = asyncio.get_running_loop()
    started = _time.monotonic()
    await asyncio.gather(*(loop.run_in_executor(None, _time.sleep, 0.2) for _ in range(4)))
    return {"parallel": _time.monotonic() - started < 0.6}


@app.get("/debug/inflight")
def debug_inflight():
    """Handlers parked right now (each runs in a Task while it waits)."""
    return {"tasks": sum(1 for t in asyncio.all_tasks() if not t.done())}


@app.get("/debug/pid")
def debug_pid():
    return {"pid": os.getpid()}


@app.get("/event-queue")
async def event_queue():
    event = asyncio.Event()
    queue: asyncio.Queue[int] = asyncio.Queue()

    async def producer() -> None:
        for i in range(3):
            await queue.put(i)
            await asyncio.sleep(0)
        event.set()

    task = asyncio.ensure_future(producer())
    await event.wait()
    await task
    return {
        "items": [queue.get_nowait() for _ in range(queue.qsize())],
        "task": asyncio.current_task() is not None,
    }


@app.get("/context/{value}")
async def context(value: str, wait: bool = False):
    before = request_var.get()
    request_var.set(value)
    if wait:
        await asyncio.sleep(0.01)
    return {"before": before, "after": request_var.get()}


# The native server of this process, for /debug/buffers (App.run builds it).
_servers: list = []
_build_server = app.build_server


def _recording_build_server(loop, limits=None, **options):
    server = _build_server(loop, limits, **options)
    _servers.append(server)
    return server


app.build_server = _recording_build_server


@app.get("/debug/buffers")
def debug_buffers():
    """What the server lends its connections right now; this request holds one read
    buffer and one parsed head while it is served."""
    return {**_servers[-1].buffers, "connections": _servers[-1].connections}


@app.get("/debug/blocks")
def debug_blocks():
    import gc

    gc.collect()
    return {"blocks": sys.getallocatedblocks(), "objects": len(gc.get_objects())}


# Streaming responses (test_server_streaming.py). Per-key counters let the tests observe
# the producer: how many pieces it made, whether it started, whether its finally ran.
stream_stats: dict[str, dict[str, int]] = {}
stream_gates: dict[str, asyncio.Event] = {}


def _stats(key: str) -> dict[str, int]:
    return stream_stats.setdefault(key, {"started": 0, "produced": 0, "finalized": 0})


@app.get("/stream/chunks")
async def stream_chunks(n: int = 3):
    async def gen():
        for i in range(n):
            yield f"chunk{i}".encode()
            await asyncio.sleep(0)

    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/stream/str")
def stream_str():
    async def gen():
        yield "héllo "
        yield "wörld"

    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/stream/sync")
def stream_sync(key: str = "sync", status: int = 200):
    stats = _stats(key)

    def gen():
        stats["started"] += 1
        try:
            for i in range(4):
                stats["produced"] += 1
                yield f"s{i};".encode() if i % 2 else f"s{i};"
        finally:
            stats["finalized"] += 1

    return StreamingResponse(gen(), status_code=status, headers={"x-kind": "sync"})


thread_gates: dict[str, threading.Event] = {}


@app.get("/stream/blocking")
def stream_blocking(key: str):
    gate = thread_gates.setdefault(key, threading.Event())

    def gen():
        yield b"a;"
        gate.wait(10)  # blocks its worker thread, never the loop
        yield b"b"

    return StreamingResponse(gen())


@app.get("/stream/release-thread")
def stream_release_thread(key: str):
    thread_gates.setdefault(key, threading.Event()).set()
    return {"released": key}


@app.get("/stream/gated")
async def stream_gated(key: str):
    gate = stream_gates.setdefault(key, asyncio.Event())

    async def gen():
        gate_states[key] = "open"
        try:
            yield b"first;"
            await gate.wait()
            yield b"second"
        finally:
            gate_states[key] = "closed"

    return StreamingResponse(gen())


gate_states: dict[str, str] = {}


@app.get("/stream/gates")
def stream_gate_states():
    return gate_states


@app.get("/stream/release")
def stream_release(key: str):
    stream_gates.setdefault(key, asyncio.Event()).set()
    return {"released": key}


@app.get("/stream/length")
async def stream_length(declared: int, pieces: int):
    async def gen():
        for _ in range(pieces):
            yield b"12345"

    return StreamingResponse(gen(), headers={"Content-Length": str(declared)})


@app.get("/stream/fail")
async def stream_fail():
    async def gen():
        yield b"before the failure;"
        await asyncio.sleep(0)
        raise RuntimeError("stream broke")

    return StreamingResponse(gen())


@app.get("/stream/forever")
async def stream_forever(key: str, size: int = 1024, pause: float = 0.0):
    stats = _stats(key)
    piece = b"x" * size

    async def gen():
        stats["started"] += 1
        try:
            while True:
                stats["produced"] += 1
                yield piece
                await asyncio.sleep(pause)
        finally:
            stats["finalized"] += 1

    return StreamingResponse(gen(), media_type="application/octet-stream")


@app.get("/stream/parked")
async def stream_parked(request: Request):
    # Suspends before answering: the handler is parked in a Task (the _Driver path).
    await asyncio.sleep(0.001)

    async def gen():
        yield request.path.encode()
        await asyncio.sleep(0.001)
        yield b";parked"

    return StreamingResponse(gen())


def stream_dependency(n: int = 2) -> int:
    return n


@app.get("/stream/depends")
async def stream_depends(n: Annotated[int, Depends(stream_dependency)]):
    return StreamingResponse(iter([b"dep%d;" % i for i in range(n)]))


@app.get("/stream/background")
async def stream_background(key: str, tasks: BackgroundTasks):
    stats = _stats(key)
    gate = stream_gates.setdefault(key, asyncio.Event())

    def done() -> None:
        stats["finalized"] += 1

    tasks.add_task(done)

    async def gen():
        yield b"first;"
        await gate.wait()
        yield b"second"

    return StreamingResponse(gen())


@app.get("/stream/stats")
def stream_stats_route(key: str):
    return _stats(key)


@app.get("/request/addresses")
def request_addresses(request: Request):
    return {
        "client": request.client,
        "scope_client": request.scope["client"],
        "server": request.scope["server"],
    }


@app.get("/file")
def file_response(
    path: str,
    filename: str | None = None,
    media_type: str | None = None,
):
    return FileResponse(path, filename=filename, media_type=media_type)


if __name__ == "__main__":
    limits = json.loads(os.environ.get("DB_TEST_LIMITS", "{}"))
    workers = int(os.environ.get("DB_TEST_WORKERS", "1"))
    graceful = float(os.environ.get("DB_TEST_GRACEFUL", "10"))
    app.run(
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        workers=workers,
        graceful_timeout=graceful,
        **limits,
    )
