/*
 * The Python face of a WebSocket session (server/ws.c): `_core.WebSocketSession`, made by
 * `Request._ws_accept()` when the application accepts an upgrade, and the handshake check
 * `Request._ws_check()` (RFC 6455 §4.2.1) that runs before the endpoint. The Starlette-style
 * class over it is data_bridge.api.websockets.WebSocket.
 *
 * Messages: the server calls on_message with each complete message; it becomes a str (text,
 * whose UTF-8 the parser already checked) or bytes, built once from the payload, and either
 * completes the future a receive() is waiting on or joins a small queue. When the queue
 * holds the server's ws_max_queue messages (uvicorn's --ws-max-queue, 32 by default) the
 * server stops reading (backpressure reaches the peer through TCP) until receive() takes
 * one. A message is at most the server's ws_max_size bytes (--ws-max-size; 1009 above). receive()
 * returns a message, a (code, reason) tuple once the session ended, or a loop waiter
 * (loop/waiter.c) resolved with one of those: nothing polls. A waiter rather than a Future
 * because an idle session spends its life waiting in one (memory per idle connection).
 *
 * receive_text/receive_bytes/receive_json(WebSocketDisconnect) are Starlette's methods of
 * the same names without a coroutine of their own: each returns a waiter that resolves with
 * what the Starlette method returns or raises (KeyError for a message of the other kind, the
 * JSON error, WebSocketDisconnect(code, reason) at the end; the caller passes the class), so
 * a handler waiting in `await websocket.receive_text()` holds no frame for it. Once the end
 * was handed out (`disconnected`), those refuse to receive again, as Starlette does.
 *
 * send() queues a frame and returns None, or a future resolved once the output drained
 * below the server's write limit (or the connection closed), for the caller to await.
 *
 * Ownership: the session holds a reference on the connection (server_conn_hold) until it
 * is deallocated, so its pointer stays valid whatever the socket does; the connection holds
 * only a borrowed pointer to the session (the handler argument and the stream notification)
 * and calls on_ws_close exactly once when it lets go of it (the session ended, or the
 * application returned); the session holds a reference to itself until that call.
 */
#include <string.h>

#include "app/app_internal.h"
#include "ws/ws.h"

typedef struct {
    PyObject_HEAD
    server_conn_t *conn; /* held; NULL only if accept failed */
    PyObject *loop;
    PyObject *queue;            /* list of str/bytes, oldest first; NULL until a message waits */
    PyObject *waiter;           /* the loop waiter a receive() waits on, or NULL */
    PyObject *drainer;          /* the future a send() waits on for the output to drain, or NULL */
    PyObject *closed;           /* (code, reason) once the session ended, else NULL */
    PyObject *waiter_cls;       /* the WebSocketDisconnect class of the receive waiting, or NULL */
    unsigned char waiter_mode;  /* RECV_* of the receive waiting */
    unsigned char disconnected; /* the end (closed) was handed to a receive */
} WsObject;

/* What a receive returns: the message as it is (str, bytes, or the (code, reason) of the
 * end), or what Starlette's receive_text, receive_bytes, receive_json(mode) return. */
enum { RECV_RAW = 0, RECV_TEXT, RECV_BYTES, RECV_JSON_TEXT, RECV_JSON_BINARY };

static PyObject *str_done, *str_set_result, *str_create_future, *json_loads;
extern PyTypeObject WsUpgrade_Type;

/* Completes *slot's future with value (if nobody cancelled it) and clears the slot.
 * Returns 0, or -1 with an exception set. */
static int ws_resolve(PyObject **slot, PyObject *value)
{
    PyObject *fut = *slot;
    *slot = NULL;
    if (fut == NULL)
        return 0;
    int rc = -1;
    PyObject *done = PyObject_CallMethodNoArgs(fut, str_done);
    if (done == NULL)
        goto out;
    if (done == Py_False) {
        PyObject *r = PyObject_CallMethodOneArg(fut, str_set_result, value);
        if (r == NULL)
            goto out;
        Py_DECREF(r);
    }
    rc = 0;
out:
    Py_XDECREF(done);
    Py_DECREF(fut);
    return rc;
}

/* Messages queued before the server stops reading: read from the server's configuration,
 * not copied into every session (memory per idle connection). conn must be set. */
