/*
 * Internal types of the app layer (csrc/app/ only): route plans compiled once at startup
 * from the handler signatures, the Python-facing Server object, and the classes of the
 * Python layer that the native path recognises (Response, HTTPException, Request).
 */
#ifndef DB_APP_INTERNAL_H
#define DB_APP_INTERNAL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "app/app.h"
#include "form/form.h"
#include "loop/loop.h"
#include "router/router.h"
#include "server/server.h"

/* Where an argument comes from. Values are shared with data_bridge/api/_plan.py. */
enum arg_source {
    ARG_PATH = 0,
    ARG_QUERY = 1,
    ARG_BODY = 2,
    ARG_REQUEST = 3,
    ARG_HEADER = 4, /* a request header field (Header()) */
    ARG_COOKIE = 5, /* a cookie of the Cookie header (Cookie()) */
    ARG_FORM = 6,   /* a field of an application/x-www-form-urlencoded body (Form()) */
};

/* How a text value becomes the argument. Values are shared with _plan.py. */
enum arg_conv {
    CONV_STR = 0,
    CONV_INT = 1,
    CONV_FLOAT = 2,
    CONV_BOOL = 3,
    CONV_ANY = 4,   /* body: any JSON value */
    CONV_DICT = 5,  /* body: a JSON object */
    CONV_LIST = 6,  /* body: a JSON array */
    CONV_MODEL = 7, /* body: JSON value passed through the param's validator */
    CONV_BYTES = 8, /* body: the raw bytes */
};

#define ARG_FLAG_OPTIONAL 0x100 /* None is an accepted value (Optional[...]) */
#define ARG_FLAG_KWONLY   0x200 /* passed by keyword */
#define ARG_FLAG_EMBED    0x400 /* one of several body parameters: a key of the JSON object */
#define ARG_FLAG_LIST     0x800 /* query/header: every occurrence, as a list of conv values */

#define APP_MAX_ARGS 64

typedef struct {
    PyObject *name;    /* str, the parameter name */
    const char *cname; /* UTF-8 of name, owned by the str */
    Py_ssize_t cname_len;
    int source;
    int conv;
    int flags;
    int path_index;      /* ARG_PATH: index among the route's captured params */
    PyObject *def;       /* default value, or NULL when required */
    PyObject *validator; /* CONV_MODEL: callable(value) -> (ok, value_or_errors) */
    /* Body parameters: the same validator reading the raw JSON bytes
     * (callable(bytes) -> (ok, value_or_errors)), or NULL. */
    PyObject *json_validator;
    /* The name looked up in the request (query key, lower-case header name, cookie name):
     * the parameter's alias, or its name. Also what error locations show, as in FastAPI. */
    PyObject *key;
    const char *ckey; /* UTF-8 of key, owned by the str */
    Py_ssize_t ckey_len;
    /* Constraints of Query()/Path()/Header()/Cookie() (NULL or -1 when absent): bounds
     * compared with the converted value; lengths of strings (code points) or lists; a
     * compiled pattern that str values must contain a match of (re.search, as pydantic). */
    PyObject *gt, *ge, *lt, *le;
    Py_ssize_t min_len, max_len;
    PyObject *pattern;
    int has_checks;
} arg_plan_t;

/* Form limits as Starlette's parsers apply them (FastAPI's form_limits). */
typedef struct {
    size_t max_files;       /* parts with a filename */
    size_t max_fields;      /* other parts, or urlencoded fields */
    uint64_t max_part_size; /* bytes of a non-file part or urlencoded field */
} app_form_limits_t;

