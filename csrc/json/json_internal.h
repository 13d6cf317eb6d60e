/*
 * Private declarations shared by the files of the JSON codec (csrc/json). Nothing here is
 * used outside the codec: the public contract is json.h. The exception objects are created
 * once by json_module_init and owned by this module (strong references, never released
 * because the extension is never unloaded).
 */
#ifndef DB_JSON_INTERNAL_H
#define DB_JSON_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "json/dtoa.h"
#include "json/json.h"

/* The two exception classes (new references held for the life of the process). */
extern PyObject *json_EncodeError;
extern PyObject *json_DecodeError;

/* errors.c: creates the exception classes. Returns 0 or -1 with an exception set. */
int json_errors_init(void);

/* errors.c: raises JSONDecodeError for the document p[0..n) at byte offset pos. The
 * exception's pos, lineno and colno count characters (code points), as the stdlib does
 * for str input; doc is the document decoded as UTF-8 with replacement characters. */
void json_raise_decode_error(const char *p, size_t n, size_t pos, const char *msg);

/* decode_number.c: value of w * 10^q (w nonzero, exact) when a fast path can decide it
 * exactly; returns 1 and sets *out, or 0 when the caller must use a correctly rounded
 * slow path. */
int json_fast_decimal_to_double(uint64_t w, int64_t q, double *out);

/* ---- the digits of numbers, 8 bytes at a time (decode_number.c, inlined by decode.c) */

/* Powers of ten: exact doubles 1e0..1e22 (decode_number.c); the integers 1..1e19 and the
 * 128-bit table are dtoa.h's. */
extern const double json_exact_pow10[23];

/* 8 bytes in memory order, the first in the lowest byte whatever the host's order. */
static inline uint64_t json_load8(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return x;
}

/* How many of the 8 bytes of x (in memory order) are ASCII digits before the first one
 * that is not. A byte is a digit when its high nibble is 3 and stays 3 after adding 6;
 * the addition can carry into the next byte only out of a byte >= 0xFA, which is itself
 * not a digit, so the first mismatch is exact. */
static inline int json_digit_run8(uint64_t x)
{
    const uint64_t highs = UINT64_C(0xF0F0F0F0F0F0F0F0);
    uint64_t t = (x & highs) | (((x + UINT64_C(0x0606060606060606)) & highs) >> 4);
    t ^= UINT64_C(0x3333333333333333);
    return t == 0 ? 8 : __builtin_ctzll(t) >> 3;
}

/* The value of 8 ASCII digits x (first digit in the lowest byte): pairs, then quads, then
 * the whole, each step one multiply; no lane can overflow into the next (99, 9999 and
 * 99999999 fit their lanes). */
static inline uint64_t json_eight_digits(uint64_t x)
{
    x &= UINT64_C(0x0F0F0F0F0F0F0F0F);
    x = (x * 10 + (x >> 8)) & UINT64_C(0x00FF00FF00FF00FF);
    x = (x * 100 + (x >> 16)) & UINT64_C(0x0000FFFF0000FFFF);
    return (x * 10000 + (x >> 32)) & UINT64_C(0xFFFFFFFF);
}

/* The value of the first k (0..8) digits of x: the bytes after them are shifted out and
 * zeros lead (two shifts, since one of 64 bits is undefined for k == 0). */
static inline uint64_t json_first_digits(uint64_t x, int k)
{
    unsigned sh = 4 * (unsigned)(8 - k);
    return json_eight_digits((x << sh) << sh);
}

/* A new float of value v. decode.c, which is built against CPython 3.11's internal headers
 * (JSON_FAST_OBJECTS), allocates it as the interpreter's float_dealloc expects to free it
 * (PyObject_Malloc, type, reference count, value) without PyFloat_FromDouble's lookups of
 * the thread and interpreter state and of the float free list, and without its call to
 * _Py_NewReference unless tracemalloc is tracing (which re-attributes the block); on
 * geo_floats that was 7% of loads. Other builds and files use PyFloat_FromDouble. */
