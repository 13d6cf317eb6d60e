/*
 * data_bridge._core.Server: the Python handle on a native server. The Python layer
 * (data_bridge.api.App) creates one per process with the loop and the limits, adds the
 * compiled routes, then listens; requests never pass through Python code of ours.
 *
 * Ownership: while listening the object holds a reference to itself (taken in listen,
 * released in on_server_closed once every handle is closed), because libuv callbacks
 * carry a pointer to it. Signal handles are freed in their close callbacks.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_internal.h"
#include "asgi/asgi.h"
#include "json/json.h"
#include "loop/loop.h"
#include "tls/tls.h"
static void mounts_clear(ServerObject *self);

static int asgi_stream_body(void *ctx, const http_request_t *head)
{
    (void)ctx;
    (void)head;
    return 1;
}

static const char *route_error(int r)
{
    return router_error_message(r);
}

static int server_init(ServerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"loop",
                             "max_body",
                             "max_target",
                             "max_header_bytes",
                             "max_headers",
                             "keepalive_timeout",
                             "request_timeout",
                             "backlog",
                             "redirect_slashes",
                             "date_header",
                             "limit_concurrency",
                             "default_headers",
                             "forwarded_allow_ips",
                             "send_timeout",
                             "header_timeout",
                             "handler_timeout",
                             "max_upload",
                             "ws_ping_interval",
                             "ws_ping_timeout",
                             "ws_per_message_deflate",
                             "ws_max_size",
                             "ws_max_queue",
                             "forwarded_headers",
                             "min_body_rate",
                             "min_body_grace",
                             NULL};
    PyObject *loop;
    server_config_t cfg;
    server_config_default(&cfg);
    unsigned long long max_body = cfg.max_body;
    Py_ssize_t max_target = (Py_ssize_t)cfg.http.max_target;
    Py_ssize_t max_header_bytes = (Py_ssize_t)cfg.http.max_header_bytes;
    Py_ssize_t max_headers = (Py_ssize_t)cfg.http.max_headers;
    double keepalive = cfg.keepalive_timeout / 1000.0,
           request_timeout = cfg.request_timeout / 1000.0, send_timeout = cfg.send_timeout / 1000.0;
    int backlog = cfg.backlog;
    int redirect_slashes = 0, date_header = 1;
    Py_ssize_t limit_concurrency = 0;
    PyObject *default_headers = NULL;
    const char *forwarded = NULL;
    Py_ssize_t forwarded_len = 0;
    double header_timeout = 0;  /* 0: the request timeout alone */
    double handler_timeout = 0; /* 0: handlers run as long as they take */
    unsigned long long max_upload = 0;
    /* WebSocket options in seconds (0: off) and as uvicorn's --ws-* flags give them. */
    double ws_ping_interval = cfg.ws_ping_interval / 1000.0,
           ws_ping_timeout = cfg.ws_ping_timeout / 1000.0;
    int ws_deflate = cfg.ws_deflate;
    unsigned long long ws_max_size = cfg.ws_max_size;
    Py_ssize_t ws_max_queue = (Py_ssize_t)cfg.ws_max_queue;
    const char *forwarded_headers = "x-forwarded";
    double min_body_rate = 0, min_body_grace = 5.0;
    if (!PyArg_ParseTupleAndKeywords(
            args, kw, "O|$KnnnddippnSz#dddKddpKnsdd", kwlist, &loop, &max_body, &max_target,
            &max_header_bytes, &max_headers, &keepalive, &request_timeout, &backlog,
            &redirect_slashes, &date_header, &limit_concurrency, &default_headers, &forwarded,
            &forwarded_len, &send_timeout, &header_timeout, &handler_timeout, &max_upload,
            &ws_ping_interval, &ws_ping_timeout, &ws_deflate, &ws_max_size, &ws_max_queue,
            &forwarded_headers, &min_body_rate, &min_body_grace))
        return -1;
    if (self->server != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the server is already running");
        return -1;
    }
    if (!pyloop_check(loop)) {
        PyErr_SetString(PyExc_TypeError, "loop must be a data_bridge.pyloop.Loop");
        return -1;
    }
    if (max_target < 16 || max_header_bytes < 64 || max_headers < 1 ||
        max_headers > HTTP_MAX_HEADERS || keepalive <= 0 || request_timeout <= 0 ||
        send_timeout <= 0 || backlog < 1 || limit_concurrency < 0 ||
        !(header_timeout >= 0 && header_timeout < 1e9) ||
        !(handler_timeout >= 0 && handler_timeout < 1e9) ||
        !(ws_ping_interval >= 0 && ws_ping_interval < 1e9) ||
        !(ws_ping_timeout >= 0 && ws_ping_timeout < 1e9) || ws_max_queue < 1 ||
        !(min_body_rate >= 0 && min_body_rate < 1e12) ||
        !(min_body_grace >= 0 && min_body_grace < 1e6)) {
        PyErr_Format(PyExc_ValueError,
                     "invalid server limits (max_target >= 16, max_header_bytes >= 64, "
                     "1 <= max_headers <= %d, timeouts > 0, backlog >= 1, WebSocket ping "
                     "interval and timeout >= 0, ws_max_queue >= 1, min_body_rate and "
                     "min_body_grace >= 0)",
                     HTTP_MAX_HEADERS);
        return -1;
    }
    cfg.max_body = max_body;
    cfg.max_upload = max_upload;
    cfg.http.max_target = (size_t)max_target;
    cfg.http.max_header_bytes = (size_t)max_header_bytes;
    cfg.http.max_headers = (size_t)max_headers;
    cfg.keepalive_timeout = (uint64_t)(keepalive * 1000.0);
    cfg.request_timeout = (uint64_t)(request_timeout * 1000.0);
    cfg.send_timeout = (uint64_t)(send_timeout * 1000.0);
    cfg.header_timeout = (uint64_t)(header_timeout * 1000.0);
    /* A positive rate under a byte a second still judges (a byte a second). */
    cfg.min_body_rate = min_body_rate > 0 && min_body_rate < 1 ? 1 : (uint64_t)min_body_rate;
    cfg.min_body_grace = (uint64_t)(min_body_grace * 1000.0);
    cfg.backlog = backlog;
    cfg.no_date_header = !date_header;
    cfg.limit_concurrency = (size_t)limit_concurrency;
    /* A positive interval under a millisecond still pings (every millisecond). */
    cfg.ws_ping_interval = ws_ping_interval > 0 ? (uint64_t)(ws_ping_interval * 1000.0) : 0;
    if (ws_ping_interval > 0 && cfg.ws_ping_interval == 0)
        cfg.ws_ping_interval = 1;
    cfg.ws_ping_timeout = ws_ping_timeout > 0 ? (uint64_t)(ws_ping_timeout * 1000.0) : 0;
    if (ws_ping_timeout > 0 && cfg.ws_ping_timeout == 0)
        cfg.ws_ping_timeout = 1;
    cfg.ws_deflate = ws_deflate;
    cfg.ws_max_size = ws_max_size;
    cfg.ws_max_queue = (size_t)ws_max_queue;
    /* The bytes stay referenced by the object, which outlives its native server. */
    Py_XSETREF(self->default_headers, Py_XNewRef(default_headers));
    if (self->default_headers != NULL) {
        cfg.default_headers = PyBytes_AS_STRING(self->default_headers);
        cfg.default_headers_len = (size_t)PyBytes_GET_SIZE(self->default_headers);
    }
    http_trust_free(self->trust);
    self->trust = NULL;
    if (forwarded != NULL &&
        (self->trust = http_trust_new(forwarded, (size_t)forwarded_len)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    cfg.trust = self->trust;
    /* Which proxy fields the trusted proxies are believed for (forwarded.c): uvicorn's two
     * X-Forwarded-* fields by default; the others only when the proxies are known to set
     * them, since a proxy passes on whatever field of a client's it does not set. */
    if (strcmp(forwarded_headers, "x-forwarded") == 0) {
        cfg.forwarded_mode = SERVER_FORWARDED_X;
    } else if (strcmp(forwarded_headers, "x-forwarded-host") == 0) {
        cfg.forwarded_mode = SERVER_FORWARDED_X_HOST;
    } else if (strcmp(forwarded_headers, "forwarded") == 0) {
        cfg.forwarded_mode = SERVER_FORWARDED_RFC7239;
    } else {
        PyErr_Format(PyExc_ValueError,
                     "forwarded_headers must be 'x-forwarded', 'x-forwarded-host' or "
                     "'forwarded', not '%s'",
                     forwarded_headers);
        return -1;
    }
    app_access_release(self); /* a re-init starts without the written access log */
    self->cfg = cfg;
    self->redirect_slashes = redirect_slashes;
    self->handler_timeout = handler_timeout;
    Py_XSETREF(self->loop, Py_NewRef(loop));
    if (self->router == NULL && (self->router = router_new()) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static PyObject *server_add_route(ServerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"methods",
                             "path",
                             "handler",
                             "params",
                             "status_code",
                             "strict_content_type",
                             "lenient",
                             "text_content_type",
                             "max_body_size",
                             "form_limits",
                             "file_cache",
                             "keep_match",
                             "unrouted",
                             "json_as_model",
                             NULL};
    PyObject *methods, *path, *handler, *params, *text_ctype = Py_None, *file_cache = Py_None;
    int status_code = 200, strict = 1, lenient = 0, keep_match = 0, unrouted = 0, as_model = 0;
    unsigned long long max_body = 0;
    /* Starlette's defaults: 1000 files, 1000 fields, 1 MiB per field. */
    Py_ssize_t max_files = 1000, max_fields = 1000;
    unsigned long long max_part = 1024 * 1024;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OUOO|ippOK(nnK)Oppp", kwlist, &methods, &path,
                                     &handler, &params, &status_code, &strict, &lenient,
                                     &text_ctype, &max_body, &max_files, &max_fields, &max_part,
                                     &file_cache, &keep_match, &unrouted, &as_model))
        return NULL;
    if (unrouted && (file_cache != Py_None || PyObject_Length(methods) != 0)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError,
                            "an unrouted handler takes no methods and no file_cache");
        return NULL;
    }
    if (unrouted && self->unrouted != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the server has an unrouted handler already");
        return NULL;
    }
    if (file_cache != Py_None && !PyObject_TypeCheck(file_cache, &FileCache_Type)) {
        PyErr_SetString(PyExc_TypeError, "file_cache must be a FileCache or None");
        return NULL;
    }
    if (max_files < 0 || max_fields < 0) {
        PyErr_SetString(PyExc_ValueError, "form limits must be non-negative");
        return NULL;
    }
    if (text_ctype != Py_None && !PyBytes_Check(text_ctype)) {
        PyErr_SetString(PyExc_TypeError, "text_content_type must be bytes or None");
        return NULL;
    }
    if (self->router == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Server.__init__ was not called");
        return NULL;
    }
    if (self->server != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "routes cannot be added while serving");
        return NULL;
    }
    if (!PyCallable_Check(handler)) {
        PyErr_SetString(PyExc_TypeError, "handler must be callable");
        return NULL;
    }
    route_plan_t *plan = plan_build(handler, path, params, status_code, self->router);
    if (plan == NULL)
        return NULL;
    plan->request_class = Py_XNewRef(self->request_class);
    plan->strict_content_type = strict;
    plan->max_body = max_body;
    plan->form_limits.max_files = (size_t)max_files;
    plan->form_limits.max_fields = (size_t)max_fields;
    plan->form_limits.max_part_size = max_part;
    plan->text_ctype = text_ctype == Py_None ? NULL : Py_NewRef(text_ctype);
    plan->file_cache = file_cache == Py_None ? NULL : Py_NewRef(file_cache);
    plan->lenient = lenient && plan->nargs < APP_MAX_ARGS;
    plan->keep_match = keep_match;
    if (as_model)
        plan->json_flags |= JSON_OPT_AS_MODEL;
    /* Streamed only when nothing is bound from the body itself: the binder needs a JSON or
     * urlencoded body whole (a route wrapped by HTTP middleware takes the Request too). */
    int takes_request = 0, binds_body = 0;
    for (int i = 0; i < plan->nargs; i++) {
        takes_request |= plan->args[i].source == ARG_REQUEST;
        binds_body |= plan->args[i].source == ARG_BODY || plan->args[i].source == ARG_FORM;
    }
    plan->stream_body = takes_request && !binds_body;
    if (unrouted && !takes_request) {
        plan_free(plan);
        PyErr_SetString(PyExc_TypeError, "an unrouted handler must take the Request");
        return NULL;
    }
    route_plan_t **grown = realloc(self->plans, (self->nplans + 1) * sizeof(*grown));
    if (grown == NULL) {
        plan_free(plan);
        return PyErr_NoMemory();
    }
    self->plans = grown;
    self->plans[self->nplans++] = plan;
    plan->metrics_id = (unsigned)self->nplans;
    if (unrouted) {
        /* Owned with the other plans; never in the router. */
        self->unrouted = plan;
        Py_RETURN_NONE;
    }
    Py_ssize_t tlen;
    const char *tmpl = PyUnicode_AsUTF8AndSize(path, &tlen);
    PyObject *seq = tmpl ? PySequence_Fast(methods, "methods must be a sequence") : NULL;
    if (seq == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        long m = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if ((m < 0 || m >= HTTP_OTHER) && m != APP_METHOD_WEBSOCKET) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "bad method code %ld", m);
            Py_DECREF(seq);
            return NULL;
        }
        int r = router_add(self->router, (int)m, tmpl, (size_t)tlen, plan);
        if (r < 0) {
            PyErr_Format(PyExc_ValueError, "cannot add route %s %R: %s",
                         http_method_name((http_method_t)m), path, route_error(r));
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

static int server_ensure(ServerObject *self)
{
    if (self->server)
        return 0;
    if (self->loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Server.__init__ was not called");
        return -1;
    }
    /* The AsgiApp outlives the server: this object holds it, and holds itself while the
     * server exists (below). */
    if (self->asgi != NULL)
        self->server =
            server_new(pyloop_uv_loop(self->loop), &self->cfg, asgi_dispatch, self->asgi);
    else
        self->server = server_new(pyloop_uv_loop(self->loop), &self->cfg, app_dispatch, self);
    if (self->server == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    /* Which requests read their body as it arrives: an ASGI app always does (receive());
     * an app's routes that take the Request do (app_stream_body). */
    server_set_stream_body(self->server, self->asgi != NULL ? asgi_stream_body : app_stream_body);
    if ((self->tls != NULL && server_set_tls(self->server, self->tls) < 0) ||
        (self->gzip_excluded != NULL &&
         server_set_gzip(self->server, self->gzip_level, self->gzip_minimum,
                         PyBytes_AS_STRING(self->gzip_excluded),
                         (size_t)PyBytes_GET_SIZE(self->gzip_excluded)) < 0)) {
        /* Not yet serving: nothing refers to the server, so it is closed right away. */
        server_close(self->server, NULL, NULL);
        self->server = NULL;
        PyErr_NoMemory();
        return -1;
    }
    /* Released in on_server_closed: libuv callbacks point at this object. */
    Py_INCREF(self);
    return 0;
}

static PyObject *server_listen_py(ServerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"host", "port", "reuse_port", NULL};
    const char *host;
    int port, reuse_port = 0, bound = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "si|p", kwlist, &host, &port, &reuse_port))
        return NULL;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port must be in 0..65535");
        return NULL;
    }
    if (server_ensure(self) < 0)
        return NULL;
    int r = server_listen(self->server, host, port, reuse_port, &bound);
    if (r < 0) {
        errno = -r;
        PyErr_Format(PyExc_OSError, "cannot listen on %s:%d: %s", host, port, uv_strerror(r));
        return NULL;
    }
    return PyLong_FromLong(bound);
}

