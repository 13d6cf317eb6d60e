/*
 * TAP tests for the gzip component (csrc/gzip): the Accept-Encoding and media-type rules
 * (Starlette's GZipMiddleware's), and compressed bodies that zlib's inflate turns back
 * into the input, with a valid RFC 1952 header and trailer, for empty, small,
 * incompressible and large inputs and for an encoder reused many times; at level 9 the
 * streams sized to small bodies write the bytes of zlib's default stream (Starlette's).
 */
#include "gzip/gzip.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char defaults[] = "application/grpc\0application/gzip\0audio/*\0image/png\0"
                               "text/event-stream\0video/*\0";

static void test_accepted(void)
{
    TAP_OK(gzip_accepted("gzip", 4));
    TAP_OK(gzip_accepted("br, gzip;q=0.5", 14));
    TAP_OK(gzip_accepted("x-gzip", 6));
    TAP_OK(!gzip_accepted("GZIP", 4)); /* Starlette's test is case-sensitive */
    TAP_OK(!gzip_accepted("deflate, br", 11));
    TAP_OK(!gzip_accepted("gzi", 3));
    TAP_OK(!gzip_accepted("", 0));
}

static void test_excluded(void)
{
    gzip_policy_t p = {.level = 9,
                       .minimum_size = 500,
                       .excluded = defaults,
                       .excluded_len = sizeof(defaults) - 1};
    TAP_OK(gzip_type_excluded(&p, "text/event-stream", 17));
    TAP_OK(gzip_type_excluded(&p, " Text/Event-Stream ; charset=utf-8", 34));
    TAP_OK(gzip_type_excluded(&p, "video/mp4", 9));
    TAP_OK(gzip_type_excluded(&p, "audio/ogg;x=1", 13));
    TAP_OK(gzip_type_excluded(&p, "image/png", 9));
    TAP_OK(gzip_type_excluded(&p, "application/grpc+proto", 22));
    TAP_OK(!gzip_type_excluded(&p, "image/svg+xml", 13));
    TAP_OK(!gzip_type_excluded(&p, "application/json", 16));
    TAP_OK(!gzip_type_excluded(&p, "text/event", 10));
    TAP_OK(!gzip_type_excluded(&p, "", 0));
    gzip_policy_t none = {.level = 9, .excluded = "", .excluded_len = 0};
    TAP_OK(!gzip_type_excluded(&none, "video/mp4", 9));
}

/* Inflates a gzip member and compares it with the expected bytes. */
static int roundtrip_ok(const char *gz, size_t gz_len, const char *want, size_t want_len)
{
    if (gz_len < 18 || (unsigned char)gz[0] != 0x1f || (unsigned char)gz[1] != 0x8b || gz[2] != 8)
        return 0; /* RFC 1952 §2.3: ID1 ID2, CM = 8 (deflate) */
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return 0;
    char *out = malloc(want_len + 16);
    z.next_in = (Bytef *)gz;
    z.avail_in = (uInt)gz_len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)(want_len + 16);
    int r = inflate(&z, Z_FINISH);
    int ok = r == Z_STREAM_END && z.total_out == want_len && z.avail_in == 0 &&
             memcmp(out, want, want_len) == 0;
    inflateEnd(&z);
    free(out);
    return ok;
}

