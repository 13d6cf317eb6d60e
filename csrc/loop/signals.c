/*
 * Unix signal handlers on a uv_signal_t per signal (the native half of add_signal_handler /
 * remove_signal_handler; argument checks and Python's signal-module bookkeeping are in
 * pyloop/_loop.py).
 *
 * libuv delivers signals through its own self-pipe, so the handler's callback runs on the
 * loop thread inside the poll phase: it only queues the Handle, which then runs with the
 * other ready callbacks, like asyncio's _handle_signal.
 *
 * Ownership: the loop's signal dict holds one reference to each watcher; the watcher holds
 * one reference to itself from uv_signal_init until its close callback.
 */
#include "loop/loop_internal.h"

typedef struct {
    /* clang-format off */
    PyObject_HEAD
    uv_signal_t sig;
    /* clang-format on */
    PyLoopObject *loop;
    PyLoopHandleObject *handle;
    int active;
} PyLoopSignalWatcherObject;

static int sigw_traverse(PyLoopSignalWatcherObject *w, visitproc visit, void *arg)
{
    Py_VISIT(w->loop);
    Py_VISIT(w->handle);
    return 0;
}

static int sigw_clear(PyLoopSignalWatcherObject *w)
{
    Py_CLEAR(w->handle);
    Py_CLEAR(w->loop);
    return 0;
}

static void sigw_dealloc(PyLoopSignalWatcherObject *w)
{
    PyObject_GC_UnTrack(w);
    sigw_clear(w);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyTypeObject PyLoopSignalWatcher_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core._SignalWatcher",
    .tp_basicsize = sizeof(PyLoopSignalWatcherObject),
    .tp_dealloc = (destructor)sigw_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)sigw_traverse,
    .tp_clear = (inquiry)sigw_clear,
};

static void on_sigw_close(uv_handle_t *handle)
{
    Py_DECREF((PyObject *)handle->data); /* pairs with the INCREF after uv_signal_init */
}

static void sigw_close(PyLoopSignalWatcherObject *w)
{
    if (w->active) {
        w->active = 0;
        uv_close((uv_handle_t *)&w->sig, on_sigw_close);
    }
}

static void on_signal(uv_signal_t *handle, int signum)
{
    PyLoopSignalWatcherObject *w = handle->data;
    PyLoopObject *loop = w->loop;

    (void)signum;
    pyloop_enter(loop);
    if (w->handle == NULL || w->handle->cancelled)
        return;
    Py_INCREF(w->handle); /* the ready queue's reference, dropped after it runs */
    if (loop_ready_push(loop, w->handle) < 0) {
        Py_DECREF(w->handle);
        pyloop_report_exception(loop, "cannot queue signal handler");
    }
}

/* _add_signal_watch(sig, callback, *args): replaces any handler for sig. */
PyObject *loop_add_signal_watch(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyLoopSignalWatcherObject *w = NULL;
    PyObject *key = NULL, *old;
    long signum;
    int rc;

    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "_add_signal_watch(sig, callback, *args)");
        return NULL;
    }
    if (loop_check_open(self) < 0)
        return NULL;
    signum = PyLong_AsLong(args[0]);
    if (signum == -1 && PyErr_Occurred())
        return NULL;
    if (self->signal_handlers == NULL) {
        self->signal_handlers = PyDict_New();
        if (self->signal_handlers == NULL)
            return NULL;
    }
    w = PyObject_GC_New(PyLoopSignalWatcherObject, &PyLoopSignalWatcher_Type);
    if (w == NULL)
        return NULL;
    Py_INCREF(self);
    w->loop = self;
    w->active = 0;
    w->handle = loop_handle_new(self, &PyLoopHandle_Type, args[1], args + 2, nargs - 2, NULL);
    PyObject_GC_Track(w);
    if (w->handle == NULL)
        goto error;
    rc = uv_signal_init(&self->nat->uvl, &w->sig);
    if (rc < 0) {
        errno = -rc;
        PyErr_SetFromErrno(PyExc_OSError);
        goto error;
    }
    w->sig.data = w;
    w->active = 1;
    Py_INCREF(w); /* held by the signal handle; released in on_sigw_close */
    rc = uv_signal_start(&w->sig, on_signal, (int)signum);
    if (rc < 0) {
        errno = -rc;
        PyErr_SetFromErrno(PyExc_OSError);
        goto error;
    }
    /* Signal handlers do not keep the loop alive (asyncio's neither). */
    uv_unref((uv_handle_t *)&w->sig);
    key = PyLong_FromLong(signum);
    if (key == NULL)
        goto error;
    old = PyDict_GetItemWithError(self->signal_handlers, key);
    if (old == NULL && PyErr_Occurred())
        goto error;
    if (old != NULL)
        sigw_close((PyLoopSignalWatcherObject *)old);
    if (PyDict_SetItem(self->signal_handlers, key, (PyObject *)w) < 0)
        goto error;
    Py_DECREF(key);
    Py_DECREF(w);
    Py_RETURN_NONE;
error:
    Py_XDECREF(key);
    sigw_close(w);
    Py_DECREF(w);
    return NULL;
}

/* _remove_signal_watch(sig) -> bool */
PyObject *loop_remove_signal_watch(PyLoopObject *self, PyObject *sig)
{
    PyObject *w;
    int rc;

    if (self->signal_handlers == NULL)
        Py_RETURN_FALSE;
    w = PyDict_GetItemWithError(self->signal_handlers, sig);
    if (w == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_FALSE;
    }
    sigw_close((PyLoopSignalWatcherObject *)w);
    rc = PyDict_DelItem(self->signal_handlers, sig);
    if (rc < 0)
        return NULL;
    Py_RETURN_TRUE;
}

void loop_signals_close_all(PyLoopObject *loop)
{
    PyObject *handlers = loop->signal_handlers;
    PyObject *key, *value;
    Py_ssize_t pos = 0;

    if (handlers == NULL)
        return;
    loop->signal_handlers = NULL;
    while (PyDict_Next(handlers, &pos, &key, &value))
        sigw_close((PyLoopSignalWatcherObject *)value);
    Py_DECREF(handlers);
}

int loop_signals_init(PyObject *module)
{
    (void)module;
    return PyType_Ready(&PyLoopSignalWatcher_Type);
}
