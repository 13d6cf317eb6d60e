/*
 * Server.set_metrics(buffer, slot, path): the Python end of the server's metrics
 * (server/metrics.c). The buffer is shared memory the serving code maps before forking
 * (an mmap.mmap of SERVER_METRICS_SLOT_SIZE bytes per slot); this process counts into
 * slot `slot`, and a GET of `path` answers the sum of every slot.
 *
 * Ownership: the ServerObject holds the buffer (metrics_view, released in dealloc, after
 * the native server is gone) and the path (metrics_path, bytes) the configuration points
 * into.
 */
#include "app/app_internal.h"

PyObject *app_set_metrics(ServerObject *self, PyObject *args)
{
    PyObject *buffer;
    Py_ssize_t slot;
    PyObject *path;
    if (!PyArg_ParseTuple(args, "OnU", &buffer, &slot, &path))
        return NULL;
    if (self->server != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_metrics() must come before listen()");
        return NULL;
    }
    Py_ssize_t plen;
    const char *p = PyUnicode_AsUTF8AndSize(path, &plen);
    if (p == NULL)
        return NULL;
    if (plen < 1 || p[0] != '/') {
        PyErr_SetString(PyExc_ValueError, "the metrics path must start with '/'");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    size_t slots = (size_t)view.len / SERVER_METRICS_SLOT_SIZE;
    /* mmap pages are page-aligned; the counters need 8-byte alignment for atomic adds. */
    if (slot < 0 || (size_t)slot >= slots || ((uintptr_t)view.buf & 7) != 0) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "metrics slot %zd is not in a buffer of %zu slots", slot,
                     slots);
        return NULL;
    }
    PyObject *pb = PyBytes_FromStringAndSize(p, plen);
    if (pb == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    /* The route label of each route added so far (all of them: routes are added before
     * serving), by metrics id; id 0 is no route. */
    size_t nroutes =
        self->nplans + 1 < SERVER_METRICS_ROUTES ? self->nplans + 1 : SERVER_METRICS_ROUTES;
    const char **names = PyMem_Calloc(nroutes, sizeof(*names));
    if (names == NULL) {
        Py_DECREF(pb);
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    for (size_t i = 1; i < nroutes; i++) {
        names[i] = PyUnicode_AsUTF8(self->plans[i - 1]->path);
        if (names[i] == NULL) {
            PyMem_Free(names);
            Py_DECREF(pb);
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    PyMem_Free(self->metrics_routes);
    self->metrics_routes = names;
    self->cfg.metrics_routes = names;
    self->cfg.metrics_nroutes = nroutes;
    if (self->metrics_held)
        PyBuffer_Release(&self->metrics_view);
    self->metrics_view = view;
    self->metrics_held = 1;
    Py_XSETREF(self->metrics_path, pb);
    self->cfg.metrics = view.buf;
    self->cfg.metrics_slots = slots;
    self->cfg.metrics_slot = (size_t)slot;
    self->cfg.metrics_path = PyBytes_AS_STRING(pb);
    self->cfg.metrics_path_len = (size_t)plen;
    Py_RETURN_NONE;
}

void app_metrics_release(ServerObject *self)
{
    self->cfg.metrics = NULL;
    if (self->metrics_held) {
        self->metrics_held = 0;
        PyBuffer_Release(&self->metrics_view);
    }
    Py_CLEAR(self->metrics_path);
    PyMem_Free(self->metrics_routes);
    self->metrics_routes = NULL;
    self->cfg.metrics_routes = NULL;
    self->cfg.metrics_nroutes = 0;
}
