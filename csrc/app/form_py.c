/*
 * _core.MultipartParser(content_type, spool, ...): a multipart/form-data body parsed into
 * parts (form_collect.c) with Starlette's limits (FastAPI's form_limits: max_files,
 * max_fields, max_part_size) and two of its own (max_file_size, max_size: 413).
 *
 * read(request, future) reads a native Request's body itself, all in C: a body received
 * whole is fed from the connection's buffer in one piece (no bytes object of the body),
 * a streamed one piece by piece as the server reads it (server_conn_body_read, each piece
 * a slice of the read window fed before the next is asked for; once a file part has its
 * buffer, server_conn_body_read_into puts the next piece straight into it, see
 * form_collect.c). Python runs once for the
 * whole body, and spool() once per file part larger than spool_max. feed(data) and
 * finish() are the same parser fed from Python, for a body that only Python can read.
 *
 * finish() (and read) give the parts as tuples (name, filename or None, content_type or
 * None, headers, content, size): content is bytes, or for a file over spool_max the file
 * object spool() made, positioned at its end. close() closes every such file made so far:
 * the caller calls it when the body fails, and a parser closed stops reading.
 */
#include "app/app_internal.h"

typedef struct {
    PyObject_HEAD
    app_form_collect_t c;
    int ready;  /* __init__ succeeded */
    int closed; /* close() was called: nothing more is read or spooled */
    /* read() of a streamed body: the Request and the future of the parts, while a read is
     * pending with the server (with a reference to this object held for it). */
    PyObject *request;
    PyObject *future;
} MultipartParserObject;

static int mp_init(MultipartParserObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"content_type", "spool",         "max_files",
                             "max_fields",   "max_part_size", "max_file_size",
                             "max_size",     "spool_max",     NULL};
    const char *ctype;
    Py_ssize_t ctype_len, max_files = 1000, max_fields = 1000;
    unsigned long long max_part = 1024 * 1024, max_file = 0, max_size = 0;
    unsigned long long spool_max = 1024 * 1024;
    PyObject *spool;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s#O|$nnKKKK", kwlist, &ctype, &ctype_len, &spool,
                                     &max_files, &max_fields, &max_part, &max_file, &max_size,
                                     &spool_max))
        return -1;
    if (self->ready || self->c.parts != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "MultipartParser.__init__ called twice");
        return -1;
    }
    if (!PyCallable_Check(spool) || max_files < 0 || max_fields < 0) {
        PyErr_SetString(PyExc_TypeError, "spool must be callable and the counts >= 0");
        return -1;
    }
    app_form_limits_t lim = {(size_t)max_files, (size_t)max_fields, max_part};
    if (app_form_collect_init(&self->c, ctype, (size_t)ctype_len, &lim, max_file, max_size) < 0)
        return -1;
    self->c.spool = Py_NewRef(spool);
    self->c.spool_max = spool_max;
    self->ready = 1;
    return 0;
}

static int usable(MultipartParserObject *self)
{
    if (!self->ready)
        PyErr_SetString(PyExc_RuntimeError, "MultipartParser is not initialised");
    else if (self->closed)
        PyErr_SetString(PyExc_RuntimeError, "MultipartParser is closed");
    else if (self->request != NULL)
        PyErr_SetString(PyExc_RuntimeError, "MultipartParser is reading a request");
    else
        return 1;
    return 0;
}

