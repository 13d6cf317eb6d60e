/*
 * The JSON encoder's hot path (owned by the JSON codec): exact dict, list, tuple, str,
 * int, float, bool and None. json_encode appends to the caller's db_buf_t (the server's
 * response buffer; the encoder never owns it); json_encode_to_bytes (dumps) writes straight
 * into the bytes object it returns, growing it with _PyBytes_Resize. Everything else goes
 * to json_encode_other (encode_types.c). No Python code runs for the core types, so a
 * container can change under us only through a slow-path call (default, dataclass,
 * pydantic, Enum): every container holds a reference to itself while it is written, lists
 * re-read their size after each item, and the direct dict walk (CPython 3.11) stops if the
 * table was replaced.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <patchlevel.h>

/* CPython 3.11 only: iterate dicts over their entry table directly (write_dict) and read
 * small ints' digits (small_int); the internal header is the interpreter's own
 * description of those layouts. */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && !defined(Py_LIMITED_API)
#define Py_BUILD_CORE_MODULE 1
#define JSON_DICT_ENTRIES    1
#endif

#include "json/json_internal.h"

#if defined(JSON_DICT_ENTRIES)
#include <internal/pycore_dict.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define JSON_HAVE_AVX2_PATH 1
#endif

/* For every byte: 0 when it is copied as is (including every byte of a multi-byte UTF-8
 * sequence), otherwise the character after the backslash ('u' means \u00XX). RFC 8259
 * section 7 requires escaping '"', '\\' and the control characters U+0000..U+001F; we use
 * the short forms where they exist, as the stdlib does. */
static const char escape_table[256] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u', 'u',  'u', 'u',
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 0,   0,   '"', 0,    0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   '\\', 0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,    0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,
};

static const char hex_digits[16] = "0123456789abcdef";

static int no_memory(void)
{
    PyErr_NoMemory();
    return -1;
}

int json_enc_grow(json_encoder_t *e, size_t extra)
{
    db_buf_t *b = e->out;
    if (e->bytes == NULL)
        return db_buf_grow(b, extra) < 0 ? no_memory() : 0;
    /* Doubling, as db_buf_grow does; large blocks are usually extended in place. */
    if (extra > (size_t)PY_SSIZE_T_MAX / 2 - b->len)
        return no_memory();
    size_t cap = b->cap * 2;
    if (cap < b->len + extra)
        cap = b->len + extra;
    if (_PyBytes_Resize(&e->bytes, (Py_ssize_t)cap) < 0) {
        e->bytes = NULL; /* _PyBytes_Resize released it */
        b->data = NULL;
        b->cap = b->len = 0;
        return -1;
    }
    b->data = PyBytes_AS_STRING(e->bytes);
    b->cap = cap;
    return 0;
}

static inline int put(json_encoder_t *e, const char *s, size_t n)
{
    if (JSON_UNLIKELY(json_reserve(e, n) < 0))
        return -1;
    memcpy(e->out->data + e->out->len, s, n);
    e->out->len += n;
    return 0;
}

static inline int putc_(json_encoder_t *e, char c)
{
    if (JSON_UNLIKELY(json_reserve(e, 1) < 0))
        return -1;
    e->out->data[e->out->len++] = c;
    return 0;
}

static inline int reserve(json_encoder_t *e, size_t n)
{
    return json_reserve(e, n);
}

/* Writes the escape for a character that needs one; returns bytes written. */
static inline size_t write_escape(char *d, unsigned char c)
{
    char k = escape_table[c];
    d[0] = '\\';
    if (k != 'u') {
        d[1] = k;
        return 2;
    }
    d[1] = 'u';
    d[2] = '0';
    d[3] = '0';
    d[4] = hex_digits[c >> 4];
    d[5] = hex_digits[c & 15];
    return 6;
}

/* True when any of the 8 bytes in x may need escaping: below 0x20, '"' or '\\'. Bytes of
 * 0x80 and above never match (the "& ~x" terms), and a borrow can only follow a byte that
 * matched, so a zero answer is exact. */
static inline int swar_needs_escape(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t lt20 = (x - ones * 0x20) & ~x;
    uint64_t q = x ^ (ones * '"');
    uint64_t bs = x ^ (ones * '\\');
    uint64_t zq = (q - ones) & ~q;
    uint64_t zb = (bs - ones) & ~bs;
    return ((lt20 | zq | zb) & highs) != 0;
}

static inline uint32_t load32(const void *p)
{
    uint32_t x;
    memcpy(&x, p, 4);
    return x;
}

#if defined(__SSE2__)
/* Bit i set when byte i of the 16 at s needs escaping: below 0x20 (unsigned), '"' or '\\'.
 * SSE2 is part of x86-64, so no run-time dispatch is needed. */
static inline unsigned escape_mask16(const unsigned char *s)
{
    __m128i v = _mm_loadu_si128((const __m128i *)s);
    __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v);
    __m128i q = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
    __m128i b = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(ctl, _mm_or_si128(q, b)));
}
#endif

static inline uint64_t load64(const void *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}

/* The general path: copies byte by byte, escaping. d points after the opening quote;
 * returns the new end. */
static char *copy_escaping(char *d, const unsigned char *s, const unsigned char *end)
{
    while (s < end) {
        unsigned char c = *s++;
        if (escape_table[c])
            d += write_escape(d, c);
        else
            *d++ = (char)c;
    }
    return d;
}

