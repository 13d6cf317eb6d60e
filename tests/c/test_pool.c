/*
 * TAP tests for the block pool (csrc/common/pool.c): blocks are reused last-in first-out,
 * the free list never holds more than max_free blocks, a trim frees exactly the blocks
 * that stayed unused since the previous trim, and buffers lent from the pool may grow by
 * realloc and are then freed instead of kept. Run under ASan, so a block used after it was
 * freed, or freed twice, fails the run.
 */
#include "common/pool.h"
#include "tap.h"

#include <stdlib.h>

static void test_reuse_and_bound(void)
{
    db_pool_t p;
    db_pool_init(&p, 4096, 2);
    void *a = db_pool_take(&p), *b = db_pool_take(&p), *c = db_pool_take(&p);
    TAP_OK(a && b && c);
    TAP_EQ_INT(p.lent, 3);
    memset(a, 1, 4096); /* the whole block is usable */
    db_pool_give(&p, a);
    db_pool_give(&p, b);
    db_pool_give(&p, c); /* beyond max_free: freed at once */
    TAP_EQ_INT(p.lent, 0);
    TAP_EQ_INT(p.nfree, 2);
    TAP_EQ_INT(db_pool_take_freed(&p), 4096);
    TAP_EQ_INT(db_pool_take_freed(&p), 0);
    /* Last in, first out. */
    TAP_OK(db_pool_take(&p) == b);
    TAP_OK(db_pool_take(&p) == a);
    TAP_EQ_INT(p.nfree, 0);
    db_pool_give(&p, a);
    db_pool_give(&p, b);
    db_pool_destroy(&p);
    TAP_EQ_INT(p.nfree, 0);
}

static void test_trim(void)
{
    db_pool_t p;
    void *blocks[8];
    db_pool_init(&p, 1024, 8);
    for (int i = 0; i < 8; i++)
        blocks[i] = db_pool_take(&p);
    for (int i = 0; i < 8; i++)
        db_pool_give(&p, blocks[i]);
    TAP_EQ_INT(p.nfree, 8);
    /* The burst's blocks were taken before this period began: the first trim only resets
     * the mark (the free list was empty at some point), the second frees what stayed. */
    TAP_EQ_INT(db_pool_trim(&p), 0);
    /* Three blocks in use at once during this period: those three stay. */
    for (int i = 0; i < 3; i++)
        blocks[i] = db_pool_take(&p);
    for (int i = 0; i < 3; i++)
        db_pool_give(&p, blocks[i]);
    TAP_EQ_INT(db_pool_trim(&p), 5 * 1024);
    TAP_EQ_INT(p.nfree, 3);
    /* Nothing used in the next period: everything goes. */
    TAP_EQ_INT(db_pool_trim(&p), 3 * 1024);
    TAP_EQ_INT(p.nfree, 0);
    TAP_EQ_INT(db_pool_trim(&p), 0);
    db_pool_destroy(&p);
}

static void test_buffers(void)
{
    db_pool_t p;
    db_pool_init(&p, 512, 4);
    db_buf_t b;
    db_buf_init(&b);
    TAP_EQ_INT(db_pool_lend_buf(&p, &b), 0);
    TAP_EQ_INT(b.cap, 512);
    TAP_EQ_INT(b.len, 0);
    char *first = b.data;
    TAP_EQ_INT(db_buf_append(&b, "hello", 5), 0);
    db_pool_give_buf(&p, &b);
    TAP_OK(b.data == NULL && b.len == 0 && b.cap == 0);
    TAP_EQ_INT(p.nfree, 1);
    /* Lent again: the same block. Grown past it: freed when given back. */
    TAP_EQ_INT(db_pool_lend_buf(&p, &b), 0);
    TAP_OK(b.data == first);
    char big[2000];
    memset(big, 'x', sizeof(big));
    TAP_EQ_INT(db_buf_append(&b, big, sizeof(big)), 0);
    TAP_OK(b.cap >= sizeof(big));
    TAP_OK(b.data[1999] == 'x');
    size_t cap = b.cap;
    db_pool_give_buf(&p, &b);
    TAP_EQ_INT(p.nfree, 0);
    TAP_EQ_INT(p.lent, 0);
    TAP_EQ_INT(db_pool_take_freed(&p), cap);
    db_pool_give_buf(&p, &b); /* no storage: nothing happens */
    TAP_EQ_INT(p.lent, 0);
    db_pool_destroy(&p);
}

int main(void)
{
    test_reuse_and_bound();
    test_trim();
    test_buffers();
    return tap_done();
}
