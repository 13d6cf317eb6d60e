/*
 * TAP tests for the reader of whole messages (csrc/ws/reader.c) and the client's frame
 * writer (ws_write_masked_frame, ws_close_payload in csrc/ws/writer.c). A stream of server
 * frames is read into a transcript of messages and control frames in one piece, split in
 * two at every byte and one byte at a time; every way must give the same transcript.
 * Pieces are copied into buffers of exactly their size so AddressSanitizer sees any read
 * past a piece. Masked frames are checked by reading them back as a server does.
 */
#include "tap.h"
#include "ws/ws.h"

#include <stdlib.h>

typedef struct {
    char text[1024];
    size_t len;
    int rc;
    size_t big; /* the length of a binary message too long to record */
} rec_t;

static void put(rec_t *r, const void *p, size_t n)
{
    if (r->len + n > sizeof(r->text))
        n = sizeof(r->text) - r->len;
    if (n == 0)
        return; /* p may be NULL then (an empty reason) */
    memcpy(r->text + r->len, p, n);
    r->len += n;
}

static void putf(rec_t *r, const char *fmt, long long v)
{
    char tmp[64];
    int n = snprintf(tmp, sizeof(tmp), fmt, v);
    put(r, tmp, n < 0 ? 0 : (size_t)n);
}

static void on_read(rec_t *r, const ws_read_t *m)
{
    putf(r, "%lld(", m->opcode);
    if (m->len > 200) {
        /* A large message: its length and whether every byte is the expected one. */
        int ok = 1;
        for (size_t i = 0; i < m->len; i++)
            ok &= m->data[i] == (uint8_t)(i * 7);
        putf(r, "%lld bytes", (long long)m->len);
        put(r, ok ? " ok" : " corrupt", ok ? 3 : 8);
    } else if (m->len) {
        put(r, m->data, m->len);
    }
    put(r, ")", 1);
    if (m->opcode == WS_OP_CLOSE) {
        putf(r, "%lld '", m->close_code);
        put(r, m->reason, m->reason_len);
        put(r, "'", 1);
    }
    put(r, ";", 1);
}

/* Reads s[0..n) cut at cuts[0..ncuts) (ascending) into r. */
static void read_stream(const uint8_t *s, size_t n, int server, uint64_t max, const size_t *cuts,
                        size_t ncuts, rec_t *r)
{
    ws_reader_t rd;
    ws_reader_init(&rd, server, max);
    memset(r, 0, sizeof(*r));
    size_t start = 0;
    for (size_t i = 0; i <= ncuts && r->rc == 0; i++) {
        size_t stop = i < ncuts ? cuts[i] : n, len = stop - start;
        uint8_t *piece = len ? malloc(len) : NULL;
        if (len && piece == NULL)
            abort();
        if (len)
            memcpy(piece, s + start, len);
        size_t off = 0;
        for (;;) {
            ws_read_t m;
            size_t used = 0;
            int rc = ws_reader_next(&rd, piece ? piece + off : piece, len - off, &used, &m);
            if (used > len - off)
                put(r, "<used too much>", 15);
            off += used;
            if (rc == 0) {
                if (off != len)
                    put(r, "<left bytes>", 12);
                break;
            }
            if (rc < 0) {
                putf(r, "!%lld", rc);
                putf(r, " close %lld", ws_close_code(rc));
                r->rc = rc;
                if (ws_reader_next(&rd, NULL, 0, &used, &m) != rc)
                    put(r, "<not sticky>", 12);
                break;
            }
            on_read(r, &m);
        }
        free(piece);
        start = stop;
    }
    ws_reader_free(&rd);
}

