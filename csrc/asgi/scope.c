/*
 * The `http` connection scope (www spec, "HTTP Connection Scope"), built in C from the
 * parsed request: every value is a new Python object (or a shared immutable one), so the
 * scope stays valid after the connection's read buffer moves on. One dict per request,
 * with the keys interned once.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "asgi/asgi_internal.h"
#include "common/text.h"

/* The str of a host text, from the app's one-entry cache for this side when it is the
 * same host as last time (hosts[remote]); a new reference. */
static PyObject *host_str(AsgiAppObject *a, int remote, const char *host, size_t n)
{
    struct asgi_host *c = &a->hosts[remote];
    if (c->str != NULL && c->len == n && memcmp(c->text, host, n) == 0)
        return Py_NewRef(c->str);
    /* Latin-1, as uvicorn decodes headers (a proxy's X-Forwarded-For may hold obs-text). */
    PyObject *name = PyUnicode_DecodeLatin1(host, (Py_ssize_t)n, NULL);
    if (name == NULL || n > sizeof(c->text))
        return name;
    memcpy(c->text, host, n);
    c->len = n;
    Py_XSETREF(c->str, Py_NewRef(name));
    Py_CLEAR(c->tuple);
    return name;
}

/* (host, port) of an IPv4/IPv6 address; None for anything else (an adopted AF_UNIX
 * socket), as the spec allows for client and server when the address is unknown or not
 * IP ("client: ... Optional; if missing defaults to None"). */
static PyObject *address_tuple(AsgiAppObject *a, server_conn_t *conn, int remote,
                               const http_request_t *h)
{
    char host[SERVER_HOST_MAX];
    int port = 0;
    /* The client: a trusted proxy's X-Forwarded-For when proxy headers are on, as uvicorn's
     * ProxyHeadersMiddleware rewrites scope["client"]. */
    if ((remote ? server_conn_client(conn, h, host, sizeof(host), &port)
                : server_conn_address(conn, 0, host, sizeof(host), &port)) != 0)
        Py_RETURN_NONE;
    PyObject *name = host_str(a, remote, host, strlen(host));
    if (name == NULL)
        return NULL;
    struct asgi_host *c = &a->hosts[remote];
    if (!remote && c->tuple != NULL && c->str == name && c->port == port) {
        /* The same server address as last time: the tuple is immutable, so it is shared. */
        Py_DECREF(name);
        return Py_NewRef(c->tuple);
    }
    PyObject *p = PyLong_FromLong(port);
    PyObject *t = p ? PyTuple_New(2) : NULL;
    if (t == NULL) {
        Py_DECREF(name);
        Py_XDECREF(p);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, name);
    PyTuple_SET_ITEM(t, 1, p);
    if (!remote && c->str == name) {
        Py_XSETREF(c->tuple, Py_NewRef(t));
        c->port = port;
    }
    return t;
}

/* scope["scheme"]: what a trusted proxy's X-Forwarded-Proto says, else "https" on a TLS
 * connection and "http" on a plain one (uvicorn: "https" when its server has an SSL context,
 * then ProxyHeadersMiddleware's rewrite). */
static PyObject *scheme_of(server_conn_t *conn, const http_request_t *h)
{
    size_t n = 0;
    const char *v = server_conn_forwarded_proto(conn, h, &n);
    if (v == NULL)
        return Py_NewRef(server_conn_tls(conn) ? asgi_str.v_https : asgi_str.v_http);
    if (n == 4 && memcmp(v, "http", 4) == 0)
        return Py_NewRef(asgi_str.v_http);
    return PyUnicode_DecodeLatin1(v, (Py_ssize_t)n, NULL);
}

/* path: "HTTP request path, with percent escapes decoded into UTF-8 code sequences" (www
 * spec). Decoded as UTF-8 with errors replaced, as urllib.parse.unquote does. */
static PyObject *decoded_path(const char *p, size_t n)
{
    if (!db_pct_needs_decoding(p, n, 0))
        return PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "replace");
    char stack[512];
    char *buf = n <= sizeof(stack) ? stack : malloc(n);
    if (buf == NULL)
        return PyErr_NoMemory();
    size_t len = db_pct_decode(buf, p, n, 0);
    PyObject *s = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)len, "replace");
    if (buf != stack)
        free(buf);
    return s;
}

/* With a root_path (a proxy serves the application under a prefix that it strips), path
 * and raw_path are the full path, the root_path in front, as uvicorn's --root-path gives
 * them: Starlette's get_route_path routes on what follows root_path, and request.url is
 * the URL the client used. */
static PyObject *rooted_path(AsgiAppObject *a, PyObject *path)
{
    if (path == NULL || a->mounted || PyUnicode_GET_LENGTH(a->root_path) == 0)
        return path;
    PyObject *full = PyUnicode_Concat(a->root_path, path);
    Py_DECREF(path);
    return full;
}

static PyObject *rooted_raw_path(AsgiAppObject *a, const char *p, size_t n)
{
    Py_ssize_t rn = a->mounted ? 0 : PyBytes_GET_SIZE(a->root_path_raw);
    PyObject *raw = PyBytes_FromStringAndSize(NULL, rn + (Py_ssize_t)n);
    if (raw == NULL)
        return NULL;
    memcpy(PyBytes_AS_STRING(raw), PyBytes_AS_STRING(a->root_path_raw), (size_t)rn);
    memcpy(PyBytes_AS_STRING(raw) + rn, p, n);
    return raw;
}

/* headers: "An iterable of [name, value] two-item iterables, where name is the header
 * name, and value is the header value. Order of header values must be preserved ...
 * Header names should be lowercased" (www spec). Pairs are tuples, as uvicorn makes
 * them. */
