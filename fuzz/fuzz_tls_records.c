/*
 * libFuzzer target for the TLS session's record-input path (csrc/tls/session.c): the input is
 * fed as ciphertext from a client, in pieces whose sizes come from the input's first byte,
 * with the session read after every piece into a small buffer (as the server drains it into
 * a connection's read buffer) and its output taken. Whatever the bytes, the session must
 * answer TLS_WANT, plaintext, TLS_CLOSED or TLS_ERROR, stay failed after an error, and leave
 * OpenSSL's error queue empty; ASan checks that the session and its BIOs are freed. The
 * certificate is made once, at start (tests/c/tls_testcert.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "../tests/c/tls_testcert.h"
#include "tls/tls.h"

static tls_context_t *ctx;
static testcert_t certs;

static void cleanup(void)
{
    tls_context_unref(ctx);
    testcert_remove(&certs);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    testcert_create(&certs);
    tls_config_t cfg = {0};
    cfg.certfile = certs.cert;
    cfg.keyfile = certs.key;
    cfg.ca_certs = certs.ca;
    cfg.verify = TLS_VERIFY_OPTIONAL;
    char err[256];
    ctx = tls_context_new(&cfg, err, sizeof(err));
    if (ctx == NULL)
        abort();
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tls_session_t *s = tls_session_new(ctx);
    if (s == NULL)
        abort();
    size_t piece = size ? (size_t)data[0] % 64 + 1 : 1;
    char plain[512], out[4096];
    int failed = 0;
    for (size_t off = size ? 1 : 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        if (tls_session_feed(s, (const char *)data + off, n) != 0)
            abort();
        long r;
        while ((r = tls_session_read(s, plain, sizeof(plain))) > 0)
            if ((size_t)r > sizeof(plain))
                abort();
        if (r != TLS_WANT && r != TLS_CLOSED && r != TLS_ERROR)
            abort();
        if (failed && r != TLS_ERROR)
            abort();
        failed |= r == TLS_ERROR;
        while (tls_session_take(s, out, sizeof(out)) > 0)
            ;
        if (ERR_peek_error() != 0)
            abort();
        if (r == TLS_CLOSED)
            break;
    }
    tls_session_free(s);
    return 0;
}
