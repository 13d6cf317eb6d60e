/*
 * TAP tests for the proxy headers (csrc/http/forwarded.c) with the cases of uvicorn's
 * documented ProxyHeadersMiddleware behaviour: trusted sets ("*", addresses, networks,
 * literals), X-Forwarded-For read from the right across fields, host:port forms, and
 * X-Forwarded-Proto values; X-Forwarded-Host at the client's hop; RFC 7239 Forwarded
 * (quoted and IPv6 nodes, elements over fields, the rightmost-untrusted element, broken
 * fields not believed).
 */
#include "http/http.h"
#include "tap.h"

static http_request_t req;

static void fields(const char *const *pairs, size_t n)
{
    memset(&req, 0, sizeof(req));
    for (size_t i = 0; i < n; i++) {
        req.headers[i].name = pairs[2 * i];
        req.headers[i].name_len = strlen(pairs[2 * i]);
        req.headers[i].value = pairs[2 * i + 1];
        req.headers[i].value_len = strlen(pairs[2 * i + 1]);
    }
    req.num_headers = n;
}

static int client_is(const char *spec, const char *host, int port)
{
    http_trust_t *t = http_trust_new(spec, strlen(spec));
    const char *h;
    size_t n;
    int p, r = t != NULL && http_forwarded_client(t, &req, &h, &n, &p);
    int ok = host == NULL ? !r : r && n == strlen(host) && memcmp(h, host, n) == 0 && p == port;
    http_trust_free(t);
    return ok;
}

static int trusted(const char *spec, const char *host)
{
    http_trust_t *t = http_trust_new(spec, strlen(spec));
    int r = t != NULL && http_trust_has(t, host, strlen(host));
    http_trust_free(t);
    return r;
}

