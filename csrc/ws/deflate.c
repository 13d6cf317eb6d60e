/*
 * permessage-deflate (RFC 7692 §7.2) with zlib, and the message assembler (see ws.h).
 *
 * A message is compressed as raw deflate (no zlib or gzip wrapper) flushed with
 * Z_SYNC_FLUSH, which ends the data with an empty stored block, 00 00 ff ff; §7.2.1 drops
 * those four bytes and §7.2.2 has the receiver append them again before inflating. With
 * context takeover both sides keep their LZ77 window between messages (the stream is never
 * finished); without it, the compressor is reset after each message, and so is the
 * decompressor when the client promised client_no_context_takeover.
 *
 * Inflation is bounded: output goes through a 16 KiB stack buffer and is appended only while
 * the total stays within max_out, so a message that inflates to gigabytes (a "zip bomb": a
 * 1000:1 ratio is easy) stops at max_out with WS_E_TOO_BIG (close 1009) instead of growing
 * memory.
 *
 * A peer may end a message's data with a final block (BFINAL, §7.2.3.4); zlib then ends the
 * stream, the rest of that message's data is ignored and the decompressor is reset at the
 * message's end, so a peer that does this and keeps its window would lose it: such a peer
 * is broken anyway, since the final block ends the stream that the window belonged to.
 */
#include "ws/ws.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct ws_deflater {
    z_stream z;
    int no_context_takeover;
};

struct ws_inflater {
    z_stream z;
    int no_context_takeover;
    int ended; /* the peer's data held a final block: nothing more until the message ends */
    int fed;   /* the current message had payload bytes */
};

enum { CHUNK = 16384 };

static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

