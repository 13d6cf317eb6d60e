/*
 * The Host field (RFC 9110 §7.2): its value split into host and port with the grammar
 * Starlette's parse_host_header uses (a regular expression there), so the native
 * TrustedHostMiddleware and HTTPSRedirectMiddleware accept and refuse the same values:
 *   host = reg-name / "[" IPv6address "]" / "[" "v" HEXDIG+ "." (unreserved / sub-delims
 *          / ":")+ "]"
 *   port = 1*DIGIT
 * with reg-name's characters being unreserved, sub-delims and '%' (RFC 3986 §3.2.2),
 * letters in either case. An IPv6 literal must be a valid address (inet_pton).
 */
#include <arpa/inet.h>
#include <string.h>

#include "common/text.h"
#include "http/http.h"

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* unreserved / sub-delims (RFC 3986 §2.2, §2.3). */
static int is_reg_char(char c)
{
    return is_alpha(c) || is_digit(c) || (c != '\0' && strchr("-._~!$&'()*+,;=", c) != NULL);
}

int http_parse_host(const char *v, size_t n, http_host_t *out)
{
    size_t i = 0;
    if (n == 0)
        return -1;
    if (v[0] == '[') {
        const char *close = memchr(v, ']', n);
        if (close == NULL)
            return -1;
        size_t inner = (size_t)(close - v) - 1;
        const char *s = v + 1;
        if (inner > 0 && s[0] == 'v') {
            /* IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ). */
            size_t k = 1;
            while (k < inner && db_hexval((unsigned char)s[k]) >= 0)
                k++;
            if (k == 1 || k >= inner || s[k] != '.' || k + 1 >= inner)
                return -1;
            for (k++; k < inner; k++) {
                if (!is_reg_char(s[k]) && s[k] != ':')
                    return -1;
            }
        } else {
            /* Hex digits, ':' and '.' only, with a ':' after the leading hex digits, and a
             * valid address. */
            size_t k = 0;
            while (k < inner && db_hexval((unsigned char)s[k]) >= 0)
                k++;
            if (k >= inner || s[k] != ':' || inner >= 64)
                return -1;
            for (; k < inner; k++) {
                if (db_hexval((unsigned char)s[k]) < 0 && s[k] != ':' && s[k] != '.')
                    return -1;
            }
            char addr[64];
            unsigned char bin[16];
            memcpy(addr, s, inner);
            addr[inner] = '\0';
            if (inet_pton(AF_INET6, addr, bin) != 1)
                return -1;
        }
        i = (size_t)(close - v) + 1;
    } else {
        while (i < n && (is_reg_char(v[i]) || v[i] == '%'))
            i++;
        if (i == 0)
            return -1;
    }
    out->host = v;
    out->host_len = i;
    out->port = NULL;
    out->port_len = 0;
    if (i == n)
        return 0;
    if (v[i] != ':' || i + 1 == n)
        return -1;
    for (size_t k = i + 1; k < n; k++) {
        if (!is_digit(v[k]))
            return -1;
    }
    out->port = v + i + 1;
    out->port_len = n - i - 1;
    return 0;
}

int http_host_port_valid(const char *port, size_t len)
{
    while (len > 0 && *port == '0') {
        port++;
        len--;
    }
    if (len > 5)
        return 0;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (unsigned long)(port[i] - '0');
    return v <= 65535;
}
