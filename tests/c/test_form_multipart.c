/*
 * TAP tests for the multipart/form-data parser (csrc/form/multipart.c, params.c). The
 * callbacks write a transcript (part begins, headers, parsed names, content, ends, finish,
 * result code); each body is parsed in one piece, in two pieces split at every byte, in
 * three pieces at every pair of split points (short bodies) and one byte at a time, and
 * every way must give the same transcript. Pieces are copied into buffers of exactly their
 * size so AddressSanitizer sees any read past a piece.
 */
#define _GNU_SOURCE /* memmem */
#include "form/form.h"
#include "tap.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    char text[16384];
    size_t len;
    int in_data; /* the last event was content: the next chunk continues it */
    int in_part; /* between part begin and part end */
    int bad;     /* a callback saw something impossible */
    int stop_at; /* 1-based event number whose callback fails, 0 for none */
    int events;
} rec_t;

/* When 0, content is not recorded: for bodies stopped by a size limit, where how much
 * content came before the error depends on the split points. */
static int record_data = 1;

static void put(rec_t *r, const char *p, size_t n)
{
    if (r->len + n > sizeof(r->text)) {
        r->bad = 1;
        return;
    }
    memcpy(r->text + r->len, p, n);
    r->len += n;
}

static void putf(rec_t *r, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    put(r, tmp, n < 0 ? 0 : (size_t)n);
}

static int event(rec_t *r)
{
    if (r->in_data)
        put(r, "|\n", 2);
    r->in_data = 0;
    return ++r->events == r->stop_at;
}

static int on_begin(void *u)
{
    rec_t *r = u;
    if (r->in_part)
        r->bad = 1;
    r->in_part = 1;
    put(r, "[\n", 2);
    return event(r);
}

static int on_header(void *u, const char *n, size_t nl, const char *v, size_t vl)
{
    rec_t *r = u;
    event(r);
    put(r, n, nl);
    put(r, ": ", 2);
    put(r, v, vl);
    put(r, "\n", 1);
    return r->events == r->stop_at;
}

static int on_headers_complete(void *u, const form_part_t *p)
{
    rec_t *r = u;
    event(r);
    putf(r, "{%zu name=", p->index);
    put(r, p->name, p->name_len);
    if (p->has_filename) {
        put(r, " file=", 6);
        put(r, p->filename, p->filename_len);
    } else if (p->filename != NULL) {
        r->bad = 1;
    }
    if (p->content_type) {
        put(r, " ct=", 4);
        put(r, p->content_type, p->content_type_len);
    }
    put(r, "}\n", 2);
    return r->events == r->stop_at;
}

static int on_data(void *u, const char *d, size_t n)
{
    rec_t *r = u;
    if (n == 0 || !r->in_part)
        r->bad = 1;
    if (!record_data)
        return 0;
    if (!r->in_data) {
        if (event(r))
            return 1;
        put(r, "D:", 2);
    }
    r->in_data = 1;
    put(r, d, n);
    return 0;
}

static int on_end(void *u)
{
    rec_t *r = u;
    if (!r->in_part)
        r->bad = 1;
    r->in_part = 0;
    int stop = event(r);
    put(r, "]\n", 2);
    return stop;
}

static int on_finish(void *u)
{
    rec_t *r = u;
    if (r->in_part)
        r->bad = 1;
    int stop = event(r);
    put(r, "F\n", 2);
    return stop;
}

static const form_callbacks_t callbacks = {on_begin, on_header, on_headers_complete,
                                           on_data,  on_end,    on_finish};

