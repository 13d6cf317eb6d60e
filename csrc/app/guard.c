/*
 * Native middleware that answers before routing (owned by the app layer): Starlette's
 * TrustedHostMiddleware and HTTPSRedirectMiddleware, with the CORS step among them, run
 * in the app's middleware order (outermost first), so that the one added last decides
 * first, as in Starlette's stack. Each is a few comparisons on the request head; no
 * Python runs unless the CORS step calls its policy.
 *
 * A guard that an HTTP middleware (@app.middleware("http"), BaseHTTPMiddleware) was added
 * after sits inside that middleware in Starlette's stack, so its answer must pass through
 * it: such a guard has `through` set to the number of HTTP middleware outside it, and
 * instead of answering it hands its answer (the routing outcome (1, (through, status,
 * content type, body, header lines))) to the app's unrouted handler, which runs those
 * middleware around it (_http_middleware.py). A WebSocket upgrade is answered natively:
 * BaseHTTPMiddleware lets websocket scopes through.
 *
 * URLs in the redirects are built as Starlette's URL(scope=...) and RedirectResponse
 * build them: the percent-decoded path with '?', '#' and '\' escaped again, then the
 * whole URL quoted with urllib's quote(safe=":/%#?=@[]!$&'()*+,;"). Differences (no Host
 * header or an invalid port: Starlette would use the listening address; we answer 400
 * "Invalid host header") are listed in docs/compat.md.
 */
#include <strings.h>

#include "app/app_internal.h"
#include "asgi/asgi.h"
#include "common/text.h"

struct app_guard {
    int kind;
    int through; /* -1: answered here; else the HTTP middleware outside it (see above) */
    int allow_any;
    int www_redirect;
    char *patterns; /* lowercase, each followed by a NUL (owned) */
    size_t patterns_len;
};

static const char invalid_host[] = "Invalid host header";
static const char text_plain[] = "text/plain; charset=utf-8";

/* Where a guard's answer goes: the connection, or (through >= 0) the outcome for the
 * unrouted handler. */
typedef struct {
    server_conn_t *conn;
    int through;
    PyObject *outcome; /* set when captured; NULL with the connection answered 500 on failure */
} guard_answer_t;

static void answer(guard_answer_t *a, int status, const char *ctype, size_t ctype_len,
                   const char *lines, size_t lines_len, const char *body, size_t body_len)
{
    if (a->through < 0) {
        server_conn_respond(a->conn, status, ctype, ctype_len, lines, lines_len, body, body_len);
        return;
    }
    a->outcome =
        app_guard_outcome(a->through, status, ctype, ctype_len, body, body_len, lines, lines_len);
    if (a->outcome == NULL)
        respond_exception(a->conn, NULL, NULL, NULL);
}

PyObject *app_guard_outcome(int through, int status, const char *ctype, size_t ctype_len,
                            const char *body, size_t body_len, const char *lines, size_t lines_len)
{
    /* No content type is None ("z#" of NULL); no body or header lines, b"". */
    return Py_BuildValue("(i(iiz#y#y#))", 1, through, status, ctype, (Py_ssize_t)ctype_len,
                         body ? body : "", (Py_ssize_t)(body ? body_len : 0), lines ? lines : "",
                         (Py_ssize_t)(lines ? lines_len : 0));
}

/* urllib.parse.quote's always-safe bytes plus RedirectResponse's safe set. */
static int url_safe(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("_.-~:/%#?=@[]!$&'()*+,;", c) != NULL);
}

int app_put_quoted(db_buf_t *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (db_buf_reserve(out, 3 * n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (url_safe(c)) {
            out->data[out->len++] = (char)c;
        } else {
            out->data[out->len++] = '%';
            out->data[out->len++] = hex[c >> 4];
            out->data[out->len++] = hex[c & 15];
        }
    }
    return 0;
}

int app_put_url_path(db_buf_t *out, const char *path, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char c = path[i];
        rc = c == '?'    ? db_buf_append(out, "%3F", 3)
             : c == '#'  ? db_buf_append(out, "%23", 3)
             : c == '\\' ? db_buf_append(out, "%5C", 3)
                         : app_put_quoted(out, &c, 1);
    }
    return rc;
}