static Py_ssize_t ws_max_queue(const WsObject *self)
{
    return (Py_ssize_t)server_conn_config(self->conn)->ws_max_queue;
}

/* Whether a receive() still waits (its waiter not cancelled by a timeout, nor abandoned). */
static int ws_waiting(PyObject *waiter)
{
    return waiter != NULL && pyloop_waiter_pending(waiter);
}

static PyObject *key_error(const char *key)
{
    PyObject *k = PyUnicode_FromString(key);
    if (k != NULL) {
        PyErr_SetObject(PyExc_KeyError, k);
        Py_DECREF(k);
    }
    return NULL;
}

/* What a receive of this mode gets for msg: a new reference, or NULL with the exception it
 * raises (Starlette's: message["text"] of a binary message is a KeyError). cls: the
 * WebSocketDisconnect class, called with (code, reason) at the end. */
static PyObject *ws_convert(WsObject *self, int mode, PyObject *cls, PyObject *msg)
{
    if (PyTuple_Check(msg)) {
        self->disconnected = 1;
        if (mode == RECV_RAW)
            return Py_NewRef(msg);
        PyObject *exc = PyObject_Call(cls, msg, NULL);
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    if (mode == RECV_RAW || (mode == RECV_TEXT && PyUnicode_Check(msg)) ||
        (mode == RECV_BYTES && PyBytes_Check(msg)))
        return Py_NewRef(msg);
    if (mode == RECV_JSON_TEXT && PyUnicode_Check(msg))
        return PyObject_CallOneArg(json_loads, msg);
    if (mode == RECV_JSON_BINARY && PyBytes_Check(msg)) {
        PyObject *text = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(msg), PyBytes_GET_SIZE(msg), NULL);
        PyObject *value = text != NULL ? PyObject_CallOneArg(json_loads, text) : NULL;
        Py_XDECREF(text);
        return value;
    }
    return key_error(mode == RECV_TEXT || mode == RECV_JSON_TEXT ? "text" : "bytes");
}

/* Resolves waiter with value (a new reference, taken) or, when value is NULL, with the
 * exception set. Returns 0 or -1 with an exception. */
static int ws_settle(PyObject *waiter, PyObject *value)
{
    int r;
    if (value != NULL) {
        r = pyloop_waiter_set_result(waiter, value);
        Py_DECREF(value);
    } else {
        PyObject *exc = pyloop_fetch_exception();
        if (exc == NULL)
            return -1;
        r = pyloop_waiter_set_exception(waiter, exc);
        Py_DECREF(exc);
    }
    return r < 0 ? -1 : 0;
}

/* Hands msg to the receive waiting, as its mode asks, and lets go of its waiter. Returns 0
 * or -1 with an exception. */
static int ws_wake(WsObject *self, PyObject *msg)
{
    PyObject *waiter = self->waiter, *cls = self->waiter_cls;
    self->waiter = self->waiter_cls = NULL;
    if (waiter == NULL)
        return 0;
    int r = ws_settle(waiter, ws_convert(self, self->waiter_mode, cls, msg));
    Py_DECREF(waiter);
    Py_XDECREF(cls);
    return r;
}

static int on_ws_message(void *arg, int opcode, const char *data, size_t len)
{
    WsObject *self = arg;
    PyObject *msg = opcode == WS_OP_TEXT ? PyUnicode_DecodeUTF8(data, (Py_ssize_t)len, NULL)
                                         : PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    if (msg == NULL)
        goto error;
    if (ws_waiting(self->waiter)) {
        int r = ws_wake(self, msg);
        Py_DECREF(msg);
        if (r < 0)
            goto error;
        return 1;
    }
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->waiter_cls);
    /* The queue exists only while messages wait in it: an idle session holds no list. */
    if (self->queue == NULL && (self->queue = PyList_New(0)) == NULL) {
        Py_DECREF(msg);
        goto error;
    }
    int r = PyList_Append(self->queue, msg);
    Py_DECREF(msg);
    if (r < 0)
        goto error;
    return PyList_GET_SIZE(self->queue) < ws_max_queue(self);
error:
    /* A libuv callback must not return with an exception set. */
    PyErr_WriteUnraisable((PyObject *)self);
    return 1;
}

