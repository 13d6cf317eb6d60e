/*
 * The block pool: a LIFO free list (the most recently used block is the one most likely
 * still in the CPU cache), bounded by max_free, shrunk by db_pool_trim down to what was in
 * use since the previous trim.
 */
#include "common/pool.h"

#include <stdlib.h>

void db_pool_init(db_pool_t *p, size_t block_size, size_t max_free)
{
    p->block_size = block_size < sizeof(db_pool_block_t) ? sizeof(db_pool_block_t) : block_size;
    p->max_free = max_free;
    p->nfree = 0;
    p->low_water = 0;
    p->lent = 0;
    p->freed = 0;
    p->free_list = NULL;
}

static void pool_free_blocks(db_pool_t *p, size_t n)
{
    while (n-- > 0 && p->free_list) {
        db_pool_block_t *b = p->free_list;
        p->free_list = b->next;
        p->nfree--;
        free(b);
        p->freed += p->block_size;
    }
    if (p->low_water > p->nfree)
        p->low_water = p->nfree;
}

void db_pool_destroy(db_pool_t *p)
{
    pool_free_blocks(p, p->nfree);
}

void *db_pool_take_new(db_pool_t *p)
{
    void *b = malloc(p->block_size);
    if (b != NULL)
        p->lent++;
    return b;
}

void db_pool_give_free(db_pool_t *p, void *block)
{
    free(block);
    p->freed += p->block_size;
    p->lent--;
}

void db_pool_give_grown(db_pool_t *p, db_buf_t *b)
{
    /* Grown past the block by realloc: the block itself is gone, and storage of another
     * size is not kept. */
    free(b->data);
    p->freed += b->cap;
    p->lent--;
}

size_t db_pool_trim(db_pool_t *p)
{
    size_t before = p->freed;
    /* The low-water mark counts blocks that nobody took since the previous trim. */
    pool_free_blocks(p, p->low_water);
    p->low_water = p->nfree;
    return p->freed - before;
}

size_t db_pool_take_freed(db_pool_t *p)
{
    size_t n = p->freed;
    p->freed = 0;
    return n;
}
