/*
 * application/x-www-form-urlencoded pairs (WHATWG URL §5.1). The body is complete in the
 * caller's buffer (the server limits its size), so the iterator only splits it; decoding
 * is db_pct_decode's (common/text.h), which already follows §5.1: '+' becomes a space
 * before percent-decoding, and a '%' without two hex digits stays as it is.
 */
#include "form/form.h"

void form_urlencoded_init(form_urlencoded_t *it, const char *body, size_t len)
{
    it->p = body;
    it->len = len;
    it->pos = 0;
}

int form_urlencoded_next(form_urlencoded_t *it, const char **name, size_t *name_len,
                         const char **value, size_t *value_len)
{
    while (it->pos < it->len) {
        const char *pair = it->p + it->pos;
        size_t n = 0, eq;
        while (it->pos + n < it->len && pair[n] != '&')
            n++;
        it->pos += n + (it->pos + n < it->len); /* past the '&' when there is one */
        if (n == 0)
            continue; /* "If bytes is the empty byte sequence, then continue." */
        for (eq = 0; eq < n && pair[eq] != '='; eq++)
            ;
        *name = pair;
        *name_len = eq;
        *value = eq < n ? pair + eq + 1 : pair + n;
        *value_len = eq < n ? n - eq - 1 : 0;
        return 1;
    }
    return 0;
}
