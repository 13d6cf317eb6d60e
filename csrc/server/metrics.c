/*
 * Metrics: each worker counts into its own slot of a shared memory area (the supervisor
 * maps it before forking, MAP_SHARED), and whichever worker a scrape reaches sums every
 * slot and answers in the Prometheus text exposition format (version 0.0.4). Counting is
 * a relaxed atomic add per event (one writer per slot, readers in other processes); gauges
 * are differences of counters (in flight = requests - responses - abandoned, open
 * connections = opened - closed), so a slot stays consistent whatever a reader sees, and
 * the supervisor settles the slot of a dead worker (its in-flight requests and open
 * connections are gone) before a replacement counts on into it.
 *
 * Per request the cost is a clock read at dispatch and one at the response head
 * (uv_hrtime, a vDSO call) and five relaxed adds into this process's own cache lines:
 * requests, the status class, a latency bucket, the latency sum, and the (route, method,
 * class) cell. Route ids are set by the application layer (server_conn_set_route) and
 * named by metrics_routes; the scrape prints only the cells that are not zero.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

_Static_assert(sizeof(server_metrics_t) == SERVER_METRICS_SLOT_SIZE,
               "a slot is the size the Python side lays out");

void metrics_add(uint64_t *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Upper bounds of the latency buckets in microseconds (Prometheus le labels below); the
 * first ones are small because most answers of this server take well under a millisecond. */
static const uint64_t bucket_us[SERVER_METRICS_BUCKETS] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 10000000};
static const char *const bucket_le[SERVER_METRICS_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "10"};
static const char *const method_names[SERVER_METRICS_METHODS] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"};

void metrics_request(server_conn_t *c, const http_request_t *h)
{
    metrics_add(&conn_metrics(c)->requests);
    c->awaiting = 1;
    c->metrics_start = uv_hrtime();
    c->metrics_route = 0;
    /* http_method_t lists GET..OPTIONS first, in method_names' order. */
    c->metrics_method = h->method <= HTTP_OPTIONS ? (uint8_t)h->method : SERVER_METRICS_METHODS - 1;
}

void server_conn_set_route(server_conn_t *c, unsigned id)
{
    if (c->server->cfg.metrics != NULL)
        c->metrics_route = id < SERVER_METRICS_ROUTES ? (uint16_t)id : 0;
}

void metrics_response(server_conn_t *c, int status)
{
    server_metrics_t *m = conn_metrics(c);
    /* 100..999 here; the rare 6xx..9xx an application may send count with 5xx. */
    int k = status / 100 - 1;
    k = k > 4 ? 4 : k;
    metrics_add(&m->responses[k]);
    uint64_t us = (uv_hrtime() - c->metrics_start) / 1000;
    size_t b = 0;
    while (b < SERVER_METRICS_BUCKETS && us > bucket_us[b])
        b++;
    metrics_add(&m->latency[b]);
    __atomic_fetch_add(&m->latency_us, us, __ATOMIC_RELAXED);
    metrics_add(&m->by_route[c->metrics_route][c->metrics_method][k]);
}

void metrics_bytes(server_conn_t *c, int out, size_t n)
{
    server_metrics_t *m = conn_metrics(c);
    __atomic_fetch_add(out ? &m->bytes_out : &m->bytes_in, (uint64_t)n, __ATOMIC_RELAXED);
}

void metrics_loop_lag(server_t *s, uint64_t lag_ms)
{
    if (s->cfg.metrics == NULL)
        return;
    server_metrics_t *m = &s->cfg.metrics[s->cfg.metrics_slot];
    __atomic_store_n(&m->loop_lag_us, lag_ms * 1000, __ATOMIC_RELAXED);
    __atomic_fetch_add(&m->loop_lag_total_us, lag_ms * 1000, __ATOMIC_RELAXED);
}

int metrics_is_scrape(const server_conn_t *c, const http_request_t *h)
{
    const server_config_t *cfg = &c->server->cfg;
    return cfg->metrics_path_len && (h->method == HTTP_GET || h->method == HTTP_HEAD) &&
           h->path_len == cfg->metrics_path_len &&
           memcmp(h->path, cfg->metrics_path, h->path_len) == 0;
}

static int put(db_buf_t *b, const char *help, const char *type, const char *name,
               const char *labels, uint64_t value)
{
    char line[512];
    int n = 0;
    if (help != NULL)
        n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    if (n < 0 || (size_t)n >= sizeof(line) || db_buf_append(b, line, (size_t)n) < 0)
        return -1;
    n = snprintf(line, sizeof(line), "%s%s %" PRIu64 "\n", name, labels, value);
    if (n < 0 || (size_t)n >= sizeof(line))
        return -1;
    return db_buf_append(b, line, (size_t)n);
}

