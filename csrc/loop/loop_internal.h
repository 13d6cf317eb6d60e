/*
 * Internal declarations shared by the loop's C files (not part of the contract in loop.h).
 *
 * Ownership map:
 * - A PyLoopObject owns a separately allocated loop_native_t holding the uv_loop_t and the
 *   loop's own libuv handles (prepare, check, timer, async, signal wakeup poll). The block is
 *   freed only after uv_loop_close() succeeds; if other components still have handles open
 *   when the loop is closed, the block is leaked on purpose rather than freed under libuv.
 * - The ready queue (a ring buffer) and the timer heap hold one strong reference to each
 *   handle they contain. A handle holds strong references to its callback, its arguments,
 *   its context and its loop.
 * - All of this state is touched only with the GIL held (other threads reach it through
 *   call_soon_threadsafe, which runs Python code and therefore holds the GIL too).
 */
#ifndef DB_LOOP_LOOP_INTERNAL_H
#define DB_LOOP_LOOP_INTERNAL_H

#include "loop/loop.h"

#include <stdint.h>

typedef struct PyLoopHandleObject PyLoopHandleObject;

/* Native resources (transports, listeners) are linked into their loop while their libuv
 * handle is open, so that closing the loop closes whatever was left open instead of leaking
 * the handle and its fd. asyncio leaves such transports to their finalizers, which warn
 * "unclosed transport"; PyLoop warns the same way from `abandon`. */
typedef struct loop_open_link {
    struct loop_open_link *next, *prev;
    /* Called at loop close for a resource still open: warns if its user never closed it and
     * closes its handle (which must unlink it). May run Python code. */
    void (*abandon)(struct loop_open_link *link);
} loop_open_link_t;

typedef struct {
    uv_loop_t uvl;
    uv_prepare_t prepare;
    uv_check_t check;
    uv_timer_t timer;
    uv_async_t async;
    uv_poll_t wakeup;
    int wakeup_active;
    int wakeup_fd; /* read side of the signal wakeup socket, or -1 */
    int handles_open;
    /* Shared read buffer for Protocol (not Buffered) transports and UDP. 256 KiB (uvloop
     * uses about as much): one read takes in whatever a fast peer has queued, instead of
     * several reads and data_received calls for one large message. */
    char readbuf[262144];
    PyLoopObject *owner; /* borrowed; cleared when the loop object goes away */
} loop_native_t;

struct PyLoopObject {
    /* clang-format off */
    PyObject_HEAD
    loop_native_t *nat;
    /* clang-format on */
    /* Thread state saved by the prepare callback when the GIL was released for polling;
     * NULL while the GIL is held by the loop thread. */
    PyThreadState *saved_tstate;
    int running;
    int stopping;
    int closed;
    int debug;
    int may_block;           /* the current uv_run() may block: release the GIL while polling */
    unsigned long thread_id; /* thread running the loop, 0 when not running */
    unsigned int test_poll_delay_us; /* tests only: sleep between arming the timer and polling */

    /* Ready queue: ring buffer of owned handle references. */
    PyLoopHandleObject **ready;
    size_t ready_cap; /* power of two or 0 */
    size_t ready_head;
    size_t ready_len;

    /* Timer heap ordered by (when, seq): owned references. */
    PyLoopHandleObject **heap;
    size_t heap_len;
    size_t heap_cap;
    size_t timers_cancelled; /* cancelled handles still sitting in the heap */
    uint64_t timer_seq;

    PyObject *fd_watchers;     /* dict fd -> watcher (poll.c), or NULL */
    PyObject *transport_fds;   /* dict fd -> weakref to the stream transport made from the
                                  socket with that fd (poll.c), or NULL */
    PyObject *signal_handlers; /* dict signum -> signal watcher (signals.c), or NULL */

    /* SystemExit/KeyboardInterrupt raised inside a libuv callback: re-raised by run_forever
     * once uv_run returns (exceptions cannot cross libuv). */
    PyObject *pending_exc;

    loop_open_link_t *open_links; /* resources with an open libuv handle (see above) */

    double slow_callback_duration;
    PyObject *weakreflist;
    PyObject *dict;
};

struct PyLoopHandleObject {
    /* clang-format off */
    PyObject_HEAD
    PyObject *callback; /* NULL once cancelled */
    /* clang-format on */
    PyObject *args;      /* tuple, or NULL for no arguments */
    PyObject *context;   /* contextvars.Context the callback runs in */
    PyObject *source_tb; /* debug mode: where the handle was created (a StackSummary), or NULL */
    PyLoopObject *loop;
    PyObject *weakreflist;
    double when;
    uint64_t seq;
    unsigned char cancelled;
    unsigned char scheduled; /* sits in the timer heap */
    unsigned char is_timer;
};