#if defined(JSON_FAST_OBJECTS)
static inline PyObject *json_new_float(double v)
{
    PyFloatObject *op = (PyFloatObject *)PyObject_Malloc(sizeof(PyFloatObject));
    if (JSON_UNLIKELY(op == NULL))
        return PyErr_NoMemory();
    Py_SET_TYPE(op, &PyFloat_Type);
    if (JSON_UNLIKELY(_Py_tracemalloc_config.tracing))
        _Py_NewReference((PyObject *)op);
    else
        Py_SET_REFCNT(op, 1);
    op->ob_fval = v;
    return (PyObject *)op;
}

/* A new int of value v, |v| < 2^30 (one 30-bit digit), outside the interpreter's cached
 * small ints (-5..256), which come from PyLong_FromLongLong; allocated as above. */
static inline PyObject *json_new_int(long long v)
{
    if (JSON_UNLIKELY(v >= -5 && v <= 256) || v <= -(long long)PyLong_MASK ||
        v >= (long long)PyLong_MASK)
        return PyLong_FromLongLong(v);
    PyLongObject *op = (PyLongObject *)PyObject_Malloc(sizeof(PyLongObject));
    if (JSON_UNLIKELY(op == NULL))
        return PyErr_NoMemory();
    Py_SET_TYPE(op, &PyLong_Type);
    if (JSON_UNLIKELY(_Py_tracemalloc_config.tracing))
        _Py_NewReference((PyObject *)op);
    else
        Py_SET_REFCNT(op, 1);
    Py_SET_SIZE(op, v < 0 ? -1 : 1);
    op->ob_digit[0] = (digit)(v < 0 ? -v : v);
    return (PyObject *)op;
}
#else
#define json_new_float PyFloat_FromDouble
#define json_new_int   PyLong_FromLongLong
#endif

/* The value of w * 10^q (w nonzero) by the Eisel-Lemire method (our implementation of the
 * published idea): w normalised to 64 bits times the high word of the truncated 128-bit
 * 10^q (dtoa.h), the low word added only when the bits below the 54 kept are all ones.
 * Returns 1 with *out set when the truncation provably cannot change the rounding, 0 for
 * the cases it leaves to a slower exact path: a product too close to a rounding boundary,
 * an exact tie (round-half-even needs what the truncated product cannot see), subnormals,
 * overflow, q outside [JSON_POW10_MIN, 308]. test_json_decode.py checks it against float()
 * on the boundaries. */
static inline int json_eisel_lemire(uint64_t w, int64_t q, double *out)
{
    if (JSON_UNLIKELY(q < JSON_POW10_MIN || q > 308))
        return 0;
    int lz = __builtin_clzll(w);
    w <<= lz;
    const uint64_t *t = json_pow10_table[q - JSON_POW10_MIN];
    unsigned __int128 prod = (unsigned __int128)w * t[0];
    uint64_t hi = (uint64_t)(prod >> 64), lo = (uint64_t)prod;
    if (JSON_UNLIKELY((hi & 0x1FF) == 0x1FF)) {
        /* The bits below the 54 we keep are all ones: the truncated low word of 10^q
         * might carry into them. Add its contribution. */
        uint64_t hi2 = (uint64_t)(((unsigned __int128)w * t[1]) >> 64);
        uint64_t nlo = lo + hi2;
        if (nlo < lo)
            hi++;
        lo = nlo;
        /* Still all ones: the product is too close to a rounding boundary to decide. */
        if ((hi & 0x1FF) == 0x1FF && lo == UINT64_MAX)
            return 0;
    }
    int upper = (int)(hi >> 63);
    uint64_t m = hi >> (upper + 9); /* 54 bits: 53 plus a rounding bit */
    /* value = m * 2^(9 + upper + floor(q*log2(10)) + 1 - lz); see gen_pow10.py. */
    int64_t e2 = (int64_t)((q * 217706) >> 16) + 1 - lz + 9 + upper;
    /* An exact tie (rounding bit set, nothing below it) needs round-half-even, which the
     * truncated product cannot see reliably: leave it to the slow path. */
    uint64_t below = hi & ((UINT64_C(1) << (upper + 9)) - 1);
    /* One branch, almost never taken: with && the compiler tested m & 1 first, a coin toss
     * for the branch predictor. */
    if (JSON_UNLIKELY((int)(m & 1) & (below == 0) & (lo <= 1)))
        return 0;
    m = (m + 1) >> 1;
    e2 += 1;
    if (m >= (UINT64_C(1) << 53)) {
        m >>= 1;
        e2 += 1;
    }
    int64_t biased = e2 + 52 + 1023;
    if (JSON_UNLIKELY(biased <= 0 || biased >= 0x7FF))
        return 0; /* subnormal or overflow */
    uint64_t bits = ((uint64_t)biased << 52) | (m & ((UINT64_C(1) << 52) - 1));
    memcpy(out, &bits, sizeof(bits));
    return 1;
}

