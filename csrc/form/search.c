/*
 * The multipart scanner's search for a whole delimiter ("\r\n--" boundary) in a piece of
 * content. Uploads are mostly this search: every byte of a file passes through it once.
 *
 * glibc's memmem takes a shift table for such needles and moves about one byte per step
 * on binary content. The delimiter's first and last bytes are known and fixed (CR, and the
 * boundary's last bchar), so here every position is tested for both at once, 16 (SSE2, the
 * x86-64 baseline) or 32 (AVX2, when the CPU has it) positions per step: a position where
 * both match is compared in full. Random content gives such a candidate about once per
 * 64 KiB; content built of near-delimiters gives more, each costing one memcmp, so the
 * worst case stays linear in the piece times the delimiter's length, as memmem's.
 *
 * Without SSE2 (another architecture) this is memmem.
 */
#define _GNU_SOURCE /* memmem */
#include "form/form_internal.h"

#include <string.h>

#if defined(__x86_64__) && defined(__SSE2__)
#include <immintrin.h>

/* The candidates of a 16-position block starting at p: bit k set when p[k] == first and
 * p[k + dlen - 1] == last. */
static inline unsigned candidates16(const char *p, size_t dlen, __m128i first, __m128i last)
{
    __m128i a = _mm_loadu_si128((const __m128i *)p);
    __m128i b = _mm_loadu_si128((const __m128i *)(p + dlen - 1));
    return (unsigned)_mm_movemask_epi8(
        _mm_and_si128(_mm_cmpeq_epi8(a, first), _mm_cmpeq_epi8(b, last)));
}

/* The first of the candidates in mask (positions i + bit) that is a whole delimiter. */
static inline const char *verify(const char *p, size_t i, uint64_t mask, const char *d, size_t dlen)
{
    while (mask != 0) {
        size_t k = i + (size_t)__builtin_ctzll(mask);
        if (memcmp(p + k + 1, d + 1, dlen - 2) == 0)
            return p + k;
        mask &= mask - 1;
    }
    return NULL;
}

__attribute__((target("avx2"))) static const char *search_avx2(const char *p, size_t n,
                                                               const char *d, size_t dlen)
{
    __m256i first = _mm256_set1_epi8(d[0]), last = _mm256_set1_epi8(d[dlen - 1]);
    size_t i = 0;
    /* A block reads p[i .. i + 32 + dlen - 1): inside the piece while i + 31 + dlen <= n. */
    for (; i + 31 + dlen <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(p + i + dlen - 1));
        uint32_t mask = (uint32_t)_mm256_movemask_epi8(
            _mm256_and_si256(_mm256_cmpeq_epi8(a, first), _mm256_cmpeq_epi8(b, last)));
        const char *hit = mask ? verify(p, i, mask, d, dlen) : NULL;
        if (hit != NULL)
            return hit;
    }
    return n - i >= dlen ? memmem(p + i, n - i, d, dlen) : NULL;
}

static const char *search_sse2(const char *p, size_t n, const char *d, size_t dlen)
{
    __m128i first = _mm_set1_epi8(d[0]), last = _mm_set1_epi8(d[dlen - 1]);
    size_t i = 0;
    for (; i + 15 + dlen <= n; i += 16) {
        unsigned mask = candidates16(p + i, dlen, first, last);
        const char *hit = mask ? verify(p, i, mask, d, dlen) : NULL;
        if (hit != NULL)
            return hit;
    }
    return n - i >= dlen ? memmem(p + i, n - i, d, dlen) : NULL;
}

const char *form_find_delimiter(const char *p, size_t n, const char *d, size_t dlen)
{
    if (dlen < 2 || n < dlen)
        return dlen == 0 ? p : NULL;
    /* A load of what libgcc found at start-up (its constructor ran __builtin_cpu_init). */
    return __builtin_cpu_supports("avx2") ? search_avx2(p, n, d, dlen) : search_sse2(p, n, d, dlen);
}

#else

const char *form_find_delimiter(const char *p, size_t n, const char *d, size_t dlen)
{
    return memmem(p, n, d, dlen);
}

#endif
