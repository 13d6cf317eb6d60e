/*
 * Request dispatch: route match, argument binding, the handler call (vectorcall with the
 * arguments the plan prepared) and coroutine driving.
 *
 * A coroutine is first sent None right here with PyIter_Send. If it finishes on that first
 * send - the common case for handlers that await nothing that blocks - the response is
 * written immediately and no Task, Future or extra loop iteration is created. If it
 * yields, it is parked: a Driver object wraps the suspended coroutine and the value it
 * yielded, and becomes the coroutine of a real asyncio Task. The Task's first step gets
 * that yielded value back from the Driver and waits on it exactly as if it had produced it
 * itself, so cancellation, current_task() and timeouts work as usual from then on. When the
 * wrapped coroutine finishes, the Driver writes the response and releases the connection.
 *
 * Each request runs in its own copy of the context (contextvars set by one request are not
 * seen by the next), entered around the first step and inherited by the Task.
 *
 * A parked handler (past its first step: the Driver drives it) may end by returning
 * `_core._Tail(awaitable, then, arg)`: the Driver then runs the awaitable in its place and,
 * once it returned or raised, `then(arg, exc or None)`, whose coroutine's outcome is the
 * handler's. A WebSocket route's wrapper ends so (its
 * endpoint runs for the whole session): its own frame does not stay suspended around the
 * endpoint, which is memory per idle connection.
 */
#include "app/app_internal.h"
#include "common/text.h"
#include "asgi/asgi.h"
#include "loop/loop.h"

typedef struct {
    PyObject_HEAD
    PyObject *coro;       /* the handler's coroutine */
    PyObject *first;      /* the value it yielded on the first send, until handed to the Task */
    PyObject *request;    /* the Request object, if the handler asked for one */
    PyObject *server;     /* the ServerObject, kept alive while the request is pending */
    PyObject *task;       /* the Task driving us; cleared when done (breaks the cycle) */
    route_plan_t *plan;   /* owned by the server */
    server_conn_t *conn;  /* holds a reference for us until server_conn_finish */
    PyObject *cancel_msg; /* cancel() before the Task exists: replayed on it */
    int cancels;          /* cancel requests not yet uncancelled, before the Task exists */
    PyObject *timer;      /* the handler timeout's TimerHandle (cancels the Task), or NULL */
    PyObject *tail;       /* the _Tail whose awaitable coro is, until its `then` is called */
} DriverObject;

typedef struct {
    PyObject_HEAD
    PyObject *awaitable;
    PyObject *then;
    PyObject *arg;
} TailObject;

static PyObject *str_create_task;
static PyObject *enter_task_fn; /* asyncio.tasks._enter_task / _leave_task */
static PyObject *leave_task_fn;

static void finish_request(server_conn_t *conn, PyObject *request)
{
    if (request)
        request_detach(request);
    server_conn_finish(conn);
}

/* Called once, when the wrapped coroutine returned (result) or raised (result NULL and
 * an exception set). Writes the response unless the peer is gone. */
static void driver_complete(DriverObject *d, PyObject *result)
{
    server_conn_t *conn = d->conn;
    if (conn == NULL) {
        PyErr_Clear();
        return;
    }
    d->conn = NULL;
    if (server_conn_closed(conn))
        PyErr_Clear();
    else if (result)
        respond_result(conn, d->plan, result);
    else
        respond_exception(conn, d->plan, ((ServerObject *)d->server)->exception_hook, d->request);
    finish_request(conn, d->request);
    Py_CLEAR(d->task);
    if (d->timer != NULL) {
        /* Answered in time: the timeout must not fire. The exception, if any, was
         * consumed by respond_exception above. */
        PyObject *r = PyObject_CallMethod(d->timer, "cancel", NULL);
        if (r == NULL)
            PyErr_WriteUnraisable(d->timer);
        Py_XDECREF(r);
        Py_CLEAR(d->timer);
    }
}

/* The iterator `await obj` would drive: a coroutine itself, else obj.__await__(). New
 * reference, or NULL with TypeError as the await would raise it. */