/* Parses body in pieces ending at cuts[] and records the transcript, ending "rc=N". */
static void parse(const char *ct, const char *body, size_t n, const form_limits_t *lim,
                  const size_t *cuts, size_t ncuts, int stop_at, rec_t *r)
{
    memset(r, 0, sizeof(*r));
    r->stop_at = stop_at;
    int err = 0;
    form_multipart_t *m = form_multipart_new(ct, strlen(ct), lim, &callbacks, r, &err);
    if (m == NULL) {
        putf(r, "new=%d", err);
        return;
    }
    int rc = 0;
    size_t start = 0;
    for (size_t i = 0; i <= ncuts && rc >= 0; i++) {
        size_t stop = i < ncuts ? cuts[i] : n, len = stop - start;
        char *piece = malloc(len ? len : 1);
        memcpy(piece, body + start, len);
        rc = form_multipart_feed(m, piece, len);
        free(piece);
        start = stop;
    }
    if (rc >= 0)
        rc = form_multipart_finish(m);
    event(r);
    putf(r, "rc=%d", rc);
    if (r->bad)
        put(r, " BAD", 4);
    form_multipart_free(m);
}

static rec_t one, other;

static int same(const rec_t *a, const rec_t *b)
{
    return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
}

/* Parses every way; returns 1 when all transcripts agree and equal expect. */
static int check_n(const char *ct, const char *body, size_t n, const form_limits_t *lim,
                   const char *expect, size_t expect_len)
{
    size_t cuts[2];
    parse(ct, body, n, lim, NULL, 0, 0, &one);
    if (one.len != expect_len || memcmp(one.text, expect, expect_len) != 0) {
        printf("# got:\n%.*s\n# expected:\n%.*s\n", (int)one.len, one.text, (int)expect_len,
               expect);
        return 0;
    }
    for (cuts[0] = 1; cuts[0] < n; cuts[0]++) {
        parse(ct, body, n, lim, cuts, 1, 0, &other);
        if (!same(&one, &other)) {
            printf("# split at %zu:\n%.*s\n", cuts[0], (int)other.len, other.text);
            return 0;
        }
        for (cuts[1] = cuts[0] + 1; n <= 400 && cuts[1] < n; cuts[1]++) {
            parse(ct, body, n, lim, cuts, 2, 0, &other);
            if (!same(&one, &other)) {
                printf("# split at %zu, %zu:\n%.*s\n", cuts[0], cuts[1], (int)other.len,
                       other.text);
                return 0;
            }
        }
    }
    if (n > 1) {
        size_t *all = malloc((n - 1) * sizeof(*all));
        for (size_t i = 0; i < n - 1; i++)
            all[i] = i + 1;
        parse(ct, body, n, lim, all, n - 1, 0, &other);
        free(all);
        if (!same(&one, &other)) {
            printf("# byte by byte:\n%.*s\n", (int)other.len, other.text);
            return 0;
        }
    }
    return 1;
}

#define CT "multipart/form-data; boundary=xyz"
#define CHECK(ct, body, expect)                                                                    \
    TAP_OK(check_n(ct, body, sizeof(body) - 1, NULL, expect, sizeof(expect) - 1))
#define CHECK_LIM(ct, body, lim, expect)                                                           \
    TAP_OK(check_n(ct, body, sizeof(body) - 1, lim, expect, sizeof(expect) - 1))
#define CD(name) "Content-Disposition: form-data; name=\"" name "\"\r\n"

static void test_basic(void)
{
    CHECK(CT, "--xyz\r\n" CD("a") "\r\nhello\r\n--xyz\r\n" CD("b") "\r\nworld\r\n--xyz--\r\n",
          "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\nD:hello|\n]\n"
          "[\nContent-Disposition: form-data; name=\"b\"\n{1 name=b}\nD:world|\n]\nF\nrc=1");
    /* A browser-like body with a preamble, a file with a type, an empty field. */
    CHECK(
        "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxk",
        "preamble\r\n------WebKitFormBoundary7MA4YWxk\r\n"
        "Content-Disposition: form-data; name=\"upload\"; filename=\"r.txt\"\r\n"
        "Content-Type: text/plain\r\n\r\nline1\r\nline2\r\n\r\n"
        "------WebKitFormBoundary7MA4YWxk\r\n" CD("empty") "\r\n\r\n"
                                                           "------WebKitFormBoundary7MA4YWxk--\r\n",
        "[\nContent-Disposition: form-data; name=\"upload\"; filename=\"r.txt\"\n"
        "Content-Type: text/plain\n{0 name=upload file=r.txt ct=text/plain}\n"
        "D:line1\r\nline2\r\n|\n]\n[\nContent-Disposition: form-data; name=\"empty\"\n"
        "{1 name=empty}\n]\nF\nrc=1");
    /* No parts at all: what a browser sends for a form without fields. */
    CHECK(CT, "--xyz--\r\n", "F\nrc=1");
    CHECK(CT, "--xyz--", "F\nrc=1");
}

