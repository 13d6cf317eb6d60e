/*
 * Internal types of the ASGI component (csrc/asgi/ only).
 *
 * Ownership of one request (an AsgiCall):
 * - The server's pending request (server_conn_t) belongs to the call from asgi_dispatch
 *   until the response is complete (call_finish, or server_conn_stream_end for a streamed
 *   body). While it does, the call holds a reference to itself, because the connection
 *   only keeps a borrowed pointer to it (the stream notification argument) and the call's
 *   Task may wait on a future that nothing outside the call refers to (receive() waiting
 *   for http.disconnect): without it, the garbage collector could take the call, its Task
 *   and the future as an unreachable cycle in the middle of a request.
 * - The call holds its Task until the Task is done (call_done); the Task holds the
 *   application's coroutine, whose frame holds receive and send, which hold the call.
 * - Nothing points into the connection's read buffer after asgi_dispatch returns: the
 *   scope and the body are Python objects made there.
 */
#ifndef DB_ASGI_INTERNAL_H
#define DB_ASGI_INTERNAL_H

#include <stdint.h>

#include "asgi/asgi.h"
#include "common/buf.h"
#include "loop/loop.h"

typedef struct {
    PyObject_HEAD
    PyObject *app;           /* the ASGI 3 callable */
    PyObject *loop;          /* the PyLoop the server runs on */
    PyObject *log;           /* callable(message: str, exc: BaseException | None) */
    PyObject *root_path;     /* str, the scope's root_path */
    PyObject *root_path_raw; /* the same as UTF-8 bytes, put in front of raw_path */
    PyObject *state;         /* dict copied (shallowly) into each scope, or NULL */
    /* Mounted under a prefix of another app (Starlette's Mount): the request path already
     * holds root_path, so path and raw_path are given as received. */
    int mounted;
    /* The last host strings of scope["server"] ([0], kept with the whole tuple, since a
     * server answers on few addresses) and scope["client"] ([1]) (scope.c, address_tuple):
     * reused while the same host asks again, so a request does not decode its text anew. */
    struct asgi_host {
        char text[48];
        size_t len;
        int port;
        PyObject *str;   /* NULL: empty */
        PyObject *tuple; /* [0] only: (str, port) */
    } hosts[2];
} AsgiAppObject;

/* Where the response stands (www spec, "Response Start" and "Response Body"). */
enum asgi_phase {
    ASGI_WAIT_START = 0, /* nothing sent by the application yet */
    ASGI_WAIT_BODY,      /* http.response.start received; the head is held back */
    ASGI_STREAMING,      /* the head and some body were written; more_body was set */
    ASGI_DISCARD,        /* the response has no body (HEAD, 204, 304): pieces are dropped */
    ASGI_DONE,           /* complete (or given up after a violation or an error) */
};

typedef struct {
    PyObject_HEAD
    AsgiAppObject *owner;   /* strong */
    server_conn_t *conn;    /* the request's connection while the response is ours */
    PyObject *task;         /* the Task running the application, until it is done */
    PyObject *body;         /* the request body (bytes) until receive() handed it over */
    PyObject *recv_waiter;  /* future a receive() waits on (resolved with http.disconnect) */
    PyObject *send_waiter;  /* future a send() waits on until the output drains */
    db_buf_t lines;         /* the head's header lines, "name: value\r\n" each */
    int64_t content_length; /* declared by the application, or -1 */
    int status;
    int phase;
    unsigned self_ref : 1;     /* the reference to itself described above is held */
    unsigned disconnected : 1; /* the client went away */
    unsigned close : 1;        /* the application sent "connection: close" */
    unsigned violated : 1;     /* a protocol violation was logged and answered */
    unsigned pump_queued : 1;  /* pump_cb is in the loop's ready queue */
    /* A streamed body (server.h): receive() reads it piece by piece from the server. */
    unsigned streamed : 1;
    unsigned body_reading : 1; /* a server read is pending (it holds a reference to us) */
    unsigned body_done : 1;    /* its last message (more_body False) was handed over */
    /* http.response.pathsend (pathsend.c): the file being sent, while it is. */
    int file_fd;        /* -1 when none */
    uint64_t file_left; /* bytes still to read and queue */
    char *file_buf;     /* one piece */
    PyObject *pump_cb;  /* bound method that goes on sending, scheduled on the loop */
} AsgiCallObject;

