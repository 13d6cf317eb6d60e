/*
 * The loop's light awaitable, `_core._Waiter`: what a native component hands to a coroutine
 * that waits for one value the component produces later (a WebSocket session's next
 * message, app/websocket.c). It does the job of a Future from loop.create_future() for the
 * one coroutine that awaits it, in 72 bytes instead of the native Future's 336 (padded to
 * asyncio's Task layout, task.h), the 40-byte iterator its __await__ returns and the 72-byte
 * bound wakeup a Task registers as its done callback: the waiter is its own iterator, and a
 * native Task that awaits it is recorded in it directly (task.c: handle_yield) and pushed
 * back on the ready queue when the value arrives, with no callback object. Memory per idle
 * connection is what this is for: a session waits in one of these for as long as it is idle.
 *
 * Any other Task (asyncio's own, a custom task factory's) sees the part of the Future
 * protocol a Task uses (asyncio/tasks.py __step and __wakeup): _asyncio_future_blocking,
 * get_loop(), add_done_callback(fn, context=), remove_done_callback(), result(),
 * exception(), cancel(msg), done() and cancelled(). One coroutine awaits a waiter, so it
 * keeps one callback. From Python, `_Waiter(loop)` makes one and set_result(value) or
 * set_exception(exc) resolves it (InvalidStateError when it is not pending), which is how
 * tests drive it.
 *
 * Ownership: the waiter owns its loop, the waiting Task or the callback with its context
 * (handed to the ready queue when the waiter is resolved or cancelled), and its result or
 * cancel message.
 */
#include "loop/task.h"

enum { WAITER_PENDING = 0, WAITER_DONE = 1, WAITER_CANCELLED = 2, WAITER_FAILED = 3 };

typedef struct {
    /* clang-format off */
    PyObject_HEAD
    PyLoopObject *loop;
    /* clang-format on */
    PyObject *wake;  /* the native Task waiting, or a foreign Task's done callback; or NULL */
    PyObject *ctx;   /* the callback's context (NULL with a native Task) */
    PyObject *value; /* the result, or the exception once failed, or the cancel message (or
                        NULL) once cancelled */
    unsigned char state;
    unsigned char blocking; /* _asyncio_future_blocking: yielded to a Task not yet waiting */
} LoopWaiterObject;

PyTypeObject *loop_waiter_type;

#define WAITER(o) ((LoopWaiterObject *)(o))

