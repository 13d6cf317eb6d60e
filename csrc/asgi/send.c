/*
 * send(): the response events of the www spec ("Response Start - send event", "Response
 * Body - send event").
 *
 * http.response.start is checked and its headers turned into header lines at once, but
 * nothing is written until the first http.response.body: a response whose body comes in
 * one message (the common case) is written as one complete response with a Content-Length
 * (server_conn_respond), and so is one with the content-length the application declared.
 * With more_body, or a body of another length than declared, the head goes out through the
 * streaming writer
 * (server_conn_stream_begin): framed by that Content-Length, else chunked for HTTP/1.1
 * (RFC 9112 §7.1) and close-delimited for HTTP/1.0. Each piece is queued and flushed at
 * once; when the queued output is over the server's write limit, send() returns an
 * awaitable that waits until it drained (flow control), so memory stays bounded however
 * slowly the client reads.
 *
 * Protocol violations (a body before the start, a second start, an unknown type, fields
 * of the wrong type, events after the response completed) are logged with the message
 * type, answered 500 when nothing was written yet or end the connection otherwise, and
 * raise RuntimeError in the application, as uvicorn's send() does. A send() after the
 * client left raises ConnectionResetError (an OSError, spec 2.4: "the server must raise
 * ... a subclass of OSError"), which Starlette turns into ClientDisconnect.
 *
 * http.response.pathsend (the file named instead of its bytes) is in pathsend.c.
 */
#include <stdarg.h>

#include "asgi/asgi_internal.h"
#include "common/text.h"

PyObject *asgi_violation(AsgiCallObject *c, PyObject *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PyObject *what = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    if (what == NULL)
        return NULL;
    const char *action = c->phase == ASGI_WAIT_START || c->phase == ASGI_WAIT_BODY ? "answered 500"
                         : c->phase == ASGI_STREAMING ? "connection closed"
                                                      : "ignored";
    call_log(c, NULL, "ASGI protocol violation (message type %R): %U; %s", type ? type : Py_None,
             what, action);
    c->violated = 1;
    if (c->phase != ASGI_DONE)
        call_abort(c, 500);
    PyErr_Format(PyExc_RuntimeError, "ASGI protocol violation: %U", what);
    Py_DECREF(what);
    return NULL;
}

static int is_named(const char *s, size_t n, const char *name)
{
    size_t len = strlen(name);
    return n == len && PyOS_strnicmp(s, name, len) == 0;
}

/* A connection header value that has the "close" option (RFC 9110 §7.6.1). */
static int has_close_option(const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (is_named(v + start, i - start, "close"))
            return 1;
    }
    return 0;
}

/* One header pair of http.response.start into c->lines. Returns 0, or -1 with the reason
 * in *why (a violation), or -2 with an exception (out of memory). The framing headers are
 * the server's to write: content-length is remembered (and must be a decimal number),
 * transfer-encoding is dropped, connection only says whether to close. */
static int add_header(AsgiCallObject *c, PyObject *pair, const char **why)
{
    PyObject *seq =
        PySequence_Check(pair) && !PyBytes_Check(pair) ? PySequence_Fast(pair, "") : NULL;
    int rc = -1;
    if (seq == NULL) {
        PyErr_Clear();
        *why = "each header must be a [name, value] pair";
        return -1;
    }
    PyObject *k = PySequence_Fast_GET_SIZE(seq) == 2 ? PySequence_Fast_GET_ITEM(seq, 0) : NULL;
    PyObject *v = k ? PySequence_Fast_GET_ITEM(seq, 1) : NULL;
    if (k == NULL || !PyBytes_Check(k) || !PyBytes_Check(v)) {
        *why = "each header must be a [name, value] pair of byte strings";
        goto done;
    }
    const char *ks = PyBytes_AS_STRING(k), *vs = PyBytes_AS_STRING(v);
    size_t kn = (size_t)PyBytes_GET_SIZE(k), vn = (size_t)PyBytes_GET_SIZE(v);
    if (kn == 0) {
        *why = "empty header name";
        goto done;
    }
    for (size_t i = 0; i < kn; i++)
        if (!db_is_tchar((unsigned char)ks[i])) {
            *why = "a header name is not a token (RFC 9110 §5.6.2)";
            goto done;
        }
    for (size_t i = 0; i < vn; i++) {
        unsigned char ch = (unsigned char)vs[i];
        if (ch == '\r' || ch == '\n' || ch == 0) {
            *why = "a header value has a CR, LF or NUL (response splitting)";
            goto done;
        }
    }
    if (is_named(ks, kn, "content-length")) {
        int64_t n = 0;
        if (vn == 0 || vn > 18) {
            *why = "content-length is not a decimal number";
            goto done;
        }
        for (size_t i = 0; i < vn; i++) {
            if (vs[i] < '0' || vs[i] > '9') {
                *why = "content-length is not a decimal number";
                goto done;
            }
            n = n * 10 + (vs[i] - '0');
        }
        c->content_length = n;
        rc = 0;
        goto done;
    }
    if (is_named(ks, kn, "transfer-encoding")) {
        rc = 0;
        goto done;
    }
    if (is_named(ks, kn, "connection")) {
        if (has_close_option(vs, vn))
            c->close = 1;
        rc = 0;
        goto done;
    }
    if (db_buf_reserve(&c->lines, kn + vn + 4) < 0) {
        PyErr_NoMemory();
        rc = -2;
        goto done;
    }
    db_buf_append(&c->lines, ks, kn);
    db_buf_append(&c->lines, ": ", 2);
    db_buf_append(&c->lines, vs, vn);
    db_buf_append(&c->lines, "\r\n", 2);
    rc = 0;
done:
    Py_DECREF(seq);
    return rc;
}

