/*
 * Metrics: each worker counts into its own slot of a shared memory area (the supervisor
 * maps it before forking, MAP_SHARED), and whichever worker a scrape reaches sums every
 * slot and answers in the Prometheus text exposition format (version 0.0.4). Counting is
 * a relaxed atomic add per event (one writer per slot, readers in other processes); gauges
 * are differences of counters (in flight = requests - responses - abandoned, open
 * connections = opened - closed), so a slot stays consistent whatever a reader sees, and
 * the supervisor settles the slot of a dead worker (its in-flight requests and open
 * connections are gone) before a replacement counts on into it.
 */
#include <inttypes.h>
#include <stdio.h>

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

int metrics_respond(server_conn_t *c)
{
    const server_config_t *cfg = &c->server->cfg;
    server_metrics_t sum = {0};
    for (size_t i = 0; i < cfg->metrics_slots; i++) {
        const server_metrics_t *m = &cfg->metrics[i];
        sum.requests += load(&m->requests);
        for (int k = 0; k < 5; k++)
            sum.responses[k] += load(&m->responses[k]);
        sum.abandoned += load(&m->abandoned);
        sum.conns_opened += load(&m->conns_opened);
        sum.conns_closed += load(&m->conns_closed);
        sum.restarts += load(&m->restarts);
    }
    uint64_t answered = 0;
    for (int k = 0; k < 5; k++)
        answered += sum.responses[k];
    /* Counters of one slot are read one by one while its worker counts: a response may be
     * seen before its request; the gauges never go below zero for it. */
    uint64_t done = answered + sum.abandoned;
    uint64_t in_flight = sum.requests > done ? sum.requests - done : 0;
    uint64_t open = sum.conns_opened > sum.conns_closed ? sum.conns_opened - sum.conns_closed : 0;
    db_buf_t *b = server_conn_scratch(c);
    b->len = 0;
    static const char *const classes[5] = {"{class=\"1xx\"}", "{class=\"2xx\"}", "{class=\"3xx\"}",
                                           "{class=\"4xx\"}", "{class=\"5xx\"}"};
    int r = put(b, "Requests received, all workers.", "counter", "data_bridge_requests_total", "",
                sum.requests);
    for (int k = 0; k < 5 && r == 0; k++)
        r = put(b, k == 0 ? "Responses sent, by status class." : NULL, "counter",
                "data_bridge_responses_total", classes[k], sum.responses[k]);
    if (r == 0)
        r = put(b, "Requests whose connection closed before their response.", "counter",
                "data_bridge_requests_abandoned_total", "", sum.abandoned);
    if (r == 0)
        r = put(b, "Requests being handled.", "gauge", "data_bridge_requests_in_flight", "",
                in_flight);
    if (r == 0)
        r = put(b, "Open connections.", "gauge", "data_bridge_connections", "", open);
    if (r == 0)
        r = put(b, "Connections accepted.", "counter", "data_bridge_connections_total", "",
                sum.conns_opened);
    if (r == 0)
        r = put(b, "Workers replaced after they died.", "counter",
                "data_bridge_worker_restarts_total", "", sum.restarts);
    if (r < 0) {
        conn_close(c);
        return -1;
    }
    static const char ctype[] = "text/plain; version=0.0.4; charset=utf-8";
    return server_conn_respond(c, 200, ctype, sizeof(ctype) - 1, NULL, 0, b->data, b->len);
}
