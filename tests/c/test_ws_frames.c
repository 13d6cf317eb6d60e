/*
 * TAP tests for the WebSocket frame parser and writer (csrc/ws/frame.c, writer.c). Each
 * stream is parsed into a transcript (frame headers, payload bytes with chunks joined,
 * frame ends, control frames, the error and its close code) in one piece, in two pieces
 * split at every byte, one byte at a time and, for short streams, in three pieces at every
 * pair of split points; every way must give the same transcript. Pieces are copied into
 * buffers of exactly their size so AddressSanitizer sees any read past a piece.
 */
#include "tap.h"
#include "ws/ws.h"

#include <stdarg.h>
#include <stdlib.h>

typedef struct {
    char *text;
    size_t len, cap;
    int in_data;
    int rc;
} rec_t;

static void put(rec_t *r, const void *p, size_t n)
{
    if (r->len + n > r->cap) {
        size_t cap = r->cap * 2 + n + 256;
        char *q = realloc(r->text, cap);
        if (q == NULL)
            abort();
        r->text = q;
        r->cap = cap;
    }
    if (n)
        memcpy(r->text + r->len, p, n);
    r->len += n;
}

static void putf(rec_t *r, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    put(r, tmp, n < 0 ? 0 : (size_t)n);
}

/* When 0, payload chunks are not recorded: for text that fails UTF-8 inside a frame, where
 * how much of the valid prefix was handed out first depends on the split points. */
static int record_data = 1;

static void on_event(rec_t *r, const ws_event_t *ev)
{
    if (ev->type != WS_EV_DATA && r->in_data) {
        put(r, "]", 1);
        r->in_data = 0;
    }
    switch (ev->type) {
    case WS_EV_FRAME:
        putf(r, "F%d/%d%s%s%s:%llu", ev->opcode, ev->message_opcode, ev->fin ? " fin" : "",
             ev->compressed ? " z" : "", ev->first ? " first" : "", (unsigned long long)ev->length);
        break;
    case WS_EV_DATA:
        if (!record_data)
            break;
        if (ev->len == 0)
            put(r, "<empty chunk>", 13);
        if (!r->in_data)
            put(r, "[", 1);
        r->in_data = 1;
        put(r, ev->data, ev->len);
        break;
    case WS_EV_FRAME_END:
        putf(r, "E%s;", ev->fin ? " fin" : "");
        break;
    case WS_EV_CONTROL:
        putf(r, "C%d(", ev->opcode);
        put(r, ev->data, ev->len);
        put(r, ")", 1);
        if (ev->opcode == WS_OP_CLOSE) {
            putf(r, "code %d reason '", ev->close_code);
            put(r, ev->reason, ev->reason_len);
            put(r, "'", 1);
        }
        put(r, ";", 1);
        break;
    default:
        put(r, "<bad event>", 11);
    }
}

/* Parses s[0..n) cut at cuts[0..ncuts) (ascending) into r. */
static void parse(const uint8_t *s, size_t n, int server, int deflate, uint64_t max,
                  const size_t *cuts, size_t ncuts, rec_t *r)
{
    ws_parser_t p;
    ws_parser_init(&p, server, deflate, max);
    memset(r, 0, sizeof(*r));
    size_t start = 0;
    for (size_t i = 0; i <= ncuts && r->rc == 0; i++) {
        size_t stop = i < ncuts ? cuts[i] : n, len = stop - start;
        uint8_t *piece = malloc(len ? len : 1);
        if (piece == NULL)
            abort();
        memcpy(piece, s + start, len);
        uint8_t *q = piece;
        size_t left = len;
        for (;;) {
            ws_event_t ev;
            size_t used;
            int rc = ws_parser_next(&p, q, left, &used, &ev);
            if (used > left)
                put(r, "<used too much>", 15);
            q += used;
            left -= used;
            if (rc == 0) {
                if (left)
                    put(r, "<left bytes>", 12);
                break;
            }
            if (rc < 0) {
                if (r->in_data)
                    put(r, "]", 1);
                r->in_data = 0;
                putf(r, "!%d close %d", rc, ws_close_code(rc));
                r->rc = rc;
                /* Errors are sticky. */
                if (ws_parser_next(&p, q, left, &used, &ev) != rc)
                    put(r, "<not sticky>", 12);
                break;
            }
            on_event(r, &ev);
        }
        free(piece);
        start = stop;
    }
    if (r->in_data)
        put(r, "]", 1);
}

