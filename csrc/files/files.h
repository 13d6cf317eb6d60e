/*
 * Files served over HTTP (owned by the files component): today the Range header (RFC 9110
 * §14.2) of a file of known size, read as Starlette's FileResponse reads it so that a
 * FastAPI client gets the same answers (206 with Content-Range, multipart/byteranges, 416,
 * or 400 with Starlette's message). No Python here: unit-tested in tests/c/test_files_range.c
 * and fuzzed by fuzz/fuzz_files_range.c.
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

#endif
