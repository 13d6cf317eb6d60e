/*
 * The native Task's engine: one step of the coroutine, what to do with what it yields, and
 * completion (the Future half: state, result, done callbacks). The rules are asyncio's
 * (Lib/asyncio/tasks.py Task.__step/__wakeup, Lib/asyncio/futures.py), with two shortcuts
 * that are the reason this type exists:
 *
 * - a step is queued by pushing the task itself on the loop's ready queue: no Handle, no
 *   bound-method wrapper, no call_soon lookup; run_once() recognises the task and calls
 *   loop_task_run_queued() (a bare `yield`, i.e. `await asyncio.sleep(0)`, costs a push);
 * - awaiting another native task or an exact asyncio.Future registers the wakeup through
 *   direct calls instead of attribute lookups.
 *
 * Invariant (as in asyncio): a pending task has either one step queued or one future it
 * waits on (fut_waiter), never both; the wakeup runs the step inline from the future's done
 * callback, inside the task's context (the callback was registered with it).
 */
#include "loop/task.h"

/* ---- current task (asyncio.current_task reads the same dict) ---- */

/* Known-hash dict calls: the loop is hashed once per enter/leave, not once per dict call. */
#if PY_VERSION_HEX < 0x030D0000
#define DICT_GET(d, k, h)    _PyDict_GetItem_KnownHash(d, k, h)
#define DICT_SET(d, k, v, h) _PyDict_SetItem_KnownHash(d, k, v, h)
#define DICT_DEL(d, k, h)    _PyDict_DelItem_KnownHash(d, k, h)
#else
#define DICT_GET(d, k, h)    PyDict_GetItemWithError(d, k)
#define DICT_SET(d, k, v, h) PyDict_SetItem(d, k, v)
#define DICT_DEL(d, k, h)    PyDict_DelItem(d, k)
#endif

/* Without the dict: asyncio.tasks._enter_task/_leave_task(loop, task). */
static int call_task_fn(PyObject *fn, PyObject *task)
{
    PyObject *res = PyObject_CallFunctionObjArgs(fn, (PyObject *)TASK(task)->loop, task, NULL);

    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

int task_enter(PyObject *task)
{
    PyObject *loop = (PyObject *)TASK(task)->loop;
    PyObject *cur;
    Py_hash_t hash;

    if (task_current_tasks == NULL)
        return call_task_fn(task_enter_fn, task);
    hash = PyObject_Hash(loop);
    if (hash == -1)
        return -1;
    cur = DICT_GET(task_current_tasks, loop, hash);
    if (cur != NULL) {
        PyErr_Format(PyExc_RuntimeError,
                     "Cannot enter into task %R while another task %R is being executed.", task,
                     cur);
        return -1;
    }
    if (PyErr_Occurred())
        return -1;
    return DICT_SET(task_current_tasks, loop, task, hash);
}

int task_leave(PyObject *task)
{
    PyObject *loop = (PyObject *)TASK(task)->loop;
    PyObject *cur;
    Py_hash_t hash;

    if (task_current_tasks == NULL)
        return call_task_fn(task_leave_fn, task);
    hash = PyObject_Hash(loop);
    if (hash == -1)
        return -1;
    cur = DICT_GET(task_current_tasks, loop, hash);
    if (cur != task) {
        if (cur == NULL && PyErr_Occurred())
            return -1;
        PyErr_Format(PyExc_RuntimeError, "Leaving task %R does not match the current task %R.",
                     task, cur != NULL ? cur : Py_None);
        return -1;
    }
    return DICT_DEL(task_current_tasks, loop, hash);
}

/* ---- completion ---- */

/* Schedules the done callbacks (each gets the task) and forgets them, like
 * Future.__schedule_callbacks: they run in later loop iterations, never inline. */
static int schedule_callbacks(PyObject *task)
{
    task_fields_t *t = TASK(task);
    PyObject *cb0 = t->cb0, *ctx0 = t->ctx0, *rest = t->callbacks;
    int rc = 0;

    t->cb0 = t->ctx0 = t->callbacks = NULL;
    if ((cb0 != NULL || rest != NULL) && t->loop == NULL) {
        Py_XDECREF(cb0);
        Py_XDECREF(ctx0);
        Py_XDECREF(rest);
        return task_not_initialized();
    }
    if (cb0 != NULL) {
        rc = loop_schedule_callback(t->loop, cb0, task, ctx0);
        Py_DECREF(cb0);
        Py_DECREF(ctx0);
    }
    if (rest != NULL) {
        for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(rest); i++) {
            PyObject *pair = PyList_GET_ITEM(rest, i);
            rc = loop_schedule_callback(t->loop, PyTuple_GET_ITEM(pair, 0), task,
                                        PyTuple_GET_ITEM(pair, 1));
        }
        Py_DECREF(rest);
    }
    return rc;
}