static void on_ws_close(void *arg, int code, const char *reason, size_t reason_len)
{
    WsObject *self = arg;
    PyObject *text = PyUnicode_DecodeUTF8(reason ? reason : "", (Py_ssize_t)reason_len, "replace");
    if (text == NULL)
        goto error;
    Py_XSETREF(self->closed, Py_BuildValue("(iN)", code, text));
    if (self->closed == NULL)
        goto error;
    if (ws_wake(self, self->closed) < 0 || ws_resolve(&self->drainer, Py_None) < 0)
        goto error;
    goto out;
error:
    PyErr_WriteUnraisable((PyObject *)self);
out:
    /* The connection calls no more: drops the reference taken in ws_session_accept. */
    Py_DECREF(self);
}

static void on_ws_drain(void *arg)
{
    WsObject *self = arg;
    if (self->conn != NULL && server_conn_stream_full(self->conn) &&
        !server_conn_closed(self->conn))
        return;
    if (self->conn != NULL)
        server_conn_stream_notify(self->conn, NULL, NULL);
    if (ws_resolve(&self->drainer, Py_None) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
}

static const server_ws_handler_t ws_handler = {on_ws_message, on_ws_close};

/* The next message (or the end) if there is one, taken from the queue: a new reference, or
 * NULL without an exception when there is none yet. */
static PyObject *ws_take(WsObject *self)
{
    if (self->queue != NULL) {
        PyObject *msg = Py_NewRef(PyList_GET_ITEM(self->queue, 0));
        Py_ssize_t left = PyList_GET_SIZE(self->queue) - 1;
        if (left == 0) {
            Py_CLEAR(self->queue);
        } else if (PyList_SetSlice(self->queue, 0, 1, NULL) < 0) {
            Py_DECREF(msg);
            return NULL;
        }
        if (self->conn != NULL && left < ws_max_queue(self))
            server_conn_ws_resume(self->conn);
        return msg;
    }
    return Py_XNewRef(self->closed);
}

/* receive() in the given mode: a waiter for what it gets (resolved at once when a message
 * waits; RECV_RAW returns that message itself, not a waiter). */
static PyObject *ws_receive_mode(WsObject *self, int mode, PyObject *cls)
{
    if (mode != RECV_RAW && self->disconnected) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot call \"receive\" once a disconnect message has been received.");
        return NULL;
    }
    PyObject *msg = ws_take(self);
    if (msg == NULL && PyErr_Occurred())
        return NULL;
    if (msg != NULL && mode == RECV_RAW) {
        if (PyTuple_Check(msg))
            self->disconnected = 1;
        return msg;
    }
    if (msg == NULL && ws_waiting(self->waiter)) {
        PyErr_SetString(PyExc_RuntimeError, "another coroutine is already waiting for a message");
        return NULL;
    }
    PyObject *waiter = pyloop_waiter_new(self->loop);
    if (waiter == NULL) {
        Py_XDECREF(msg);
        return NULL;
    }
    if (msg != NULL) {
        int r = ws_settle(waiter, ws_convert(self, mode, cls, msg));
        Py_DECREF(msg);
        if (r < 0)
            Py_CLEAR(waiter);
        return waiter;
    }
    Py_XSETREF(self->waiter, Py_NewRef(waiter));
    Py_XINCREF(cls);
    Py_XSETREF(self->waiter_cls, cls);
    self->waiter_mode = (unsigned char)mode;
    return waiter;
}

static PyObject *ws_receive(WsObject *self, PyObject *unused)
{
    (void)unused;
    return ws_receive_mode(self, RECV_RAW, NULL);
}

static PyObject *ws_receive_text(WsObject *self, PyObject *cls)
{
    return ws_receive_mode(self, RECV_TEXT, cls);
}

static PyObject *ws_receive_bytes(WsObject *self, PyObject *cls)
{
    return ws_receive_mode(self, RECV_BYTES, cls);
}

static PyObject *ws_receive_json(WsObject *self, PyObject *args)
{
    PyObject *cls;
    int binary = 0;
    if (!PyArg_ParseTuple(args, "O|p:receive_json", &cls, &binary))
        return NULL;
    return ws_receive_mode(self, binary ? RECV_JSON_BINARY : RECV_JSON_TEXT, cls);
}

