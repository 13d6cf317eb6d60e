/*
 * HTTP/1.1 request-head parser (RFC 9112 §2-§6, §9.3). It turns the bytes at the front of
 * a connection's read buffer into an http_request_t whose pointers are slices of that
 * buffer: the caller owns the buffer, the parser owns nothing and never allocates.
 *
 * The work is split in two passes. The first pass (find_stop) looks only for CR and LF
 * bytes, resuming where the previous call on the same buffer stopped (http_parser_t
 * .scanned), until it meets the blank line that ends the head or a bare CR/LF that makes
 * the head invalid. The second pass (parse_head) runs once, over the complete head, and
 * validates every byte with table-driven loops. Limits are checked between the passes
 * with thresholds that depend only on the bytes present, so feeding a request in any
 * number of pieces gives the same result as feeding it at once.
 *
 * This file is owned by the http component; the server owns the buffer and decides what
 * to do with each http_error_t (status via http_error_status in status.c).
 */
#include "http/http.h"

#include <limits.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The request line may be this many bytes longer than max_target before a missing LF is
 * reported as 414: room for a method of up to ~20 bytes, two SP, "HTTP/1.1" and the CR. */
#define REQUEST_LINE_SLACK 32

/* RFC 9112 §2.2: a server SHOULD ignore at least one empty line received before the
 * request-line (some clients send CRLF after a POST body). We ignore up to this many. */
#define MAX_LEADING_EMPTY_LINES 8

/* tchar (RFC 9110 §5.6.2): the bytes allowed in a method and a field name. */
static const unsigned char tchar_table[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, /* 0x20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, /* 0x70 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x80 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x90 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xa0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xb0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xc0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xd0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xe0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xf0 */
};

/* field-vchar / SP / HTAB / obs-text (RFC 9110 §5.5): every byte but CTLs and DEL. */
static const unsigned char value_table[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, /* 0x70 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x80 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x90 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xa0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xb0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xc0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xd0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xe0 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xf0 */
};

/* Absolute-form without a path component means "/" (RFC 9112 §3.2.2, RFC 3986 §6.2.3).
 * The buffer has no '/' to slice then, so req->path points here instead. */
static const char root_path[] = "/";

void http_limits_default(http_limits_t *lim)
{
    lim->max_target = 8192;
    lim->max_header_bytes = 65536;
    lim->max_headers = 100;
}

static inline int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline int is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

static inline unsigned char to_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Compares s[0..n) with a lowercase literal, ignoring ASCII case. */
static int equals_ci(const char *s, size_t n, const char *lit, size_t lit_len)
{
    if (n != lit_len)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (to_lower((unsigned char)s[i]) != (unsigned char)lit[i])
            return 0;
    }
    return 1;
}

#define EQUALS_CI(s, n, lit) equals_ci((s), (n), (lit), sizeof(lit) - 1)

/* Returns the first CR or LF in [p, end), or end. `base` is the start of the buffer: a short
 * tail is examined with one 16-byte load that ends at `end` and may start before p. */
static const char *find_cr_or_lf(const char *base, const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i cr = _mm_set1_epi8('\r');
    const __m128i lf = _mm_set1_epi8('\n');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        int mask = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
        if (mask)
            return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
    if (p < end && end - base >= 16) {
        const char *q = end - 16;
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
        unsigned mask =
            (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
        mask >>= (unsigned)(p - q);
        return mask ? p + __builtin_ctz(mask) : end;
    }
#else
    (void)base;
#endif
    while (p < end && *p != '\r' && *p != '\n')
        p++;
    return p;
}

/* Skips request-target bytes (visible ASCII, 0x21-0x7E; RFC 9112 §3.2 with RFC 3986 chars).
 * The head always contains a CR or LF after p, which stops the scalar loop. */
static const char *skip_target_bytes(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i lo = _mm_set1_epi8(0x20);
    const __m128i hi = _mm_set1_epi8(0x7e);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* Unsigned v <= 0x20 or v > 0x7e, using min/max since SSE2 compares are signed. */
        __m128i bad =
            _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, lo), v),
                         _mm_xor_si128(_mm_cmpeq_epi8(_mm_max_epu8(v, hi), hi), _mm_set1_epi8(-1)));
        int mask = _mm_movemask_epi8(bad);
        if (mask)
            return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#else
    (void)end;
