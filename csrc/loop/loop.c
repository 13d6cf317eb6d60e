/*
 * The PyLoop type (data_bridge._core.Loop): object lifetime, the small methods, the contract
 * functions of loop.h used by other components, and module registration.
 *
 * The Python class data_bridge.pyloop.Loop subclasses this type (together with
 * asyncio.AbstractEventLoop) and adds the policy-level methods written in Python: run_forever
 * setup (running-loop registration, async generator hooks), run_until_complete, tasks,
 * executors and exception handlers. Everything on the per-callback path is here, in C.
 *
 * Ownership: the loop owns its ready queue, its timer heap and (through loop_native_t) the
 * libuv loop; see loop_internal.h.
 */
#include "loop/loop_internal.h"

#include <structmember.h>

PyObject *loop_str_context;
PyObject *loop_str_call_exception_handler;

double loop_now(void)
{
    /* uv_hrtime() reads CLOCK_MONOTONIC, the clock behind time.monotonic(), which is what
     * asyncio's loop.time() returns; nanoseconds keep sub-microsecond precision. */
    return (double)uv_hrtime() / 1e9;
}

int loop_check_open(PyLoopObject *loop)
{
    if (loop->closed || loop->nat == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    return 0;
}

/* ---- contract (loop.h) ---- */

int pyloop_check(PyObject *obj)
{
    return PyObject_TypeCheck(obj, &PyLoop_Type);
}

uv_loop_t *pyloop_uv_loop(PyObject *obj)
{
    PyLoopObject *loop = (PyLoopObject *)obj;

    return loop->nat != NULL ? &loop->nat->uvl : NULL;
}

PyLoopObject *pyloop_from_uv(uv_loop_t *uvl)
{
    return (PyLoopObject *)uvl->data;
}

void pyloop_enter(PyLoopObject *loop)
{
    PyThreadState *ts = loop->saved_tstate;

    /* Only the loop thread runs libuv callbacks, so no other thread races on saved_tstate. */
    if (ts != NULL) {
        loop->saved_tstate = NULL;
        PyEval_RestoreThread(ts);
    }
}

void pyloop_report_exception(PyLoopObject *loop, const char *message)
{
    PyObject *type = NULL, *exc = NULL, *tb = NULL;
    PyObject *ctx = NULL, *res = NULL;

    if (!PyErr_Occurred())
        return;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (tb != NULL && exc != NULL)
        PyException_SetTraceback(exc, tb);
    ctx = Py_BuildValue("{sssO}", "message", message, "exception", exc ? exc : Py_None);
    if (ctx != NULL)
        res = PyObject_CallMethodOneArg((PyObject *)loop, loop_str_call_exception_handler, ctx);
    if (res == NULL)
        PyErr_WriteUnraisable((PyObject *)loop);
    Py_XDECREF(res);
    Py_XDECREF(ctx);
    Py_XDECREF(type);
    Py_XDECREF(exc);
    Py_XDECREF(tb);
}

/* ---- object lifetime ---- */

static PyObject *loop_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyLoopObject *self;

    (void)args;
    (void)kwds;
    self = (PyLoopObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->slow_callback_duration = 0.1;
    if (loop_native_start(self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int loop_traverse(PyLoopObject *self, visitproc visit, void *arg)
{
    for (size_t i = 0; i < self->ready_len; i++)
        Py_VISIT(self->ready[(self->ready_head + i) & (self->ready_cap - 1)]);
    for (size_t i = 0; i < self->heap_len; i++)
        Py_VISIT(self->heap[i]);
    Py_VISIT(self->dict);
    Py_VISIT(self->fd_watchers);
    Py_VISIT(self->transport_fds);
    Py_VISIT(self->signal_handlers);
    Py_VISIT(self->pending_exc);
    return 0;
}

static int loop_clear(PyLoopObject *self)
{
    loop_queues_clear(self);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->transport_fds);
    Py_CLEAR(self->pending_exc);
    return 0;
}

static void loop_dealloc(PyLoopObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    loop_clear(self);
    loop_poll_close_all(self);
    loop_signals_close_all(self);
    /* A loop that was never closed still owns its libuv handles; close them now (the
     * Python class's __del__ already warned and called close() when it could). */
    if (self->nat != NULL)
        loop_native_close(self);
    /* For a Python subclass, subtype_dealloc releases the type reference after this. */
    tp->tp_free((PyObject *)self);
}

/* ---- methods ---- */

static PyObject *loop_time(PyLoopObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyFloat_FromDouble(loop_now());
}

static PyObject *loop_stop(PyLoopObject *self, PyObject *unused)
{
    (void)unused;
    self->stopping = 1;
    Py_RETURN_NONE;
}

static PyObject *loop_is_running(PyLoopObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(self->running);
}

static PyObject *loop_is_closed(PyLoopObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(self->closed);
}

static PyObject *loop_get_debug(PyLoopObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(self->debug);
}

static PyObject *loop_set_debug(PyLoopObject *self, PyObject *arg)
{
    int v = PyObject_IsTrue(arg);

    if (v < 0)
        return NULL;
    self->debug = v;
    Py_RETURN_NONE;
}

void loop_open_link_add(PyLoopObject *loop, loop_open_link_t *link,
                        void (*abandon)(loop_open_link_t *link))
{
    link->abandon = abandon;
    link->prev = NULL;
    link->next = loop->open_links;
    if (link->next != NULL)
        link->next->prev = link;
    loop->open_links = link;
}

void loop_open_link_remove(PyLoopObject *loop, loop_open_link_t *link)
{
    if (link->prev != NULL)
        link->prev->next = link->next;
    else if (loop->open_links == link)
        loop->open_links = link->next;
    if (link->next != NULL)
        link->next->prev = link->prev;
    link->next = link->prev = NULL;
}

/* Closes every resource still open. abandon() may run Python code (a warning filter) that
 * closes other resources, so the walk restarts from the head each time; abandon() unlinks
 * its resource, so the list shrinks every step. */
static void close_open_links(PyLoopObject *self)
{
    loop_open_link_t *link;

    while ((link = self->open_links) != NULL) {
        link->abandon(link);
        if (self->open_links == link) /* defensive: never loop forever on a bad abandon() */
            loop_open_link_remove(self, link);
    }
}

/* The native half of close(): the Python half checks is_running() and shuts the executor
 * down. Idempotent. */
static PyObject *loop_close_native(PyLoopObject *self, PyObject *unused)
{
    int busy;

    (void)unused;
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot close a running event loop");
        return NULL;
    }
    if (self->closed)
        Py_RETURN_NONE;
    self->closed = 1;
    loop_queues_clear(self);
    close_open_links(self);
    loop_poll_close_all(self);
    loop_signals_close_all(self);
    busy = loop_native_close(self) < 0;
    if (busy) {
        if (PyErr_WarnEx(PyExc_ResourceWarning,
                         "event loop closed with libuv handles still open; they were leaked",
                         1) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

/* create_future(): the native Future (task_api.c), allocated without argument parsing. */
static PyObject *loop_create_future(PyLoopObject *self, PyObject *unused)
{
    (void)unused;
    return loop_future_new(self);
}

/* create_task(coro, *, name=None, context=None): the native Task, or the task factory's
 * result (asyncio's BaseEventLoop.create_task, without a Python frame: a debug-mode source
 * traceback ends at the caller, as asyncio's does after dropping its own frame). */
static PyObject *str_task_factory, *str_set_name, *kwnames_context;

static PyObject *loop_create_task(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames)
{
    PyObject *coro, *name = Py_None, *context = Py_None, *factory, *task;

    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "create_task() takes 1 positional argument (%zd given)",
                     nargs);
        return NULL;
    }
    coro = args[0];
    for (Py_ssize_t i = 0; kwnames != NULL && i < PyTuple_GET_SIZE(kwnames); i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_CompareWithASCIIString(k, "name") == 0) {
            name = args[nargs + i];
        } else if (PyUnicode_CompareWithASCIIString(k, "context") == 0) {
            context = args[nargs + i];
        } else {
            PyErr_Format(PyExc_TypeError, "create_task() got an unexpected keyword argument '%U'",
                         k);
            return NULL;
        }
    }
    if (loop_check_open(self) < 0)
        return NULL;
    factory = PyObject_GetAttr((PyObject *)self, str_task_factory);
    if (factory == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear(); /* a subclass that skipped __init__: no factory */
        factory = Py_NewRef(Py_None);
    }
    if (factory == Py_None) {
        Py_DECREF(factory);
        return loop_task_new(self, coro, name, context);
    }
    {
        PyObject *call_args[3] = {(PyObject *)self, coro, context};
        task =
            PyObject_Vectorcall(factory, call_args, 2, context == Py_None ? NULL : kwnames_context);
    }
    Py_DECREF(factory);
    if (task == NULL || name == Py_None)
        return task;
    {
        PyObject *res = PyObject_CallMethodOneArg(task, str_set_name, name);
        if (res == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                Py_DECREF(task);
                return NULL;
            }
            PyErr_Clear(); /* a factory's object without set_name, as asyncio allows */
        }
        Py_XDECREF(res);
    }
    return task;
}

/* _after_fork(): in a forked child, libuv must re-create its epoll set and signal pipe
 * before the loop is used again (uv_loop_fork). */
static PyObject *loop_after_fork(PyLoopObject *self, PyObject *unused)
{
    int rc;

    (void)unused;
    if (self->nat == NULL)
        Py_RETURN_NONE;
    rc = uv_loop_fork(&self->nat->uvl);
    if (rc < 0) {
        errno = -rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *loop_ready_count(PyLoopObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(self->ready_len);
}

static PyObject *loop_timer_count(PyLoopObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(self->heap_len);
}

static PyMethodDef loop_methods[] = {
    {"time", (PyCFunction)loop_time, METH_NOARGS, "The loop's monotonic clock, in seconds."},
    {"call_soon", (PyCFunction)(void (*)(void))loop_call_soon, METH_FASTCALL | METH_KEYWORDS,
     "call_soon(callback, *args, context=None) -> Handle"},
    {"call_soon_threadsafe", (PyCFunction)(void (*)(void))loop_call_soon_threadsafe,
     METH_FASTCALL | METH_KEYWORDS, "call_soon_threadsafe(callback, *args, context=None)"},
    {"call_later", (PyCFunction)(void (*)(void))loop_call_later, METH_FASTCALL | METH_KEYWORDS,
     "call_later(delay, callback, *args, context=None) -> TimerHandle"},
    {"call_at", (PyCFunction)(void (*)(void))loop_call_at, METH_FASTCALL | METH_KEYWORDS,
     "call_at(when, callback, *args, context=None) -> TimerHandle"},
    {"_run", (PyCFunction)loop_run, METH_NOARGS, "Run iterations until stop()."},
    {"stop", (PyCFunction)loop_stop, METH_NOARGS, "Stop after the current iteration."},
    {"is_running", (PyCFunction)loop_is_running, METH_NOARGS, NULL},
    {"is_closed", (PyCFunction)loop_is_closed, METH_NOARGS, NULL},
    {"get_debug", (PyCFunction)loop_get_debug, METH_NOARGS, NULL},
    {"set_debug", (PyCFunction)loop_set_debug, METH_O, NULL},
    {"_close_native", (PyCFunction)loop_close_native, METH_NOARGS, NULL},
    {"_watch_wakeup_fd", (PyCFunction)loop_watch_wakeup_fd, METH_O, NULL},
    {"_unwatch_wakeup_fd", (PyCFunction)loop_unwatch_wakeup_fd, METH_NOARGS, NULL},
    {"add_reader", (PyCFunction)(void (*)(void))loop_add_reader, METH_FASTCALL | METH_KEYWORDS,
     "add_reader(fd, callback, *args): call callback when fd is readable."},
    {"add_writer", (PyCFunction)(void (*)(void))loop_add_writer, METH_FASTCALL | METH_KEYWORDS,
     "add_writer(fd, callback, *args): call callback when fd is writable."},
    {"remove_reader", (PyCFunction)loop_remove_reader, METH_O, "Stop watching fd for reading."},
    {"remove_writer", (PyCFunction)loop_remove_writer, METH_O, "Stop watching fd for writing."},
    {"_register_transport_fd", (PyCFunction)(void (*)(void))loop_register_transport_fd,
     METH_FASTCALL, NULL},
    {"_add_signal_watch", (PyCFunction)(void (*)(void))loop_add_signal_watch, METH_FASTCALL, NULL},
    {"_remove_signal_watch", (PyCFunction)loop_remove_signal_watch, METH_O, NULL},
    {"_stream_open", (PyCFunction)loop_stream_open, METH_VARARGS,
     "_stream_open(fd, is_pipe, family) -> transport owning fd"},
    {"_stream_listen", (PyCFunction)loop_stream_listen, METH_VARARGS,
     "_stream_listen(fd, is_pipe, family, backlog, on_accept) -> listener owning fd"},
    {"_udp_open", (PyCFunction)loop_udp_open, METH_VARARGS,
     "_udp_open(fd, family, address, sock, extra) -> datagram transport owning fd"},
    {"create_task", (PyCFunction)(void (*)(void))loop_create_task, METH_FASTCALL | METH_KEYWORDS,
     "Schedule a coroutine as a Task (the native Task unless a task factory is set)."},
    {"create_future", (PyCFunction)loop_create_future, METH_NOARGS,
     "Create an asyncio.Future attached to the loop."},
    {"_set_test_poll_delay", (PyCFunction)loop_set_test_poll_delay, METH_O, NULL},
    {"_after_fork", (PyCFunction)loop_after_fork, METH_NOARGS, NULL},
    {"_ready_count", (PyCFunction)loop_ready_count, METH_NOARGS, NULL},
    {"_timer_count", (PyCFunction)loop_timer_count, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef loop_members[] = {
    {"slow_callback_duration", T_DOUBLE, offsetof(PyLoopObject, slow_callback_duration), 0,
     "Callbacks slower than this (seconds) are logged in debug mode."},
    {NULL, 0, 0, 0, NULL},
};

static PyObject *loop_get_debug_attr(PyLoopObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->debug);
}

/* BaseEventLoop._closed and uvloop's Loop._closed: read by code that checks a loop
 * without calling is_closed() (uvloop's own test_close does). */
static PyObject *loop_get_closed_attr(PyLoopObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->closed);
}

static PyGetSetDef loop_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"_debug", (getter)loop_get_debug_attr, NULL, NULL, NULL},
    {"_closed", (getter)loop_get_closed_attr, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject PyLoop_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.Loop",
    .tp_basicsize = sizeof(PyLoopObject),
    .tp_dealloc = (destructor)loop_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Native core of the PyLoop event loop (use data_bridge.pyloop.Loop).",
    .tp_traverse = (traverseproc)loop_traverse,
    .tp_clear = (inquiry)loop_clear,
    .tp_weaklistoffset = offsetof(PyLoopObject, weakreflist),
    .tp_methods = loop_methods,
    .tp_members = loop_members,
    .tp_getset = loop_getset,
    .tp_dictoffset = offsetof(PyLoopObject, dict),
    .tp_new = loop_new,
};

int loop_module_init(PyObject *module)
{
    loop_str_context = PyUnicode_InternFromString("context");
    loop_str_call_exception_handler = PyUnicode_InternFromString("call_exception_handler");
    str_task_factory = PyUnicode_InternFromString("_task_factory");
    str_set_name = PyUnicode_InternFromString("set_name");
    kwnames_context = Py_BuildValue("(s)", "context");
    if (str_task_factory == NULL || str_set_name == NULL || kwnames_context == NULL)
        return -1;
    if (loop_str_context == NULL || loop_str_call_exception_handler == NULL)
        return -1;
    if (PyType_Ready(&PyLoop_Type) < 0)
        return -1;
    Py_INCREF(&PyLoop_Type);
    if (PyModule_AddObject(module, "Loop", (PyObject *)&PyLoop_Type) < 0) {
        Py_DECREF(&PyLoop_Type);
        return -1;
    }
    if (loop_poll_init(module) < 0 || loop_signals_init(module) < 0 ||
        loop_stream_init(module) < 0 || loop_listener_init(module) < 0 ||
        loop_udp_init(module) < 0 || loop_task_init(module) < 0 || loop_waiter_init(module) < 0)
        return -1;
    return loop_handles_init(module);
}