int main(void)
{
    TAP_OK(trusted("127.0.0.1", "127.0.0.1"));
    TAP_OK(!trusted("127.0.0.1", "127.0.0.2"));
    TAP_OK(trusted("127.0.0.1, ::1", "::1"));
    TAP_OK(trusted("::1", "0:0:0:0:0:0:0:1")); /* compared as addresses, not text */
    TAP_OK(trusted("10.0.0.0/8", "10.200.3.4"));
    TAP_OK(!trusted("10.0.0.0/8", "11.0.0.1"));
    TAP_OK(trusted("2001:db8::/32", "2001:db8:1::5"));
    TAP_OK(!trusted("10.0.0.1/8", "10.0.0.1")); /* host bits set: a literal, as ip_network */
    TAP_OK(trusted("unix:/tmp/s", "unix:/tmp/s"));
    TAP_OK(trusted("*", "anything"));
    TAP_OK(!trusted("127.0.0.1", ""));

    const char *one[] = {"X-Forwarded-For", "1.2.3.4, 10.0.0.2, 127.0.0.1"};
    fields(one, 1);
    TAP_OK(client_is("127.0.0.1", "10.0.0.2", 0));
    TAP_OK(client_is("127.0.0.1, 10.0.0.0/8", "1.2.3.4", 0));
    TAP_OK(client_is("127.0.0.1, 10.0.0.0/8, 1.2.3.4", "1.2.3.4", 0)); /* all: leftmost */
    TAP_OK(client_is("*", "1.2.3.4", 0));

    const char *two[] = {"x-forwarded-for", "9.9.9.9:1234", "Host", "x",
                         "X-FORWARDED-FOR", "127.0.0.1"};
    fields(two, 3);
    TAP_OK(client_is("127.0.0.1", "9.9.9.9", 1234)); /* fields joined in order */

    const char *v6[] = {"x-forwarded-for", "[2001:db8::1]:443, [::1]"};
    fields(v6, 1);
    TAP_OK(client_is("::1", "2001:db8::1", 443));
    const char *bare6[] = {"x-forwarded-for", "2001:db8::1"};
    fields(bare6, 1);
    TAP_OK(client_is("::1", "2001:db8::1", 0)); /* several colons: no port */
    const char *badport[] = {"x-forwarded-for", "host:http"};
    fields(badport, 1);
    TAP_OK(client_is("::1", "host:http", 0));
    const char *empty[] = {"x-forwarded-for", ""};
    fields(empty, 1);
    TAP_OK(client_is("127.0.0.1", NULL, 0));
    const char *none[] = {"host", "x"};
    fields(none, 1);
    TAP_OK(client_is("*", NULL, 0));

    size_t n = 0;
    const char *p;
    const char *proto[] = {"X-Forwarded-Proto", "http", "x-forwarded-proto", " https "};
    fields(proto, 2);
    p = http_forwarded_proto(&req, &n);
    TAP_OK(p != NULL && n == 5 && memcmp(p, "https", 5) == 0); /* the last field */
    const char *bad[] = {"x-forwarded-proto", "https", "x-forwarded-proto", "HTTPS"};
    fields(bad, 2);
    TAP_OK(http_forwarded_proto(&req, &n) == NULL); /* the last one decides, and is unknown */
    const char *ws[] = {"x-forwarded-proto", "wss"};
    fields(ws, 1);
    p = http_forwarded_proto(&req, &n);
    TAP_OK(p != NULL && n == 3);

    /* X-Forwarded-Host: the item at the hop of the client X-Forwarded-For names. */
    http_trust_t *t = http_trust_new("127.0.0.1", 9);
    const char *hv;
    size_t hn;
    const char *xh[] = {"x-forwarded-for", "10.9.9.9, 203.0.113.7, 127.0.0.1", "x-forwarded-host",
                        "spoof, public.example:8443, internal"};
    fields(xh, 2);
    TAP_OK(http_forwarded_host(t, &req, &hv, &hn) && hn == 19 &&
           memcmp(hv, "public.example:8443", 19) == 0);
    const char *xh1[] = {"x-forwarded-for", "1.2.3.4, 127.0.0.1", "x-forwarded-host", "one"};
    fields(xh1, 2);
    TAP_OK(http_forwarded_host(t, &req, &hv, &hn) && hn == 3); /* shorter: its leftmost */
    const char *xhbad[] = {"x-forwarded-host", "a b"};
    fields(xhbad, 1);
    TAP_OK(!http_forwarded_host(t, &req, &hv, &hn)); /* not a Host value */

    /* RFC 7239 Forwarded. */
    http_forwarded_t f;
    const char *fv6[] = {"Forwarded", "for=\"[2001:db8::17]:4711\";proto=HTTPS;host=\"h.example\""};
    fields(fv6, 1);
    TAP_OK(http_forwarded_rfc7239(t, &req, &f) && f.client_len == 12 &&
           memcmp(f.client, "2001:db8::17", 12) == 0 && f.client_port == 4711 &&
           strcmp(f.proto, "https") == 0 && f.host_len == 9);
    const char *ftwo[] = {"forwarded", "for=198.51.100.9;proto=https, for=203.0.113.5;host=a",
                          "forwarded", "for=127.0.0.1;proto=https;host=internal"};
    fields(ftwo, 2);
    TAP_OK(http_forwarded_rfc7239(t, &req, &f) && f.client_len == 11 &&
           memcmp(f.client, "203.0.113.5", 11) == 0 && f.proto == NULL && f.host_len == 1);
    http_trust_t *all = http_trust_new("*", 1);
    TAP_OK(http_forwarded_rfc7239(all, &req, &f) && f.client_len == 12 &&
           memcmp(f.client, "198.51.100.9", 12) == 0); /* "*": the leftmost element */
    http_trust_free(all);
    const char *esc[] = {"forwarded", " , for=\"_a\\\"b\" ; by=x ,,"};
    fields(esc, 1);
    TAP_OK(http_forwarded_rfc7239(t, &req, &f) && f.client_len == 4 &&
           memcmp(f.client, "_a\"b", 4) == 0); /* a quoted-pair; empty list items */
    const char *broken[][2] = {
        {"forwarded", "for=1.2.3.4:80"}, {"forwarded", "for=1.2.3.4;for=5.6.7.8"},
        {"forwarded", "for=\"1.2.3.4"},  {"forwarded", "for"},
        {"forwarded", "for=\"a\x01\""},  {"host", "x"}};
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        fields(broken[i], 1);
        TAP_OK(!http_forwarded_rfc7239(t, &req, &f));
    }
    const char *badnode[] = {"forwarded", "for=\"[not-fv6]\";proto=gopher;host=\"a b\""};
    fields(badnode, 1);
    TAP_OK(http_forwarded_rfc7239(t, &req, &f) && f.client == NULL && f.proto == NULL &&
           f.host == NULL); /* read, each part invalid */
    http_trust_free(t);
    return tap_done();
}
