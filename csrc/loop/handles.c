/*
 * Handle and TimerHandle: the objects call_soon/call_later return, and the unit of work in
 * the ready queue and the timer heap. A handle owns its callback, arguments, context and a
 * reference to its loop; cancel() drops the callback and arguments at once (like asyncio) so
 * that cancelled timers waiting in the heap do not keep large object graphs alive.
 */
#include "loop/loop_internal.h"

static PyObject *format_callback_source; /* asyncio.format_helpers._format_callback_source */
static PyObject *extract_stack;          /* asyncio.format_helpers.extract_stack */

/* Debug mode: the stack that created a handle, as asyncio's Handle records it in
 * _source_traceback (shown in its repr and in the context of an exception it raised).
 * The current Python frame is the caller of call_soon/call_later: no frame of ours
 * sits in between. Returns a new reference, or NULL without an exception on failure (a
 * debugging aid must not break scheduling). */
static PyObject *capture_source_traceback(void)
{
    PyFrameObject *frame = PyEval_GetFrame();
    PyObject *res;

    if (frame == NULL)
        return NULL;
    if (extract_stack == NULL) {
        PyObject *mod = PyImport_ImportModule("asyncio.format_helpers");
        if (mod != NULL) {
            extract_stack = PyObject_GetAttrString(mod, "extract_stack");
            Py_DECREF(mod);
        }
        if (extract_stack == NULL) {
            PyErr_Clear();
            return NULL;
        }
    }
    res = PyObject_CallOneArg(extract_stack, (PyObject *)frame);
    if (res == NULL)
        PyErr_Clear();
    return res;
}

/* Recycled Handle objects (exact type only): one is allocated per call_soon, so reusing the
 * memory (GC header included) saves an allocator round trip on the hottest path. Entries are
 * untracked, fully cleared objects with a reference count of zero. */
#if PY_VERSION_HEX < 0x030D0000
#define HANDLE_FREELIST_MAX 512
#else
/* _Py_NewReference is not public API from 3.13 on: no freelist there. */
#define HANDLE_FREELIST_MAX 0
#endif
static PyLoopHandleObject *handle_freelist[HANDLE_FREELIST_MAX + 1];
static int handle_freelist_len;

static PyLoopHandleObject *handle_alloc(PyLoopObject *loop, PyTypeObject *type, PyObject *callback,
                                        PyObject *const *args, Py_ssize_t nargs, PyObject *context,
                                        int track)
{
    PyObject *tuple = NULL;
    PyObject *ctx = NULL;
    PyLoopHandleObject *h;

    if (nargs > 0) {
        tuple = PyTuple_New(nargs);
        if (tuple == NULL)
            return NULL;
        for (Py_ssize_t i = 0; i < nargs; i++) {
            Py_INCREF(args[i]);
            PyTuple_SET_ITEM(tuple, i, args[i]);
        }
    }
    if (context == NULL || context == Py_None) {
        ctx = PyContext_CopyCurrent();
        if (ctx == NULL) {
            Py_XDECREF(tuple);
            return NULL;
        }
    } else {
        Py_INCREF(context);
        ctx = context;
    }
#if HANDLE_FREELIST_MAX > 0
    if (type == &PyLoopHandle_Type && handle_freelist_len > 0) {
        h = handle_freelist[--handle_freelist_len];
        _Py_NewReference((PyObject *)h);
    } else
#endif
    {
        h = PyObject_GC_New(PyLoopHandleObject, type);
        if (h == NULL) {
            Py_XDECREF(tuple);
            Py_DECREF(ctx);
            return NULL;
        }
    }
    Py_INCREF(callback);
    h->callback = callback;
    h->args = tuple;
    h->context = ctx;
    Py_INCREF(loop);
    h->loop = loop;
    h->weakreflist = NULL;
    h->when = 0.0;
    h->seq = 0;
    h->cancelled = 0;
    h->scheduled = 0;
    h->is_timer = type != &PyLoopHandle_Type;
    h->source_tb = loop->debug ? capture_source_traceback() : NULL;
    if (track)
        PyObject_GC_Track(h);
    return h;
}

