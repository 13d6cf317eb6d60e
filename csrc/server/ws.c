/*
 * WebSocket sessions on the server's connections (RFC 6455), over csrc/ws's parser and
 * writer. A connection becomes a WebSocket one when the application accepts the upgrade
 * of its pending request (server_conn_ws_accept): the 101 response goes out, the request's
 * bytes are dropped, and from then on on_read hands every byte read to ws_conn_process,
 * which parses the frames in place in the lent read buffer (payloads are unmasked there),
 * answers pings, echoes the close and delivers complete messages to the handler.
 *
 * Ownership: the session (server_ws_t) belongs to the connection and is freed with it. The
 * handler's argument is borrowed: the application object holds a reference on the
 * connection (server_conn_hold) and calls server_conn_ws_forget before it goes away. The
 * pending request's reference is released by server_conn_finish as for any request; the
 * connection then lives until its socket closes.
 *
 * Memory: an idle session holds the connection, the ~300-byte server_ws_t and nothing
 * else: rbuf goes back to the pool once the bytes read were parsed (a partial frame header
 * is kept inside the parser, a partial payload in msg.data, whose storage is freed after
 * each message), wbuf once written.
 *
 * permessage-deflate (RFC 7692, unless cfg.ws_deflate is off): the first acceptable offer
 * is agreed as offered, with context takeover in each direction the client allows (§7.1.1:
 * the LZ77 window of the previous messages is kept, so a chat's repetitive messages shrink
 * to a few bytes), and windows of WS_DEFLATE_BITS (12) bits asked of both sides as the
 * websockets library does (server_max_window_bits always, §7.1.2.1; client_max_window_bits
 * when offered, §7.1.2.2), so our deflater's state is ~32 KiB instead of ~256 KiB. The
 * inflater keeps a 32 KiB window whatever was agreed (~39 KiB): zlib checks a smaller
 * window only against what lies outside its current output chunk, so whether a client
 * that reaches back too far is refused would depend on how its payload was cut into
 * reads; with 15 bits every stream any client may send inflates the same way. The
 * zlib states are made when first needed: a session that never receives a compressed
 * message has no inflater, one that never sends a message worth compressing
 * (WS_DEFLATE_MIN bytes or more; smaller ones go out uncompressed, RSV1 clear, §6) has no
 * deflater. Without context takeover in a direction (the client's offer said
 * server_no_context_takeover or client_no_context_takeover), that direction's state lives
 * for one message only, so an idle session keeps none of it. With context takeover, a
 * session that used neither state between two sweeps (idle for a second or two) lets them
 * go (ws_conn_sweep): the deflater entirely (§7.1.1.1 lets the server drop its window at any
 * time: its next message is a new raw-deflate run, which the peer's inflater reads after
 * the previous message's sync flush whatever its window holds), and the inflater parked as
 * the last 1 << client_max_window_bits bytes of its output, all the client may still refer
 * back to (§7.1.2.2), from which the next compressed message's inflater resumes: 4 KiB
 * instead of ~39 + ~32 KiB when the client agreed to 12 bits. The inflated size of a
 * message stays bounded by max_message either way (ws_message_t).
 *
 * Closing (§7.1): a close frame from the peer is answered with the same code (§5.5.1) and
 * the server then closes the TCP connection after the frame is written (§7.1.1: the
 * server closes first). A close started by the server waits WS_CLOSE_TIMEOUT ms for the
 * peer's answer (the sweep closes it then). A protocol error sends the parser's close
 * code and closes at once (§7.1.7, "fail the WebSocket connection").
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loop/loop.h"
#include "server/server_internal.h"

/* How long the server waits for the peer's close frame after sending its own. */
#define WS_CLOSE_TIMEOUT 5000
/* Messages shorter than this are sent uncompressed even with permessage-deflate: a zlib
 * set-up costs more than it saves on them. */
#define WS_DEFLATE_MIN 256
/* The LZ77 window asked of both sides (see the opening comment). */
#define WS_DEFLATE_BITS 12
/* About what zlib holds for a deflater of WS_DEFLATE_BITS and for an inflater (15 bits),
 * counted for server_trim when the sweep frees them. */