/* A stream transport (stream.c): TCP or Unix socket. */
typedef struct PyLoopStreamObject {
    /* clang-format off */
    PyObject_HEAD
    /* asyncio.BaseTransport's __slots__ = ('_extra',) lives here: the type derives from
     * asyncio.Transport (stream.c), and this is our get_extra_info dict. */
    PyObject *extra;
    /* clang-format on */
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    PyLoopObject *loop;
    PyObject *protocol; /* NULL after connection_lost() */
    PyObject *server;   /* the Server to notify on connection_lost, or NULL */
    PyObject *sock;     /* the socket.socket behind extra['socket'], closed with us */
    PyObject *weakreflist;
    Py_buffer rbuf; /* BufferedProtocol buffer between alloc and read callbacks */
    size_t write_buffer_size;
    size_t high_water, low_water;
    int family;
    unsigned char is_pipe, handle_open, started, made, reading, paused_reading, closing;
    unsigned char lost_scheduled, eof_requested, eof_sent, eof_received, protocol_paused;
    unsigned char buffered, rbuf_held, write_only, read_only;
    unsigned int writes_after_close;
    PyObject *dict;        /* instance attributes (tests and libraries set some, as on asyncio's) */
    loop_open_link_t link; /* in loop->open_links while handle_open */
    /* Future resolved once everything written has left (loop.sendfile waits for it before
     * os.sendfile takes over the socket); while set, write() refuses, as in asyncio. */
    PyObject *empty_waiter;
    /* The context protocol callbacks run in (transport.c), or NULL: the caller's. */
    PyObject *context;
} PyLoopStreamObject;

extern PyTypeObject PyLoop_Type;
extern PyTypeObject PyLoopHandle_Type;
extern PyTypeObject PyLoopTimerHandle_Type;

/* Interned strings and cached objects (loop.c). */
extern PyObject *loop_str_context;
extern PyObject *loop_str_call_exception_handler;

/* loop.c */
double loop_now(void);
int loop_check_open(PyLoopObject *loop);
void loop_open_link_add(PyLoopObject *loop, loop_open_link_t *link,
                        void (*abandon)(loop_open_link_t *link));
void loop_open_link_remove(PyLoopObject *loop, loop_open_link_t *link);

/* handles.c */
PyLoopHandleObject *loop_handle_new(PyLoopObject *loop, PyTypeObject *type, PyObject *callback,
                                    PyObject *const *args, Py_ssize_t nargs, PyObject *context);
/* A plain Handle that is not GC-tracked: for handles that go straight to the ready queue
 * (see schedule_soon in sched.c; run_once tracks it if it outlives its turn). */
PyLoopHandleObject *loop_handle_new_queued(PyLoopObject *loop, PyObject *callback,
                                           PyObject *const *args, Py_ssize_t nargs,
                                           PyObject *context);
/* Runs the handle's callback in its context. Returns 0, or -1 with SystemExit or
 * KeyboardInterrupt (or an exception raised by the exception handler) set: those propagate
 * out of run_forever like in asyncio. Other exceptions go to the exception handler. */
int loop_handle_run(PyLoopHandleObject *h);
int loop_handles_init(PyObject *module);

/* sched.c */
int loop_ready_push(PyLoopObject *loop, PyLoopHandleObject *h);
PyLoopHandleObject *loop_ready_pop(PyLoopObject *loop);
int loop_heap_push(PyLoopObject *loop, PyLoopHandleObject *h);
PyLoopHandleObject *loop_heap_pop(PyLoopObject *loop);
void loop_heap_compact(PyLoopObject *loop);
void loop_queues_clear(PyLoopObject *loop);
void loop_timer_cancelled(PyLoopObject *loop);
PyObject *loop_call_soon(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames);
PyObject *loop_call_soon_threadsafe(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames);
PyObject *loop_call_later(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames);
PyObject *loop_call_at(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                       PyObject *kwnames);

/* Schedules cb(arg) in context ctx (NULL: a copy of the current one) like call_soon, for
 * native callers that do not need the Handle. Returns 0 or -1 with an exception. */
int loop_schedule_callback(PyLoopObject *loop, PyObject *cb, PyObject *arg, PyObject *ctx);

/* task.c, task_api.c (declarations shared with the task files live in task.h) */
extern PyTypeObject *loop_task_type;
/* The native Future (task_api.c): loop.create_future() returns one. It shares the Task's
 * future half (same fields at the same offset). */
extern PyTypeObject *loop_future_type;
/* Returns 1 for an exact native Task, 2 for an exact native Future, else 0. The C fast
 * paths (awaiting, waking, cancelling) take only exact types: a Python subclass may
 * override add_done_callback(), result() or cancel(), so it goes through its methods. */
static inline int loop_future_exact(PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);

    return tp == loop_task_type ? 1 : tp == loop_future_type ? 2 : 0;
}
PyObject *loop_future_new(PyLoopObject *loop);
/* waiter.c: the type, and what task.c does with one its coroutine yields: attach the task
 * (woken by a step pushed on the ready queue; -1 with RuntimeError if another task waits),
 * the waiter's loop, and cancel(msg) (a new reference to True or False). */
