/*
 * http.response.pathsend (ASGI extensions, "Path Send"): after http.response.start, the
 * application names a file by its path instead of sending its bytes; the scope announces
 * the extension, so Starlette's FileResponse uses it. The file is opened and checked here
 * (a file that cannot be opened, or is not a regular file, is answered 500 and raises in
 * the application, nothing being written yet), then handed to the server as a file body
 * (server/sendfile.c: sendfile(2) from the server's own descriptor, no Python per piece),
 * framed by the application's content-length header when it gave one (FileResponse does),
 * else by the file's size. The body holds the pending request from then on, so the call is
 * finished at once and send() completes, as a send() of body bytes completes once they are
 * queued: a client that leaves later, or a file that shrinks, closes the connection
 * without the application hearing of it.
 *
 * When the server compresses the response (its GZip policy), the file goes through the
 * streaming writer instead: pieces of PATHSEND_PIECE bytes are read on the loop thread and
 * queued until the output is over the server's write limit or PATHSEND_ROUND pieces were
 * sent; the server's notification that it drained (call_notify), or the end of a round,
 * queues the next round on the loop's ready queue rather than running it inside the
 * server's write callback. send() then completes when the whole file is queued, or when
 * the client left.
 *
 * Ownership: the server owns the descriptor of a file body; for a compressed one, the call
 * owns the descriptor and the piece buffer until pathsend_close, which every end of the
 * request runs (call_finish, call_end_stream, the call's deallocation). pump_cb (a bound
 * method of the call) is the reference the loop's Handle holds while a round is queued.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asgi/asgi_internal.h"

#define PATHSEND_PIECE 65536
/* Pieces per round: a client that takes everything at once (the socket never fills)
 * would otherwise keep the loop in one round for the whole file; after this many the
 * next round is queued behind the other connections' work. */
#define PATHSEND_ROUND 16

static PyObject *pump_method(AsgiCallObject *c, PyObject *unused);
static PyMethodDef pump_def = {"_pathsend_pump", (PyCFunction)pump_method, METH_NOARGS,
                               "Sends the next pieces of a http.response.pathsend file."};

void pathsend_close(AsgiCallObject *c)
{
    if (c->file_fd >= 0) {
        close(c->file_fd);
        c->file_fd = -1;
    }
    free(c->file_buf);
    c->file_buf = NULL;
    c->file_left = 0;
    Py_CLEAR(c->pump_cb);
}

/* Reads and queues pieces until the output is over the write limit (the drain
 * notification resumes), the file is sent (the stream ends complete), or reading or
 * writing failed (the stream is cut short: the connection closes). Leaves no exception. */
static void pump(AsgiCallObject *c)
{
    for (int round = 0; c->file_left > 0; round++) {
        if (round == PATHSEND_ROUND) {
            pathsend_resume(c);
            return;
        }
        size_t want = c->file_left < PATHSEND_PIECE ? (size_t)c->file_left : PATHSEND_PIECE;
        ssize_t n = read(c->file_fd, c->file_buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            call_log(c, NULL,
                     "http.response.pathsend: %s with %llu bytes left to send; connection "
                     "closed",
                     n < 0 ? strerror(errno) : "the file ended early",
                     (unsigned long long)c->file_left);
            call_end_stream(c, 0);
            return;
        }
        c->file_left -= (uint64_t)n;
        int r = server_conn_stream_write(c->conn, c->file_buf, (size_t)n);
        if (r == SERVER_STREAM_FULL && c->file_left > 0)
            return;
        if (r < 0) {
            if (r == SERVER_STREAM_CLOSED)
                c->disconnected = 1;
            else
                call_log(c, NULL, "http.response.pathsend: the response could not be written");
            call_end_stream(c, 0);
            return;
        }
    }
    call_end_stream(c, 1);
}

static PyObject *pump_method(AsgiCallObject *c, PyObject *unused)
{
    (void)unused;
    c->pump_queued = 0;
    if (c->file_fd >= 0 && c->conn != NULL)
        pump(c);
    Py_RETURN_NONE;
}

