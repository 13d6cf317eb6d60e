/*
 * The JSON decoder (owned by the JSON codec): one pass of recursive descent over UTF-8
 * bytes, strict RFC 8259, building Python objects as it goes. Recursion is bounded by
 * JSON_MAX_DEPTH, so 100,000 '[' end in a JSONDecodeError, never a stack overflow. Every
 * syntax error is raised where it is found with a message naming the rule and the byte
 * position (turned into a character position by json_raise_decode_error).
 *
 * Ownership: the decoder borrows the input for the duration of the call. Array items are
 * collected on a scratch stack of new references (inline for small documents, heap beyond)
 * and moved into the list at ']'. Escaped or non-ASCII strings are decoded into a UCS-4
 * scratch buffer and then copied into a str of the narrowest kind. Short ASCII object keys
 * go through a process-wide cache of str objects (strong references, replaced on
 * collision), so the keys repeated across a document cost one lookup each and share one
 * object and one hash computation. No Python code runs during decoding, so the cache is
 * used without interleaving.
 */
#include <stdint.h>
#include <string.h>

#include <patchlevel.h>

/* CPython 3.11 only (as in encode.c): objects are built as complete hash tables
 * (build_dict); the internal header is the interpreter's own description of the layout.
 * Other versions, and debug builds that count references, use PyDict_SetItem. */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && !defined(Py_LIMITED_API)
#define Py_BUILD_CORE_MODULE 1
#define JSON_DICT_BUILD      1
#endif

/* Floats allocated directly (json_new_float in json_internal.h), on the same builds as the
 * dicts: 3.11 without the reference-count debugging that _Py_NewReference does. */
#if defined(JSON_DICT_BUILD)
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#if !defined(Py_REF_DEBUG) && !defined(Py_TRACE_REFS)
#define JSON_FAST_OBJECTS 1
#include <internal/pycore_pymem.h>
#include <internal/pycore_object.h>
#endif
#endif

#include "common/text.h"
#include "json/json_internal.h"

#if defined(JSON_DICT_BUILD)
#include <internal/pycore_dict.h>
#if defined(Py_REF_DEBUG)
#undef JSON_DICT_BUILD
#endif
#endif

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define KEY_CACHE_SIZE    2048 /* power of two */
#define KEY_CACHE_MAX_LEN 64

typedef json_decoder_t decoder_t;

/* Keeps rare paths out of the hot loops they are called from. */
#if defined(__GNUC__)
#define JSON_NOINLINE __attribute__((noinline))
#else
#define JSON_NOINLINE
#endif

static PyObject *key_cache[KEY_CACHE_SIZE];

static PyObject *parse_value(decoder_t *d);

static PyObject *error_at(decoder_t *d, const unsigned char *at, const char *msg)
{
    json_raise_decode_error((const char *)d->start, (size_t)(d->end - d->start),
                            (size_t)(at - d->start), msg);
    return NULL;
}

#define skip_ws json_dec_skip_ws

/* ---- strings ---------------------------------------------------------------------- */

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}

/* True when one of the 8 bytes is '"', '\\', below 0x20 or 0x80 and above. */
static inline int swar_special(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t q = x ^ (ones * '"');
    uint64_t b = x ^ (ones * '\\');
    uint64_t r = ((x - ones * 0x20) | (q - ones) | (b - ones) | x) & highs;
    /* The subtractions may borrow across bytes only after a byte that already matched, so
     * a zero result is exact and a non-zero one is confirmed byte by byte. */
    return r != 0;
}

/* The slot of the key s[0..n); end bounds the document. A key shorter than 8 bytes is
 * read with one 8-byte load and masked when the document has 8 bytes from s (it has, but
 * for a key at its very end): a memcpy of n bytes to a stack word stalled the load that
 * read it back, and was the decoder's single most expensive instruction on citm_catalog. */
static inline uint32_t key_hash(const unsigned char *s, size_t n, const unsigned char *end)
{
    uint64_t a = 0, b = 0;
    if (n >= 8) {
        a = load64(s);
        b = load64(s + n - 8);
    } else if (end - s >= 8) {
        a = load64(s) & ((UINT64_C(1) << (8 * n)) - 1);
    } else {
        for (size_t i = 0; i < n; i++)
            a |= (uint64_t)s[i] << (8 * i);
    }
    uint64_t h = (a * 0x9E3779B97F4A7C15u) ^ (b * 0xC2B2AE3D27D4EB4Fu) ^ (n * 0x165667B19E3779F9u);
    return (uint32_t)(h >> 40) & (KEY_CACHE_SIZE - 1);
}

