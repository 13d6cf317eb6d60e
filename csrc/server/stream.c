/*
 * Streaming responses: the head is written at once, then each piece of the body as the
 * application produces it, framed by a declared Content-Length (RFC 9110 §8.6), as chunks
 * (RFC 9112 §7.1) or, for HTTP/1.0 clients, by closing the connection (RFC 9112 §6.3 item
 * 8).
 *
 * While a stream runs, its request stays pending: pipelined requests wait and are answered
 * after it, in order. Reading goes on only to notice a client that leaves, with at most
 * STREAM_READ_AHEAD bytes of pipelined requests taken in meanwhile (conn.c); nothing
 * points into rbuf then, so it may grow. The pending
 * request's reference (refs) is held by the stream from server_conn_stream_begin to
 * server_conn_stream_end; a connection that closes meanwhile (the peer went away, a write
 * failed) is therefore freed only after the producer ended its stream.
 *
 * Backpressure: pieces are appended to wbuf and flushed at once; when the queued output
 * (wbuf + the buffer of the write in flight) exceeds write_high_water, the producer is
 * told to wait (SERVER_STREAM_FULL) and the notify callback runs once a completed write
 * brought it below the limit, so memory stays bounded however slowly the peer reads.
 */
#include "loop/loop.h"
#include "server/server_internal.h"

static size_t queued(const server_conn_t *c)
{
    return c->wbuf.len + c->inflight.len;
}

int server_conn_stream_begin(server_conn_t *c, int status, const char *ctype, size_t ctype_len,
                             const char *extra_headers, size_t extra_len, int64_t content_length)
{
    if (c->ws != NULL)
        return 0; /* see server_conn_respond: no HTTP after an upgrade */
    int no_content = status < 200 || status == 204 || status == 304;
    int gz = 0;
    if (c->server->gzip_enc != NULL && !no_content) {
        /* GZipMiddleware compresses a streamed body whatever its size (Starlette decides on
         * the first piece, which comes with more to follow): the declared length no longer
         * holds, so the body goes out chunked. A stream that fails to get an encoder is sent
         * as it is. */
        size_t mark = c->resp_headers.len;
        gz = respond_gzip_decision(c, status, ctype, ctype_len, extra_headers, extra_len) == 1;
        if (gz && (c->stream_gz = gzip_encoder_new(c->server->gzip.level)) == NULL) {
            c->resp_headers.len = mark;
            gz = 0;
        }
        if (gz)
            content_length = -1;
    }
    char framing[40] = "";
    size_t framing_len = 0;
    int chunked = 0;
    if (content_length >= 0 && status >= 200 && status != 204) {
        framing_len = respond_content_length(framing, (uint64_t)content_length);
    } else if (!no_content) {
        if (c->http10) {
            /* HTTP/1.0 knows no chunked coding: the end of the body is the close. */
            c->keep_alive = 0;
        } else {
            chunked = 1;
            memcpy(framing, "transfer-encoding: chunked\r\n", 28);
            framing_len = 28;
        }
    }
    char *p = respond_head(c, status, ctype, ctype_len, framing, framing_len, extra_headers,
                           extra_len, 0);
    if (p == NULL)
        return -1;
    c->wbuf.len = (size_t)(p - c->wbuf.data);
    /* HEAD gets the head of the GET response only (RFC 9110 §9.3.2). */
    if (no_content || c->is_head) {
        gzip_encoder_free(c->stream_gz);
        c->stream_gz = NULL;
        return 0;
    }
    c->streaming = 1;
    c->stream_chunked = (unsigned)chunked;
    c->stream_sized = content_length >= 0;
    c->stream_left = content_length >= 0 ? (uint64_t)content_length : 0;
    return 1;
}

int server_conn_stream_full(const server_conn_t *c)
{
    return queued(c) >= c->server->cfg.write_high_water;
}

static int stream_put(server_conn_t *c, const char *data, size_t len);

int server_conn_stream_write(server_conn_t *c, const char *data, size_t len)
{
    if (!c->streaming || c->closing || c->file != NULL)
        return SERVER_STREAM_CLOSED;
    if (c->stream_gz != NULL) {
        /* Each piece compressed and flushed, so the client can decode what it has. */
        db_buf_t *out = &c->server->gzip_out;
        out->len = 0;
        if (len == 0)
            return server_conn_stream_full(c) ? SERVER_STREAM_FULL : SERVER_STREAM_OK;
        if (gzip_stream_write(c->stream_gz, data, len, 0, out) < 0) {
            conn_close(c);
            return SERVER_STREAM_NOMEM;
        }
        return stream_put(c, out->data, out->len);
    }
    return stream_put(c, data, len);
}

