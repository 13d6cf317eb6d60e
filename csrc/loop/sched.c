/*
 * Scheduling: the ready queue (a ring buffer of handles), the timer heap (a binary min-heap
 * ordered by deadline, ties broken by scheduling order), and the call_soon / call_later /
 * call_at / call_soon_threadsafe methods that fill them.
 *
 * Both containers own one reference per entry. Entries move from the heap to the ready queue
 * without touching the reference count. Nothing here calls Python code while a container is
 * in an inconsistent state: references that must be dropped are dropped after the container
 * is consistent again, because a finalizer may schedule new callbacks.
 */
#include "loop/loop_internal.h"

#include <math.h>

int loop_ready_push(PyLoopObject *loop, PyLoopHandleObject *h)
{
    if (loop->ready_len == loop->ready_cap) {
        size_t ncap = loop->ready_cap ? loop->ready_cap * 2 : 64;
        PyLoopHandleObject **nbuf = PyMem_Malloc(ncap * sizeof(*nbuf));
        if (nbuf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        /* Unwrap the ring into the new buffer, oldest first. */
        for (size_t i = 0; i < loop->ready_len; i++)
            nbuf[i] = loop->ready[(loop->ready_head + i) & (loop->ready_cap - 1)];
        PyMem_Free(loop->ready);
        loop->ready = nbuf;
        loop->ready_cap = ncap;
        loop->ready_head = 0;
    }
    loop->ready[(loop->ready_head + loop->ready_len) & (loop->ready_cap - 1)] = h;
    loop->ready_len++;
    return 0;
}

PyLoopHandleObject *loop_ready_pop(PyLoopObject *loop)
{
    PyLoopHandleObject *h;

    if (loop->ready_len == 0)
        return NULL;
    h = loop->ready[loop->ready_head];
    loop->ready_head = (loop->ready_head + 1) & (loop->ready_cap - 1);
    loop->ready_len--;
    return h;
}

static inline int heap_less(PyLoopHandleObject *a, PyLoopHandleObject *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_sift_up(PyLoopHandleObject **heap, size_t i)
{
    PyLoopHandleObject *x = heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(x, heap[parent]))
            break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = x;
}

static void heap_sift_down(PyLoopHandleObject **heap, size_t len, size_t i)
{
    PyLoopHandleObject *x = heap[i];

    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= len)
            break;
        if (child + 1 < len && heap_less(heap[child + 1], heap[child]))
            child++;
        if (!heap_less(heap[child], x))
            break;
        heap[i] = heap[child];
        i = child;
    }
    heap[i] = x;
}

int loop_heap_push(PyLoopObject *loop, PyLoopHandleObject *h)
{
    if (loop->heap_len == loop->heap_cap) {
        size_t ncap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        PyLoopHandleObject **nheap = PyMem_Realloc(loop->heap, ncap * sizeof(*nheap));
        if (nheap == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        loop->heap = nheap;
        loop->heap_cap = ncap;
    }
    h->seq = loop->timer_seq++;
    h->scheduled = 1;
    loop->heap[loop->heap_len] = h;
    heap_sift_up(loop->heap, loop->heap_len);
    loop->heap_len++;
    return 0;
}

/* Removes and returns the earliest timer (the caller gets the heap's reference). */
PyLoopHandleObject *loop_heap_pop(PyLoopObject *loop)
{
    PyLoopHandleObject *top;

    if (loop->heap_len == 0)
        return NULL;
    top = loop->heap[0];
    loop->heap_len--;
    if (loop->heap_len > 0) {
        loop->heap[0] = loop->heap[loop->heap_len];
        heap_sift_down(loop->heap, loop->heap_len, 0);
    }
    top->scheduled = 0;
    if (top->cancelled && loop->timers_cancelled > 0)
        loop->timers_cancelled--;
    return top;
}

void loop_timer_cancelled(PyLoopObject *loop)
{
    loop->timers_cancelled++;
}

/* Drops cancelled timers from the heap when they are more than half of it (asyncio does the
 * same so that cancel-heavy code, e.g. timeouts that rarely fire, keeps the heap small). */
void loop_heap_compact(PyLoopObject *loop)
{
    PyLoopHandleObject **dropped;
    size_t ndropped = 0, kept = 0;

    if (loop->heap_len < 64 || loop->timers_cancelled * 2 <= loop->heap_len)
        return;
    dropped = PyMem_Malloc(loop->timers_cancelled * sizeof(*dropped));
    if (dropped == NULL)
        return; /* Not fatal: cancelled timers are still dropped lazily when they pop. */
    for (size_t i = 0; i < loop->heap_len; i++) {
        PyLoopHandleObject *h = loop->heap[i];
        if (h->cancelled && ndropped < loop->timers_cancelled) {
            h->scheduled = 0;
            dropped[ndropped++] = h;
        } else {
            loop->heap[kept++] = h;
        }
    }
    loop->heap_len = kept;
    loop->timers_cancelled -= ndropped;
    for (size_t i = kept / 2; i-- > 0;)
        heap_sift_down(loop->heap, kept, i);
    /* The heap is consistent: finalizers run by these DECREFs may schedule timers. */
    for (size_t i = 0; i < ndropped; i++)
        Py_DECREF(dropped[i]);
    PyMem_Free(dropped);
}

void loop_queues_clear(PyLoopObject *loop)
{
    PyLoopHandleObject **ready = loop->ready, **heap = loop->heap;
    size_t rcap = loop->ready_cap, rhead = loop->ready_head, rlen = loop->ready_len;
    size_t hlen = loop->heap_len;

    /* Detach both containers first: the DECREFs below may schedule new callbacks. */
    loop->ready = NULL;
    loop->ready_cap = loop->ready_head = loop->ready_len = 0;
    loop->heap = NULL;
    loop->heap_len = loop->heap_cap = 0;
    loop->timers_cancelled = 0;
    for (size_t i = 0; i < rlen; i++)
        Py_DECREF(ready[(rhead + i) & (rcap - 1)]);
    for (size_t i = 0; i < hlen; i++) {
        heap[i]->scheduled = 0;
        Py_DECREF(heap[i]);
    }
    PyMem_Free(ready);
    PyMem_Free(heap);
}

/* Splits fastcall keywords: accepts only context=. */
static int parse_context_kw(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                            const char *fname, PyObject **context)
{
    *context = NULL;
    if (kwnames == NULL)
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (name == loop_str_context || PyUnicode_Compare(name, loop_str_context) == 0) {
            *context = args[nargs + i];
        } else {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname,
                             name);
            return -1;
        }
    }
    return 0;
}

