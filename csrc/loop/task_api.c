/*
 * The native Task's Python face: construction, the asyncio.Future and asyncio.Task methods
 * and attributes (public and the private ones libraries read, e.g. anyio's _must_cancel and
 * _fut_waiter), the await iterator, finalization (asyncio's "Task was destroyed but it is
 * pending!" and "exception was never retrieved" reports) and the type itself.
 *
 * Every name defined by asyncio.Future or asyncio.Task is overridden here: the base's own
 * implementations would read its (zeroed) fields. tests/py/test_loop_task.py checks that
 * no name is left to the base.
 */
#include "loop/task.h"

Py_ssize_t task_fields_offset;
PyTypeObject *loop_task_type;
PyTypeObject *loop_future_type;
PyObject *task_current_tasks, *task_enter_fn, *task_leave_fn, *task_register_fn;
PyObject *task_cancelled_error, *task_invalid_state, *task_future_type;
PyObject *task_str_add_done_callback, *task_str_result, *task_str_cancel;
PyObject *task_str_blocking, *task_str_get_loop, *task_str_throw, *task_str_loop;
PyObject *task_kwnames_context, *task_kwnames_msg;
PyGetSetDef *task_fut_blocking, *task_fut_loop;
PyObject *task_fut_add_done_callback, *task_fut_result;

PyObject *task_swap_fn, *task_register_eager_fn, *task_unregister_eager_fn;
static PyObject *iscoroutine_fn;      /* asyncio.coroutines.iscoroutine */
static PyObject *task_repr_fn;        /* asyncio.base_tasks._task_repr (3.11+) */
static PyObject *task_repr_info_fn;   /* asyncio.base_tasks._task_repr_info */
static PyObject *future_repr_fn;      /* asyncio.base_futures._future_repr (3.11+) */
static PyObject *future_repr_info_fn; /* asyncio.base_futures._future_repr_info */
static PyObject *get_stack_fn, *print_stack_fn, *extract_stack_fn;
static PyObject *get_running_loop_fn, *get_event_loop_fn;
static unsigned long long name_counter;

static PyTypeObject *task_iter_type;

/* ---- construction ---- */

static PyObject **dict_ptr(PyObject *self)
{
#if PY_VERSION_HEX >= 0x030D0000
    if (Py_TYPE(self)->tp_flags & Py_TPFLAGS_MANAGED_DICT)
        return NULL;
#endif
    Py_ssize_t off = Py_TYPE(self)->tp_dictoffset;
    return off > 0 ? (PyObject **)((char *)self + off) : NULL;
}

static PyObject *default_loop(void)
{
    PyObject *loop = PyObject_CallNoArgs(get_running_loop_fn);

    if (loop == NULL && PyErr_ExceptionMatches(PyExc_RuntimeError)) {
        PyErr_Clear();
        loop = PyObject_CallNoArgs(get_event_loop_fn);
    }
    return loop;
}

/* Debug mode: where the task was created, minus the innermost frame (asyncio deletes its
 * own __init__ frame the same way). */
static PyObject *capture_source_tb(void)
{
    PyFrameObject *frame = PyEval_GetFrame();
    PyObject *tb;

    if (frame == NULL)
        return NULL;
    tb = PyObject_CallOneArg(extract_stack_fn, (PyObject *)frame);
    if (tb == NULL) {
        PyErr_Clear();
        return NULL;
    }
    return tb;
}

/* Task.__init__ after argument parsing; loop is a PyLoop (borrowed). */
static int task_setup(PyObject *self, PyLoopObject *loop, PyObject *coro, PyObject *name,
                      PyObject *context, int eager_start)
{
    task_fields_t *t = TASK(self);
    PyObject *res;
    int ok;

    if (eager_start && task_swap_fn == NULL) {
        PyErr_SetString(PyExc_TypeError, "Task() got an unexpected keyword argument 'eager_start'");
        return -1;
    }
    Py_INCREF(loop);
    Py_XSETREF(t->loop, loop);
    t->state = TASK_PENDING;
    if (loop->debug)
        Py_XSETREF(t->source_tb, capture_source_tb());
    if (PyCoro_CheckExact(coro)) {
        ok = 1;
    } else {
        res = PyObject_CallOneArg(iscoroutine_fn, coro);
        if (res == NULL)
            return -1;
        ok = PyObject_IsTrue(res);
        Py_DECREF(res);
        if (ok < 0)
            return -1;
    }
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "a coroutine was expected, got %R", coro);
        return -1;
    }
    if (name == Py_None) {
        Py_CLEAR(t->name);
        t->name_id = ++name_counter;
    } else {
        PyObject *s = PyObject_Str(name);
        if (s == NULL)
            return -1;
        Py_XSETREF(t->name, s);
    }
    if (context == Py_None) {
        context = PyContext_CopyCurrent();
        if (context == NULL)
            return -1;
    } else {
        Py_INCREF(context);
    }
    Py_XSETREF(t->context, context);
    Py_INCREF(coro);
    Py_XSETREF(t->coro, coro);
    /* From here on a task dropped while pending is worth a report (asyncio's default). */
    t->log_destroy_pending = 1;

    /* Eager start (3.12+) runs the first step now, when the loop is running. */
    if (eager_start && loop->running)
        return task_eager_start(self);
    if (task_schedule_step(self, NULL) < 0)
        return -1;
    res = PyObject_CallOneArg(task_register_fn, self);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

