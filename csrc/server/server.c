/*
 * Server lifetime: configuration defaults, the listening socket, the once-a-second sweep
 * that enforces keep-alive and request timeouts, and an orderly close. The server struct
 * is freed after the listener, the sweep timer and every connection have been closed
 * (libuv contract: memory of a handle is released only in its close callback).
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "loop/loop.h"
#include "server/server_internal.h"

#define SWEEP_INTERVAL_MS 1000
/* Blocks kept for reuse by each pool (at most 1 MiB of buffers, 0.5 MiB of heads); the sweep
 * frees those that stayed unused for a whole interval. */
#define POOL_MAX_FREE 64
/* The server's scratch buffer is freed by the sweep when a large response grew it past
 * this; smaller, it is kept for the next response. */
#define SCRATCH_KEEP 65536
/* Freed bytes after which the sweep asks the C library to give memory back to the OS. */
#define TRIM_THRESHOLD (4u << 20)
/* glibc's thresholds for the process (see tune_malloc). */
#define MALLOC_MMAP_THRESHOLD (8 << 20)
#define MALLOC_TRIM_THRESHOLD (32 << 20)

void server_config_default(server_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    http_limits_default(&cfg->http);
    /* 16 MiB, as the api layer's Limits: see docs/compat.md on bodies over 1 MiB. */
    cfg->max_body = 16 * 1024 * 1024;
    cfg->send_timeout = 60000;
    cfg->keepalive_timeout = 5000;
    cfg->request_timeout = 30000;
    cfg->write_high_water = 1024 * 1024;
    cfg->backlog = 1024;
    cfg->ws_ping_interval = 20000;
    cfg->ws_ping_timeout = 20000;
    cfg->ws_deflate = 1;
    cfg->ws_max_size = 16 * 1024 * 1024;
    cfg->ws_max_queue = 32;
}

/* Gives memory of a burst back: pool blocks unused for a whole sweep interval, a scratch
 * buffer grown by a large response, and, once enough was freed (connections closed too),
 * the C library's free pages. glibc's malloc returns freed memory to the OS only from the
 * top of its heap (M_TRIM_THRESHOLD); the buffers and connections of a burst of clients
 * are interleaved with memory still in use, so without malloc_trim the process would keep
 * the burst's peak resident. malloc_trim(0) releases the free pages inside the heap too
 * (madvise(MADV_DONTNEED)); it costs a walk over the free chunks, hence the threshold. */
static void server_trim(server_t *s)
{
    db_pool_trim(&s->blocks);
    db_pool_trim(&s->heads);
    if (s->scratch.cap > SCRATCH_KEEP) {
        s->released += s->scratch.cap;
        db_buf_free(&s->scratch);
    }
    s->released += db_pool_take_freed(&s->blocks) + db_pool_take_freed(&s->heads);
#ifdef __GLIBC__
    /* Free memory at the top of the heap, which free() keeps up to MALLOC_TRIM_THRESHOLD
     * (tune_malloc), counts too: whoever freed it (the large bodies of a burst of uploads
     * and their Python copies), it goes back here once the burst is over. */
    if (s->released < TRIM_THRESHOLD && mallinfo2().keepcost < TRIM_THRESHOLD)
        return;
#else
    if (s->released < TRIM_THRESHOLD)
        return;
#endif
    s->released = 0;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static void on_sweep(uv_timer_t *t)
{
    server_t *s = t->data;
    /* The timer was due SWEEP_INTERVAL_MS after its previous run: any more is time the
     * loop spent elsewhere (a handler that blocked it). */
    uint64_t now = uv_now(s->loop);
    uint64_t late =
        now - s->last_sweep > SWEEP_INTERVAL_MS ? now - s->last_sweep - SWEEP_INTERVAL_MS : 0;
    if (s->listening) /* before, the time is the application's startup */
        metrics_loop_lag(s, late);
    s->last_sweep = now;
    s->sweep_late = late > SWEEP_INTERVAL_MS / 2;
    conn_sweep(s, now);
    server_trim(s);
}

/* Large request bodies (an upload of a megabyte: the read buffer, the body's bytes object,
 * the parsed file and its copies) are allocated and freed by every request. glibc raises its
 * mmap threshold to the largest chunk freed so far but keeps M_TRIM_THRESHOLD at twice
 * that, below such a request's working set: each request's last free() then gives the top
 * of the heap back to the OS (brk) and the next one takes a page fault and a zeroed page
 * for every 4 KiB again (a 1 MiB multipart upload: 2.4 ms of CPU per request, 0.36 ms with
 * the thresholds below). Fixed thresholds keep that memory in the heap between requests;
 * the sweep returns it once a burst is over (server_trim). Process-wide, set once. */
static void tune_malloc(void)
{
#ifdef __GLIBC__
    static int done;
    if (done)
        return;
    done = 1;
    mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD);
    mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD);
