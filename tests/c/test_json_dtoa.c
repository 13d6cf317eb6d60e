/*
 * Unit tests for csrc/json/dtoa.c, the shortest round-trip float printer: json_dtoa and
 * json_dtoa2 against a slow reference built from the C library (the shortest "%.*e" that
 * strtod reads back, and its neighbours in the last digit, which matter at powers of two
 * where the rounding interval is lopsided), laid out as Python's repr(float) does. Inputs:
 * random bit patterns, random 15/16/17-digit decimals, powers of two and ten, subnormals,
 * every exponent's smallest and largest significand, exact decimals (integers times
 * powers of two, dyadic fractions: the cases dtoa.c's fast path leaves to its exact one),
 * and values around the switches between fixed and exponent notation (1e16, 1e-4).
 * dtoa.c is included whole, so that the test needs no Python.
 */
#include "json/dtoa.c"
#include "tap.h"

#include <float.h>
#include <math.h> /* isfinite, signbit: macros, no libm */
#include <stdio.h>
#include <stdlib.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void)
{
    /* xorshift64*: a fixed seed, so that a failure reproduces. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Du;
}

static double from_bits(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

/* The double next to x > 0 (dir -1: below, 1: above); no libm needed. */
static double neighbour(double x, int dir)
{
    uint64_t b;
    memcpy(&b, &x, sizeof(b));
    return from_bits(b + (uint64_t)(int64_t)dir);
}

/* Whether the decimal m * 10^e reads back as x. */
static int reads_back(uint64_t m, int e, double x)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%llue%d", (unsigned long long)m, e);
    return strtod(buf, NULL) == x;
}

/* The closest decimal of prec + 1 significant digits that reads back as x (x > 0): the
 * correctly rounded one (glibc's printf is exact), or else, at a power of two where the
 * rounding interval is narrower below, the neighbour above or below it in its last digit.
 * 0 if none. */
static int shortest_at(double x, int prec, uint64_t *out, int *out_e)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%.*e", prec, x);
    uint64_t m = 0;
    const char *s = buf;
    for (; *s != 'e'; s++)
        if (*s != '.')
            m = m * 10 + (uint64_t)(*s - '0');
    int e = atoi(s + 1) - prec;
    *out_e = e;
    if (reads_back(m, e, x))
        *out = m;
    else if (reads_back(m + 1, e, x))
        *out = m + 1;
    else if (m > 1 && reads_back(m - 1, e, x))
        *out = m - 1;
    else
        return 0;
    return 1;
}

/* repr(x) for finite x, the slow way. */
static int reference(double x, char *out)
{
    char *p = out;
    if (signbit(x))
        *p++ = '-';
    x = x < 0 ? -x : x;
    if (x == 0) {
        memcpy(p, "0.0", 3);
        return (int)(p - out) + 3;
    }
    /* Binary search on the precision: if some decimal of p digits reads back, one of p + 1
     * digits does too (append a zero). */
    uint64_t best = 0;
    int best_e = 0;
    int lo = 0, hi = 16;
    while (lo <= hi) {
        int prec = (lo + hi) / 2;
        uint64_t found = 0;
        int found_e = 0;
        if (shortest_at(x, prec, &found, &found_e)) {
            best = found;
            best_e = found_e;
            hi = prec - 1;
        } else {
            lo = prec + 1;
        }
    }
    while (best % 10 == 0) {
        best /= 10;
        best_e++;
    }
    char digits[32];
    int n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)best);
    int decpt = n + best_e; /* x = 0.digits * 10^decpt */
    if (decpt > 0 && decpt <= 16) {
        if (decpt >= n) {
            int k = sprintf(p, "%s", digits);
            memset(p + k, '0', (size_t)(decpt - n));
            memcpy(p + decpt, ".0", 2);
            return (int)(p - out) + decpt + 2;
        }
        return (int)(p - out) + sprintf(p, "%.*s.%s", decpt, digits, digits + decpt);
    }
    if (decpt <= 0 && decpt > -4) {
        memcpy(p, "0.000", 5);
        return (int)(p - out) + 2 - decpt + sprintf(p + 2 - decpt, "%s", digits);
    }
    int x10 = decpt - 1;
    if (n == 1)
        return (int)(p - out) + sprintf(p, "%ce%c%02d", digits[0], x10 < 0 ? '-' : '+', abs(x10));
    return (int)(p - out) +
           sprintf(p, "%c.%se%c%02d", digits[0], digits + 1, x10 < 0 ? '-' : '+', abs(x10));
}