#endif
    while ((unsigned char)(*p - 0x21) < 0x5e)
        p++;
    return p;
}

/* Skips field-value bytes (value_table). Stops at the CR that ends the line at the latest. */
static const char *skip_value_bytes(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i c1f = _mm_set1_epi8(0x1f);
    const __m128i tab = _mm_set1_epi8('\t');
    const __m128i del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, c1f), v);
        __m128i bad =
            _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, tab), ctl), _mm_cmpeq_epi8(v, del));
        int mask = _mm_movemask_epi8(bad);
        if (mask)
            return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#else
    (void)end;
#endif
    while (value_table[(unsigned char)*p])
        p++;
    return p;
}

/* Skips tchar bytes. Unrolled: each byte is read only after its predecessor proved to be a
 * tchar (so not the CR/LF that ends the region), which keeps every read in bounds. */
static inline const char *skip_tchars(const char *p)
{
    for (;;) {
        if (!tchar_table[(unsigned char)p[0]])
            return p;
        if (!tchar_table[(unsigned char)p[1]])
            return p + 1;
        if (!tchar_table[(unsigned char)p[2]])
            return p + 2;
        if (!tchar_table[(unsigned char)p[3]])
            return p + 3;
        p += 4;
    }
}

/* Number of leading bytes that are empty lines (CRLF pairs) we agree to ignore. */
static size_t leading_empty_lines(const char *buf, size_t len)
{
    size_t i = 0;
    while (i + 1 < len && i < 2 * MAX_LEADING_EMPTY_LINES && buf[i] == '\r' && buf[i + 1] == '\n')
        i += 2;
    return i;
}

/*
 * First pass: finds the first "stop" at or after `from`: the LF of the blank line that ends
 * the head (RFC 9112 §2.1), a CR not followed by LF, or a LF not preceded by CR (§2.2 lets
 * a server accept bare LF; we do not, since proxies disagree on it and that enables request
 * smuggling). Returns how many bytes are needed to see the stop, or 0 when there is none
 * yet. Each position is decided from buf[i-3..i+1] only, so the result does not depend on
 * how the bytes were split across calls, and a re-scan can start 3 bytes before the end of
 * the previous one (a CR in the last byte is left undecided until its successor arrives).
 */
static size_t find_stop(const char *buf, size_t len, size_t from, size_t skip)
{
    const char *end = buf + len;
    const char *p = buf + from;
    for (;;) {
        p = find_cr_or_lf(buf, p, end);
        if (p == end)
            return 0;
        size_t i = (size_t)(p - buf);
        if (*p == '\r') {
            if (i + 1 == len)
                return 0;
            if (p[1] != '\n')
                return i + 2;
            i++;
            p++;
        } else if (i == 0 || buf[i - 1] != '\r') {
            return i + 1;
        }
        /* buf[i] is the LF of a CRLF: is it the second one of CRLF CRLF? */
        if (i >= skip + 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return i + 1;
        p++;
    }
}

/* The parser meets a CR or LF where a syntax element should continue. A CR without LF and
 * a LF met directly (the parser consumes every CR together with its LF) are reported as
 * such; otherwise the element is malformed and `err` applies. */
static int unexpected(const char *p, int err)
{
    if (*p == '\r' && p[1] != '\n')
        return HTTP_E_BARE_CR;
    if (*p == '\n')
        return HTTP_E_BARE_LF;
    return err;
}

/* RFC 9110 §9.1: method names are case-sensitive. */
static http_method_t classify_method(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(m, "GET", 3) == 0)
            return HTTP_GET;
        if (memcmp(m, "PUT", 3) == 0)
            return HTTP_PUT;
        break;
    case 4:
        if (memcmp(m, "POST", 4) == 0)
            return HTTP_POST;
        if (memcmp(m, "HEAD", 4) == 0)
            return HTTP_HEAD;
        break;
    case 5:
        if (memcmp(m, "PATCH", 5) == 0)
            return HTTP_PATCH;
        if (memcmp(m, "TRACE", 5) == 0)
            return HTTP_TRACE;
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0)
            return HTTP_DELETE;
        break;
    case 7:
        if (memcmp(m, "OPTIONS", 7) == 0)
            return HTTP_OPTIONS;
        if (memcmp(m, "CONNECT", 7) == 0)
            return HTTP_CONNECT;
        break;
    default:
        break;
    }
    return HTTP_OTHER;
}