static PyObject *send_start(AsgiCallObject *c, PyObject *message, PyObject *type)
{
    if (c->phase != ASGI_WAIT_START)
        return asgi_violation(c, type, "http.response.start sent twice");
    PyObject *status = PyDict_GetItemWithError(message, asgi_str.status);
    if (status == NULL && PyErr_Occurred())
        return NULL;
    if (status == NULL || !PyLong_Check(status) || PyBool_Check(status))
        return asgi_violation(c, type, "'status' must be an int");
    long code = PyLong_AsLong(status);
    if (code == -1 && PyErr_Occurred())
        PyErr_Clear();
    if (code < 100 || code > 999)
        return asgi_violation(c, type, "'status' %R is not an HTTP status code", status);
    PyObject *headers = PyDict_GetItemWithError(message, asgi_str.headers);
    if (headers == NULL && PyErr_Occurred())
        return NULL;
    if (headers != NULL) {
        PyObject *it = PyObject_GetIter(headers);
        if (it == NULL) {
            PyErr_Clear();
            return asgi_violation(c, type, "'headers' must be an iterable of [name, value] pairs");
        }
        PyObject *pair;
        while ((pair = PyIter_Next(it)) != NULL) {
            const char *why = NULL;
            int r = add_header(c, pair, &why);
            Py_DECREF(pair);
            if (r == -2) {
                Py_DECREF(it);
                return NULL;
            }
            if (r < 0) {
                Py_DECREF(it);
                return asgi_violation(c, type, "%s", why);
            }
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return asgi_violation(c, type, "iterating 'headers' failed");
        }
    }
    /* trailers: the application would send http.response.trailers, which this server
     * does not announce (no "http.response.trailers" extension): the key is ignored. */
    c->status = (int)code;
    c->phase = ASGI_WAIT_BODY;
    return asgi_ready(Py_NewRef(Py_None));
}

PyObject *asgi_client_gone(AsgiCallObject *c)
{
    c->disconnected = 1;
    if (c->phase == ASGI_STREAMING)
        call_end_stream(c, 0);
    else if (c->phase != ASGI_DONE)
        call_finish(c);
    PyErr_SetString(PyExc_ConnectionResetError, "the client closed the connection");
    return NULL;
}

/* Queues a piece of a streamed body; ends the stream when it is the last one. */
static PyObject *stream_piece(AsgiCallObject *c, PyObject *type, const char *data, size_t len,
                              int more)
{
    int r = server_conn_stream_write(c->conn, data, len);
    switch (r) {
    case SERVER_STREAM_OK:
    case SERVER_STREAM_FULL:
        break;
    case SERVER_STREAM_OVERFLOW:
        return asgi_violation(c, type, "more body bytes than the content-length header declared");
    case SERVER_STREAM_NOMEM:
        call_end_stream(c, 0);
        return PyErr_NoMemory();
    default:
        return asgi_client_gone(c);
    }
    if (!more) {
        call_end_stream(c, 1);
        return asgi_ready(Py_NewRef(Py_None));
    }
    if (r == SERVER_STREAM_OK)
        return asgi_ready(Py_NewRef(Py_None));
    /* Over the write limit: the caller waits until call_notify says it drained (or the
     * client left; its next send() then raises). */
    if (c->send_waiter != NULL) {
        /* A previous send() nobody awaited: let it go. */
        PyObject *old = c->send_waiter;
        c->send_waiter = NULL;
        asgi_resolve(old, Py_None);
        Py_DECREF(old);
    }
    if ((c->send_waiter = call_new_future(c)) == NULL)
        return NULL;
    return asgi_waiting(c->send_waiter);
}

