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

const double json_exact_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

int json_fast_decimal_to_double(uint64_t w, int64_t q, double *out)
{
    if (w <= (UINT64_C(1) << 53) && q >= -22 && q <= 22) {
        double d = (double)w;
        *out = q < 0 ? d / json_exact_pow10[-q] : d * json_exact_pow10[q];
        return 1;
    }
    return json_eisel_lemire(w, q, out);
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

/* The end of the run of digits starting at p, 8 bytes at a time. */
static inline const unsigned char *skip_digits(const unsigned char *p, const unsigned char *end)
{
    while (end - p >= 8) {
        int k = json_digit_run8(json_load8(p));
        p += k;
        if (k < 8)
            return p;
    }
    while (p < end && is_digit(*p))
        p++;
    return p;
}

/* m * 10^n + the value of the n digits at a (m * 10^n + value < 2^64 is the caller's
 * bound: at most 19 digits in all). A last group of fewer than 8 digits is loaded whole
 * when 8 bytes remain and shifted so that the bytes after it drop out and zeros lead. */
static inline uint64_t add_digits(uint64_t m, const unsigned char *a, size_t n,
                                  const unsigned char *end)
{
    while (n >= 8) {
        m = m * 100000000u + json_eight_digits(json_load8(a));
        a += 8;
        n -= 8;
    }
    if (n == 0)
        return m;
    if (end - a >= 8)
        return m * json_pow10_u64[n] + json_eight_digits(json_load8(a) << (64 - 8 * n));
    while (n-- > 0)
        m = m * 10 + (uint64_t)(*a++ - '0');
    return m;
}

/* Reads the run of digits at *qp into *m, one 8-byte load per 8 digits: scanning and
 * converting share the load and the only branch (is the run over?), which matters since
 * the lengths of the numbers in a document are random to the branch predictor. Returns the
 * number of digits, or -1 when fewer than 8 bytes remain to load (the caller then takes
 * the general path). *m may wrap when more than 19 digits are read; callers check. */
static inline int read_run(const unsigned char **qp, const unsigned char *end, uint64_t *m)
{
    const unsigned char *q = *qp;
    int n = 0;
    for (;;) {
        if (end - q < 8)
            return -1;
        uint64_t x = json_load8(q);
        int k = json_digit_run8(x);
        *m = *m * json_pow10_u64[k] + json_first_digits(x, k);
        n += k;
        q += k;
        if (k < 8)
            break;
    }
    *qp = q;
    return n;
}

/* The common numbers (an integer of up to 18 digits, or a decimal with up to 19
 * significant digits and no exponent, with 8 bytes to read past each digit run) in one
 * pass. Returns 1 with *out set (a new reference, or NULL with an exception set) and *pp
 * advanced, or 0 with nothing done: the general path decides everything else, including
 * every syntax error. */
static inline int parse_number_fast(const unsigned char **pp, const unsigned char *end,
                                    PyObject **out)
{
    const unsigned char *p = *pp;
    int neg = *p == '-';
    p += neg;
    if (end - p < 2 || !is_digit(*p))
        return 0;
    uint64_t m = 0;
    int ni;
    if (*p == '0') {
        if (is_digit(p[1]))
            return 0;
        p++;
        ni = 0;
    } else if ((ni = read_run(&p, end, &m)) < 0) {
        return 0;
    }
    /* read_run stopped inside its 8-byte load, so *p is in the document. */
    if (p >= end)
        return 0;
    unsigned c = *p;
    if (c != '.') {
        if (c == 'e' || c == 'E' || ni > 18)
            return 0;
        long long v = (long long)m;
        *pp = p;
        *out = PyLong_FromLongLong(neg ? -v : v);
        return 1;
    }
    p++;
    int nf = read_run(&p, end, &m);
    if (nf <= 0 || ni + nf > 19 || (p < end && (*p == 'e' || *p == 'E')))
        return 0;
    double v;
    if (m == 0) {
        v = 0.0;
    } else if (!json_fast_decimal_to_double(m, -(int64_t)nf, &v)) {
        return 0;
    }
    *pp = p;
    *out = PyFloat_FromDouble(neg ? -v : v);
    return 1;
}

/* The grammar is checked first, finding the runs of integer and fraction digits 8 bytes
 * at a time; the significand is then read from those runs when it has at most 19 digits
 * (after the leading zeros of a fraction of "0."), and longer numbers take the exact slow
 * paths. */
PyObject *json_parse_number(const unsigned char **pp, const unsigned char *start,
                            const unsigned char *end)
{
    PyObject *fast;
    if (json_dec_number_fast(pp, end, &fast) || parse_number_fast(pp, end, &fast))
        return fast;
    const unsigned char *s = *pp, *p = *pp;
    int neg = 0, is_float = 0;
    int64_t exp10 = 0;

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
        p = skip_digits(p, end);
    }
    size_t ni = (size_t)(p - int_start);
    const unsigned char *frac = p;
    size_t nf = 0;
    if (p < end && *p == '.') {
        is_float = 1;
        p++;
        frac = p;
        p = skip_digits(p, end);
        if (p == frac)
            return syntax_error(start, end, p, "expected a digit after the decimal point");
        nf = (size_t)(p - frac);
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
        exp10 = eneg ? -x : x;
    }
    *pp = p;

    if (!is_float) {
        if (ni > 19)
            return slow_int(start, end, s, (size_t)(p - s));
        uint64_t m = add_digits(0, int_start, ni, end);
        if (ni <= 18) {
            long long v = (long long)m;
            return PyLong_FromLongLong(neg ? -v : v);
        }
        if (!neg)
            return PyLong_FromUnsignedLongLong(m);
        if (m <= (uint64_t)INT64_MAX)
            return PyLong_FromLongLong(-(long long)m);
        return slow_int(start, end, s, (size_t)(p - s));
    }
    uint64_t m;
    if (*int_start == '0') {
        /* "0.000ddd": the zeros after the point only scale the digits that follow. */
        const unsigned char *f = frac, *frac_end = frac + nf;
        while (f < frac_end && *f == '0')
            f++;
        if (f == frac_end)
            return PyFloat_FromDouble(neg ? -0.0 : 0.0);
        if (frac_end - f > 19)
            return slow_float(s, (size_t)(p - s));
        m = add_digits(0, f, (size_t)(frac_end - f), end);
    } else {
        if (ni + nf > 19)
            return slow_float(s, (size_t)(p - s));
        m = add_digits(add_digits(0, int_start, ni, end), frac, nf, end);
    }
    double v;
    if (json_fast_decimal_to_double(m, exp10 - (int64_t)nf, &v))
        return PyFloat_FromDouble(neg ? -v : v);
    return slow_float(s, (size_t)(p - s));
}