/* Task(coro, *, loop=None, name=None, context=None, eager_start=False) */
static int task_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"coro", "loop", "name", "context", "eager_start", NULL};
    PyObject *coro, *loop = Py_None, *name = Py_None, *context = Py_None;
    int eager_start = 0, rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$OOOp:Task", kwlist, &coro, &loop, &name,
                                     &context, &eager_start))
        return -1;
    if (loop == Py_None) {
        loop = default_loop();
        if (loop == NULL)
            return -1;
    } else {
        Py_INCREF(loop);
    }
    if (!pyloop_check(loop)) {
        PyErr_Format(PyExc_TypeError, "the native Task runs on a PyLoop event loop, got %R", loop);
        Py_DECREF(loop);
        return -1;
    }
    rc = task_setup(self, (PyLoopObject *)loop, coro, name, context, eager_start);
    Py_DECREF(loop);
    return rc;
}

PyObject *loop_task_new(PyLoopObject *loop, PyObject *coro, PyObject *name, PyObject *context)
{
    PyObject *task = loop_task_type->tp_alloc(loop_task_type, 0);

    if (task == NULL)
        return NULL;
    if (task_setup(task, loop, coro, name, context, 0) < 0) {
        Py_DECREF(task);
        return NULL;
    }
    return task;
}

/* Future(*, loop=None) */
static int future_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop", NULL};
    task_fields_t *f = TASK(self);
    PyObject *loop = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$O:Future", kwlist, &loop))
        return -1;
    if (loop == Py_None) {
        loop = default_loop();
        if (loop == NULL)
            return -1;
    } else {
        Py_INCREF(loop);
    }
    if (!pyloop_check(loop)) {
        PyErr_Format(PyExc_TypeError, "the native Future belongs to a PyLoop event loop, got %R",
                     loop);
        Py_DECREF(loop);
        return -1;
    }
    Py_XSETREF(f->loop, (PyLoopObject *)loop);
    if (f->loop->debug)
        Py_XSETREF(f->source_tb, capture_source_tb());
    return 0;
}

/* loop.create_future() without argument parsing. */
PyObject *loop_future_new(PyLoopObject *loop)
{
    PyObject *fut = loop_future_type->tp_alloc(loop_future_type, 0);

    if (fut == NULL)
        return NULL;
    Py_INCREF(loop);
    TASK(fut)->loop = loop;
    if (loop->debug)
        TASK(fut)->source_tb = capture_source_tb();
    return fut;
}

/* ---- asyncio.Future methods ---- */

static PyObject *task_result_m(PyObject *self, PyObject *unused)
{
    (void)unused;
    return task_get_result(self);
}

static PyObject *task_exception_m(PyObject *self, PyObject *unused)
{
    task_fields_t *t = TASK(self);

    (void)unused;
    if (t->state == TASK_CANCELLED)
        return task_raise_cancelled(self);
    if (t->state != TASK_FINISHED) {
        PyErr_SetString(task_invalid_state, "Exception is not set.");
        return NULL;
    }
    t->log_tb = 0;
    return Py_NewRef(t->exception != NULL ? t->exception : Py_None);
}

static PyObject *task_refuse_set(PyObject *self, PyObject *arg)
{
    (void)self;
    (void)arg;
    PyErr_SetString(PyExc_RuntimeError, "Task does not support set_result operation");
    return NULL;
}

static PyObject *task_refuse_set_exception(PyObject *self, PyObject *arg)
{
    (void)self;
    (void)arg;
    PyErr_SetString(PyExc_RuntimeError, "Task does not support set_exception operation");
    return NULL;
}

static PyObject *task_done_m(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(TASK(self)->state != TASK_PENDING);
}

static PyObject *task_cancelled_m(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(TASK(self)->state == TASK_CANCELLED);
}

static PyObject *task_get_loop_m(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (TASK(self)->loop == NULL) {
        task_not_initialized();
        return NULL;
    }
    return Py_NewRef((PyObject *)TASK(self)->loop);
}

static PyObject *task_add_done_callback_m(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                          PyObject *kwnames)
{
    PyObject *fn, *ctx = NULL;

    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError,
                     "add_done_callback() takes exactly 1 positional argument "
                     "(%zd given)",
                     nargs);
        return NULL;
    }
    fn = args[0];
    for (Py_ssize_t i = 0; kwnames != NULL && i < PyTuple_GET_SIZE(kwnames); i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_CompareWithASCIIString(k, "context") != 0) {
            PyErr_Format(PyExc_TypeError,
                         "add_done_callback() got an unexpected keyword argument '%U'", k);
            return NULL;
        }
        ctx = args[nargs + i];
    }
    if (task_add_done_callback(self, fn, ctx) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *task_remove_done_callback_m(PyObject *self, PyObject *fn)
{
    task_fields_t *t = TASK(self);
    Py_ssize_t removed = 0;

    if (t->cb0 != NULL) {
        int eq = PyObject_RichCompareBool(t->cb0, fn, Py_EQ);
        if (eq < 0)
            return NULL;
        if (eq) {
            Py_CLEAR(t->cb0);
            Py_CLEAR(t->ctx0);
            removed++;
        }
    }
    if (t->callbacks != NULL) {
        PyObject *old = t->callbacks, *kept = PyList_New(0);
        if (kept == NULL)
            return NULL;
        Py_INCREF(old); /* a comparison may run code that changes the callbacks */
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(old); i++) {
            PyObject *pair = PyList_GET_ITEM(old, i);
            int eq;
            Py_INCREF(pair);
            eq = PyObject_RichCompareBool(PyTuple_GET_ITEM(pair, 0), fn, Py_EQ);
            if (eq == 0 && PyList_Append(kept, pair) < 0)
                eq = -1;
            Py_DECREF(pair);
            if (eq < 0) {
                Py_DECREF(kept);
                Py_DECREF(old);
                return NULL;
            }
            removed += eq;
        }
        Py_DECREF(old);
        if (t->callbacks == old)
            Py_XSETREF(t->callbacks, kept);
        else
            Py_DECREF(kept);
    }
    return PyLong_FromSsize_t(removed);
}

