/*
 * The access log (uvicorn's --access-log): one record per response, in uvicorn's format
 * '%s - "%s %s HTTP/%s" %d' (client "host:port" or "", method, request target as sent,
 * HTTP version, status), handed to a Python logger's info method. The server layer calls
 * app_access_log from the response writer only when Server.set_access_log installed it,
 * so with the log off the request path pays one pointer test.
 *
 * Control characters (C0, DEL and C1: a proxy's X-Forwarded-For value may carry obs-text
 * bytes, and 0x9B is a terminal's CSI) are written as \xNN, so that a line can neither be
 * split nor drive the terminal it is read on; the parser lets none into method and target,
 * so the scan finds nothing on the common path and the text is decoded as it is.
 *
 * When logging is left as data-bridge configures it (one stream handler with its format),
 * the Python layer asks for the written log instead (set_access_log_fd): the same line,
 * "INFO data_bridge.access: " first, is formatted here into a buffer, and the buffer is
 * written to the stream's descriptor at most ACCESS_FLUSH_DELAY after its first line (a
 * callback scheduled with call_later when a line finds the buffer empty), or at once past
 * ACCESS_FLUSH_AT bytes. No LogRecord, no handler lock, and under load one write(2) for
 * some forty lines (once per loop iteration wrote a fifth of a write per request, its
 * system call the larger part of the log's cost): what makes the access log cheap enough
 * to leave on. A write error drops the buffer (the log never stops the server); the lines
 * of a process killed with SIGKILL in the last ACCESS_FLUSH_DELAY are lost, and a line
 * shows up to that late.
 *
 * The JSON format (--access-log-format json) is written the same way when its records
 * would reach only the stdout handler access_log.use_format added: the line that
 * JsonAccessFormatter and StreamHandler make of the record, byte for byte (keys in its
 * order, json.dumps' ensure_ascii escaping of the \xNN text above, the time as
 * time.strftime of the UTC second plus ".mmmZ", the process id), with no prefix.
 *
 * Ownership: the logging callable and the interned format string belong to the
 * ServerObject (access_log, access_format); so do the written log's buffer, prefix and
 * bound flush method, released by app_access_release.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/app_internal.h"

/* Buffered bytes written at once rather than when the delay is over: four pipe-atomic
 * pieces (write_all). */
#define ACCESS_FLUSH_AT (4 * PIPE_BUF)
/* Seconds a line waits at most in the buffer. */
#define ACCESS_FLUSH_DELAY 0.05

static int is_control(unsigned char ch)
{
    return ch < 0x20 || (ch >= 0x7f && ch <= 0x9f);
}

/* The bytes as a str (Latin-1), control characters escaped as \xNN; NULL when out of
 * memory. */
static PyObject *escaped(const char *s, size_t len)
{
    size_t controls = 0;
    for (size_t i = 0; i < len; i++)
        controls += (size_t)is_control((unsigned char)s[i]);
    if (controls == 0)
        return PyUnicode_DecodeLatin1(s, (Py_ssize_t)len, NULL);
    /* len is at most a head's size: len + 3 * controls cannot overflow. */
    char *out = PyMem_Malloc(len + 3 * controls);
    if (out == NULL)
        return PyErr_NoMemory();
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (is_control(ch)) {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        } else {
            out[n++] = (char)ch;
        }
    }
    PyObject *r = PyUnicode_DecodeLatin1(out, (Py_ssize_t)n, NULL);
    PyMem_Free(out);
    return r;
}

static void app_access_log(void *ctx, int status, const char *client, size_t client_len,
                           const char *method, size_t method_len, const char *target,
                           size_t target_len, int http10)
{
    ServerObject *self = ctx;
    PyObject *type, *value, *tb;
    /* A response may be written while the caller handles an exception (a 500): keep it. */
    PyErr_Fetch(&type, &value, &tb);
    PyObject *cl = escaped(client, client_len);
    PyObject *m = escaped(method, method_len);
    PyObject *t = escaped(target, target_len);
    PyObject *st = PyLong_FromLong(status), *r = NULL;
    if (cl && m && t && st) {
        PyObject *args[6] = {
            self->access_format, cl, m, t, http10 ? self->access_v10 : self->access_v11, st};
        r = PyObject_Vectorcall(self->access_log, args, 6, NULL);
    }
    if (r == NULL)
        PyErr_WriteUnraisable(self->access_log);
    Py_XDECREF(r);
    Py_XDECREF(cl);
    Py_XDECREF(m);
    Py_XDECREF(t);
    Py_XDECREF(st);
    PyErr_Restore(type, value, tb);
}

