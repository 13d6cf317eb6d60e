/*
 * TAP tests for the request-head parser (csrc/http/parser.c) and the small tables next to it
 * (status.c, date.c). Every request is parsed twice: once in one call, and once fed a byte
 * at a time through the same http_parser_t, each prefix copied into a buffer of exactly its
 * length so that AddressSanitizer catches any read past the bytes received. Both ways must
 * agree; the checks then look at the one-shot result.
 */
#include "http/http.h"
#include "tap.h"

#include <stdlib.h>

static http_limits_t limits;
static http_request_t req;

/* Feeds s[0..n) one more byte per call; returns the first non-zero result. */
static int parse_bytewise(const char *s, size_t n, const http_limits_t *lim, http_request_t *out,
                          size_t *calls)
{
    http_parser_t p;
    http_parser_reset(&p);
    int rc = 0;
    *calls = 0;
    for (size_t len = 1; len <= n; len++) {
        char *copy = malloc(len);
        memcpy(copy, s, len);
        rc = http_parse_request(&p, copy, len, lim, out);
        (*calls)++;
        free(copy);
        if (rc != 0)
            break;
    }
    return rc;
}

/* One-shot parse of s[0..n) into the global req, cross-checked against byte-wise feeding
 * (and, for completed requests, against the header facts of the byte-wise result). */
static int parse_n(const char *s, size_t n, const http_limits_t *lim)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    http_parser_t p;
    http_parser_reset(&p);
    int rc = http_parse_request(&p, copy, n, lim, &req);
    free(copy);

    static http_request_t inc;
    size_t calls;
    int rc2 = parse_bytewise(s, n, lim, &inc, &calls);
    if (rc2 != rc) {
        printf("# one-shot %d, byte-wise %d after %zu bytes for: ", rc, rc2, calls);
        for (size_t i = 0; i < n && i < 80; i++)
            putchar(s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '.');
        putchar('\n');
        return -1000;
    }
    if (rc > 0) {
        /* Re-run one-shot so that req points into a live buffer: the caller's literal. */
        http_parser_reset(&p);
        rc = http_parse_request(&p, s, n, lim, &req);
        if (inc.num_headers != req.num_headers || inc.content_length != req.content_length ||
            inc.keep_alive != req.keep_alive || inc.chunked != req.chunked ||
            inc.path_len != req.path_len || inc.query_len != req.query_len)
            return -1001;
    }
    return rc;
}

static int parse(const char *s)
{
    return parse_n(s, strlen(s), &limits);
}

static int parse_lim(const char *s, const http_limits_t *lim)
{
    return parse_n(s, strlen(s), lim);
}

#define H11 "Host: example.com\r\n"

static void test_simple_get(void)
{
    const char *s = "GET /users/42?verbose=1&x=%20 HTTP/1.1\r\n" H11 "Accept: */*\r\n\r\n";
    int rc = parse(s);
    TAP_EQ_INT(rc, strlen(s));
    TAP_EQ_INT(req.header_bytes, strlen(s));
    TAP_EQ_INT(req.method, HTTP_GET);
    TAP_EQ_MEM(req.method_str, req.method_len, "GET");
    TAP_EQ_MEM(req.target, req.target_len, "/users/42?verbose=1&x=%20");
    TAP_EQ_MEM(req.path, req.path_len, "/users/42");
    TAP_EQ_MEM(req.query, req.query_len, "verbose=1&x=%20");
    TAP_EQ_INT(req.version_minor, 1);
    TAP_EQ_INT(req.num_headers, 2);
    TAP_EQ_MEM(req.headers[0].name, req.headers[0].name_len, "Host");
    TAP_EQ_MEM(req.headers[0].value, req.headers[0].value_len, "example.com");
    TAP_EQ_MEM(req.headers[1].name, req.headers[1].name_len, "Accept");
    TAP_EQ_MEM(req.headers[1].value, req.headers[1].value_len, "*/*");
    TAP_EQ_INT(req.content_length, -1);
    TAP_EQ_INT(req.chunked, 0);
    TAP_EQ_INT(req.keep_alive, 1);
    TAP_EQ_INT(req.expect_continue, 0);
    TAP_EQ_INT(req.has_host, 1);
    /* Slices point into the caller's buffer, not at copies. */
    TAP_OK(req.target == s + 4);
    TAP_OK(req.headers[0].value == s + strlen("GET /users/42?verbose=1&x=%20 HTTP/1.1\r\nHost: "));

    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "\r\n"), strlen("GET / HTTP/1.1\r\n" H11 "\r\n"));
    TAP_OK(req.query == NULL && req.query_len == 0);
    TAP_EQ_MEM(req.path, req.path_len, "/");
    /* Empty query after '?' and a second '?' that belongs to the query. */
    TAP_OK(parse("GET /a? HTTP/1.1\r\n" H11 "\r\n") > 0);
    TAP_OK(req.query != NULL && req.query_len == 0);
    TAP_OK(parse("GET /a?b?c HTTP/1.1\r\n" H11 "\r\n") > 0);
    TAP_EQ_MEM(req.path, req.path_len, "/a");
    TAP_EQ_MEM(req.query, req.query_len, "b?c");
    /* HTTP/1.0 needs no Host and is not persistent by default. */
    TAP_OK(parse("GET / HTTP/1.0\r\n\r\n") > 0);
    TAP_EQ_INT(req.version_minor, 0);
    TAP_EQ_INT(req.keep_alive, 0);
    TAP_EQ_INT(req.has_host, 0);
    TAP_EQ_INT(req.num_headers, 0);
    /* A later 1.x minor version is served as 1.1 (RFC 9110 §6.2). */
    TAP_OK(parse("GET / HTTP/1.2\r\n" H11 "\r\n") > 0);
    TAP_EQ_INT(req.version_minor, 1);
}