static void test_compress(void)
{
    gzip_encoder_t *e = gzip_encoder_new(9);
    TAP_OK(e != NULL);
    TAP_OK(gzip_encoder_new(10) == NULL);
    TAP_OK(gzip_encoder_new(-1) == NULL);
    db_buf_t out;
    db_buf_init(&out);

    TAP_EQ_INT(gzip_compress(e, "", 0, &out), 0);
    TAP_OK(roundtrip_ok(out.data, out.len, "", 0));

    static const char json[] = "{\"items\":[1,2,3,4,5,6,7,8,9,10],\"name\":\"aaaaaaaaaaaaaaaa\"}";
    out.len = 0;
    TAP_EQ_INT(gzip_compress(e, json, sizeof(json) - 1, &out), 0);
    TAP_OK(roundtrip_ok(out.data, out.len, json, sizeof(json) - 1));

    /* Appends after what the buffer holds. */
    db_buf_append(&out, "XY", 2);
    size_t before = out.len;
    TAP_EQ_INT(gzip_compress(e, json, sizeof(json) - 1, &out), 0);
    TAP_OK(roundtrip_ok(out.data + before, out.len - before, json, sizeof(json) - 1));

    /* Incompressible and large inputs: deflateBound holds. */
    size_t n = 1 << 20;
    char *big = malloc(n);
    unsigned x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (char)(x >> 16);
    }
    out.len = 0;
    TAP_EQ_INT(gzip_compress(e, big, n, &out), 0);
    TAP_OK(roundtrip_ok(out.data, out.len, big, n));
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 7);
    out.len = 0;
    TAP_EQ_INT(gzip_compress(e, big, n, &out), 0);
    TAP_OK(out.len < n / 50);
    TAP_OK(roundtrip_ok(out.data, out.len, big, n));

    /* One encoder, many bodies. */
    int all = 1;
    for (int i = 0; i < 200; i++) {
        out.len = 0;
        size_t len = (size_t)(i * 37) % 3000;
        if (gzip_compress(e, big, len, &out) != 0 || !roundtrip_ok(out.data, out.len, big, len))
            all = 0;
    }
    TAP_OK(all);
    free(big);
    db_buf_free(&out);
    gzip_encoder_free(e);
    gzip_encoder_free(NULL);

    gzip_encoder_t *fast = gzip_encoder_new(1);
    db_buf_init(&out);
    TAP_EQ_INT(gzip_compress(fast, json, sizeof(json) - 1, &out), 0);
    TAP_OK(roundtrip_ok(out.data, out.len, json, sizeof(json) - 1));
    db_buf_free(&out);
    gzip_encoder_free(fast);
}

/* The gzip member zlib's default stream (windowBits 15, memLevel 8) writes at level 9,
 * as Python's zlib.compressobj(9, DEFLATED, 31) does for Starlette. */
static int default_gzip(const char *in, size_t n, db_buf_t *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t room = deflateBound(&z, (uLong)n);
    int ok = db_buf_reserve(out, room) == 0;
    if (ok) {
        z.next_in = (Bytef *)in;
        z.avail_in = (uInt)n;
        z.next_out = (Bytef *)out->data;
        z.avail_out = (uInt)room;
        ok = deflate(&z, Z_FINISH) == Z_STREAM_END;
        out->len = room - z.avail_out;
    }
    deflateEnd(&z);
    return ok ? 0 : -1;
}

static void test_sized_streams_match_the_default(void)
{
    /* JSON like an API's: repetitive keys, varying numbers, every window size class. */
    db_buf_t body, mine, ref;
    db_buf_init(&body);
    db_buf_init(&mine);
    db_buf_init(&ref);
    for (int i = 0; body.len < 40000; i++) {
        char item[96];
        int k = snprintf(item, sizeof(item), "%s{\"id\":%d,\"name\":\"item %d\",\"price\":%d.5}",
                         i ? "," : "[", i, i * 7919 % 1000, i * 3);
        db_buf_append(&body, item, (size_t)k);
    }
    gzip_encoder_t *e = gzip_encoder_new(9);
    int same = e != NULL, sizes = 0;
    for (size_t n = 1; n <= body.len && same; n = n * 5 / 4 + 7) {
        mine.len = ref.len = 0;
        same = gzip_compress(e, body.data, n, &mine) == 0 &&
               default_gzip(body.data, n, &ref) == 0 && mine.len == ref.len &&
               memcmp(mine.data, ref.data, ref.len) == 0;
        sizes++;
    }
    TAP_OK(same);
    TAP_OK(sizes > 30);
    /* A body of each size again, after others: the streams are reset between bodies. */
    mine.len = ref.len = 0;
    TAP_OK(gzip_compress(e, body.data, 944, &mine) == 0 &&
           default_gzip(body.data, 944, &ref) == 0 && mine.len == ref.len &&
           memcmp(mine.data, ref.data, ref.len) == 0);
    gzip_encoder_free(e);
    db_buf_free(&body);
    db_buf_free(&mine);
    db_buf_free(&ref);
}

int main(void)
{
    test_accepted();
    test_excluded();
    test_compress();
    test_sized_streams_match_the_default();
    return tap_done();
}
