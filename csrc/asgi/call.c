/*
 * One request served by an ASGI application (an AsgiCall): asgi_dispatch builds the scope
 * and the receive/send callables, calls `app(scope, receive, send)` and runs the coroutine
 * as a Task on the loop; the request stays pending in the server until the application
 * completed its response (send.c) or the Task ended without doing so (call_done).
 *
 * receive() (www spec, "Request - receive event" and "Disconnect - receive event"): a
 * body with a Content-Length up to max_body is read whole before dispatching, and the
 * first call returns it in one http.request message with more_body False. A chunked body,
 * or a larger one, is streamed (server.h): each call asks the server for the next piece
 * (what arrived since, at most 64 KiB) and returns it with more_body True, then an empty
 * one with more_body False at the end. The server reads the socket only while little is
 * buffered, so an application that does not call receive() stops the client (backpressure).
 * Later calls return http.disconnect once the response is complete or the client is gone,
 * and otherwise wait for either.
 *
 * The client leaving is noticed at any time: the request is detached from the server's
 * read buffer at dispatch (server_conn_detach), so the connection reads on while the
 * application works or streams, and a close (or half-close: HTTP/1.1 clients do not
 * half-close while waiting for a response) wakes a pending receive() with
 * http.disconnect (call_notify); a later send() raises ConnectionResetError.
 *
 * Ownership: see asgi_internal.h.
 */
#include <stdarg.h>

#include "asgi/asgi_internal.h"

static PyObject *call_receive(AsgiCallObject *c, PyObject *unused);
static PyObject *call_send(AsgiCallObject *c, PyObject *message);
static PyObject *call_done(AsgiCallObject *c, PyObject *task);

/* Bound to each call with PyCFunction_New: these are the receive and send callables the
 * application gets, and the Task's done callback. */
static PyMethodDef receive_def = {"receive", (PyCFunction)call_receive, METH_NOARGS,
                                  "receive() -> awaitable of the next ASGI event"};
static PyMethodDef send_def = {"send", (PyCFunction)call_send, METH_O,
                               "send(message) -> awaitable; sends an ASGI response event"};
static PyMethodDef done_def = {"_asgi_done", (PyCFunction)call_done, METH_O,
                               "Done callback of the application's Task."};

static PyObject *disconnect_message(void)
{
    PyObject *msg = PyDict_New();
    if (msg != NULL && PyDict_SetItem(msg, asgi_str.type, asgi_str.http_disconnect) < 0)
        Py_CLEAR(msg);
    return msg;
}