typedef struct {
    PyObject *handler;
    PyObject *path;    /* the template, for error messages */
    PyObject *kwnames; /* tuple of keyword-only names, or NULL */
    int status_code;
    int nargs;       /* total arguments */
    int npositional; /* arguments before the keyword-only ones */
    int has_query;   /* any ARG_QUERY or ARG_FORM argument: slots are needed */
    int has_form;    /* any ARG_FORM argument: a form body is parsed */
    /* A JSON body needs a JSON Content-Type (FastAPI's strict_content_type, default on). */
    int strict_content_type;
    /* The route's body limit (FastAPI's max_body_size, else the server's); 0: none. The
     * server reads bodies up to its own limit, the largest of all routes'. */
    unsigned long long max_body;
    /* The Content-Type of a str result when the route's response class is a text one
     * (bytes, e.g. b"text/plain; charset=utf-8"); NULL: a str is written as JSON. */
    PyObject *text_ctype;
    /* When binding fails, the handler (the dependency resolver of routes with
     * dependencies) is still called, with None for what did not bind and the errors as
     * __db_binding_errors__: it runs the dependencies that bound, in FastAPI's order,
     * then raises RequestValidationError. */
    int lenient;
    /* The Request subclass of this route's app (it knows its app), or NULL for the one
     * given to configure(). Strong reference. */
    PyObject *request_class;
    /* Limits of the form body (FastAPI's form_limits over Starlette's defaults). */
    app_form_limits_t form_limits;
    /* A StaticFiles route: its _core.FileCache, which answers the files the Python
     * StaticFiles served before without calling it (files_cache.c); else NULL. Strong. */
    PyObject *file_cache;
    /* The route's id in the metrics (its 1-based place in ServerObject.plans). */
    unsigned metrics_id;
    /* The handler takes the Request (itself, or for its form with files): a chunked body
     * or one over 64 KiB is read as it arrives (request.stream(), form()), not whole. */
    int stream_body;
    /* The route's handler is an APIRoute.get_route_handler override (routing.py): its
     * Request keeps the router match, so that the route's _core.Binder can bind the
     * request later, from the body that handler's Request gives (binder.c). */
    int keep_match;
    /* How the handler's JSON result is written (json.h's JSON_OPT_*): non-str keys as
     * strings, and with JSON_OPT_AS_MODEL for a route whose response model is a plain
     * dataclass, so that the responder can hand back the exact instances unwrapped and
     * they are written as pydantic writes them (routing.py's _Responder). */
    unsigned json_flags;
    arg_plan_t args[];
} route_plan_t;

/* Classes and callables of the Python layer, set once by _core.configure(). */
typedef struct {
    PyObject *response_class;       /* data_bridge.api.responses.Response */
    PyObject *http_exception_class; /* data_bridge.api.exceptions.HTTPException */
    PyObject *request_class;        /* data_bridge.api.request.Request (subclass of ours) */
    PyObject *log_exception;        /* callable(exc, where) */
    PyObject *create_task;          /* None, or a callable(loop, coro) -> Task */
    PyObject *streaming_class;      /* data_bridge.api.responses.StreamingResponse */
    PyObject *stream_start;         /* callable(writer_or_None, response, route_path) */
    PyObject *background_start;     /* callable(background): runs it after the response */
    /* Another framework's Response class (Starlette's, once an unmodified FastAPI app is
     * compiled: api/_fastapi_native.py) and the callable turning one of its instances into
     * ours; both NULL until set_foreign_responses(). */
    PyObject *foreign_response_class;
    PyObject *foreign_convert;
} app_config_t;

extern app_config_t app_cfg;

