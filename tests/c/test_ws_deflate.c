/*
 * TAP tests for permessage-deflate (csrc/ws/deflate.c): RFC 7692 §7.2.3's examples (one
 * message, two messages sharing the window, a stored block, a final block, two blocks),
 * compression with and without context takeover, windows of 9..15 bits agreed on both
 * sides, an inflater refusing data beyond its window, round trips of several sizes with the
 * compressed payload inflated in two pieces split at every point, the bound on inflated
 * size (a "zip bomb" ends in WS_E_TOO_BIG, close 1009, with memory bounded), corrupt data,
 * an idle inflater parked as the last bytes of its window and resumed from them, and whole
 * messages assembled from parser events by ws_message_t.
 */
#include "tap.h"
#include "ws/ws.h"

#include <stdlib.h>

/* Inflates in[0..n) as one message (cut at `cut` when cut <= n) into a fresh buffer. */
static int inflate_msg(ws_inflater_t *inf, const uint8_t *in, size_t n, size_t cut, db_buf_t *out,
                       uint64_t max)
{
    db_buf_init(out);
    if (cut > n)
        return ws_inflate(inf, in, n, 1, out, max);
    uint8_t *a = malloc(cut + 1), *b = malloc(n - cut + 1);
    if (a == NULL || b == NULL)
        abort();
    memcpy(a, in, cut);
    memcpy(b, in + cut, n - cut);
    int rc = ws_inflate(inf, a, cut, 0, out, max);
    if (rc == 0)
        rc = ws_inflate(inf, b, n - cut, 1, out, max);
    free(a);
    free(b);
    return rc;
}

static int inflates_to(ws_inflater_t *inf, const char *in, size_t n, const char *want)
{
    db_buf_t out;
    int rc = inflate_msg(inf, (const uint8_t *)in, n, (size_t)-1, &out, 0);
    int ok = rc == 0 && out.len == strlen(want) &&
             (out.len == 0 || memcmp(out.data, want, out.len) == 0);
    db_buf_free(&out);
    return ok;
}

static void test_rfc_examples(void)
{
    ws_deflater_t *d = ws_deflater_new(15, 0, -1);
    TAP_OK(d != NULL);
    db_buf_t out;
    db_buf_init(&out);
    /* §7.2.3.1: "Hello" is f2 48 cd c9 c9 07 00 once 00 00 ff ff is removed. */
    TAP_EQ_INT(ws_deflate_message(d, "Hello", 5, &out), 0);
    TAP_EQ_MEM(out.data, out.len, "\xf2\x48\xcd\xc9\xc9\x07\x00");
    /* §7.2.3.2: the second "Hello" refers back to the first. */
    out.len = 0;
    TAP_EQ_INT(ws_deflate_message(d, "Hello", 5, &out), 0);
    TAP_EQ_MEM(out.data, out.len, "\xf2\x00\x11\x00\x00");
    ws_deflater_free(d);

    /* Without context takeover every message stands alone. */
    d = ws_deflater_new(15, 1, -1);
    for (int i = 0; i < 3; i++) {
        out.len = 0;
        TAP_EQ_INT(ws_deflate_message(d, "Hello", 5, &out), 0);
        TAP_EQ_MEM(out.data, out.len, "\xf2\x48\xcd\xc9\xc9\x07\x00");
    }
    /* An empty message is the single byte 00 (§7.2.3.6), alone or after another. */
    out.len = 0;
    TAP_EQ_INT(ws_deflate_message(d, "", 0, &out), 0);
    TAP_EQ_MEM(out.data, out.len, "\x00");
    ws_deflater_free(d);
    d = ws_deflater_new(15, 0, -1);
    for (int i = 0; i < 3; i++) {
        out.len = 0;
        TAP_EQ_INT(ws_deflate_message(d, i == 1 ? "Hello" : "", i == 1 ? 5 : 0, &out), 0);
        if (i != 1)
            TAP_EQ_MEM(out.data, out.len, "\x00");
    }
    ws_deflater_free(d);
    db_buf_free(&out);

    ws_inflater_t *inf = ws_inflater_new(15, 0);
    TAP_OK(inf != NULL);
    TAP_OK(inflates_to(inf, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7, "Hello"));
    TAP_OK(inflates_to(inf, "\xf2\x00\x11\x00\x00", 5, "Hello")); /* §7.2.3.2 */
    TAP_OK(inflates_to(inf,
                       "\x00\x05\x00\xfa\xff"
                       "Hello\x00",
                       11, "Hello"));                                         /* §7.2.3.3 */
    TAP_OK(inflates_to(inf, "\xf3\x48\xcd\xc9\xc9\x07\x00\x00", 8, "Hello")); /* §7.2.3.4 */
    TAP_OK(inflates_to(inf, "\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00", 13,
                       "Hello"));            /* §7.2.3.5: two blocks */
    TAP_OK(inflates_to(inf, "\x00", 1, "")); /* §7.2.3.6 */
    TAP_OK(inflates_to(inf, "", 0, ""));
    TAP_OK(inflates_to(inf, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7, "Hello"));
    ws_inflater_free(inf);

    /* §7.2.3.1 split at every point, and §7.2.3.2's pair, with context takeover. */
    const uint8_t m1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    const uint8_t m2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    int ok = 1;
    for (size_t c1 = 0; c1 <= sizeof(m1); c1++) {
        for (size_t c2 = 0; c2 <= sizeof(m2); c2++) {
            inf = ws_inflater_new(15, 0);
            db_buf_t a, b;
            ok &= inflate_msg(inf, m1, sizeof(m1), c1, &a, 0) == 0;
            ok &= inflate_msg(inf, m2, sizeof(m2), c2, &b, 0) == 0;
            ok &= a.len == 5 && memcmp(a.data, "Hello", 5) == 0;
            ok &= b.len == 5 && memcmp(b.data, "Hello", 5) == 0;
            db_buf_free(&a);
            db_buf_free(&b);
            ws_inflater_free(inf);
        }
    }
    TAP_OK(ok);
}

