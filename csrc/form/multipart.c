/*
 * The multipart/form-data parser (RFC 7578 on RFC 2046 §5.1.1), an explicit state machine
 * fed pieces of the body. The parser owns its state, a copy of the delimiter and one block
 * for the current part's header lines and decoded names; the caller owns the pieces it
 * feeds, and data chunks handed to on_part_data point into them.
 *
 * States. PREAMBLE discards bytes until the first delimiter. A delimiter is CRLF "--"
 * boundary (§5.1.1: the CRLF before it belongs to the delimiter, not to the part); the
 * body's first one may start the body, so the parser begins as if a CRLF had been read.
 * After a delimiter: transport padding (LWSP) and CRLF open a part (HEADER_LINE, then DATA
 * after the blank line), or "--" closes the body (CLOSE_PAD, then DONE after its CRLF,
 * where the epilogue is ignored). Anything else right after a delimiter is an error: the
 * boundary must not occur in a part's content (§5.1.1), so a match is final.
 *
 * Hold-back rule. Only a CR can begin a delimiter, and the delimiter holds no CR after its
 * first byte. So in DATA the bytes before the first whole delimiter of the piece
 * (form_find_delimiter) are content at once; without one, the bytes up to the next CR are (memchr),
 * and at a CR the delimiter is compared in place; if the piece ends in the middle of that
 * comparison, the k bytes matched so far are held back: they equal delim[0..k), so the parser keeps
 * only the number k, and if the next piece shows they were content after all it hands
 * delim[0..k) to on_part_data. Every byte is compared a bounded number of times, and
 * nothing of the body is buffered except header lines (max_header_bytes).
 *
 * Limits are checked before the callback that would see the bytes over them.
 */
#include "form/form_internal.h"

#include "common/text.h"

#include <stdlib.h>
#include <string.h>

enum {
    ST_PREAMBLE,
    ST_AFTER_DELIM, /* a boundary just matched: '-', LWSP or CR follows */
    ST_PADDING,     /* transport padding after a boundary */
    ST_DELIM_LF,    /* the CR of the delimiter line was read */
    ST_CLOSE_DASH,  /* one '-' of the close delimiter was read */
    ST_HEADER_LINE, /* inside a header line of a part */
    ST_HEADER_LF,   /* a header line's CR was read */
    ST_DATA,
    ST_CLOSE_PAD, /* after "--boundary--": padding, CRLF or the end of the body */
    ST_CLOSE_LF,
    ST_DONE,
    ST_ERROR
};

struct form_multipart {
    form_callbacks_t cb;
    void *user;
    form_limits_t lim;
    int state;
    int error;
    char delim[4 + FORM_MAX_BOUNDARY]; /* CRLF "--" boundary */
    size_t delim_len;
    size_t match; /* delimiter bytes matched at the end of the previous piece */
    int in_part;
    size_t parts;
    uint64_t fed;
    uint64_t part_size;
    /* The current part's header lines, stored without their CRLFs, and the decoded names. */
    char *hbuf;    /* max_header_bytes */
    char *dbuf;    /* 2 * max_header_bytes */
    size_t hlen;   /* bytes stored in hbuf */
    size_t hcount; /* bytes counted against the limit: hlen + 2 per line end */
    size_t line_start;
    size_t nheaders;
    const char *cd; /* the Content-Disposition value, in hbuf */
    size_t cd_len;
    form_part_t part;
};

static const char *const messages[] = {
    "",
    "the Content-Type is not multipart/form-data",
    "the multipart Content-Type has no boundary parameter",
    "the multipart boundary is empty, longer than 70 characters or has invalid characters",
    "a multipart boundary is not followed by a line end or \"--\"",
    "the headers of a multipart part are too long",
    "a multipart part has too many headers",
    "a multipart part has a malformed header line",
    "a multipart part's Content-Disposition is missing, repeated, malformed or not form-data",
    "a multipart part's Content-Disposition has no name parameter",
    "data after the multipart close delimiter",
    "the multipart body ended before its close delimiter",
    "too many multipart parts",
    "a multipart form field is too large",
    "a multipart file is too large",
    "the multipart body is too large",
    "the multipart consumer stopped the parser",
    "out of memory parsing a multipart body",
};

_Static_assert(sizeof(messages) / sizeof(messages[0]) == -FORM_E__LAST,
               "one message per form_error_t");