/* The usual numbers of documents, straight-line: an integer of 1 to 15 digits, or one with
 * a fraction of 1 to 15 digits (19 significant digits in all) and no exponent, at least
 * 40 bytes before the end of the document (so every 8-byte load is in bounds). Integers
 * of 8 to 15 digits (citm_catalog's 9-digit ids) used to fail here and again in
 * json_parse_number before its own reader took them. The fraction's two 8-byte words are
 * both loaded and the second one's digits counted only when the first is all digits,
 * without a branch: fraction lengths on either side of 8
 * alternate at random in coordinate data (geo_floats: 6 and 14), and the branch on them
 * was mispredicted half the time. A significand of at most 2^53 is divided by its power
 * of ten (both exact doubles, so the IEEE division rounds correctly: Clinger's fast
 * path); a longer one goes through the Eisel-Lemire product, which decides all but about
 * 1 in 500 with integer arithmetic. Eisel-Lemire first for every length was measured
 * 5.6% slower on geo_floats: its instructions cost more than the division's latency, and
 * removing the division altogether changed nothing. Returns 1 with *out set (a
 * new reference, or NULL with an exception set) and *pp advanced, or 0 with nothing done:
 * json_parse_number decides everything else, every error included. Always inlined: as a
 * call (GCC's choice at -O2 once it grew) the result went through memory and the float's
 * value was spilled around the allocation; in-process A/B: geo_floats +3%, twitter +2%,
 * citm_catalog within noise. */
static inline __attribute__((always_inline)) int
json_dec_number_fast(const unsigned char **pp, const unsigned char *end, PyObject **out)
{
    const unsigned char *p = *pp;
    int neg = *p == '-';
    p += neg;
    if (JSON_UNLIKELY(end - p < 40))
        return 0;
    uint64_t x = json_load8(p);
    int ni = json_digit_run8(x);
    /* No digit, or a leading zero (an error). */
    if (ni == 0 || ((x & 0xFF) == '0' && ni > 1))
        return 0;
    uint64_t m = json_first_digits(x, ni);
    if (JSON_UNLIKELY(ni == 8)) {
        /* A second word only for long integer parts (a branch that follows the document:
         * reading it always cost coordinates 6% in instructions). */
        uint64_t xb = json_load8(p + 8);
        int k = json_digit_run8(xb);
        if (k == 8)
            return 0; /* 16 digits or more */
        m = m * json_pow10_u64[k] + json_first_digits(xb, k);
        ni += k;
    }
    p += ni;
    unsigned c = *p;
    if (c != '.') {
        if (c == 'e' || c == 'E')
            return 0;
        *pp = p;
        *out = json_new_int(neg ? -(long long)m : (long long)m);
        return 1;
    }
    p++;
    /* p is at most 17 bytes past *pp, so both loads end within the 40 bytes checked. */
    uint64_t x1 = json_load8(p), x2 = json_load8(p + 8);
    int n1 = json_digit_run8(x1);
    int n2 = json_digit_run8(x2) & -(int)(n1 == 8);
    int nf = n1 + n2;
    if (JSON_UNLIKELY(n1 == 0 || n2 == 8 || ni + nf > 19))
        return 0;
    m = m * json_pow10_u64[n1] + json_first_digits(x1, n1);
    m = m * json_pow10_u64[n2] + json_first_digits(x2, n2);
    p += nf;
    c = *p;
    if (c == 'e' || c == 'E')
        return 0;
    double v;
    if (m <= (UINT64_C(1) << 53))
        v = (double)m / json_exact_pow10[nf];
    else if (!json_eisel_lemire(m, -(int64_t)nf, &v))
        return 0;
    *pp = p;
    *out = json_new_float(neg ? -v : v);
    return 1;
}

