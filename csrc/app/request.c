/*
 * The Request object, created only for handlers that declare a parameter annotated with
 * Request. Its fields are slices of the connection's buffer until first read; each is then
 * converted once and cached. When the request finishes, request_detach() converts what is
 * left if the object outlives the request (a handler kept it), then drops the slices, so a
 * Request never points into a buffer that moved on.
 *
 * The header fields of a detached Request that nobody read yet are kept compact (`fields`:
 * one bytes object of length-prefixed lowercased names and values) and become the
 * raw_headers list only if read: a WebSocket holds its Request for the whole session, and
 * the list's tuples and strings would cost ~180 bytes per field where the copy costs the
 * field's length plus 6.
 *
 * The peer's and the local address (`_peer`, `_sockname`) are asked of the socket on first
 * read only, so a request whose handler does not read them costs no system call; a kept
 * Request reads them at detach, while the connection is known, into a compact copy too.
 *
 * data_bridge.api.Request subclasses this type to add the mapping views (headers,
 * query_params) and the awaitable body()/json() of the Starlette interface.
 *
 * Python may make one too, as Starlette's Request(scope, receive) (a custom route class's
 * request): such an object is detached from the start, its fields given by `_init_from`,
 * and its body is what the Python layer reads from `receive` (stored through `_body`).
 *
 * The Request of a route whose handler is a custom APIRoute.get_route_handler keeps a copy
 * of the router match (`params`: slices into the request's head, names owned by the
 * router), so that the route's _core.Binder can bind the request later (binder.c); it is
 * dropped at detach, when the slices end.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_internal.h"
#include "common/text.h"

typedef struct {
    PyObject_HEAD
    server_request_t *req; /* NULL once detached */
    PyObject *method;
    PyObject *path;
    PyObject *query_string;
    PyObject *raw_headers;
    PyObject *fields; /* detached and raw_headers not made yet: see the opening comment */
    PyObject *body;
    PyObject *path_params;
    PyObject *peer;     /* (host, port) or None once asked */
    PyObject *sockname; /* (host, port) or None once asked */
    PyObject *addrs;    /* detached and not asked yet: see conn_address */
    int fd_plus1;       /* the connection's descriptor + 1 once asked; 0: not known */
    /* Beside fd_plus1, so no padding: the body streams (below); and a detached request's
     * X-Forwarded-Proto (FWD_*, kept by request_detach: a WebSocket's URL needs it). */
    unsigned char streamed;
    unsigned char forwarded;
    /* A streamed body (server.h, "Streaming request bodies"): the future of the read the
     * server has not answered yet (with a reference to this object held for the server,
     * released in on_body_piece), the route's body limit for body(). */
    PyObject *body_waiter;
    unsigned long long body_limit;
    /* The connection, while the request whose body streams is not finished (it may
     * outlive the handler: a streaming response reading request.stream()). Set with a
     * reference to this object held for the server (server_conn_body_watch), both dropped
     * in on_request_end. */
    server_conn_t *conn;
    /* The router match, kept for a route with keep_match while attached (PyMem). */
    router_param_t *params;
    size_t nparams;
    int kept_match;
} RequestObject;

static PyObject *decode_path(const char *s, size_t n)
{
    /* Starlette exposes the percent-decoded path; invalid UTF-8 is replaced. */
    char small[256] = {0};
    char *buf = n <= sizeof(small) ? small : PyMem_Malloc(n);
    if (buf == NULL)
        return PyErr_NoMemory();
    size_t o = db_pct_decode(buf, s, n, 0);
    PyObject *res = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)o, "replace");
    if (buf != small)
        PyMem_Free(buf);
    return res;
}

/* The standard methods' names, made once and shared by every request: a kept Request (a
 * WebSocket's, for the whole session) then holds no string of its own for it. */
static PyObject *method_names[HTTP_OTHER];