static PyObject *await_iter(PyObject *obj)
{
    if (PyCoro_CheckExact(obj))
        return Py_NewRef(obj);
    unaryfunc am_await = Py_TYPE(obj)->tp_as_async ? Py_TYPE(obj)->tp_as_async->am_await : NULL;
    if (am_await == NULL) {
        PyErr_Format(PyExc_TypeError, "object %.100s can't be used in 'await' expression",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    return am_await(obj);
}

/* d->coro finished (cleared by the caller): *r is PYGEN_RETURN with *value, or PYGEN_ERROR
 * with the exception set. Goes on with the next coroutine when there is one (a _Tail
 * returned, or the tail's awaitable finished: `then` is called): returns 1 with d->coro
 * set, *value released. Returns 0 when the handler is done (*r and *value as it ended). */
static int driver_continue(DriverObject *d, PySendResult *r, PyObject **value)
{
    if (d->tail == NULL) {
        if (*r != PYGEN_RETURN || !Py_IS_TYPE(*value, &Tail_Type))
            return 0;
        TailObject *tail = (TailObject *)*value;
        *value = NULL;
        d->tail = (PyObject *)tail; /* our reference, released once `then` is called */
        d->coro = await_iter(tail->awaitable);
        if (d->coro != NULL)
            return 1;
        *r = PYGEN_ERROR; /* the awaitable is not one: `then` gets the TypeError */
    }
    TailObject *tail = (TailObject *)d->tail;
    d->tail = NULL;
    /* The awaitable's return value is not the handler's (`await endpoint` drops it). */
    PyObject *exc = *r == PYGEN_ERROR ? pyloop_fetch_exception() : NULL;
    Py_CLEAR(*value);
    PyObject *next = PyObject_CallFunctionObjArgs(tail->then, tail->arg, exc ? exc : Py_None, NULL);
    Py_XDECREF(exc);
    Py_DECREF(tail);
    d->coro = next != NULL ? await_iter(next) : NULL;
    Py_XDECREF(next);
    if (d->coro != NULL)
        return 1;
    *r = PYGEN_ERROR;
    return 0;
}

static PySendResult driver_am_send(DriverObject *d, PyObject *arg, PyObject **out)
{
    if (d->first) {
        /* The Task's first step: give it what the coroutine yielded before parking. */
        *out = d->first;
        d->first = NULL;
        return PYGEN_NEXT;
    }
    if (d->coro == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited handler");
        return PYGEN_ERROR;
    }
    PyObject *value = NULL;
    PySendResult r;
    do {
        r = PyIter_Send(d->coro, arg, &value);
        if (r == PYGEN_NEXT) {
            *out = value;
            return PYGEN_NEXT;
        }
        Py_CLEAR(d->coro);
        arg = Py_None; /* the next coroutine's first send */
    } while (driver_continue(d, &r, &value));
    driver_complete(d, r == PYGEN_RETURN ? value : NULL);
    Py_XDECREF(value);
    *out = Py_NewRef(Py_None);
    return PYGEN_RETURN;
}

static PyObject *driver_send(DriverObject *d, PyObject *arg)
{
    PyObject *out = NULL;
    PySendResult r = driver_am_send(d, arg, &out);
    if (r == PYGEN_NEXT)
        return out;
    if (r == PYGEN_RETURN) {
        Py_DECREF(out);
        PyErr_SetNone(PyExc_StopIteration);
    }
    return NULL;
}

static PyObject *driver_iternext(DriverObject *d)
{
    PyObject *out = NULL;
    PySendResult r = driver_am_send(d, Py_None, &out);
    if (r == PYGEN_NEXT)
        return out;
    Py_XDECREF(out);
    return NULL;
}

static PyObject *driver_throw(DriverObject *d, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
        return NULL;
    }
    if (d->first) {
        /* Cancelled before the Task's first step: the value the coroutine waits on was never
         * handed over, so cancel it here as the Task would have. */
        PyObject *r = PyObject_CallMethod(d->first, "cancel", NULL);
        if (r == NULL)
            PyErr_Clear();
        Py_XDECREF(r);
        Py_CLEAR(d->first);
    }
    if (d->coro == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited handler");
        return NULL;
    }
    PyObject *meth = PyObject_GetAttrString(d->coro, "throw");
    PyObject *value = meth ? PyObject_Vectorcall(meth, args, (size_t)nargs, NULL) : NULL;
    Py_XDECREF(meth);
    if (value != NULL)
        return value;
    PyObject *result = NULL;
    PySendResult r = PYGEN_ERROR;
    if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
        PyObject *exc = pyloop_fetch_exception();
        result = PyObject_GetAttrString(exc, "value");
        Py_DECREF(exc);
        if (result == NULL)
            PyErr_Clear();
        else
            r = PYGEN_RETURN;
    }
    Py_CLEAR(d->coro);
    if (driver_continue(d, &r, &result))
        return driver_send(d, Py_None); /* the next coroutine's first step */
    driver_complete(d, r == PYGEN_RETURN ? result : NULL);
    Py_XDECREF(result);
    PyErr_SetNone(PyExc_StopIteration);
    return NULL;
}

static PyObject *driver_close(DriverObject *d, PyObject *unused)
{
    (void)unused;
    Py_CLEAR(d->first);
    if (d->coro) {
        PyObject *r = PyObject_CallMethod(d->coro, "close", NULL);
        Py_CLEAR(d->coro);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    if (d->conn) {
        PyErr_SetString(PyExc_RuntimeError, "handler closed before it answered");
        driver_complete(d, NULL);
    }
    Py_RETURN_NONE;
}

static PyObject *driver_self(PyObject *self)
{
    return Py_NewRef(self);
}

/* The Task-like interface. While the handler runs its first step the Driver is the
 * loop's current task (asyncio.timeout() and TaskGroup need one); afterwards it forwards
 * to the real Task that adopted the coroutine, since context managers entered during the
 * first step keep a reference to the Driver. */
static PyObject *driver_cancel(DriverObject *d, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"msg", NULL};
    PyObject *msg = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:cancel", kwlist, &msg))
        return NULL;
    if (d->task)
        return PyObject_CallMethod(d->task, "cancel", "O", msg);
    if (d->coro == NULL)
        Py_RETURN_FALSE;
    d->cancels++;
    Py_XSETREF(d->cancel_msg, Py_NewRef(msg));
    Py_RETURN_TRUE;
}

static PyObject *driver_cancelling(DriverObject *d, PyObject *unused)
{
    (void)unused;
    if (d->task)
        return PyObject_CallMethod(d->task, "cancelling", NULL);
    return PyLong_FromLong(d->cancels);
}

static PyObject *driver_uncancel(DriverObject *d, PyObject *unused)
{
    (void)unused;
    if (d->task)
        return PyObject_CallMethod(d->task, "uncancel", NULL);
    if (d->cancels > 0)
        d->cancels--;
    return PyLong_FromLong(d->cancels);
}

static PyObject *driver_done(DriverObject *d, PyObject *unused)
{
    (void)unused;
    if (d->task)
        return PyObject_CallMethod(d->task, "done", NULL);
    return PyBool_FromLong(d->coro == NULL);
}

static PyObject *driver_cancelled(DriverObject *d, PyObject *unused)
{
    (void)unused;
    if (d->task)
        return PyObject_CallMethod(d->task, "cancelled", NULL);
    Py_RETURN_FALSE;
}

static PyObject *driver_get_coro(DriverObject *d, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(d->coro ? d->coro : Py_None);
}

static PyObject *driver_get_name(DriverObject *d, PyObject *unused)
{
    (void)unused;
    if (d->task)
        return PyObject_CallMethod(d->task, "get_name", NULL);
    return PyUnicode_FromString("data-bridge-handler");
}

static PyObject *driver_get_loop(DriverObject *d, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(((ServerObject *)d->server)->loop);
}

static int driver_traverse(DriverObject *d, visitproc visit, void *arg)
{
    Py_VISIT(d->coro);
    Py_VISIT(d->first);
    Py_VISIT(d->request);
    Py_VISIT(d->server);
    Py_VISIT(d->task);
    Py_VISIT(d->timer);
    Py_VISIT(d->tail);
    return 0;
}

static int driver_clear(DriverObject *d)
{
    Py_CLEAR(d->coro);
    Py_CLEAR(d->first);
    Py_CLEAR(d->task);
    Py_CLEAR(d->cancel_msg);
    Py_CLEAR(d->timer);
    Py_CLEAR(d->tail);
    return 0;
}