static PyObject *header_list(server_conn_t *conn, const http_request_t *head)
{
    /* A trusted proxy's forwarded Host (--forwarded-headers x-forwarded-host or forwarded)
     * takes the Host field's place, as a proxy-fix middleware rewrites the scope, so that
     * Starlette's request.url and TrustedHostMiddleware see the host the client asked for;
     * a request without a Host field gets one. */
    char fwd_buf[SERVER_HOST_MAX];
    size_t fwd_len = 0;
    const char *fwd = server_conn_forwarded_host(conn, head, fwd_buf, sizeof(fwd_buf), &fwd_len);
    int add_host = fwd != NULL && http_find_header(head, "host", 4) == NULL;
    PyObject *list = PyList_New((Py_ssize_t)head->num_headers + add_host);
    if (list == NULL)
        return NULL;
    if (add_host) {
        PyObject *pair = Py_BuildValue("(y#y#)", "host", (Py_ssize_t)4, fwd, (Py_ssize_t)fwd_len);
        if (pair == NULL)
            goto error;
        PyList_SET_ITEM(list, (Py_ssize_t)head->num_headers, pair);
    }
    for (size_t i = 0; i < head->num_headers; i++) {
        const http_header_t *h = &head->headers[i];
        const char *v = h->value;
        size_t vn = h->value_len;
        if (fwd != NULL && h->name_len == 4 && strncasecmp(h->name, "host", 4) == 0) {
            v = fwd;
            vn = fwd_len;
        }
        PyObject *name = PyBytes_FromStringAndSize(h->name, (Py_ssize_t)h->name_len);
        if (name == NULL)
            goto error;
        /* The new bytes object is ours until it is shared: lowercase it in place. */
        char *s = PyBytes_AS_STRING(name);
        for (size_t j = 0; j < h->name_len; j++)
            if (s[j] >= 'A' && s[j] <= 'Z')
                s[j] = (char)(s[j] | 0x20);
        PyObject *value = PyBytes_FromStringAndSize(v, (Py_ssize_t)vn);
        PyObject *pair = value ? PyTuple_New(2) : NULL;
        if (pair == NULL) {
            Py_DECREF(name);
            Py_XDECREF(value);
            goto error;
        }
        PyTuple_SET_ITEM(pair, 0, name);
        PyTuple_SET_ITEM(pair, 1, value);
        PyList_SET_ITEM(list, (Py_ssize_t)i, pair);
    }
    return list;
error:
    Py_DECREF(list);
    return NULL;
}

/* Sets scope[key] = value and drops value; -1 with an exception (also when value is NULL
 * because making it failed). */
static int put(PyObject *scope, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return -1;
    int r = PyDict_SetItem(scope, key, value);
    Py_DECREF(value);
    return r;
}

PyObject *asgi_scope_new(AsgiAppObject *a, server_conn_t *conn, const server_request_t *req)
{
    const http_request_t *h = req->head;
    /* Sized for its 14 keys at once: a growing dict would be rebuilt twice on the way. */
    PyObject *scope = _PyDict_NewPresized(14);
    if (scope == NULL)
        return NULL;
    /* Keys in the order the spec lists them. asgi is a new dict each time: an application
     * may write into its scope. */
    if (put(scope, asgi_str.type, Py_NewRef(asgi_str.v_http)) < 0 ||
        put(scope, asgi_str.k_asgi, PyDict_Copy(asgi_str.asgi_version)) < 0 ||
        put(scope, asgi_str.k_http_version,
            Py_NewRef(h->version_minor == 0 ? asgi_str.v_http10 : asgi_str.v_http11)) < 0)
        goto error;
    PyObject *method;
    if (h->method < HTTP_OTHER && asgi_str.methods[h->method] != NULL)
        method = Py_NewRef(asgi_str.methods[h->method]);
    else
        method = PyUnicode_DecodeLatin1(h->method_str, (Py_ssize_t)h->method_len, NULL);
    if (put(scope, asgi_str.k_method, method) < 0 ||
        put(scope, asgi_str.k_scheme, scheme_of(conn, h)) < 0 ||
        put(scope, asgi_str.k_path, rooted_path(a, decoded_path(h->path, h->path_len))) < 0 ||
        put(scope, asgi_str.k_raw_path, rooted_raw_path(a, h->path, h->path_len)) < 0 ||
        put(scope, asgi_str.k_query_string,
            PyBytes_FromStringAndSize(h->query ? h->query : "", (Py_ssize_t)h->query_len)) < 0 ||
        put(scope, asgi_str.k_root_path, Py_NewRef(a->root_path)) < 0 ||
        put(scope, asgi_str.headers, header_list(conn, h)) < 0 ||
        put(scope, asgi_str.k_client, address_tuple(a, conn, 1, h)) < 0 ||
        put(scope, asgi_str.k_server, address_tuple(a, conn, 0, h)) < 0)
        goto error;
    /* extensions: the server supports http.response.pathsend (ASGI extensions, "Path
     * Send"). New dicts: an application may write into its scope. */
    PyObject *ext = PyDict_New(), *pathsend = ext ? PyDict_New() : NULL;
    if (pathsend == NULL || PyDict_SetItem(ext, asgi_str.http_response_pathsend, pathsend) < 0) {
        Py_XDECREF(ext);
        Py_XDECREF(pathsend);
        goto error;
    }
    Py_DECREF(pathsend);
    if (put(scope, asgi_str.k_extensions, ext) < 0)
        goto error;
    /* state: "A copy of the namespace passed into the lifespan corresponding to this
     * request" (www spec); shallow, so objects the lifespan made are shared. */
    if (a->state != NULL && put(scope, asgi_str.k_state, PyDict_Copy(a->state)) < 0)
        goto error;
    return scope;
error:
    Py_DECREF(scope);
    return NULL;
}