static PyObject *get_method(RequestObject *self, void *closure)
{
    (void)closure;
    if (self->method != NULL || self->req == NULL)
        return Py_XNewRef(self->method);
    const http_request_t *head = self->req->head;
    if (head->method < HTTP_OTHER) {
        PyObject **name = &method_names[head->method];
        if (*name == NULL)
            *name = PyUnicode_InternFromString(http_method_name(head->method));
        self->method = Py_XNewRef(*name); /* *name stays for the process */
    } else {
        self->method = PyUnicode_DecodeLatin1(head->method_str, (Py_ssize_t)head->method_len, NULL);
    }
    return Py_XNewRef(self->method);
}

static PyObject *get_path(RequestObject *self, void *closure)
{
    (void)closure;
    if (self->path == NULL && self->req)
        self->path = decode_path(self->req->head->path, self->req->head->path_len);
    return Py_XNewRef(self->path);
}

static PyObject *get_query_string(RequestObject *self, void *closure)
{
    (void)closure;
    if (self->query_string == NULL && self->req)
        self->query_string =
            PyUnicode_DecodeLatin1(self->req->head->query ? self->req->head->query : "",
                                   (Py_ssize_t)self->req->head->query_len, NULL);
    return Py_XNewRef(self->query_string);
}

/* One field of the compact copy: u16 name length, name, u32 value length, value (native
 * byte order; names lowercased). */
typedef struct {
    const char *name, *value;
    size_t name_len, value_len;
} field_t;

/* Reads the field at *pos of the compact copy; 0 at its end. */
static int next_field(PyObject *fields, size_t *pos, field_t *f)
{
    const char *p = PyBytes_AS_STRING(fields);
    size_t n = (size_t)PyBytes_GET_SIZE(fields);
    if (*pos + 2 > n)
        return 0;
    uint16_t nl;
    uint32_t vl;
    memcpy(&nl, p + *pos, 2);
    f->name = p + *pos + 2;
    f->name_len = nl;
    memcpy(&vl, p + *pos + 2 + nl, 4);
    f->value = p + *pos + 6 + nl;
    f->value_len = vl;
    *pos += 6 + (size_t)nl + vl;
    return 1;
}

/* The compact copy of the request's fields (see the opening comment), or NULL with an
 * exception set. */