PyLoopHandleObject *loop_handle_new(PyLoopObject *loop, PyTypeObject *type, PyObject *callback,
                                    PyObject *const *args, Py_ssize_t nargs, PyObject *context)
{
    return handle_alloc(loop, type, callback, args, nargs, context, 1);
}

PyLoopHandleObject *loop_handle_new_queued(PyLoopObject *loop, PyObject *callback,
                                           PyObject *const *args, Py_ssize_t nargs,
                                           PyObject *context)
{
    return handle_alloc(loop, &PyLoopHandle_Type, callback, args, nargs, context, 0);
}

static int handle_clear(PyLoopHandleObject *h)
{
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args);
    Py_CLEAR(h->context);
    Py_CLEAR(h->source_tb);
    Py_CLEAR(h->loop);
    return 0;
}

static int handle_traverse(PyLoopHandleObject *h, visitproc visit, void *arg)
{
    Py_VISIT(h->callback);
    Py_VISIT(h->args);
    Py_VISIT(h->context);
    Py_VISIT(h->source_tb);
    Py_VISIT(h->loop);
    return 0;
}

static void handle_dealloc(PyLoopHandleObject *h)
{
    PyObject_GC_UnTrack(h);
    if (h->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)h);
    handle_clear(h);
    if (Py_TYPE(h) == &PyLoopHandle_Type && handle_freelist_len < HANDLE_FREELIST_MAX) {
        handle_freelist[handle_freelist_len++] = h;
        return;
    }
    Py_TYPE(h)->tp_free((PyObject *)h);
}

/* Formats the callback like asyncio does ("func(args) at file:line"); falls back to repr. */
static PyObject *handle_format_callback(PyLoopHandleObject *h)
{
    PyObject *mod;
    PyObject *res;

    if (h->callback == NULL)
        return PyUnicode_FromString("");
    if (format_callback_source == NULL) {
        mod = PyImport_ImportModule("asyncio.format_helpers");
        if (mod != NULL) {
            format_callback_source = PyObject_GetAttrString(mod, "_format_callback_source");
            Py_DECREF(mod);
        }
        if (format_callback_source == NULL)
            PyErr_Clear();
    }
    if (format_callback_source != NULL) {
        res = PyObject_CallFunctionObjArgs(format_callback_source, h->callback,
                                           h->args ? h->args : Py_None, NULL);
        if (res == NULL && h->args == NULL) {
            PyObject *empty = PyTuple_New(0);
            PyErr_Clear();
            if (empty == NULL)
                return NULL;
            res = PyObject_CallFunctionObjArgs(format_callback_source, h->callback, empty, NULL);
            Py_DECREF(empty);
        }
        if (res != NULL)
            return res;
        PyErr_Clear();
    }
    return PyObject_Repr(h->callback);
}

static PyObject *handle_report(PyLoopHandleObject *h)
{
    PyObject *exc = NULL;
    PyObject *type = NULL, *tb = NULL;
    PyObject *cb = NULL, *msg = NULL, *ctx = NULL, *res = NULL;
    PyLoopObject *loop = h->loop;

    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (tb != NULL && exc != NULL)
        PyException_SetTraceback(exc, tb);
    cb = handle_format_callback(h);
    if (cb == NULL)
        goto done;
    msg = PyUnicode_FromFormat("Exception in callback %U", cb);
    if (msg == NULL)
        goto done;
    ctx = Py_BuildValue("{sOsOsO}", "message", msg, "exception", exc ? exc : Py_None, "handle",
                        (PyObject *)h);
    if (ctx == NULL)
        goto done;
    if (h->source_tb != NULL && PyObject_IsTrue(h->source_tb) == 1 &&
        PyDict_SetItemString(ctx, "source_traceback", h->source_tb) < 0)
        goto done;
    res = PyObject_CallMethodOneArg((PyObject *)loop, loop_str_call_exception_handler, ctx);
done:
    Py_XDECREF(type);
    Py_XDECREF(exc);
    Py_XDECREF(tb);
    Py_XDECREF(cb);
    Py_XDECREF(msg);
    Py_XDECREF(ctx);
    return res;
}

