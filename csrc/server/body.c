/*
 * Request bodies consumed as they arrive. A request whose route asks for it (the
 * dispatcher's stream_body decider, asked only for a chunked body or one larger than the
 * read window or max_body) is dispatched as soon as its head is parsed; its body is then
 * handed out piece by piece to whoever reads it (server_conn_body_read), instead of being
 * held whole in the read buffer.
 *
 * Layout: the body's bytes sit in rbuf right behind the request head (from body_start(c) =
 * pos + head_len): first body_have decoded bytes not yet handed out, then raw bytes not yet
 * decoded (chunked: none, the decoder consumes all it is given and keeps partial framing in
 * its state), then, once the body ended, the next pipelined request. A piece handed out is
 * removed by moving what follows it down, so the head stays where it is and its slices stay
 * valid while the handler runs: the buffer is given room for BODY_WINDOW bytes when the
 * request is dispatched, and while the body streams on_alloc offers only that room and
 * never grows (moves) the buffer.
 *
 * Direct reads: a reader that keeps the bytes it is given (an upload's content, which the
 * multipart collector appends to the part's buffer) may offer that buffer with the read
 * (server_conn_body_read_into). When the window holds none of the body and the body has a
 * Content-Length, on_alloc then hands libuv the reader's buffer, bounded by what is left of
 * the body (so no byte of a pipelined request lands there), and the piece is delivered
 * where it was read: the kernel's copy is the only one. Anything buffered in the window is
 * delivered from it first, and chunked framing is always decoded in the window.
 *
 * Backpressure: the connection reads while fewer than BODY_WINDOW bytes are buffered;
 * nothing is handed out unless a reader asks, so an application that does not read stops
 * the socket (uv_read_stop through conn_update_reading) and the client's sends block in
 * TCP flow control; the next read resumes it. Memory per streaming request is therefore
 * one buffer of head + BODY_WINDOW bytes, whatever the body's size.
 *
 * The end of the request: a body that was read to its end leaves the connection ready for
 * the next pipelined request (undelivered bytes of it are dropped); one that was not (the
 * handler answered without reading it all) closes the connection after the response, as
 * the client may still be sending it (uvicorn discards such a body; closing bounds what a
 * client can make the server read for nothing).
 *
 * Pace (cfg.min_body_rate): the sweep ends a body whose bytes, over the time the server
 * spent waiting for them (grace included), average under the minimum (body_sweep). Only the
 * waits count (body_pace: reading, with room in the window): a full window means the reader
 * is slow and the client is held back by flow control. Ending it is a disconnect for the
 * reader (SERVER_BODY_DISCONNECTED), after a 408 when no response started.
 */
#include <string.h>

#include "loop/loop.h"
#include "server/server_internal.h"

static size_t body_start(const server_conn_t *c)
{
    return c->pos + c->head_len;
}

void server_set_stream_body(server_t *s, server_stream_body_cb cb)
{
    s->stream_body = cb;
}

int body_wanted(server_conn_t *c, const http_request_t *h)
{
    server_t *s = c->server;
    /* Over TLS too: tls.c decrypts only into the window's room while a body streams. */
    if (s->stream_body == NULL)
        return 0;
    /* A body that fits the window is buffered whole anyway (and the binder's fast path
     * takes it); a larger one is streamed even under max_body, so that a route's own
     * larger max_body_size (which raises the server's) does not make uploads whole. */
    uint64_t whole = s->cfg.max_body < BODY_WINDOW ? s->cfg.max_body : BODY_WINDOW;
    if (!h->chunked && (h->content_length <= 0 || (uint64_t)h->content_length <= whole))
        return 0;
    return s->stream_body(s->ctx, h);
}

