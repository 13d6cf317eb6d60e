/*
 * File bodies on a connection: the head goes out through the connection's output buffer
 * as any response's, then the body (files/body.c: ranges of one file, with the part
 * headers of a multipart/byteranges body around them) is written straight to the socket
 * with sendfile(2), from a descriptor the server owns from server_conn_file_begin until the
 * body ends, whichever way it ends. No byte of the file is held in user memory and no
 * Python runs per piece.
 *
 * Waiting for the socket. libuv's TCP handle has no sendfile and no "tell me when
 * writable" call: its stream watcher asks epoll for POLLOUT only while a uv_write is
 * queued. And one descriptor cannot be watched by two libuv handles: libuv keeps one
 * watcher per descriptor number (uv_poll_init refuses a descriptor already watched, and
 * its documentation rules out polling a socket another handle uses). So when the socket
 * is full, the body polls a duplicate of it: dup(2) gives a new descriptor number for the
 * same open file description, which epoll accepts in the same epoll set with a mask of its
 * own (epoll(7), Q&A 1: a duplicate may be added "with different events masks"; readiness
 * belongs to the file description, so POLLOUT on the duplicate is the socket's). The TCP
 * handle keeps its POLLIN on the original number, so reading goes on as for any streaming
 * response (to notice a client that leaves). The two never write at the same time: while a
 * body is sent the connection queues nothing else (the request is pending, pipelined
 * requests wait), and the body starts only once the head was written out (conn_flush calls
 * file_conn_flushed when wbuf is empty and no uv_write is in flight). The duplicate is
 * made on the first EAGAIN only, so a body the socket takes at once costs no extra system
 * call; its poll handle is closed (epoll_ctl DEL, by uv_close) before the duplicate itself,
 * in the handle's close callback.
 *
 * The connection may be closed by others at any time (the client left, a timeout): a
 * closing connection's descriptor is gone, so the poll callback then does nothing and
 * on_conn_closed (stream_conn_closed) ends the body. Fairness: one turn sends at most
 * FILE_TURN file bytes, then the body waits for POLLOUT again (level-triggered: at once
 * ready in the next loop iteration, after the other connections' events).
 *
 * A client that stops reading: each wait sets the connection's deadline send_timeout
 * ahead (nginx's send_timeout: between two writes that sent something), and the sweep
 * closes a pending connection past its deadline.
 *
 * Ownership: the body takes the pending request's reference (refs) the way a stream does
 * (c->streaming is set, so conn.c treats it as one: the request stays pending, pipelined
 * requests wait, reading goes on with a small read-ahead) and file_end gives it back through
 * server_conn_finish. The server_file_t outlives the connection's use of it only while its
 * poll handle closes; its close callback frees it and never touches the connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "files/files.h"
#include "loop/loop.h"
#include "server/server_internal.h"

/* File bytes sent per turn before the body lets the loop serve other connections. */
#define FILE_TURN (1u << 20)

struct server_file {
    /* On dup_fd, while poll_open; first member for the close callback. Its data is the
     * connection (borrowed: the body ends before its connection can be freed). */
    uv_poll_t poll;
    files_body_t *body;
    int dup_fd; /* -1 until the socket first filled */
    unsigned poll_open : 1;
};

static void on_poll_closed(uv_handle_t *h)
{
    server_file_t *f = (server_file_t *)h;
    /* Only now: libuv removed the duplicate from epoll when the handle closed. */
    close(f->dup_fd);
    free(f);
}

/* Frees the body: the file descriptor now, the rest once the poll handle closed. */
static void file_free(server_file_t *f)
{
    files_body_free(f->body);
    f->body = NULL;
    if (f->poll_open)
        uv_close((uv_handle_t *)&f->poll, on_poll_closed);
    else
        free(f);
}

/* Ends the body: complete, the request finishes and keep-alive goes on; otherwise the
 * connection closes (if it is not closed already), so the client sees a short body. */
static void file_end(server_conn_t *c, int complete)
{
    server_file_t *f = c->file;
    c->file = NULL;
    c->streaming = 0;
    file_free(f);
    if (!complete)
        conn_close(c);
    /* Releases the pending request's reference (conn_dispatch) that the body held. */
    server_conn_finish(c);
}

static void on_file_writable(uv_poll_t *h, int status, int events);

/* The socket is full (or a turn is over): wait for POLLOUT on a duplicate of it. */
static int file_wait(server_conn_t *c, int sock)
{
    server_file_t *f = c->file;
    if (!f->poll_open) {
        f->dup_fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
        if (f->dup_fd < 0)
            return -1;
        if (uv_poll_init(c->server->loop, &f->poll, f->dup_fd) < 0) {
            close(f->dup_fd);
            f->dup_fd = -1;
            return -1;
        }
        f->poll.data = c;
        f->poll_open = 1;
    }
    /* Started once and left on until the body ends (epoll is level-triggered in libuv,
     * so a socket that stays writable reports again at the next poll); a restart would
     * cost an EPOLL_CTL_DEL and an EPOLL_CTL_ADD per wait. */
    if (uv_is_active((uv_handle_t *)&f->poll))
        return 0;
    return uv_poll_start(&f->poll, UV_WRITABLE, on_file_writable) < 0 ? -1 : 0;
}

