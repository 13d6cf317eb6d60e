/*
 * Streaming responses (StreamingResponse, FileResponse): the native side of the body
 * writer. respond_streaming() writes the head through the server, then hands a
 * _StreamWriter and the response to the Python layer's stream_start(), which runs one
 * coroutine per stream as a Task: `async for` over the body iterator, write() for each
 * piece, `await drain()` when write() says the output is over the connection's limit,
 * end() when the iterator is exhausted or failed.
 *
 * Ownership: the writer holds the connection's pending request from the head until end()
 * (or its deallocation, which ends the stream as truncated), so the connection outlives
 * every call the writer can make. The connection holds only a borrowed pointer to the
 * writer (its notify argument), cleared by server_conn_stream_end before the writer can go.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/app_internal.h"

typedef struct {
    PyObject_HEAD
    server_conn_t *conn; /* the streaming connection, until end(); see above */
    PyObject *waiter;    /* the future returned by drain(), until the output drains */
    PyObject *task;      /* the Task producing the body (set_task), until end() */
} StreamWriterObject;

static PyObject *get_running_loop_fn; /* asyncio.events.get_running_loop */
static PyObject *str_stream_head;     /* "_stream_head" */
static PyObject *str_file_body;       /* "_file_body" */
static PyObject *str_background;      /* "background" */

/* Wakes a producer waiting in drain(); its next write() sees a closed connection. */
static void writer_wake(StreamWriterObject *w)
{
    PyObject *fut = w->waiter;
    if (fut == NULL)
        return;
    w->waiter = NULL;
    PyObject *done = PyObject_CallMethod(fut, "done", NULL);
    int is_done = done ? PyObject_IsTrue(done) : -1;
    Py_XDECREF(done);
    if (is_done == 0) {
        PyObject *r = PyObject_CallMethod(fut, "set_result", "O", Py_None);
        Py_XDECREF(r);
        is_done = r ? 1 : -1;
    }
    if (is_done < 0)
        PyErr_WriteUnraisable(fut);
    Py_DECREF(fut);
}

/* The output drained below the limit, or the connection closed. A producer waiting in
 * drain() is woken (its next write() raises ConnectionResetError); one waiting for its
 * iterator (an idle event stream) is cancelled, so the iterator is closed now rather
 * than at its next piece, as an ASGI server's http.disconnect makes Starlette do. */
static void writer_notify(void *arg)
{
    StreamWriterObject *w = arg;
    if (w->waiter == NULL && w->task != NULL && w->conn != NULL && server_conn_closed(w->conn)) {
        PyObject *task = w->task;
        w->task = NULL;
        PyObject *r = PyObject_CallMethod(task, "cancel", NULL);
        if (r == NULL)
            PyErr_WriteUnraisable(task);
        Py_XDECREF(r);
        Py_DECREF(task);
        return;
    }
    writer_wake(w);
}

static int writer_end(StreamWriterObject *w, int complete)
{
    server_conn_t *conn = w->conn;
    if (conn == NULL)
        return 0;
    w->conn = NULL;
    int rc = server_conn_stream_end(conn, complete);
    writer_wake(w);
    Py_CLEAR(w->task);
    return rc;
}

static PyObject *writer_write(StreamWriterObject *w, PyObject *arg)
{
    Py_buffer view;
    if (w->conn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the stream has ended");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int r = server_conn_stream_write(w->conn, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    switch (r) {
    case SERVER_STREAM_OK:
        Py_RETURN_FALSE;
    case SERVER_STREAM_FULL:
        Py_RETURN_TRUE;
    case SERVER_STREAM_OVERFLOW:
        PyErr_SetString(PyExc_RuntimeError, "Too much data for declared Content-Length");
        return NULL;
    case SERVER_STREAM_NOMEM:
        return PyErr_NoMemory();
    default:
        PyErr_SetString(PyExc_ConnectionResetError, "the client closed the connection");
        return NULL;
    }
}

static PyObject *writer_drain(StreamWriterObject *w, PyObject *unused)
{
    (void)unused;
    PyObject *loop = PyObject_CallNoArgs(get_running_loop_fn);
    if (loop == NULL)
        return NULL;
    PyObject *fut = PyObject_CallMethod(loop, "create_future", NULL);
    Py_DECREF(loop);
    if (fut == NULL)
        return NULL;
    if (w->conn == NULL || server_conn_closed(w->conn) || !server_conn_stream_full(w->conn)) {
        PyObject *r = PyObject_CallMethod(fut, "set_result", "O", Py_None);
        if (r == NULL) {
            Py_DECREF(fut);
            return NULL;
        }
        Py_DECREF(r);
        return fut;
    }
    writer_wake(w); /* a previous drain() nobody awaited any more */
    w->waiter = Py_NewRef(fut);
    return fut;
}

