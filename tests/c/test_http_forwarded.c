/*
 * TAP tests for the proxy headers (csrc/http/forwarded.c) with the cases of uvicorn's
 * documented ProxyHeadersMiddleware behaviour: trusted sets ("*", addresses, networks,
 * literals), X-Forwarded-For read from the right across fields, host:port forms, and
 * X-Forwarded-Proto values.
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
    return tap_done();
}
