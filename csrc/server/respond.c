/*
 * The response writer: status line, Date, Content-Type, Content-Length and Connection
 * headers, then the body, appended to the connection's output buffer in one pass. The
 * status line and the Date value come from caches (http/status.c, http/date.c); nothing
 * here allocates except the buffer growth itself. The head of a streaming response
 * (stream.c) is written by the same code.
 */
#include <strings.h>
#include <time.h>

#include "server/server_internal.h"

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

char *respond_head(server_conn_t *c, int status, const char *ctype, size_t ctype_len,
                   const char *framing, size_t framing_len, const char *extra_headers,
                   size_t extra_len, size_t body_room)
{
    const char *reason = http_status_reason(status);
    size_t reason_len = strlen(reason);
    int no_content = status < 200 || status == 204 || status == 304;
    size_t need = 9 + 4 + reason_len + 2 + 6 + 29 + 2 + 16 + ctype_len + 2 + framing_len + 24 +
                  extra_len + c->resp_headers.len + c->server->cfg.default_headers_len + 2 +
                  body_room;
    if (conn_wbuf_reserve(c, need) < 0) {
        conn_close(c);
        return NULL;
    }
    char *p = c->wbuf.data + c->wbuf.len;
    p = put(p, "HTTP/1.1 ", 9);
    if (status < 100 || status > 999)
        status = 500;
    *p++ = (char)('0' + status / 100);
    *p++ = (char)('0' + status / 10 % 10);
    *p++ = (char)('0' + status % 10);
    *p++ = ' ';
    p = put(p, reason, reason_len);
    p = put(p, "\r\n", 2);
    if (!c->server->cfg.no_date_header) {
        p = put(p, "date: ", 6);
        p = put(p, http_date_now(time(NULL)), 29);
        p = put(p, "\r\n", 2);
    }
    if (c->server->cfg.default_headers_len)
        p = put(p, c->server->cfg.default_headers, c->server->cfg.default_headers_len);
    if (ctype_len && !no_content) {
        p = put(p, "content-type: ", 14);
        p = put(p, ctype, ctype_len);
        p = put(p, "\r\n", 2);
    }
    if (framing_len)
        p = put(p, framing, framing_len);
    if (!c->keep_alive)
        p = put(p, "connection: close\r\n", 19);
    else if (c->http10)
        p = put(p, "connection: keep-alive\r\n", 24);
    if (extra_len)
        p = put(p, extra_headers, extra_len);
    if (c->resp_headers.len) {
        p = put(p, c->resp_headers.data, c->resp_headers.len);
        c->resp_headers.len = 0;
    }
    p = put(p, "\r\n", 2);
    if (c->awaiting) {
        c->awaiting = 0;
        metrics_response(c, status);
    }
    if (c->log_pending) {
        c->log_pending = 0;
        const server_config_t *cfg = &c->server->cfg;
        const char *line = c->log_line.data;
        size_t skip = c->log_client_len + c->log_method_len;
        cfg->access_log(cfg->access_ctx, status, line, c->log_client_len, line + c->log_client_len,
                        c->log_method_len, line + skip, c->log_line.len - skip, c->http10);
    }
    return p;
}

size_t respond_content_length(char *out, uint64_t len)
{
    char *p = put(out, "content-length: ", 16);
    p = put_u64(p, len);
    p = put(p, "\r\n", 2);
    return (size_t)(p - out);
}

/* The value of the first header line called name (lowercase) among complete
 * "name: value\r\n" lines, or NULL. */
const char *respond_find_line(const char *lines, size_t len, const char *name, size_t n,
                              size_t *value_len)
{
    const char *p = lines, *end = lines + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > n && p[n] == ':' && strncasecmp(p, name, n) == 0) {
            const char *v = p + n + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *value_len = (size_t)(ve - v);
            return v;
        }
        p = eol + 1;
    }
    return NULL;
}

static const char vary_line[] = "vary: Accept-Encoding\r\n";
static const char gzip_line[] = "content-encoding: gzip\r\n";

