/*
 * Shared between the multipart state machine (multipart.c) and the header-value parsers
 * (params.c): the parameter tokenizer of RFC 9110 §5.6.6 and the Content-Disposition
 * parser. Nothing here allocates; slices point into the caller's header bytes.
 */
#ifndef DB_FORM_FORM_INTERNAL_H
#define DB_FORM_FORM_INTERNAL_H

#include "form/form.h"

/* The longest boundary RFC 2046 §5.1.1 allows. */
#define FORM_MAX_BOUNDARY 70

/* One parameter of a header value: `name=value`. value is the raw text between the quotes
 * when quoted is 1 (quoted-pairs still in), else the unquoted text with OWS trimmed. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
    int quoted;
} form_param_t;

/* Parses the next `; name=value` of s[0..n) from *pos (just after the type, or after the
 * previous parameter). Returns 1 with *out filled, 0 at the end, -1 on a syntax error. */
int form_param_next(const char *s, size_t n, size_t *pos, form_param_t *out);

/* Skips a leading `type/subtype` (OWS around it) and returns 1 when it equals type (ASCII
 * case-insensitively), with *pos after it; 0 otherwise. */
int form_media_type_is(const char *s, size_t n, const char *type, size_t *pos);

/* Case-insensitive comparison of s[0..n) with the NUL-terminated lower-case word. */
int form_ieq(const char *s, size_t n, const char *word);

/* Parses a Content-Disposition value into part->name / filename / has_filename, decoding
 * into dbuf (room for 2 * n bytes). Returns 0, FORM_E_BAD_DISPOSITION or
 * FORM_E_MISSING_NAME. */
int form_disposition_parse(const char *v, size_t n, char *dbuf, form_part_t *part);

/* The first occurrence of the delimiter d[0..dlen) in p[0..n), or NULL (search.c: memmem's
 * answer, found with SIMD compares of the delimiter's first and last bytes). */
const char *form_find_delimiter(const char *p, size_t n, const char *d, size_t dlen);

#endif