#if defined(JSON_HAVE_AVX2_PATH)
/* 1 when the CPU has AVX2 (decided once, on first use; the GIL serialises the check). */
static int avx2_state = -1;

/* The long-string loop, 32 bytes at a time, compiled for AVX2 and only called when the CPU
 * has it. Advances *dp and *sp; stops with fewer than 32 bytes left. */
__attribute__((target("avx2"))) static void copy_long_avx2(char **dp, const unsigned char **sp,
                                                           const unsigned char *end)
{
    char *d = *dp;
    const unsigned char *s = *sp;
    const __m256i ctl_max = _mm256_set1_epi8(0x1F), quote = _mm256_set1_epi8('"'),
                  bslash = _mm256_set1_epi8('\\');
    while (end - s >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)s);
        _mm256_storeu_si256((__m256i *)d, v);
        __m256i special = _mm256_or_si256(
            _mm256_cmpeq_epi8(_mm256_min_epu8(v, ctl_max), v),
            _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, bslash)));
        unsigned m = (unsigned)_mm256_movemask_epi8(special);
        if (JSON_LIKELY(m == 0)) {
            s += 32;
            d += 32;
            continue;
        }
        unsigned i = (unsigned)__builtin_ctz(m);
        s += i;
        d += i;
        d += write_escape(d, *s++);
    }
    *dp = d;
    *sp = s;
}

static int have_avx2(void)
{
    if (JSON_UNLIKELY(avx2_state < 0)) {
        __builtin_cpu_init();
        avx2_state = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return avx2_state;
}
#endif

/* Writes the UTF-8 bytes s[0..n) as a quoted, escaped JSON string. Most strings are short
 * (keys, words), so up to 16 bytes are checked and copied with two overlapping loads and
 * stores and no loop; longer ones go 16 bytes at a time (SSE2, part of x86-64), jumping
 * straight to each byte that needs an escape, and finish with an overlapping last block.
 * Anything that needs escaping in a short string falls back to copy_escaping. A nonzero
 * trail byte (a member's ':' or ',') goes out with the string, in the same reservation. */
static inline __attribute__((always_inline)) int
write_utf8(json_encoder_t *e, const unsigned char *s, Py_ssize_t n, char trail)
{
    /* Worst case every byte becomes \u00XX; 32 spare bytes allow whole-block stores. */
    if (reserve(e, (size_t)n * 6 + 32) < 0)
        return -1;
    char *d0 = e->out->data + e->out->len;
    char *d = d0 + 1;
    const unsigned char *end = s + n;
    d0[0] = '"';
    if (n <= 16) {
        if (n >= 8) {
            uint64_t a = load64(s), b = load64(end - 8);
            if (JSON_LIKELY(!swar_needs_escape(a) && !swar_needs_escape(b))) {
                memcpy(d, &a, 8);
                memcpy(d + n - 8, &b, 8);
                d += n;
                goto close;
            }
        } else if (n >= 4) {
            uint32_t a = load32(s), b = load32(end - 4);
            if (JSON_LIKELY(!swar_needs_escape(((uint64_t)b << 32) | a))) {
                memcpy(d, &a, 4);
                memcpy(d + n - 4, &b, 4);
                d += n;
                goto close;
            }
        } else if (n > 0) {
            /* First, middle and last byte cover every byte of a 1-3 byte string; the
             * other lanes hold spaces, which never need escaping. */
            unsigned char c0 = s[0], c1 = s[n >> 1], c2 = s[n - 1];
            uint64_t x =
                UINT64_C(0x2020202020000000) | c0 | ((uint64_t)c1 << 8) | ((uint64_t)c2 << 16);
            if (JSON_LIKELY(!swar_needs_escape(x))) {
                d[0] = (char)c0;
                d[n >> 1] = (char)c1;
                d[n - 1] = (char)c2;
                d += n;
                goto close;
            }
        } else {
            goto close;
        }
        d = copy_escaping(d, s, end);
        goto close;
    }
#if defined(JSON_HAVE_AVX2_PATH)
    if (n >= 64 && have_avx2())
        copy_long_avx2(&d, &s, end);
#endif
#if defined(__SSE2__)
    while (end - s >= 16) {
        memcpy(d, s, 16);
        unsigned m = escape_mask16(s);
        if (JSON_LIKELY(m == 0)) {
            s += 16;
            d += 16;
            continue;
        }
        /* The bytes before the first special one are already in place. */
        unsigned i = (unsigned)__builtin_ctz(m);
        s += i;
        d += i;
        d += write_escape(d, *s++);
    }
    if (s < end) {
        /* The last 16 source bytes (n > 16): if none needs escaping, the bytes before the
         * tail were copied verbatim too, so rewriting them is harmless. */
        size_t r = (size_t)(end - s);
        if (escape_mask16(end - 16) == 0) {
            memcpy(d + r - 16, end - 16, 16);
            d += r;
        } else {
            d = copy_escaping(d, s, end);
        }
    }
#else
    while (end - s >= 8) {
        uint64_t x = load64(s);
        if (!swar_needs_escape(x)) {
            memcpy(d, &x, 8);
            s += 8;
            d += 8;
            continue;
        }
        d = copy_escaping(d, s, s + 8);
        s += 8;
    }
    d = copy_escaping(d, s, end);
#endif
close:
    *d++ = '"';
    *d = trail;
    d += trail != 0;
    e->out->len += (size_t)(d - d0);
    return 0;
}

/* PyUnicode_AsUTF8AndSize failed: a lone surrogate (no UTF-8 form), or memory. */
static int lone_surrogate(PyObject *s)
{
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        return -1;
    PyErr_Clear();
    Py_ssize_t n = PyUnicode_GET_LENGTH(s), i = 0;
    while (i < n && !Py_UNICODE_IS_SURROGATE(PyUnicode_READ_CHAR(s, i)))
        i++;
    /* PyErr_Format has no %X: the code point is formatted here. */
    char cp[16];
    snprintf(cp, sizeof cp, "U+%04X", i < n ? (unsigned)PyUnicode_READ_CHAR(s, i) : 0u);
    PyErr_Format(json_EncodeError,
                 "str contains a lone surrogate %s at index %zd; it cannot be encoded as UTF-8", cp,
                 i);
    return -1;
}

#if defined(__SSE2__) && defined(__SIZEOF_INT128__)
#define JSON_SHORT_ASCII 1
typedef unsigned __int128 u128_t;

/* A compact ASCII str keeps its characters right after its PyASCIIObject header, in the
 * same allocation; the short-string path below reads the 16 bytes that end at the last
 * character, which for a string shorter than 16 reach back into that header. */
_Static_assert(sizeof(PyASCIIObject) >= 16, "header too small for a 16-byte read-back");

/* Writes the compact ASCII str s of n <= 16 characters as a quoted string followed by
 * trail (if nonzero), with no branch on the length: keys and most short values have
 * lengths that vary from one string to the next, which write_utf8's length cases would
 * branch on. The 16 bytes ending at the string's end are loaded once (in bounds: see
 * above), checked for bytes that need escaping (only the last n lanes count), shifted down
 * so that the string starts at byte 0, and stored whole into the 32 bytes reserved here.
 * Returns 0, -1 with an exception set, or 1 when a character needs escaping (nothing
 * written: the caller takes the general path). */
static inline __attribute__((always_inline)) int write_short_ascii(json_encoder_t *e, PyObject *s,
                                                                   size_t n, char trail)
{
    const unsigned char *end = PyUnicode_1BYTE_DATA(s) + n;
    if (JSON_UNLIKELY(reserve(e, 32) < 0))
        return -1;
    __m128i v = _mm_loadu_si128((const __m128i *)(end - 16));
    __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v);
    __m128i q = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
    __m128i b = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(ctl, _mm_or_si128(q, b)));
    if (JSON_UNLIKELY((m >> (16 - n)) != 0))
        return 1;
    u128_t x;
    memcpy(&x, &v, 16);
    unsigned sh = 8 * (unsigned)(16 - n);
    x = sh < 128 ? x >> sh : 0; /* a shift by 128 (the empty string) is undefined */
    char *d = e->out->data + e->out->len;
    d[0] = '"';
    memcpy(d + 1, &x, 16);
    d[n + 1] = '"';
    d[n + 2] = trail;
    e->out->len += n + 2 + (trail != 0);
    return 0;
}
#endif

