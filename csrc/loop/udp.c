/*
 * UDP transports on libuv's uv_udp_t implementing asyncio's DatagramTransport /
 * DatagramProtocol interface for AF_INET and AF_INET6 sockets: sendto (with the connected
 * socket rules), datagram_received, error_received, write-buffer flow control with
 * pause_writing/resume_writing (asyncio's _FlowControlMixin), pause_reading/resume_reading,
 * close/abort and get_extra_info. AF_UNIX datagram sockets stay on the Python transport in
 * pyloop: libuv 1.44's uv_udp_send/uv_udp_try_send accept only IPv4/IPv6 destinations.
 *
 * Ownership and lifetime:
 * - The transport embeds its uv_udp_t. From uv_udp_init until the close callback the
 *   transport holds a reference to itself (libuv may touch the handle until then).
 * - The handle owns a duplicate of the Python socket's descriptor (libuv closes it); the
 *   Python socket (extra['socket']) is owned by the transport and closed in
 *   _call_connection_lost, like asyncio closes its socket there.
 * - Every uv_udp_send request owns a copy of its datagram and holds a reference to the
 *   transport until its callback, which libuv always calls (UV_ECANCELED when the handle
 *   closes first).
 * - The transport holds its protocol until connection_lost() has been called, then drops it
 *   to break the transport <-> protocol cycle, like asyncio.
 * - A small cache maps the last few peer addresses to their Python tuples (owned), so that
 *   an echo-style sendto(data, addr) with the tuple datagram_received() handed out needs no
 *   address parsing, and repeated datagrams from one peer share one tuple (tuples are
 *   immutable, so sharing is invisible).
 *
 * sendto() tries uv_udp_try_send first (nothing is copied when the socket takes the
 * datagram at once, which is the common case); only when the kernel buffer is full (EAGAIN)
 * is the datagram copied into a uv_udp_send request, counted in get_write_buffer_size().
 * Datagrams are read into the loop's shared 64 KiB buffer (a UDP payload is at most
 * 65,535 bytes, so none is truncated) and copied into a bytes object for the protocol.
 */
#include "loop/loop_internal.h"

#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <structmember.h>

#define DEFAULT_HIGH_WATER (64 * 1024)
/* asyncio (constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES): sends after the connection was
 * lost are counted and logged from the fifth on. */
#define LOG_THRESHOLD_FOR_CONNLOST_WRITES 5
#define ADDR_CACHE_SIZE                   8

#if PY_VERSION_HEX >= 0x030D0000
/* Python 3.13 sends empty datagrams and counts 8 header bytes per queued datagram. */
#define SEND_EMPTY          1
#define QUEUED_HEADER_BYTES 8
#else
/* Up to 3.12, asyncio's sendto() returns at once for empty data. */
#define SEND_EMPTY          0
#define QUEUED_HEADER_BYTES 0
#endif

typedef struct {
    struct sockaddr_storage sa;
    PyObject *addr; /* the Python form of sa (owned), or NULL for an empty slot */
} addr_slot_t;

typedef struct PyLoopUDPObject {
    /* clang-format off */
    PyObject_HEAD
    /* asyncio.BaseTransport's _extra slot (the type derives from asyncio.DatagramTransport):
     * the inherited get_extra_info() reads it. */
    PyObject *extra;
    /* clang-format on */
    uv_udp_t udp;
    PyLoopObject *loop;
    PyObject *protocol; /* NULL after connection_lost() */
    PyObject *sock;     /* the socket.socket behind extra['socket'], closed with us */
    PyObject *address;  /* remote_addr of create_datagram_endpoint, or NULL */
    PyObject *weakreflist;
    PyObject *dict;
    addr_slot_t cache[ADDR_CACHE_SIZE];
    unsigned int cache_next; /* round-robin replacement */
    size_t write_buffer_size;
    size_t high_water, low_water;
    unsigned int writes_after_lost;
    int family;
    unsigned char handle_open, started, receiving, paused_reading, closing, lost_scheduled;
    unsigned char protocol_paused, connected;
    loop_open_link_t link; /* in loop->open_links while handle_open */
    /* The context protocol callbacks run in (transport.c), or NULL: the caller's. */
    PyObject *context;
} PyLoopUDPObject;

typedef struct {
    uv_udp_send_t req;
    PyLoopUDPObject *t;
    size_t counted; /* bytes counted in write_buffer_size for this datagram */
    size_t len;
    char data[];
} send_req_t;

static PyObject *str_datagram_received, *str_error_received, *str_connection_lost;
static PyObject *str_connection_made, *str_pause_writing, *str_resume_writing;
static PyObject *asyncio_logger; /* asyncio.log.logger */
static PyTypeObject *udp_type;

