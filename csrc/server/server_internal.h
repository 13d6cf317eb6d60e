/*
 * Internal layout of the server and its connections, shared by the files of csrc/server/
 * only. Other components use the opaque API in server.h.
 */
#ifndef DB_SERVER_INTERNAL_H
#define DB_SERVER_INTERNAL_H

#include "common/pool.h"
#include "gzip/gzip.h"
#include "server/server.h"
#include "tls/tls.h"
#include "ws/ws.h"

/* Size of a lent buffer (read or write): one read of a typical request, or one response,
 * fits in it; a buffer grows past it by realloc only while a request or a response needs
 * more (and is then freed, not kept, when given back). */
#define SERVER_BLOCK_SIZE 16384

enum conn_state {
    CONN_HEAD = 0,     /* waiting for (the rest of) a request head */
    CONN_BODY_LENGTH,  /* head parsed, waiting for Content-Length bytes */
    CONN_BODY_CHUNKED, /* head parsed, decoding a chunked body in place */
    CONN_PENDING,      /* dispatched; the handler has not answered yet */
};

/* A connection's WebSocket session (ws.c): allocated at the upgrade, freed with the
 * connection. About 370 bytes; message payloads live in msg.data only while a message
 * spans reads (or is compressed), and its storage is freed once the message is delivered;
 * zlib states are made when first needed and kept only with context takeover (ws.c). */
typedef struct {
    ws_parser_t parser;
    ws_message_t msg;
    const server_ws_handler_t *handler; /* NULL once forgotten */
    void *arg;
    ws_deflate_params_t pmd; /* permessage-deflate as agreed (pmd.enabled 0: declined) */
    ws_deflater_t *deflater; /* kept between messages with context takeover, else NULL */
    /* An idle session's inflater, parked (ws_conn_sweep): the last bytes of its window, from
     * which the next compressed message's inflater resumes; NULL when none. */
    uint8_t *zdict;
    size_t zdict_len;
    const uint8_t *direct; /* a whole single-frame message's payload, in rbuf */
    size_t direct_len;
    /* Keep-alive pings (ws_ping.c): the links of the server's list the session is in
     * (ka_list: 0 none, 1 waiting to be pinged, 2 waiting for a pong), that list's
     * deadline for it, and the payload of the last ping. */
    server_conn_t *ka_prev, *ka_next;
    uint64_t ka_due;
    uint32_t ping_id;
    uint8_t ka_list;
    server_conn_t *flush_next; /* in server.flush_head while its output waits (ws.c) */
    unsigned flush_queued : 1;
    unsigned single : 1;         /* the current frame is a whole message */
    unsigned paused : 1;         /* the handler asked to stop reading */
    unsigned processing : 1;     /* ws_conn_process is on the stack */
    unsigned close_sent : 1;     /* our close frame is queued */
    unsigned close_received : 1; /* the peer's close frame arrived (or the parser failed) */
    unsigned notified : 1;       /* on_close was called */
    unsigned z_used : 1;         /* zlib was used since the previous sweep */
} server_ws_t;

struct server_conn {
    uv_tcp_t tcp; /* first member: libuv hands the handle back in callbacks */
    server_t *server;
    server_conn_t *prev, *next;

    /* Read side. Requests start at rbuf.data + pos; bytes before pos are consumed. rbuf's
     * storage and head are lent by the server's pools only while a request needs them
     * (see conn_give_back in conn.c): an idle keep-alive connection holds neither. */
    db_buf_t rbuf;
    size_t pos;
    enum conn_state state;
    http_parser_t parser;
    http_request_t *head; /* lent from server.heads while a request is being parsed or served */
    http_chunked_t chunked;
    size_t head_len;
    const char *head_base; /* rbuf.data when the head was parsed */
    uint64_t body_len;     /* Content-Length, or decoded chunked bytes so far */
    /* A body read whole: when its head was complete (uv_now ms; 0 when no body is awaited)
     * and the bytes received since, for cfg.min_body_rate. */
    uint64_t body_since;
    uint64_t body_bytes;
    server_request_t req;