static inline __attribute__((always_inline)) int encode_str_trail(json_encoder_t *e, PyObject *s,
                                                                  char trail)
{
    if (JSON_UNLIKELY(PyUnicode_READY(s) < 0))
        return -1;
    if (PyUnicode_IS_ASCII(s)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(s);
#if defined(JSON_SHORT_ASCII)
        if (n <= 16 && PyUnicode_IS_COMPACT(s)) {
            int rc = write_short_ascii(e, s, (size_t)n, trail);
            if (rc <= 0)
                return rc;
        }
#endif
        return write_utf8(e, PyUnicode_1BYTE_DATA(s), n, trail);
    }
    /* Non-ASCII: CPython's UTF-8 form, which the str caches, so a string encoded again
     * (the same response object, a repeated key) costs a copy. */
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    if (JSON_UNLIKELY(p == NULL))
        return lone_surrogate(s);
    return write_utf8(e, (const unsigned char *)p, n, trail);
}

static inline __attribute__((always_inline)) int encode_str(json_encoder_t *e, PyObject *s)
{
    return encode_str_trail(e, s, 0);
}

/* A member's str value and the ',' after it (out of line: the member loops are inlined
 * into several walks). */
static int encode_str_comma(json_encoder_t *e, PyObject *s)
{
    return encode_str_trail(e, s, ',');
}

int json_encode_str(json_encoder_t *e, PyObject *s)
{
    return encode_str(e, s);
}

/* The value of an int of at most two 30-bit digits, read from the object itself (CPython
 * 3.11's layout; a sign-magnitude digit array whose length is the signed ob_size). Returns
 * 0 for larger ints, which take the general path. */
static inline int small_int(PyObject *obj, long long *v)
{
#if defined(JSON_DICT_ENTRIES) && PyLong_SHIFT == 30
    Py_ssize_t size = Py_SIZE(obj);
    const digit *dg = ((PyLongObject *)obj)->ob_digit;
    long long m;
    switch (size < 0 ? -size : size) {
    case 0:
        *v = 0;
        return 1;
    case 1:
        m = (long long)dg[0];
        break;
    case 2:
        m = (long long)dg[0] | ((long long)dg[1] << PyLong_SHIFT);
        break;
    default:
        return 0;
    }
    *v = size < 0 ? -m : m;
    return 1;
#else
    (void)obj;
    (void)v;
    return 0;
#endif
}

/* json_write_u64 with 9-digit values (ids: 13,242 of citm_catalog's 14,392 ints) inline:
 * the call saved and restored six registers for its long paths, and was 18% of dumping
 * citm_catalog. Same contract: 24 bytes of room at out; returns the count. */