static void fill(uint8_t *p, size_t n, int kind)
{
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        /* kind 0: text-like, compressible; kind 1: noise, incompressible. */
        p[i] = kind == 0 ? (uint8_t)("the quick brown fox "[(x >> 16) % 20]) : (uint8_t)(x >> 16);
    }
}

/* Messages through a deflater and an inflater with the given takeover settings (a
 * decompressor may drop its window only when the compressor does), the inflater's window
 * being the deflater's (as agreed through max_window_bits) or 15. */
static int round_trips(int server_nct, int client_nct, int window, int inflate_window)
{
    static const size_t sizes[] = {0, 1, 5, 100, 1000, 40000, 200000};
    ws_deflater_t *d = ws_deflater_new(window, server_nct, 6);
    ws_inflater_t *inf = ws_inflater_new(inflate_window, client_nct);
    if (d == NULL || inf == NULL)
        return 0;
    int ok = 1;
    for (int kind = 0; kind < 2; kind++) {
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            size_t n = sizes[s];
            uint8_t *msg = malloc(n + 1);
            if (msg == NULL)
                abort();
            fill(msg, n, kind);
            /* Twice: the second message may refer to the first when the window is kept. */
            for (int rep = 0; rep < 2; rep++) {
                db_buf_t z, back;
                db_buf_init(&z);
                ok &= ws_deflate_message(d, msg, n, &z) == 0;
                size_t cut = z.len / 3;
                ok &= inflate_msg(inf, (uint8_t *)z.data, z.len, cut, &back, 0) == 0;
                if (back.len != n || (n && memcmp(back.data, msg, n) != 0)) {
                    printf("#   %zu bytes (kind %d) came back as %zu\n", n, kind, back.len);
                    ok = 0;
                }
                if (kind == 0 && n >= 1000 && z.len >= n * 3 / 4) {
                    printf("#   %zu bytes compressed to %zu\n", n, z.len);
                    ok = 0;
                }
                db_buf_free(&z);
                db_buf_free(&back);
            }
            free(msg);
        }
    }
    ws_deflater_free(d);
    ws_inflater_free(inf);
    return ok;
}

