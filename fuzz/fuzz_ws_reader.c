/*
 * libFuzzer target for the reader of whole messages (csrc/ws/reader.c) and the client's
 * masked frames (ws_write_masked_frame in writer.c). The input's first byte chooses the
 * direction (bit 0: server, reading masked frames) and a 100-byte message bound (bit 1);
 * the next two bytes a split point; the rest is the stream. It is read in one piece, in two
 * pieces cut at that point and one byte at a time. Invariants: *used within the piece and
 * 0 returned only when it is used up, opcodes as documented, text messages and close
 * reasons valid UTF-8, control payloads of at most 125 bytes, messages within the bound,
 * sticky errors with a close code, and the same transcript however the stream was cut.
 * Each whole message is also written back as a masked frame and read by a server-side
 * reader, which must hand back the same opcode and payload.
 */
#include "ws/ws.h"

#include <stdlib.h>
#include <string.h>

/* The transcript of a read (common/buf.h's buffer); out of memory ends the run. */
static void put(db_buf_t *b, const void *p, size_t n)
{
    if (db_buf_append(b, p, n) < 0)
        abort();
}

/* A client frame of the message, read back by a server (§5.1, §5.3). */
static void round_trip(const ws_read_t *m)
{
    if (m->opcode != WS_OP_TEXT && m->opcode != WS_OP_BINARY)
        return;
    static const uint8_t key[4] = {0xa1, 0x02, 0xff, 0x3c};
    size_t size = ws_frame_size(m->len, 1);
    uint8_t *frame = malloc(size);
    if (frame == NULL)
        abort();
    if (ws_write_masked_frame(frame, m->opcode, m->data, m->len, key) != (int64_t)size)
        abort();
    ws_reader_t rd;
    ws_reader_init(&rd, 1, 0);
    ws_read_t back;
    size_t used = 0;
    if (ws_reader_next(&rd, frame, size, &used, &back) != 1 || used != size ||
        back.opcode != m->opcode || back.len != m->len ||
        (m->len && memcmp(back.data, m->data, m->len) != 0))
        abort();
    ws_reader_free(&rd);
    free(frame);
}

static void on_read(db_buf_t *t, const ws_read_t *m, uint64_t max)
{
    uint8_t head[8] = {(uint8_t)m->opcode, (uint8_t)(m->close_code >> 8), (uint8_t)m->close_code};
    switch (m->opcode) {
    case WS_OP_TEXT:
        if (ws_utf8_valid(m->data, m->len) < 0)
            abort();
        /* fall through */
    case WS_OP_BINARY:
        if (max && m->len > max)
            abort();
        break;
    case WS_OP_CLOSE:
        if (m->reason_len && ws_utf8_valid((const uint8_t *)m->reason, m->reason_len) < 0)
            abort();
        /* fall through */
    case WS_OP_PING:
    case WS_OP_PONG:
        if (m->len > 125)
            abort();
        break;
    default:
        abort();
    }
    put(t, head, sizeof(head));
    put(t, m->data, m->len);
    round_trip(m);
}

static void read_all(const uint8_t *s, size_t n, int server, uint64_t max, const size_t *cuts,
                     size_t ncuts, db_buf_t *t)
{
    ws_reader_t rd;
    ws_reader_init(&rd, server, max);
    size_t start = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && rc >= 0; i++) {
        size_t stop = i < ncuts ? cuts[i] : n, len = stop - start;
        uint8_t *piece = len ? malloc(len) : NULL;
        if (len && piece == NULL)
            abort();
        if (len)
            memcpy(piece, s + start, len);
        size_t off = 0;
        for (;;) {
            ws_read_t m;
            size_t used = 0;
            rc = ws_reader_next(&rd, piece ? piece + off : piece, len - off, &used, &m);
            if (used > len - off)
                abort();
            off += used;
            if (rc == 0) {
                if (off != len)
                    abort();
                break;
            }
            if (rc < 0) {
                uint8_t e[2] = {0xEE, (uint8_t)-rc};
                put(t, e, 2);
                if (ws_close_code(rc) < 1000 || ws_reader_next(&rd, NULL, 0, &used, &m) != rc)
                    abort();
                break;
            }
            on_read(t, &m, max);
        }
        free(piece);
        start = stop;
    }
    ws_reader_free(&rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int server = data[0] & 1;
    uint64_t max = (data[0] & 2) ? 100 : 0;
    const uint8_t *s = data + 3;
    size_t n = size - 3;
    size_t cut = ((size_t)data[1] << 8 | data[2]) % (n + 1);
    db_buf_t a, b;
    db_buf_init(&a);
    db_buf_init(&b);
    read_all(s, n, server, max, NULL, 0, &a);
    read_all(s, n, server, max, &cut, 1, &b);
    if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
        abort();
    if (n <= 2048) {
        size_t *all = malloc((n + 1) * sizeof(*all));
        if (all == NULL)
            abort();
        for (size_t i = 0; i < n; i++)
            all[i] = i;
        db_buf_t c;
        db_buf_init(&c);
        read_all(s, n, server, max, all, n, &c);
        if (a.len != c.len || (a.len && memcmp(a.data, c.data, a.len) != 0))
            abort();
        db_buf_free(&c);
        free(all);
    }
    db_buf_free(&a);
    db_buf_free(&b);
    return 0;
}