static inline __attribute__((always_inline)) int write_u64(unsigned long long u, char *out)
{
    if (u - 100000000u < 900000000u) {
        uint32_t head = (uint32_t)(u / 100000000u);
        uint64_t tail = json_digits8((uint32_t)(u - (unsigned long long)head * 100000000u));
        out[0] = (char)('0' + head);
        memcpy(out + 1, &tail, 8);
        return 9;
    }
    return json_write_u64(u, out);
}

static int write_ll(json_encoder_t *e, long long v)
{
    /* json_write_u64 needs 24 bytes of room after the sign. */
    if (reserve(e, 25) < 0)
        return -1;
    char *d = e->out->data + e->out->len;
    unsigned long long u = (unsigned long long)v;
    if (v < 0) {
        *d++ = '-';
        u = 0ull - u;
        e->out->len++;
    }
    e->out->len += (size_t)json_write_u64(u, d);
    return 0;
}

static int write_int(json_encoder_t *e, PyObject *obj)
{
    int overflow = 0;
    long long v;
    if (!small_int(obj, &v))
        v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (JSON_LIKELY(!overflow)) {
        if (v == -1 && PyErr_Occurred())
            return -1;
        return write_ll(e, v);
    }
    /* Beyond 64 bits: int.__repr__ (not the subclass's), as the stdlib does. It refuses
     * more digits than sys.get_int_max_str_digits() allows. */
    int rc = -1;
    PyObject *text = PyLong_Type.tp_repr(obj);
    if (text == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            PyErr_SetString(json_EncodeError,
                            "int has more digits than sys.get_int_max_str_digits() allows");
        }
        goto done;
    }
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(text, &n);
    if (p == NULL)
        goto done;
    rc = put(e, p, (size_t)n);
done:
    Py_XDECREF(text);
    return rc;
}

/* An int of at most two 30-bit digits with the ',' after it in one reservation and one
 * length update: the commonest value in records (ids, counts) without the dispatch, and
 * without a chain of stores and reloads of the buffer length. Returns 1 when written, 0
 * when obj is not such an int (nothing written), -1 on error. */
static inline __attribute__((always_inline)) int write_small_int(json_encoder_t *e, PyObject *obj)
{
    long long v;
    if (!Py_IS_TYPE(obj, &PyLong_Type) || !small_int(obj, &v))
        return 0;
    /* Sign, 24 bytes for json_write_u64, comma. */
    if (JSON_UNLIKELY(reserve(e, 26) < 0))
        return -1;
    char *start = e->out->data + e->out->len, *d = start;
    *d = '-';
    d += v < 0;
    d += write_u64(v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v, d);
    *d++ = ',';
    e->out->len += (size_t)(d - start);
    return 1;
}

/* A member's value that is null, a bool or an empty list, with the ',' after it, as one
 * 8-byte store (flags, absent fields and empty collections are most of a record's
 * members after strings and ints). An empty list is a nesting level too, so it is left to
 * the general path at the limit. Returns 1 when written, 0 when v is none of these, -1 on
 * error. */
static inline __attribute__((always_inline)) int write_short_value(json_encoder_t *e, PyObject *v)
{
    static const char lits[4][8] = {"null,", "true,", "false,", "[],"};
    static const unsigned char lens[4] = {5, 5, 6, 3};
    int which;
    if (v == Py_None)
        which = 0;
    else if (v == Py_True)
        which = 1;
    else if (v == Py_False)
        which = 2;
    else if (Py_IS_TYPE(v, &PyList_Type) && PyList_GET_SIZE(v) == 0 && e->depth < JSON_MAX_DEPTH)
        which = 3;
    else
        return 0;
    if (JSON_UNLIKELY(reserve(e, 8) < 0))
        return -1;
    memcpy(e->out->data + e->out->len, lits[which], 8);
    e->out->len += lens[which];
    return 1;
}

static int write_float(json_encoder_t *e, double v)
{
    if (JSON_UNLIKELY(!isfinite(v))) {
        PyErr_Format(json_EncodeError,
                     "%s is not allowed in JSON (RFC 8259 has no NaN or Infinity)",
                     isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity"));
        return -1;
    }
    if (reserve(e, JSON_DTOA_MAX) < 0)
        return -1;
    e->out->len += (size_t)json_dtoa(v, e->out->data + e->out->len);
    return 0;
}

int json_write_int64(json_encoder_t *e, PyObject *obj)
{
    int overflow = 0;
    long long v;
    if (!small_int(obj, &v)) {
        v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow)
            return 1;
        if (v == -1 && PyErr_Occurred())
            return -1;
    }
    return write_ll(e, v);
}

int json_write_float(json_encoder_t *e, double v)
{
    return write_float(e, v);
}

int json_enc_push(json_encoder_t *e, PyObject *obj)
{
    if (JSON_LIKELY(e->depth < JSON_MAX_DEPTH)) {
        e->stack[e->depth++] = obj;
        return 0;
    }
    for (int i = 0; i < e->depth; i++) {
        if (e->stack[i] == obj) {
            PyErr_Format(json_EncodeError, "circular reference detected (a %.100s contains itself)",
                         Py_TYPE(obj)->tp_name);
            return -1;
        }
    }
    PyErr_Format(json_EncodeError, "maximum nesting depth of %d exceeded (or circular reference)",
                 JSON_MAX_DEPTH);
    return -1;
}

