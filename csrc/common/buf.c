/*
 * db_buf_t growth policy: capacity doubles (starting at 256 bytes) so that appends are
 * amortised O(1). realloc results go to a temporary so a failure leaves the buffer valid.
 */
#include "common/buf.h"

#include <stdint.h>
#include <stdlib.h>

void db_buf_init(db_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void db_buf_free(db_buf_t *b)
{
    free(b->data);
    db_buf_init(b);
}

int db_buf_grow(db_buf_t *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

void db_buf_consume(db_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
