/*
 * A bounded pool of equally sized memory blocks, lent for as long as a piece of work needs
 * them (the server lends connection read/write buffers and parsed-request state from one,
 * so an idle keep-alive connection holds none).
 *
 * Blocks are plain malloc() allocations of block_size bytes, so a db_buf_t whose storage is
 * a lent block may grow past it with realloc (db_buf_grow); db_pool_give_buf then frees the
 * grown storage instead of keeping it. At most max_free blocks wait in the free list; more
 * are freed at once, and db_pool_trim frees the blocks that were not needed since its
 * previous call, so memory taken in a burst goes back once the burst is over.
 *
 * Not thread-safe: one pool belongs to one event loop.
 */
#ifndef DB_COMMON_POOL_H
#define DB_COMMON_POOL_H

#include <stddef.h>

#include "common/buf.h"

typedef struct db_pool_block db_pool_block_t;

typedef struct {
    size_t block_size;
    size_t max_free;  /* blocks kept in the free list; more are freed at once */
    size_t nfree;     /* blocks in the free list */
    size_t low_water; /* fewest blocks in the free list since the last db_pool_trim */
    size_t lent;      /* blocks taken and not given back (grown buffers excluded) */
    size_t freed;     /* bytes given back to malloc since db_pool_take_freed */
    db_pool_block_t *free_list;
} db_pool_t;

/* block_size must be at least sizeof(void *) (a free block holds the list link). */
void db_pool_init(db_pool_t *p, size_t block_size, size_t max_free);
/* Frees the blocks in the free list. Blocks still lent must not be given back afterwards. */
void db_pool_destroy(db_pool_t *p);
/* Frees the blocks that stayed in the free list since the previous call (the low-water
 * mark), so that a pool sized by a burst shrinks again. Returns the bytes freed. */
size_t db_pool_trim(db_pool_t *p);
/* Bytes given back to malloc (by db_pool_give beyond max_free, db_pool_give_buf of grown
 * buffers and db_pool_trim) since the previous call; for a caller that decides when to
 * ask the C library to return memory to the OS (malloc_trim). */
size_t db_pool_take_freed(db_pool_t *p);

/* Slow paths of the inline functions below (an empty or a full free list). */
void *db_pool_take_new(db_pool_t *p);
void db_pool_give_free(db_pool_t *p, void *block);
void db_pool_give_grown(db_pool_t *p, db_buf_t *b);

struct db_pool_block {
    db_pool_block_t *next;
};

/* A block of block_size bytes (contents undefined), or NULL when out of memory. Inline:
 * the server takes and gives several blocks per request. */
static inline void *db_pool_take(db_pool_t *p)
{
    db_pool_block_t *b = p->free_list;
    if (b == NULL)
        return db_pool_take_new(p);
    p->free_list = b->next;
    p->nfree--;
    if (p->low_water > p->nfree)
        p->low_water = p->nfree;
    p->lent++;
    return b;
}

/* Gives a block taken from p back. */
static inline void db_pool_give(db_pool_t *p, void *block)
{
    if (p->nfree >= p->max_free) {
        db_pool_give_free(p, block);
        return;
    }
    db_pool_block_t *b = block;
    b->next = p->free_list;
    p->free_list = b;
    p->nfree++;
    p->lent--;
}

/* Gives b a block as its storage (len 0, cap block_size). b must have no storage. Returns
 * 0, or -1 when out of memory (b is unchanged). */
static inline int db_pool_lend_buf(db_pool_t *p, db_buf_t *b)
{
    char *block = db_pool_take(p);
    if (block == NULL)
        return -1;
    b->data = block;
    b->len = 0;
    b->cap = p->block_size;
    return 0;
}

/* Takes b's storage away (b is left empty, without storage): a block-sized one goes back
 * to the pool, a grown one to free(). Nothing happens when b has no storage. */
static inline void db_pool_give_buf(db_pool_t *p, db_buf_t *b)
{
    if (b->data == NULL)
        return;
    if (b->cap == p->block_size)
        db_pool_give(p, b->data);
    else
        db_pool_give_grown(p, b);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

#endif
