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
 * Two more sources, each turned on by its own mode (--forwarded-headers), since a proxy
 * that does not set a field passes a client's own through: X-Forwarded-Host (the item at
 * the client's hop, see client_hop), and RFC 7239's Forwarded field instead of all the
 * X-Forwarded-* fields: for=, proto= and host= of the element the first trusted proxy
 * added, chosen by the same rightmost-untrusted rule, quoted-strings and bracketed IPv6
 * nodes included.
 *
 * No Python, no allocation per request: the trusted set is parsed once into a small array.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/text.h"
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

/* --- X-Forwarded-Host ------------------------------------------------------------------ */

/* How many X-Forwarded-For items, counted from the right, lie to the right of the client
 * that http_forwarded_client names: the hop at which that client's request entered the
 * trusted proxies. Each proxy that appends to X-Forwarded-For appends to X-Forwarded-Host
 * too, so the host the client asked for is the X-Forwarded-Host item at the same hop. */
static size_t client_hop(const http_trust_t *t, const http_request_t *req)
{
    size_t hop = 0, last = 0;
    int seen = 0;
    for (size_t i = req->num_headers; i-- > 0;) {
        const http_header_t *h = &req->headers[i];
        if (h->name_len != 15 || strncasecmp(h->name, "x-forwarded-for", 15) != 0)
            continue;
        const char *v = h->value, *end = h->value + h->value_len;
        while (1) {
            const char *p = end;
            while (p > v && p[-1] != ',')
                p--;
            const char *item = p, *host;
            size_t n = (size_t)(end - p), host_len;
            int port;
            trim(&item, &n);
            seen = 1;
            last = hop;
            if (!t->all) {
                split_host_port(item, n, &host, &host_len, &port);
                if (!http_trust_has(t, host, host_len))
                    return hop;
            }
            hop++;
            if (p == v)
                break;
            end = p - 1;
        }
    }
    return seen ? last : 0;
}

int http_forwarded_host(const http_trust_t *t, const http_request_t *req, const char **host,
                        size_t *host_len)
{
    size_t want = client_hop(t, req), at = 0;
    const char *found = NULL;
    size_t found_len = 0;
    /* Items from the right, as for X-Forwarded-For; a list shorter than the hop (a proxy
     * that sets the field rather than appending to it) gives its leftmost item. */
    for (size_t i = req->num_headers; i-- > 0;) {
        const http_header_t *h = &req->headers[i];
        if (h->name_len != 16 || strncasecmp(h->name, "x-forwarded-host", 16) != 0)
            continue;
        const char *v = h->value, *end = h->value + h->value_len;
        while (1) {
            const char *p = end;
            while (p > v && p[-1] != ',')
                p--;
            const char *item = p;
            size_t n = (size_t)(end - p);
            trim(&item, &n);
            found = item;
            found_len = n;
            if (at++ == want)
                goto done;
            if (p == v)
                break;
            end = p - 1;
        }
    }
done:;
    http_host_t parsed;
    if (found == NULL || found_len == 0 || http_parse_host(found, found_len, &parsed) < 0)
        return 0; /* not a Host value (RFC 9110 §7.2): the request's own Host stays */
    *host = found;
    *host_len = found_len;
    return 1;
}

/* --- RFC 7239 Forwarded ---------------------------------------------------------------- */

/* One forwarded-element's parameters that matter here: raw values (a quoted-string keeps
 * its quotes and escapes until the element is chosen). */
typedef struct {
    const char *v[3];
    size_t n[3];
} fwd_element_t;

enum { FWD_FOR, FWD_PROTO, FWD_HOST };

/* The elements kept, the rightmost ones: a chain of more trusted proxies than this is not
 * believed (see http_forwarded_rfc7239). */