PyObject *app_set_access_log(ServerObject *self, PyObject *log)
{
    if (self->server != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_access_log() must come before listen()");
        return NULL;
    }
    if (log != Py_None && !PyCallable_Check(log)) {
        PyErr_SetString(PyExc_TypeError, "set_access_log() takes a callable or None");
        return NULL;
    }
    app_access_release(self);
    if (log == Py_None) {
        Py_CLEAR(self->access_log);
        self->cfg.access_log = NULL;
        self->cfg.access_ctx = NULL;
        Py_RETURN_NONE;
    }
    if (self->access_format == NULL) {
        self->access_format = PyUnicode_InternFromString("%s - \"%s %s HTTP/%s\" %d");
        self->access_v10 = PyUnicode_InternFromString("1.0");
        self->access_v11 = PyUnicode_InternFromString("1.1");
        if (!self->access_format || !self->access_v10 || !self->access_v11)
            return NULL;
    }
    Py_XSETREF(self->access_log, Py_NewRef(log));
    self->cfg.access_log = app_access_log;
    self->cfg.access_ctx = self;
    Py_RETURN_NONE;
}

/* Whether none of the 8 bytes of x can be a control character: each is printable ASCII
 * (0x20..0x7e). Word-at-a-time tests ("any byte below n", "any byte zero") from the bit
 * hacks folklore: exact as "any" tests, so a word they pass is clean, and a word they do
 * not pass goes to the byte loop, which decides. */
static int word_printable(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t below = (x - ones * 0x20) & ~x;   /* a byte < 0x20 (when < 0x80) */
    uint64_t del = x ^ (ones * 0x7f);          /* zero where a byte is 0x7f */
    uint64_t is_del = (del - ones) & ~del;     /* a byte == 0x7f */
    return ((below | is_del | x) & high) == 0; /* x's own high bits: bytes >= 0x80 */
}

/* Copies the bytes to out with control characters escaped as \\xNN (see escaped()); out
 * has room for 4 * len bytes. Returns the end of what was written. Runs without a control
 * character are copied whole and checked 8 bytes at a time: the common case (a client
 * address, a method, a target: the parser lets no control byte into the last two) is a
 * few word tests and one memcpy. */
static char *put_escaped(char *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0, i = 0;
    for (uint64_t w; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);
        if (!word_printable(w))
            break;
    }
    for (; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!is_control(ch))
            continue;
        memcpy(out, s + run, i - run);
        out += i - run;
        *out++ = '\\';
        *out++ = 'x';
        *out++ = hex[ch >> 4];
        *out++ = hex[ch & 15];
        run = i + 1;
    }
    memcpy(out, s + run, len - run);
    return out + (len - run);
}

/* The status in decimal (at most 11 bytes with a sign), without snprintf's parsing: three
 * digits on every real response. Returns the bytes written. */
static size_t put_status(char *out, int status)
{
    char digits[12];
    size_t n = 0;
    unsigned v = status < 0 ? 0u - (unsigned)status : (unsigned)status;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    size_t w = 0;
    if (status < 0)
        out[w++] = '-';
    while (n > 0)
        out[w++] = digits[--n];
    return w;
}

/* Writes the buffer in pieces of whole lines of at most PIPE_BUF bytes: workers share the
 * descriptor, and the kernel keeps a pipe write that small in one piece (POSIX), so their
 * lines never mix (a single longer line is written alone). */
static void write_all(ServerObject *self)
{
    const char *p = self->access_buf.data;
    size_t left = self->access_buf.len;
    while (left > 0) {
        size_t piece = left;
        if (piece > PIPE_BUF) {
            const char *nl = p + PIPE_BUF - 1;
            while (nl > p && *nl != '\n')
                nl--;
            if (*nl != '\n')
                nl = memchr(p + PIPE_BUF, '\n', left - PIPE_BUF);
            piece = nl != NULL ? (size_t)(nl - p) + 1 : left;
        }
        ssize_t n = write(self->access_fd, p, piece);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* EAGAIN on a full pipe, or a closed stream: the lines are dropped */
        p += n;
        left -= (size_t)n;
    }
    self->access_buf.len = 0;
}