static void test_values(void)
{
    TAP_OK(parse("GET / HTTP/1.1\r\n" H11 "X-A:  a b \t\r\nX-B:\r\nX-C: \t \r\nX-D:x\r\n"
                 "X-E: caf\xc3\xa9\r\nX-F: a\tb\r\n\r\n") > 0);
    TAP_EQ_INT(req.num_headers, 7);
    TAP_EQ_MEM(req.headers[1].value, req.headers[1].value_len, "a b");
    TAP_EQ_INT(req.headers[2].value_len, 0);
    TAP_EQ_INT(req.headers[3].value_len, 0);
    TAP_EQ_MEM(req.headers[4].value, req.headers[4].value_len, "x");
    TAP_EQ_MEM(req.headers[5].value, req.headers[5].value_len, "caf\xc3\xa9");
    TAP_EQ_MEM(req.headers[6].value, req.headers[6].value_len, "a\tb");
    /* Names keep their spelling; tchar punctuation is allowed. */
    TAP_OK(parse("GET / HTTP/1.1\r\n" H11 "x!#$%&'*+-.^_`|~9: v\r\n\r\n") > 0);
    TAP_EQ_MEM(req.headers[1].name, req.headers[1].name_len, "x!#$%&'*+-.^_`|~9");

    const http_header_t *h = http_find_header(&req, "HOST", 4);
    TAP_OK(h == &req.headers[0]);
    TAP_OK(http_find_header(&req, "hosT", 4) == &req.headers[0]);
    TAP_OK(http_find_header(&req, "Hos", 3) == NULL);
    TAP_OK(http_find_header(&req, "Accept", 6) == NULL);
    /* First match wins. */
    TAP_OK(parse("GET / HTTP/1.1\r\n" H11 "A: 1\r\na: 2\r\n\r\n") > 0);
    h = http_find_header(&req, "a", 1);
    TAP_OK(h != NULL && h->value_len == 1 && h->value[0] == '1');
}

static void test_methods(void)
{
    static const struct {
        const char *name;
        http_method_t m;
    } cases[] = {
        {"GET", HTTP_GET},         {"HEAD", HTTP_HEAD},   {"POST", HTTP_POST},
        {"PUT", HTTP_PUT},         {"PATCH", HTTP_PATCH}, {"DELETE", HTTP_DELETE},
        {"OPTIONS", HTTP_OPTIONS}, {"TRACE", HTTP_TRACE}, {"PROPFIND", HTTP_OTHER},
        {"get", HTTP_OTHER},       {"GETS", HTTP_OTHER},  {"X-Y_Z!", HTTP_OTHER},
    };
    char buf[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf), "%s / HTTP/1.1\r\n" H11 "\r\n", cases[i].name);
        TAP_OK(parse(buf) > 0);
        TAP_EQ_INT(req.method, cases[i].m);
        TAP_OK(req.method_len == strlen(cases[i].name));
    }
    TAP_OK(parse("CONNECT example.com:443 HTTP/1.1\r\n" H11 "\r\n") > 0);
    TAP_EQ_INT(req.method, HTTP_CONNECT);
    TAP_EQ_MEM(req.path, req.path_len, "example.com:443");
    TAP_OK(parse("CONNECT [::1]:8080 HTTP/1.1\r\n" H11 "\r\n") > 0);
    TAP_OK(parse("OPTIONS * HTTP/1.1\r\n" H11 "\r\n") > 0);
    TAP_EQ_MEM(req.path, req.path_len, "*");

    TAP_OK(strcmp(http_method_name(HTTP_GET), "GET") == 0);
    TAP_OK(strcmp(http_method_name(HTTP_CONNECT), "CONNECT") == 0);
    TAP_OK(strcmp(http_method_name(HTTP_OTHER), "OTHER") == 0);
    TAP_OK(strcmp(http_method_name(HTTP_METHOD_COUNT), "") == 0);
}