int body_begin(server_conn_t *c)
{
    const http_request_t *h = c->head;
    uint64_t limit = c->server->cfg.max_upload;
    if (!h->chunked && limit && (uint64_t)h->content_length > limit)
        return -1; /* the caller answers 413 */
    /* Drop what earlier requests left in front, then make room for the window: both may
     * move the buffer, which is fine before the dispatch (conn_dispatch re-slices the head
     * when rbuf.data moved). From the dispatch on, the buffer stays put until the body
     * ended (see on_alloc). */
    if (c->pos > 0) {
        db_buf_consume(&c->rbuf, c->pos);
        c->pos = 0;
        c->head_base = NULL; /* the head moved within the buffer: re-sliced at dispatch */
    }
    if (db_buf_reserve(&c->rbuf, BODY_WINDOW) < 0)
        return -2;
    c->body_stream = 1;
    c->body_ended = 0;
    c->body_error = 0;
    c->body_have = 0;
    c->body_cb = NULL;
    c->body_arg = NULL;
    c->body_dst = NULL;
    c->body_direct = 0;
    c->body_end_cb = NULL;
    c->body_end_arg = NULL;
    /* Remembered: the head goes back to its pool if the request is detached. */
    c->body_chunked = h->chunked;
    if (h->chunked)
        http_chunked_init(&c->chunked, limit ? limit : UINT64_MAX);
    else
        c->body_left = (uint64_t)h->content_length;
    /* The body's pace (min_body_rate) counts what came with the head; its waits start when
     * conn_update_reading next reads. */
    c->body_bytes = c->rbuf.len - body_start(c);
    c->body_waited = 0;
    c->body_wait_from = 0;
    body_advance(c);
    return 0;
}

void body_advance(server_conn_t *c)
{
    if (!c->body_stream || c->body_ended || c->body_error)
        return;
    size_t start = body_start(c) + c->body_have;
    size_t raw = c->rbuf.len - start;
    if (raw == 0)
        return;
    if (!c->body_chunked) {
        size_t take = raw < c->body_left ? raw : (size_t)c->body_left;
        c->body_have += take;
        c->body_left -= take;
        c->body_ended = c->body_left == 0;
        return;
    }
    size_t len = raw, leftover = 0;
    int r = http_chunked_decode(&c->chunked, c->rbuf.data + start, &len, &leftover);
    if (r < 0) {
        c->body_error = r == HTTP_E_CHUNK_TOO_LARGE ? SERVER_BODY_TOO_LARGE : SERVER_BODY_MALFORMED;
        /* The rest of the byte stream cannot be trusted (RFC 9112 §9.3). */
        c->keep_alive = 0;
        c->rbuf.len = start;
        return;
    }
    c->body_have += len;
    c->rbuf.len = start + len + (r == 1 ? leftover : 0);
    c->body_ended = r == 1;
}

/* Answers the pending read, if any, with what is there; loops because a reader may ask
 * for the next piece from inside its callback. */
static void body_deliver(server_conn_t *c)
{
    while (c->body_cb != NULL && !c->body_delivering) {
        server_body_cb cb = c->body_cb;
        void *arg = c->body_arg;
        size_t start = body_start(c);
        if (c->body_have > 0) {
            size_t n = c->body_have;
            c->body_cb = NULL;
            c->body_arg = NULL;
            c->body_dst = NULL;
            c->body_delivering = 1;
            cb(arg, SERVER_BODY_DATA, c->rbuf.data + start, n);
            c->body_delivering = 0;
            /* Handed out: what follows moves down behind the head. */
            memmove(c->rbuf.data + start, c->rbuf.data + start + n, c->rbuf.len - start - n);
            c->rbuf.len -= n;
            c->body_have = 0;
            body_advance(c); /* bytes after the window's end were not decoded yet */
            continue;
        }
        int status = c->body_error   ? c->body_error
                     : c->body_ended ? SERVER_BODY_END
                     : c->closing    ? SERVER_BODY_DISCONNECTED
                                     : 0;
        if (status == 0 && c->tls != NULL && conn_tls_pull(c))
            continue; /* more of the body was waiting in the TLS session */
        if (status == 0) {
            /* Waiting for the client: it must send the next bytes in time (RFC 9110
             * §15.5.9), not counting the time the application takes to ask. */
            c->deadline = uv_now(c->server->loop) + c->server->cfg.request_timeout;
            return;
        }
        c->body_cb = NULL;
        c->body_arg = NULL;
        c->body_dst = NULL;
        cb(arg, status, NULL, 0);
    }
    c->deadline = 0;
}