static PyObject *ascii_str(const unsigned char *s, size_t n)
{
    PyObject *str = PyUnicode_New((Py_ssize_t)n, 127);
    if (str == NULL)
        return NULL;
    memcpy(PyUnicode_1BYTE_DATA(str), s, n);
    return str;
}

/* memcmp(a, b, n) == 0 for the short keys of the cache (n <= 64), without a library call:
 * 8-byte words (two overlapping ones up to 16 bytes), or two overlapping 4-byte ones. */
static inline int short_equal(const unsigned char *a, const unsigned char *b, size_t n)
{
    if (n >= 8) {
        /* Whole words, then the last 8 bytes (overlapping the last word compared). */
        for (size_t i = 0; i + 8 < n; i += 8) {
            if (load64(a + i) != load64(b + i))
                return 0;
        }
        return load64(a + n - 8) == load64(b + n - 8);
    }
    if (n >= 4) {
        uint32_t x, y, u, v;
        memcpy(&x, a, 4);
        memcpy(&y, b, 4);
        memcpy(&u, a + n - 4, 4);
        memcpy(&v, b + n - 4, 4);
        return x == y && u == v;
    }
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i])
            return 0;
    }
    return 1;
}

static PyObject *cached_key(const unsigned char *s, size_t n, const unsigned char *end)
{
    uint32_t h = key_hash(s, n, end);
    PyObject *hit = key_cache[h];
    if (hit != NULL && (size_t)PyUnicode_GET_LENGTH(hit) == n &&
        short_equal(PyUnicode_1BYTE_DATA(hit), s, n))
        return Py_NewRef(hit);
    PyObject *str = ascii_str(s, n);
    if (str == NULL)
        return NULL;
    /* Compute the hash now so that every later use of the cached key skips it. */
    if (PyObject_Hash(str) == -1) {
        Py_DECREF(str);
        return NULL;
    }
    Py_XSETREF(key_cache[h], Py_NewRef(str));
    return str;
}

static int grow_chars(decoder_t *d, size_t need)
{
    size_t cap = d->chars_cap * 2;
    while (cap < need)
        cap *= 2;
    Py_UCS4 *nc;
    if (d->chars == d->inline_chars) {
        nc = PyMem_Malloc(cap * sizeof(Py_UCS4));
        if (nc != NULL)
            memcpy(nc, d->chars, d->chars_cap * sizeof(Py_UCS4));
    } else {
        nc = PyMem_Realloc(d->chars, cap * sizeof(Py_UCS4));
    }
    if (nc == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    d->chars = nc;
    d->chars_cap = cap;
    return 0;
}

/* Reads the 4 hex digits after "\u" at p; -1 if they are not hex digits. */
static int read_hex4(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = db_hexval(p[i]);
        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

/* Decodes one UTF-8 sequence at p (lead byte >= 0x80) per RFC 3629 / Unicode table 3-7.
 * Returns the sequence length and sets *cp, or 0 and sets *msg. */
static int utf8_decode(const unsigned char *p, const unsigned char *end, Py_UCS4 *cp,
                       const char **msg)
{
    unsigned c = p[0];
    ptrdiff_t avail = end - p;
    unsigned lo = 0x80, hi = 0xBF;
    int len;
    if (c < 0xC2) {
        *msg = c < 0xC0 ? "invalid UTF-8: unexpected continuation byte"
                        : "invalid UTF-8: overlong encoding";
        return 0;
    }
    if (c < 0xE0) {
        len = 2;
    } else if (c < 0xF0) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c < 0xF5) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *msg = c < 0xF8 ? "invalid UTF-8: code point above U+10FFFF"
                        : "invalid UTF-8: invalid start byte";
        return 0;
    }
    if (avail < 2 || p[1] < 0x80 || p[1] > 0xBF) {
        *msg = "invalid UTF-8: truncated sequence";
        return 0;
    }
    if (p[1] < lo || p[1] > hi) {
        if (c == 0xED)
            *msg = "invalid UTF-8: encoded surrogate";
        else if (c == 0xF4)
            *msg = "invalid UTF-8: code point above U+10FFFF";
        else
            *msg = "invalid UTF-8: overlong encoding";
        return 0;
    }
    for (int i = 2; i < len; i++) {
        if (avail <= i || (p[i] & 0xC0) != 0x80) {
            *msg = "invalid UTF-8: truncated sequence";
            return 0;
        }
    }
    Py_UCS4 v;
    if (len == 2)
        v = ((c & 0x1F) << 6) | (p[1] & 0x3F);
    else if (len == 3)
        v = ((c & 0x0F) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3F);
    else
        v = ((c & 0x07) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3F);
    *cp = v;
    return len;
}