/* Newline plus two spaces per level, for JSON_OPT_INDENT_2. */
static int write_newline(json_encoder_t *e, int level)
{
    size_t n = 1 + 2 * (size_t)level;
    if (reserve(e, n) < 0)
        return -1;
    char *d = e->out->data + e->out->len;
    d[0] = '\n';
    memset(d + 1, ' ', n - 1);
    e->out->len += n;
    return 0;
}

static int write_key(json_encoder_t *e, PyObject *key)
{
    if (JSON_LIKELY(PyUnicode_Check(key)))
        return json_encode_str(e, key);
    if (!(e->flags & JSON_OPT_NON_STR_KEYS)) {
        PyErr_Format(json_EncodeError, "dict key must be str, not %.100s (see non_str_keys)",
                     Py_TYPE(key)->tp_name);
        return -1;
    }
    PyObject *s = json_key_to_str(e, key);
    if (s == NULL)
        return -1;
    int rc = json_encode_str(e, s);
    Py_DECREF(s);
    return rc;
}

typedef struct {
    PyObject *key;   /* str; owned */
    PyObject *value; /* borrowed from the dict, which we hold */
} key_item_t;

static int compare_items(const void *a, const void *b)
{
    /* PyUnicode_Compare runs no Python code and cannot fail for two str objects. */
    return PyUnicode_Compare(((const key_item_t *)a)->key, ((const key_item_t *)b)->key);
}

static int write_dict_sorted(json_encoder_t *e, PyObject *dict)
{
    int rc = -1;
    int indent = (e->flags & JSON_OPT_INDENT_2) != 0;
    Py_ssize_t n = PyDict_GET_SIZE(dict), count = 0, pos = 0;
    PyObject *k, *v;
    key_item_t *items = PyMem_Malloc(sizeof(key_item_t) * (size_t)(n ? n : 1));
    if (items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    while (count < n && PyDict_Next(dict, &pos, &k, &v)) {
        PyObject *s;
        if (PyUnicode_Check(k)) {
            s = Py_NewRef(k);
        } else if (e->flags & JSON_OPT_NON_STR_KEYS) {
            s = json_key_to_str(e, k);
            if (s == NULL)
                goto done;
        } else {
            PyErr_Format(json_EncodeError, "dict key must be str, not %.100s (see non_str_keys)",
                         Py_TYPE(k)->tp_name);
            goto done;
        }
        if (PyUnicode_READY(s) < 0) {
            Py_DECREF(s);
            goto done;
        }
        items[count].key = s;
        items[count].value = v;
        count++;
    }
    qsort(items, (size_t)count, sizeof(key_item_t), compare_items);
    /* Values are borrowed from the dict: hold them, since encoding one of them may run
     * Python code that mutates the dict. */
    for (Py_ssize_t i = 0; i < count; i++)
        Py_INCREF(items[i].value);
    Py_ssize_t held = count;
    if (putc_(e, '{') < 0)
        goto release;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (i > 0 && putc_(e, ',') < 0)
            goto release;
        if (indent && write_newline(e, e->depth) < 0)
            goto release;
        if (json_encode_str(e, items[i].key) < 0)
            goto release;
        if (indent ? put(e, ": ", 2) < 0 : putc_(e, ':') < 0)
            goto release;
        if (json_encode_value(e, items[i].value) < 0)
            goto release;
    }
    if (indent && count > 0 && write_newline(e, e->depth - 1) < 0)
        goto release;
    rc = putc_(e, '}');
release:
    for (Py_ssize_t i = 0; i < held; i++)
        Py_DECREF(items[i].value);
done:
    for (Py_ssize_t i = 0; i < count; i++)
        Py_DECREF(items[i].key);
    PyMem_Free(items);
    return rc;
}

static int write_dict(json_encoder_t *e, PyObject *dict);
static int write_array(json_encoder_t *e, PyObject *seq, int is_list);

/* The dispatch on the exact core types, inlined into the container loops. */
static inline int encode_value(json_encoder_t *e, PyObject *obj)
{
    PyTypeObject *t = Py_TYPE(obj);
    if (t == &PyUnicode_Type)
        return encode_str(e, obj);
    if (t == &PyLong_Type)
        return write_int(e, obj);
    if (t == &PyFloat_Type)
        return write_float(e, PyFloat_AS_DOUBLE(obj));
    if (t == &PyDict_Type)
        return write_dict(e, obj);
    if (t == &PyList_Type)
        return write_array(e, obj, 1);
    if (obj == Py_True)
        return put(e, "true", 4);
    if (obj == Py_False)
        return put(e, "false", 5);
    if (obj == Py_None)
        return put(e, "null", 4);
    if (t == &PyTuple_Type)
        return write_array(e, obj, 0);
    return json_encode_other(e, obj);
}

int json_encode_value(json_encoder_t *e, PyObject *obj)
{
    return encode_value(e, obj);
}

/* Writes the separator after a member or item; the last one is overwritten by the closing
 * bracket, which saves a "first item?" test per member. */
static inline int put_comma(json_encoder_t *e)
{
    return putc_(e, ',');
}

/* Closes a container whose members each ended with ','. */
static inline int close_container(json_encoder_t *e, size_t open_len, char close)
{
    if (e->out->len > open_len) {
        e->out->data[e->out->len - 1] = close;
        return 0;
    }
    return putc_(e, close); /* emptied while we iterated */
}