int task_finish_result(PyObject *task, PyObject *result)
{
    task_fields_t *t = TASK(task);

    Py_INCREF(result);
    Py_XSETREF(t->result, result);
    t->state = TASK_FINISHED;
    return schedule_callbacks(task);
}

int task_finish_exception(PyObject *task, PyObject *exc)
{
    task_fields_t *t = TASK(task);

    Py_INCREF(exc);
    Py_XSETREF(t->exception, exc);
    Py_XSETREF(t->exception_tb, PyException_GetTraceback(exc));
    t->state = TASK_FINISHED;
    if (schedule_callbacks(task) < 0)
        return -1;
    t->log_tb = 1;
    return 0;
}

/* Future.cancel(msg) on the future half: marks the task cancelled. */
int task_finish_cancel(PyObject *task, PyObject *msg)
{
    task_fields_t *t = TASK(task);

    t->log_tb = 0;
    if (t->state != TASK_PENDING)
        return 0;
    t->state = TASK_CANCELLED;
    Py_XINCREF(msg);
    Py_XSETREF(t->cancel_msg, msg);
    return schedule_callbacks(task);
}

PyObject *task_make_cancelled_error(PyObject *task)
{
    task_fields_t *t = TASK(task);
    PyObject *exc;

#if PY_VERSION_HEX >= 0x030B0000
    /* 3.11+: the coroutine's own CancelledError, once. */
    if (t->cancelled_exc != NULL) {
        exc = t->cancelled_exc;
        t->cancelled_exc = NULL;
        return exc;
    }
#endif
    if (t->cancel_msg == NULL || t->cancel_msg == Py_None)
        exc = PyObject_CallNoArgs(task_cancelled_error);
    else
        exc = PyObject_CallOneArg(task_cancelled_error, t->cancel_msg);
#if PY_VERSION_HEX < 0x030B0000
    /* 3.10: a new one, chained to the coroutine's. */
    if (exc != NULL && t->cancelled_exc != NULL) {
        PyException_SetContext(exc, t->cancelled_exc); /* steals */
        t->cancelled_exc = NULL;
    }
#endif
    return exc;
}

