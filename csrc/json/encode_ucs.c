/*
 * The text of a non-ASCII str as escaped JSON string content in UTF-8, written straight
 * from the str's own storage (owned by the JSON codec; called by encode.c). CPython keeps
 * a str of 1, 2 or 4 bytes per character; asking it for UTF-8 (PyUnicode_AsUTF8AndSize)
 * encodes the whole string into a new buffer that the str then keeps for the rest of its
 * life, after which the encoder copied it once more while escaping. Strings that arrive
 * without that cached form (a response built from fresh data) are transcoded here in one
 * pass instead: runs of ASCII 16 characters (1-byte kind) or 8 characters (2-byte kind) at
 * a time with SSE2, other characters one by one. The caller reserves the room (6 bytes per
 * character and 32 spare: no character needs more than a 6-byte \u00XX escape, and the
 * vector stores may run up to 16 bytes past what they keep). Nothing here allocates or
 * takes a reference.
 */
#include "json/json_internal.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static const char hex_digits[16] = "0123456789abcdef";

/* RFC 8259 section 7: '"', '\\' and U+0000..U+001F, short forms where they exist (as the
 * stdlib and encode.c's escape table write them). */
static inline int needs_escape(Py_UCS4 c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

static inline char *put_escape(char *d, Py_UCS4 c)
{
    char k;
    switch (c) {
    case '"':
        k = '"';
        break;
    case '\\':
        k = '\\';
        break;
    case '\b':
        k = 'b';
        break;
    case '\t':
        k = 't';
        break;
    case '\n':
        k = 'n';
        break;
    case '\f':
        k = 'f';
        break;
    case '\r':
        k = 'r';
        break;
    default:
        d[0] = '\\';
        d[1] = 'u';
        d[2] = '0';
        d[3] = '0';
        d[4] = hex_digits[c >> 4];
        d[5] = hex_digits[c & 15];
        return d + 6;
    }
    d[0] = '\\';
    d[1] = k;
    return d + 2;
}

/* The UTF-8 form of c >= 0x80 (not a surrogate: the callers check). */
static inline char *put_utf8(char *d, Py_UCS4 c)
{
    if (c < 0x800) {
        d[0] = (char)(0xC0 | (c >> 6));
        d[1] = (char)(0x80 | (c & 0x3F));
        return d + 2;
    }
    if (c < 0x10000) {
        d[0] = (char)(0xE0 | (c >> 12));
        d[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        d[2] = (char)(0x80 | (c & 0x3F));
        return d + 3;
    }
    d[0] = (char)(0xF0 | (c >> 18));
    d[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    d[3] = (char)(0x80 | (c & 0x3F));
    return d + 4;
}

static char *ucs1(char *d, const Py_UCS1 *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n) {
#if defined(__SSE2__)
        if (n - i >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v);
            __m128i q = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
            __m128i b = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
            /* The high bit of each byte is its own mask bit: non-ASCII stops the run. */
            unsigned m =
                (unsigned)_mm_movemask_epi8(_mm_or_si128(v, _mm_or_si128(ctl, _mm_or_si128(q, b))));
            _mm_storeu_si128((__m128i *)d, v);
            if (m == 0) {
                d += 16;
                i += 16;
                continue;
            }
            unsigned k = (unsigned)__builtin_ctz(m);
            d += k;
            i += k;
        }
#endif
        Py_UCS4 c = s[i++];
        if (c >= 0x80)
            d = put_utf8(d, c);
        else if (needs_escape(c))
            d = put_escape(d, c);
        else
            *d++ = (char)c;
    }
    return d;
}

static char *ucs2(char *d, const Py_UCS2 *s, Py_ssize_t n, Py_ssize_t *bad)
{
    Py_ssize_t i = 0;
    while (i < n) {
#if defined(__SSE2__)
        if (n - i >= 8) {
            const __m128i zero = _mm_setzero_si128();
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            /* Lanes above 0x7F, at or below 0x1F, '"' and '\\' end the run. */
            __m128i big = _mm_subs_epu16(v, _mm_set1_epi16(0x7F));
            __m128i ctl = _mm_cmpeq_epi16(_mm_subs_epu16(v, _mm_set1_epi16(0x1F)), zero);
            __m128i q = _mm_cmpeq_epi16(v, _mm_set1_epi16('"'));
            __m128i b = _mm_cmpeq_epi16(v, _mm_set1_epi16('\\'));
            __m128i stop =
                _mm_or_si128(_mm_xor_si128(_mm_cmpeq_epi16(big, zero), _mm_set1_epi16(-1)),
                             _mm_or_si128(ctl, _mm_or_si128(q, b)));
            unsigned m = (unsigned)_mm_movemask_epi8(stop);
            /* Every lane kept is ASCII, so the saturating pack is exact for them. */
            _mm_storel_epi64((__m128i *)d, _mm_packus_epi16(v, v));
            if (m == 0) {
                d += 8;
                i += 8;
                continue;
            }
            unsigned k = (unsigned)__builtin_ctz(m) >> 1;
            d += k;
            i += k;
        }
#endif
        /* One character, then the rest of a run of non-ASCII ones (CJK text) without going
         * back to the vector test, which they would fail at once. */
        Py_UCS4 c = s[i];
        if (c < 0x80) {
            d = needs_escape(c) ? put_escape(d, c) : (*d = (char)c, d + 1);
            i++;
            continue;
        }
        do {
            if (JSON_UNLIKELY(Py_UNICODE_IS_SURROGATE(c))) {
                /* A 2-byte str holds no pairs (they make it 4-byte): this one is alone. */
                *bad = i;
                return NULL;
            }
            d = put_utf8(d, c);
            i++;
        } while (i < n && (c = s[i]) >= 0x80);
    }
    return d;
}

static char *ucs4(char *d, const Py_UCS4 *s, Py_ssize_t n, Py_ssize_t *bad)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = s[i];
        if (c < 0x80) {
            d = needs_escape(c) ? put_escape(d, c) : (*d = (char)c, d + 1);
        } else if (JSON_UNLIKELY(Py_UNICODE_IS_SURROGATE(c))) {
            *bad = i;
            return NULL;
        } else {
            d = put_utf8(d, c);
        }
    }
    return d;
}

Py_ssize_t json_ucs_to_utf8(char *out, int kind, const void *data, Py_ssize_t n, Py_ssize_t *bad)
{
    char *d;
    if (kind == PyUnicode_1BYTE_KIND)
        d = ucs1(out, data, n);
    else if (kind == PyUnicode_2BYTE_KIND)
        d = ucs2(out, data, n, bad);
    else
        d = ucs4(out, data, n, bad);
    return d == NULL ? -1 : (Py_ssize_t)(d - out);
}