static PyObject *server_listen_fd_py(ServerObject *self, PyObject *arg)
{
    int fd = PyObject_AsFileDescriptor(arg);
    if (fd < 0)
        return NULL;
    if (server_ensure(self) < 0)
        return NULL;
    int r = server_listen_fd(self->server, fd);
    if (r < 0) {
        PyErr_Format(PyExc_OSError, "cannot listen on fd %d: %s", fd, uv_strerror(r));
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *server_adopt_py(ServerObject *self, PyObject *arg)
{
    int fd = PyObject_AsFileDescriptor(arg);
    if (fd < 0)
        return NULL;
    if (server_ensure(self) < 0)
        return NULL;
    int r = server_adopt_fd(self->server, fd);
    if (r < 0) {
        PyErr_Format(PyExc_OSError, "cannot serve fd %d: %s", fd, uv_strerror(r));
        return NULL;
    }
    Py_RETURN_NONE;
}

static void on_server_closed(void *arg)
{
    ServerObject *self = arg;
    /* The last lines of the written access log go out before anyone is told. */
    PyObject *flushed = app_flush_access_log(self, NULL);
    Py_XDECREF(flushed);
    PyObject *cb = self->on_closed;
    self->on_closed = NULL;
    if (cb && cb != Py_None) {
        PyObject *r = PyObject_CallNoArgs(cb);
        if (r == NULL)
            pyloop_report_exception(pyloop_from_uv(pyloop_uv_loop(self->loop)),
                                    "Server close callback failed");
        Py_XDECREF(r);
    }
    Py_XDECREF(cb);
    /* Drops the reference taken in server_ensure. */
    Py_DECREF(self);
}

static void on_signal_closed(uv_handle_t *h)
{
    free(h);
}

static void close_signals(ServerObject *self)
{
    for (int i = 0; i < 2; i++) {
        if (self->signals[i]) {
            uv_signal_stop(self->signals[i]);
            uv_close((uv_handle_t *)self->signals[i], on_signal_closed);
            self->signals[i] = NULL;
        }
    }
    Py_CLEAR(self->signal_cb);
}

static PyObject *server_close_py(ServerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"callback", NULL};
    PyObject *cb = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &cb))
        return NULL;
    close_signals(self);
    if (self->server == NULL) {
        if (cb != Py_None) {
            PyObject *r = PyObject_CallNoArgs(cb);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
        }
        Py_RETURN_NONE;
    }
    server_t *s = self->server;
    self->server = NULL;
    Py_XSETREF(self->on_closed, Py_NewRef(cb));
    server_close(s, on_server_closed, self);
    Py_RETURN_NONE;
}

