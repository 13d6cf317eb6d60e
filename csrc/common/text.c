/* Percent-decoding for path and query values (see text.h). */
#include "common/text.h"

size_t db_pct_decode(char *dst, const char *src, size_t n, int plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = src[i];
        if (ch == '%' && i + 2 < n) {
            int h = db_hexval((unsigned char)src[i + 1]), l = db_hexval((unsigned char)src[i + 2]);
            if (h >= 0 && l >= 0) {
                dst[o++] = (char)(h * 16 + l);
                i += 2;
                continue;
            }
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        dst[o++] = ch;
    }
    return o;
}

int db_pct_needs_decoding(const char *src, size_t n, int plus_is_space)
{
    for (size_t i = 0; i < n; i++)
        if (src[i] == '%' || (plus_is_space && src[i] == '+'))
            return 1;
    return 0;
}