static void test_round_trips(void)
{
    TAP_OK(round_trips(0, 0, 15, 15));
    TAP_OK(round_trips(1, 0, 15, 15));
    TAP_OK(round_trips(1, 1, 15, 15));
    TAP_OK(round_trips(0, 0, 9, 15));
    TAP_OK(round_trips(1, 1, 10, 15));
    TAP_OK(round_trips(1, 0, 12, 15));
    /* The window agreed (the server asks 12 of both sides): inflated with that window. */
    for (int w = 9; w <= 15; w++)
        TAP_OK(round_trips(0, 0, w, w));
    TAP_OK(round_trips(1, 1, 12, 12));

    /* A small message inflated in two pieces at every split point. */
    ws_deflater_t *d = ws_deflater_new(15, 1, 9);
    uint8_t msg[300];
    fill(msg, sizeof(msg), 0);
    db_buf_t z;
    db_buf_init(&z);
    TAP_EQ_INT(ws_deflate_message(d, msg, sizeof(msg), &z), 0);
    int ok = 1;
    ws_inflater_t *inf = ws_inflater_new(15, 1);
    for (size_t cut = 0; cut <= z.len; cut++) {
        db_buf_t back;
        ok &= inflate_msg(inf, (uint8_t *)z.data, z.len, cut, &back, 0) == 0;
        ok &= back.len == sizeof(msg) && memcmp(back.data, msg, sizeof(msg)) == 0;
        db_buf_free(&back);
    }
    TAP_OK(ok);
    ws_inflater_free(inf);
    ws_deflater_free(d);
    db_buf_free(&z);

    TAP_OK(ws_deflater_new(8, 0, 6) == NULL); /* zlib's raw deflate has no 8-bit window */
    TAP_OK(ws_deflater_new(16, 0, 6) == NULL);
    TAP_OK(ws_deflater_new(15, 0, 10) == NULL);
}

/* Context takeover as the server keeps it (RFC 7692 §7.1.1): the windows of both sides
 * stay across messages, a repeated message costs a few bytes, an inflater limited to the
 * agreed client_max_window_bits refuses data reaching further back, and the bound on
 * inflated size holds after any number of messages. */
static void test_takeover_windows(void)
{
    ws_deflater_t *d = ws_deflater_new(12, 0, -1);
    ws_inflater_t *inf = ws_inflater_new(12, 0);
    TAP_OK(d != NULL && inf != NULL);
    uint8_t msg[1000];
    fill(msg, sizeof(msg), 0);
    int ok = 1;
    size_t first = 0, later = 0;
    for (int i = 0; i < 200; i++) {
        db_buf_t z, back;
        db_buf_init(&z);
        msg[0] = (uint8_t)('a' + i % 26); /* not quite the same message each time */
        ok &= ws_deflate_message(d, msg, sizeof(msg), &z) == 0;
        if (i == 0)
            first = z.len;
        else if (z.len > later)
            later = z.len;
        ok &= inflate_msg(inf, (uint8_t *)z.data, z.len, z.len / 2, &back, sizeof(msg)) == 0;
        ok &= back.len == sizeof(msg) && memcmp(back.data, msg, sizeof(msg)) == 0;
        db_buf_free(&z);
        db_buf_free(&back);
    }
    TAP_OK(ok);
    TAP_OK(first > 300);
    TAP_OK(later < 20); /* the previous message, in the window, says it all */
    /* A bomb after 200 messages: still stopped at the bound, memory near it. */
    size_t n = 4u << 20;
    uint8_t *zeros = calloc(1, n);
    if (zeros == NULL)
        abort();
    db_buf_t z, out;
    db_buf_init(&z);
    TAP_EQ_INT(ws_deflate_message(d, zeros, n, &z), 0);
    free(zeros);
    TAP_EQ_INT(inflate_msg(inf, (uint8_t *)z.data, z.len, (size_t)-1, &out, 1 << 20), WS_E_TOO_BIG);
    TAP_OK(out.len <= 1 << 20 && out.cap <= (2 << 20));
    db_buf_free(&out);
    db_buf_free(&z);
    ws_inflater_free(inf);
    ws_deflater_free(d);

    /* Noise, then its start again: a 15-bit compressor refers 8 KiB back, which a 12-bit
     * (4 KiB) inflater cannot follow: 1007, where a 15-bit one reads it. */
    uint8_t noise[8192];
    fill(noise, sizeof(noise), 1);
    for (int w = 12; w <= 15; w += 3) {
        d = ws_deflater_new(15, 0, -1);
        inf = ws_inflater_new(w, 0);
        db_buf_t a, b, back;
        db_buf_init(&a);
        db_buf_init(&b);
        TAP_EQ_INT(ws_deflate_message(d, noise, sizeof(noise), &a), 0);
        TAP_EQ_INT(ws_deflate_message(d, noise, 1024, &b), 0);
        TAP_EQ_INT(inflate_msg(inf, (uint8_t *)a.data, a.len, (size_t)-1, &back, 0), 0);
        db_buf_free(&back);
        TAP_OK(b.len < 100);
        TAP_EQ_INT(inflate_msg(inf, (uint8_t *)b.data, b.len, (size_t)-1, &back, 0),
                   w == 12 ? WS_E_INFLATE : 0);
        db_buf_free(&back);
        db_buf_free(&a);
        db_buf_free(&b);
        ws_inflater_free(inf);
        ws_deflater_free(d);
    }
    TAP_OK(ws_inflater_new(7, 0) == NULL);
    TAP_OK(ws_inflater_new(16, 0) == NULL);
}

