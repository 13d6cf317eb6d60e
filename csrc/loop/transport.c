/*
 * Behaviour shared by the native transports (stream.c, udp.c) that does not depend on the
 * kind of libuv handle: asyncio's exception-handler context for transport errors, the
 * write-buffer limits of asyncio's _FlowControlMixin and the pause_writing/resume_writing
 * calls, and handing SystemExit/KeyboardInterrupt back to run_forever.
 */
#include "loop/loop_internal.h"

PyObject *loop_fetch_exception(void)
{
    PyObject *type, *exc, *tb;

    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (exc != NULL && tb != NULL)
        PyException_SetTraceback(exc, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return exc;
}

int loop_is_base_exception(PyObject *exc)
{
    return PyErr_GivenExceptionMatches(exc, PyExc_SystemExit) ||
           PyErr_GivenExceptionMatches(exc, PyExc_KeyboardInterrupt);
}

/* Exceptions cannot cross libuv: the first one is kept and run_forever re-raises it once
 * uv_run returns (uv_stop makes that prompt). */
void loop_defer_base_exception(PyLoopObject *loop, PyObject *exc)
{
    if (loop->pending_exc == NULL) {
        loop->pending_exc = exc;
        if (loop->nat != NULL)
            uv_stop(&loop->nat->uvl);
    } else {
        Py_DECREF(exc);
    }
}

void loop_transport_report(PyLoopObject *loop, PyObject *transport, PyObject *protocol,
                           const char *message, PyObject *exc)
{
    PyObject *ctx, *res = NULL;

    ctx = Py_BuildValue("{sssOsOsO}", "message", message, "exception", exc, "transport", transport,
                        "protocol", protocol ? protocol : Py_None);
    if (ctx != NULL)
        res = PyObject_CallMethodOneArg((PyObject *)loop, loop_str_call_exception_handler, ctx);
    if (res == NULL)
        PyErr_WriteUnraisable(transport);
    Py_XDECREF(res);
    Py_XDECREF(ctx);
}

/* asyncio's _maybe_pause_protocol / _maybe_resume_protocol call: an error is reported to
 * the exception handler and the transport stays open; SystemExit/KeyboardInterrupt go to
 * run_forever. */
void loop_transport_flow_call(PyLoopObject *loop, PyObject *transport, PyObject *protocol,
                              PyObject *method, const char *message)
{
    PyObject *res = PyObject_CallMethodNoArgs(protocol, method), *exc;

    if (res != NULL) {
        Py_DECREF(res);
        return;
    }
    exc = loop_fetch_exception();
    if (exc == NULL)
        return;
    if (loop_is_base_exception(exc)) {
        loop_defer_base_exception(loop, exc);
        return;
    }
    loop_transport_report(loop, transport, protocol, message, exc);
    Py_DECREF(exc);
}

/* set_write_buffer_limits(high=None, low=None), asyncio's rules: high defaults to 4 * low,
 * or default_high when neither is given; low defaults to high / 4; high >= low >= 0. */
int loop_parse_write_limits(PyObject *args, PyObject *kwds, size_t default_high, size_t *high_out,
                            size_t *low_out)
{
    static char *kwlist[] = {"high", "low", NULL};
    PyObject *high_o = Py_None, *low_o = Py_None;
    Py_ssize_t high, low;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:set_write_buffer_limits", kwlist, &high_o,
                                     &low_o))
        return -1;
    if (high_o == Py_None) {
        if (low_o == Py_None) {
            high = (Py_ssize_t)default_high;
        } else {
            low = PyLong_AsSsize_t(low_o);
            if (low == -1 && PyErr_Occurred())
                return -1;
            high = 4 * low;
        }
    } else {
        high = PyLong_AsSsize_t(high_o);
        if (high == -1 && PyErr_Occurred())
            return -1;
    }
    if (low_o == Py_None) {
        low = high / 4;
    } else {
        low = PyLong_AsSsize_t(low_o);
        if (low == -1 && PyErr_Occurred())
            return -1;
    }
    if (!(high >= low && low >= 0)) {
        PyErr_Format(PyExc_ValueError, "high (%zd) must be >= low (%zd) must be >= 0", high, low);
        return -1;
    }
    *high_out = (size_t)high;
    *low_out = (size_t)low;
    return 0;
}

/* A transport's protocol callbacks that libuv's callbacks make (data_received, eof_received,
 * get_buffer/buffer_updated, resume_writing after a write completes) run in the
 * transport's context, a copy of the context current when the transport was made, as in
 * uvloop (asyncio's selector loop gets the same from the reader/writer handles it registers
 * while making the transport). The context is entered around those calls only; a context
 * that is already current (entered by a caller up the stack) makes PyContext_Enter fail
 * with RuntimeError, and the call then simply runs in it. */
PyObject *loop_context_enter(PyObject *ctx)
{
    if (ctx == NULL)
        return NULL;
    if (PyContext_Enter(ctx) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return Py_NewRef(ctx);
}

void loop_context_exit(PyObject *entered)
{
    PyObject *type, *exc, *tb;

    if (entered == NULL)
        return;
    /* An exception the callback left set for the caller survives the exit. */
    PyErr_Fetch(&type, &exc, &tb);
    if (PyContext_Exit(entered) < 0)
        PyErr_WriteUnraisable(entered);
    PyErr_Restore(type, exc, tb);
    Py_DECREF(entered);
}

/* _set_context(ctx): the transport's callbacks run in ctx from now on (see above). */
int loop_context_set(PyObject **slot, PyObject *ctx)
{
    if (!PyContext_CheckExact(ctx)) {
        PyErr_SetString(PyExc_TypeError, "a contextvars.Context was expected");
        return -1;
    }
    Py_INCREF(ctx);
    Py_XSETREF(*slot, ctx);
    return 0;
}
