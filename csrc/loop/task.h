/*
 * The native Task and Future (task.c: stepping and completion; task_api.c: the
 * Python-visible methods, attributes and the types). Private to the loop's C files.
 *
 * The Future type derives from asyncio.Future the same way and uses the same fields at the
 * same offset (its instances are padded to the Task base's size), so the future half of
 * the code serves both; the task-only fields stay unused in a Future.
 *
 * The type derives from asyncio.Task (the C-accelerated _asyncio.Task) so that
 * isinstance(task, asyncio.Task) holds, but it keeps all of its state in its own fields,
 * placed after the base's instance layout at a runtime offset (the base's struct is private
 * to CPython and differs between versions). The base part stays zeroed and is never read:
 * every method and attribute of asyncio.Future and asyncio.Task is overridden, and
 * CPython's own C code touches the fields of exact Task/Future objects only.
 *
 * Ownership: a task owns every object field below. While its step sits in the loop's ready
 * queue the queue owns one reference to the task itself (no Handle is created for it).
 */
#ifndef DB_LOOP_TASK_H
#define DB_LOOP_TASK_H

#include "loop/loop_internal.h"

enum { TASK_PENDING = 0, TASK_CANCELLED = 1, TASK_FINISHED = 2 };

typedef struct {
    PyLoopObject *loop;
    PyObject *coro;
    PyObject *context;
    PyObject *name;       /* NULL until asked for: "Task-<name_id>" is formatted lazily */
    PyObject *fut_waiter; /* the future the coroutine waits on, or NULL */
    PyObject *result;
    PyObject *exception;
    PyObject *exception_tb;
    PyObject *cb0, *ctx0; /* the first done callback and its context (most tasks have one) */
    PyObject *callbacks;  /* list of (callback, context) tuples after the first, or NULL */
    PyObject *cancel_msg;
    PyObject *cancelled_exc; /* the CancelledError that ended the coroutine */
    PyObject *source_tb;     /* debug mode: where the task was created */
    PyObject *step_exc;      /* exception the queued step throws into the coroutine */
    unsigned long long name_id;
    int num_cancels_requested;
    unsigned char state;
    unsigned char must_cancel;
    unsigned char log_tb;
    unsigned char log_destroy_pending;
    unsigned char blocking; /* _asyncio_future_blocking */
} task_fields_t;

extern Py_ssize_t task_fields_offset;
#define TASK(o) ((task_fields_t *)((char *)(o) + task_fields_offset))

/* Cached objects shared by task.c and task_api.c (set up by loop_task_init). */
extern PyObject *task_current_tasks;   /* asyncio's dict loop -> running task, or NULL */
extern PyObject *task_enter_fn;        /* asyncio.tasks._enter_task (used without the dict) */
extern PyObject *task_leave_fn;        /* asyncio.tasks._leave_task */
extern PyObject *task_register_fn;     /* asyncio.tasks._register_task */
extern PyObject *task_cancelled_error; /* asyncio.CancelledError */
extern PyObject *task_invalid_state;   /* asyncio.InvalidStateError */
extern PyObject *task_future_type;     /* asyncio.Future (_asyncio.Future) */
extern PyObject *task_str_add_done_callback, *task_str_result, *task_str_cancel;
extern PyObject *task_str_blocking, *task_str_get_loop, *task_str_throw, *task_str_loop;
extern PyObject *task_kwnames_context; /* ("context",) */
extern PyObject *task_kwnames_msg;     /* ("msg",) */
/* 3.12+ eager tasks: asyncio.tasks._swap_current_task, _register_eager_task,
 * _unregister_eager_task; NULL before 3.12. */
extern PyObject *task_swap_fn, *task_register_eager_fn, *task_unregister_eager_fn;

/* getattr that tells "absent" (0, *out NULL) from an error (-1). */
#if PY_VERSION_HEX >= 0x030D0000
#define task_lookup_attr PyObject_GetOptionalAttr
#else
#define task_lookup_attr _PyObject_LookupAttr
#endif

/* Exact asyncio.Future objects are driven through their type's own descriptors (no
 * attribute lookup, no bound method): NULL when a descriptor is not the expected kind. */
extern PyGetSetDef *task_fut_blocking, *task_fut_loop;
extern PyObject *task_fut_add_done_callback, *task_fut_result; /* method descriptors */
static inline int task_is_exact_future(PyObject *o)
{
    return Py_TYPE(o) == (PyTypeObject *)task_future_type && task_fut_blocking != NULL;
}

/* task.c */
/* RuntimeError("Future object is not initialized.") for an object made by __new__ alone
 * (its loop is NULL); returns -1. */
int task_not_initialized(void);
int task_enter(PyObject *task);
int task_leave(PyObject *task);
/* One step: send None (exc NULL) or throw exc into the coroutine and act on what it yields.
 * The caller has entered the task's context. Returns 0, or -1 with an exception set that
 * the caller must propagate (KeyboardInterrupt/SystemExit, or a step on a done task). */
int task_step(PyObject *task, PyObject *exc);
/* Eager start (asyncio's Task.__eager_start): the first step runs now, inside the task's
 * context, with the task swapped in as the current one. */
int task_eager_start(PyObject *task);
/* Queues a step (exc may be NULL; a reference is taken). */
int task_schedule_step(PyObject *task, PyObject *exc);
/* Future-side completion: state, result or exception, then the done callbacks. */
int task_finish_result(PyObject *task, PyObject *result);
int task_finish_exception(PyObject *task, PyObject *exc);
int task_finish_cancel(PyObject *task, PyObject *msg);
/* Future.cancel() semantics for a task awaited by another (cancel the waiter). */
PyObject *task_make_cancelled_error(PyObject *task);
/* Raises that error (what result() and exception() do on a cancelled task); returns NULL. */
PyObject *task_raise_cancelled(PyObject *task);
/* Future.result()'s outcome without a method call: new reference, or NULL with the
 * exception it would raise. */
PyObject *task_get_result(PyObject *task);
PyObject *task_cancel(PyObject *task, PyObject *msg);
/* Future.cancel(msg=None) (not Task's): a new reference to True or False. */
PyObject *future_cancel(PyObject *fut, PyObject *msg);
int task_add_done_callback(PyObject *task, PyObject *fn, PyObject *ctx);

#endif