typedef struct {
    PyObject_HEAD
    PyObject *loop;   /* the PyLoop; strong reference */
    server_t *server; /* NULL until listen(), again after close */
    router_t *router;
    route_plan_t **plans; /* owned; freed with the object */
    size_t nplans;
    server_config_t cfg;
    PyObject *on_closed; /* future resolved when close() completes, or NULL */
    uv_signal_t *signals[2];
    PyObject *signal_cb; /* callable(signum) */
    /* callable(exc, request_or_None) -> a handler result, or NotImplemented when no
     * exception handler of the app takes exc; NULL when the app registered none. */
    PyObject *exception_hook;
    /* callable(origin, preflight_method_or_None, request_headers_or_None, has_cookie) for
     * requests with an Origin header (CORS): None, bytes of header lines for the response, or
     * (status, content_type, body, header_lines) to answer at once (a preflight); NULL
     * when the app has no CORS policy. */
    PyObject *cors_hook;
    /* A path that matches no route but would with its trailing slash added or removed is
     * redirected there (307), as Starlette's redirect_slashes does. */
    int redirect_slashes;
    /* Seconds a parked handler may run before its Task is cancelled with
     * respond_timeout_message and the request answered 504 (--timeout-handler); 0: none. */
    double handler_timeout;
    PyObject *request_class; /* for the routes added from now on, or NULL */
    /* callable(errors, request) -> a handler result, or NotImplemented for the default
     * 422: the app's RequestValidationError handler; NULL when it has none. */
    PyObject *validation_hook;
    /* GZipMiddleware (set_gzip): applied to the server when it is made; gzip_excluded is
     * NULL when the app has no GZip policy. */
    PyObject *gzip_excluded;
    int gzip_level;
    size_t gzip_minimum;
    /* Native middleware answering before routing, outermost first (guard.c); when there
     * is none, CORS alone runs as before. */
    struct app_guard *guards;
    size_t nguards;
    /* Requests reach this server over TLS terminated in front of it (set_secure): the
     * HTTPS redirect lets them through and redirects stay on https. */
    int secure;
    /* TLS (set_tls): the context the native server serves connections with, or NULL. A
     * reference of ours (tls.h), separate from the server's own. */
    struct tls_context *tls;
    /* The ASGI root_path the app is served under (set_root_path): a request path that
     * starts with it is routed on the rest, as Starlette's get_route_path does. */
    char *root_path;
    size_t root_path_len;
    /* An _core.AsgiApp: the server dispatches every request to it (asgi_dispatch) instead
     * of the router; chosen once when the native server is made, so the routed path pays
     * nothing for it. NULL for an App. */
    PyObject *asgi;
    /* An _core.AsgiApp that answers every request no native route matches (set_fallback):
     * an unmodified FastAPI app compiled to native routes (api/_fastapi_native.py) keeps
     * itself as the fallback, so its routes that could not be compiled, its 404s and 405s
     * are its own. Consulted only when the router finds no route. NULL: none. */
    PyObject *fallback;
    /* Apps mounted under path prefixes (app.mount): a request whose routed path is under
     * one goes to it: an ASGI app (_core.AsgiApp) through the ASGI driver, a data-bridge
     * App through its own (never listening) Server's dispatch, or, for an app with HTTP
     * middleware, the unrouted handler (app_mount.through). */
    struct app_mount *mounts;
    size_t nmounts;
    /* The plan of the handler that answers requests no route takes (404, 405 and
     * redirect_slashes' 307) when the app has HTTP middleware or exception handlers that
     * must see them (add_route(..., unrouted=True)); its Request carries the router's
     * outcome as `_db_routing`. One of `plans`; NULL: the server answers them itself. */
    route_plan_t *unrouted;
    /* bytes: the response header lines every response carries (uvicorn's Server header
     * and --header), pointed at by cfg.default_headers; NULL when none. */
    PyObject *default_headers;
    /* The access log (access.c): logger.info-like callable(format, *args), or NULL; the
     * format and the two version strings are interned once. */
    PyObject *access_log;
    PyObject *access_format;
    PyObject *access_v10;
    PyObject *access_v11;
    /* The written access log (Server.set_access_log_fd): lines in uvicorn's default text,
     * each after `access_prefix` (bytes), gathered in access_buf and written to access_fd
     * by a callback the loop runs once per iteration (access_flush_pending: scheduled);
     * access_fd is -1 when off. */
    int access_fd;
    int access_flush_pending;
    db_buf_t access_buf;
    PyObject *access_prefix;
    PyObject *access_flush; /* the bound method the loop calls */
    /* The JSON lines of access_log.JsonAccessFormatter instead (set_access_log_fd(fd, b"",
     * True)): the line's end with this process's id (',"pid":N}\n', made once), and the
     * time's text up to its seconds for the second access_sec (the second changes far less
     * often than lines are written). */
    int access_json;
    char access_tail[40];
    size_t access_tail_len;
    int64_t access_sec;
    char access_stamp[32];
    /* Proxies trusted with X-Forwarded-* (Server(forwarded_allow_ips=...)), pointed at by
     * cfg.trust; NULL when proxy headers are off. */
    http_trust_t *trust;
    /* Metrics (metrics_py.c): the shared memory the counters live in, and the path. */
    Py_buffer metrics_view;
    int metrics_held;
    PyObject *metrics_path;
    /* The route templates by metrics id, pointed at by cfg.metrics_routes (PyMem; the
     * strings are the plans' path objects' UTF-8). */
    const char **metrics_routes;
    /* Probes (health_py.c): (health path, ready path) as bytes, and the readiness
     * callable (NULL: none). */
    PyObject *health_paths;
    PyObject *ready_cb;
} ServerObject;

