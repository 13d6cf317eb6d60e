/*
 * Proxy headers as uvicorn's ProxyHeadersMiddleware reads them (its documented behaviour,
 * not its code): a set of trusted proxies (--forwarded-allow-ips: "*", IP addresses, IP
 * networks in CIDR notation, and any other item kept as a literal compared as text), the
 * scheme from the last X-Forwarded-Proto field when it is http, https, ws or wss, and the
 * client from X-Forwarded-For: the fields joined in order, split at commas, and read from
 * the right, where each proxy appended the address it saw; the first address that is not
 * a trusted proxy is the client (all of them trusted: the leftmost; "*": the leftmost). An
 * item is "host", "host:port" (one colon) or "[v6]" / "[v6]:port"; anything else is a
 * host without port.
 *
 * No Python, no allocation per request: the trusted set is parsed once into a small array.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"

typedef struct {
    int family; /* AF_INET, AF_INET6, or 0 for a literal */
    unsigned char addr[16];
    int prefix; /* bits compared; the full length for a single address */
    char *literal;
    size_t literal_len;
} trust_item_t;

struct http_trust {
    int all;
    size_t n;
    trust_item_t items[];
};

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static void trim(const char **p, size_t *n)
{
    while (*n && is_space(**p)) {
        (*p)++;
        (*n)--;
    }
    while (*n && is_space((*p)[*n - 1]))
        (*n)--;
}

/* Parses an IPv4 or IPv6 address (text of n bytes) into addr; returns the family or 0. */
static int parse_ip(const char *s, size_t n, unsigned char addr[16])
{
    char tmp[64];
    if (n == 0 || n >= sizeof(tmp))
        return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (inet_pton(AF_INET, tmp, addr) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, tmp, addr) == 1)
        return AF_INET6;
    return 0;
}

static int parse_item(const char *s, size_t n, trust_item_t *it)
{
    memset(it, 0, sizeof(*it));
    const char *slash = memchr(s, '/', n);
    if (slash != NULL) {
        /* A network: the address, then 1..3 digits of prefix within the family's length.
         * As Python's ip_network (strict), host bits set make it invalid: a literal. */
        size_t an = (size_t)(slash - s), pn = n - an - 1;
        int fam = parse_ip(s, an, it->addr);
        int bits = fam == AF_INET ? 32 : 128, prefix = 0;
        int ok = fam != 0 && pn >= 1 && pn <= 3;
        for (size_t i = 0; ok && i < pn; i++) {
            if (slash[1 + i] < '0' || slash[1 + i] > '9')
                ok = 0;
            else
                prefix = prefix * 10 + (slash[1 + i] - '0');
        }
        ok = ok && prefix <= bits;
        for (int b = prefix; ok && b < bits; b++)
            if (it->addr[b / 8] & (0x80 >> (b % 8)))
                ok = 0;
        if (ok) {
            it->family = fam;
            it->prefix = prefix;
            return 0;
        }
    } else {
        int fam = parse_ip(s, n, it->addr);
        if (fam != 0) {
            it->family = fam;
            it->prefix = fam == AF_INET ? 32 : 128;
            return 0;
        }
    }
    if ((it->literal = malloc(n ? n : 1)) == NULL)
        return -1;
    memcpy(it->literal, s, n);
    it->literal_len = n;
    return 0;
}

http_trust_t *http_trust_new(const char *spec, size_t len)
{
    size_t count = 1;
    for (size_t i = 0; i < len; i++)
        count += spec[i] == ',';
    http_trust_t *t = calloc(1, sizeof(*t) + count * sizeof(trust_item_t));
    if (t == NULL)
        return NULL;
    const char *all = spec;
    size_t all_len = len;
    trim(&all, &all_len);
    if (all_len == 1 && all[0] == '*') {
        t->all = 1;
        return t;
    }
    const char *p = spec, *end = spec + len;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        const char *item = p;
        size_t n = (size_t)(stop - p);
        trim(&item, &n);
        if (parse_item(item, n, &t->items[t->n]) < 0) {
            http_trust_free(t);
            return NULL;
        }
        t->n++;
        p = stop + 1;
    }
    return t;
}

void http_trust_free(http_trust_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->items[i].literal);
    free(t);
}