static PyObject *ws_send(WsObject *self, PyObject *data)
{
    const char *p;
    Py_ssize_t n;
    int opcode;
    if (PyUnicode_Check(data)) {
        opcode = WS_OP_TEXT;
        if ((p = PyUnicode_AsUTF8AndSize(data, &n)) == NULL)
            return NULL;
    } else if (PyBytes_Check(data)) {
        opcode = WS_OP_BINARY;
        p = PyBytes_AS_STRING(data);
        n = PyBytes_GET_SIZE(data);
    } else {
        PyErr_Format(PyExc_TypeError, "send() takes str or bytes, not %.100s",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    int r = server_conn_ws_send(self->conn, opcode, p, (size_t)n);
    if (r == SERVER_STREAM_NOMEM)
        return PyErr_NoMemory();
    if (r == SERVER_STREAM_CLOSED) {
        PyErr_SetString(PyExc_ConnectionResetError, "the WebSocket connection is closed");
        return NULL;
    }
    if (r == SERVER_STREAM_OK)
        Py_RETURN_NONE;
    /* Over the write limit: the caller waits until on_ws_drain (or the close). */
    if (self->drainer == NULL) {
        self->drainer = PyObject_CallMethodNoArgs(self->loop, str_create_future);
        if (self->drainer == NULL)
            return NULL;
        server_conn_stream_notify(self->conn, on_ws_drain, self);
    }
    return Py_NewRef(self->drainer);
}

static PyObject *ws_close(WsObject *self, PyObject *args)
{
    int code = 1000;
    const char *reason = "";
    Py_ssize_t reason_len = 0;
    if (!PyArg_ParseTuple(args, "|is#:close", &code, &reason, &reason_len))
        return NULL;
    int r = server_conn_ws_close(self->conn, code, reason, (size_t)reason_len);
    if (r < 0) {
        PyErr_Format(PyExc_ValueError,
                     "invalid close frame: code %d (RFC 6455 §7.4) or a reason over 123 bytes",
                     code);
        return NULL;
    }
    return PyBool_FromLong(r == 0);
}

static PyObject *ws_get_closed(WsObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->closed ? self->closed : Py_None);
}

static int ws_traverse(WsObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->loop);
    Py_VISIT(self->queue);
    Py_VISIT(self->waiter);
    Py_VISIT(self->drainer);
    Py_VISIT(self->closed);
    Py_VISIT(self->waiter_cls);
    return 0;
}

static int ws_clear(WsObject *self)
{
    Py_CLEAR(self->loop);
    Py_CLEAR(self->queue);
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->drainer);
    Py_CLEAR(self->closed);
    Py_CLEAR(self->waiter_cls);
    return 0;
}

static void ws_dealloc(WsObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->conn != NULL) {
        server_conn_ws_forget(self->conn);
        if (self->drainer != NULL)
            server_conn_stream_notify(self->conn, NULL, NULL);
        /* Releases the reference taken in ws_session_accept. */
        server_conn_unhold(self->conn);
        self->conn = NULL;
    }
    ws_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef ws_methods[] = {
    {"receive", (PyCFunction)ws_receive, METH_NOARGS,
     "receive(): a message (str or bytes), (code, reason) once closed, or a waiter of one"},
    {"receive_text", (PyCFunction)ws_receive_text, METH_O,
     "receive_text(WebSocketDisconnect): an awaitable of the next text message"},
    {"receive_bytes", (PyCFunction)ws_receive_bytes, METH_O,
     "receive_bytes(WebSocketDisconnect): an awaitable of the next binary message"},
    {"receive_json", (PyCFunction)ws_receive_json, METH_VARARGS,
     "receive_json(WebSocketDisconnect, binary=False): an awaitable of the next message "
     "decoded as JSON"},
    {"send", (PyCFunction)ws_send, METH_O,
     "send(data): one text (str) or binary (bytes) message; None, or a future to await "
     "while the output drains"},
    {"close", (PyCFunction)ws_close, METH_VARARGS,
     "close(code=1000, reason=''): starts the closing handshake; False if already closing"},
    {NULL, NULL, 0, NULL},
};