#define FWD_KEEP 32

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* A token or a quoted-string (RFC 9110 §5.6.2, §5.6.4) at p: its end, or NULL. */
static const char *scan_value(const char *p, const char *end)
{
    if (p < end && *p == '"') {
        for (p++; p < end; p++) {
            unsigned char c = (unsigned char)*p;
            if (c == '"')
                return p + 1;
            if (c == '\\') {
                if (++p == end)
                    return NULL;
                c = (unsigned char)*p;
                if (c != '\t' && (c < 0x20 || c == 0x7f))
                    return NULL;
            } else if (c != '\t' && (c < 0x20 || c == 0x7f)) {
                return NULL;
            }
        }
        return NULL; /* unterminated */
    }
    const char *start = p;
    while (p < end && db_is_tchar((unsigned char)*p))
        p++;
    return p > start ? p : NULL;
}

/* Parses one Forwarded field value into the ring of elements (count: all seen so far).
 * Returns 0, or -1 when the value breaks RFC 7239 §4's grammar (or repeats a parameter in
 * one element, which §4 forbids). */
static int parse_field(const char *p, const char *end, fwd_element_t *ring, size_t *count)
{
    while (1) {
        /* 1#element: empty list items (",,") are allowed and skipped (RFC 9110 §5.6.1). */
        p = skip_ows(p, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p == end)
            return 0;
        fwd_element_t *e = &ring[*count % FWD_KEEP];
        memset(e, 0, sizeof(*e));
        (*count)++;
        while (1) {
            p = skip_ows(p, end);
            if (p < end && *p != ';' && *p != ',') {
                const char *name = p;
                while (p < end && db_is_tchar((unsigned char)*p))
                    p++;
                size_t name_len = (size_t)(p - name);
                if (name_len == 0 || p == end || *p != '=')
                    return -1;
                const char *value = ++p;
                if ((p = scan_value(p, end)) == NULL)
                    return -1;
                int which = -1;
                if (name_len == 3 && strncasecmp(name, "for", 3) == 0)
                    which = FWD_FOR;
                else if (name_len == 5 && strncasecmp(name, "proto", 5) == 0)
                    which = FWD_PROTO;
                else if (name_len == 4 && strncasecmp(name, "host", 4) == 0)
                    which = FWD_HOST;
                if (which >= 0) {
                    if (e->v[which] != NULL)
                        return -1;
                    e->v[which] = value;
                    e->n[which] = (size_t)(p - value);
                }
                p = skip_ows(p, end);
            }
            if (p == end)
                return 0;
            if (*p == ',') {
                p++;
                break;
            }
            if (*p != ';')
                return -1;
            p++;
        }
    }
}

/* The value with the quotes and quoted-pairs of a quoted-string removed, into out's
 * buffer; NULL when it does not fit. */
static const char *unquote(http_forwarded_t *out, const char *v, size_t n, size_t *len)
{
    if (n == 0 || v[0] != '"') {
        *len = n;
        return v;
    }
    char *dst = out->buf + out->used, *start = dst;
    size_t room = sizeof(out->buf) - out->used;
    for (size_t i = 1; i + 1 < n; i++) {
        if (v[i] == '\\')
            i++;
        if (room == 0)
            return NULL;
        *dst++ = v[i];
        room--;
    }
    *len = (size_t)(dst - start);
    out->used += *len;
    return start;
}

/* A node (RFC 7239 §6): "unknown", an obfuscated "_name", an IPv4 address or a bracketed
 * IPv6 one, each with an optional ":port" (a number, or an obfuscated "_port"). The name
 * without brackets and the port (0 when absent or obfuscated); -1 for anything else. */
