/*
 * Number printers of the JSON codec (dtoa.c): shortest round-trip doubles and unsigned
 * integers. No Python headers, so that tests/c can check them on their own.
 */
#ifndef DB_JSON_DTOA_H
#define DB_JSON_DTOA_H

#include <stdint.h>

#if defined(__GNUC__)
#define JSON_LIKELY(x)   __builtin_expect(!!(x), 1)
#define JSON_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define JSON_LIKELY(x)   (x)
#define JSON_UNLIKELY(x) (x)
#endif

/* Writes the shortest decimal that round-trips to v, formatted as Python's repr(float)
 * does (e.g. "0.1", "1e+16", "5e-324", "-0.0"). v must be finite. out needs JSON_DTOA_MAX
 * bytes (the digits are stored in whole 8-byte blocks, past the end of the number);
 * returns the number of bytes written (no terminating NUL). */
#define JSON_DTOA_MAX 64
int json_dtoa(double v, char *out);

/* Writes v0 ',' v1 (both finite) into out, which needs 2 * JSON_DTOA_MAX bytes; returns
 * the length. Faster than two json_dtoa calls: the two conversions overlap in the core. */
int json_dtoa2(double v0, double v1, char *out);

/* Two-digit lookup table "00".."99" used by the integer and float printers. */
extern const char json_digits2[200];

/* Writes the decimal digits of v (no sign) at out, which needs 24 bytes of room; returns
 * the count (1..20). */
int json_write_u64(uint64_t v, char *out);

#endif