static void test_bounds(void)
{
    /* 64 MiB of zeros compress to about 64 KiB; inflating under a 1 MiB bound stops at it. */
    size_t n = 64u << 20;
    uint8_t *zeros = calloc(1, n);
    if (zeros == NULL)
        abort();
    ws_deflater_t *d = ws_deflater_new(15, 1, 9);
    db_buf_t z;
    db_buf_init(&z);
    TAP_EQ_INT(ws_deflate_message(d, zeros, n, &z), 0);
    free(zeros);
    TAP_OK(z.len < 100000);
    ws_inflater_t *inf = ws_inflater_new(15, 1);
    db_buf_t out;
    TAP_EQ_INT(inflate_msg(inf, (uint8_t *)z.data, z.len, 1000, &out, 1 << 20), WS_E_TOO_BIG);
    TAP_OK(out.len <= 1 << 20);
    TAP_OK(out.cap <= (2 << 20)); /* memory stayed near the bound */
    TAP_EQ_INT(ws_close_code(WS_E_TOO_BIG), 1009);
    db_buf_free(&out);
    ws_inflater_free(inf);

    /* Exactly at the bound is allowed; one byte less is not. */
    uint8_t msg[5000];
    fill(msg, sizeof(msg), 0);
    z.len = 0;
    TAP_EQ_INT(ws_deflate_message(d, msg, sizeof(msg), &z), 0);
    inf = ws_inflater_new(15, 1);
    TAP_EQ_INT(inflate_msg(inf, (uint8_t *)z.data, z.len, (size_t)-1, &out, sizeof(msg)), 0);
    TAP_EQ_INT(out.len, sizeof(msg));
    db_buf_free(&out);
    ws_inflater_free(inf);
    inf = ws_inflater_new(15, 1);
    TAP_EQ_INT(inflate_msg(inf, (uint8_t *)z.data, z.len, (size_t)-1, &out, sizeof(msg) - 1),
               WS_E_TOO_BIG);
    db_buf_free(&out);
    ws_inflater_free(inf);

    /* Data that is not deflate: a reserved block type (BTYPE 11). */
    inf = ws_inflater_new(15, 0);
    TAP_EQ_INT(inflate_msg(inf, (const uint8_t *)"\xff\xff\xff", 3, (size_t)-1, &out, 0),
               WS_E_INFLATE);
    TAP_EQ_INT(ws_close_code(WS_E_INFLATE), 1007);
    db_buf_free(&out);
    ws_inflater_free(inf);
    ws_deflater_free(d);
    db_buf_free(&z);
}

