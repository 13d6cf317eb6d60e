/*
 * wsload: the load generator of bench/ws_bench.py, one thread on epoll, so that the client
 * is never what limits a WebSocket or SSE server on the other core.
 *
 *   wsload echo  PORT PATH CONNS SECONDS SIZE DEPTH   echo of SIZE-byte text messages, DEPTH
 *                                                      in flight per connection
 *   wsload bcast PORT PATH CONNS ROUNDS               one connection sends "go", the server
 *                                                      sends a message to every connection
 *   wsload sse   PORT PATH CONNS SECONDS              GET PATH on each connection, events
 *                                                      counted (each ends in a blank line)
 *   wsload idle  PORT PATH CONNS                      opens CONNS WebSockets and keeps them
 *                                                      idle until stdin is closed
 *   wsload idlez PORT PATH CONNS                      the same with permessage-deflate: each
 *                                                      connection first sends one compressed
 *                                                      300-byte message and gets its echo, so
 *                                                      that the server made its zlib states
 *
 * Every connection is opened (at most 64 handshakes at a time, so the listen backlog never
 * overflows) before anything is measured; then "go" is printed on stdout (the caller reads
 * the server's CPU time then) and, at the end, one line of JSON with the counts and the
 * measured seconds. Client frames are masked with a fixed key (RFC 6455 §5.3 asks for an
 * unpredictable one, which matters for proxies, not for this benchmark), the same bytes
 * every time, so sending is a memcpy. Exit status 1 with a message on any failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { M_ECHO, M_BCAST, M_SSE, M_IDLE, M_IDLEZ };
enum { S_CONNECTING, S_HEAD, S_OPEN };

typedef struct {
    int fd;
    int state;
    char *buf; /* bytes read and not yet parsed */
    size_t len, cap;
    long received; /* messages (frames) or events */
    int last_nl;   /* SSE: the previous byte was a line feed */
    int in_flight; /* echo: messages sent and not yet echoed */
} conn_t;

static int mode, nconns, port, size, depth, rounds;
static double seconds;
static const char *path;
static conn_t *conns;
static int epfd;
static uint8_t *frame_buf; /* depth copies of the masked echo frame */
static size_t frame_len;

static void die(const char *what)
{
    fprintf(stderr, "wsload: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A client text frame with a fixed mask: header, key, masked payload. */
static size_t make_frame(uint8_t *out, const uint8_t *payload, size_t n)
{
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    size_t h = 0;
    out[h++] = 0x81;
    if (n < 126) {
        out[h++] = (uint8_t)(0x80 | n);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    memcpy(out + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = payload[i] ^ key[i % 4];
    return h + n;
}

/* Writes all of p (blocking in a poll-free way: the socket buffers are large enough for
 * what a benchmark queues; EAGAIN is retried). */
static void send_all(conn_t *c, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            die("send");
        }
        s += w;
        n -= (size_t)w;
    }
}

static void start_connect(conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)
        die("connect");
    c->state = S_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
}

static void send_request(conn_t *c)
{
    char req[512];
    int n;
    if (mode == M_SSE)
        n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    else if (mode == M_IDLEZ)
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path);
    else
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path);
    send_all(c, req, (size_t)n);
    c->state = S_HEAD;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl");
}

static int counting; /* messages are counted once the measurement began */

/* SSE: counts event ends (a blank line: two '\n' in a row; each event is one chunk, so
 * the chunked framing's CRLFs never make one) in the body bytes. */
static void count_events(conn_t *c, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int nl = p[i] == '\n';
        if (nl && c->last_nl && counting)
            c->received++;
        c->last_nl = nl;
    }
}

