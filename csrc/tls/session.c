/*
 * TLS sessions over two memory BIOs: rbio holds the ciphertext received and not yet
 * decrypted, wbio the ciphertext produced and not yet taken by the caller. Both belong to
 * the SSL (SSL_set_bio), which belongs to the session, which holds a reference to its
 * context.
 *
 * A memory BIO never blocks: reading an empty one fails with the retry flag, which OpenSSL
 * turns into SSL_ERROR_WANT_READ; writing always succeeds (it grows). So SSL_write never
 * wants anything once the handshake is done, and SSL_read wants only more input.
 */
#include <limits.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls/tls_internal.h"

/* A memory BIO keeps the largest buffer it ever needed. One that grew past this (a large
 * request or response) is replaced by a fresh one once emptied, so that an idle keep-alive
 * connection does not keep a burst's memory (see tls_session_read and _take). */
#define BIO_KEEP 4096

struct tls_session {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    tls_context_t *ctx;
    unsigned long error; /* the first fatal error (OpenSSL's code), 0 while none */
    int failed;
};

tls_session_t *tls_session_new(tls_context_t *ctx)
{
    tls_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->ssl = SSL_new(ctx->ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (s->ssl == NULL || s->rbio == NULL || s->wbio == NULL) {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        SSL_free(s->ssl);
        free(s);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_bio(s->ssl, s->rbio, s->wbio); /* the SSL owns both from here */
    SSL_set_accept_state(s->ssl);
    tls_context_ref(ctx);
    s->ctx = ctx;
    return s;
}

void tls_session_free(tls_session_t *s)
{
    if (s == NULL)
        return;
    SSL_free(s->ssl);
    tls_context_unref(s->ctx);
    free(s);
}

/* Marks the session failed after an SSL_read/SSL_write that reported SSL_ERROR_SSL (or a
 * system error, which with memory BIOs means the same: the peer broke the protocol), keeps
 * the reason for tls_session_error and empties the thread's error queue. */
static int session_fail(tls_session_t *s)
{
    if (!s->failed) {
        s->failed = 1;
        s->error = ERR_peek_last_error();
    }
    ERR_clear_error();
    return TLS_ERROR;
}

int tls_session_feed(tls_session_t *s, const char *data, size_t len)
{
    while (len > 0) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        int w = BIO_write(s->rbio, data, n);
        if (w <= 0) {
            ERR_clear_error();
            return TLS_NOMEM;
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Replaces an empty memory BIO whose buffer grew past BIO_KEEP. Failing to allocate the new
 * one only keeps the old. */
static void trim_bio(tls_session_t *s, int input)
{
    BIO *old = input ? s->rbio : s->wbio;
    BUF_MEM *mem = NULL;
    if (BIO_ctrl_pending(old) != 0 || BIO_get_mem_ptr(old, &mem) != 1 || mem == NULL ||
        mem->max <= BIO_KEEP)
        return;
    BIO *fresh = BIO_new(BIO_s_mem());
    if (fresh == NULL) {
        ERR_clear_error();
        return;
    }
    /* SSL_set0_*bio frees the BIO it replaces. */
    if (input) {
        s->rbio = fresh;
        SSL_set0_rbio(s->ssl, fresh);
    } else {
        s->wbio = fresh;
        SSL_set0_wbio(s->ssl, fresh);
    }
}

int tls_session_has_input(const tls_session_t *s)
{
    return !s->failed && (SSL_has_pending(s->ssl) || BIO_ctrl_pending(s->rbio) > 0);
}

long tls_session_read(tls_session_t *s, char *out, size_t cap)
{
    if (s->failed)
        return TLS_ERROR;
    if (cap == 0)
        return TLS_WANT;
    int n = cap > INT_MAX ? INT_MAX : (int)cap;
    int r = SSL_read(s->ssl, out, n);
    if (r > 0)
        return r;
    switch (SSL_get_error(s->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        trim_bio(s, 1);
        return TLS_WANT;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_CLOSED;
    case SSL_ERROR_WANT_WRITE: /* not with a memory BIO; treated as a broken session */
    default:
        return session_fail(s);
    }
}

int tls_session_write(tls_session_t *s, const char *data, size_t len)
{
    if (s->failed || !SSL_is_init_finished(s->ssl))
        return TLS_ERROR;
    while (len > 0) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        /* Without SSL_MODE_ENABLE_PARTIAL_WRITE, SSL_write returns n or fails. */
        int w = SSL_write(s->ssl, data, n);
        if (w <= 0)
            return session_fail(s);
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

void tls_session_shutdown(tls_session_t *s)
{
    if (s->failed || !SSL_is_init_finished(s->ssl))
        return;
    /* The first call queues close_notify and returns 0 (the peer's is not awaited: the
     * connection is closed after ours is written, as RFC 8446 §6.1 allows). */
    if (SSL_shutdown(s->ssl) < 0)
        ERR_clear_error();
}

size_t tls_session_pending(const tls_session_t *s)
{
    return BIO_ctrl_pending(s->wbio);
}

size_t tls_session_take(tls_session_t *s, char *out, size_t cap)
{
    int n = cap > INT_MAX ? INT_MAX : (int)cap;
    int r = n > 0 ? BIO_read(s->wbio, out, n) : 0;
    if (r <= 0)
        return 0;
    trim_bio(s, 0);
    return (size_t)r;
}

int tls_session_established(const tls_session_t *s)
{
    return SSL_is_init_finished(s->ssl);
}

const char *tls_session_alpn(const tls_session_t *s, size_t *len)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(s->ssl, &p, &n);
    *len = n;
    return n ? (const char *)p : NULL;
}

const char *tls_session_version(const tls_session_t *s)
{
    return SSL_get_version(s->ssl);
}

const char *tls_session_error(const tls_session_t *s)
{
    if (!s->failed)
        return "";
    const char *reason = s->error ? ERR_reason_error_string(s->error) : NULL;
    return reason ? reason : "protocol error";
}