/* Builds a str of the narrowest kind from chars[0..n) whose largest code point is max. */
static PyObject *str_from_ucs4(const Py_UCS4 *chars, size_t n, Py_UCS4 max)
{
    PyObject *s = PyUnicode_New((Py_ssize_t)n, max);
    if (s == NULL)
        return NULL;
    int kind = PyUnicode_KIND(s);
    if (kind == PyUnicode_1BYTE_KIND) {
        Py_UCS1 *out = PyUnicode_1BYTE_DATA(s);
        for (size_t i = 0; i < n; i++)
            out[i] = (Py_UCS1)chars[i];
    } else if (kind == PyUnicode_2BYTE_KIND) {
        Py_UCS2 *out = PyUnicode_2BYTE_DATA(s);
        for (size_t i = 0; i < n; i++)
            out[i] = (Py_UCS2)chars[i];
    } else {
        memcpy(PyUnicode_4BYTE_DATA(s), chars, n * sizeof(Py_UCS4));
    }
    return s;
}

/* The general string path: escapes, non-ASCII. p points after the opening quote; the
 * bytes before `from` are known to be plain ASCII. */
static PyObject *parse_string_slow(decoder_t *d, const unsigned char *quote,
                                   const unsigned char *from)
{
    const unsigned char *p = quote + 1, *end = d->end;
    size_t n = 0;
    Py_UCS4 max = 127;
    size_t prefix = (size_t)(from - p);
    if (prefix + 2 > d->chars_cap && grow_chars(d, prefix + 2) < 0)
        return NULL;
    for (; p < from; p++)
        d->chars[n++] = *p;
    for (;;) {
        /* Every step below appends at most 2 code points. */
        if (n + 2 > d->chars_cap && grow_chars(d, n + 2) < 0)
            return NULL;
        if (p >= end)
            return error_at(d, quote, "unterminated string");
        unsigned c = *p;
        if (c == '"') {
            d->p = p + 1;
            return str_from_ucs4(d->chars, n, max);
        }
        if (c < 0x20)
            return error_at(d, p, "control character in string (must be escaped as \\uXXXX)");
        if (c < 0x80 && c != '\\') {
            d->chars[n++] = c;
            p++;
            continue;
        }
        if (c >= 0x80) {
            Py_UCS4 cp;
            /* The common well-formed 2- and 3-byte sequences inline (3-byte leads E1-EC and
             * EE-EF admit any continuation bytes); the rest, and every error, go through
             * utf8_decode. */
            if (c >= 0xC2 && c < 0xE0 && end - p >= 2 && (p[1] & 0xC0) == 0x80) {
                cp = ((c & 0x1F) << 6) | (p[1] & 0x3F);
                max = cp > max ? cp : max;
                d->chars[n++] = cp;
                p += 2;
                continue;
            }
            if (c > 0xE0 && c < 0xF0 && c != 0xED && end - p >= 3 && (p[1] & 0xC0) == 0x80 &&
                (p[2] & 0xC0) == 0x80) {
                cp = ((c & 0x0F) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3F);
                max = cp > max ? cp : max;
                d->chars[n++] = cp;
                p += 3;
                continue;
            }
            const char *msg;
            int len = utf8_decode(p, end, &cp, &msg);
            if (len == 0)
                return error_at(d, p, msg);
            if (cp > max)
                max = cp;
            d->chars[n++] = cp;
            p += len;
            continue;
        }
        /* A backslash escape (RFC 8259 section 7). */
        const unsigned char *esc = p;
        if (p + 1 >= end)
            return error_at(d, quote, "unterminated string");
        Py_UCS4 v;
        switch (p[1]) {
        case '"':
            v = '"';
            break;
        case '\\':
            v = '\\';
            break;
        case '/':
            v = '/';
            break;
        case 'b':
            v = '\b';
            break;
        case 'f':
            v = '\f';
            break;
        case 'n':
            v = '\n';
            break;
        case 'r':
            v = '\r';
            break;
        case 't':
            v = '\t';
            break;
        case 'u': {
            int h = read_hex4(p + 2, end);
            if (h < 0)
                return error_at(d, esc, "invalid \\u escape (expected 4 hex digits)");
            v = (Py_UCS4)h;
            if (v >= 0xDC00 && v <= 0xDFFF)
                return error_at(d, esc,
                                "lone low surrogate in \\u escape (no high surrogate "
                                "before it)");
            if (v >= 0xD800 && v <= 0xDBFF) {
                int l = -1;
                if (end - p >= 12 && p[6] == '\\' && p[7] == 'u')
                    l = read_hex4(p + 8, end);
                if (l < 0xDC00 || l > 0xDFFF)
                    return error_at(d, esc,
                                    "lone high surrogate in \\u escape (expected a "
                                    "\\uDC00-\\uDFFF escape next)");
                v = 0x10000 + ((v - 0xD800) << 10) + ((Py_UCS4)l - 0xDC00);
                p += 6;
            }
            p += 4;
            break;
        }
        default:
            return error_at(d, esc, "invalid escape in string");
        }
        p += 2;
        if (v > max)
            max = v;
        d->chars[n++] = v;
    }
}