static int stream_put(server_conn_t *c, const char *data, size_t len)
{
    if (c->stream_sized) {
        /* Sending more than declared would desynchronise the peer's framing: refuse the
         * piece (the stream then ends short and the connection closes). */
        if (len > c->stream_left)
            return SERVER_STREAM_OVERFLOW;
        c->stream_left -= len;
    }
    if (len > 0) {
        if (conn_wbuf_reserve(c, len + 20) < 0) {
            conn_close(c);
            return SERVER_STREAM_NOMEM;
        }
        char *p = c->wbuf.data + c->wbuf.len;
        if (c->stream_chunked) {
            /* chunk = chunk-size CRLF chunk-data CRLF, the size in hex (RFC 9112 §7.1). */
            char hex[16];
            int n = 0;
            size_t v = len;
            do {
                hex[n++] = "0123456789abcdef"[v & 15];
                v >>= 4;
            } while (v);
            while (n)
                *p++ = hex[--n];
            *p++ = '\r';
            *p++ = '\n';
        }
        memcpy(p, data, len);
        p += len;
        if (c->stream_chunked) {
            *p++ = '\r';
            *p++ = '\n';
        }
        c->wbuf.len = (size_t)(p - c->wbuf.data);
        conn_flush(c);
        if (c->closing)
            return SERVER_STREAM_CLOSED;
    }
    return server_conn_stream_full(c) ? SERVER_STREAM_FULL : SERVER_STREAM_OK;
}

void server_conn_stream_notify(server_conn_t *c, void (*cb)(void *arg), void *arg)
{
    c->stream_notify = cb;
    c->stream_arg = arg;
}

int server_conn_stream_end(server_conn_t *c, int complete)
{
    int rc = 0;
    if (c->stream_gz != NULL) {
        /* The gzip member's end (its last deflate block and the CRC32/ISIZE trailer). */
        db_buf_t *out = &c->server->gzip_out;
        out->len = 0;
        if (complete && c->streaming && !c->closing &&
            (gzip_stream_write(c->stream_gz, "", 0, 1, out) < 0 ||
             stream_put(c, out->data, out->len) < 0))
            complete = 0;
        gzip_encoder_free(c->stream_gz);
        c->stream_gz = NULL;
    }
    int chunked = c->stream_chunked, sized = c->stream_sized;
    c->streaming = 0;
    c->stream_chunked = 0;
    c->stream_sized = 0;
    c->stream_notify = NULL;
    c->stream_arg = NULL;
    if (!c->closing) {
        if (complete && sized && c->stream_left > 0) {
            /* Fewer bytes than declared: the peer must not take the next response's bytes
             * for the rest of this body, so the connection closes (RFC 9112 §6.3). */
            complete = 0;
            rc = -1;
        }
        /* last-chunk, no trailers (RFC 9112 §7.1). */
        if (complete && chunked &&
            (conn_wbuf_reserve(c, 5) < 0 || db_buf_append(&c->wbuf, "0\r\n\r\n", 5) < 0))
            complete = 0;
        /* A close-delimited body ends with the close; a truncated one must too. */
        if (!complete || (!chunked && !sized))
            c->keep_alive = 0;
    }
    server_conn_finish(c);
    return rc;
}

void server_conn_stream_abandon(server_conn_t *c)
{
    gzip_encoder_free(c->stream_gz);
    c->stream_gz = NULL;
    c->streaming = 0;
    c->stream_chunked = 0;
    c->stream_sized = 0;
    c->stream_notify = NULL;
    c->stream_arg = NULL;
    c->keep_alive = 0;
}

void stream_conn_wrote(server_conn_t *c)
{
    if (c->stream_notify && !c->closing && !server_conn_stream_full(c))
        c->stream_notify(c->stream_arg);
}

void stream_conn_closed(server_conn_t *c)
{
    /* A file body has no producer to tell: it ends here, closing its descriptor. */
    file_conn_closed(c);
    if (c->stream_notify == NULL)
        return;
    pyloop_enter(pyloop_from_uv(c->tcp.loop));
    c->stream_notify(c->stream_arg);
}
