/*
 * Server.set_health(health_path, ready_path, ready): the Python end of the probes
 * (server/health.c). `ready` is None or a callable taking no argument that returns true
 * when the application is ready; the Python layer makes it from the user's registered
 * readiness checks. It runs only when a probe of ready_path arrives (seconds apart), on
 * the loop thread, so it must be quick.
 *
 * Ownership: the ServerObject holds both paths (health_paths, a tuple of bytes the
 * configuration points into) and the callable (ready_cb); dealloc releases them after the
 * native server is gone.
 */
#include "app/app_internal.h"

/* server_config_t.ready_check: 0 when ready. An exception is not ready, and is reported
 * (a libuv callback must not return with it set). */
static int app_ready_check(void *ctx)
{
    ServerObject *self = ctx;
    PyObject *r = PyObject_CallNoArgs(self->ready_cb);
    if (r == NULL) {
        PyErr_WriteUnraisable(self->ready_cb);
        return 1;
    }
    int ok = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (ok < 0) {
        PyErr_WriteUnraisable(self->ready_cb);
        return 1;
    }
    return !ok;
}

PyObject *app_set_health(ServerObject *self, PyObject *args)
{
    PyObject *health, *ready, *cb;
    if (!PyArg_ParseTuple(args, "UUO", &health, &ready, &cb))
        return NULL;
    if (self->server != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_health() must come before listen()");
        return NULL;
    }
    if (cb != Py_None && !PyCallable_Check(cb)) {
        PyErr_SetString(PyExc_TypeError, "set_health(): ready must be a callable or None");
        return NULL;
    }
    PyObject *hb = PyUnicode_AsUTF8String(health);
    PyObject *rb = hb ? PyUnicode_AsUTF8String(ready) : NULL;
    PyObject *paths = rb ? PyTuple_Pack(2, hb, rb) : NULL;
    Py_XDECREF(hb);
    Py_XDECREF(rb);
    if (paths == NULL)
        return NULL;
    for (int i = 0; i < 2; i++) {
        PyObject *b = PyTuple_GET_ITEM(paths, i);
        if (PyBytes_GET_SIZE(b) < 1 || PyBytes_AS_STRING(b)[0] != '/') {
            Py_DECREF(paths);
            PyErr_SetString(PyExc_ValueError, "probe paths must start with '/'");
            return NULL;
        }
    }
    Py_XSETREF(self->health_paths, paths);
    Py_XSETREF(self->ready_cb, cb == Py_None ? NULL : Py_NewRef(cb));
    PyObject *hp = PyTuple_GET_ITEM(paths, 0), *rp = PyTuple_GET_ITEM(paths, 1);
    self->cfg.health_path = PyBytes_AS_STRING(hp);
    self->cfg.health_path_len = (size_t)PyBytes_GET_SIZE(hp);
    self->cfg.ready_path = PyBytes_AS_STRING(rp);
    self->cfg.ready_path_len = (size_t)PyBytes_GET_SIZE(rp);
    self->cfg.ready_check = self->ready_cb ? app_ready_check : NULL;
    self->cfg.ready_ctx = self;
    Py_RETURN_NONE;
}

void app_health_release(ServerObject *self)
{
    self->cfg.health_path = self->cfg.ready_path = NULL;
    self->cfg.ready_check = NULL;
    Py_CLEAR(self->health_paths);
    Py_CLEAR(self->ready_cb);
}
