/*
 * What receive() and send() return. The ASGI main spec ("Applications") only asks for
 * awaitables; most calls can answer at once (the body is already here, a piece was queued
 * below the write limit), so the object usually holds its result and `await` returns it
 * without suspending: no Future, no loop iteration. When the call must wait (receive()
 * before the client leaves, send() over the write limit) it wraps a loop future and
 * delegates to the future's own await iterator, so the Task waits on that future as usual.
 *
 * The type has send/throw/close and __await__, so collections.abc.Coroutine recognises it
 * and asyncio.create_task(receive()) works as it does with uvicorn's `async def` receive.
 */
#include "asgi/asgi_internal.h"

typedef struct {
    PyObject_HEAD
    PyObject *value; /* the result, until returned */
    PyObject *iter;  /* the awaited future's iterator, or NULL */
} AsgiAwaitableObject;

static PyObject *new_awaitable(PyObject *value, PyObject *iter)
{
    AsgiAwaitableObject *w = PyObject_GC_New(AsgiAwaitableObject, &AsgiAwaitable_Type);
    if (w == NULL) {
        Py_XDECREF(value);
        Py_XDECREF(iter);
        return NULL;
    }
    w->value = value;
    w->iter = iter;
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

PyObject *asgi_ready(PyObject *value)
{
    if (value == NULL)
        return NULL;
    return new_awaitable(value, NULL);
}

PyObject *asgi_waiting(PyObject *future)
{
    PyObject *iter = PyObject_CallMethodNoArgs(future, asgi_str.await_);
    if (iter == NULL)
        return NULL;
    return new_awaitable(NULL, iter);
}

void asgi_resolve(PyObject *fut, PyObject *value)
{
    PyObject *done = PyObject_CallMethodNoArgs(fut, asgi_str.done);
    int is_done = done ? PyObject_IsTrue(done) : -1;
    Py_XDECREF(done);
    if (is_done == 0) {
        PyObject *r = PyObject_CallMethodOneArg(fut, asgi_str.set_result, value);
        is_done = r ? 1 : -1;
        Py_XDECREF(r);
    }
    if (is_done < 0)
        PyErr_WriteUnraisable(fut);
}

void asgi_fail(PyObject *fut, PyObject *exc)
{
    PyObject *done = PyObject_CallMethodNoArgs(fut, asgi_str.done);
    int is_done = done ? PyObject_IsTrue(done) : -1;
    Py_XDECREF(done);
    if (is_done == 0) {
        PyObject *r = PyObject_CallMethodOneArg(fut, asgi_str.set_exception, exc);
        is_done = r ? 1 : -1;
        Py_XDECREF(r);
    }
    if (is_done < 0)
        PyErr_WriteUnraisable(fut);
}

static PySendResult aw_am_send(AsgiAwaitableObject *w, PyObject *arg, PyObject **out)
{
    if (w->iter != NULL) {
        PySendResult r = PyIter_Send(w->iter, arg, out);
        if (r != PYGEN_NEXT)
            Py_CLEAR(w->iter);
        return r;
    }
    if (w->value != NULL) {
        *out = w->value;
        w->value = NULL;
        return PYGEN_RETURN;
    }
    PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited ASGI awaitable");
    *out = NULL;
    return PYGEN_ERROR;
}

/* StopIteration(value), the way a coroutine returns a value to `yield from`. */
static void set_stop_iteration(PyObject *value)
{
    if (value == Py_None) {
        PyErr_SetNone(PyExc_StopIteration);
        return;
    }
    PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (e != NULL) {
        PyErr_SetObject(PyExc_StopIteration, e);
        Py_DECREF(e);
    }
}

static PyObject *aw_send(AsgiAwaitableObject *w, PyObject *arg)
{
    PyObject *out = NULL;
    PySendResult r = aw_am_send(w, arg, &out);
    if (r == PYGEN_NEXT)
        return out;
    if (r == PYGEN_RETURN) {
        set_stop_iteration(out);
        Py_DECREF(out);
    }
    return NULL;
}

static PyObject *aw_iternext(AsgiAwaitableObject *w)
{
    return aw_send(w, Py_None);
}

static PyObject *aw_throw(AsgiAwaitableObject *w, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
        return NULL;
    }
    Py_CLEAR(w->value);
    if (w->iter != NULL) {
        PyObject *meth = PyObject_GetAttr(w->iter, asgi_str.throw_);
        PyObject *r = meth ? PyObject_Vectorcall(meth, args, (size_t)nargs, NULL) : NULL;
        Py_XDECREF(meth);
        if (r == NULL)
            Py_CLEAR(w->iter);
        return r;
    }
    /* Nothing to delegate to: the exception comes straight back, as from a coroutine
     * that has not started. */
    PyObject *typ = args[0];
    if (PyExceptionInstance_Check(typ))
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    else if (PyExceptionClass_Check(typ))
        PyErr_SetObject(typ, nargs > 1 ? args[1] : Py_None);
    else
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
    return NULL;
}

static PyObject *aw_close(AsgiAwaitableObject *w, PyObject *unused)
{
    (void)unused;
    Py_CLEAR(w->value);
    Py_CLEAR(w->iter);
    Py_RETURN_NONE;
}

static PyObject *aw_self(PyObject *self)
{
    return Py_NewRef(self);
}

static int aw_traverse(AsgiAwaitableObject *w, visitproc visit, void *arg)
{
    Py_VISIT(w->value);
    Py_VISIT(w->iter);
    return 0;
}

static int aw_clear(AsgiAwaitableObject *w)
{
    Py_CLEAR(w->value);
    Py_CLEAR(w->iter);
    return 0;
}

static void aw_dealloc(AsgiAwaitableObject *w)
{
    PyObject_GC_UnTrack(w);
    aw_clear(w);
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyMethodDef aw_methods[] = {
    {"send", (PyCFunction)aw_send, METH_O, "Resume with a value, like coroutine.send()."},
    {"throw", (PyCFunction)(void (*)(void))aw_throw, METH_FASTCALL,
     "Raise an exception at the await, like coroutine.throw()."},
    {"close", (PyCFunction)aw_close, METH_NOARGS, "Drop the result."},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods aw_async = {
    .am_await = aw_self,
    .am_send = (sendfunc)aw_am_send,
};

PyTypeObject AsgiAwaitable_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core._AsgiAwaitable",
    .tp_basicsize = sizeof(AsgiAwaitableObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The awaitable result of an ASGI receive() or send() call.",
    .tp_as_async = &aw_async,
    .tp_traverse = (traverseproc)aw_traverse,
    .tp_clear = (inquiry)aw_clear,
    .tp_dealloc = (destructor)aw_dealloc,
    .tp_iter = aw_self,
    .tp_iternext = (iternextfunc)aw_iternext,
    .tp_methods = aw_methods,
};