static PyObject *mp_feed(MultipartParserObject *self, PyObject *arg)
{
    if (!usable(self))
        return NULL;
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0)
        return NULL;
    int r = app_form_collect_feed(&self->c, data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *mp_finish(MultipartParserObject *self, PyObject *unused)
{
    (void)unused;
    return usable(self) ? app_form_collect_finish(&self->c) : NULL;
}

/* The parts of a whole body, fed in one piece. */
static PyObject *whole(MultipartParserObject *self, const char *body, size_t len)
{
    self->c.total = self->c.fed + len;
    if (app_form_collect_feed(&self->c, body, len) < 0)
        return NULL;
    return app_form_collect_finish(&self->c);
}

/* Resolves the future of read(): the parts, the exception set (value NULL), or the
 * SERVER_BODY_* code. A future already done (the reader was cancelled) is left alone. */
static void resolve(PyObject *fut, PyObject *value)
{
    PyObject *exc = value == NULL ? pyloop_fetch_exception() : NULL;
    PyObject *done = PyObject_CallMethod(fut, "done", NULL);
    int is_done = done != NULL ? PyObject_IsTrue(done) : -1;
    PyObject *r = NULL;
    if (is_done == 0)
        r = exc != NULL ? PyObject_CallMethod(fut, "set_exception", "O", exc)
                        : PyObject_CallMethod(fut, "set_result", "O", value);
    if (is_done < 0 || (is_done == 0 && r == NULL))
        PyErr_WriteUnraisable(fut);
    Py_XDECREF(r);
    Py_XDECREF(done);
    Py_XDECREF(exc);
}

/* Whether the reader gave up (its future was cancelled) or closed the parser. */
static int abandoned(MultipartParserObject *self)
{
    if (self->closed)
        return 1;
    PyObject *done = PyObject_CallMethod(self->future, "done", NULL);
    int r = done != NULL ? PyObject_IsTrue(done) : -1;
    Py_XDECREF(done);
    if (r < 0)
        PyErr_WriteUnraisable(self->future);
    return r != 0;
}

/* The server answers a read of the streamed body (server/body.c): a piece is fed and the
 * next asked for at once, so the window empties as fast as the socket fills it; the end
 * finishes the parts; an error code (the client left, bad framing, over max_upload, the
 * request finished first) is the future's result for the Python layer to raise. */
static void on_piece(void *arg, int status, const char *data, size_t len)
{
    MultipartParserObject *self = arg;
    PyObject *value = NULL;
    if (abandoned(self)) {
        value = Py_NewRef(Py_None);
    } else if (status == SERVER_BODY_DATA) {
        server_conn_t *conn;
        uint64_t length;
        char *dst = NULL;
        size_t cap = 0;
        if (app_form_collect_feed(&self->c, data, len) >= 0) {
            /* The next piece straight into the part's buffer when it has room. */
            app_form_collect_dest(&self->c, &dst, &cap);
            if (request_body_stream(self->request, &conn, &length) == 1 &&
                server_conn_body_read_into(conn, dst, cap, on_piece, self) == 0)
                return; /* the reference taken in mp_read goes with the next read */
            value = PyLong_FromLong(SERVER_BODY_ABORTED);
        }
    } else if (status == SERVER_BODY_END) {
        value = app_form_collect_finish(&self->c);
    } else {
        value = PyLong_FromLong(status);
    }
    PyObject *fut = self->future;
    self->future = NULL;
    Py_CLEAR(self->request);
    if (value != Py_None)
        resolve(fut, value);
    Py_XDECREF(value);
    Py_DECREF(fut);
    /* Taken in mp_read for the server's pending read. */
    Py_DECREF(self);
}

static PyObject *mp_read(MultipartParserObject *self, PyObject *args)
{
    PyObject *request, *fut;
    if (!PyArg_ParseTuple(args, "OO:read", &request, &fut) || !usable(self))
        return NULL;
    server_conn_t *conn;
    uint64_t length;
    int streams = request_body_stream(request, &conn, &length);
    if (streams < 0)
        return PyLong_FromLong(SERVER_BODY_ABORTED);
    const char *body;
    size_t len;
    if (streams == 0 && request_body_slice(request, &body, &len))
        return whole(self, body, len);
    if (streams == 0) {
        /* A Request detached from its connection (or any object with a _body): its body is
         * bytes already. */
        PyObject *owned = PyObject_GetAttrString(request, "_body");
        Py_buffer view;
        PyObject *result = NULL;
        if (owned != NULL && PyObject_GetBuffer(owned, &view, PyBUF_SIMPLE) == 0) {
            result = whole(self, view.buf, (size_t)view.len);
            PyBuffer_Release(&view);
        }
        Py_XDECREF(owned);
        return result;
    }
    self->c.total = length;
    self->request = Py_NewRef(request);
    self->future = Py_NewRef(fut);
    Py_INCREF(self); /* released in on_piece when the reading stops */
    if (server_conn_body_read(conn, on_piece, self) < 0) {
        Py_CLEAR(self->request);
        Py_CLEAR(self->future);
        Py_DECREF(self);
        PyErr_SetString(PyExc_RuntimeError, "the request body is already being read");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *mp_close(MultipartParserObject *self, PyObject *unused)
{
    (void)unused;
    self->closed = 1;
    app_form_collect_close(&self->c);
    Py_RETURN_NONE;
}

static int mp_traverse(MultipartParserObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->request);
    Py_VISIT(self->future);
    return app_form_collect_traverse(&self->c, visit, arg);
}

static int mp_clear(MultipartParserObject *self)
{
    Py_CLEAR(self->request);
    Py_CLEAR(self->future);
    app_form_collect_clear(&self->c);
    return 0;
}

static void mp_dealloc(MultipartParserObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->request);
    Py_CLEAR(self->future);
    app_form_collect_free(&self->c);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef mp_methods[] = {
    {"read", (PyCFunction)mp_read, METH_VARARGS,
     "read(request, future) -> parts, or None when the future will get them (or the "
     "exception, or a SERVER_BODY_* error code), or that code at once: the Request's whole "
     "or streamed body, parsed in C"},
    {"feed", (PyCFunction)mp_feed, METH_O,
     "feed(data): parses the next piece of the body (ValueError(message[, status]) when it "
     "is malformed or over a limit)"},
    {"finish", (PyCFunction)mp_finish, METH_NOARGS,
     "finish() -> [(name, filename, content_type, headers, bytes or file, size)] once the "
     "body is complete (ValueError when it stopped early)"},
    {"close", (PyCFunction)mp_close, METH_NOARGS,
     "close(): closes every file made so far and stops reading"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject MultipartParser_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.MultipartParser",
    .tp_basicsize = sizeof(MultipartParserObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A multipart/form-data body parsed whole or as it arrives; large files spooled.",
    .tp_traverse = (traverseproc)mp_traverse,
    .tp_clear = (inquiry)mp_clear,
    .tp_dealloc = (destructor)mp_dealloc,
    .tp_methods = mp_methods,
    .tp_init = (initproc)mp_init,
    .tp_new = PyType_GenericNew,
};