#endif
}

server_t *server_new(uv_loop_t *loop, const server_config_t *cfg, server_dispatch_cb cb, void *ctx)
{
    tune_malloc();
    server_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->loop = loop;
    s->cfg = *cfg;
    s->dispatch = cb;
    s->ctx = ctx;
    db_pool_init(&s->blocks, SERVER_BLOCK_SIZE, POOL_MAX_FREE);
    db_pool_init(&s->heads, sizeof(http_request_t), POOL_MAX_FREE);
    db_buf_init(&s->scratch);
    if (uv_tcp_init(loop, &s->listener) < 0) {
        free(s);
        return NULL;
    }
    s->listener.data = s;
    s->open_handles = 1;
    uv_idle_init(loop, &s->resume); /* cannot fail: libuv only initialises fields */
    s->resume.data = s;
    s->open_handles++;
    if (uv_timer_init(loop, &s->sweep) == 0) {
        s->sweep.data = s;
        s->open_handles++;
        s->sweep_open = 1;
        uv_timer_start(&s->sweep, on_sweep, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS);
        /* The sweep alone must not keep the loop alive. */
        uv_unref((uv_handle_t *)&s->sweep);
    }
    if (uv_timer_init(loop, &s->ka_timer) == 0) {
        /* Armed only while sessions wait for a ping or a pong (ws_ping.c); those
         * connections keep the loop alive, not the timer. */
        s->ka_timer.data = s;
        s->open_handles++;
        s->ka_timer_open = 1;
        uv_unref((uv_handle_t *)&s->ka_timer);
    }
    uv_idle_init(loop, &s->ws_flush); /* cannot fail: libuv only initialises fields */
    s->ws_flush.data = s;
    s->open_handles++;
    s->ws_flush_open = 1;
    return s;
}

static void on_connection(uv_stream_t *listener, int status)
{
    server_t *s = listener->data;
    pyloop_enter(pyloop_from_uv(listener->loop));
    if (status < 0 || s->closing)
        return;
    conn_accept(s);
}

static int server_start_listening(server_t *s)
{
    int r = uv_listen((uv_stream_t *)&s->listener, s->cfg.backlog, on_connection);
    if (r == 0) {
        s->listening = 1;
        /* The loop lag counts from here: the application's startup, between server_new
         * and now, is no lag of serving. */
        uv_update_time(s->loop);
        s->last_sweep = uv_now(s->loop);
    }
    return r;
}

int server_listen(server_t *s, const char *host, int port, int reuse_port, int *bound_port)
{
    struct sockaddr_storage addr;
    int r;
    if (strchr(host, ':') != NULL)
        r = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    else
        r = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (r < 0)
        return r;
    if (reuse_port) {
        /* SO_REUSEPORT (one listener per worker, the kernel spreads connections) must be
         * set before bind(2), so the socket is made here and handed to libuv. */
        int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return uv_translate_sys_error(errno);
        int one = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
            (r = uv_tcp_open(&s->listener, fd)) < 0) {
            r = r < 0 ? r : uv_translate_sys_error(errno);
            close(fd);
            return r;
        }
    }
    r = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (r < 0)
        return r;
    r = server_start_listening(s);
    if (r < 0)
        return r;
    if (bound_port) {
        struct sockaddr_storage name;
        int len = sizeof(name);
        *bound_port = port;
        if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&name, &len) == 0)
            *bound_port =
                ntohs(name.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&name)->sin6_port
                                                 : ((struct sockaddr_in *)&name)->sin_port);
    }
    return 0;
}