static PyObject *writer_end_method(StreamWriterObject *w, PyObject *arg)
{
    int complete = PyObject_IsTrue(arg);
    if (complete < 0)
        return NULL;
    if (writer_end(w, complete) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "Too little data for declared Content-Length");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *writer_set_task(StreamWriterObject *w, PyObject *task)
{
    if (w->conn != NULL)
        Py_XSETREF(w->task, Py_NewRef(task));
    Py_RETURN_NONE;
}

static PyObject *writer_get_closed(StreamWriterObject *w, void *unused)
{
    (void)unused;
    return PyBool_FromLong(w->conn == NULL || server_conn_closed(w->conn));
}

static int writer_traverse(StreamWriterObject *w, visitproc visit, void *arg)
{
    Py_VISIT(w->waiter);
    Py_VISIT(w->task);
    return 0;
}

static int writer_clear(StreamWriterObject *w)
{
    Py_CLEAR(w->waiter);
    Py_CLEAR(w->task);
    return 0;
}

static void writer_dealloc(StreamWriterObject *w)
{
    PyObject_GC_UnTrack(w);
    /* Dropped before end() (its task was destroyed): the body is cut short. */
    writer_end(w, 0);
    writer_clear(w);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyMethodDef writer_methods[] = {
    {"write", (PyCFunction)writer_write, METH_O,
     "write(data) -> bool: queue a piece of the body; True when the caller must await "
     "drain() before writing more. Raises ConnectionResetError once the client is gone."},
    {"drain", (PyCFunction)writer_drain, METH_NOARGS,
     "drain() -> Future resolved when the queued output is below the connection's limit "
     "(or the connection closed)."},
    {"set_task", (PyCFunction)writer_set_task, METH_O,
     "set_task(task): the Task producing the body, cancelled if the client leaves while it "
     "is not writing."},
    {"end", (PyCFunction)writer_end_method, METH_O,
     "end(complete): finish the body (complete) or cut it short and close the connection."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef writer_getset[] = {
    {"closed", (getter)writer_get_closed, NULL, "True once the stream ended or the client left.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject StreamWriter_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core._StreamWriter",
    .tp_basicsize = sizeof(StreamWriterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Writes the body of a streaming response to its connection.",
    .tp_traverse = (traverseproc)writer_traverse,
    .tp_clear = (inquiry)writer_clear,
    .tp_dealloc = (destructor)writer_dealloc,
    .tp_methods = writer_methods,
    .tp_getset = writer_getset,
};

int stream_init(void)
{
    PyObject *events = PyImport_ImportModule("asyncio.events");
    if (events == NULL)
        return -1;
    get_running_loop_fn = PyObject_GetAttrString(events, "get_running_loop");
    Py_DECREF(events);
    str_stream_head = PyUnicode_InternFromString("_stream_head");
    str_file_body = PyUnicode_InternFromString("_file_body");
    str_background = PyUnicode_InternFromString("background");
    return get_running_loop_fn && str_stream_head && str_file_body && str_background ? 0 : -1;
}

/* Opens path (str) for reading: a regular file, or -1 with OSError set. */
static int open_regular(PyObject *path)
{
    PyObject *fs = NULL;
    if (!PyUnicode_FSConverter(path, &fs))
        return -1;
    int fd;
    do {
        fd = open(PyBytes_AS_STRING(fs), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    struct stat st;
    if (fd >= 0) {
        int err = 0;
        if (fstat(fd, &st) < 0)
            err = errno;
        else if (!S_ISREG(st.st_mode))
            err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        if (err != 0) {
            close(fd);
            fd = -1;
            errno = err;
        }
    }
    if (fd < 0)
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
    Py_DECREF(fs);
    return fd;
}

/* A FileResponse whose head _stream_head() made: its `_file_body` (the path and the
 * segments [(text, start, end), ...] of the body, see responses.py) is sent by the server
 * with sendfile(2) (server/sendfile.c), so no Python runs for its bytes. Returns 0 when the
 * response was handed over (the head alone for HEAD/304...), 1 when it is to be streamed
 * by the Python iterator instead (no _file_body, a background to run after the body, or
 * the server's GZip policy compresses it), -1 with an exception (nothing was sent). */
static int respond_file_body(server_conn_t *conn, PyObject *resp, int status, db_buf_t *lines)
{
    PyObject *spec = NULL, *bg = NULL, *segs;
    server_file_t *f = NULL;
    int rc = 1;
    const http_request_t *h = server_conn_head(conn);
    /* HEAD needs no file: the streamed head is the same. */
    if (h != NULL && h->method == HTTP_HEAD)
        return 1;
    /* Both are attributes of every FileResponse (responses.py). */
    if ((spec = PyObject_GetAttr(resp, str_file_body)) == NULL)
        return -1;
    if (spec == Py_None)
        goto done;
    /* Starlette runs a response's background after its body was sent: the Python stream
     * does that. */
    if ((bg = PyObject_GetAttr(resp, str_background)) == NULL) {
        rc = -1;
        goto done;
    }
    if (bg != Py_None)
        goto done;
    PyObject *path;
    if (!PyArg_ParseTuple(spec, "UO!;_file_body", &path, &PyList_Type, &segs)) {
        rc = -1;
        goto done;
    }
    int fd = open_regular(path);
    if (fd < 0 || (f = server_file_new(fd)) == NULL) {
        if (fd >= 0)
            PyErr_NoMemory();
        rc = -1;
        goto done;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(segs); i++) {
        const char *text;
        Py_ssize_t text_len;
        unsigned long long start, end;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(segs, i), "y#KK;_file_body segment", &text, &text_len,
                              &start, &end))
            goto fail;
        if (server_file_add(f, text, (size_t)text_len, start, end) < 0) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    int b = server_conn_file_begin(conn, status, NULL, 0, lines->data, lines->len, f);
    if (b == SERVER_FILE_DECLINED) {
        server_file_free(f);
        goto done; /* rc 1: compressed through the stream */
    }
    /* f belongs to the connection now, whatever b says. */
    rc = 0;
    goto done;
fail:
    server_file_free(f);
    rc = -1;
done:
    Py_XDECREF(spec);
    Py_XDECREF(bg);
    return rc;
}

int respond_streaming(server_conn_t *conn, PyObject *resp, db_buf_t *lines, int *close,
                      PyObject *path)
{
    PyObject *head = NULL, *headers, *length, *writer = NULL, *r = NULL;
    int status;
    long long content_length = -1;
    if (app_cfg.stream_start == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "streaming responses are not configured");
        return -1;
    }
    /* (status, header pairs, declared Content-Length or None); FileResponse stats its
     * file here, so a missing file is answered 500 before anything was sent. */
    /* A response that answers Range requests (FileResponse) is given the request's Range,
     * If-Range and method; other streams take no arguments. */
    int ranged = PyObject_HasAttrString(resp, "_ranged_head");
    if (ranged) {
        const http_request_t *h = server_conn_head(conn);
        const http_header_t *range = h ? http_find_header(h, "range", 5) : NULL;
        const http_header_t *if_range = h ? http_find_header(h, "if-range", 8) : NULL;
        PyObject *rv =
            range ? PyUnicode_DecodeLatin1(range->value, (Py_ssize_t)range->value_len, NULL)
                  : Py_NewRef(Py_None);
        PyObject *iv = if_range ? PyUnicode_DecodeLatin1(if_range->value,
                                                         (Py_ssize_t)if_range->value_len, NULL)
                                : Py_NewRef(Py_None);
        PyObject *mv = h ? PyUnicode_FromStringAndSize(h->method_str, (Py_ssize_t)h->method_len)
                         : PyUnicode_FromString("GET");
        if (rv && iv && mv)
            head = PyObject_CallMethodObjArgs(resp, str_stream_head, rv, iv, mv, NULL);
        Py_XDECREF(rv);
        Py_XDECREF(iv);
        Py_XDECREF(mv);
    } else {
        head = PyObject_CallMethodNoArgs(resp, str_stream_head);
    }
    if (head == NULL)
        return -1;
    if (!PyArg_ParseTuple(head, "iOO;_stream_head() result", &status, &headers, &length))
        goto error;
    if (status < 100 || status > 999) {
        PyErr_Format(PyExc_ValueError, "invalid status code %d", status);
        goto error;
    }
    if (length != Py_None) {
        content_length = PyLong_AsLongLong(length);
        if (content_length == -1 && PyErr_Occurred())
            goto error;
        if (content_length < 0) {
            PyErr_SetString(PyExc_ValueError, "negative Content-Length");
            goto error;
        }
    }
    if (headers != Py_None && respond_header_lines(headers, lines, close) < 0)
        goto error;
    if (*close)
        server_conn_set_close(conn);
    Py_CLEAR(head);
    if (ranged) {
        int f = respond_file_body(conn, resp, status, lines);
        if (f <= 0)
            return f;
    }
    int b = server_conn_stream_begin(conn, status, NULL, 0, lines->data, lines->len,
                                     (int64_t)content_length);
    if (b > 0) {
        StreamWriterObject *w = PyObject_GC_New(StreamWriterObject, &StreamWriter_Type);
        if (w == NULL) {
            server_conn_stream_abandon(conn);
            return 1; /* the head is out: nothing else can be answered */
        }
        w->conn = conn;
        w->waiter = NULL;
        w->task = NULL;
        PyObject_GC_Track(w);
        server_conn_stream_notify(conn, writer_notify, w);
        writer = (PyObject *)w;
    }
    /* Without a body (HEAD, 204, 304, or the connection failed), stream_start only
     * closes the iterator. */
    r = PyObject_CallFunctionObjArgs(app_cfg.stream_start, writer ? writer : Py_None, resp, path,
                                     NULL);
    if (r == NULL) {
        if (writer) {
            /* Not yet handed to the caller's finish: give the stream up, not end it. */
            StreamWriterObject *w = (StreamWriterObject *)writer;
            server_conn_stream_abandon(w->conn);
            w->conn = NULL;
        }
        Py_XDECREF(writer);
        return 1; /* the head is out; the exception is left for the caller to log */
    }
    Py_DECREF(r);
    Py_XDECREF(writer);
    return 0;
error:
    Py_XDECREF(head);
    return -1;
}