/* WebSocket: parses the server's (unmasked) frames in c->buf; returns the data frames. */
static long parse_frames(conn_t *c)
{
    size_t pos = 0;
    long frames = 0;
    for (;;) {
        if (c->len - pos < 2)
            break;
        const uint8_t *b = (const uint8_t *)c->buf + pos;
        uint64_t n = b[1] & 0x7f;
        size_t h = 2;
        if (n == 126) {
            if (c->len - pos < 4)
                break;
            n = ((uint64_t)b[2] << 8) | b[3];
            h = 4;
        } else if (n == 127) {
            if (c->len - pos < 10)
                break;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = (n << 8) | b[2 + i];
            h = 10;
        }
        if (c->len - pos < h + n)
            break;
        int op = b[0] & 0x0f;
        if (op == 0x8) {
            fprintf(stderr, "wsload: the server closed a connection\n");
            exit(1);
        }
        if (op == 0x9) { /* a keep-alive ping: answered with its payload */
            uint8_t pong[140];
            uint8_t payload[126];
            memcpy(payload, b + h, (size_t)n);
            size_t fl = make_frame(pong, payload, (size_t)n);
            pong[0] = 0x8A;
            send_all(c, pong, fl);
        } else if (op != 0xA) {
            frames++;
        }
        pos += h + (size_t)n;
    }
    memmove(c->buf, c->buf + pos, c->len - pos);
    c->len -= pos;
    return frames;
}

static int opened;

/* Reads what the socket has; returns 0, or -1 at EOF. */
static int on_readable(conn_t *c)
{
    for (;;) {
        if (c->cap - c->len < 65536) {
            c->cap = c->cap ? c->cap * 2 : 131072;
            c->buf = realloc(c->buf, c->cap);
            if (c->buf == NULL)
                die("realloc");
        }
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r < 0) {
            if (errno == EAGAIN)
                return 0;
            if (errno == EINTR)
                continue;
            die("recv");
        }
        if (r == 0)
            return -1;
        c->len += (size_t)r;
        if (c->state == S_HEAD) {
            char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
            if (end == NULL)
                continue;
            int want = mode == M_SSE ? 200 : 101;
            if (c->len < 12 || atoi(c->buf + 9) != want) {
                fprintf(stderr, "wsload: unexpected answer: %.40s\n", c->buf);
                exit(1);
            }
            size_t head = (size_t)(end + 4 - c->buf);
            memmove(c->buf, c->buf + head, c->len - head);
            c->len -= head;
            c->state = S_OPEN;
            opened++;
        }
        if (mode == M_SSE) {
            count_events(c, c->buf, c->len);
            c->len = 0;
            continue;
        }
        long got = parse_frames(c);
        if (got == 0)
            continue;
        if (counting)
            c->received += got;
        if (mode == M_ECHO) {
            /* As many new messages as came back, in one write. */
            c->in_flight -= (int)got;
            int more = depth - c->in_flight;
            if (more > 0) {
                send_all(c, frame_buf, frame_len * (size_t)more);
                c->in_flight += more;
            }
        }
        if ((mode == M_BCAST || mode == M_IDLEZ) && !counting)
            c->received += got; /* the greeting, the compressed echo */
    }
}

static void poll_once(int timeout_ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(epfd, evs, 256, timeout_ms);
    if (n < 0 && errno != EINTR)
        die("epoll_wait");
    for (int i = 0; i < n; i++) {
        conn_t *c = evs[i].data.ptr;
        if (c->state == S_CONNECTING) {
            int err = 0;
            socklen_t l = sizeof(err);
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
            if (err) {
                errno = err;
                die("connect");
            }
            send_request(c);
            continue;
        }
        if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && on_readable(c) < 0) {
            fprintf(stderr, "wsload: the server closed a connection\n");
            exit(1);
        }
    }
}