#define WS_DEFLATER_BYTES (32 * 1024)
#define WS_INFLATER_BYTES (39 * 1024)

static void ws_notify_close(server_conn_t *c, int code, const char *reason, size_t len)
{
    server_ws_t *w = c->ws;
    if (w->notified)
        return;
    w->notified = 1;
    if (w->handler != NULL)
        w->handler->on_close(w->arg, code, reason, len);
}

/* Fails the connection (§7.1.7) with the close code of a parser error. */
static void ws_fail(server_conn_t *c, int code)
{
    server_ws_t *w = c->ws;
    w->close_received = 1;
    if (!w->close_sent) {
        w->close_sent = 1;
        if (conn_wbuf_reserve(c, 4) < 0 || ws_write_close(&c->wbuf, code, NULL, 0) < 0) {
            conn_close(c);
            ws_notify_close(c, code, NULL, 0);
            return;
        }
    }
    c->close_after_write = 1;
    ws_notify_close(c, code, NULL, 0);
}

static void ws_on_control(server_conn_t *c, const ws_event_t *ev)
{
    server_ws_t *w = c->ws;
    if (ev->opcode == WS_OP_PING) {
        /* §5.5.2: answered with a pong carrying the same payload, unless we are closing. */
        if (!w->close_sent && (conn_wbuf_reserve(c, ev->len + 2) < 0 ||
                               ws_write_frame(&c->wbuf, WS_OP_PONG, 1, 0, ev->data, ev->len) < 0))
            conn_close(c);
        return;
    }
    if (ev->opcode == WS_OP_PONG) {
        /* The answer to our keep-alive ping, or unsolicited (§5.5.3: no answer). */
        ws_ping_pong(c, ev->data, ev->len);
        return;
    }
    if (ev->opcode != WS_OP_CLOSE)
        return;
    w->close_received = 1;
    if (!w->close_sent) {
        /* §5.5.1: echo the status code received (none when the frame had none). */
        w->close_sent = 1;
        int code = ev->close_code == WS_CLOSE_NO_STATUS ? 0 : ev->close_code;
        if (conn_wbuf_reserve(c, 4) < 0 || ws_write_close(&c->wbuf, code, NULL, 0) < 0) {
            conn_close(c);
            ws_notify_close(c, ev->close_code, ev->reason, ev->reason_len);
            return;
        }
    }
    c->close_after_write = 1;
    ws_notify_close(c, ev->close_code, ev->reason, ev->reason_len);
}

/* Output the application queued is written in the next idle phase of the loop, with
 * whatever else it sends until then: an echo handler that finds 16 messages queued answers
 * them with one write(2) instead of 16. The idle phase comes before libuv polls, and an
 * active idle handle makes that poll non-blocking, so nothing waits longer than the rest
 * of the current loop iteration. */
static void ws_queue_flush(server_conn_t *c)
{
    server_ws_t *w = c->ws;
    server_t *s = c->server;
    if (w->flush_queued)
        return;
    if (!s->ws_flush_open) {
        conn_flush(c);
        return;
    }
    w->flush_queued = 1;
    w->flush_next = s->flush_head;
    s->flush_head = c;
    c->refs++; /* released by ws_run_flushes */
    uv_idle_start(&s->ws_flush, ws_on_flush);
}

void ws_run_flushes(server_t *s)
{
    server_conn_t *list = s->flush_head;
    s->flush_head = NULL;
    uv_idle_stop(&s->ws_flush);
    while (list) {
        server_conn_t *c = list;
        list = c->ws->flush_next;
        c->ws->flush_next = NULL;
        c->ws->flush_queued = 0;
        if (!c->closing) {
            conn_flush(c);
            if (!c->closing)
                conn_update_reading(c);
        }
        conn_release(c); /* the reference taken by ws_queue_flush */
    }
}

void ws_on_flush(uv_idle_t *h)
{
    server_t *s = h->data;
    /* A write error closes a connection, whose close callback may reach Python. */
    pyloop_enter(pyloop_from_uv(h->loop));
    ws_run_flushes(s);
}