PyObject *pyloop_waiter_new(PyObject *loop)
{
    LoopWaiterObject *w;

    if (!pyloop_check(loop)) {
        PyErr_Format(PyExc_TypeError, "a waiter needs a PyLoop, not %.100s",
                     Py_TYPE(loop)->tp_name);
        return NULL;
    }
    w = PyObject_GC_New(LoopWaiterObject, loop_waiter_type);
    if (w == NULL)
        return NULL;
    w->loop = (PyLoopObject *)Py_NewRef(loop);
    w->wake = w->ctx = w->value = NULL;
    w->state = WAITER_PENDING;
    w->blocking = 0;
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

int pyloop_waiter_pending(PyObject *w)
{
    return WAITER(w)->state == WAITER_PENDING;
}

/* Queues the wakeup of whoever waits (a native Task's step, or the callback called with the
 * waiter, as Future.__schedule_callbacks does) and lets go of it. */
static int waiter_wake(LoopWaiterObject *w)
{
    PyObject *wake = w->wake, *ctx = w->ctx;
    int rc;

    w->wake = w->ctx = NULL;
    if (wake == NULL)
        return 0;
    if (ctx == NULL)
        rc = task_schedule_step(wake, NULL);
    else
        rc = loop_schedule_callback(w->loop, wake, (PyObject *)w, ctx);
    Py_DECREF(wake);
    Py_XDECREF(ctx);
    return rc;
}

int pyloop_waiter_set_result(PyObject *self, PyObject *value)
{
    LoopWaiterObject *w = WAITER(self);

    if (w->state != WAITER_PENDING)
        return 0;
    w->state = WAITER_DONE;
    w->value = Py_NewRef(value);
    return waiter_wake(w) < 0 ? -1 : 1;
}

int pyloop_waiter_set_exception(PyObject *self, PyObject *exc)
{
    LoopWaiterObject *w = WAITER(self);

    if (w->state != WAITER_PENDING)
        return 0;
    w->state = WAITER_FAILED;
    w->value = Py_NewRef(exc);
    return waiter_wake(w) < 0 ? -1 : 1;
}

PyObject *loop_waiter_cancel(PyObject *self, PyObject *msg)
{
    LoopWaiterObject *w = WAITER(self);

    if (w->state != WAITER_PENDING)
        Py_RETURN_FALSE;
    w->state = WAITER_CANCELLED;
    w->value = msg != Py_None ? Py_XNewRef(msg) : NULL;
    if (waiter_wake(w) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

int loop_waiter_attach(PyObject *self, PyObject *task)
{
    LoopWaiterObject *w = WAITER(self);

    if (w->wake != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "another task already awaits this waiter");
        return -1;
    }
    w->blocking = 0;
    if (w->state != WAITER_PENDING)
        return task_schedule_step(task, NULL);
    w->wake = Py_NewRef(task); /* released by waiter_wake or waiter_clear */
    return 0;
}

PyLoopObject *loop_waiter_loop(PyObject *self)
{
    return WAITER(self)->loop;
}

/* The outcome: a new reference to the result, or NULL with CancelledError (its message) or
 * InvalidStateError while pending. */
static PyObject *waiter_outcome(LoopWaiterObject *w)
{
    if (w->state == WAITER_DONE)
        return Py_NewRef(w->value);
    if (w->state == WAITER_FAILED) {
        PyErr_SetObject((PyObject *)Py_TYPE(w->value), w->value);
        return NULL;
    }
    if (w->state == WAITER_CANCELLED) {
        if (w->value != NULL)
            PyErr_SetObject(task_cancelled_error, w->value);
        else
            PyErr_SetNone(task_cancelled_error);
        return NULL;
    }
    PyErr_SetString(task_invalid_state, "Result is not set.");
    return NULL;
}

/* await: `if pending: blocking = True; yield self` then `return result()` (what
 * Future.__await__ does), with the waiter as its own iterator. */
static PySendResult waiter_send(PyObject *self, PyObject *arg, PyObject **out)
{
    LoopWaiterObject *w = WAITER(self);

    (void)arg;
    *out = NULL;
    if (w->state == WAITER_PENDING) {
        if (w->blocking || w->wake != NULL) {
            PyErr_SetString(PyExc_RuntimeError, "await wasn't used with future");
            return PYGEN_ERROR;
        }
        w->blocking = 1;
        *out = Py_NewRef(self);
        return PYGEN_NEXT;
    }
    *out = waiter_outcome(w);
    return *out != NULL ? PYGEN_RETURN : PYGEN_ERROR;
}

static PyObject *waiter_next(PyObject *self)
{
    PyObject *out, *stop;
    PySendResult r = waiter_send(self, Py_None, &out);

    if (r != PYGEN_RETURN)
        return r == PYGEN_NEXT ? out : NULL;
    /* StopIteration(value) as an instance: a tuple value must not be unpacked. */
    stop = PyObject_CallOneArg(PyExc_StopIteration, out);
    Py_DECREF(out);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyObject *waiter_send_m(PyObject *self, PyObject *arg)
{
    (void)arg;
    return waiter_next(self);
}

/* The coroutine stops awaiting (an exception thrown in at the await, or closed): a pending
 * waiter is abandoned as if cancelled, so that its producer keeps the value for the next
 * one instead of handing it to nobody. */
static void waiter_abandon(LoopWaiterObject *w)
{
    if (w->state == WAITER_PENDING)
        w->state = WAITER_CANCELLED;
    w->blocking = 0;
    Py_CLEAR(w->wake);
    Py_CLEAR(w->ctx);
}

/* throw(exc) / throw(type[, value[, tb]]): raised at the await, as asyncio's iterator. */
static PyObject *waiter_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *type, *val, *tb, *exc;

    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return NULL;
    }
    waiter_abandon(WAITER(self));
    type = args[0];
    val = nargs > 1 && args[1] != Py_None ? args[1] : NULL;
    tb = nargs > 2 && args[2] != Py_None ? args[2] : NULL;
    if (tb != NULL && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError, "throw() third argument must be a traceback");
        return NULL;
    }
    if (PyExceptionInstance_Check(type)) {
        if (val != NULL) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            return NULL;
        }
        exc = Py_NewRef(type);
    } else if (PyExceptionClass_Check(type)) {
        exc = val != NULL && PyExceptionInstance_Check(val)
                  ? Py_NewRef(val)
                  : (val != NULL ? PyObject_CallOneArg(type, val) : PyObject_CallNoArgs(type));
        if (exc == NULL)
            return NULL;
    } else {
        PyErr_Format(PyExc_TypeError,
                     "exceptions must be classes deriving BaseException or instances of such a "
                     "class, not %s",
                     Py_TYPE(type)->tp_name);
        return NULL;
    }
    if (tb != NULL)
        PyException_SetTraceback(exc, tb);
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *waiter_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    waiter_abandon(WAITER(self));
    Py_RETURN_NONE;
}