static PyObject *task_cancel_m(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"msg", NULL};
    PyObject *msg = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:cancel", kwlist, &msg))
        return NULL;
    return task_cancel(self, msg);
}

static PyObject *task_make_cancelled_error_m(PyObject *self, PyObject *unused)
{
    (void)unused;
    return task_make_cancelled_error(self);
}

/* ---- asyncio.Task methods ---- */

static PyObject *task_cancelling_m(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(TASK(self)->num_cancels_requested);
}

static PyObject *task_uncancel_m(PyObject *self, PyObject *unused)
{
    task_fields_t *t = TASK(self);

    (void)unused;
    if (t->num_cancels_requested > 0) {
        t->num_cancels_requested--;
#if PY_VERSION_HEX >= 0x030D0000
        /* 3.13: withdrawing the last request also withdraws a cancellation not yet
         * delivered. */
        if (t->num_cancels_requested == 0)
            t->must_cancel = 0;
#endif
    }
    return PyLong_FromLong(t->num_cancels_requested);
}

static PyObject *task_get_coro_m(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(TASK(self)->coro != NULL ? TASK(self)->coro : Py_None);
}

static PyObject *task_get_context_m(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(TASK(self)->context != NULL ? TASK(self)->context : Py_None);
}

static PyObject *task_get_name_m(PyObject *self, PyObject *unused)
{
    task_fields_t *t = TASK(self);

    (void)unused;
    if (t->name == NULL) {
        t->name = PyUnicode_FromFormat("Task-%llu", t->name_id);
        if (t->name == NULL)
            return NULL;
    }
    return Py_NewRef(t->name);
}

static PyObject *task_set_name_m(PyObject *self, PyObject *value)
{
    PyObject *s = PyObject_Str(value);

    if (s == NULL)
        return NULL;
    Py_XSETREF(TASK(self)->name, s);
    Py_RETURN_NONE;
}

static PyObject *task_get_stack_m(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"limit", NULL};
    PyObject *limit = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$O:get_stack", kwlist, &limit))
        return NULL;
    return PyObject_CallFunctionObjArgs(get_stack_fn, self, limit, NULL);
}

static PyObject *task_print_stack_m(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"limit", "file", NULL};
    PyObject *limit = Py_None, *file = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OO:print_stack", kwlist, &limit, &file))
        return NULL;
    return PyObject_CallFunctionObjArgs(print_stack_fn, self, limit, file, NULL);
}

/* repr through asyncio's own formatter: repr_fn (3.11+), else (3.10)
 * "<Class " + " ".join(info_fn(obj)) + ">". */
static PyObject *repr_via(PyObject *self, PyObject *repr_fn, PyObject *info_fn)
{
    PyObject *info, *sep, *joined, *res;

    if (repr_fn != NULL)
        return PyObject_CallOneArg(repr_fn, self);
    info = PyObject_CallOneArg(info_fn, self);
    if (info == NULL)
        return NULL;
    sep = PyUnicode_FromString(" ");
    joined = sep != NULL ? PyUnicode_Join(sep, info) : NULL;
    Py_XDECREF(sep);
    Py_DECREF(info);
    if (joined == NULL)
        return NULL;
    res = PyUnicode_FromFormat("<%s %U>", _PyType_Name(Py_TYPE(self)), joined);
    Py_DECREF(joined);
    return res;
}

static PyObject *task_repr(PyObject *self)
{
    return repr_via(self, task_repr_fn, task_repr_info_fn);
}

static PyObject *task_repr_info_m(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyObject_CallOneArg(task_repr_info_fn, self);
}

static void task_finalize(PyObject *self);

static PyObject *task_del_m(PyObject *self, PyObject *unused)
{
    (void)unused;
    task_finalize(self);
    Py_RETURN_NONE;
}

/* ---- asyncio.Future's own setters and cancel (the Future type) ---- */