/* Sets path/query from t[0..n), splitting at the first '?' (RFC 9112 §3.2.1). */
static void split_query(http_request_t *req, const char *t, size_t n)
{
    const char *q = memchr(t, '?', n);
    req->path = t;
    if (q) {
        req->path_len = (size_t)(q - t);
        req->query = q + 1;
        req->query_len = n - req->path_len - 1;
    } else {
        req->path_len = n;
        req->query = NULL;
        req->query_len = 0;
    }
}

/* authority-form (RFC 9112 §3.2.3): uri-host ":" port, only for CONNECT. */
static int check_authority_form(const char *t, size_t n)
{
    size_t colon = n;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (c == '/' || c == '?' || c == '#' || c == '@')
            return HTTP_E_BAD_TARGET;
        if (c == ':')
            colon = i;
    }
    if (colon == 0 || colon == n || colon + 1 == n)
        return HTTP_E_BAD_TARGET;
    for (size_t i = colon + 1; i < n; i++) {
        if (!is_digit(t[i]))
            return HTTP_E_BAD_TARGET;
    }
    return 0;
}

/* Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2). Only the alphabet and the
 * port are checked: enough to refuse spaces, paths, userinfo and other bytes that confuse
 * virtual hosting and caches, which RFC 9112 §3.2 requires to be answered with 400. An empty
 * value is allowed. */
static int check_host(const char *v, size_t n)
{
    size_t i = 0;
    if (n > 0 && v[0] == '[') {
        /* IP-literal: hex digits, ':' and '.' (IPv6, IPvFuture is not used in practice). */
        for (i = 1; i < n && v[i] != ']'; i++) {
            char c = v[i];
            if (!is_digit(c) && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && c != ':' && c != '.')
                return HTTP_E_BAD_HOST;
        }
        if (i == n)
            return HTTP_E_BAD_HOST;
        i++;
    } else {
        /* reg-name: unreserved / pct-encoded / sub-delims, as a bitmap of the ASCII bytes
         * ALPHA DIGIT - . _ ~ % ! $ & ' ( ) * + , ; = (bytes 0-63, then 64-127). */
        static const uint64_t reg_name_lo = 0x2bff7ff200000000u;
        static const uint64_t reg_name_hi = 0x47fffffe87fffffeu;
        for (; i < n && v[i] != ':'; i++) {
            unsigned char c = (unsigned char)v[i];
            uint64_t bits = c < 64 ? reg_name_lo >> c : c < 128 ? reg_name_hi >> (c - 64) : 0;
            if (!(bits & 1))
                return HTTP_E_BAD_HOST;
        }
    }
    if (i == n)
        return 0;
    if (v[i] != ':')
        return HTTP_E_BAD_HOST;
    for (i++; i < n; i++) {
        if (!is_digit(v[i]))
            return HTTP_E_BAD_HOST;
    }
    return 0;
}

/* absolute-form (RFC 9112 §3.2.2): "http://" or "https://" authority [path-abempty] [?query].
 * The server routes on the path, so we take it out; the authority is not checked against
 * Host here (a proxy concern). */
