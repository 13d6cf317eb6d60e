/*
 * The loop's engine: one iteration (_run_once) and run_forever's core, plus the loop's own
 * libuv handles and their callbacks.
 *
 * One iteration, like asyncio's BaseEventLoop._run_once:
 *   1. decide whether libuv may block: not if the ready queue is non-empty or stop() was
 *      called; otherwise arm the single uv_timer_t for the earliest live timer (or stop it);
 *   2. uv_run(UV_RUN_NOWAIT or UV_RUN_ONCE): I/O callbacks of all components run here;
 *   3. move due timers to the ready queue;
 *   4. run exactly the handles that were ready at this point; callbacks they schedule run
 *      in the next iteration.
 *
 * GIL protocol (see loop.h): the prepare callback releases the GIL only when this uv_run may
 * block, storing the thread state in loop->saved_tstate. libuv then polls; any callback that
 * touches Python calls pyloop_enter() first; the check callback (and the code after uv_run)
 * re-acquires the GIL if no callback did. In 1.44 the order inside uv_run is: timers,
 * pending, idle, prepare, poll (I/O callbacks), check, closing, timers (ONCE mode), so
 * pending/timer/close callbacks always run with the GIL held and I/O callbacks may not.
 * Because timers and pending callbacks run before prepare, the prepare callback also turns
 * the poll into a non-blocking one (uv_stop) when they queued work, and the loop's own timer
 * callback does the same: in UV_RUN_ONCE mode a timer that fires before polling would
 * otherwise leave libuv polling with no timeout at all.
 *
 * Ownership: the libuv handles live in loop_native_t and point back to it through
 * handle->data; the native block is freed only after every handle's close callback ran and
 * uv_loop_close() succeeded.
 */
#include "loop/loop_internal.h"

#include <math.h>
#include <unistd.h>

static void on_prepare(uv_prepare_t *handle)
{
    loop_native_t *nat = handle->data;
    PyLoopObject *loop = nat->owner;

    if (loop == NULL)
        return;
    /* Callbacks that ran earlier in this iteration (timers of any component, pending write
     * callbacks) may have queued work: then the poll must not block. uv_stop() makes libuv
     * poll with a zero timeout and return after this iteration. */
    if (loop->ready_len > 0 || loop->stopping || loop->pending_exc != NULL) {
        uv_stop(&nat->uvl);
        return;
    }
    if (loop->may_block && loop->saved_tstate == NULL)
        loop->saved_tstate = PyEval_SaveThread();
}

static void on_check(uv_check_t *handle)
{
    loop_native_t *nat = handle->data;

    if (nat->owner != NULL)
        pyloop_enter(nat->owner);
}

static void on_timer(uv_timer_t *handle)
{
    loop_native_t *nat = handle->data;

    /* Due timers are moved to the ready queue after uv_run returns. In UV_RUN_ONCE mode
     * libuv 1.44 runs due timers *before* polling: if the deadline passed between
     * uv_timer_start() and uv_run() (the thread was descheduled), the timer fires there and
     * the poll would then block with no timeout at all. uv_stop() turns that poll into a
     * non-blocking one. */
    uv_stop(&nat->uvl);
}

static void on_async(uv_async_t *handle)
{
    /* call_soon_threadsafe already queued the handle; this only ended the poll. */
    (void)handle;
}

static void on_wakeup(uv_poll_t *handle, int status, int events)
{
    loop_native_t *nat = handle->data;
    char buf[256];

    (void)status;
    (void)events;
    /* Drain the signal wakeup socket without Python; the Python-level signal handlers run
     * from PyErr_CheckSignals() after uv_run returns, with the GIL held. */
    while (read(nat->wakeup_fd, buf, sizeof(buf)) > 0) {
    }
}

static void on_native_close(uv_handle_t *handle)
{
    loop_native_t *nat = handle->data;

    nat->handles_open--;
}

