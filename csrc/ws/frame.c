/*
 * The incremental frame parser (RFC 6455 §5), the masking transform (§5.3) and the error
 * table (see ws.h for the API). The parser owns only its struct: header bytes that
 * arrive split are collected in hdr (at most 14), a control frame's payload in ctrl (at
 * most 125, §5.5), and a data frame's payload is never copied: each DATA event is a slice
 * of the caller's piece, unmasked in place. Every rule is checked as soon as the bytes
 * that decide it are in, so an error is reported at the same frame whatever the split
 * points, and before any of that frame's payload is handed out.
 */
#include "ws/ws.h"

#include <string.h>

enum { S_HEADER, S_PAYLOAD, S_CONTROL, S_CLOSED };

static const char *const messages[] = {
    "",
    "a client frame is not masked",
    "a server frame is masked",
    "a reserved bit is set",
    "a reserved opcode",
    "a control frame is longer than 125 bytes",
    "a control frame is fragmented",
    "a continuation frame without a message to continue",
    "a new message inside a fragmented message",
    "a 64-bit frame length with its most significant bit set",
    "a message is too big",
    "a close frame with a one-byte payload",
    "a close frame with an invalid status code",
    "invalid UTF-8 in a text message or close reason",
    "compressed data that does not inflate",
    "out of memory",
    "an argument out of range",
};

const char *ws_error_message(int code)
{
    if (code >= 0)
        return "no error";
    if (code <= WS_E__LAST)
        return "unknown error";
    return messages[-code];
}

int ws_close_code(int code)
{
    switch (code) {
    case WS_E_UTF8:
    case WS_E_INFLATE:
        return WS_CLOSE_INVALID_DATA;
    case WS_E_TOO_BIG:
        return WS_CLOSE_TOO_BIG;
    case WS_E_NO_MEMORY:
    case WS_E_ARG:
        return WS_CLOSE_INTERNAL;
    default:
        return code < 0 && code > WS_E__LAST ? WS_CLOSE_PROTOCOL : WS_CLOSE_INTERNAL;
    }
}

int ws_close_code_valid(int code)
{
    /* §7.4.1: 1004 is reserved, 1005 and 1006 are never sent, 1015 neither; 1012-1014 were
     * registered later (IANA) and are sent by servers restarting or overloaded; 3000-3999
     * are registered for libraries and frameworks, 4000-4999 private. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

size_t ws_mask(uint8_t *data, size_t n, const uint8_t key[4], size_t offset)
{
    size_t i = 0;
    offset &= 3;
    /* Align the key to the payload offset, then XOR eight bytes at a time: the repeated key
     * is the same eight bytes at every multiple of four. */
    uint8_t k8[8];
    for (int j = 0; j < 8; j++)
        k8[j] = key[(offset + (size_t)j) & 3];
    uint64_t k;
    memcpy(&k, k8, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, 8);
        w ^= k;
        memcpy(data + i, &w, 8);
    }
    for (; i < n; i++)
        data[i] ^= k8[i & 7];
    return (offset + n) & 3;
}

static int fail(ws_parser_t *p, int code)
{
    p->error = code;
    return code;
}

void ws_parser_init(ws_parser_t *p, int server, int deflate, uint64_t max_message)
{
    memset(p, 0, sizeof(*p));
    p->server = server ? 1 : 0;
    p->deflate = deflate ? 1 : 0;
    p->max_msg = max_message;
    p->state = S_HEADER;
    ws_utf8_init(&p->utf8);
}

/* The first two header bytes are in: every rule that depends on them alone (§5.2) is
 * checked here, and the header's full length is known. */
