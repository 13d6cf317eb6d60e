/*
 * File-descriptor watching: add_reader / remove_reader / add_writer / remove_writer, one
 * uv_poll_t per watched fd.
 *
 * A watcher (FdWatcher, an internal Python object so that the GC sees its handles) embeds
 * its uv_poll_t. Ownership: the loop's fd dict holds one reference while the fd is watched;
 * the watcher holds one reference to itself from uv_poll_init until its close callback
 * (libuv may touch the handle until then). When both the reader and the writer are gone the
 * watcher is closed at once: uv_close() on a poll handle deregisters the fd from epoll
 * immediately, so the caller may close the fd right after remove_reader()/remove_writer().
 *
 * Events follow asyncio's selector loop: a readable/writable fd puts its handle on the ready
 * queue (it runs in the same iteration, after what was already ready); a poll error makes
 * both handles ready so that their next I/O call reports the error.
 *
 * Like asyncio's selector loop (_ensure_fd_no_transport), watching or unwatching the socket
 * of an open stream transport is refused with RuntimeError: the transport reads and writes
 * that socket itself. A transport runs on a duplicate of its socket's fd, so pyloop/_streams.py
 * registers the caller's fd (loop->transport_fds holds a weak reference to the transport, so
 * the map never keeps one alive; a dead or closing transport's entry no longer refuses).
 */
#include "loop/loop_internal.h"

typedef struct {
    /* clang-format off */
    PyObject_HEAD
    uv_poll_t poll;
    /* clang-format on */
    PyLoopObject *loop;
    PyLoopHandleObject *reader;
    PyLoopHandleObject *writer;
    int fd;
    int active; /* uv_poll_init succeeded and uv_close was not called yet */
} PyLoopFdWatcherObject;

static PyTypeObject PyLoopFdWatcher_Type;

static int watcher_traverse(PyLoopFdWatcherObject *w, visitproc visit, void *arg)
{
    Py_VISIT(w->loop);
    Py_VISIT(w->reader);
    Py_VISIT(w->writer);
    return 0;
}

static int watcher_clear(PyLoopFdWatcherObject *w)
{
    Py_CLEAR(w->reader);
    Py_CLEAR(w->writer);
    Py_CLEAR(w->loop);
    return 0;
}

static void watcher_dealloc(PyLoopFdWatcherObject *w)
{
    PyObject_GC_UnTrack(w);
    watcher_clear(w);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyTypeObject PyLoopFdWatcher_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core._FdWatcher",
    .tp_basicsize = sizeof(PyLoopFdWatcherObject),
    .tp_dealloc = (destructor)watcher_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)watcher_traverse,
    .tp_clear = (inquiry)watcher_clear,
};

static void on_watcher_close(uv_handle_t *handle)
{
    PyLoopFdWatcherObject *w = handle->data;

    /* Close callbacks run after the check phase, with the GIL held. */
    Py_DECREF(w); /* pairs with the INCREF after uv_poll_init in watcher_get */
}

/* Closes the poll handle and forgets the watcher; the caller holds a reference to w. */
static int watcher_close(PyLoopObject *loop, PyLoopFdWatcherObject *w)
{
    PyObject *key;
    int rc = 0;

    if (w->active) {
        w->active = 0;
        uv_close((uv_handle_t *)&w->poll, on_watcher_close);
    }
    if (loop->fd_watchers != NULL) {
        key = PyLong_FromLong(w->fd);
        if (key == NULL)
            return -1;
        if (PyDict_GetItemWithError(loop->fd_watchers, key) == (PyObject *)w)
            rc = PyDict_DelItem(loop->fd_watchers, key);
        else if (PyErr_Occurred())
            rc = -1;
        Py_DECREF(key);
    }
    return rc;
}

static int watcher_update(PyLoopObject *loop, PyLoopFdWatcherObject *w);

static void on_poll(uv_poll_t *handle, int status, int events)
{
    PyLoopFdWatcherObject *w = handle->data;
    PyLoopObject *loop = w->loop;

    pyloop_enter(loop);
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE;
    /* A cancelled handle unregisters itself on its next event (asyncio does the same);
     * otherwise the level-triggered poll would report the fd on every iteration. */
    if ((w->reader != NULL && w->reader->cancelled) ||
        (w->writer != NULL && w->writer->cancelled)) {
        PyLoopHandleObject *r = NULL, *wr = NULL;
        Py_INCREF(w); /* keep the watcher while it may leave the fd dict */
        if (w->reader != NULL && w->reader->cancelled) {
            r = w->reader;
            w->reader = NULL;
        }
        if (w->writer != NULL && w->writer->cancelled) {
            wr = w->writer;
            w->writer = NULL;
        }
        if (watcher_update(loop, w) < 0)
            pyloop_report_exception(loop, "cannot update fd watcher");
        Py_XDECREF(r);
        Py_XDECREF(wr);
        if (!w->active) {
            Py_DECREF(w);
            return;
        }
        Py_DECREF(w);
    }
    if ((events & UV_READABLE) && w->reader != NULL) {
        Py_INCREF(w->reader); /* the ready queue's reference, dropped after it runs */
        if (loop_ready_push(loop, w->reader) < 0) {
            Py_DECREF(w->reader);
            pyloop_report_exception(loop, "cannot queue reader callback");
        }
    }
    if ((events & UV_WRITABLE) && w->writer != NULL) {
        Py_INCREF(w->writer); /* the ready queue's reference, dropped after it runs */
        if (loop_ready_push(loop, w->writer) < 0) {
            Py_DECREF(w->writer);
            pyloop_report_exception(loop, "cannot queue writer callback");
        }
    }
}