/* Delivers a complete message; returns 0 when the handler paused reading. */
static int ws_deliver(server_conn_t *c, int opcode, const uint8_t *data, size_t len)
{
    server_ws_t *w = c->ws;
    if (w->handler == NULL || w->close_sent)
        return 1; /* nobody listens any more: dropped, as after our close (§5.5.1) */
    if (!w->handler->on_message(w->arg, opcode, (const char *)data, len))
        w->paused = 1;
    return !w->paused;
}

/* Makes the inflater of a session that has none: a new one, or one resumed from its parked
 * window (ws_conn_sweep). Returns 0, or -1 when out of memory. */
static int ws_inflater_wake(server_ws_t *w)
{
    w->msg.inflater =
        ws_inflater_resume(15, w->pmd.client_no_context_takeover, w->zdict, w->zdict_len);
    if (w->msg.inflater == NULL)
        return -1;
    free(w->zdict);
    w->zdict = NULL;
    w->zdict_len = 0;
    return 0;
}

/* Parses what rbuf holds, one event at a time, until the bytes run out, the handler pauses
 * or the session ends; consumed bytes are dropped and an empty rbuf goes back to the pool. */
static void ws_conn_process(server_conn_t *c)
{
    server_ws_t *w = c->ws;
    if (w->processing)
        return; /* resumed from inside a handler call: the loop below goes on */
    w->processing = 1;
    while (!c->closing && !w->paused && !w->close_received) {
        size_t avail = c->rbuf.len - c->pos, used = 0;
        ws_event_t ev;
        if (avail == 0 && c->rbuf.data == NULL)
            break; /* no storage, no pointer formed from it */
        int r = ws_parser_next(&w->parser, (uint8_t *)c->rbuf.data + c->pos, avail, &used, &ev);
        c->pos += used;
        if (r == 0)
            break;
        if (r == WS_EV_CONTROL) {
            ws_on_control(c, &ev);
            continue;
        }
        if (r > 0) {
            if (r == WS_EV_FRAME)
                w->single = ev.first && ev.fin && !ev.compressed;
            /* Any event of a compressed message needs the inflater (the sweep may have
             * parked it between two frames' events of a message not yet fed). */
            if (w->parser.msg_compressed) {
                w->z_used = 1;
                if (w->msg.inflater == NULL && ws_inflater_wake(w) < 0) {
                    ws_fail(c, WS_CLOSE_INTERNAL);
                    break;
                }
            }
            if (r == WS_EV_DATA && w->single && ev.len == w->parser.length &&
                w->msg.data.len == 0) {
                /* The whole payload of a one-frame message is here: delivered from rbuf,
                 * where it was unmasked, without a copy. */
                w->direct = ev.data;
                w->direct_len = ev.len;
                continue;
            }
            if (r == WS_EV_FRAME_END && w->direct != NULL) {
                /* msg.opcode was set by the frame's WS_EV_FRAME (ws_message_add). */
                const uint8_t *d = w->direct;
                size_t n = w->direct_len;
                w->direct = NULL;
                w->direct_len = 0;
                (void)ws_message_add(&w->msg, &ev);
                ws_deliver(c, w->msg.opcode, d, n);
                continue;
            }
            r = ws_message_add(&w->msg, &ev);
            if (r == 1) {
                ws_deliver(c, w->msg.opcode, (const uint8_t *)w->msg.data.data, w->msg.data.len);
                /* An idle session keeps no payload storage, and no zlib state unless the
                 * window is kept for the next message (context takeover). */
                db_buf_free(&w->msg.data);
                if (w->pmd.client_no_context_takeover) {
                    ws_inflater_free(w->msg.inflater);
                    w->msg.inflater = NULL;
                }
                continue;
            }
        }
        if (r < 0) {
            ws_fail(c, ws_close_code(r));
            break;
        }
    }
    w->processing = 0;
    if (c->closing)
        return;
    if (c->pos > 0) {
        db_buf_consume(&c->rbuf, c->pos);
        c->pos = 0;
    }
    if (c->rbuf.len == 0)
        db_pool_give_buf(&c->server->blocks, &c->rbuf);
}