static int write_dict_pretty(json_encoder_t *e, PyObject *dict)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    int first = 1;
    if (putc_(e, '{') < 0)
        return -1;
    while (PyDict_Next(dict, &pos, &k, &v)) {
        if (!first && putc_(e, ',') < 0)
            return -1;
        first = 0;
        if (write_newline(e, e->depth) < 0 || write_key(e, k) < 0 || put(e, ": ", 2) < 0 ||
            encode_value(e, v) < 0)
            return -1;
    }
    if (!first && write_newline(e, e->depth - 1) < 0)
        return -1;
    return putc_(e, '}');
}

/* The written form ("name": with its quotes and colon) of recently written keys, by key
 * object: records repeat their keys (and json.loads, ours and the stdlib's, share one str
 * per key name), so a key is usually written from here with one lookup and one copy of
 * the slot's text, without reading the str itself. Only exact, compact ASCII str keys of
 * at most KEY_TEXT_MAX characters that need no escaping are kept. Each slot holds a strong
 * reference to its key: the str can then neither change (str is immutable) nor be freed
 * and its address reused by another object while the slot names it. The references live
 * as long as the process (as the decoder's key cache); the GIL serialises access.
 *
 * Direct-mapped, with a second chance: a hit marks the slot hot; a miss on a hot slot only
 * cools it, and a miss on a cold one replaces its key. So the keys of a record type stay
 * while one-off keys (ids used as keys) pass through, and every call may replace at most
 * KEY_BUDGET slots: a document of more distinct keys than slots, which the cache cannot
 * help, pays for that many replacements and no more. */
#define KEY_SLOTS    512 /* power of two */
#define KEY_TEXT_MAX 32
#define KEY_BUDGET   64
/* Three arrays rather than one of slots, so that a miss touches only the first two (4.5
 * KiB, which stay in the L1 cache) and not the texts (20 KiB). */
static PyObject *key_objs[KEY_SLOTS];    /* strong references, or NULL */
static unsigned char key_hot[KEY_SLOTS]; /* hit since the last miss */
static struct {
    /* '"', the key, '"', ':' (at most 35 bytes), zero padding; len is that text's. */
    char text[39];
    unsigned char len;
} key_texts[KEY_SLOTS];

static inline size_t key_slot(PyObject *k)
{
    /* Fibonacci hashing of the address: its top bits mix all of the address's bits. */
    return (size_t)(((uint64_t)(uintptr_t)k * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - 9));
}

/* Puts key k, whose text was just written at out->data[at..out->len) by the general path,
 * into slot i when k qualifies (see above). Spends one unit of the call's budget. */
static void remember_key(json_encoder_t *e, size_t i, PyObject *k, size_t at)
{
    size_t len = e->out->len - at;
    e->key_budget--;
    /* An escape makes the text longer than the key plus quotes and colon. */
    if (!PyUnicode_IS_COMPACT_ASCII(k) || PyUnicode_GET_LENGTH(k) > KEY_TEXT_MAX ||
        len != (size_t)PyUnicode_GET_LENGTH(k) + 3)
        return;
    PyObject *old = key_objs[i];
    key_objs[i] = Py_NewRef(k);
    memset(key_texts[i].text, 0, sizeof key_texts[i].text);
    memcpy(key_texts[i].text, e->out->data + at, len);
    key_texts[i].len = (unsigned char)len;
    key_hot[i] = 0;
    /* Last: freeing a str runs no Python code, but the slot is consistent first anyway. */
    Py_XDECREF(old);
}

/* One compact "key":value, member, whichever way the dict is walked. */
static inline __attribute__((always_inline)) int write_member(json_encoder_t *e, PyObject *k,
                                                              PyObject *v)
{
    /* A key found in its slot is an exact str (only those are kept): it is written
     * without reading the key object at all. */
    size_t slot = key_slot(k);
    if (JSON_LIKELY(key_objs[slot] == k)) {
        if (JSON_UNLIKELY(reserve(e, sizeof key_texts[slot]) < 0))
            return -1;
        /* Whole, with the len byte: only len bytes count, the rest is overwritten. */
        memcpy(e->out->data + e->out->len, &key_texts[slot], sizeof key_texts[slot]);
        e->out->len += key_texts[slot].len;
        key_hot[slot] = 1;
    } else if (JSON_LIKELY(PyUnicode_CheckExact(k))) {
        size_t at = e->out->len;
        if (encode_str_trail(e, k, ':') < 0)
            return -1;
        if (key_hot[slot])
            key_hot[slot] = 0;
        else if (e->key_budget > 0)
            remember_key(e, slot, k, at);
    } else if (write_key(e, k) < 0 || putc_(e, ':') < 0) {
        return -1;
    }
    int rc = write_small_int(e, v);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    rc = write_short_value(e, v);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (Py_IS_TYPE(v, &PyUnicode_Type))
        return encode_str_comma(e, v);
    if (encode_value(e, v) < 0)
        return -1;
    return put_comma(e);
}