/* "location: <scheme>://<prefix><netloc><path>[?query]\r\n" into out. */
static int location_line(db_buf_t *out, const char *scheme, const char *prefix, const char *netloc,
                         size_t netloc_len, const http_request_t *head)
{
    if (db_buf_append(out, "location: ", 10) < 0 ||
        db_buf_append(out, scheme, strlen(scheme)) < 0 || db_buf_append(out, "://", 3) < 0 ||
        app_put_quoted(out, prefix, strlen(prefix)) < 0 ||
        app_put_quoted(out, netloc, netloc_len) < 0)
        return -1;
    char *path = PyMem_Malloc(head->path_len ? head->path_len : 1);
    if (path == NULL)
        return -1;
    size_t n = db_pct_decode(path, head->path, head->path_len, 0);
    int rc = app_put_url_path(out, path, n);
    PyMem_Free(path);
    size_t qlen = head->target_len - head->path_len; /* "?..." or nothing */
    if (rc == 0 && qlen > 1)
        rc = app_put_quoted(out, head->target + head->path_len, qlen);
    if (rc == 0)
        rc = db_buf_append(out, "\r\n", 2);
    return rc;
}

static void redirect(guard_answer_t *a, const char *scheme, const char *prefix, const char *netloc,
                     size_t netloc_len, const http_request_t *head)
{
    db_buf_t line;
    db_buf_init(&line);
    if (location_line(&line, scheme, prefix, netloc, netloc_len, head) < 0)
        server_conn_respond_detail(a->conn, 500, "Internal Server Error", NULL, 0);
    else
        answer(a, 307, NULL, 0, line.data, line.len, NULL, 0);
    db_buf_free(&line);
}

static void answer_invalid_host(guard_answer_t *a)
{
    answer(a, 400, text_plain, sizeof(text_plain) - 1, NULL, 0, invalid_host,
           sizeof(invalid_host) - 1);
}

/* The Host header split (a trusted proxy's forwarded Host first, copied into buf of
 * SERVER_HOST_MAX bytes, as the scope rewritten by a proxy-fix middleware has it), or 0
 * with 400 answered when it is missing or invalid. */
static int host_of(guard_answer_t *a, const http_request_t *head, http_host_t *h, char *buf)
{
    size_t n = 0;
    const char *v = server_conn_forwarded_host(a->conn, head, buf, SERVER_HOST_MAX, &n);
    const http_header_t *f = v == NULL ? http_find_header(head, "host", 4) : NULL;
    if (f != NULL) {
        v = f->value;
        n = f->value_len;
    }
    if (v == NULL || http_parse_host(v, n, h) < 0) {
        answer_invalid_host(a);
        return 0;
    }
    return 1;
}

/* TrustedHostMiddleware: 1 when answered (400, or the redirect to "www."), 0 to go on. */
static int trusted_host(const struct app_guard *g, guard_answer_t *a, const http_request_t *head,
                        const char *scheme)
{
    if (g->allow_any)
        return 0;
    http_host_t h;
    char buf[SERVER_HOST_MAX];
    if (!host_of(a, head, &h, buf))
        return 1;
    int found_www = 0;
    for (const char *p = g->patterns, *end = g->patterns + g->patterns_len; p < end;) {
        size_t m = strlen(p);
        if (m == h.host_len && strncasecmp(h.host, p, m) == 0)
            return 0;
        if (p[0] == '*' && h.host_len >= m - 1 &&
            strncasecmp(h.host + h.host_len - (m - 1), p + 1, m - 1) == 0)
            return 0;
        if (m == h.host_len + 4 && memcmp(p, "www.", 4) == 0 &&
            strncasecmp(p + 4, h.host, h.host_len) == 0)
            found_www = 1;
        p += m + 1;
    }
    if (found_www && g->www_redirect &&
        (h.port == NULL || http_host_port_valid(h.port, h.port_len))) {
        size_t netloc_len = h.port ? (size_t)(h.port + h.port_len - h.host) : h.host_len;
        redirect(a, scheme, "www.", h.host, netloc_len, head);
    } else {
        answer_invalid_host(a);
    }
    return 1;
}