void call_log(AsgiCallObject *c, PyObject *exc, const char *fmt, ...)
{
    PyObject *saved = pyloop_fetch_exception();
    va_list ap;
    va_start(ap, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    PyObject *log = c->owner->log;
    PyObject *r = NULL;
    if (msg != NULL && log != NULL)
        r = PyObject_CallFunctionObjArgs(log, msg, exc ? exc : Py_None, NULL);
    if (r == NULL && PyErr_Occurred())
        PyErr_WriteUnraisable(log ? log : Py_None);
    Py_XDECREF(r);
    Py_XDECREF(msg);
    pyloop_restore_exception(saved);
}

PyObject *call_new_future(AsgiCallObject *c)
{
    return PyObject_CallMethodNoArgs(c->owner->loop, asgi_str.create_future);
}

/* Wakes whoever waits: receive() gets http.disconnect (when the response is complete or
 * the client left), send() returns (when the output drained or the response is complete)
 * or raises ConnectionResetError (the client left: spec 2.4's OSError). */
static void wake_waiters(AsgiCallObject *c, int receiver_too)
{
    PyObject *fut = c->send_waiter;
    if (fut != NULL) {
        c->send_waiter = NULL;
        PyObject *exc = NULL;
        if (c->disconnected &&
            (exc = PyObject_CallFunction(PyExc_ConnectionResetError, "s",
                                         "the client closed the connection")) == NULL)
            PyErr_WriteUnraisable(fut);
        if (exc != NULL)
            asgi_fail(fut, exc);
        else
            asgi_resolve(fut, Py_None);
        Py_XDECREF(exc);
        Py_DECREF(fut);
    }
    fut = c->recv_waiter;
    if (fut != NULL && receiver_too) {
        c->recv_waiter = NULL;
        PyObject *msg = disconnect_message();
        if (msg == NULL)
            PyErr_WriteUnraisable(fut);
        else
            asgi_resolve(fut, msg);
        Py_XDECREF(msg);
        Py_DECREF(fut);
    }
}

/* Drops the reference taken in asgi_dispatch once the request is no longer ours. */
static void drop_self(AsgiCallObject *c)
{
    if (!c->self_ref)
        return;
    c->self_ref = 0;
    Py_DECREF(c);
}

void call_finish(AsgiCallObject *c)
{
    server_conn_t *conn = c->conn;
    c->phase = ASGI_DONE;
    pathsend_close(c);
    if (conn != NULL) {
        c->conn = NULL;
        /* Releases the pending request: the response appended is written, pipelined
         * requests go on. The connection no longer points at us. */
        server_conn_stream_notify(conn, NULL, NULL);
        server_conn_finish(conn);
    }
    wake_waiters(c, 1);
    drop_self(c);
}

void call_end_stream(AsgiCallObject *c, int complete)
{
    server_conn_t *conn = c->conn;
    c->phase = ASGI_DONE;
    pathsend_close(c);
    if (conn != NULL) {
        c->conn = NULL;
        /* Finishes the request the stream took over in send.c (and clears the notification
         * pointing at us); the connection closes unless the body is complete. */
        if (server_conn_stream_end(conn, complete) < 0)
            call_log(c, NULL,
                     "ASGI application sent fewer body bytes than its content-length header "
                     "declared; connection closed");
    }
    wake_waiters(c, 1);
    drop_self(c);
}

void call_abort(AsgiCallObject *c, int status)
{
    static const char text[] = "Internal Server Error";
    static const char unavailable[] = "Service Unavailable";
    if (c->phase == ASGI_STREAMING) {
        call_end_stream(c, 0);
        return;
    }
    if (c->conn != NULL && !server_conn_closed(c->conn) &&
        (c->phase == ASGI_WAIT_START || c->phase == ASGI_WAIT_BODY)) {
        const char *body = status == 503 ? unavailable : text;
        server_conn_respond(c->conn, status, "text/plain; charset=utf-8", 25, NULL, 0, body,
                            strlen(body));
    }
    call_finish(c);
}

void call_notify(void *arg)
{
    AsgiCallObject *c = arg;
    /* What runs below may end the request and drop the call's reference to itself. */
    Py_INCREF(c);
    if (c->conn != NULL && server_conn_closed(c->conn)) {
        /* The stream (if any) is ended by the application's next send() or when its Task
         * ends, not from inside the server's close callback. */
        c->disconnected = 1;
        pathsend_close(c);
        wake_waiters(c, 1);
    } else if (c->file_fd >= 0) {
        pathsend_resume(c);
    } else {
        wake_waiters(c, 0);
    }
    Py_DECREF(c);
}

/* The server answers a read of the streamed body: the message goes to whoever waits in
 * receive() now (none when the response completed meanwhile: wake_waiters answered it). */
static void call_on_body(void *arg, int status, const char *data, size_t len)
{
    AsgiCallObject *c = arg;
    c->body_reading = 0;
    PyObject *msg = NULL;
    if (status == SERVER_BODY_DATA || status == SERVER_BODY_END) {
        PyObject *body = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
        msg = body ? PyDict_New() : NULL;
        if (msg != NULL && (PyDict_SetItem(msg, asgi_str.type, asgi_str.http_request) < 0 ||
                            PyDict_SetItem(msg, asgi_str.body, body) < 0 ||
                            PyDict_SetItem(msg, asgi_str.more_body,
                                           status == SERVER_BODY_DATA ? Py_True : Py_False) < 0))
            Py_CLEAR(msg);
        Py_XDECREF(body);
        c->body_done = status == SERVER_BODY_END;
    } else {
        /* The client left, or its body was malformed or too large (the server closes the
         * connection after the response): as uvicorn, the application sees a disconnect. */
        c->body_done = 1;
        c->disconnected = status == SERVER_BODY_DISCONNECTED || c->disconnected;
        msg = disconnect_message();
    }
    PyObject *fut = c->recv_waiter;
    c->recv_waiter = NULL;
    if (msg == NULL)
        PyErr_WriteUnraisable(fut ? fut : Py_None);
    else if (fut != NULL)
        asgi_resolve(fut, msg);
    Py_XDECREF(msg);
    Py_XDECREF(fut);
    /* Taken in call_receive for the server's pending read. */
    Py_DECREF(c);
}

static PyObject *call_receive(AsgiCallObject *c, PyObject *unused)
{
    (void)unused;
    if (c->streamed && !c->body_done && c->conn != NULL && !c->disconnected &&
        c->phase != ASGI_DONE) {
        if (c->recv_waiter != NULL) {
            /* Reused by concurrent receive() calls unless its waiter cancelled it. */
            PyObject *done = PyObject_CallMethodNoArgs(c->recv_waiter, asgi_str.done);
            int is_done = done ? PyObject_IsTrue(done) : -1;
            Py_XDECREF(done);
            if (is_done < 0)
                return NULL;
            if (is_done)
                Py_CLEAR(c->recv_waiter);
        }
        PyObject *fut = c->recv_waiter;
        if (fut == NULL && (fut = c->recv_waiter = call_new_future(c)) == NULL)
            return NULL;
        Py_INCREF(fut); /* the read below may resolve and drop recv_waiter at once */
        if (!c->body_reading) {
            c->body_reading = 1;
            Py_INCREF(c); /* released in call_on_body */
            if (server_conn_body_read(c->conn, call_on_body, c) < 0) {
                c->body_reading = 0;
                Py_DECREF(c);
                Py_DECREF(fut);
                PyErr_SetString(PyExc_RuntimeError, "the request body cannot be read");
                return NULL;
            }
        }
        PyObject *aw = asgi_waiting(fut);
        Py_DECREF(fut);
        return aw;
    }
    if (c->body != NULL) {
        PyObject *msg = PyDict_New();
        if (msg == NULL || PyDict_SetItem(msg, asgi_str.type, asgi_str.http_request) < 0 ||
            PyDict_SetItem(msg, asgi_str.body, c->body) < 0 ||
            PyDict_SetItem(msg, asgi_str.more_body, Py_False) < 0) {
            Py_XDECREF(msg);
            return NULL;
        }
        Py_CLEAR(c->body);
        return asgi_ready(msg);
    }
    if (c->conn == NULL || c->disconnected || c->phase == ASGI_DONE)
        return asgi_ready(disconnect_message());
    if (c->recv_waiter != NULL) {
        /* Reused by concurrent receive() calls unless its waiter cancelled it. */
        PyObject *done = PyObject_CallMethodNoArgs(c->recv_waiter, asgi_str.done);
        int is_done = done ? PyObject_IsTrue(done) : -1;
        Py_XDECREF(done);
        if (is_done < 0)
            return NULL;
        if (is_done)
            Py_CLEAR(c->recv_waiter);
    }
    if (c->recv_waiter == NULL && (c->recv_waiter = call_new_future(c)) == NULL)
        return NULL;
    return asgi_waiting(c->recv_waiter);
}

static PyObject *call_send(AsgiCallObject *c, PyObject *message)
{
    return asgi_send(c, message);
}

/* The Task ended: whatever the application did not complete is completed here (www spec:
 * an application that returns or raises before the response is complete gets a 500 when
 * nothing was sent, a closed connection otherwise). */
static PyObject *call_done(AsgiCallObject *c, PyObject *task)
{
    PyObject *exc = NULL;
    PyObject *r = PyObject_CallMethodNoArgs(task, asgi_str.cancelled);
    int cancelled = r ? PyObject_IsTrue(r) : -1;
    Py_XDECREF(r);
    if (cancelled == 0) {
        /* Retrieving it also keeps asyncio from logging "exception was never retrieved". */
        exc = PyObject_CallMethodNoArgs(task, asgi_str.exception);
        if (exc == Py_None)
            Py_CLEAR(exc);
        else if (exc == NULL)
            cancelled = -1;
    }
    if (cancelled < 0) {
        PyObject *err = pyloop_fetch_exception();
        call_log(c, err, "cannot read the result of the ASGI application's task");
        Py_XDECREF(err);
    }
    Py_CLEAR(c->task);
    /* A response cut short because the client left is not the application's fault. */
    int incomplete = c->phase != ASGI_DONE && c->phase != ASGI_DISCARD && !c->disconnected;
    if (cancelled > 0) {
        if (incomplete)
            call_log(c, NULL, "ASGI application was cancelled before it completed the response");
        call_abort(c, 503);
    } else if (exc != NULL) {
        /* A send() that raised OSError because the client left (spec 2.4), or the
         * RuntimeError of a violation already logged, needs no second report. */
        int quiet = (c->disconnected && PyErr_GivenExceptionMatches(exc, PyExc_OSError)) ||
                    (c->violated && PyErr_GivenExceptionMatches(exc, PyExc_RuntimeError));
        if (!quiet)
            call_log(c, exc, "Exception in ASGI application");
        call_abort(c, 500);
    } else if (incomplete) {
        if (c->phase == ASGI_WAIT_START)
            call_log(c, NULL, "ASGI application returned without sending http.response.start");
        else
            call_log(c, NULL, "ASGI application returned without completing the response");
        call_abort(c, 500);
    } else {
        call_finish(c);
    }
    Py_XDECREF(exc);
    Py_RETURN_NONE;
}

static int call_traverse(AsgiCallObject *c, visitproc visit, void *arg)
{
    Py_VISIT(c->owner);
    Py_VISIT(c->task);
    Py_VISIT(c->body);
    Py_VISIT(c->recv_waiter);
    Py_VISIT(c->send_waiter);
    Py_VISIT(c->pump_cb);
    return 0;
}

static int call_clear(AsgiCallObject *c)
{
    Py_CLEAR(c->task);
    Py_CLEAR(c->body);
    Py_CLEAR(c->recv_waiter);
    Py_CLEAR(c->send_waiter);
    Py_CLEAR(c->pump_cb);
    return 0;
}

static void call_dealloc(AsgiCallObject *c)
{
    PyObject_GC_UnTrack(c);
    server_conn_t *conn = c->conn;
    if (conn != NULL) {
        /* Only when the process tears down with the request pending (the reference to
         * itself kept the call alive until then): the connection closes unanswered. */
        c->conn = NULL;
        if (c->phase == ASGI_STREAMING) {
            server_conn_stream_end(conn, 0);
        } else {
            server_conn_stream_notify(conn, NULL, NULL);
            server_conn_set_close(conn);
            server_conn_finish(conn);
        }
    }
    pathsend_close(c);
    call_clear(c);
    db_buf_free(&c->lines);
    Py_CLEAR(c->owner);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

PyTypeObject AsgiCall_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core._AsgiCall",
    .tp_basicsize = sizeof(AsgiCallObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One request served by an ASGI application.",
    .tp_traverse = (traverseproc)call_traverse,
    .tp_clear = (inquiry)call_clear,
    .tp_dealloc = (destructor)call_dealloc,
};

static AsgiCallObject *call_new(AsgiAppObject *a)
{
    AsgiCallObject *c = PyObject_GC_New(AsgiCallObject, &AsgiCall_Type);
    if (c == NULL)
        return NULL;
    c->owner = (AsgiAppObject *)Py_NewRef((PyObject *)a);
    c->conn = NULL;
    c->task = NULL;
    c->body = NULL;
    c->recv_waiter = NULL;
    c->send_waiter = NULL;
    db_buf_init(&c->lines);
    c->content_length = -1;
    c->status = 0;
    c->phase = ASGI_WAIT_START;
    c->self_ref = 0;
    c->disconnected = 0;
    c->close = 0;
    c->violated = 0;
    c->pump_queued = 0;
    c->streamed = 0;
    c->body_reading = 0;
    c->body_done = 0;
    c->file_fd = -1;
    c->file_left = 0;
    c->file_buf = NULL;
    c->pump_cb = NULL;
    PyObject_GC_Track(c);
    return c;
}

/* The application could not be started: logged, answered 500 (nothing was sent). */
static int dispatch_failed(AsgiCallObject *c, server_conn_t *conn)
{
    PyObject *exc = pyloop_fetch_exception();
    if (c != NULL)
        call_log(c, exc, "Exception in ASGI application");
    else
        PyErr_WriteUnraisable(NULL);
    Py_XDECREF(exc);
    server_conn_respond(conn, 500, "text/plain; charset=utf-8", 25, NULL, 0,
                        "Internal Server Error", 21);
    return SERVER_DISPATCH_DONE;
}

int asgi_dispatch(void *ctx, server_conn_t *conn, server_request_t *req)
{
    AsgiAppObject *a = ctx;
    if (asgi_ws_is_upgrade(req))
        return asgi_ws_dispatch(a, conn, req);
    PyObject *scope = NULL, *receive = NULL, *send = NULL, *coro = NULL, *task = NULL;
    PyObject *cb = NULL, *r = NULL;
    int rc = SERVER_DISPATCH_DONE;
    AsgiCallObject *c = a->app ? call_new(a) : NULL;
    if (c == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "the ASGI application was cleared");
        return dispatch_failed(NULL, conn);
    }
    /* Copied now: the read buffer is the server's again once the request is pending in a
     * stream (server/conn.c: conn_stream_detach). */
    c->streamed = req->streamed;
    c->body = c->streamed ? NULL
                          : PyBytes_FromStringAndSize(req->body_len ? req->body : NULL,
                                                      (Py_ssize_t)req->body_len);
    if ((c->body == NULL && !c->streamed) || (scope = asgi_scope_new(a, conn, req)) == NULL ||
        (receive = PyCFunction_New(&receive_def, (PyObject *)c)) == NULL ||
        (send = PyCFunction_New(&send_def, (PyObject *)c)) == NULL) {
        rc = dispatch_failed(c, conn);
        goto done;
    }
    coro = PyObject_CallFunctionObjArgs(a->app, scope, receive, send, NULL);
    if (coro == NULL) {
        rc = dispatch_failed(c, conn);
        goto done;
    }
    /* The Task copies the current context: each request runs in its own. */
    task = PyObject_CallMethodOneArg(a->loop, asgi_str.create_task, coro);
    if (task == NULL) {
        /* Not a coroutine (create_task's TypeError says so), or out of memory. */
        PyObject *exc = pyloop_fetch_exception();
        PyObject *closed = PyObject_HasAttr(coro, asgi_str.close)
                               ? PyObject_CallMethodNoArgs(coro, asgi_str.close)
                               : Py_NewRef(Py_None);
        Py_XDECREF(closed);
        PyErr_Clear();
        pyloop_restore_exception(exc);
        rc = dispatch_failed(c, conn);
        goto done;
    }
    cb = PyCFunction_New(&done_def, (PyObject *)c);
    r = cb ? PyObject_CallMethodOneArg(task, asgi_str.add_done_callback, cb) : NULL;
    if (r == NULL) {
        /* Out of memory: the Task must not run without its done callback. */
        PyObject *exc = pyloop_fetch_exception();
        PyObject *x = PyObject_CallMethod(task, "cancel", NULL);
        Py_XDECREF(x);
        PyErr_Clear();
        pyloop_restore_exception(exc);
        rc = dispatch_failed(c, conn);
        goto done;
    }
    c->task = Py_NewRef(task);
    c->conn = conn;
    /* Nothing points into the request any more (scope and body are copies): the server
     * reads on while the application works, so a client that leaves is noticed
     * (call_notify) and a pending receive() returns http.disconnect. */
    server_conn_stream_notify(conn, call_notify, c);
    server_conn_detach(conn);
    /* Released by drop_self when the request is finished (call_finish, call_end_stream):
     * see asgi_internal.h. */
    Py_INCREF(c);
    c->self_ref = 1;
    rc = SERVER_DISPATCH_PENDING;
done:
    Py_XDECREF(scope);
    Py_XDECREF(receive);
    Py_XDECREF(send);
    Py_XDECREF(coro);
    Py_XDECREF(task);
    Py_XDECREF(cb);
    Py_XDECREF(r);
    Py_DECREF(c);
    return rc;
}