PyObject *app_flush_access_log(ServerObject *self, PyObject *unused)
{
    (void)unused;
    self->access_flush_pending = 0;
    if (self->access_fd >= 0 && self->access_buf.len)
        write_all(self);
    Py_RETURN_NONE;
}

static void access_line_added(ServerObject *self);

/* server_access_cb of the written log: uvicorn's line, '%s - "%s %s HTTP/%s" %d'. */
static void app_access_write(void *ctx, int status, const char *client, size_t client_len,
                             const char *method, size_t method_len, const char *target,
                             size_t target_len, int http10)
{
    ServerObject *self = ctx;
    db_buf_t *b = &self->access_buf;
    const char *prefix = PyBytes_AS_STRING(self->access_prefix);
    size_t prefix_len = (size_t)PyBytes_GET_SIZE(self->access_prefix);
    /* Room for the longest line: every client byte escaped, and ' - "', ' ', ' HTTP/1.x" ',
     * the status and the newline (at most 28 bytes). The lengths are bounded by a request
     * head's size, so the sum cannot overflow. */
    size_t most = prefix_len + 4 * client_len + method_len + target_len + 32;
    if (db_buf_reserve(b, most) < 0)
        return; /* out of memory: this line is dropped */
    char *p = b->data + b->len;
    memcpy(p, prefix, prefix_len);
    p += prefix_len;
    p = put_escaped(p, client, client_len);
    memcpy(p, " - \"", 4);
    p += 4;
    /* The parser lets only tchar into a method and visible ASCII (0x21-0x7e) into a target
     * (http/parser.c): nothing there to escape. Only a proxy's client text can hold
     * control bytes. */
    memcpy(p, method, method_len);
    p += method_len;
    *p++ = ' ';
    memcpy(p, target, target_len);
    p += target_len;
    memcpy(p, http10 ? " HTTP/1.0\" " : " HTTP/1.1\" ", 11);
    p += 11;
    p += put_status(p, status);
    *p++ = '\n';
    b->len = (size_t)(p - b->data);
    access_line_added(self);
}

/* A line was added to the buffer: written now past ACCESS_FLUSH_AT, else by the flush
 * callback, scheduled when this is the first line since the last write. */
static void access_line_added(ServerObject *self)
{
    if (self->access_buf.len >= ACCESS_FLUSH_AT) {
        write_all(self);
        return;
    }
    if (self->access_flush_pending)
        return;
    /* The first line since the last write: the loop writes the buffer ACCESS_FLUSH_DELAY
     * from now, so the responses of that time share one write. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    static PyObject *call_later, *delay; /* kept for the process */
    if (call_later == NULL)
        call_later = PyUnicode_InternFromString("call_later");
    if (delay == NULL)
        delay = PyFloat_FromDouble(ACCESS_FLUSH_DELAY);
    PyObject *h = NULL;
    if (call_later != NULL && delay != NULL) {
        PyObject *args[3] = {self->loop, delay, self->access_flush};
        h = PyObject_VectorcallMethod(call_later, args, 3, NULL);
    }
    if (h == NULL) {
        PyErr_Clear();
        write_all(self); /* the loop is closing: write now */
    } else {
        self->access_flush_pending = 1;
        Py_DECREF(h);
    }
    PyErr_Restore(type, value, tb);
}

/* Whether json.dumps(ensure_ascii=True) writes the character of the Latin-1 byte ch other
 * than as itself, or escaped() changed it (a control character) before: anything but
 * printable ASCII, and the quote and the backslash. */
static int json_special(unsigned char ch)
{
    return ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\';
}

/* Copies the bytes to out as json.dumps(escaped(bytes), ensure_ascii=True) writes them
 * between the quotes: a control character becomes the text \xNN (its backslash written
 * \\), '"' and '\' get a backslash, the rest of Latin-1 is \u00nn (lowercase hex, as
 * json's encoder writes it); out has room for 6 * len bytes. Returns the end. */
static char *put_json(char *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!json_special(ch))
            continue;
        memcpy(out, s + run, i - run);
        out += i - run;
        run = i + 1;
        *out++ = '\\';
        if (is_control(ch)) {
            memcpy(out, "\\x", 2);
            out += 2;
        } else if (ch >= 0x80) {
            memcpy(out, "u00", 3);
            out += 3;
        } else {
            *out++ = (char)ch;
            continue;
        }
        *out++ = hex[ch >> 4];
        *out++ = hex[ch & 15];
    }
    memcpy(out, s + run, len - run);
    return out + (len - run);
}

