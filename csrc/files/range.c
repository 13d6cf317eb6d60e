/*
 * The Range header (RFC 9110 §14.1.2 byte-range-set, §14.2), with Starlette's FileResponse
 * rules where the RFC leaves room: "bytes" is the only unit (any case, surrounding spaces
 * allowed); an empty, dashless or non-numeric spec is skipped rather than refused; a spec's
 * last-pos at or past the end means "to the end"; "-N" is the last N bytes; nothing left is
 * 400 "range must be requested", a first-pos at or past the end is 416, first > last is
 * 400; several ranges are sorted and overlapping ones merged (§14.2 lets a server coalesce
 * them); more than 100 specs are ignored (the whole file is sent), as a cap on the work.
 */
#include "files/files.h"

#include "common/text.h"

#include <string.h>
#include <strings.h>

/* The decimal number in s[0..n) (already trimmed): 0 with *v set, -1 when it is empty, not
 * all digits, or beyond 2^63. */
static int number(const char *s, size_t n, uint64_t *v)
{
    if (n == 0 || n > 18)
        return -1; /* past 10^18 bytes no file has a position */
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    *v = x;
    return 0;
}

int files_parse_range(const char *v, size_t n, uint64_t size, files_range_t *out, size_t *count,
                      const char **message)
{
    *count = 0;
    const char *eq = memchr(v, '=', n);
    if (eq == NULL) {
        *message = "Malformed range header.";
        return FILES_RANGE_MALFORMED;
    }
    const char *unit = v;
    size_t unit_len = (size_t)(eq - v);
    db_trim_ows(&unit, &unit_len);
    if (unit_len != 5 || strncasecmp(unit, "bytes", 5) != 0) {
        *message = "Only support bytes range";
        return FILES_RANGE_MALFORMED;
    }
    const char *set = eq + 1, *end = v + n;
    size_t specs = 1;
    for (const char *p = set; p < end; p++)
        specs += *p == ',';
    if (specs > FILES_MAX_RANGES)
        return FILES_RANGE_IGNORE;
    size_t k = 0;
    for (const char *p = set; p <= end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        const char *s = p;
        size_t len = (size_t)(stop - p);
        p = stop + 1;
        db_trim_ows(&s, &len);
        const char *dash = len ? memchr(s, '-', len) : NULL;
        if (dash == NULL || len == 1)
            continue; /* empty, "-" or no dash: skipped */
        const char *a = s, *b = dash + 1;
        size_t alen = (size_t)(dash - s), blen = (size_t)(s + len - b);
        db_trim_ows(&a, &alen);
        db_trim_ows(&b, &blen);
        uint64_t first, last;
        files_range_t r;
        if (alen == 0) {
            if (number(b, blen, &last) < 0)
                continue;
            r.start = last >= size ? 0 : size - last; /* the last N bytes */
            r.end = size;
        } else {
            if (number(a, alen, &first) < 0)
                continue;
            if (blen == 0) {
                r.end = size;
            } else {
                if (number(b, blen, &last) < 0)
                    continue;
                r.end = last < size ? last + 1 : size;
            }
            r.start = first;
        }
        out[k++] = r;
        if (comma == NULL)
            break;
    }
    if (k == 0) {
        *message = "Range header: range must be requested";
        return FILES_RANGE_MALFORMED;
    }
    for (size_t i = 0; i < k; i++) {
        if (out[i].start >= size)
            return FILES_RANGE_UNSATISFIABLE;
    }
    for (size_t i = 0; i < k; i++) {
        if (out[i].start >= out[i].end) {
            *message = "Range header: start must be less than end";
            return FILES_RANGE_MALFORMED;
        }
    }
    if (k > 1) {
        /* Insertion sort (at most 100), then merge overlaps (start <= previous end). */
        for (size_t i = 1; i < k; i++) {
            files_range_t x = out[i];
            size_t j = i;
            while (j > 0 && (out[j - 1].start > x.start ||
                             (out[j - 1].start == x.start && out[j - 1].end > x.end))) {
                out[j] = out[j - 1];
                j--;
            }
            out[j] = x;
        }
        size_t m = 0;
        for (size_t i = 1; i < k; i++) {
            if (out[i].start <= out[m].end) {
                if (out[i].end > out[m].end)
                    out[m].end = out[i].end;
            } else {
                out[++m] = out[i];
            }
        }
        k = m + 1;
    }
    *count = k;
    return FILES_RANGE_OK;
}
