/*
 * The HTTP/1.1 server: listener, connection state machine, limits, timeouts and
 * backpressure, on the libuv loop owned by PyLoop. The server knows nothing about routes
 * or Python handlers: each complete request (head + body) is handed to a dispatch
 * callback, which appends the response to the connection's output buffer.
 *
 * Ownership: a connection's read buffer is lent by the server's pool while a request needs
 * it; the request passed to dispatch is a set of slices into it, valid until the request
 * is finished (synchronously by returning SERVER_DISPATCH_DONE, or later by
 * server_conn_finish after SERVER_DISPATCH_PENDING). While a request is pending the
 * connection stops reading, so the buffer cannot move and pipelined responses stay in
 * request order; a request whose body is streamed (body.c) reads on behind its head into
 * room made before the dispatch, without moving the buffer.
 */
#ifndef DB_SERVER_SERVER_H
#define DB_SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "http/http.h"

typedef struct server_conn server_conn_t;

/* The access log (uvicorn's --access-log): called once per dispatched request, GIL held,
 * when its response head is written, with the status, the client as "host:port" (after
 * proxy headers; empty when the socket has no IP address), the request's method and target
 * (copies taken at dispatch, so valid even when the request's slices were detached) and
 * whether it was HTTP/1.0. Must not leave a Python exception set. */
typedef void (*server_access_cb)(void *ctx, int status, const char *client, size_t client_len,
                                 const char *method, size_t method_len, const char *target,
                                 size_t target_len, int http10);

/* Room for a client host: an IP address, or what a trusted proxy's X-Forwarded-For names
 * (cut to this length). */
#define SERVER_HOST_MAX 256

/* One worker's counters in shared memory (metrics.c): SERVER_METRICS_SLOT_SIZE bytes, laid
 * out as the Python supervisor reads and settles them (_supervisor.py: the first 16 words).
 * Latency buckets are per bucket (the scrape makes them cumulative); by_route counts
 * responses by route (0: no route of this server's - 404, 405, a mount, routes past the
 * table), request method (GET HEAD POST PUT PATCH DELETE OPTIONS, then any other) and
 * status class. */
#define SERVER_METRICS_BUCKETS 15
#define SERVER_METRICS_ROUTES  128
#define SERVER_METRICS_METHODS 8
#define SERVER_METRICS_SLOT_SIZE                                                                   \
    (8 * (16 + SERVER_METRICS_BUCKETS + 1 + SERVER_METRICS_ROUTES * SERVER_METRICS_METHODS * 5))
typedef struct {
    uint64_t requests;     /* dispatched (a scrape of the metrics path is not counted) */
    uint64_t responses[5]; /* response heads written for them, by status class 1xx..5xx */
    uint64_t abandoned;    /* dispatched, but the connection closed before any response */
    uint64_t conns_opened;
    uint64_t conns_closed;
    uint64_t restarts;          /* written by the supervisor: the slot's workers that died */
    uint64_t bytes_in;          /* bytes read from connections */
    uint64_t bytes_out;         /* bytes handed to the socket (sendfile bodies not included) */
    uint64_t latency_us;        /* sum of the latencies counted in latency[] */
    uint64_t loop_lag_us;       /* gauge: how late the worker's once-a-second sweep last ran */
    uint64_t loop_lag_total_us; /* the sum of those delays */
    uint64_t reserved[1];
    uint64_t latency[SERVER_METRICS_BUCKETS + 1]; /* dispatch to response head; last: +Inf */
    uint64_t by_route[SERVER_METRICS_ROUTES][SERVER_METRICS_METHODS][5];
} server_metrics_t;

