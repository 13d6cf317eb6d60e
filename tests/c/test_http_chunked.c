/*
 * TAP tests for the in-place chunked body decoder (csrc/http/chunked.c). Each input is
 * decoded in one call, split in two at every byte boundary, and fed one byte at a time; all
 * ways must give the same body, the same leftover bytes and the same result code. Pieces
 * are copied into buffers of exactly their size so AddressSanitizer sees any overrun.
 */
#include "http/http.h"
#include "tap.h"

#include <stdlib.h>

typedef struct {
    int rc;          /* 1 done, 0 need more, < 0 error */
    char body[8192]; /* decoded bytes */
    size_t body_len;
    char rest[256]; /* leftover after the message */
    size_t rest_len;
} outcome_t;

/* Feeds s[0..n) in pieces ending at the given cut points (ascending, < n). */
static void decode_pieces(const char *s, size_t n, const size_t *cuts, size_t ncuts,
                          uint64_t max_body, outcome_t *o)
{
    http_chunked_t d;
    http_chunked_init(&d, max_body);
    memset(o, 0, sizeof(*o));
    size_t start = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t stop = i < ncuts ? cuts[i] : n;
        size_t len = stop - start;
        char *piece = malloc(len ? len : 1);
        memcpy(piece, s + start, len);
        size_t leftover = 99;
        int rc = http_chunked_decode(&d, piece, &len, &leftover);
        if (o->body_len + len <= sizeof(o->body)) {
            memcpy(o->body + o->body_len, piece, len);
            o->body_len += len;
        }
        if (rc == 1 && leftover <= sizeof(o->rest)) {
            memcpy(o->rest, piece + len, leftover);
            o->rest_len = leftover;
            /* Bytes of later pieces are leftover as well. */
            if (stop < n && n - stop + leftover <= sizeof(o->rest)) {
                memcpy(o->rest + leftover, s + stop, n - stop);
                o->rest_len += n - stop;
            }
        }
        if (rc != 1 && leftover != 0)
            rc = -1000; /* leftover must be 0 unless the message ended */
        free(piece);
        o->rc = rc;
        if (rc != 0)
            return;
        start = stop;
    }
}

static int same_outcome(const outcome_t *a, const outcome_t *b)
{
    return a->rc == b->rc && a->body_len == b->body_len &&
           memcmp(a->body, b->body, a->body_len) == 0 && a->rest_len == b->rest_len &&
           memcmp(a->rest, b->rest, a->rest_len) == 0;
}

static outcome_t one;

/* Decodes s one-shot into `one`, checking that every two-way split and byte-by-byte feeding
 * agree. Returns the result code (or -2000 when the splits disagree). */
static int decode_n(const char *s, size_t n, uint64_t max_body)
{
    static outcome_t other;
    decode_pieces(s, n, NULL, 0, max_body, &one);
    for (size_t cut = 1; cut < n; cut++) {
        decode_pieces(s, n, &cut, 1, max_body, &other);
        if (!same_outcome(&one, &other)) {
            printf("# split at %zu: rc %d vs one-shot %d\n", cut, other.rc, one.rc);
            return -2000;
        }
    }
    if (n > 1) {
        size_t *cuts = malloc((n - 1) * sizeof(*cuts));
        for (size_t i = 0; i < n - 1; i++)
            cuts[i] = i + 1;
        decode_pieces(s, n, cuts, n - 1, max_body, &other);
        free(cuts);
        if (!same_outcome(&one, &other)) {
            printf("# byte-wise: rc %d vs one-shot %d\n", other.rc, one.rc);
            return -2000;
        }
    }
    return one.rc;
}

static int decode(const char *s)
{
    return decode_n(s, strlen(s), UINT64_MAX);
}

#define BODY_IS(lit) TAP_EQ_MEM(one.body, one.body_len, lit)
#define REST_IS(lit) TAP_EQ_MEM(one.rest, one.rest_len, lit)