/* Debug mode, like asyncio: the non-threadsafe methods refuse calls from other threads
 * while the loop runs. */
static int check_thread(PyLoopObject *self)
{
    if (self->debug && self->thread_id != 0 && self->thread_id != PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError, "Non-thread-safe operation invoked on an event loop "
                                            "other than the current one");
        return -1;
    }
    return 0;
}

static PyObject *schedule_soon(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames, const char *fname, int threadsafe)
{
    PyObject *context;
    PyLoopHandleObject *h;

    if (nargs < 1) {
        PyErr_Format(PyExc_TypeError, "%s() missing 1 required positional argument: 'callback'",
                     fname);
        return NULL;
    }
    if (parse_context_kw(args, nargs, kwnames, fname, &context) < 0)
        return NULL;
    if (loop_check_open(self) < 0)
        return NULL;
    if (!threadsafe && check_thread(self) < 0)
        return NULL;
    if (self->debug && !PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "a callable object was expected by %s(), got %R", fname,
                     args[0]);
        return NULL;
    }
    /* A queued handle is always reachable from the loop and runs soon, so the GC need not
     * scan it: with many queued callbacks (bursts of call_soon), tracking them made every
     * older-generation collection walk all of them. run_once() tracks it before it runs if
     * anything else still holds it. */
    h = loop_handle_new_queued(self, args[0], args + 1, nargs - 1, context);
    if (h == NULL)
        return NULL;
    /* One reference for the ready queue (released after the handle runs), one returned. */
    Py_INCREF(h);
    if (loop_ready_push(self, h) < 0) {
        Py_DECREF(h);
        Py_DECREF(h);
        return NULL;
    }
    return (PyObject *)h;
}

int loop_schedule_callback(PyLoopObject *loop, PyObject *cb, PyObject *arg, PyObject *ctx)
{
    PyLoopHandleObject *h;

    if (loop_check_open(loop) < 0)
        return -1;
    h = loop_handle_new_queued(loop, cb, &arg, 1, ctx);
    if (h == NULL)
        return -1;
    if (loop_ready_push(loop, h) < 0) { /* the queue takes our reference */
        Py_DECREF(h);
        return -1;
    }
    return 0;
}

PyObject *loop_call_soon(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    return schedule_soon(self, args, nargs, kwnames, "call_soon", 0);
}

PyObject *loop_call_soon_threadsafe(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    PyObject *h = schedule_soon(self, args, nargs, kwnames, "call_soon_threadsafe", 1);

    /* uv_async_send is the one libuv call that is safe from any thread; it wakes the poll
     * phase so that the loop notices the new ready handle. */
    if (h != NULL && self->nat != NULL)
        uv_async_send(&self->nat->async);
    return h;
}

static PyObject *schedule_at(PyLoopObject *self, double when, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames, const char *fname)
{
    PyObject *context;
    PyLoopHandleObject *h;

    if (parse_context_kw(args, nargs, kwnames, fname, &context) < 0)
        return NULL;
    if (loop_check_open(self) < 0 || check_thread(self) < 0)
        return NULL;
    if (self->debug && !PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "a callable object was expected by %s(), got %R", fname,
                     args[0]);
        return NULL;
    }
    if (isnan(when)) {
        PyErr_SetString(PyExc_ValueError, "Invalid value NaN (not a number)");
        return NULL;
    }
    h = loop_handle_new(self, &PyLoopTimerHandle_Type, args[0], args + 1, nargs - 1, context);
    if (h == NULL)
        return NULL;
    h->when = when;
    /* One reference for the heap (moved to the ready queue when due), one returned. */
    Py_INCREF(h);
    if (loop_heap_push(self, h) < 0) {
        Py_DECREF(h);
        Py_DECREF(h);
        return NULL;
    }
    return (PyObject *)h;
}

static int parse_time(PyObject *obj, const char *what, double *out)
{
    if (obj == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s", what);
        return -1;
    }
    *out = PyFloat_AsDouble(obj);
    if (*out == -1.0 && PyErr_Occurred())
        return -1;
    return 0;
}

PyObject *loop_call_later(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    double delay;

    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError,
                        "call_later() missing required positional arguments: 'delay', 'callback'");
        return NULL;
    }
    if (parse_time(args[0], "delay must not be None", &delay) < 0)
        return NULL;
    return schedule_at(self, loop_now() + delay, args + 1, nargs - 1, kwnames, "call_later");
}

PyObject *loop_call_at(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames)
{
    double when;

    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError,
                        "call_at() missing required positional arguments: 'when', 'callback'");
        return NULL;
    }
    if (parse_time(args[0], "when cannot be None", &when) < 0)
        return NULL;
    return schedule_at(self, when, args + 1, nargs - 1, kwnames, "call_at");
}