typedef struct {
    http_limits_t http;
    uint64_t max_body; /* request body bytes; more gives 413 (default 16 MiB) */
    /* Bytes of a streamed body (server_set_stream_body); more gives 413 at the head or a
     * SERVER_BODY_TOO_LARGE read (0, the default: no limit). */
    uint64_t max_upload;
    uint64_t keepalive_timeout; /* ms an idle keep-alive connection is kept (default 5000) */
    uint64_t request_timeout;   /* ms to receive a whole request once it began (default 30000) */
    /* ms a file body may wait for a client that takes none of it (default 60000, nginx's
     * send_timeout); then its connection closes. */
    uint64_t send_timeout;
    /* ms for a request's head to arrive once its first byte came (--timeout-header): a slow
     * head is the slowloris attack; 0 or above request_timeout: request_timeout alone. */
    uint64_t header_timeout;
    /* A body the server reads whole that arrives slower on average than min_body_rate
     * bytes a second, once min_body_grace ms have passed since its head, is answered 408
     * and the connection closed (--min-body-rate: a slow-body client holds a connection
     * and its buffer as a slowloris holds one with its head). A streamed body (body.c)
     * answers to the same rule over the time the server waited for its bytes; its reader
     * gets SERVER_BODY_DISCONNECTED. 0: off. */
    uint64_t min_body_rate;
    uint64_t min_body_grace;
    size_t write_high_water; /* queued response bytes that pause reading (default 1 MiB) */
    int backlog;             /* listen(2) backlog (default 1024) */
    int no_date_header;      /* leave out the Date header (uvicorn's --no-date-header) */
    /* Open connections at or above which a request is answered 503 and its connection
     * closed, as uvicorn's --limit-concurrency (0: no limit). */
    size_t limit_concurrency;
    /* Complete "name: value\r\n" lines put in every response head (uvicorn's default
     * headers: Server, --header); owned by the caller and kept alive as long as the server. */
    const char *default_headers;
    size_t default_headers_len;
    server_access_cb access_log; /* NULL: no access log, and nothing is copied per request */
    void *access_ctx;
    /* Proxies trusted with X-Forwarded-For/-Proto (uvicorn's --proxy-headers with
     * --forwarded-allow-ips); NULL: proxy headers are ignored. Owned by the caller. */
    const http_trust_t *trust;
    int forwarded_mode; /* SERVER_FORWARDED_*: which fields the trusted proxies set */
    /* Metrics (NULL: none, and nothing is counted): metrics_slots slots of shared memory,
     * this process counting into metrics[metrics_slot]; a GET of metrics_path (exact path)
     * is answered with the sum of all slots. Owned by the caller. */
    server_metrics_t *metrics;
    size_t metrics_slots;
    size_t metrics_slot;
    const char *metrics_path;
    size_t metrics_path_len;
    /* WebSocket sessions, with uvicorn's meanings: an idle session is pinged every
     * ws_ping_interval ms and failed with 1011 when the pong has not come ws_ping_timeout
     * ms later (0: no pings / no timeout; defaults 20000 and 20000); ws_deflate allows
     * permessage-deflate (default 1); ws_max_size bounds one message (1009 above; default
     * 16 MiB); ws_max_queue is the number of received messages the application may leave
     * unread before reading pauses (default 32). */
    uint64_t ws_ping_interval;
    uint64_t ws_ping_timeout;
    int ws_deflate;
    uint64_t ws_max_size;
    size_t ws_max_queue;
    /* Route templates for the route label, metrics_routes[i] for route id i (1-based; see
     * server_conn_set_route); NULL or "" for ids without a name. Owned by the caller. */
    const char *const *metrics_routes;
    size_t metrics_nroutes;
    /* Probes (--health, health.c): a GET or HEAD of health_path is answered 200 while the
     * process serves (liveness); of ready_path 200 when ready, else 503: not while the
     * server drains, nor while ready_check(ready_ctx) returns non-zero (readiness). Both
     * are answered before the router, counted by neither metrics nor the access log. NULL
     * paths: off. Owned by the caller. */
    const char *health_path;
    size_t health_path_len;
    const char *ready_path;
    size_t ready_path_len;
    int (*ready_check)(void *ctx); /* called with the GIL held; NULL: no checks */
    void *ready_ctx;
} server_config_t;

