/*
 * libFuzzer target for the WebSocket handshake helpers (csrc/ws/handshake.c), which read
 * header values a client controls. The input's first byte chooses the server's
 * permessage-deflate configuration; the rest is a Sec-WebSocket-Extensions value, and also
 * a Sec-WebSocket-Key and -Version. Invariants: negotiation returns 0 or 1 with params in
 * range, the response value fits 128 bytes and, read back as an offer, is accepted with the
 * same params (it is a valid offer); a key is accepted exactly when it is 24 characters
 * around optional whitespace, and its Accept value is 28 base64 characters. The target owns
 * only its copy of the input.
 */
#include "ws/ws.h"

#include <stdlib.h>
#include <string.h>

static int b64char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int f = data[0];
    size_t n = size - 1;
    char *v = malloc(n ? n : 1); /* exact size, so ASan sees reads past the value */
    if (v == NULL)
        abort();
    memcpy(v, data + 1, n);

    ws_deflate_config_t c;
    ws_deflate_config_default(&c);
    c.enabled = (f & 1) == 0;
    c.server_no_context_takeover = (f >> 1) & 1;
    c.client_no_context_takeover = (f >> 2) & 1;
    c.server_max_window_bits = 9 + (f >> 3) % 7;
    c.client_max_window_bits = 8 + (f >> 5) % 8;
    ws_deflate_params_t p;
    int rc = ws_deflate_negotiate(v, n, &c, &p);
    if (rc != 0 && rc != 1)
        abort();
    if (rc != p.enabled || (rc == 0 && (p.server_no_context_takeover || p.server_max_window_bits)))
        abort();
    if (rc == 1) {
        if ((p.server_max_window_bits && (p.server_max_window_bits < 9 ||
                                          p.server_max_window_bits > c.server_max_window_bits)) ||
            (p.client_max_window_bits &&
             (p.client_max_window_bits < 8 || p.client_max_window_bits > 15)) ||
            (c.server_no_context_takeover && !p.server_no_context_takeover) ||
            (c.client_no_context_takeover && !p.client_no_context_takeover))
            abort();
        char out[128];
        int len = ws_deflate_response(&p, out, sizeof(out));
        if (len < 18 || memcmp(out, "permessage-deflate", 18) != 0)
            abort();
        ws_deflate_config_t all;
        ws_deflate_config_default(&all);
        ws_deflate_params_t q;
        if (ws_deflate_negotiate(out, (size_t)len, &all, &q) != 1 ||
            q.server_no_context_takeover != p.server_no_context_takeover ||
            q.client_no_context_takeover != p.client_no_context_takeover ||
            q.server_max_window_bits != p.server_max_window_bits)
            abort();
    }

    char accept[28];
    int valid = ws_key_valid(v, n);
    int arc = ws_accept_key(v, n, accept);
    if (valid ? arc != 28 : arc != WS_E_ARG)
        abort();
    if (valid) {
        size_t a = 0, b = n;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b - a != 24)
            abort();
        for (int i = 0; i < 28; i++)
            if (!b64char(accept[i]))
                abort();
    }
    (void)ws_version_ok(v, n);
    free(v);
    return 0;
}
