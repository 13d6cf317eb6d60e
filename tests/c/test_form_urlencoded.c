/*
 * TAP tests for the application/x-www-form-urlencoded iterator (csrc/form/urlencoded.c),
 * with decoding by db_pct_decode as form.h tells callers to do. Expected pairs follow the
 * WHATWG URL §5.1 parser (and Python's urllib.parse.parse_qsl with keep_blank_values).
 */
#include "common/text.h"
#include "form/form.h"
#include "tap.h"

#include <stdlib.h>

/* All pairs of body, decoded, as "name=value;" into out. */
static size_t pairs(const char *body, char *out)
{
    size_t len = strlen(body), o = 0;
    /* An exact-size copy, so ASan sees a read past the body. */
    char *copy = malloc(len ? len : 1);
    memcpy(copy, body, len);
    form_urlencoded_t it;
    const char *k, *v;
    size_t kl, vl;
    form_urlencoded_init(&it, copy, len);
    while (form_urlencoded_next(&it, &k, &kl, &v, &vl)) {
        if (k < copy || k + kl > copy + len || v < copy || v + vl > copy + len)
            o += (size_t)sprintf(out + o, "OUT OF BOUNDS");
        o += db_pct_decode(out + o, k, kl, 1);
        out[o++] = '=';
        o += db_pct_decode(out + o, v, vl, 1);
        out[o++] = ';';
    }
    TAP_OK(!form_urlencoded_next(&it, &k, &kl, &v, &vl)); /* stays at the end */
    free(copy);
    out[o] = '\0';
    return o;
}

#define PAIRS(body, expect)                                                                        \
    do {                                                                                           \
        char out_[256];                                                                            \
        size_t n_ = pairs(body, out_);                                                             \
        TAP_EQ_MEM(out_, n_, expect);                                                              \
    } while (0)

int main(void)
{
    PAIRS("", "");
    PAIRS("&&&", "");
    PAIRS("a=1", "a=1;");
    PAIRS("a=1&b=2", "a=1;b=2;");
    PAIRS("a=1&&b=2&", "a=1;b=2;");
    PAIRS("&a", "a=;");
    PAIRS("a", "a=;");
    PAIRS("a=", "a=;");
    PAIRS("=", "=;");
    PAIRS("=x", "=x;");
    PAIRS("a==b=c", "a==b=c;");
    PAIRS("a+b=c+d", "a b=c d;");
    PAIRS("a%2Bb=%3D%26", "a+b==&;");
    PAIRS("%zz=%4=%", "%zz=%4=%;");
    PAIRS("x=%E2%82%AC", "x=\xe2\x82\xac;");
    PAIRS("k=1&k=2", "k=1;k=2;");
    PAIRS("a=b;c=d", "a=b;c=d;"); /* ';' is no separator (WHATWG, Python 3.10+) */
    return tap_done();
}
