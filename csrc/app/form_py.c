/*
 * Multipart/form-data bodies (csrc/form's parser) for Python, with Starlette's limits
 * (FastAPI's form_limits: max_files, max_fields, max_part_size).
 *
 * _core.parse_multipart(content_type, body, ...): a whole body (the native binder's Form()
 * fields, bounded by max_body), bytes-like or the Request itself (its body is then parsed
 * from the connection's buffer, without the copy a bytes object of it would cost), as a
 * list of parts, each a tuple (name, filename or None, content_type or None, [(header
 * name, value), ...], data bytes): a part that is one run of the body is copied once.
 *
 * _core.MultipartParser(content_type, spool, ...): the same parser fed a body piece by
 * piece as it arrives (request.form() of a streamed body). A file part's content goes to a
 * file object made by spool() (a SpooledTemporaryFile: memory up to its max_size, then
 * disk), written in blocks of up to FILE_BLOCK bytes collected here (the parser hands data
 * over between CR bytes, so binary content comes in short runs); only field values are
 * held in memory, each bounded by max_part_size. finish() returns the parts as tuples
 * (name, filename or None, content_type or None, headers, bytes or the file, size).
 * close() closes every file made so far: the caller calls it when the body fails.
 *
 * Names, filenames and header values are decoded as UTF-8 with replacement (RFC 7578
 * §5.1: form-data names and filenames are UTF-8 in practice). A malformed body, or one
 * over a limit, raises ValueError(message, status): 400 as Starlette answers, 413 for the
 * size limits Starlette does not have (max_file_size, max_size).
 */
#include "app/app_internal.h"
#include "form/form.h"

/* File content collected before one write() to the spooled file. */
#define FILE_BLOCK 65536

typedef struct {
    PyObject *parts;   /* list being built */
    PyObject *headers; /* the current part's [(name, value)] */
    PyObject *name, *filename, *ctype;
    db_buf_t data; /* the current part's content, when it is not one run of the body */
    /* The current part's content while it is one contiguous run of the body (data.len is
     * then 0): the parser hands a part's data as consecutive slices of the piece it was
     * fed, and the body is fed in one piece, so a part becomes its bytes object with one
     * copy instead of two. */
    const char *run;
    size_t run_len;
    const char *body, *body_end; /* the piece fed */
    /* Starlette's MultiPartParser counts (FastAPI's form_limits): parts with a filename are
     * files, the others fields. */
    size_t files, fields, max_files, max_fields;
    /* Streaming (MultipartParser): spool() makes the file of a file part; file is the
     * current part's (NULL for a field), size its bytes so far. */
    PyObject *spool;
    PyObject *file;
    uint64_t size;
} collect_t;

static PyObject *text(const char *s, size_t n)
{
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
}

static int on_part_begin(void *user)
{
    collect_t *c = user;
    c->data.len = 0;
    c->run = NULL;
    c->run_len = 0;
    Py_XSETREF(c->headers, PyList_New(0));
    return c->headers == NULL;
}

static int on_header(void *user, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    collect_t *c = user;
    PyObject *pair = Py_BuildValue("(NN)", PyUnicode_DecodeLatin1(name, (Py_ssize_t)name_len, NULL),
                                   text(value, value_len));
    int r = pair ? PyList_Append(c->headers, pair) : -1;
    Py_XDECREF(pair);
    return r != 0;
}

static int on_headers_complete(void *user, const form_part_t *part)
{
    collect_t *c = user;
    c->size = 0;
    if (part->has_filename ? ++c->files > c->max_files : ++c->fields > c->max_fields) {
        /* Starlette's messages; the caller answers 400 with them. */
        if (part->has_filename)
            PyErr_Format(PyExc_ValueError, "Too many files. Maximum number of files is %zu.",
                         c->max_files);
        else
            PyErr_Format(PyExc_ValueError, "Too many fields. Maximum number of fields is %zu.",
                         c->max_fields);
        return 1;
    }
    Py_XSETREF(c->name, text(part->name, part->name_len));
    Py_XSETREF(c->filename,
               part->has_filename ? text(part->filename, part->filename_len) : Py_NewRef(Py_None));
    Py_XSETREF(c->ctype, part->content_type ? text(part->content_type, part->content_type_len)
                                            : Py_NewRef(Py_None));
    if (c->name == NULL || c->filename == NULL || c->ctype == NULL)
        return 1;
    if (c->spool != NULL && part->has_filename && (c->file = PyObject_CallNoArgs(c->spool)) == NULL)
        return 1;
    return 0;
}