static PyObject *copy_fields(const http_request_t *h)
{
    size_t total = 0;
    for (size_t i = 0; i < h->num_headers; i++) {
        if (h->headers[i].name_len > UINT16_MAX || h->headers[i].value_len > UINT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "header field too long");
            return NULL;
        }
        total += 6 + h->headers[i].name_len + h->headers[i].value_len;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (out == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
    for (size_t i = 0; i < h->num_headers; i++) {
        const http_header_t *f = &h->headers[i];
        uint16_t nl = (uint16_t)f->name_len;
        uint32_t vl = (uint32_t)f->value_len;
        memcpy(p, &nl, 2);
        for (size_t k = 0; k < f->name_len; k++)
            p[2 + k] = (char)tolower((unsigned char)f->name[k]);
        memcpy(p + 2 + nl, &vl, 4);
        memcpy(p + 6 + nl, f->value, f->value_len);
        p += 6 + (size_t)nl + vl;
    }
    return out;
}

/* raw_headers from the compact copy of a detached request. */
static PyObject *fields_to_list(PyObject *fields)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    size_t pos = 0;
    field_t f;
    while (next_field(fields, &pos, &f)) {
        PyObject *pair =
            Py_BuildValue("(s#N)", f.name, (Py_ssize_t)f.name_len,
                          PyUnicode_DecodeLatin1(f.value, (Py_ssize_t)f.value_len, NULL));
        if (pair == NULL || PyList_Append(list, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(pair);
    }
    return list;
}

static PyObject *get_raw_headers(RequestObject *self, void *closure)
{
    (void)closure;
    if (self->raw_headers == NULL && self->req == NULL && self->fields != NULL) {
        if ((self->raw_headers = fields_to_list(self->fields)) == NULL)
            return NULL;
        Py_CLEAR(self->fields);
    }
    if (self->raw_headers == NULL && self->req) {
        const http_request_t *h = self->req->head;
        PyObject *list = PyList_New((Py_ssize_t)h->num_headers);
        if (list == NULL)
            return NULL;
        for (size_t i = 0; i < h->num_headers; i++) {
            const http_header_t *f = &h->headers[i];
            char small[128];
            char *lower = f->name_len <= sizeof(small) ? small : PyMem_Malloc(f->name_len);
            if (lower == NULL) {
                Py_DECREF(list);
                return PyErr_NoMemory();
            }
            /* Field names are case-insensitive (RFC 9110 §5.1); store them lowercased. */
            for (size_t k = 0; k < f->name_len; k++)
                lower[k] = (char)tolower((unsigned char)f->name[k]);
            PyObject *pair =
                Py_BuildValue("(s#N)", lower, (Py_ssize_t)f->name_len,
                              PyUnicode_DecodeLatin1(f->value, (Py_ssize_t)f->value_len, NULL));
            if (lower != small)
                PyMem_Free(lower);
            if (pair == NULL) {
                Py_DECREF(list);
                return NULL;
            }
            PyList_SET_ITEM(list, (Py_ssize_t)i, pair);
        }
        self->raw_headers = list;
    }
    return Py_XNewRef(self->raw_headers);
}

static PyObject *get_body(RequestObject *self, void *closure)
{
    (void)closure;
    if (self->body == NULL && self->req)
        self->body = PyBytes_FromStringAndSize(self->req->body ? self->req->body : "",
                                               (Py_ssize_t)self->req->body_len);
    if (self->body == NULL && !PyErr_Occurred()) {
        /* Made by Python and not read yet: absent, as Starlette's Request._body is until
         * body() stores it (custom Request classes test for it with hasattr). */
        PyErr_SetString(PyExc_AttributeError, "_body");
    }
    return Py_XNewRef(self->body);
}

/* `_body = value`: what body() read (Starlette's cache, which Request subclasses set). */
static int set_body(RequestObject *self, PyObject *value, void *closure)
{
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_body cannot be deleted");
        return -1;
    }
    Py_XSETREF(self->body, Py_NewRef(value));
    return 0;
}

int request_kept_match(PyObject *obj, server_request_t **req, router_match_t *m)
{
    if (!PyObject_TypeCheck(obj, &Request_Type))
        return 0;
    RequestObject *self = (RequestObject *)obj;
    if (self->req == NULL || !self->kept_match)
        return 0;
    *req = self->req;
    m->data = NULL;
    m->nparams = self->nparams;
    if (self->nparams) /* params is NULL for a path without parameters */
        memcpy(m->params, self->params, self->nparams * sizeof(router_param_t));
    m->allowed = 0;
    return 1;
}

/* _init_from(method, path, query_string, raw_headers, path_params, client, server): the
 * fields of a Request made by Python (Request(scope, receive)), read from its scope. */
static PyObject *request_init_from(RequestObject *self, PyObject *args)
{
    PyObject *method, *path, *query, *headers, *params, *peer, *sockname;
    if (!PyArg_ParseTuple(args, "UUUO!O!OO:_init_from", &method, &path, &query, &PyList_Type,
                          &headers, &PyDict_Type, &params, &peer, &sockname))
        return NULL;
    if (self->req != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the server's Request objects are filled by it");
        return NULL;
    }
    Py_XSETREF(self->method, Py_NewRef(method));
    Py_XSETREF(self->path, Py_NewRef(path));
    Py_XSETREF(self->query_string, Py_NewRef(query));
    Py_XSETREF(self->raw_headers, Py_NewRef(headers));
    Py_CLEAR(self->fields);
    Py_XSETREF(self->path_params, Py_NewRef(params));
    Py_XSETREF(self->peer, Py_NewRef(peer));
    Py_XSETREF(self->sockname, Py_NewRef(sockname));
    /* Its body comes from receive(), piece by piece, as a streamed one does. */
    self->streamed = 1;
    Py_RETURN_NONE;
}

int request_body_slice(PyObject *obj, const char **body, size_t *len)
{
    if (!PyObject_TypeCheck(obj, &Request_Type))
        return 0;
    RequestObject *self = (RequestObject *)obj;
    if (self->req == NULL)
        return 0;
    *body = self->req->body ? self->req->body : "";
    *len = self->req->body_len;
    return 1;
}

static PyObject *get_path_params(RequestObject *self, void *closure)
{
    (void)closure;
    if (self->path_params == NULL)
        self->path_params = PyDict_New();
    return Py_XNewRef(self->path_params);
}

/* header(name, default=None): the first value of a header field (names compared without
 * case, RFC 9110 §5.1), read from the request's slices without building the header list:
 * what security dependencies need on every request. */
static PyObject *request_header(RequestObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "header(name: str, default=None)");
        return NULL;
    }
    PyObject *dflt = nargs > 1 ? args[1] : Py_None;
    Py_ssize_t n;
    const char *name = PyUnicode_AsUTF8AndSize(args[0], &n);
    if (name == NULL)
        return NULL;
    if (self->req == NULL && self->fields != NULL) {
        /* Detached, fields not converted: read from the compact copy. */
        size_t pos = 0;
        field_t f;
        while (next_field(self->fields, &pos, &f))
            if (f.name_len == (size_t)n && PyOS_strnicmp(f.name, name, (size_t)n) == 0)
                return PyUnicode_DecodeLatin1(f.value, (Py_ssize_t)f.value_len, NULL);
        return Py_NewRef(dflt);
    }
    if (self->req == NULL) {
        /* Detached: the converted list holds lowercased names. */
        PyObject *list = self->raw_headers;
        for (Py_ssize_t i = 0; list && i < PyList_GET_SIZE(list); i++) {
            PyObject *pair = PyList_GET_ITEM(list, i);
            Py_ssize_t kn;
            const char *k = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 0), &kn);
            if (k == NULL)
                return NULL;
            if (kn == n && PyOS_strnicmp(k, name, (size_t)n) == 0)
                return Py_NewRef(PyTuple_GET_ITEM(pair, 1));
        }
        return Py_NewRef(dflt);
    }
    const http_header_t *h = http_find_header(self->req->head, name, (size_t)n);
    if (h == NULL)
        return Py_NewRef(dflt);
    return PyUnicode_DecodeLatin1(h->value, (Py_ssize_t)h->value_len, NULL);
}