/* A client's stream of masked frames, parsed and assembled by ws_message_t. */
static int assemble(const uint8_t *s, size_t n, size_t cut, ws_message_t *m, int *messages,
                    char *log, size_t logcap)
{
    ws_parser_t p;
    ws_parser_init(&p, 1, 1, 0);
    size_t loglen = 0;
    *messages = 0;
    log[0] = '\0';
    size_t bounds[2] = {cut < n ? cut : n, n};
    size_t start = 0;
    for (int k = 0; k < 2; k++) {
        size_t len = bounds[k] - start;
        uint8_t *piece = malloc(len + 1);
        if (piece == NULL)
            abort();
        memcpy(piece, s + start, len);
        uint8_t *q = piece;
        start = bounds[k];
        for (;;) {
            ws_event_t ev;
            size_t used;
            int rc = ws_parser_next(&p, q, len, &used, &ev);
            q += used;
            len -= used;
            if (rc == 0)
                break;
            if (rc > 0)
                rc = ws_message_add(m, &ev);
            if (rc < 0) {
                free(piece);
                return rc;
            }
            if (rc == 1) {
                (*messages)++;
                int w = snprintf(log + loglen, logcap - loglen, "%d:%.*s;", m->opcode,
                                 (int)m->data.len, m->data.data ? m->data.data : "");
                loglen += w > 0 ? (size_t)w : 0;
                if (loglen >= logcap)
                    abort();
            }
        }
        free(piece);
    }
    return 0;
}

static void frame(db_buf_t *b, int b0, const void *payload, size_t n)
{
    static const uint8_t key[4] = {1, 2, 3, 4};
    uint8_t hdr[14];
    size_t h = ws_frame_header(hdr, b0 & 0x0F, b0 & 0x80, b0 & 0x40, n, key);
    db_buf_append(b, hdr, h);
    size_t at = b->len;
    db_buf_append(b, payload, n);
    ws_mask((uint8_t *)b->data + at, n, key, 0);
}

static void test_messages(void)
{
    /* A compressed text message in three fragments, a ping between, a plain binary message,
     * then a compressed message referring to the first (context takeover). */
    ws_deflater_t *d = ws_deflater_new(15, 0, -1);
    db_buf_t z, s;
    db_buf_init(&z);
    db_buf_init(&s);
    const char *text = "caf\xc3\xa9 caf\xc3\xa9 caf\xc3\xa9 Hello Hello Hello";
    ws_deflate_message(d, text, strlen(text), &z);
    size_t a = z.len / 3, b = 2 * z.len / 3;
    frame(&s, 0x41, z.data, a);
    frame(&s, 0x89, "hi", 2);
    frame(&s, 0x00, z.data + a, b - a);
    frame(&s, 0x80, z.data + b, z.len - b);
    frame(&s, 0x82, "\xff\x00", 2);
    z.len = 0;
    ws_deflate_message(d, "Hello", 5, &z);
    frame(&s, 0xc1, z.data, z.len);
    char want[256];
    snprintf(want, sizeof(want), "1:%s;2:\xff;1:Hello;", text); /* %.*s stops at the NUL */
    int ok = 1;
    for (size_t cut = 0; cut <= s.len; cut++) {
        ws_inflater_t *inf = ws_inflater_new(15, 0);
        ws_message_t m;
        ws_message_init(&m, 1000, inf);
        char log[512];
        int count;
        int rc = assemble((uint8_t *)s.data, s.len, cut, &m, &count, log, sizeof(log));
        ok &= rc == 0 && count == 3 && strcmp(log, want) == 0;
        ws_message_free(&m);
        ws_inflater_free(inf);
    }
    TAP_OK(ok);

    /* Compressed text that inflates to invalid UTF-8: 1007 after inflation. */
    s.len = z.len = 0;
    ws_deflate_message(d, "ok \xed\xa0\x80", 6, &z);
    frame(&s, 0xc1, z.data, z.len);
    ws_inflater_t *inf = ws_inflater_new(15, 0);
    ws_message_t m;
    ws_message_init(&m, 0, inf);
    char log[256];
    int count;
    TAP_EQ_INT(assemble((uint8_t *)s.data, s.len, 2, &m, &count, log, sizeof(log)), WS_E_UTF8);
    ws_message_free(&m);
    ws_inflater_free(inf);

    /* A compressed message with no inflater, and size bounds on both kinds. */
    ws_message_init(&m, 4, NULL);
    TAP_EQ_INT(assemble((uint8_t *)s.data, s.len, 100, &m, &count, log, sizeof(log)), WS_E_RSV);
    s.len = 0;
    frame(&s, 0x02, "abc", 3);
    frame(&s, 0x80, "de", 2);
    ws_message_reset(&m);
    TAP_EQ_INT(assemble((uint8_t *)s.data, s.len, 100, &m, &count, log, sizeof(log)), WS_E_TOO_BIG);
    ws_message_free(&m);

    static uint8_t big[100000];
    s.len = z.len = 0;
    ws_deflate_message(d, big, sizeof(big), &z);
    frame(&s, 0xc2, z.data, z.len);
    inf = ws_inflater_new(15, 0);
    ws_message_init(&m, 50000, inf);
    TAP_EQ_INT(assemble((uint8_t *)s.data, s.len, 7, &m, &count, log, sizeof(log)), WS_E_TOO_BIG);
    ws_message_free(&m);
    ws_inflater_free(inf);

    ws_deflater_free(d);
    db_buf_free(&z);
    db_buf_free(&s);
}

