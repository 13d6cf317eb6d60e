/*
 * TAP tests for the Range parser (csrc/files/range.c): RFC 9110 §14.1.2 forms and
 * Starlette's leniencies, each outcome kind, merging, and the 100-range cap.
 */
#include "files/files.h"
#include "tap.h"

static files_range_t r[FILES_MAX_RANGES];
static size_t n;
static const char *msg;

static int parse(const char *v, uint64_t size)
{
    msg = NULL;
    return files_parse_range(v, strlen(v), size, r, &n, &msg);
}

int main(void)
{
    TAP_EQ_INT(parse("bytes=0-99", 1000), FILES_RANGE_OK);
    TAP_OK(n == 1 && r[0].start == 0 && r[0].end == 100);
    TAP_EQ_INT(parse("bytes=900-", 1000), FILES_RANGE_OK);
    TAP_OK(n == 1 && r[0].start == 900 && r[0].end == 1000);
    TAP_EQ_INT(parse("bytes=-300", 1000), FILES_RANGE_OK);
    TAP_OK(r[0].start == 700 && r[0].end == 1000);
    TAP_EQ_INT(parse("bytes=-5000", 1000), FILES_RANGE_OK);
    TAP_OK(r[0].start == 0 && r[0].end == 1000);
    TAP_EQ_INT(parse("bytes=990-5000", 1000), FILES_RANGE_OK);
    TAP_OK(r[0].start == 990 && r[0].end == 1000);
    TAP_EQ_INT(parse(" BYTES = 1 - 2 ", 1000), FILES_RANGE_OK);
    TAP_OK(r[0].start == 1 && r[0].end == 3);
    /* Several: sorted and merged where they overlap or touch the previous end. */
    TAP_EQ_INT(parse("bytes=50-99,0-60,200-210", 1000), FILES_RANGE_OK);
    TAP_OK(n == 2 && r[0].start == 0 && r[0].end == 100 && r[1].start == 200 && r[1].end == 211);
    TAP_EQ_INT(parse("bytes=0-9,10-19", 1000), FILES_RANGE_OK);
    TAP_OK(n == 1 && r[0].end == 20); /* touching (start 10 <= end 10): merged */
    /* Skipped specs, then the outcomes. */
    TAP_EQ_INT(parse("bytes=0-9, ,-,x,a-b", 1000), FILES_RANGE_OK);
    TAP_OK(n == 1);
    TAP_EQ_INT(parse("bytes=", 1000), FILES_RANGE_MALFORMED);
    TAP_OK(msg && strstr(msg, "must be requested"));
    TAP_EQ_INT(parse("bytes 0-1", 1000), FILES_RANGE_MALFORMED);
    TAP_OK(msg && strcmp(msg, "Malformed range header.") == 0);
    TAP_EQ_INT(parse("items=0-1", 1000), FILES_RANGE_MALFORMED);
    TAP_OK(msg && strcmp(msg, "Only support bytes range") == 0);
    TAP_EQ_INT(parse("bytes=5-3", 1000), FILES_RANGE_MALFORMED);
    TAP_OK(msg && strstr(msg, "start must be less than end"));
    TAP_EQ_INT(parse("bytes=1000-", 1000), FILES_RANGE_UNSATISFIABLE);
    TAP_EQ_INT(parse("bytes=0-0", 0), FILES_RANGE_UNSATISFIABLE);
    TAP_EQ_INT(parse("bytes=99999999999999999999-", 1000), FILES_RANGE_MALFORMED);
    char many[1024] = "bytes=0-1";
    for (int i = 0; i < 100; i++)
        strcat(many, ",0-1");
    TAP_EQ_INT(parse(many, 1000), FILES_RANGE_IGNORE);
    many[strlen(many) - 4] = '\0'; /* exactly 100 */
    TAP_EQ_INT(parse(many, 1000), FILES_RANGE_OK);
    TAP_OK(n == 1 && r[0].end == 2);
    return tap_done();
}
