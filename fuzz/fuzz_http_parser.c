/*
 * libFuzzer target for the request-head parser (csrc/http/parser.c). Each input is parsed
 * with the default limits and with small limits derived from its length, so the 414/431
 * paths are reached too. For every parse the target checks invariants that hold whatever the
 * right answer is: a positive result equals header_bytes and lies within the input, every
 * slice (method, target, path, query, field names and values) lies inside the head, values
 * carry no surrounding whitespace, framing facts are consistent; and feeding the same bytes
 * as growing prefixes split at two pseudo-random points gives the same result as one call.
 * Each prefix is copied into a buffer of exactly its length so ASan flags any over-read.
 * The target owns only its copies, freed before it returns.
 */
#include "http/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int inside(const char *p, size_t n, const char *lo, size_t len)
{
    return p >= lo && n <= len && (size_t)(p - lo) <= len - n;
}

static void check_request(const char *buf, int rc, const http_request_t *r,
                          const http_limits_t *lim)
{
    size_t hb = (size_t)rc;
    if (r->header_bytes != hb || hb > lim->max_header_bytes)
        abort();
    if (r->method_len == 0 || !inside(r->method_str, r->method_len, buf, hb))
        abort();
    if (r->target_len == 0 || r->target_len > lim->max_target ||
        !inside(r->target, r->target_len, buf, hb))
        abort();
    /* Absolute-form without a path uses a static "/" outside the buffer. */
    int static_root = r->path_len == 1 && r->path[0] == '/' && !inside(r->path, 1, buf, hb);
    if (!static_root && !inside(r->path, r->path_len, r->target, r->target_len))
        abort();
    if (r->query && !inside(r->query, r->query_len, r->target, r->target_len))
        abort();
    if (!r->query && r->query_len)
        abort();
    if (r->version_minor != 0 && r->version_minor != 1)
        abort();
    if (r->num_headers > lim->max_headers || r->num_headers > HTTP_MAX_HEADERS)
        abort();
    for (size_t i = 0; i < r->num_headers; i++) {
        const http_header_t *h = &r->headers[i];
        if (h->name_len == 0 || !inside(h->name, h->name_len, buf, hb))
            abort();
        if (!inside(h->value, h->value_len, buf, hb))
            abort();
        if (h->value_len &&
            (h->value[0] == ' ' || h->value[0] == '\t' || h->value[h->value_len - 1] == ' ' ||
             h->value[h->value_len - 1] == '\t'))
            abort();
        if (http_find_header(r, h->name, h->name_len) == NULL)
            abort();
    }
    if (r->content_length < -1 || (r->chunked && r->content_length != -1))
        abort();
    if (r->chunked && r->version_minor == 0)
        abort();
    if (r->version_minor == 1 && !r->has_host)
        abort();
    if (r->method >= HTTP_METHOD_COUNT || http_method_name(r->method)[0] == '\0')
        abort();
}

static int parse_copy(http_parser_t *p, const uint8_t *data, size_t len, const http_limits_t *lim,
                      http_request_t *r, char **keep)
{
    char *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    memcpy(copy, data, len);
    int rc = http_parse_request(p, copy, len, lim, r);
    if (rc > 0)
        check_request(copy, rc, r, lim);
    if (rc < 0 && (http_error_status(rc) < 400 || http_error_message(rc)[0] == '\0'))
        abort();
    if (rc <= HTTP_E__LAST || (size_t)(rc > 0 ? rc : 0) > len)
        abort();
    if (keep)
        *keep = copy;
    else
        free(copy);
    return rc;
}

static void run(const uint8_t *data, size_t size, const http_limits_t *lim)
{
    static http_request_t one, inc;
    http_parser_t p;
    http_parser_reset(&p);
    int rc = parse_copy(&p, data, size, lim, &one, NULL);

    /* Two split points from a cheap hash of the input. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    size_t k1 = size ? h % (size + 1) : 0;
    size_t k2 = size ? (h >> 11) % (size + 1) : 0;
    if (k1 > k2) {
        size_t t = k1;
        k1 = k2;
        k2 = t;
    }
    size_t cuts[3] = {k1, k2, size};
    http_parser_reset(&p);
    int rc2 = 0;
    for (int i = 0; i < 3 && rc2 == 0; i++)
        rc2 = parse_copy(&p, data, cuts[i], lim, &inc, NULL);
    if (rc2 != rc)
        abort();
    if (rc > 0 && (inc.num_headers != one.num_headers || inc.method != one.method ||
                   inc.content_length != one.content_length || inc.chunked != one.chunked ||
                   inc.keep_alive != one.keep_alive || inc.path_len != one.path_len ||
                   inc.query_len != one.query_len || inc.expect_continue != one.expect_continue))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    http_limits_t lim;
    http_limits_default(&lim);
    run(data, size, &lim);
    lim.max_target = size / 4;
    lim.max_header_bytes = size / 2 + 1;
    lim.max_headers = size % 8;
    run(data, size, &lim);
    return 0;
}