int loop_handle_run(PyLoopHandleObject *h)
{
    PyObject *cb = h->callback;
    PyObject *res;

    if (cb == NULL || h->cancelled)
        return 0;
    if (PyContext_Enter(h->context) < 0) {
        res = NULL;
    } else {
        /* The callback may cancel its own handle (dropping h->callback): hold it. */
        Py_INCREF(cb);
        if (h->args == NULL)
            res = PyObject_CallNoArgs(cb);
        else
            res = PyObject_Vectorcall(cb, &PyTuple_GET_ITEM(h->args, 0), PyTuple_GET_SIZE(h->args),
                                      NULL);
        Py_DECREF(cb);
        if (PyContext_Exit(h->context) < 0 && res != NULL)
            Py_CLEAR(res);
    }
    if (res != NULL) {
        Py_DECREF(res);
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
        return -1;
    res = handle_report(h);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

static PyObject *handle_cancel(PyLoopHandleObject *h, PyObject *unused)
{
    (void)unused;
    if (!h->cancelled) {
        h->cancelled = 1;
        if (h->scheduled && h->loop != NULL)
            loop_timer_cancelled(h->loop);
        /* Dropping the references may run arbitrary finalizers; the handle is consistent. */
        Py_CLEAR(h->callback);
        Py_CLEAR(h->args);
    }
    Py_RETURN_NONE;
}

static PyObject *handle_cancelled(PyLoopHandleObject *h, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(h->cancelled);
}

static PyObject *handle_get_context(PyLoopHandleObject *h, PyObject *unused)
{
    (void)unused;
    if (h->context == NULL)
        Py_RETURN_NONE;
    Py_INCREF(h->context);
    return h->context;
}

static PyObject *handle_when(PyLoopHandleObject *h, PyObject *unused)
{
    (void)unused;
    return PyFloat_FromDouble(h->when);
}

static PyObject *handle_repr(PyLoopHandleObject *h)
{
    PyObject *cb;
    PyObject *res;
    const char *name = Py_TYPE(h)->tp_name;
    const char *dot = strrchr(name, '.');

    if (dot != NULL)
        name = dot + 1;
    if (h->cancelled)
        return PyUnicode_FromFormat("<%s cancelled>", name);
    cb = handle_format_callback(h);
    if (cb == NULL)
        return NULL;
    if (h->is_timer) {
        PyObject *when = PyFloat_FromDouble(h->when);
        if (when == NULL) {
            Py_DECREF(cb);
            return NULL;
        }
        res = PyUnicode_FromFormat("<%s when=%R %U>", name, when, cb);
        Py_DECREF(when);
    } else {
        res = PyUnicode_FromFormat("<%s %U>", name, cb);
    }
    Py_DECREF(cb);
    if (res != NULL && h->source_tb != NULL && PyList_Check(h->source_tb) &&
        PyList_GET_SIZE(h->source_tb) > 0) {
        /* asyncio's form: "<Handle cb() created at file:line>" from the innermost frame. */
        PyObject *fs = PyList_GET_ITEM(h->source_tb, PyList_GET_SIZE(h->source_tb) - 1);
        PyObject *file = PyObject_GetAttrString(fs, "filename");
        PyObject *line = file ? PyObject_GetAttrString(fs, "lineno") : NULL;
        PyObject *head = line ? PyUnicode_Substring(res, 0, PyUnicode_GET_LENGTH(res) - 1) : NULL;
        PyObject *full = NULL;

        if (head != NULL)
            full = PyUnicode_FromFormat("%U created at %S:%S>", head, file, line);
        Py_XDECREF(head);
        Py_XDECREF(file);
        Py_XDECREF(line);
        if (full == NULL) {
            Py_DECREF(res);
            return NULL;
        }
        Py_SETREF(res, full);
    }
    return res;
}

/* Runs the handle like the loop would (exposed for compatibility with code calling _run). */
static PyObject *handle_py_run(PyLoopHandleObject *h, PyObject *unused)
{
    (void)unused;
    if (loop_handle_run(h) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *handle_get_callback(PyLoopHandleObject *h, void *closure)
{
    (void)closure;
    if (h->callback == NULL)
        Py_RETURN_NONE;
    Py_INCREF(h->callback);
    return h->callback;
}

static PyObject *handle_get_args(PyLoopHandleObject *h, void *closure)
{
    (void)closure;
    if (h->cancelled)
        Py_RETURN_NONE;
    if (h->args == NULL)
        return PyTuple_New(0);
    Py_INCREF(h->args);
    return h->args;
}

static PyObject *handle_get_loop(PyLoopHandleObject *h, void *closure)
{
    (void)closure;
    if (h->loop == NULL)
        Py_RETURN_NONE;
    Py_INCREF(h->loop);
    return (PyObject *)h->loop;
}

static PyMethodDef handle_methods[] = {
    {"cancel", (PyCFunction)handle_cancel, METH_NOARGS, "Cancel the callback."},
    {"cancelled", (PyCFunction)handle_cancelled, METH_NOARGS, "True once cancelled."},
    {"get_context", (PyCFunction)handle_get_context, METH_NOARGS, "The callback's context."},
    {"_run", (PyCFunction)handle_py_run, METH_NOARGS, "Run the callback now."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef timer_methods[] = {
    {"when", (PyCFunction)handle_when, METH_NOARGS, "Scheduled time, in loop.time() units."},
    {NULL, NULL, 0, NULL},
};

static PyObject *handle_get_source_tb(PyLoopHandleObject *h, void *closure)
{
    (void)closure;
    return Py_NewRef(h->source_tb ? h->source_tb : Py_None);
}

static PyGetSetDef handle_getset[] = {
    {"_source_traceback", (getter)handle_get_source_tb, NULL, NULL, NULL},
    {"_callback", (getter)handle_get_callback, NULL, NULL, NULL},
    {"_args", (getter)handle_get_args, NULL, NULL, NULL},
    {"_loop", (getter)handle_get_loop, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject PyLoopHandle_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.Handle",
    .tp_basicsize = sizeof(PyLoopHandleObject),
    .tp_dealloc = (destructor)handle_dealloc,
    .tp_repr = (reprfunc)handle_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A callback scheduled with call_soon().",
    .tp_traverse = (traverseproc)handle_traverse,
    .tp_clear = (inquiry)handle_clear,
    .tp_weaklistoffset = offsetof(PyLoopHandleObject, weakreflist),
    .tp_methods = handle_methods,
    .tp_getset = handle_getset,
};

PyTypeObject PyLoopTimerHandle_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.TimerHandle",
    .tp_basicsize = sizeof(PyLoopHandleObject),
    .tp_dealloc = (destructor)handle_dealloc,
    .tp_repr = (reprfunc)handle_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A callback scheduled with call_later() or call_at().",
    .tp_traverse = (traverseproc)handle_traverse,
    .tp_clear = (inquiry)handle_clear,
    .tp_methods = timer_methods,
};

int loop_handles_init(PyObject *module)
{
    PyLoopTimerHandle_Type.tp_base = &PyLoopHandle_Type;
    if (PyType_Ready(&PyLoopHandle_Type) < 0 || PyType_Ready(&PyLoopTimerHandle_Type) < 0)
        return -1;
    Py_INCREF(&PyLoopHandle_Type);
    if (PyModule_AddObject(module, "Handle", (PyObject *)&PyLoopHandle_Type) < 0) {
        Py_DECREF(&PyLoopHandle_Type);
        return -1;
    }
    Py_INCREF(&PyLoopTimerHandle_Type);
    if (PyModule_AddObject(module, "TimerHandle", (PyObject *)&PyLoopTimerHandle_Type) < 0) {
        Py_DECREF(&PyLoopTimerHandle_Type);
        return -1;
    }
    return 0;
}