/* ---- the Future protocol, for Tasks other than the native one ---- */

static PyObject *waiter_get_loop(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef((PyObject *)WAITER(self)->loop);
}

static PyObject *waiter_add_done_callback(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"", "context", NULL};
    LoopWaiterObject *w = WAITER(self);
    PyObject *fn, *ctx = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$O:add_done_callback", names, &fn, &ctx))
        return NULL;
    if (w->wake != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a waiter takes one done callback");
        return NULL;
    }
    ctx = ctx == NULL || ctx == Py_None ? PyContext_CopyCurrent() : Py_NewRef(ctx);
    if (ctx == NULL)
        return NULL;
    w->wake = Py_NewRef(fn); /* released by waiter_wake, waiter_abandon or waiter_clear */
    w->ctx = ctx;
    if (w->state != WAITER_PENDING && waiter_wake(w) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *waiter_remove_done_callback(PyObject *self, PyObject *fn)
{
    LoopWaiterObject *w = WAITER(self);
    int eq;

    if (w->wake == NULL || w->ctx == NULL)
        return PyLong_FromLong(0);
    eq = PyObject_RichCompareBool(w->wake, fn, Py_EQ);
    if (eq < 0)
        return NULL;
    if (eq) {
        Py_CLEAR(w->wake);
        Py_CLEAR(w->ctx);
    }
    return PyLong_FromLong(eq);
}

static PyObject *waiter_set_result_m(PyObject *self, PyObject *value)
{
    int r = pyloop_waiter_set_result(self, value);

    if (r == 0)
        PyErr_SetString(task_invalid_state, "invalid state");
    return r > 0 ? Py_NewRef(Py_None) : NULL;
}

static PyObject *waiter_set_exception_m(PyObject *self, PyObject *exc)
{
    int r;

    if (!PyExceptionInstance_Check(exc)) {
        PyErr_SetString(PyExc_TypeError, "set_exception() takes an exception instance");
        return NULL;
    }
    r = pyloop_waiter_set_exception(self, exc);
    if (r == 0)
        PyErr_SetString(task_invalid_state, "invalid state");
    return r > 0 ? Py_NewRef(Py_None) : NULL;
}

static PyObject *waiter_result(PyObject *self, PyObject *unused)
{
    (void)unused;
    return waiter_outcome(WAITER(self));
}

static PyObject *waiter_exception(PyObject *self, PyObject *unused)
{
    LoopWaiterObject *w = WAITER(self);

    (void)unused;
    if (w->state == WAITER_DONE)
        Py_RETURN_NONE;
    if (w->state == WAITER_FAILED)
        return Py_NewRef(w->value);
    return waiter_outcome(w);
}

static PyObject *waiter_cancel_m(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"msg", NULL};
    PyObject *msg = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:cancel", names, &msg))
        return NULL;
    return loop_waiter_cancel(self, msg);
}

static PyObject *waiter_done(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(WAITER(self)->state != WAITER_PENDING);
}

static PyObject *waiter_cancelled(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(WAITER(self)->state == WAITER_CANCELLED);
}