static void test_content_lookalikes(void)
{
    /* The boundary without the CRLF before it, a CRLF followed by part of the delimiter,
     * CRs in a row, and a line starting with dashes are all content. */
    CHECK(CT,
          "--xyz\r\n" CD("a") "\r\n--xyz\r\n-\r\n--\r\n--x\r\n--xy\r\r\n--xy--z\r\r\r\n\r\n"
                              "--xyz--",
          "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\n"
          "D:--xyz\r\n-\r\n--\r\n--x\r\n--xy\r\r\n--xy--z\r\r\r\n|\n]\nF\nrc=1");
    /* Content that ends in CR and CRLF right before the delimiter. */
    CHECK(CT, "--xyz\r\n" CD("a") "\r\nab\r\r\n--xyz\r\n" CD("b") "\r\n\r\n\r\n--xyz--",
          "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\nD:ab\r|\n]\n"
          "[\nContent-Disposition: form-data; name=\"b\"\n{1 name=b}\nD:\r\n|\n]\nF\nrc=1");
    /* The boundary itself inside a line is content too. */
    CHECK(CT, "--xyz\r\n" CD("a") "\r\nx--xyz--\r\n--xyz--",
          "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\nD:x--xyz--|\n]\nF\nrc=1");
}

static void test_binary(void)
{
    static const char body[] = "--xyz\r\n"
                               "Content-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n"
                               "Content-Type: application/octet-stream\r\n\r\n"
                               "\0\0\xff\r\0\n\x01\r\n\0--xyz\0\r\n--xyz--\r\n";
    static const char expect[] = "[\nContent-Disposition: form-data; name=\"f\"; "
                                 "filename=\"a.bin\"\nContent-Type: application/octet-stream\n"
                                 "{0 name=f file=a.bin ct=application/octet-stream}\n"
                                 "D:\0\0\xff\r\0\n\x01\r\n\0--xyz\0|\n]\nF\nrc=1";
    CHECK(CT, body, expect);
}

