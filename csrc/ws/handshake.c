/*
 * The opening handshake's computations (RFC 6455 §4.2): Sec-WebSocket-Key validation,
 * Sec-WebSocket-Accept (SHA-1 of the key and the GUID of §1.3, in base64), the version
 * check, and the permessage-deflate negotiation of RFC 7692 §7.1 over the
 * Sec-WebSocket-Extensions grammar of RFC 6455 §9.1. SHA-1 (RFC 3174) and base64
 * (RFC 4648 §4) are written here: a handshake hashes 60 bytes, so a small portable
 * implementation costs nothing and keeps OpenSSL out of the build.
 */
#include "ws/ws.h"

#include "common/text.h"

#include <string.h>

/* --- SHA-1 (RFC 3174 §6.1) --------------------------------------------------------------- */

static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *b)
{
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)b[4 * t] << 24 | (uint32_t)b[4 * t + 1] << 16 |
               (uint32_t)b[4 * t + 2] << 8 | b[4 * t + 3];
    for (int t = 16; t < 80; t++)
        w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (bb & c) | (~bb & d);
            k = 0x5A827999;
        } else if (t < 40) {
            f = bb ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (t < 60) {
            f = (bb & c) | (bb & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = bb ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t tmp = rol(a, 5) + f + e + w[t] + k;
        e = d;
        d = c;
        c = rol(bb, 30);
        bb = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += bb;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void ws_sha1_init(ws_sha1_t *s)
{
    s->h[0] = 0x67452301;
    s->h[1] = 0xEFCDAB89;
    s->h[2] = 0x98BADCFE;
    s->h[3] = 0x10325476;
    s->h[4] = 0xC3D2E1F0;
    s->bytes = 0;
    s->used = 0;
}

void ws_sha1_update(ws_sha1_t *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    s->bytes += len;
    while (len) {
        size_t n = 64 - s->used;
        if (n > len)
            n = len;
        memcpy(s->block + s->used, p, n);
        s->used += n;
        p += n;
        len -= n;
        if (s->used == 64) {
            sha1_block(s->h, s->block);
            s->used = 0;
        }
    }
}

void ws_sha1_final(ws_sha1_t *s, uint8_t out[20])
{
    /* §4: a 1 bit, zeros up to 56 mod 64, then the message length in bits, big-endian. */
    uint64_t bits = s->bytes * 8;
    uint8_t pad = 0x80;
    ws_sha1_update(s, &pad, 1);
    pad = 0;
    while (s->used != 56)
        ws_sha1_update(s, &pad, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(bits >> (56 - 8 * i));
    ws_sha1_update(s, len, 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

/* --- base64 (RFC 4648 §4) ---------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t ws_base64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = '=';
    }
    return o;
}

static int b64_value(char c)
{
    const char *q = c ? memchr(b64, c, 64) : NULL;
    return q ? (int)(q - b64) : -1;
}

/* --- the handshake fields ---------------------------------------------------------------- */

int ws_key_valid(const char *key, size_t len)
{
    db_trim_ows(&key, &len);
    /* 16 bytes are 22 characters and "==": the 22nd carries 2 bits of the last byte and 4
     * zero bits, so its value is a multiple of 16 (A, Q, g, w). */
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return 0;
    for (int i = 0; i < 22; i++) {
        int v = b64_value(key[i]);
        if (v < 0 || (i == 21 && (v & 15)))
            return 0;
    }
    return 1;
}

int ws_accept_key(const char *key, size_t len, char out[28])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    if (!ws_key_valid(key, len))
        return WS_E_ARG;
    db_trim_ows(&key, &len);
    ws_sha1_t s;
    uint8_t digest[20];
    ws_sha1_init(&s);
    ws_sha1_update(&s, key, len);
    ws_sha1_update(&s, guid, sizeof(guid) - 1);
    ws_sha1_final(&s, digest);
    return (int)ws_base64_encode(digest, 20, out);
}

int ws_version_ok(const char *value, size_t len)
{
    db_trim_ows(&value, &len);
    return len == 2 && value[0] == '1' && value[1] == '3';
}

/* --- Sec-WebSocket-Extensions and permessage-deflate ------------------------------------- */

void ws_deflate_config_default(ws_deflate_config_t *c)
{
    c->enabled = 1;
    c->server_no_context_takeover = 0;
    c->client_no_context_takeover = 0;
    c->server_max_window_bits = 15;
    c->client_max_window_bits = 15;
}

typedef struct {
    const char *p;
    size_t len, pos;
} lex_t;

static int is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void ows(lex_t *l)
{
    while (l->pos < l->len && (l->p[l->pos] == ' ' || l->p[l->pos] == '\t'))
        l->pos++;
}

/* A token at the current position: its start and length (0 when there is none). */
static size_t token(lex_t *l, const char **start)
{
    *start = l->p + l->pos;
    size_t n = 0;
    while (l->pos < l->len && is_tchar(l->p[l->pos]))
        l->pos++, n++;
    return n;
}

/* A parameter value: a token, or a quoted-string whose content is copied (quoted-pairs
 * undone) into buf. Returns its length, or -1 on a syntax error. RFC 6455 §9.1 says a
 * quoted value must still be a valid token once unquoted; that is checked by the caller,
 * which only accepts digits. */
static int value(lex_t *l, char *buf, size_t cap)
{
    if (l->pos < l->len && l->p[l->pos] == '"') {
        size_t n = 0;
        l->pos++;
        while (l->pos < l->len && l->p[l->pos] != '"') {
            char c = l->p[l->pos++];
            if (c == '\\') {
                if (l->pos == l->len)
                    return -1;
                c = l->p[l->pos++];
            }
            if (n < cap)
                buf[n] = c;
            n++;
        }
        if (l->pos == l->len)
            return -1; /* no closing quote */
        l->pos++;
        return n > cap ? (int)cap + 1 : (int)n;
    }
    const char *s;
    size_t n = token(l, &s);
    if (n == 0)
        return -1;
    if (n > cap)
        return (int)cap + 1;
    memcpy(buf, s, n);
    return (int)n;
}

static int lower_eq(const char *a, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != lit[i])
            return 0;
    }
    return 1;
}

/* Window bits as RFC 7692 §7.1.2 writes them: 8..15, no leading zero. -1 otherwise. */
static int window_bits(const char *v, int n)
{
    if (n == 1 && v[0] == '8')
        return 8;
    if (n == 1 && v[0] == '9')
        return 9;
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + (v[1] - '0');
    return -1;
}

enum { P_SNCT = 1, P_CNCT = 2, P_SMWB = 4, P_CMWB = 8 };

/* Reads the parameters of one offer (after its name) up to the ',' or the end. Returns 1
 * when the offer is a permessage-deflate offer we can accept (its values in *o, *smwb,
 * *cmwb), 0 when it is to be declined, -1 on a syntax error (the rest cannot be read). */
static int offer_params(lex_t *l, int is_pmd, int *seen, int *smwb, int *cmwb)
{
    int ok = is_pmd;
    *seen = 0;
    *smwb = *cmwb = 0;
    for (;;) {
        ows(l);
        if (l->pos == l->len || l->p[l->pos] == ',')
            return ok;
        if (l->p[l->pos] != ';')
            return -1;
        l->pos++;
        ows(l);
        const char *name;
        size_t nlen = token(l, &name);
        if (nlen == 0)
            return -1;
        ows(l);
        char v[8];
        int vlen = -2; /* no value */
        if (l->pos < l->len && l->p[l->pos] == '=') {
            l->pos++;
            ows(l);
            vlen = value(l, v, sizeof(v));
            if (vlen < 0)
                return -1;
        }
        int bit = lower_eq(name, nlen, "server_no_context_takeover")   ? P_SNCT
                  : lower_eq(name, nlen, "client_no_context_takeover") ? P_CNCT
                  : lower_eq(name, nlen, "server_max_window_bits")     ? P_SMWB
                  : lower_eq(name, nlen, "client_max_window_bits")     ? P_CMWB
                                                                       : 0;
        /* §7.1: an unknown or repeated parameter, or a bad value, declines the offer. */
        if (bit == 0 || (*seen & bit)) {
            ok = 0;
            continue;
        }
        *seen |= bit;
        if (bit == P_SNCT || bit == P_CNCT) {
            if (vlen != -2)
                ok = 0;
        } else if (bit == P_SMWB) {
            *smwb = vlen >= 0 ? window_bits(v, vlen) : -1;
            if (*smwb < 0)
                ok = 0;
        } else {
            *cmwb = vlen == -2 ? 15 : window_bits(v, vlen);
            if (*cmwb < 0)
                ok = 0;
        }
    }
}

int ws_deflate_negotiate(const char *value_, size_t len, const ws_deflate_config_t *config,
                         ws_deflate_params_t *out)
{
    lex_t l = {value_, len, 0};
    memset(out, 0, sizeof(*out));
    if (!config->enabled)
        return 0;
    for (;;) {
        ows(&l);
        if (l.pos == l.len)
            return 0;
        if (l.p[l.pos] == ',') {
            l.pos++; /* an empty list element (RFC 9110 §5.6.1) */
            continue;
        }
        const char *name;
        size_t nlen = token(&l, &name);
        if (nlen == 0)
            return 0;
        int seen, smwb, cmwb;
        int rc = offer_params(&l, lower_eq(name, nlen, "permessage-deflate"), &seen, &smwb, &cmwb);
        if (rc < 0)
            return 0;
        /* zlib cannot compress raw deflate with a 256-byte window (deflateInit2 refuses
         * windowBits -8), so an offer that limits us to 8 is declined: the next offer, or
         * no compression, is the answer. */
        if (rc == 1 && !((seen & P_SMWB) && smwb < 9)) {
            int ours = config->server_max_window_bits;
            out->enabled = 1;
            out->server_no_context_takeover = (seen & P_SNCT) || config->server_no_context_takeover;
            out->client_no_context_takeover = (seen & P_CNCT) || config->client_no_context_takeover;
            /* §7.1.2.1: when offered, the response must carry it, same or smaller. */
            if (seen & P_SMWB)
                out->server_max_window_bits = smwb < ours ? smwb : ours;
            else if (ours < 15)
                out->server_max_window_bits = ours;
            /* §7.1.2.2: only when offered, and never above the offered value. */
            if ((seen & P_CMWB) && config->client_max_window_bits < cmwb)
                out->client_max_window_bits = config->client_max_window_bits;
            return 1;
        }
        if (l.pos < l.len)
            l.pos++; /* the ',' */
    }
}

int ws_deflate_response(const ws_deflate_params_t *params, char *out, size_t cap)
{
    char tmp[160];
    size_t n = 0;
    memcpy(tmp, "permessage-deflate", 18);
    n = 18;
    if (params->server_no_context_takeover) {
        memcpy(tmp + n, "; server_no_context_takeover", 28);
        n += 28;
    }
    if (params->client_no_context_takeover) {
        memcpy(tmp + n, "; client_no_context_takeover", 28);
        n += 28;
    }
    int bits[2] = {params->server_max_window_bits, params->client_max_window_bits};
    const char *names[2] = {"; server_max_window_bits=", "; client_max_window_bits="};
    for (int i = 0; i < 2; i++) {
        if (bits[i] < 8 || bits[i] > 15)
            continue;
        memcpy(tmp + n, names[i], 25);
        n += 25;
        if (bits[i] >= 10)
            tmp[n++] = '1';
        tmp[n++] = (char)('0' + bits[i] % 10);
    }
    if (n > cap)
        return WS_E_ARG;
    memcpy(out, tmp, n);
    return (int)n;
}
