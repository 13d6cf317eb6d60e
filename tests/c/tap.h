/*
 * A minimal TAP producer for the C unit tests. Each test binary prints "ok N - name" or
 * "not ok N - name" per check, then a plan line and a summary; the exit code is non-zero
 * when any check failed, so ctest reports the binary as failed.
 */
#ifndef DB_TESTS_TAP_H
#define DB_TESTS_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_count;
static int tap_failed;

static inline void tap_check(int cond, const char *expr, const char *file, int line)
{
    tap_count++;
    if (cond) {
        printf("ok %d - %s\n", tap_count, expr);
    } else {
        tap_failed++;
        printf("not ok %d - %s (%s:%d)\n", tap_count, expr, file, line);
    }
}

#define TAP_OK(cond) tap_check((cond) ? 1 : 0, #cond, __FILE__, __LINE__)
#define TAP_EQ_INT(a, b)                                                                           \
    do {                                                                                           \
        long long tap_a_ = (long long)(a), tap_b_ = (long long)(b);                                \
        tap_check(tap_a_ == tap_b_, #a " == " #b, __FILE__, __LINE__);                             \
        if (tap_a_ != tap_b_)                                                                      \
            printf("#   got %lld, expected %lld\n", tap_a_, tap_b_);                               \
    } while (0)
#define TAP_EQ_MEM(p, n, lit)                                                                      \
    tap_check((n) == sizeof(lit) - 1 && memcmp((p), (lit), (n)) == 0, #p " == " #lit, __FILE__,    \
              __LINE__)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_count);
    printf("# %d passed, %d failed\n", tap_count - tap_failed, tap_failed);
    return tap_failed ? 1 : 0;
}

#endif