static void test_boundaries(void)
{
    /* Quoted, with every special bchar and an inner space (RFC 2046 §5.1.1). */
    CHECK("multipart/form-data; boundary=\"'()+_,-./:=? x\"",
          "--'()+_,-./:=? x\r\n" CD("a") "\r\n1\r\n--'()+_,-./:=? x--",
          "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\nD:1|\n]\nF\nrc=1");
    /* Case-insensitive names, other parameters around, OWS. */
    CHECK("Multipart/Form-Data ; charset=\"a;b\" ;BOUNDARY=xyz ; x=y",
          "--xyz\r\n" CD("a") "\r\n1\r\n--xyz--",
          "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\nD:1|\n]\nF\nrc=1");
    /* A 70-byte boundary is the longest allowed. */
    static const char b70[] =
        "0123456789012345678901234567890123456789012345678901234567890123456789";
    CHECK("multipart/form-data; boundary="
          "0123456789012345678901234567890123456789012345678901234567890123456789",
          "--0123456789012345678901234567890123456789012345678901234567890123456789\r\n" CD(
              "a") "\r\n1\r\n--"
                   "0123456789012345678901234567890123456789012345678901234567890123456789--",
          "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\nD:1|\n]\nF\nrc=1");
    char out[70];
    TAP_EQ_INT(form_multipart_boundary(
                   "x; boundary="
                   "0123456789012345678901234567890123456789012345678901234567890123456789",
                   82, out),
               70);
    TAP_OK(memcmp(out, b70, 70) == 0);
    TAP_EQ_INT(form_multipart_boundary("x; boundary=\"a\\bc\"", 18, out), 3);
    TAP_OK(memcmp(out, "abc", 3) == 0);

    struct {
        const char *ct;
        int err;
    } bad[] = {
        {"application/json", FORM_E_CONTENT_TYPE},
        {"multipart/mixed; boundary=xyz", FORM_E_CONTENT_TYPE},
        {"multipart/form-datax; boundary=xyz", FORM_E_CONTENT_TYPE},
        {"", FORM_E_CONTENT_TYPE},
        {"multipart/form-data", FORM_E_NO_BOUNDARY},
        {"multipart/form-data; charset=utf-8", FORM_E_NO_BOUNDARY},
        {"multipart/form-data; boundary", FORM_E_BAD_BOUNDARY},
        {"multipart/form-data; boundary=", FORM_E_BAD_BOUNDARY},
        {"multipart/form-data; boundary=xyz; =", FORM_E_BAD_BOUNDARY},
        {"multipart/form-data; a=\"", FORM_E_NO_BOUNDARY},
        {"multipart/form-data; boundary=\"\"", FORM_E_BAD_BOUNDARY},
        {"multipart/form-data; boundary=\"abc \"", FORM_E_BAD_BOUNDARY},
        {"multipart/form-data; boundary=a@b", FORM_E_BAD_BOUNDARY},
        {"multipart/form-data; boundary=\"a\x01\"", FORM_E_BAD_BOUNDARY},
        {"multipart/form-data; boundary=\"abc", FORM_E_BAD_BOUNDARY},
        {"multipart/form-data; boundary=a; boundary=a", FORM_E_BAD_BOUNDARY},
        {"multipart/form-data; boundary="
         "01234567890123456789012345678901234567890123456789012345678901234567890",
         FORM_E_BAD_BOUNDARY},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int err = 0;
        form_multipart_t *m =
            form_multipart_new(bad[i].ct, strlen(bad[i].ct), NULL, NULL, NULL, &err);
        TAP_OK(m == NULL);
        TAP_EQ_INT(err, bad[i].err);
        form_multipart_free(m);
    }
}

static void test_padding_and_ends(void)
{
    /* Transport padding after a boundary and after the close delimiter (RFC 2046 §5.1.1). */
    CHECK(CT, "--xyz \t \r\n" CD("a") "\r\n1\r\n--xyz\t\r\n" CD("b") "\r\n2\r\n--xyz-- \t\r\n",
          "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\nD:1|\n]\n"
          "[\nContent-Disposition: form-data; name=\"b\"\n{1 name=b}\nD:2|\n]\nF\nrc=1");
    CHECK(CT, "--xyz\r\n" CD("a") "\r\n1\r\n--xyz--  ",
          "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\nD:1|\n]\nF\nrc=1");
    /* The epilogue is ignored, even when it looks like more parts. */
    CHECK(CT, "--xyz\r\n" CD("a") "\r\n1\r\n--xyz--\r\nepilogue\r\n--xyz\r\n" CD("b") "\r\n",
          "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\nD:1|\n]\nF\nrc=1");
    /* A preamble line that holds the boundary but does not start with it. */
    CHECK(CT, "x--xyz\r\n-\r\n--xy\r\n--xyz\r\n" CD("a") "\r\n1\r\n--xyz--",
          "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\nD:1|\n]\nF\nrc=1");
}