typedef struct server server_t;

typedef struct {
    http_request_t *head; /* parsed head; slices into the connection's buffer */
    const char *body;     /* decoded body (Content-Length or chunked); may be NULL when empty */
    size_t body_len;
    server_conn_t *conn; /* the connection it arrived on (set once, with the connection) */
    int streamed;        /* the body is not here: it is read with server_conn_body_read */
} server_request_t;

enum {
    SERVER_DISPATCH_DONE = 0,    /* the response was appended; the request is finished */
    SERVER_DISPATCH_PENDING = 1, /* the response comes later through server_conn_finish */
};

/* Called with the GIL held. Must not leave a Python exception set. */
typedef int (*server_dispatch_cb)(void *ctx, server_conn_t *conn, server_request_t *req);

void server_config_default(server_config_t *cfg);
server_t *server_new(uv_loop_t *loop, const server_config_t *cfg, server_dispatch_cb cb, void *ctx);
/* Binds and listens on host:port (IPv4 or IPv6 literal). Returns 0 or a libuv error code;
 * *bound_port receives the actual port (useful with port 0). */
int server_listen(server_t *s, const char *host, int port, int reuse_port, int *bound_port);
/* Listens on an already bound and listening socket (for worker processes). */
int server_listen_fd(server_t *s, int fd);
/* Serves one already connected stream socket as a connection (the in-process test
 * client's end of a socketpair). The fd belongs to the server from a 0 return on. */
int server_adopt_fd(server_t *s, int fd);
/* Stops accepting, closes idle connections, lets requests in progress finish, then closes
 * every handle. on_closed runs once everything is released (the server is then freed). */
void server_close(server_t *s, void (*on_closed)(void *arg), void *arg);
size_t server_connection_count(const server_t *s);
/* Requests dispatched since the server was made (for --limit-max-requests and metrics). */
uint64_t server_request_count(const server_t *s);
/* Compresses response bodies with gzip by Starlette's GZipMiddleware rules (gzip/gzip.h):
 * level 0..9, bodies of at least minimum_size bytes, excluded media types as a
 * NUL-terminated list (copied). A second call replaces the settings. Returns 0, or -1 when
 * out of memory or the level is invalid. A streaming response gets an encoder of its own
 * (stream.c), each piece flushed, the body chunked. */
int server_set_gzip(server_t *s, int level, size_t minimum_size, const char *excluded,
                    size_t excluded_len);

/* TLS (csrc/tls): connections accepted from now on are served over TLS with ctx (the server
 * takes a reference; NULL: plain HTTP again). Connections already open keep the context
 * they started with, so a certificate reload calls this again with a new context. Returns
 * 0, or -1 when out of memory. Connections adopted with server_adopt_fd are never TLS. */
struct tls_context;
int server_set_tls(server_t *s, struct tls_context *ctx);

/* Memory lent to connections (see conn.c): buffers of SERVER_BLOCK_SIZE bytes (read and
 * write buffers; one grown past that size still counts as lent) and parsed request heads,
 * lent or waiting in the server's free lists. For tests and diagnostics. */
typedef struct {
    size_t blocks_lent;
    size_t blocks_free;
    size_t heads_lent;
    size_t heads_free;
} server_buffer_stats_t;
void server_buffer_stats(const server_t *s, server_buffer_stats_t *out);

/* For dispatch: where responses go, and facts about the connection. */
/* A scratch buffer to build a response body in (emptied by the caller, valid until the
 * next call for any connection of the server: shared, since a body is copied into the
 * connection's output by server_conn_respond right after it is built). */