/* The decoder's state for one document (decode.c). decode_model.c drives the same state
 * with a model's plan, so the byte-level rules (strings, numbers, whitespace, errors) are
 * the decoder's own and exist once. */
#define JSON_INLINE_STACK 128
#define JSON_INLINE_CHARS 512
typedef struct {
    const unsigned char *start, *p, *end;
    int depth;
    PyObject **stack;
    size_t stack_len, stack_cap;
    Py_UCS4 *chars;
    size_t chars_cap;
    PyObject *inline_stack[JSON_INLINE_STACK];
    Py_UCS4 inline_chars[JSON_INLINE_CHARS];
} json_decoder_t;

/* decode.c: prepares d for the document p[0..n) / releases its scratch memory. */
void json_dec_begin(json_decoder_t *d, const char *p, size_t n);
void json_dec_end(json_decoder_t *d);
/* decode.c: parses the value at d->p (after whitespace was skipped); a new reference, or
 * NULL with JSONDecodeError or MemoryError set. */
PyObject *json_dec_value(json_decoder_t *d);
/* decode.c: parses the string whose opening quote is at d->p; is_key selects the cache
 * of short keys. Same result convention as json_dec_value. */
PyObject *json_dec_string(json_decoder_t *d, int is_key);
/* decode_number.c: parses the number at *pp (advanced past it); start/end bound the
 * document for error positions. A new int or float, or NULL with an exception set. */
PyObject *json_parse_number(const unsigned char **pp, const unsigned char *start,
                            const unsigned char *end);

static inline int json_is_ws_not_space(unsigned char c)
{
    return c == '\n' || c == '\r' || c == '\t';
}

/* Skips RFC 8259 whitespace: returns the first byte at or after p that is not whitespace
 * (or end). Compact documents have none (the first test). Indented ones (citm_catalog.json
 * is 71% whitespace) have one space after each ':' (the second test) and a newline
 * followed by a run of spaces before each member, mostly 6 to 28 long: the newline is
 * stepped over, then the run is skipped 32 bytes at a time (two 16-byte comparisons
 * against ' ', one test), so most runs take one step. */
static __attribute__((noinline, unused)) const unsigned char *
json_dec_skip_ws_run(const unsigned char *p, const unsigned char *end)
{
    for (;;) {
        while (p < end && json_is_ws_not_space(*p))
            p++;
#if defined(__SSE2__)
        const __m128i spaces = _mm_set1_epi8(' ');
        for (;;) {
            if (end - p >= 32) {
                __m128i a = _mm_loadu_si128((const __m128i *)p);
                __m128i b = _mm_loadu_si128((const __m128i *)(p + 16));
                uint32_t m = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a, spaces)) |
                             ((uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(b, spaces)) << 16);
                if (m != UINT32_MAX) {
                    p += __builtin_ctz(~m);
                    break;
                }
                p += 32;
                continue;
            }
            if (end - p >= 16) {
                __m128i a = _mm_loadu_si128((const __m128i *)p);
                unsigned m = ~(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(a, spaces)) & 0xFFFFu;
                if (m != 0) {
                    p += __builtin_ctz(m);
                    break;
                }
                p += 16;
            }
            while (p < end && *p == ' ')
                p++;
            break;
        }
#else
        while (p < end && *p == ' ')
            p++;
#endif
        if (p < end && json_is_ws_not_space(*p))
            continue;
        break;
    }
    return p;
}

/* The two common cases inline at every call site (GCC had made the whole function one call
 * per use: 10-14% of loads on the indented corpora, mostly call overhead around its first
 * test); runs of whitespace in json_dec_skip_ws_run. */
static inline __attribute__((always_inline)) void json_dec_skip_ws(json_decoder_t *d)
{
    const unsigned char *p = d->p, *end = d->end;
    if (JSON_LIKELY(p<end && * p> ' '))
        return;
    if (end - p >= 2 && p[0] == ' ' && p[1] > ' ') {
        d->p = p + 1;
        return;
    }
    /* The new position comes back in a register: stored by the callee and reloaded here,
     * it went through memory on the decoder's critical path (the next token's address). */
    d->p = json_dec_skip_ws_run(p, end);
}