/* A string and the position after it, returned in two registers. */
typedef struct {
    PyObject *str;
    const unsigned char *p;
} string_ret_t;

/* Parses the string whose opening quote is at quote (d->p). Plain ASCII (the common case)
 * is found 16 bytes at a time and copied once into a 1-byte str. Returns the new reference
 * (NULL with an exception set) and the position after the closing quote (d->p unchanged
 * on error), which parse_string stores: the position coming back in a register spares
 * the caller a reload of d->p that the call had just stored, on the critical path. */
static JSON_NOINLINE string_ret_t scan_string(decoder_t *d, const unsigned char *quote, int is_key)
{
    const unsigned char *s = quote + 1, *p = s, *end = d->end;
    string_ret_t r = {NULL, quote};
#if defined(__SSE2__)
    /* 16 bytes at a time: stop at the first '"', '\\', control byte or non-ASCII byte. */
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v);
        __m128i q = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
        __m128i b = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
        unsigned m =
            (unsigned)_mm_movemask_epi8(_mm_or_si128(v, _mm_or_si128(ctl, _mm_or_si128(q, b))));
        if (m != 0) {
            p += __builtin_ctz(m);
            goto scalar;
        }
        p += 16;
    }
#endif
    while (end - p >= 8 && !swar_special(load64(p)))
        p += 8;
#if defined(__SSE2__)
scalar:
#endif
    for (;;) {
        if (p >= end) {
            error_at(d, quote, "unterminated string");
            return r;
        }
        unsigned c = *p;
        if (c == '"')
            break;
        if (c == '\\' || c < 0x20 || c >= 0x80) {
            r.str = parse_string_slow(d, quote, p);
            r.p = d->p;
            return r;
        }
        p++;
    }
    size_t n = (size_t)(p - s);
    r.str = is_key && n <= KEY_CACHE_MAX_LEN ? cached_key(s, n, end) : ascii_str(s, n);
    r.p = p + 1;
    return r;
}

static inline __attribute__((always_inline)) PyObject *parse_string(decoder_t *d, int is_key)
{
    string_ret_t r = scan_string(d, d->p, is_key);
    d->p = r.p;
    return r.str;
}

/* ---- containers ------------------------------------------------------------------- */

/* Grows the scratch stack (doubling) and pushes v; takes v's reference even on failure. */
static JSON_NOINLINE int push_slow(decoder_t *d, PyObject *v)
{
    size_t cap = d->stack_cap * 2;
    PyObject **ns;
    if (d->stack == d->inline_stack) {
        ns = PyMem_Malloc(cap * sizeof(PyObject *));
        if (ns != NULL)
            memcpy(ns, d->stack, d->stack_len * sizeof(PyObject *));
    } else {
        ns = PyMem_Realloc(d->stack, cap * sizeof(PyObject *));
    }
    if (ns == NULL) {
        Py_DECREF(v);
        PyErr_NoMemory();
        return -1;
    }
    d->stack = ns;
    d->stack_cap = cap;
    d->stack[d->stack_len++] = v;
    return 0;
}

/* Pushes the new reference v onto the scratch stack, which owns it from then on. */
static inline int push(decoder_t *d, PyObject *v)
{
    if (JSON_UNLIKELY(d->stack_len == d->stack_cap))
        return push_slow(d, v);
    d->stack[d->stack_len++] = v;
    return 0;
}

