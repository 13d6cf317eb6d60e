/*
 * TAP tests for the incremental UTF-8 validator (csrc/ws/utf8.c): a table of valid and
 * invalid sequences (RFC 3629 §4 and the cases Autobahn's 6.x tests send: overlongs,
 * surrogates, code points above U+10FFFF, truncated and stray continuation bytes), each
 * fed whole, split at every byte, one byte at a time and behind ASCII runs of every length
 * up to 40 (so the 8- and 16-byte ASCII paths meet the sequence at every alignment); then
 * every sequence of up to three bytes, and four-byte sequences, against a decoder written
 * from the definition.
 */
#include "tap.h"
#include "ws/ws.h"

#include <stdlib.h>

/* The validator fed s[0..n) cut at the given points: 1 valid, 0 invalid. */
static int feed_cut(const uint8_t *s, size_t n, const size_t *cuts, size_t ncuts)
{
    ws_utf8_t v;
    ws_utf8_init(&v);
    size_t start = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t stop = i < ncuts ? cuts[i] : n;
        uint8_t *piece = malloc(stop - start + 1);
        if (piece == NULL)
            abort();
        memcpy(piece, s + start, stop - start);
        int rc = ws_utf8_feed(&v, piece, stop - start);
        free(piece);
        if (rc < 0)
            return 0;
        start = stop;
    }
    return ws_utf8_finish(&v) == 0;
}

/* Every way of cutting s gives `want`; returns the number of ways that did not. */
static int check(const uint8_t *s, size_t n, int want)
{
    int bad = feed_cut(s, n, NULL, 0) != want;
    bad += (ws_utf8_valid(s, n) == 0) != want;
    for (size_t i = 0; i <= n; i++)
        bad += feed_cut(s, n, &i, 1) != want;
    for (size_t i = 0; i <= n; i++)
        for (size_t j = i; j <= n; j++) {
            size_t c[2] = {i, j};
            bad += feed_cut(s, n, c, 2) != want;
        }
    size_t all[64];
    for (size_t i = 0; i < n && i < 64; i++)
        all[i] = i;
    if (n <= 64)
        bad += feed_cut(s, n, all, n) != want;
    return bad;
}

static int check_with_ascii(const char *seq, size_t n, int want)
{
    int bad = 0;
    uint8_t buf[128];
    for (size_t pre = 0; pre <= 40; pre += 1) {
        memset(buf, 'a', pre);
        memcpy(buf + pre, seq, n);
        /* ASCII after it too, so a sequence cut short is followed by more input. */
        memset(buf + pre + n, 'z', 17);
        bad += check(buf, pre + n, want);
        bad += check(buf, pre + n + 17, want);
    }
    return bad;
}

static const struct {
    const char *s;
    int valid;
} table[] = {
    {"", 1},
    {"hello", 1},
    {"\x7f", 1},
    {"\xc2\x80", 1},                                     /* U+0080, the smallest two-byte form */
    {"\xdf\xbf", 1},                                     /* U+07FF */
    {"\xe0\xa0\x80", 1},                                 /* U+0800 */
    {"\xed\x9f\xbf", 1},                                 /* U+D7FF, just below the surrogates */
    {"\xee\x80\x80", 1},                                 /* U+E000, just above */
    {"\xef\xbf\xbf", 1},                                 /* U+FFFF */
    {"\xf0\x90\x80\x80", 1},                             /* U+10000 */
    {"\xf4\x8f\xbf\xbf", 1},                             /* U+10FFFF, the largest */
    {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1}, /* "κόσμε" (Autobahn 6.2) */
    {"\xef\xbb\xbf", 1},                                 /* a BOM is a character */
    {"\x80", 0},                                         /* a lone continuation byte */
    {"\xbf", 0},
    {"\xc0\x80", 0}, /* overlong NUL */
    {"\xc1\xbf", 0}, /* overlong U+007F */
    {"\xc2", 0},     /* truncated */
    {"\xc2\x41", 0},
    {"\xc2\xc0", 0},
    {"\xe0\x80\x80", 0}, /* overlong three-byte forms */
    {"\xe0\x9f\xbf", 0},
    {"\xe0\xa0", 0},
    {"\xed\xa0\x80", 0},             /* U+D800 */
    {"\xed\xbf\xbf", 0},             /* U+DFFF */
    {"\xed\xa0\x80\xed\xb0\x80", 0}, /* a surrogate pair in CESU-8 */
    {"\xf0\x80\x80\x80", 0},         /* overlong four-byte forms */
    {"\xf0\x8f\xbf\xbf", 0},
    {"\xf4\x90\x80\x80", 0}, /* U+110000 */
    {"\xf5\x80\x80\x80", 0},
    {"\xf7\xbf\xbf\xbf", 0},
    {"\xf8\x88\x80\x80\x80", 0}, /* five- and six-byte forms (RFC 2279, gone) */
    {"\xfc\x84\x80\x80\x80\x80", 0},
    {"\xfe", 0},
    {"\xff", 0},
    {"\xf0\x90\x80", 0}, /* truncated four-byte sequence */
    {"\xf0\x90\x80\x41", 0},
    {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", 0},
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        size_t n = strlen(table[i].s);
        int bad = check_with_ascii(table[i].s, n, table[i].valid);
        tap_check(bad == 0, table[i].s, __FILE__, __LINE__);
        if (bad)
            printf("#   entry %zu: %d ways wrong\n", i, bad);
    }
}

