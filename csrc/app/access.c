/*
 * The access log (uvicorn's --access-log): one record per response, in uvicorn's format
 * '%s - "%s %s HTTP/%s" %d' (client "host:port" or "", method, request target as sent,
 * HTTP version, status), handed to a Python logger's info method. The server layer calls
 * app_access_log from the response writer only when Server.set_access_log installed it,
 * so with the log off the request path pays one pointer test.
 *
 * Ownership: the logging callable and the interned format string belong to the
 * ServerObject (access_log, access_format).
 */
#include "app/app_internal.h"

static void app_access_log(void *ctx, int status, const char *client, size_t client_len,
                           const char *method, size_t method_len, const char *target,
                           size_t target_len, int http10)
{
    ServerObject *self = ctx;
    PyObject *type, *value, *tb;
    /* A response may be written while the caller handles an exception (a 500): keep it. */
    PyErr_Fetch(&type, &value, &tb);
    PyObject *cl = PyUnicode_DecodeLatin1(client, (Py_ssize_t)client_len, NULL);
    PyObject *m = PyUnicode_DecodeLatin1(method, (Py_ssize_t)method_len, NULL);
    PyObject *t = PyUnicode_DecodeLatin1(target, (Py_ssize_t)target_len, NULL);
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