static int same(const rec_t *a, const rec_t *b)
{
    return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
}

/* Checks s against the expected transcript in every way of cutting it; returns the number
 * of ways that differed (0 expected). */
static int check_stream(const uint8_t *s, size_t n, int server, int deflate, uint64_t max,
                        const char *expect)
{
    rec_t a, b;
    int bad = 0;
    parse(s, n, server, deflate, max, NULL, 0, &a);
    if (expect && (a.len != strlen(expect) || memcmp(a.text, expect, a.len) != 0)) {
        printf("#   got:    %.*s\n#   wanted: %s\n", (int)a.len, a.text, expect);
        bad++;
    }
    /* Every split point (for long streams: those near the headers and a sample of the
     * rest, since a payload byte is handled like its neighbours). */
    for (size_t i = 0; i <= n; i++) {
        if (n > 4096 && i > 32 && i + 32 < n && i % 509 != 0)
            continue;
        parse(s, n, server, deflate, max, &i, 1, &b);
        if (!same(&a, &b)) {
            if (!bad)
                printf("#   split at %zu: %.*s\n", i, (int)b.len, b.text);
            bad++;
        }
        free(b.text);
    }
    if (n <= 4096) {
        size_t *all = malloc((n + 1) * sizeof(*all));
        if (all == NULL)
            abort();
        for (size_t i = 0; i < n; i++)
            all[i] = i;
        parse(s, n, server, deflate, max, all, n, &b);
        free(all);
        bad += !same(&a, &b);
        free(b.text);
    }
    if (n <= 48) {
        for (size_t i = 0; i <= n; i++) {
            for (size_t j = i; j <= n; j++) {
                size_t cuts[2] = {i, j};
                parse(s, n, server, deflate, max, cuts, 2, &b);
                bad += !same(&a, &b);
                free(b.text);
            }
        }
    }
    free(a.text);
    return bad;
}

/* The same without payload bytes in the transcript. */
#define CHECK_NODATA(s, server, deflate, max, expect)                                              \
    do {                                                                                           \
        record_data = 0;                                                                           \
        CHECK(s, server, deflate, max, expect);                                                    \
        record_data = 1;                                                                           \
    } while (0)

#define CHECK(s, server, deflate, max, expect)                                                     \
    TAP_EQ_INT(check_stream((const uint8_t *)(s), sizeof(s) - 1, server, deflate, max, expect), 0)

/* A stream builder for frames in either direction. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
} stream_t;

static void frame(stream_t *st, int b0, const void *payload, size_t n, const uint8_t *key)
{
    uint8_t hdr[14];
    size_t h = ws_frame_header(hdr, b0 & 0x0F, b0 & 0x80, b0 & 0x40, n, key);
    hdr[0] = (uint8_t)b0; /* RSV2/RSV3 too, for the error cases */
    if (st->len + h + n > st->cap) {
        size_t cap = (st->len + h + n) * 2;
        uint8_t *q = realloc(st->p, cap);
        if (q == NULL)
            abort();
        st->p = q;
        st->cap = cap;
    }
    memcpy(st->p + st->len, hdr, h);
    if (n)
        memcpy(st->p + st->len + h, payload, n);
    if (key)
        ws_mask(st->p + st->len + h, n, key, 0);
    st->len += h + n;
}