ws_deflater_t *ws_deflater_new(int window_bits, int no_context_takeover, int level)
{
    if (window_bits < 9 || window_bits > 15 || level < -1 || level > 9)
        return NULL;
    ws_deflater_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    /* A negative windowBits asks zlib for raw deflate (§7.2.1: no header, no trailer).
     * memLevel follows the window: 8 (zlib's default) for 15, one less per bit below, as
     * the websockets library pairs a 12-bit window with memLevel 5; a hash table larger
     * than the window buys little. zlib's state is then (1 << (bits + 2)) + (1 << (mem +
     * 9)) bytes: 256 KiB at 15 bits, 32 KiB at 12, kept per session with context
     * takeover. */
    int mem_level = window_bits - 7;
    if (deflateInit2(&d->z, level, Z_DEFLATED, -window_bits, mem_level, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        free(d);
        return NULL;
    }
    d->no_context_takeover = no_context_takeover;
    return d;
}

void ws_deflater_free(ws_deflater_t *d)
{
    if (d == NULL)
        return;
    deflateEnd(&d->z);
    free(d);
}

int ws_deflate_message(ws_deflater_t *d, const void *in, size_t n, db_buf_t *out)
{
    size_t start = out->len;
    const uint8_t *p = in;
    int rc = 0;
    /* zlib counts in uInt: feed at most UINT_MAX bytes per call, flush with the last. */
    for (;;) {
        size_t step = n > UINT_MAX ? UINT_MAX : n;
        int flush = step == n ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        d->z.next_in = (Bytef *)(uintptr_t)p;
        d->z.avail_in = (uInt)step;
        do {
            /* deflateBound is for whole streams; a flushed chunk needs at most a few bytes
             * more than its input, plus what was pending, so reserve generously and loop. */
            size_t room = (size_t)d->z.avail_in + (d->z.avail_in >> 3) + 64;
            if (room > UINT_MAX)
                room = UINT_MAX;
            if (db_buf_reserve(out, room) < 0) {
                rc = WS_E_NO_MEMORY;
                goto fail;
            }
            d->z.next_out = (Bytef *)out->data + out->len;
            d->z.avail_out = (uInt)room;
            int zr = deflate(&d->z, flush);
            if (zr != Z_OK && zr != Z_BUF_ERROR) {
                rc = WS_E_NO_MEMORY;
                goto fail;
            }
            out->len += room - d->z.avail_out;
        } while (d->z.avail_out == 0 || d->z.avail_in != 0);
        p += step;
        n -= step;
        if (n == 0)
            break;
    }
    /* A sync flush always ends in the empty stored block: strip it (§7.2.1). */
    if (out->len - start >= 4 && memcmp(out->data + out->len - 4, tail, 4) == 0)
        out->len -= 4;
    /* zlib writes nothing for a sync flush with nothing new (an empty message after
     * another); a peer would then inflate 00 00 ff ff alone, which is not a whole block.
     * §7.2.3.6: an empty message is the single byte 00 (an empty stored block's header). */
    if (out->len == start && db_buf_putc(out, 0) < 0) {
        rc = WS_E_NO_MEMORY;
        goto fail;
    }
    if (d->no_context_takeover)
        deflateReset(&d->z);
    return 0;
fail:
    out->len = start;
    deflateReset(&d->z);
    return rc;
}

ws_inflater_t *ws_inflater_new(int window_bits, int no_context_takeover)
{
    if (window_bits < 8 || window_bits > 15)
        return NULL;
    ws_inflater_t *i = calloc(1, sizeof(*i));
    if (i == NULL)
        return NULL;
    /* zlib allocates the window (1 << window_bits bytes) at the first inflate: 15 reads
     * data compressed with any window (8..15); a smaller one costs less, and data that
     * reaches back beyond it into earlier output (a previous message's) is refused
     * (Z_DATA_ERROR: "invalid distance too far back"; see ws.h for its limits). */
    if (inflateInit2(&i->z, -window_bits) != Z_OK) {
        free(i);
        return NULL;
    }
    i->no_context_takeover = no_context_takeover;
    return i;
}

void ws_inflater_free(ws_inflater_t *i)
{
    if (i == NULL)
        return;
    inflateEnd(&i->z);
    free(i);
}

int ws_inflater_park(ws_inflater_t *i, size_t keep, uint8_t **dict, size_t *n)
{
    /* Between messages only: mid-message the state is more than the window (a partial
     * block, its Huffman tables). */
    if (i->fed || i->ended)
        return WS_E_ARG;
    uInt have = 0;
    if (inflateGetDictionary(&i->z, NULL, &have) != Z_OK)
        return WS_E_ARG;
    uint8_t *copy = NULL;
    size_t len = have < keep ? have : keep;
    if (len > 0) {
        /* The window is at most 32 KiB (15 bits): the whole of it, then its last len
         * bytes, the oldest first (what a back-reference of up to len bytes reaches). */
        uint8_t *all = malloc(have);
        copy = all != NULL ? malloc(len) : NULL;
        if (copy == NULL || inflateGetDictionary(&i->z, all, &have) != Z_OK) {
            free(all);
            free(copy);
            return WS_E_NO_MEMORY;
        }
        memcpy(copy, all + have - len, len);
        free(all);
    }
    ws_inflater_free(i);
    *dict = copy;
    *n = len;
    return 0;
}

ws_inflater_t *ws_inflater_resume(int window_bits, int no_context_takeover, const uint8_t *dict,
                                  size_t n)
{
    ws_inflater_t *i = ws_inflater_new(window_bits, no_context_takeover);
    if (i == NULL || n == 0)
        return i;
    /* A raw inflater takes a dictionary at any time (zlib.h, inflateSetDictionary): the
     * earlier messages' output the peer's next message may refer back to (§7.2.3.3). */
    if (n > UINT_MAX || inflateSetDictionary(&i->z, dict, (uInt)n) != Z_OK) {
        ws_inflater_free(i);
        return NULL;
    }
    return i;
}

static int inflate_some(ws_inflater_t *inf, const uint8_t *in, size_t n, db_buf_t *out,
                        uint64_t max_out)
{
    uint8_t buf[CHUNK];
    while (n && !inf->ended) {
        size_t step = n > UINT_MAX ? UINT_MAX : n;
        inf->z.next_in = (Bytef *)(uintptr_t)in;
        inf->z.avail_in = (uInt)step;
        do {
            inf->z.next_out = buf;
            inf->z.avail_out = CHUNK;
            int zr = inflate(&inf->z, Z_SYNC_FLUSH);
            size_t got = CHUNK - inf->z.avail_out;
            /* What was inflated before an error is kept, up to the bound, so that the
             * caller's UTF-8 check sees the same bytes however the payload was cut: the
             * first problem in the stream is the one reported. */
            int rc = 0;
            if (max_out && (got > max_out || out->len > max_out - got)) {
                got = out->len < max_out ? (size_t)(max_out - out->len) : 0;
                rc = WS_E_TOO_BIG;
            }
            if (db_buf_append(out, buf, got) < 0)
                return WS_E_NO_MEMORY;
            if (rc < 0)
                return rc;
            if (zr == Z_NEED_DICT || zr == Z_DATA_ERROR || zr == Z_STREAM_ERROR)
                return WS_E_INFLATE;
            if (zr == Z_MEM_ERROR)
                return WS_E_NO_MEMORY;
            if (zr == Z_STREAM_END) {
                /* A final block (§7.2.3.4 allows one): the rest of this message is
                 * ignored, and the next message starts a new stream. */
                inf->ended = 1;
                break;
            }
            if (zr == Z_BUF_ERROR)
                break; /* no progress possible: all input used, output flushed */
        } while (inf->z.avail_out == 0 || inf->z.avail_in != 0);
        size_t consumed = step - inf->z.avail_in;
        in += consumed;
        n -= consumed;
        if (inf->ended)
            break;
        if (consumed != step)
            return WS_E_INFLATE;
    }
    return 0;
}

int ws_inflate(ws_inflater_t *inf, const uint8_t *in, size_t n, int fin, db_buf_t *out,
               uint64_t max_out)
{
    int rc = inflate_some(inf, in, n, out, max_out);
    if (n)
        inf->fed = 1;
    if (rc < 0 || !fin)
        return rc;
    /* An empty payload is an empty message: 00 00 ff ff alone would open a stored block
     * that never ends (§7.2.3.6 has senders write a single 00 byte instead). */
    if (inf->fed)
        rc = inflate_some(inf, tail, 4, out, max_out);
    inf->fed = 0;
    if (rc < 0)
        return rc;
    if (inf->ended || inf->no_context_takeover)
        inflateReset(&inf->z);
    inf->ended = 0;
    return 0;
}

/* --- message assembly -------------------------------------------------------------------- */

void ws_message_init(ws_message_t *m, uint64_t max_size, ws_inflater_t *inflater)
{
    memset(m, 0, sizeof(*m));
    db_buf_init(&m->data);
    m->max_size = max_size;
    m->inflater = inflater;
    ws_utf8_init(&m->utf8);
}

void ws_message_reset(ws_message_t *m)
{
    m->data.len = 0;
    m->opcode = 0;
    m->compressed = 0;
    m->complete = 0;
    ws_utf8_init(&m->utf8);
}

void ws_message_free(ws_message_t *m)
{
    db_buf_free(&m->data);
}

/* ws_inflate failed after appending what it inflated from data[before]: invalid UTF-8 in
 * those bytes came first in the stream, so it is the error reported. */
static int inflate_failed(ws_message_t *m, size_t before, int rc)
{
    if (rc != WS_E_NO_MEMORY && m->opcode == WS_OP_TEXT && m->data.len > before &&
        ws_utf8_feed(&m->utf8, (const uint8_t *)m->data.data + before, m->data.len - before) < 0)
        return WS_E_UTF8;
    return rc;
}

int ws_message_add(ws_message_t *m, const ws_event_t *ev)
{
    switch (ev->type) {
    case WS_EV_FRAME:
        if (ev->first) {
            ws_message_reset(m);
            m->opcode = ev->message_opcode;
            m->compressed = ev->compressed;
            if (m->compressed && m->inflater == NULL)
                return WS_E_RSV; /* compressed data with no agreement to decode it */
        }
        return 0;
    case WS_EV_DATA: {
        size_t before = m->data.len;
        if (m->compressed) {
            int rc = ws_inflate(m->inflater, ev->data, ev->len, 0, &m->data, m->max_size);
            if (rc < 0)
                return inflate_failed(m, before, rc);
        } else {
            if (m->max_size && (ev->len > m->max_size || before > m->max_size - ev->len))
                return WS_E_TOO_BIG;
            if (db_buf_append(&m->data, ev->data, ev->len) < 0)
                return WS_E_NO_MEMORY;
        }
        /* The parser validated uncompressed text; inflated text is checked here. */
        if (m->compressed && m->opcode == WS_OP_TEXT && m->data.len > before &&
            ws_utf8_feed(&m->utf8, (const uint8_t *)m->data.data + before, m->data.len - before) <
                0)
            return WS_E_UTF8;
        return 0;
    }
    case WS_EV_FRAME_END: {
        if (!ev->fin)
            return 0;
        if (m->compressed) {
            size_t before = m->data.len;
            int rc = ws_inflate(m->inflater, NULL, 0, 1, &m->data, m->max_size);
            if (rc < 0)
                return inflate_failed(m, before, rc);
            if (m->opcode == WS_OP_TEXT &&
                ((m->data.len > before &&
                  ws_utf8_feed(&m->utf8, (const uint8_t *)m->data.data + before,
                               m->data.len - before) < 0) ||
                 ws_utf8_finish(&m->utf8) < 0))
                return WS_E_UTF8;
        }
        m->complete = 1;
        return 1;
    }
    default:
        return 0;
    }
}