static int watcher_update(PyLoopObject *loop, PyLoopFdWatcherObject *w)
{
    int events = 0, rc;

    if (w->reader != NULL)
        events |= UV_READABLE;
    if (w->writer != NULL)
        events |= UV_WRITABLE;
    if (events == 0)
        return watcher_close(loop, w);
    rc = uv_poll_start(&w->poll, events, on_poll);
    if (rc < 0) {
        errno = -rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Returns a new reference to the fd's watcher, creating it when create is set; NULL with no
 * exception when absent and not created. */
static PyLoopFdWatcherObject *watcher_get(PyLoopObject *loop, int fd, int create)
{
    PyObject *key = NULL;
    PyLoopFdWatcherObject *w = NULL;
    int rc;

    if (loop->fd_watchers == NULL) {
        if (!create)
            return NULL;
        loop->fd_watchers = PyDict_New();
        if (loop->fd_watchers == NULL)
            return NULL;
    }
    key = PyLong_FromLong(fd);
    if (key == NULL)
        return NULL;
    w = (PyLoopFdWatcherObject *)PyDict_GetItemWithError(loop->fd_watchers, key);
    if (w != NULL || PyErr_Occurred() || !create) {
        Py_XINCREF(w);
        goto done;
    }
    w = PyObject_GC_New(PyLoopFdWatcherObject, &PyLoopFdWatcher_Type);
    if (w == NULL)
        goto done;
    Py_INCREF(loop);
    w->loop = loop;
    w->reader = w->writer = NULL;
    w->fd = fd;
    w->active = 0;
    PyObject_GC_Track(w);
    rc = uv_poll_init_socket(&loop->nat->uvl, &w->poll, fd);
    if (rc < 0) {
        errno = -rc;
        PyErr_SetFromErrno(PyExc_OSError);
        Py_CLEAR(w);
        goto done;
    }
    w->poll.data = w;
    w->active = 1;
    Py_INCREF(w); /* held by the poll handle; released in on_watcher_close */
    if (PyDict_SetItem(loop->fd_watchers, key, (PyObject *)w) < 0) {
        watcher_close(loop, w);
        Py_CLEAR(w);
    }
done:
    Py_DECREF(key);
    return w;
}

/* asyncio's selectors._fileobj_to_fd: an int, or an object with fileno(). */
static int fileobj_to_fd(PyObject *obj)
{
    long fd;

    if (PyLong_Check(obj)) {
        fd = PyLong_AsLong(obj);
    } else {
        PyObject *r = PyObject_CallMethod(obj, "fileno", NULL);
        if (r == NULL) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "Invalid file object: %R", obj);
            }
            return -1;
        }
        fd = PyLong_AsLong(r);
        Py_DECREF(r);
    }
    if (fd == -1 && PyErr_Occurred())
        return -1;
    if (fd < 0 || fd > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", fd);
        return -1;
    }
    return (int)fd;
}

/* _register_transport_fd(fd, transport): fd is the socket a stream transport was made from. */
PyObject *loop_register_transport_fd(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *ref;
    int rc;

    if (nargs != 2 || !PyLong_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "_register_transport_fd(fd, transport)");
        return NULL;
    }
    if (self->transport_fds == NULL) {
        self->transport_fds = PyDict_New();
        if (self->transport_fds == NULL)
            return NULL;
    }
    ref = PyWeakref_NewRef(args[1], NULL);
    if (ref == NULL)
        return NULL;
    rc = PyDict_SetItem(self->transport_fds, args[0], ref);
    Py_DECREF(ref);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Returns 0 when fd is not the socket of an open stream transport, -1 with RuntimeError
 * when it is (or with another exception). */