static void on_signal(uv_signal_t *h, int signum)
{
    ServerObject *self = h->data;
    pyloop_enter(pyloop_from_uv(h->loop));
    if (self->signal_cb == NULL)
        return;
    PyObject *r = PyObject_CallFunction(self->signal_cb, "i", signum);
    if (r == NULL)
        pyloop_report_exception(pyloop_from_uv(h->loop), "signal callback failed");
    Py_XDECREF(r);
}

static PyObject *server_handle_signals(ServerObject *self, PyObject *cb)
{
    static const int signums[2] = {SIGINT, SIGTERM};
    if (!PyCallable_Check(cb)) {
        PyErr_SetString(PyExc_TypeError, "callback must be callable");
        return NULL;
    }
    if (self->loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Server.__init__ was not called");
        return NULL;
    }
    if (self->signals[0] != NULL && self->signals[1] != NULL) {
        /* Already watched (a worker watches from its start, so that a SIGTERM sent while
         * it starts waits for it instead of killing it): only the callback changes, and
         * the signals never fall back to their default action in between. */
        Py_XSETREF(self->signal_cb, Py_NewRef(cb));
        Py_RETURN_NONE;
    }
    close_signals(self);
    self->signal_cb = Py_NewRef(cb);
    for (int i = 0; i < 2; i++) {
        uv_signal_t *h = malloc(sizeof(*h));
        if (h == NULL)
            return PyErr_NoMemory();
        if (uv_signal_init(pyloop_uv_loop(self->loop), h) < 0) {
            free(h);
            PyErr_SetString(PyExc_OSError, "uv_signal_init failed");
            return NULL;
        }
        h->data = self;
        self->signals[i] = h;
        int r = uv_signal_start(h, on_signal, signums[i]);
        if (r < 0) {
            PyErr_Format(PyExc_OSError, "cannot watch signal %d: %s", signums[i], uv_strerror(r));
            return NULL;
        }
        /* Watching signals must not keep the loop alive by itself. */
        uv_unref((uv_handle_t *)h);
    }
    Py_RETURN_NONE;
}

