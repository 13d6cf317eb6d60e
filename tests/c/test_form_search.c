/*
 * TAP tests for the multipart scanner's delimiter search (csrc/form/search.c), against
 * glibc's memmem on the same haystacks: random bytes, content built of near-delimiters
 * (CRs, the boundary without its last byte, the delimiter's first and last bytes at the
 * right distance), delimiters at every offset of a piece (so each SIMD block position and
 * the scalar tail are crossed), boundaries of every length from 1 to 70, and pieces shorter
 * than the delimiter. Each haystack is copied into a buffer of exactly its size, so
 * AddressSanitizer sees any load past the piece's end.
 */
#define _GNU_SOURCE /* memmem */
#include "form/form_internal.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>

static uint64_t rng_state = 88172645463325252ull;

static uint32_t rnd(void)
{
    /* xorshift64: reproducible without libc's rand(). */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

/* Whether form_find_delimiter agrees with memmem on hay[0..n), checked in an exact-size
 * copy. */
static int agrees(const char *hay, size_t n, const char *d, size_t dlen)
{
    char *copy = malloc(n ? n : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, hay, n);
    const char *want = memmem(copy, n, d, dlen);
    const char *got = form_find_delimiter(copy, n, d, dlen);
    int ok = want == got;
    if (!ok)
        printf("#   n=%zu dlen=%zu want=%td got=%td\n", n, dlen, want ? want - copy : -1,
               got ? got - copy : -1);
    free(copy);
    return ok;
}

/* "\r\n--" and a boundary of blen random bchars. */
static size_t make_delim(char *d, size_t blen)
{
    static const char bchars[] =
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?";
    memcpy(d, "\r\n--", 4);
    for (size_t i = 0; i < blen; i++)
        d[4 + i] = bchars[rnd() % (sizeof(bchars) - 1)];
    return 4 + blen;
}

static void test_random_content(void)
{
    char d[4 + FORM_MAX_BOUNDARY];
    size_t dlen = make_delim(d, 40);
    static char hay[200000];
    for (size_t i = 0; i < sizeof(hay); i++)
        hay[i] = (char)rnd();
    int ok = 1;
    for (size_t n = 0; n < 300; n++)
        ok &= agrees(hay, n, d, dlen);
    ok &= agrees(hay, sizeof(hay), d, dlen);
    TAP_OK(ok);
    /* The delimiter at every offset of the first few blocks and near the end. */
    ok = 1;
    for (size_t at = 0; at < 200; at++) {
        char buf[400];
        memcpy(buf, hay, sizeof(buf));
        memcpy(buf + at, d, dlen);
        for (size_t n = at; n <= at + dlen + 40 && n <= sizeof(buf); n++)
            ok &= agrees(buf, n, d, dlen);
    }
    TAP_OK(ok);
}

static void test_near_delimiters(void)
{
    int ok = 1;
    for (int round = 0; round < 3000; round++) {
        char d[4 + FORM_MAX_BOUNDARY];
        size_t dlen = make_delim(d, 1 + rnd() % FORM_MAX_BOUNDARY);
        char hay[1024];
        size_t n = 0, want = rnd() % sizeof(hay);
        while (n < want) {
            char piece[4 + FORM_MAX_BOUNDARY + 2];
            size_t k;
            switch (rnd() % 6) {
            case 0: /* the delimiter without its last byte, then a wrong one */
                k = dlen;
                memcpy(piece, d, dlen);
                piece[dlen - 1] = (char)(d[dlen - 1] ^ 1);
                break;
            case 1: /* first and last byte at the delimiter's distance, wrong middle */
                k = dlen;
                memset(piece, 'x', dlen);
                piece[0] = '\r';
                piece[dlen - 1] = d[dlen - 1];
                break;
            case 2:
                k = 1;
                piece[0] = '\r';
                break;
            case 3: /* a prefix of the delimiter */
                k = 1 + rnd() % dlen;
                memcpy(piece, d, k);
                break;
            case 4:
                k = rnd() % 7;
                for (size_t i = 0; i < k; i++)
                    piece[i] = (char)rnd();
                break;
            default: /* rarely, the delimiter itself */
                k = rnd() % 8 == 0 ? dlen : 0;
                memcpy(piece, d, k);
                break;
            }
            if (n + k > sizeof(hay))
                break;
            memcpy(hay + n, piece, k);
            n += k;
        }
        ok &= agrees(hay, n, d, dlen);
    }
    TAP_OK(ok);
}

static void test_short(void)
{
    TAP_OK(form_find_delimiter("", 0, "\r\n--a", 5) == NULL);
    TAP_OK(agrees("\r\n--", 4, "\r\n--a", 5));
    TAP_OK(agrees("\r\n--a", 5, "\r\n--a", 5));
    TAP_OK(agrees("x\r\n--a", 6, "\r\n--a", 5));
}

int main(void)
{
    test_random_content();
    test_near_delimiters();
    test_short();
    return tap_done();
}
