/*
 * Incremental, in-place decoder for the chunked transfer coding (RFC 9112 §7.1). The server
 * owns the buffer and hands the decoder whatever bytes arrived; the decoder owns only the
 * small http_chunked_t state. Because framing bytes are removed, the decoded output never
 * overtakes the input, so data is moved towards the front of the same buffer with memmove.
 *
 * Every byte outside chunk data goes through one state machine step, so the result is the
 * same however the input is split across calls. Size lines and the trailer section are
 * bounded, a chunk size that overflows or exceeds max_body is refused before any of its data
 * is accepted, and a bare CR or LF anywhere in the framing is an error: lenient chunk parsing
 * is a classic request smuggling vector.
 */
#include "common/text.h"
#include "http/http.h"

#include <string.h>

/* Longest chunk-size line we accept, extensions included (RFC 9112 §7.1.1 lets a server
 * limit extensions; 4 KiB is far beyond any legitimate use). */
#define MAX_SIZE_LINE 4096
/* Largest trailer section (RFC 9112 §7.1.2), counted up to and including the final CRLF. */
#define MAX_TRAILER_BYTES 16384

enum {
    ST_SIZE_START, /* expecting the first HEXDIG of a chunk-size */
    ST_SIZE,       /* more HEXDIGs, BWS, ';' or CR */
    /* chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), ext-val = token /
     * quoted-string (RFC 9112 §7.1.1). Extensions are checked, then ignored. */
    ST_EXT_BWS,          /* BWS after the size or a value: only ';' may follow */
    ST_EXT_NAME_START,   /* after ';': BWS, then the first tchar of ext-name */
    ST_EXT_NAME,         /* in ext-name */
    ST_EXT_NAME_BWS,     /* BWS after ext-name: '=' or ';' may follow */
    ST_EXT_VAL_START,    /* after '=': BWS, then a token or a quoted-string */
    ST_EXT_VAL,          /* in a token ext-val */
    ST_EXT_QUOTED,       /* in a quoted-string */
    ST_EXT_QUOTED_ESC,   /* after a backslash in a quoted-string */
    ST_EXT_AFTER_QUOTED, /* after the closing quote */
    ST_SIZE_LF,          /* CR of the size line seen */
    ST_DATA,             /* chunk_left data bytes to copy */
    ST_DATA_CR,          /* chunk data done, CR expected */
    ST_DATA_LF,          /* CR after chunk data seen, LF expected */
    ST_TRAILER_START,    /* start of a trailer field line or of the final CRLF */
    ST_TRAILER_NAME,     /* inside a field name */
    ST_TRAILER_VALUE,    /* after the colon, up to CR */
    ST_TRAILER_LF,       /* CR of a trailer field line seen */
    ST_END_LF,           /* CR of the final empty line seen */
    ST_DONE
};

void http_chunked_init(http_chunked_t *d, uint64_t max_body)
{
    d->state = ST_SIZE_START;
    d->chunk_left = 0;
    d->line_len = 0;
    d->total = 0;
    d->max_body = max_body;
}

/* Field value bytes: HTAB, SP, VCHAR and obs-text; no other CTL, no DEL. */
static int is_value_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* One byte of a chunk-size line after its first digit. Returns the next state or an error. */
static int size_line_step(http_chunked_t *d, unsigned char c)
{
    int v;
    /* The bound covers the bytes before the CR. */
    if (c != '\r' && ++d->line_len > MAX_SIZE_LINE)
        return HTTP_E_BAD_CHUNK;
    switch (d->state) {
    case ST_SIZE:
        v = db_hexval(c);
        if (v >= 0) {
            if (d->chunk_left > (UINT64_MAX >> 4))
                return HTTP_E_CHUNK_TOO_LARGE;
            d->chunk_left = (d->chunk_left << 4) | (uint64_t)v;
            if (d->chunk_left > d->max_body - d->total)
                return HTTP_E_CHUNK_TOO_LARGE;
            return ST_SIZE;
        }
        break;
    case ST_EXT_BWS:
        /* "5 \r\n": BWS is only allowed in front of ';'. */
        if (is_ws(c))
            return ST_EXT_BWS;
        return c == ';' ? ST_EXT_NAME_START : HTTP_E_BAD_CHUNK;
    case ST_EXT_NAME_START:
        if (is_ws(c))
            return ST_EXT_NAME_START;
        return db_is_tchar(c) ? ST_EXT_NAME : HTTP_E_BAD_CHUNK;
    case ST_EXT_NAME:
        if (db_is_tchar(c))
            return ST_EXT_NAME;
        if (is_ws(c))
            return ST_EXT_NAME_BWS;
        if (c == '=')
            return ST_EXT_VAL_START;
        break;
    case ST_EXT_NAME_BWS:
        if (is_ws(c))
            return ST_EXT_NAME_BWS;
        if (c == '=')
            return ST_EXT_VAL_START;
        return c == ';' ? ST_EXT_NAME_START : HTTP_E_BAD_CHUNK;
    case ST_EXT_VAL_START:
        if (is_ws(c))
            return ST_EXT_VAL_START;
        if (c == '"')
            return ST_EXT_QUOTED;
        return db_is_tchar(c) ? ST_EXT_VAL : HTTP_E_BAD_CHUNK;
    case ST_EXT_VAL:
        if (db_is_tchar(c))
            return ST_EXT_VAL;
        break;
    case ST_EXT_QUOTED:
        /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text (RFC 9110 §5.6.4) */
        if (c == '"')
            return ST_EXT_AFTER_QUOTED;
        if (c == '\\')
            return ST_EXT_QUOTED_ESC;
        return is_value_byte(c) ? ST_EXT_QUOTED : HTTP_E_BAD_CHUNK;
    case ST_EXT_QUOTED_ESC:
        return is_value_byte(c) ? ST_EXT_QUOTED : HTTP_E_BAD_CHUNK;
    case ST_EXT_AFTER_QUOTED:
        break;
    default:
        return HTTP_E_BAD_CHUNK;
    }
    /* After the size, a name, a token value or a closing quote: the same continuations. */
    if (is_ws(c))
        return ST_EXT_BWS;
    if (c == ';')
        return ST_EXT_NAME_START;
    if (c == '\r')
        return ST_SIZE_LF;
    return HTTP_E_BAD_CHUNK;
}