static PyObject *ws_get_disconnected(WsObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->disconnected);
}

static PyGetSetDef ws_getset[] = {
    {"disconnected", (getter)ws_get_disconnected, NULL,
     "whether the end was handed to a receive (Starlette's client_state DISCONNECTED)", NULL},
    {"closed", (getter)ws_get_closed, NULL,
     "(code, reason) once the session ended (the peer's close, 1006 when lost), else None", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject WsSession_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.WebSocketSession",
    .tp_basicsize = sizeof(WsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A WebSocket session on a server connection (made by Request._ws_accept).",
    .tp_traverse = (traverseproc)ws_traverse,
    .tp_clear = (inquiry)ws_clear,
    .tp_dealloc = (destructor)ws_dealloc,
    .tp_methods = ws_methods,
    .tp_getset = ws_getset,
};

int ws_session_init_type(void)
{
    if ((str_done = PyUnicode_InternFromString("done")) == NULL ||
        (str_set_result = PyUnicode_InternFromString("set_result")) == NULL ||
        (str_create_future = PyUnicode_InternFromString("create_future")) == NULL)
        return -1;
    /* receive_json decodes as Starlette does, with the json module (kept for the process). */
    PyObject *json = PyImport_ImportModule("json");
    json_loads = json != NULL ? PyObject_GetAttrString(json, "loads") : NULL;
    Py_XDECREF(json);
    if (json_loads == NULL)
        return -1;
    return PyType_Ready(&WsSession_Type) < 0 ? -1 : PyType_Ready(&WsUpgrade_Type);
}

PyObject *ws_session_accept(server_conn_t *c, PyObject *loop, const char *lines, size_t n)
{
    if (!pyloop_check(loop)) {
        PyErr_Format(PyExc_TypeError, "a WebSocket session runs on a PyLoop, not %.100s",
                     Py_TYPE(loop)->tp_name);
        return NULL;
    }
    if (server_conn_closed(c)) {
        PyErr_SetString(PyExc_ConnectionResetError, "the client left before the upgrade");
        return NULL;
    }
    WsObject *self = PyObject_GC_New(WsObject, &WsSession_Type);
    if (self == NULL)
        return NULL;
    self->conn = NULL;
    self->loop = Py_NewRef(loop);
    self->queue = self->waiter = self->drainer = self->closed = self->waiter_cls = NULL;
    self->waiter_mode = RECV_RAW;
    self->disconnected = 0;
    PyObject_GC_Track(self);
    if (server_conn_ws_accept(c, lines, n, server_conn_config(c)->ws_max_size, &ws_handler, self) <
        0) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_ConnectionResetError, "the WebSocket upgrade failed");
        return NULL;
    }
    server_conn_hold(c); /* released in ws_dealloc */
    self->conn = c;
    /* The connection points at the session (borrowed) until it reports the end through
     * on_ws_close, exactly once: the session holds itself until then, since a Task waiting
     * on its receive future may be referred to by nothing else (the future, the session
     * and the Task's coroutine would form a cycle the collector frees). Released in
     * on_ws_close. */
    Py_INCREF(self);
    return (PyObject *)self;
}

/* Whether a comma-separated field value holds token (case-insensitive, RFC 9110 §5.6.1). */
static int has_token(const char *v, size_t n, const char *token, size_t tn)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tn && PyOS_strnicmp(v + start, token, tn) == 0)
            return 1;
    }
    return 0;
}

static int any_header_token(const http_request_t *h, const char *name, size_t name_len,
                            const char *token, size_t tn)
{
    for (size_t i = 0; i < h->num_headers; i++) {
        const http_header_t *f = &h->headers[i];
        if (f->name_len == name_len && PyOS_strnicmp(f->name, name, name_len) == 0 &&
            has_token(f->value, f->value_len, token, tn))
            return 1;
    }
    return 0;
}