/* The value at d->p, with strings and numbers (the usual members of arrays and objects)
 * tested before the full dispatch: an indirect jump through parse_value's switch was
 * mispredicted whenever items alternate in kind, as the coordinate pairs of GeoJSON do.
 * Always inlined into the array and object loops (GCC made it a call once the number path
 * was inlined into it); in-process A/B, three runs: geo_floats +6%, +8%, -1%; twitter +1%;
 * citm_catalog even. */
static inline __attribute__((always_inline)) PyObject *parse_item(decoder_t *d)
{
    if (JSON_LIKELY(d->p < d->end)) {
        unsigned c = *d->p;
        if (c == '"')
            return parse_string(d, 0);
        if ((unsigned)(c - '0') < 10 || c == '-') {
            PyObject *num;
            if (json_dec_number_fast(&d->p, d->end, &num))
                return num;
            return json_parse_number(&d->p, d->start, d->end);
        }
        /* An empty array ("blockIds": [] is 8,695 of citm_catalog's 10,451 arrays; +3%),
         * within the depth limit as parse_array's would be. */
        if (c == '[' && d->end - d->p >= 2 && d->p[1] == ']' && d->depth < JSON_MAX_DEPTH) {
            d->p += 2;
            return PyList_New(0);
        }
    }
    return parse_value(d);
}

static void drop_stack(decoder_t *d, size_t base)
{
    while (d->stack_len > base)
        Py_DECREF(d->stack[--d->stack_len]);
}

static int enter(decoder_t *d)
{
    if (JSON_UNLIKELY(++d->depth > JSON_MAX_DEPTH)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "nesting deeper than %d arrays/objects", JSON_MAX_DEPTH);
        error_at(d, d->p, msg);
        return -1;
    }
    return 0;
}

static PyObject *parse_array(decoder_t *d)
{
    const unsigned char *open = d->p;
    if (enter(d) < 0)
        return NULL;
    d->p++;
    skip_ws(d);
    size_t base = d->stack_len;
    PyObject *list = NULL;
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        d->depth--;
        return PyList_New(0);
    }
    for (;;) {
        PyObject *v = parse_item(d);
        if (v == NULL || push(d, v) < 0)
            goto fail;
        skip_ws(d);
        if (d->p >= d->end) {
            error_at(d, open, "unterminated array (expected ',' or ']')");
            goto fail;
        }
        unsigned char c = *d->p;
        if (c == ',') {
            d->p++;
            skip_ws(d);
            if (d->p < d->end && *d->p == ']') {
                error_at(d, d->p, "trailing comma before ']' is not allowed");
                goto fail;
            }
            continue;
        }
        if (c == ']') {
            d->p++;
            break;
        }
        error_at(d, d->p, "expected ',' or ']' after an array item");
        goto fail;
    }
    size_t n = d->stack_len - base;
    /* A list given an item array of exactly n: PyList_New(n) would zero the array that the
     * copy below fills anyway. On 3.11 release builds the list object comes straight from
     * _PyObject_GC_New and is tracked once complete (as PyList_New does), without
     * PyList_New's interpreter-state lookup and free-list test (coordinate pairs: 48,000
     * lists in geo_floats). */
    PyObject **items = PyMem_Malloc(n * sizeof(PyObject *));
    if (items == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
#if defined(JSON_FAST_OBJECTS)
    list = (PyObject *)_PyObject_GC_New(&PyList_Type);
#else
    list = PyList_New(0);
#endif
    if (list == NULL) {
        PyMem_Free(items);
        goto fail;
    }
    /* The list takes over the scratch stack's references; short lists (pairs) without a
     * call to the library's memcpy. */
    if (n <= 4) {
        for (size_t i = 0; i < n; i++)
            items[i] = d->stack[base + i];
    } else {
        memcpy(items, d->stack + base, n * sizeof(PyObject *));
    }
    ((PyListObject *)list)->ob_item = items;
    ((PyListObject *)list)->allocated = (Py_ssize_t)n;
    Py_SET_SIZE(list, (Py_ssize_t)n);
#if defined(JSON_FAST_OBJECTS)
    _PyObject_GC_TRACK(list);
#endif
    d->stack_len = base;
    d->depth--;
    return list;
fail:
    drop_stack(d, base);
    return NULL;
}

#if defined(JSON_DICT_BUILD)
/* CPython 3.11's smallest table (PyDict_LOG_MINSIZE): a keys object of this size may be
 * kept on the interpreter's free list when freed and handed to a later dict, so ours must
 * have the size CPython gives that table, which the same formula below does. */