db_buf_t *server_conn_scratch(server_conn_t *c);
/* The connection's peer (remote != 0) or local address: the numeric host (IPv4 dotted, or
 * IPv6 without brackets) into host[hostlen] (64 bytes are always enough) and the port.
 * Returns 0; 1 when the socket has no IP address (an AF_UNIX socket, such as the test
 * client's socketpair); or a negative libuv error code (the connection was closed). Costs
 * one getpeername(2)/getsockname(2) the first time for a connection, asked only when the
 * application reads it; the connection keeps the answer. */
int server_conn_address(server_conn_t *c, int remote, char *host, size_t hostlen, int *port);
int server_conn_closed(const server_conn_t *c); /* the peer went away while pending */
/* server_config_t.forwarded_mode: X-Forwarded-For and -Proto (uvicorn's), those and
 * X-Forwarded-Host, or RFC 7239's Forwarded field alone. */
enum { SERVER_FORWARDED_X, SERVER_FORWARDED_X_HOST, SERVER_FORWARDED_RFC7239 };

/* The server's configuration (for the application's view of its limits). */
const server_config_t *server_conn_config(const server_conn_t *c);
/* The connection is TLS (the request's scheme is https, or wss after an upgrade). */
int server_conn_tls(const server_conn_t *c);
/* The head of the request being answered (valid until its response is written). */
const http_request_t *server_conn_head(const server_conn_t *c);
/* The Host a trusted proxy's X-Forwarded-Host or Forwarded host= gives (as
 * cfg.forwarded_mode says), or NULL: none, not trusted, or not that mode. Copied into
 * buf[buflen] (a value that does not fit is not used); *len its length. */
const char *server_conn_forwarded_host(server_conn_t *c, const http_request_t *head, char *buf,
                                       size_t buflen, size_t *len);
/* The request's client: from a trusted proxy's X-Forwarded-For (cfg.trust) into
 * host[hostlen] (a proxy's value is cut to hostlen - 1 bytes; port 0 when it named none),
 * otherwise the peer as server_conn_address gives it, with its return values. The peer is
 * asked about only when the field is present. */
int server_conn_client(server_conn_t *c, const http_request_t *head, char *host, size_t hostlen,
                       int *port);
/* The scheme a trusted proxy's X-Forwarded-Proto gives (http, https, ws or wss; a slice of
 * the field), or NULL: none, not trusted, or proxy headers off. */
const char *server_conn_forwarded_proto(server_conn_t *c, const http_request_t *head, size_t *len);
/* Appends a complete response. body may be NULL when body_len is 0. extra_headers is
 * zero or more complete "name: value\r\n" lines. The method of the request decides
 * whether the body is sent (HEAD) and the status whether it may have one (1xx/204/304).
 * Returns 0 or -1 when out of memory (the connection is then closed). */
int server_conn_respond(server_conn_t *c, int status, const char *ctype, size_t ctype_len,
                        const char *extra_headers, size_t extra_len, const char *body,
                        size_t body_len);
/* Convenience for errors: {"detail": message} as JSON. */
int server_conn_respond_detail(server_conn_t *c, int status, const char *message,
                               const char *extra_headers, size_t extra_len);
/* Adds complete "name: value\r\n" lines to the response of the current request, whichever
 * it is (the handler's, an error, a 422); copied. Returns 0 or -1 when out of memory. */
int server_conn_add_headers(server_conn_t *c, const char *lines, size_t len);
/* The current request's response is not compressed by the server's GZip policy: it is
 * answered by an app that applies its own middleware (a compiled FastAPI app's fallback). */
void server_conn_no_gzip(server_conn_t *c);
/* The connection's socket descriptor (uv_fileno), or -1 when it has none any more. */
int server_conn_fileno(server_conn_t *c);
/* Metrics: the current request went to route `id` of the server's metrics_routes (ids past
 * SERVER_METRICS_ROUTES count as 0, no route). Without metrics it does nothing. */
void server_conn_set_route(server_conn_t *c, unsigned id);
/* The response being built closes the connection ("connection: close"). Call before
 * server_conn_respond. */
