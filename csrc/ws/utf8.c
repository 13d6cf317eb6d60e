/*
 * Incremental UTF-8 validation (RFC 3629 §4) for text messages and close reasons (RFC 6455
 * §8.1, §5.5.1). The state is the number of continuation bytes still expected and the
 * range allowed for the next one: the first continuation byte is narrowed after E0
 * (overlong), ED (surrogates), F0 (overlong) and F4 (over U+10FFFF), every other is
 * 80..BF. So a sequence split across chunks or fragments is checked the same as a whole
 * one, and the first bad byte is found where it is (a peer is failed at once, §8.1). While
 * no sequence is open, ASCII is skipped 16 bytes at a time, since most text is ASCII.
 */
#include "ws/ws.h"

#include <string.h>

void ws_utf8_init(ws_utf8_t *v)
{
    v->need = 0;
    v->lo = 0x80;
    v->hi = 0xBF;
}

/* Whether the 8 bytes at p are all ASCII: no byte has its high bit. */
static int ascii8(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return (w & 0x8080808080808080ull) == 0;
}

int ws_utf8_feed(ws_utf8_t *v, const uint8_t *p, size_t n)
{
    size_t i = 0;
    uint8_t need = v->need, lo = v->lo, hi = v->hi;
    if (lo == 0)
        lo = 0x80, hi = 0xBF; /* a zero-initialised validator */
    while (i < n) {
        if (need == 0) {
            while (i + 16 <= n && ascii8(p + i) && ascii8(p + i + 8))
                i += 16;
            while (i + 8 <= n && ascii8(p + i))
                i += 8;
            if (i == n)
                break;
            uint8_t c = p[i++];
            if (c < 0x80)
                continue;
            if (c < 0xC2)
                goto bad; /* a continuation byte, or C0/C1 (always overlong) */
            if (c < 0xE0) {
                need = 1;
            } else if (c < 0xF0) {
                need = 2;
                if (c == 0xE0)
                    lo = 0xA0; /* below: overlong three-byte forms */
                else if (c == 0xED)
                    hi = 0x9F; /* above: U+D800..DFFF, surrogates */
            } else if (c < 0xF5) {
                need = 3;
                if (c == 0xF0)
                    lo = 0x90; /* below: overlong four-byte forms */
                else if (c == 0xF4)
                    hi = 0x8F; /* above: beyond U+10FFFF */
            } else {
                goto bad;
            }
            continue;
        }
        uint8_t c = p[i++];
        if (c < lo || c > hi)
            goto bad;
        lo = 0x80;
        hi = 0xBF;
        need--;
    }
    v->need = need;
    v->lo = lo;
    v->hi = hi;
    return 0;
bad:
    v->need = 0;
    v->lo = 0x80;
    v->hi = 0xBF;
    return WS_E_UTF8;
}

int ws_utf8_finish(const ws_utf8_t *v)
{
    return v->need ? WS_E_UTF8 : 0;
}

int ws_utf8_valid(const uint8_t *p, size_t n)
{
    ws_utf8_t v;
    ws_utf8_init(&v);
    int rc = ws_utf8_feed(&v, p, n);
    return rc < 0 ? rc : ws_utf8_finish(&v);
}