/* Interned strings and constant objects, made once by asgi_module_init. */
typedef struct {
    PyObject *type, *body, *more_body, *status, *headers;
    PyObject *http_request, *http_disconnect, *http_response_start, *http_response_body;
    PyObject *create_future, *create_task, *add_done_callback, *set_result, *done;
    PyObject *exception, *cancelled, *await_, *throw_, *close, *call_soon, *path;
    PyObject *set_exception;
    PyObject *http_response_pathsend, *k_extensions;
    /* scope keys and constant values */
    PyObject *k_asgi, *k_http_version, *k_method, *k_scheme, *k_path, *k_raw_path;
    PyObject *k_query_string, *k_root_path, *k_client, *k_server, *k_state;
    PyObject *v_http, *v_https, *v_http10, *v_http11, *asgi_version;
    PyObject *methods[16]; /* str per http_method_t below HTTP_OTHER */
} asgi_strings_t;

extern asgi_strings_t asgi_str;
extern PyTypeObject AsgiApp_Type;
extern PyTypeObject AsgiCall_Type;
extern PyTypeObject AsgiAwaitable_Type;

/* awaitable.c: an awaitable (and coroutine-shaped: send/throw/close, so create_task and
 * ensure_future accept it) that returns value at once (asgi_ready, steals the reference;
 * NULL in, NULL out) or waits for a loop future and returns its result (asgi_waiting). */
PyObject *asgi_ready(PyObject *value);
PyObject *asgi_waiting(PyObject *future);
/* Resolves fut with value unless it is already done (cancelled by its waiter). Never
 * leaves an exception set (failures are reported as unraisable). */
void asgi_resolve(PyObject *fut, PyObject *value);
/* The same with an exception (fut.set_exception). */
void asgi_fail(PyObject *fut, PyObject *exc);

/* scope.c: the http scope of the request (www spec, "HTTP Connection Scope"). */
PyObject *asgi_scope_new(AsgiAppObject *a, server_conn_t *conn, const server_request_t *req);

/* call.c */
/* Logs message (and the exception's traceback when exc is not NULL) through the app's
 * logger; never leaves an exception set. */
void call_log(AsgiCallObject *c, PyObject *exc, const char *fmt, ...);
/* The response is complete: the server finishes the request (its response was appended),
 * waiters learn of it, and the call drops its reference to itself (c must be kept alive by
 * the caller: every caller is a method of the call or holds a reference). */
void call_finish(AsgiCallObject *c);
/* Ends a streamed body (complete, or cut short: the connection closes). */
void call_end_stream(AsgiCallObject *c, int complete);
/* Gives up the response after an error: 500 (or status) when nothing was written yet,
 * otherwise the connection closes. */
void call_abort(AsgiCallObject *c, int status);
/* The server's notification: the output drained, or the connection closed. */
void call_notify(void *arg);
/* A future of the loop, or NULL with an exception. */
PyObject *call_new_future(AsgiCallObject *c);

/* send.c: the send callable's body (METH_O on the call). */
PyObject *asgi_send(AsgiCallObject *c, PyObject *message);
/* The response is given up: 500 or a closed connection, the violation logged, RuntimeError
 * raised in the application; returns NULL. */
PyObject *asgi_violation(AsgiCallObject *c, PyObject *type, const char *fmt, ...);
/* A send() that found the client gone: ends the response, raises ConnectionResetError. */
PyObject *asgi_client_gone(AsgiCallObject *c);

/* websocket.c: a request with "Upgrade: websocket" goes to data_bridge._asgi_ws (the
 * ASGI websocket scope), over the app room's session type (app/websocket.c, the one
 * function below: the WebSocket session and its handshake live there). */
int asgi_ws_dispatch(AsgiAppObject *a, server_conn_t *conn, server_request_t *req);
PyObject *ws_upgrade_new(server_conn_t *conn);
void ws_upgrade_disarm(PyObject *upgrade); /* it will not finish the request */

/* ws_peer.c: _core.WsClientCodec, the client end of a WebSocket for the App's ASGI face.
 * Registers the type; 0 or -1 with an exception. */
int ws_peer_module_init(PyObject *module);

/* pathsend.c */
PyObject *asgi_send_path(AsgiCallObject *c, PyObject *message, PyObject *type);
/* The output drained: the file goes on (from the loop's ready queue, not from inside the
 * server's write callback). */
void pathsend_resume(AsgiCallObject *c);
/* Closes the file and frees the piece buffer (idempotent). */
void pathsend_close(AsgiCallObject *c);

#endif