void server_conn_set_close(server_conn_t *c);
/* Finishes a pending request after its response was appended (or not, when the peer is
 * gone): the connection writes it and goes on with pipelined requests. */
void server_conn_finish(server_conn_t *c);
/* Called by a dispatcher that is about to return SERVER_DISPATCH_PENDING and no longer
 * needs the request's slices (it copied what it needs): the request's bytes go back at
 * once and, while the request is pending, the connection reads on as a streaming one does
 * (a small read-ahead of pipelined bytes), so that a client that leaves (or half-closes)
 * is noticed: the connection closes and the notification of server_conn_stream_notify
 * runs. A notification set for this must be cleared (NULL) before server_conn_finish
 * unless a stream took the request over (server_conn_stream_end clears it). */
void server_conn_detach(server_conn_t *c);

/* Streaming request bodies (body.c). A request with a chunked body, or one over the read
 * window (64 KiB) or cfg.max_body, whichever is smaller, is offered to the decider set by
 * server_set_stream_body (called with the GIL held, with the server's dispatch ctx and the
 * parsed head; returns 1 to stream). A streamed request is dispatched once its head is
 * parsed, with streamed set and no body; its body is then read piece by piece with
 * server_conn_body_read while it is pending (or during the dispatch call). At most the
 * window is buffered: the connection stops reading while nobody asks. max_body does not
 * apply to it; cfg.max_upload does. */
typedef int (*server_stream_body_cb)(void *ctx, const http_request_t *head);
void server_set_stream_body(server_t *s, server_stream_body_cb cb);

enum {
    SERVER_BODY_DATA = 0,          /* data[0..len) is the next piece (valid during the call) */
    SERVER_BODY_END = 1,           /* the body is complete (no data) */
    SERVER_BODY_DISCONNECTED = -1, /* the client left or the connection closed */
    SERVER_BODY_MALFORMED = -2,    /* bad chunked framing (the connection closes after the
                                      response) */
    SERVER_BODY_TOO_LARGE = -3,    /* over cfg.max_upload (likewise) */
    SERVER_BODY_ABORTED = -4,      /* the request finished before the read was answered */
};
/* Called exactly once per accepted read, GIL held, possibly from inside
 * server_conn_body_read when the bytes are already here. Must not leave an exception set. */
typedef void (*server_body_cb)(void *arg, int status, const char *data, size_t len);
/* Asks for the next piece of the streamed body. Returns 0 (cb will be called once), or -1
 * when the request has no streamed body or a read is already pending (cb is not called). */
int server_conn_body_read(server_conn_t *c, server_body_cb cb, void *arg);
/* The same read, offering dst[0..cap) for the bytes: when none are buffered and the body
 * has a Content-Length, the next read(2) puts them straight there (cb's data is then dst,
 * at most cap bytes and never past the body's end), so a reader that keeps the bytes
 * (an upload's content) saves copying them out of the read window. dst must stay valid
 * until cb is called. Buffered bytes, and a chunked body, come from the window as before. */
int server_conn_body_read_into(server_conn_t *c, char *dst, size_t cap, server_body_cb cb,
                               void *arg);
/* 1 while the connection's pending request streams its body. */
int server_conn_body_streaming(const server_conn_t *c);
/* on_end(arg) is called once (GIL held) when the pending request whose body streams
 * finishes, after a pending read was answered: from then on c may serve another request
 * (or be freed), so whoever reads the body past the handler's return (a streaming
 * response) learns when to stop. Returns 0, or -1 when the request has no streamed body or
 * someone else watches it (on_end will not be called). */
int server_conn_body_watch(server_conn_t *c, void (*on_end)(void *arg), void *arg);