/* Writes the collected file content to the part's file. */
static int flush_file(collect_t *c)
{
    if (c->file == NULL || c->data.len == 0)
        return 0;
    PyObject *r =
        PyObject_CallMethod(c->file, "write", "y#", c->data.data, (Py_ssize_t)c->data.len);
    c->data.len = 0;
    Py_XDECREF(r);
    return r == NULL;
}

static int on_part_data(void *user, const char *data, size_t len)
{
    collect_t *c = user;
    c->size += len;
    if (c->spool == NULL) {
        /* The whole body fed in one piece: a slice of it that continues the run (or starts
         * it) needs no copy. A slice from elsewhere (the parser's copy of bytes held back at
         * the end of a piece) ends the run, which is copied into data first. */
        uintptr_t d = (uintptr_t)data, b = (uintptr_t)c->body, e = (uintptr_t)c->body_end;
        int in_body = b != 0 && d >= b && d <= e && len <= e - d;
        if (in_body && c->data.len == 0 && (c->run == NULL || data == c->run + c->run_len)) {
            if (c->run == NULL)
                c->run = data;
            c->run_len += len;
            return 0;
        }
        if (c->run != NULL) {
            if (db_buf_reserve(&c->data, c->run_len) < 0) {
                PyErr_NoMemory();
                return 1;
            }
            db_buf_append(&c->data, c->run, c->run_len);
            c->run = NULL;
            c->run_len = 0;
        }
    } else if (c->file != NULL && c->data.len + len > FILE_BLOCK && flush_file(c)) {
        return 1;
    }
    if (db_buf_reserve(&c->data, len) < 0) {
        PyErr_NoMemory();
        return 1;
    }
    db_buf_append(&c->data, data, len);
    return 0;
}

static int on_part_end(void *user)
{
    collect_t *c = user;
    PyObject *part;
    if (c->spool == NULL) {
        const char *data = c->run != NULL ? c->run : c->data.data ? c->data.data : "";
        size_t len = c->run != NULL ? c->run_len : c->data.len;
        part = Py_BuildValue("(OOOOy#)", c->name, c->filename, c->ctype, c->headers, data,
                             (Py_ssize_t)len);
    } else if (c->file == NULL) {
        part = Py_BuildValue("(OOOOy#K)", c->name, c->filename, c->ctype, c->headers,
                             c->data.data ? c->data.data : "", (Py_ssize_t)c->data.len,
                             (unsigned long long)c->size);
    } else if (flush_file(c)) {
        return 1;
    } else {
        part = Py_BuildValue("(OOOOOK)", c->name, c->filename, c->ctype, c->headers, c->file,
                             (unsigned long long)c->size);
    }
    /* The file is in the part now (or closed with the parser when the part failed). */
    if (part != NULL)
        Py_CLEAR(c->file);
    int r = part ? PyList_Append(c->parts, part) : -1;
    Py_XDECREF(part);
    return r != 0;
}

PyObject *app_multipart_parts(const char *ctype, size_t ctype_len, const char *body, size_t len,
                              const app_form_limits_t *lim)
{
    form_limits_t limits;
    form_limits_default(&limits);
    /* One more part than the two counts allow reaches on_headers_complete, which names the
     * count that was exceeded. */
    limits.max_parts = lim->max_files + lim->max_fields + 1;
    limits.max_field_size = lim->max_part_size;
    collect_t c = {0};
    c.body = body;
    c.body_end = body + len;
    c.max_files = lim->max_files;
    c.max_fields = lim->max_fields;
    db_buf_init(&c.data);
    PyObject *result = NULL;
    form_callbacks_t cbs = {on_part_begin, on_header,   on_headers_complete,
                            on_part_data,  on_part_end, NULL};
    int err = 0;
    form_multipart_t *p = NULL;
    if ((c.parts = PyList_New(0)) == NULL)
        goto done;
    p = form_multipart_new(ctype, ctype_len, &limits, &cbs, &c, &err);
    if (p == NULL) {
        if (err == FORM_E_NO_MEMORY)
            PyErr_NoMemory();
        else
            PyErr_SetString(PyExc_ValueError, form_error_message(err));
        goto done;
    }
    int r = form_multipart_feed(p, body, len);
    if (r >= 0)
        r = form_multipart_finish(p);
    if (r < 0) {
        /* A callback that failed left its Python exception set; keep that one. */
        if (PyErr_Occurred())
            goto done;
        if (r == FORM_E_FIELD_TOO_LARGE)
            PyErr_Format(PyExc_ValueError, "Part exceeded maximum size of %lluKB.",
                         (unsigned long long)(lim->max_part_size / 1024));
        else
            PyErr_SetString(PyExc_ValueError, form_error_message(r));
        goto done;
    }
    result = Py_NewRef(c.parts);
done:
    form_multipart_free(p);
    db_buf_free(&c.data);
    Py_XDECREF(c.parts);
    Py_XDECREF(c.headers);
    Py_XDECREF(c.name);
    Py_XDECREF(c.filename);
    Py_XDECREF(c.ctype);
    return result;
}