static PyObject *waiter_get_blocking(PyObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(WAITER(self)->blocking);
}

static int waiter_set_blocking(PyObject *self, PyObject *value, void *closure)
{
    int b;

    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
        return -1;
    }
    b = PyObject_IsTrue(value);
    if (b < 0)
        return -1;
    WAITER(self)->blocking = (unsigned char)b;
    return 0;
}

static PyObject *waiter_new_py(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyObject *loop;

    (void)type;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:_Waiter", (char *[]){"loop", NULL}, &loop))
        return NULL;
    return pyloop_waiter_new(loop);
}

static PyObject *waiter_await(PyObject *self)
{
    return Py_NewRef(self);
}

static PyObject *waiter_repr(PyObject *self)
{
    static const char *const states[] = {"pending", "finished", "cancelled", "finished"};
    return PyUnicode_FromFormat("<_Waiter %s>", states[WAITER(self)->state]);
}

static int waiter_traverse(PyObject *self, visitproc visit, void *arg)
{
    LoopWaiterObject *w = WAITER(self);

    Py_VISIT(Py_TYPE(self));
    Py_VISIT(w->loop);
    Py_VISIT(w->wake);
    Py_VISIT(w->ctx);
    Py_VISIT(w->value);
    return 0;
}

static int waiter_clear(PyObject *self)
{
    LoopWaiterObject *w = WAITER(self);

    Py_CLEAR(w->loop);
    Py_CLEAR(w->wake);
    Py_CLEAR(w->ctx);
    Py_CLEAR(w->value);
    return 0;
}

static void waiter_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    waiter_clear(self);
    PyObject_GC_Del(self);
    Py_DECREF(tp);
}

static PyMethodDef waiter_methods[] = {
    {"send", (PyCFunction)waiter_send_m, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))waiter_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)waiter_close, METH_NOARGS, NULL},
    {"get_loop", (PyCFunction)waiter_get_loop, METH_NOARGS, NULL},
    {"add_done_callback", (PyCFunction)(void (*)(void))waiter_add_done_callback,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"remove_done_callback", (PyCFunction)waiter_remove_done_callback, METH_O, NULL},
    {"set_result", (PyCFunction)waiter_set_result_m, METH_O, NULL},
    {"set_exception", (PyCFunction)waiter_set_exception_m, METH_O, NULL},
    {"result", (PyCFunction)waiter_result, METH_NOARGS, NULL},
    {"exception", (PyCFunction)waiter_exception, METH_NOARGS, NULL},
    {"cancel", (PyCFunction)(void (*)(void))waiter_cancel_m, METH_VARARGS | METH_KEYWORDS, NULL},
    {"done", (PyCFunction)waiter_done, METH_NOARGS, NULL},
    {"cancelled", (PyCFunction)waiter_cancelled, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef waiter_getset[] = {
    {"_asyncio_future_blocking", waiter_get_blocking, waiter_set_blocking, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot waiter_slots[] = {
    {Py_am_await, waiter_await},
    {Py_am_send, waiter_send},
    {Py_tp_iter, waiter_await},
    {Py_tp_iternext, waiter_next},
    {Py_tp_repr, waiter_repr},
    {Py_tp_new, waiter_new_py},
    {Py_tp_methods, waiter_methods},
    {Py_tp_getset, waiter_getset},
    {Py_tp_traverse, waiter_traverse},
    {Py_tp_clear, waiter_clear},
    {Py_tp_dealloc, waiter_dealloc},
    {Py_tp_doc, "What a native component's coroutine waits on for one value (loop/waiter.c)."},
    {0, NULL},
};

static PyType_Spec waiter_spec = {
    .name = "data_bridge._core._Waiter",
    .basicsize = sizeof(LoopWaiterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = waiter_slots,
};

int loop_waiter_init(PyObject *module)
{
    loop_waiter_type = (PyTypeObject *)PyType_FromSpec(&waiter_spec);
    if (loop_waiter_type == NULL)
        return -1;
    /* The module-global reference stays for the process. */
    return PyModule_AddObjectRef(module, "_Waiter", (PyObject *)loop_waiter_type);
}