static long checked, failures;

static void check(double x)
{
    char got[JSON_DTOA_MAX], want[128], pair[2 * JSON_DTOA_MAX], joined[256];
    if (!isfinite(x))
        return;
    int n = json_dtoa(x, got);
    int m = reference(x, want);
    checked++;
    if (n != m || memcmp(got, want, (size_t)n) != 0) {
        if (failures++ < 20)
            printf("# %.17g: got %.*s, expected %.*s\n", x, n, got, m, want);
        return;
    }
    /* The pair form: x next to a value of another magnitude, both orders. */
    double y = x * 1e-7 + 1;
    char one[JSON_DTOA_MAX];
    int k = json_dtoa(y, one);
    int j = snprintf(joined, sizeof(joined), "%.*s,%.*s", n, got, k, one);
    int p = json_dtoa2(x, y, pair);
    if (p != j || memcmp(pair, joined, (size_t)j) != 0) {
        if (failures++ < 20)
            printf("# pair %.17g, %.17g: got %.*s\n", x, y, p, pair);
        return;
    }
    j = snprintf(joined, sizeof(joined), "%.*s,%.*s", k, one, n, got);
    p = json_dtoa2(y, x, pair);
    if (p != j || memcmp(pair, joined, (size_t)j) != 0) {
        if (failures++ < 20)
            printf("# pair %.17g, %.17g: got %.*s\n", y, x, p, pair);
    }
}

static void check_both_signs(double x)
{
    check(x);
    check(-x);
}

/* A random decimal with the given number of significant digits and a decimal exponent in
 * [lo, hi], as the double nearest to it. */
static double random_decimal(int digits, int lo, int hi)
{
    uint64_t m = 1;
    for (int i = 1; i < digits; i++)
        m *= 10;
    m += rnd() % (9 * m);
    char buf[64];
    snprintf(buf, sizeof(buf), "%llue%d", (unsigned long long)m,
             lo + (int)(rnd() % (uint64_t)(hi - lo + 1)) - digits + 1);
    return strtod(buf, NULL);
}