/* A label value as Prometheus' text format wants it: backslash, double quote and line feed
 * escaped. */
static int put_label(db_buf_t *b, const char *v)
{
    int r = 0;
    for (; *v && r == 0; v++) {
        if (*v == '\\' || *v == '"')
            r = db_buf_putc(b, '\\') < 0 ? -1 : db_buf_putc(b, *v);
        else if (*v == '\n')
            r = db_buf_append(b, "\\n", 2);
        else
            r = db_buf_putc(b, *v);
    }
    return r < 0 ? -1 : 0;
}

static int put_histogram(db_buf_t *b, const server_metrics_t *sum, uint64_t count)
{
    static const char name[] = "data_bridge_request_duration_seconds";
    char line[160];
    int n = snprintf(line, sizeof(line),
                     "# HELP %s Time from a request's dispatch to its response head.\n"
                     "# TYPE %s histogram\n",
                     name, name);
    if (n < 0 || (size_t)n >= sizeof(line) || db_buf_append(b, line, (size_t)n) < 0)
        return -1;
    uint64_t cumulative = 0;
    for (int i = 0; i <= SERVER_METRICS_BUCKETS; i++) {
        cumulative += sum->latency[i];
        n = snprintf(line, sizeof(line), "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
                     i < SERVER_METRICS_BUCKETS ? bucket_le[i] : "+Inf", cumulative);
        if (n < 0 || (size_t)n >= sizeof(line) || db_buf_append(b, line, (size_t)n) < 0)
            return -1;
    }
    n = snprintf(line, sizeof(line), "%s_sum %" PRIu64 ".%06" PRIu64 "\n%s_count %" PRIu64 "\n",
                 name, sum->latency_us / 1000000, sum->latency_us % 1000000, name, count);
    if (n < 0 || (size_t)n >= sizeof(line))
        return -1;
    return db_buf_append(b, line, (size_t)n);
}