struct app_mount {
    char *prefix; /* without a trailing '/'; owned */
    size_t len;
    PyObject *target; /* _core.AsgiApp or Server (strong) */
    /* NULL, or what the unrouted handler gets for the HTTP requests under the prefix (an
     * app with HTTP middleware, which Starlette runs around its mounts too): its Request's
     * `_db_routing` is then (0, through), or the 307 to "<prefix>/" for the prefix alone.
     * WebSocket upgrades, which HTTP middleware lets through, still go to target. */
    PyObject *through;
};

/* access.c: Server.set_access_log(callable or None). */
PyObject *app_set_access_log(ServerObject *self, PyObject *log);
/* access.c: Server.set_access_log_fd(fd, prefix, json=False), the flush the loop calls, and the
 * last flush and release (when the server closed, and at dealloc). */
PyObject *app_set_access_log_fd(ServerObject *self, PyObject *args);
PyObject *app_flush_access_log(ServerObject *self, PyObject *unused);
void app_access_release(ServerObject *self);
/* metrics_py.c: Server.set_metrics(buffer, slot, path), and its release at dealloc. */
PyObject *app_set_metrics(ServerObject *self, PyObject *args);
void app_metrics_release(ServerObject *self);
/* health_py.c: Server.set_health(health_path, ready_path, ready), and its release. */
PyObject *app_set_health(ServerObject *self, PyObject *args);
void app_health_release(ServerObject *self);

/* tls_py.c: _core.TLSContext and Server.set_tls(context or None). */
extern PyTypeObject TLSContext_Type;
PyObject *app_set_tls(ServerObject *self, PyObject *arg);

extern PyTypeObject Server_Type;
extern PyTypeObject Request_Type;
extern PyTypeObject Driver_Type;
extern PyTypeObject Tail_Type; /* invoke.c: a handler's hand-over of its rest to the Driver */
extern PyTypeObject StreamWriter_Type;

/* plan.c */
route_plan_t *plan_build(PyObject *handler, PyObject *path, PyObject *params, int status_code,
                         const router_t *router_unused);
void plan_free(route_plan_t *plan);
/* bind.c: fills args (nargs slots, new references); on validation errors appends dicts to
 * *errors (created on demand) and returns 1; returns -1 with an exception on failure, 0 ok. */
int bind_arguments(const route_plan_t *plan, const router_match_t *m, server_request_t *req,
                   PyObject **args, PyObject **request_obj, PyObject **errors);
/* invoke.c: calls a lenient plan's handler although binding failed (args: nargs + 1 slots,
 * those that did not bind NULL; errors: the binding errors). A new reference, or NULL with
 * an exception set. */
PyObject *app_call_lenient(const route_plan_t *plan, PyObject **args, PyObject *errors);
/* respond.c */
void respond_result(server_conn_t *conn, const route_plan_t *plan, PyObject *result);
/* Answers the current exception: the server's exception hook first (if any; request may be
 * NULL), then HTTPException's status and detail, CancelledError's 503, else 500. */
void respond_exception(server_conn_t *conn, const route_plan_t *plan, PyObject *hook,
                       PyObject *request);
void respond_validation_errors(server_conn_t *conn, PyObject *errors);
int respond_init(void);
/* The message a handler's Task is cancelled with when it ran past --timeout-handler: a
 * CancelledError carrying it is answered 504, any other 503. */
extern PyObject *respond_timeout_message;
/* Appends "name: value\r\n" for each (name, value) pair, checked against response
 * splitting; Content-Length is skipped and "connection: close" sets *close. Returns 0, or
 * -1 with an exception. */
int respond_header_lines(PyObject *headers, db_buf_t *out, int *close);
/* stream.c: answers a StreamingResponse (lines: scratch for its header lines). Returns 0
 * when the stream began (or the head alone was sent), -1 with an exception when nothing
 * was sent (answer 500), 1 with an exception when the head was sent but the stream could
 * not start (log it; the connection closes after the head). */