static void test_dispositions(void)
{
    CHECK(CT,
          "--xyz\r\nContent-Disposition: form-data; name=\"a\\\"b\\\\c\"; "
          "filename=\"C:\\dir\\f.txt\"\r\n\r\n\r\n"
          "--xyz\r\ncontent-disposition:Form-Data;NAME=plain;filename=\"\"\r\n\r\n\r\n"
          "--xyz\r\nContent-Disposition: form-data; name=\"e\"; filename=\"old.txt\"; "
          "filename*=UTF-8''%e2%82%ac%20rates.txt\r\n\r\n\r\n"
          "--xyz\r\nContent-Disposition: form-data; filename*=iso-8859-1'en'%E9t%E9; "
          "filename=\"x\"; name=\"l\"\r\n\r\n\r\n"
          "--xyz\r\nContent-Disposition: form-data; name=\"bad\"; filename*=koi8-r''x; "
          "filename=\"fallback\"\r\n\r\n\r\n"
          "--xyz\r\nContent-Disposition: form-data; name=\"bad2\"; filename*=UTF-8''%zz\r\n"
          "Content-Type: a/b\r\nContent-Type: c/d\r\n\r\n\r\n"
          "--xyz\r\nContent-Disposition: form-data ; name = \"\xc3\xa9\" ;\r\n\r\n\r\n"
          "--xyz--",
          "[\nContent-Disposition: form-data; name=\"a\\\"b\\\\c\"; filename=\"C:\\dir\\f.txt\"\n"
          "{0 name=a\"b\\c file=C:\\dir\\f.txt}\n]\n"
          "[\ncontent-disposition: Form-Data;NAME=plain;filename=\"\"\n{1 name=plain file=}\n]\n"
          "[\nContent-Disposition: form-data; name=\"e\"; filename=\"old.txt\"; "
          "filename*=UTF-8''%e2%82%ac%20rates.txt\n{2 name=e file=\xe2\x82\xac rates.txt}\n]\n"
          "[\nContent-Disposition: form-data; filename*=iso-8859-1'en'%E9t%E9; "
          "filename=\"x\"; name=\"l\"\n{3 name=l file=\xc3\xa9t\xc3\xa9}\n]\n"
          "[\nContent-Disposition: form-data; name=\"bad\"; filename*=koi8-r''x; "
          "filename=\"fallback\"\n{4 name=bad file=fallback}\n]\n"
          "[\nContent-Disposition: form-data; name=\"bad2\"; filename*=UTF-8''%zz\n"
          "Content-Type: a/b\nContent-Type: c/d\n{5 name=bad2 file= ct=c/d}\n]\n"
          "[\nContent-Disposition: form-data ; name = \"\xc3\xa9\" ;\n{6 name=\xc3\xa9}\n]\n"
          "F\nrc=1");
}