    /* Write side. Responses are appended to wbuf; inflight is owned by a uv_write. Both
     * are lent by server.blocks and given back as soon as they are written out. */
    db_buf_t wbuf;
    db_buf_t inflight;
    /* Header lines the app adds to whatever response the current request gets (CORS);
     * appended by server_conn_respond, emptied when each request is dispatched. */
    db_buf_t resp_headers;
    /* With the access log on: the current request's client text, method and target, copied
     * at dispatch (log_client_len bytes of "host:port", log_method_len bytes of method, then
     * the target); log_pending until its response head is written. */
    db_buf_t log_line;
    size_t log_client_len;
    size_t log_method_len;
    unsigned log_pending : 1;
    unsigned log_peer : 1; /* log_line begins with the socket peer's text (kept) */
    unsigned served : 1;   /* a request of this connection was dispatched */
    unsigned awaiting : 1; /* metrics: a dispatched request has no response head yet */
    /* Metrics of the request awaiting its response: when it was dispatched (uv_hrtime ns),
     * its route id and method index (server.h, server_metrics_t.by_route). */
    uint64_t metrics_start;
    uint16_t metrics_route;
    uint8_t metrics_method;
    /* libuv's requests, allocated when first needed (272 bytes that an idle keep-alive or
     * WebSocket connection would otherwise carry): write_req while a uv_write is in flight
     * (freed by on_write once nothing more is queued), shutdown_req from the half-close
     * until the connection is freed. */
    uv_write_t *write_req;
    uv_shutdown_t *shutdown_req;
    /* The local ([0]) and the peer's ([1]) address, asked of the socket on first use
     * (server_conn_address) and kept: they do not change for the connection's life, and the
     * ASGI scope, the access log and proxy-header checks want them for every request.
     * Allocated then (NULL until), so a connection nobody asks about pays a pointer. */
    struct conn_addr {
        uint8_t kind; /* 0: not asked yet; 4: IPv4; 6: IPv6; 1: not an IP socket */
        uint16_t port;
        uint8_t ip[16];
    } * addrs;

    server_conn_t *resume_next; /* in server.resume_head while queued for conn_resume */
    uint64_t deadline; /* uv_now() ms after which the sweep closes the connection; 0: none */
    /* Bytes libuv still had to write at the last sweep past the deadline (SIZE_MAX when a
     * uv_write starts): while it shrinks, the peer reads and is not timed out. */
    size_t sweep_queued;
    int refs; /* the handle holds one; a pending request holds another */
    unsigned reading : 1;
    unsigned writing : 1;
    unsigned closing : 1;
    unsigned close_after_write : 1;
    unsigned shutting_down : 1;
    unsigned continue_sent : 1;
    unsigned is_head : 1;     /* the current request is HEAD: no body in the response */
    unsigned keep_alive : 1;  /* the current response keeps the connection open */
    unsigned http10 : 1;      /* the current request is HTTP/1.0 */
    unsigned mid_request : 1; /* bytes of an unfinished request were received */
    unsigned body_timed : 1;  /* the deadline was moved from the head's to the body's */
    unsigned resume_queued : 1;
    unsigned accept_gzip : 1;    /* the current request's Accept-Encoding allows gzip */
    unsigned gzip_off : 1;       /* the GZip policy is not applied (server_conn_no_gzip) */
    unsigned streaming : 1;      /* a streaming response body is being produced */
    unsigned detached : 1;       /* the pending request's slices are unused (server_conn_detach) */
    unsigned stream_chunked : 1; /* ... framed as chunks */
    unsigned stream_sized : 1;   /* ... of a declared Content-Length (stream_left to go) */
    uint64_t stream_left;
    gzip_encoder_t *stream_gz;        /* the stream's own gzip encoder while it is compressed */
    void (*stream_notify)(void *arg); /* see server_conn_stream_notify */
    void *stream_arg;
    server_ws_t *ws;     /* the WebSocket session after an upgrade, else NULL */
    server_file_t *file; /* the file body being sent (sendfile.c), else NULL */
    /* The TLS session (tls.c) when the server has a TLS context, else NULL: every byte read
     * is decrypted through it before the parser, every byte written sealed by it. */
    tls_session_t *tls;

