/*
 * libFuzzer target for the proxy fields (csrc/http/forwarded.c): the input, split at '\n',
 * is up to four field values, each given as a Forwarded, an X-Forwarded-For and an
 * X-Forwarded-Host field. Invariants: nothing reads outside the values (each an exact-size
 * copy, so ASan sees it); what a call returns lies inside a value or inside the result's
 * own buffer, is not empty, and a forwarded host is a valid Host value; a proto is one of
 * the four static names.
 */
#include "http/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIELDS 4

static char *vals[FIELDS];
static size_t lens[FIELDS];

static int inside(const char *p, size_t n, const http_forwarded_t *f)
{
    for (size_t i = 0; i < FIELDS; i++)
        if (vals[i] != NULL && p >= vals[i] && p + n <= vals[i] + lens[i])
            return 1;
    return f != NULL && p >= f->buf && p + n <= f->buf + sizeof(f->buf);
}

static void check(const http_trust_t *t, const http_request_t *req)
{
    http_forwarded_t f;
    if (http_forwarded_rfc7239(t, req, &f)) {
        if (f.client != NULL && (f.client_len == 0 || !inside(f.client, f.client_len, &f)))
            abort();
        if (f.client_port < 0 || f.client_port > 65535)
            abort();
        if (f.proto != NULL && strcmp(f.proto, "http") != 0 && strcmp(f.proto, "https") != 0 &&
            strcmp(f.proto, "ws") != 0 && strcmp(f.proto, "wss") != 0)
            abort();
        http_host_t h;
        if (f.host != NULL &&
            (!inside(f.host, f.host_len, &f) || http_parse_host(f.host, f.host_len, &h) != 0))
            abort();
    }
    const char *v;
    size_t n;
    int port;
    if (http_forwarded_client(t, req, &v, &n, &port) && (n == 0 || !inside(v, n, NULL)))
        abort();
    if (http_forwarded_host(t, req, &v, &n) && (n == 0 || !inside(v, n, NULL)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static http_trust_t *some, *all;
    if (some == NULL) {
        some = http_trust_new("127.0.0.1, 10.0.0.0/8, ::1, unknown", 35);
        all = http_trust_new("*", 1);
        if (some == NULL || all == NULL)
            abort();
    }
    http_request_t req;
    memset(&req, 0, sizeof(req));
    memset(vals, 0, sizeof(vals));
    static const char *const names[3] = {"forwarded", "x-forwarded-for", "x-forwarded-host"};
    const char *p = (const char *)data, *end = p + size;
    size_t nf = 0;
    while (nf < FIELDS && p <= end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        vals[nf] = malloc(n ? n : 1);
        if (vals[nf] == NULL)
            goto done;
        memcpy(vals[nf], p, n);
        lens[nf] = n;
        for (size_t k = 0; k < 3; k++) {
            http_header_t *h = &req.headers[req.num_headers++];
            h->name = names[k];
            h->name_len = strlen(names[k]);
            h->value = vals[nf];
            h->value_len = n;
        }
        nf++;
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    check(some, &req);
    check(all, &req);
done:
    for (size_t i = 0; i < FIELDS; i++)
        free(vals[i]);
    return 0;
}