static void driver_dealloc(DriverObject *d)
{
    PyObject_GC_UnTrack(d);
    if (d->conn) {
        /* Dropped without finishing (e.g. the loop was closed with the task pending):
         * release the connection so it is not leaked. */
        server_conn_t *conn = d->conn;
        d->conn = NULL;
        if (d->request)
            request_detach(d->request);
        server_conn_finish(conn);
    }
    driver_clear(d);
    Py_CLEAR(d->request);
    Py_CLEAR(d->server);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static PyMethodDef driver_methods[] = {
    {"send", (PyCFunction)driver_send, METH_O, "Resume the handler with a value."},
    {"throw", (PyCFunction)(void (*)(void))driver_throw, METH_FASTCALL,
     "Raise an exception inside the handler."},
    {"close", (PyCFunction)driver_close, METH_NOARGS, "Close the handler's coroutine."},
    {"cancel", (PyCFunction)(void (*)(void))driver_cancel, METH_VARARGS | METH_KEYWORDS,
     "Request cancellation, like Task.cancel()."},
    {"cancelling", (PyCFunction)driver_cancelling, METH_NOARGS, "Like Task.cancelling()."},
    {"uncancel", (PyCFunction)driver_uncancel, METH_NOARGS, "Like Task.uncancel()."},
    {"done", (PyCFunction)driver_done, METH_NOARGS, "Like Task.done()."},
    {"cancelled", (PyCFunction)driver_cancelled, METH_NOARGS, "Like Task.cancelled()."},
    {"get_coro", (PyCFunction)driver_get_coro, METH_NOARGS, "The handler's coroutine."},
    {"get_name", (PyCFunction)driver_get_name, METH_NOARGS, "Like Task.get_name()."},
    {"get_loop", (PyCFunction)driver_get_loop, METH_NOARGS, "The loop serving the request."},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods driver_async = {
    .am_await = driver_self,
    .am_send = (sendfunc)driver_am_send,
};

PyTypeObject Driver_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core._Driver",
    .tp_basicsize = sizeof(DriverObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Drives a parked handler coroutine inside an asyncio Task.",
    .tp_as_async = &driver_async,
    .tp_traverse = (traverseproc)driver_traverse,
    .tp_clear = (inquiry)driver_clear,
    .tp_dealloc = (destructor)driver_dealloc,
    .tp_iter = driver_self,
    .tp_iternext = (iternextfunc)driver_iternext,
    .tp_methods = driver_methods,
};

int invoke_init(void)
{
    str_create_task = PyUnicode_InternFromString("create_task");
    PyObject *tasks = PyImport_ImportModule("asyncio.tasks");
    if (tasks == NULL || str_create_task == NULL)
        goto error;
    enter_task_fn = PyObject_GetAttrString(tasks, "_enter_task");
    leave_task_fn = enter_task_fn ? PyObject_GetAttrString(tasks, "_leave_task") : NULL;
    if (leave_task_fn == NULL)
        goto error;
    Py_DECREF(tasks);
    return 0;
error:
    Py_XDECREF(tasks);
    return -1;
}

static DriverObject *driver_new(ServerObject *srv, route_plan_t *plan, PyObject *coro,
                                PyObject *request)
{
    DriverObject *d = PyObject_GC_New(DriverObject, &Driver_Type);
    if (d == NULL)
        return NULL;
    d->coro = coro;
    d->first = NULL;
    d->request = Py_XNewRef(request);
    d->server = Py_NewRef((PyObject *)srv);
    d->task = NULL;
    d->plan = plan;
    d->conn = NULL;
    d->cancel_msg = NULL;
    d->cancels = 0;
    d->timer = NULL;
    d->tail = NULL;
    PyObject_GC_Track(d);
    return d;
}

/* Runs the coroutine's first step with the Driver as the loop's current task. */
static PySendResult first_send(ServerObject *srv, DriverObject *d, PyObject **value)
{
    PyObject *args[2] = {srv->loop, (PyObject *)d};
    PyObject *r = PyObject_Vectorcall(enter_task_fn, args, 2, NULL);
    if (r == NULL)
        return PYGEN_ERROR;
    Py_DECREF(r);
    PySendResult s = PyIter_Send(d->coro, Py_None, value);
    PyObject *exc = s == PYGEN_ERROR ? pyloop_fetch_exception() : NULL;
    r = PyObject_Vectorcall(leave_task_fn, args, 2, NULL);
    if (r == NULL)
        PyErr_WriteUnraisable(leave_task_fn);
    Py_XDECREF(r);
    pyloop_restore_exception(exc);
    return s;
}

/* Parks a coroutine that yielded on its first send: the Driver (which holds the coroutine
 * and, in first, what it yielded) becomes the coroutine of a new Task. Returns
 * SERVER_DISPATCH_PENDING, or DONE after answering 500 when the Task could not be made. */
static int park(ServerObject *srv, server_conn_t *conn, route_plan_t *plan, DriverObject *d)
{
    PyObject *args[2] = {srv->loop, (PyObject *)d};
    PyObject *task = PyObject_VectorcallMethod(str_create_task, args, 2, NULL);
    if (task == NULL) {
        respond_exception(conn, plan, srv->exception_hook, d->request);
        PyObject *r = PyObject_CallMethod(d->coro, "close", NULL);
        Py_XDECREF(r);
        PyErr_Clear();
        driver_clear(d);
        return SERVER_DISPATCH_DONE;
    }
    /* asyncio keeps only weak references to tasks: the Driver holds the Task until the
     * handler finishes (driver_complete clears it), and the Task holds the Driver. */
    d->task = task;
    d->conn = conn;
    for (; d->cancels > 0; d->cancels--) {
        /* cancel() was called during the first step (e.g. by a timeout): replay it. */
        PyObject *r = PyObject_CallMethod(task, "cancel", "O", d->cancel_msg);
        if (r == NULL)
            PyErr_WriteUnraisable(task);
        Py_XDECREF(r);
    }
    if (srv->handler_timeout > 0) {
        /* --timeout-handler: loop.call_later(timeout, task.cancel, message). The handle
         * holds the Task; driver_complete cancels it when the handler answers in time. */
        PyObject *cancel = PyObject_GetAttrString(task, "cancel");
        d->timer = cancel
                       ? PyObject_CallMethod(srv->loop, "call_later", "dOO", srv->handler_timeout,
                                             cancel, respond_timeout_message)
                       : NULL;
        Py_XDECREF(cancel);
        if (d->timer == NULL)
            PyErr_WriteUnraisable(task); /* the handler runs on without a bound */
    }
    return SERVER_DISPATCH_PENDING;
}

/* RFC 9110 §10.2.1: the Allow value of a 405, the methods the path's routes take, written
 * into out (NUL-terminated, cut at whole names when cap is short); returns its length. */
static size_t allow_value(const router_match_t *m, char *out, size_t cap)
{
    size_t n = 0;
    for (int meth = 0; meth < HTTP_OTHER; meth++) {
        if (!(m->allowed & (1u << meth)))
            continue;
        const char *name = http_method_name((http_method_t)meth);
        size_t len = strlen(name);
        if (n + len + 3 >= cap)
            break;
        if (n > 0) {
            memcpy(out + n, ", ", 2);
            n += 2;
        }
        memcpy(out + n, name, len);
        n += len;
    }
    out[n] = '\0';
    return n;
}

static int respond_routing(server_conn_t *conn, int r, const router_match_t *m)
{
    if (r == ROUTER_NOT_FOUND) {
        server_conn_respond_detail(conn, 404, "Not Found", NULL, 0);
        return SERVER_DISPATCH_DONE;
    }
    /* RFC 9110 §15.5.6: a 405 response lists the allowed methods in Allow. */
    char allow[160] = "allow: ";
    size_t n = 7 + allow_value(m, allow + 7, sizeof(allow) - 7 - 2);
    memcpy(allow + n, "\r\n", 2);
    n += 2;
    server_conn_respond_detail(conn, 405, "Method Not Allowed", allow, n);
    return SERVER_DISPATCH_DONE;
}

/* Answers the exception raised while dispatching. When the app has exception handlers,
 * they receive the Request, made now if the handler did not ask for one. */
static void dispatch_failed(ServerObject *srv, server_conn_t *conn, route_plan_t *plan,
                            server_request_t *req, const router_match_t *m, PyObject **request)
{
    if (srv->exception_hook != NULL && *request == NULL) {
        PyObject *exc = pyloop_fetch_exception();
        *request = request_new(req, m);
        if (*request == NULL)
            PyErr_Clear(); /* the hook then gets None */
        pyloop_restore_exception(exc);
    }
    respond_exception(conn, plan, srv->exception_hook, *request);
}

/* The app's handler for RequestValidationError, when it has one: hook(errors, request)
 * answers the request like a handler's result. Returns 1 when answered (an error inside
 * the hook is answered as the handler's would be), 0 when the hook returned
 * NotImplemented and the default 422 applies. */
static int answer_validation_hook(ServerObject *srv, server_conn_t *conn, route_plan_t *plan,
                                  server_request_t *req, const router_match_t *m,
                                  PyObject **request, PyObject *errors)
{
    if (*request == NULL && (*request = request_new(req, m)) == NULL) {
        respond_exception(conn, plan, NULL, NULL);
        return 1;
    }
    PyObject *res = PyObject_CallFunctionObjArgs(srv->validation_hook, errors, *request, NULL);
    if (res == NULL) {
        respond_exception(conn, plan, srv->exception_hook, *request);
        return 1;
    }
    if (res == Py_NotImplemented) {
        Py_DECREF(res);
        return 0;
    }
    respond_result(conn, plan, res);
    Py_DECREF(res);
    return 1;
}

static PyObject *header_str(const http_request_t *head, const char *name, size_t len)
{
    const http_header_t *h = http_find_header(head, name, len);
    if (h == NULL)
        return Py_NewRef(Py_None);
    return PyUnicode_DecodeLatin1(h->value, (Py_ssize_t)h->value_len, NULL);
}

/* CORS (the Fetch standard's protocol, Starlette's CORSMiddleware rules, decided by the
 * Python hook, Starlette 1.x's): only requests with an Origin header call it; the others
 * get a static "Vary: Origin". Returns 1 when the hook answered (a preflight), 0 to go on
 * with dispatch; failures are logged and answered 500. */
int app_apply_cors(ServerObject *srv, server_conn_t *conn, server_request_t *req, int through,
                   PyObject **outcome)
{
    static const char vary_origin[] = "Vary: Origin\r\n";
    const http_request_t *head = req->head;
    if (http_find_header(head, "origin", 6) == NULL) {
        /* Not a CORS request, but the answer still depends on the Origin (Starlette's
         * CORSMiddleware adds the Vary in every case), so caches keep them apart. */
        if (server_conn_add_headers(conn, vary_origin, sizeof(vary_origin) - 1) < 0) {
            PyErr_NoMemory();
            respond_exception(conn, NULL, NULL, NULL);
            return 1;
        }
        return 0;
    }
    PyObject *origin = header_str(head, "origin", 6), *acrm = NULL, *acrh = NULL, *acrpn = NULL,
             *res = NULL;
    int rc = 0;
    if (origin == NULL)
        goto error;
    if (head->method == HTTP_OPTIONS) {
        acrm = header_str(head, "access-control-request-method", 29);
        acrh = acrm ? header_str(head, "access-control-request-headers", 30) : NULL;
        acrpn = acrh ? header_str(head, "access-control-request-private-network", 38) : NULL;
    } else {
        acrm = Py_NewRef(Py_None);
        acrh = Py_NewRef(Py_None);
        acrpn = Py_NewRef(Py_None);
    }
    if (acrpn == NULL)
        goto error;
    res = PyObject_CallFunctionObjArgs(srv->cors_hook, origin, acrm, acrh, acrpn, NULL);
    if (res == NULL)
        goto error;
    if (PyBytes_Check(res)) {
        if (server_conn_add_headers(conn, PyBytes_AS_STRING(res), (size_t)PyBytes_GET_SIZE(res)) <
            0) {
            PyErr_NoMemory();
            goto error;
        }
    } else if (PyTuple_Check(res)) {
        int status;
        const char *ctype, *body, *lines;
        Py_ssize_t ctype_len, body_len, lines_len;
        if (!PyArg_ParseTuple(res, "is#y#y#;CORS answer", &status, &ctype, &ctype_len, &body,
                              &body_len, &lines, &lines_len))
            goto error;
        rc = 1;
        if (through >= 0) {
            *outcome = app_guard_outcome(through, status, ctype, (size_t)ctype_len, body,
                                         (size_t)body_len, lines, (size_t)lines_len);
            if (*outcome == NULL)
                goto error;
        } else {
            server_conn_respond(conn, status, ctype, (size_t)ctype_len, lines, (size_t)lines_len,
                                body, (size_t)body_len);
        }
    } else if (res != Py_None) {
        PyErr_SetString(PyExc_TypeError, "the CORS hook must return None, bytes or a tuple");
        goto error;
    }
    goto done;
error:
    respond_exception(conn, NULL, NULL, NULL);
    rc = 1;
done:
    Py_XDECREF(origin);
    Py_XDECREF(acrm);
    Py_XDECREF(acrh);
    Py_XDECREF(acrpn);
    Py_XDECREF(res);
    return rc;
}

/* A lenient plan's handler called although binding failed: every argument that did not
 * bind is None, and the errors list goes along as the keyword __db_binding_errors__ (the
 * slot after the plan's arguments; plan->lenient guarantees there is one). */
PyObject *app_call_lenient(const route_plan_t *plan, PyObject **args, PyObject *errors)
{
    static PyObject *errors_name; /* "__db_binding_errors__", kept for the process */
    if (errors_name == NULL &&
        (errors_name = PyUnicode_InternFromString("__db_binding_errors__")) == NULL)
        return NULL;
    for (int i = 0; i < plan->nargs; i++)
        if (args[i] == NULL)
            args[i] = Py_NewRef(Py_None); /* released with the others in app_dispatch */
    PyObject *names = plan->kwnames ? PySequence_Tuple(plan->kwnames) : PyTuple_New(0);
    PyObject *all = NULL, *res = NULL;
    if (names == NULL)
        return NULL;
    PyObject *extra = PyTuple_Pack(1, errors_name);
    all = extra ? PySequence_Concat(names, extra) : NULL;
    Py_XDECREF(extra);
    if (all != NULL) {
        args[plan->nargs] = errors; /* borrowed for the call only */
        res = PyObject_Vectorcall(plan->handler, args,
                                  (size_t)plan->npositional | PY_VECTORCALL_ARGUMENTS_OFFSET, all);
        args[plan->nargs] = NULL;
    }
    Py_DECREF(names);
    Py_XDECREF(all);
    return res;
}

/* The Location of a 307 to the request's URL with its path replaced by the decoded path[0..n),
 * a '/' added with add_slash, appended to line: absolute when the request has a Host header
 * (as Starlette builds it from the request's URL, https behind a TLS terminator:
 * set_secure), the query string kept; the path and query quoted as RedirectResponse quotes
 * them. Returns 0, or -1 when out of memory. */
static int location_value(const ServerObject *srv, server_conn_t *conn, const http_request_t *head,
                          const char *path, size_t n, int add_slash, db_buf_t *line)
{
    /* The host of request.url: a trusted proxy's forwarded Host, else the Host field. */
    char fwd[SERVER_HOST_MAX];
    size_t host_len = 0;
    const char *host = server_conn_forwarded_host(conn, head, fwd, sizeof(fwd), &host_len);
    if (host == NULL) {
        const http_header_t *f = http_find_header(head, "host", 4);
        host = f != NULL ? f->value : NULL;
        host_len = f != NULL ? f->value_len : 0;
    }
    size_t query = head->target_len - head->path_len; /* "?..." or nothing */
    int ok = 1;
    if (host != NULL)
        ok = db_buf_append(line, srv->secure ? "https://" : "http://", srv->secure ? 8 : 7) == 0 &&
             db_buf_append(line, host, host_len) == 0;
    ok = ok && app_put_url_path(line, path, n) == 0 &&
         (!add_slash || db_buf_append(line, "/", 1) == 0) &&
         (query <= 1 || app_put_quoted(line, head->target + head->path_len, query) == 0);
    return ok ? 0 : -1;
}

/* Answers a 307 to that Location. */
static void redirect_307(ServerObject *srv, server_conn_t *conn, const http_request_t *head,
                         const char *path, size_t n, int add_slash)
{
    db_buf_t line;
    db_buf_init(&line);
    int ok = db_buf_append(&line, "location: ", 10) == 0 &&
             location_value(srv, conn, head, path, n, add_slash, &line) == 0 &&
             db_buf_append(&line, "\r\n", 2) == 0;
    if (ok)
        server_conn_respond(conn, 307, NULL, 0, line.data, line.len, NULL, 0);
    else
        server_conn_respond_detail(conn, 500, "Internal Server Error", NULL, 0);
    db_buf_free(&line);
}

/* The unrouted handler's outcome for a 307 to that Location: (307, location). */
static PyObject *redirect_outcome(ServerObject *srv, server_conn_t *conn,
                                  const http_request_t *head, const char *path, size_t n,
                                  int add_slash)
{
    db_buf_t loc;
    db_buf_init(&loc);
    PyObject *res = NULL;
    /* UTF-8 as the response writes header values back; bytes that are not (obs-text in the
     * Host field) become U+FFFD rather than failing the request. */
    PyObject *value = location_value(srv, conn, head, path, n, add_slash, &loc) < 0
                          ? PyErr_NoMemory()
                          : PyUnicode_DecodeUTF8(loc.data, (Py_ssize_t)loc.len, "replace");
    if (value != NULL)
        res = Py_BuildValue("(iN)", 307, value);
    db_buf_free(&loc);
    return res;
}

/* The method a request is routed with: a WebSocket upgrade (a GET with "Upgrade:
 * websocket", what uvicorn hands to its WebSocket protocol) matches the WebSocket routes
 * only (APP_METHOD_WEBSOCKET). */
static int route_method(const server_request_t *req, int *ws)
{
    *ws = req->head->method == HTTP_GET && asgi_ws_is_upgrade(req);
    return *ws ? APP_METHOD_WEBSOCKET : (int)req->head->method;
}

/* router_match for the request's method; an HTTP request to a path that has WebSocket
 * routes alone is not found (Starlette: no HTTP route matches it, so no 405). */
static int match_route(ServerObject *srv, int method, const char *path, size_t path_len,
                       router_match_t *m)
{
    int r = router_match(srv->router, method, path, path_len, m);
    if (r == ROUTER_METHOD_NOT_ALLOWED && (m->allowed & ~(1u << APP_METHOD_WEBSOCKET)) == 0)
        r = ROUTER_NOT_FOUND;
    return r;
}

/* redirect_slashes: whether the decoded path p[0..n) (under 4 KiB) with its trailing slash
 * toggled matches a route (for any method); if so, that path is in alt[0..*alt_len). */
static int slash_alternative(ServerObject *srv, const http_request_t *head, const char *p, size_t n,
                             size_t skip, char alt[4097], size_t *alt_len)
{
    if (n == 0 || (n == 1 && p[0] == '/') || n >= 4096 || p[0] != '/')
        return 0;
    if (p[n - 1] == '/') {
        *alt_len = n - 1;
        memcpy(alt, p, *alt_len);
    } else {
        memcpy(alt, p, n);
        alt[n] = '/';
        *alt_len = n + 1;
    }
    router_match_t m;
    /* skip: the root_path prefix, not part of what routes see (alt_len >= skip: the path
     * started with it and only its last '/' may be dropped, which is past the prefix). */
    return *alt_len >= skip &&
           match_route(srv, (int)head->method, alt + skip, *alt_len - skip, &m) != ROUTER_NOT_FOUND;
}

/* redirect_slashes: answers 307 to the path with its trailing slash toggled when that
 * matches a route and returns 1; 0 when it does not. */
static int redirect_slash(ServerObject *srv, server_conn_t *conn, const http_request_t *head,
                          const char *p, size_t n, size_t skip)
{
    char alt[4097];
    size_t alt_len;
    if (!slash_alternative(srv, head, p, n, skip, alt, &alt_len))
        return 0;
    redirect_307(srv, conn, head, alt, alt_len, 0);
    return 1;
}

/* What the router decided for a request no route takes, for the app's unrouted handler
 * (ServerObject.unrouted): (307, location) when redirect_slashes redirects, (405, allow
 * value) or (404, None), as Starlette's Router decides them inside the middleware stack. */
static PyObject *routing_outcome(ServerObject *srv, server_conn_t *conn, const http_request_t *head,
                                 const char *p, size_t pn, int r, const router_match_t *m,
                                 size_t skip)
{
    char alt[4097];
    size_t alt_len;
    if (r == ROUTER_NOT_FOUND && srv->redirect_slashes &&
        slash_alternative(srv, head, p, pn, skip, alt, &alt_len))
        return redirect_outcome(srv, conn, head, alt, alt_len, 0);
    if (r == ROUTER_NOT_FOUND)
        return Py_BuildValue("(iO)", 404, Py_None);
    char allow[160];
    size_t n = allow_value(m, allow, sizeof(allow));
    return Py_BuildValue("(is#)", 405, allow, (Py_ssize_t)n);
}

/* The unrouted handler's outcome for a mount it answers (app_mount.through): (0, through),
 * or for the prefix alone redirect_slashes' (307, "<prefix>/" as a whole URL). */
static PyObject *mount_outcome(ServerObject *srv, server_conn_t *conn, const http_request_t *head,
                               const char *p, size_t n, const struct app_mount *mt, int bare)
{
    if (!bare)
        return Py_BuildValue("(iO)", 0, mt->through);
    return redirect_outcome(srv, conn, head, p, n, 1);
}

/* Hands the routing outcome to the unrouted handler's Request (its `_db_routing`). */
static int set_routing(PyObject *request, PyObject *outcome)
{
    static PyObject *name; /* "_db_routing", kept for the process */
    if (name == NULL && (name = PyUnicode_InternFromString("_db_routing")) == NULL)
        return -1;
    if (request == NULL) {
        PyErr_SetString(PyExc_TypeError, "the unrouted handler must take the Request");
        return -1;
    }
    return PyObject_SetAttr(request, name, outcome);
}

/* The path routes see: of the decoded path p[0..n), under the root_path, the rest ("" for
 * the prefix itself), as Starlette's get_route_path does; the Request keeps the whole path. */
static void route_path(const ServerObject *srv, const char *p, size_t n, const char **path,
                       size_t *path_len)
{
    *path = p;
    *path_len = n;
    if (srv->root_path_len && *path_len >= srv->root_path_len &&
        memcmp(*path, srv->root_path, srv->root_path_len) == 0 &&
        (*path_len == srv->root_path_len || (*path)[srv->root_path_len] == '/')) {
        *path += srv->root_path_len;
        *path_len -= srv->root_path_len;
    }
}

/* Starlette's Mount matches "<prefix>/..." (the prefix alone is redirected there by
 * redirect_slashes: *bare is then set); the mounted app sees the whole path, its root_path
 * the prefix. The first mount in order that takes the path, or NULL. */
static const struct app_mount *mount_for(const ServerObject *srv, const char *path, size_t len,
                                         int *bare)
{
    for (size_t i = 0; i < srv->nmounts; i++) {
        const struct app_mount *mt = &srv->mounts[i];
        *bare = len == mt->len && srv->redirect_slashes;
        if ((*bare || (len > mt->len && path[mt->len] == '/')) &&
            memcmp(path, mt->prefix, mt->len) == 0)
            return mt;
    }
    *bare = 0;
    return NULL;
}

/* Routing on the decoded path, as Starlette routes on scope["path"]: the request's path is
 * percent-decoded once (unquote's rules: a '%' without two hex digits stays as it is) into
 * a scratch buffer when it holds a '%', else used as it is; path parameters are slices of
 * it and are not decoded again. The buffer lives until app_dispatch returns: whatever keeps
 * a parameter longer copies it (a Request that keeps the match copies its values). The root
 * path, the mount prefixes and redirect_slashes' alternative are all taken on it; the
 * Request's path and scope["path"] are decoded from the raw path the same way, raw_path and
 * the access log keep the target as sent. */
typedef struct {
    const char *p;
    size_t n;
    char *heap;
    char small[512];
} decoded_path_t;

/* Returns 0, or -1 when out of memory. */
static int decoded_path(const http_request_t *head, decoded_path_t *d)
{
    d->p = head->path;
    d->n = head->path_len;
    d->heap = NULL;
    if (memchr(head->path, '%', head->path_len) == NULL)
        return 0;
    char *buf = d->small;
    if (head->path_len > sizeof(d->small) && (buf = d->heap = PyMem_Malloc(head->path_len)) == NULL)
        return -1;
    d->n = db_pct_decode(buf, head->path, head->path_len, 0);
    d->p = buf;
    return 0;
}

static int stream_body_path(ServerObject *srv, const http_request_t *head, const char *p, size_t n)
{
    const char *path;
    size_t path_len;
    route_path(srv, p, n, &path, &path_len);
    int bare;
    const struct app_mount *mt = mount_for(srv, path, path_len, &bare);
    /* Redirected; read through the unrouted handler's Request; an ASGI app reads its body
     * with receive(); a mounted App's server decides for its route. */
    if (mt != NULL && bare)
        return 0;
    if (mt != NULL && mt->through != NULL)
        return srv->unrouted->stream_body;
    if (mt != NULL)
        return asgi_app_check(mt->target)
                   ? 1
                   : stream_body_path((ServerObject *)mt->target, head, p, n);
    router_match_t m;
    if (router_match(srv->router, head->method, path, path_len, &m) != ROUTER_FOUND)
        /* The fallback ASGI app reads it with receive(); the unrouted handler as a route. */
        return srv->fallback != NULL || (srv->unrouted != NULL && srv->unrouted->stream_body);
    return ((route_plan_t *)m.data)->stream_body;
}

int app_stream_body(void *ctx, const http_request_t *head)
{
    decoded_path_t d;
    if (decoded_path(head, &d) < 0)
        return 0; /* whole, then answered 500 by app_dispatch, out of memory as well */
    int r = stream_body_path((ServerObject *)ctx, head, d.p, d.n);
    PyMem_Free(d.heap);
    return r;
}

static int dispatch_path(ServerObject *srv, server_conn_t *conn, server_request_t *req,
                         const char *p, size_t n)
{
    router_match_t m;
    const char *path;
    size_t path_len;
    route_path(srv, p, n, &path, &path_len);
    int ws;
    int method = route_method(req, &ws);
    int r = ROUTER_NOT_FOUND, routed = 0;
    if (srv->fallback != NULL) {
        /* Not a native route: the fallback app decides, its own middleware, routes,
         * redirect_slashes, 404 and 405 included, as it would alone; the native middleware
         * (guards, CORS) stands in for its middleware on the native routes only. */
        r = match_route(srv, method, path, path_len, &m);
        if (r != ROUTER_FOUND) {
            server_conn_no_gzip(conn); /* its own GZipMiddleware, if it has one, runs */
            return asgi_dispatch(srv->fallback, conn, req);
        }
        routed = 1;
    }
    PyObject *routing = NULL; /* the unrouted handler's outcome */
    if (srv->nguards ? app_guards_run(srv, conn, req, &routing)
                     : srv->cors_hook != NULL && app_apply_cors(srv, conn, req, -1, NULL)) {
        if (routing == NULL)
            return SERVER_DISPATCH_DONE;
        /* Else a guard inside HTTP middleware answered: its answer goes to the unrouted
         * handler, which runs them around it (guard.c). */
    }
    int bare = 0;
    const struct app_mount *mt = routing ? NULL : mount_for(srv, path, path_len, &bare);
    /* HTTP middleware lets WebSocket upgrades through to the mounted app. */
    int through = mt != NULL && mt->through != NULL && !asgi_ws_is_upgrade(req);
    if (mt != NULL && !through && bare) {
        redirect_307(srv, conn, req->head, p, n, 1);
        return SERVER_DISPATCH_DONE;
    }
    if (mt != NULL && !through)
        return asgi_app_check(mt->target)
                   ? asgi_dispatch(mt->target, conn, req)
                   : dispatch_path((ServerObject *)mt->target, conn, req, p, n);
    if (!routed && mt == NULL && routing == NULL)
        r = match_route(srv, method, path, path_len, &m);
    if (ws && routing == NULL && mt == NULL && r != ROUTER_FOUND) {
        /* No WebSocket route: Starlette closes the session before accepting it, which
         * uvicorn answers 403 (HTTP middleware lets websocket scopes through). */
        server_conn_respond(conn, 403, NULL, 0, NULL, 0, NULL, 0);
        return SERVER_DISPATCH_DONE;
    }
    if (routing != NULL) {
        memset(&m, 0, sizeof(m)); /* a guard's answer: no route runs */
        m.data = srv->unrouted;
    } else if (mt != NULL || (r != ROUTER_FOUND && srv->unrouted != NULL)) {
        /* The app's middleware sees requests no route takes (ServerObject.unrouted), and
         * those of the mounts it runs around (app_mount.through). */
        routing = mt != NULL
                      ? mount_outcome(srv, conn, req->head, p, n, mt, bare)
                      : routing_outcome(srv, conn, req->head, p, n, r, &m, (size_t)(path - p));
        if (routing == NULL) {
            respond_exception(conn, NULL, NULL, NULL);
            return SERVER_DISPATCH_DONE;
        }
        if (mt != NULL)
            memset(&m, 0, sizeof(m)); /* the router did not run */
        m.data = srv->unrouted;
        m.nparams = 0;
    } else if (r == ROUTER_NOT_FOUND && srv->redirect_slashes &&
               redirect_slash(srv, conn, req->head, p, n, (size_t)(path - p))) {
        return SERVER_DISPATCH_DONE;
    } else if (r != ROUTER_FOUND) {
        return respond_routing(conn, r, &m);
    }
    route_plan_t *plan = m.data;
    /* Only the listening server's own routes name the metrics' route label (a mounted
     * App's server never listens, and its ids mean other routes). */
    if (srv->server != NULL && routing == NULL)
        server_conn_set_route(conn, plan->metrics_id);
    /* A StaticFiles route: a file it served before is answered without Python. */
    if (plan->file_cache != NULL && app_files_answer(plan->file_cache, conn, req, &m))
        return SERVER_DISPATCH_DONE;
    if (plan->max_body && !plan->stream_body && req->body_len > plan->max_body) {
        /* RFC 9110 §15.5.14: the body is over this route's limit. A route that reads its
         * body itself (through the Request) gets it whether it came whole or streamed:
         * request.body() applies the limit, uploads the form limits. */
        server_conn_respond_detail(conn, 413, "Request body exceeds the configured limit", NULL, 0);
        Py_XDECREF(routing);
        return SERVER_DISPATCH_DONE;
    }
    PyObject *stack[APP_MAX_ARGS + 1] = {NULL};
    PyObject **args = stack + 1; /* room for PY_VECTORCALL_ARGUMENTS_OFFSET */
    PyObject *request = NULL, *errors = NULL, *result = NULL, *context = NULL;
    int rc = SERVER_DISPATCH_DONE;

    context = PyContext_CopyCurrent();
    if (context == NULL || PyContext_Enter(context) < 0) {
        Py_CLEAR(context);
        Py_XDECREF(routing);
        dispatch_failed(srv, conn, plan, req, &m, &request);
        return SERVER_DISPATCH_DONE;
    }
    int b = bind_arguments(plan, &m, req, args, &request, &errors);
    if (b >= 0 && routing != NULL && set_routing(request, routing) < 0)
        b = -1;
    Py_CLEAR(routing);
    if (b < 0) {
        dispatch_failed(srv, conn, plan, req, &m, &request);
        goto done;
    }
    if (b > 0 && !plan->lenient) {
        if (srv->validation_hook == NULL ||
            !answer_validation_hook(srv, conn, plan, req, &m, &request, errors))
            respond_validation_errors(conn, errors);
        goto done;
    }
    if (b > 0)
        result = app_call_lenient(plan, args, errors);
    else
        result = PyObject_Vectorcall(plan->handler, args,
                                     (size_t)plan->npositional | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                     plan->kwnames);
    if (result == NULL) {
        dispatch_failed(srv, conn, plan, req, &m, &request);
        goto done;
    }
    PyTypeObject *t = Py_TYPE(result);
    if (t->tp_as_async && t->tp_as_async->am_send) {
        DriverObject *d = driver_new(srv, plan, result, request);
        if (d == NULL) {
            dispatch_failed(srv, conn, plan, req, &m, &request);
            goto done;
        }
        result = NULL; /* now owned by the Driver */
        PyObject *value = NULL;
        PySendResult s = first_send(srv, d, &value);
        if (s == PYGEN_RETURN) {
            respond_result(conn, plan, value);
            Py_DECREF(value);
            Py_CLEAR(d->coro);
        } else if (s == PYGEN_ERROR) {
            dispatch_failed(srv, conn, plan, req, &m, &request);
            Py_CLEAR(d->coro);
        } else {
            /* Created inside the request's context, so the Task copies it. */
            d->first = value;
            if (srv->exception_hook != NULL && d->request == NULL) {
                /* The app's exception handlers receive the Request; the router match is
                 * gone once the handler completes, so it is made now (lazily filled). */
                d->request = request_new(req, &m);
                if (d->request == NULL)
                    PyErr_Clear();
            }
            rc = park(srv, conn, plan, d);
        }
        Py_DECREF(d);
    } else {
        respond_result(conn, plan, result);
    }
done:
    for (int i = 0; i < plan->nargs; i++)
        Py_XDECREF(args[i]);
    Py_XDECREF(errors);
    Py_XDECREF(result);
    if (request) {
        if (rc == SERVER_DISPATCH_DONE)
            request_detach(request);
        Py_DECREF(request);
    }
    if (PyContext_Exit(context) < 0)
        PyErr_Clear();
    Py_DECREF(context);
    if (PyErr_Occurred()) {
        /* Nothing may leak into libuv; anything left here was already answered. */
        PyErr_WriteUnraisable(plan->handler);
    }
    return rc;
}

int app_dispatch(void *ctx, server_conn_t *conn, server_request_t *req)
{
    decoded_path_t d;
    if (decoded_path(req->head, &d) < 0) {
        server_conn_respond_detail(conn, 500, "Internal Server Error", NULL, 0);
        return SERVER_DISPATCH_DONE;
    }
    int rc = dispatch_path((ServerObject *)ctx, conn, req, d.p, d.n);
    PyMem_Free(d.heap);
    return rc;
}

/* --- _Tail: how a handler hands the rest of its work to the Driver ---------------------- */

static PyObject *tail_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyObject *awaitable, *then, *arg;
    if (kw != NULL && PyDict_GET_SIZE(kw) > 0) {
        PyErr_SetString(PyExc_TypeError, "_Tail() takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "_Tail", 3, 3, &awaitable, &then, &arg))
        return NULL;
    if (!PyCallable_Check(then)) {
        PyErr_SetString(PyExc_TypeError, "_Tail(awaitable, then, arg): then must be callable");
        return NULL;
    }
    TailObject *t = PyObject_GC_New(TailObject, type);
    if (t == NULL)
        return NULL;
    t->awaitable = Py_NewRef(awaitable);
    t->then = Py_NewRef(then);
    t->arg = Py_NewRef(arg);
    PyObject_GC_Track(t);
    return (PyObject *)t;
}

static int tail_traverse(TailObject *t, visitproc visit, void *arg)
{
    Py_VISIT(t->awaitable);
    Py_VISIT(t->then);
    Py_VISIT(t->arg);
    return 0;
}

static int tail_clear(TailObject *t)
{
    Py_CLEAR(t->awaitable);
    Py_CLEAR(t->then);
    Py_CLEAR(t->arg);
    return 0;
}

static void tail_dealloc(TailObject *t)
{
    PyObject_GC_UnTrack(t);
    tail_clear(t);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

PyTypeObject Tail_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core._Tail",
    .tp_basicsize = sizeof(TailObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "_Tail(awaitable, then, arg): returned by a handler, the Driver runs awaitable "
              "in its place, then then(arg, exc or None), whose outcome is the handler's.",
    .tp_new = tail_new,
    .tp_traverse = (traverseproc)tail_traverse,
    .tp_clear = (inquiry)tail_clear,
    .tp_dealloc = (destructor)tail_dealloc,
};