    /* A request body read as it arrives (body.c): body_have decoded bytes wait behind the
     * head, body_left Content-Length bytes are still to come; body_cb/body_arg is the
     * reader's pending read (NULL: none). */
    unsigned body_stream : 1;     /* the pending request's body is streamed */
    unsigned body_ended : 1;      /* ... and all of it was received */
    unsigned body_delivering : 1; /* a piece is being handed to the reader */
    unsigned body_chunked : 1;    /* framed as chunks (decoded by chunked) */
    int body_error;               /* a SERVER_BODY_* error, sticky; 0: none */
    size_t body_have;
    uint64_t body_left;
    server_body_cb body_cb;
    void *body_arg;
    /* server_conn_body_read_into's buffer for the pending read (NULL: the window), and
     * whether the read(2) under way was offered it (on_alloc to on_read). */
    char *body_dst;
    size_t body_dst_cap;
    unsigned body_direct : 1;
    void (*body_end_cb)(void *arg); /* server_conn_body_watch */
    void *body_end_arg;
    /* cfg.min_body_rate for a streamed body: the ms spent waiting for the client's bytes
     * (reading with room in the window) before the current wait, and when the current wait
     * began (uv_now; 0: not waiting). body_bytes counts the bytes received meanwhile. */
    uint64_t body_waited;
    uint64_t body_wait_from;
};