/* Streaming responses (a body produced piece by piece after the head was sent).
 *
 * server_conn_stream_begin appends the head and, when the response has a body (not HEAD,
 * not 1xx/204/304), puts the connection in streaming mode: the request stays pending
 * (pipelined requests wait; reading goes on with a small read-ahead, only to notice a
 * client that leaves) until server_conn_stream_end, whoever dispatched it (a synchronous
 * dispatch that began a stream is treated as PENDING; a server_conn_finish of a pending
 * request that began one leaves the request to the stream). content_length >= 0 frames the body by
 * that length (RFC 9110 §8.6); otherwise HTTP/1.1 gets chunked framing (RFC 9112 §7.1) and HTTP/1.0
 * a close-delimited body (RFC 9112 §6.3 item 8). Returns 1 when the body is to be streamed, 0 when
 * the response has no body (the head alone was appended; the request finishes as usual), -1 when
 * out of memory (the connection is then closed). */
int server_conn_stream_begin(server_conn_t *c, int status, const char *ctype, size_t ctype_len,
                             const char *extra_headers, size_t extra_len, int64_t content_length);

enum {
    SERVER_STREAM_OK = 0,        /* queued and flushed as far as the socket takes it */
    SERVER_STREAM_FULL = 1,      /* queued, but the output exceeds the write limit: drain */
    SERVER_STREAM_CLOSED = -1,   /* the connection is closed (peer gone, write error) */
    SERVER_STREAM_OVERFLOW = -2, /* more bytes than the declared Content-Length: not sent */
    SERVER_STREAM_NOMEM = -3,    /* out of memory: the connection is closed */
};

/* Queues one piece of the body (framed as a chunk when chunked; empty pieces are
 * skipped, an empty chunk would end the body) and tries to write it at once. */
int server_conn_stream_write(server_conn_t *c, const char *data, size_t len);
/* 1 while the queued output exceeds the write limit (the producer should wait). */
int server_conn_stream_full(const server_conn_t *c);
/* Called (GIL held) when the queued output of a streaming connection fell below the write
 * limit after a write completed, and when its connection closed; NULL to stop. */
void server_conn_stream_notify(server_conn_t *c, void (*cb)(void *arg), void *arg);
/* Ends the stream and finishes its request. complete: the producer is done (the last
 * chunk is sent when chunked; keep-alive goes on); otherwise the body is cut short and
 * the connection closes after what was queued, without the last chunk, so the client
 * sees a truncated body. Returns 0, or -1 when a complete stream sent fewer bytes than
 * its declared Content-Length (the connection is then closed too). c may be freed. */
int server_conn_stream_end(server_conn_t *c, int complete);
/* Gives up a stream that server_conn_stream_begin just began, before the dispatcher or
 * server_conn_finish saw it: the body ends there (truncated, the connection closes after
 * the head) and the request finishes the usual way. Never call both this and _end. */
void server_conn_stream_abandon(server_conn_t *c);

/* File bodies (sendfile.c): a response whose body is byte ranges of one file, with literal
 * text around them (files/files.h: files_body_t), sent with sendfile(2) from a descriptor
 * the server owns, however slowly the client reads and without Python per piece.
 *
 * server_file_new takes fd (a regular file opened for reading; closed on failure too);
 * server_file_add appends a segment (text, then the file's bytes [start, end)). The body's
 * length is its Content-Length. server_conn_file_begin takes the body in every case but
 * SERVER_FILE_DECLINED, appends the head and, when the response has a body (not HEAD, not
 * 1xx/204/304), sends it once the head is out: the request stays pending as a stream's
 * does (pipelined requests wait, keep-alive goes on after it), whoever dispatched it, and
 * finishes by itself when the last byte is written. A file that ends early (it shrank), a
 * read or write error, or a client that leaves closes the connection; the descriptor is
 * closed whichever way the body ends. */
typedef struct server_file server_file_t;
server_file_t *server_file_new(int fd); /* NULL when out of memory */
int server_file_add(server_file_t *f, const char *text, size_t text_len, uint64_t start,
                    uint64_t end);       /* 0, or -1 when out of memory */