/* The first body message: one complete response, or the head of a streamed one. */
static PyObject *first_body(AsgiCallObject *c, PyObject *type, const char *data, size_t len,
                            int more)
{
    server_conn_t *conn = c->conn;
    if (conn == NULL || server_conn_closed(conn))
        return asgi_client_gone(c);
    if (c->close)
        server_conn_set_close(conn);
    /* One message with exactly the bytes the application declared is a complete response
     * too: one write, framed by the same Content-Length (server_conn_respond writes it from
     * the length). Not for the statuses whose framing the streaming writer decides alone
     * (1xx, 204, 304: no content, a declared length kept as the application said). */
    int declared_whole = !more && c->content_length >= 0 && (uint64_t)c->content_length == len &&
                         c->status >= 200 && c->status != 204 && c->status != 304;
    if ((!more && c->content_length < 0) || declared_whole) {
        if (server_conn_respond(conn, c->status, NULL, 0, c->lines.data, c->lines.len, data, len) <
            0) {
            call_finish(c);
            return PyErr_NoMemory();
        }
        call_finish(c);
        return asgi_ready(Py_NewRef(Py_None));
    }
    int b = server_conn_stream_begin(conn, c->status, NULL, 0, c->lines.data, c->lines.len,
                                     c->content_length);
    if (b <= 0) {
        /* The head alone (HEAD, 1xx, 204, 304), or out of memory (the connection closed):
         * the request is finished; pieces still to come are dropped. */
        call_finish(c);
        if (b < 0)
            return PyErr_NoMemory();
        if (more)
            c->phase = ASGI_DISCARD;
        return asgi_ready(Py_NewRef(Py_None));
    }
    c->phase = ASGI_STREAMING;
    /* The pending request now belongs to the stream (server.h): the head goes out, the
     * connection reads on to notice a client that leaves. call_end_stream finishes it. */
    server_conn_finish(conn);
    return stream_piece(c, type, data, len, more);
}

static PyObject *send_body(AsgiCallObject *c, PyObject *message, PyObject *type)
{
    if (c->phase == ASGI_WAIT_START)
        return asgi_violation(c, type, "http.response.body sent before http.response.start");
    PyObject *body = PyDict_GetItemWithError(message, asgi_str.body);
    if (body == NULL && PyErr_Occurred())
        return NULL;
    PyObject *more_obj = PyDict_GetItemWithError(message, asgi_str.more_body);
    if (more_obj == NULL && PyErr_Occurred())
        return NULL;
    if (body != NULL && (PyUnicode_Check(body) || !PyObject_CheckBuffer(body)))
        return asgi_violation(c, type, "'body' must be a byte string, not %s",
                              Py_TYPE(body)->tp_name);
    if (more_obj != NULL && !PyLong_Check(more_obj))
        return asgi_violation(c, type, "'more_body' must be a bool, not %s",
                              Py_TYPE(more_obj)->tp_name);
    int more = more_obj != NULL && PyObject_IsTrue(more_obj);
    if (c->phase == ASGI_DISCARD) {
        if (!more)
            c->phase = ASGI_DONE;
        return asgi_ready(Py_NewRef(Py_None));
    }
    Py_buffer view = {0};
    if (body != NULL && PyObject_GetBuffer(body, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *data = body != NULL ? view.buf : "";
    size_t len = body != NULL ? (size_t)view.len : 0;
    PyObject *r = c->phase == ASGI_WAIT_BODY ? first_body(c, type, data, len, more)
                                             : stream_piece(c, type, data, len, more);
    if (body != NULL)
        PyBuffer_Release(&view);
    return r;
}

PyObject *asgi_send(AsgiCallObject *c, PyObject *message)
{
    if (!PyDict_Check(message))
        return asgi_violation(c, NULL, "send() takes a dict, not %s", Py_TYPE(message)->tp_name);
    PyObject *type = PyDict_GetItemWithError(message, asgi_str.type);
    if (type == NULL && PyErr_Occurred())
        return NULL;
    if (type == NULL || !PyUnicode_Check(type))
        return asgi_violation(c, type, "the message has no str 'type'");
    Py_INCREF(type); /* the message may be changed by what runs below (a logger) */
    PyObject *r;
    if (c->phase == ASGI_DONE && c->disconnected) {
        PyErr_SetString(PyExc_ConnectionResetError, "the client closed the connection");
        r = NULL;
    } else if (c->phase == ASGI_DONE) {
        r = asgi_violation(c, type, "sent after the response was complete");
    } else if (c->file_fd >= 0) {
        r = asgi_violation(c, type, "sent while http.response.pathsend was sending its file");
    } else if (type == asgi_str.http_response_body ||
               PyUnicode_Compare(type, asgi_str.http_response_body) == 0) {
        r = send_body(c, message, type);
    } else if (type == asgi_str.http_response_start ||
               PyUnicode_Compare(type, asgi_str.http_response_start) == 0) {
        r = send_start(c, message, type);
    } else if (type == asgi_str.http_response_pathsend ||
               PyUnicode_Compare(type, asgi_str.http_response_pathsend) == 0) {
        r = asgi_send_path(c, message, type);
    } else {
        r = PyErr_Occurred() ? NULL : asgi_violation(c, type, "unknown message type");
    }
    Py_DECREF(type);
    return r;
}