void pathsend_resume(AsgiCallObject *c)
{
    if (c->pump_queued || c->pump_cb == NULL)
        return;
    PyObject *r = PyObject_CallMethodOneArg(c->owner->loop, asgi_str.call_soon, c->pump_cb);
    if (r == NULL) {
        /* Cannot go on: the file is dropped and the application's send() returns; the
         * stream is cut short when its Task ends (call_done). */
        PyObject *exc = pyloop_fetch_exception();
        call_log(c, exc, "http.response.pathsend: cannot schedule the next piece");
        Py_XDECREF(exc);
        pathsend_close(c);
        PyObject *fut = c->send_waiter;
        if (fut != NULL) {
            c->send_waiter = NULL;
            asgi_resolve(fut, Py_None);
            Py_DECREF(fut);
        }
        return;
    }
    Py_DECREF(r);
    c->pump_queued = 1;
}

PyObject *asgi_send_path(AsgiCallObject *c, PyObject *message, PyObject *type)
{
    if (c->phase != ASGI_WAIT_BODY)
        return asgi_violation(c, type, "http.response.pathsend must follow http.response.start");
    PyObject *path = PyDict_GetItemWithError(message, asgi_str.path);
    if (path == NULL && PyErr_Occurred())
        return NULL;
    if (path == NULL || !PyUnicode_Check(path))
        return asgi_violation(c, type, "'path' must be a str");
    server_conn_t *conn = c->conn;
    if (conn == NULL || server_conn_closed(conn))
        return asgi_client_gone(c);
    PyObject *fs = NULL;
    if (!PyUnicode_FSConverter(path, &fs))
        return NULL;
    int fd;
    do {
        fd = open(PyBytes_AS_STRING(fs), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    Py_DECREF(fs);
    struct stat st;
    if (fd < 0)
        return asgi_violation(c, type, "cannot open %R: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return asgi_violation(c, type, "%R is not a regular file", path);
    }
    int64_t length = c->content_length >= 0 ? c->content_length : (int64_t)st.st_size;
    if (c->close)
        server_conn_set_close(conn);
    /* The server sends the file with sendfile(2) (server/sendfile.c): the body, with the
     * descriptor and the pending request, is the server's from here, so send() completes
     * now, as a send() of body bytes completes once they are queued for the socket. */
    server_file_t *f = server_file_new(fd);
    if (f == NULL || server_file_add(f, NULL, 0, 0, (uint64_t)length) < 0) {
        server_file_free(f);
        call_abort(c, 500);
        return PyErr_NoMemory();
    }
    int b = server_conn_file_begin(conn, c->status, NULL, 0, c->lines.data, c->lines.len, f);
    if (b != SERVER_FILE_DECLINED) {
        /* Sending (the file body now holds the request: server_conn_finish hands it
         * over), the head alone (HEAD, 204, 304), or out of memory (closed). */
        call_finish(c);
        if (b < 0)
            return PyErr_NoMemory();
        return asgi_ready(Py_NewRef(Py_None));
    }
    /* The server compresses this response (GZip): the file is read here and streamed
     * through the encoder. */
    fd = server_file_release(f);
    c->file_buf = malloc(PATHSEND_PIECE);
    c->pump_cb = c->file_buf ? PyCFunction_New(&pump_def, (PyObject *)c) : NULL;
    if (c->pump_cb == NULL) {
        close(fd);
        pathsend_close(c);
        call_abort(c, 500);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    b = server_conn_stream_begin(conn, c->status, NULL, 0, c->lines.data, c->lines.len, length);
    if (b <= 0) {
        /* The head alone (HEAD, 204, 304), or out of memory (the connection closed). */
        close(fd);
        call_finish(c);
        if (b < 0)
            return PyErr_NoMemory();
        return asgi_ready(Py_NewRef(Py_None));
    }
    c->phase = ASGI_STREAMING;
    c->file_fd = fd;
    c->file_left = (uint64_t)length;
    /* The pending request now belongs to the stream (see send.c: first_body). */
    server_conn_finish(conn);
    pump(c);
    if (c->phase == ASGI_DONE)
        return c->disconnected ? asgi_client_gone(c) : asgi_ready(Py_NewRef(Py_None));
    /* The rest goes out as the output drains; call_end_stream resolves this. */
    if ((c->send_waiter = call_new_future(c)) == NULL)
        return NULL;
    return asgi_waiting(c->send_waiter);
}
