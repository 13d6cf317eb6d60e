/*
 * Keep-alive pings of WebSocket sessions (uvicorn's --ws-ping-interval and
 * --ws-ping-timeout): a session from which nothing was read for ws_ping_interval ms gets a
 * ping (RFC 6455 §5.5.2) with a 4-byte payload of its own; if the pong carrying that payload
 * (§5.5.3) has not arrived ws_ping_timeout ms later, the session is failed with 1011 and the
 * reason "keepalive ping timeout", as the websockets library does under uvicorn.
 *
 * One timer per server, not per connection: every session of a server has the same
 * interval and the same timeout, so the sessions waiting for their ping, kept in the order
 * of their last read, are also in the order of their deadlines, and so are those waiting
 * for a pong, in the order their pings went out. Two intrusive FIFO lists (server.ka_head)
 * thus give the next deadline at their heads: a read moves its session to the tail of the
 * first list (a few pointer writes), the timer is armed for the earliest head, and firing
 * costs O(sessions due). A session costs 32 bytes of links and deadline, no libuv handle.
 *
 * Ownership: the lists hold borrowed pointers; a session leaves them when it is freed
 * (ws_ping_unlink from ws_conn_free), and the timer skips and drops those that are closing.
 * The timer handle belongs to the server and is closed by server_close.
 */
#include <string.h>

#include "loop/loop.h"
#include "server/server_internal.h"

enum { KA_NONE = 0, KA_IDLE = 1, KA_PONG = 2 };

static void ka_unlink(server_conn_t *c)
{
    server_ws_t *w = c->ws;
    server_t *s = c->server;
    if (w->ka_list == KA_NONE)
        return;
    int l = w->ka_list - 1;
    if (w->ka_prev)
        w->ka_prev->ws->ka_next = w->ka_next;
    else
        s->ka_head[l] = w->ka_next;
    if (w->ka_next)
        w->ka_next->ws->ka_prev = w->ka_prev;
    else
        s->ka_tail[l] = w->ka_prev;
    w->ka_prev = w->ka_next = NULL;
    w->ka_list = KA_NONE;
}

/* Arms the server's timer for due unless it already fires earlier. */
static void ka_arm(server_t *s, uint64_t due)
{
    if (s->closing || !s->ka_timer_open)
        return;
    if (s->ka_timer_due != 0 && s->ka_timer_due <= due)
        return;
    uint64_t now = uv_now(s->loop);
    s->ka_timer_due = due;
    uv_timer_start(&s->ka_timer, ws_ping_on_timer, due > now ? due - now : 0, 0);
}

static void ka_append(server_conn_t *c, int list, uint64_t due)
{
    server_ws_t *w = c->ws;
    server_t *s = c->server;
    int l = list - 1;
    w->ka_list = (uint8_t)list;
    w->ka_due = due;
    w->ka_next = NULL;
    w->ka_prev = s->ka_tail[l];
    if (s->ka_tail[l])
        s->ka_tail[l]->ws->ka_next = c;
    else
        s->ka_head[l] = c;
    s->ka_tail[l] = c;
    ka_arm(s, due);
}

void ws_ping_start(server_conn_t *c)
{
    server_t *s = c->server;
    if (s->cfg.ws_ping_interval == 0 || s->closing)
        return;
    ka_append(c, KA_IDLE, uv_now(s->loop) + s->cfg.ws_ping_interval);
}

void ws_ping_touch(server_conn_t *c)
{
    server_ws_t *w = c->ws;
    if (w->ka_list != KA_IDLE)
        return; /* not pinged, or a pong is awaited: only that pong ends the wait */
    server_t *s = c->server;
    uint64_t due = uv_now(s->loop) + s->cfg.ws_ping_interval;
    if (s->ka_tail[0] == c) {
        w->ka_due = due; /* later than before: the armed timer is early, never late */
        return;
    }
    ka_unlink(c);
    ka_append(c, KA_IDLE, due);
}

void ws_ping_pong(server_conn_t *c, const uint8_t *data, size_t len)
{
    server_ws_t *w = c->ws;
    uint8_t id[4];
    if (w->ka_list != KA_PONG || len != 4)
        return;
    memcpy(id, &w->ping_id, 4);
    if (memcmp(id, data, 4) != 0)
        return; /* a pong for a ping of someone else's, or unsolicited (§5.5.3) */
    ka_unlink(c);
    ka_append(c, KA_IDLE, uv_now(c->server->loop) + c->server->cfg.ws_ping_interval);
}

void ws_ping_unlink(server_conn_t *c)
{
    ka_unlink(c);
}

/* Sends the keep-alive ping; returns 0, or -1 when it could not be queued (closed). */
static int ka_send_ping(server_conn_t *c)
{
    server_ws_t *w = c->ws;
    server_t *s = c->server;
    /* A payload that tells this ping's pong from any other (§5.5.3 lets a peer answer
     * only the latest ping, and pongs may come unsolicited). */
    w->ping_id = ++s->ka_seq;
    if (conn_wbuf_reserve(c, 6) < 0 ||
        ws_write_frame(&c->wbuf, WS_OP_PING, 1, 0, &w->ping_id, 4) < 0) {
        conn_close(c);
        return -1;
    }
    conn_flush(c);
    return c->closing ? -1 : 0;
}

void ws_ping_on_timer(uv_timer_t *t)
{
    server_t *s = t->data;
    pyloop_enter(pyloop_from_uv(t->loop));
    s->ka_timer_due = 0;
    uint64_t now = uv_now(s->loop);
    /* Sessions whose pong is late: failed (the timer callback may run a handler's
     * on_close, which may close other connections; only the head is ever used). */
    server_conn_t *c;
    while ((c = s->ka_head[1]) != NULL && (c->ws->ka_due <= now || c->closing)) {
        ka_unlink(c);
        if (!c->closing)
            ws_conn_ping_timeout(c);
    }
    while ((c = s->ka_head[0]) != NULL && (c->ws->ka_due <= now || c->closing)) {
        ka_unlink(c);
        server_ws_t *w = c->ws;
        if (c->closing || w->close_sent || w->close_received)
            continue; /* closing: the close handshake has its own timeout */
        if (ka_send_ping(c) < 0)
            continue;
        if (s->cfg.ws_ping_timeout)
            ka_append(c, KA_PONG, now + s->cfg.ws_ping_timeout);
        else
            ka_append(c, KA_IDLE, now + s->cfg.ws_ping_interval);
    }
    for (int l = 0; l < 2; l++)
        if (s->ka_head[l] != NULL)
            ka_arm(s, s->ka_head[l]->ws->ka_due);
}