int respond_gzip_decision(server_conn_t *c, int status, const char *ctype, size_t ctype_len,
                          const char *extra, size_t extra_len)
{
    server_t *s = c->server;
    size_t vlen;
    if (s->gzip_enc == NULL || c->gzip_off || status == 206 ||
        respond_find_line(extra, extra_len, "content-encoding", 16, &vlen) ||
        respond_find_line(c->resp_headers.data, c->resp_headers.len, "content-encoding", 16, &vlen))
        return -1;
    if (ctype_len == 0)
        ctype = respond_find_line(extra, extra_len, "content-type", 12, &ctype_len);
    if (ctype != NULL && gzip_type_excluded(&s->gzip, ctype, ctype_len))
        return -1;
    /* A Vary line of its own: a client reads repeated Vary lines as one comma-separated
     * list (RFC 9110 §5.3), the value Starlette writes by appending to an existing one. */
    if (db_buf_append(&c->resp_headers, vary_line, sizeof(vary_line) - 1) < 0)
        return -1; /* out of memory: sent as it is */
    if (!c->accept_gzip)
        return 0;
    if (db_buf_append(&c->resp_headers, gzip_line, sizeof(gzip_line) - 1) < 0) {
        c->resp_headers.len -= sizeof(vary_line) - 1;
        return -1;
    }
    return 1;
}

/* GZipMiddleware's decision for a complete body (gzip/gzip.h): returns the body to send,
 * compressed into the server's gzip_out when the client accepts gzip, with the Vary and
 * Content-Encoding lines added to the response's headers. Unchanged when the rules leave
 * the body alone (or it is under minimum_size); when compression fails, the lines are taken
 * back and the body is sent as it is. */
static const char *apply_gzip(server_conn_t *c, int status, const char *ctype, size_t ctype_len,
                              const char *extra, size_t extra_len, const char *body,
                              size_t *body_len)
{
    server_t *s = c->server;
    if (*body_len < s->gzip.minimum_size)
        return body;
    size_t mark = c->resp_headers.len;
    if (respond_gzip_decision(c, status, ctype, ctype_len, extra, extra_len) != 1)
        return body;
    s->gzip_out.len = 0;
    if (gzip_compress(s->gzip_enc, body, *body_len, &s->gzip_out) < 0) {
        c->resp_headers.len = mark;
        return body;
    }
    *body_len = s->gzip_out.len;
    return s->gzip_out.data;
}

int server_conn_respond(server_conn_t *c, int status, const char *ctype, size_t ctype_len,
                        const char *extra_headers, size_t extra_len, const char *body,
                        size_t body_len)
{
    /* After a WebSocket upgrade the bytes are frames: whatever the application's function
     * returned when its session ended is not an HTTP response any more. */
    if (c->ws != NULL)
        return 0;
    /* RFC 9110 §6.4.1: 1xx, 204 and 304 responses carry no content; 204 and 1xx carry no
     * Content-Length either (§8.6). HEAD gets the headers of the GET response only. */
    int no_content = status < 200 || status == 204 || status == 304;
    int send_body = !no_content && !c->is_head;
    if (c->server->gzip_enc != NULL && !no_content)
        body = apply_gzip(c, status, ctype, ctype_len, extra_headers, extra_len, body, &body_len);
    char framing[40];
    size_t framing_len = 0;
    if (status >= 200 && status != 204)
        framing_len = respond_content_length(framing, status == 304 ? 0 : body_len);
    char *p = respond_head(c, status, ctype, ctype_len, framing, framing_len, extra_headers,
                           extra_len, send_body ? body_len : 0);
    if (p == NULL)
        return -1;
    if (send_body && body_len)
        p = put(p, body, body_len);
    c->wbuf.len = (size_t)(p - c->wbuf.data);
    return 0;
}

int server_conn_respond_detail(server_conn_t *c, int status, const char *message,
                               const char *extra_headers, size_t extra_len)
{
    /* {"detail":"..."} with the message escaped per RFC 8259 §7; messages are ours, but
     * escaping keeps the body valid JSON whatever they contain. */
    char body[512];
    size_t n = 0;
    memcpy(body, "{\"detail\":\"", 11);
    n = 11;
    for (const char *m = message; *m && n < sizeof(body) - 8; m++) {
        unsigned char ch = (unsigned char)*m;
        if (ch == '"' || ch == '\\') {
            body[n++] = '\\';
            body[n++] = (char)ch;
        } else if (ch < 0x20) {
            static const char hex[] = "0123456789abcdef";
            memcpy(body + n, "\\u00", 4);
            body[n + 4] = hex[ch >> 4];
            body[n + 5] = hex[ch & 15];
            n += 6;
        } else {
            body[n++] = (char)ch;
        }
    }
    body[n++] = '"';
    body[n++] = '}';
    return server_conn_respond(c, status, "application/json", 16, extra_headers, extra_len, body,
                               n);
}

int server_conn_add_headers(server_conn_t *c, const char *lines, size_t len)
{
    return db_buf_append(&c->resp_headers, lines, len);
}

void server_conn_no_gzip(server_conn_t *c)
{
    c->gzip_off = 1;
}

int server_conn_fileno(server_conn_t *c)
{
    uv_os_fd_t fd;
    if (c->closing || uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
        return -1;
    return (int)fd;
}
