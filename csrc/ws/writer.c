/*
 * The frame writer (RFC 6455 §5.2). A server's frames are never masked (§5.1), so whole
 * frames are appended to the caller's db_buf_t as header + payload; the header function
 * also takes a masking key, and ws_write_masked_frame writes a whole client frame, so that
 * a client (the App's ASGI face, the tests) can write the frames a server reads. Lengths
 * use the shortest of the three forms, as §5.2 requires.
 */
#include "ws/ws.h"

#include <stdint.h>
#include <string.h>

size_t ws_frame_header(uint8_t out[14], int opcode, int fin, int rsv1, uint64_t len,
                       const uint8_t *key)
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
    uint8_t m = key ? 0x80 : 0;
    if (len <= 125) {
        out[1] = (uint8_t)(m | len);
    } else if (len <= 0xFFFF) {
        out[1] = m | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = m | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (key) {
        for (int i = 0; i < 4; i++)
            out[n + (size_t)i] = key[i];
        n += 4;
    }
    return n;
}

int ws_write_frame(db_buf_t *out, int opcode, int fin, int rsv1, const void *payload, size_t len)
{
    if (opcode >= 8 && (!fin || len > 125 || rsv1))
        return WS_E_ARG; /* §5.5: control frames are whole and short */
    uint8_t hdr[14];
    size_t h = ws_frame_header(hdr, opcode, fin, rsv1, len, NULL);
    if (len > SIZE_MAX - h || db_buf_reserve(out, h + len) < 0)
        return WS_E_NO_MEMORY;
    db_buf_append(out, hdr, h);
    db_buf_append(out, payload, len);
    return 0;
}

int ws_close_payload(uint8_t out[125], int code, const char *reason, size_t reason_len)
{
    if (code == 0)
        return reason_len ? WS_E_ARG : 0; /* a reason needs a code before it (§5.5.1) */
    if (!ws_close_code_valid(code) || reason_len > 123)
        return WS_E_ARG;
    if (ws_utf8_valid((const uint8_t *)reason, reason_len) < 0)
        return WS_E_UTF8;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (reason_len)
        memcpy(out + 2, reason, reason_len);
    return (int)reason_len + 2;
}

int ws_write_close(db_buf_t *out, int code, const char *reason, size_t reason_len)
{
    uint8_t body[125];
    int n = ws_close_payload(body, code, reason, reason_len);
    if (n < 0)
        return n;
    return ws_write_frame(out, WS_OP_CLOSE, 1, 0, body, (size_t)n);
}

size_t ws_frame_size(uint64_t len, int masked)
{
    size_t h = (len <= 125 ? 2 : len <= 0xFFFF ? 4 : 10) + (masked ? 4 : 0);
    if (len > (uint64_t)(SIZE_MAX - h))
        return 0;
    return h + (size_t)len;
}

int64_t ws_write_masked_frame(uint8_t *out, int opcode, const void *payload, size_t len,
                              const uint8_t key[4])
{
    switch (opcode) {
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (len > 125)
            return WS_E_ARG; /* §5.5: control frames carry at most 125 bytes */
        break;
    default:
        return WS_E_ARG; /* continuation frames belong to a fragmented message, not sent here */
    }
    size_t h = ws_frame_header(out, opcode, 1, 0, len, key);
    if (len) {
        memcpy(out + h, payload, len);
        ws_mask(out + h, len, key, 0); /* §5.3: octet i XOR key[i % 4] */
    }
    return (int64_t)(h + len);
}