void body_alloc(server_conn_t *c, uv_buf_t *buf)
{
    size_t end = body_start(c) + BODY_WINDOW;
    buf->base = NULL;
    buf->len = 0;
    if (c->body_dst != NULL && c->body_cb != NULL && !c->body_chunked && c->body_have == 0 &&
        c->rbuf.len == body_start(c) && c->body_left > 0) {
        /* A direct read (see the opening comment): nothing of the body waits in the
         * window, and at most the rest of the body is read. */
        buf->base = c->body_dst;
        buf->len = c->body_dst_cap < c->body_left ? c->body_dst_cap : (size_t)c->body_left;
        c->body_direct = 1;
        return;
    }
    if (c->rbuf.len >= end)
        return; /* not reached: conn_update_reading stops reading with a full window */
    if (c->streaming || c->detached) {
        /* Nothing points into the buffer (the request's slices were detached): it may be
         * lent again (given back while empty) or grown. */
        if ((c->rbuf.data == NULL && db_pool_lend_buf(&c->server->blocks, &c->rbuf) < 0) ||
            db_buf_reserve(&c->rbuf, end - c->rbuf.len) < 0)
            return; /* libuv reports UV_ENOBUFS */
    }
    /* Otherwise the handler holds slices of the head: the buffer must not move, and
     * body_begin made room for the window. conn_update_reading reads only while some of
     * it is free, so this offers at least one byte. */
    if (c->rbuf.cap <= c->rbuf.len)
        return;
    buf->base = c->rbuf.data + c->rbuf.len;
    buf->len = (end < c->rbuf.cap ? end : c->rbuf.cap) - c->rbuf.len;
}

int server_conn_body_read(server_conn_t *c, server_body_cb cb, void *arg)
{
    if (!c->body_stream || c->body_cb != NULL)
        return -1;
    c->body_cb = cb;
    c->body_arg = arg;
    body_deliver(c);
    /* Reading resumes if the window had been full. */
    conn_update_reading(c);
    return 0;
}

int server_conn_body_read_into(server_conn_t *c, char *dst, size_t cap, server_body_cb cb,
                               void *arg)
{
    if (!c->body_stream || c->body_cb != NULL)
        return -1;
    c->body_dst = cap > 0 ? dst : NULL;
    c->body_dst_cap = cap;
    return server_conn_body_read(c, cb, arg);
}

void body_on_direct_read(server_conn_t *c, size_t n)
{
    /* on_alloc offered the buffer only with a read pending, and nothing ran since. */
    server_body_cb cb = c->body_cb;
    void *arg = c->body_arg;
    char *dst = c->body_dst;
    c->body_cb = NULL;
    c->body_arg = NULL;
    c->body_dst = NULL;
    c->body_left -= n;
    c->body_ended = c->body_left == 0;
    c->body_bytes += n; /* conn_received counts only what lands in rbuf */
    c->deadline = 0;
    c->body_delivering = 1;
    cb(arg, SERVER_BODY_DATA, dst, n);
    c->body_delivering = 0;
    /* A read asked for inside the callback: the end, or a wait for the client. */
    body_deliver(c);
}

int server_conn_body_streaming(const server_conn_t *c)
{
    return c->body_stream;
}

int server_conn_body_watch(server_conn_t *c, void (*on_end)(void *arg), void *arg)
{
    if (!c->body_stream || c->body_end_cb != NULL)
        return -1;
    c->body_end_cb = on_end;
    c->body_end_arg = arg;
    return 0;
}

void body_on_read(server_conn_t *c)
{
    body_advance(c);
    body_deliver(c);
}

void body_disconnected(server_conn_t *c)
{
    if (!c->body_stream || c->body_ended || c->body_error)
        return;
    c->body_error = SERVER_BODY_DISCONNECTED;
    if (c->body_cb != NULL) {
        pyloop_enter(pyloop_from_uv(c->tcp.loop));
        body_deliver(c);
    }
}