int http_trust_all(const http_trust_t *t)
{
    return t->all;
}

static int prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
    int bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)bytes) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

int http_trust_has(const http_trust_t *t, const char *host, size_t n)
{
    if (t->all)
        return 1;
    if (n == 0)
        return 0;
    unsigned char addr[16];
    int fam = parse_ip(host, n, addr);
    for (size_t i = 0; i < t->n; i++) {
        const trust_item_t *it = &t->items[i];
        if (fam != 0 && it->family == fam && prefix_equal(addr, it->addr, it->prefix))
            return 1;
        /* A value that is not an IP address is compared with the literals only. */
        if (fam == 0 && it->family == 0 && it->literal_len == n &&
            memcmp(it->literal, host, n) == 0)
            return 1;
    }
    return 0;
}

/* "host", "host:port", "[v6]", "[v6]:port" as uvicorn reads a forwarded item. */
static void split_host_port(const char *s, size_t n, const char **host, size_t *host_len, int *port)
{
    *host = s;
    *host_len = n;
    *port = 0;
    const char *colon = NULL;
    size_t colons = 0;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return;
        size_t hn = (size_t)(close - s - 1), rest = n - hn - 2;
        if (rest != 0 && close[1] != ':')
            return;
        *host = s + 1;
        *host_len = hn;
        colon = rest ? close + 1 : NULL;
        if (colon == NULL)
            return;
    } else {
        for (size_t i = 0; i < n; i++)
            if (s[i] == ':') {
                colon = s + i;
                colons++;
            }
        if (colons != 1)
            return;
    }
    const char *d = colon + 1, *end = s + n;
    long v = 0;
    int ok = d < end && end - d <= 5;
    for (const char *q = d; ok && q < end; q++) {
        if (*q < '0' || *q > '9')
            ok = 0;
        else
            v = v * 10 + (*q - '0');
    }
    if (s[0] != '[') {
        if (!ok)
            return; /* uvicorn: not a number, the whole value is the host */
        *host_len = (size_t)(colon - s);
    }
    *port = ok ? (int)v : 0;
}

int http_forwarded_client(const http_trust_t *t, const http_request_t *req, const char **host,
                          size_t *host_len, int *port)
{
    /* Items from the right: fields in reverse order, each field's items right to left. */
    const char *first = NULL;
    size_t first_len = 0;
    int seen = 0;
    for (size_t i = req->num_headers; i-- > 0;) {
        const http_header_t *h = &req->headers[i];
        if (h->name_len != 15 || strncasecmp(h->name, "x-forwarded-for", 15) != 0)
            continue;
        seen = 1;
        const char *v = h->value, *end = h->value + h->value_len;
        while (1) {
            const char *p = end;
            while (p > v && p[-1] != ',')
                p--;
            const char *item = p;
            size_t n = (size_t)(end - p);
            trim(&item, &n);
            /* The leftmost item overall is kept for when every item is trusted. */
            first = item;
            first_len = n;
            if (!t->all) {
                split_host_port(item, n, host, host_len, port);
                if (!http_trust_has(t, *host, *host_len))
                    return *host_len ? 1 : 0;
            }
            if (p == v)
                break;
            end = p - 1;
        }
    }
    if (!seen)
        return 0;
    split_host_port(first, first_len, host, host_len, port);
    return *host_len ? 1 : 0;
}

const char *http_forwarded_proto(const http_request_t *req, size_t *len)
{
    for (size_t i = req->num_headers; i-- > 0;) {
        const http_header_t *h = &req->headers[i];
        if (h->name_len != 17 || strncasecmp(h->name, "x-forwarded-proto", 17) != 0)
            continue;
        const char *v = h->value;
        size_t n = h->value_len;
        trim(&v, &n);
        /* Compared as sent (uvicorn compares the stripped value with lowercase names). */
        if ((n == 4 && memcmp(v, "http", 4) == 0) || (n == 5 && memcmp(v, "https", 5) == 0) ||
            (n == 2 && memcmp(v, "ws", 2) == 0) || (n == 3 && memcmp(v, "wss", 3) == 0)) {
            *len = n;
            return v;
        }
        return NULL;
    }
    return NULL;
}
