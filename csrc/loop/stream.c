/*
 * Stream transports (TCP on uv_tcp_t, Unix sockets on uv_pipe_t) implementing asyncio's
 * Transport / Protocol interface: write/writelines/write_eof, flow control with
 * pause_writing/resume_writing and write-buffer limits, pause_reading/resume_reading,
 * close/abort, get_extra_info; Protocol and BufferedProtocol on the read side.
 *
 * Ownership and lifetime:
 * - The transport embeds its libuv stream handle. While libuv reads for it, and from
 *   uv_close() until the close callback, the transport holds a reference to itself (libuv
 *   may call back into it until then), as asyncio's selector keeps a reading transport
 *   alive. An idle open transport (reading paused or finished, nothing being written) is
 *   owned by its users only: dropped unclosed, its finalizer warns "unclosed transport" and
 *   closes the handle, like asyncio's _SelectorTransport.__del__. Transports still open
 *   when the loop closes are closed (with the same warning) through loop->open_links.
 * - Every uv_write/uv_shutdown request holds a reference to the transport until its
 *   callback, which libuv always calls (with UV_ECANCELED when the handle closes first).
 * - The transport holds its protocol until connection_lost() has been called, then drops it
 *   to break the transport <-> protocol cycle, like asyncio.
 *
 * Writes go straight to the socket with uv_try_write when nothing is queued; only the
 * unsent tail is copied into a request for uv_write. Reads are delivered from libuv's read
 * callback (in the poll phase, after pyloop_enter) directly to the protocol, as uvloop does.
 */
#include "loop/loop_internal.h"

#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <structmember.h>

#define DEFAULT_HIGH_WATER (64 * 1024)

typedef struct {
    uv_write_t req;
    PyLoopStreamObject *t;
    size_t len;
    char data[];
} write_req_t;

static PyObject *str_data_received, *str_eof_received, *str_connection_lost;
static PyObject *str_connection_made, *str_get_buffer, *str_buffered_updated;
static PyObject *str_pause_writing, *str_resume_writing, *str_detach;
static PyObject *buffered_protocol_type; /* asyncio.BufferedProtocol */
/* The StreamTransport type: a heap type created at module init with asyncio.Transport as
 * its base, so that isinstance(transport, asyncio.Transport) holds like for asyncio's own
 * transports. Its instance layout starts with BaseTransport's one slot (_extra). */
PyTypeObject *loop_stream_type;

static void schedule_connection_lost(PyLoopStreamObject *t, PyObject *exc);
static void update_reading(PyLoopStreamObject *t);

/* ---- small helpers ---- */