const char *form_error_message(int code)
{
    if (code >= 0 || code <= FORM_E__LAST)
        return "unknown form error";
    return messages[-code];
}

void form_limits_default(form_limits_t *limits)
{
    limits->max_parts = 1000;
    limits->max_headers = 16;
    limits->max_header_bytes = 8192;
    limits->max_field_size = 1024 * 1024;
    limits->max_file_size = UINT64_MAX;
    limits->max_body = UINT64_MAX;
}

form_multipart_t *form_multipart_new(const char *content_type, size_t len,
                                     const form_limits_t *limits, const form_callbacks_t *callbacks,
                                     void *user, int *error)
{
    size_t pos;
    char boundary[FORM_MAX_BOUNDARY];
    if (!form_media_type_is(content_type, len, "multipart/form-data", &pos)) {
        *error = FORM_E_CONTENT_TYPE;
        return NULL;
    }
    int blen = form_multipart_boundary(content_type, len, boundary);
    if (blen < 0) {
        *error = blen;
        return NULL;
    }
    form_limits_t lim;
    if (limits)
        lim = *limits;
    else
        form_limits_default(&lim);
    if (lim.max_header_bytes > SIZE_MAX / 4) {
        *error = FORM_E_NO_MEMORY;
        return NULL;
    }
    form_multipart_t *m = calloc(1, sizeof(*m));
    size_t room = lim.max_header_bytes ? lim.max_header_bytes : 1;
    char *block = malloc(3 * room);
    if (m == NULL || block == NULL) {
        free(m);
        free(block);
        *error = FORM_E_NO_MEMORY;
        return NULL;
    }
    if (callbacks)
        m->cb = *callbacks;
    m->user = user;
    m->lim = lim;
    m->hbuf = block;
    m->dbuf = block + room;
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, boundary, (size_t)blen);
    m->delim_len = 4 + (size_t)blen;
    m->state = ST_PREAMBLE;
    m->match = 2; /* the first delimiter may open the body: act as if a CRLF came first */
    return m;
}

int form_multipart_in_content(const form_multipart_t *m, size_t *held)
{
    *held = m->match;
    return m->state == ST_DATA;
}

void form_multipart_free(form_multipart_t *m)
{
    if (m == NULL)
        return;
    free(m->hbuf);
    free(m);
}

static int fail(form_multipart_t *m, int code)
{
    m->state = ST_ERROR;
    m->error = code;
    return code;
}

static int call(form_multipart_t *m, int (*fn)(void *))
{
    return fn && fn(m->user) != 0 ? FORM_E_CALLBACK : 0;
}

/* Hands len content bytes of the current part to the consumer, after the size limit. */
static int emit(form_multipart_t *m, const char *p, size_t len)
{
    if (len == 0)
        return 0;
    uint64_t limit = m->part.has_filename ? m->lim.max_file_size : m->lim.max_field_size;
    if (len > limit - m->part_size)
        return m->part.has_filename ? FORM_E_FILE_TOO_LARGE : FORM_E_FIELD_TOO_LARGE;
    m->part_size += len;
    if (m->cb.on_part_data && m->cb.on_part_data(m->user, p, len) != 0)
        return FORM_E_CALLBACK;
    return 0;
}

/* PREAMBLE and DATA: consumes p[*pos..n) up to and including the next delimiter. Returns 1
 * when a delimiter ended at *pos, 0 when the piece is used up, < 0 an error. Content is
 * emitted in DATA only; the preamble is dropped (RFC 2046 §5.1.1). */
