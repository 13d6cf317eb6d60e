/*
 * The connection state machine: read into the connection's buffer, parse request heads
 * and bodies in place, hand complete requests to the dispatcher in order, write the
 * responses (uv_try_write first, uv_write for the rest), and close on errors, on
 * "Connection: close", on timeouts and when the server shuts down.
 *
 * Ownership: the connection is freed in the uv_close callback of its TCP handle, and only
 * when no pending request still refers to it (refs). Request slices point into rbuf, which
 * is neither compacted nor grown while a request is pending (reading is stopped then, but
 * for a streamed body, read into a window behind the head made before the dispatch: see
 * body.c).
 *
 * Memory lending: rbuf's storage, the parsed head and the output buffers are lent by the
 * server's pools (server.blocks, server.heads) for as long as they hold something. rbuf is
 * taken in on_alloc and given back once the bytes read leave nothing pending
 * (conn_give_back): no partial request, no request whose slices point into it. wbuf and
 * inflight go back as soon as their bytes are written. So an idle keep-alive connection
 * holds only its server_conn_t, as an nginx connection holds only its ngx_connection_t.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "loop/loop.h"
#include "server/server_internal.h"

/* Smallest free space offered to a read: below it, the buffer (one lent block, or more
 * while a large request arrives) grows before the next read. */
#define READ_MIN 4096
/* Bytes of pipelined requests read ahead while a response streams (reading goes on then
 * only to notice a client that leaves; see on_read). */
#define STREAM_READ_AHEAD 65536
/* While the server closes: how long an idle connection (fresh, or keep-alive between
 * requests), and one in the middle of its request, may take to deliver it (see
 * conn_shutdown_idle). */
#define CONN_DRAIN_FRESH_MS   1000
#define CONN_DRAIN_REQUEST_MS 5000

static void conn_process(server_conn_t *c);
static void on_write(uv_write_t *req, int status);
/* The client a trusted proxy header names: 1 with host and port set, 0 when none does. */
static int conn_proxy_client(server_conn_t *c, const http_request_t *head, char *host,
                             size_t hostlen, int *port);

void conn_release(server_conn_t *c)
{
    if (--c->refs > 0)
        return;
    server_t *s = c->server;
    db_pool_give_buf(&s->blocks, &c->rbuf);
    db_pool_give_buf(&s->blocks, &c->wbuf);
    db_pool_give_buf(&s->blocks, &c->inflight);
    db_buf_free(&c->resp_headers);
    db_buf_free(&c->log_line);
    if (c->head)
        db_pool_give(&s->heads, c->head);
    /* Both requests are done: libuv calls back (cancelled, at the latest) before the close
     * callback that lets the last reference go. */
    free(c->write_req);
    free(c->shutdown_req);
    free(c->addrs);
    ws_conn_free(c);
    tls_session_free(c->tls);
    free(c);
    s->released += sizeof(*c);
    s->nlive--;
    server_maybe_finish_close(s);
}

static void on_conn_closed(uv_handle_t *h)
{
    server_conn_t *c = h->data;
    server_t *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    if (s->cfg.metrics != NULL) {
        metrics_add(&conn_metrics(c)->conns_closed);
        if (c->awaiting)
            metrics_add(&conn_metrics(c)->abandoned);
    }
    /* A reader of a streamed request body learns that the rest will not come. */
    body_disconnected(c);
    /* A stream producer waiting for the output to drain learns that it never will. */
    stream_conn_closed(c);
    /* A WebSocket application waiting for a message learns that the session ended. */
    ws_conn_closed(c);
    /* Releases the reference taken by conn_accept for the handle. */
    conn_release(c);
}

void conn_close(server_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->reading = 0;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    conn_close(req->data);
}

/* Half-closes after the last response so that the peer reads it before the FIN (RFC 9112
 * §9.6: a server that closes should first close its sending side). */