#define DICT_LOG2_MIN 3

static inline Py_ssize_t dict_index(const PyDictKeysObject *dk, size_t i)
{
    uint8_t log2 = dk->dk_log2_size;
    if (log2 < 8)
        return ((const int8_t *)dk->dk_indices)[i];
    if (log2 < 16)
        return ((const int16_t *)dk->dk_indices)[i];
    return ((const int32_t *)dk->dk_indices)[i];
}

static inline void dict_set_index(PyDictKeysObject *dk, size_t i, Py_ssize_t ix)
{
    uint8_t log2 = dk->dk_log2_size;
    if (log2 < 8)
        ((int8_t *)dk->dk_indices)[i] = (int8_t)ix;
    else if (log2 < 16)
        ((int16_t *)dk->dk_indices)[i] = (int16_t)ix;
    else
        ((int32_t *)dk->dk_indices)[i] = (int32_t)ix;
}

/* Builds the dict of the n key, value pairs at kv (exact str keys, new references) as one
 * finished table: the hash index and entry array CPython's insertdict would have produced
 * (the same probe sequence, so lookups find every key), with no per-member call, lookup,
 * or reference count traffic; the dict takes over kv's references. Returns 1 with *out
 * set, 0 when the members contain a duplicate key (nothing built; PyDict_SetItem then
 * gives the stdlib's last-one-wins), or -1 with an exception set. */
static int build_dict(PyObject **kv, size_t n, PyObject **out)
{
    if (n >= ((size_t)1 << 28))
        return 0; /* index entries of 4 bytes cover every table built here */
    uint8_t log2 = DICT_LOG2_MIN;
    while (((((size_t)1 << log2) << 1) / 3) < n)
        log2++;
    uint8_t log2_bytes = log2 < 8 ? log2 : log2 < 16 ? log2 + 1 : log2 + 2;
    size_t size = (size_t)1 << log2, usable = (size << 1) / 3, mask = size - 1;
    int track = 0;
    for (size_t i = 0; i < n; i++) {
        PyObject *key = kv[2 * i], *value = kv[2 * i + 1];
        if (JSON_UNLIKELY(!PyUnicode_CheckExact(key)))
            return 0;
        if (((PyASCIIObject *)key)->hash == -1 && PyObject_Hash(key) == -1)
            return -1;
        /* As PyDict_SetItem does: a dict is tracked by the collector once it holds a
         * container (ours are lists and dicts; strs and numbers are never tracked). */
        track |= PyType_IS_GC(Py_TYPE(value));
    }
    PyDictKeysObject *dk = PyObject_Malloc(sizeof(PyDictKeysObject) + ((size_t)1 << log2_bytes) +
                                           sizeof(PyDictUnicodeEntry) * usable);
    if (dk == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    dk->dk_refcnt = 1;
    dk->dk_log2_size = log2;
    dk->dk_log2_index_bytes = log2_bytes;
    dk->dk_kind = DICT_KEYS_UNICODE;
    dk->dk_version = 0;
    dk->dk_usable = (Py_ssize_t)(usable - n);
    dk->dk_nentries = (Py_ssize_t)n;
    PyDictUnicodeEntry *ep = DK_UNICODE_ENTRIES(dk);
    if (log2 == DICT_LOG2_MIN) {
        /* The smallest table (at most 5 members: most objects of records): its 8 one-byte
         * index slots live in a register while the keys are placed and are stored once.
         * Through memory, every probe read back a byte just written (a libc memset call,
         * then the previous insertion's store), which was 15% of parse_value on
         * citm_catalog. Same slots as below, as dict_index/dict_set_index would give. */
        uint64_t idx = ~UINT64_C(0); /* DKIX_EMPTY (-1) in every byte */
        for (size_t i = 0; i < n; i++) {
            PyObject *key = kv[2 * i];
            Py_hash_t hash = ((PyASCIIObject *)key)->hash;
            size_t j = (size_t)hash & 7, perturb = (size_t)hash;
            for (int8_t ix; (ix = (int8_t)(idx >> (8 * j))) >= 0;) {
                PyObject *other = ep[ix].me_key;
                if (other == key || (((PyASCIIObject *)other)->hash == hash &&
                                     PyUnicode_Compare(other, key) == 0)) {
                    PyObject_Free(dk);
                    return 0;
                }
                perturb >>= 5;
                j = (j * 5 + perturb + 1) & 7;
            }
            idx = (idx & ~(UINT64_C(0xFF) << (8 * j))) | ((uint64_t)i << (8 * j));
            ep[i].me_key = key;
            ep[i].me_value = kv[2 * i + 1];
        }
        memcpy(dk->dk_indices, &idx, sizeof(idx));
        for (size_t i = n; i < usable; i++) {
            ep[i].me_key = NULL;
            ep[i].me_value = NULL;
        }
        goto table_done;
    }
    memset(dk->dk_indices, 0xff, (size_t)1 << log2_bytes); /* DKIX_EMPTY everywhere */
    for (size_t i = 0; i < n; i++) {
        PyObject *key = kv[2 * i];
        Py_hash_t hash = ((PyASCIIObject *)key)->hash;
        size_t j = (size_t)hash & mask, perturb = (size_t)hash;
        for (Py_ssize_t ix; (ix = dict_index(dk, j)) >= 0;) {
            PyObject *other = ep[ix].me_key;
            if (other == key ||
                (((PyASCIIObject *)other)->hash == hash && PyUnicode_Compare(other, key) == 0)) {
                PyObject_Free(dk);
                return 0;
            }
            /* CPython's open addressing (PERTURB_SHIFT 5). */
            perturb >>= 5;
            j = (j * 5 + perturb + 1) & mask;
        }
        dict_set_index(dk, j, (Py_ssize_t)i);
        ep[i].me_key = key;
        ep[i].me_value = kv[2 * i + 1];
    }
    memset(ep + n, 0, sizeof(PyDictUnicodeEntry) * (usable - n));
table_done:;
    /* PyDict_New gives a dict object from the interpreter's free list, versioned, sharing
     * the static empty table (and counting a reference to it, returned here). */
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        PyObject_Free(dk);
        return -1;
    }
    PyDictObject *mp = (PyDictObject *)dict;
    if (JSON_UNLIKELY(mp->ma_values != NULL || mp->ma_used != 0)) {
        Py_DECREF(dict);
        PyObject_Free(dk);
        return 0;
    }
    mp->ma_keys->dk_refcnt--;
    mp->ma_keys = dk;
    mp->ma_used = (Py_ssize_t)n;
    if (track)
        PyObject_GC_Track(dict);
    *out = dict;
    return 1;
}
#endif