static int scan_body(form_multipart_t *m, const char *p, size_t n, size_t *pos)
{
    const char *d = m->delim;
    size_t dlen = m->delim_len, i = *pos;
    int content = m->state == ST_DATA, rc;
    if (m->match > 0) {
        size_t k = m->match;
        while (k < dlen && i < n && p[i] == d[k]) {
            k++;
            i++;
        }
        if (k == dlen || i == n) {
            m->match = k == dlen ? 0 : k;
            *pos = i;
            return k == dlen;
        }
        /* Not a delimiter: the held-back bytes were content. The bytes of this piece that
         * matched hold no CR (only delim[0] is one), so scanning them again below only
         * passes them over as content. */
        size_t held = m->match;
        m->match = 0;
        if (content && (rc = emit(m, d, held)) < 0)
            return rc;
        i = *pos;
    }
    size_t start = i;
    /* The first whole delimiter in the rest of the piece: form_find_delimiter (search.c)
     * skips through the bytes 16 or 32 at a time, where a memchr per CR stopped every 256
     * bytes of binary content on average. Without one, only a delimiter cut by the end of
     * the piece can begin in its last dlen - 1 bytes: the CR scan below looks there. */
    if (n - i >= dlen) {
        const char *hit = form_find_delimiter(p + i, n - i, d, dlen);
        if (hit != NULL) {
            size_t j = (size_t)(hit - p);
            if (content && (rc = emit(m, p + start, j - start)) < 0)
                return rc;
            m->match = 0;
            *pos = j + dlen;
            return 1;
        }
        i = n - (dlen - 1);
    }
    const char *cr;
    while (i < n && (cr = memchr(p + i, '\r', n - i)) != NULL) {
        size_t j = (size_t)(cr - p), k = 1;
        while (k < dlen && j + k < n && p[j + k] == d[k])
            k++;
        if (k == dlen || j + k == n) {
            if (content && (rc = emit(m, p + start, j - start)) < 0)
                return rc;
            m->match = k == dlen ? 0 : k; /* the piece ended inside a possible delimiter */
            *pos = j + k;
            return k == dlen;
        }
        i = j + 1;
    }
    if (content && (rc = emit(m, p + start, n - start)) < 0)
        return rc;
    *pos = n;
    return 0;
}

/* A delimiter line (boundary, padding, CRLF) was read: the open part ends, the next one
 * begins with its headers. */
static int begin_part(form_multipart_t *m)
{
    int rc;
    if (m->in_part) {
        m->in_part = 0;
        if ((rc = call(m, m->cb.on_part_end)) < 0)
            return rc;
    }
    if (m->parts >= m->lim.max_parts)
        return FORM_E_TOO_MANY_PARTS;
    memset(&m->part, 0, sizeof(m->part));
    m->part.index = m->parts++;
    m->hlen = m->hcount = m->line_start = m->nheaders = 0;
    m->cd = NULL;
    m->cd_len = 0;
    m->part_size = 0;
    m->in_part = 1;
    m->state = ST_HEADER_LINE;
    return call(m, m->cb.on_part_begin);
}

/* The blank line after a part's headers: Content-Disposition is required (RFC 7578 §4.2). */
static int end_headers(form_multipart_t *m)
{
    if (m->cd == NULL)
        return FORM_E_BAD_DISPOSITION;
    int rc = form_disposition_parse(m->cd, m->cd_len, m->dbuf, &m->part);
    if (rc < 0)
        return rc;
    if (m->cb.on_headers_complete && m->cb.on_headers_complete(m->user, &m->part) != 0)
        return FORM_E_CALLBACK;
    m->state = ST_DATA;
    m->match = 0;
    return 0;
}

/* One complete header line hbuf[line_start..hlen), its CRLF already read. The syntax is
 * RFC 5322's field (RFC 7578 §4.8 keeps MIME headers), held to HTTP's stricter rules
 * (RFC 9112 §5): no space before the colon, no obs-fold, no CTL but HTAB in the value. */