static int split_node(const char *s, size_t n, const char **host, size_t *host_len, int *port)
{
    const char *colon = NULL;
    *port = 0;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        unsigned char addr[16];
        if (close == NULL || parse_ip(s + 1, (size_t)(close - s - 1), addr) != AF_INET6)
            return -1;
        *host = s + 1;
        *host_len = (size_t)(close - s - 1);
        if ((size_t)(close - s) + 1 < n) {
            if (close[1] != ':')
                return -1;
            colon = close + 1;
        }
    } else {
        colon = memchr(s, ':', n);
        *host = s;
        *host_len = colon ? (size_t)(colon - s) : n;
        unsigned char addr[16];
        int obfuscated = *host_len > 1 && s[0] == '_';
        int unknown = *host_len == 7 && strncasecmp(s, "unknown", 7) == 0;
        if (!obfuscated && !unknown && parse_ip(s, *host_len, addr) != AF_INET)
            return -1;
    }
    if (colon == NULL)
        return 0;
    const char *d = colon + 1, *end = s + n;
    if (d < end && *d == '_')
        return end - d > 1 ? 0 : -1; /* an obfuscated port names no number */
    long v = 0;
    if (d == end || end - d > 5)
        return -1;
    for (; d < end; d++) {
        if (*d < '0' || *d > '9')
            return -1;
        v = v * 10 + (*d - '0');
    }
    if (v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

static const char *known_proto(const char *v, size_t n)
{
    static const char *const names[] = {"http", "https", "ws", "wss"};
    for (size_t i = 0; i < 4; i++)
        if (strlen(names[i]) == n && strncasecmp(v, names[i], n) == 0)
            return names[i];
    return NULL;
}

int http_forwarded_rfc7239(const http_trust_t *t, const http_request_t *req, http_forwarded_t *out)
{
    fwd_element_t ring[FWD_KEEP];
    size_t count = 0;
    memset(out, 0, sizeof(*out));
    /* Every Forwarded field, in order, is one list (RFC 9110 §5.3). */
    for (size_t i = 0; i < req->num_headers; i++) {
        const http_header_t *h = &req->headers[i];
        if (h->name_len != 9 || strncasecmp(h->name, "forwarded", 9) != 0)
            continue;
        if (parse_field(h->value, h->value + h->value_len, ring, &count) < 0)
            return 0; /* a broken field: nothing of it is believed */
    }
    if (count == 0)
        return 0;
    /* The rightmost element whose for= is not a trusted proxy was added by the first
     * trusted proxy, and describes the request it received: the client's (uvicorn's rule
     * for X-Forwarded-For). Every element trusted: the leftmost; so with "*". */
    size_t kept = count < FWD_KEEP ? count : FWD_KEEP, chosen = count - kept;
    int found = t->all;
    for (size_t k = 0; !found && k < kept; k++) {
        size_t idx = count - 1 - k;
        const fwd_element_t *e = &ring[idx % FWD_KEEP];
        const char *v, *host;
        size_t n, host_len;
        int port;
        out->used = 0;
        v = e->v[FWD_FOR] ? unquote(out, e->v[FWD_FOR], e->n[FWD_FOR], &n) : NULL;
        if (v == NULL || split_node(v, n, &host, &host_len, &port) < 0 ||
            !http_trust_has(t, host, host_len)) {
            chosen = idx;
            found = 1;
        }
    }
    if (!found && count > FWD_KEEP)
        return 0; /* the chain goes on past what was kept: no element is believed */
    const fwd_element_t *e = &ring[chosen % FWD_KEEP];
    out->used = 0;
    if (e->v[FWD_FOR] != NULL) {
        size_t n;
        const char *v = unquote(out, e->v[FWD_FOR], e->n[FWD_FOR], &n);
        if (v != NULL && split_node(v, n, &out->client, &out->client_len, &out->client_port) < 0)
            out->client = NULL;
    }
    if (e->v[FWD_PROTO] != NULL) {
        size_t n;
        const char *v = unquote(out, e->v[FWD_PROTO], e->n[FWD_PROTO], &n);
        out->proto = v != NULL ? known_proto(v, n) : NULL;
    }
    if (e->v[FWD_HOST] != NULL) {
        size_t n;
        const char *v = unquote(out, e->v[FWD_HOST], e->n[FWD_HOST], &n);
        http_host_t parsed;
        if (v != NULL && n > 0 && http_parse_host(v, n, &parsed) == 0) {
            out->host = v;
            out->host_len = n;
        }
    }
    return 1;
}
