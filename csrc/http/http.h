/*
 * HTTP/1.1 request parsing (RFC 9112) and response helpers. No Python headers here: the
 * parser is unit-tested and fuzzed on its own.
 *
 * Ownership: every pointer in http_request_t is a slice into the caller's buffer, valid
 * while that buffer is neither freed nor moved. The parser never allocates.
 *
 * Return convention for the parse functions: > 0 done, 0 need more bytes, < 0 an
 * http_error_t code (map it with http_error_status / http_error_message).
 */
#ifndef DB_HTTP_HTTP_H
#define DB_HTTP_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum {
    HTTP_GET = 0,
    HTTP_HEAD,
    HTTP_POST,
    HTTP_PUT,
    HTTP_PATCH,
    HTTP_DELETE,
    HTTP_OPTIONS,
    HTTP_TRACE,
    HTTP_CONNECT,
    HTTP_OTHER, /* a valid token that is none of the above */
    HTTP_METHOD_COUNT
} http_method_t;

/* Error codes; every one maps to a status and a human-readable message. */
typedef enum {
    HTTP_E_BAD_REQUEST = -1,         /* 400, generic malformed syntax */
    HTTP_E_BAD_METHOD = -2,          /* 400, method is not a token */
    HTTP_E_BAD_TARGET = -3,          /* 400, request-target has invalid bytes */
    HTTP_E_BAD_VERSION = -4,         /* 400, not HTTP/x.y */
    HTTP_E_VERSION_UNSUPPORTED = -5, /* 505, HTTP/2.0 and later (or HTTP/0.x) */
    HTTP_E_URI_TOO_LONG = -6,        /* 414, target longer than limits.max_target */
    HTTP_E_HEADERS_TOO_LARGE = -7,   /* 431, header block longer than max_header_bytes */
    HTTP_E_TOO_MANY_HEADERS = -8,    /* 431, more than max_headers fields */
    HTTP_E_BAD_HEADER_NAME = -9,     /* 400, field name is not a token (incl. empty) */
    HTTP_E_SPACE_BEFORE_COLON = -10, /* 400, RFC 9112 §5.1 */
    HTTP_E_BAD_HEADER_VALUE = -11,   /* 400, CTL other than HTAB in a field value */
    HTTP_E_OBS_FOLD = -12,           /* 400, RFC 9112 §5.2 line folding */
    HTTP_E_BARE_CR = -13,            /* 400, CR not followed by LF */
    HTTP_E_BARE_LF = -14,            /* 400, LF not preceded by CR */
    HTTP_E_BAD_CONTENT_LENGTH = -15, /* 400, malformed or conflicting Content-Length */
    HTTP_E_CL_AND_TE = -16,          /* 400, both Content-Length and Transfer-Encoding */
    HTTP_E_TE_NOT_CHUNKED = -17,     /* 400, chunked present but not the final coding */
    HTTP_E_TE_UNKNOWN = -18,         /* 501, a transfer coding we do not implement */
    HTTP_E_TE_HTTP10 = -19,          /* 400, Transfer-Encoding in an HTTP/1.0 request */
    HTTP_E_MISSING_HOST = -20,       /* 400, HTTP/1.1 without Host (RFC 9112 §3.2) */
    HTTP_E_DUPLICATE_HOST = -21,     /* 400, more than one Host field */
    HTTP_E_BAD_CHUNK = -22,          /* 400, bad chunk size line, extension or CRLF */
    HTTP_E_CHUNK_TOO_LARGE = -23,    /* 413, chunk size overflows or exceeds the limit */
    HTTP_E_BAD_TRAILER = -24,        /* 400, malformed trailer section */
    HTTP_E_BAD_HOST = -25,           /* 400, Host value is not uri-host [":" port] */
    HTTP_E__LAST = -26
} http_error_t;

typedef struct {
    const char *name;
    size_t name_len;
    const char *value; /* leading and trailing OWS stripped */
    size_t value_len;
} http_header_t;

typedef struct {
    size_t max_target;       /* request-target bytes; more gives 414. Default 8192. */
    size_t max_header_bytes; /* request line + fields + blank line; 431 beyond. Default 65536 */
    size_t max_headers;      /* number of fields; 431 beyond. Default 100, capped at 256 */
} http_limits_t;

#define HTTP_MAX_HEADERS 256

typedef struct {
    http_method_t method;
    const char *method_str;
    size_t method_len;
    const char *target;
    size_t target_len;
    const char *path; /* target up to the first '?' */
    size_t path_len;
    const char *query; /* after the '?', without it; NULL/0 when absent */
    size_t query_len;
    int version_minor; /* 0 or 1 (HTTP/1.x) */
    size_t num_headers;
    /* Framing and connection facts derived from the fields (RFC 9112 §6, §9.3). */
    int64_t content_length; /* -1 when absent */
    unsigned chunked : 1;
    unsigned keep_alive : 1; /* version default adjusted by Connection */
    unsigned expect_continue : 1;
    unsigned has_host : 1;
    size_t header_bytes; /* bytes from the start of the request through the blank line */
    http_header_t headers[HTTP_MAX_HEADERS];
} http_request_t;

/* Incremental state for one request head: how far the buffer is known not to hold the end
 * of the header block, so that re-scanning after a short read costs only the new bytes.
 * http_parse_request sets it back to 0 when it returns a complete head, so the same parser
 * can go straight on to the next pipelined request at buf + consumed bytes. */
typedef struct {
    size_t scanned;
} http_parser_t;

void http_limits_default(http_limits_t *lim);
static inline void http_parser_reset(http_parser_t *p)
{
    p->scanned = 0;
}