static int check_start(ws_parser_t *p)
{
    uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
    int op = b0 & 0x0F, rsv = b0 & 0x70, len7 = b1 & 0x7F;
    p->fin = b0 >> 7;
    p->opcode = (uint8_t)op;
    p->masked = b1 >> 7;
    int control = op >= 8;
    if (op != WS_OP_CONT && op != WS_OP_TEXT && op != WS_OP_BINARY && op != WS_OP_CLOSE &&
        op != WS_OP_PING && op != WS_OP_PONG)
        return WS_E_OPCODE;
    /* RSV2 and RSV3 belong to no extension we agree to. RSV1 is permessage-deflate's "per-
     * message compressed" bit: only when agreed, and only on the first frame of a data
     * message (RFC 7692 §6.1), never on control frames or continuations. */
    if (rsv & 0x30)
        return WS_E_RSV;
    if (rsv & 0x40 && (!p->deflate || control || op == WS_OP_CONT))
        return WS_E_RSV;
    if (control) {
        if (!p->fin)
            return WS_E_CONTROL_FRAGMENTED;
        if (len7 > 125)
            return WS_E_CONTROL_TOO_LONG;
    } else if (op == WS_OP_CONT) {
        if (!p->in_message)
            return WS_E_NO_MESSAGE;
    } else if (p->in_message) {
        return WS_E_IN_MESSAGE;
    }
    /* §5.1: a server closes on an unmasked client frame; a client on a masked server frame. */
    if (p->server && !p->masked)
        return WS_E_UNMASKED;
    if (!p->server && p->masked)
        return WS_E_MASKED;
    p->hneed = (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (p->masked ? 4 : 0));
    return 0;
}

/* The whole header is in: the length, the mask, and the message rules. */
static int check_header(ws_parser_t *p, ws_event_t *ev)
{
    uint8_t len7 = p->hdr[1] & 0x7F;
    const uint8_t *q = p->hdr + 2;
    uint64_t len = len7;
    if (len7 == 126) {
        len = ((uint64_t)q[0] << 8) | q[1];
        q += 2;
    } else if (len7 == 127) {
        if (q[0] & 0x80)
            return WS_E_LENGTH; /* §5.2: the most significant bit MUST be 0 */
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | q[i];
        q += 8;
    }
    if (p->masked)
        memcpy(p->mask, q, 4);
    p->mask_pos = 0;
    p->length = p->remaining = len;
    if (p->opcode >= 8) {
        p->ctrl_len = 0;
        p->state = S_CONTROL;
        return 0;
    }
    int first = p->opcode != WS_OP_CONT;
    if (first) {
        p->msg_opcode = p->opcode;
        p->msg_compressed = (p->hdr[0] & 0x40) ? 1 : 0;
        p->msg_size = 0;
        ws_utf8_init(&p->utf8);
    }
    if (p->max_msg && len > p->max_msg - p->msg_size)
        return WS_E_TOO_BIG;
    p->msg_size += len;
    p->in_message = !p->fin;
    p->state = S_PAYLOAD;
    memset(ev, 0, sizeof(*ev));
    ev->type = WS_EV_FRAME;
    ev->opcode = p->opcode;
    ev->message_opcode = p->msg_opcode;
    ev->fin = p->fin;
    ev->compressed = p->msg_compressed;
    ev->first = first;
    ev->length = len;
    return WS_EV_FRAME;
}

/* A control frame's payload is complete (§5.5): unmask it and, for a close frame, check
 * its status code and reason (§5.5.1, §7.4). */
static int control_done(ws_parser_t *p, ws_event_t *ev)
{
    if (p->masked)
        ws_mask(p->ctrl, p->ctrl_len, p->mask, 0);
    memset(ev, 0, sizeof(*ev));
    ev->type = WS_EV_CONTROL;
    ev->opcode = p->opcode;
    ev->fin = 1;
    ev->data = p->ctrl;
    ev->len = p->ctrl_len;
    ev->length = p->ctrl_len;
    p->state = S_HEADER;
    if (p->opcode == WS_OP_CLOSE) {
        if (p->ctrl_len == 1)
            return WS_E_CLOSE_PAYLOAD;
        ev->close_code = WS_CLOSE_NO_STATUS;
        if (p->ctrl_len >= 2) {
            ev->close_code = (p->ctrl[0] << 8) | p->ctrl[1];
            if (!ws_close_code_valid(ev->close_code))
                return WS_E_CLOSE_CODE;
            if (ws_utf8_valid(p->ctrl + 2, p->ctrl_len - 2u) < 0)
                return WS_E_UTF8;
            ev->reason = (const char *)p->ctrl + 2;
            ev->reason_len = p->ctrl_len - 2u;
        }
        p->state = S_CLOSED;
    }
    return WS_EV_CONTROL;
}