PyObject *app_parse_multipart(PyObject *module, PyObject *args, PyObject *kw)
{
    (void)module;
    static char *kwlist[] = {"content_type", "body",          "max_files",
                             "max_fields",   "max_part_size", NULL};
    const char *ctype;
    Py_ssize_t ctype_len;
    PyObject *source;
    Py_ssize_t max_files = 1000, max_fields = 1000;
    unsigned long long max_part = 1024 * 1024;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s#O|nnK", kwlist, &ctype, &ctype_len, &source,
                                     &max_files, &max_fields, &max_part))
        return NULL;
    app_form_limits_t lim = {max_files > 0 ? (size_t)max_files : 0,
                             max_fields > 0 ? (size_t)max_fields : 0, max_part};
    const char *slice;
    size_t slice_len;
    if (request_body_slice(source, &slice, &slice_len))
        return app_multipart_parts(ctype, (size_t)ctype_len, slice, slice_len, &lim);
    /* A Request detached from its connection (its handler awaited first) has its body as
     * bytes: parsed from those. */
    PyObject *owned = PyObject_TypeCheck(source, &Request_Type)
                          ? PyObject_GetAttrString(source, "_body")
                          : Py_NewRef(source);
    if (owned == NULL)
        return NULL;
    Py_buffer body;
    PyObject *result = NULL;
    if (PyObject_GetBuffer(owned, &body, PyBUF_SIMPLE) == 0) {
        result = app_multipart_parts(ctype, (size_t)ctype_len, body.buf, (size_t)body.len, &lim);
        PyBuffer_Release(&body);
    }
    Py_DECREF(owned);
    return result;
}

/* _core.MultipartParser: see the opening comment. */
typedef struct {
    PyObject_HEAD
    form_multipart_t *parser;
    collect_t c;
    uint64_t max_part_size, max_file_size, max_size;
} MultipartParserObject;

/* Sets the ValueError of a failed feed or finish (a callback's own exception is kept). */
static void parser_error(MultipartParserObject *self, int r)
{
    if (PyErr_Occurred())
        return;
    if (r == FORM_E_FIELD_TOO_LARGE)
        PyErr_Format(PyExc_ValueError, "Part exceeded maximum size of %lluKB.",
                     (unsigned long long)(self->max_part_size / 1024));
    else if (r == FORM_E_FILE_TOO_LARGE || r == FORM_E_BODY_TOO_LARGE) {
        PyObject *args =
            Py_BuildValue("(si)",
                          r == FORM_E_FILE_TOO_LARGE ? "File exceeded the maximum upload size."
                                                     : "Form exceeded the maximum size.",
                          413);
        if (args != NULL)
            PyErr_SetObject(PyExc_ValueError, args);
        Py_XDECREF(args);
    } else if (r == FORM_E_NO_MEMORY)
        PyErr_NoMemory();
    else
        PyErr_SetString(PyExc_ValueError, form_error_message(r));
}

static int mp_init(MultipartParserObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"content_type",  "spool",         "max_files", "max_fields",
                             "max_part_size", "max_file_size", "max_size",  NULL};
    const char *ctype;
    Py_ssize_t ctype_len, max_files = 1000, max_fields = 1000;
    unsigned long long max_part = 1024 * 1024, max_file = 0, max_size = 0;
    PyObject *spool;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s#O|$nnKKK", kwlist, &ctype, &ctype_len, &spool,
                                     &max_files, &max_fields, &max_part, &max_file, &max_size))
        return -1;
    if (self->parser != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "MultipartParser.__init__ called twice");
        return -1;
    }
    if (!PyCallable_Check(spool) || max_files < 0 || max_fields < 0) {
        PyErr_SetString(PyExc_TypeError, "spool must be callable and the counts >= 0");
        return -1;
    }
    form_limits_t limits;
    form_limits_default(&limits);
    /* One more part than the two counts allow reaches on_headers_complete, which names the
     * count that was exceeded. */
    limits.max_parts = (size_t)max_files + (size_t)max_fields + 1;
    limits.max_field_size = max_part;
    if (max_file)
        limits.max_file_size = max_file;
    if (max_size)
        limits.max_body = max_size;
    self->max_part_size = max_part;
    self->max_file_size = max_file;
    self->max_size = max_size;
    self->c.max_files = (size_t)max_files;
    self->c.max_fields = (size_t)max_fields;
    if ((self->c.parts = PyList_New(0)) == NULL)
        return -1;
    self->c.spool = Py_NewRef(spool);
    form_callbacks_t cbs = {on_part_begin, on_header,   on_headers_complete,
                            on_part_data,  on_part_end, NULL};
    int err = 0;
    self->parser = form_multipart_new(ctype, (size_t)ctype_len, &limits, &cbs, &self->c, &err);
    if (self->parser == NULL) {
        parser_error(self, err);
        return -1;
    }
    return 0;
}

