/*
 * The access log (uvicorn's --access-log): one record per response, in uvicorn's format
 * '%s - "%s %s HTTP/%s" %d' (client "host:port" or "", method, request target as sent,
 * HTTP version, status), handed to a Python logger's info method. The server layer calls
 * app_access_log from the response writer only when Server.set_access_log installed it,
 * so with the log off the request path pays one pointer test.
 *
 * Control characters (C0, DEL and C1: a proxy's X-Forwarded-For value may carry obs-text
 * bytes, and 0x9B is a terminal's CSI) are written as \xNN, so that a line can neither be
 * split nor drive the terminal it is read on; the parser lets none into method and target,
 * so the scan finds nothing on the common path and the text is decoded as it is.
 *
 * Ownership: the logging callable and the interned format string belong to the
 * ServerObject (access_log, access_format).
 */
#include "app/app_internal.h"

static int is_control(unsigned char ch)
{
    return ch < 0x20 || (ch >= 0x7f && ch <= 0x9f);
}

/* The bytes as a str (Latin-1), control characters escaped as \xNN; NULL when out of
 * memory. */
static PyObject *escaped(const char *s, size_t len)
{
    size_t controls = 0;
    for (size_t i = 0; i < len; i++)
        controls += (size_t)is_control((unsigned char)s[i]);
    if (controls == 0)
        return PyUnicode_DecodeLatin1(s, (Py_ssize_t)len, NULL);
    /* len is at most a head's size: len + 3 * controls cannot overflow. */
    char *out = PyMem_Malloc(len + 3 * controls);
    if (out == NULL)
        return PyErr_NoMemory();
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (is_control(ch)) {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        } else {
            out[n++] = (char)ch;
        }
    }
    PyObject *r = PyUnicode_DecodeLatin1(out, (Py_ssize_t)n, NULL);
    PyMem_Free(out);
    return r;
}

static void app_access_log(void *ctx, int status, const char *client, size_t client_len,
                           const char *method, size_t method_len, const char *target,
                           size_t target_len, int http10)
{
    ServerObject *self = ctx;
    PyObject *type, *value, *tb;
    /* A response may be written while the caller handles an exception (a 500): keep it. */
    PyErr_Fetch(&type, &value, &tb);
    PyObject *cl = escaped(client, client_len);
    PyObject *m = escaped(method, method_len);
    PyObject *t = escaped(target, target_len);
    PyObject *st = PyLong_FromLong(status), *r = NULL;
    if (cl && m && t && st) {
        PyObject *args[6] = {
            self->access_format, cl, m, t, http10 ? self->access_v10 : self->access_v11, st};
        r = PyObject_Vectorcall(self->access_log, args, 6, NULL);
    }
    if (r == NULL)
        PyErr_WriteUnraisable(self->access_log);
    Py_XDECREF(r);
    Py_XDECREF(cl);
    Py_XDECREF(m);
    Py_XDECREF(t);
    Py_XDECREF(st);
    PyErr_Restore(type, value, tb);
}

PyObject *app_set_access_log(ServerObject *self, PyObject *log)
{
    if (self->server != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_access_log() must come before listen()");
        return NULL;
    }
    if (log != Py_None && !PyCallable_Check(log)) {
        PyErr_SetString(PyExc_TypeError, "set_access_log() takes a callable or None");
        return NULL;
    }
    if (log == Py_None) {
        Py_CLEAR(self->access_log);
        self->cfg.access_log = NULL;
        self->cfg.access_ctx = NULL;
        Py_RETURN_NONE;
    }
    if (self->access_format == NULL) {
        self->access_format = PyUnicode_InternFromString("%s - \"%s %s HTTP/%s\" %d");
        self->access_v10 = PyUnicode_InternFromString("1.0");
        self->access_v11 = PyUnicode_InternFromString("1.1");
        if (!self->access_format || !self->access_v10 || !self->access_v11)
            return NULL;
    }
    Py_XSETREF(self->access_log, Py_NewRef(log));
    self->cfg.access_log = app_access_log;
    self->cfg.access_ctx = self;
    Py_RETURN_NONE;
}