static void test_errors(void)
{
#define ERR(body, code)                                                                            \
    do {                                                                                           \
        parse(CT, body, sizeof(body) - 1, NULL, NULL, 0, 0, &one);                                 \
        char want_[32];                                                                            \
        int wn_ = snprintf(want_, sizeof(want_), "rc=%d", code);                                   \
        TAP_OK(one.len >= (size_t)wn_ && memcmp(one.text + one.len - wn_, want_, wn_) == 0);       \
        static char copy_[sizeof(one.text)];                                                       \
        size_t copy_len_ = one.len;                                                                \
        memcpy(copy_, one.text, copy_len_);                                                        \
        TAP_OK(check_n(CT, body, sizeof(body) - 1, NULL, copy_, copy_len_));                       \
    } while (0)
    ERR("", FORM_E_TRUNCATED);
    ERR("preamble only\r\n", FORM_E_TRUNCATED);
    ERR("--xyz", FORM_E_TRUNCATED);
    ERR("--xyz\r\n" CD("a"), FORM_E_TRUNCATED);
    ERR("--xyz\r\n" CD("a") "\r\ndata\r\n--xy", FORM_E_TRUNCATED);
    ERR("--xyz\r\n" CD("a") "\r\ndata\r\n--xyz", FORM_E_TRUNCATED);
    ERR("--xyz\r\n" CD("a") "\r\ndata\r\n--xyz--\r", FORM_E_TRUNCATED);
    ERR("--xyz-x", FORM_E_BAD_DELIMITER);
    ERR("--xyzz\r\n", FORM_E_BAD_DELIMITER);
    ERR("--xyz \r", FORM_E_TRUNCATED);
    ERR("--xyz \rx", FORM_E_BAD_DELIMITER);
    ERR("--xyz\r\n" CD("a") "\r\ndata\r\n--xyzdata\r\n--xyz--", FORM_E_BAD_DELIMITER);
    ERR("--xyz--x", FORM_E_AFTER_CLOSE);
    ERR("--xyz\r\n" CD("a") "\r\n\r\n--xyz-- x", FORM_E_AFTER_CLOSE);
    ERR("--xyz--\rx", FORM_E_AFTER_CLOSE);
    ERR("--xyz\r\nno colon\r\n\r\n", FORM_E_BAD_HEADER);
    ERR("--xyz\r\nName : x\r\n\r\n", FORM_E_BAD_HEADER);
    ERR("--xyz\r\n: x\r\n\r\n", FORM_E_BAD_HEADER);
    ERR("--xyz\r\n" CD("a") " folded\r\n\r\n", FORM_E_BAD_HEADER);
    ERR("--xyz\r\nX: a\rb\r\n\r\n", FORM_E_BAD_HEADER);
    ERR("--xyz\r\nX: a\nb\r\n\r\n", FORM_E_BAD_HEADER);
    ERR("--xyz\r\nX: a\0b\r\n\r\n", FORM_E_BAD_HEADER);
    ERR("--xyz\r\nX: a\r\n\r\n", FORM_E_BAD_DISPOSITION);
    ERR("--xyz\r\n\r\n", FORM_E_BAD_DISPOSITION);
    ERR("--xyz\r\nContent-Disposition: attachment; name=a\r\n\r\n", FORM_E_BAD_DISPOSITION);
    ERR("--xyz\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\n", FORM_E_BAD_DISPOSITION);
    ERR("--xyz\r\nContent-Disposition: form-data; name=\"a\r\n\r\n", FORM_E_BAD_DISPOSITION);
    ERR("--xyz\r\nContent-Disposition: form-data; name\r\n\r\n", FORM_E_BAD_DISPOSITION);
    ERR("--xyz\r\nContent-Disposition: form-data name=a\r\n\r\n", FORM_E_BAD_DISPOSITION);
    ERR("--xyz\r\n" CD("a") CD("a") "\r\n", FORM_E_BAD_DISPOSITION);
    ERR("--xyz\r\nContent-Disposition: form-data\r\n\r\n", FORM_E_MISSING_NAME);
    ERR("--xyz\r\nContent-Disposition: form-data; filename=\"f\"\r\n\r\n", FORM_E_MISSING_NAME);
#undef ERR
}