static PyObject *server_get_connections(ServerObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(self->server ? server_connection_count(self->server) : 0);
}

static PyObject *server_get_requests(ServerObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->server ? server_request_count(self->server) : 0);
}

/* The server's lent memory (server_buffer_stats) as a dict; all zero before listen(). */
static PyObject *server_get_buffers(ServerObject *self, void *closure)
{
    (void)closure;
    server_buffer_stats_t st = {0};
    if (self->server)
        server_buffer_stats(self->server, &st);
    return Py_BuildValue("{s:n,s:n,s:n,s:n}", "blocks_lent", (Py_ssize_t)st.blocks_lent,
                         "blocks_free", (Py_ssize_t)st.blocks_free, "heads_lent",
                         (Py_ssize_t)st.heads_lent, "heads_free", (Py_ssize_t)st.heads_free);
}

static int server_traverse(ServerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->loop);
    Py_VISIT(self->on_closed);
    Py_VISIT(self->signal_cb);
    Py_VISIT(self->exception_hook);
    Py_VISIT(self->cors_hook);
    Py_VISIT(self->request_class);
    Py_VISIT(self->validation_hook);
    Py_VISIT(self->asgi);
    Py_VISIT(self->fallback);
    for (size_t i = 0; i < self->nmounts; i++) {
        Py_VISIT(self->mounts[i].target);
        Py_VISIT(self->mounts[i].through);
    }
    Py_VISIT(self->access_log);
    Py_VISIT(self->ready_cb);
    Py_VISIT(self->access_flush);
    for (size_t i = 0; i < self->nplans; i++) {
        Py_VISIT(self->plans[i]->handler);
        Py_VISIT(self->plans[i]->request_class);
    }
    return 0;
}