void ws_conn_on_read(server_conn_t *c, ssize_t nread)
{
    if (nread < 0) {
        /* The peer went away without a close handshake, or after it (§7.1.5: 1006 when
         * no close frame was received); ws_conn_closed reports it. */
        conn_close(c);
        return;
    }
    if (nread == 0) {
        if (c->rbuf.len == 0)
            db_pool_give_buf(&c->server->blocks, &c->rbuf);
        return;
    }
    c->rbuf.len += (size_t)nread;
    ws_ping_touch(c); /* a peer that sends is alive: its next ping waits */
    if (c->ws->close_received) {
        /* §5.5.1: nothing is read after the peer's close. */
        c->rbuf.len = c->pos;
    }
    ws_conn_process(c);
    conn_flush(c);
    conn_update_reading(c);
}

int server_conn_ws_accept(server_conn_t *c, const char *extra_headers, size_t extra_len,
                          uint64_t max_message, const server_ws_handler_t *handler, void *arg)
{
    if (c->closing || c->ws != NULL || c->head == NULL || c->state != CONN_PENDING)
        return -1;
    const http_header_t *key = http_find_header(c->head, "sec-websocket-key", 17);
    char accept[28];
    if (key == NULL || ws_accept_key(key->value, key->value_len, accept) != 28)
        return -1;
    server_ws_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -1;
    /* RFC 7692 §5: each Sec-WebSocket-Extensions line may hold offers; the first
     * acceptable permessage-deflate one is taken, anything else is declined by omission. */
    ws_deflate_config_t pmd_cfg;
    ws_deflate_config_default(&pmd_cfg);
    pmd_cfg.enabled = c->server->cfg.ws_deflate;
    pmd_cfg.server_max_window_bits = WS_DEFLATE_BITS;
    pmd_cfg.client_max_window_bits = WS_DEFLATE_BITS;
    for (size_t i = 0; i < c->head->num_headers && !w->pmd.enabled; i++) {
        const http_header_t *f = &c->head->headers[i];
        if (f->name_len == 24 && strncasecmp(f->name, "sec-websocket-extensions", 24) == 0)
            ws_deflate_negotiate(f->value, f->value_len, &pmd_cfg, &w->pmd);
    }
    char ext[160];
    int ext_len = 0;
    if (w->pmd.enabled && (ext_len = ws_deflate_response(&w->pmd, ext, sizeof(ext))) < 0) {
        w->pmd.enabled = 0;
        ext_len = 0;
    }
    ws_parser_init(&w->parser, 1, w->pmd.enabled, max_message);
    ws_message_init(&w->msg, max_message, NULL);
    w->handler = handler;
    w->arg = arg;
    /* §4.2.2 item 5: the status line, Upgrade, Connection and the accept value. */
    static const char h1[] = "HTTP/1.1 101 Switching Protocols\r\n"
                             "upgrade: websocket\r\nconnection: Upgrade\r\n"
                             "sec-websocket-accept: ";
    static const char hx[] = "sec-websocket-extensions: ";
    size_t need = sizeof(h1) - 1 + 28 + 2 + sizeof(hx) - 1 + (size_t)ext_len + 2 + extra_len + 2;
    if (conn_wbuf_reserve(c, need) < 0) {
        free(w);
        conn_close(c);
        return -1;
    }
    db_buf_append(&c->wbuf, h1, sizeof(h1) - 1);
    db_buf_append(&c->wbuf, accept, 28);
    db_buf_append(&c->wbuf, "\r\n", 2);
    if (ext_len > 0) {
        db_buf_append(&c->wbuf, hx, sizeof(hx) - 1);
        db_buf_append(&c->wbuf, ext, (size_t)ext_len);
        db_buf_append(&c->wbuf, "\r\n", 2);
    }
    if (extra_len)
        db_buf_append(&c->wbuf, extra_headers, extra_len);
    db_buf_append(&c->wbuf, "\r\n", 2);
    c->ws = w;
    /* The request's slices were detached by the caller: its bytes and parsed head go back
     * now; what follows them in rbuf is already frames. */
    db_buf_consume(&c->rbuf, c->pos + c->head_len);
    c->pos = 0;
    c->head_len = 0;
    c->req.head = NULL;
    c->req.body = NULL;
    c->req.body_len = 0;
    db_pool_give(&c->server->heads, c->head);
    c->head = NULL;
    db_buf_free(&c->resp_headers);
    c->mid_request = 0;
    c->deadline = 0; /* no idle timeout for a session: keep-alive pings (ws_ping.c) */
    c->keep_alive = 0;
    ws_ping_start(c);
    ws_conn_process(c);
    conn_flush(c);
    conn_update_reading(c);
    return 0;
}