/* The peer (remote) or local address of the request's connection into host (NUL ended)
 * and *port; 0, or nonzero when there is none (AF_UNIX, the connection gone). */
static int ask_address(RequestObject *self, int remote, char host[SERVER_HOST_MAX], int *port)
{
    *port = 0;
    /* The client is the one a trusted proxy names, when proxy headers are on. */
    return remote
               ? server_conn_client(self->req->conn, self->req->head, host, SERVER_HOST_MAX, port)
               : server_conn_address(self->req->conn, 0, host, SERVER_HOST_MAX, port);
}

/* A detached request that nobody asked for its addresses keeps them compact (`addrs`): per
 * address (the peer's, then the local one) a byte (1: present, 0: none), the port (u16) and
 * the host (u16 length, bytes), about 30 bytes where two (host, port) tuples cost about
 * 280. A WebSocket keeps its Request for the whole session. Returns the bytes object, or
 * NULL with an exception set. */
static PyObject *copy_addresses(RequestObject *self)
{
    unsigned char buf[2 * (5 + SERVER_HOST_MAX)];
    size_t n = 0;
    for (int remote = 1; remote >= 0; remote--) {
        char host[SERVER_HOST_MAX];
        int port;
        int ok = ask_address(self, remote, host, &port) == 0;
        uint16_t p16 = (uint16_t)port, len = ok ? (uint16_t)strlen(host) : 0;
        buf[n++] = (unsigned char)ok;
        memcpy(buf + n, &p16, 2);
        memcpy(buf + n + 2, &len, 2);
        memcpy(buf + n + 4, host, len);
        n += 4 + (size_t)len;
    }
    return PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)n);
}

/* The (host, port) of the compact copy (see copy_addresses), or None. */
static PyObject *address_from_copy(PyObject *addrs, int remote)
{
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(addrs);
    uint16_t port, len;
    if (!remote) {
        memcpy(&len, p + 3, 2);
        p += 5 + len;
    }
    memcpy(&port, p + 1, 2);
    memcpy(&len, p + 3, 2);
    if (!p[0])
        return Py_NewRef(Py_None);
    return Py_BuildValue("(s#i)", (const char *)p + 5, (Py_ssize_t)len, (int)port);
}