/* Members are collected as key, value pairs on the scratch stack and the dict is built at
 * '}' with its final size known, which spares the rehashing of a dict grown one member at
 * a time. */
static PyObject *parse_object(decoder_t *d)
{
    const unsigned char *open = d->p;
    size_t base = d->stack_len;
    PyObject *dict = NULL;
    if (enter(d) < 0)
        return NULL;
    d->p++;
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        d->depth--;
        return PyDict_New();
    }
    for (;;) {
        if (d->p >= d->end) {
            error_at(d, open, "unterminated object (expected a string key)");
            goto fail;
        }
        unsigned char c = *d->p;
        if (c != '"') {
            if (c == '\'')
                error_at(d, d->p, "single quotes are not allowed (strings use '\"')");
            else if (c == '/')
                error_at(d, d->p, "comments are not allowed");
            else
                error_at(d, d->p, "expected a string key in double quotes");
            goto fail;
        }
        PyObject *key = parse_string(d, 1);
        if (key == NULL || push(d, key) < 0)
            goto fail;
        skip_ws(d);
        if (d->p >= d->end || *d->p != ':') {
            error_at(d, d->p, "expected ':' after an object key");
            goto fail;
        }
        d->p++;
        skip_ws(d);
        PyObject *value = parse_item(d);
        if (value == NULL || push(d, value) < 0)
            goto fail;
        skip_ws(d);
        if (d->p >= d->end) {
            error_at(d, open, "unterminated object (expected ',' or '}')");
            goto fail;
        }
        c = *d->p;
        if (c == ',') {
            d->p++;
            skip_ws(d);
            if (d->p < d->end && *d->p == '}') {
                error_at(d, d->p, "trailing comma before '}' is not allowed");
                goto fail;
            }
            continue;
        }
        if (c == '}') {
            d->p++;
            break;
        }
        error_at(d, d->p, "expected ',' or '}' after an object member");
        goto fail;
    }
    size_t n = (d->stack_len - base) / 2;