int ws_parser_next(ws_parser_t *p, uint8_t *data, size_t len, size_t *used, ws_event_t *ev)
{
    size_t pos = 0;
    int rc = 0;
    *used = 0;
    if (p->error)
        return p->error;
    for (;;) {
        switch (p->state) {
        case S_HEADER: {
            if (pos == len)
                goto out;
            size_t want = p->hlen < 2 ? 2 : p->hneed;
            size_t take = want - p->hlen;
            if (take > len - pos)
                take = len - pos;
            memcpy(p->hdr + p->hlen, data + pos, take);
            p->hlen = (uint8_t)(p->hlen + take);
            pos += take;
            if (p->hlen < want)
                goto out;
            if (want == 2 && (rc = check_start(p)) < 0)
                goto error;
            if (p->hlen < p->hneed)
                continue;
            p->hlen = 0;
            rc = check_header(p, ev);
            if (rc < 0)
                goto error;
            if (rc > 0)
                goto out;
            continue;
        }
        case S_PAYLOAD: {
            if (p->remaining == 0) {
                p->state = S_HEADER;
                if (p->fin && p->msg_opcode == WS_OP_TEXT && !p->msg_compressed &&
                    (rc = ws_utf8_finish(&p->utf8)) < 0)
                    goto error;
                memset(ev, 0, sizeof(*ev));
                ev->type = WS_EV_FRAME_END;
                ev->opcode = p->opcode;
                ev->message_opcode = p->msg_opcode;
                ev->fin = p->fin;
                ev->compressed = p->msg_compressed;
                ev->length = p->length;
                rc = WS_EV_FRAME_END;
                goto out;
            }
            if (pos == len)
                goto out;
            size_t n = len - pos;
            if (n > p->remaining)
                n = (size_t)p->remaining;
            uint8_t *d = data + pos;
            if (p->masked)
                p->mask_pos = (uint8_t)ws_mask(d, n, p->mask, p->mask_pos);
            if (p->msg_opcode == WS_OP_TEXT && !p->msg_compressed &&
                (rc = ws_utf8_feed(&p->utf8, d, n)) < 0)
                goto error;
            pos += n;
            p->remaining -= n;
            memset(ev, 0, sizeof(*ev));
            ev->type = WS_EV_DATA;
            ev->opcode = p->opcode;
            ev->message_opcode = p->msg_opcode;
            ev->fin = p->fin;
            ev->compressed = p->msg_compressed;
            ev->length = p->length;
            ev->data = d;
            ev->len = n;
            rc = WS_EV_DATA;
            goto out;
        }
        case S_CONTROL: {
            size_t n = len - pos;
            if (n > p->remaining)
                n = (size_t)p->remaining;
            if (n)
                memcpy(p->ctrl + p->ctrl_len, data + pos, n);
            p->ctrl_len = (uint8_t)(p->ctrl_len + n);
            p->remaining -= n;
            pos += n;
            if (p->remaining)
                goto out;
            rc = control_done(p, ev);
            if (rc < 0)
                goto error;
            goto out;
        }
        default: /* S_CLOSED: nothing is read after a close frame (§1.4) */
            pos = len;
            goto out;
        }
    }
out:
    *used = pos;
    return rc;
error:
    *used = pos;
    return fail(p, rc);
}