static PyObject *future_set_result_m(PyObject *self, PyObject *result)
{
    task_fields_t *f = TASK(self);

    if (f->state != TASK_PENDING) {
        PyErr_SetString(task_invalid_state, "invalid state"); /* _asyncio's wording */
        return NULL;
    }
    if (task_finish_result(self, result) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *future_set_exception_m(PyObject *self, PyObject *exc)
{
    task_fields_t *f = TASK(self);
    PyObject *val;
    int rc;

    if (f->state != TASK_PENDING) {
        PyErr_SetString(task_invalid_state, "invalid state"); /* _asyncio's wording */
        return NULL;
    }
    if (PyType_Check(exc)) {
        val = PyObject_CallNoArgs(exc);
        if (val == NULL)
            return NULL;
    } else {
        val = Py_NewRef(exc);
    }
    if (!PyExceptionInstance_Check(val)) {
        Py_DECREF(val);
        PyErr_SetString(PyExc_TypeError, "invalid exception object");
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030D0000
    /* 3.13: a StopIteration is wrapped in a RuntimeError (it would end the awaiter). */
    if (PyErr_GivenExceptionMatches(val, PyExc_StopIteration)) {
        PyObject *wrapped = PyObject_CallFunction(
            PyExc_RuntimeError, "s",
            "StopIteration interacts badly with generators and cannot be raised into a Future");
        if (wrapped == NULL) {
            Py_DECREF(val);
            return NULL;
        }
        PyException_SetCause(wrapped, Py_NewRef(val));
        PyException_SetContext(wrapped, val);
        val = wrapped;
    }
#else
    if (Py_IS_TYPE(val, (PyTypeObject *)PyExc_StopIteration)) {
        Py_DECREF(val);
        PyErr_SetString(PyExc_TypeError, "StopIteration interacts badly with generators and "
                                         "cannot be raised into a Future");
        return NULL;
    }
#endif
    rc = task_finish_exception(self, val);
    Py_DECREF(val);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *future_cancel_m(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"msg", NULL};
    PyObject *msg = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:cancel", kwlist, &msg))
        return NULL;
    return future_cancel(self, msg);
}

static PyObject *future_repr(PyObject *self)
{
    return repr_via(self, future_repr_fn, future_repr_info_fn);
}

static PyObject *future_repr_info_m(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyObject_CallOneArg(future_repr_info_fn, self);
}

/* What the Future and the Task share (the future half). */
#define FUTURE_METHODS                                                                             \
    {"result", task_result_m, METH_NOARGS, "Return the result this future ended with."},           \
        {"exception", task_exception_m, METH_NOARGS,                                               \
         "Return the exception this future ended with."},                                          \
        {"done", task_done_m, METH_NOARGS, "Return True if the future is done."},                  \
        {"cancelled", task_cancelled_m, METH_NOARGS, "Return True if it was cancelled."},          \
        {"get_loop", task_get_loop_m, METH_NOARGS, "Return the event loop it is bound to."},       \
        {"add_done_callback", (PyCFunction)(void (*)(void))task_add_done_callback_m,               \
         METH_FASTCALL | METH_KEYWORDS, "Add a callback to run when it is done."},                 \
        {"remove_done_callback", task_remove_done_callback_m, METH_O,                              \
         "Remove all instances of a callback; return how many were removed."},                     \
        {"_make_cancelled_error", task_make_cancelled_error_m, METH_NOARGS, NULL},                 \
    {                                                                                              \
        "__del__", task_del_m, METH_NOARGS, NULL                                                   \
    }

static PyMethodDef task_methods[] = {
    FUTURE_METHODS,
    {"set_result", task_refuse_set, METH_O, "Tasks do not support set_result."},
    {"set_exception", task_refuse_set_exception, METH_O, "Tasks do not support set_exception."},
    {"cancel", (PyCFunction)(void (*)(void))task_cancel_m, METH_VARARGS | METH_KEYWORDS,
     "Request that this task cancel itself."},
    {"cancelling", task_cancelling_m, METH_NOARGS, "Return the count of cancellation requests."},
    {"uncancel", task_uncancel_m, METH_NOARGS, "Decrement the count of cancellation requests."},
    {"get_coro", task_get_coro_m, METH_NOARGS, "Return the task's coroutine."},
    {"get_context", task_get_context_m, METH_NOARGS, "Return the task's contextvars context."},
    {"get_name", task_get_name_m, METH_NOARGS, "Return the task's name."},
    {"set_name", task_set_name_m, METH_O, "Set the task's name."},
    {"get_stack", (PyCFunction)(void (*)(void))task_get_stack_m, METH_VARARGS | METH_KEYWORDS,
     "Return the list of stack frames for this task's coroutine."},
    {"print_stack", (PyCFunction)(void (*)(void))task_print_stack_m, METH_VARARGS | METH_KEYWORDS,
     "Print the stack or traceback of this task's coroutine."},
    {"_repr_info", task_repr_info_m, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef future_methods[] = {
    FUTURE_METHODS,
    {"set_result", future_set_result_m, METH_O, "Mark the future done and set its result."},
    {"set_exception", future_set_exception_m, METH_O, "Mark the future done and set an exception."},
    {"cancel", (PyCFunction)(void (*)(void))future_cancel_m, METH_VARARGS | METH_KEYWORDS,
     "Cancel the future and schedule callbacks."},
    {"_repr_info", future_repr_info_m, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* ---- attributes ---- */

static PyObject *get_or_none(PyObject *o)
{
    return Py_NewRef(o != NULL ? o : Py_None);
}

static PyObject *task_get_blocking(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(TASK(self)->blocking);
}

/* The truth value of an attribute assignment into *out; deleting is refused. */
static int bool_attr(PyObject *v, int *out)
{
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
        return -1;
    }
    *out = PyObject_IsTrue(v);
    return *out < 0 ? -1 : 0;
}

static int task_set_blocking(PyObject *self, PyObject *v, void *c)
{
    int b;

    (void)c;
    if (bool_attr(v, &b) < 0)
        return -1;
    TASK(self)->blocking = (unsigned char)b;
    return 0;
}

static PyObject *task_get_log_tb(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(TASK(self)->log_tb);
}

static int task_set_log_tb(PyObject *self, PyObject *v, void *c)
{
    int b;

    (void)c;
    if (bool_attr(v, &b) < 0)
        return -1;
    if (b) {
        PyErr_SetString(PyExc_ValueError, "_log_traceback can only be set to False");
        return -1;
    }
    TASK(self)->log_tb = 0;
    return 0;
}

static PyObject *task_get_log_destroy_pending(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(TASK(self)->log_destroy_pending);
}

static int task_set_log_destroy_pending(PyObject *self, PyObject *v, void *c)
{
    int b;

    (void)c;
    if (bool_attr(v, &b) < 0)
        return -1;
    TASK(self)->log_destroy_pending = (unsigned char)b;
    return 0;
}

static PyObject *task_get_must_cancel(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(TASK(self)->must_cancel);
}

static PyObject *task_get_state(PyObject *self, void *c)
{
    static const char *const names[] = {"PENDING", "CANCELLED", "FINISHED"};

    (void)c;
    return PyUnicode_FromString(names[TASK(self)->state]);
}

static PyObject *task_get_callbacks(PyObject *self, void *c)
{
    task_fields_t *t = TASK(self);
    PyObject *list, *pair;

    (void)c;
    if (t->cb0 == NULL && (t->callbacks == NULL || PyList_GET_SIZE(t->callbacks) == 0))
        Py_RETURN_NONE;
    list = PyList_New(0);
    if (list == NULL)
        return NULL;
    if (t->cb0 != NULL) {
        pair = PyTuple_Pack(2, t->cb0, t->ctx0);
        if (pair == NULL || PyList_Append(list, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(pair);
    }
    if (t->callbacks != NULL) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(t->callbacks); i++) {
            if (PyList_Append(list, PyList_GET_ITEM(t->callbacks, i)) < 0) {
                Py_DECREF(list);
                return NULL;
            }
        }
    }
    return list;
}

static PyObject *task_get_cancel_message(PyObject *self, void *c)
{
    (void)c;
    return get_or_none(TASK(self)->cancel_msg);
}

static int task_set_cancel_message(PyObject *self, PyObject *v, void *c)
{
    (void)c;
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
        return -1;
    }
    Py_INCREF(v);
    Py_XSETREF(TASK(self)->cancel_msg, v);
    return 0;
}

#define TASK_GETTER(fname, field)                                                                  \
    static PyObject *fname(PyObject *self, void *c)                                                \
    {                                                                                              \
        (void)c;                                                                                   \
        return get_or_none((PyObject *)TASK(self)->field);                                         \
    }
TASK_GETTER(task_get_loop_attr, loop)
TASK_GETTER(task_get_result_attr, result)
TASK_GETTER(task_get_exception_attr, exception)
TASK_GETTER(task_get_source_tb, source_tb)
TASK_GETTER(task_get_coro_attr, coro)
TASK_GETTER(task_get_fut_waiter, fut_waiter)

#define FUTURE_GETSETS                                                                             \
    {"_asyncio_future_blocking", task_get_blocking, task_set_blocking, NULL, NULL},                \
        {"_log_traceback", task_get_log_tb, task_set_log_tb, NULL, NULL},                          \
        {"_state", task_get_state, NULL, NULL, NULL},                                              \
        {"_callbacks", task_get_callbacks, NULL, NULL, NULL},                                      \
        {"_cancel_message", task_get_cancel_message, task_set_cancel_message, NULL, NULL},         \
        {"_loop", task_get_loop_attr, NULL, NULL, NULL},                                           \
        {"_result", task_get_result_attr, NULL, NULL, NULL},                                       \
        {"_exception", task_get_exception_attr, NULL, NULL, NULL},                                 \
    {                                                                                              \
        "_source_traceback", task_get_source_tb, NULL, NULL, NULL                                  \
    }

static PyGetSetDef task_getset[] = {
    FUTURE_GETSETS,
    {"_log_destroy_pending", task_get_log_destroy_pending, task_set_log_destroy_pending, NULL,
     NULL},
    {"_must_cancel", task_get_must_cancel, NULL, NULL, NULL},
    {"_coro", task_get_coro_attr, NULL, NULL, NULL},
    {"_fut_waiter", task_get_fut_waiter, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyGetSetDef future_getset[] = {
    FUTURE_GETSETS,
    {NULL, NULL, NULL, NULL, NULL},
};

/* ---- await: Future.__await__ as a small iterator ---- */

typedef struct {
    /* clang-format off */
    PyObject_HEAD
    PyObject *task; /* NULL once finished */
    /* clang-format on */
} TaskIterObject;

static PyObject *task_await(PyObject *self)
{
    TaskIterObject *it = PyObject_GC_New(TaskIterObject, task_iter_type);

    if (it == NULL)
        return NULL;
    it->task = Py_NewRef(self);
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

/* yield the task while pending (telling the awaiting Task to wait for it), then return its
 * result: `if not done: blocking = True; yield self` / `return self.result()`. */
static PySendResult task_iter_send(TaskIterObject *it, PyObject *arg, PyObject **out)
{
    PyObject *task = it->task;
    task_fields_t *t;

    (void)arg;
    *out = NULL;
    if (task == NULL) {
        PyErr_SetNone(PyExc_StopIteration);
        return PYGEN_ERROR;
    }
    t = TASK(task);
    if (t->state == TASK_PENDING) {
        if (!t->blocking) {
            t->blocking = 1;
            *out = Py_NewRef(task);
            return PYGEN_NEXT;
        }
        PyErr_SetString(PyExc_RuntimeError, "await wasn't used with future");
        return PYGEN_ERROR;
    }
    it->task = NULL;
    *out = task_get_result(task);
    Py_DECREF(task);
    return *out != NULL ? PYGEN_RETURN : PYGEN_ERROR;
}

static PyObject *task_iter_next(TaskIterObject *it)
{
    PyObject *out;
    PySendResult r = task_iter_send(it, Py_None, &out);

    if (r == PYGEN_NEXT)
        return out;
    if (r == PYGEN_RETURN) {
        /* StopIteration(value) as an instance: a tuple value must not be unpacked. */
        PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, out);
        Py_DECREF(out);
        if (stop != NULL) {
            PyErr_SetObject(PyExc_StopIteration, stop);
            Py_DECREF(stop);
        }
    }
    return NULL;
}

static PyObject *task_iter_send_m(TaskIterObject *it, PyObject *arg)
{
    (void)arg;
    return task_iter_next(it);
}

/* throw(exc) / throw(type[, value[, tb]]): raises it at the await, as asyncio's iterator. */
static PyObject *task_iter_throw(TaskIterObject *it, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *type, *val = NULL, *tb = NULL;

    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return NULL;
    }
    type = args[0];
    if (nargs > 1 && args[1] != Py_None)
        val = args[1];
    if (nargs > 2 && args[2] != Py_None) {
        tb = args[2];
        if (!PyTraceBack_Check(tb)) {
            PyErr_SetString(PyExc_TypeError, "throw() third argument must be a traceback");
            return NULL;
        }
    }
    Py_CLEAR(it->task);
    if (PyExceptionClass_Check(type)) {
        PyObject *exc =
            val != NULL && PyExceptionInstance_Check(val)
                ? Py_NewRef(val)
                : (val != NULL ? PyObject_CallOneArg(type, val) : PyObject_CallNoArgs(type));
        if (exc == NULL)
            return NULL;
        if (tb != NULL)
            PyException_SetTraceback(exc, tb);
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
        return NULL;
    }
    if (PyExceptionInstance_Check(type)) {
        if (val != NULL) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            return NULL;
        }
        if (tb != NULL)
            PyException_SetTraceback(type, tb);
        PyErr_SetObject((PyObject *)Py_TYPE(type), type);
        return NULL;
    }
    PyErr_Format(PyExc_TypeError,
                 "exceptions must be classes deriving BaseException or instances of such a "
                 "class, not %s",
                 Py_TYPE(type)->tp_name);
    return NULL;
}

static PyObject *task_iter_close(TaskIterObject *it, PyObject *unused)
{
    (void)unused;
    Py_CLEAR(it->task);
    Py_RETURN_NONE;
}

static int task_iter_traverse(TaskIterObject *it, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(it));
    Py_VISIT(it->task);
    return 0;
}

static int task_iter_clear(TaskIterObject *it)
{
    Py_CLEAR(it->task);
    return 0;
}

static void task_iter_dealloc(TaskIterObject *it)
{
    PyTypeObject *tp = Py_TYPE(it);

    PyObject_GC_UnTrack(it);
    Py_CLEAR(it->task);
    PyObject_GC_Del(it);
    Py_DECREF(tp);
}

static PyMethodDef task_iter_methods[] = {
    {"send", (PyCFunction)task_iter_send_m, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))task_iter_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)task_iter_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot task_iter_slots[] = {
    {Py_tp_dealloc, task_iter_dealloc}, {Py_tp_traverse, task_iter_traverse},
    {Py_tp_clear, task_iter_clear},     {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, task_iter_next},   {Py_am_send, task_iter_send},
    {Py_tp_methods, task_iter_methods}, {0, NULL},
};

static PyType_Spec task_iter_spec = {
    .name = "data_bridge._core.TaskIter",
    .basicsize = sizeof(TaskIterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = task_iter_slots,
};

/* ---- lifetime ---- */

/* asyncio's Task.__del__ and Future.__del__: report a task dropped while pending, and an
 * exception nobody retrieved, to the loop's exception handler. */
static void task_finalize(PyObject *self)
{
    task_fields_t *t = TASK(self);
    PyObject *type, *value, *tb, *ctx = NULL, *res;

    if (t->loop == NULL)
        return;
    PyErr_Fetch(&type, &value, &tb);
    if (t->state == TASK_PENDING && t->log_destroy_pending) {
        t->log_destroy_pending = 0;
        ctx = Py_BuildValue("{sOss}", "task", self, "message",
                            "Task was destroyed but it is pending!");
    } else if (t->log_tb) {
        t->log_tb = 0;
        ctx = PyDict_New();
        if (ctx != NULL) {
            PyObject *msg = PyUnicode_FromFormat("%s exception was never retrieved",
                                                 _PyType_Name(Py_TYPE(self)));
            if (msg == NULL || PyDict_SetItemString(ctx, "message", msg) < 0 ||
                PyDict_SetItemString(ctx, "exception", t->exception) < 0 ||
                PyDict_SetItemString(ctx, "future", self) < 0)
                Py_CLEAR(ctx);
            Py_XDECREF(msg);
        }
    }
    if (ctx != NULL && t->source_tb != NULL && PyObject_IsTrue(t->source_tb) == 1 &&
        PyDict_SetItemString(ctx, "source_traceback", t->source_tb) < 0)
        Py_CLEAR(ctx);
    if (ctx != NULL) {
        res = PyObject_CallMethodOneArg((PyObject *)t->loop, loop_str_call_exception_handler, ctx);
        if (res == NULL)
            PyErr_WriteUnraisable(self);
        Py_XDECREF(res);
        Py_DECREF(ctx);
    }
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(self);
    PyErr_Restore(type, value, tb);
}

static int task_traverse(PyObject *self, visitproc visit, void *arg)
{
    task_fields_t *t = TASK(self);
    PyObject **dp = dict_ptr(self);

    Py_VISIT(Py_TYPE(self));
    Py_VISIT(t->loop);
    Py_VISIT(t->coro);
    Py_VISIT(t->context);
    Py_VISIT(t->name);
    Py_VISIT(t->fut_waiter);
    Py_VISIT(t->result);
    Py_VISIT(t->exception);
    Py_VISIT(t->exception_tb);
    Py_VISIT(t->cb0);
    Py_VISIT(t->ctx0);
    Py_VISIT(t->callbacks);
    Py_VISIT(t->cancel_msg);
    Py_VISIT(t->cancelled_exc);
    Py_VISIT(t->source_tb);
    Py_VISIT(t->step_exc);
    if (dp != NULL)
        Py_VISIT(*dp);
#if PY_VERSION_HEX >= 0x030D0000
    if (Py_TYPE(self)->tp_flags & Py_TPFLAGS_MANAGED_DICT)
        return PyObject_VisitManagedDict(self, visit, arg);
#endif
    return 0;
}

static int task_clear(PyObject *self)
{
    task_fields_t *t = TASK(self);
    PyObject **dp = dict_ptr(self);

    Py_CLEAR(t->loop);
    Py_CLEAR(t->coro);
    Py_CLEAR(t->context);
    Py_CLEAR(t->name);
    Py_CLEAR(t->fut_waiter);
    Py_CLEAR(t->result);
    Py_CLEAR(t->exception);
    Py_CLEAR(t->exception_tb);
    Py_CLEAR(t->cb0);
    Py_CLEAR(t->ctx0);
    Py_CLEAR(t->callbacks);
    Py_CLEAR(t->cancel_msg);
    Py_CLEAR(t->cancelled_exc);
    Py_CLEAR(t->source_tb);
    Py_CLEAR(t->step_exc);
    if (dp != NULL)
        Py_CLEAR(*dp);
#if PY_VERSION_HEX >= 0x030D0000
    if (Py_TYPE(self)->tp_flags & Py_TPFLAGS_MANAGED_DICT)
        PyObject_ClearManagedDict(self);
#endif
    return 0;
}

static void task_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    if (PyObject_CallFinalizerFromDealloc(self) < 0)
        return; /* resurrected by the exception handler */
    PyObject_GC_UnTrack(self);
    PyObject_ClearWeakRefs(self);
    task_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyType_Slot task_slots[] = {
    {Py_tp_init, task_init},
    {Py_tp_dealloc, task_dealloc},
    {Py_tp_finalize, task_finalize},
    {Py_tp_traverse, task_traverse},
    {Py_tp_clear, task_clear},
    {Py_tp_repr, task_repr},
    {Py_tp_iter, task_await},
    {Py_am_await, task_await},
    {Py_tp_methods, task_methods},
    {Py_tp_getset, task_getset},
    {Py_tp_doc, "A coroutine wrapped in a Future, stepped natively by PyLoop.\n\n"
                "Derives from asyncio.Task and behaves like it; loop.create_task() returns "
                "one unless a task factory is set."},
    {0, NULL},
};

static PyType_Spec task_spec = {
    .name = "data_bridge._core.Task",
    .basicsize = 0, /* set at init: the base's size plus task_fields_t */
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = task_slots,
};

static PyType_Slot future_slots[] = {
    {Py_tp_init, future_init},
    {Py_tp_dealloc, task_dealloc},
    {Py_tp_finalize, task_finalize},
    {Py_tp_traverse, task_traverse},
    {Py_tp_clear, task_clear},
    {Py_tp_repr, future_repr},
    {Py_tp_iter, task_await},
    {Py_am_await, task_await},
    {Py_tp_methods, future_methods},
    {Py_tp_getset, future_getset},
    {Py_tp_doc, "The result of an asynchronous operation, resolved natively by PyLoop.\n\n"
                "Derives from asyncio.Future and behaves like it; loop.create_future() "
                "returns one."},
    {0, NULL},
};

static PyType_Spec future_spec = {
    .name = "data_bridge._core.Future",
    .basicsize = 0, /* set at init: the same field offset as the Task */
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = future_slots,
};

static PyTypeObject *derive(PyType_Spec *spec, PyObject *base)
{
    PyObject *bases = PyTuple_Pack(1, base);
    PyObject *type;

    if (bases == NULL)
        return NULL;
    type = PyType_FromSpecWithBases(spec, bases);
    Py_DECREF(bases);
    return (PyTypeObject *)type;
}

static PyObject *attr_of(const char *module, const char *name, int optional)
{
    PyObject *mod = PyImport_ImportModule(module), *res;

    if (mod == NULL)
        return NULL;
    res = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    if (res == NULL && optional && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        return Py_NewRef(Py_None);
    }
    return res;
}

static PyObject *none_to_null(PyObject *o)
{
    if (o == Py_None) {
        Py_DECREF(o);
        return NULL;
    }
    return o;
}

/* The getters/setters and methods of asyncio.Future used on the await path. Any surprise
 * (a pure-Python Future, another kind of descriptor) leaves the generic path in charge. */
static int future_descriptors(void)
{
    PyObject *dict = ((PyTypeObject *)task_future_type)->tp_dict;
    PyObject *blocking, *loop, *add, *result;

    if (!PyType_Check(task_future_type) || dict == NULL)
        return 0;
    blocking = PyDict_GetItemString(dict, "_asyncio_future_blocking");
    loop = PyDict_GetItemString(dict, "_loop");
    add = PyDict_GetItemString(dict, "add_done_callback");
    result = PyDict_GetItemString(dict, "result");
    if (blocking == NULL || loop == NULL || add == NULL || result == NULL ||
        !PyObject_TypeCheck(blocking, &PyGetSetDescr_Type) ||
        !PyObject_TypeCheck(loop, &PyGetSetDescr_Type) ||
        !PyObject_TypeCheck(add, &PyMethodDescr_Type) ||
        !PyObject_TypeCheck(result, &PyMethodDescr_Type))
        return 0;
    if (((PyGetSetDescrObject *)blocking)->d_getset->set == NULL)
        return 0;
    task_fut_add_done_callback = Py_NewRef(add);
    task_fut_result = Py_NewRef(result);
    task_fut_loop = ((PyGetSetDescrObject *)loop)->d_getset;
    task_fut_blocking = ((PyGetSetDescrObject *)blocking)->d_getset;
    return 0;
}

int loop_task_init(PyObject *module)
{
    PyObject *task_base, *future_base, *dict_fast, *c_dict;
    Py_ssize_t base_size;

    task_base = attr_of("_asyncio", "Task", 0);
    future_base = attr_of("_asyncio", "Future", 0);
    if (task_base == NULL || future_base == NULL) {
        Py_XDECREF(task_base);
        Py_XDECREF(future_base);
        return -1;
    }
    /* Both types keep their fields after the larger (Task) base layout. */
    base_size = ((PyTypeObject *)task_base)->tp_basicsize;
    if (base_size % (Py_ssize_t)sizeof(void *) != 0 ||
        ((PyTypeObject *)future_base)->tp_basicsize > base_size) {
        Py_DECREF(task_base);
        Py_DECREF(future_base);
        PyErr_SetString(PyExc_ImportError, "unexpected _asyncio.Task/Future instance sizes");
        return -1;
    }
    task_fields_offset = base_size;
    task_spec.basicsize = future_spec.basicsize =
        (int)(base_size + (Py_ssize_t)sizeof(task_fields_t));
    loop_task_type = derive(&task_spec, task_base);
    loop_future_type = loop_task_type != NULL ? derive(&future_spec, future_base) : NULL;
    Py_DECREF(task_base);
    Py_DECREF(future_base);
    if (loop_future_type == NULL)
        return -1;
    task_iter_type = (PyTypeObject *)PyType_FromSpec(&task_iter_spec);
    if (task_iter_type == NULL)
        return -1;
    /* The module-global references stay for the process. */
    Py_INCREF(loop_task_type);
    if (PyModule_AddObject(module, "Task", (PyObject *)loop_task_type) < 0) {
        Py_DECREF(loop_task_type);
        return -1;
    }
    Py_INCREF(loop_future_type);
    if (PyModule_AddObject(module, "Future", (PyObject *)loop_future_type) < 0) {
        Py_DECREF(loop_future_type);
        return -1;
    }

    /* asyncio.current_task() reads _asyncio's dict; use it directly when asyncio.tasks uses
     * the C functions over that dict, else call asyncio.tasks' _enter_task/_leave_task. */
    dict_fast = attr_of("asyncio.tasks", "_current_tasks", 1);
    c_dict = attr_of("_asyncio", "_current_tasks", 1);
    if (dict_fast == NULL || c_dict == NULL) {
        Py_XDECREF(dict_fast);
        Py_XDECREF(c_dict);
        return -1;
    }
    if (dict_fast == c_dict && PyDict_CheckExact(dict_fast))
        task_current_tasks = Py_NewRef(dict_fast);
    Py_DECREF(dict_fast);
    Py_DECREF(c_dict);

    task_enter_fn = attr_of("asyncio.tasks", "_enter_task", 0);
    task_leave_fn = attr_of("asyncio.tasks", "_leave_task", 0);
    task_register_fn = attr_of("asyncio.tasks", "_register_task", 0);
    task_swap_fn = none_to_null(attr_of("asyncio.tasks", "_swap_current_task", 1));
    task_register_eager_fn = none_to_null(attr_of("asyncio.tasks", "_register_eager_task", 1));
    task_unregister_eager_fn = none_to_null(attr_of("asyncio.tasks", "_unregister_eager_task", 1));
    task_cancelled_error = attr_of("asyncio", "CancelledError", 0);
    task_invalid_state = attr_of("asyncio", "InvalidStateError", 0);
    task_future_type = attr_of("asyncio", "Future", 0);
    iscoroutine_fn = attr_of("asyncio.coroutines", "iscoroutine", 0);
    task_repr_fn = none_to_null(attr_of("asyncio.base_tasks", "_task_repr", 1));
    task_repr_info_fn = attr_of("asyncio.base_tasks", "_task_repr_info", 0);
    future_repr_fn = none_to_null(attr_of("asyncio.base_futures", "_future_repr", 1));
    future_repr_info_fn = attr_of("asyncio.base_futures", "_future_repr_info", 0);
    get_stack_fn = attr_of("asyncio.base_tasks", "_task_get_stack", 0);
    print_stack_fn = attr_of("asyncio.base_tasks", "_task_print_stack", 0);
    extract_stack_fn = attr_of("asyncio.format_helpers", "extract_stack", 0);
    get_running_loop_fn = attr_of("asyncio", "get_running_loop", 0);
    get_event_loop_fn = attr_of("asyncio", "get_event_loop", 0);
    if (PyErr_Occurred())
        return -1;
    if (future_descriptors() < 0)
        return -1;
    task_str_add_done_callback = PyUnicode_InternFromString("add_done_callback");
    task_str_result = PyUnicode_InternFromString("result");
    task_str_cancel = PyUnicode_InternFromString("cancel");
    task_str_blocking = PyUnicode_InternFromString("_asyncio_future_blocking");
    task_str_get_loop = PyUnicode_InternFromString("get_loop");
    task_str_throw = PyUnicode_InternFromString("throw");
    task_str_loop = PyUnicode_InternFromString("_loop");
    task_kwnames_context = Py_BuildValue("(s)", "context");
    task_kwnames_msg = Py_BuildValue("(s)", "msg");
    if (!task_str_add_done_callback || !task_str_result || !task_str_cancel || !task_str_blocking ||
        !task_str_get_loop || !task_str_throw || !task_str_loop || !task_kwnames_context ||
        !task_kwnames_msg)
        return -1;
    return 0;
}