static int split_absolute_form(http_request_t *req, const char *t, size_t n)
{
    size_t i;
    if (n >= 7 && equals_ci(t, 7, "http://", 7))
        i = 7;
    else if (n >= 8 && equals_ci(t, 8, "https://", 8))
        i = 8;
    else
        return HTTP_E_BAD_TARGET;
    size_t host = i;
    while (i < n && t[i] != '/' && t[i] != '?' && t[i] != '#')
        i++;
    /* check_host also refuses userinfo, which is deprecated and a phishing vector (RFC 9110
     * §4.2.4). */
    if (i == host || check_host(t + host, i - host) < 0)
        return HTTP_E_BAD_TARGET;
    if (i < n && t[i] == '/') {
        split_query(req, t + i, n - i);
    } else if (i < n && t[i] == '?') {
        req->path = root_path;
        req->path_len = 1;
        req->query = t + i + 1;
        req->query_len = n - i - 1;
    } else {
        req->path = root_path;
        req->path_len = 1;
        req->query = NULL;
        req->query_len = 0;
    }
    return 0;
}

/* Content-Length = 1*DIGIT (RFC 9110 §8.6). A list of identical values, or repeated fields
 * with identical values, may be accepted as one; anything else is a smuggling vector. */
static int add_content_length(const char *v, size_t n, int64_t *cl)
{
    size_t i = 0;
    for (;;) {
        if (i >= n || !is_digit(v[i]))
            return HTTP_E_BAD_CONTENT_LENGTH;
        int64_t x = 0;
        while (i < n && is_digit(v[i])) {
            int d = v[i] - '0';
            if (x > (INT64_MAX - d) / 10)
                return HTTP_E_BAD_CONTENT_LENGTH;
            x = x * 10 + d;
            i++;
        }
        if (*cl >= 0 && x != *cl)
            return HTTP_E_BAD_CONTENT_LENGTH;
        *cl = x;
        while (i < n && is_ows(v[i]))
            i++;
        if (i == n)
            return 0;
        if (v[i] != ',')
            return HTTP_E_BAD_CONTENT_LENGTH;
        i++;
        while (i < n && is_ows(v[i]))
            i++;
    }
}

/* Transfer-Encoding facts accumulated over all fields (RFC 9112 §6.1: several fields are
 * one comma-separated list). */
typedef struct {
    unsigned present : 1;
    unsigned chunked_seen : 1;
    unsigned chunked_not_last : 1; /* chunked twice, or another coding after it */
    unsigned unknown : 1;
} te_state_t;

/* Calls fn(elem, len, ctx) for each non-empty element of a comma-separated list, trimmed
 * of OWS. Empty elements are ignored as RFC 9110 §5.6.1 asks. */
static void for_each_element(const char *v, size_t n, void (*fn)(const char *, size_t, void *),
                             void *ctx)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (is_ows(v[i]) || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t stop = i;
        while (stop > start && is_ows(v[stop - 1]))
            stop--;
        if (stop > start)
            fn(v + start, stop - start, ctx);
    }
}

static void on_te_element(const char *e, size_t n, void *ctx)
{
    te_state_t *te = ctx;
    if (te->chunked_seen)
        te->chunked_not_last = 1;
    if (EQUALS_CI(e, n, "chunked"))
        te->chunked_seen = 1;
    else
        te->unknown = 1;
}

typedef struct {
    unsigned close : 1;
    unsigned keep_alive : 1;
} conn_state_t;

static void on_connection_element(const char *e, size_t n, void *ctx)
{
    conn_state_t *c = ctx;
    if (EQUALS_CI(e, n, "close"))
        c->close = 1;
    else if (EQUALS_CI(e, n, "keep-alive"))
        c->keep_alive = 1;
}

/* Parses the request-line (RFC 9112 §3) at p; returns the start of the next line or NULL
 * with *err set. */
