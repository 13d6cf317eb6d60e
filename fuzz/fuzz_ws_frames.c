/*
 * libFuzzer target for the WebSocket frame parser and message assembler (csrc/ws/). The
 * input's first byte chooses the direction (bit 0: server, reading masked frames),
 * permessage-deflate (bit 1), the limits (bit 2: a 100-byte message limit on the wire
 * and 300 bytes inflated, else none and 1 MiB inflated) and the inflater's context
 * takeover (bit 3 set: reset after each message; its window is the server's, 15: a
 * smaller one makes the outcome depend on the cuts, see ws.h); the next two bytes choose a
 * split
 * point; the rest is the stream. It is parsed in one piece, in two pieces cut at that
 * point, and (when short) one byte at a time. Invariants checked on every run: the event
 * order (FRAME, DATA*, FRAME_END; CONTROL only between frames), each frame's data adding up
 * to its length, control payloads of at most 125 bytes and valid close codes, complete
 * uncompressed text messages valid UTF-8, *used within the piece and 0 returned only when
 * the piece is used up, sticky errors, every error with a close code, and the same events,
 * data, messages and result however the stream was cut (for an error on invalid UTF-8
 * inside a frame, how much valid data came first depends on the cut, so data is then not
 * compared). The target owns the piece copies, its transcripts and the zlib state.
 */
#include "ws/ws.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t len, cap;
} dbuf_t;

static void put(dbuf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 256) + n;
        char *q = realloc(b->p, cap);
        if (q == NULL)
            abort();
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

typedef struct {
    dbuf_t events, data;
    int in_frame;
    uint64_t frame_len, frame_got;
    dbuf_t text; /* the current uncompressed text message */
    int rc;
    int msg_rc;
} rec_t;

static void check_event(rec_t *r, const ws_event_t *ev, int server)
{
    (void)server;
    switch (ev->type) {
    case WS_EV_FRAME:
        if (r->in_frame)
            abort();
        if (ev->message_opcode != WS_OP_TEXT && ev->message_opcode != WS_OP_BINARY)
            abort();
        if (ev->first != (ev->opcode != WS_OP_CONT))
            abort();
        if (ev->first)
            r->text.len = 0;
        r->in_frame = 1;
        r->frame_len = ev->length;
        r->frame_got = 0;
        put(&r->events, "F", 1);
        put(&r->events, ev, offsetof(ws_event_t, data));
        break;
    case WS_EV_DATA:
        if (!r->in_frame || ev->len == 0 || ev->data == NULL)
            abort();
        r->frame_got += ev->len;
        if (r->frame_got > r->frame_len)
            abort();
        put(&r->data, ev->data, ev->len); /* reads every byte */
        if (ev->message_opcode == WS_OP_TEXT && !ev->compressed)
            put(&r->text, ev->data, ev->len);
        break;
    case WS_EV_FRAME_END:
        if (!r->in_frame || r->frame_got != r->frame_len)
            abort();
        r->in_frame = 0;
        put(&r->events, ev->fin ? "E" : "e", 1);
        if (ev->fin && ev->message_opcode == WS_OP_TEXT && !ev->compressed &&
            ws_utf8_valid((const uint8_t *)r->text.p, r->text.len) != 0)
            abort();
        break;
    case WS_EV_CONTROL:
        if (r->in_frame || ev->len > 125 || ev->opcode < 8 || ev->fin != 1)
            abort();
        if (ev->opcode == WS_OP_CLOSE) {
            if (ev->len == 0 ? ev->close_code != 1005 : !ws_close_code_valid(ev->close_code))
                abort();
            if (ev->reason_len + (ev->len ? 2 : 0) != ev->len)
                abort();
        }
        put(&r->events, "C", 1);
        put(&r->events, &ev->opcode, sizeof(ev->opcode));
        put(&r->events, ev->data, ev->len);
        break;
    default:
        abort();
    }
}