void server_file_free(server_file_t *f); /* for a body not handed to file_begin */
/* Frees a declined body and gives its descriptor back. */
int server_file_release(server_file_t *f);

enum {
    SERVER_FILE_SENDING = 1,  /* the body is on its way */
    SERVER_FILE_NO_BODY = 0,  /* the head alone was appended; the request finishes as usual */
    SERVER_FILE_DECLINED = 2, /* the server compresses this response (server_set_gzip) or
                                 the connection is TLS: nothing appended, f is still the
                                 caller's, who streams it */
};
/* Returns SERVER_FILE_*, or -1 when out of memory (the connection is then closed). */
int server_conn_file_begin(server_conn_t *c, int status, const char *ctype, size_t ctype_len,
                           const char *extra_headers, size_t extra_len, server_file_t *f);

/* WebSocket sessions (RFC 6455) on a connection whose pending request was an upgrade.
 *
 * server_conn_ws_accept answers the pending request with 101 Switching Protocols (the
 * Sec-WebSocket-Accept computed from its Sec-WebSocket-Key; the caller has checked the
 * handshake and detached the request's slices) and turns the connection into a WebSocket
 * one for good: from then on its bytes go to csrc/ws's frame parser, unmasked in place in
 * the lent read buffer, and complete messages go to the handler. Pings are answered by the
 * server, a close frame is echoed and the TCP connection closed after it, a protocol error
 * closes with the parser's code. The pending request stays pending until the application
 * is done (server_conn_finish), but reading goes on. Returns 0, or -1 when out of memory
 * or the request has no valid key (the connection is then closed). */
typedef struct {
    /* A complete data message (WS_OP_TEXT, whose UTF-8 was checked, or WS_OP_BINARY); data
     * is valid during the call only. Return 1 to go on reading, 0 to pause until
     * server_conn_ws_resume (the application's queue is full). */
    int (*on_message)(void *arg, int opcode, const char *data, size_t len);
    /* Called exactly once, when the server lets go of the handler: the peer's close code
     * (1005 when its close frame had none) and reason, the code the server closed with
     * after a protocol error, 1006 when the connection was lost, or 1000 when the
     * application finished first (server_conn_finish). No call follows it. */
    void (*on_close)(void *arg, int code, const char *reason, size_t reason_len);
} server_ws_handler_t;

int server_conn_ws_accept(server_conn_t *c, const char *extra_headers, size_t extra_len,
                          uint64_t max_message, const server_ws_handler_t *handler, void *arg);
/* Stops calling the handler (the application object is going away). */
void server_conn_ws_forget(server_conn_t *c);
/* Reading paused by on_message goes on. */
void server_conn_ws_resume(server_conn_t *c);
/* Queues one data message (WS_OP_TEXT or WS_OP_BINARY) as a single frame and flushes it:
 * SERVER_STREAM_OK, SERVER_STREAM_FULL (queued, but the output is over the write limit:
 * wait for the notification of server_conn_stream_notify), SERVER_STREAM_CLOSED (the
 * session is closing or closed; nothing queued) or SERVER_STREAM_NOMEM. */
int server_conn_ws_send(server_conn_t *c, int opcode, const char *data, size_t len);
/* Starts the close handshake (§7.1.2) with code (0: no status) and reason; the TCP
 * connection closes when the peer's close frame arrives, or after a timeout. Returns 0,
 * 1 when a close frame was already sent or the connection is gone, -1 for an invalid
 * code or reason (nothing sent). */
int server_conn_ws_close(server_conn_t *c, int code, const char *reason, size_t reason_len);
/* A reference that keeps the connection's memory (not its socket) alive, for an object
 * that outlives the request; every hold is matched by one unhold. */
void server_conn_hold(server_conn_t *c);
void server_conn_unhold(server_conn_t *c);

#endif