static int put_routes(db_buf_t *b, const server_config_t *cfg, const server_metrics_t *sum)
{
    static const char help[] =
        "# HELP data_bridge_route_responses_total Responses by request method, route template "
        "and status class.\n# TYPE data_bridge_route_responses_total counter\n";
    if (db_buf_append(b, help, sizeof(help) - 1) < 0)
        return -1;
    static const char open[] = "data_bridge_route_responses_total{method=\"";
    static const char mid[] = "\",route=\"";
    static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (size_t r = 0; r < SERVER_METRICS_ROUTES; r++) {
        const char *route = r < cfg->metrics_nroutes && cfg->metrics_routes[r] != NULL
                                ? cfg->metrics_routes[r]
                                : "";
        for (size_t m = 0; m < SERVER_METRICS_METHODS; m++) {
            for (int k = 0; k < 5; k++) {
                uint64_t v = sum->by_route[r][m][k];
                if (v == 0)
                    continue;
                char tail[64];
                int n =
                    snprintf(tail, sizeof(tail), "\",status=\"%s\"} %" PRIu64 "\n", classes[k], v);
                if (n < 0 || (size_t)n >= sizeof(tail))
                    return -1;
                if (db_buf_append(b, open, sizeof(open) - 1) < 0 ||
                    db_buf_append(b, method_names[m], strlen(method_names[m])) < 0 ||
                    db_buf_append(b, mid, sizeof(mid) - 1) < 0 || put_label(b, route) < 0 ||
                    db_buf_append(b, tail, (size_t)n) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

static void sum_slot(server_metrics_t *sum, const server_metrics_t *m)
{
    sum->requests += load(&m->requests);
    for (int k = 0; k < 5; k++)
        sum->responses[k] += load(&m->responses[k]);
    sum->abandoned += load(&m->abandoned);
    sum->conns_opened += load(&m->conns_opened);
    sum->conns_closed += load(&m->conns_closed);
    sum->restarts += load(&m->restarts);
    sum->bytes_in += load(&m->bytes_in);
    sum->bytes_out += load(&m->bytes_out);
    sum->latency_us += load(&m->latency_us);
    sum->loop_lag_total_us += load(&m->loop_lag_total_us);
    uint64_t lag = load(&m->loop_lag_us);
    if (lag > sum->loop_lag_us)
        sum->loop_lag_us = lag; /* the worst worker's, not a sum */
    for (int i = 0; i <= SERVER_METRICS_BUCKETS; i++)
        sum->latency[i] += load(&m->latency[i]);
    for (size_t r = 0; r < SERVER_METRICS_ROUTES; r++)
        for (size_t me = 0; me < SERVER_METRICS_METHODS; me++)
            for (int k = 0; k < 5; k++)
                sum->by_route[r][me][k] += load(&m->by_route[r][me][k]);
}

int metrics_respond(server_conn_t *c)
{
    const server_config_t *cfg = &c->server->cfg;
    /* About 40 KiB: on the heap, not the loop thread's stack. */
    server_metrics_t *sum = calloc(1, sizeof(*sum));
    if (sum == NULL) {
        conn_close(c);
        return -1;
    }
    for (size_t i = 0; i < cfg->metrics_slots; i++)
        sum_slot(sum, &cfg->metrics[i]);
    uint64_t answered = 0, timed = 0;
    for (int k = 0; k < 5; k++)
        answered += sum->responses[k];
    for (int i = 0; i <= SERVER_METRICS_BUCKETS; i++)
        timed += sum->latency[i];
    /* Counters of one slot are read one by one while its worker counts: a response may be
     * seen before its request; the gauges never go below zero for it. */
    uint64_t done = answered + sum->abandoned;
    uint64_t in_flight = sum->requests > done ? sum->requests - done : 0;
    uint64_t open =
        sum->conns_opened > sum->conns_closed ? sum->conns_opened - sum->conns_closed : 0;
    db_buf_t *b = server_conn_scratch(c);
    b->len = 0;
    static const char *const classes[5] = {"{class=\"1xx\"}", "{class=\"2xx\"}", "{class=\"3xx\"}",
                                           "{class=\"4xx\"}", "{class=\"5xx\"}"};
    int r = put(b, "Requests received, all workers.", "counter", "data_bridge_requests_total", "",
                sum->requests);
    for (int k = 0; k < 5 && r == 0; k++)
        r = put(b, k == 0 ? "Responses sent, by status class." : NULL, "counter",
                "data_bridge_responses_total", classes[k], sum->responses[k]);
    if (r == 0)
        r = put(b, "Requests whose connection closed before their response.", "counter",
                "data_bridge_requests_abandoned_total", "", sum->abandoned);
    if (r == 0)
        r = put(b, "Requests being handled.", "gauge", "data_bridge_requests_in_flight", "",
                in_flight);
    if (r == 0)
        r = put(b, "Open connections.", "gauge", "data_bridge_connections", "", open);
    if (r == 0)
        r = put(b, "Connections accepted.", "counter", "data_bridge_connections_total", "",
                sum->conns_opened);
    if (r == 0)
        r = put(b, "Workers replaced after they died.", "counter",
                "data_bridge_worker_restarts_total", "", sum->restarts);
    if (r == 0)
        r = put(b, "Bytes read from connections.", "counter", "data_bridge_received_bytes_total",
                "", sum->bytes_in);
    if (r == 0)
        r = put(b, "Bytes written to connections (sendfile bodies not included).", "counter",
                "data_bridge_sent_bytes_total", "", sum->bytes_out);
    if (r == 0) {
        char line[320];
        int n = snprintf(line, sizeof(line),
                         "# HELP data_bridge_loop_lag_seconds How late the busiest worker's "
                         "event loop ran its last once-a-second timer.\n"
                         "# TYPE data_bridge_loop_lag_seconds gauge\n"
                         "data_bridge_loop_lag_seconds %" PRIu64 ".%03" PRIu64 "\n",
                         sum->loop_lag_us / 1000000, sum->loop_lag_us / 1000 % 1000);
        r = n < 0 || (size_t)n >= sizeof(line) ? -1 : db_buf_append(b, line, (size_t)n);
    }
    if (r == 0) {
        char line[320];
        int n = snprintf(line, sizeof(line),
                         "# HELP data_bridge_loop_lag_seconds_total Time the event loops ran "
                         "their once-a-second timer late, all workers.\n"
                         "# TYPE data_bridge_loop_lag_seconds_total counter\n"
                         "data_bridge_loop_lag_seconds_total %" PRIu64 ".%03" PRIu64 "\n",
                         sum->loop_lag_total_us / 1000000, sum->loop_lag_total_us / 1000 % 1000);
        r = n < 0 || (size_t)n >= sizeof(line) ? -1 : db_buf_append(b, line, (size_t)n);
    }
    if (r == 0)
        r = put_histogram(b, sum, timed);
    if (r == 0)
        r = put_routes(b, cfg, sum);
    free(sum);
    if (r < 0) {
        conn_close(c);
        return -1;
    }
    static const char ctype[] = "text/plain; version=0.0.4; charset=utf-8";
    return server_conn_respond(c, 200, ctype, sizeof(ctype) - 1, NULL, 0, b->data, b->len);
}