static void test_limits(void)
{
    form_limits_t lim;
    form_limits_default(&lim);
    TAP_EQ_INT(lim.max_parts, 1000);
    TAP_EQ_INT(lim.max_header_bytes, 8192);
    TAP_EQ_INT(lim.max_field_size, 1024 * 1024);

    /* Parts: two allowed, the third refused when its delimiter line ends. */
    lim.max_parts = 2;
    CHECK_LIM(CT, "--xyz\r\n" CD("a") "\r\n\r\n--xyz\r\n" CD("b") "\r\n\r\n--xyz--", &lim,
              "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\n]\n"
              "[\nContent-Disposition: form-data; name=\"b\"\n{1 name=b}\n]\nF\nrc=1");
    CHECK_LIM(CT, "--xyz\r\n" CD("a") "\r\n\r\n--xyz\r\n" CD("b") "\r\n\r\n--xyz\r\n", &lim,
              "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\n]\n"
              "[\nContent-Disposition: form-data; name=\"b\"\n{1 name=b}\n]\nrc=-12");

    /* Header bytes: the block with every CRLF, blank line included. */
    form_limits_default(&lim);
    lim.max_header_bytes = sizeof(CD("a") "\r\n") - 1;
    CHECK_LIM(CT, "--xyz\r\n" CD("a") "\r\n1\r\n--xyz--", &lim,
              "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\nD:1|\n]\nF\nrc=1");
    lim.max_header_bytes--;
    CHECK_LIM(CT, "--xyz\r\n" CD("a") "\r\n1\r\n--xyz--", &lim,
              "[\nContent-Disposition: form-data; name=\"a\"\nrc=-5");
    lim.max_header_bytes = 10;
    CHECK_LIM(CT, "--xyz\r\nX-Long-Header: 12345\r\n", &lim, "[\nrc=-5");

    form_limits_default(&lim);
    lim.max_headers = 2;
    CHECK_LIM(CT, "--xyz\r\n" CD("a") "A: 1\r\n\r\n1\r\n--xyz--", &lim,
              "[\nContent-Disposition: form-data; name=\"a\"\nA: 1\n{0 name=a}\nD:1|\n]\n"
              "F\nrc=1");
    CHECK_LIM(CT, "--xyz\r\n" CD("a") "A: 1\r\nB: 2\r\n\r\n1\r\n--xyz--", &lim,
              "[\nContent-Disposition: form-data; name=\"a\"\nA: 1\nrc=-6");

    /* Field and file sizes: content bytes, not counting the delimiter's CRLF. */
    form_limits_default(&lim);
    lim.max_field_size = 5;
    lim.max_file_size = 7;
    CHECK_LIM(CT, "--xyz\r\n" CD("a") "\r\n12345\r\n--xyz--", &lim,
              "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\nD:12345|\n]\nF\nrc=1");
    CHECK_LIM(CT,
              "--xyz\r\nContent-Disposition: form-data; name=f; filename=g\r\n\r\n"
              "1234567\r\n--xyz--",
              &lim,
              "[\nContent-Disposition: form-data; name=f; filename=g\n{0 name=f file=g}\n"
              "D:1234567|\n]\nF\nrc=1");
    record_data = 0;
    CHECK_LIM(CT, "--xyz\r\n" CD("a") "\r\n123456\r\n--xyz--", &lim,
              "[\nContent-Disposition: form-data; name=\"a\"\n{0 name=a}\nrc=-13");
    CHECK_LIM(CT,
              "--xyz\r\nContent-Disposition: form-data; name=f; filename=g\r\n\r\n"
              "12345678\r\n--xyz--",
              &lim,
              "[\nContent-Disposition: form-data; name=f; filename=g\n{0 name=f file=g}\n"
              "rc=-14");
    record_data = 1;

    form_limits_default(&lim);
    lim.max_body = 12;
    CHECK_LIM(CT, "--xyz--\r\n", &lim, "F\nrc=1");
    CHECK_LIM(CT, "--xyz--\r\nabc", &lim, "F\nrc=1"); /* exactly the limit */
    /* How far the parser got before the excess depends on the pieces: one piece only. */
    static const char big[] = "--xyz\r\n" CD("a") "\r\n\r\n--xyz--";
    parse(CT, big, sizeof(big) - 1, &lim, NULL, 0, 0, &one);
    TAP_EQ_MEM(one.text, one.len, "rc=-15");
    lim.max_body = 9;
    size_t cut = 5;
    parse(CT, "--xyz--\r\n", 9, &lim, &cut, 1, 0, &one);
    TAP_EQ_MEM(one.text, one.len, "F\nrc=1");
    cut = 9;
    parse(CT, "--xyz--\r\nx", 10, &lim, &cut, 1, 0, &one);
    TAP_EQ_MEM(one.text, one.len, "F\nrc=1"); /* the epilogue after the end is not counted */
    parse(CT, "--xyz\r\nabc", 10, &lim, &cut, 1, 0, &one);
    TAP_EQ_MEM(one.text, one.len, "[\nrc=-15");
}