int respond_streaming(server_conn_t *conn, PyObject *resp, db_buf_t *lines, int *close,
                      PyObject *path);
int stream_init(void);
/* request.c */
PyObject *request_new(server_request_t *req, const router_match_t *m);
/* The server's decider for streamed bodies (server_set_stream_body): 1 when the request's
 * route (or mounted app) reads its body as it arrives. */
int app_stream_body(void *ctx, const http_request_t *head);
void request_detach(PyObject *request);
/* The request a Request still attached to its connection stands for, with the router match
 * it kept (plans with keep_match): 1 with *req and *m filled, 0 when it has none (detached,
 * made by Python, or its route keeps no match). */
int request_kept_match(PyObject *obj, server_request_t **req, router_match_t *m);
/* binder.c: _core.Binder, a route's plan bound on demand (custom route handlers). */
extern PyTypeObject Binder_Type;
/* The body of a Request still attached to its request, as a slice of the connection's
 * buffer (valid until the request finishes): 1 with *body and *len set, 0 when the object
 * is no such Request (detached, or not a Request). */
int request_body_slice(PyObject *obj, const char **body, size_t *len);
/* A Request whose body streams (server/body.c): 1 with *conn (read it with
 * server_conn_body_read) and *length (the declared Content-Length; 0 when chunked or no
 * longer known) while its request is served, -1 once it finished, 0 when obj is no such
 * Request (its body came whole). */
int request_body_stream(PyObject *obj, server_conn_t **conn, uint64_t *length);

/* websocket.c */
extern PyTypeObject WsSession_Type;
int ws_session_init_type(void);
/* 0 when req is a valid WebSocket handshake (RFC 6455 §4.2.1), else the status to answer. */
int ws_handshake_status(const server_request_t *req);
/* Answers the upgrade and returns a new session object (the server's ws_max_size and
 * ws_max_queue apply); NULL with an exception set. */
PyObject *ws_session_accept(server_conn_t *conn, PyObject *loop, const char *lines, size_t n);
/* invoke.c */
int app_dispatch(void *ctx, server_conn_t *conn, server_request_t *req);
/* invoke.c: the CORS step (see ServerObject.cors_hook): 1 when it answered, else 0. With
 * through >= 0 a preflight's answer is not sent but left in *outcome for the unrouted
 * handler (app_guard_outcome's shape; NULL with 500 answered when that fails). */
int app_apply_cors(ServerObject *srv, server_conn_t *conn, server_request_t *req, int through,
                   PyObject **outcome);

/* The router's method code of WebSocket routes (no HTTP method has it): a WebSocket
 * upgrade matches only them and an HTTP request never does, as Starlette matches a
 * websocket scope to WebSocketRoutes alone, so one path may have both. */
#define APP_METHOD_WEBSOCKET 16

/* guard.c: TrustedHostMiddleware, HTTPSRedirectMiddleware and the CORS step in the app's
 * middleware order. */
enum { APP_GUARD_TRUSTED_HOST = 1, APP_GUARD_HTTPS_REDIRECT = 2, APP_GUARD_CORS = 3 };
/* Runs the guards for a request: 1 when one answered it, 0 to route it. An answer that
 * must pass through HTTP middleware is not sent: *outcome is then the unrouted handler's
 * routing outcome for it (NULL when the answer was sent). */
int app_guards_run(ServerObject *srv, server_conn_t *conn, server_request_t *req,
                   PyObject **outcome);
/* The routing outcome of a guard's answer handed to the unrouted handler:
 * (1, (through, status, content type or None, body, header lines)). */
PyObject *app_guard_outcome(int through, int status, const char *ctype, size_t ctype_len,
                            const char *body, size_t body_len, const char *lines, size_t lines_len);
void app_guards_free(ServerObject *srv);
/* guard.c: what RedirectResponse writes of a URL: src[0..n) percent-encoded outside
 * urllib.parse.quote's safe bytes and its safe set (a '%' is kept). Returns 0 or -1. */
int app_put_quoted(db_buf_t *out, const char *s, size_t n);
/* guard.c: a decoded path as a redirect's Location carries it (Starlette's URL from the
 * scope escapes '?', '#' and '\\', then RedirectResponse quotes the rest). Returns 0 or -1. */
