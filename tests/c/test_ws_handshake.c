/*
 * TAP tests for the handshake helpers (csrc/ws/handshake.c): SHA-1 against RFC 3174's test
 * vectors, base64 against RFC 4648 §10's, Sec-WebSocket-Accept for RFC 6455 §1.3's key,
 * Sec-WebSocket-Key and -Version validation, and the permessage-deflate negotiation of
 * RFC 7692 §7.1 (offers accepted, declined, and the response value).
 */
#include "tap.h"
#include "ws/ws.h"

#include <stdlib.h>

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static int sha1_is(const void *data, size_t len, size_t repeat, const char *want)
{
    ws_sha1_t s;
    uint8_t d[20];
    char h[41];
    ws_sha1_init(&s);
    for (size_t i = 0; i < repeat; i++)
        ws_sha1_update(&s, data, len);
    ws_sha1_final(&s, d);
    hex(d, 20, h);
    if (strcmp(h, want) != 0)
        printf("#   got %s\n", h);
    return strcmp(h, want) == 0;
}

static void test_sha1(void)
{
    /* RFC 3174 §7.3, TEST1..TEST4, and the empty message. */
    TAP_OK(sha1_is("abc", 3, 1, "a9993e364706816aba3e25717850c26c9cd0d89d"));
    TAP_OK(sha1_is("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, 1,
                   "84983e441c3bd26ebaae4aa1f95129e5e54670f1"));
    TAP_OK(sha1_is("a", 1, 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"));
    TAP_OK(sha1_is("0123456701234567012345670123456701234567012345670123456701234567", 64, 10,
                   "dea356a2cddd90c7a7ecedc5ebb563934f460452"));
    TAP_OK(sha1_is("", 0, 1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"));
    /* Lengths around the padding boundary (55, 56, 63, 64 bytes), fed in one piece and
     * byte by byte: the same digest (55 bytes checked against Python's hashlib). */
    char buf[130];
    memset(buf, 'x', sizeof(buf));
    int ok = 1;
    for (size_t n = 50; n < 130; n++) {
        ws_sha1_t a, b;
        uint8_t da[20], db[20];
        ws_sha1_init(&a);
        ws_sha1_update(&a, buf, n);
        ws_sha1_final(&a, da);
        ws_sha1_init(&b);
        for (size_t i = 0; i < n; i++)
            ws_sha1_update(&b, buf + i, 1);
        ws_sha1_final(&b, db);
        ok &= memcmp(da, db, 20) == 0;
    }
    TAP_OK(ok);
    TAP_OK(sha1_is("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 55, 1,
                   "cef734ba81a024479e09eb5a75b6ddae62e6abf1"));
}

static void test_base64(void)
{
    static const char *const vec[][2] = {{"", ""},
                                         {"f", "Zg=="},
                                         {"fo", "Zm8="},
                                         {"foo", "Zm9v"},
                                         {"foob", "Zm9vYg=="},
                                         {"fooba", "Zm9vYmE="},
                                         {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        char out[16];
        size_t n = ws_base64_encode((const uint8_t *)vec[i][0], strlen(vec[i][0]), out);
        TAP_OK(n == strlen(vec[i][1]) && memcmp(out, vec[i][1], n) == 0);
    }
    uint8_t all[3] = {0xfb, 0xff, 0xbf};
    char out[4];
    TAP_EQ_INT(ws_base64_encode(all, 3, out), 4);
    TAP_EQ_MEM(out, 4, "+/+/");
}

static void test_accept(void)
{
    char out[28];
    /* RFC 6455 §1.3. */
    TAP_EQ_INT(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 28);
    TAP_EQ_MEM(out, 28, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    TAP_EQ_INT(ws_accept_key(" \tdGhlIHNhbXBsZSBub25jZQ== ", 27, out), 28);
    TAP_EQ_MEM(out, 28, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* RFC 6455 §4.2.2's worked example uses the same key; a second key from a browser. */
    TAP_EQ_INT(ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out), 28);
    TAP_EQ_MEM(out, 28, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    TAP_EQ_INT(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", 23, out), WS_E_ARG);

    TAP_OK(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 24));
    TAP_OK(ws_key_valid("AAAAAAAAAAAAAAAAAAAAAA==", 24));
    TAP_OK(ws_key_valid("/////////////////////w==", 24));
    TAP_OK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZR==", 24)); /* stray bits: not 16 bytes */
    TAP_OK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=", 23));
    TAP_OK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQ", 22));
    TAP_OK(!ws_key_valid("AAAAAAAAAAAAAAAAAAAA", 20));     /* 15 bytes */
    TAP_OK(!ws_key_valid("AAAAAAAAAAAAAAAAAAAAAAA=", 24)); /* 17 bytes */
    TAP_OK(!ws_key_valid("dGhlIHNhbXBsZSBub25j*Q==", 24));
    TAP_OK(!ws_key_valid("dGhlIHNhbXBsZSBub25j\0Q==", 24));
    TAP_OK(!ws_key_valid("", 0));
    TAP_OK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==dGhl", 28));

    TAP_OK(ws_version_ok("13", 2));
    TAP_OK(ws_version_ok(" 13 ", 4));
    TAP_OK(!ws_version_ok("8", 1));
    TAP_OK(!ws_version_ok("13, 8", 5));
    TAP_OK(!ws_version_ok("130", 3));
    TAP_OK(!ws_version_ok("", 0));
}

/* Negotiates value with config and returns the response ("" when declined). */
static const char *negotiate(const char *value, const ws_deflate_config_t *c)
{
    static char out[200];
    ws_deflate_params_t p;
    int rc = ws_deflate_negotiate(value, strlen(value), c, &p);
    if (rc != 1) {
        if (p.enabled)
            return "<enabled though declined>";
        return "";
    }
    int n = ws_deflate_response(&p, out, sizeof(out) - 1);
    if (n < 0)
        return "<error>";
    out[n] = '\0';
    return out;
}

#define NEGOTIATES(value, c, want) TAP_OK(strcmp(negotiate(value, c), want) == 0)

static void test_negotiate(void)
{
    ws_deflate_config_t c;
    ws_deflate_config_default(&c);
    NEGOTIATES("permessage-deflate", &c, "permessage-deflate");
    NEGOTIATES("permessage-deflate; client_max_window_bits", &c, "permessage-deflate");
    NEGOTIATES("Permessage-Deflate;Server_No_Context_Takeover", &c,
               "permessage-deflate; server_no_context_takeover");
    NEGOTIATES("permessage-deflate; server_no_context_takeover; client_no_context_takeover", &c,
               "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    NEGOTIATES("permessage-deflate; server_max_window_bits=10", &c,
               "permessage-deflate; server_max_window_bits=10");
    NEGOTIATES("permessage-deflate; server_max_window_bits=\"10\"", &c,
               "permessage-deflate; server_max_window_bits=10");
    NEGOTIATES("permessage-deflate ; server_max_window_bits = 15 ", &c,
               "permessage-deflate; server_max_window_bits=15");
    NEGOTIATES("permessage-deflate; server_max_window_bits=9", &c,
               "permessage-deflate; server_max_window_bits=9");
    /* zlib cannot write with a 256-byte window: the next offer is taken. */
    NEGOTIATES("permessage-deflate; server_max_window_bits=8, permessage-deflate", &c,
               "permessage-deflate");
    NEGOTIATES("permessage-deflate; server_max_window_bits=8", &c, "");
    /* Invalid offers are declined (§7.1): values, repetitions, unknown parameters. */
    NEGOTIATES("permessage-deflate; server_max_window_bits=16", &c, "");
    NEGOTIATES("permessage-deflate; server_max_window_bits=08", &c, "");
    NEGOTIATES("permessage-deflate; server_max_window_bits", &c, "");
    NEGOTIATES("permessage-deflate; client_max_window_bits=7", &c, "");
    NEGOTIATES("permessage-deflate; client_no_context_takeover=1", &c, "");
    NEGOTIATES("permessage-deflate; server_no_context_takeover; server_no_context_takeover", &c,
               "");
    NEGOTIATES("permessage-deflate; foo=bar, permessage-deflate; client_no_context_takeover", &c,
               "permessage-deflate; client_no_context_takeover");
    NEGOTIATES("x-webkit-deflate-frame; no_context_takeover, permessage-deflate", &c,
               "permessage-deflate");
    NEGOTIATES(", ,permessage-deflate", &c, "permessage-deflate");
    NEGOTIATES("foo", &c, "");
    NEGOTIATES("", &c, "");
    NEGOTIATES("permessage-deflate; =x", &c, "");
    NEGOTIATES("permessage-deflate; server_max_window_bits=\"10", &c, "");
    NEGOTIATES("permessage-deflate x", &c, "");
    /* What the browsers send. */
    NEGOTIATES("permessage-deflate; client_max_window_bits", &c, "permessage-deflate");
    c.client_max_window_bits = 12;
    NEGOTIATES("permessage-deflate; client_max_window_bits", &c,
               "permessage-deflate; client_max_window_bits=12");
    NEGOTIATES("permessage-deflate; client_max_window_bits=10", &c, "permessage-deflate");
    NEGOTIATES("permessage-deflate; client_max_window_bits=\"13\"", &c,
               "permessage-deflate; client_max_window_bits=12");
    NEGOTIATES("permessage-deflate", &c, "permessage-deflate"); /* not offered: not sent */
    c.server_no_context_takeover = 1;
    c.client_no_context_takeover = 1;
    c.server_max_window_bits = 11;
    NEGOTIATES("permessage-deflate; server_max_window_bits=13; client_max_window_bits", &c,
               "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
               "server_max_window_bits=11; client_max_window_bits=12");
    NEGOTIATES("permessage-deflate", &c,
               "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
               "server_max_window_bits=11");
    c.enabled = 0;
    NEGOTIATES("permessage-deflate", &c, "");

    /* The longest response fits 128 bytes; less is refused. */
    ws_deflate_params_t p = {1, 1, 1, 15, 15};
    char out[128];
    TAP_EQ_INT(ws_deflate_response(&p, out, sizeof(out)), 128);
    TAP_EQ_INT(ws_deflate_response(&p, out, 127), WS_E_ARG);
}

int main(void)
{
    test_sha1();
    test_base64();
    test_accept();
    test_negotiate();
    return tap_done();
}