static const char *parse_request_line(const char *p, const char *end, const http_limits_t *lim,
                                      http_request_t *req, int *err)
{
    const char *m = p;
    p = skip_tchars(p);
    if (*p != ' ' || p == m) {
        /* "GET\r\n" or an empty line: a request-line without a target. */
        *err = (*p == '\r' && p[1] == '\n') ? HTTP_E_BAD_REQUEST : unexpected(p, HTTP_E_BAD_METHOD);
        return NULL;
    }
    req->method_str = m;
    req->method_len = (size_t)(p - m);
    req->method = classify_method(m, req->method_len);

    const char *t = ++p;
    p = skip_target_bytes(p, end);
    if (*p != ' ' || p == t) {
        /* "GET /\r\n" is an HTTP/0.9 request, which has no version to speak of. */
        *err = unexpected(p, *p == '\r' && p != t ? HTTP_E_BAD_VERSION : HTTP_E_BAD_TARGET);
        return NULL;
    }
    req->target = t;
    req->target_len = (size_t)(p - t);
    if (req->target_len > lim->max_target) {
        *err = HTTP_E_URI_TOO_LONG;
        return NULL;
    }
    /* No form of request-target carries a fragment (RFC 9112 §3.2): a '#' would either be
     * dropped silently or routed as part of the path, and parsers in front of us disagree
     * on which, so it is refused (RFC 9112 §3: 400 for an invalid request-line). */
    if (memchr(t, '#', req->target_len) != NULL) {
        *err = HTTP_E_BAD_TARGET;
        return NULL;
    }

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3), compared byte by byte so that
     * nothing past the CR/LF that ends the head is read. */
    p++;
    static const char prefix[] = "HTTP/";
    for (int i = 0; i < 5; i++, p++) {
        if (*p != prefix[i]) {
            *err = unexpected(p, HTTP_E_BAD_VERSION);
            return NULL;
        }
    }
    if (!is_digit(p[0])) {
        *err = unexpected(p, HTTP_E_BAD_VERSION);
        return NULL;
    }
    if (p[1] != '.') {
        *err = unexpected(p + 1, HTTP_E_BAD_VERSION);
        return NULL;
    }
    if (!is_digit(p[2])) {
        *err = unexpected(p + 2, HTTP_E_BAD_VERSION);
        return NULL;
    }
    if (p[3] != '\r') {
        *err = unexpected(p + 3, HTTP_E_BAD_VERSION);
        return NULL;
    }
    if (p[4] != '\n') {
        *err = HTTP_E_BARE_CR;
        return NULL;
    }
    /* RFC 9110 §6.2: a 1.x request with a higher minor version is answered as 1.1. Other
     * major versions are not spoken on this connection (505). */
    if (p[0] != '1') {
        *err = HTTP_E_VERSION_UNSUPPORTED;
        return NULL;
    }
    req->version_minor = p[2] == '0' ? 0 : 1;

    /* Request-target forms (RFC 9112 §3.2). */
    int rc = 0;
    if (t[0] == '/') {
        if (req->method == HTTP_CONNECT)
            rc = HTTP_E_BAD_TARGET;
        else
            split_query(req, t, req->target_len);
    } else if (req->target_len == 1 && t[0] == '*') {
        if (req->method != HTTP_OPTIONS)
            rc = HTTP_E_BAD_TARGET;
        else
            split_query(req, t, 1);
    } else if (req->method == HTTP_CONNECT) {
        rc = check_authority_form(t, req->target_len);
        if (rc == 0)
            split_query(req, t, req->target_len);
    } else {
        rc = split_absolute_form(req, t, req->target_len);
    }
    if (rc < 0) {
        *err = rc;
        return NULL;
    }
    return p + 5;
}

/* Second pass over a head known to end (or to fail) before buf[e]. find_stop guarantees that
 * buf[skip..e) ends with the LF of CRLF CRLF, with a bare LF, or with the byte after a bare
 * CR, and every loop below stops at CR and LF; so the byte loops need no bounds checks, and
 * whenever a CR is met its successor is inside the region too. */