int app_put_url_path(db_buf_t *out, const char *path, size_t n);
/* Server.add_guard(kind, patterns=b"", www_redirect=False, through=-1). */
PyObject *app_add_guard(ServerObject *self, PyObject *args);
/* form_py.c: _core.MultipartParser (a body parsed whole or as it arrives). */
extern PyTypeObject MultipartParser_Type;
/* files_py.c: _core.parse_range(value, size). */
PyObject *app_parse_range(PyObject *module, PyObject *args);
/* files_cache.c: _core.FileCache, and the answer of a StaticFiles route from it: 1 when the
 * response was appended (or the file body began), 0 when Python must answer. */
extern PyTypeObject FileCache_Type;
int app_files_answer(PyObject *cache, server_conn_t *conn, server_request_t *req,
                     const router_match_t *m);
/* form_collect.c: a multipart/form-data body's parts as Python objects (see the file's
 * opening comment for the tuples). init() makes the parser for the Content-Type value;
 * then feed() the body in pieces of any size (1 once the close delimiter was read, 0 for
 * more) and finish() at its end (a new reference to the parts). init, feed and finish
 * return -1 (NULL) with ValueError(message[, 413]), MemoryError or a callback's own
 * exception set. Set spool (a strong reference: a callable returning a file object with a
 * descriptor) and spool_max after init to keep larger file contents on disk; total is the
 * body's length when known (it sizes each part's buffer). close() closes every file made;
 * free() releases everything (after init, failed or not). */
typedef struct {
    form_multipart_t *parser;
    PyObject *parts;   /* list of the finished parts */
    PyObject *headers; /* the current part's [(name, value)] */
    PyObject *name, *filename, *ctype;
    int is_file;
    /* The piece being fed, and the body's bytes fed before it; total: the declared length
     * of the body, 0 when not known. */
    const char *piece, *piece_end;
    uint64_t fed, total;
    /* The current part's content: a run of the piece not copied yet, then its bytes object
     * (content_len bytes used of its size) or, rolled over, its file and descriptor. */
    const char *run;
    size_t run_len;
    PyObject *content;
    size_t content_len;
    PyObject *file;
    int fd;
    uint64_t size;
    /* A part that ended inside a piece read into its own content (a direct read): its
     * content is trimmed and the part inserted at held_index once the parser is done with
     * the piece. held is (name, filename, content_type, headers, size). */
    PyObject *held, *held_content;
    size_t held_len;
    Py_ssize_t held_index;
    PyObject *spool;
    uint64_t spool_max;
    /* Starlette's MultiPartParser counts (FastAPI's form_limits): parts with a filename are
     * files, the others fields. */
    size_t files, fields, max_files, max_fields;
    uint64_t max_part_size;
} app_form_collect_t;

int app_form_collect_init(app_form_collect_t *c, const char *ctype, size_t ctype_len,
                          const app_form_limits_t *lim, uint64_t max_file_size, uint64_t max_size);
int app_form_collect_feed(app_form_collect_t *c, const char *data, size_t len);
PyObject *app_form_collect_finish(app_form_collect_t *c);
/* Where the next piece of the body may be read to land in place (a direct read,
 * server_conn_body_read_into): 1 with dst[0..cap) inside the current file part's content
 * buffer, 0 when there is no such room (the piece then comes from the read window). The
 * next app_form_collect_feed must be given the piece read there (or a piece from
 * elsewhere: the room is only a place, never assumed filled). */
int app_form_collect_dest(app_form_collect_t *c, char **dst, size_t *cap);
/* Sets the exception of a form_error_t (a callback's exception already set is kept). */
void app_form_collect_error(const app_form_collect_t *c, int code);
void app_form_collect_close(app_form_collect_t *c);
int app_form_collect_traverse(app_form_collect_t *c, visitproc visit, void *arg);
void app_form_collect_clear(app_form_collect_t *c);
void app_form_collect_free(app_form_collect_t *c);
/* The parts of a whole body (the binder's Form() fields: no spool, every content bytes);
 * NULL with ValueError (the message to answer 400 with) or MemoryError. */
PyObject *app_multipart_parts(const char *ctype, size_t ctype_len, const char *body, size_t len,
                              const app_form_limits_t *lim);
int invoke_init(void);

#endif
