/*
 * TAP tests for file bodies (csrc/files/body.c): a whole file, ranges with text around
 * them (a multipart/byteranges layout) and text alone, each sent with sendfile(2) and with
 * the read(2) + write(2) fallback through a non-blocking socketpair whose buffer fills
 * (FILES_SEND_AGAIN, then resumed where it stopped), the budget (FILES_SEND_YIELD), a file
 * shorter than its range (FILES_SEND_TRUNCATED after the bytes it has) and a peer that
 * left (FILES_SEND_ERROR, EPIPE, without SIGPIPE).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "files/files.h"
#include "tap.h"

#define FILE_SIZE (3 * 1024 * 1024 + 17)

static unsigned char *content;
static char path[] = "/tmp/db_test_files_body_XXXXXX";

static int open_file(void)
{
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* Sends b to a fresh socketpair, draining the reader whenever the socket is full, into out
 * (room for cap bytes). Returns the last files_body_send result; *got the bytes received,
 * *agains how often the socket was full. */
static int run(files_body_t *b, unsigned char *out, size_t cap, size_t *got, int *agains,
               uint64_t budget, int *yields)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return -100;
    int small = 16384;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    *got = 0;
    *agains = 0;
    if (yields)
        *yields = 0;
    int r;
    for (;;) {
        r = files_body_send(b, sv[0], budget);
        if (r == FILES_SEND_AGAIN)
            (*agains)++;
        else if (r == FILES_SEND_YIELD && yields)
            (*yields)++;
        else if (r != FILES_SEND_YIELD)
            break;
        ssize_t n;
        while ((n = read(sv[1], out + *got, cap - *got)) > 0)
            *got += (size_t)n;
    }
    shutdown(sv[0], SHUT_WR);
    ssize_t n;
    while ((n = read(sv[1], out + *got, cap - *got)) > 0)
        *got += (size_t)n;
    close(sv[0]);
    close(sv[1]);
    return r;
}

static void whole(int copy)
{
    files_body_t *b = files_body_new(open_file());
    TAP_OK(b != NULL && files_body_add(b, NULL, 0, 0, FILE_SIZE) == 0);
    if (copy)
        files_body_force_copy(b);
    TAP_EQ_INT(files_body_length(b), FILE_SIZE);
    unsigned char *out = malloc(FILE_SIZE + 1);
    size_t got;
    int agains;
    TAP_EQ_INT(run(b, out, FILE_SIZE + 1, &got, &agains, UINT64_MAX, NULL), FILES_SEND_DONE);
    TAP_EQ_INT(got, FILE_SIZE);
    TAP_OK(memcmp(out, content, FILE_SIZE) == 0);
    TAP_OK(agains > 10); /* the socket filled and the body resumed many times */
    TAP_EQ_INT(files_body_copying(b), copy);
    free(out);
    files_body_free(b);
}

static void ranges(int copy)
{
    /* Part headers before each range, a CRLF after it, the close delimiter alone. */
    static const char h1[] = "--B\r\nContent-Range: bytes 0-9/x\r\n\r\n";
    static const char h2[] = "\r\n--B\r\nContent-Range: bytes 2000000-2999999/x\r\n\r\n";
    static const char h3[] = "\r\n--B\r\n\r\n";
    static const char end[] = "\r\n--B--";
    files_body_t *b = files_body_new(open_file());
    TAP_OK(files_body_add(b, h1, sizeof(h1) - 1, 0, 10) == 0);
    TAP_OK(files_body_add(b, h2, sizeof(h2) - 1, 2000000, 3000000) == 0);
    TAP_OK(files_body_add(b, h3, sizeof(h3) - 1, FILE_SIZE - 1, FILE_SIZE) == 0);
    TAP_OK(files_body_add(b, end, sizeof(end) - 1, 0, 0) == 0);
    if (copy)
        files_body_force_copy(b);
    size_t want =
        sizeof(h1) - 1 + 10 + sizeof(h2) - 1 + 1000000 + sizeof(h3) - 1 + 1 + sizeof(end) - 1;
    TAP_EQ_INT(files_body_length(b), want);
    unsigned char *out = malloc(want + 100), *exp = malloc(want);
    size_t n = 0;
    memcpy(exp + n, h1, sizeof(h1) - 1);
    n += sizeof(h1) - 1;
    memcpy(exp + n, content, 10);
    n += 10;
    memcpy(exp + n, h2, sizeof(h2) - 1);
    n += sizeof(h2) - 1;
    memcpy(exp + n, content + 2000000, 1000000);
    n += 1000000;
    memcpy(exp + n, h3, sizeof(h3) - 1);
    n += sizeof(h3) - 1;
    exp[n++] = content[FILE_SIZE - 1];
    memcpy(exp + n, end, sizeof(end) - 1);
    size_t got;
    int agains, yields;
    TAP_EQ_INT(run(b, out, want + 100, &got, &agains, 4096, &yields), FILES_SEND_DONE);
    TAP_EQ_INT(got, want);
    TAP_OK(memcmp(out, exp, want) == 0);
    TAP_OK(yields >= 10); /* 1,000,011 file bytes, at most 4096 per call */
    free(out);
    free(exp);
    files_body_free(b);
}

static void truncated(int copy)
{
    /* The range claims 1000 bytes past the end: what exists is sent, then TRUNCATED. */
    files_body_t *b = files_body_new(open_file());
    TAP_OK(files_body_add(b, "x", 1, FILE_SIZE - 5000, FILE_SIZE + 1000) == 0);
    if (copy)
        files_body_force_copy(b);
    unsigned char *out = malloc(7000);
    size_t got;
    int agains;
    TAP_EQ_INT(run(b, out, 7000, &got, &agains, UINT64_MAX, NULL), FILES_SEND_TRUNCATED);
    TAP_EQ_INT(got, 5001);
    TAP_OK(out[0] == 'x' && memcmp(out + 1, content + FILE_SIZE - 5000, 5000) == 0);
    free(out);
    files_body_free(b);
}

static void peer_gone(int copy)
{
    int sv[2];
    TAP_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    close(sv[1]);
    files_body_t *b = files_body_new(open_file());
    TAP_OK(files_body_add(b, NULL, 0, 0, FILE_SIZE) == 0);
    if (copy)
        files_body_force_copy(b);
    errno = 0;
    TAP_EQ_INT(files_body_send(b, sv[0], UINT64_MAX), FILES_SEND_ERROR);
    TAP_EQ_INT(errno, EPIPE);
    files_body_free(b);
    close(sv[0]);
}

int main(void)
{
    /* As in CPython: the process ignores SIGPIPE (sendfile(2) cannot be told not to raise
     * it), so a write to a peer that left fails with EPIPE. */
    signal(SIGPIPE, SIG_IGN);
    content = malloc(FILE_SIZE);
    srand(13);
    for (size_t i = 0; i < FILE_SIZE; i++)
        content[i] = (unsigned char)rand();
    int fd = mkstemp(path);
    TAP_OK(fd >= 0 && write(fd, content, FILE_SIZE) == FILE_SIZE);
    close(fd);
    for (int copy = 0; copy < 2; copy++) {
        whole(copy);
        ranges(copy);
        truncated(copy);
        peer_gone(copy);
    }
    /* Out of memory is not simulated; a failed new closes the descriptor it was given. */
    files_body_free(NULL);
    unlink(path);
    free(content);
    return tap_done();
}