static void server_dealloc(ServerObject *self)
{
    PyObject_GC_UnTrack(self);
    /* Not listening (listening holds a self-reference), so no handle refers to us; signal
     * handles are closed here and freed by libuv later. */
    close_signals(self);
    Py_CLEAR(self->default_headers);
    Py_CLEAR(self->access_log);
    Py_CLEAR(self->access_format);
    Py_CLEAR(self->access_v10);
    Py_CLEAR(self->access_v11);
    app_metrics_release(self);
    app_health_release(self);
    app_access_release(self);
    http_trust_free(self->trust);
    self->trust = NULL;
    for (size_t i = 0; i < self->nplans; i++)
        plan_free(self->plans[i]);
    free(self->plans);
    if (self->router)
        router_free(self->router);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->on_closed);
    Py_CLEAR(self->signal_cb);
    Py_CLEAR(self->exception_hook);
    Py_CLEAR(self->cors_hook);
    Py_CLEAR(self->gzip_excluded);
    app_guards_free(self);
    PyMem_Free(self->root_path);
    self->root_path = NULL;
    self->root_path_len = 0;
    Py_CLEAR(self->request_class);
    Py_CLEAR(self->validation_hook);
    Py_CLEAR(self->asgi);
    Py_CLEAR(self->fallback);
    mounts_clear(self);
    tls_context_unref(self->tls);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Breaks reference cycles through the callables the Python layer handed us (the loop and
 * the plans stay: the server needs them until it is freed). */