struct server {
    uv_loop_t *loop;
    server_config_t cfg;
    server_dispatch_cb dispatch;
    void *ctx;
    server_stream_body_cb stream_body; /* NULL: every body is received whole */
    uv_tcp_t listener;
    uv_timer_t sweep;
    uv_idle_t resume;           /* runs queued conn_resume calls in the next loop iteration */
    server_conn_t *resume_head; /* connections waiting for it; each holds a reference */
    server_conn_t *conns;       /* doubly linked list of open connections */
    size_t nconns;
    uint64_t requests; /* dispatched so far (server_request_count) */
    size_t nlive;      /* connections not yet freed (a closed one may still be referenced) */
    /* Memory lent to connections while they have work (buffers of SERVER_BLOCK_SIZE and
     * parsed request heads), trimmed by the sweep once a burst is over. */
    db_pool_t blocks;
    db_pool_t heads;
    size_t released; /* bytes freed since the last malloc_trim (see server.c: on_sweep) */
    /* server_conn_scratch: one buffer for the whole server, since a response is encoded
     * into it and copied into the connection's wbuf within one call. */
    db_buf_t scratch;
    /* Response compression (server_set_gzip); gzip_enc is NULL when it is off. gzip_out
     * holds one compressed body between its compression and its copy into a wbuf. */
    gzip_encoder_t *gzip_enc;
    gzip_policy_t gzip;
    char *gzip_excluded;
    db_buf_t gzip_out;
    /* WebSocket keep-alive (ws_ping.c): one timer, armed for ka_timer_due (0: not armed),
     * and two FIFO lists of sessions: [0] waiting for their ping, [1] for their pong. */
    uv_timer_t ka_timer;
    int ka_timer_open;
    uint64_t ka_timer_due;
    server_conn_t *ka_head[2], *ka_tail[2];
    uint32_t ka_seq;
    /* WebSocket output written by the application is flushed once per loop iteration, in
     * this idle callback, so that the messages a handler sends in one go cost one write
     * (ws.c: ws_queue_flush); each queued connection holds a reference. */
    uv_idle_t ws_flush;
    int ws_flush_open;
    server_conn_t *flush_head;
    /* TLS (tls.c, server_set_tls): the context new connections get (NULL: plain HTTP), and
     * the buffer every TLS connection's ciphertext is read into (see conn_tls_alloc). */
    tls_context_t *tls;
    char *tls_in;
    int open_handles;    /* listener and sweep timer not yet closed */
    int sweep_open;      /* the sweep runs on while closing, for connections given a grace */
    uint64_t last_sweep; /* uv_now() of the sweep's previous run, or its start (loop lag) */
    /* This sweep runs late (the loop was busy, e.g. a handler blocked it): bytes the clients
     * sent meanwhile wait unread in the kernel, so body paces are not judged (conn_sweep). */
    int sweep_late;
    int listening;
    int closing;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

/* conn.c */
void conn_accept(server_t *s);

void conn_close(server_conn_t *c);
void conn_sweep(server_t *s, uint64_t now);
void conn_shutdown_idle(server_conn_t *c);
void conn_run_resumes(server_t *s);
void conn_flush(server_conn_t *c);
/* The connection's uv_write_t (made now if it has none; NULL when out of memory), its data
 * set to c, for a uv_write whose callback is conn.c's on_write, which frees it once nothing
 * more is in flight. */
uv_write_t *conn_write_req(server_conn_t *c);
/* db_buf_reserve for wbuf, whose storage is lent by the server's pool when it has none
 * (and given back by conn_flush once written). Returns 0, or -1 when out of memory (the
 * caller closes the connection). */
static inline int conn_wbuf_reserve(server_conn_t *c, size_t extra)
{
    if (c->wbuf.data == NULL && db_pool_lend_buf(&c->server->blocks, &c->wbuf) < 0)
        return -1;
    return db_buf_reserve(&c->wbuf, extra);
}

/* respond.c: reserves room for the head plus body_room bytes and writes the head up to
 * and including its blank line; framing is the Content-Length or Transfer-Encoding line.
 * Returns where the body goes (wbuf.len is not yet advanced), or NULL when out of memory
 * (the connection is then closed). */
char *respond_head(server_conn_t *c, int status, const char *ctype, size_t ctype_len,
                   const char *framing, size_t framing_len, const char *extra_headers,
                   size_t extra_len, size_t body_room);
/* The value of the first "name: value\r\n" line called name (lowercase) among lines, or
 * NULL. */
const char *respond_find_line(const char *lines, size_t len, const char *name, size_t n,
                              size_t *value_len);
/* GZipMiddleware's rules for a response about to be sent (gzip/gzip.h): -1 when they leave
 * it alone, 0 when it only gets "Vary: Accept-Encoding" (the client does not take gzip),
 * 1 when it is compressed. Does not look at the body's size. */
int respond_gzip_decision(server_conn_t *c, int status, const char *ctype, size_t ctype_len,
                          const char *extra, size_t extra_len);
/* Formats "content-length: N\r\n" into out (40 bytes suffice); returns its length. */
size_t respond_content_length(char *out, uint64_t len);
/* health.c: answers the request when it is a probe of the health or ready path (then
 * returns 1; the response is appended), else returns 0. */
int health_answer(server_conn_t *c, const http_request_t *h);

/* metrics.c: counting into this process's slot (cfg.metrics, never NULL here). */
static inline server_metrics_t *conn_metrics(const server_conn_t *c)
{
    return &c->server->cfg.metrics[c->server->cfg.metrics_slot];
}
void metrics_add(uint64_t *counter);
/* The request is a scrape of the metrics path. */
int metrics_is_scrape(const server_conn_t *c, const http_request_t *h);
/* Answers a scrape: every slot summed, Prometheus text format. Returns 0 or -1 (closed). */
int metrics_respond(server_conn_t *c);
/* Counts a dispatched request (its start, method; route 0 until set). */
void metrics_request(server_conn_t *c, const http_request_t *h);
/* Counts the response head with `status` of the request awaiting it. */
void metrics_response(server_conn_t *c, int status);
/* Counts bytes read or handed to the socket. */
void metrics_bytes(server_conn_t *c, int out, size_t n);
/* The sweep ran `lag_ms` late: the loop was busy that long (a blocking handler). */
void metrics_loop_lag(server_t *s, uint64_t lag_ms);
void conn_release(server_conn_t *c);
void conn_update_reading(server_conn_t *c);
/* ws.c */
void ws_conn_on_read(server_conn_t *c, ssize_t nread);
void ws_conn_finish(server_conn_t *c);
void ws_conn_closed(server_conn_t *c);
void ws_conn_shutdown(server_conn_t *c);
void ws_conn_free(server_conn_t *c);
/* The sweep's visit (once a second): the zlib states of a session that used none since the
 * previous visit are released (see ws.c). */
void ws_conn_sweep(server_conn_t *c);
/* body.c: bytes of a streamed body buffered per connection at most (the read window). */
#define BODY_WINDOW 65536
/* The piece Starlette's FileResponse reads a file in: GZipMiddleware decides on the first. */
#define SERVER_GZIP_FILE_PIECE 65536
/* Whether the request whose head was just parsed streams its body (asks the decider). */
int body_wanted(server_conn_t *c, const http_request_t *h);
/* Prepares the streamed body of the request just parsed: 0, -1 when its Content-Length is
 * over max_upload (answer 413), -2 when out of memory. */
int body_begin(server_conn_t *c);
/* on_alloc while the body streams: the free part of the window, without moving a buffer
 * the head's slices point into. */
void body_alloc(server_conn_t *c, uv_buf_t *buf);
/* Decodes the bytes read since; hands a piece to a pending read. */
void body_advance(server_conn_t *c);
void body_on_read(server_conn_t *c);
/* tls.c: a streamed body's next plaintext from the session into the window's room (1 when
 * something changed: bytes, or the body's error); after a request, the session's plaintext
 * left behind into rbuf (1 when the connection went on from there). */
int conn_tls_pull(server_conn_t *c);
int conn_tls_resume(server_conn_t *c);
/* conn.c: n bytes were read straight into the reader's buffer (body_direct). */
void body_on_direct_read(server_conn_t *c, size_t n);
/* The connection closed or the peer left: a pending read learns it. */
void body_disconnected(server_conn_t *c);
/* The request finishes: 0 when its body was read to the end (the next request may follow),
 * 1 when not (keep_alive is cleared: the connection closes after the response). */
int body_finish(server_conn_t *c);
/* The streamed body wants more bytes and the window has room. */
int body_wants_bytes(const server_conn_t *c);
/* With cfg.min_body_rate: notes whether the connection now waits for the streamed body's
 * bytes (called by conn_update_reading once reading was started or stopped). */
void body_pace(server_conn_t *c);
/* The sweep's check of a streamed body against cfg.min_body_rate: when it came too slowly,
 * the request is ended (408 if no response started) and the connection closed; returns 1
 * then. */
int body_sweep(server_conn_t *c, uint64_t now);
/* Fails a session whose keep-alive pong did not come in time (1011). */
void ws_conn_ping_timeout(server_conn_t *c);
/* ws_ping.c: keep-alive pings. start when the session opens (no-op without an interval),
 * touch on every read, pong with each pong's payload, unlink before the session is freed. */
void ws_ping_start(server_conn_t *c);
void ws_ping_touch(server_conn_t *c);
void ws_ping_pong(server_conn_t *c, const uint8_t *data, size_t len);
void ws_ping_unlink(server_conn_t *c);
void ws_ping_on_timer(uv_timer_t *t);
/* Flushes the WebSocket connections queued for it (server_close runs it once more). */
void ws_run_flushes(server_t *s);
void ws_on_flush(uv_idle_t *h);
/* stream.c */
void stream_conn_closed(server_conn_t *c);
void stream_conn_wrote(server_conn_t *c);
/* sendfile.c: the output buffer was written out (a file body may go on), the connection
 * closed (a file body ends). */
void file_conn_flushed(server_conn_t *c);
void file_conn_closed(server_conn_t *c);
/* conn.c: the connection's reaction to nread bytes appended to rbuf's tail (or to EOF or an
 * error, nread < 0), as on_read does for a plain connection. */
void conn_received(server_conn_t *c, ssize_t nread);
/* tls.c */
int conn_tls_start(server_conn_t *c); /* 0, or -1 when out of memory */
void conn_tls_alloc(server_conn_t *c, uv_buf_t *buf);
void conn_tls_read(server_conn_t *c, ssize_t nread, const uv_buf_t *buf);
/* Seals wbuf's plaintext and refills wbuf with the ciphertext to write. 0, or -1 (close). */
int conn_tls_seal(server_conn_t *c);
/* Queues close_notify before the connection's FIN (a uv_write calling on_write). */
void conn_tls_close_notify(server_conn_t *c, uv_write_cb on_write);
/* server.c */
void server_maybe_finish_close(server_t *s);

#endif