static void parse(const uint8_t *s, size_t n, int flags, const size_t *cuts, size_t ncuts, rec_t *r)
{
    int server = flags & 1, deflate = (flags >> 1) & 1, small = (flags >> 2) & 1;
    int no_takeover = (flags >> 3) & 1;
    ws_parser_t p;
    ws_parser_init(&p, server, deflate, small ? 100 : 0);
    ws_inflater_t *inf = deflate ? ws_inflater_new(15, no_takeover) : NULL;
    if (deflate && inf == NULL)
        abort();
    ws_message_t m;
    ws_message_init(&m, small ? 300 : 1 << 20, inf);
    memset(r, 0, sizeof(*r));
    size_t start = 0;
    for (size_t i = 0; i <= ncuts && r->rc == 0; i++) {
        size_t stop = i < ncuts ? cuts[i] : n, len = stop - start;
        uint8_t *piece = malloc(len ? len : 1);
        if (piece == NULL)
            abort();
        memcpy(piece, s + start, len);
        start = stop;
        uint8_t *q = piece;
        for (;;) {
            ws_event_t ev;
            size_t used;
            int rc = ws_parser_next(&p, q, len, &used, &ev);
            if (used > len)
                abort();
            q += used;
            len -= used;
            if (rc == 0) {
                if (len)
                    abort();
                break;
            }
            if (rc < 0) {
                int code = ws_close_code(rc);
                if (rc <= WS_E__LAST || (code != 1002 && code != 1007 && code != 1009))
                    abort();
                if (ws_error_message(rc)[0] == '\0' || ws_parser_next(&p, q, len, &used, &ev) != rc)
                    abort();
                r->rc = rc;
                break;
            }
            if (rc != ev.type)
                abort();
            check_event(r, &ev, server);
            if (r->msg_rc == 0) {
                int mr = ws_message_add(&m, &ev);
                if (mr < 0) {
                    r->msg_rc = mr;
                    if (ws_close_code(mr) < 1002)
                        abort();
                    put(&r->events, "!", 1);
                } else if (mr == 1) {
                    if (m.opcode == WS_OP_TEXT &&
                        ws_utf8_valid((const uint8_t *)m.data.data, m.data.len) != 0)
                        abort();
                    put(&r->data, "|M", 2);
                    put(&r->data, m.data.data, m.data.len);
                    put(&r->events, "M", 1);
                }
            }
        }
        free(piece);
    }
    put(&r->events, &r->rc, sizeof(r->rc));
    put(&r->events, &r->msg_rc, sizeof(r->msg_rc));
    ws_message_free(&m);
    ws_inflater_free(inf);
}

static void same(const rec_t *a, const rec_t *b)
{
    if (a->events.len != b->events.len ||
        (a->events.len && memcmp(a->events.p, b->events.p, a->events.len) != 0))
        abort();
    if (a->rc == WS_E_UTF8)
        return;
    if (a->data.len != b->data.len ||
        (a->data.len && memcmp(a->data.p, b->data.p, a->data.len) != 0))
        abort();
}

static void release(rec_t *r)
{
    free(r->events.p);
    free(r->data.p);
    free(r->text.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int flags = data[0];
    size_t n = size - 3;
    const uint8_t *s = data + 3;
    size_t cut = ((size_t)data[1] << 8 | data[2]) % (n + 1);

    rec_t a, b;
    parse(s, n, flags, NULL, 0, &a);
    parse(s, n, flags, &cut, 1, &b);
    same(&a, &b);
    release(&b);
    if (n <= 1024) {
        size_t *all = malloc((n + 1) * sizeof(*all));
        if (all == NULL)
            abort();
        for (size_t i = 0; i < n; i++)
            all[i] = i + 1;
        parse(s, n, flags, all, n, &b);
        free(all);
        same(&a, &b);
        release(&b);
    }
    release(&a);
    return 0;
}