/* server_access_cb of the written JSON log (see the opening comment). */
static void app_access_write_json(void *ctx, int status, const char *client, size_t client_len,
                                  const char *method, size_t method_len, const char *target,
                                  size_t target_len, int http10)
{
    ServerObject *self = ctx;
    db_buf_t *b = &self->access_buf;
    /* logging's record.created is time.time(), and its msecs the milliseconds truncated. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if ((int64_t)ts.tv_sec != self->access_sec || self->access_stamp[0] == '\0') {
        time_t sec = ts.tv_sec;
        struct tm tm;
        if (gmtime_r(&sec, &tm) == NULL ||
            strftime(self->access_stamp, sizeof(self->access_stamp), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
            return; /* not a time strftime can write: the line is dropped */
        self->access_sec = (int64_t)ts.tv_sec;
    }
    size_t stamp_len = strlen(self->access_stamp);
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    /* Every byte of the three texts escaped (6 bytes at most), the stamp, and the fixed
     * parts with the status and the tail (under 160 bytes); the lengths are bounded by a
     * request head's size, so the sum cannot overflow. */
    size_t most = stamp_len + 6 * (client_len + method_len + target_len) + 160;
    if (db_buf_reserve(b, most) < 0)
        return; /* out of memory: this line is dropped */
    char *p = b->data + b->len;
    memcpy(p, "{\"time\":\"", 9);
    p += 9;
    memcpy(p, self->access_stamp, stamp_len);
    p += stamp_len;
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    memcpy(p, "Z\",\"client\":\"", 13);
    p += 13;
    p = put_json(p, client, client_len);
    memcpy(p, "\",\"method\":\"", 12);
    p += 12;
    p = put_json(p, method, method_len);
    memcpy(p, "\",\"path\":\"", 10);
    p += 10;
    p = put_json(p, target, target_len);
    memcpy(p,
           http10 ? "\",\"http_version\":\"1.0\",\"status\":"
                  : "\",\"http_version\":\"1.1\",\"status\":",
           32);
    p += 32;
    p += put_status(p, status);
    memcpy(p, self->access_tail, self->access_tail_len);
    p += self->access_tail_len;
    b->len = (size_t)(p - b->data);
    access_line_added(self);
}

PyObject *app_set_access_log_fd(ServerObject *self, PyObject *args)
{
    int fd, json = 0;
    PyObject *prefix;
    if (!PyArg_ParseTuple(args, "iS|p", &fd, &prefix, &json))
        return NULL;
    if (self->server != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_access_log_fd() must come before listen()");
        return NULL;
    }
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "set_access_log_fd() needs a descriptor");
        return NULL;
    }
    PyObject *flush = PyObject_GetAttrString((PyObject *)self, "_flush_access_log");
    if (flush == NULL)
        return NULL;
    app_access_release(self);
    Py_CLEAR(self->access_log);
    self->access_fd = fd;
    self->access_prefix = Py_NewRef(prefix);
    self->access_flush = flush; /* a reference cycle with self, broken by release */
    self->access_json = json;
    /* The server is made in the process that serves (a worker after its fork). */
    int n =
        snprintf(self->access_tail, sizeof(self->access_tail), ",\"pid\":%ld}\n", (long)getpid());
    self->access_tail_len = n > 0 && (size_t)n < sizeof(self->access_tail) ? (size_t)n : 0;
    self->access_sec = 0;
    self->access_stamp[0] = '\0';
    self->cfg.access_log = json ? app_access_write_json : app_access_write;
    self->cfg.access_ctx = self;
    Py_RETURN_NONE;
}

void app_access_release(ServerObject *self)
{
    if (self->access_fd >= 0 && self->access_buf.len)
        write_all(self);
    self->access_fd = -1;
    db_buf_free(&self->access_buf);
    Py_CLEAR(self->access_prefix);
    Py_CLEAR(self->access_flush);
    if (self->cfg.access_log == app_access_write || self->cfg.access_log == app_access_write_json) {
        self->cfg.access_log = NULL;
        self->cfg.access_ctx = NULL;
    }
}