static PyObject *stream_set_oserror(int uverr)
{
    errno = -uverr;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* Calls loop.call_exception_handler with a transport-flavoured context. */
static void report(PyLoopStreamObject *t, const char *message, PyObject *exc)
{
    loop_transport_report(t->loop, (PyObject *)t, t->protocol, message, exc);
}

/* Takes the current exception: reports it (unless it is an OSError, which asyncio only
 * logs in debug mode) and closes the transport at once, passing it to connection_lost. */
static void fatal_error(PyLoopStreamObject *t, const char *message)
{
    PyObject *type, *exc, *tb;

    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (exc == NULL) {
        Py_XDECREF(type);
        Py_XDECREF(tb);
        return;
    }
    if (tb != NULL)
        PyException_SetTraceback(exc, tb);
    if (PyErr_GivenExceptionMatches(exc, PyExc_SystemExit) ||
        PyErr_GivenExceptionMatches(exc, PyExc_KeyboardInterrupt)) {
        /* Cannot propagate through libuv: run_forever re-raises it after uv_run. */
        loop_defer_base_exception(t->loop, Py_NewRef(exc));
    } else if (!PyErr_GivenExceptionMatches(exc, PyExc_OSError)) {
        report(t, message, exc);
    }
    schedule_connection_lost(t, exc);
    Py_XDECREF(type);
    Py_DECREF(exc);
    Py_XDECREF(tb);
}

static void on_stream_close(uv_handle_t *handle)
{
    PyLoopStreamObject *t = handle->data;

    Py_DECREF(t); /* the reference close_handle() gave the closing handle */
}

static void close_handle(PyLoopStreamObject *t)
{
    if (t->handle_open) {
        t->handle_open = 0;
        loop_open_link_remove(t->loop, &t->link);
        /* The closing handle needs a reference until on_stream_close: reading's reference is
         * handed over (uv_close stops the read), otherwise a new one is taken. */
        if (t->reading)
            t->reading = 0;
        else
            Py_INCREF(t);
        uv_close(&t->h.handle, on_stream_close);
    }
}

/* Closes the duplicate socket behind extra['socket'] (or an owned pipe object) without
 * telling anyone: for the finalizer and loop close, where no protocol is called. */
static void close_owned_quietly(PyLoopStreamObject *t)
{
    PyObject *res;

    if (t->sock == NULL)
        return;
    res = PyObject_CallMethod(t->sock, "close", NULL);
    if (res == NULL)
        PyErr_WriteUnraisable((PyObject *)t);
    Py_XDECREF(res);
    Py_CLEAR(t->sock);
}

/* An open transport nobody closed: the ResourceWarning asyncio's transports give from
 * __del__ ("unclosed transport <...>"), then the handle is closed. Saves and restores the
 * current exception: it runs from finalizers and loop close. */
static void close_abandoned(PyLoopStreamObject *t)
{
    PyObject *type, *value, *tb;

    if (!t->handle_open)
        return;
    PyErr_Fetch(&type, &value, &tb);
    Py_INCREF(t);
    if (!t->closing &&
        PyErr_ResourceWarning((PyObject *)t, 1, "unclosed transport %R", (PyObject *)t) < 0)
        PyErr_WriteUnraisable((PyObject *)t);
    /* is_closing() stays False, as for asyncio's transports once their loop is closed. */
    close_owned_quietly(t);
    close_handle(t);
    Py_DECREF(t);
    PyErr_Restore(type, value, tb);
}

static void stream_abandon(loop_open_link_t *link)
{
    close_abandoned((PyLoopStreamObject *)((char *)link - offsetof(PyLoopStreamObject, link)));
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    PyLoopStreamObject *t = handle->data;
    PyObject *res, *entered;

    (void)suggested;
    if (!t->buffered) {
        buf->base = t->loop->nat->readbuf;
        buf->len = sizeof(t->loop->nat->readbuf);
        return;
    }
    pyloop_enter(t->loop);
    buf->base = NULL;
    buf->len = 0;
    /* On failure the exception stays set and libuv calls on_read with UV_ENOBUFS, where it
     * is handled: stopping the read from inside the alloc callback is not allowed. */
    entered = loop_context_enter(t->context);
    res = PyObject_CallMethod(t->protocol, "get_buffer", "n", (Py_ssize_t)65536);
    loop_context_exit(entered);
    if (res == NULL)
        return;
    if (PyObject_GetBuffer(res, &t->rbuf, PyBUF_WRITABLE) < 0) {
        Py_DECREF(res);
        return;
    }
    Py_DECREF(res);
    if (t->rbuf.len == 0) {
        PyBuffer_Release(&t->rbuf);
        PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
        return;
    }
    t->rbuf_held = 1;
    buf->base = t->rbuf.buf;
    buf->len = (size_t)t->rbuf.len;
}

static void release_rbuf(PyLoopStreamObject *t)
{
    if (t->rbuf_held) {
        t->rbuf_held = 0;
        PyBuffer_Release(&t->rbuf);
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    PyLoopStreamObject *t = stream->data;
    PyObject *res = NULL, *entered;

    pyloop_enter(t->loop);
    Py_INCREF(t); /* protocol callbacks may close the transport; released below */
    entered = loop_context_enter(t->context);
    if (t->write_only && nread != 0) {
        /* A write pipe is read only to learn that the reader went away (asyncio's
         * _UnixWritePipeTransport does the same): close, with BrokenPipeError if data was
         * still queued. */
        release_rbuf(t);
        if (t->write_buffer_size > 0) {
            PyErr_SetNone(PyExc_BrokenPipeError);
            fatal_error(t, "Fatal error on pipe transport");
        } else {
            schedule_connection_lost(t, NULL);
        }
    } else if (nread > 0) {
        if (t->buffered) {
            release_rbuf(t);
            res = PyObject_CallMethod(t->protocol, "buffer_updated", "n", (Py_ssize_t)nread);
        } else {
            PyObject *data = PyBytes_FromStringAndSize(buf->base, nread);
            if (data != NULL) {
                res = PyObject_CallMethodOneArg(t->protocol, str_data_received, data);
                Py_DECREF(data);
            }
        }
        if (res == NULL)
            fatal_error(t, t->buffered ? "Fatal error: protocol.buffer_updated() call failed."
                                       : "Fatal error: protocol.data_received() call failed.");
        Py_XDECREF(res);
    } else if (nread == UV_EOF) {
        release_rbuf(t);
        t->eof_received = 1;
        update_reading(t); /* stops reading; this callback holds its own reference */
        res = PyObject_CallMethodNoArgs(t->protocol, str_eof_received);
        if (res == NULL) {
            fatal_error(t, "Fatal error: protocol.eof_received() call failed.");
        } else {
            int keep_open = PyObject_IsTrue(res);
            Py_DECREF(res);
            if (keep_open < 0)
                fatal_error(t, "Fatal error: protocol.eof_received() call failed.");
            else if (!keep_open)
                loop_stream_close(t);
        }
    } else if (nread < 0) {
        release_rbuf(t);
        if (nread == UV_ENOBUFS && PyErr_Occurred()) {
            fatal_error(t, "Fatal error: protocol.get_buffer() call failed.");
        } else {
            stream_set_oserror((int)nread);
            fatal_error(t, "Fatal read error on socket transport");
        }
    } else {
        release_rbuf(t); /* EAGAIN: the buffer was not used */
    }
    loop_context_exit(entered);
    Py_DECREF(t);
}

static void update_reading(PyLoopStreamObject *t)
{
    int want = t->started && t->handle_open && !t->closing && !t->paused_reading &&
               !t->eof_received && t->protocol != NULL;

    if (want && !t->reading) {
        if (uv_read_start(&t->h.stream, on_alloc, on_read) == 0) {
            t->reading = 1;
            Py_INCREF(t); /* libuv may call on_read at any time now */
        }
    } else if (!want && t->reading) {
        uv_read_stop(&t->h.stream);
        t->reading = 0;
        /* Never the last reference: every caller is a method call or a callback that holds
         * the transport. */
        Py_DECREF(t);
    }
}

/* ---- flow control ---- */

/* pause_writing runs inside write(), resume_writing once libuv has sent enough: both in
 * the transport's context, as in uvloop (asyncio's pause_writing runs in the context of
 * whoever wrote, which uvloop's tests treat as a bug). */
static void maybe_pause_protocol(PyLoopStreamObject *t)
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

static void maybe_resume_protocol(PyLoopStreamObject *t)
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

/* ---- writing ---- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    PyLoopStreamObject *t = req->data;

    (void)status;
    PyMem_RawFree(req);
    pyloop_enter(t->loop);
    Py_DECREF(t); /* pairs with the INCREF in do_shutdown */
}

static void do_shutdown(PyLoopStreamObject *t)
{
    uv_shutdown_t *req;

    if (t->eof_sent || !t->handle_open)
        return;
    t->eof_sent = 1;
    req = PyMem_RawMalloc(sizeof(*req));
    if (req == NULL) {
        PyErr_NoMemory();
        fatal_error(t, "Fatal error on transport");
        return;
    }
    req->data = t;
    Py_INCREF(t); /* held by the shutdown request; released in on_shutdown */
    if (uv_shutdown(req, &t->h.stream, on_shutdown) < 0) {
        PyMem_RawFree(req);
        Py_DECREF(t);
    }
}

/* Resolves the empty waiter (see loop_internal.h): with None once the buffer is empty, or
 * with exc when the connection is lost first. It stays set (writes still refused) until
 * _reset_empty_waiter(). */
static void resolve_empty_waiter(PyLoopStreamObject *t, PyObject *exc)
{
    PyObject *done, *res;
    int is_done;

    if (t->empty_waiter == NULL)
        return;
    done = PyObject_CallMethod(t->empty_waiter, "done", NULL);
    if (done == NULL) {
        PyErr_WriteUnraisable((PyObject *)t);
        return;
    }
    is_done = PyObject_IsTrue(done);
    Py_DECREF(done);
    if (is_done)
        return;
    if (exc != NULL)
        res = PyObject_CallMethod(t->empty_waiter, "set_exception", "O", exc);
    else
        res = PyObject_CallMethod(t->empty_waiter, "set_result", "O", Py_None);
    if (res == NULL)
        PyErr_WriteUnraisable((PyObject *)t);
    Py_XDECREF(res);
}

static void on_write(uv_write_t *req, int status)
{
    write_req_t *wr = (write_req_t *)req;
    PyLoopStreamObject *t = wr->t;

    pyloop_enter(t->loop);
    t->write_buffer_size -= wr->len;
    PyMem_RawFree(wr);
    if (status < 0) {
        if (status != UV_ECANCELED && !t->lost_scheduled) {
            stream_set_oserror(status);
            fatal_error(t, "Fatal write error on socket transport");
        }
    } else {
        maybe_resume_protocol(t);
        if (t->write_buffer_size == 0) {
            resolve_empty_waiter(t, NULL);
            if (t->closing)
                schedule_connection_lost(t, NULL);
            else if (t->eof_requested)
                do_shutdown(t);
        }
    }
    Py_DECREF(t); /* pairs with the INCREF in stream_write_bytes */
}

/* Sends data: directly when nothing is queued, the rest through a uv_write request.
 * Returns 0, or -1 with an exception (only for bad arguments / state). */
static int stream_write_bytes(PyLoopStreamObject *t, const char *data, size_t len)
{
    write_req_t *wr;
    uv_buf_t buf;
    int n = 0, rc;

    if (t->eof_requested) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot call write() after write_eof()");
        return -1;
    }
    if (t->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "unable to write; sendfile is in progress");
        return -1;
    }
    if (len == 0)
        return 0;
    /* Between close() and connection_lost() the buffered tail is still being sent, and a
     * write made meanwhile joins it: asyncio's selector transport and uvloop both accept it
     * (they check only for a lost connection). sslproto relies on that: its close_notify is
     * written by resume_writing() after it has already called close() on a paused transport,
     * and a peer that waits for close_notify would wait forever if it were dropped. */
    if (!t->handle_open || t->lost_scheduled) {
        t->writes_after_close++;
        return 0;
    }
    if (t->write_buffer_size == 0) {
        buf = uv_buf_init((char *)data, (unsigned int)(len > 0x7fffffff ? 0x7fffffff : len));
        n = uv_try_write(&t->h.stream, &buf, 1);
        if (n >= 0 && (size_t)n == len)
            return 0;
        if (n < 0) {
            if (n != UV_EAGAIN && n != UV_ENOSYS) {
                stream_set_oserror(n);
                fatal_error(t, "Fatal write error on socket transport");
                return 0;
            }
            n = 0;
        }
    }
    wr = PyMem_RawMalloc(sizeof(*wr) + (len - (size_t)n));
    if (wr == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(wr->data, data + n, len - (size_t)n);
    wr->len = len - (size_t)n;
    wr->t = t;
    buf = uv_buf_init(wr->data, (unsigned int)wr->len);
    rc = uv_write(&wr->req, &t->h.stream, &buf, 1, on_write);
    if (rc < 0) {
        PyMem_RawFree(wr);
        stream_set_oserror(rc);
        fatal_error(t, "Fatal write error on socket transport");
        return 0;
    }
    Py_INCREF(t); /* held by the write request; released in on_write */
    t->write_buffer_size += wr->len;
    maybe_pause_protocol(t);
    return 0;
}