int body_finish(server_conn_t *c)
{
    if (!c->body_stream)
        return 0;
    if (c->body_cb != NULL) {
        /* The request ended under a read that was not answered. */
        server_body_cb cb = c->body_cb;
        void *arg = c->body_arg;
        c->body_cb = NULL;
        c->body_arg = NULL;
        c->body_dst = NULL;
        cb(arg, SERVER_BODY_ABORTED, NULL, 0);
    }
    if (c->body_end_cb != NULL) {
        void (*on_end)(void *) = c->body_end_cb;
        void *arg = c->body_end_arg;
        c->body_end_cb = NULL;
        c->body_end_arg = NULL;
        on_end(arg);
    }
    c->body_stream = 0;
    int whole = c->body_ended && !c->body_error;
    if (whole && c->body_have > 0) {
        /* Read to its end but for its last piece: that piece is dropped, and the next
         * pipelined request follows the head as a buffered body would leave it. */
        size_t start = body_start(c), n = c->body_have;
        memmove(c->rbuf.data + start, c->rbuf.data + start + n, c->rbuf.len - start - n);
        c->rbuf.len -= n;
    }
    c->body_have = 0;
    c->body_ended = 0;
    c->body_error = 0;
    if (whole)
        return 0;
    /* Not read to its end: the rest may still come, and is not read for nothing. */
    c->keep_alive = 0;
    return 1;
}

int body_wants_bytes(const server_conn_t *c)
{
    return c->body_stream && !c->body_ended && !c->body_error &&
           c->rbuf.len < body_start(c) + BODY_WINDOW;
}

void body_pace(server_conn_t *c)
{
    /* Only a wait for the client counts: while the window is full (the application is slow
     * to read) the socket is not read and the client is held back by TCP flow control, which
     * is not its fault; so is a response backed up past write_high_water. */
    int waiting = c->reading && body_wants_bytes(c);
    if (waiting == (c->body_wait_from != 0))
        return;
    uint64_t now = uv_now(c->server->loop);
    if (waiting) {
        c->body_wait_from = now ? now : 1; /* 0 means "not waiting" */
    } else {
        c->body_waited += now - c->body_wait_from;
        c->body_wait_from = 0;
    }
}

/* Ends a request whose body comes too slowly: the reader's pending read (and any later one)
 * gets what it gets when the client leaves, so the application unwinds as it does then
 * (ClientDisconnect, http.disconnect) and releases what it holds. */
static void body_cut(server_conn_t *c)
{
    pyloop_enter(pyloop_from_uv(c->tcp.loop)); /* the access log may call Python */
    c->deadline = 0;
    if (!c->streaming && c->file == NULL && !c->writing && c->wbuf.len == 0) {
        /* RFC 9110 §15.5.9, the answer a body read whole gets (conn_sweep). The connection
         * closes right after it: the handler still holds the request, and a response it
         * makes later must go nowhere (server_conn_closed), as after a disconnect. The
         * answer is small and the socket's send buffer empty, so uv_try_write sends it
         * whole in practice; what does not fit is dropped with the connection. */
        c->keep_alive = 0;
        c->is_head = 0;
        if (server_conn_respond_detail(c, 408, "Request body was received too slowly", NULL, 0) ==
            0)
            conn_flush(c);
    }
    /* A response already started is cut short: closing is all that tells the client. */
    body_disconnected(c);
    conn_close(c);
}

int body_sweep(server_conn_t *c, uint64_t now)
{
    const server_config_t *cfg = &c->server->cfg;
    if (cfg->min_body_rate == 0 || !c->body_stream || c->body_ended || c->body_error || c->closing)
        return 0;
    uint64_t waited = c->body_waited + (c->body_wait_from ? now - c->body_wait_from : 0);
    if (waited == 0 || waited < cfg->min_body_grace)
        return 0;
    /* As conn_body_too_slow, over the time spent waiting for the client instead of the
     * time since the head. */
    if ((double)c->body_bytes * 1000.0 >= (double)cfg->min_body_rate * (double)waited)
        return 0;
    body_cut(c);
    return 1;
}
