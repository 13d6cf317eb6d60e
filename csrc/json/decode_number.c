/*
 * Number parsing for the JSON decoder (owned by the JSON codec): the RFC 8259 number
 * grammar with precise errors, integers of any size, and correctly rounded doubles.
 *
 * Integers of up to 19 digits are built from a uint64; longer ones go through
 * PyLong_FromString. A float whose significand fits 19 digits is converted by one of two
 * exact fast paths: Clinger's (significand and power of ten both exact doubles, so one
 * IEEE multiplication or division rounds correctly), else the Eisel-Lemire method (a
 * 64x128-bit product with a truncated power of ten from pow10_table.h, accepted only when
 * the truncation provably cannot change the rounding). Our own implementation of the
 * published method; anything it cannot decide (more digits, subnormals, overflow, exact
 * halfway cases) falls back to PyOS_string_to_double, which is correctly rounded.
 */
#include <stdint.h>
#include <string.h>

#include "json/json_internal.h"
#include "json/pow10_table.h"

typedef unsigned __int128 u128;

static const double exact_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

int json_fast_decimal_to_double(uint64_t w, int64_t q, double *out)
{
    if (w <= (UINT64_C(1) << 53) && q >= -22 && q <= 22) {
        double d = (double)w;
        *out = q < 0 ? d / exact_pow10[-q] : d * exact_pow10[q];
        return 1;
    }
    if (q < JSON_POW10_MIN || q > 308)
        return 0;
    /* Normalise w to 64 significant bits and multiply by the high word of 10^q. */
    int lz = __builtin_clzll(w);
    w <<= lz;
    const uint64_t *t = json_pow10_table[q - JSON_POW10_MIN];
    u128 prod = (u128)w * t[0];
    uint64_t hi = (uint64_t)(prod >> 64), lo = (uint64_t)prod;
    if ((hi & 0x1FF) == 0x1FF) {
        /* The bits below the 54 we keep are all ones: the truncated low word of 10^q
         * might carry into them. Add its contribution. */
        u128 prod2 = (u128)w * t[1];
        uint64_t hi2 = (uint64_t)(prod2 >> 64);
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
    if ((m & 1) && below == 0 && lo <= 1)
        return 0;
    m = (m + 1) >> 1;
    e2 += 1;
    if (m >= (UINT64_C(1) << 53)) {
        m >>= 1;
        e2 += 1;
    }
    int64_t biased = e2 + 52 + 1023;
    if (biased <= 0 || biased >= 0x7FF)
        return 0; /* subnormal or overflow */
    uint64_t bits = ((uint64_t)biased << 52) | (m & ((UINT64_C(1) << 52) - 1));
    memcpy(out, &bits, sizeof(bits));
    return 1;
}

static PyObject *syntax_error(const unsigned char *start, const unsigned char *end,
                              const unsigned char *at, const char *msg)
{
    json_raise_decode_error((const char *)start, (size_t)(end - start), (size_t)(at - start), msg);
    return NULL;
}

/* Copies s[0..n) to a NUL-terminated buffer for the C-string based slow paths. */
static char *nul_copy(const unsigned char *s, size_t n, char *small, size_t small_size)
{
    char *buf = n < small_size ? small : PyMem_Malloc(n + 1);
    if (buf == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

static PyObject *slow_int(const unsigned char *start, const unsigned char *end,
                          const unsigned char *s, size_t n)
{
    char small[64];
    char *buf = nul_copy(s, n, small, sizeof(small));
    if (buf == NULL)
        return NULL;
    PyObject *res = PyLong_FromString(buf, NULL, 10);
    if (buf != small)
        PyMem_Free(buf);
    if (res == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
        /* CPython refuses to convert more than sys.get_int_max_str_digits() digits. */
        PyErr_Clear();
        return syntax_error(start, end, s,
                            "integer has more digits than sys.get_int_max_str_digits() allows");
    }
    return res;
}

static PyObject *slow_float(const unsigned char *s, size_t n)
{
    char small[64];
    char *buf = nul_copy(s, n, small, sizeof(small));
    if (buf == NULL)
        return NULL;
    /* No overflow exception: 1e400 becomes inf, as with the stdlib's float(). */
    double v = PyOS_string_to_double(buf, NULL, NULL);
    if (buf != small)
        PyMem_Free(buf);
    if (v == -1.0 && PyErr_Occurred())
        return NULL;
    return PyFloat_FromDouble(v);
}

static inline int is_digit(unsigned char c)
{
    return (unsigned)(c - '0') < 10;
}

PyObject *json_parse_number(const unsigned char **pp, const unsigned char *start,
                            const unsigned char *end)
{
    const unsigned char *s = *pp, *p = *pp;
    int neg = 0, is_float = 0, truncated = 0;
    uint64_t m = 0;
    int nd = 0;      /* significant digits held in m */
    int64_t e10 = 0; /* m * 10^e10 is the value (when not truncated) */
    size_t int_digits;

    if (*p == '-') {
        neg = 1;
        p++;
        if (p == end || !is_digit(*p)) {
            if (p < end && *p == 'I')
                return syntax_error(start, end, s, "-Infinity is not valid JSON");
            return syntax_error(start, end, p, "expected a digit after '-'");
        }
    }
    const unsigned char *int_start = p;
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p))
            return syntax_error(start, end, int_start, "leading zeros are not allowed");
    } else {
        while (p < end && is_digit(*p)) {
            if (nd < 19) {
                m = m * 10 + (uint64_t)(*p - '0');
                nd++;
            } else {
                truncated = 1;
                e10++;
            }
            p++;
        }
    }
    int_digits = (size_t)(p - int_start);
    if (p < end && *p == '.') {
        is_float = 1;
        p++;
        if (p == end || !is_digit(*p))
            return syntax_error(start, end, p, "expected a digit after the decimal point");
        while (p < end && is_digit(*p)) {
            unsigned dgt = (unsigned)(*p - '0');
            if (m == 0 && dgt == 0) {
                e10--; /* leading zero of the fraction: not significant */
            } else if (nd < 19) {
                m = m * 10 + dgt;
                nd++;
                e10--;
            } else {
                truncated = 1;
            }
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_float = 1;
        p++;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        if (p == end || !is_digit(*p))
            return syntax_error(start, end, p, "expected a digit in the exponent");
        int64_t x = 0;
        while (p < end && is_digit(*p)) {
            if (x < 1000000) /* saturate: beyond this the value is 0 or inf anyway */
                x = x * 10 + (*p - '0');
            p++;
        }
        e10 += eneg ? -x : x;
    }
    *pp = p;

    if (!is_float) {
        if (int_digits <= 18) {
            long long v = (long long)m;
            return PyLong_FromLongLong(neg ? -v : v);
        }
        if (int_digits == 19 && !neg)
            return PyLong_FromUnsignedLongLong(m);
        if (int_digits == 19 && m <= (uint64_t)INT64_MAX)
            return PyLong_FromLongLong(-(long long)m);
        return slow_int(start, end, s, (size_t)(p - s));
    }
    if (m == 0 && !truncated)
        return PyFloat_FromDouble(neg ? -0.0 : 0.0);
    double v;
    if (!truncated && json_fast_decimal_to_double(m, e10, &v))
        return PyFloat_FromDouble(neg ? -v : v);
    return slow_float(s, (size_t)(p - s));
}