/* The definition (RFC 3629 §3-4): the lead byte's bits give the length, continuation
 * bytes are 10xxxxxx, the code point must need that length, and must not be a surrogate
 * or above U+10FFFF. Returns the length of the valid sequence at s, 0 if invalid. */
static size_t reference(const uint8_t *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0)
        len = 2, cp = s[0] & 0x1F;
    else if ((s[0] & 0xF0) == 0xE0)
        len = 3, cp = s[0] & 0x0F;
    else if ((s[0] & 0xF8) == 0xF0)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return len;
}

static int reference_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t l = reference(s + i, n - i);
        if (l == 0)
            return 0;
        i += l;
    }
    return 1;
}

static void test_exhaustive(void)
{
    long wrong = 0;
    uint8_t s[4];
    for (uint32_t v = 0; v < (1u << 24); v++) {
        s[0] = (uint8_t)(v >> 16);
        s[1] = (uint8_t)(v >> 8);
        s[2] = (uint8_t)v;
        for (size_t n = 1; n <= 3; n++) {
            if (n < 3 && (v & ((1u << (8 * (3 - n))) - 1)) != 0)
                continue; /* shorter sequences once each */
            wrong += (ws_utf8_valid(s, n) == 0) != reference_valid(s, n);
        }
    }
    TAP_EQ_INT(wrong, 0);
    static const uint8_t last[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0xbf, 0xc0, 0xff};
    wrong = 0;
    for (uint32_t v = 0xF00000; v < 0xF80000; v++) {
        s[0] = (uint8_t)(v >> 16);
        s[1] = (uint8_t)(v >> 8);
        s[2] = (uint8_t)v;
        for (size_t k = 0; k < sizeof(last); k++) {
            s[3] = last[k];
            wrong += (ws_utf8_valid(s, 4) == 0) != reference_valid(s, 4);
        }
    }
    TAP_EQ_INT(wrong, 0);
}

/* A zero-initialised validator works as ws_utf8_init's. */
static void test_zero_init(void)
{
    ws_utf8_t v;
    memset(&v, 0, sizeof(v));
    TAP_EQ_INT(ws_utf8_feed(&v, (const uint8_t *)"\xe0\xa0", 2), 0);
    TAP_EQ_INT(ws_utf8_finish(&v), WS_E_UTF8);
    TAP_EQ_INT(ws_utf8_feed(&v, (const uint8_t *)"\x80", 1), 0);
    TAP_EQ_INT(ws_utf8_finish(&v), 0);
    memset(&v, 0, sizeof(v));
    TAP_EQ_INT(ws_utf8_feed(&v, (const uint8_t *)"\xe0\x80", 2), WS_E_UTF8);
}

int main(void)
{
    test_table();
    test_exhaustive();
    test_zero_init();
    return tap_done();
}