void server_conn_ws_forget(server_conn_t *c)
{
    if (c->ws != NULL)
        c->ws->handler = NULL;
}

void server_conn_ws_resume(server_conn_t *c)
{
    server_ws_t *w = c->ws;
    if (w == NULL || !w->paused)
        return;
    w->paused = 0;
    if (c->closing || w->processing)
        return;
    ws_conn_process(c);
    conn_flush(c);
    conn_update_reading(c);
}

void ws_conn_sweep(server_conn_t *c)
{
    server_ws_t *w = c->ws;
    if (w->z_used) {
        w->z_used = 0;
        return;
    }
    if (w->deflater != NULL) {
        ws_deflater_free(w->deflater);
        w->deflater = NULL;
        c->server->released += WS_DEFLATER_BYTES;
    }
    if (w->msg.inflater != NULL) {
        /* What the client may still refer back to (§7.1.2.2): its window as agreed (15 bits
         * when it did not offer client_max_window_bits). Kept as it is when mid-message or
         * out of memory. */
        int bits = w->pmd.client_max_window_bits ? w->pmd.client_max_window_bits : 15;
        if (ws_inflater_park(w->msg.inflater, (size_t)1 << bits, &w->zdict, &w->zdict_len) == 0) {
            w->msg.inflater = NULL;
            c->server->released += WS_INFLATER_BYTES;
        }
    }
}

int server_conn_ws_send(server_conn_t *c, int opcode, const char *data, size_t len)
{
    server_ws_t *w = c->ws;
    if (w == NULL || c->closing || w->close_sent)
        return SERVER_STREAM_CLOSED;
    if (w->pmd.enabled && len >= WS_DEFLATE_MIN) {
        /* RFC 7692 §7.2.1. With context takeover the deflater stays for the next message;
         * without, it serves this message only. */
        int bits = w->pmd.server_max_window_bits ? w->pmd.server_max_window_bits : 15;
        int nct = w->pmd.server_no_context_takeover;
        w->z_used = 1;
        if (w->deflater == NULL)
            w->deflater = ws_deflater_new(bits, nct, -1);
        db_buf_t z;
        db_buf_init(&z);
        /* After a failure the peer's inflater and ours are out of step: the connection
         * is closed below. */
        int r =
            w->deflater == NULL ? WS_E_NO_MEMORY : ws_deflate_message(w->deflater, data, len, &z);
        if (nct) {
            ws_deflater_free(w->deflater);
            w->deflater = NULL;
        }
        if (r < 0 || conn_wbuf_reserve(c, z.len + 14) < 0 ||
            ws_write_frame(&c->wbuf, opcode, 1, 1, z.data, z.len) < 0) {
            db_buf_free(&z);
            conn_close(c);
            return SERVER_STREAM_NOMEM;
        }
        db_buf_free(&z);
    } else if (conn_wbuf_reserve(c, len + 14) < 0 ||
               ws_write_frame(&c->wbuf, opcode, 1, 0, data, len) < 0) {
        conn_close(c);
        return SERVER_STREAM_NOMEM;
    }
    size_t high = c->server->cfg.write_high_water;
    if (c->wbuf.len + c->inflight.len < high) {
        ws_queue_flush(c);
        return SERVER_STREAM_OK;
    }
    /* Over the write limit: written now, and the caller waits for the drain. */
    conn_flush(c);
    if (c->closing)
        return SERVER_STREAM_CLOSED;
    conn_update_reading(c);
    return c->wbuf.len + c->inflight.len >= high ? SERVER_STREAM_FULL : SERVER_STREAM_OK;
}