static int check(const uint8_t *s, size_t n, int server, uint64_t max, const char *expect)
{
    rec_t a, b;
    int bad = 0;
    read_stream(s, n, server, max, NULL, 0, &a);
    if (a.len != strlen(expect) || memcmp(a.text, expect, a.len) != 0) {
        printf("#   got:    %.*s\n#   wanted: %s\n", (int)a.len, a.text, expect);
        bad++;
    }
    for (size_t i = 0; i <= n; i++) {
        if (n > 4096 && i > 32 && i + 32 < n && i % 997 != 0)
            continue;
        read_stream(s, n, server, max, &i, 1, &b);
        if (b.len != a.len || memcmp(a.text, b.text, a.len) != 0) {
            if (!bad)
                printf("#   split at %zu: %.*s\n", i, (int)b.len, b.text);
            bad++;
        }
    }
    if (n <= 4096) {
        size_t *all = malloc((n + 1) * sizeof(*all));
        if (all == NULL)
            abort();
        for (size_t i = 0; i < n; i++)
            all[i] = i;
        read_stream(s, n, server, max, all, n, &b);
        free(all);
        bad += b.len != a.len || memcmp(a.text, b.text, a.len) != 0;
    }
    return bad;
}

#define CHECK(s, server, max, expect)                                                              \
    tap_check(check((const uint8_t *)(s), sizeof(s) - 1, server, max, expect) == 0, #s, __FILE__,  \
              __LINE__)

/* Unmasked server frames (§5.1, §5.7's examples and more). */
static void test_messages(void)
{
    /* A text message, a fragmented one with a ping between its frames (§5.4), a pong, an
     * empty binary message, a close with a code and reason; bytes after the close are
     * not read (§5.5.1). */
    CHECK("\x81\x05Hello"
          "\x01\x03Hel"
          "\x89\x02hi"
          "\x80\x02lo"
          "\x8a\x00"
          "\x82\x00"
          "\x88\x05\x03\xe9"
          "bye"
          "\x81\x01x",
          0, 0,
          "1(Hello);9(hi);1(Hello);10();2();8(\x03\xe9"
          "bye)1001 'bye';");
    /* An empty close payload is reported as 1005 (§7.1.5). */
    CHECK("\x88\x00", 0, 0, "8()1005 '';");
}

static void test_errors(void)
{
    /* A masked frame from a server (§5.1). */
    CHECK("\x81\x81\x01\x02\x03\x04x", 0, 0, "!-2 close 1002");
    /* RSV1 without permessage-deflate agreed (§5.2, RFC 7692 §6.1). */
    CHECK("\xc1\x01x", 0, 0, "!-3 close 1002");
    /* Invalid UTF-8 in a text message (§8.1): 1007. */
    CHECK("\x81\x02\xc3\x28", 0, 0, "!-13 close 1007");
    /* A message over the bound: 1009. */
    CHECK("\x82\x04"
          "abcd",
          0, 3, "!-10 close 1009");
    /* A fragmented message over the bound, counted across its frames. */
    CHECK("\x02\x02"
          "ab"
          "\x80\x02"
          "cd",
          0, 3, "!-10 close 1009");
    /* A close frame with a code not allowed on the wire (§7.4.1). */
    CHECK("\x88\x02\x03\xed", 0, 0, "!-12 close 1002");
    /* An unmasked frame where a server reads (the reader's other direction). */
    CHECK("\x81\x01x", 1, 0, "!-1 close 1002");
}

/* A large binary message (64-bit length) in two frames. */
static void test_large(void)
{
    size_t n = 70000;
    uint8_t *s = malloc(n + 20);
    if (s == NULL)
        abort();
    size_t pos = 0;
    s[pos++] = 0x02; /* binary, not FIN */
    s[pos++] = 126;
    s[pos++] = 0x03; /* 1000 bytes */
    s[pos++] = 0xe8;
    for (size_t i = 0; i < 1000; i++)
        s[pos++] = (uint8_t)(i * 7);
    s[pos++] = 0x80; /* continuation, FIN */
    s[pos++] = 127;
    uint64_t rest = n - 1000;
    for (int i = 0; i < 8; i++)
        s[pos++] = (uint8_t)(rest >> (56 - 8 * i));
    for (size_t i = 1000; i < n; i++)
        s[pos++] = (uint8_t)(i * 7);
    tap_check(check(s, pos, 0, 0, "2(70000 bytes ok);") == 0, "a 70000-byte message in two frames",
              __FILE__, __LINE__);
    free(s);
}