static int header_line(form_multipart_t *m)
{
    const char *line = m->hbuf + m->line_start;
    size_t n = m->hlen - m->line_start;
    m->line_start = m->hlen;
    if (n == 0)
        return end_headers(m);
    size_t colon = 0;
    while (colon < n && db_is_tchar((unsigned char)line[colon]))
        colon++;
    if (colon == 0 || colon == n || line[colon] != ':')
        return FORM_E_BAD_HEADER;
    size_t vs = colon + 1, ve = n;
    while (vs < ve && (line[vs] == ' ' || line[vs] == '\t'))
        vs++;
    while (ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
        ve--;
    for (size_t i = vs; i < ve; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return FORM_E_BAD_HEADER;
    }
    if (++m->nheaders > m->lim.max_headers)
        return FORM_E_TOO_MANY_HEADERS;
    if (m->cb.on_header && m->cb.on_header(m->user, line, colon, line + vs, ve - vs) != 0)
        return FORM_E_CALLBACK;
    if (form_ieq(line, colon, "content-disposition")) {
        if (m->cd != NULL)
            return FORM_E_BAD_DISPOSITION;
        m->cd = line + vs;
        m->cd_len = ve - vs;
    } else if (form_ieq(line, colon, "content-type")) {
        /* The last one wins, as in Starlette's header mapping. */
        m->part.content_type = line + vs;
        m->part.content_type_len = ve - vs;
    }
    return 0;
}

/* HEADER_LINE: stores bytes up to the next CR. */
static int header_bytes(form_multipart_t *m, const char *p, size_t n, size_t *pos)
{
    const char *cr = memchr(p + *pos, '\r', n - *pos);
    size_t end = cr ? (size_t)(cr - p) : n, add = end - *pos;
    if (add > m->lim.max_header_bytes - m->hcount)
        return FORM_E_HEADER_TOO_LONG;
    memcpy(m->hbuf + m->hlen, p + *pos, add);
    m->hlen += add;
    m->hcount += add;
    *pos = end;
    if (cr) {
        (*pos)++;
        m->state = ST_HEADER_LF;
    }
    return 0;
}

/* One byte of the states between a boundary and what follows its line. */
static int delimiter_byte(form_multipart_t *m, char c)
{
    int rc;
    switch (m->state) {
    case ST_AFTER_DELIM:
    case ST_PADDING:
        if (c == '-' && m->state == ST_AFTER_DELIM)
            m->state = ST_CLOSE_DASH;
        else if (c == ' ' || c == '\t')
            m->state = ST_PADDING; /* transport padding (RFC 2046 §5.1.1) */
        else if (c == '\r')
            m->state = ST_DELIM_LF;
        else
            return FORM_E_BAD_DELIMITER;
        return 0;
    case ST_DELIM_LF:
        return c == '\n' ? begin_part(m) : FORM_E_BAD_DELIMITER;
    case ST_CLOSE_DASH:
        if (c != '-')
            return FORM_E_BAD_DELIMITER;
        m->state = ST_CLOSE_PAD;
        if (m->in_part) {
            m->in_part = 0;
            if ((rc = call(m, m->cb.on_part_end)) < 0)
                return rc;
        }
        return 0;
    case ST_CLOSE_PAD:
        if (c == '\r')
            m->state = ST_CLOSE_LF;
        else if (c != ' ' && c != '\t')
            return FORM_E_AFTER_CLOSE;
        return 0;
    case ST_CLOSE_LF:
        if (c != '\n')
            return FORM_E_AFTER_CLOSE;
        m->state = ST_DONE;
        return call(m, m->cb.on_finish);
    case ST_HEADER_LF:
        if (c != '\n')
            return FORM_E_BAD_HEADER; /* a bare CR */
        if (m->lim.max_header_bytes - m->hcount < 2)
            return FORM_E_HEADER_TOO_LONG;
        m->hcount += 2;
        m->state = ST_HEADER_LINE;
        return header_line(m);
    }
    return FORM_E_BAD_DELIMITER; /* not reached: the caller passes these states only */
}

int form_multipart_feed(form_multipart_t *m, const char *data, size_t len)
{
    if (m->state == ST_ERROR)
        return m->error;
    if (m->state == ST_DONE)
        return 1; /* the epilogue, ignored (RFC 2046 §5.1.1) */
    if (len > m->lim.max_body - m->fed)
        return fail(m, FORM_E_BODY_TOO_LARGE);
    m->fed += len;
    size_t i = 0;
    while (i < len && m->state != ST_DONE) {
        int rc;
        switch (m->state) {
        case ST_PREAMBLE:
        case ST_DATA:
            rc = scan_body(m, data, len, &i);
            if (rc == 1)
                m->state = ST_AFTER_DELIM;
            break;
        case ST_HEADER_LINE:
            rc = header_bytes(m, data, len, &i);
            break;
        default:
            rc = delimiter_byte(m, data[i++]);
            break;
        }
        if (rc < 0)
            return fail(m, rc);
    }
    return m->state == ST_DONE ? 1 : 0;
}

int form_multipart_finish(form_multipart_t *m)
{
    if (m->state == ST_ERROR)
        return m->error;
    if (m->state == ST_DONE)
        return 1;
    /* The close delimiter's CRLF is optional at the very end: RFC 2046 §5.1.1 makes the
     * line end part of the epilogue, and clients do omit it. */
    if (m->state != ST_CLOSE_PAD)
        return fail(m, FORM_E_TRUNCATED);
    m->state = ST_DONE;
    int rc = call(m, m->cb.on_finish);
    return rc < 0 ? fail(m, rc) : 1;
}