extern PyTypeObject *loop_waiter_type;
int loop_waiter_attach(PyObject *waiter, PyObject *task);
PyLoopObject *loop_waiter_loop(PyObject *waiter);
PyObject *loop_waiter_cancel(PyObject *waiter, PyObject *msg);
int loop_waiter_init(PyObject *module);
/* A native Task for coro on loop (create_task without a factory); name and context may be
 * None. */
PyObject *loop_task_new(PyLoopObject *loop, PyObject *coro, PyObject *name, PyObject *context);
/* Runs the step a task queued on the ready queue (run_once): enters the task's context.
 * Returns 0, or -1 with an exception set (run_once reports it unless it is a
 * KeyboardInterrupt/SystemExit, which propagate). */
int loop_task_run_queued(PyObject *task);
int loop_task_init(PyObject *module);

/* poll.c */
PyObject *loop_add_reader(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames);
PyObject *loop_add_writer(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames);
PyObject *loop_remove_reader(PyLoopObject *self, PyObject *fileobj);
PyObject *loop_remove_writer(PyLoopObject *self, PyObject *fileobj);
PyObject *loop_register_transport_fd(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs);
void loop_poll_close_all(PyLoopObject *loop);
int loop_poll_init(PyObject *module);

/* signals.c */
PyObject *loop_add_signal_watch(PyLoopObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *loop_remove_signal_watch(PyLoopObject *self, PyObject *sig);
void loop_signals_close_all(PyLoopObject *loop);
int loop_signals_init(PyObject *module);

/* stream.c */
extern PyTypeObject *loop_stream_type;
PyLoopStreamObject *loop_stream_new(PyLoopObject *loop, int is_pipe);
PyObject *loop_stream_open(PyLoopObject *self, PyObject *args);
void loop_stream_close(PyLoopStreamObject *t);
int loop_stream_fill_addresses(PyLoopStreamObject *t);
int loop_stream_init(PyObject *module);
/* asyncio's Python form of an IPv4/IPv6 address: (host, port) or (host, port, flowinfo,
 * scope_id); None for other families. */
PyObject *loop_sockaddr_to_py(const struct sockaddr_storage *ss);

/* transport.c: shared by the native transports */
/* Takes the current exception, normalised, traceback attached; NULL if none. */
PyObject *loop_fetch_exception(void);
int loop_is_base_exception(PyObject *exc); /* SystemExit or KeyboardInterrupt */
/* Keeps exc (taking the reference) for run_forever to re-raise, and stops uv_run. */
void loop_defer_base_exception(PyLoopObject *loop, PyObject *exc);
/* loop.call_exception_handler({message, exception, transport, protocol}). */
void loop_transport_report(PyLoopObject *loop, PyObject *transport, PyObject *protocol,
                           const char *message, PyObject *exc);
/* protocol.<method>() for flow control; failures reported, base exceptions deferred. */
void loop_transport_flow_call(PyLoopObject *loop, PyObject *transport, PyObject *protocol,
                              PyObject *method, const char *message);
/* The transport's context around protocol callbacks from libuv: enter returns what exit
 * takes (NULL when nothing was entered: no context set, or it is already current). */
PyObject *loop_context_enter(PyObject *ctx);
void loop_context_exit(PyObject *entered);
/* Stores ctx (a contextvars.Context) in *slot; TypeError otherwise. */
int loop_context_set(PyObject **slot, PyObject *ctx);
/* Parses set_write_buffer_limits(high=None, low=None) with asyncio's defaults and checks. */
int loop_parse_write_limits(PyObject *args, PyObject *kwds, size_t default_high, size_t *high_out,
                            size_t *low_out);

/* udp.c */
PyObject *loop_udp_open(PyLoopObject *self, PyObject *args);
int loop_udp_init(PyObject *module);

/* udp_addr.c: converts sendto()'s address for an AF_INET/AF_INET6 socket like
 * socket.sendto() (TypeError/OverflowError for a bad one, OSError when a name does not
 * resolve). Sets *cacheable when addr is immutable (an exact tuple of str and ints). Returns
 * 0 or -1 with an exception. */
int loop_udp_addr_from_py(int family, PyObject *addr, struct sockaddr_storage *ss, int *cacheable);

/* listener.c */
PyObject *loop_stream_listen(PyLoopObject *self, PyObject *args);
int loop_listener_init(PyObject *module);

/* run.c */
int loop_native_start(PyLoopObject *loop);
PyObject *loop_run(PyLoopObject *self, PyObject *unused);
PyObject *loop_watch_wakeup_fd(PyLoopObject *self, PyObject *arg);
PyObject *loop_set_test_poll_delay(PyLoopObject *self, PyObject *arg);
PyObject *loop_unwatch_wakeup_fd(PyLoopObject *self, PyObject *unused);
/* Closes the loop's own handles and the libuv loop; returns 0, or -1 if other handles were
 * still open (the native block is then leaked and detached). */
int loop_native_close(PyLoopObject *loop);

#endif
