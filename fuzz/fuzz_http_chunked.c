/*
 * libFuzzer target for the in-place chunked decoder (csrc/http/chunked.c). The input is
 * decoded in one call, in two pieces split at a point derived from the input, and (for
 * short inputs) one byte at a time; all must agree on the result code, the decoded body
 * and the leftover bytes. It also checks the in-place contract: the body never grows past
 * the input, total counts what was produced, and the limit is respected. Pieces are copied
 * into exact-size buffers so ASan flags any overrun. The target owns only those copies.
 */
#include "http/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int rc;
    uint8_t *body; /* size bytes of room */
    size_t body_len;
    uint8_t *rest; /* size bytes of room */
    size_t rest_len;
} outcome_t;

static void decode(const uint8_t *data, size_t size, const size_t *cuts, size_t ncuts,
                   uint64_t max_body, outcome_t *o)
{
    http_chunked_t d;
    http_chunked_init(&d, max_body);
    o->rc = 0;
    o->body_len = 0;
    o->rest_len = 0;
    size_t start = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t stop = i < ncuts ? cuts[i] : size;
        size_t len = stop - start, in_len = len, leftover = 12345;
        char *piece = malloc(len ? len : 1);
        if (!piece)
            abort();
        memcpy(piece, data + start, len);
        int rc = http_chunked_decode(&d, piece, &len, &leftover);
        if (len > in_len || (rc == 1 ? len + leftover > in_len : leftover != 0))
            abort();
        if (rc < 0 && (http_error_status(rc) < 400 || rc <= HTTP_E__LAST))
            abort();
        if (rc > 1)
            abort();
        memcpy(o->body + o->body_len, piece, len);
        o->body_len += len;
        if (rc == 1) {
            memcpy(o->rest, piece + len, leftover);
            memcpy(o->rest + leftover, data + stop, size - stop);
            o->rest_len = leftover + size - stop;
        }
        free(piece);
        start = stop;
        o->rc = rc;
        if (rc != 0)
            break;
    }
    if (o->body_len != d.total || d.total > max_body)
        abort();
}

static int same(const outcome_t *a, const outcome_t *b)
{
    return a->rc == b->rc && a->body_len == b->body_len &&
           memcmp(a->body, b->body, a->body_len) == 0 && a->rest_len == b->rest_len &&
           memcmp(a->rest, b->rest, a->rest_len) == 0;
}

static void run(const uint8_t *data, size_t size, uint64_t max_body)
{
    size_t room = size ? size : 1;
    outcome_t a = {0, malloc(room), 0, malloc(room), 0};
    outcome_t b = {0, malloc(room), 0, malloc(room), 0};
    if (!a.body || !a.rest || !b.body || !b.rest)
        abort();
    decode(data, size, NULL, 0, max_body, &a);

    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    size_t cut = size ? h % (size + 1) : 0;
    decode(data, size, &cut, 1, max_body, &b);
    if (!same(&a, &b))
        abort();

    if (size > 1 && size <= 2048) {
        size_t *cuts = malloc((size - 1) * sizeof(*cuts));
        if (!cuts)
            abort();
        for (size_t i = 0; i < size - 1; i++)
            cuts[i] = i + 1;
        decode(data, size, cuts, size - 1, max_body, &b);
        free(cuts);
        if (!same(&a, &b))
            abort();
    }
    free(a.body);
    free(a.rest);
    free(b.body);
    free(b.rest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size, UINT64_MAX);
    run(data, size, size / 3);
    return 0;
}