static int server_clear(ServerObject *self)
{
    if (self->server == NULL) {
        /* A running server calls it (and holds a reference to self meanwhile). */
        self->cfg.access_log = NULL;
        Py_CLEAR(self->access_log);
        self->cfg.ready_check = NULL;
        Py_CLEAR(self->ready_cb);
        app_access_release(self);
    }
    Py_CLEAR(self->on_closed);
    Py_CLEAR(self->exception_hook);
    Py_CLEAR(self->cors_hook);
    Py_CLEAR(self->gzip_excluded);
    app_guards_free(self);
    PyMem_Free(self->root_path);
    self->root_path = NULL;
    self->root_path_len = 0;
    Py_CLEAR(self->request_class);
    Py_CLEAR(self->validation_hook);
    return 0;
}

/* add_mount(prefix, target, through=None): see ServerObject.mounts. */
static PyObject *server_add_mount(ServerObject *self, PyObject *args)
{
    const char *prefix;
    Py_ssize_t n;
    PyObject *target, *through = Py_None;
    if (!PyArg_ParseTuple(args, "s#O|O:add_mount", &prefix, &n, &target, &through))
        return NULL;
    if (through != Py_None && self->unrouted == NULL) {
        PyErr_SetString(PyExc_ValueError, "add_mount(..., through) needs the unrouted handler");
        return NULL;
    }
    if (!asgi_app_check(target) && !PyObject_TypeCheck(target, &Server_Type)) {
        PyErr_SetString(PyExc_TypeError, "add_mount() takes a _core.AsgiApp or a Server");
        return NULL;
    }
    if (target == (PyObject *)self) {
        PyErr_SetString(PyExc_ValueError, "a server cannot be mounted in itself");
        return NULL;
    }
    while (n > 0 && prefix[n - 1] == '/')
        n--;
    char *copy = PyMem_Malloc(n ? (size_t)n : 1);
    struct app_mount *grown =
        copy ? PyMem_Realloc(self->mounts, (self->nmounts + 1) * sizeof(*grown)) : NULL;
    if (grown == NULL) {
        PyMem_Free(copy);
        return PyErr_NoMemory();
    }
    memcpy(copy, prefix, (size_t)n);
    self->mounts = grown;
    self->mounts[self->nmounts++] = (struct app_mount){
        copy, (size_t)n, Py_NewRef(target), through == Py_None ? NULL : Py_NewRef(through)};
    Py_RETURN_NONE;
}

static void mounts_clear(ServerObject *self)
{
    for (size_t i = 0; i < self->nmounts; i++) {
        PyMem_Free(self->mounts[i].prefix);
        Py_CLEAR(self->mounts[i].target);
        Py_CLEAR(self->mounts[i].through);
    }
    PyMem_Free(self->mounts);
    self->mounts = NULL;
    self->nmounts = 0;
}

/* set_asgi(asgi_app): see ServerObject.asgi. */
static PyObject *server_set_asgi(ServerObject *self, PyObject *app)
{
    if (!asgi_app_check(app)) {
        PyErr_SetString(PyExc_TypeError, "set_asgi() takes a _core.AsgiApp");
        return NULL;
    }
    if (self->server != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_asgi() must come before listen()");
        return NULL;
    }
    Py_XSETREF(self->asgi, Py_NewRef(app));
    Py_RETURN_NONE;
}

/* set_fallback(asgi_app or None): see ServerObject.fallback. */
static PyObject *server_set_fallback(ServerObject *self, PyObject *app)
{
    if (app != Py_None && !asgi_app_check(app)) {
        PyErr_SetString(PyExc_TypeError, "set_fallback() takes a _core.AsgiApp or None");
        return NULL;
    }
    Py_XSETREF(self->fallback, app == Py_None ? NULL : Py_NewRef(app));
    Py_RETURN_NONE;
}