/* Bytes are held back only while they may begin a delimiter, and then at most its length. */
static void test_hold_back(void)
{
    int err;
    form_multipart_t *m = form_multipart_new(CT, strlen(CT), NULL, &callbacks, &one, &err);
    memset(&one, 0, sizeof(one));
    static const char head[] = "--xyz\r\n" CD("a") "\r\n";
    TAP_EQ_INT(form_multipart_feed(m, head, sizeof(head) - 1), 0);
    size_t before = one.len;
    TAP_EQ_INT(form_multipart_feed(m, "hello world", 11), 0);
    TAP_OK(one.len - before == 2 + 11); /* "D:" and all of it at once */
    before = one.len;
    TAP_EQ_INT(form_multipart_feed(m, "ab\r\n--xy", 8), 0);
    TAP_EQ_INT(one.len - before, 2); /* "ab"; the possible delimiter waits */
    before = one.len;
    TAP_EQ_INT(form_multipart_feed(m, "!", 1), 0);
    TAP_EQ_INT(one.len - before, 7); /* it was content */
    TAP_EQ_INT(form_multipart_feed(m, "\r\n--xyz--\r\n", 11), 1);
    TAP_EQ_INT(form_multipart_feed(m, "ignored", 7), 1);
    TAP_EQ_INT(form_multipart_finish(m), 1);
    TAP_EQ_INT(form_multipart_finish(m), 1);
    form_multipart_free(m);
    TAP_OK(memmem(one.text, one.len, "D:hello worldab\r\n--xy!|\n]\nF\n", 28) != NULL);
}

/* A callback that fails stops the parser for good, at every event. */
static void test_callback_stop(void)
{
    static const char body[] = "--xyz\r\n" CD("a") "\r\n1\r\n--xyz--\r\n";
    for (int stop = 1; stop <= 6; stop++) {
        parse(CT, body, sizeof(body) - 1, NULL, NULL, 0, stop, &one);
        TAP_OK(one.len > 6 && memcmp(one.text + one.len - 6, "rc=-16", 6) == 0);
    }
    parse(CT, body, sizeof(body) - 1, NULL, NULL, 0, 7, &one);
    TAP_OK(one.len > 4 && memcmp(one.text + one.len - 4, "rc=1", 4) == 0);

    int err;
    rec_t r;
    memset(&r, 0, sizeof(r));
    r.stop_at = 1;
    form_multipart_t *m = form_multipart_new(CT, strlen(CT), NULL, &callbacks, &r, &err);
    TAP_EQ_INT(form_multipart_feed(m, body, sizeof(body) - 1), FORM_E_CALLBACK);
    TAP_EQ_INT(form_multipart_feed(m, body, sizeof(body) - 1), FORM_E_CALLBACK);
    TAP_EQ_INT(form_multipart_finish(m), FORM_E_CALLBACK);
    form_multipart_free(m);

    /* No callbacks at all is fine too. */
    m = form_multipart_new(CT, strlen(CT), NULL, NULL, NULL, &err);
    TAP_EQ_INT(form_multipart_feed(m, body, sizeof(body) - 1), 1);
    form_multipart_free(m);
}

static void test_messages(void)
{
    int distinct = 1;
    for (int c = -1; c > FORM_E__LAST; c--) {
        const char *s = form_error_message(c);
        if (s == NULL || strlen(s) < 10)
            distinct = 0;
        for (int d = -1; d > c; d--)
            if (strcmp(s, form_error_message(d)) == 0)
                distinct = 0;
    }
    TAP_OK(distinct);
    TAP_OK(strcmp(form_error_message(0), form_error_message(FORM_E__LAST)) == 0);
}

int main(void)
{
    test_basic();
    test_content_lookalikes();
    test_binary();
    test_boundaries();
    test_padding_and_ends();
    test_dispositions();
    test_errors();
    test_limits();
    test_hold_back();
    test_callback_stop();
    test_messages();
    return tap_done();
}
