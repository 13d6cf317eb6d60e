/*
 * The Date header value (RFC 9110 §6.6.1) as an IMF-fixdate (RFC 9110 §5.6.7), e.g.
 * "Sun, 06 Nov 1994 08:49:37 GMT". Formatting happens at most once per second; every other
 * response reuses the cached bytes. The cache is owned by this file and is thread-local, so
 * an executor thread that formats a date cannot race the loop thread. Day and month names
 * come from our own tables: strftime would follow the process locale.
 */
/* gmtime_r is POSIX, not ISO C. */
#define _POSIX_C_SOURCE 200809L

#include "http/http.h"

#include <string.h>

static const char day_names[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static _Thread_local char cached[32];
static _Thread_local time_t cached_time;
static _Thread_local int cached_valid;

static void put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

static void format_date(char *out, time_t now)
{
    struct tm tm;
    if (!gmtime_r(&now, &tm)) {
        /* Out of range for struct tm; the epoch is a valid date that says "unknown". */
        time_t zero = 0;
        gmtime_r(&zero, &tm);
    }
    int year = tm.tm_year + 1900;
    if (year < 0 || year > 9999)
        year = 1970;
    memcpy(out, day_names[tm.tm_wday % 7], 3);
    out[3] = ',';
    out[4] = ' ';
    put2(out + 5, tm.tm_mday);
    out[7] = ' ';
    memcpy(out + 8, month_names[tm.tm_mon % 12], 3);
    out[11] = ' ';
    put2(out + 12, year / 100);
    put2(out + 14, year % 100);
    out[16] = ' ';
    put2(out + 17, tm.tm_hour);
    out[19] = ':';
    put2(out + 20, tm.tm_min);
    out[22] = ':';
    /* tm_sec may be 60 on a leap second; IMF-fixdate allows second 60 (RFC 5322 §3.3). */
    put2(out + 23, tm.tm_sec);
    memcpy(out + 25, " GMT", 4);
    out[29] = '\0';
}

const char *http_date_now(time_t now)
{
    if (!cached_valid || now != cached_time) {
        format_date(cached, now);
        cached_time = now;
        cached_valid = 1;
    }
    return cached;
}