static int write_dict(json_encoder_t *e, PyObject *dict)
{
    if (PyDict_GET_SIZE(dict) == 0) {
        /* An empty container is a nesting level too, as in the decoder. */
        if (JSON_UNLIKELY(e->depth >= JSON_MAX_DEPTH))
            return json_enc_push(e, dict);
        return put(e, "{}", 2);
    }
    int rc = -1;
    Py_INCREF(dict);
    if (json_enc_push(e, dict) < 0)
        goto done;
    if (JSON_UNLIKELY(e->flags & (JSON_OPT_SORT_KEYS | JSON_OPT_INDENT_2))) {
        rc = (e->flags & JSON_OPT_SORT_KEYS) ? write_dict_sorted(e, dict)
                                             : write_dict_pretty(e, dict);
        goto pop;
    }
    if (putc_(e, '{') < 0)
        goto pop;
    size_t open_len = e->out->len;
#if defined(JSON_DICT_ENTRIES)
    PyDictObject *mp = (PyDictObject *)dict;
    PyDictKeysObject *keys = mp->ma_keys;
    if (mp->ma_values == NULL && keys->dk_kind != DICT_KEYS_GENERAL) {
        /* A combined table with str keys (what json.loads and literals build): walk the
         * entry array in insertion order, skipping deleted slots, as PyDict_Next does but
         * without a call per member. A value's encoding can run Python code (default,
         * dataclasses...), so the table is checked after each member: if the dict was
         * resized meanwhile we stop, as iterating a changing dict does in Python. */
        for (Py_ssize_t i = 0; i < keys->dk_nentries; i++) {
            PyDictUnicodeEntry *ep = &DK_UNICODE_ENTRIES(keys)[i];
            PyObject *k = ep->me_key, *v = ep->me_value;
            if (v == NULL)
                continue;
            if (write_member(e, k, v) < 0)
                goto pop;
            if (JSON_UNLIKELY(mp->ma_keys != keys || mp->ma_values != NULL)) {
                PyErr_SetString(PyExc_RuntimeError, "dict changed size during JSON encoding");
                goto pop;
            }
        }
        rc = close_container(e, open_len, '}');
        goto pop;
    }
    if (mp->ma_values == NULL) {
        /* The same walk over a general table (any key types; also what
         * _PyDict_NewPresized builds). */
        for (Py_ssize_t i = 0; i < keys->dk_nentries; i++) {
            PyDictKeyEntry *ep = &DK_ENTRIES(keys)[i];
            PyObject *k = ep->me_key, *v = ep->me_value;
            if (v == NULL)
                continue;
            if (write_member(e, k, v) < 0)
                goto pop;
            if (JSON_UNLIKELY(mp->ma_keys != keys || mp->ma_values != NULL)) {
                PyErr_SetString(PyExc_RuntimeError, "dict changed size during JSON encoding");
                goto pop;
            }
        }
        rc = close_container(e, open_len, '}');
        goto pop;
    }
#endif
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(dict, &pos, &k, &v)) {
        if (write_member(e, k, v) < 0)
            goto pop;
    }
    rc = close_container(e, open_len, '}');
pop:
    json_enc_pop(e);
done:
    Py_DECREF(dict);
    return rc;
}

static int write_array_pretty(json_encoder_t *e, PyObject *seq, int is_list)
{
    if (putc_(e, '[') < 0)
        return -1;
    Py_ssize_t i = 0;
    for (;; i++) {
        Py_ssize_t n = is_list ? PyList_GET_SIZE(seq) : PyTuple_GET_SIZE(seq);
        if (i >= n)
            break;
        if (i > 0 && putc_(e, ',') < 0)
            return -1;
        PyObject *item = is_list ? PyList_GET_ITEM(seq, i) : PyTuple_GET_ITEM(seq, i);
        if (write_newline(e, e->depth) < 0 || encode_value(e, item) < 0)
            return -1;
    }
    if (i > 0 && write_newline(e, e->depth - 1) < 0)
        return -1;
    return putc_(e, ']');
}

/* A list or tuple of two finite floats (a coordinate, a point) as "[x,y]", without the
 * general container walk: no reference or nesting-stack entry is needed since encoding
 * floats runs no Python code. One more byte is reserved for the caller's comma. Returns
 * 1 when written, 0 when seq is not such a pair (or the nesting limit is reached, so that the
 * general path reports it), -1 on error. */
static inline int write_float_pair(json_encoder_t *e, PyObject *seq)
{
    if (Py_SIZE(seq) != 2 || e->depth >= JSON_MAX_DEPTH)
        return 0;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    if (!Py_IS_TYPE(items[0], &PyFloat_Type) || !Py_IS_TYPE(items[1], &PyFloat_Type))
        return 0;
    double x = PyFloat_AS_DOUBLE(items[0]), y = PyFloat_AS_DOUBLE(items[1]);
    if (!isfinite(x) || !isfinite(y))
        return 0;
    if (reserve(e, 2 * JSON_DTOA_MAX + 3) < 0)
        return -1;
    char *d = e->out->data + e->out->len;
    size_t n = (size_t)json_dtoa2(x, y, d + 1);
    d[0] = '[';
    d[n + 1] = ']';
    e->out->len += n + 2;
    return 1;
}

/* Lists and tuples. Items are read by index each time because a slow-path item may shrink
 * a list; a tuple cannot change. */
