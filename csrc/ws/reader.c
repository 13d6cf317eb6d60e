/*
 * A reader of whole messages (see ws.h): the frame parser (frame.c) for one direction and
 * the message assembly (deflate.c's ws_message_t, here without an inflater) behind one
 * call that hands out a complete data message or a control frame at a time. The App's
 * ASGI face reads the frames of its native server with it (as the client end of a
 * socketpair, so unmasked frames, §5.1); control frames may come between the frames of a
 * fragmented message (§5.4) and are handed out as they come.
 */
#include "ws/ws.h"

#include <string.h>

/* A complete message's storage is kept for the next one up to this size; a larger one is
 * freed, so a reader that once saw a big message does not hold its memory for ever. */
#define WS_READER_KEEP (64 * 1024)

void ws_reader_init(ws_reader_t *r, int server, uint64_t max_message)
{
    memset(r, 0, sizeof(*r));
    ws_parser_init(&r->parser, server, 0, max_message);
    ws_message_init(&r->msg, max_message, NULL);
}

void ws_reader_free(ws_reader_t *r)
{
    ws_message_free(&r->msg);
}

int ws_reader_next(ws_reader_t *r, uint8_t *data, size_t len, size_t *used, ws_read_t *out)
{
    size_t pos = 0;
    *used = 0;
    if (r->error)
        return r->error;
    if (r->msg.complete) {
        /* The message handed out by the previous call is no longer the caller's. */
        if (r->msg.data.cap > WS_READER_KEEP)
            db_buf_free(&r->msg.data);
        ws_message_reset(&r->msg);
    }
    for (;;) {
        ws_event_t ev;
        size_t n = 0;
        /* No pointer arithmetic on a NULL piece (an empty one may have no storage). */
        int rc = ws_parser_next(&r->parser, data ? data + pos : data, len - pos, &n, &ev);
        pos += n;
        *used = pos;
        if (rc == 0)
            return 0;
        if (rc < 0)
            return r->error = rc;
        if (rc == WS_EV_CONTROL) {
            memset(out, 0, sizeof(*out));
            out->opcode = ev.opcode;
            out->data = ev.data;
            out->len = ev.len;
            if (ev.opcode == WS_OP_CLOSE) {
                out->close_code = ev.close_code;
                out->reason = ev.reason;
                out->reason_len = ev.reason_len;
            }
            return 1;
        }
        rc = ws_message_add(&r->msg, &ev);
        if (rc < 0)
            return r->error = rc;
        if (rc == 1) {
            memset(out, 0, sizeof(*out));
            out->opcode = r->msg.opcode;
            out->data = (const uint8_t *)r->msg.data.data;
            out->len = r->msg.data.len;
            return 1;
        }
    }
}