int server_listen_fd(server_t *s, int fd)
{
    int r = uv_tcp_open(&s->listener, fd);
    if (r < 0)
        return r;
    return server_start_listening(s);
}

size_t server_connection_count(const server_t *s)
{
    return s->nconns;
}

uint64_t server_request_count(const server_t *s)
{
    return s->requests;
}

void server_buffer_stats(const server_t *s, server_buffer_stats_t *out)
{
    out->blocks_lent = s->blocks.lent;
    out->blocks_free = s->blocks.nfree;
    out->heads_lent = s->heads.lent;
    out->heads_free = s->heads.nfree;
}

static void on_server_handle_closed(uv_handle_t *h);

void server_maybe_finish_close(server_t *s)
{
    if (s->closing && s->nlive == 0 && s->sweep_open) {
        /* The sweep ran on for connections given a grace (conn_shutdown_idle). */
        s->sweep_open = 0;
        uv_timer_stop(&s->sweep);
        uv_close((uv_handle_t *)&s->sweep, on_server_handle_closed);
        return;
    }
    /* nlive, not nconns: a closed connection still referenced by its pending request gives
     * its buffers back to the pools when it is freed. */
    if (!s->closing || s->open_handles > 0 || s->nlive > 0)
        return;
    void (*cb)(void *) = s->on_closed;
    void *arg = s->closed_arg;
    db_pool_destroy(&s->blocks);
    db_pool_destroy(&s->heads);
    db_buf_free(&s->scratch);
    gzip_encoder_free(s->gzip_enc);
    free(s->gzip_excluded);
    db_buf_free(&s->gzip_out);
    tls_context_unref(s->tls);
    free(s->tls_in);
    free(s);
    if (cb)
        cb(arg);
}

static void on_server_handle_closed(uv_handle_t *h)
{
    server_t *s = h->data;
    s->open_handles--;
    server_maybe_finish_close(s);
}

void server_close(server_t *s, void (*on_closed)(void *arg), void *arg)
{
    if (s->closing)
        return;
    s->closing = 1;
    s->on_closed = on_closed;
    s->closed_arg = arg;
    uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    /* Connections waiting for the idle phase are resumed now: the idle handle closes. */
    conn_run_resumes(s);
    uv_close((uv_handle_t *)&s->resume, on_server_handle_closed);
    /* Output queued by WebSocket handlers goes out before the sessions get their 1001. */
    ws_run_flushes(s);
    s->ws_flush_open = 0;
    uv_close((uv_handle_t *)&s->ws_flush, on_server_handle_closed);
    if (s->ka_timer_open) {
        /* Closing sessions are pinged no more (their close handshake has its timeout). */
        s->ka_timer_open = 0;
        uv_close((uv_handle_t *)&s->ka_timer, on_server_handle_closed);
    }
    server_conn_t *c = s->conns, *next;
    for (; c; c = next) {
        next = c->next;
        conn_shutdown_idle(c);
    }
    /* The sweep closes once no connection is left (server_maybe_finish_close). */
    server_maybe_finish_close(s);
}

int server_set_gzip(server_t *s, int level, size_t minimum_size, const char *excluded,
                    size_t excluded_len)
{
    gzip_encoder_t *enc = gzip_encoder_new(level);
    char *copy = malloc(excluded_len + 1);
    if (enc == NULL || copy == NULL) {
        gzip_encoder_free(enc);
        free(copy);
        return -1;
    }
    memcpy(copy, excluded, excluded_len);
    copy[excluded_len] = '\0';
    gzip_encoder_free(s->gzip_enc);
    free(s->gzip_excluded);
    s->gzip_enc = enc;
    s->gzip_excluded = copy;
    s->gzip.level = level;
    s->gzip.minimum_size = minimum_size;
    s->gzip.excluded = copy;
    s->gzip.excluded_len = excluded_len;
    return 0;
}
