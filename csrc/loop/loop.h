/*
 * PyLoop: an asyncio event loop implemented in C over libuv. This header is the contract
 * between the loop and the other native components (the server runs its listener and
 * connections as libuv handles on the loop's uv_loop_t).
 *
 * GIL protocol: the loop releases the GIL in its uv_prepare callback (just before libuv
 * polls for I/O) and the first native callback that runs afterwards takes it back by
 * calling pyloop_enter(). Every libuv callback that touches Python objects - in the loop
 * or in any other component - must call pyloop_enter() before doing so.
 */
#ifndef DB_LOOP_LOOP_H
#define DB_LOOP_LOOP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <uv.h>

typedef struct PyLoopObject PyLoopObject;

/* Returns 1 when obj is a PyLoop (or subclass) instance. */
int pyloop_check(PyObject *obj);
/* The loop's libuv loop; obj must pass pyloop_check. */
uv_loop_t *pyloop_uv_loop(PyObject *obj);
/* The PyLoop that owns a libuv loop (stored in uv_loop_t.data). */
PyLoopObject *pyloop_from_uv(uv_loop_t *uvl);
/* Re-acquires the GIL if the loop released it for polling. Cheap when already held. */
void pyloop_enter(PyLoopObject *loop);
/* Routes the current Python exception to loop.call_exception_handler() with the given
 * message (and clears it); never leaves an exception set. */
void pyloop_report_exception(PyLoopObject *loop, const char *message);

/* The current exception as one object (NULL if none), and back: what every component that
 * carries an exception across an async boundary (a handler's, an ASGI app's) needs; 3.12
 * deprecates the three-object form. */
static inline PyObject *pyloop_fetch_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (t == NULL)
        return NULL;
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb != NULL && v != NULL)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
#endif
}

static inline void pyloop_restore_exception(PyObject *exc)
{
    if (exc == NULL)
        return;
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* A light awaitable for one value a native component produces later (waiter.c): about 70
 * bytes where a loop Future costs over 400 while a coroutine waits on it. pyloop_waiter_new
 * takes a PyLoop (TypeError otherwise). pyloop_waiter_pending: 1 while nobody resolved,
 * cancelled or abandoned it (a coroutine that stopped awaiting it). pyloop_waiter_set_result
 * wakes the coroutine waiting: 1 when set, 0 when it was no longer pending (the value was
 * not taken), -1 with an exception; pyloop_waiter_set_exception likewise, the await then
 * raising exc. */
PyObject *pyloop_waiter_new(PyObject *loop);
int pyloop_waiter_pending(PyObject *waiter);
int pyloop_waiter_set_result(PyObject *waiter, PyObject *value);
int pyloop_waiter_set_exception(PyObject *waiter, PyObject *exc);

/* Registers the loop types on the extension module. Returns 0 or -1 with an exception. */
int loop_module_init(PyObject *module);

#endif
