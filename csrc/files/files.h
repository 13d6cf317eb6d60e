/*
 * Files served over HTTP (owned by the files component): the Range header (RFC 9110 §14.2)
 * of a file of known size, read as Starlette's FileResponse reads it so that a FastAPI
 * client gets the same answers (206 with Content-Range, multipart/byteranges, 416, or 400
 * with Starlette's message), and a file body (body.c): the bytes of a response made of
 * byte ranges of one open file with literal text around them, sent to a non-blocking socket
 * with sendfile(2). No Python and no libuv here: unit-tested in tests/c/test_files_range.c
 * and tests/c/test_files_body.c, the Range parser fuzzed by fuzz/fuzz_files_range.c.
 */
#ifndef DB_FILES_FILES_H
#define DB_FILES_FILES_H

#include <stddef.h>
#include <stdint.h>

/* One byte range, [start, end): end is exclusive. */
typedef struct {
    uint64_t start, end;
} files_range_t;

enum {
    FILES_RANGE_OK = 1,             /* *count ranges in out, sorted and merged when several */
    FILES_RANGE_IGNORE = 0,         /* serve the whole file (more than 100 ranges asked) */
    FILES_RANGE_MALFORMED = -1,     /* 400 with *message */
    FILES_RANGE_UNSATISFIABLE = -2, /* 416 with Content-Range: bytes * / size */
};

/* At most this many ranges are honoured (more: the whole file, as Starlette's max_ranges). */
#define FILES_MAX_RANGES 100

/* Parses the Range value v[0..n) for a file of size bytes into out (room for
 * FILES_MAX_RANGES). Returns one of FILES_RANGE_*; *message is set for MALFORMED (a static
 * string). */
int files_parse_range(const char *v, size_t n, uint64_t size, files_range_t *out, size_t *count,
                      const char **message);

/* Whether the If-None-Match value v[0..n) lists etag (or is "*"), by the rules of
 * data_bridge.api's StaticFiles (conditional.c): then the answer is 304 (RFC 9110 §13.1.2). */
int files_etag_listed(const char *v, size_t n, const char *etag, size_t etag_len);

/* A response body made of segments, each some literal text followed by a byte range of one
 * file: the whole file is one segment without text; a multipart/byteranges body (RFC 9110
 * §14.6) is one segment per range, its text the part's delimiter and header lines, plus a
 * last segment of text alone (the close delimiter).
 *
 * Ownership: the body owns the file descriptor given to files_body_new (closed by
 * files_body_free, and by files_body_new itself when it fails) and copies the text. */
typedef struct files_body files_body_t;

/* A body sending from fd (a regular file opened for reading); NULL when out of memory (fd
 * is closed then). */
files_body_t *files_body_new(int fd);
/* Appends a segment: text_len bytes of text, then the file's bytes [start, end) (none when
 * end <= start). Returns 0, or -1 when out of memory. */
int files_body_add(files_body_t *b, const char *text, size_t text_len, uint64_t start,
                   uint64_t end);
/* The body's length in bytes: its Content-Length. */
uint64_t files_body_length(const files_body_t *b);
void files_body_free(files_body_t *b);
/* Frees the body but not its descriptor, which is returned to the caller. */
int files_body_release(files_body_t *b);
/* Sends with read(2) + write(2) through a buffer of the body's own instead of sendfile(2)
 * (which the body also falls back to by itself where sendfile cannot read the file). */
void files_body_force_copy(files_body_t *b);
/* Whether the body fell back (or was forced) to read(2) + write(2). */
int files_body_copying(const files_body_t *b);

enum {
    FILES_SEND_DONE = 0,       /* every byte was written */
    FILES_SEND_AGAIN = 1,      /* the socket is full (EAGAIN): call again once it is writable */
    FILES_SEND_YIELD = 2,      /* budget bytes were written: call again later */
    FILES_SEND_TRUNCATED = -1, /* the file ended before a range did (it shrank) */
    FILES_SEND_ERROR = -2,     /* a read or write failed: errno says why */
};

/* Writes the next bytes of the body to the non-blocking stream socket sock, from where the
 * previous call stopped, until the body is sent, the socket is full, or about budget file
 * bytes were written in this call. Returns one of FILES_SEND_*. */
int files_body_send(files_body_t *b, int sock, uint64_t budget);

#endif