/* One framing byte. Returns the next state, or a negative http_error_t. */
static int step(http_chunked_t *d, unsigned char c)
{
    int v;
    switch (d->state) {
    case ST_SIZE_START:
        v = db_hexval(c);
        if (v < 0)
            return HTTP_E_BAD_CHUNK;
        d->chunk_left = (uint64_t)v;
        d->line_len = 1;
        if (d->chunk_left > d->max_body - d->total)
            return HTTP_E_CHUNK_TOO_LARGE;
        return ST_SIZE;
    case ST_SIZE_LF:
        if (c != '\n')
            return HTTP_E_BAD_CHUNK;
        d->line_len = 0;
        if (d->chunk_left == 0)
            return ST_TRAILER_START; /* last-chunk; chunk_left now counts trailer bytes */
        return ST_DATA;
    case ST_DATA_CR:
        return c == '\r' ? ST_DATA_LF : HTTP_E_BAD_CHUNK;
    case ST_DATA_LF:
        return c == '\n' ? ST_SIZE_START : HTTP_E_BAD_CHUNK;
    default:
        break;
    }
    if (d->state < ST_SIZE_LF)
        return size_line_step(d, c);

    /* Trailer section (RFC 9112 §7.1.2): field lines validated like header lines. */
    if (++d->chunk_left > MAX_TRAILER_BYTES)
        return HTTP_E_BAD_TRAILER;
    switch (d->state) {
    case ST_TRAILER_START:
        if (c == '\r')
            return ST_END_LF;
        if (c == '\n')
            return HTTP_E_BAD_CHUNK;
        /* An empty name, obs-fold (leading SP/HTAB) or any other byte. */
        return db_is_tchar(c) ? ST_TRAILER_NAME : HTTP_E_BAD_TRAILER;
    case ST_TRAILER_NAME:
        if (db_is_tchar(c))
            return ST_TRAILER_NAME;
        if (c == ':')
            return ST_TRAILER_VALUE;
        if (c == '\n')
            return HTTP_E_BAD_CHUNK;
        /* Whitespace before the colon, a line without colon, a non-token byte. */
        return HTTP_E_BAD_TRAILER;
    case ST_TRAILER_VALUE:
        if (is_value_byte(c))
            return ST_TRAILER_VALUE;
        if (c == '\r')
            return ST_TRAILER_LF;
        return c == '\n' ? HTTP_E_BAD_CHUNK : HTTP_E_BAD_TRAILER;
    case ST_TRAILER_LF:
        return c == '\n' ? ST_TRAILER_START : HTTP_E_BAD_CHUNK;
    case ST_END_LF:
        return c == '\n' ? ST_DONE : HTTP_E_BAD_CHUNK;
    default:
        return HTTP_E_BAD_CHUNK;
    }
}

int http_chunked_decode(http_chunked_t *d, char *buf, size_t *len, size_t *leftover)
{
    *leftover = 0;
    /* Errors are sticky: the state holds the negative code. */
    if (d->state < 0) {
        *len = 0;
        return d->state;
    }
    /* Nothing to do; also keeps pointer arithmetic off a NULL buffer. */
    if (*len == 0)
        return d->state == ST_DONE ? 1 : 0;

    char *in = buf;
    char *end = buf + *len;
    char *out = buf;
    while (in < end && d->state != ST_DONE) {
        if (d->state == ST_DATA) {
            size_t avail = (size_t)(end - in);
            size_t n = d->chunk_left < avail ? (size_t)d->chunk_left : avail;
            if (out != in)
                memmove(out, in, n);
            out += n;
            in += n;
            d->chunk_left -= n;
            d->total += n;
            if (d->chunk_left == 0)
                d->state = ST_DATA_CR;
            continue;
        }
        int next = step(d, (unsigned char)*in++);
        d->state = next;
        if (next < 0) {
            *len = (size_t)(out - buf);
            return next;
        }
    }
    *len = (size_t)(out - buf);
    if (d->state != ST_DONE)
        return 0;
    /* Bytes after the message belong to the next request on the connection. */
    size_t rest = (size_t)(end - in);
    if (rest && out != in)
        memmove(out, in, rest);
    *leftover = rest;
    return 1;
}
