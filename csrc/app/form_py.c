/*
 * _core.parse_multipart(content_type, body, max_files=1000, max_fields=1000,
 * max_part_size=1 MiB) (Starlette's limits, FastAPI's form_limits), body being bytes-like
 * or the Request itself (its body is then parsed from the connection's buffer, without the
 * copy a bytes object of it would cost):
 * a multipart/form-data body (csrc/form's parser) as a list of parts, each a tuple
 * (name, filename or None, content_type or None, [(header name, value), ...], data bytes).
 * The server holds the whole (size-limited) body before the handler runs, so the body is
 * fed in one piece; the Python layer (api/_forms.py) turns the parts into str fields and
 * UploadFiles. Names, filenames and header values are decoded as UTF-8 with replacement
 * (RFC 7578 §5.1: form-data names and filenames are UTF-8 in practice); a malformed body
 * raises ValueError with the parser's message, which the caller answers with 400.
 */
#include "app/app_internal.h"
#include "form/form.h"

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
    return c->name == NULL || c->filename == NULL || c->ctype == NULL;
}

static int on_part_data(void *user, const char *data, size_t len)
{
    collect_t *c = user;
    /* A slice of the fed body that continues the run (or starts it): nothing to copy. A
     * slice from elsewhere (the parser's copy of bytes held back at the end of a piece)
     * ends the run, which is copied into data first. */
    uintptr_t d = (uintptr_t)data, b = (uintptr_t)c->body, e = (uintptr_t)c->body_end;
    int in_body = d >= b && d <= e && len <= e - d;
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
    const char *data = c->run != NULL ? c->run : c->data.data ? c->data.data : "";
    size_t len = c->run != NULL ? c->run_len : c->data.len;
    PyObject *part = Py_BuildValue("(OOOOy#)", c->name, c->filename, c->ctype, c->headers, data,
                                   (Py_ssize_t)len);
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
    Py_buffer body;
    if (PyObject_GetBuffer(source, &body, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *result =
        app_multipart_parts(ctype, (size_t)ctype_len, body.buf, (size_t)body.len, &lim);
    PyBuffer_Release(&body);
    return result;
}