int main(void)
{
    char buf[JSON_DTOA_MAX];
    /* Fixed cases, one per layout. */
    TAP_EQ_MEM(buf, json_dtoa(0.0, buf), "0.0");
    TAP_EQ_MEM(buf, json_dtoa(-0.0, buf), "-0.0");
    TAP_EQ_MEM(buf, json_dtoa(1.0, buf), "1.0");
    TAP_EQ_MEM(buf, json_dtoa(0.1, buf), "0.1");
    TAP_EQ_MEM(buf, json_dtoa(-82.50061931164024, buf), "-82.50061931164024");
    TAP_EQ_MEM(buf, json_dtoa(1e16, buf), "1e+16");
    TAP_EQ_MEM(buf, json_dtoa(9999999999999998.0, buf), "9999999999999998.0");
    TAP_EQ_MEM(buf, json_dtoa(0.0001, buf), "0.0001");
    TAP_EQ_MEM(buf, json_dtoa(0.00001, buf), "1e-05");
    TAP_EQ_MEM(buf, json_dtoa(5e-324, buf), "5e-324");
    TAP_EQ_MEM(buf, json_dtoa(DBL_MAX, buf), "1.7976931348623157e+308");
    TAP_EQ_MEM(buf, json_dtoa(1.2345678901234567e-100, buf), "1.2345678901234567e-100");
    TAP_EQ_MEM(buf, json_dtoa(123456789012345.67, buf), "123456789012345.67");
    char pair[2 * JSON_DTOA_MAX];
    TAP_EQ_MEM(pair, json_dtoa2(-0.0, 2.5, pair), "-0.0,2.5");

    /* Every binary exponent: the smallest and largest significands and their neighbours. */
    for (uint64_t e = 0; e < 2047; e++) {
        static const uint64_t sig[] = {
            0, 1, 2, 3, (UINT64_C(1) << 52) - 1, (UINT64_C(1) << 52) - 2, UINT64_C(1) << 51};
        for (size_t i = 0; i < sizeof(sig) / sizeof(sig[0]); i++)
            check_both_signs(from_bits(e << 52 | sig[i]));
    }
    /* Powers of ten and their neighbours; the fixed/exponent switches. */
    for (int e = -323; e <= 308; e++) {
        char s[32];
        snprintf(s, sizeof(s), "1e%d", e);
        double x = strtod(s, NULL);
        check_both_signs(x);
        check_both_signs(neighbour(x, -1));
        check_both_signs(neighbour(x, 1));
    }
    for (int i = 0; i < 10000; i++) {
        check(random_decimal(1 + (int)(rnd() % 17), 14, 17));
        check(random_decimal(1 + (int)(rnd() % 17), -6, -3));
    }
    /* Integers and near-integers below 2^53. */
    for (int i = 0; i < 10000; i++) {
        double x = (double)(rnd() >> (11 + rnd() % 53));
        check_both_signs(x);
        check(x + 0.5);
    }
    /* Exact decimals: where the fast path's fixed-point distances hit its margin (an
     * interval end exactly on a shorter decimal, an exact tie between two candidates)
     * and schubfach() decides. Integers times powers of two up to 2^80 (10^-k exact, so
     * the half-spacing is an exact integer), and dyadic fractions m / 2^j. */
    for (int i = 0; i < 20000; i++) {
        uint64_t m = rnd() >> (11 + rnd() % 50);
        int e = (int)(rnd() % 81);
        check_both_signs((double)m * (double)(UINT64_C(1) << (e % 64)) *
                         (double)(UINT64_C(1) << (e / 64 * 16)));
        check((double)m / (double)(UINT64_C(1) << (rnd() % 12)));
    }
    /* Subnormals. */
    for (int i = 0; i < 10000; i++)
        check(from_bits(rnd() >> (12 + rnd() % 52)));
    /* Random decimals of 15 to 17 digits (what measured data looks like), in every
     * decade. */
    for (int i = 0; i < 40000; i++)
        check_both_signs(random_decimal(15 + (int)(rnd() % 3), -320, 308));
    for (int i = 0; i < 20000; i++)
        check_both_signs(random_decimal(1 + (int)(rnd() % 14), -320, 308));
    /* Random bit patterns. */
    for (int i = 0; i < 100000; i++) {
        double x = from_bits(rnd());
        if (isfinite(x))
            check(x);
    }
    printf("# %ld values checked, %ld failures\n", checked, failures);
    TAP_EQ_INT(failures, 0);

    /* Integers, for json_write_u64. */
    char ibuf[32];
    TAP_EQ_MEM(ibuf, json_write_u64(0, ibuf), "0");
    TAP_EQ_MEM(ibuf, json_write_u64(18446744073709551615u, ibuf), "18446744073709551615");
    long bad = 0;
    for (int i = 0; i < 100000; i++) {
        uint64_t v = rnd() >> (rnd() % 64);
        char want[32];
        int m = snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
        int n = json_write_u64(v, ibuf);
        bad += n != m || memcmp(ibuf, want, (size_t)m) != 0;
    }
    TAP_EQ_INT(bad, 0);
    return tap_done();
}