#if defined(JSON_DICT_BUILD)
    int built = build_dict(d->stack + base, n, &dict);
    if (built < 0)
        goto fail;
    if (built > 0) {
        d->stack_len = base; /* the dict owns the members now */
        d->depth--;
        return dict;
    }
#endif
    if ((dict = _PyDict_NewPresized((Py_ssize_t)n)) == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        /* In document order, so that of duplicate keys the last one wins, as in the stdlib. */
        if (PyDict_SetItem(dict, d->stack[base + 2 * i], d->stack[base + 2 * i + 1]) < 0)
            goto fail;
    }
    drop_stack(d, base);
    d->depth--;
    return dict;
fail:
    Py_XDECREF(dict);
    drop_stack(d, base);
    return NULL;
}

/* true, false and null: their 4-byte word (for false, "alse" after the 'f') is compared
 * as one 32-bit value; the library memcmp this replaced was 3% of decoding twitter.json. */
static inline PyObject *literal(decoder_t *d, const char *word, size_t n, PyObject *value)
{
    const unsigned char *w = d->p + (n - 4);
    uint32_t x, y;
    if ((size_t)(d->end - d->p) >= n) {
        memcpy(&x, w, 4);
        memcpy(&y, word + (n - 4), 4);
        if (x == y && (n == 4 || d->p[0] == (unsigned char)word[0])) {
            d->p += n;
            return Py_NewRef(value);
        }
    }
    return error_at(d, d->p, "invalid literal (expected true, false or null)");
}

static PyObject *parse_value(decoder_t *d)
{
    if (JSON_UNLIKELY(d->p >= d->end))
        return error_at(d, d->p, "expected a value, found the end of the document");
    switch (*d->p) {
    case '"':
        return parse_string(d, 0);
    case '{':
        return parse_object(d);
    case '[':
        return parse_array(d);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return json_parse_number(&d->p, d->start, d->end);
    case 't':
        return literal(d, "true", 4, Py_True);
    case 'f':
        return literal(d, "false", 5, Py_False);
    case 'n':
        return literal(d, "null", 4, Py_None);
    case 'N':
        return error_at(d, d->p, "NaN is not valid JSON");
    case 'I':
        return error_at(d, d->p, "Infinity is not valid JSON");
    case '\'':
        return error_at(d, d->p, "single quotes are not allowed (strings use '\"')");
    case '/':
        return error_at(d, d->p, "comments are not allowed");
    case ']':
    case '}':
    case ',':
        return error_at(d, d->p, "expected a value");
    default:
        return error_at(d, d->p, "unexpected character (expected a value)");
    }
}

void json_dec_begin(json_decoder_t *d, const char *p, size_t n)
{
    d->start = d->p = (const unsigned char *)p;
    d->end = d->start + n;
    d->depth = 0;
    d->stack = d->inline_stack;
    d->stack_len = 0;
    d->stack_cap = JSON_INLINE_STACK;
    d->chars = d->inline_chars;
    d->chars_cap = JSON_INLINE_CHARS;
}

void json_dec_end(json_decoder_t *d)
{
    drop_stack(d, 0);
    if (d->stack != d->inline_stack)
        PyMem_Free(d->stack);
    if (d->chars != d->inline_chars)
        PyMem_Free(d->chars);
}

PyObject *json_dec_value(json_decoder_t *d)
{
    return parse_value(d);
}

PyObject *json_dec_string(json_decoder_t *d, int is_key)
{
    return parse_string(d, is_key);
}

PyObject *json_decode(const char *p, size_t n)
{
    decoder_t d;
    PyObject *res = NULL;
    int gc_was_enabled = 0;
    json_dec_begin(&d, p, n);
    if (json_errors_init() < 0)
        goto done;
    /* Decoding allocates many containers and runs no Python code, so a collection in the
     * middle could only traverse the half-built (acyclic) result again and again; on large
     * documents that was most of the time. Collect at most once, after we return. */
    if (n >= 4096) /* small documents build too few containers to trigger a collection */
        gc_was_enabled = PyGC_Disable();
    skip_ws(&d);
    if (d.p == d.end) {
        error_at(&d, d.p, "empty document (expected a JSON value)");
        goto done;
    }
    res = parse_value(&d);
    if (res == NULL)
        goto done;
    skip_ws(&d);
    if (d.p != d.end) {
        Py_CLEAR(res);
        error_at(&d, d.p, "unexpected data after the JSON document");
    }
done:
    if (gc_was_enabled)
        PyGC_Enable();
    json_dec_end(&d);
    return res;
}
