/*
 * The checks of test_json_dtoa.c on the portable digit path of dtoa.c (no SSE2), which is
 * what non-x86 machines run.
 */
#define JSON_DTOA_NO_SSE2 1
#include "test_json_dtoa.c"
