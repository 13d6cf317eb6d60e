/*
 * Growable byte buffer shared by the JSON encoder, the response writer and the
 * connection read path. The buffer owns `data`; callers own the db_buf_t itself.
 * Functions return 0 on success and -1 when memory runs out (data is unchanged then).
 */
#ifndef DB_COMMON_BUF_H
#define DB_COMMON_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} db_buf_t;

void db_buf_init(db_buf_t *b);
void db_buf_free(db_buf_t *b);
/* Grows capacity so that `extra` more bytes fit after len; slow path of db_buf_reserve. */
int db_buf_grow(db_buf_t *b, size_t extra);
/* Drops the first n bytes, moving the rest to the front (used after a request is consumed). */
void db_buf_consume(db_buf_t *b, size_t n);

static inline int db_buf_reserve(db_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    return db_buf_grow(b, extra);
}

static inline int db_buf_append(db_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0; /* memcpy to a NULL buffer is undefined even for 0 bytes */
    if (db_buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static inline int db_buf_putc(db_buf_t *b, char c)
{
    if (db_buf_reserve(b, 1) < 0)
        return -1;
    b->data[b->len++] = c;
    return 0;
}

#endif