static void open_all(void)
{
    int started = 0;
    while (opened < nconns) {
        while (started < nconns && started - opened < 64)
            start_connect(&conns[started++]);
        poll_once(100);
    }
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: wsload echo|bcast|sse|idle PORT PATH CONNS [...]\n");
        return 2;
    }
    mode = !strcmp(argv[1], "echo")    ? M_ECHO
           : !strcmp(argv[1], "bcast") ? M_BCAST
           : !strcmp(argv[1], "sse")   ? M_SSE
           : !strcmp(argv[1], "idle")  ? M_IDLE
           : !strcmp(argv[1], "idlez") ? M_IDLEZ
                                       : -1;
    port = atoi(argv[2]);
    path = argv[3];
    nconns = atoi(argv[4]);
    if (mode < 0 || nconns < 1 || (mode == M_ECHO && argc < 8) ||
        ((mode == M_BCAST || mode == M_SSE) && argc < 6)) {
        fprintf(stderr, "wsload: bad arguments\n");
        return 2;
    }
    if (mode == M_ECHO) {
        seconds = atof(argv[5]);
        size = atoi(argv[6]);
        depth = atoi(argv[7]);
        if (size < 1 || size > 65535 || depth < 1)
            return 2;
    } else if (mode == M_BCAST) {
        rounds = atoi(argv[5]);
    } else if (mode == M_SSE) {
        seconds = atof(argv[5]);
    }
    conns = calloc((size_t)nconns, sizeof(conn_t));
    epfd = epoll_create1(0);
    if (conns == NULL || epfd < 0)
        die("setup");
    open_all();

    if (mode == M_IDLEZ) {
        /* RFC 7692 §7.2.3.3's stored block (no zlib needed here): header byte 00 (not
         * final, type 00), LEN and its complement, little-endian, then the bytes; RSV1 set
         * on the frame (§6). */
        uint8_t payload[305], frame[320];
        payload[0] = 0x00;
        payload[1] = 300 & 0xff;
        payload[2] = 300 >> 8;
        payload[3] = (uint8_t)~payload[1];
        payload[4] = (uint8_t)~payload[2];
        for (int i = 0; i < 300; i++)
            payload[5 + i] = (uint8_t)('a' + i % 26);
        size_t fl = make_frame(frame, payload, sizeof(payload));
        frame[0] = 0xC1;
        for (int i = 0; i < nconns; i++)
            send_all(&conns[i], frame, fl);
        for (;;) {
            int echoed = 0;
            for (int i = 0; i < nconns; i++)
                echoed += conns[i].received > 0;
            if (echoed == nconns)
                break;
            poll_once(100);
        }
    }
    if (mode == M_IDLE || mode == M_IDLEZ) {
        printf("go\n");
        fflush(stdout);
        char line[16];
        while (fgets(line, sizeof(line), stdin) != NULL)
            ;
        printf("{\"connections\": %d}\n", nconns);
        return 0;
    }
    if (mode == M_BCAST) {
        /* Every connection first gets the server's greeting: registered for broadcasts. */
        for (;;) {
            long greeted = 0;
            for (int i = 0; i < nconns; i++)
                greeted += conns[i].received > 0;
            if (greeted == nconns)
                break;
            poll_once(100);
        }
        for (int i = 0; i < nconns; i++)
            conns[i].received = 0;
        uint8_t go[16];
        size_t gl = make_frame(go, (const uint8_t *)"go", 2);
        counting = 1;
        printf("go\n");
        fflush(stdout);
        double t0 = now();
        for (int r = 1; r <= rounds; r++) {
            send_all(&conns[0], go, gl);
            for (;;) {
                int done = 1;
                for (int i = 0; i < nconns && done; i++)
                    done = conns[i].received >= r;
                if (done)
                    break;
                poll_once(1000);
            }
        }
        double t = now() - t0;
        printf("{\"rounds\": %d, \"connections\": %d, \"seconds\": %.6f}\n", rounds, nconns, t);
        return 0;
    }
    if (mode == M_ECHO) {
        uint8_t payload[65536];
        for (int i = 0; i < size; i++)
            payload[i] = (uint8_t)('a' + i % 26);
        frame_buf = malloc((size_t)depth * ((size_t)size + 8));
        if (frame_buf == NULL)
            die("malloc");
        frame_len = make_frame(frame_buf, payload, (size_t)size);
        for (int i = 1; i < depth; i++)
            memcpy(frame_buf + (size_t)i * frame_len, frame_buf, frame_len);
        for (int i = 0; i < nconns; i++) {
            send_all(&conns[i], frame_buf, frame_len * (size_t)depth);
            conns[i].in_flight = depth;
        }
    }
    /* Echo and SSE: a short warm-up, then the measured seconds. */
    double warm_end = now() + 0.5;
    while (now() < warm_end)
        poll_once(50);
    counting = 1;
    printf("go\n");
    fflush(stdout);
    double t0 = now(), end = t0 + seconds;
    while (now() < end)
        poll_once(50);
    double t = now() - t0;
    long total = 0;
    for (int i = 0; i < nconns; i++)
        total += conns[i].received;
    printf("{\"messages\": %ld, \"connections\": %d, \"seconds\": %.6f}\n", total, nconns, t);
    return 0;
}