static int check_no_transport(PyLoopObject *self, int fd, PyObject *fileobj)
{
    PyObject *key, *ref, *transport, *closing;
    int is_closing, rc = 0;

    if (self->transport_fds == NULL || PyDict_GET_SIZE(self->transport_fds) == 0)
        return 0;
    key = PyLong_FromLong(fd);
    if (key == NULL)
        return -1;
    ref = PyDict_GetItemWithError(self->transport_fds, key); /* borrowed */
    if (ref == NULL) {
        rc = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
#if PY_VERSION_HEX >= 0x030D0000
    /* PyWeakref_GetObject is deprecated from 3.13: GetRef gives a strong reference, or 0
     * once the transport is gone. */
    int alive = PyWeakref_GetRef(ref, &transport);
    if (alive < 0) {
        rc = -1;
        goto done;
    }
    if (alive == 0) {
        rc = PyDict_DelItem(self->transport_fds, key);
        goto done;
    }
#else
    transport = PyWeakref_GetObject(ref); /* borrowed; None once the transport is gone */
    if (transport == NULL) {
        rc = -1;
        goto done;
    }
    if (transport == Py_None) {
        rc = PyDict_DelItem(self->transport_fds, key);
        goto done;
    }
    Py_INCREF(transport);
#endif
    if (Py_TYPE(transport) == loop_stream_type) {
        is_closing = ((PyLoopStreamObject *)transport)->closing;
    } else {
        closing = PyObject_CallMethod(transport, "is_closing", NULL);
        is_closing = closing == NULL ? -1 : PyObject_IsTrue(closing);
        Py_XDECREF(closing);
    }
    if (is_closing < 0) {
        rc = -1;
    } else if (!is_closing) {
        PyErr_Format(PyExc_RuntimeError, "File descriptor %R is used by transport %R", fileobj,
                     transport);
        rc = -1;
    }
    Py_DECREF(transport);
done:
    Py_DECREF(key);
    return rc;
}

static PyObject *add_watch(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames, int writer, const char *fname)
{
    PyLoopFdWatcherObject *w;
    PyLoopHandleObject *h, *old;
    int fd;

    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", fname);
        return NULL;
    }
    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError, "%s() needs a file object and a callback", fname);
        return NULL;
    }
    if (loop_check_open(self) < 0)
        return NULL;
    fd = fileobj_to_fd(args[0]);
    if (fd < 0 || check_no_transport(self, fd, args[0]) < 0)
        return NULL;
    h = loop_handle_new(self, &PyLoopHandle_Type, args[1], args + 2, nargs - 2, NULL);
    if (h == NULL)
        return NULL;
    w = watcher_get(self, fd, 1);
    if (w == NULL) {
        Py_DECREF(h);
        return NULL;
    }
    if (writer) {
        old = w->writer;
        w->writer = h;
    } else {
        old = w->reader;
        w->reader = h;
    }
    Py_INCREF(h); /* the watcher's reference; the other one is returned */
    if (watcher_update(self, w) < 0) {
        if (writer)
            w->writer = old;
        else
            w->reader = old;
        Py_DECREF(h);
        Py_DECREF(h);
        if (w->reader == NULL && w->writer == NULL)
            watcher_close(self, w);
        Py_DECREF(w);
        return NULL;
    }
    Py_DECREF(w);
    if (old != NULL) {
        /* Replaced handles are cancelled, like asyncio's selector loop does. */
        old->cancelled = 1;
        Py_DECREF(old);
    }
    return (PyObject *)h;
}

static PyObject *remove_watch(PyLoopObject *self, PyObject *fileobj, int writer)
{
    PyLoopFdWatcherObject *w;
    PyLoopHandleObject *old;
    int fd;

    if (self->closed || self->nat == NULL)
        Py_RETURN_FALSE;
    fd = fileobj_to_fd(fileobj);
    if (fd < 0 || check_no_transport(self, fd, fileobj) < 0)
        return NULL;
    w = watcher_get(self, fd, 0);
    if (w == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_FALSE;
    }
    if (writer) {
        old = w->writer;
        w->writer = NULL;
    } else {
        old = w->reader;
        w->reader = NULL;
    }
    if (watcher_update(self, w) < 0) {
        Py_XDECREF(old);
        Py_DECREF(w);
        return NULL;
    }
    Py_DECREF(w);
    if (old == NULL)
        Py_RETURN_FALSE;
    old->cancelled = 1;
    Py_DECREF(old);
    Py_RETURN_TRUE;
}

PyObject *loop_add_reader(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    return add_watch(self, args, nargs, kwnames, 0, "add_reader");
}

PyObject *loop_add_writer(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    return add_watch(self, args, nargs, kwnames, 1, "add_writer");
}

PyObject *loop_remove_reader(PyLoopObject *self, PyObject *fileobj)
{
    return remove_watch(self, fileobj, 0);
}

PyObject *loop_remove_writer(PyLoopObject *self, PyObject *fileobj)
{
    return remove_watch(self, fileobj, 1);
}

/* Closes every watcher (loop.close()); their close callbacks run in the loop's final
 * iterations inside loop_native_close. */
void loop_poll_close_all(PyLoopObject *loop)
{
    PyObject *watchers = loop->fd_watchers;
    PyObject *key, *value;
    Py_ssize_t pos = 0;

    if (watchers == NULL)
        return;
    loop->fd_watchers = NULL;
    while (PyDict_Next(watchers, &pos, &key, &value)) {
        PyLoopFdWatcherObject *w = (PyLoopFdWatcherObject *)value;
        if (w->active) {
            w->active = 0;
            uv_close((uv_handle_t *)&w->poll, on_watcher_close);
        }
    }
    Py_DECREF(watchers);
}

int loop_poll_init(PyObject *module)
{
    (void)module;
    return PyType_Ready(&PyLoopFdWatcher_Type);
}