/* Parses the request head at buf[0..len). Returns header_bytes (> 0) once the whole head
 * is present and valid, 0 when more bytes are needed, or a negative http_error_t. Limits
 * are enforced on incomplete input too, so a client cannot grow the buffer without bound:
 * a request line with no LF within max_target + 32 bytes gives 414, a head with no end
 * within max_header_bytes gives 431. A bare CR or LF is reported as soon as it is seen.
 * Up to 8 empty lines before the request-line are skipped (RFC 9112 §2.2) and counted in
 * header_bytes. The result does not depend on how the bytes were split across calls. After
 * an error the connection must be closed: the parser does not resynchronise. */
int http_parse_request(http_parser_t *p, const char *buf, size_t len, const http_limits_t *lim,
                       http_request_t *req);

/* Case-insensitive lookup of a field; returns the first match or NULL. */
const http_header_t *http_find_header(const http_request_t *req, const char *name, size_t name_len);

/* Incremental in-place decoder for a chunked body (RFC 9112 §7.1). */
typedef struct {
    int state;
    uint64_t chunk_left; /* data bytes left in the current chunk; trailer bytes after it */
    size_t line_len;     /* bytes seen in the current size/extension/trailer line */
    uint64_t total;      /* decoded body bytes so far */
    uint64_t max_body;   /* limit on total (0: no body); more gives HTTP_E_CHUNK_TOO_LARGE */
} http_chunked_t;

void http_chunked_init(http_chunked_t *d, uint64_t max_body);
/* Decodes buf[0..*len) in place. On return buf[0..*len) holds the newly decoded body bytes.
 * Returns 0 when all input was consumed and more is needed; 1 when the message ended,
 * with the *leftover bytes that followed it moved to buf[*len .. *len + *leftover); or a
 * negative http_error_t (sticky: later calls return it again). *leftover is 0 unless 1 is
 * returned. Size lines are bounded at 4 KiB and the trailer section at 16 KiB. */
int http_chunked_decode(http_chunked_t *d, char *buf, size_t *len, size_t *leftover);

/* Status codes and errors. */
const char *http_status_reason(int status); /* "Not Found"; "" for unknown codes */
int http_error_status(int err);             /* HTTP_E_URI_TOO_LONG -> 414, ... */
const char *http_error_message(int err);    /* one sentence for the JSON error body */
const char *http_method_name(http_method_t m);

/* Cached IMF-fixdate (RFC 9110 §5.6.7) for the Date header, refreshed at most once a
 * second. Returns a pointer to 29 bytes, valid until the next call. */
const char *http_date_now(time_t now);

/* A Host field value split as Starlette's parse_host_header does (RFC 3986 §3.2.2's
 * reg-name, an IPv6 literal in brackets or an IPvFuture, then an optional ":port"): host
 * keeps the brackets of an IP literal; port is NULL when absent. Returns 0, or -1 for a
 * value that is none of those (an invalid IPv6 address included). */
typedef struct {
    const char *host;
    size_t host_len;
    const char *port;
    size_t port_len;
} http_host_t;
int http_parse_host(const char *value, size_t len, http_host_t *out);

/* Whether a port text is a valid port for Starlette's URL: at most 5 digits after leading
 * zeros and at most 65535. */
int http_host_port_valid(const char *port, size_t len);

/* Proxy headers, as uvicorn's ProxyHeadersMiddleware reads them (forwarded.c). A trusted
 * set is made once from --forwarded-allow-ips ("*", addresses, CIDR networks, literals,
 * comma separated); NULL when out of memory. */
typedef struct http_trust http_trust_t;
http_trust_t *http_trust_new(const char *spec, size_t len);
void http_trust_free(http_trust_t *t);
int http_trust_all(const http_trust_t *t);
/* 1 when host (numeric address text, or anything compared with the literals) is trusted. */
int http_trust_has(const http_trust_t *t, const char *host, size_t len);
/* The client named by the request's X-Forwarded-For fields: the rightmost untrusted item
 * (the leftmost when all are trusted or the set is "*"). Returns 1 with *host (a slice of
 * the field, without brackets) and *port (0 when absent); 0 when there is no such field or
 * the item is empty. */
int http_forwarded_client(const http_trust_t *t, const http_request_t *req, const char **host,
                          size_t *host_len, int *port);
/* The last X-Forwarded-Proto value when it is http, https, ws or wss (a slice), else NULL. */
const char *http_forwarded_proto(const http_request_t *req, size_t *len);
/* The X-Forwarded-Host item at the hop of http_forwarded_client's client (its leftmost item
 * when the list is shorter) when it is a valid Host value: 1 with *host a slice; else 0. */
int http_forwarded_host(const http_trust_t *t, const http_request_t *req, const char **host,
                        size_t *host_len);
/* RFC 7239's Forwarded fields: for=, proto= and host= of the element the first trusted
 * proxy added (the rightmost one whose for= is not trusted; the leftmost when all are).
 * client is the node's name without brackets ("unknown" and "_obfuscated" names kept as
 * text), client_port 0 when absent or obfuscated; proto is one of the static strings
 * "http", "https", "ws", "wss" (matched without case); host a valid Host value. Values
 * live in the request or in buf. Returns 1 when the fields were read (each part NULL when
 * the element lacks it or it is invalid); 0 without a Forwarded field, when one breaks
 * RFC 7239 §4's grammar, or when more than 32 elements are all trusted. */
typedef struct {
    const char *client;
    size_t client_len;
    int client_port;
    const char *proto;
    const char *host;
    size_t host_len;
    size_t used;
    char buf[512];
} http_forwarded_t;
int http_forwarded_rfc7239(const http_trust_t *t, const http_request_t *req, http_forwarded_t *out);

#endif