/* Sends what the socket takes now. */
static void file_pump(server_conn_t *c)
{
    server_file_t *f = c->file;
    uv_os_fd_t sock;
    if (c->closing || c->writing || c->wbuf.len > 0)
        return; /* closing: stream_conn_closed ends it; the head: conn_flush calls again */
    if (uv_fileno((uv_handle_t *)&c->tcp, &sock) < 0) {
        file_end(c, 0);
        return;
    }
    int r = files_body_send(f->body, sock, FILE_TURN);
    if (r == FILES_SEND_DONE) {
        file_end(c, 1);
    } else if (r == FILES_SEND_AGAIN || r == FILES_SEND_YIELD) {
        /* The client has send_timeout to take more; the sweep closes the connection (and
         * the close ends the body) if it has not by then. Every turn that sent something
         * comes back here and moves the deadline. */
        c->deadline = uv_now(c->server->loop) + c->server->cfg.send_timeout;
        if (file_wait(c, sock) < 0)
            file_end(c, 0);
    } else {
        /* A write error (the peer left), a read error, or a file that shrank while it was
         * sent: the declared Content-Length cannot be met, so the connection closes
         * (RFC 9112 §6.3: the client sees an incomplete message). */
        file_end(c, 0);
    }
}

static void on_file_writable(uv_poll_t *h, int status, int events)
{
    (void)events;
    server_conn_t *c = h->data;
    /* server_conn_finish may queue the next request's dispatch and conn_close reaches
     * Python through the close callback: hold the GIL as every server callback does. */
    pyloop_enter(pyloop_from_uv(h->loop));
    if (c->closing) {
        uv_poll_stop(h); /* stream_conn_closed ends the body in the close callback */
        return;
    }
    if (status < 0) {
        file_end(c, 0);
        return;
    }
    file_pump(c);
}

server_file_t *server_file_new(int fd)
{
    server_file_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        close(fd);
        return NULL;
    }
    f->dup_fd = -1;
    if ((f->body = files_body_new(fd)) == NULL) {
        free(f);
        return NULL;
    }
    return f;
}

int server_file_add(server_file_t *f, const char *text, size_t text_len, uint64_t start,
                    uint64_t end)
{
    return files_body_add(f->body, text, text_len, start, end);
}

void server_file_free(server_file_t *f)
{
    if (f != NULL)
        file_free(f);
}

int server_file_release(server_file_t *f)
{
    int fd = files_body_release(f->body);
    free(f); /* never polled: file_begin declined it */
    return fd;
}

int server_conn_file_begin(server_conn_t *c, int status, const char *ctype, size_t ctype_len,
                           const char *extra_headers, size_t extra_len, server_file_t *f)
{
    if (c->ws != NULL) {
        server_file_free(f);
        return SERVER_FILE_NO_BODY; /* see server_conn_respond: no HTTP after an upgrade */
    }
    if (c->tls != NULL)
        /* sendfile(2) would put the file's plaintext on the wire: over TLS the bytes must
         * be sealed into records (tls.c, in conn_flush), so the caller streams it through
         * wbuf instead. */
        return SERVER_FILE_DECLINED;
    int no_content = status < 200 || status == 204 || status == 304;
    uint64_t length = files_body_length(f->body);
    if (c->server->gzip_enc != NULL && !no_content && status != 206 &&
        (length >= c->server->gzip.minimum_size || length >= SERVER_GZIP_FILE_PIECE)) {
        /* GZipMiddleware compresses a file too: the body must pass through the encoder,
         * which a streamed body does (stream.c). The caller streams it instead. Starlette
         * decides on the FileResponse's first 64 KiB piece: a smaller file comes whole and
         * is left alone under minimum_size, a larger one has more to follow. */
        size_t mark = c->resp_headers.len;
        int gz = respond_gzip_decision(c, status, ctype, ctype_len, extra_headers, extra_len);
        if (gz == 1) {
            c->resp_headers.len = mark;
            return SERVER_FILE_DECLINED;
        }
    }
    char framing[40];
    size_t framing_len = 0;
    if (status >= 200 && status != 204)
        framing_len = respond_content_length(framing, files_body_length(f->body));
    char *p = respond_head(c, status, ctype, ctype_len, framing, framing_len, extra_headers,
                           extra_len, 0);
    if (p == NULL) {
        server_file_free(f);
        return -1;
    }
    c->wbuf.len = (size_t)(p - c->wbuf.data);
    /* HEAD gets the head of the GET response only (RFC 9110 §9.3.2). */
    if (no_content || c->is_head || files_body_length(f->body) == 0) {
        server_file_free(f);
        return SERVER_FILE_NO_BODY;
    }
    /* A stream as far as conn.c is concerned (see the opening comment); the body starts
     * once the head is written (file_conn_flushed). */
    c->file = f;
    c->streaming = 1;
    c->stream_sized = 0;
    c->stream_chunked = 0;
    return SERVER_FILE_SENDING;
}

void file_conn_flushed(server_conn_t *c)
{
    /* A dispatch that began the body returns before conn_dispatch made the request
     * pending; the body waits until it is (conn_dispatch's flush, or
     * server_conn_finish's for a parked handler), so that its end finishes a pending
     * request. */
    if (c->state == CONN_PENDING)
        file_pump(c);
}

void file_conn_closed(server_conn_t *c)
{
    if (c->file != NULL)
        file_end(c, 0);
}