static void test_valid(void)
{
    TAP_EQ_INT(decode("5\r\nhello\r\n0\r\n\r\n"), 1);
    BODY_IS("hello");
    REST_IS("");
    TAP_EQ_INT(decode("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), 1);
    BODY_IS("hello world");
    TAP_EQ_INT(decode("0\r\n\r\n"), 1);
    BODY_IS("");
    TAP_EQ_INT(decode("A\r\n0123456789\r\nb\r\nabcdefghijk\r\n000\r\n\r\n"), 1);
    BODY_IS("0123456789abcdefghijk");
    TAP_EQ_INT(decode("0000000003\r\nabc\r\n0\r\n\r\n"), 1);
    BODY_IS("abc");
    /* Data may contain CR, LF and NUL bytes. */
    TAP_EQ_INT(decode("4\r\n\r\n\r\n\r\n0\r\n\r\n"), 1);
    BODY_IS("\r\n\r\n");

    /* Extensions are accepted and ignored (RFC 9112 §7.1.1). */
    TAP_EQ_INT(decode("5;foo=bar\r\nhello\r\n0;last\r\n\r\n"), 1);
    BODY_IS("hello");
    TAP_EQ_INT(decode("5 ; a=\"q;x\" ;b\r\nhello\r\n0\r\n\r\n"), 1);
    BODY_IS("hello");
    TAP_EQ_INT(decode("5\t;a\r\nhello\r\n0\r\n\r\n"), 1);
    TAP_EQ_INT(decode("5;a=b;c\r\nhello\r\n0\r\n\r\n"), 1);
    TAP_EQ_INT(decode("5 ; a = b ;\tc\r\nhello\r\n0\r\n\r\n"), 1);
    TAP_EQ_INT(decode("5;a=\"x y\\\"z;\\\\\";b=\"\"\r\nhello\r\n0\r\n\r\n"), 1);
    TAP_EQ_INT(decode("5;a=\"caf\xc3\xa9\"\r\nhello\r\n0\r\n\r\n"), 1);
    BODY_IS("hello");

    /* Trailer fields (RFC 9112 §7.1.2). */
    TAP_EQ_INT(decode("5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\nZ: caf\xc3\xa9\t!\r\n\r\n"), 1);
    BODY_IS("hello");
    REST_IS("");

    /* Bytes after the message (a pipelined request) come back after the body. */
    TAP_EQ_INT(decode("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), 1);
    BODY_IS("hello");
    REST_IS("GET / HTTP/1.1\r\n");
    TAP_EQ_INT(decode("0\r\nT: v\r\n\r\nX"), 1);
    REST_IS("X");

    /* Incomplete input needs more. */
    TAP_EQ_INT(decode("5\r\nhel"), 0);
    BODY_IS("hel");
    TAP_EQ_INT(decode("5\r\nhello\r\n0\r\n"), 0);
    TAP_EQ_INT(decode("5\r\nhello\r\n0\r\nX: y\r\n"), 0);

    /* In place: the decoded body overwrites the framing at the front of the buffer. */
    char buf[] = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nNEXT";
    size_t len = sizeof(buf) - 1, leftover;
    http_chunked_t d;
    http_chunked_init(&d, 100);
    TAP_EQ_INT(http_chunked_decode(&d, buf, &len, &leftover), 1);
    TAP_EQ_MEM(buf, len, "abcde");
    TAP_EQ_MEM(buf + len, leftover, "NEXT");
    TAP_EQ_INT(d.total, 5);
    /* An empty read changes nothing, before and after the end. */
    http_chunked_t e;
    http_chunked_init(&e, 100);
    len = 0;
    TAP_EQ_INT(http_chunked_decode(&e, NULL, &len, &leftover), 0);
    len = 0;
    TAP_EQ_INT(http_chunked_decode(&d, NULL, &len, &leftover), 1);
    TAP_EQ_INT(leftover, 0);
    /* After the end, everything is leftover. */
    char more[] = "abc";
    len = 3;
    TAP_EQ_INT(http_chunked_decode(&d, more, &len, &leftover), 1);
    TAP_EQ_INT(len, 0);
    TAP_EQ_INT(leftover, 3);
}

static void test_errors(void)
{
    TAP_EQ_INT(decode("x\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode(";a\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("-5\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("+5\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("0x5\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5 \r\nhello\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5 5\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5;a\x01\r\n"), HTTP_E_BAD_CHUNK);
    /* Malformed extensions. */
    TAP_EQ_INT(decode("5;\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5;=b\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5;a=\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5;a=b c\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5;a b\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5;a=b \r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5;a=\"x\"y\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5;a=\"x\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5;a=\"x\\\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5;a=\x80\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5;a@\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5 xa\r\nhello\r\n0\r\n\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5;a\x7f\r\n"), HTTP_E_BAD_CHUNK);
    /* CRLF after the data is required. */
    TAP_EQ_INT(decode("5\r\nhelloX"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5\r\nhello\rX"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5\r\nhello\n0\r\n\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5\r\nhello0\r\n\r\n"), HTTP_E_BAD_CHUNK);
    /* Bare CR / LF in the framing. */
    TAP_EQ_INT(decode("5\nhello\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5\rhello\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("5;x\nhello\r\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("0\r\n\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("0\r\n\rX"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("0\r\nX: y\n"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("0\r\nX: y\rZ"), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(decode("0\r\nX\n"), HTTP_E_BAD_CHUNK);

    /* Malformed trailer fields. */
    TAP_EQ_INT(decode("0\r\n X: y\r\n\r\n"), HTTP_E_BAD_TRAILER);
    TAP_EQ_INT(decode("0\r\nX : y\r\n\r\n"), HTTP_E_BAD_TRAILER);
    TAP_EQ_INT(decode("0\r\n: y\r\n\r\n"), HTTP_E_BAD_TRAILER);
    TAP_EQ_INT(decode("0\r\nX@: y\r\n\r\n"), HTTP_E_BAD_TRAILER);
    TAP_EQ_INT(decode("0\r\nNoColon\r\n\r\n"), HTTP_E_BAD_TRAILER);
    TAP_EQ_INT(decode("0\r\nX: a\x01\r\n\r\n"), HTTP_E_BAD_TRAILER);
    TAP_EQ_INT(decode("0\r\nX: a\x7f\r\n\r\n"), HTTP_E_BAD_TRAILER);
    TAP_EQ_INT(decode("0\r\nX: a\r\n b\r\n\r\n"), HTTP_E_BAD_TRAILER);

    /* Errors are sticky. */
    char buf[] = "z";
    size_t len = 1, leftover;
    http_chunked_t d;
    http_chunked_init(&d, 100);
    TAP_EQ_INT(http_chunked_decode(&d, buf, &len, &leftover), HTTP_E_BAD_CHUNK);
    char ok[] = "0\r\n\r\n";
    len = 5;
    TAP_EQ_INT(http_chunked_decode(&d, ok, &len, &leftover), HTTP_E_BAD_CHUNK);
    TAP_EQ_INT(len, 0);
}

static void test_limits(void)
{
    /* chunk-size overflow: 16 hex digits fit in 64 bits, 17 significant ones do not. */
    TAP_EQ_INT(decode("ffffffffffffffff\r\n"), 0);
    TAP_EQ_INT(decode("10000000000000000\r\n"), HTTP_E_CHUNK_TOO_LARGE);
    TAP_EQ_INT(decode("fffffffffffffffff\r\n"), HTTP_E_CHUNK_TOO_LARGE);
    TAP_EQ_INT(decode("00000000000000000000001\r\nx\r\n0\r\n\r\n"), 1);
    TAP_EQ_INT(http_error_status(HTTP_E_CHUNK_TOO_LARGE), 413);

    /* max_body: at the limit is fine, one byte more is refused at the size line. */
    const char *ten = "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
    TAP_EQ_INT(decode_n(ten, strlen(ten), 10), 1);
    BODY_IS("helloworld");
    TAP_EQ_INT(decode_n(ten, strlen(ten), 9), HTTP_E_CHUNK_TOO_LARGE);
    BODY_IS("hello");
    TAP_EQ_INT(decode_n("b\r\n", 3, 10), HTTP_E_CHUNK_TOO_LARGE);
    TAP_EQ_INT(decode_n("a\r\n", 3, 10), 0);
    TAP_EQ_INT(decode_n("0b\r\n", 4, 10), HTTP_E_CHUNK_TOO_LARGE);
    TAP_EQ_INT(decode_n("10\r\n", 4, 15), HTTP_E_CHUNK_TOO_LARGE);
    TAP_EQ_INT(decode_n("0f\r\n", 4, 15), 0);
    TAP_EQ_INT(decode_n("0\r\n\r\n", 5, 0), 1);
    TAP_EQ_INT(decode_n("1\r\n", 3, 0), HTTP_E_CHUNK_TOO_LARGE);

    /* The size line (with extensions) is bounded at 4096 bytes. */
    size_t n = 4096 + 64;
    char *s = malloc(n + 1);
    for (size_t line = 4095; line <= 4097; line++) {
        /* "1;" + padding so that the line before CR is exactly `line` bytes. */
        size_t k = 0;
        s[k++] = '1';
        s[k++] = ';';
        while (k < line)
            s[k++] = 'a';
        memcpy(s + k, "\r\nx\r\n0\r\n\r\n", 10);
        k += 10;
        http_chunked_t d;
        http_chunked_init(&d, 100);
        size_t len = k, leftover;
        int rc = http_chunked_decode(&d, s, &len, &leftover);
        if (line <= 4096)
            TAP_EQ_INT(rc, 1);
        else
            TAP_EQ_INT(rc, HTTP_E_BAD_CHUNK);
    }
    free(s);

    /* The trailer section is bounded at 16 KiB. */
    size_t cap = 20000;
    char *t = malloc(cap);
    for (int big = 0; big <= 1; big++) {
        size_t k = (size_t)sprintf(t, "0\r\n");
        /* "X: " + value + CRLF + CRLF is exactly 16384 bytes, then one more. */
        size_t value = 16384 - 7 + (size_t)big;
        k += (size_t)sprintf(t + k, "X: ");
        memset(t + k, 'v', value);
        k += value;
        k += (size_t)sprintf(t + k, "\r\n\r\n");
        http_chunked_t d;
        http_chunked_init(&d, 100);
        size_t len = k, leftover;
        int rc = http_chunked_decode(&d, t, &len, &leftover);
        TAP_EQ_INT(rc, big ? HTTP_E_BAD_TRAILER : 1);
    }
    free(t);
}

int main(void)
{
    test_valid();
    test_errors();
    test_limits();
    return tap_done();
}