int server_conn_ws_close(server_conn_t *c, int code, const char *reason, size_t reason_len)
{
    server_ws_t *w = c->ws;
    if (w == NULL || c->closing || w->close_sent)
        return 1;
    if (code != 0 && !ws_close_code_valid(code))
        return -1;
    if (code == 0 && reason_len)
        return -1;
    if (reason_len > 123 || ws_utf8_valid((const uint8_t *)reason, reason_len) < 0)
        return -1;
    if (conn_wbuf_reserve(c, reason_len + 8) < 0 ||
        ws_write_close(&c->wbuf, code, reason, reason_len) < 0) {
        conn_close(c);
        return 1;
    }
    w->close_sent = 1;
    if (w->close_received)
        c->close_after_write = 1;
    else
        c->deadline = uv_now(c->tcp.loop) + WS_CLOSE_TIMEOUT; /* see conn_sweep */
    conn_flush(c);
    if (!c->closing)
        conn_update_reading(c);
    return 0;
}

void ws_conn_ping_timeout(server_conn_t *c)
{
    server_ws_t *w = c->ws;
    static const char reason[] = "keepalive ping timeout";
    /* The websockets library (uvicorn's "websockets" implementation) fails the connection
     * with 1011 and this reason; the application then sees 1006, since no close frame was
     * received (RFC 6455 §7.1.5). Nothing more is read; the TCP connection closes once the
     * close frame is written, or WS_CLOSE_TIMEOUT later when the peer does not read. */
    w->close_received = 1;
    if (!w->close_sent) {
        w->close_sent = 1;
        if (conn_wbuf_reserve(c, sizeof(reason) + 4) < 0 ||
            ws_write_close(&c->wbuf, WS_CLOSE_INTERNAL, reason, sizeof(reason) - 1) < 0) {
            conn_close(c);
            ws_notify_close(c, 1006, NULL, 0);
            return;
        }
    }
    c->close_after_write = 1;
    c->deadline = uv_now(c->tcp.loop) + WS_CLOSE_TIMEOUT; /* see conn_sweep */
    ws_notify_close(c, 1006, NULL, 0);
    if (c->closing)
        return;
    conn_flush(c);
    if (!c->closing)
        conn_update_reading(c);
}

void ws_conn_finish(server_conn_t *c)
{
    /* Drops the reference taken in conn_dispatch for the pending (upgrade) request. */
    if (c->closing) {
        ws_notify_close(c, 1006, NULL, 0);
        c->ws->handler = NULL;
        conn_release(c);
        return;
    }
    c->refs--;
    /* The handler hears of the end once, whatever comes later (server.h). */
    ws_notify_close(c, WS_CLOSE_NORMAL, NULL, 0);
    c->ws->handler = NULL;
    /* An application that returned without closing: the session ends normally. */
    server_conn_ws_close(c, WS_CLOSE_NORMAL, NULL, 0);
}

void ws_conn_shutdown(server_conn_t *c)
{
    /* The server is shutting down: §7.4.1's 1001 (going away). */
    server_conn_ws_close(c, 1001, NULL, 0);
}

void ws_conn_closed(server_conn_t *c)
{
    if (c->ws == NULL || c->ws->notified)
        return;
    if (c->ws->handler != NULL)
        pyloop_enter(pyloop_from_uv(c->tcp.loop));
    ws_notify_close(c, 1006, NULL, 0);
}

void ws_conn_free(server_conn_t *c)
{
    if (c->ws == NULL)
        return;
    ws_ping_unlink(c);
    ws_message_free(&c->ws->msg);
    ws_inflater_free(c->ws->msg.inflater);
    ws_deflater_free(c->ws->deflater);
    free(c->ws->zdict);
    free(c->ws);
    c->ws = NULL;
}

void server_conn_hold(server_conn_t *c)
{
    c->refs++; /* released by server_conn_unhold */
}

void server_conn_unhold(server_conn_t *c)
{
    conn_release(c);
}
