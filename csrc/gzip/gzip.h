/*
 * Content-Encoding: gzip for response bodies (RFC 9110 §8.4.1.3; the format is RFC 1952's
 * gzip member around RFC 1951 deflate data, written by zlib), and the rules that decide
 * whether a response is compressed. The rules are those of Starlette's GZipMiddleware,
 * which FastAPI apps configure with app.add_middleware(GZipMiddleware, ...): a client
 * whose Accept-Encoding contains "gzip" gets bodies of at least minimum_size bytes
 * compressed, unless the response already has a Content-Encoding, is a 206, or has an
 * excluded media type; every body of at least minimum_size bytes gets "Vary:
 * Accept-Encoding" whether it was compressed for this client or not.
 *
 * No Python here: unit-tested in tests/c/test_gzip.c. One encoder is kept per server and
 * reset between bodies, since zlib's deflate state (about 256 KiB at level 9) would
 * otherwise be allocated and freed for every response.
 */
#ifndef DB_GZIP_GZIP_H
#define DB_GZIP_GZIP_H

#include <stddef.h>

#include "common/buf.h"

typedef struct gzip_encoder gzip_encoder_t;

typedef struct {
    int level;           /* zlib level 0..9 (Starlette's compresslevel, default 9) */
    size_t minimum_size; /* shorter bodies are sent as they are (default 500) */
    /* Excluded media types, lowercase, each followed by a NUL ("type/..." (a star after the slash)
     * matches a whole top-level type); the default is Starlette's DEFAULT_EXCLUDED_CONTENT_TYPES.
     */
    const char *excluded;
    size_t excluded_len;
} gzip_policy_t;

/* Whether an Accept-Encoding value asks for gzip: the bytes "gzip" anywhere in it, as
 * Starlette decides (so "gzip;q=0" counts too; case matters). */
int gzip_accepted(const char *value, size_t len);

/* Whether a Content-Type value (parameters allowed) names an excluded media type:
 * compared without parameters, trimmed and lowercased, and as "type/..." (a star after the slash);
 * application/grpc+... also counts as application/grpc. */
int gzip_type_excluded(const gzip_policy_t *p, const char *ctype, size_t len);

/* An encoder for one level; NULL when out of memory or the level is invalid. */
gzip_encoder_t *gzip_encoder_new(int level);
void gzip_encoder_free(gzip_encoder_t *e);

/* Appends the gzip member of in[0..n) to out. Returns 0, or -1 when out of memory or
 * zlib fails (out then holds its previous contents). */
int gzip_compress(gzip_encoder_t *e, const char *in, size_t n, db_buf_t *out);

/* A streamed body (a fresh encoder per stream): appends the compression of in[0..n) to
 * out, flushed so that the client can decode everything sent so far (Z_SYNC_FLUSH, as
 * Starlette flushes each piece), or, with finish, the end of the member (Z_FINISH).
 * Returns 0 or -1 (out of memory, zlib error). */
int gzip_stream_write(gzip_encoder_t *e, const char *in, size_t n, int finish, db_buf_t *out);

#endif