static int parse_head(const char *buf, size_t skip, size_t e, const http_limits_t *lim,
                      http_request_t *req)
{
    const char *end = buf + e;
    int err = 0;
    const char *p = parse_request_line(buf + skip, end, lim, req, &err);
    if (!p)
        return err;

    size_t max_headers = lim->max_headers < HTTP_MAX_HEADERS ? lim->max_headers : HTTP_MAX_HEADERS;
    size_t n = 0;
    int64_t cl = -1;
    unsigned hosts = 0;
    int expect_continue = 0;
    te_state_t te = {0};
    conn_state_t conn = {0};

    for (;;) {
        const char *name = p;
        if (*p == '\r') {
            if (p[1] != '\n')
                return HTTP_E_BARE_CR;
            p += 2;
            break;
        }
        if (*p == '\n')
            return HTTP_E_BARE_LF;
        /* RFC 9112 §5.2 obs-fold, and §2.2 whitespace before the first field. */
        if (is_ows(*p))
            return HTTP_E_OBS_FOLD;
        if (n == max_headers)
            return HTTP_E_TOO_MANY_HEADERS;
        p = skip_tchars(p);
        size_t name_len = (size_t)(p - name);
        if (*p != ':') {
            if (name_len > 0 && is_ows(*p)) {
                /* RFC 9112 §5.1: no whitespace between field name and colon. */
                const char *q = p;
                while (is_ows(*q))
                    q++;
                return *q == ':' ? HTTP_E_SPACE_BEFORE_COLON : HTTP_E_BAD_HEADER_NAME;
            }
            if (name_len > 0 && *p == '\r' && p[1] == '\n')
                return HTTP_E_BAD_REQUEST; /* a field line without a colon */
            return unexpected(p, HTTP_E_BAD_HEADER_NAME);
        }
        if (name_len == 0)
            return HTTP_E_BAD_HEADER_NAME;
        p++;
        while (is_ows(*p))
            p++;
        const char *value = p;
        p = skip_value_bytes(p, end);
        if (*p != '\r' || p[1] != '\n')
            return unexpected(p, HTTP_E_BAD_HEADER_VALUE);
        const char *vend = p;
        while (vend > value && is_ows(vend[-1]))
            vend--;
        size_t value_len = (size_t)(vend - value);
        p += 2;

        http_header_t *h = &req->headers[n++];
        h->name = name;
        h->name_len = name_len;
        h->value = value;
        h->value_len = value_len;

        /* The few fields that frame the message or steer the connection (RFC 9112 §6, §9.3;
         * RFC 9110 §7.2, §10.1.1). Dispatch on length first: most fields are none of these. */
        switch (name_len) {
        case 4:
            if (EQUALS_CI(name, name_len, "host")) {
                if (++hosts > 1)
                    return HTTP_E_DUPLICATE_HOST;
                err = check_host(value, value_len);
                if (err < 0)
                    return err;
            }
            break;
        case 6:
            if (EQUALS_CI(name, name_len, "expect") && EQUALS_CI(value, value_len, "100-continue"))
                expect_continue = 1;
            break;
        case 10:
            if (EQUALS_CI(name, name_len, "connection"))
                for_each_element(value, value_len, on_connection_element, &conn);
            break;
        case 14:
            if (EQUALS_CI(name, name_len, "content-length")) {
                err = add_content_length(value, value_len, &cl);
                if (err < 0)
                    return err;
            }
            break;
        case 17:
            if (EQUALS_CI(name, name_len, "transfer-encoding")) {
                te.present = 1;
                for_each_element(value, value_len, on_te_element, &te);
            }
            break;
        default:
            break;
        }
    }

    /* RFC 9112 §6.1: a request with both is a smuggling attempt until proven otherwise. */
    if (te.present && cl >= 0)
        return HTTP_E_CL_AND_TE;
    if (te.present) {
        /* RFC 9112 §6.1: HTTP/1.0 has no Transfer-Encoding; framing would be ambiguous. */
        if (req->version_minor == 0)
            return HTTP_E_TE_HTTP10;
        /* RFC 9112 §6.3: chunked must be the final coding, applied once; otherwise the
         * length cannot be determined (400). Codings we do not implement give 501. */
        if (te.chunked_not_last)
            return HTTP_E_TE_NOT_CHUNKED;
        if (te.unknown)
            return HTTP_E_TE_UNKNOWN;
        if (!te.chunked_seen)
            return HTTP_E_TE_NOT_CHUNKED;
    }
    /* RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request without Host. */
    if (req->version_minor == 1 && hosts == 0)
        return HTTP_E_MISSING_HOST;

    req->num_headers = n;
    req->content_length = cl;
    req->chunked = te.present;
    req->has_host = hosts > 0;
    /* RFC 9112 §9.3: 1.1 is persistent unless "close"; 1.0 only with "keep-alive". */
    req->keep_alive = req->version_minor == 1 ? !conn.close : (conn.keep_alive && !conn.close);
    /* RFC 9110 §10.1.1: a server MUST ignore 100-continue in an HTTP/1.0 request. */
    req->expect_continue = expect_continue && req->version_minor == 1;
    req->header_bytes = (size_t)(p - buf);
    return 0;
}