/* The connection's peer or local address as (host, port), cached in *slot; None when the
 * socket has none (AF_UNIX), the connection is gone, or the request was detached first. */
static PyObject *conn_address(RequestObject *self, int remote, PyObject **slot)
{
    if (*slot == NULL) {
        if (self->req == NULL) {
            if (self->addrs == NULL)
                return Py_NewRef(Py_None);
            return (*slot = address_from_copy(self->addrs, remote)) == NULL ? NULL
                                                                            : Py_NewRef(*slot);
        }
        char host[SERVER_HOST_MAX];
        int port;
        if (ask_address(self, remote, host, &port) != 0)
            return Py_NewRef(Py_None);
        /* Latin-1, as uvicorn decodes headers: a proxy's X-Forwarded-For may hold any
         * obs-text byte, which is no error of the application's. */
        PyObject *h = PyUnicode_DecodeLatin1(host, (Py_ssize_t)strlen(host), NULL);
        if (h == NULL)
            return NULL;
        *slot = Py_BuildValue("(Ni)", h, port);
        if (*slot == NULL)
            return NULL;
    }
    return Py_NewRef(*slot);
}

static PyObject *get_peer(RequestObject *self, void *closure)
{
    (void)closure;
    return conn_address(self, 1, &self->peer);
}

static PyObject *get_sockname(RequestObject *self, void *closure)
{
    (void)closure;
    return conn_address(self, 0, &self->sockname);
}

/* The connection's socket descriptor, or None (gone, or detached before being asked):
 * the App's ASGI face (api/_asgi_bridge.py) finds the ASGI scope that outer middleware
 * filled (a session, a user) by the socketpair end it handed the server. */
static PyObject *get_fd(RequestObject *self, void *closure)
{
    (void)closure;
    if (self->fd_plus1 == 0 && self->req != NULL) {
        int fd = server_conn_fileno(self->req->conn);
        if (fd >= 0)
            self->fd_plus1 = fd + 1;
    }
    return self->fd_plus1 ? PyLong_FromLong(self->fd_plus1 - 1) : Py_NewRef(Py_None);
}

/* The schemes X-Forwarded-Proto may give (http/forwarded.c takes no other), by FWD_*. */
enum { FWD_UNKNOWN = 0, FWD_NONE, FWD_HTTP, FWD_HTTPS, FWD_WS, FWD_WSS };
static const char *const forwarded_names[] = {NULL, NULL, "http", "https", "ws", "wss"};

static unsigned char forwarded_code(RequestObject *self)
{
    size_t n = 0;
    const char *v = server_conn_forwarded_proto(self->req->conn, self->req->head, &n);
    for (unsigned char i = FWD_HTTP; v != NULL && i <= FWD_WSS; i++)
        if (strlen(forwarded_names[i]) == n && memcmp(v, forwarded_names[i], n) == 0)
            return i;
    return FWD_NONE;
}

/* The scheme a trusted proxy's X-Forwarded-Proto gives, or None (then the server's own). */
static PyObject *get_forwarded_scheme(RequestObject *self, void *closure)
{
    (void)closure;
    unsigned char code = self->req != NULL ? forwarded_code(self) : self->forwarded;
    if (code <= FWD_NONE)
        Py_RETURN_NONE;
    return PyUnicode_FromString(forwarded_names[code]);
}

/* The Host a trusted proxy's X-Forwarded-Host or Forwarded host= gives (with
 * forwarded_headers asking for it), or None (then the request's own Host field). */