int loop_native_start(PyLoopObject *loop)
{
    loop_native_t *nat = PyMem_RawCalloc(1, sizeof(*nat));
    int rc;

    if (nat == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    rc = uv_loop_init(&nat->uvl);
    if (rc < 0) {
        PyMem_RawFree(nat);
        PyErr_Format(PyExc_OSError, "uv_loop_init: %s", uv_strerror(rc));
        return -1;
    }
    nat->uvl.data = loop;
    nat->owner = loop;
    nat->wakeup_fd = -1;
    /* None of these can fail on an initialised loop (libuv only validates arguments). */
    uv_prepare_init(&nat->uvl, &nat->prepare);
    uv_check_init(&nat->uvl, &nat->check);
    uv_timer_init(&nat->uvl, &nat->timer);
    rc = uv_async_init(&nat->uvl, &nat->async, on_async);
    if (rc < 0) {
        /* The three handles above were never started; close them and the loop. */
        nat->prepare.data = nat->check.data = nat->timer.data = nat;
        nat->handles_open = 3;
        uv_close((uv_handle_t *)&nat->prepare, on_native_close);
        uv_close((uv_handle_t *)&nat->check, on_native_close);
        uv_close((uv_handle_t *)&nat->timer, on_native_close);
        uv_run(&nat->uvl, UV_RUN_NOWAIT);
        uv_loop_close(&nat->uvl);
        PyMem_RawFree(nat);
        PyErr_Format(PyExc_OSError, "uv_async_init: %s", uv_strerror(rc));
        return -1;
    }
    nat->prepare.data = nat->check.data = nat->timer.data = nat->async.data = nat;
    nat->handles_open = 4;
    uv_prepare_start(&nat->prepare, on_prepare);
    uv_check_start(&nat->check, on_check);
    /* prepare/check must not keep the loop alive by themselves; the async handle does, so
     * that run_forever with nothing scheduled blocks in poll like asyncio's select(). */
    uv_unref((uv_handle_t *)&nat->prepare);
    uv_unref((uv_handle_t *)&nat->check);
    uv_unref((uv_handle_t *)&nat->timer);
    loop->nat = nat;
    return 0;
}

int loop_native_close(PyLoopObject *loop)
{
    loop_native_t *nat = loop->nat;
    int rc;

    if (nat == NULL)
        return 0;
    loop->nat = NULL;
    if (nat->wakeup_active) {
        nat->wakeup_active = 0;
        nat->handles_open++;
        uv_close((uv_handle_t *)&nat->wakeup, on_native_close);
    }
    uv_close((uv_handle_t *)&nat->prepare, on_native_close);
    uv_close((uv_handle_t *)&nat->check, on_native_close);
    uv_close((uv_handle_t *)&nat->timer, on_native_close);
    uv_close((uv_handle_t *)&nat->async, on_native_close);
    /* Close callbacks run in the closing phase of the next iteration; prepare is closed so
     * the GIL stays held throughout. */
    for (int i = 0; i < 16 && nat->handles_open > 0; i++)
        uv_run(&nat->uvl, UV_RUN_NOWAIT);
    rc = uv_loop_close(&nat->uvl);
    if (rc == 0) {
        PyMem_RawFree(nat);
        return 0;
    }
    /* Other components still have handles on this loop: freeing the block would leave them
     * pointing at freed memory, so it is detached and leaked. */
    nat->owner = NULL;
    nat->uvl.data = NULL;
    return -1;
}

/* One iteration; returns 0, or -1 with an exception that must leave run_forever. */
static int run_once(PyLoopObject *loop)
{
    loop_native_t *nat = loop->nat;
    PyLoopHandleObject *h;
    uv_run_mode mode = UV_RUN_ONCE;
    size_t ntodo;
    double now;

    /* Drop cancelled timers at the top so they do not wake the loop. */
    while (loop->heap_len > 0 && loop->heap[0]->cancelled) {
        h = loop_heap_pop(loop);
        Py_DECREF(h);
    }
    loop_heap_compact(loop);

    if (loop->ready_len > 0 || loop->stopping) {
        mode = UV_RUN_NOWAIT;
        uv_timer_stop(&nat->timer);
    } else if (loop->heap_len > 0) {
        double delay = loop->heap[0]->when - loop_now();
        uint64_t ms = 0;
        if (delay > 0) {
            /* Round up: waking early only costs an extra iteration, but libuv compares
             * whole milliseconds, so a rounded-down timeout would fire before the deadline. */
            double d = ceil(delay * 1e3);
            ms = d > 1e12 ? (uint64_t)1e12 : (uint64_t)d;
        }
        if (ms == 0) {
            mode = UV_RUN_NOWAIT;
            uv_timer_stop(&nat->timer);
        } else {
            uv_update_time(&nat->uvl);
            uv_timer_start(&nat->timer, on_timer, ms, 0);
            if (loop->test_poll_delay_us > 0)
                usleep(loop->test_poll_delay_us); /* simulates being descheduled here */
        }
    } else {
        uv_timer_stop(&nat->timer);
    }

    loop->may_block = mode == UV_RUN_ONCE;
    uv_run(&nat->uvl, mode);
    loop->may_block = 0;
    pyloop_enter(loop);

    if (loop->pending_exc != NULL) {
        PyObject *exc = loop->pending_exc;
        loop->pending_exc = NULL;
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
        return -1;
    }
    if (PyErr_CheckSignals() < 0)
        return -1;

    /* Due timers join the ready queue behind what is already there (asyncio's order). */
    if (loop->heap_len > 0) {
        now = loop_now();
        while (loop->heap_len > 0 && loop->heap[0]->when <= now) {
            h = loop_heap_pop(loop);
            if (h->cancelled) {
                Py_DECREF(h);
                continue;
            }
            if (loop_ready_push(loop, h) < 0) {
                Py_DECREF(h);
                return -1;
            }
        }
    }

    ntodo = loop->ready_len;
    while (ntodo-- > 0) {
        int rc;
        /* Timed only if debug was on when the callback started (asyncio's _run_once
         * decides once, before running it): a callback or another thread may turn debug on
         * meanwhile, and t0 would then be unset. */
        int timed = loop->debug;
        double t0 = 0.0;
        h = loop_ready_pop(loop);
        if (h == NULL)
            break; /* close() from a callback cleared the queue */
        if (timed)
            t0 = loop_now();
        if (Py_TYPE(h) == loop_task_type ||
            (Py_TYPE(h) != &PyLoopHandle_Type && !PyObject_TypeCheck(h, &PyLoopHandle_Type))) {
            /* A native Task's step (task.c queues the task itself). Errors other than
             * KeyboardInterrupt/SystemExit are reported, as for a callback. */
            rc = loop_task_run_queued((PyObject *)h);
            if (rc < 0 && !PyErr_ExceptionMatches(PyExc_SystemExit) &&
                !PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
                pyloop_report_exception(loop, "Exception in callback Task.task_step()");
                rc = 0;
            }
        } else {
            /* call_soon untracks queued handles (sched.c); one still referenced from
             * elsewhere may end up in a cycle once its callback runs: the GC must see it. */
            if (Py_REFCNT(h) > 1 && !PyObject_GC_IsTracked((PyObject *)h))
                PyObject_GC_Track(h);
            rc = loop_handle_run(h);
        }
        if (rc == 0 && timed) {
            double dt = loop_now() - t0;
            if (dt >= loop->slow_callback_duration) {
                PyObject *r = PyObject_CallMethod((PyObject *)loop, "_log_slow_callback", "Od",
                                                  (PyObject *)h, dt);
                if (r == NULL)
                    PyErr_WriteUnraisable((PyObject *)loop);
                Py_XDECREF(r);
            }
        }
        Py_DECREF(h);
        if (rc < 0)
            return -1;
        if (loop->nat == NULL)
            break;
    }
    return 0;
}

PyObject *loop_run(PyLoopObject *self, PyObject *unused)
{
    int rc = 0;

    (void)unused;
    if (loop_check_open(self) < 0)
        return NULL;
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "This event loop is already running");
        return NULL;
    }
    self->running = 1;
    self->thread_id = PyThread_get_thread_ident();
    /* Hold the loop while it runs: a callback may drop the last outside reference. */
    Py_INCREF(self);
    for (;;) {
        if (self->nat == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
            rc = -1;
            break;
        }
        rc = run_once(self);
        if (rc < 0 || self->stopping)
            break;
    }
    self->stopping = 0;
    self->running = 0;
    self->thread_id = 0;
    Py_DECREF(self); /* pairs with the INCREF before the loop */
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* _set_test_poll_delay(us): tests only (see run_once). */
PyObject *loop_set_test_poll_delay(PyLoopObject *self, PyObject *arg)
{
    unsigned long us = PyLong_AsUnsignedLong(arg);

    if (us == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    self->test_poll_delay_us = (unsigned int)(us > 1000000 ? 1000000 : us);
    Py_RETURN_NONE;
}

PyObject *loop_watch_wakeup_fd(PyLoopObject *self, PyObject *arg)
{
    loop_native_t *nat = self->nat;
    long fd = PyLong_AsLong(arg);
    int rc;

    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (loop_check_open(self) < 0)
        return NULL;
    if (nat->wakeup_active && nat->wakeup_fd != fd) {
        PyErr_SetString(PyExc_RuntimeError, "the loop already watches another wakeup fd");
        return NULL;
    }
    if (!nat->wakeup_active) {
        rc = uv_poll_init(&nat->uvl, &nat->wakeup, (int)fd);
        if (rc < 0) {
            PyErr_Format(PyExc_OSError, "uv_poll_init: %s", uv_strerror(rc));
            return NULL;
        }
        nat->wakeup.data = nat;
        nat->wakeup_fd = (int)fd;
        nat->wakeup_active = 1;
        /* The poll handle must not keep the loop alive on its own. */
        uv_unref((uv_handle_t *)&nat->wakeup);
    }
    uv_poll_start(&nat->wakeup, UV_READABLE, on_wakeup);
    Py_RETURN_NONE;
}

PyObject *loop_unwatch_wakeup_fd(PyLoopObject *self, PyObject *unused)
{
    loop_native_t *nat = self->nat;

    (void)unused;
    /* Only stopped: the handle stays initialised (and is closed with the loop) so that the
     * next run_forever can restart it without waiting for a close callback. */
    if (nat != NULL && nat->wakeup_active)
        uv_poll_stop(&nat->wakeup);
    Py_RETURN_NONE;
}