static void test_absolute_form(void)
{
    TAP_OK(parse("GET http://example.com/a/b?x=1 HTTP/1.1\r\n" H11 "\r\n") > 0);
    TAP_EQ_MEM(req.path, req.path_len, "/a/b");
    TAP_EQ_MEM(req.query, req.query_len, "x=1");
    TAP_OK(parse("GET HTTPS://example.com:8443/ HTTP/1.1\r\n" H11 "\r\n") > 0);
    TAP_EQ_MEM(req.path, req.path_len, "/");
    TAP_OK(parse("GET http://example.com HTTP/1.1\r\n" H11 "\r\n") > 0);
    TAP_EQ_MEM(req.path, req.path_len, "/");
    TAP_OK(req.query == NULL);
    TAP_OK(parse("GET http://example.com?q HTTP/1.1\r\n" H11 "\r\n") > 0);
    TAP_EQ_MEM(req.path, req.path_len, "/");
    TAP_EQ_MEM(req.query, req.query_len, "q");
    TAP_EQ_INT(parse("GET ftp://example.com/ HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    /* No fragment in any form of request-target (RFC 9112 §3.2). */
    TAP_EQ_INT(parse("GET /a#f HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET /a?b#c HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET http://example.com#/admin HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET http://example.com/a#f HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET http:///a HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET http://u@example.com/ HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET http://h\"/p HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET http://h:8x/p HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_OK(parse("GET http://[::1]:8080/p HTTP/1.1\r\n" H11 "\r\n") > 0);
}

/* Minimal inputs for every parser error code. */
static void test_errors(void)
{
    TAP_EQ_INT(parse("GET\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "NoColon\r\n\r\n"), HTTP_E_BAD_REQUEST);

    TAP_EQ_INT(parse("G@T / HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_METHOD);
    TAP_EQ_INT(parse(" / HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_METHOD);
    TAP_EQ_INT(parse("G\xc3\x89T / HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_METHOD);
    TAP_EQ_INT(parse("GET\t/ HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_METHOD);
    /* A byte that cannot be in a method is an error as soon as it arrives, without a line
     * end (a TLS ClientHello on the plain port, binary garbage); a partial method waits. */
    TAP_EQ_INT(parse_n("\x16\x03\x01\x00\xa5\x01", 6, &limits), HTTP_E_BAD_METHOD);
    TAP_EQ_INT(parse_n("\x16", 1, &limits), HTTP_E_BAD_METHOD);
    TAP_EQ_INT(parse_n("GET\x00", 4, &limits), HTTP_E_BAD_METHOD);
    TAP_EQ_INT(parse_n("\r\nGE", 4, &limits), 0);
    TAP_EQ_INT(parse_n("GET /", 5, &limits), 0);
    TAP_EQ_INT(parse_n("GET\r", 4, &limits), 0);

    TAP_EQ_INT(parse("GET /a\x01 HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET /a\x7f HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET /\xc3\xa9 HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET /a\tb HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET  / HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET * HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET a/b HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET example.com:80 HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("CONNECT / HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("CONNECT example.com HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("CONNECT example.com:x HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_TARGET);
    /* Long SIMD-sized targets with the bad byte at various offsets. */
    TAP_EQ_INT(parse("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x1f HTTP/1.1\r\n" H11 "\r\n"),
               HTTP_E_BAD_TARGET);
    TAP_EQ_INT(parse("GET /aaaaaaaaaaaaaaaaa\x80"
                     "aaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n" H11 "\r\n"),
               HTTP_E_BAD_TARGET);

    TAP_EQ_INT(parse("GET / HTTP/1.x\r\n" H11 "\r\n"), HTTP_E_BAD_VERSION);
    TAP_EQ_INT(parse("GET / HTTP/11\r\n" H11 "\r\n"), HTTP_E_BAD_VERSION);
    TAP_EQ_INT(parse("GET / http/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_VERSION);
    TAP_EQ_INT(parse("GET / HTTP/1.1 \r\n" H11 "\r\n"), HTTP_E_BAD_VERSION);
    TAP_EQ_INT(parse("GET / HTTP/1.10\r\n" H11 "\r\n"), HTTP_E_BAD_VERSION);
    TAP_EQ_INT(parse("GET / HTTP/2\r\n" H11 "\r\n"), HTTP_E_BAD_VERSION);
    TAP_EQ_INT(parse("GET / \r\n" H11 "\r\n"), HTTP_E_BAD_VERSION);
    TAP_EQ_INT(parse("GET /\r\n" H11 "\r\n"), HTTP_E_BAD_VERSION);

    TAP_EQ_INT(parse("GET / HTTP/2.0\r\n" H11 "\r\n"), HTTP_E_VERSION_UNSUPPORTED);
    TAP_EQ_INT(parse("GET / HTTP/3.0\r\n" H11 "\r\n"), HTTP_E_VERSION_UNSUPPORTED);
    TAP_EQ_INT(parse("GET / HTTP/0.9\r\n" H11 "\r\n"), HTTP_E_VERSION_UNSUPPORTED);

    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 ": x\r\n\r\n"), HTTP_E_BAD_HEADER_NAME);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "X@Y: x\r\n\r\n"), HTTP_E_BAD_HEADER_NAME);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "X\xc3\xa9: x\r\n\r\n"), HTTP_E_BAD_HEADER_NAME);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "X Y: x\r\n\r\n"), HTTP_E_BAD_HEADER_NAME);

    TAP_EQ_INT(parse("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), HTTP_E_SPACE_BEFORE_COLON);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "X\t: x\r\n\r\n"), HTTP_E_SPACE_BEFORE_COLON);

    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "X: a\x01\r\n\r\n"), HTTP_E_BAD_HEADER_VALUE);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "X: a\x7f\r\n\r\n"), HTTP_E_BAD_HEADER_VALUE);
    {
        static const char nul[] = "GET / HTTP/1.1\r\n" H11 "X: aaaaaaaaaaaaaaaaaaaaaaaa\0b\r\n\r\n";
        TAP_EQ_INT(parse_n(nul, sizeof(nul) - 1, &limits), HTTP_E_BAD_HEADER_VALUE);
    }
    TAP_EQ_INT(
        parse("GET / HTTP/1.1\r\n" H11 "X: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x1b\r\n\r\n"),
        HTTP_E_BAD_HEADER_VALUE);

    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "X: a\r\n b\r\n\r\n"), HTTP_E_OBS_FOLD);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "X: a\r\n\tb\r\n\r\n"), HTTP_E_OBS_FOLD);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n " H11 "\r\n"), HTTP_E_OBS_FOLD);

    TAP_EQ_INT(parse("GET / HTTP/1.1\r" H11 "\r\n"), HTTP_E_BARE_CR);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "X: a\rb\r\n\r\n"), HTTP_E_BARE_CR);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "X\r: a\r\n\r\n"), HTTP_E_BARE_CR);
    TAP_EQ_INT(parse("GET /\r HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BARE_CR);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "\r\r\n"), HTTP_E_BARE_CR);
    /* A bare CR is found without waiting for the end of the head. */
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\nX: a\rb"), HTTP_E_BARE_CR);

    TAP_EQ_INT(parse("GET / HTTP/1.1\nHost: x\n\n"), HTTP_E_BARE_LF);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "X: a\n\r\n"), HTTP_E_BARE_LF);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "\n"), HTTP_E_BARE_LF);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "X\n"), HTTP_E_BARE_LF);
    TAP_EQ_INT(parse("\n"), HTTP_E_BARE_LF);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\nX: a\n"), HTTP_E_BARE_LF);

    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "Host: b\r\n\r\n"), HTTP_E_DUPLICATE_HOST);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\n" H11 "hOsT: example.com\r\n\r\n"), HTTP_E_DUPLICATE_HOST);
    TAP_EQ_INT(parse("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), HTTP_E_DUPLICATE_HOST);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\nX: y\r\n\r\n"), HTTP_E_MISSING_HOST);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), HTTP_E_BAD_HOST);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), HTTP_E_BAD_HOST);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), HTTP_E_BAD_HOST);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"), HTTP_E_BAD_HOST);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n"), HTTP_E_BAD_HOST);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), HTTP_E_BAD_HOST);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n"), HTTP_E_BAD_HOST);
    TAP_EQ_INT(parse("GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n"), HTTP_E_BAD_HOST);
    TAP_OK(parse("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n") > 0);
    TAP_OK(parse("GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n") > 0);
    TAP_OK(parse("GET / HTTP/1.1\r\nHost: xn--caf-dma.example_1~%41:\r\n\r\n") > 0);
    /* An empty Host is allowed (RFC 9112 §3.2 when the target has no authority). */
    TAP_OK(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n") > 0);
    TAP_EQ_INT(req.has_host, 1);

    /* Codes that come only from the chunked decoder still have a status and message. */
    for (int e = HTTP_E_BAD_REQUEST; e > HTTP_E__LAST; e--) {
        const char *msg = http_error_message(e);
        int st = http_error_status(e);
        tap_check(msg && strlen(msg) > 10 && msg[strlen(msg) - 1] == '.' &&
                      strcmp(http_status_reason(st), "") != 0,
                  "error code has a message and a known status", __FILE__, __LINE__);
    }
}