/* decode_model.c: adds the ModelDecoder type to the extension module; 0 or -1. */
int json_model_decoder_init(PyObject *module);

/* The encoder's state for one json_encode call. stack[] holds the containers (and the
 * objects handed to default/dataclass/pydantic conversion) currently being encoded, so
 * that hitting the depth limit can tell a circular reference from deep nesting. */
struct json_encoder {
    db_buf_t *out;
    /* Non-NULL when out->data is the inside of this bytes object (dumps writes straight
     * into its result); growth then goes through _PyBytes_Resize instead of realloc. */
    PyObject *bytes;
    unsigned flags;
    PyObject *default_fn; /* borrowed */
    int depth;
    /* How many more keys this call may offer to encode.c's key text cache: a document
     * with more distinct keys than the cache has slots would otherwise replace a slot on
     * almost every member. */
    int key_budget;
    PyObject *stack[JSON_MAX_DEPTH + 1];
};
typedef struct json_encoder json_encoder_t;

/* encode.c: the slow path of json_reserve; 0, or -1 with MemoryError set. */
int json_enc_grow(json_encoder_t *e, size_t extra);

/* Makes room for extra more bytes after out->len; 0, or -1 with MemoryError set. */
static inline int json_reserve(json_encoder_t *e, size_t extra)
{
    if (JSON_LIKELY(e->out->cap - e->out->len >= extra))
        return 0;
    return json_enc_grow(e, extra);
}

/* encode.c: dumps' core: encodes obj straight into a new bytes object. */
PyObject *json_encode_to_bytes(PyObject *obj, const json_enc_opts_t *opts);

/* encode.c: encodes any value; the entry point for recursion from encode_types.c. */
int json_encode_value(json_encoder_t *e, PyObject *obj);
/* encode.c: writes a quoted, escaped JSON string for the str (or str subclass) s. */
int json_encode_str(json_encoder_t *e, PyObject *s);
/* encode.c: enters one nesting level for obj; -1 with JSONEncodeError past the limit. */
int json_enc_push(json_encoder_t *e, PyObject *obj);

static inline void json_enc_pop(json_encoder_t *e)
{
    e->depth--;
}

/* encode.c: writes the exact int obj when it fits in 64 bits: 0, 1 (too large: nothing
 * written) or -1 with an exception set. */
int json_write_int64(json_encoder_t *e, PyObject *obj);
/* encode.c: writes a float; 0, or -1 with JSONEncodeError set for NaN and Infinity. */
int json_write_float(json_encoder_t *e, double v);

/* encode.c: encodes subclasses of str, int, float, dict, list and tuple; returns 1 when
 * obj is none of them, else 0 or -1 as json_encode_value. */
int json_encode_core_subclass(json_encoder_t *e, PyObject *obj);

/* encode_types.c: encodes what the fast paths of encode.c do not know: subclasses of the
 * core types, datetime/date/time, UUID, Enum, Decimal, dataclasses, pydantic models and
 * finally `default`. Returns 0 or -1 with an exception set. */
int json_encode_other(json_encoder_t *e, PyObject *obj);
/* encode_model.c: writes a pydantic v2 model (any class with __pydantic_serializer__):
 * natively from its __dict__ when its class is plain (see src/data_bridge/_model_plan.py)
 * and the values have the declared types, else through the serializer's
 * to_json(obj, by_alias=True). Returns 0 or -1 with an exception set. */
int json_encode_model(json_encoder_t *e, PyObject *obj);
/* encode_model.c: the same for an object whose class is already known to be a model
 * (cached); returns 1, with nothing written, when the class is not in the cache. */
int json_encode_cached_model(json_encoder_t *e, PyObject *obj);

/* encode_types.c: the str form of a non-str dict key (JSON_OPT_NON_STR_KEYS): a new
 * reference, or NULL with JSONEncodeError set when the key has no string form. */
PyObject *json_key_to_str(json_encoder_t *e, PyObject *key);
/* encode_types.c: RFC 3339 text of a datetime, date or time into buf (>= 64 bytes);
 * returns the length, 0 when obj is none of those types, -1 with an exception set. */
int json_format_datetime(PyObject *obj, unsigned flags, char *buf);

#endif