/* A pipe transport has one direction: asyncio's read pipe is a ReadTransport and its write
 * pipe a WriteTransport, whose base classes raise NotImplementedError for the other
 * direction's methods (its write pipe derives from Transport through _FlowControlMixin,
 * so pause_reading() raises exactly that). */
static int check_direction(PyLoopStreamObject *t, int writing)
{
    if (writing ? !t->read_only : !t->write_only)
        return 0;
    PyErr_SetString(PyExc_NotImplementedError,
                    writing ? "a read pipe cannot write" : "a write pipe does not read");
    return -1;
}

static PyObject *stream_write(PyLoopStreamObject *t, PyObject *data)
{
    Py_buffer view;
    int rc;

    if (check_direction(t, 1) < 0)
        return NULL;
    if (PyBytes_CheckExact(data)) {
        if (stream_write_bytes(t, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data)) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    if (!PyObject_CheckBuffer(data)) {
        PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not '%.200s'",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    rc = stream_write_bytes(t, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *stream_writelines(PyLoopStreamObject *t, PyObject *lines)
{
    PyObject *empty, *joined;

    empty = PyBytes_FromStringAndSize(NULL, 0);
    if (empty == NULL)
        return NULL;
    joined = PyObject_CallMethod(empty, "join", "O", lines);
    Py_DECREF(empty);
    if (joined == NULL)
        return NULL;
    if (stream_write_bytes(t, PyBytes_AS_STRING(joined), (size_t)PyBytes_GET_SIZE(joined)) < 0) {
        Py_DECREF(joined);
        return NULL;
    }
    Py_DECREF(joined);
    Py_RETURN_NONE;
}

static PyObject *stream_write_eof(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    if (check_direction(t, 1) < 0)
        return NULL;
    if (t->closing || t->eof_requested)
        Py_RETURN_NONE;
    if (t->write_only) {
        /* A write pipe has no half-close: asyncio's _UnixWritePipeTransport.write_eof()
         * closes it once the buffer is flushed, so that the reader sees EOF, and the
         * protocol gets connection_lost(None). (shutdown(2) fails on a FIFO with ENOTSOCK,
         * and the pipe object we own would keep the write end open anyway.) */
        loop_stream_close(t);
        Py_RETURN_NONE;
    }
    t->eof_requested = 1;
    if (t->write_buffer_size == 0)
        do_shutdown(t);
    Py_RETURN_NONE;
}

static PyObject *stream_can_write_eof(PyLoopStreamObject *t, PyObject *unused)
{
    (void)t;
    (void)unused;
    Py_RETURN_TRUE;
}

/* ---- closing ---- */

/* Runs from the ready queue: closes the handle and tells the protocol (once). */
static PyObject *stream_call_connection_lost(PyLoopStreamObject *t, PyObject *exc)
{
    PyObject *protocol = t->protocol, *server = t->server, *res = NULL, *r2;

    close_handle(t);
    release_rbuf(t);
    if (t->empty_waiter != NULL) {
        PyObject *lost =
            PyObject_CallFunction(PyExc_ConnectionError, "s", "Connection is closed by peer");
        if (lost == NULL)
            return NULL;
        resolve_empty_waiter(t, lost);
        Py_DECREF(lost);
    }
    if (t->sock != NULL) {
        r2 = PyObject_CallMethod(t->sock, "close", NULL);
        Py_XDECREF(r2);
        if (r2 == NULL)
            PyErr_Clear();
        Py_CLEAR(t->sock);
    }
    t->protocol = NULL;
    t->server = NULL;
    if (protocol != NULL && t->made)
        res = PyObject_CallMethodOneArg(protocol, str_connection_lost, exc);
    else
        res = Py_NewRef(Py_None);
    Py_XDECREF(protocol);
    if (server != NULL && server != Py_None) {
        r2 = PyObject_CallMethodNoArgs(server, str_detach);
        if (r2 == NULL && res != NULL)
            Py_CLEAR(res);
        Py_XDECREF(r2);
    }
    Py_XDECREF(server);
    return res;
}

static void schedule_connection_lost(PyLoopStreamObject *t, PyObject *exc)
{
    PyObject *meth;
    PyLoopHandleObject *h;
    PyObject *arg = exc ? exc : Py_None;

    t->closing = 1;
    update_reading(t);
    if (t->lost_scheduled)
        return;
    t->lost_scheduled = 1;
    if (t->protocol_paused) {
        t->protocol_paused = 0;
    }
    meth = PyObject_GetAttrString((PyObject *)t, "_call_connection_lost");
    if (meth == NULL)
        goto fail;
    /* In the transport's context when it has one, as in uvloop (asyncio's call_soon takes
     * the context of whoever called close(), which uvloop's tests treat as a bug). */
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

void loop_stream_close(PyLoopStreamObject *t)
{
    if (t->closing)
        return;
    t->closing = 1;
    update_reading(t);
    if (t->write_buffer_size == 0)
        schedule_connection_lost(t, NULL);
}

static PyObject *stream_close(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    loop_stream_close(t);
    Py_RETURN_NONE;
}

static PyObject *stream_abort(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    /* Pending writes are cancelled when the handle closes (UV_ECANCELED). */
    schedule_connection_lost(t, NULL);
    close_handle(t);
    Py_RETURN_NONE;
}

/* _force_close(exc): asyncio's private transport API, used by sslproto on fatal errors:
 * drop buffered writes and report exc to connection_lost(). */
static PyObject *stream_force_close(PyLoopStreamObject *t, PyObject *exc)
{
    schedule_connection_lost(t, exc == Py_None ? NULL : exc);
    close_handle(t);
    Py_RETURN_NONE;
}

static PyObject *stream_is_closing(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(t->closing);
}

/* ---- reading control ---- */

static PyObject *stream_pause_reading(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    if (check_direction(t, 0) < 0)
        return NULL;
    if (t->closing || t->paused_reading)
        Py_RETURN_NONE;
    t->paused_reading = 1;
    update_reading(t);
    Py_RETURN_NONE;
}

static PyObject *stream_resume_reading(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    if (check_direction(t, 0) < 0)
        return NULL;
    if (t->closing || !t->paused_reading)
        Py_RETURN_NONE;
    t->paused_reading = 0;
    update_reading(t);
    Py_RETURN_NONE;
}

static PyObject *stream_is_reading(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(!t->closing && !t->paused_reading);
}

/* ---- limits and introspection ---- */

static PyObject *stream_set_write_buffer_limits(PyLoopStreamObject *t, PyObject *args,
                                                PyObject *kwds)
{
    if (loop_parse_write_limits(args, kwds, DEFAULT_HIGH_WATER, &t->high_water, &t->low_water) < 0)
        return NULL;
    maybe_pause_protocol(t);
    maybe_resume_protocol(t);
    Py_RETURN_NONE;
}

static PyObject *stream_get_write_buffer_limits(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    return Py_BuildValue("(nn)", (Py_ssize_t)t->low_water, (Py_ssize_t)t->high_water);
}

static PyObject *stream_get_write_buffer_size(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(t->write_buffer_size);
}

static PyObject *stream_get_protocol(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(t->protocol ? t->protocol : Py_None);
}

static PyObject *stream_set_protocol(PyLoopStreamObject *t, PyObject *protocol)
{
    int r = PyObject_IsInstance(protocol, buffered_protocol_type);

    if (r < 0)
        return NULL;
    if (t->rbuf_held) {
        PyErr_SetString(PyExc_RuntimeError, "cannot switch protocols while a read is pending");
        return NULL;
    }
    Py_INCREF(protocol);
    Py_XSETREF(t->protocol, protocol);
    t->buffered = r;
    Py_RETURN_NONE;
}

/* The 'socket' extra: a TransportSocket over a duplicate of the fd (closed with us). */
static PyObject *make_socket_extra(PyLoopStreamObject *t)
{
    PyObject *socket_mod = NULL, *trsock = NULL, *sock = NULL, *res = NULL;
    uv_os_fd_t fd;

    if (uv_fileno(&t->h.handle, &fd) < 0)
        return Py_NewRef(Py_None);
    socket_mod = PyImport_ImportModule("socket");
    if (socket_mod == NULL)
        goto done;
    sock = PyObject_CallMethod(socket_mod, "fromfd", "iii", (int)fd, t->family, 1 /*STREAM*/);
    if (sock == NULL)
        goto done;
    trsock = PyImport_ImportModule("asyncio.trsock");
    if (trsock == NULL)
        goto done;
    res = PyObject_CallMethod(trsock, "TransportSocket", "O", sock);
    if (res != NULL) {
        Py_XSETREF(t->sock, Py_NewRef(sock));
    }
done:
    Py_XDECREF(socket_mod);
    Py_XDECREF(trsock);
    Py_XDECREF(sock);
    return res;
}

static PyObject *stream_get_extra_info(PyLoopStreamObject *t, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "default", NULL};
    PyObject *name, *dflt = Py_None, *v;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:get_extra_info", kwlist, &name, &dflt))
        return NULL;
    if (t->extra == NULL) {
        t->extra = PyDict_New();
        if (t->extra == NULL)
            return NULL;
    }
    v = PyDict_GetItemWithError(t->extra, name);
    if (v != NULL)
        return Py_NewRef(v);
    if (PyErr_Occurred())
        return NULL;
    if (PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, "socket") == 0 &&
        t->handle_open) {
        v = make_socket_extra(t);
        if (v == NULL)
            return NULL;
        if (PyDict_SetItem(t->extra, name, v) < 0) {
            Py_DECREF(v);
            return NULL;
        }
        return v;
    }
    return Py_NewRef(dflt);
}

/* _make_empty_waiter() -> future: for loop.sendfile (asyncio's private transport API of the
 * same name). Resolved once the write buffer is empty; write() refuses until reset. */
static PyObject *stream_make_empty_waiter(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    if (t->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Empty waiter is already set");
        return NULL;
    }
    t->empty_waiter = PyObject_CallMethod((PyObject *)t->loop, "create_future", NULL);
    if (t->empty_waiter == NULL)
        return NULL;
    if (t->write_buffer_size == 0)
        resolve_empty_waiter(t, NULL);
    return Py_NewRef(t->empty_waiter);
}

static PyObject *stream_reset_empty_waiter(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    Py_CLEAR(t->empty_waiter);
    Py_RETURN_NONE;
}

/* _fileno() -> the socket's fd (still owned by the transport): loop.sendfile hands a
 * duplicate of it to os.sendfile. */
static PyObject *stream_fileno(PyLoopStreamObject *t, PyObject *unused)
{
    uv_os_fd_t fd = -1;

    (void)unused;
    if (!t->handle_open || uv_fileno(&t->h.handle, &fd) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "transport is closed");
        return NULL;
    }
    return PyLong_FromLong((long)fd);
}

/* _set_extra(name, value): used by pyloop/_streams.py to record peername/sockname. */
static PyObject *stream_set_extra(PyLoopStreamObject *t, PyObject *args)
{
    PyObject *name, *value;

    if (!PyArg_ParseTuple(args, "OO:_set_extra", &name, &value))
        return NULL;
    if (t->extra == NULL) {
        t->extra = PyDict_New();
        if (t->extra == NULL)
            return NULL;
    }
    if (PyDict_SetItem(t->extra, name, value) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* _set_owned(obj): an object closed (obj.close()) together with the transport, e.g. the
 * pipe file object behind connect_read_pipe(). */
static PyObject *stream_set_owned(PyLoopStreamObject *t, PyObject *obj)
{
    Py_INCREF(obj);
    Py_XSETREF(t->sock, obj);
    Py_RETURN_NONE;
}

/* _set_read_only(): a read pipe (write() and write_eof() raise, see check_direction). */
static PyObject *stream_set_read_only(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    t->read_only = 1;
    Py_RETURN_NONE;
}

static PyObject *stream_set_context(PyLoopStreamObject *t, PyObject *ctx)
{
    if (loop_context_set(&t->context, ctx) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* _get_context(): the context set by _set_context, or None. TLS (pyloop/_sslproto.py) runs
 * the application's callbacks that an application call triggers in it, as libuv's do. */
static PyObject *stream_get_context(PyLoopStreamObject *t, PyObject *unused)
{
    (void)unused;
    if (t->context == NULL)
        Py_RETURN_NONE;
    return Py_NewRef(t->context);
}

/* _set_write_only(watch_close): a write pipe (see on_read). Without watch_close (character
 * devices such as a pty, where reading would steal the reader's input) nothing is read. */
static PyObject *stream_set_write_only(PyLoopStreamObject *t, PyObject *watch_close)
{
    int watch = PyObject_IsTrue(watch_close);

    if (watch < 0)
        return NULL;
    t->write_only = 1;
    if (!watch)
        t->eof_received = 1; /* update_reading() never starts a read */
    update_reading(t);
    Py_RETURN_NONE;
}

/* waiter.set_result(None) unless it is done (asyncio's _set_result_unless_cancelled). */
static int wake_waiter(PyObject *waiter)
{
    PyObject *r;

    if (waiter == Py_None)
        return 0;
    r = PyObject_CallMethod(waiter, "done", NULL);
    if (r == NULL)
        return -1;
    if (r == Py_False) {
        Py_DECREF(r);
        r = PyObject_CallMethod(waiter, "set_result", "O", Py_None);
        if (r == NULL)
            return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* _start(waiter=None): connection_made(), then reading starts; waiter gets None. Scheduled
 * by pyloop/_streams.py with call_soon so that it runs after the code that created the
 * transport. */
static PyObject *stream_start(PyLoopStreamObject *t, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *waiter = nargs > 0 ? args[0] : Py_None;
    PyObject *res;

    if (t->protocol == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "transport has no protocol");
        return NULL;
    }
    t->started = 1;
    t->made = 1;
    update_reading(t);
    res = PyObject_CallMethodOneArg(t->protocol, str_connection_made, (PyObject *)t);
    if (res == NULL) {
        /* asyncio makes connection_made() and the waiter's wake-up two callbacks: one that
         * raises is reported to the loop's exception handler (this callback fails with it)
         * and create_connection() still returns the transport. */
        PyObject *type, *exc, *tb;

        PyErr_Fetch(&type, &exc, &tb);
        if (wake_waiter(waiter) < 0)
            PyErr_WriteUnraisable(waiter);
        PyErr_Restore(type, exc, tb);
        return NULL;
    }
    Py_DECREF(res);
    if (wake_waiter(waiter) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *stream_get_server(PyLoopStreamObject *t, void *closure)
{
    (void)closure;
    return Py_NewRef(t->server ? t->server : Py_None);
}

static int stream_set_server(PyLoopStreamObject *t, PyObject *value, void *closure)
{
    (void)closure;
    Py_XINCREF(value);
    Py_XSETREF(t->server, value);
    return 0;
}

static PyObject *stream_get_protocol_paused(PyLoopStreamObject *t, void *closure)
{
    (void)closure;
    return PyBool_FromLong(t->protocol_paused);
}

static PyObject *stream_get_loop(PyLoopStreamObject *t, void *closure)
{
    (void)closure;
    return Py_NewRef((PyObject *)t->loop);
}

static PyObject *stream_repr(PyLoopStreamObject *t)
{
    uv_os_fd_t fd = -1;

    if (t->handle_open)
        uv_fileno(&t->h.handle, &fd);
    return PyUnicode_FromFormat("<%s fd=%d %s>", Py_TYPE(t)->tp_name, (int)fd,
                                t->closing ? "closing" : "open");
}

/* ---- type ---- */

static int stream_traverse(PyLoopStreamObject *t, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(t)); /* instances of heap types own a reference to their type */
    Py_VISIT(t->loop);
    Py_VISIT(t->protocol);
    Py_VISIT(t->server);
    Py_VISIT(t->extra);
    Py_VISIT(t->sock);
    Py_VISIT(t->dict);
    Py_VISIT(t->empty_waiter);
    Py_VISIT(t->context);
    return 0;
}

static int stream_clear(PyLoopStreamObject *t)
{
    Py_CLEAR(t->protocol);
    Py_CLEAR(t->server);
    Py_CLEAR(t->extra);
    Py_CLEAR(t->sock);
    Py_CLEAR(t->dict);
    Py_CLEAR(t->empty_waiter);
    Py_CLEAR(t->context);
    return 0;
}

/* tp_finalize: a transport dropped while open (see the ownership notes at the top). Closing
 * the handle resurrects the object until libuv's close callback (PEP 442 allows it). */
static void stream_finalize(PyLoopStreamObject *t)
{
    close_abandoned(t);
}

static void stream_dealloc(PyLoopStreamObject *t)
{
    PyTypeObject *tp = Py_TYPE(t);

    if (PyObject_CallFinalizerFromDealloc((PyObject *)t) < 0)
        return; /* resurrected: the closing handle holds it until on_stream_close */
    PyObject_GC_UnTrack(t);
    if (t->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)t);
    release_rbuf(t);
    stream_clear(t);
    Py_CLEAR(t->loop);
    tp->tp_free((PyObject *)t);
    Py_DECREF(tp); /* the reference every heap-type instance holds */
}

static PyMethodDef stream_methods[] = {
    {"write", (PyCFunction)stream_write, METH_O, NULL},
    {"_make_empty_waiter", (PyCFunction)stream_make_empty_waiter, METH_NOARGS, NULL},
    {"_reset_empty_waiter", (PyCFunction)stream_reset_empty_waiter, METH_NOARGS, NULL},
    {"_fileno", (PyCFunction)stream_fileno, METH_NOARGS, NULL},
    {"writelines", (PyCFunction)stream_writelines, METH_O, NULL},
    {"write_eof", (PyCFunction)stream_write_eof, METH_NOARGS, NULL},
    {"can_write_eof", (PyCFunction)stream_can_write_eof, METH_NOARGS, NULL},
    {"close", (PyCFunction)stream_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)stream_abort, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)stream_is_closing, METH_NOARGS, NULL},
    {"_force_close", (PyCFunction)stream_force_close, METH_O, NULL},
    {"pause_reading", (PyCFunction)stream_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)stream_resume_reading, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)stream_is_reading, METH_NOARGS, NULL},
    {"set_write_buffer_limits", (PyCFunction)(void (*)(void))stream_set_write_buffer_limits,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"get_write_buffer_limits", (PyCFunction)stream_get_write_buffer_limits, METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)stream_get_write_buffer_size, METH_NOARGS, NULL},
    {"get_protocol", (PyCFunction)stream_get_protocol, METH_NOARGS, NULL},
    {"set_protocol", (PyCFunction)stream_set_protocol, METH_O, NULL},
    {"get_extra_info", (PyCFunction)(void (*)(void))stream_get_extra_info,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"_set_extra", (PyCFunction)stream_set_extra, METH_VARARGS, NULL},
    {"_set_owned", (PyCFunction)stream_set_owned, METH_O, NULL},
    {"_set_context", (PyCFunction)stream_set_context, METH_O, NULL},
    {"_get_context", (PyCFunction)stream_get_context, METH_NOARGS, NULL},
    {"_set_write_only", (PyCFunction)stream_set_write_only, METH_O, NULL},
    {"_set_read_only", (PyCFunction)stream_set_read_only, METH_NOARGS, NULL},
    {"_start", (PyCFunction)(void (*)(void))stream_start, METH_FASTCALL, NULL},
    {"_call_connection_lost", (PyCFunction)stream_call_connection_lost, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef stream_getset[] = {
    {"_server", (getter)stream_get_server, (setter)stream_set_server, NULL, NULL},
    {"_loop", (getter)stream_get_loop, NULL, NULL, NULL},
    {"_protocol_paused", (getter)stream_get_protocol_paused, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef stream_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(PyLoopStreamObject, weakreflist), READONLY, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(PyLoopStreamObject, dict), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot stream_slots[] = {
    {Py_tp_dealloc, stream_dealloc},
    {Py_tp_repr, stream_repr},
    {Py_tp_doc, "A TCP or Unix-socket transport on a libuv stream."},
    {Py_tp_traverse, stream_traverse},
    {Py_tp_finalize, stream_finalize},
    {Py_tp_clear, stream_clear},
    {Py_tp_methods, stream_methods},
    {Py_tp_getset, stream_getset},
    {Py_tp_members, stream_members},
    {0, NULL},
};

static PyType_Spec stream_spec = {
    .name = "data_bridge._core.StreamTransport",
    .basicsize = sizeof(PyLoopStreamObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = stream_slots,
};

/* Converts a socket address to asyncio's Python form: (host, port) for IPv4, (host, port,
 * flowinfo, scope_id) for IPv6. */
PyObject *loop_sockaddr_to_py(const struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN + 1];

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, host, sizeof(host));
        return Py_BuildValue("(si)", host, (int)ntohs(a->sin_port));
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, host, sizeof(host));
        return Py_BuildValue("(siIk)", host, (int)ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned long)a->sin6_scope_id);
    }
    return Py_NewRef(Py_None);
}

/* Records peername and sockname for an accepted connection (without creating a socket
 * object). Unix sockets get the listener's path / an empty peer name. */
int loop_stream_fill_addresses(PyLoopStreamObject *t)
{
    struct sockaddr_storage ss;
    int len;
    PyObject *v;

    if (t->extra == NULL) {
        t->extra = PyDict_New();
        if (t->extra == NULL)
            return -1;
    }
    if (t->is_pipe) {
        char path[1024];
        size_t plen = sizeof(path);
        v = uv_pipe_getsockname(&t->h.pipe, path, &plen) == 0
                ? PyUnicode_DecodeFSDefaultAndSize(path, (Py_ssize_t)plen)
                : Py_NewRef(Py_None);
        if (v == NULL || PyDict_SetItemString(t->extra, "sockname", v) < 0)
            goto fail;
        Py_DECREF(v);
        v = PyUnicode_FromString("");
        if (v == NULL || PyDict_SetItemString(t->extra, "peername", v) < 0)
            goto fail;
        Py_DECREF(v);
        return 0;
    }
    len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    v = uv_tcp_getpeername(&t->h.tcp, (struct sockaddr *)&ss, &len) == 0 ? loop_sockaddr_to_py(&ss)
                                                                         : Py_NewRef(Py_None);
    if (v == NULL || PyDict_SetItemString(t->extra, "peername", v) < 0)
        goto fail;
    Py_DECREF(v);
    len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    v = uv_tcp_getsockname(&t->h.tcp, (struct sockaddr *)&ss, &len) == 0 ? loop_sockaddr_to_py(&ss)
                                                                         : Py_NewRef(Py_None);
    if (v == NULL || PyDict_SetItemString(t->extra, "sockname", v) < 0)
        goto fail;
    Py_DECREF(v);
    return 0;
fail:
    Py_XDECREF(v);
    return -1;
}

/* Allocates a transport with an initialised (not yet connected) TCP or pipe handle. */
PyLoopStreamObject *loop_stream_new(PyLoopObject *loop, int is_pipe)
{
    PyLoopStreamObject *t;
    int rc;

    if (loop_check_open(loop) < 0)
        return NULL;
    /* tp_alloc zeroes the object and starts GC tracking. */
    t = (PyLoopStreamObject *)loop_stream_type->tp_alloc(loop_stream_type, 0);
    if (t == NULL)
        return NULL;
    Py_INCREF(loop);
    t->loop = loop;
    t->high_water = DEFAULT_HIGH_WATER;
    t->low_water = DEFAULT_HIGH_WATER / 4;
    t->is_pipe = is_pipe;
    rc = is_pipe ? uv_pipe_init(&loop->nat->uvl, &t->h.pipe, 0)
                 : uv_tcp_init(&loop->nat->uvl, &t->h.tcp);
    if (rc < 0) {
        stream_set_oserror(rc);
        Py_DECREF(t);
        return NULL;
    }
    t->h.handle.data = t;
    t->handle_open = 1;
    loop_open_link_add(loop, &t->link, stream_abandon);
    return t;
}

/* loop._stream_open(fd, is_pipe, family) -> transport owning fd. */
PyObject *loop_stream_open(PyLoopObject *self, PyObject *args)
{
    int fd, is_pipe, family, rc;
    PyLoopStreamObject *t;

    if (!PyArg_ParseTuple(args, "ipi:_stream_open", &fd, &is_pipe, &family))
        return NULL;
    t = loop_stream_new(self, is_pipe);
    if (t == NULL)
        return NULL;
    t->family = family;
    rc = is_pipe ? uv_pipe_open(&t->h.pipe, fd) : uv_tcp_open(&t->h.tcp, fd);
    if (rc < 0) {
        stream_set_oserror(rc);
        close_handle(t);
        Py_DECREF(t);
        return NULL;
    }
    if (!is_pipe)
        uv_tcp_nodelay(&t->h.tcp, 1);
    return (PyObject *)t;
}

int loop_stream_init(PyObject *module)
{
    PyObject *asyncio, *transport_type, *bases;

    str_data_received = PyUnicode_InternFromString("data_received");
    str_eof_received = PyUnicode_InternFromString("eof_received");
    str_connection_lost = PyUnicode_InternFromString("connection_lost");
    str_connection_made = PyUnicode_InternFromString("connection_made");
    str_get_buffer = PyUnicode_InternFromString("get_buffer");
    str_buffered_updated = PyUnicode_InternFromString("buffer_updated");
    str_pause_writing = PyUnicode_InternFromString("pause_writing");
    str_resume_writing = PyUnicode_InternFromString("resume_writing");
    str_detach = PyUnicode_InternFromString("_detach");
    if (!str_data_received || !str_eof_received || !str_connection_lost || !str_connection_made ||
        !str_get_buffer || !str_buffered_updated || !str_pause_writing || !str_resume_writing ||
        !str_detach)
        return -1;
    asyncio = PyImport_ImportModule("asyncio");
    if (asyncio == NULL)
        return -1;
    buffered_protocol_type = PyObject_GetAttrString(asyncio, "BufferedProtocol");
    transport_type = PyObject_GetAttrString(asyncio, "Transport");
    Py_DECREF(asyncio);
    if (buffered_protocol_type == NULL || transport_type == NULL) {
        Py_XDECREF(transport_type);
        return -1;
    }
    /* Our struct must begin with asyncio.Transport's instance layout (the _extra slot). */
    if (((PyTypeObject *)transport_type)->tp_basicsize !=
        (Py_ssize_t)offsetof(PyLoopStreamObject, extra) + (Py_ssize_t)sizeof(PyObject *)) {
        PyErr_SetString(PyExc_ImportError, "unexpected asyncio.Transport instance layout");
        Py_DECREF(transport_type);
        return -1;
    }
    bases = PyTuple_Pack(1, transport_type);
    Py_DECREF(transport_type);
    if (bases == NULL)
        return -1;
    loop_stream_type = (PyTypeObject *)PyType_FromSpecWithBases(&stream_spec, bases);
    Py_DECREF(bases);
    if (loop_stream_type == NULL)
        return -1;
    Py_INCREF(loop_stream_type); /* the module-global reference stays for the process */
    if (PyModule_AddObject(module, "StreamTransport", (PyObject *)loop_stream_type) < 0) {
        Py_DECREF(loop_stream_type);
        return -1;
    }
    return 0;
}
