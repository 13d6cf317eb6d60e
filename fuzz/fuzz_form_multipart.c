/*
 * libFuzzer target for the multipart/form-data parser (csrc/form/). The input's first line
 * is the Content-Type value and the rest is the body. The body is parsed in one piece, in
 * three pieces cut at points derived from the input, and (for short inputs) one byte at a
 * time, with the default limits and with small ones; every way must give the same events,
 * the same part data and the same result. The callbacks check the event order, the part
 * fields and the limits, and read every data byte (pieces are exact-size copies, so ASan
 * flags any read past them). The target owns only those copies and its transcripts.
 */
#include "form/form.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t len, cap;
} dbuf_t;

typedef struct {
    dbuf_t events; /* one letter per event, headers and names included */
    dbuf_t data;   /* the part data, parts separated by the events */
    const form_limits_t *lim;
    int in_part, in_headers, finished;
    size_t parts, headers;
    uint64_t part_size;
    int part_is_file;
    int rc;
} rec_t;

static void put(dbuf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 256) + n;
        char *q = realloc(b->p, cap);
        if (q == NULL)
            abort();
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static int on_begin(void *u)
{
    rec_t *r = u;
    if (r->in_part || r->finished || ++r->parts > r->lim->max_parts)
        abort();
    r->in_part = r->in_headers = 1;
    r->headers = 0;
    r->part_size = 0;
    put(&r->events, "B", 1);
    return 0;
}

static int on_header(void *u, const char *n, size_t nl, const char *v, size_t vl)
{
    rec_t *r = u;
    if (!r->in_headers || nl == 0 || ++r->headers > r->lim->max_headers ||
        nl + vl > r->lim->max_header_bytes)
        abort();
    put(&r->events, "H", 1);
    put(&r->events, n, nl);
    put(&r->events, ":", 1);
    put(&r->events, v, vl);
    return 0;
}

static int on_headers_complete(void *u, const form_part_t *p)
{
    rec_t *r = u;
    if (!r->in_headers || p->name == NULL || p->index + 1 != r->parts)
        abort();
    if (p->has_filename ? p->filename == NULL : p->filename != NULL)
        abort();
    if (p->content_type == NULL && p->content_type_len != 0)
        abort();
    r->in_headers = 0;
    r->part_is_file = p->has_filename;
    put(&r->events, "P", 1);
    put(&r->events, p->name, p->name_len);
    if (p->has_filename) {
        put(&r->events, "/", 1);
        put(&r->events, p->filename, p->filename_len);
    }
    if (p->content_type) {
        put(&r->events, "/", 1);
        put(&r->events, p->content_type, p->content_type_len);
    }
    return 0;
}

static int on_data(void *u, const char *d, size_t n)
{
    rec_t *r = u;
    if (!r->in_part || r->in_headers || n == 0)
        abort();
    r->part_size += n;
    if (r->part_size > (r->part_is_file ? r->lim->max_file_size : r->lim->max_field_size))
        abort();
    put(&r->data, d, n); /* reads every byte */
    return 0;
}

static int on_end(void *u)
{
    rec_t *r = u;
    if (!r->in_part || r->in_headers)
        abort();
    r->in_part = 0;
    put(&r->events, "E", 1);
    put(&r->data, "|", 1);
    return 0;
}

static int on_finish(void *u)
{
    rec_t *r = u;
    if (r->in_part || r->finished)
        abort();
    r->finished = 1;
    put(&r->events, "F", 1);
    return 0;
}

static const form_callbacks_t callbacks = {on_begin, on_header, on_headers_complete,
                                           on_data,  on_end,    on_finish};

static void parse(const char *ct, size_t ctlen, const uint8_t *body, size_t n,
                  const form_limits_t *lim, const size_t *cuts, size_t ncuts, rec_t *r)
{
    memset(r, 0, sizeof(*r));
    r->lim = lim;
    int err = 0;
    form_multipart_t *m = form_multipart_new(ct, ctlen, lim, &callbacks, r, &err);
    if (m == NULL) {
        if (err != FORM_E_CONTENT_TYPE && err != FORM_E_NO_BOUNDARY && err != FORM_E_BAD_BOUNDARY)
            abort();
        r->rc = err;
        return;
    }
    int rc = 0, first_error = 0;
    size_t start = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t stop = i < ncuts ? cuts[i] : n, len = stop - start;
        char *piece = malloc(len ? len : 1);
        if (piece == NULL)
            abort();
        memcpy(piece, body + start, len);
        rc = form_multipart_feed(m, piece, len);
        free(piece);
        start = stop;
        if (rc < 0 && first_error == 0)
            first_error = rc;
        if (rc > 1 || rc <= FORM_E__LAST || (first_error && rc != first_error))
            abort(); /* out of range, or an error that did not stick */
        if (rc == 1 && !r->finished)
            abort();
    }
    int fin = form_multipart_finish(m);
    if (rc < 0 ? fin != rc : (fin != 1 && fin != FORM_E_TRUNCATED))
        abort();
    if ((fin == 1) != (r->finished == 1))
        abort();
    r->rc = fin;
    form_multipart_free(m);
}

static void same(const rec_t *a, const rec_t *b)
{
    if (a->rc != b->rc || a->events.len != b->events.len ||
        memcmp(a->events.p, b->events.p, a->events.len) != 0)
        abort();
    /* After a size limit, how much data came first depends on where the pieces were cut. */
    if (a->rc == FORM_E_FIELD_TOO_LARGE || a->rc == FORM_E_FILE_TOO_LARGE)
        return;
    if (a->data.len != b->data.len || memcmp(a->data.p, b->data.p, a->data.len) != 0)
        abort();
}

static void release(rec_t *r)
{
    free(r->events.p);
    free(r->data.p);
}

static void run(const uint8_t *data, size_t size, const form_limits_t *lim)
{
    size_t ctlen = 0;
    while (ctlen < size && ctlen < 256 && data[ctlen] != '\n')
        ctlen++;
    char *ct = malloc(ctlen ? ctlen : 1);
    if (ct == NULL)
        abort();
    memcpy(ct, data, ctlen);
    const uint8_t *body = data + (ctlen < size ? ctlen + 1 : ctlen);
    size_t n = size - (size_t)(body - data);

    rec_t a, b;
    parse(ct, ctlen, body, n, lim, NULL, 0, &a);
    if (a.data.len > n)
        abort();

    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    size_t cuts[2] = {n ? h % (n + 1) : 0, n ? (h >> 13) % (n + 1) : 0};
    if (cuts[0] > cuts[1]) {
        size_t t = cuts[0];
        cuts[0] = cuts[1];
        cuts[1] = t;
    }
    parse(ct, ctlen, body, n, lim, cuts, 2, &b);
    same(&a, &b);
    release(&b);

    if (n > 1 && n <= 2048) {
        size_t *all = malloc((n - 1) * sizeof(*all));
        if (all == NULL)
            abort();
        for (size_t i = 0; i < n - 1; i++)
            all[i] = i + 1;
        parse(ct, ctlen, body, n, lim, all, n - 1, &b);
        free(all);
        same(&a, &b);
        release(&b);
    }
    release(&a);
    free(ct);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    form_limits_t lim;
    form_limits_default(&lim);
    run(data, size, &lim);
    lim.max_parts = 3;
    lim.max_headers = 2;
    lim.max_header_bytes = 64;
    lim.max_field_size = 8;
    lim.max_file_size = 16;
    run(data, size, &lim);
    return 0;
}
