/*
 * _core.parse_multipart(content_type, body, max_parts, max_field_size, max_file_size):
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
    db_buf_t data; /* the current part's content */
} collect_t;

static PyObject *text(const char *s, size_t n)
{
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
}

static int on_part_begin(void *user)
{
    collect_t *c = user;
    c->data.len = 0;
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
    PyObject *part = Py_BuildValue("(OOOOy#)", c->name, c->filename, c->ctype, c->headers,
                                   c->data.data ? c->data.data : "", (Py_ssize_t)c->data.len);
    int r = part ? PyList_Append(c->parts, part) : -1;
    Py_XDECREF(part);
    return r != 0;
}

PyObject *app_parse_multipart(PyObject *module, PyObject *args, PyObject *kw)
{
    (void)module;
    static char *kwlist[] = {"content_type",   "body",          "max_parts",
                             "max_field_size", "max_file_size", NULL};
    const char *ctype;
    Py_ssize_t ctype_len;
    Py_buffer body;
    form_limits_t limits;
    form_limits_default(&limits);
    Py_ssize_t max_parts = (Py_ssize_t)limits.max_parts;
    unsigned long long max_field = limits.max_field_size, max_file = limits.max_file_size;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s#y*|nKK", kwlist, &ctype, &ctype_len, &body,
                                     &max_parts, &max_field, &max_file))
        return NULL;
    limits.max_parts = max_parts > 0 ? (size_t)max_parts : 1;
    limits.max_field_size = max_field;
    limits.max_file_size = max_file;
    collect_t c = {0};
    db_buf_init(&c.data);
    PyObject *result = NULL;
    form_callbacks_t cbs = {on_part_begin, on_header,   on_headers_complete,
                            on_part_data,  on_part_end, NULL};
    int err = 0;
    form_multipart_t *p = NULL;
    if ((c.parts = PyList_New(0)) == NULL)
        goto done;
    p = form_multipart_new(ctype, (size_t)ctype_len, &limits, &cbs, &c, &err);
    if (p == NULL) {
        if (err == FORM_E_NO_MEMORY)
            PyErr_NoMemory();
        else
            PyErr_SetString(PyExc_ValueError, form_error_message(err));
        goto done;
    }
    int r = form_multipart_feed(p, body.buf, (size_t)body.len);
    if (r >= 0)
        r = form_multipart_finish(p);
    if (r < 0) {
        /* A callback that failed left its Python exception set; keep that one. */
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, form_error_message(r));
        goto done;
    }
    result = Py_NewRef(c.parts);
done:
    form_multipart_free(p);
    PyBuffer_Release(&body);
    db_buf_free(&c.data);
    Py_XDECREF(c.parts);
    Py_XDECREF(c.headers);
    Py_XDECREF(c.name);
    Py_XDECREF(c.filename);
    Py_XDECREF(c.ctype);
    return result;
}