static int write_array(json_encoder_t *e, PyObject *seq, int is_list)
{
    Py_ssize_t n = is_list ? PyList_GET_SIZE(seq) : PyTuple_GET_SIZE(seq);
    if (n == 2 && !(e->flags & JSON_OPT_INDENT_2)) {
        int rc = write_float_pair(e, seq);
        if (rc != 0)
            return rc < 0 ? -1 : 0;
    }
    if (n == 0) {
        if (JSON_UNLIKELY(e->depth >= JSON_MAX_DEPTH))
            return json_enc_push(e, seq);
        return put(e, "[]", 2);
    }
    int rc = -1;
    Py_INCREF(seq);
    if (json_enc_push(e, seq) < 0)
        goto done;
    if (JSON_UNLIKELY(e->flags & JSON_OPT_INDENT_2)) {
        rc = write_array_pretty(e, seq, is_list);
        goto pop;
    }
    if (putc_(e, '[') < 0)
        goto pop;
    size_t open_len = e->out->len;
    if (is_list) {
        Py_ssize_t i = 0;
        while (i < PyList_GET_SIZE(seq)) {
            PyObject *item = PyList_GET_ITEM(seq, i);
            /* Two floats in a row (coordinates, vectors, series) are converted together:
             * the two conversions overlap in the core (see json_dtoa2). Encoding a float
             * runs no Python code, so the list cannot change under us here. */
            if (Py_IS_TYPE(item, &PyFloat_Type) && i + 1 < PyList_GET_SIZE(seq)) {
                PyObject *next = PyList_GET_ITEM(seq, i + 1);
                double x = PyFloat_AS_DOUBLE(item);
                if (Py_IS_TYPE(next, &PyFloat_Type) && isfinite(x) &&
                    isfinite(PyFloat_AS_DOUBLE(next))) {
                    if (reserve(e, 2 * JSON_DTOA_MAX + 1) < 0)
                        goto pop;
                    char *d = e->out->data + e->out->len;
                    size_t n = (size_t)json_dtoa2(x, PyFloat_AS_DOUBLE(next), d);
                    d[n] = ',';
                    e->out->len += n + 1;
                    i += 2;
                    continue;
                }
            }
            if (Py_IS_TYPE(item, &PyList_Type) || Py_IS_TYPE(item, &PyTuple_Type)) {
                /* A list of coordinates: each pair without a call into the general walk. */
                int rc = write_float_pair(e, item);
                if (rc < 0)
                    goto pop;
                if (rc > 0) {
                    e->out->data[e->out->len++] = ',';
                    i++;
                    continue;
                }
            }
            if (Py_IS_TYPE(item, &PyUnicode_Type)) {
                /* A list of names, tags, ids: the str and its ',' in one reservation. */
                if (encode_str_comma(e, item) < 0)
                    goto pop;
                i++;
                continue;
            }
            int ri = write_small_int(e, item);
            if (ri < 0)
                goto pop;
            if (ri == 0 && (encode_value(e, item) < 0 || put_comma(e) < 0))
                goto pop;
            i++;
        }
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            if (encode_value(e, PyTuple_GET_ITEM(seq, i)) < 0 || put_comma(e) < 0)
                goto pop;
        }
    }
    rc = close_container(e, open_len, ']');
pop:
    json_enc_pop(e);
done:
    Py_DECREF(seq);
    return rc;
}

/* Subclasses of the core types reach these through json_encode_other. */
int json_encode_core_subclass(json_encoder_t *e, PyObject *obj)
{
    if (PyUnicode_Check(obj))
        return json_encode_str(e, obj);
    if (PyLong_Check(obj))
        return write_int(e, obj);
    if (PyFloat_Check(obj))
        return write_float(e, PyFloat_AS_DOUBLE(obj));
    if (PyDict_Check(obj))
        return write_dict(e, obj);
    if (PyList_Check(obj))
        return write_array(e, obj, 1);
    if (PyTuple_Check(obj))
        return write_array(e, obj, 0);
    return 1;
}

int json_encode(PyObject *obj, db_buf_t *out, const json_enc_opts_t *opts)
{
    /* About 4 KiB of stack for the depth stack; only entries below depth are read. */
    json_encoder_t e;
    e.out = out;
    e.bytes = NULL;
    e.flags = opts ? opts->flags : 0;
    e.default_fn = opts ? opts->default_fn : NULL;
    e.depth = 0;
    e.key_budget = KEY_BUDGET;
    return json_encode_value(&e, obj);
}

/* Room for the next result: the last one's size plus a little. A stable workload (the
 * responses of one endpoint, a benchmark) then allocates the same block size every call,
 * which glibc serves from the heap it just freed rather than from fresh pages. */
static size_t size_hint = 1024;

PyObject *json_encode_to_bytes(PyObject *obj, const json_enc_opts_t *opts)
{
    json_encoder_t e;
    db_buf_t buf;
    size_t cap = size_hint;
    e.bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
    if (e.bytes == NULL)
        return NULL;
    buf.data = PyBytes_AS_STRING(e.bytes);
    buf.len = 0;
    buf.cap = cap;
    e.out = &buf;
    e.flags = opts ? opts->flags : 0;
    e.default_fn = opts ? opts->default_fn : NULL;
    e.depth = 0;
    e.key_budget = KEY_BUDGET;
    if (json_encode_value(&e, obj) < 0) {
        Py_XDECREF(e.bytes);
        return NULL;
    }
    size_t hint = buf.len + buf.len / 16 + 512;
    size_hint = hint < (64u << 20) ? hint : (64u << 20);
    if (buf.cap - buf.len > buf.len / 4 + 4096) {
        /* Much too big (the first call, or a smaller document): give the memory back. */
        if (_PyBytes_Resize(&e.bytes, (Py_ssize_t)buf.len) < 0)
            return NULL;
    } else {
        /* Keep the small slack rather than realloc: shrinking would make the next call's
         * request larger than the block freed, and glibc would map fresh pages for it.
         * The allocation holds cap + 1 bytes, so the terminator fits. */
        Py_SET_SIZE(e.bytes, (Py_ssize_t)buf.len);
        buf.data[buf.len] = '\0';
    }
    return e.bytes;
}