int http_parse_request(http_parser_t *ps, const char *buf, size_t len, const http_limits_t *lim,
                       http_request_t *req)
{
    if (len == 0)
        return 0;
    size_t max_head = lim->max_header_bytes < INT_MAX ? lim->max_header_bytes : INT_MAX;
    size_t skip = leading_empty_lines(buf, len);
    size_t from = ps->scanned <= len ? ps->scanned : 0;
    from = from >= 3 ? from - 3 : 0;
    size_t stop = find_stop(buf, len, from, skip);
    size_t have = stop ? stop : len;

    /* Limits on the bytes seen so far. Each check fires at a fixed prefix length (the first
     * prefix that proves the limit broken), and the smaller threshold wins, so the error
     * does not depend on how the input was split. The request line is bounded first so a
     * client cannot make us buffer a whole header block's worth of one line. */
    size_t line_limit =
        lim->max_target < SIZE_MAX / 2 ? lim->max_target + REQUEST_LINE_SLACK : SIZE_MAX / 2;
    size_t t414 = skip + line_limit + 1;
    size_t t431 = max_head + 1;
    /* A byte that cannot be part of a method where the method is (a TLS ClientHello's 0x16,
     * binary garbage) is answered at once: waiting for a line end that may never come would
     * keep the client waiting until the request timeout. It counts from the prefix that
     * shows it, and only when no limit above fired on a shorter one, so the answer is the
     * same however the bytes arrive (the full parse reports the same byte the same way). */
    size_t m = skip;
    while (m < have && tchar_table[(unsigned char)buf[m]])
        m++;
    if (m < have && buf[m] != ' ' && buf[m] != '\r' && buf[m] != '\n' && m + 1 < t431 &&
        (t414 >= t431 || m + 1 < t414))
        return HTTP_E_BAD_METHOD;
    if (t414 < t431 && have >= t414 && !memchr(buf + skip, '\n', t414 - skip))
        return HTTP_E_URI_TOO_LONG;
    if (have >= t431)
        return HTTP_E_HEADERS_TOO_LARGE;
    if (!stop) {
        ps->scanned = len;
        return 0;
    }

    int rc = parse_head(buf, skip, stop, lim, req);
    if (rc < 0)
        return rc;
    /* The next request on this connection starts at a different buffer offset. */
    ps->scanned = 0;
    return (int)req->header_bytes;
}

const http_header_t *http_find_header(const http_request_t *req, const char *name, size_t name_len)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const http_header_t *h = &req->headers[i];
        if (h->name_len != name_len)
            continue;
        size_t j = 0;
        while (j < name_len &&
               to_lower((unsigned char)h->name[j]) == to_lower((unsigned char)name[j]))
            j++;
        if (j == name_len)
            return h;
    }
    return NULL;
}
