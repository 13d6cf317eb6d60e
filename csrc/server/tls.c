/*
 * TLS on the server's connections (csrc/tls sessions over memory BIOs), on the same loop
 * and the same buffers as plain connections:
 *
 * - Read: libuv reads ciphertext into the server's tls_in buffer (on_alloc; shared, since
 *   libuv calls on_read right after each on_alloc and the bytes are fed to the session
 *   there), and every byte of plaintext the session can give is decrypted into the
 *   connection's rbuf, exactly where a plain read would have put it; the connection then
 *   goes on as after a plain read of that many bytes (conn_received). Draining the session
 *   completely on each read matters: plaintext left inside it would wait for the next
 *   socket event, which may never come.
 * - Streamed request bodies (body.c): while a body streams, the handler holds slices of
 *   the head, so rbuf must neither grow nor move, and holds at most the body window. Only
 *   the window's free room is decrypted into then; the rest stays in the session (its
 *   memory BIO: at most one read of ciphertext, since the socket is read only while the
 *   window has room, and the room is filled before the next read). body_deliver pulls
 *   more (conn_tls_pull) whenever a reader waits and the window emptied, so nothing waits
 *   for a socket event; and a request that finished with input left in the session (a
 *   pipelined request after the body) is drained before the next one is looked for
 *   (conn_tls_resume).
 * - Write: responses are appended to wbuf as plaintext, as for plain connections; when
 *   conn_flush is about to write, wbuf's bytes are sealed into records and wbuf is refilled
 *   with the ciphertext (conn_tls_seal), which then takes the plain path (uv_try_write, the
 *   rest to uv_write). Outside conn_flush wbuf only ever holds plaintext.
 * - Close: a connection half-closed after its last response sends close_notify first
 *   (RFC 8446 §6.1; conn_tls_close_notify), and a fatal TLS error sends the alert OpenSSL
 *   queued, if the socket takes it at once, then closes that one connection.
 *
 * Ownership: the server holds a reference to its current context; each connection's session
 * holds one too, so a context replaced by server_set_tls (certificate reload) lives on until
 * its last connection is freed. The session is freed with its connection (conn_release).
 */
#include <stdlib.h>

#include "server/server_internal.h"
#include "tls/tls.h"

/* Ciphertext read per on_read: four full records. */
#define TLS_READ_SIZE 65536
/* Room offered to the session for plaintext, as READ_MIN for plain reads. */
#define TLS_PLAIN_MIN 16384

int server_set_tls(server_t *s, tls_context_t *ctx)
{
    if (ctx != NULL && s->tls_in == NULL && (s->tls_in = malloc(TLS_READ_SIZE)) == NULL)
        return -1;
    if (ctx != NULL)
        tls_context_ref(ctx);
    tls_context_unref(s->tls);
    s->tls = ctx;
    return 0;
}

int server_conn_tls(const server_conn_t *c)
{
    return c->tls != NULL;
}

int conn_tls_start(server_conn_t *c)
{
    c->tls = tls_session_new(c->server->tls);
    return c->tls != NULL ? 0 : -1;
}

void conn_tls_alloc(server_conn_t *c, uv_buf_t *buf)
{
    buf->base = c->server->tls_in;
    buf->len = TLS_READ_SIZE;
}

/* A fatal TLS error: the alert goes out if the socket takes it now, and the connection
 * closes (only this one: the server and its other connections are not affected). */
static void conn_tls_fail(server_conn_t *c)
{
    char alert[256];
    size_t n = tls_session_take(c->tls, alert, sizeof(alert));
    if (n > 0 && !c->writing) {
        uv_buf_t b = uv_buf_init(alert, (unsigned int)n);
        (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1); /* best effort */
    }
    conn_close(c);
}

/* The end of a streamed body's window in rbuf, or 0 when no body streams. */
static size_t window_end(const server_conn_t *c)
{
    return c->body_stream && !c->body_ended ? c->pos + c->head_len + BODY_WINDOW : 0;
}

/* Decrypts the window's free room at most (the buffer was given room for it when the body
 * began: nothing is reserved, nothing moves). Returns the bytes, *r the last result
 * (TLS_WANT as well when the room ran out first). */
static size_t decrypt_bounded(server_conn_t *c, size_t end, long *r)
{
    size_t got = 0;
    *r = TLS_WANT;
    while (c->rbuf.len + got < end && c->rbuf.len + got < c->rbuf.cap) {
        size_t room = (end < c->rbuf.cap ? end : c->rbuf.cap) - c->rbuf.len - got;
        *r = tls_session_read(c->tls, c->rbuf.data + c->rbuf.len + got, room);
        if (*r <= 0)
            break;
        got += (size_t)*r;
        *r = TLS_WANT;
    }
    return got;
}

/* Decrypts everything the session has after rbuf's bytes, growing rbuf; -1 when out of
 * memory (the connection is closed). */