/* Context takeover across a park: the next message refers back into the previous ones,
 * and an inflater resumed from the kept window bytes reads it as the original would. */
static void test_park_resume(void)
{
    uint8_t noise[6000];
    fill(noise, sizeof(noise), 1);
    for (int bits = 12; bits <= 15; bits += 3) {
        ws_deflater_t *d = ws_deflater_new(bits, 0, -1);
        ws_inflater_t *inf = ws_inflater_new(15, 0);
        db_buf_t a, b, back;
        db_buf_init(&a);
        db_buf_init(&b);
        /* Nothing inflated yet: nothing to keep. */
        uint8_t *dict = (uint8_t *)"x";
        size_t n = 1;
        TAP_EQ_INT(ws_inflater_park(inf, (size_t)1 << bits, &dict, &n), 0);
        TAP_OK(dict == NULL && n == 0);
        inf = ws_inflater_resume(15, 0, dict, n);
        TAP_OK(inf != NULL);
        TAP_EQ_INT(ws_deflate_message(d, noise, sizeof(noise), &a), 0);
        /* Part of the noise again, from within the window (zlib reaches back at most the
         * window less 262 bytes): what was kept has to hold it. */
        size_t window = (size_t)1 << bits, kept = window < sizeof(noise) ? window : sizeof(noise);
        size_t from = sizeof(noise) - kept + 400;
        TAP_EQ_INT(ws_deflate_message(d, noise + from, 1000, &b), 0);
        TAP_OK(b.len < 100);
        /* Mid-message an inflater is not parked. */
        db_buf_init(&back);
        TAP_EQ_INT(ws_inflate(inf, (uint8_t *)a.data, a.len / 2, 0, &back, 0), 0);
        TAP_EQ_INT(ws_inflater_park(inf, (size_t)1 << bits, &dict, &n), WS_E_ARG);
        TAP_EQ_INT(ws_inflate(inf, (uint8_t *)a.data + a.len / 2, a.len - a.len / 2, 1, &back, 0),
                   0);
        TAP_OK(back.len == sizeof(noise) && memcmp(back.data, noise, sizeof(noise)) == 0);
        db_buf_free(&back);
        TAP_EQ_INT(ws_inflater_park(inf, (size_t)1 << bits, &dict, &n), 0);
        TAP_OK(dict != NULL && n == kept);
        TAP_OK(memcmp(dict, noise + sizeof(noise) - n, n) == 0);
        inf = ws_inflater_resume(15, 0, dict, n);
        free(dict);
        TAP_OK(inf != NULL);
        TAP_EQ_INT(inflate_msg(inf, (uint8_t *)b.data, b.len, (size_t)-1, &back, 0), 0);
        TAP_OK(back.len == 1000 && memcmp(back.data, noise + from, 1000) == 0);
        db_buf_free(&back);
        db_buf_free(&a);
        db_buf_free(&b);
        ws_inflater_free(inf);
        ws_deflater_free(d);
    }
}

int main(void)
{
    test_rfc_examples();
    test_round_trips();
    test_takeover_windows();
    test_park_resume();
    test_bounds();
    test_messages();
    return tap_done();
}