static void schedule_connection_lost(PyLoopUDPObject *t, PyObject *exc);

/* ---- small helpers ---- */

/* Sets OSError (the errno subclass, e.g. ConnectionRefusedError) from a libuv error. */
static void set_uv_error(int uverr)
{
    errno = -uverr;
    PyErr_SetFromErrno(PyExc_OSError);
}

/* Calls loop.call_exception_handler with a transport-flavoured context. */
static void report(PyLoopUDPObject *t, const char *message, PyObject *exc)
{
    loop_transport_report(t->loop, (PyObject *)t, t->protocol, message, exc);
}

static void defer_base_exception(PyLoopUDPObject *t, PyObject *exc)
{
    loop_defer_base_exception(t->loop, exc);
}

/* A protocol callback run from a libuv callback raised: asyncio's loop reports what its
 * reader/writer callback raised and keeps the transport open; so do we. */
static void callback_failed(PyLoopUDPObject *t, const char *message)
{
    PyObject *exc = loop_fetch_exception();

    if (exc == NULL)
        return;
    if (loop_is_base_exception(exc)) {
        defer_base_exception(t, exc);
        return;
    }
    report(t, message, exc);
    Py_DECREF(exc);
}

/* asyncio's _fatal_error: takes the current exception, reports it unless it is an OSError
 * (asyncio only logs those in debug mode) and force-closes, passing it to connection_lost. */
static void fatal_error(PyLoopUDPObject *t, const char *message)
{
    PyObject *exc = loop_fetch_exception();

    if (exc == NULL)
        return;
    if (loop_is_base_exception(exc)) {
        Py_INCREF(exc);
        defer_base_exception(t, exc);
    } else if (!PyErr_GivenExceptionMatches(exc, PyExc_OSError)) {
        report(t, message, exc);
    }
    schedule_connection_lost(t, exc);
    Py_DECREF(exc);
}

static void on_udp_close(uv_handle_t *handle)
{
    PyLoopUDPObject *t = handle->data;

    Py_DECREF(t); /* pairs with the INCREF in udp_new */
}

static void close_handle(PyLoopUDPObject *t)
{
    if (t->handle_open) {
        t->handle_open = 0;
        loop_open_link_remove(t->loop, &t->link);
        t->receiving = 0;
        /* Queued sends complete with UV_ECANCELED before on_udp_close runs. */
        uv_close((uv_handle_t *)&t->udp, on_udp_close);
    }
}

/* Loop close with the transport still open. A receiving datagram transport is kept alive by
 * asyncio's selector until the loop closes; its finalizer then warns "unclosed transport"
 * and closes the socket. Same warning here, and the handle and socket are closed now. */
static void udp_abandon(loop_open_link_t *link)
{
    PyLoopUDPObject *t = (PyLoopUDPObject *)((char *)link - offsetof(PyLoopUDPObject, link));
    PyObject *type, *value, *tb, *res;

    PyErr_Fetch(&type, &value, &tb);
    Py_INCREF(t);
    if (!t->closing &&
        PyErr_ResourceWarning((PyObject *)t, 1, "unclosed transport %R", (PyObject *)t) < 0)
        PyErr_WriteUnraisable((PyObject *)t);
    /* is_closing() stays False, as for asyncio's transports once their loop is closed. */
    if (t->sock != NULL) {
        res = PyObject_CallMethod(t->sock, "close", NULL);
        if (res == NULL)
            PyErr_WriteUnraisable((PyObject *)t);
        Py_XDECREF(res);
        Py_CLEAR(t->sock);
    }
    close_handle(t);
    Py_DECREF(t);
    PyErr_Restore(type, value, tb);
}

/* ---- addresses ---- */