/* HTTPSRedirectMiddleware: every request here is plain HTTP, so each is redirected. */
static void https_redirect(guard_answer_t *a, const http_request_t *head)
{
    http_host_t h;
    char buf[SERVER_HOST_MAX];
    if (!host_of(a, head, &h, buf))
        return;
    if (h.port != NULL && !http_host_port_valid(h.port, h.port_len)) {
        answer_invalid_host(a);
        return;
    }
    if (h.port == NULL) {
        redirect(a, "https", "", h.host, h.host_len, head);
        return;
    }
    unsigned long port = 0;
    for (size_t i = 0; i < h.port_len; i++)
        port = port * 10 + (unsigned long)(h.port[i] - '0');
    if (port != 80 && port != 443) {
        redirect(a, "https", "", h.host, (size_t)(h.port + h.port_len - h.host), head);
        return;
    }
    /* The default ports are dropped and the host written as urllib's hostname: lowercase,
     * without the brackets of an IP literal. */
    char host[256];
    const char *s = h.host;
    size_t n = h.host_len;
    if (n >= 2 && s[0] == '[') {
        s++;
        n -= 2;
    }
    if (n >= sizeof(host)) {
        answer_invalid_host(a);
        return;
    }
    for (size_t i = 0; i < n; i++)
        host[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
    redirect(a, "https", "", host, n, head);
}

/* The request came over TLS: the server says so (TLS terminated in front of it, set_secure),
 * or a trusted proxy's X-Forwarded-Proto does, as the scheme uvicorn's ProxyHeadersMiddleware
 * sets is what Starlette's HTTPSRedirectMiddleware checks. */
static int request_secure(ServerObject *srv, server_conn_t *conn, const http_request_t *head)
{
    size_t n = 0;
    const char *v;
    if (srv->secure)
        return 1;
    v = server_conn_forwarded_proto(conn, head, &n);
    return v != NULL &&
           ((n == 5 && memcmp(v, "https", 5) == 0) || (n == 3 && memcmp(v, "wss", 3) == 0));
}

int app_guards_run(ServerObject *srv, server_conn_t *conn, server_request_t *req,
                   PyObject **outcome)
{
    /* Captured answers need the unrouted handler, and a WebSocket upgrade passes by the
     * HTTP middleware. */
    int capture = srv->unrouted != NULL && !asgi_ws_is_upgrade(req);
    *outcome = NULL;
    for (size_t i = 0; i < srv->nguards; i++) {
        const struct app_guard *g = &srv->guards[i];
        guard_answer_t a = {.conn = conn, .through = capture ? g->through : -1};
        int answered = 0;
        switch (g->kind) {
        case APP_GUARD_TRUSTED_HOST:
            answered = trusted_host(g, &a, req->head,
                                    request_secure(srv, conn, req->head) ? "https" : "http");
            break;
        case APP_GUARD_HTTPS_REDIRECT:
            if (!request_secure(srv, conn, req->head)) {
                https_redirect(&a, req->head);
                answered = 1;
            }
            break;
        case APP_GUARD_CORS:
            answered =
                srv->cors_hook != NULL && app_apply_cors(srv, conn, req, a.through, &a.outcome);
            break;
        }
        if (answered) {
            *outcome = a.outcome;
            return 1;
        }
    }
    return 0;
}

void app_guards_free(ServerObject *srv)
{
    for (size_t i = 0; i < srv->nguards; i++)
        PyMem_Free(srv->guards[i].patterns);
    PyMem_Free(srv->guards);
    srv->guards = NULL;
    srv->nguards = 0;
}

PyObject *app_add_guard(ServerObject *self, PyObject *args)
{
    int kind, www_redirect = 0, through = -1;
    const char *patterns = NULL;
    Py_ssize_t patterns_len = 0;
    if (!PyArg_ParseTuple(args, "i|y#pi:add_guard", &kind, &patterns, &patterns_len, &www_redirect,
                          &through))
        return NULL;
    if (through < -1) {
        PyErr_SetString(PyExc_ValueError, "through must be -1 or a middleware count");
        return NULL;
    }
    if (kind != APP_GUARD_TRUSTED_HOST && kind != APP_GUARD_HTTPS_REDIRECT &&
        kind != APP_GUARD_CORS) {
        PyErr_Format(PyExc_ValueError, "unknown guard kind %d", kind);
        return NULL;
    }
    struct app_guard g = {.kind = kind, .through = through, .www_redirect = www_redirect};
    if (kind == APP_GUARD_TRUSTED_HOST) {
        if (patterns == NULL || (patterns_len > 0 && patterns[patterns_len - 1] != '\0')) {
            PyErr_SetString(PyExc_ValueError, "patterns must be NUL-terminated names");
            return NULL;
        }
        for (Py_ssize_t i = 0; i < patterns_len; i += (Py_ssize_t)strlen(patterns + i) + 1) {
            if (strcmp(patterns + i, "*") == 0)
                g.allow_any = 1;
        }
        if ((g.patterns = PyMem_Malloc((size_t)patterns_len + 1)) == NULL)
            return PyErr_NoMemory();
        memcpy(g.patterns, patterns, (size_t)patterns_len);
        g.patterns_len = (size_t)patterns_len;
    }
    struct app_guard *grown = PyMem_Realloc(self->guards, (self->nguards + 1) * sizeof(*grown));
    if (grown == NULL) {
        PyMem_Free(g.patterns);
        return PyErr_NoMemory();
    }
    self->guards = grown;
    self->guards[self->nguards++] = g;
    Py_RETURN_NONE;
}