static PyObject *get_forwarded_host(RequestObject *self, void *closure)
{
    (void)closure;
    char buf[SERVER_HOST_MAX];
    size_t n = 0;
    const char *v = self->req ? server_conn_forwarded_host(self->req->conn, self->req->head, buf,
                                                           sizeof(buf), &n)
                              : NULL;
    if (v == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeLatin1(v, (Py_ssize_t)n, NULL);
}

static PyObject *request_ws_check(RequestObject *self, PyObject *unused)
{
    (void)unused;
    /* 404 when the request is gone: nothing can be upgraded any more. */
    return PyLong_FromLong(self->req ? ws_handshake_status(self->req) : 404);
}

static PyObject *request_ws_accept(RequestObject *self, PyObject *args)
{
    PyObject *loop;
    const char *lines;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "Oy#:_ws_accept", &loop, &lines, &n))
        return NULL;
    server_request_t *req = self->req;
    if (req == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the request is no longer being served");
        return NULL;
    }
    /* The upgrade drops the request's bytes: what the object shows is converted now. */
    request_detach((PyObject *)self);
    return ws_session_accept(req->conn, loop, lines, (size_t)n);
}

/* The server answers a read of the streamed body: the future gets the piece (bytes), b""
 * at the end, or the SERVER_BODY_* error code (an int) the Python layer turns into an
 * exception. */
static void on_body_piece(void *arg, int status, const char *data, size_t len)
{
    RequestObject *self = arg;
    PyObject *fut = self->body_waiter;
    self->body_waiter = NULL;
    PyObject *value = status == SERVER_BODY_DATA  ? PyBytes_FromStringAndSize(data, (Py_ssize_t)len)
                      : status == SERVER_BODY_END ? PyBytes_FromStringAndSize(NULL, 0)
                                                  : PyLong_FromLong(status);
    PyObject *done = value && fut ? PyObject_CallMethod(fut, "done", NULL) : NULL;
    int is_done = done ? PyObject_IsTrue(done) : -1;
    PyObject *r = is_done == 0 ? PyObject_CallMethod(fut, "set_result", "O", value) : NULL;
    if (is_done < 0 || (is_done == 0 && r == NULL))
        PyErr_WriteUnraisable(fut ? fut : Py_None);
    Py_XDECREF(r);
    Py_XDECREF(done);
    Py_XDECREF(value);
    Py_XDECREF(fut);
    /* Taken in request_read_body for the server's pending read. */
    Py_DECREF(self);
}

/* The streamed request finished: its body can no longer be read through this object. */
static void on_request_end(void *arg)
{
    RequestObject *self = arg;
    self->conn = NULL;
    /* Taken in request_new with the watch. */
    Py_DECREF(self);
}

/* _read_body(future): asks the server for the next piece of a streamed body, which
 * resolves the future (at once when the bytes are here). Returns None, or the error code
 * when no read can be made (the request ended: SERVER_BODY_ABORTED). */
static PyObject *request_read_body(RequestObject *self, PyObject *fut)
{
    if (self->body_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the request body is already being read");
        return NULL;
    }
    if (self->conn == NULL)
        return PyLong_FromLong(SERVER_BODY_ABORTED);
    self->body_waiter = Py_NewRef(fut);
    Py_INCREF(self); /* released in on_body_piece */
    if (server_conn_body_read(self->conn, on_body_piece, self) < 0) {
        Py_CLEAR(self->body_waiter);
        Py_DECREF(self);
        return PyLong_FromLong(SERVER_BODY_ABORTED);
    }
    Py_RETURN_NONE;
}

int request_body_stream(PyObject *obj, server_conn_t **conn, uint64_t *length)
{
    if (!PyObject_TypeCheck(obj, &Request_Type) || !((RequestObject *)obj)->streamed)
        return 0;
    RequestObject *self = (RequestObject *)obj;
    const http_request_t *head = self->req != NULL ? self->req->head : NULL;
    *conn = self->conn;
    *length = head != NULL && !head->chunked && head->content_length > 0
                  ? (uint64_t)head->content_length
                  : 0;
    return self->conn != NULL ? 1 : -1;
}

static PyObject *get_streamed(RequestObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->streamed);
}

/* The connection closed while the request is served (a streamed body keeps reading the
 * socket, so a client that leaves is seen; a whole one was read before the handler ran). */
static PyObject *get_disconnected(RequestObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->conn != NULL && server_conn_closed(self->conn));
}

static PyObject *get_body_limit(RequestObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->body_limit);
}