PyObject *task_raise_cancelled(PyObject *task)
{
    PyObject *exc = task_make_cancelled_error(task);

    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyObject *task_get_result(PyObject *task)
{
    task_fields_t *t = TASK(task);

    if (t->state == TASK_CANCELLED)
        return task_raise_cancelled(task);
    if (t->state != TASK_FINISHED) {
        PyErr_SetString(task_invalid_state, "Result is not set."); /* _asyncio's wording */
        return NULL;
    }
    t->log_tb = 0;
    if (t->exception != NULL) {
        PyObject *tb = t->exception_tb;
        if (tb != NULL)
            PyException_SetTraceback(t->exception, tb);
        PyErr_SetObject((PyObject *)Py_TYPE(t->exception), t->exception);
        return NULL;
    }
    return Py_NewRef(t->result != NULL ? t->result : Py_None);
}

int task_add_done_callback(PyObject *task, PyObject *fn, PyObject *ctx)
{
    task_fields_t *t = TASK(task);
    PyObject *pair;
    int rc;

    if (t->loop == NULL) /* __new__ without __init__: asyncio refuses the same way */
        return task_not_initialized();
    if (t->state != TASK_PENDING)
        return loop_schedule_callback(t->loop, fn, task, ctx);
    /* NULL: a copy of the current context now. An explicit None is kept, as _asyncio does:
     * the callback then runs in a copy of the context current when it is scheduled. */
    if (ctx == NULL) {
        ctx = PyContext_CopyCurrent();
        if (ctx == NULL)
            return -1;
    } else {
        Py_INCREF(ctx);
    }
    if (t->cb0 == NULL && (t->callbacks == NULL || PyList_GET_SIZE(t->callbacks) == 0)) {
        Py_INCREF(fn);
        t->cb0 = fn;
        t->ctx0 = ctx;
        return 0;
    }
    if (t->callbacks == NULL) {
        t->callbacks = PyList_New(0);
        if (t->callbacks == NULL) {
            Py_DECREF(ctx);
            return -1;
        }
    }
    pair = PyTuple_Pack(2, fn, ctx);
    Py_DECREF(ctx);
    if (pair == NULL)
        return -1;
    rc = PyList_Append(t->callbacks, pair);
    Py_DECREF(pair);
    return rc;
}

/* fut.cancel(msg=msg) on what a task waits for: a new reference to its answer. */
static PyObject *cancel_future(PyObject *fut, PyObject *msg)
{
    PyObject *args[2] = {fut, msg};

    if (loop_future_exact(fut) == 1)
        return task_cancel(fut, msg);
    if (loop_future_exact(fut) == 2)
        return future_cancel(fut, msg);
    if (Py_TYPE(fut) == loop_waiter_type)
        return loop_waiter_cancel(fut, msg);
    if (msg == NULL || msg == Py_None)
        return PyObject_VectorcallMethod(task_str_cancel, args, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                         NULL);
    return PyObject_VectorcallMethod(task_str_cancel, args, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                     task_kwnames_msg);
}

PyObject *future_cancel(PyObject *fut, PyObject *msg)
{
    if (TASK(fut)->state != TASK_PENDING) {
        TASK(fut)->log_tb = 0;
        Py_RETURN_FALSE;
    }
    if (task_finish_cancel(fut, msg) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

/* Task.cancel(msg=None): returns a new reference to True or False. */
PyObject *task_cancel(PyObject *task, PyObject *msg)
{
    task_fields_t *t = TASK(task);

    t->log_tb = 0;
    if (t->state != TASK_PENDING)
        Py_RETURN_FALSE;
    t->num_cancels_requested++;
    if (t->fut_waiter != NULL) {
        PyObject *waiter = Py_NewRef(t->fut_waiter);
        PyObject *res = cancel_future(waiter, msg);
        int cancelled;
        Py_DECREF(waiter);
        if (res == NULL)
            return NULL;
        cancelled = PyObject_IsTrue(res);
        Py_DECREF(res);
        if (cancelled < 0)
            return NULL;
        /* The waiter's callback wakes us with CancelledError; fut_waiter stays, it may be a
         * task that ignores the request and must be cancelled again. */
        if (cancelled)
            Py_RETURN_TRUE;
    }
    t->must_cancel = 1;
    Py_XINCREF(msg);
    Py_XSETREF(t->cancel_msg, msg);
    Py_RETURN_TRUE;
}

/* ---- stepping ---- */

int task_not_initialized(void)
{
    PyErr_SetString(PyExc_RuntimeError, "Future object is not initialized.");
    return -1;
}

int task_schedule_step(PyObject *task, PyObject *exc)
{
    task_fields_t *t = TASK(task);

    if (t->loop == NULL)
        return task_not_initialized();
    if (loop_check_open(t->loop) < 0)
        return -1;
    Py_XINCREF(exc);
    Py_XSETREF(t->step_exc, exc);
    Py_INCREF(task); /* the ready queue's reference */
    if (loop_ready_push(t->loop, (PyLoopHandleObject *)task) < 0) {
        Py_DECREF(task);
        return -1;
    }
    return 0;
}

/* A RuntimeError(msg) thrown into the coroutine at its next step: asyncio's reaction to a
 * bad yield. Takes the reference to msg (NULL: an error is already set). */
static int schedule_error(PyObject *task, PyObject *msg)
{
    PyObject *err;
    int rc;

    if (msg == NULL)
        return -1;
    err = PyObject_CallOneArg(PyExc_RuntimeError, msg);
    Py_DECREF(msg);
    if (err == NULL)
        return -1;
    rc = task_schedule_step(task, err);
    Py_DECREF(err);
    return rc;
}

/* The step's wakeup, registered as the awaited future's done callback (in the task's
 * context): a builtin method bound to the task, like CPython's task_wakeup, so that repr and
 * __self__ look familiar. */
static PyObject *task_wakeup(PyObject *task, PyObject *fut);
static PyMethodDef wakeup_def = {"task_wakeup", (PyCFunction)task_wakeup, METH_O, NULL};

static PyObject *task_wakeup(PyObject *task, PyObject *fut)
{
    PyObject *res, *exc = NULL;
    int rc;

    if (loop_future_exact(fut))
        res = task_get_result(fut);
    else if (task_is_exact_future(fut))
        res = PyObject_Vectorcall(task_fut_result, &fut, 1, NULL);
    else
        res = PyObject_CallMethodNoArgs(fut, task_str_result);
    if (res == NULL) {
        exc = loop_fetch_exception();
        if (exc == NULL)
            return NULL;
    } else {
        Py_DECREF(res);
    }
    Py_INCREF(task);
    rc = task_step(task, exc);
    Py_DECREF(task);
    Py_XDECREF(exc);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The coroutine yielded a Future-like object with _asyncio_future_blocking true: wait for
 * it (asyncio's rules: same loop, not itself, then add the wakeup as its done callback). */
static int await_future(PyObject *task, PyObject *fut)
{
    task_fields_t *t = TASK(task);
    PyObject *wakeup, *res;
    PyObject *fut_loop;
    int rc;

    if (loop_future_exact(fut)) {
        /* Made by __new__ alone: throw the error into the coroutine (which can see and
         * handle it) rather than leave the task waiting forever. */
        if (TASK(fut)->loop == NULL)
            return schedule_error(task, PyUnicode_FromString("Future object is not initialized."));
        fut_loop = Py_NewRef((PyObject *)TASK(fut)->loop);
    } else if (task_is_exact_future(fut)) {
        fut_loop = task_fut_loop->get(fut, task_fut_loop->closure);
        if (fut_loop == NULL)
            return -1;
    } else {
        /* asyncio's futures._get_loop: get_loop(), else the _loop attribute. */
        fut_loop = PyObject_CallMethodNoArgs(fut, task_str_get_loop);
        if (fut_loop == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
            PyErr_Clear();
            fut_loop = PyObject_GetAttr(fut, task_str_loop);
        }
        if (fut_loop == NULL)
            return -1;
    }
    rc = fut_loop == (PyObject *)t->loop;
    Py_DECREF(fut_loop);
    if (!rc)
        return schedule_error(
            task,
            PyUnicode_FromFormat("Task %R got Future %R attached to a different loop", task, fut));
    if (fut == task)
        return schedule_error(task, PyUnicode_FromFormat("Task cannot await on itself: %R", task));

    wakeup = PyCFunction_New(&wakeup_def, task);
    if (wakeup == NULL)
        return -1;
    if (loop_future_exact(fut)) {
        TASK(fut)->blocking = 0;
        rc = task_add_done_callback(fut, wakeup, t->context);
    } else if (task_is_exact_future(fut)) {
        PyObject *args[3] = {fut, wakeup, t->context};
        rc = task_fut_blocking->set(fut, Py_False, task_fut_blocking->closure);
        if (rc == 0) {
            res = PyObject_Vectorcall(task_fut_add_done_callback, args, 2, task_kwnames_context);
            rc = res == NULL ? -1 : 0;
            Py_XDECREF(res);
        }
    } else {
        PyObject *args[3] = {fut, wakeup, t->context};
        rc = PyObject_SetAttr(fut, task_str_blocking, Py_False);
        if (rc == 0) {
            res =
                PyObject_VectorcallMethod(task_str_add_done_callback, args,
                                          2 | PY_VECTORCALL_ARGUMENTS_OFFSET, task_kwnames_context);
            rc = res == NULL ? -1 : 0;
            Py_XDECREF(res);
        }
    }
    Py_DECREF(wakeup);
    if (rc < 0)
        return -1;
    Py_INCREF(fut);
    Py_XSETREF(t->fut_waiter, fut);
    if (t->must_cancel) {
        PyObject *cancelled = cancel_future(fut, t->cancel_msg);
        if (cancelled == NULL)
            return -1;
        if (cancelled == Py_True)
            t->must_cancel = 0;
        Py_DECREF(cancelled);
    }
    return 0;
}

/* The coroutine yielded a waiter (waiter.c): the task is recorded in it and woken by a step
 * pushed on the ready queue, with no done callback (no bound wakeup object while it waits). */
static int await_waiter(PyObject *task, PyObject *waiter)
{
    task_fields_t *t = TASK(task);

    if (loop_waiter_loop(waiter) != t->loop)
        return schedule_error(
            task, PyUnicode_FromFormat("Task %R got Future %R attached to a different loop", task,
                                       waiter));
    if (loop_waiter_attach(waiter, task) < 0)
        return -1;
    Py_INCREF(waiter);
    Py_XSETREF(t->fut_waiter, waiter);
    if (t->must_cancel) {
        PyObject *cancelled = loop_waiter_cancel(waiter, t->cancel_msg);
        if (cancelled == NULL)
            return -1;
        if (cancelled == Py_True)
            t->must_cancel = 0;
        Py_DECREF(cancelled);
    }
    return 0;
}

/* What the coroutine yielded (asyncio's __step "else" branch). */
static int handle_yield(PyObject *task, PyObject *result)
{
    PyObject *blocking;

    if (result == Py_None) /* bare yield: run again in the next iteration */
        return task_schedule_step(task, NULL);
    if (Py_TYPE(result) == loop_waiter_type)
        return await_waiter(task, result);
    if (loop_future_exact(result)) {
        blocking = Py_NewRef(TASK(result)->blocking ? Py_True : Py_False);
    } else if (task_is_exact_future(result)) {
        blocking = task_fut_blocking->get(result, task_fut_blocking->closure);
        if (blocking == NULL)
            return -1;
    } else if (task_lookup_attr(result, task_str_blocking, &blocking) < 0) {
        return -1;
    }
    if (blocking != NULL && blocking != Py_None) {
        int b = PyObject_IsTrue(blocking);
        Py_DECREF(blocking);
        if (b < 0)
            return -1;
        if (b)
            return await_future(task, result);
        return schedule_error(
            task, PyUnicode_FromFormat("yield was used instead of yield from in task %R with %R",
                                       task, result));
    }
    Py_XDECREF(blocking);
    if (PyGen_Check(result))
        return schedule_error(task, PyUnicode_FromFormat("yield was used instead of yield from "
                                                         "for generator in task %R with %R",
                                                         task, result));
    return schedule_error(task, PyUnicode_FromFormat("Task got bad yield: %R", result));
}

/* Sends into (or throws into) the coroutine; returns what PyIter_Send would, the yielded or
 * returned value in *out. */
static PySendResult coro_resume(PyObject *coro, PyObject *exc, PyObject **out)
{
    PyObject *res;

    if (exc == NULL)
        return PyIter_Send(coro, Py_None, out);
    res = PyObject_CallMethodOneArg(coro, task_str_throw, exc);
    if (res != NULL) {
        *out = res;
        return PYGEN_NEXT;
    }
    if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
        PyObject *stop = loop_fetch_exception();
        *out = stop != NULL ? PyObject_GetAttrString(stop, "value") : NULL;
        Py_XDECREF(stop);
        return *out != NULL ? PYGEN_RETURN : PYGEN_ERROR;
    }
    *out = NULL;
    return PYGEN_ERROR;
}

/* Runs the coroutine once and records the outcome (asyncio's __step_run_and_handle_result).
 * Returns 0, or -1 with an exception to propagate. */
static int step_run(PyObject *task, PyObject *exc)
{
    task_fields_t *t = TASK(task);
    PyObject *out, *err;
    PySendResult r;
    int rc;

    r = coro_resume(t->coro, exc, &out);
    if (r == PYGEN_NEXT) {
        rc = handle_yield(task, out);
        Py_DECREF(out);
        return rc;
    }
    if (r == PYGEN_RETURN) {
        if (t->must_cancel) {
            /* Cancelled right before the coroutine returned. */
            t->must_cancel = 0;
            rc = task_finish_cancel(task, t->cancel_msg);
        } else {
            rc = task_finish_result(task, out);
        }
        Py_DECREF(out);
        return rc;
    }
    err = loop_fetch_exception();
    if (err == NULL)
        return -1;
    if (PyErr_GivenExceptionMatches(err, task_cancelled_error)) {
        Py_XSETREF(t->cancelled_exc, err);
        return task_finish_cancel(task, Py_None);
    }
    rc = task_finish_exception(task, err);
    if (rc == 0 && loop_is_base_exception(err)) {
        /* KeyboardInterrupt and SystemExit stop the loop, as in asyncio. */
        PyErr_SetObject((PyObject *)Py_TYPE(err), err);
        rc = -1;
    }
    Py_DECREF(err);
    return rc;
}

int task_step(PyObject *task, PyObject *exc)
{
    task_fields_t *t = TASK(task);
    PyObject *thrown = NULL;
    int rc;

    if (t->state != TASK_PENDING) {
        PyErr_Format(task_invalid_state, "_step(): already done: %R, %R", task,
                     exc != NULL ? exc : Py_None);
        return -1;
    }
    if (t->must_cancel) {
        if (exc == NULL || !PyErr_GivenExceptionMatches(exc, task_cancelled_error)) {
            thrown = task_make_cancelled_error(task);
            if (thrown == NULL)
                return -1;
            exc = thrown;
        }
        t->must_cancel = 0;
    }
    Py_CLEAR(t->fut_waiter);
    if (task_enter(task) < 0) {
        Py_XDECREF(thrown);
        return -1;
    }
    rc = step_run(task, exc);
    Py_XDECREF(thrown);
    if (rc == 0)
        return task_leave(task);
    /* Leave with the step's exception put aside (dict calls must not see it). */
    {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (task_leave(task) < 0)
            PyErr_WriteUnraisable(task);
        PyErr_Restore(type, value, tb);
    }
    return -1;
}

int loop_task_run_queued(PyObject *task)
{
    task_fields_t *t = TASK(task);
    PyObject *exc = t->step_exc, *ctx = t->context;
    int rc;

    t->step_exc = NULL;
    if (t->state != TASK_PENDING) {
        /* Only a task completed behind the queue's back (never by asyncio's rules). */
        Py_XDECREF(exc);
        return 0;
    }
    Py_INCREF(ctx);
    if (PyContext_Enter(ctx) < 0) {
        rc = -1;
    } else {
        rc = task_step(task, exc);
        if (PyContext_Exit(ctx) < 0)
            rc = -1;
    }
    Py_DECREF(ctx);
    Py_XDECREF(exc);
    return rc;
}

int task_eager_start(PyObject *task)
{
    task_fields_t *t = TASK(task);
    PyObject *loop = (PyObject *)t->loop, *prev, *res, *cur;
    int rc, registered;

    prev = PyObject_CallFunctionObjArgs(task_swap_fn, loop, task, NULL);
    if (prev == NULL)
        return -1;
    res = PyObject_CallOneArg(task_register_eager_fn, task);
    registered = res != NULL;
    if (!registered) {
        rc = -1;
    } else {
        Py_DECREF(res);
        if (PyContext_Enter(t->context) < 0) {
            rc = -1;
        } else {
            rc = step_run(task, NULL);
            if (PyContext_Exit(t->context) < 0)
                rc = -1;
        }
    }
    /* Undo the registration and the swap with the step's exception (if any) put aside. */
    {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (registered) {
            res = PyObject_CallOneArg(task_unregister_eager_fn, task);
            if (res == NULL)
                PyErr_WriteUnraisable(task);
            Py_XDECREF(res);
        }
        cur = PyObject_CallFunctionObjArgs(task_swap_fn, loop, prev, NULL);
        if (cur == NULL)
            PyErr_WriteUnraisable(task);
        Py_XDECREF(cur);
        PyErr_Restore(type, value, tb);
    }
    Py_DECREF(prev);
    if (rc < 0)
        return -1;
    if (t->state != TASK_PENDING) {
        Py_CLEAR(t->coro); /* as asyncio: a task done eagerly lets its coroutine go */
        return 0;
    }
    res = PyObject_CallOneArg(task_register_fn, task);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}