static PyObject *mp_feed(MultipartParserObject *self, PyObject *arg)
{
    Py_buffer data;
    if (self->parser == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "MultipartParser is not initialised");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0)
        return NULL;
    int r = form_multipart_feed(self->parser, data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    if (r < 0) {
        parser_error(self, r);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *mp_finish(MultipartParserObject *self, PyObject *unused)
{
    (void)unused;
    if (self->parser == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "MultipartParser is not initialised");
        return NULL;
    }
    int r = form_multipart_finish(self->parser);
    if (r < 0) {
        parser_error(self, r);
        return NULL;
    }
    return Py_NewRef(self->c.parts);
}

/* Closes one file object, keeping an exception already set (and reporting its own). */
static void close_file(PyObject *file)
{
    PyObject *exc = pyloop_fetch_exception();
    PyObject *r = PyObject_CallMethod(file, "close", NULL);
    if (r == NULL)
        PyErr_WriteUnraisable(file);
    Py_XDECREF(r);
    pyloop_restore_exception(exc);
}

static PyObject *mp_close(MultipartParserObject *self, PyObject *unused)
{
    (void)unused;
    if (self->c.file != NULL) {
        close_file(self->c.file);
        Py_CLEAR(self->c.file);
    }
    PyObject *parts = self->c.parts;
    for (Py_ssize_t i = 0; parts != NULL && i < PyList_GET_SIZE(parts); i++) {
        PyObject *part = PyList_GET_ITEM(parts, i);
        if (PyTuple_GET_ITEM(part, 1) != Py_None)
            close_file(PyTuple_GET_ITEM(part, 4));
    }
    Py_RETURN_NONE;
}

static int mp_traverse(MultipartParserObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->c.parts);
    Py_VISIT(self->c.headers);
    Py_VISIT(self->c.name);
    Py_VISIT(self->c.filename);
    Py_VISIT(self->c.ctype);
    Py_VISIT(self->c.spool);
    Py_VISIT(self->c.file);
    return 0;
}

static int mp_clear(MultipartParserObject *self)
{
    Py_CLEAR(self->c.parts);
    Py_CLEAR(self->c.headers);
    Py_CLEAR(self->c.name);
    Py_CLEAR(self->c.filename);
    Py_CLEAR(self->c.ctype);
    Py_CLEAR(self->c.spool);
    Py_CLEAR(self->c.file);
    return 0;
}

static void mp_dealloc(MultipartParserObject *self)
{
    PyObject_GC_UnTrack(self);
    form_multipart_free(self->parser);
    db_buf_free(&self->c.data);
    mp_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef mp_methods[] = {
    {"feed", (PyCFunction)mp_feed, METH_O,
     "feed(data): parses the next piece of the body (ValueError(message[, status]) when it "
     "is malformed or over a limit)"},
    {"finish", (PyCFunction)mp_finish, METH_NOARGS,
     "finish() -> [(name, filename, content_type, headers, bytes or file, size)] once the "
     "body is complete (ValueError when it stopped early)"},
    {"close", (PyCFunction)mp_close, METH_NOARGS, "close(): closes every file made so far"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject MultipartParser_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.MultipartParser",
    .tp_basicsize = sizeof(MultipartParserObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A multipart/form-data body parsed as it arrives; file parts spooled.",
    .tp_traverse = (traverseproc)mp_traverse,
    .tp_clear = (inquiry)mp_clear,
    .tp_dealloc = (destructor)mp_dealloc,
    .tp_methods = mp_methods,
    .tp_init = (initproc)mp_init,
    .tp_new = PyType_GenericNew,
};