/* The target and value scanners have a 16-byte vector path and a scalar tail: put each
 * interesting byte at every offset across two vector blocks. */
static void test_byte_classes_at_every_offset(void)
{
    static const struct {
        unsigned char c;
        int in_value; /* expected result in a value */
        int in_target;
    } cases[] = {
        {0x00, HTTP_E_BAD_HEADER_VALUE, HTTP_E_BAD_TARGET},
        {0x01, HTTP_E_BAD_HEADER_VALUE, HTTP_E_BAD_TARGET},
        {0x1f, HTTP_E_BAD_HEADER_VALUE, HTTP_E_BAD_TARGET},
        {0x7f, HTTP_E_BAD_HEADER_VALUE, HTTP_E_BAD_TARGET},
        {'\t', 1, HTTP_E_BAD_TARGET},
        {0x80, 1, HTTP_E_BAD_TARGET},
        {0xff, 1, HTTP_E_BAD_TARGET},
        {'~', 1, 1},
        {'!', 1, 1},
        {'\r', HTTP_E_BARE_CR, HTTP_E_BARE_CR},
        {'\n', HTTP_E_BARE_LF, HTTP_E_BARE_LF},
    };
    char buf[256];
    int ok = 1;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t off = 0; off < 40; off++) {
            /* In a value: "X: " + off 'a' + byte + 20 'b'. */
            size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n" H11 "X: ");
            memset(buf + n, 'a', off);
            n += off;
            buf[n++] = (char)cases[i].c;
            memset(buf + n, 'b', 20);
            n += 20;
            n += (size_t)sprintf(buf + n, "\r\n\r\n");
            int rc = parse_n(buf, n, &limits);
            int want = cases[i].in_value == 1 ? (int)n : cases[i].in_value;
            if (rc != want) {
                printf("# value byte 0x%02x at %zu: got %d, want %d\n", cases[i].c, off, rc, want);
                ok = 0;
            }
            /* In a target: "GET /" + off 'a' + byte + 20 'b'. */
            n = (size_t)sprintf(buf, "GET /");
            memset(buf + n, 'a', off);
            n += off;
            buf[n++] = (char)cases[i].c;
            memset(buf + n, 'b', 20);
            n += 20;
            n += (size_t)sprintf(buf + n, " HTTP/1.1\r\n" H11 "\r\n");
            rc = parse_n(buf, n, &limits);
            want = cases[i].in_target == 1 ? (int)n : cases[i].in_target;
            if (rc != want) {
                printf("# target byte 0x%02x at %zu: got %d, want %d\n", cases[i].c, off, rc, want);
                ok = 0;
            }
        }
    }
    TAP_OK(ok);
}