/* Masked frames as a client writes them, read back by a server-side reader. */
static void test_masked_writer(void)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t out[256];
    /* §5.7: a single-frame masked text message "Hello". */
    int64_t n = ws_write_masked_frame(out, WS_OP_TEXT, "Hello", 5, key);
    TAP_EQ_INT(n, 11);
    TAP_EQ_MEM(out, (size_t)n, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
    TAP_EQ_INT(ws_frame_size(5, 1), 11);
    TAP_EQ_INT(ws_frame_size(126, 1), 134);
    TAP_EQ_INT(ws_frame_size(65536, 0), 65546);
    TAP_EQ_INT(ws_frame_size(0, 1), 6);
    /* Control frames: at most 125 bytes; continuation and reserved opcodes refused. */
    TAP_EQ_INT(ws_write_masked_frame(out, WS_OP_PING, out, 126, key), WS_E_ARG);
    TAP_EQ_INT(ws_write_masked_frame(out, WS_OP_CONT, "x", 1, key), WS_E_ARG);
    TAP_EQ_INT(ws_write_masked_frame(out, 3, "x", 1, key), WS_E_ARG);
    TAP_EQ_INT(ws_write_masked_frame(out, WS_OP_PONG, NULL, 0, key), 6);

    /* Every length form, read back by a server's reader. */
    static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 70001};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t len = sizes[k];
        uint8_t *payload = malloc(len + 1);
        size_t size = ws_frame_size(len, 1);
        uint8_t *frame = malloc(size);
        if (payload == NULL || frame == NULL)
            abort();
        for (size_t i = 0; i < len; i++)
            payload[i] = (uint8_t)(i * 7);
        int64_t w = ws_write_masked_frame(frame, WS_OP_BINARY, payload, len, key);
        TAP_EQ_INT(w, (int64_t)size);
        TAP_OK(frame[1] & 0x80); /* the MASK bit (§5.2) */
        ws_reader_t rd;
        ws_reader_init(&rd, 1, 0);
        ws_read_t m;
        size_t used = 0;
        int rc = ws_reader_next(&rd, frame, size, &used, &m);
        TAP_EQ_INT(rc, 1);
        TAP_EQ_INT(used, size);
        TAP_OK(rc == 1 && m.opcode == WS_OP_BINARY && m.len == len &&
               (len == 0 || memcmp(m.data, payload, len) == 0));
        ws_reader_free(&rd);
        free(frame);
        free(payload);
    }
}

static void test_close_payload(void)
{
    uint8_t out[125];
    TAP_EQ_INT(ws_close_payload(out, 1000, "", 0), 2);
    TAP_EQ_MEM(out, 2, "\x03\xe8");
    TAP_EQ_INT(ws_close_payload(out, 4001, "bye", 3), 5);
    TAP_EQ_MEM(out, 5,
               "\x0f\xa1"
               "bye");
    TAP_EQ_INT(ws_close_payload(out, 0, NULL, 0), 0);
    TAP_EQ_INT(ws_close_payload(out, 0, "x", 1), WS_E_ARG);
    TAP_EQ_INT(ws_close_payload(out, 1005, NULL, 0), WS_E_ARG); /* never sent (§7.4.1) */
    TAP_EQ_INT(ws_close_payload(out, 1006, NULL, 0), WS_E_ARG);
    TAP_EQ_INT(ws_close_payload(out, 999, NULL, 0), WS_E_ARG);
    TAP_EQ_INT(ws_close_payload(out, 1000, "\xc3\x28", 2), WS_E_UTF8);
    char reason[124];
    memset(reason, 'r', sizeof(reason));
    TAP_EQ_INT(ws_close_payload(out, 1000, reason, 123), 125);
    TAP_EQ_INT(ws_close_payload(out, 1000, reason, 124), WS_E_ARG);
    /* The unmasked writer builds on it. */
    db_buf_t b;
    db_buf_init(&b);
    TAP_EQ_INT(ws_write_close(&b, 1001, "x", 1), 0);
    TAP_EQ_MEM(b.data, b.len, "\x88\x03\x03\xe9x");
    db_buf_free(&b);
}

int main(void)
{
    test_messages();
    test_errors();
    test_large();
    test_masked_writer();
    test_close_payload();
    return tap_done();
}