static int sockaddr_equal(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return 0;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (b->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port && x->sin6_flowinfo == y->sin6_flowinfo &&
               x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return 0;
}

static size_t sockaddr_len(int family)
{
    return family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static void cache_put(PyLoopUDPObject *t, const struct sockaddr *sa, PyObject *addr)
{
    addr_slot_t *slot = &t->cache[t->cache_next];

    t->cache_next = (t->cache_next + 1) % ADDR_CACHE_SIZE;
    memset(&slot->sa, 0, sizeof(slot->sa));
    memcpy(&slot->sa, sa, sockaddr_len(sa->sa_family));
    Py_INCREF(addr);
    Py_XSETREF(slot->addr, addr);
}

static void cache_clear(PyLoopUDPObject *t)
{
    for (int i = 0; i < ADDR_CACHE_SIZE; i++)
        Py_CLEAR(t->cache[i].addr);
}

/* The Python form of a sender's address (what socket.recvfrom returns), from the cache when
 * the same peer sent before. Returns a new reference or NULL with an exception. */
static PyObject *addr_to_py(PyLoopUDPObject *t, const struct sockaddr *sa)
{
    PyObject *addr;

    for (int i = 0; i < ADDR_CACHE_SIZE; i++) {
        if (t->cache[i].addr != NULL && sockaddr_equal(&t->cache[i].sa, sa))
            return Py_NewRef(t->cache[i].addr);
    }
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return Py_NewRef(Py_None);
    addr = loop_sockaddr_to_py((const struct sockaddr_storage *)sa);
    if (addr != NULL)
        cache_put(t, sa, addr);
    return addr;
}

/* sendto()'s address as a sockaddr: the cached conversion when addr is a tuple we handed out
 * or converted before, else udp_addr.c's. Returns 0 or -1 with an exception. */
static int addr_from_py(PyLoopUDPObject *t, PyObject *addr, struct sockaddr_storage *ss)
{
    int cacheable = 0;

    for (int i = 0; i < ADDR_CACHE_SIZE; i++) {
        if (t->cache[i].addr == addr) {
            memcpy(ss, &t->cache[i].sa, sizeof(*ss));
            return 0;
        }
    }
    if (loop_udp_addr_from_py(t->family, addr, ss, &cacheable) < 0)
        return -1;
    if (cacheable)
        cache_put(t, (struct sockaddr *)ss, addr);
    return 0;
}

/* ---- protocol callbacks ---- */

/* Calls protocol.error_received(exc); returns 0 or -1 with the exception it raised. */
static int call_error_received(PyLoopUDPObject *t, int uverr)
{
    PyObject *exc, *res;

    if (t->protocol == NULL)
        return 0;
    set_uv_error(uverr);
    exc = loop_fetch_exception();
    if (exc == NULL)
        return -1;
    res = PyObject_CallMethodOneArg(t->protocol, str_error_received, exc);
    Py_DECREF(exc);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

/* ---- flow control (asyncio's _FlowControlMixin) ---- */

/* Both in the transport's context, as for stream transports (stream.c). */
static void maybe_pause_protocol(PyLoopUDPObject *t)
{
    PyObject *entered;

    if (t->write_buffer_size <= t->high_water || t->protocol_paused || t->protocol == NULL)
        return;
    t->protocol_paused = 1;
    entered = loop_context_enter(t->context);
    loop_transport_flow_call(t->loop, (PyObject *)t, t->protocol, str_pause_writing,
                             "protocol.pause_writing() failed");
    loop_context_exit(entered);
}

static void maybe_resume_protocol(PyLoopUDPObject *t)
{
    PyObject *entered;

    if (!t->protocol_paused || t->write_buffer_size > t->low_water || t->protocol == NULL)
        return;
    t->protocol_paused = 0;
    entered = loop_context_enter(t->context);
    loop_transport_flow_call(t->loop, (PyObject *)t, t->protocol, str_resume_writing,
                             "protocol.resume_writing() failed");
    loop_context_exit(entered);
}

/* ---- receiving ---- */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    PyLoopUDPObject *t = handle->data;

    (void)suggested;
    /* The datagram is copied into a bytes object before on_recv returns, so the loop's
     * shared read buffer is free again for the next read of any transport. */
    buf->base = t->loop->nat->readbuf;
    buf->len = sizeof(t->loop->nat->readbuf);
}

static void on_recv(uv_udp_t *handle, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *sa,
                    unsigned flags)
{
    PyLoopUDPObject *t = handle->data;
    PyObject *data, *addr, *res, *entered;

    (void)flags; /* UV_UDP_PARTIAL cannot happen: the buffer holds any UDP payload */
    /* libuv: nread 0 with no address means there was nothing to read (EAGAIN). */
    if (nread == 0 && sa == NULL)
        return;
    pyloop_enter(t->loop);
    /* asyncio's _read_ready returns early once connection_lost is scheduled. */
    if (t->lost_scheduled || t->protocol == NULL)
        return;
    Py_INCREF(t); /* protocol callbacks may close the transport; released below */
    entered = loop_context_enter(t->context);
    if (nread < 0) {
        /* e.g. ECONNREFUSED from an ICMP port unreachable on a connected socket. */
        if (call_error_received(t, (int)nread) < 0)
            callback_failed(t, "Exception in callback DatagramTransport._read_ready()");
        goto done;
    }
    data = PyBytes_FromStringAndSize(buf->base, nread);
    if (data == NULL) {
        callback_failed(t, "Fatal read error on datagram transport");
        goto done;
    }
    addr = sa != NULL ? addr_to_py(t, sa) : Py_NewRef(Py_None);
    if (addr == NULL) {
        Py_DECREF(data);
        callback_failed(t, "Fatal read error on datagram transport");
        goto done;
    }
    {
        /* args[0] is scratch space that PY_VECTORCALL_ARGUMENTS_OFFSET lets the callee use. */
        PyObject *args[4] = {NULL, t->protocol, data, addr};
        res = PyObject_VectorcallMethod(str_datagram_received, args + 1,
                                        3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    Py_DECREF(data);
    Py_DECREF(addr);
    if (res == NULL)
        callback_failed(t, "Exception in callback DatagramTransport._read_ready()");
    Py_XDECREF(res);
done:
    loop_context_exit(entered);
    Py_DECREF(t);
}

static void update_receiving(PyLoopUDPObject *t)
{
    int want =
        t->started && t->handle_open && !t->closing && !t->paused_reading && t->protocol != NULL;

    if (want && !t->receiving) {
        int rc = uv_udp_recv_start(&t->udp, on_alloc, on_recv);
        if (rc == 0)
            t->receiving = 1;
    } else if (!want && t->receiving) {
        uv_udp_recv_stop(&t->udp);
        t->receiving = 0;
    }
}

/* ---- sending ---- */

static void on_send(uv_udp_send_t *req, int status)
{
    send_req_t *sr = (send_req_t *)req;
    PyLoopUDPObject *t = sr->t;

    pyloop_enter(t->loop);
    t->write_buffer_size -= sr->counted;
    PyMem_RawFree(sr);
    if (status < 0 && status != UV_ECANCELED && !t->lost_scheduled) {
        PyObject *entered = loop_context_enter(t->context);

        if (call_error_received(t, status) < 0)
            callback_failed(t, "Exception in callback DatagramTransport._sendto_ready()");
        loop_context_exit(entered);
    }
    if (t->handle_open) {
        maybe_resume_protocol(t);
        if (t->write_buffer_size == 0 && t->closing && !t->lost_scheduled)
            schedule_connection_lost(t, NULL);
    }
    Py_DECREF(t); /* pairs with the INCREF in queue_send */
}

/* Copies the datagram into a uv_udp_send request. Returns 0, 1 when libuv refused it at
 * once (uverr set), or -1 with MemoryError. */
static int queue_send(PyLoopUDPObject *t, const char *data, size_t len, const struct sockaddr *sa,
                      int *uverr)
{
    send_req_t *sr;
    uv_buf_t buf;
    int rc;

    sr = PyMem_RawMalloc(sizeof(*sr) + len);
    if (sr == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (len > 0)
        memcpy(sr->data, data, len);
    sr->len = len;
    sr->counted = len + QUEUED_HEADER_BYTES;
    sr->t = t;
    buf = uv_buf_init(sr->data, (unsigned int)len);
    rc = uv_udp_send(&sr->req, &t->udp, &buf, 1, sa, on_send);
    if (rc < 0) {
        PyMem_RawFree(sr);
        *uverr = rc;
        return 1;
    }
    Py_INCREF(t); /* held by the send request; released in on_send */
    t->write_buffer_size += sr->counted;
    return 0;
}

/* Logs asyncio's warning for sends after the connection was lost. */
static int warn_send_after_lost(PyLoopUDPObject *t)
{
    PyObject *res;

    /* asyncio's counter starts at 1 when connection_lost is scheduled: the fifth dropped
     * send is the first one logged. */
    if (++t->writes_after_lost < LOG_THRESHOLD_FOR_CONNLOST_WRITES)
        return 0;
    if (asyncio_logger == NULL)
        return 0;
    res = PyObject_CallMethod(asyncio_logger, "warning", "s", "socket.send() raised exception.");
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

static int sendto_impl(PyLoopUDPObject *t, const char *data, size_t len, PyObject *addr)
{
    struct sockaddr_storage ss;
    const struct sockaddr *sa = NULL;
    uv_buf_t buf;
    int rc, uverr = 0;

    if (len == 0 && !SEND_EMPTY)
        return 0;
    if (t->address != NULL) {
        if (addr != Py_None && addr != t->address) {
            int eq = PyObject_RichCompareBool(addr, t->address, Py_EQ);
            if (eq < 0)
                return -1;
            if (!eq) {
                PyErr_Format(PyExc_ValueError, "Invalid address: must be None or %S", t->address);
                return -1;
            }
        }
        addr = t->address;
        if (t->lost_scheduled)
            return warn_send_after_lost(t);
    }
    /* The socket is gone once connection_lost ran (or after abort); asyncio's unconnected
     * transport would fail on its closed socket here, we drop the datagram. */
    if (!t->handle_open)
        return 0;
    if (!t->connected) {
        /* Bad addresses are asyncio's fatal errors (the exception goes to the loop's handler
         * and the transport closes); resolution failures go to error_received(). */
        if (addr_from_py(t, addr, &ss) < 0) {
            if (PyErr_ExceptionMatches(PyExc_OSError)) {
                PyObject *exc = loop_fetch_exception(), *res;
                if (exc == NULL || t->protocol == NULL) {
                    Py_XDECREF(exc);
                    return exc == NULL ? -1 : 0;
                }
                res = PyObject_CallMethodOneArg(t->protocol, str_error_received, exc);
                Py_DECREF(exc);
                if (res == NULL)
                    return -1;
                Py_DECREF(res);
                return 0;
            }
            if (PyErr_ExceptionMatches(PyExc_MemoryError))
                return -1;
            fatal_error(t, "Fatal write error on datagram transport");
            return 0;
        }
        sa = (const struct sockaddr *)&ss;
    }
    if (t->write_buffer_size == 0) {
        buf = uv_buf_init((char *)data, (unsigned int)len);
        rc = uv_udp_try_send(&t->udp, &buf, 1, sa);
        if (rc >= 0)
            return 0;
        if (rc != UV_EAGAIN && rc != UV_ENOSYS) {
            /* asyncio: an OSError from the immediate send goes to error_received(), whose
             * own exception propagates to the caller of sendto(). */
            return call_error_received(t, rc);
        }
    }
    rc = queue_send(t, data, len, sa, &uverr);
    if (rc < 0)
        return -1;
    if (rc > 0)
        return call_error_received(t, uverr);
    maybe_pause_protocol(t);
    return 0;
}

/* sendto(data, addr=None) */
static PyObject *udp_sendto(PyLoopUDPObject *t, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    PyObject *data, *addr = Py_None;
    Py_buffer view;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int rc;

    if (nargs < 1 || nargs + nkw > 2 || (nkw == 1 && nargs != 1)) {
        PyErr_SetString(PyExc_TypeError, "sendto() takes data and an optional addr");
        return NULL;
    }
    if (nkw == 1) {
        if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "addr") != 0) {
            PyErr_Format(PyExc_TypeError, "sendto() got an unexpected keyword argument '%S'",
                         PyTuple_GET_ITEM(kwnames, 0));
            return NULL;
        }
        addr = args[1];
    } else if (nargs == 2) {
        addr = args[1];
    }
    data = args[0];
    if (PyBytes_Check(data)) {
        rc = sendto_impl(t, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), addr);
        return rc < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (!PyByteArray_Check(data) && !PyMemoryView_Check(data)) {
        PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not '%.200s'",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    rc = sendto_impl(t, view.buf, (size_t)view.len, addr);
    PyBuffer_Release(&view);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

/* ---- closing ---- */

/* Runs from the ready queue: closes the handle and the socket, tells the protocol (once). */
static PyObject *udp_call_connection_lost(PyLoopUDPObject *t, PyObject *exc)
{
    PyObject *protocol = t->protocol, *res, *r2;

    close_handle(t);
    if (t->sock != NULL) {
        r2 = PyObject_CallMethod(t->sock, "close", NULL);
        Py_XDECREF(r2);
        if (r2 == NULL)
            PyErr_Clear();
        Py_CLEAR(t->sock);
    }
    t->protocol = NULL;
    cache_clear(t);
    if (protocol != NULL)
        res = PyObject_CallMethodOneArg(protocol, str_connection_lost, exc);
    else
        res = Py_NewRef(Py_None);
    Py_XDECREF(protocol);
    return res;
}

static void schedule_connection_lost(PyLoopUDPObject *t, PyObject *exc)
{
    PyObject *meth;
    PyLoopHandleObject *h;
    PyObject *arg = exc ? exc : Py_None;

    t->closing = 1;
    update_receiving(t);
    if (t->lost_scheduled)
        return;
    t->lost_scheduled = 1;
    meth = PyObject_GetAttrString((PyObject *)t, "_call_connection_lost");
    if (meth == NULL)
        goto fail;
    h = loop_handle_new(t->loop, &PyLoopHandle_Type, meth, &arg, 1, t->context);
    Py_DECREF(meth);
    if (h == NULL)
        goto fail;
    if (loop_ready_push(t->loop, h) < 0) { /* the queue takes h's reference */
        Py_DECREF(h);
        goto fail;
    }
    return;
fail:
    /* Without a scheduled callback, at least release the handle now. */
    PyErr_WriteUnraisable((PyObject *)t);
    close_handle(t);
}

static PyObject *udp_close(PyLoopUDPObject *t, PyObject *unused)
{
    (void)unused;
    if (t->closing)
        Py_RETURN_NONE;
    t->closing = 1;
    update_receiving(t);
    /* Like asyncio, queued datagrams are still sent; connection_lost follows the last. */
    if (t->write_buffer_size == 0)
        schedule_connection_lost(t, NULL);
    Py_RETURN_NONE;
}

/* asyncio's _force_close(exc): queued datagrams are dropped. libuv cannot cancel one send
 * request, so the handle closes now (its requests end with UV_ECANCELED); the socket object
 * and connection_lost follow from the ready queue. */
static void force_close(PyLoopUDPObject *t, PyObject *exc)
{
    if (t->lost_scheduled)
        return;
    schedule_connection_lost(t, exc);
    if (t->write_buffer_size > 0)
        close_handle(t);
}

static PyObject *udp_abort(PyLoopUDPObject *t, PyObject *unused)
{
    (void)unused;
    force_close(t, NULL);
    Py_RETURN_NONE;
}

static PyObject *udp_force_close(PyLoopUDPObject *t, PyObject *exc)
{
    force_close(t, exc == Py_None ? NULL : exc);
    Py_RETURN_NONE;
}

static PyObject *udp_is_closing(PyLoopUDPObject *t, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(t->closing);
}

/* ---- reading control (asyncio's _SelectorTransport) ---- */

static PyObject *udp_is_reading(PyLoopUDPObject *t, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(!t->closing && !t->paused_reading);
}

static PyObject *udp_pause_reading(PyLoopUDPObject *t, PyObject *unused)
{
    (void)unused;
    if (t->closing || t->paused_reading)
        Py_RETURN_NONE;
    t->paused_reading = 1;
    update_receiving(t);
    Py_RETURN_NONE;
}

static PyObject *udp_resume_reading(PyLoopUDPObject *t, PyObject *unused)
{
    (void)unused;
    if (t->closing || !t->paused_reading)
        Py_RETURN_NONE;
    t->paused_reading = 0;
    update_receiving(t);
    Py_RETURN_NONE;
}

/* ---- limits and introspection ---- */

static PyObject *udp_set_write_buffer_limits(PyLoopUDPObject *t, PyObject *args, PyObject *kwds)
{
    if (loop_parse_write_limits(args, kwds, DEFAULT_HIGH_WATER, &t->high_water, &t->low_water) < 0)
        return NULL;
    maybe_pause_protocol(t);
    maybe_resume_protocol(t);
    Py_RETURN_NONE;
}

static PyObject *udp_get_write_buffer_limits(PyLoopUDPObject *t, PyObject *unused)
{
    (void)unused;
    return Py_BuildValue("(nn)", (Py_ssize_t)t->low_water, (Py_ssize_t)t->high_water);
}

static PyObject *udp_get_write_buffer_size(PyLoopUDPObject *t, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(t->write_buffer_size);
}

static PyObject *udp_get_protocol(PyLoopUDPObject *t, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(t->protocol ? t->protocol : Py_None);
}

static PyObject *udp_set_protocol(PyLoopUDPObject *t, PyObject *protocol)
{
    Py_INCREF(protocol);
    Py_XSETREF(t->protocol, protocol);
    Py_RETURN_NONE;
}

static PyObject *udp_set_context(PyLoopUDPObject *t, PyObject *ctx)
{
    if (loop_context_set(&t->context, ctx) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* _start(waiter=None): connection_made(), then receiving starts; waiter gets None unless it
 * was cancelled. Scheduled by pyloop with call_soon, like asyncio's three callbacks. */
static PyObject *udp_start(PyLoopUDPObject *t, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *waiter = nargs > 0 ? args[0] : Py_None;
    PyObject *res, *exc = NULL;

    /* asyncio runs connection_made, the reader registration and the waiter as three
     * callbacks: an exception from connection_made is reported, the other two still run. */
    if (t->protocol != NULL) {
        res = PyObject_CallMethodOneArg(t->protocol, str_connection_made, (PyObject *)t);
        if (res == NULL)
            exc = loop_fetch_exception();
        Py_XDECREF(res);
    }
    t->started = 1;
    update_receiving(t);
    if (waiter != Py_None) {
        res = PyObject_CallMethod(waiter, "cancelled", NULL);
        if (res == Py_False) {
            Py_DECREF(res);
            res = PyObject_CallMethod(waiter, "set_result", "O", Py_None);
        }
        if (res == NULL) {
            Py_XDECREF(exc);
            return NULL;
        }
        Py_DECREF(res);
    }
    if (exc != NULL) {
        PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *udp_get_protocol_paused(PyLoopUDPObject *t, void *closure)
{
    (void)closure;
    return PyBool_FromLong(t->protocol_paused);
}

static PyObject *udp_get_loop(PyLoopUDPObject *t, void *closure)
{
    (void)closure;
    return Py_NewRef((PyObject *)t->loop);
}

static PyObject *udp_get_address(PyLoopUDPObject *t, void *closure)
{
    (void)closure;
    return Py_NewRef(t->address ? t->address : Py_None);
}

static PyObject *udp_repr(PyLoopUDPObject *t)
{
    uv_os_fd_t fd = -1;

    if (t->handle_open)
        uv_fileno((uv_handle_t *)&t->udp, &fd);
    return PyUnicode_FromFormat("<%s fd=%d %s>", Py_TYPE(t)->tp_name, (int)fd,
                                t->closing ? "closing" : "open");
}

/* ---- type ---- */

static int udp_traverse(PyLoopUDPObject *t, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(t)); /* instances of heap types own a reference to their type */
    Py_VISIT(t->loop);
    Py_VISIT(t->protocol);
    Py_VISIT(t->extra);
    Py_VISIT(t->sock);
    Py_VISIT(t->address);
    Py_VISIT(t->dict);
    Py_VISIT(t->context);
    for (int i = 0; i < ADDR_CACHE_SIZE; i++)
        Py_VISIT(t->cache[i].addr);
    return 0;
}

static int udp_clear(PyLoopUDPObject *t)
{
    Py_CLEAR(t->protocol);
    Py_CLEAR(t->extra);
    Py_CLEAR(t->sock);
    Py_CLEAR(t->address);
    Py_CLEAR(t->dict);
    Py_CLEAR(t->context);
    cache_clear(t);
    return 0;
}

static void udp_dealloc(PyLoopUDPObject *t)
{
    PyTypeObject *tp = Py_TYPE(t);

    PyObject_GC_UnTrack(t);
    if (t->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)t);
    udp_clear(t);
    Py_CLEAR(t->loop);
    tp->tp_free((PyObject *)t);
    Py_DECREF(tp); /* the reference every heap-type instance holds */
}

static PyMethodDef udp_methods[] = {
    {"sendto", (PyCFunction)(void (*)(void))udp_sendto, METH_FASTCALL | METH_KEYWORDS, NULL},
    {"close", (PyCFunction)udp_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)udp_abort, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)udp_is_closing, METH_NOARGS, NULL},
    {"_force_close", (PyCFunction)udp_force_close, METH_O, NULL},
    {"pause_reading", (PyCFunction)udp_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)udp_resume_reading, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)udp_is_reading, METH_NOARGS, NULL},
    {"set_write_buffer_limits", (PyCFunction)(void (*)(void))udp_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"get_write_buffer_limits", (PyCFunction)udp_get_write_buffer_limits, METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)udp_get_write_buffer_size, METH_NOARGS, NULL},
    {"get_protocol", (PyCFunction)udp_get_protocol, METH_NOARGS, NULL},
    {"set_protocol", (PyCFunction)udp_set_protocol, METH_O, NULL},
    {"_start", (PyCFunction)(void (*)(void))udp_start, METH_FASTCALL, NULL},
    {"_set_context", (PyCFunction)udp_set_context, METH_O, NULL},
    {"_call_connection_lost", (PyCFunction)udp_call_connection_lost, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef udp_getset[] = {
    {"_loop", (getter)udp_get_loop, NULL, NULL, NULL},
    {"_protocol_paused", (getter)udp_get_protocol_paused, NULL, NULL, NULL},
    {"_address", (getter)udp_get_address, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef udp_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(PyLoopUDPObject, weakreflist), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(PyLoopUDPObject, dict), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot udp_slots[] = {
    {Py_tp_dealloc, udp_dealloc},
    {Py_tp_repr, udp_repr},
    {Py_tp_doc, "A UDP transport on a libuv uv_udp_t."},
    {Py_tp_traverse, udp_traverse},
    {Py_tp_clear, udp_clear},
    {Py_tp_methods, udp_methods},
    {Py_tp_getset, udp_getset},
    {Py_tp_members, udp_members},
    {0, NULL},
};

static PyType_Spec udp_spec = {
    .name = "data_bridge._core.DatagramTransport",
    .basicsize = sizeof(PyLoopUDPObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = udp_slots,
};

/* loop._udp_open(fd, family, address, sock, extra) -> transport owning fd. address is the
 * remote_addr sendto() checks against (None when not given); sock is closed with the
 * transport; extra becomes get_extra_info()'s dict. */
PyObject *loop_udp_open(PyLoopObject *self, PyObject *args)
{
    PyLoopUDPObject *t;
    PyObject *address, *sock, *extra;
    struct sockaddr_storage ss;
    int fd, family, rc, len;

    if (!PyArg_ParseTuple(args, "iiOOO!:_udp_open", &fd, &family, &address, &sock, &PyDict_Type,
                          &extra))
        return NULL;
    if (family != AF_INET && family != AF_INET6) {
        PyErr_SetString(PyExc_ValueError, "_udp_open: AF_INET or AF_INET6 expected");
        return NULL;
    }
    if (loop_check_open(self) < 0)
        return NULL;
    /* tp_alloc zeroes the object and starts GC tracking. */
    t = (PyLoopUDPObject *)udp_type->tp_alloc(udp_type, 0);
    if (t == NULL)
        return NULL;
    Py_INCREF(self);
    t->loop = self;
    t->family = family;
    t->high_water = DEFAULT_HIGH_WATER;
    t->low_water = DEFAULT_HIGH_WATER / 4;
    rc = uv_udp_init(&self->nat->uvl, &t->udp);
    if (rc < 0) {
        set_uv_error(rc);
        Py_DECREF(t);
        return NULL;
    }
    t->udp.data = t;
    t->handle_open = 1;
    loop_open_link_add(self, &t->link, udp_abandon);
    Py_INCREF(t); /* held by the libuv handle; released in on_udp_close */
    rc = uv_udp_open(&t->udp, fd);
    if (rc < 0) {
        set_uv_error(rc);
        close_handle(t);
        Py_DECREF(t);
        return NULL;
    }
    /* uv_udp_open marks an already connected socket as such; sends then go without an
     * address (asyncio uses send() when the socket has a peer name). */
    len = sizeof(ss);
    t->connected = uv_udp_getpeername(&t->udp, (struct sockaddr *)&ss, &len) == 0;
    if (address != Py_None)
        t->address = Py_NewRef(address);
    t->sock = Py_NewRef(sock);
    t->extra = Py_NewRef(extra);
    return (PyObject *)t;
}

int loop_udp_init(PyObject *module)
{
    PyObject *asyncio, *log, *bases = NULL;
    int rc = -1;

    str_datagram_received = PyUnicode_InternFromString("datagram_received");
    str_error_received = PyUnicode_InternFromString("error_received");
    str_connection_lost = PyUnicode_InternFromString("connection_lost");
    str_connection_made = PyUnicode_InternFromString("connection_made");
    str_pause_writing = PyUnicode_InternFromString("pause_writing");
    str_resume_writing = PyUnicode_InternFromString("resume_writing");
    if (!str_datagram_received || !str_error_received || !str_connection_lost ||
        !str_connection_made || !str_pause_writing || !str_resume_writing)
        return -1;
    log = PyImport_ImportModule("asyncio.log");
    if (log == NULL)
        return -1;
    asyncio_logger = PyObject_GetAttrString(log, "logger");
    Py_DECREF(log);
    if (asyncio_logger == NULL)
        return -1;
    asyncio = PyImport_ImportModule("asyncio");
    if (asyncio == NULL)
        return -1;
    /* asyncio's _SelectorDatagramTransport is an asyncio.Transport (through
     * _SelectorTransport) as well as, from 3.13 on, a DatagramTransport; code and CPython's
     * own tests check both, so the native type derives from both. */
    bases = Py_BuildValue("(NN)", PyObject_GetAttrString(asyncio, "Transport"),
                          PyObject_GetAttrString(asyncio, "DatagramTransport"));
    Py_DECREF(asyncio);
    if (bases == NULL)
        return -1;
    /* Our struct must begin with BaseTransport's instance layout (the _extra slot). */
    for (int i = 0; i < 2; i++) {
        if (((PyTypeObject *)PyTuple_GET_ITEM(bases, i))->tp_basicsize !=
            (Py_ssize_t)offsetof(PyLoopUDPObject, extra) + (Py_ssize_t)sizeof(PyObject *)) {
            PyErr_SetString(PyExc_ImportError, "unexpected asyncio transport instance layout");
            goto done;
        }
    }
    udp_type = (PyTypeObject *)PyType_FromSpecWithBases(&udp_spec, bases);
    if (udp_type == NULL)
        goto done;
    Py_INCREF(udp_type); /* the module-global reference stays for the process */
    if (PyModule_AddObject(module, "DatagramTransport", (PyObject *)udp_type) < 0) {
        Py_DECREF(udp_type);
        goto done;
    }
    rc = 0;
done:
    Py_DECREF(bases);
    return rc;
}
