/*
 * Small character-level helpers shared by the parser, the binder and the response
 * writer: hex digits, RFC 9110 token characters, and percent-decoding (RFC 3986 §2.1).
 */
#ifndef DB_COMMON_TEXT_H
#define DB_COMMON_TEXT_H

#include <stddef.h>
#include <string.h>

/* The value of a hex digit, or -1. */
static inline int db_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* tchar (RFC 9110 §5.6.2). */
static inline int db_is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Optional whitespace, OWS (RFC 9110 §5.6.3): SP or HTAB. */
static inline int db_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Narrows s[0..*n) to its part without OWS around it (a field value, RFC 9110 §5.5). */
static inline void db_trim_ows(const char **s, size_t *n)
{
    while (*n > 0 && db_is_ows(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && db_is_ows((*s)[*n - 1]))
        (*n)--;
}

/* Percent-decodes src[0..n) into dst (room for n bytes; dst may equal src). With
 * plus_is_space, '+' means a space (application/x-www-form-urlencoded query strings).
 * A '%' not followed by two hex digits is kept literally, as browsers and Starlette do.
 * Returns the decoded length. */
size_t db_pct_decode(char *dst, const char *src, size_t n, int plus_is_space);

/* 1 when src[0..n) contains anything db_pct_decode would change. */
int db_pct_needs_decoding(const char *src, size_t n, int plus_is_space);

#endif