int ws_handshake_status(const server_request_t *req)
{
    const http_request_t *h = req->head;
    /* Not an upgrade to WebSocket: a WebSocket route does not match it (Starlette's
     * WebSocketRoute matches websocket scopes only), so 404. */
    if (!any_header_token(h, "upgrade", 7, "websocket", 9))
        return 404;
    /* §4.2.1: a GET of HTTP/1.1 or later, Connection: Upgrade, a valid key; §4.2.2: a
     * version other than 13 gets 426 with the version we speak. */
    if (h->method != HTTP_GET || h->version_minor < 1 ||
        !any_header_token(h, "connection", 10, "upgrade", 7))
        return 400;
    const http_header_t *ver = http_find_header(h, "sec-websocket-version", 21);
    if (ver == NULL)
        return 400;
    if (!ws_version_ok(ver->value, ver->value_len))
        return 426;
    const http_header_t *key = http_find_header(h, "sec-websocket-key", 17);
    if (key == NULL || !ws_key_valid(key->value, key->value_len))
        return 400;
    return 0;
}

/* --- the ASGI websocket scope's handle on a pending upgrade ---------------------------- */

/* `_core._WebSocketUpgrade`: what asgi/call.c hands data_bridge._asgi_ws for a request with
 * "Upgrade: websocket", so that the ASGI driver (Python) can accept it (a session, as
 * above), refuse it with an HTTP response (the websocket.http.response extension, or 403)
 * and end it. It holds the connection (server_conn_hold) and the pending request: finish()
 * releases the request once, and deallocation does it for an upgrade never finished. */
typedef struct {
    PyObject_HEAD
    server_conn_t *conn;
    int finished;
} UpgradeObject;

static PyObject *upgrade_accept(UpgradeObject *self, PyObject *args)
{
    PyObject *loop;
    const char *lines;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "Oy#:accept", &loop, &lines, &n))
        return NULL;
    if (self->finished) {
        PyErr_SetString(PyExc_RuntimeError, "the upgrade was already answered");
        return NULL;
    }
    return ws_session_accept(self->conn, loop, lines, (size_t)n);
}

static PyObject *upgrade_respond(UpgradeObject *self, PyObject *args)
{
    int status;
    const char *lines, *body;
    Py_ssize_t n, body_len;
    if (!PyArg_ParseTuple(args, "iy#y#:respond", &status, &lines, &n, &body, &body_len))
        return NULL;
    if (self->finished || server_conn_closed(self->conn))
        Py_RETURN_FALSE;
    if (server_conn_respond(self->conn, status, NULL, 0, lines, (size_t)n, body, (size_t)body_len) <
        0)
        return PyErr_NoMemory();
    Py_RETURN_TRUE;
}

static PyObject *upgrade_finish(UpgradeObject *self, PyObject *unused)
{
    (void)unused;
    if (!self->finished) {
        self->finished = 1;
        /* Releases the pending request (conn_dispatch's reference); our hold remains. */
        server_conn_finish(self->conn);
    }
    Py_RETURN_NONE;
}

static void upgrade_dealloc(UpgradeObject *self)
{
    if (!self->finished) {
        self->finished = 1;
        server_conn_finish(self->conn);
    }
    /* Releases the reference taken in ws_upgrade_new. */
    server_conn_unhold(self->conn);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef upgrade_methods[] = {
    {"accept", (PyCFunction)upgrade_accept, METH_VARARGS,
     "accept(loop, header_lines): answers 101 and returns the WebSocketSession"},
    {"respond", (PyCFunction)upgrade_respond, METH_VARARGS,
     "respond(status, header_lines, body): refuses the upgrade with an HTTP response"},
    {"finish", (PyCFunction)upgrade_finish, METH_NOARGS,
     "finish(): the application is done with the request"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject WsUpgrade_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core._WebSocketUpgrade",
    .tp_basicsize = sizeof(UpgradeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A pending WebSocket upgrade of an ASGI application's request.",
    .tp_dealloc = (destructor)upgrade_dealloc,
    .tp_methods = upgrade_methods,
};

PyObject *ws_upgrade_new(server_conn_t *conn)
{
    UpgradeObject *self = PyObject_New(UpgradeObject, &WsUpgrade_Type);
    if (self == NULL)
        return NULL;
    server_conn_hold(conn); /* released in upgrade_dealloc */
    self->conn = conn;
    self->finished = 0;
    return (PyObject *)self;
}

void ws_upgrade_disarm(PyObject *upgrade)
{
    ((UpgradeObject *)upgrade)->finished = 1;
}