/* set_exception_hook(callable or None): see ServerObject.exception_hook. */
static PyObject *server_set_exception_hook(ServerObject *self, PyObject *hook)
{
    if (hook != Py_None && !PyCallable_Check(hook)) {
        PyErr_SetString(PyExc_TypeError, "the exception hook must be callable or None");
        return NULL;
    }
    Py_XSETREF(self->exception_hook, hook == Py_None ? NULL : Py_NewRef(hook));
    Py_RETURN_NONE;
}

/* set_cors_hook(callable or None): see ServerObject.cors_hook. */
static PyObject *server_set_validation_hook(ServerObject *self, PyObject *hook)
{
    if (hook != Py_None && !PyCallable_Check(hook)) {
        PyErr_SetString(PyExc_TypeError, "the validation hook must be callable or None");
        return NULL;
    }
    Py_XSETREF(self->validation_hook, hook == Py_None ? NULL : Py_NewRef(hook));
    Py_RETURN_NONE;
}

static PyObject *server_set_request_class(ServerObject *self, PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &Request_Type)) {
        PyErr_SetString(PyExc_TypeError, "the request class must subclass _core.Request");
        return NULL;
    }
    Py_XSETREF(self->request_class, Py_NewRef(cls));
    Py_RETURN_NONE;
}

static PyObject *server_set_cors_hook(ServerObject *self, PyObject *hook)
{
    if (hook != Py_None && !PyCallable_Check(hook)) {
        PyErr_SetString(PyExc_TypeError, "the CORS hook must be callable or None");
        return NULL;
    }
    Py_XSETREF(self->cors_hook, hook == Py_None ? NULL : Py_NewRef(hook));
    Py_RETURN_NONE;
}

/* set_gzip(level, minimum_size, excluded): GZipMiddleware's compression of response
 * bodies, done by the server (see server_set_gzip); excluded is a bytes object of
 * NUL-terminated lowercase media types. */
static PyObject *server_set_gzip_py(ServerObject *self, PyObject *args)
{
    int level;
    Py_ssize_t minimum_size;
    const char *excluded;
    Py_ssize_t excluded_len;
    if (!PyArg_ParseTuple(args, "iny#:set_gzip", &level, &minimum_size, &excluded, &excluded_len))
        return NULL;
    if (level < 0 || level > 9 || minimum_size < 0) {
        PyErr_SetString(PyExc_ValueError, "compresslevel must be 0..9 and minimum_size >= 0");
        return NULL;
    }
    if (self->server != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_gzip must be called before serving");
        return NULL;
    }
    /* Kept until server_ensure makes the server (routes may still be added until then). */
    PyObject *copy = PyBytes_FromStringAndSize(excluded, excluded_len);
    if (copy == NULL)
        return NULL;
    Py_XSETREF(self->gzip_excluded, copy);
    self->gzip_level = level;
    self->gzip_minimum = (size_t)minimum_size;
    Py_RETURN_NONE;
}

static PyObject *server_set_root_path(ServerObject *self, PyObject *arg)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    if (s == NULL)
        return NULL;
    /* Kept without its trailing '/': "/api/" routes "/api/items" on "/items". */
    while (n > 0 && s[n - 1] == '/')
        n--;
    char *copy = NULL;
    if (n > 0) {
        if ((copy = PyMem_Malloc((size_t)n)) == NULL)
            return PyErr_NoMemory();
        memcpy(copy, s, (size_t)n);
    }
    PyMem_Free(self->root_path);
    self->root_path = copy;
    self->root_path_len = (size_t)n;
    Py_RETURN_NONE;
}

static PyObject *server_set_secure(ServerObject *self, PyObject *flag)
{
    int v = PyObject_IsTrue(flag);
    if (v < 0)
        return NULL;
    self->secure = v;
    Py_RETURN_NONE;
}