static void conn_shutdown(server_conn_t *c)
{
    if (c->closing || c->shutting_down)
        return;
    c->shutting_down = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    if (c->shutdown_req == NULL && (c->shutdown_req = malloc(sizeof(*c->shutdown_req))) == NULL) {
        conn_close(c); /* out of memory: closed without the half-close */
        return;
    }
    c->shutdown_req->data = c;
    if (c->tls != NULL)
        conn_tls_close_notify(c, on_write);
    if (uv_shutdown(c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

/* Closes a connection with nothing in progress. A TLS one sends close_notify before its FIN
 * (RFC 8446 §6.1: either side closes the write direction with it), as nginx and asyncio's
 * SSL transports do; a plain one just closes. */
static void conn_close_idle(server_conn_t *c)
{
    /* A second time (the half-close did not finish by the next sweep): closed for good. */
    if (c->tls != NULL && !c->shutting_down)
        conn_shutdown(c);
    else
        conn_close(c);
}

/* Gives the read buffer and the parsed head back to the server's pools when no request
 * needs them: the head once no request is being served (while the next head is incomplete
 * it is parsed again from the bytes anyway), rbuf once it holds no byte. A pending request
 * keeps both (its slices point into them), unless it is a streaming one, whose slices were
 * detached (conn_stream_detach). */
static inline void conn_give_back(server_conn_t *c)
{
    if (c->state != CONN_HEAD && !c->streaming && !c->detached)
        return;
    if (c->head != NULL) {
        db_pool_give(&c->server->heads, c->head);
        c->head = NULL;
    }
    if (c->rbuf.len == 0) {
        c->pos = 0;
        db_pool_give_buf(&c->server->blocks, &c->rbuf);
    }
    /* Header lines for a response (CORS) are only ever added during a dispatch. */
    if (c->resp_headers.data != NULL && c->state == CONN_HEAD)
        db_buf_free(&c->resp_headers);
}

/* The request of a connection became a streaming response: the handler answered, and the
 * request's slices were detached (request_detach) when it did, so nothing points into rbuf
 * or head any more. The request's bytes are dropped now rather than when the stream ends,
 * so that pipelined bytes read meanwhile are all that rbuf holds (nothing, usually: then it
 * goes back to the pool for the whole stream). */
static void conn_stream_detach(server_conn_t *c)
{
    db_buf_consume(&c->rbuf, c->pos + c->head_len);
    c->pos = 0;
    c->head_len = 0; /* what server_conn_finish consumes when the stream ends */
    c->req.head = NULL;
    c->req.body = NULL;
    c->req.body_len = 0;
    conn_give_back(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    server_conn_t *c = h->data;
    if (c->tls != NULL) {
        conn_tls_alloc(c, buf); /* ciphertext: decrypted into rbuf by conn_tls_read */
        return;
    }
    if (c->body_stream && !c->body_ended) {
        body_alloc(c, buf);
        return;
    }
    /* Lent here and given back in on_read (conn_give_back) when the bytes leave nothing
     * pending: libuv calls on_read after every on_alloc, with nread 0 when read(2) found
     * nothing, and with an error (UV_ENOBUFS) when the buffer below is empty. */
    if ((c->rbuf.data == NULL && db_pool_lend_buf(&c->server->blocks, &c->rbuf) < 0) ||
        db_buf_reserve(&c->rbuf, READ_MIN) < 0) {
        /* libuv reports UV_ENOBUFS to on_read when the buffer is empty. */
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = c->rbuf.data + c->rbuf.len;
    buf->len = c->rbuf.cap - c->rbuf.len;
}

/* The deadline of a request whose first byte just came: its head must be here within the
 * header timeout when one is set (a slowloris client trickles its head), else the whole
 * request within the request timeout. */
static uint64_t conn_head_deadline(server_conn_t *c)
{
    const server_config_t *cfg = &c->server->cfg;
    uint64_t t = cfg->request_timeout;
    if (cfg->header_timeout > 0 && cfg->header_timeout < t)
        t = cfg->header_timeout;
    c->body_timed = 0;
    return uv_now(c->server->loop) + t;
}

/* A head is here and its body is awaited: the body gets what is left of the request
 * timeout, counted from the first byte (the head deadline was that moment plus the header
 * timeout). Once per deadline: pipelined requests behind it share the first one's. */
static void conn_body_deadline(server_conn_t *c)
{
    const server_config_t *cfg = &c->server->cfg;
    if (c->deadline == 0 || c->body_timed || cfg->header_timeout == 0 ||
        cfg->header_timeout >= cfg->request_timeout)
        return;
    c->body_timed = 1;
    c->deadline += cfg->request_timeout - cfg->header_timeout;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    server_conn_t *c = stream->data;
    pyloop_enter(pyloop_from_uv(stream->loop));
    if (c->tls != NULL)
        conn_tls_read(c, nread, buf);
    else
        conn_received(c, nread);
}

void conn_received(server_conn_t *c, ssize_t nread)
{
    uv_stream_t *stream = (uv_stream_t *)&c->tcp;
    if (c->ws != NULL) {
        ws_conn_on_read(c, nread);
        return;
    }
    if (c->body_direct) {
        /* The bytes went to the body reader's own buffer (body.c), not to rbuf. An error
         * or EAGAIN goes on below: nothing landed anywhere. */
        c->body_direct = 0;
        if (nread > 0) {
            if (c->server->cfg.metrics != NULL)
                metrics_bytes(c, 0, (size_t)nread);
            body_on_direct_read(c, (size_t)nread);
            conn_update_reading(c);
            return;
        }
    }
    if (nread < 0 && c->body_stream && !c->body_ended) {
        /* The client left (or stopped sending) in the middle of a streamed body: its reader
         * gets SERVER_BODY_DISCONNECTED now (as an ASGI server's http.disconnect). */
        body_disconnected(c);
        conn_close(c);
        return;
    }
    if (nread < 0 && (c->streaming || c->detached)) {
        /* The client left (or half-closed) while a response streams: the producer stops
         * now instead of at its next write, as an ASGI server's http.disconnect does. */
        conn_close(c);
        return;
    }
    if (nread < 0) {
        /* EOF or error: a peer that half-closes after its last request still gets the
         * responses already queued (conn_flush closes once they are written). */
        if (nread == UV_EOF && (c->writing || c->wbuf.len) && !c->closing) {
            c->close_after_write = 1;
            uv_read_stop(stream);
            c->reading = 0;
            conn_give_back(c);
            return;
        }
        conn_close(c);
        return;
    }
    if (nread == 0) {
        /* read(2) found nothing (EAGAIN): the buffer lent by on_alloc may go back. */
        conn_give_back(c);
        return;
    }
    c->rbuf.len += (size_t)nread;
    c->body_bytes += (size_t)nread; /* only looked at while body_since is set */
    if (c->server->cfg.metrics != NULL)
        metrics_bytes(c, 0, (size_t)nread);
    if (c->body_stream && !c->body_ended) {
        /* Bytes of a streamed body: decoded, handed to a pending read, and reading stops
         * once the window is full (body.c). */
        body_on_read(c);
        conn_update_reading(c);
        return;
    }
    if (c->streaming || c->detached) {
        /* Pipelined bytes: kept for after the stream (nothing points into rbuf now, the
         * request's slices were detached when its handler answered). */
        conn_update_reading(c);
        return;
    }
    if (!c->mid_request) {
        c->mid_request = 1;
        c->deadline = conn_head_deadline(c);
    }
    conn_process(c);
    conn_flush(c);
    conn_update_reading(c);
}

/* A new connection linked into the server, its handle initialised but not yet
 * connected; NULL when out of memory. */
static server_conn_t *conn_new(server_t *s)
{
    server_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    if (uv_tcp_init(s->loop, &c->tcp) < 0) {
        free(c);
        return NULL;
    }
    c->tcp.data = c;
    c->server = s;
    c->req.conn = c;
    c->refs = 1; /* the handle's reference, released in on_conn_closed */
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    s->nlive++; /* until conn_release frees it */
    if (s->cfg.metrics != NULL)
        metrics_add(&conn_metrics(c)->conns_opened); /* closed: on_conn_closed */
    return c;
}

static void conn_start(server_conn_t *c)
{
    c->deadline = uv_now(c->server->loop) + c->server->cfg.keepalive_timeout;
    conn_update_reading(c);
}

void conn_accept(server_t *s)
{
    server_conn_t *c = conn_new(s);
    if (c == NULL)
        return;
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    /* Responses are written whole; Nagle would only delay the last segment. */
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->tls != NULL && conn_tls_start(c) < 0) {
        conn_close(c);
        return;
    }
    conn_start(c);
}

int server_adopt_fd(server_t *s, int fd)
{
    if (s->closing)
        return UV_ECANCELED;
    server_conn_t *c = conn_new(s);
    if (c == NULL)
        return UV_ENOMEM;
    /* uv_tcp_open takes any connected stream socket (an AF_UNIX socketpair end too: it
     * only sets O_NONBLOCK and reads/writes with read(2)/writev(2)). On failure the fd
     * stays the caller's. */
    int r = uv_tcp_open(&c->tcp, fd);
    if (r < 0) {
        conn_close(c);
        return r;
    }
    conn_start(c);
    return 0;
}

void conn_update_reading(server_conn_t *c)
{
    size_t queued = c->wbuf.len + c->inflight.len;
    /* A streaming response keeps reading (to see the client leave) while little is
     * read ahead; other pending requests stop reading so that rbuf stays put. */
    int idle =
        c->state != CONN_PENDING ||
        ((c->streaming || c->detached) && c->rbuf.len < c->pos + c->head_len + STREAM_READ_AHEAD) ||
        (c->ws != NULL && !c->ws->paused) || body_wants_bytes(c);
    int want = !c->closing && !c->shutting_down && !c->close_after_write && idle &&
               queued < c->server->cfg.write_high_water;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
        else
            conn_close(c);
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    if (c->body_stream && c->server->cfg.min_body_rate)
        body_pace(c);
}

/* Answers a request that cannot be served and closes the connection after the response:
 * after a framing error the rest of the byte stream cannot be trusted (RFC 9112 §9.3). */
static void conn_fail(server_conn_t *c, int err)
{
    c->keep_alive = 0;
    c->is_head = 0;
    server_conn_respond_detail(c, http_error_status(err), http_error_message(err), NULL, 0);
    c->close_after_write = 1;
}

/* Marks the current request finished and prepares for the next pipelined one. */
static void conn_request_done(server_conn_t *c, size_t consumed)
{
    c->body_since = 0;
    /* A streamed body not read to its end clears keep_alive (body.c). */
    if (c->req.streamed)
        body_finish(c);
    c->req.streamed = 0;
    c->pos += consumed;
    c->state = CONN_HEAD;
    http_parser_reset(&c->parser);
    c->continue_sent = 0;
    c->detached = 0;
    c->req.head = NULL;
    c->req.body = NULL;
    c->req.body_len = 0;
    if (!c->keep_alive || c->server->closing)
        c->close_after_write = 1;
}

/* Runs the dispatcher for a complete request. Returns 1 to go on with the next request. */
static int conn_dispatch(server_conn_t *c, const char *body, size_t body_len, size_t consumed)
{
    c->body_since = 0; /* the body, if any, is complete */
    if (c->head_base != c->rbuf.data) {
        /* The buffer moved while the body arrived: re-slice the head (same bytes, same
         * result) so that every slice points into the buffer's current location. */
        http_parser_t p = {0};
        if (http_parse_request(&p, c->rbuf.data + c->pos, c->head_len, &c->server->cfg.http,
                               c->head) != (int)c->head_len) {
            conn_close(c);
            return 0;
        }
    }
    c->req.head = c->head;
    c->req.body = body;
    c->req.body_len = body_len;
    c->is_head = c->head->method == HTTP_HEAD;
    c->http10 = c->head->version_minor == 0;
    /* A streamed body already found malformed closes the connection after the response. */
    c->keep_alive = c->head->keep_alive && !c->server->closing && !c->body_error;
    c->deadline = 0;
    c->resp_headers.len = 0;
    c->accept_gzip = 0;
    c->gzip_off = 0;
    if (c->server->gzip_enc != NULL) {
        /* The first Accept-Encoding field, as Starlette's Headers.get reads it. */
        const http_header_t *ae = http_find_header(c->head, "accept-encoding", 15);
        c->accept_gzip = ae != NULL && gzip_accepted(ae->value, ae->value_len);
    }
    if (c->head->method == HTTP_CONNECT) {
        /* RFC 9110 §9.3.6: CONNECT asks for a tunnel, which an origin server does not make;
         * 501 says the method is not implemented (its target names no resource of ours, so
         * there is no 405 to give) and Allow what is. The client may start sending tunnel
         * bytes at once: the connection closes. */
        static const char allow[] = "allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n";
        c->keep_alive = 0;
        server_conn_respond_detail(c, 501, "Not Implemented", allow, sizeof(allow) - 1);
        conn_request_done(c, consumed);
        return 0;
    }
    if (c->server->cfg.health_path != NULL && health_answer(c, c->head)) {
        conn_request_done(c, consumed);
        return !c->close_after_write && !c->closing;
    }
    if (c->server->cfg.metrics != NULL) {
        if (metrics_is_scrape(c, c->head)) {
            /* Answered here, before counting, so a scrape does not count itself. */
            metrics_respond(c);
            conn_request_done(c, consumed);
            return !c->close_after_write && !c->closing;
        }
        metrics_request(c, c->head);
    }
    c->server->requests++;
    c->served = 1;
    if (c->server->cfg.access_log != NULL) {
        /* Copied now: the response of a detached request (ASGI) is written after its
         * slices went back. Only with the access log on, so the hot path pays a test. */
        http_request_t *h = c->head;
        char host[SERVER_HOST_MAX], client[SERVER_HOST_MAX + 16];
        int port = 0, n = 0, ok = 1;
        int proxied = conn_proxy_client(c, h, host, sizeof(host), &port);
        /* uvicorn's get_client_addr: "host:port" of the client (after proxy headers, no
         * brackets around IPv6), "" when there is none. The socket's peer never changes, so
         * its text stays at the front of log_line from one request to the next (log_peer)
         * and is asked of the socket once per connection, not once per request. */
        if (proxied || !c->log_peer) {
            /* 0: an IP peer; 1: a socket without one (the test client's socketpair), whose
             * "" is as lasting; an error (a reset peer) is not kept. */
            int r = proxied ? 0 : server_conn_address(c, 1, host, sizeof(host), &port);
            if (r == 0)
                n = snprintf(client, sizeof(client), "%s:%d", host, port);
            if (n < 0 || (size_t)n >= sizeof(client))
                n = 0;
            c->log_line.len = 0;
            c->log_client_len = 0;
            c->log_peer = 0;
            ok = db_buf_append(&c->log_line, client, (size_t)n) == 0;
            if (ok) {
                c->log_client_len = (size_t)n;
                c->log_peer = !proxied && r >= 0;
            }
        }
        c->log_line.len = c->log_client_len;
        if (ok && db_buf_append(&c->log_line, h->method_str, h->method_len) == 0 &&
            db_buf_append(&c->log_line, h->target, h->target_len) == 0) {
            c->log_method_len = h->method_len;
            c->log_pending = 1;
        }
    }
    size_t limit = c->server->cfg.limit_concurrency;
    if (limit && c->server->nconns >= limit) {
        /* uvicorn's --limit-concurrency: its connection count includes this one, and the
         * answer is its service_unavailable response, which closes the connection. With
         * Retry-After (RFC 9110 §10.2.3): the overload is expected to pass soon. */
        static const char retry[] = "retry-after: 1\r\n";
        c->keep_alive = 0;
        server_conn_respond(c, 503, "text/plain; charset=utf-8", 25, retry, sizeof(retry) - 1,
                            "Service Unavailable", 19);
        conn_request_done(c, consumed);
        return 0;
    }
    int r = c->server->dispatch(c->server->ctx, c, &c->req);
    /* A response that began streaming keeps its request pending until the stream ends. */
    if (r == SERVER_DISPATCH_PENDING || c->streaming) {
        c->state = CONN_PENDING;
        c->head_len = consumed; /* remembered for server_conn_finish */
        c->refs++;              /* released in server_conn_finish */
        if (r == SERVER_DISPATCH_DONE || c->detached)
            conn_stream_detach(c); /* the dispatcher detached the request's slices */
        return 0;
    }
    conn_request_done(c, consumed);
    return !c->close_after_write && !c->closing;
}

static int conn_on_head(server_conn_t *c, int n)
{
    const server_config_t *cfg = &c->server->cfg;
    http_request_t *h = c->head;
    c->head_len = (size_t)n;
    c->head_base = c->rbuf.data;
    int stream = (h->chunked || h->content_length > 0) && body_wanted(c, h);
    if (stream) {
        int r = body_begin(c);
        if (r == -2) {
            conn_close(c);
            return 0;
        }
        if (r == -1) {
            /* RFC 9110 §15.5.14; the connection closes rather than read the body. */
            c->keep_alive = 0;
            c->is_head = 0;
            server_conn_respond_detail(c, 413, "Request body exceeds the configured limit", NULL,
                                       0);
            c->close_after_write = 1;
            return 0;
        }
        c->body_len = 0;
    } else if (h->chunked) {
        http_chunked_init(&c->chunked, cfg->max_body);
        c->body_len = 0;
        c->state = CONN_BODY_CHUNKED;
    } else if (h->content_length > 0) {
        if ((uint64_t)h->content_length > cfg->max_body) {
            c->keep_alive = 0;
            c->is_head = 0;
            server_conn_respond_detail(c, 413, "Request body exceeds the configured limit", NULL,
                                       0);
            c->close_after_write = 1;
            return 0;
        }
        c->body_len = (uint64_t)h->content_length;
        c->state = CONN_BODY_LENGTH;
    } else {
        return conn_dispatch(c, NULL, 0, c->head_len);
    }
    conn_body_deadline(c);
    if (!stream) {
        /* The body's pace is judged from now (min_body_rate), counting what came with the
         * head. */
        c->body_since = uv_now(c->server->loop);
        c->body_bytes = c->rbuf.len - c->pos - c->head_len;
    }
    /* RFC 9110 §10.1.1: answer 100 (Continue) before reading a body the client holds
     * back, unless the body is already here. HTTP/1.0 clients do not know 100. */
    size_t have = c->rbuf.len - c->pos - c->head_len;
    if (h->expect_continue && h->version_minor == 1 && !c->continue_sent &&
        (stream ? !c->body_ended : c->state == CONN_BODY_CHUNKED || have < c->body_len)) {
        c->continue_sent = 1;
        if (conn_wbuf_reserve(c, 25) < 0 ||
            db_buf_append(&c->wbuf, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0) {
            conn_close(c);
            return 0;
        }
    }
    if (stream) {
        /* Dispatched now; the body is read as it arrives (body.c). */
        c->req.streamed = 1;
        return conn_dispatch(c, NULL, 0, c->head_len);
    }
    return 1;
}

static void conn_process(server_conn_t *c)
{
    const server_config_t *cfg = &c->server->cfg;
    while (!c->closing && !c->close_after_write && c->state != CONN_PENDING) {
        size_t avail = c->rbuf.len - c->pos;
        if (avail == 0 && c->state == CONN_HEAD)
            break; /* rbuf may have no storage: no pointer is formed from it */
        char *start = c->rbuf.data + c->pos;
        if (c->state == CONN_HEAD) {
            if (c->head == NULL && (c->head = db_pool_take(&c->server->heads)) == NULL) {
                conn_close(c);
                return;
            }
            int n = http_parse_request(&c->parser, start, avail, &cfg->http, c->head);
            if (n == 0)
                break;
            if (n < 0) {
                conn_fail(c, n);
                break;
            }
            if (!conn_on_head(c, n))
                break;
        } else if (c->state == CONN_BODY_LENGTH) {
            if (avail - c->head_len < c->body_len)
                break;
            if (!conn_dispatch(c, start + c->head_len, (size_t)c->body_len,
                               c->head_len + (size_t)c->body_len))
                break;
        } else {
            /* Decoded bytes are kept contiguous right after the head: the decoder writes
             * its output over the raw chunk framing it consumed. */
            char *raw = start + c->head_len + c->body_len;
            size_t len = avail - c->head_len - (size_t)c->body_len, leftover = 0;
            int r = http_chunked_decode(&c->chunked, raw, &len, &leftover);
            if (r < 0) {
                conn_fail(c, r);
                break;
            }
            c->body_len += len;
            c->rbuf.len = c->pos + c->head_len + (size_t)c->body_len + (r == 1 ? leftover : 0);
            if (r == 0)
                break;
            if (!conn_dispatch(c, start + c->head_len, (size_t)c->body_len,
                               c->head_len + (size_t)c->body_len))
                break;
        }
    }
    if (c->closing || c->state == CONN_PENDING)
        return;
    if (c->state == CONN_HEAD && c->pos > 0) {
        /* Drop consumed bytes once no request refers to them. */
        db_buf_consume(&c->rbuf, c->pos);
        c->pos = 0;
    }
    conn_give_back(c);
    if (c->state == CONN_HEAD && c->rbuf.len == c->pos) {
        c->mid_request = 0;
        c->deadline = uv_now(c->tcp.loop) + cfg->keepalive_timeout;
    } else if (!c->mid_request || c->deadline == 0) {
        /* Part of the next request is here: it must arrive whole in time. */
        c->mid_request = 1;
        c->deadline = conn_head_deadline(c);
    }
}

uv_write_t *conn_write_req(server_conn_t *c)
{
    if (c->write_req == NULL && (c->write_req = malloc(sizeof(*c->write_req))) == NULL)
        return NULL;
    c->write_req->data = c;
    return c->write_req;
}

static void on_write(uv_write_t *req, int status)
{
    server_conn_t *c = req->data;
    pyloop_enter(pyloop_from_uv(c->tcp.loop));
    c->writing = 0;
    /* Written out: the buffer goes back (the next output takes one when it comes). */
    db_pool_give_buf(&c->server->blocks, &c->inflight);
    if (status < 0) {
        conn_close(c);
        return;
    }
    conn_flush(c);
    stream_conn_wrote(c);
    conn_update_reading(c);
    if (!c->writing) {
        /* Nothing more in flight: the request goes too (conn_write_req makes the next). */
        free(c->write_req);
        c->write_req = NULL;
    }
}

void conn_flush(server_conn_t *c)
{
    if (c->closing || c->writing)
        return;
    if (c->tls != NULL && conn_tls_seal(c) < 0) {
        conn_close(c);
        return;
    }
    if (c->wbuf.len > 0) {
        if (c->server->cfg.metrics != NULL)
            metrics_bytes(c, 1, c->wbuf.len); /* all of it: now or through uv_write */
        uv_buf_t b = uv_buf_init(c->wbuf.data, (unsigned int)c->wbuf.len);
        int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (r < 0 && r != UV_EAGAIN) {
            conn_close(c);
            return;
        }
        size_t done = r > 0 ? (size_t)r : 0;
        if (done < c->wbuf.len) {
            /* The kernel buffer is full: hand the rest to uv_write (wbuf's storage becomes
             * inflight's until on_write) so that new responses queue in a new wbuf meanwhile. */
            db_pool_give_buf(&c->server->blocks, &c->inflight); /* none: on_write gave it */
            c->inflight = c->wbuf;
            db_buf_init(&c->wbuf); /* the next response takes a block when it comes */
            uv_buf_t rest =
                uv_buf_init(c->inflight.data + done, (unsigned int)(c->inflight.len - done));
            uv_write_t *req = conn_write_req(c);
            if (req == NULL || uv_write(req, (uv_stream_t *)&c->tcp, &rest, 1, on_write) < 0) {
                conn_close(c);
                return;
            }
            c->writing = 1;
            /* The first sweep past the deadline counts as progress: a deadline set from
             * uv_now() after a long synchronous handler (the loop's time is cached) may
             * already have passed when the write starts. */
            c->sweep_queued = SIZE_MAX;
            return;
        }
        db_pool_give_buf(&c->server->blocks, &c->wbuf);
    }
    if (c->file != NULL) {
        /* The head is out: a file body follows it (sendfile.c). */
        file_conn_flushed(c);
        return;
    }
    if (c->close_after_write && (c->state != CONN_PENDING || c->ws != NULL))
        conn_shutdown(c);
}

/* Goes on with a connection whose pending request finished. This runs from the loop's
 * idle phase, not from where the request finished: that is usually inside the step of the
 * asyncio Task that drove the handler, and the next pipelined handlers must not run as part
 * of another request's task (current_task, contextvars). */
static void conn_resume(server_conn_t *c)
{
    if (c->tls != NULL && conn_tls_resume(c))
        return;
    conn_process(c);
    conn_flush(c);
    conn_update_reading(c);
}

static void on_resume_idle(uv_idle_t *h)
{
    server_t *s = h->data;
    pyloop_enter(pyloop_from_uv(h->loop));
    conn_run_resumes(s);
}

void conn_run_resumes(server_t *s)
{
    server_conn_t *list = s->resume_head;
    s->resume_head = NULL;
    uv_idle_stop(&s->resume);
    while (list) {
        server_conn_t *c = list;
        list = c->resume_next;
        c->resume_next = NULL;
        c->resume_queued = 0;
        if (!c->closing && c->state != CONN_PENDING)
            conn_resume(c);
        /* Releases the reference taken when the connection was queued. */
        conn_release(c);
    }
}

void server_conn_finish(server_conn_t *c)
{
    if (c->ws != NULL) {
        /* The application of a WebSocket session returned: the connection never goes
         * back to HTTP (ws.c closes it). */
        ws_conn_finish(c);
        return;
    }
    if (c->streaming) {
        /* The handler answered with a streaming response: its head goes out now, and the
         * request (with the reference taken for it) now belongs to the stream, which
         * finishes it through server_conn_stream_end. Reading resumes to notice a client
         * that leaves. */
        conn_stream_detach(c);
        conn_flush(c);
        conn_update_reading(c);
        return;
    }
    /* Drops the reference taken in conn_dispatch for the pending request. */
    if (c->closing) {
        if (c->req.streamed)
            body_finish(c); /* answers a read still pending */
        c->req.streamed = 0;
        conn_release(c);
        return;
    }
    c->refs--;
    conn_request_done(c, c->head_len);
    /* The response goes out now; the rest of the connection's work waits for the idle
     * phase (see conn_resume). */
    conn_flush(c);
    if (c->closing || c->resume_queued)
        return;
    server_t *s = c->server;
    if (s->closing) {
        /* No more requests are served on this connection (conn_request_done marked it to
         * close after this response): nothing is dispatched, so resume right here. */
        conn_resume(c);
        return;
    }
    if (uv_idle_start(&s->resume, on_resume_idle) < 0) {
        conn_close(c);
        return;
    }
    c->refs++; /* released in conn_run_resumes */
    c->resume_queued = 1;
    c->resume_next = s->resume_head;
    s->resume_head = c;
}

void server_conn_detach(server_conn_t *c)
{
    /* conn_dispatch acts on it once the dispatcher returned (it knows the request's
     * length then). */
    c->detached = 1;
}

const server_config_t *server_conn_config(const server_conn_t *c)
{
    return &c->server->cfg;
}

const http_request_t *server_conn_head(const server_conn_t *c)
{
    return c->req.head;
}

int server_conn_closed(const server_conn_t *c)
{
    return c->closing;
}

/* Dotted decimal of an IPv4 address (inet_ntop goes through sprintf). */
static int ip4_text(const uint8_t ip[4], char *out, size_t outlen)
{
    char buf[16];
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        unsigned v = ip[i];
        if (v >= 100)
            buf[n++] = (char)('0' + v / 100);
        if (v >= 10)
            buf[n++] = (char)('0' + v / 10 % 10);
        buf[n++] = (char)('0' + v % 10);
        buf[n++] = i < 3 ? '.' : '\0';
    }
    if (n > outlen)
        return UV_ENOSPC;
    memcpy(out, buf, n);
    return 0;
}

int server_conn_address(server_conn_t *c, int remote, char *host, size_t hostlen, int *port)
{
    if (c->closing)
        return UV_ENOTCONN;
    if (c->addrs == NULL && (c->addrs = calloc(2, sizeof(*c->addrs))) == NULL)
        return UV_ENOMEM;
    struct conn_addr *a = &c->addrs[remote != 0];
    if (a->kind == 0) {
        struct sockaddr_storage addr;
        int len = (int)sizeof(addr);
        int r = remote ? uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&addr, &len)
                       : uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&addr, &len);
        if (r < 0)
            return r; /* not kept: asked again next time */
        if (addr.ss_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&addr;
            memcpy(a->ip, &in->sin_addr, 4);
            a->port = ntohs(in->sin_port);
            a->kind = 4;
        } else if (addr.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr;
            memcpy(a->ip, &in6->sin6_addr, 16);
            a->port = ntohs(in6->sin6_port);
            a->kind = 6;
        } else {
            a->kind = 1;
        }
    }
    if (a->kind == 1)
        return 1;
    *port = a->port;
    if (a->kind == 4)
        return ip4_text(a->ip, host, hostlen);
    struct sockaddr_in6 in6;
    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    memcpy(&in6.sin6_addr, a->ip, 16);
    int r = uv_ip6_name(&in6, host, hostlen);
    return r < 0 ? r : 0;
}

/* Whether the connection's peer may set proxy headers (uvicorn: the peer's host is in
 * --forwarded-allow-ips; a peer without an IP address, on a UNIX socket, only with "*"). */
static int conn_peer_trusted(server_conn_t *c)
{
    const http_trust_t *t = c->server->cfg.trust;
    char host[64];
    int port;
    int r = server_conn_address(c, 1, host, sizeof(host), &port);
    if (r == 0)
        return http_trust_has(t, host, strlen(host));
    return r == 1 && http_trust_all(t);
}

/* Whether the request carries a field of the proxy mode and the peer may set it: the
 * field first, so a direct client costs a header lookup and no system call. */
static int conn_proxied(server_conn_t *c, const http_request_t *head, const char *name,
                        size_t name_len)
{
    const server_config_t *cfg = &c->server->cfg;
    if (cfg->trust == NULL || head == NULL)
        return 0;
    if (cfg->forwarded_mode == SERVER_FORWARDED_RFC7239) {
        name = "forwarded";
        name_len = 9;
    }
    return http_find_header(head, name, name_len) != NULL && conn_peer_trusted(c);
}

static int conn_proxy_client(server_conn_t *c, const http_request_t *head, char *host,
                             size_t hostlen, int *port)
{
    const char *fh;
    size_t fl;
    int fp;
    http_forwarded_t fwd;
    if (!conn_proxied(c, head, "x-forwarded-for", 15))
        return 0;
    if (c->server->cfg.forwarded_mode == SERVER_FORWARDED_RFC7239) {
        if (!http_forwarded_rfc7239(c->server->cfg.trust, head, &fwd) || fwd.client == NULL ||
            fwd.client_len == 0)
            return 0;
        fh = fwd.client;
        fl = fwd.client_len;
        fp = fwd.client_port;
    } else if (!http_forwarded_client(c->server->cfg.trust, head, &fh, &fl, &fp)) {
        return 0;
    }
    if (fl >= hostlen)
        fl = hostlen - 1; /* SERVER_HOST_MAX bounds what a proxy's value can carry */
    memcpy(host, fh, fl);
    host[fl] = '\0';
    *port = fp;
    return 1;
}

int server_conn_client(server_conn_t *c, const http_request_t *head, char *host, size_t hostlen,
                       int *port)
{
    if (conn_proxy_client(c, head, host, hostlen, port))
        return 0;
    return server_conn_address(c, 1, host, hostlen, port);
}

const char *server_conn_forwarded_proto(server_conn_t *c, const http_request_t *head, size_t *len)
{
    if (!conn_proxied(c, head, "x-forwarded-proto", 17))
        return NULL;
    if (c->server->cfg.forwarded_mode == SERVER_FORWARDED_RFC7239) {
        http_forwarded_t fwd;
        if (!http_forwarded_rfc7239(c->server->cfg.trust, head, &fwd) || fwd.proto == NULL)
            return NULL;
        *len = strlen(fwd.proto);
        return fwd.proto; /* a static string */
    }
    return http_forwarded_proto(head, len);
}

const char *server_conn_forwarded_host(server_conn_t *c, const http_request_t *head, char *buf,
                                       size_t buflen, size_t *len)
{
    const char *h = NULL;
    size_t n = 0;
    int mode = c->server->cfg.forwarded_mode;
    if (mode == SERVER_FORWARDED_X || !conn_proxied(c, head, "x-forwarded-host", 16))
        return NULL;
    if (mode == SERVER_FORWARDED_RFC7239) {
        http_forwarded_t fwd;
        if (http_forwarded_rfc7239(c->server->cfg.trust, head, &fwd)) {
            h = fwd.host;
            n = fwd.host_len;
        }
        if (h == NULL || n >= buflen)
            return NULL;
        memcpy(buf, h, n); /* fwd's buffer ends with this function */
    } else {
        if (!http_forwarded_host(c->server->cfg.trust, head, &h, &n) || n >= buflen)
            return NULL;
        memcpy(buf, h, n);
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

db_buf_t *server_conn_scratch(server_conn_t *c)
{
    return &c->server->scratch;
}

/* Used by server_close: a busy connection closes after its response, an idle one after a
 * grace unless a request comes (answered with "connection: close"). */
void conn_shutdown_idle(server_conn_t *c)
{
    if (c->closing)
        return;
    if (c->ws != NULL) {
        ws_conn_shutdown(c);
        return;
    }
    if (c->state == CONN_PENDING || c->writing || c->wbuf.len) {
        c->keep_alive = 0;
        c->close_after_write = c->state != CONN_PENDING;
        return;
    }
    /* Accepted, but its request is not all here yet (often in flight when the listener
     * closed), or an idle keep-alive connection: a request arriving within a short grace is
     * answered with "connection: close", so that a drain loses no request already on its
     * way. Closing an idle keep-alive connection at once (RFC 9112 §9.6 allows it) races
     * with a request the client (a proxy reusing its upstream connection) sends meanwhile,
     * and a proxy does not retry a POST. */
    uint64_t grace =
        uv_now(c->server->loop) +
        (c->mid_request || c->state != CONN_HEAD ? CONN_DRAIN_REQUEST_MS : CONN_DRAIN_FRESH_MS);
    if (c->deadline == 0 || c->deadline > grace)
        c->deadline = grace;
}

/* Whether the body being read whole comes too slowly: under cfg.min_body_rate bytes a
 * second on average since its head, once the grace has passed. The client is sending (the
 * server reads a body it waits for), so the pace is the client's alone. */
static int conn_body_too_slow(const server_conn_t *c, uint64_t now)
{
    const server_config_t *cfg = &c->server->cfg;
    if (cfg->min_body_rate == 0 || c->body_since == 0 ||
        (c->state != CONN_BODY_LENGTH && c->state != CONN_BODY_CHUNKED))
        return 0;
    uint64_t elapsed = now - c->body_since;
    if (elapsed < cfg->min_body_grace)
        return 0;
    /* bytes / (elapsed / 1000) < rate, in doubles: the products of the integers could
     * overflow with a large rate and a long request timeout. */
    return (double)c->body_bytes * 1000.0 < (double)cfg->min_body_rate * (double)elapsed;
}

void conn_sweep(server_t *s, uint64_t now)
{
    server_conn_t *c = s->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (!s->sweep_late && !c->closing && !c->writing && conn_body_too_slow(c, now)) {
            /* RFC 9110 §15.5.9, as for a request not received in time. */
            c->keep_alive = 0;
            c->is_head = 0;
            c->deadline = 0;
            c->body_since = 0;
            server_conn_respond_detail(c, 408, "Request body was received too slowly", NULL, 0);
            c->close_after_write = 1;
            conn_flush(c);
            conn_update_reading(c);
            continue;
        }
        if (!s->sweep_late && body_sweep(c, now))
            continue;
        if (c->ws != NULL && !c->closing)
            ws_conn_sweep(c);
        if (c->closing || c->deadline == 0 || now < c->deadline)
            continue;
        if (c->writing) {
            /* A response is still being written: the keep-alive (or request) time counts
             * from when the peer last read some of it, as asyncio's transport.close()
             * flushes before closing, so that a slow reader of a large response (a TLS
             * client decrypting it, a slow link) is not cut off; a peer that read nothing
             * for a whole timeout is. */
            size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
            if (queued < c->sweep_queued) {
                c->sweep_queued = queued;
                c->deadline =
                    now + (c->mid_request ? s->cfg.request_timeout : s->cfg.keepalive_timeout);
                continue;
            }
        }
        if (c->mid_request && c->state != CONN_PENDING && !c->writing) {
            /* RFC 9110 §15.5.9: the client took too long to send its request. */
            c->keep_alive = 0;
            c->is_head = 0;
            c->deadline = 0;
            server_conn_respond_detail(c, 408, "Request was not received in time", NULL, 0);
            c->close_after_write = 1;
            conn_flush(c);
            conn_update_reading(c);
        } else if (c->state == CONN_HEAD && !c->writing) {
            conn_close_idle(c); /* keep-alive timeout */
        } else {
            conn_close(c);
        }
    }
}

void server_conn_set_close(server_conn_t *c)
{
    c->keep_alive = 0;
}
