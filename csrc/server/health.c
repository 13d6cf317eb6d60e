/*
 * Probes for Kubernetes and load balancers (--health): liveness on one path, readiness on
 * another, answered by the server before the router, so that a probe costs no Python code
 * and still answers when every handler is busy. Liveness is 200 whenever the process gets
 * to read the request. Readiness is 503 while the server drains (after SIGTERM, during a
 * roll, the worker stops taking new work) and while the application's own check says not
 * ready (ready_check, installed by the Python layer: the user's registered checks).
 */
#include <string.h>

#include "server/server_internal.h"

static int is_path(const http_request_t *h, const char *path, size_t len)
{
    return path != NULL && h->path_len == len && memcmp(h->path, path, len) == 0;
}

int health_answer(server_conn_t *c, const http_request_t *h)
{
    const server_config_t *cfg = &c->server->cfg;
    if (h->method != HTTP_GET && h->method != HTTP_HEAD)
        return 0;
    static const char ctype[] = "application/json";
    static const char ok[] = "{\"status\":\"ok\"}";
    if (is_path(h, cfg->health_path, cfg->health_path_len)) {
        server_conn_respond(c, 200, ctype, sizeof(ctype) - 1, NULL, 0, ok, sizeof(ok) - 1);
        return 1;
    }
    if (!is_path(h, cfg->ready_path, cfg->ready_path_len))
        return 0;
    static const char draining[] = "{\"status\":\"draining\"}";
    static const char unready[] = "{\"status\":\"not ready\"}";
    /* A draining server answers this request, then closes the connection (server_close). */
    if (c->server->closing)
        server_conn_respond(c, 503, ctype, sizeof(ctype) - 1, NULL, 0, draining,
                            sizeof(draining) - 1);
    else if (cfg->ready_check != NULL && cfg->ready_check(cfg->ready_ctx) != 0)
        server_conn_respond(c, 503, ctype, sizeof(ctype) - 1, NULL, 0, unready,
                            sizeof(unready) - 1);
    else
        server_conn_respond(c, 200, ctype, sizeof(ctype) - 1, NULL, 0, ok, sizeof(ok) - 1);
    return 1;
}