static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* RFC 6455 §5.7's examples, byte for byte, from both sides. */
static void test_rfc_examples(void)
{
    CHECK("\x81\x05Hello", 0, 0, 0, "F1/1 fin first:5[Hello]E fin;");
    CHECK("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 1, 0, 0, "F1/1 fin first:5[Hello]E fin;");
    CHECK("\x01\x03Hel\x80\x02lo", 0, 0, 0, "F1/1 first:3[Hel]E;F0/1 fin:2[lo]E fin;");
    CHECK("\x89\x05Hello", 0, 0, 0, "C9(Hello);");
    CHECK("\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 1, 0, 0, "C10(Hello);");

    /* The writer produces the same bytes. */
    uint8_t hdr[14];
    TAP_EQ_INT(ws_frame_header(hdr, WS_OP_TEXT, 1, 0, 5, NULL), 2);
    TAP_EQ_MEM(hdr, 2, "\x81\x05");
    TAP_EQ_INT(ws_frame_header(hdr, WS_OP_TEXT, 1, 0, 5, key), 6);
    TAP_EQ_MEM(hdr, 6, "\x81\x85\x37\xfa\x21\x3d");
    uint8_t hello[5] = {'H', 'e', 'l', 'l', 'o'};
    ws_mask(hello, 5, key, 0);
    TAP_EQ_MEM(hello, 5, "\x7f\x9f\x4d\x51\x58");
    TAP_EQ_INT(ws_frame_header(hdr, WS_OP_BINARY, 1, 0, 256, NULL), 4);
    TAP_EQ_MEM(hdr, 4, "\x82\x7e\x01\x00");
    TAP_EQ_INT(ws_frame_header(hdr, WS_OP_BINARY, 1, 0, 65536, NULL), 10);
    TAP_EQ_MEM(hdr, 10, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00");
    TAP_EQ_INT(ws_frame_header(hdr, WS_OP_BINARY, 1, 0, 125, NULL), 2);
    TAP_EQ_INT(ws_frame_header(hdr, WS_OP_BINARY, 1, 0, 126, NULL), 4);
    TAP_EQ_INT(ws_frame_header(hdr, WS_OP_BINARY, 1, 0, 65535, NULL), 4);
    TAP_EQ_MEM(hdr, 4, "\x82\x7e\xff\xff");
    TAP_EQ_INT(ws_frame_header(hdr, WS_OP_CONT, 0, 1, 0, NULL), 2);
    TAP_EQ_MEM(hdr, 2, "\x40\x00");

    /* 256 bytes and 64 KiB binary messages (§5.7), unmasked and masked. */
    size_t sizes[2] = {256, 65536};
    for (int k = 0; k < 2; k++) {
        size_t n = sizes[k];
        uint8_t *payload = malloc(n);
        char *expect = malloc(n + 64);
        if (payload == NULL || expect == NULL)
            abort();
        for (size_t i = 0; i < n; i++)
            payload[i] = (uint8_t)(i * 7 + 3);
        int h = snprintf(expect, 64, "F2/2 fin first:%zu[", n);
        memcpy(expect + h, payload, n);
        memcpy(expect + h + n, "]E fin;", 8);
        for (int masked = 0; masked < 2; masked++) {
            stream_t st = {0};
            frame(&st, 0x82, payload, n, masked ? key : NULL);
            TAP_EQ_INT(st.len, n + (n == 256 ? 4 : 10) + (masked ? 4 : 0));
            rec_t r;
            parse(st.p, st.len, masked, 0, 0, NULL, 0, &r);
            TAP_OK(r.len == strlen(expect) + n - strlen(expect + h) + strlen("]E fin;") &&
                   memcmp(r.text, expect, h) == 0 && memcmp(r.text + h, payload, n) == 0);
            free(r.text);
            TAP_EQ_INT(check_stream(st.p, st.len, masked, 0, 0, NULL), 0);
            free(st.p);
        }
        free(payload);
        free(expect);
    }
}

static void test_streams(void)
{
    /* Control frames between fragments (§5.4), an empty frame, then a close. */
    stream_t st = {0};
    frame(&st, 0x01, "caf\xc3", 4, key);
    frame(&st, 0x89, "p", 1, key);
    frame(&st, 0x00, "", 0, key);
    frame(&st, 0x8a, "", 0, key);
    frame(&st, 0x80, "\xa9!", 2, key);
    frame(&st, 0x82, "", 0, key);
    frame(&st, 0x88,
          "\x03\xe8"
          "bye",
          5, key);
    frame(&st, 0x81, "ignored after close", 19, key);
    TAP_EQ_INT(check_stream(st.p, st.len, 1, 0, 0,
                            "F1/1 first:4[caf\xc3]E;C9(p);F0/1:0E;C10();F0/1 fin:2[\xa9!]E fin;"
                            "F2/2 fin first:0E fin;C8(\x03\xe8"
                            "bye)code 1000 reason 'bye';"),
               0);
    free(st.p);

    /* An empty close frame reports 1005 (§7.1.5); the message limit counts all fragments. */
    CHECK("\x88\x00", 0, 0, 0, "C8()code 1005 reason '';");
    CHECK("\x01\x03"
          "abc\x00\x03"
          "def\x80\x04ghij",
          0, 0, 10, "F1/1 first:3[abc]E;F0/1:3[def]E;F0/1 fin:4[ghij]E fin;");
    /* Binary messages are not UTF-8 checked; compressed text is left to ws_message_t. */
    CHECK("\x82\x02\xff\xfe", 0, 0, 0, "F2/2 fin first:2[\xff\xfe]E fin;");
    CHECK("\xc1\x02\xff\xfe", 0, 1, 0, "F1/1 fin z first:2[\xff\xfe]E fin;");
    CHECK("\x41\x01\xff\x80\x01\xfe", 0, 1, 0, "F1/1 z first:1[\xff]E;F0/1 fin z:1[\xfe]E fin;");
    /* Non-minimal lengths are accepted (§5.2 asks the sender for the minimal form). */
    CHECK("\x82\x7e\x00\x01x", 0, 0, 0, "F2/2 fin first:1[x]E fin;");
    CHECK("\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x01x", 0, 0, 0, "F2/2 fin first:1[x]E fin;");
    /* Valid close codes. */
    int ok_codes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1014, 3000, 4999};
    for (size_t i = 0; i < sizeof(ok_codes) / sizeof(ok_codes[0]); i++) {
        uint8_t f[4] = {0x88, 2, (uint8_t)(ok_codes[i] >> 8), (uint8_t)ok_codes[i]};
        char expect[64];
        snprintf(expect, sizeof(expect), "C8(%c%c)code %d reason '';", f[2], f[3], ok_codes[i]);
        TAP_EQ_INT(check_stream(f, 4, 0, 0, 0, expect), 0);
    }
}

/* Each protocol error, its close code, and the events before it, at every split. */
static void test_errors(void)
{
    CHECK("\x81\x05Hello", 1, 0, 0, "!-1 close 1002"); /* §5.1 unmasked */
    CHECK("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 0, 0, 0, "!-2 close 1002"); /* masked */
    CHECK("\xc1\x00", 0, 0, 0, "!-3 close 1002"); /* RSV1 without an extension */
    CHECK("\xa1\x00", 0, 1, 0, "!-3 close 1002"); /* RSV2 */
    CHECK("\x91\x00", 0, 1, 0, "!-3 close 1002"); /* RSV3 */
    CHECK("\xc9\x00", 0, 1, 0, "!-3 close 1002"); /* RSV1 on a control frame */
    CHECK("\x41\x01x\xc0\x01y", 0, 1, 0, "F1/1 z first:1[x]E;!-3 close 1002"); /* on a cont. */
    CHECK("\x83\x00", 0, 0, 0, "!-4 close 1002");
    CHECK("\x87\x00", 0, 0, 0, "!-4 close 1002");
    CHECK("\x8b\x00", 0, 0, 0, "!-4 close 1002");
    CHECK("\x8f\x00", 0, 0, 0, "!-4 close 1002");
    CHECK("\x89\x7e\x00\x7e", 0, 0, 0, "!-5 close 1002"); /* §5.5: ping of 126 bytes */
    CHECK("\x88\x7f\x00\x00\x00\x00\x00\x00\x00\x02", 0, 0, 0, "!-5 close 1002");
    CHECK("\x09\x00", 0, 0, 0, "!-6 close 1002");  /* a fragmented ping */
    CHECK("\x80\x01x", 0, 0, 0, "!-7 close 1002"); /* §5.4: nothing to continue */
    CHECK("\x81\x01x\x00\x01y", 0, 0, 0, "F1/1 fin first:1[x]E fin;!-7 close 1002");
    CHECK("\x01\x01x\x81\x01y", 0, 0, 0, "F1/1 first:1[x]E;!-8 close 1002");
    CHECK("\x01\x01x\x02\x01y", 0, 0, 0, "F1/1 first:1[x]E;!-8 close 1002");
    CHECK("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x01", 0, 0, 0, "!-9 close 1002");
    CHECK("\x82\x0bhello world", 0, 0, 10, "!-10 close 1009");
    CHECK("\x02\x06hello \x80\x05world", 0, 0, 10, "F2/2 first:6[hello ]E;!-10 close 1009");
    CHECK("\x82\x7f\x7f\xff\xff\xff\xff\xff\xff\xff", 0, 0, 1 << 20, "!-10 close 1009");
    CHECK("\x88\x01\x03", 0, 0, 0, "!-11 close 1002"); /* §5.5.1 */
    int bad_codes[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(bad_codes) / sizeof(bad_codes[0]); i++) {
        uint8_t f[4] = {0x88, 2, (uint8_t)(bad_codes[i] >> 8), (uint8_t)bad_codes[i]};
        TAP_EQ_INT(check_stream(f, 4, 0, 0, 0, "!-12 close 1002"), 0);
    }
    CHECK("\x88\x04\x03\xe8\xc3\x28", 0, 0, 0, "!-13 close 1007"); /* reason not UTF-8 */
    /* §8.1: invalid UTF-8 in text fails at once, even mid-frame or across fragments (how
     * much of the valid prefix came first depends on the split points). */
    CHECK_NODATA("\x81\x03\x61\xff\x62", 0, 0, 0, "F1/1 fin first:3!-13 close 1007");
    CHECK("\x01\x02\x61\xe2\x00\x01\x82\x80\x01\xac", 0, 0, 0,
          "F1/1 first:2[a\xe2]E;F0/1:1[\x82]E;F0/1 fin:1[\xac]E fin;");
    CHECK("\x01\x02\x61\xe2\x80\x01\x28", 0, 0, 0,
          "F1/1 first:2[a\xe2]E;F0/1 fin:1!-13 close 1007");
    CHECK("\x81\x02\x61\xe2", 0, 0, 0, "F1/1 fin first:2[a\xe2]!-13 close 1007"); /* truncated */
    CHECK_NODATA("\x81\x04\xed\xa0\x80\x61", 0, 0, 0, "F1/1 fin first:4!-13 close 1007");
    CHECK_NODATA("\x81\x04\xf4\x90\x80\x80", 0, 0, 0, "F1/1 fin first:4!-13 close 1007");
    CHECK_NODATA("\x81\x03\xe0\x80\xaf", 0, 0, 0, "F1/1 fin first:3!-13 close 1007");
    CHECK("\x81\x03\x61\xe2\x82", 0, 0, 0, "F1/1 fin first:3[a\xe2\x82]!-13 close 1007");

    TAP_EQ_INT(ws_close_code(WS_E_NO_MEMORY), 1011);
    TAP_EQ_INT(ws_close_code(WS_E_INFLATE), 1007);
    TAP_OK(strcmp(ws_error_message(WS_E_TOO_BIG), "a message is too big") == 0);
    TAP_OK(strcmp(ws_error_message(-100), "unknown error") == 0);
    for (int e = -1; e > WS_E__LAST; e--)
        TAP_OK(ws_error_message(e)[0] != '\0' && ws_close_code(e) >= 1002);
}

/* The writer's frames read back by a client-side parser. */
static void test_writer(void)
{
    db_buf_t out;
    db_buf_init(&out);
    TAP_EQ_INT(ws_write_frame(&out, WS_OP_TEXT, 0, 1, "ab", 2), 0);
    TAP_EQ_INT(ws_write_frame(&out, WS_OP_PING, 1, 0, "p", 1), 0);
    TAP_EQ_INT(ws_write_frame(&out, WS_OP_CONT, 1, 0, "c", 1), 0);
    TAP_EQ_INT(ws_write_frame(&out, WS_OP_PONG, 1, 0, NULL, 0), 0);
    TAP_EQ_INT(ws_write_close(&out, 1001, "going away", 10), 0);
    TAP_EQ_MEM(out.data, out.len,
               "\x41\x02"
               "ab\x89\x01p\x80\x01"
               "c\x8a\x00\x88\x0c\x03\xe9going away");
    TAP_EQ_INT(check_stream((uint8_t *)out.data, out.len, 0, 1, 0,
                            "F1/1 z first:2[ab]E;C9(p);F0/1 fin z:1[c]E fin;C10();"
                            "C8(\x03\xe9going away)code 1001 reason 'going away';"),
               0);
    out.len = 0;
    TAP_EQ_INT(ws_write_close(&out, 0, NULL, 0), 0);
    TAP_EQ_MEM(out.data, out.len, "\x88\x00");
    char reason[124];
    memset(reason, 'r', sizeof(reason));
    out.len = 0;
    TAP_EQ_INT(ws_write_close(&out, 4000, reason, 123), 0);
    TAP_EQ_INT(out.len, 127);
    TAP_EQ_INT(ws_write_close(&out, 4000, reason, 124), WS_E_ARG);
    TAP_EQ_INT(ws_write_close(&out, 1005, "", 0), WS_E_ARG);
    TAP_EQ_INT(ws_write_close(&out, 1006, "", 0), WS_E_ARG);
    TAP_EQ_INT(ws_write_close(&out, 0, "x", 1), WS_E_ARG);
    TAP_EQ_INT(ws_write_close(&out, 1000, "\xc0\xaf", 2), WS_E_UTF8);
    TAP_EQ_INT(ws_write_frame(&out, WS_OP_PING, 1, 0, reason, 124), 0);
    TAP_EQ_INT(ws_write_frame(&out, WS_OP_PING, 1, 0, reason, 126), WS_E_ARG);
    TAP_EQ_INT(ws_write_frame(&out, WS_OP_PING, 0, 0, reason, 1), WS_E_ARG);
    TAP_EQ_INT(ws_write_frame(&out, WS_OP_CLOSE, 1, 1, reason, 0), WS_E_ARG);
    /* 16-bit and 64-bit lengths. */
    size_t lens[] = {125, 126, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        char *big = calloc(1, lens[i]);
        if (big == NULL)
            abort();
        out.len = 0;
        TAP_EQ_INT(ws_write_frame(&out, WS_OP_BINARY, 1, 0, big, lens[i]), 0);
        size_t h = lens[i] <= 125 ? 2 : lens[i] <= 65535 ? 4 : 10;
        TAP_EQ_INT(out.len, lens[i] + h);
        ws_parser_t p;
        ws_parser_init(&p, 0, 0, 0);
        ws_event_t ev;
        size_t used;
        TAP_EQ_INT(ws_parser_next(&p, (uint8_t *)out.data, out.len, &used, &ev), WS_EV_FRAME);
        TAP_EQ_INT(used, h);
        TAP_EQ_INT(ev.length, lens[i]);
        free(big);
    }
    db_buf_free(&out);
}

/* Masking in pieces at any offset equals masking the whole. */
static void test_mask(void)
{
    uint8_t a[100], b[100];
    for (int i = 0; i < 100; i++)
        a[i] = b[i] = (uint8_t)(i * 13);
    ws_mask(a, 100, key, 0);
    int ok = 1;
    for (size_t cut = 0; cut <= 100; cut++) {
        uint8_t c[100];
        memcpy(c, b, 100);
        size_t off = ws_mask(c, cut, key, 0);
        ws_mask(c + cut, 100 - cut, key, off);
        ok &= memcmp(a, c, 100) == 0;
    }
    TAP_OK(ok);
    for (int i = 0; i < 100; i++)
        ok &= a[i] == (uint8_t)(b[i] ^ key[i % 4]);
    TAP_OK(ok);
}

/* An empty piece (NULL, 0) anywhere: in a header, in a control payload, in a data payload,
 * and where an empty frame's end is pending. */
static void test_empty_pieces(void)
{
    uint8_t s[] = {0x89, 0x02, 'h', 'i', 0x82, 0x00, 0x82, 0x02, 'a', 'b'};
    ws_parser_t p;
    ws_parser_init(&p, 0, 0, 0);
    rec_t r;
    memset(&r, 0, sizeof(r));
    int ok = 1;
    for (size_t i = 0; i < sizeof(s); i++) {
        for (int k = 0; k < 2; k++) {
            uint8_t *q = k ? s + i : NULL;
            size_t left = k ? 1 : 0;
            for (;;) {
                ws_event_t ev;
                size_t used;
                int rc = ws_parser_next(&p, q, left, &used, &ev);
                ok &= rc >= 0 && used <= left;
                if (rc <= 0)
                    break;
                if (used) /* q may be NULL */
                    q += used;
                left -= used;
                on_event(&r, &ev);
            }
        }
    }
    if (r.in_data)
        put(&r, "]", 1);
    TAP_OK(ok);
    const char *want = "C9(hi);F2/2 fin first:0E fin;F2/2 fin first:2[ab]E fin;";
    TAP_OK(r.len == strlen(want) && memcmp(r.text, want, r.len) == 0);
    free(r.text);
}

int main(void)
{
    test_empty_pieces();
    test_rfc_examples();
    test_streams();
    test_errors();
    test_writer();
    test_mask();
    return tap_done();
}