static void test_content_length(void)
{
    const char *pre = "POST / HTTP/1.1\r\n" H11;
    char buf[256];
#define CL_CASE(value, expect)                                                                     \
    do {                                                                                           \
        snprintf(buf, sizeof(buf), "%sContent-Length: %s\r\n\r\n", pre, value);                    \
        int rc_ = parse(buf);                                                                      \
        if ((expect) < 0) {                                                                        \
            TAP_EQ_INT(rc_, HTTP_E_BAD_CONTENT_LENGTH);                                            \
        } else {                                                                                   \
            TAP_OK(rc_ > 0);                                                                       \
            TAP_EQ_INT(req.content_length, (expect));                                              \
        }                                                                                          \
    } while (0)
    CL_CASE("0", 0);
    CL_CASE("5", 5);
    CL_CASE("005", 5);
    CL_CASE("  42  ", 42);
    CL_CASE("5,5", 5);
    CL_CASE("5 , 5,\t05", 5);
    CL_CASE("9223372036854775807", INT64_MAX);
    CL_CASE("9223372036854775808", -1);
    CL_CASE("99999999999999999999999", -1);
    CL_CASE("", -1);
    CL_CASE("+5", -1);
    CL_CASE("-1", -1);
    CL_CASE("5a", -1);
    CL_CASE("0x5", -1);
    CL_CASE("5 5", -1);
    CL_CASE("5,6", -1);
    CL_CASE("5,", -1);
    CL_CASE(",5", -1);
    CL_CASE("5,,5", -1);
#undef CL_CASE
    TAP_OK(parse("POST / HTTP/1.1\r\n" H11 "Content-Length: 7\r\ncontent-length: 7\r\n\r\n") > 0);
    TAP_EQ_INT(req.content_length, 7);
    TAP_EQ_INT(parse("POST / HTTP/1.1\r\n" H11 "Content-Length: 7\r\nContent-Length: 8\r\n\r\n"),
               HTTP_E_BAD_CONTENT_LENGTH);
}