static long decrypt_all(server_conn_t *c, size_t *got, long *r)
{
    *got = 0;
    for (;;) {
        if ((c->rbuf.data == NULL && db_pool_lend_buf(&c->server->blocks, &c->rbuf) < 0) ||
            db_buf_reserve(&c->rbuf, *got + TLS_PLAIN_MIN) < 0) {
            conn_close(c);
            return -1;
        }
        *r = tls_session_read(c->tls, c->rbuf.data + c->rbuf.len + *got,
                              c->rbuf.cap - c->rbuf.len - *got);
        if (*r <= 0)
            return 0;
        *got += (size_t)*r;
    }
}

int conn_tls_pull(server_conn_t *c)
{
    size_t end = window_end(c);
    if (c->tls == NULL || end == 0 || c->body_error || !tls_session_has_input(c->tls))
        return 0;
    long r;
    size_t got = decrypt_bounded(c, end, &r);
    c->rbuf.len += got;
    if (got > 0)
        body_advance(c);
    if (r == TLS_WANT)
        return got > 0;
    /* close_notify or a broken session in the middle of the body: the client is gone as
     * far as this body is concerned; the connection closes after the response. */
    c->keep_alive = 0;
    if (!c->body_ended && !c->body_error)
        c->body_error = SERVER_BODY_DISCONNECTED;
    return 1;
}

/* Plaintext in the session after a request finished (see the opening comment) goes to
 * rbuf; 1 when conn_received took it over (and the connection went on from there). */
int conn_tls_resume(server_conn_t *c)
{
    size_t got;
    long r;
    if (c->tls == NULL || !tls_session_has_input(c->tls) || decrypt_all(c, &got, &r) < 0)
        return c->closing;
    if (got == 0 && r == TLS_WANT)
        return 0;
    conn_received(c, (ssize_t)got);
    if (!c->closing && r == TLS_CLOSED)
        conn_received(c, UV_EOF);
    else if (!c->closing && r != TLS_WANT)
        conn_tls_fail(c);
    return 1;
}

void conn_tls_read(server_conn_t *c, ssize_t nread, const uv_buf_t *buf)
{
    if (nread <= 0) {
        /* EOF, a socket error, or nothing read: as for a plain connection. */
        conn_received(c, nread);
        return;
    }
    if (tls_session_feed(c->tls, buf->base, (size_t)nread) < 0) {
        conn_close(c);
        return;
    }
    /* Decrypted after rbuf's bytes without advancing rbuf.len: conn_received counts them in,
     * as after a plain read into the tail on_alloc offered. rbuf may grow (and move) here as
     * in on_alloc, unless a body streams (then only into the window's room); reading runs
     * only while no request's slices pin it (conn_update_reading) or the body streams. */
    size_t got = 0;
    long r;
    size_t end = window_end(c);
    if (end != 0)
        got = decrypt_bounded(c, end, &r);
    else if (decrypt_all(c, &got, &r) < 0)
        return;
    /* The plaintext first: a request followed by close_notify or a bad record is answered
     * like one followed by EOF. */
    conn_received(c, (ssize_t)got);
    if (c->closing)
        return;
    if (r == TLS_CLOSED) {
        conn_received(c, UV_EOF);
        return;
    }
    if (r != TLS_WANT) {
        conn_tls_fail(c);
        return;
    }
    /* Handshake messages, session tickets. */
    if (tls_session_pending(c->tls) > 0) {
        conn_flush(c);
        conn_update_reading(c);
    }
}

int conn_tls_seal(server_conn_t *c)
{
    tls_session_t *t = c->tls;
    if (c->wbuf.len > 0) {
        if (tls_session_write(t, c->wbuf.data, c->wbuf.len) < 0)
            return -1;
        c->wbuf.len = 0;
    }
    size_t n = tls_session_pending(t);
    if (n == 0)
        return 0;
    /* wbuf's storage is reused for the ciphertext. */
    if (conn_wbuf_reserve(c, n) < 0)
        return -1;
    c->wbuf.len = tls_session_take(t, c->wbuf.data, n);
    return 0;
}

void conn_tls_close_notify(server_conn_t *c, uv_write_cb on_write)
{
    tls_session_shutdown(c->tls);
    size_t n = tls_session_pending(c->tls);
    /* conn_shutdown runs once everything was written: nothing is in flight. */
    if (n == 0 || c->writing)
        return;
    if ((c->inflight.data == NULL && db_pool_lend_buf(&c->server->blocks, &c->inflight) < 0) ||
        db_buf_reserve(&c->inflight, n) < 0)
        return; /* out of memory: the FIN goes without close_notify */
    c->inflight.len = tls_session_take(c->tls, c->inflight.data, n);
    uv_buf_t b = uv_buf_init(c->inflight.data, (unsigned int)c->inflight.len);
    uv_write_t *req = conn_write_req(c);
    /* libuv runs the shutdown that follows after this write (uv_shutdown waits for queued
     * writes); on_write gives inflight back. Out of memory: the FIN goes without it. */
    if (req != NULL && uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_write) == 0)
        c->writing = 1;
}
