/*
 * TAP tests for the Host field parser (csrc/http/host.c), with the cases of Starlette's
 * parse_host_header: names, ports, IP literals (valid and not), IPvFuture, and values
 * that are none of those.
 */
#include "http/http.h"
#include "tap.h"

static int parses(const char *v, const char *host, const char *port)
{
    http_host_t h;
    if (http_parse_host(v, strlen(v), &h) != 0)
        return 0;
    if (h.host_len != strlen(host) || memcmp(h.host, host, h.host_len) != 0)
        return 0;
    if (port == NULL)
        return h.port == NULL;
    return h.port != NULL && h.port_len == strlen(port) && memcmp(h.port, port, h.port_len) == 0;
}

static int refused(const char *v)
{
    http_host_t h;
    return http_parse_host(v, strlen(v), &h) == -1;
}

int main(void)
{
    TAP_OK(parses("example.com", "example.com", NULL));
    TAP_OK(parses("Example.COM:8000", "Example.COM", "8000"));
    TAP_OK(parses("a-b_c~d.e!$&'()*+,;=%41", "a-b_c~d.e!$&'()*+,;=%41", NULL));
    TAP_OK(parses("127.0.0.1:80", "127.0.0.1", "80"));
    TAP_OK(parses("[::1]", "[::1]", NULL));
    TAP_OK(parses("[::1]:443", "[::1]", "443"));
    TAP_OK(parses("[2001:db8::ff00:42:8329]:1", "[2001:db8::ff00:42:8329]", "1"));
    TAP_OK(parses("[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]", NULL));
    TAP_OK(parses("[v1.fe80::a+en1]", "[v1.fe80::a+en1]", NULL));
    TAP_OK(parses("host:99999", "host", "99999")); /* parsed; the port is judged apart */
    TAP_OK(refused(""));
    TAP_OK(refused(":80"));
    TAP_OK(refused("host:"));
    TAP_OK(refused("host:8a"));
    TAP_OK(refused("ho st"));
    TAP_OK(refused("host/path"));
    TAP_OK(refused("user@host"));
    TAP_OK(refused("[::1"));
    TAP_OK(refused("[::1]x"));
    TAP_OK(refused("[1:2:3:4:5:6:7:8:9]")); /* not an IPv6 address */
    TAP_OK(refused("[zz::1]"));
    TAP_OK(refused("[V1.x]")); /* the "v" of IPvFuture is lowercase */
    TAP_OK(refused("[v.x]"));
    TAP_OK(refused("[]"));
    TAP_OK(http_host_port_valid("80", 2));
    TAP_OK(http_host_port_valid("00065535", 8));
    TAP_OK(http_host_port_valid("", 0));
    TAP_OK(!http_host_port_valid("65536", 5));
    TAP_OK(!http_host_port_valid("100000", 6));
    return tap_done();
}
