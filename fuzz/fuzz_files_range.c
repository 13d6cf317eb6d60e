/*
 * libFuzzer target for the Range parser (csrc/files/range.c): any bytes as a Range value
 * against a size taken from the first input bytes. Invariants: OK ranges are non-empty, lie
 * inside the file, are sorted and disjoint (merged), and number at most FILES_MAX_RANGES;
 * MALFORMED comes with a message.
 */
#include "files/files.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint64_t file_size = (uint64_t)data[0] * 256 + data[1];
    char *v = malloc(size - 2 ? size - 2 : 1);
    if (v == NULL)
        return 0;
    memcpy(v, data + 2, size - 2);
    files_range_t r[FILES_MAX_RANGES];
    size_t n = 99999;
    const char *msg = NULL;
    int k = files_parse_range(v, size - 2, file_size, r, &n, &msg);
    if (k == FILES_RANGE_OK) {
        if (n == 0 || n > FILES_MAX_RANGES)
            abort();
        for (size_t i = 0; i < n; i++) {
            if (r[i].start >= r[i].end || r[i].end > file_size)
                abort();
            if (i > 0 && r[i].start <= r[i - 1].end)
                abort();
        }
    } else if (k == FILES_RANGE_MALFORMED && msg == NULL) {
        abort();
    }
    free(v);
    return 0;
}