static PyMethodDef server_methods[] = {
    {"set_root_path", (PyCFunction)server_set_root_path, METH_O,
     "set_root_path(path): route requests under this prefix on the rest of their path"},
    {"set_secure", (PyCFunction)server_set_secure, METH_O,
     "set_secure(flag): requests arrive over TLS terminated in front of the server (https)"},
    {"set_tls", (PyCFunction)app_set_tls, METH_O,
     "set_tls(context): serve connections accepted from now on over TLS with a TLSContext "
     "(open ones keep theirs: a certificate reload); None: plain HTTP"},
    {"add_guard", (PyCFunction)app_add_guard, METH_VARARGS,
     "add_guard(kind, patterns=b'', www_redirect=False): TrustedHost (1), HTTPSRedirect (2) or "
     "the CORS step (3), in middleware order, outermost first"},
    {"set_gzip", (PyCFunction)server_set_gzip_py, METH_VARARGS,
     "set_gzip(level, minimum_size, excluded): compress response bodies as GZipMiddleware"},
    {"add_mount", (PyCFunction)server_add_mount, METH_VARARGS,
     "add_mount(prefix, target, through=None): requests under prefix go to target (an "
     "AsgiApp or a Server); given through, the HTTP ones go to the unrouted handler, whose "
     "Request's _db_routing is then (0, through)"},
    {"set_access_log", (PyCFunction)app_set_access_log, METH_O,
     "set_access_log(info): call info(format, client, method, target, version, status) "
     "after each response head (uvicorn's access log); None turns it off"},
    {"set_access_log_fd", (PyCFunction)app_set_access_log_fd, METH_VARARGS,
     "set_access_log_fd(fd, prefix, json=False): write uvicorn's access line after prefix "
     "(or, with json, JsonAccessFormatter's line) to fd, gathered and written in batches"},
    {"_flush_access_log", (PyCFunction)app_flush_access_log, METH_NOARGS,
     "write what the access log gathered (the loop calls it)"},
    {"set_metrics", (PyCFunction)app_set_metrics, METH_VARARGS,
     "set_metrics(buffer, slot, path): count into slot `slot` of the shared buffer; a GET "
     "of path answers every slot summed (Prometheus text)"},
    {"set_fallback", (PyCFunction)server_set_fallback, METH_O,
     "set_fallback(asgi_app or None): requests no route matches go to this _core.AsgiApp"},
    {"set_health", (PyCFunction)app_set_health, METH_VARARGS,
     "set_health(health_path, ready_path, ready): answer probes of the two paths natively; "
     "ready() (or None) says whether the application is ready"},
    {"set_asgi", (PyCFunction)server_set_asgi, METH_O,
     "set_asgi(asgi_app): serve every request with this _core.AsgiApp instead of the routes"},
    {"set_validation_hook", (PyCFunction)server_set_validation_hook, METH_O,
     "set_validation_hook(hook): hook(errors, request) answers a request that did not bind"},
    {"set_request_class", (PyCFunction)server_set_request_class, METH_O,
     "set_request_class(cls): the Request subclass made for the routes added afterwards"},
    {"set_cors_hook", (PyCFunction)server_set_cors_hook, METH_O,
     "set_cors_hook(hook): CORS headers and preflight answers for requests with an Origin"},
    {"set_exception_hook", (PyCFunction)server_set_exception_hook, METH_O,
     "set_exception_hook(hook): hook(exc, request) -> result, or NotImplemented"},
    {"add_route", (PyCFunction)(void (*)(void))server_add_route, METH_VARARGS | METH_KEYWORDS,
     "add_route(methods, path, handler, params, status_code=200, ..., "
     "form_limits=(max_files, max_fields, max_part_size), file_cache=None, keep_match=False, "
     "unrouted=False); unrouted=True: the handler (taking the Request) answers requests no "
     "route takes"},
    {"listen", (PyCFunction)(void (*)(void))server_listen_py, METH_VARARGS | METH_KEYWORDS,
     "listen(host, port, reuse_port=False) -> bound port"},
    {"listen_fd", (PyCFunction)server_listen_fd_py, METH_O,
     "listen_fd(sock) serves on an already listening socket"},
    {"adopt", (PyCFunction)server_adopt_py, METH_O,
     "adopt(fd) serves one connected stream socket; the server owns (and closes) the fd"},
    {"close", (PyCFunction)(void (*)(void))server_close_py, METH_VARARGS | METH_KEYWORDS,
     "close(callback=None): stop accepting, finish requests in progress, then call back"},
    {"handle_signals", (PyCFunction)server_handle_signals, METH_O,
     "handle_signals(callback): call callback(signum) on SIGINT and SIGTERM; called again, "
     "only the callback changes"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef server_getset[] = {
    {"connections", (getter)server_get_connections, NULL, "Open connections.", NULL},
    {"requests", (getter)server_get_requests, NULL, "Requests dispatched so far.", NULL},
    {"buffers", (getter)server_get_buffers, NULL,
     "Buffers and request heads lent to connections, and waiting in the free lists.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject Server_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.Server",
    .tp_basicsize = sizeof(ServerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The native HTTP/1.1 server on a PyLoop.",
    .tp_traverse = (traverseproc)server_traverse,
    .tp_clear = (inquiry)server_clear,
    .tp_dealloc = (destructor)server_dealloc,
    .tp_methods = server_methods,
    .tp_getset = server_getset,
    .tp_init = (initproc)server_init,
    .tp_new = PyType_GenericNew,
};