static void test_transfer_encoding(void)
{
    TAP_OK(parse("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n") > 0);
    TAP_EQ_INT(req.chunked, 1);
    TAP_EQ_INT(req.content_length, -1);
    TAP_OK(parse("POST / HTTP/1.1\r\n" H11 "transfer-encoding:  ChUnKeD \r\n\r\n") > 0);
    TAP_EQ_INT(req.chunked, 1);
    TAP_OK(parse("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: ,chunked,\r\n\r\n") > 0);
    TAP_EQ_INT(req.chunked, 1);

    TAP_EQ_INT(
        parse("POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
        HTTP_E_CL_AND_TE);
    TAP_EQ_INT(
        parse("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
        HTTP_E_CL_AND_TE);
    TAP_EQ_INT(parse("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, gzip\r\n\r\n"),
               HTTP_E_TE_NOT_CHUNKED);
    TAP_EQ_INT(parse("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n"),
               HTTP_E_TE_NOT_CHUNKED);
    TAP_EQ_INT(parse("POST / HTTP/1.1\r\n" H11
                     "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
               HTTP_E_TE_NOT_CHUNKED);
    TAP_EQ_INT(parse("POST / HTTP/1.1\r\n" H11
                     "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"),
               HTTP_E_TE_NOT_CHUNKED);
    TAP_EQ_INT(parse("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding:\r\n\r\n"),
               HTTP_E_TE_NOT_CHUNKED);
    TAP_EQ_INT(parse("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip\r\n\r\n"),
               HTTP_E_TE_UNKNOWN);
    TAP_EQ_INT(parse("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: identity\r\n\r\n"),
               HTTP_E_TE_UNKNOWN);
    TAP_EQ_INT(parse("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: x-foo\r\n\r\n"),
               HTTP_E_TE_UNKNOWN);
    TAP_EQ_INT(parse("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n"),
               HTTP_E_TE_UNKNOWN);
    TAP_EQ_INT(parse("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunkedx\r\n\r\n"),
               HTTP_E_TE_UNKNOWN);
    TAP_EQ_INT(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_E_TE_HTTP10);
    TAP_EQ_INT(http_error_status(HTTP_E_TE_UNKNOWN), 501);
    TAP_EQ_INT(http_error_status(HTTP_E_CL_AND_TE), 400);
}

static void test_connection(void)
{
    TAP_OK(parse("GET / HTTP/1.1\r\n" H11 "Connection: close\r\n\r\n") > 0);
    TAP_EQ_INT(req.keep_alive, 0);
    TAP_OK(parse("GET / HTTP/1.1\r\n" H11 "Connection: Upgrade, CLOSE\r\n\r\n") > 0);
    TAP_EQ_INT(req.keep_alive, 0);
    TAP_OK(parse("GET / HTTP/1.1\r\n" H11 "Connection: keep-alive\r\n\r\n") > 0);
    TAP_EQ_INT(req.keep_alive, 1);
    TAP_OK(parse("GET / HTTP/1.1\r\n" H11 "Connection: closed\r\n\r\n") > 0);
    TAP_EQ_INT(req.keep_alive, 1);
    TAP_OK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0);
    TAP_EQ_INT(req.keep_alive, 1);
    TAP_OK(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n") > 0);
    TAP_EQ_INT(req.keep_alive, 0);
    TAP_OK(parse("GET / HTTP/1.0\r\nConnection: foo\r\n\r\n") > 0);
    TAP_EQ_INT(req.keep_alive, 0);

    TAP_OK(parse("POST / HTTP/1.1\r\n" H11 "Expect: 100-Continue\r\n\r\n") > 0);
    TAP_EQ_INT(req.expect_continue, 1);
    TAP_OK(parse("POST / HTTP/1.1\r\n" H11 "Expect: 100-continuex\r\n\r\n") > 0);
    TAP_EQ_INT(req.expect_continue, 0);
    TAP_OK(parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n") > 0);
    TAP_EQ_INT(req.expect_continue, 0);
}

/* Builds "GET /aaa... HTTP/1.1\r\n" with a target of tlen bytes and an optional method. */
static char *request_with_target(const char *method, size_t tlen, int complete)
{
    size_t cap = tlen + 128;
    char *s = malloc(cap);
    size_t n = (size_t)sprintf(s, "%s /", method);
    memset(s + n, 'a', tlen - 1);
    n += tlen - 1;
    if (complete)
        n += (size_t)sprintf(s + n, " HTTP/1.1\r\n" H11 "\r\n");
    s[n] = '\0';
    return s;
}

static void test_limits(void)
{
    http_limits_t lim;
    http_limits_default(&lim);
    TAP_EQ_INT(lim.max_target, 8192);
    TAP_EQ_INT(lim.max_header_bytes, 65536);
    TAP_EQ_INT(lim.max_headers, 100);

    /* max_target: at the limit parses (also with a long method), one more is 414. */
    lim.max_target = 64;
    char *s = request_with_target("GET", 64, 1);
    TAP_OK(parse_lim(s, &lim) > 0);
    TAP_EQ_INT(req.target_len, 64);
    free(s);
    s = request_with_target("OPTIONS", 64, 1);
    TAP_OK(parse_lim(s, &lim) > 0);
    free(s);
    s = request_with_target("GET", 65, 1);
    TAP_EQ_INT(parse_lim(s, &lim), HTTP_E_URI_TOO_LONG);
    free(s);
    /* Incomplete request line: waits while it could still fit, 414 once it cannot. */
    s = request_with_target("GET", 64 + 20, 0);
    TAP_EQ_INT(parse_lim(s, &lim), 0);
    free(s);
    s = request_with_target("GET", 64 + 40, 0);
    TAP_EQ_INT(parse_lim(s, &lim), HTTP_E_URI_TOO_LONG);
    free(s);
    /* The exact bound: max_target + 32 bytes of request line without LF, then one more. */
    s = request_with_target("GET", 64 + 32 - 4, 0);
    TAP_EQ_INT(strlen(s), 64 + 32);
    TAP_EQ_INT(parse_lim(s, &lim), 0);
    free(s);
    s = request_with_target("GET", 64 + 32 - 3, 0);
    TAP_EQ_INT(parse_lim(s, &lim), HTTP_E_URI_TOO_LONG);
    free(s);
    /* Leading empty lines do not count against the request line. */
    {
        char *t = request_with_target("GET", 64 + 32 - 4, 0);
        size_t tl = strlen(t);
        char *u = malloc(tl + 3);
        memcpy(u, "\r\n", 2);
        memcpy(u + 2, t, tl + 1);
        TAP_EQ_INT(parse_lim(u, &lim), 0);
        free(u);
        free(t);
    }
    TAP_EQ_INT(http_error_status(HTTP_E_URI_TOO_LONG), 414);

    /* max_header_bytes counts the whole head including the blank line. */
    http_limits_default(&lim);
    const char *head = "GET / HTTP/1.1\r\n" H11 "\r\n";
    lim.max_header_bytes = strlen(head);
    TAP_EQ_INT(parse_lim(head, &lim), strlen(head));
    lim.max_header_bytes = strlen(head) - 1;
    TAP_EQ_INT(parse_lim(head, &lim), HTTP_E_HEADERS_TOO_LARGE);
    /* Incomplete head: 0 up to the limit, 431 one byte beyond it. */
    const char *partial = "GET / HTTP/1.1\r\n" H11 "X-Long: aaaaaaaaaaaaaaaaaaaaaa";
    lim.max_header_bytes = strlen(partial);
    TAP_EQ_INT(parse_lim(partial, &lim), 0);
    lim.max_header_bytes = strlen(partial) - 1;
    TAP_EQ_INT(parse_lim(partial, &lim), HTTP_E_HEADERS_TOO_LARGE);
    TAP_EQ_INT(http_error_status(HTTP_E_HEADERS_TOO_LARGE), 431);

    /* max_headers: exactly the limit parses, one more is 431. */
    http_limits_default(&lim);
    lim.max_headers = 3;
    TAP_OK(parse_lim("GET / HTTP/1.1\r\n" H11 "A: 1\r\nB: 2\r\n\r\n", &lim) > 0);
    TAP_EQ_INT(parse_lim("GET / HTTP/1.1\r\n" H11 "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", &lim),
               HTTP_E_TOO_MANY_HEADERS);
    TAP_EQ_INT(http_error_status(HTTP_E_TOO_MANY_HEADERS), 431);
    /* A limit above HTTP_MAX_HEADERS is capped at the array size. */
    lim.max_headers = 100000;
    lim.max_header_bytes = 1 << 20;
    size_t cap = 64 + 8 * (HTTP_MAX_HEADERS + 1);
    char *many = malloc(cap);
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = (size_t)sprintf(many, "GET / HTTP/1.1\r\n" H11);
        for (int i = 1; i < HTTP_MAX_HEADERS + extra; i++)
            n += (size_t)sprintf(many + n, "A: %d\r\n", i % 10);
        n += (size_t)sprintf(many + n, "\r\n");
        int rc = parse_lim(many, &lim);
        if (extra)
            TAP_EQ_INT(rc, HTTP_E_TOO_MANY_HEADERS);
        else
            TAP_EQ_INT(req.num_headers, HTTP_MAX_HEADERS);
    }
    free(many);
}

static void test_incremental(void)
{
    const char *s = "POST /upload?id=7 HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML)\r\n"
                    "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n"
                    "Content-Length: 11\r\n"
                    "Connection: keep-alive\r\n"
                    "\r\n";
    size_t n = strlen(s);
    /* Every proper prefix needs more bytes; the whole head parses in both ways. */
    int all_zero = 1;
    for (size_t k = 0; k < n; k++) {
        http_parser_t p;
        http_parser_reset(&p);
        char *copy = malloc(k ? k : 1);
        memcpy(copy, s, k);
        if (http_parse_request(&p, copy, k, &limits, &req) != 0)
            all_zero = 0;
        free(copy);
    }
    TAP_OK(all_zero);
    TAP_EQ_INT(parse(s), n);
    TAP_EQ_INT(req.content_length, 11);
    TAP_EQ_INT(req.num_headers, 5);

    /* The parser remembers how far it scanned, so a short read costs only the new bytes. */
    http_parser_t p;
    http_parser_reset(&p);
    TAP_EQ_INT(http_parse_request(&p, s, 40, &limits, &req), 0);
    TAP_EQ_INT(p.scanned, 40);
    TAP_EQ_INT(http_parse_request(&p, s, 41, &limits, &req), 0);
    TAP_EQ_INT(p.scanned, 41);
    TAP_EQ_INT(http_parse_request(&p, s, n, &limits, &req), n);
    TAP_EQ_INT(p.scanned, 0);

    /* Arbitrary chunk sizes through the same parser state. */
    int same = 1;
    for (size_t step = 2; step < 40; step += 3) {
        http_parser_reset(&p);
        int rc = 0;
        for (size_t len = step; rc == 0; len += step)
            rc = http_parse_request(&p, s, len < n ? len : n, &limits, &req);
        if (rc != (int)n)
            same = 0;
    }
    TAP_OK(same);

    http_parser_reset(&p);
    TAP_EQ_INT(http_parse_request(&p, NULL, 0, &limits, &req), 0);

    /* Empty lines before the request line are skipped and counted in header_bytes. */
    TAP_EQ_INT(parse("\r\n\r\nGET / HTTP/1.1\r\n" H11 "\r\n"),
               strlen("\r\n\r\nGET / HTTP/1.1\r\n" H11 "\r\n"));
    TAP_EQ_MEM(req.method_str, req.method_len, "GET");
    TAP_EQ_INT(parse("\r\n\r\n"), 0);
    TAP_EQ_INT(parse("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"), HTTP_E_BAD_REQUEST);
}

static void test_pipelined(void)
{
    const char *s = "GET /a HTTP/1.1\r\n" H11 "\r\n"
                    "POST /b HTTP/1.1\r\n" H11 "Content-Length: 3\r\n\r\nabc"
                    "GET /c HTTP/1.0\r\n\r\n";
    size_t n = strlen(s);
    size_t off = 0;
    http_parser_t p;
    http_parser_reset(&p);
    int rc = http_parse_request(&p, s, n, &limits, &req);
    TAP_EQ_INT(rc, strlen("GET /a HTTP/1.1\r\n" H11 "\r\n"));
    TAP_EQ_MEM(req.path, req.path_len, "/a");
    off += (size_t)rc;
    rc = http_parse_request(&p, s + off, n - off, &limits, &req);
    TAP_EQ_INT(rc, strlen("POST /b HTTP/1.1\r\n" H11 "Content-Length: 3\r\n\r\n"));
    TAP_EQ_MEM(req.path, req.path_len, "/b");
    TAP_EQ_INT(req.content_length, 3);
    off += (size_t)rc + 3;
    rc = http_parse_request(&p, s + off, n - off, &limits, &req);
    TAP_EQ_INT(rc, strlen("GET /c HTTP/1.0\r\n\r\n"));
    TAP_EQ_MEM(req.path, req.path_len, "/c");
    TAP_EQ_INT(off + (size_t)rc, n);
}

static void test_status_and_date(void)
{
    TAP_OK(strcmp(http_status_reason(200), "OK") == 0);
    TAP_OK(strcmp(http_status_reason(404), "Not Found") == 0);
    TAP_OK(strcmp(http_status_reason(413), "Content Too Large") == 0);
    TAP_OK(strcmp(http_status_reason(422), "Unprocessable Content") == 0);
    TAP_OK(strcmp(http_status_reason(431), "Request Header Fields Too Large") == 0);
    TAP_OK(strcmp(http_status_reason(505), "HTTP Version Not Supported") == 0);
    TAP_OK(strcmp(http_status_reason(299), "") == 0);
    TAP_EQ_INT(http_error_status(HTTP_E_VERSION_UNSUPPORTED), 505);
    TAP_EQ_INT(http_error_status(HTTP_E_CHUNK_TOO_LARGE), 413);
    TAP_EQ_INT(http_error_status(HTTP_E_BARE_LF), 400);
    TAP_OK(strcmp(http_error_message(HTTP_E_CL_AND_TE),
                  "Content-Length and Transfer-Encoding must not both be present.") == 0);

    const char *d = http_date_now(784111777);
    TAP_EQ_MEM(d, strlen(d), "Sun, 06 Nov 1994 08:49:37 GMT");
    TAP_OK(http_date_now(784111777) == d);
    d = http_date_now(0);
    TAP_EQ_MEM(d, strlen(d), "Thu, 01 Jan 1970 00:00:00 GMT");
    d = http_date_now(951782400); /* leap day */
    TAP_EQ_MEM(d, strlen(d), "Tue, 29 Feb 2000 00:00:00 GMT");
    d = http_date_now(4102444799); /* last second of 2099 */
    TAP_EQ_MEM(d, strlen(d), "Thu, 31 Dec 2099 23:59:59 GMT");
}

int main(void)
{
    http_limits_default(&limits);
    test_simple_get();
    test_values();
    test_methods();
    test_absolute_form();
    test_errors();
    test_byte_classes_at_every_offset();
    test_content_length();
    test_transfer_encoding();
    test_connection();
    test_limits();
    test_incremental();
    test_pipelined();
    test_status_and_date();
    return tap_done();
}