static PyMethodDef request_methods[] = {
    {"_read_body", (PyCFunction)request_read_body, METH_O,
     "_read_body(future): the next piece of a streamed body into the future (bytes; b'' at "
     "the end; an int error code), or the error code at once"},
    {"_ws_check", (PyCFunction)request_ws_check, METH_NOARGS,
     "_ws_check(): 0 for a valid WebSocket handshake, else the status to answer (404: not "
     "an upgrade, 400: malformed, 426: another version)"},
    {"_ws_accept", (PyCFunction)request_ws_accept, METH_VARARGS,
     "_ws_accept(loop, header_lines): answers 101 and returns the "
     "WebSocketSession"},
    {"header", (PyCFunction)(void (*)(void))request_header, METH_FASTCALL,
     "header(name, default=None): the first value of a header (case-insensitive name)"},
    {"_init_from", (PyCFunction)request_init_from, METH_VARARGS,
     "_init_from(method, path, query_string, raw_headers, path_params, client, server): the "
     "fields of a Request made by Python"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef request_getset[] = {
    {"method", (getter)get_method, NULL, "The request method, e.g. 'GET'.", NULL},
    {"path", (getter)get_path, NULL, "The percent-decoded path.", NULL},
    {"query_string", (getter)get_query_string, NULL, "The raw query string (after '?').", NULL},
    {"raw_headers", (getter)get_raw_headers, NULL,
     "Header fields as a list of (lowercase name, value) pairs, in order.", NULL},
    {"_body", (getter)get_body, (setter)set_body,
     "The request body as bytes (absent on a Request made by Python until read).", NULL},
    {"_streamed", (getter)get_streamed, NULL,
     "The body is read as it arrives (_read_body), not held whole (_body is empty).", NULL},
    {"_body_limit", (getter)get_body_limit, NULL, "The route's body limit (0: none).", NULL},
    {"_disconnected", (getter)get_disconnected, NULL,
     "The connection closed while the request is served.", NULL},
    {"path_params", (getter)get_path_params, NULL, "Path parameters as strings.", NULL},
    {"_peer", (getter)get_peer, NULL,
     "The client's address (host, port), or None (a Unix socket, a closed connection).", NULL},
    {"_forwarded_scheme", (getter)get_forwarded_scheme, NULL,
     "The scheme a trusted proxy's X-Forwarded-Proto gives, or None.", NULL},
    {"_forwarded_host", (getter)get_forwarded_host, NULL,
     "the Host a trusted proxy forwarded, or None", NULL},
    {"_fd", (getter)get_fd, NULL, "The connection's socket descriptor, or None.", NULL},
    {"_sockname", (getter)get_sockname, NULL,
     "The server's address (host, port) on this connection, or None (a Unix socket).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static int request_traverse(RequestObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->method);
    Py_VISIT(self->path);
    Py_VISIT(self->query_string);
    Py_VISIT(self->raw_headers);
    Py_VISIT(self->fields);
    Py_VISIT(self->body);
    Py_VISIT(self->path_params);
    Py_VISIT(self->peer);
    Py_VISIT(self->sockname);
    Py_VISIT(self->body_waiter);
    Py_VISIT(self->addrs);
    return 0;
}

static int request_clear(RequestObject *self)
{
    Py_CLEAR(self->method);
    Py_CLEAR(self->path);
    Py_CLEAR(self->query_string);
    Py_CLEAR(self->raw_headers);
    Py_CLEAR(self->fields);
    Py_CLEAR(self->body);
    Py_CLEAR(self->path_params);
    Py_CLEAR(self->peer);
    Py_CLEAR(self->sockname);
    Py_CLEAR(self->body_waiter);
    Py_CLEAR(self->addrs);
    return 0;
}

static void request_dealloc(RequestObject *self)
{
    PyObject_GC_UnTrack(self);
    request_clear(self);
    PyMem_Free(self->params);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *request_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    (void)args;
    (void)kw;
    /* The Python layer's subclasses may be made as Starlette's are (Request(scope,
     * receive)): a detached object that their __init__ fills (_init_from). */
    if (type == &Request_Type) {
        PyErr_SetString(PyExc_TypeError, "Request objects are created by the server");
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

PyTypeObject Request_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "data_bridge._core.Request",
    .tp_basicsize = sizeof(RequestObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "An HTTP request as seen by a handler that asks for it.",
    .tp_traverse = (traverseproc)request_traverse,
    .tp_clear = (inquiry)request_clear,
    .tp_dealloc = (destructor)request_dealloc,
    .tp_getset = request_getset,
    .tp_methods = request_methods,
    .tp_new = request_tp_new,
};

PyObject *request_new(server_request_t *req, const router_match_t *m)
{
    const route_plan_t *plan = m->data;
    PyObject *cls = plan && plan->request_class ? plan->request_class : app_cfg.request_class;
    PyTypeObject *type = (PyTypeObject *)(cls ? cls : (PyObject *)&Request_Type);
    RequestObject *self = (RequestObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->req = req;
    self->streamed = req->streamed;
    self->body_limit = plan ? plan->max_body : 0;
    if (m->nparams) {
        self->path_params = PyDict_New();
        if (self->path_params == NULL)
            goto error;
        for (size_t i = 0; i < m->nparams; i++) {
            const router_param_t *p = &m->params[i];
            PyObject *k = PyUnicode_FromStringAndSize(p->name, (Py_ssize_t)p->name_len);
            /* Slices of the decoded path the router matched (invoke.c): not decoded again. */
            PyObject *v =
                k ? PyUnicode_DecodeUTF8(p->value, (Py_ssize_t)p->value_len, "replace") : NULL;
            int r = v ? PyDict_SetItem(self->path_params, k, v) : -1;
            Py_XDECREF(k);
            Py_XDECREF(v);
            if (r < 0)
                goto error;
        }
    }
    if (plan && plan->keep_match) {
        if (m->nparams) {
            /* The values too, behind the array: they may be slices of the dispatch's
             * decoded path (invoke.c), gone when app_dispatch returns. */
            size_t bytes = m->nparams * sizeof(router_param_t);
            for (size_t i = 0; i < m->nparams; i++)
                bytes += m->params[i].value_len;
            self->params = PyMem_Malloc(bytes);
            if (self->params == NULL) {
                PyErr_NoMemory();
                goto error;
            }
            memcpy(self->params, m->params, m->nparams * sizeof(router_param_t));
            char *values = (char *)(self->params + m->nparams);
            for (size_t i = 0; i < m->nparams; i++) {
                memcpy(values, m->params[i].value, m->params[i].value_len);
                self->params[i].value = values;
                values += m->params[i].value_len;
            }
            self->nparams = m->nparams;
        }
        self->kept_match = 1;
    }
    if (req->streamed && server_conn_body_watch(req->conn, on_request_end, self) == 0) {
        /* A second Request of the same request (an exception hook's) reads no body. */
        self->conn = req->conn;
        Py_INCREF(self); /* released in on_request_end */
    }
    return (PyObject *)self;
error:
    Py_DECREF(self);
    return NULL;
}

void request_detach(PyObject *obj)
{
    RequestObject *self = (RequestObject *)obj;
    if (self->req == NULL)
        return;
    /* The caller's reference, and the server's while a streamed body is watched (taken in
     * request_new, dropped in on_request_end: nobody reads fields through it). */
    if (Py_REFCNT(obj) > 1 + (self->conn != NULL)) {
        /* Someone kept the request: convert every field while the slices are valid. */
        PyObject *kept[] = {get_method(self, NULL), get_path(self, NULL),
                            get_query_string(self, NULL), get_body(self, NULL), get_fd(self, NULL)};
        for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
            Py_XDECREF(kept[i]);
        if (self->raw_headers == NULL)
            self->fields = copy_fields(self->req->head);
        if (self->peer == NULL || self->sockname == NULL)
            self->addrs = copy_addresses(self);
        self->forwarded = forwarded_code(self);
        PyErr_Clear();
    }
    /* The kept match's slices end with the request. */
    PyMem_Free(self->params);
    self->params = NULL;
    self->nparams = 0;
    self->kept_match = 0;
    self->req = NULL;
}
