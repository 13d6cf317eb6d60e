/*
 * gzip bodies with zlib (see gzip.h). deflateInit2 with windowBits 16 + 15 writes the
 * RFC 1952 header and trailer around the deflate stream, as Python's zlib.compressobj(
 * level, DEFLATED, 31) does for Starlette; memLevel 8 and the default strategy are
 * zlib's defaults there too, so the bytes are the same as Starlette's for a given zlib.
 *
 * A complete body goes through a stream sized to it instead: the smallest window that
 * holds the whole body within deflate's reach (2^wbits - 262 bytes: zlib keeps
 * MIN_LOOKAHEAD back) and memLevel = wbits - 6 (at most zlib's default 8): a hash table
 * of twice as many entries as the window, and a symbol buffer (2^(memLevel + 6)) that
 * still holds the whole body in one block, as the default stream's does. deflateReset
 * clears the hash table, so a 1 KiB body costs an 8 KiB memset where the default stream
 * costs 64 KiB. The matches are the same (every earlier position is in reach, and with at
 * least 8 hash bits a smaller table only adds candidates that longest_match rejects), so
 * the bytes equal the default stream's at the levels whose chain limit such a body cannot
 * exhaust (tests/c/test_gzip.c checks level 9, Starlette's default).
 */
#include "gzip/gzip.h"

#include "common/text.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Window sizes of the streams for complete bodies: 2^9 (zlib's smallest) to 2^15. */
#define GZ_MIN_WBITS 9
#define GZ_CLASSES   (MAX_WBITS - GZ_MIN_WBITS + 1)

struct gzip_encoder {
    z_stream z; /* the default stream (windowBits 15, memLevel 8): streamed bodies */
    int level;
    /* Complete bodies: one stream per window size, made on first use; sized[i] has
     * windowBits GZ_MIN_WBITS + i. The last class is z itself. */
    z_stream sized[GZ_CLASSES - 1];
    unsigned ready; /* bit i: sized[i] is initialised */
};

int gzip_accepted(const char *value, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i++) {
        if (value[i] == 'g' && memcmp(value + i, "gzip", 4) == 0)
            return 1;
    }
    return 0;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* Whether the list holds the n bytes of t (already lowercase) as one entry. */
static int listed(const gzip_policy_t *p, const char *t, size_t n)
{
    const char *e = p->excluded, *end = p->excluded + p->excluded_len;
    while (e < end) {
        size_t len = strnlen(e, (size_t)(end - e));
        if (len == n && memcmp(e, t, n) == 0)
            return 1;
        e += len + 1;
    }
    return 0;
}

int gzip_type_excluded(const gzip_policy_t *p, const char *ctype, size_t len)
{
    /* The media type: before ';', without surrounding whitespace, lowercased. */
    size_t n = 0;
    while (n < len && ctype[n] != ';')
        n++;
    size_t a = 0;
    while (a < n && db_is_ows(ctype[a]))
        a++;
    while (n > a && db_is_ows(ctype[n - 1]))
        n--;
    char t[128] = {0};
    if (n - a >= sizeof(t) - 2)
        return 0; /* longer than any media type worth excluding */
    size_t m = 0, slash = 0;
    for (size_t i = a; i < n; i++) {
        t[m] = lower(ctype[i]);
        if (t[m] == '/' && slash == 0)
            slash = m + 1;
        m++;
    }
    if (listed(p, t, m))
        return 1;
    if (slash) {
        /* "type/..." (a star after the slash): the top-level type. */
        char w[128];
        memcpy(w, t, slash);
        w[slash] = '*';
        if (listed(p, w, slash + 1))
            return 1;
    }
    static const char grpc[] = "application/grpc+";
    if (m > sizeof(grpc) - 1 && memcmp(t, grpc, sizeof(grpc) - 1) == 0)
        return listed(p, "application/grpc", 16);
    return 0;
}

gzip_encoder_t *gzip_encoder_new(int level)
{
    if (level < 0 || level > 9)
        return NULL;
    gzip_encoder_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->level = level;
    if (deflateInit2(&e->z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(e);
        return NULL;
    }
    return e;
}

void gzip_encoder_free(gzip_encoder_t *e)
{
    if (e == NULL)
        return;
    deflateEnd(&e->z);
    for (int i = 0; i < GZ_CLASSES - 1; i++)
        if (e->ready & (1u << i))
            deflateEnd(&e->sized[i]);
    free(e);
}

/* The stream for a complete body of n bytes (see the opening comment), ready for
 * deflateReset; NULL when zlib cannot make it (out of memory). */
static z_stream *sized_stream(gzip_encoder_t *e, size_t n)
{
    int wbits = GZ_MIN_WBITS;
    while (wbits < MAX_WBITS && ((size_t)1 << wbits) - 262 < n)
        wbits++;
    int i = wbits - GZ_MIN_WBITS;
    if (wbits == MAX_WBITS)
        return &e->z;
    if (!(e->ready & (1u << i))) {
        int mem_level = wbits - 6 < 8 ? wbits - 6 : 8;
        if (deflateInit2(&e->sized[i], e->level, Z_DEFLATED, 16 + wbits, mem_level,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            return NULL;
        e->ready |= 1u << i;
    }
    return &e->sized[i];
}

int gzip_compress(gzip_encoder_t *e, const char *in, size_t n, db_buf_t *out)
{
    if (n > (size_t)UINT_MAX / 2)
        return -1; /* a body over 2 GiB is sent as it is */
    z_stream *z = sized_stream(e, n);
    /* deflateReset keeps the allocated state: only the first body of a size pays for it. */
    if (z == NULL || deflateReset(z) != Z_OK)
        return -1;
    size_t start = out->len;
    /* deflateBound is the worst case of one deflate(Z_FINISH) call; the gzip header and
     * trailer are included when the stream was initialised for gzip. */
    size_t room = deflateBound(z, (uLong)n);
    if (db_buf_reserve(out, room) < 0)
        return -1;
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)n;
    z->next_out = (Bytef *)out->data + start;
    z->avail_out = (uInt)room;
    int r = deflate(z, Z_FINISH);
    if (r != Z_STREAM_END) {
        out->len = start;
        return -1;
    }
    out->len = start + (room - z->avail_out);
    return 0;
}

int gzip_stream_write(gzip_encoder_t *e, const char *in, size_t n, int finish, db_buf_t *out)
{
    if (n > (size_t)UINT_MAX / 2)
        return -1;
    size_t start = out->len;
    e->z.next_in = (Bytef *)in;
    e->z.avail_in = (uInt)n;
    for (;;) {
        /* Room for the input's worst case plus the flush marker; grown when zlib fills it. */
        size_t room = n / 1000 + n + 64;
        if (db_buf_reserve(out, room) < 0) {
            out->len = start;
            return -1;
        }
        e->z.next_out = (Bytef *)out->data + out->len;
        e->z.avail_out = (uInt)room;
        int r = deflate(&e->z, finish ? Z_FINISH : Z_SYNC_FLUSH);
        out->len += room - e->z.avail_out;
        if (r == Z_STREAM_END)
            return 0;
        /* zlib's contract: output space left over means everything was taken and
         * flushed; Z_BUF_ERROR only says that no progress was possible. */
        if ((r == Z_OK || r == Z_BUF_ERROR) && e->z.avail_out > 0) {
            if (!finish)
                return 0;
            out->len = start; /* Z_FINISH with room left must have ended the member */
            return -1;
        }
        if (r != Z_OK && r != Z_BUF_ERROR) {
            out->len = start;
            return -1;
        }
        n = e->z.avail_in; /* what is left to take, for the next round's room */
    }
}
