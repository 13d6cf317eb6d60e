/*
 * File bodies: segments of literal text and byte ranges of one open file, written to a
 * non-blocking stream socket. A range goes out with sendfile(2), which copies from the page
 * cache to the socket inside the kernel: no byte of the file passes through user memory,
 * so neither a large file nor a slow reader costs the server memory. Where sendfile cannot
 * read the file (EINVAL, ENOSYS or EOPNOTSUPP: a file system without splice support) the
 * body falls back, for good, to pread(2) into a 64 KiB buffer of its own and send(2).
 *
 * Each call resumes where the previous one stopped: the segment, the bytes of its text
 * already sent, and the next file offset. Ranges are read at explicit offsets (sendfile's
 * offset argument, pread), so the descriptor's own position is never used or moved.
 *
 * Text and copied pieces are written with send(MSG_NOSIGNAL): a peer that reset the
 * connection gives EPIPE, not SIGPIPE. sendfile(2) takes no flags, so for it the process
 * relies on SIGPIPE being ignored, as CPython sets it at start-up and as libuv's own
 * writes already require.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/buf.h"
#include "files/files.h"

/* The fallback's buffer: one read, one write. */
#define FILES_PIECE 65536
/* sendfile(2) transfers at most 0x7ffff000 bytes per call (its man page, NOTES). */
#define FILES_SENDFILE_MAX 0x7ffff000u

typedef struct {
    size_t text_off, text_len; /* the segment's text: body->text.data[text_off..+text_len) */
    uint64_t start, end;       /* then the file's bytes [start, end) */
} files_seg_t;

struct files_body {
    int fd;
    db_buf_t text;
    files_seg_t *segs;
    size_t nsegs, cap;
    uint64_t length;
    size_t cur;       /* the segment being sent */
    size_t text_done; /* bytes of its text already sent */
    uint64_t pos;     /* next file offset of its range */
    char *buf;        /* the fallback's piece: buf[buf_off..buf_len) == file[pos..) */
    size_t buf_off, buf_len;
    unsigned copy : 1; /* read(2) + write(2) instead of sendfile(2) */
};

files_body_t *files_body_new(int fd)
{
    files_body_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        close(fd);
        return NULL;
    }
    b->fd = fd;
    return b;
}

int files_body_add(files_body_t *b, const char *text, size_t text_len, uint64_t start, uint64_t end)
{
    if (b->nsegs == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        files_seg_t *segs = realloc(b->segs, cap * sizeof(*segs));
        if (segs == NULL)
            return -1;
        b->segs = segs;
        b->cap = cap;
    }
    size_t off = b->text.len;
    if (db_buf_append(&b->text, text, text_len) < 0)
        return -1;
    if (end < start)
        end = start;
    b->segs[b->nsegs++] = (files_seg_t){off, text_len, start, end};
    if (b->nsegs == 1)
        b->pos = start;
    b->length += text_len + (end - start);
    return 0;
}

uint64_t files_body_length(const files_body_t *b)
{
    return b->length;
}

void files_body_free(files_body_t *b)
{
    if (b == NULL)
        return;
    if (b->fd >= 0)
        close(b->fd);
    db_buf_free(&b->text);
    free(b->segs);
    free(b->buf);
    free(b);
}

int files_body_release(files_body_t *b)
{
    int fd = b->fd;
    b->fd = -1;
    files_body_free(b);
    return fd;
}

void files_body_force_copy(files_body_t *b)
{
    b->copy = 1;
}

int files_body_copying(const files_body_t *b)
{
    return b->copy;
}

static int would_block(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK;
}

/* One step of the fallback: fills the buffer at pos when it is empty, then writes what it
 * holds. Returns the file bytes written (pos advances by as many), 0 when the file ended at
 * pos, -1 with errno. */
static ssize_t copy_step(files_body_t *b, int sock, uint64_t want)
{
    if (b->buf_off == b->buf_len) {
        if (b->buf == NULL && (b->buf = malloc(FILES_PIECE)) == NULL) {
            errno = ENOMEM;
            return -1;
        }
        ssize_t r;
        do {
            r = pread(b->fd, b->buf, want < FILES_PIECE ? (size_t)want : FILES_PIECE,
                      (off_t)b->pos);
        } while (r < 0 && errno == EINTR);
        if (r <= 0)
            return r;
        b->buf_off = 0;
        b->buf_len = (size_t)r;
    }
    ssize_t w = send(sock, b->buf + b->buf_off, b->buf_len - b->buf_off, MSG_NOSIGNAL);
    if (w > 0)
        b->buf_off += (size_t)w;
    return w;
}

int files_body_send(files_body_t *b, int sock, uint64_t budget)
{
    uint64_t sent = 0;
    while (b->cur < b->nsegs) {
        const files_seg_t *s = &b->segs[b->cur];
        if (b->text_done < s->text_len) {
            ssize_t n = send(sock, b->text.data + s->text_off + b->text_done,
                             s->text_len - b->text_done, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                return would_block() ? FILES_SEND_AGAIN : FILES_SEND_ERROR;
            }
            b->text_done += (size_t)n;
            continue;
        }
        if (b->pos < s->end) {
            if (sent >= budget)
                return FILES_SEND_YIELD;
            uint64_t want = s->end - b->pos;
            if (want > budget - sent)
                want = budget - sent;
            ssize_t n;
            if (!b->copy) {
                off_t off = (off_t)b->pos;
                n = sendfile(sock, b->fd, &off,
                             want < FILES_SENDFILE_MAX ? (size_t)want : FILES_SENDFILE_MAX);
                if (n < 0 && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
                    /* This file cannot be spliced: copy it instead (nothing was sent by the
                     * failed call, so pos still holds). */
                    b->copy = 1;
                    continue;
                }
            } else {
                n = copy_step(b, sock, want);
            }
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                return would_block() ? FILES_SEND_AGAIN : FILES_SEND_ERROR;
            }
            if (n == 0)
                return FILES_SEND_TRUNCATED; /* end of file before the range's end */
            b->pos += (uint64_t)n;
            sent += (uint64_t)n;
            continue;
        }
        b->cur++;
        b->text_done = 0;
        if (b->cur < b->nsegs)
            b->pos = b->segs[b->cur].start;
    }
    return FILES_SEND_DONE;
}
