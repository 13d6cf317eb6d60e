/*
 * Conditional requests (RFC 9110 §13.1.2): whether an If-None-Match value lists a file's
 * entity tag, read as the StaticFiles of data_bridge.api reads it (staticfiles.py:
 * _not_modified, after Starlette's), so that the native answer and the Python one agree on
 * every input: the value is split at commas, each member stripped of what Python's
 * str.strip() strips from a Latin-1 decoded header value, then of one leading "W/" (a weak
 * tag matches too: If-None-Match uses the weak comparison, §8.8.3.2), and compared with the
 * tag byte for byte; "*" matches any file.
 */
#include <string.h>

#include "files/files.h"

/* str.isspace() for the code points a Latin-1 decoded byte can be. */
static int py_space(unsigned char c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0;
}

int files_etag_listed(const char *v, size_t n, const char *etag, size_t etag_len)
{
    size_t i = 0;
    for (;;) {
        const char *comma = memchr(v + i, ',', n - i);
        size_t end = comma ? (size_t)(comma - v) : n;
        size_t a = i, b = end;
        while (a < b && py_space((unsigned char)v[a]))
            a++;
        while (b > a && py_space((unsigned char)v[b - 1]))
            b--;
        if (b - a >= 2 && v[a] == 'W' && v[a + 1] == '/')
            a += 2;
        if ((b - a == 1 && v[a] == '*') ||
            (b - a == etag_len && etag_len > 0 && memcmp(v + a, etag, etag_len) == 0))
            return 1;
        if (comma == NULL)
            return 0;
        i = end + 1;
    }
}
