/*
 * Unit tests of csrc/tls: contexts (every configuration error says what failed) and sessions
 * against an OpenSSL client over memory BIOs (handshakes in TLS 1.2 and 1.3, ALPN, data both
 * ways in large amounts, close_notify both ways, client certificates, renegotiation refused,
 * garbage and plain HTTP instead of a handshake). Certificates are made at test time
 * (tls_testcert.h). Run under ASan and UBSan by `make ctest`, which also catches leaks of
 * SSL objects and contexts.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tap.h"
#include "tls/tls.h"
#include "tls_testcert.h"

static testcert_t certs;

/* The test's client: an OpenSSL client SSL over its own memory BIOs. */
typedef struct {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in, *out; /* in: what the server sent; out: what the client sends */
} client_t;

static void client_init(client_t *c, int max_version, const char *alpn, size_t alpn_len,
                        int with_cert)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_load_verify_locations(c->ctx, certs.ca, NULL);
    if (max_version)
        SSL_CTX_set_max_proto_version(c->ctx, max_version);
    if (with_cert) {
        SSL_CTX_use_certificate_file(c->ctx, certs.client_cert, SSL_FILETYPE_PEM);
        SSL_CTX_use_PrivateKey_file(c->ctx, certs.client_key, SSL_FILETYPE_PEM);
    }
    c->ssl = SSL_new(c->ctx);
    c->in = BIO_new(BIO_s_mem());
    c->out = BIO_new(BIO_s_mem());
    SSL_set_bio(c->ssl, c->in, c->out);
    SSL_set_connect_state(c->ssl);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    SSL_set1_host(c->ssl, "localhost");
    if (alpn)
        SSL_set_alpn_protos(c->ssl, (const unsigned char *)alpn, (unsigned)alpn_len);
}

static void client_free(client_t *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    ERR_clear_error();
}

/* Moves the client's output to the server, the server's output to the client. */
static void pump(client_t *c, tls_session_t *s)
{
    char buf[4096];
    int n;
    while ((n = BIO_read(c->out, buf, sizeof(buf))) > 0)
        tls_session_feed(s, buf, (size_t)n);
    size_t m;
    while ((m = tls_session_take(s, buf, sizeof(buf))) > 0)
        BIO_write(c->in, buf, (int)m);
}

/* Runs the handshake: returns 1 when both sides finished, 0 when it failed. The server's
 * reads drive its side; plaintext read meanwhile is not expected. */
static int handshake(client_t *c, tls_session_t *s, long *server_rc)
{
    char buf[256];
    long r = TLS_WANT;
    for (int round = 0; round < 10; round++) {
        int cr = SSL_do_handshake(c->ssl);
        pump(c, s);
        r = tls_session_read(s, buf, sizeof(buf));
        pump(c, s);
        if (r < 0 && r != TLS_WANT)
            break;
        if (cr == 1 && tls_session_established(s))
            break;
    }
    /* The client reads the server's last flight (session tickets, or an alert). */
    SSL_read(c->ssl, buf, 0);
    ERR_clear_error();
    if (server_rc)
        *server_rc = r;
    return SSL_is_init_finished(c->ssl) && tls_session_established(s);
}

static tls_context_t *context(const tls_config_t *cfg)
{
    char err[512];
    tls_context_t *ctx = tls_context_new(cfg, err, sizeof(err));
    if (ctx == NULL)
        printf("# context: %s\n", err);
    return ctx;
}

static tls_config_t base_config(void)
{
    tls_config_t cfg = {0};
    cfg.certfile = certs.cert;
    cfg.keyfile = certs.key;
    return cfg;
}

/* The error message of a configuration that must fail, or NULL when it did not fail. */
static const char *config_error(const tls_config_t *cfg, char *err, size_t errlen)
{
    tls_context_t *ctx = tls_context_new(cfg, err, errlen);
    if (ctx != NULL) {
        tls_context_unref(ctx);
        return NULL;
    }
    return err;
}

static void test_context_errors(void)
{
    char err[512];
    tls_config_t cfg = base_config();
    cfg.certfile = "/nonexistent/cert.pem";
    const char *e = config_error(&cfg, err, sizeof(err));
    TAP_OK(e != NULL && strstr(e, "certificate chain") && strstr(e, "/nonexistent/cert.pem"));

    cfg = base_config();
    cfg.certfile = NULL;
    TAP_OK(config_error(&cfg, err, sizeof(err)) != NULL);

    cfg = base_config();
    cfg.keyfile = certs.other_key;
    e = config_error(&cfg, err, sizeof(err));
    TAP_OK(e != NULL && strstr(e, "does not match"));

    cfg = base_config();
    cfg.keyfile = certs.cert; /* no key in it */
    e = config_error(&cfg, err, sizeof(err));
    TAP_OK(e != NULL && strstr(e, "private key"));

    cfg = base_config();
    cfg.keyfile = certs.key_enc;
    e = config_error(&cfg, err, sizeof(err));
    TAP_OK(e != NULL && strstr(e, "password"));
    cfg.password = "wrong";
    e = config_error(&cfg, err, sizeof(err));
    TAP_OK(e != NULL && strstr(e, "wrong password"));
    cfg.password = "secret";
    TAP_OK(config_error(&cfg, err, sizeof(err)) == NULL);

    cfg = base_config();
    cfg.ciphers = "NO-SUCH-CIPHER";
    e = config_error(&cfg, err, sizeof(err));
    TAP_OK(e != NULL && strstr(e, "no cipher"));

    cfg = base_config();
    cfg.verify = 7;
    TAP_OK(config_error(&cfg, err, sizeof(err)) != NULL);

    cfg = base_config();
    cfg.min_version = 0x0301; /* TLS 1.0 */
    TAP_OK(config_error(&cfg, err, sizeof(err)) != NULL);

    cfg = base_config();
    cfg.ca_certs = "/nonexistent/ca.pem";
    e = config_error(&cfg, err, sizeof(err));
    TAP_OK(e != NULL && strstr(e, "CA certificates"));
    TAP_EQ_INT(ERR_peek_error(), 0); /* the error queue is left empty */
}

/* A handshake with the given client settings, then a request and a response. */
static void test_exchange(int max_version, const char *expect_version)
{
    tls_config_t cfg = base_config();
    tls_context_t *ctx = context(&cfg);
    TAP_OK(ctx != NULL);
    tls_session_t *s = tls_session_new(ctx);
    /* The session holds its own reference: the server may drop the context (a reload). */
    tls_context_unref(ctx);
    client_t c;
    client_init(&c, max_version, "\x02h2\x08http/1.1", 12, 0);
    TAP_OK(handshake(&c, s, NULL));
    TAP_OK(strcmp(tls_session_version(s), expect_version) == 0);
    size_t alen = 0;
    const char *alpn = tls_session_alpn(s, &alen);
    TAP_EQ_MEM(alpn, alen, "http/1.1");
    TAP_EQ_INT(SSL_get_verify_result(c.ssl), X509_V_OK);

    const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    TAP_EQ_INT(SSL_write(c.ssl, req, (int)sizeof(req) - 1), sizeof(req) - 1);
    pump(&c, s);
    char buf[256];
    long n = tls_session_read(s, buf, sizeof(buf));
    TAP_EQ_INT(n, sizeof(req) - 1);
    TAP_OK(n > 0 && memcmp(buf, req, (size_t)n) == 0);
    TAP_EQ_INT(tls_session_read(s, buf, sizeof(buf)), TLS_WANT);

    TAP_EQ_INT(tls_session_write(s, "HTTP/1.1 200 OK\r\n\r\n", 19), 0);
    TAP_OK(tls_session_pending(s) > 19);
    pump(&c, s);
    int m = SSL_read(c.ssl, buf, sizeof(buf));
    TAP_EQ_INT(m, 19);

    /* The server's close_notify reaches the client as the end of the data. */
    tls_session_shutdown(s);
    pump(&c, s);
    TAP_EQ_INT(SSL_read(c.ssl, buf, sizeof(buf)), 0);
    TAP_EQ_INT(SSL_get_error(c.ssl, 0), SSL_ERROR_ZERO_RETURN);
    tls_session_free(s);
    client_free(&c);
}

static void test_no_alpn(void)
{
    tls_config_t cfg = base_config();
    tls_context_t *ctx = context(&cfg);
    tls_session_t *s = tls_session_new(ctx);
    client_t c;
    client_init(&c, 0, "\x02h2", 3, 0); /* a protocol we do not speak: no ALPN, no failure */
    TAP_OK(handshake(&c, s, NULL));
    size_t alen = 1;
    TAP_OK(tls_session_alpn(s, &alen) == NULL && alen == 0);
    tls_session_free(s);
    client_free(&c);
    /* Without the extension at all. */
    s = tls_session_new(ctx);
    client_init(&c, 0, NULL, 0, 0);
    TAP_OK(handshake(&c, s, NULL));
    TAP_OK(tls_session_alpn(s, &alen) == NULL);
    tls_session_free(s);
    client_free(&c);
    tls_context_unref(ctx);
}

/* Megabytes both ways, in records of every size, through buffers smaller than a record. */
static void test_large(void)
{
    tls_config_t cfg = base_config();
    tls_context_t *ctx = context(&cfg);
    tls_session_t *s = tls_session_new(ctx);
    client_t c;
    client_init(&c, 0, NULL, 0, 0);
    TAP_OK(handshake(&c, s, NULL));
    size_t total = 3u << 20;
    char *data = malloc(total), *got = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (char)(i * 7 + (i >> 12));
    /* Client to server: written in one go, read 1000 bytes at a time. */
    size_t sent = 0, recvd = 0;
    while (sent < total) {
        int w = SSL_write(c.ssl, data + sent, (int)(total - sent > 70000 ? 70000 : total - sent));
        TAP_OK(w > 0);
        if (w <= 0)
            break;
        sent += (size_t)w;
        pump(&c, s);
        long n;
        while ((n = tls_session_read(s, got + recvd, 1000)) > 0)
            recvd += (size_t)n;
        TAP_OK(n == TLS_WANT || n > 0);
    }
    TAP_EQ_INT(recvd, total);
    TAP_OK(memcmp(data, got, total) == 0);
    /* Server to client: one write of the whole thing. */
    memset(got, 0, total);
    TAP_EQ_INT(tls_session_write(s, data, total), 0);
    pump(&c, s);
    recvd = 0;
    int r;
    while (recvd < total && (r = SSL_read(c.ssl, got + recvd, 65536)) > 0)
        recvd += (size_t)r;
    TAP_EQ_INT(recvd, total);
    TAP_OK(memcmp(data, got, total) == 0);
    TAP_EQ_INT(tls_session_pending(s), 0);
    /* The client's close_notify ends the server's data. */
    SSL_shutdown(c.ssl);
    pump(&c, s);
    TAP_EQ_INT(tls_session_read(s, got, 100), TLS_CLOSED);
    free(data);
    free(got);
    tls_session_free(s);
    client_free(&c);
    tls_context_unref(ctx);
}

static void test_garbage(void)
{
    tls_config_t cfg = base_config();
    tls_context_t *ctx = context(&cfg);
    char buf[256];
    /* A plain HTTP request on the TLS port. */
    tls_session_t *s = tls_session_new(ctx);
    const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    TAP_EQ_INT(tls_session_feed(s, http, sizeof(http) - 1), 0);
    TAP_EQ_INT(tls_session_read(s, buf, sizeof(buf)), TLS_ERROR);
    TAP_OK(strlen(tls_session_error(s)) > 0);
    TAP_EQ_INT(tls_session_read(s, buf, sizeof(buf)), TLS_ERROR); /* sticky */
    TAP_EQ_INT(tls_session_write(s, "x", 1), TLS_ERROR);
    tls_session_shutdown(s); /* nothing to do after a failure */
    TAP_EQ_INT(ERR_peek_error(), 0);
    tls_session_free(s);
    /* A record header announcing a handshake, then noise. */
    s = tls_session_new(ctx);
    const char noise[] = "\x16\x03\x01\x00\x20"
                         "0123456789abcdef0123456789abcdef";
    tls_session_feed(s, noise, sizeof(noise) - 1);
    TAP_EQ_INT(tls_session_read(s, buf, sizeof(buf)), TLS_ERROR);
    TAP_OK(tls_session_pending(s) > 0); /* the alert to send */
    tls_session_free(s);
    /* Half a ClientHello, then the session is dropped: nothing leaks (ASan). */
    s = tls_session_new(ctx);
    client_t c;
    client_init(&c, 0, NULL, 0, 0);
    SSL_do_handshake(c.ssl);
    int n = BIO_read(c.out, buf, 40);
    TAP_OK(n == 40);
    tls_session_feed(s, buf, (size_t)n);
    TAP_EQ_INT(tls_session_read(s, buf, sizeof(buf)), TLS_WANT);
    TAP_OK(!tls_session_established(s));
    TAP_EQ_INT(tls_session_write(s, "x", 1), TLS_ERROR); /* no data before the handshake */
    tls_session_free(s);
    client_free(&c);
    tls_context_unref(ctx);
}

static void test_client_certs(void)
{
    tls_config_t cfg = base_config();
    cfg.ca_certs = certs.ca;
    cfg.verify = TLS_VERIFY_REQUIRED;
    tls_context_t *ctx = context(&cfg);
    long rc = 0;
    /* Without a certificate: refused. TLS 1.3 finishes the client's side before the server
     * checks, so the server's failure is what counts. */
    tls_session_t *s = tls_session_new(ctx);
    client_t c;
    client_init(&c, 0, NULL, 0, 0);
    TAP_OK(!handshake(&c, s, &rc));
    TAP_EQ_INT(rc, TLS_ERROR);
    TAP_OK(strlen(tls_session_error(s)) > 0);
    tls_session_free(s);
    client_free(&c);
    /* With one signed by the CA: accepted, in both versions. */
    for (int v = 0; v < 2; v++) {
        s = tls_session_new(ctx);
        client_init(&c, v ? TLS1_2_VERSION : 0, NULL, 0, 1);
        TAP_OK(handshake(&c, s, &rc));
        tls_session_free(s);
        client_free(&c);
    }
    tls_context_unref(ctx);
    /* Optional: accepted without one. */
    cfg.verify = TLS_VERIFY_OPTIONAL;
    ctx = context(&cfg);
    s = tls_session_new(ctx);
    client_init(&c, 0, NULL, 0, 0);
    TAP_OK(handshake(&c, s, &rc));
    tls_session_free(s);
    client_free(&c);
    tls_context_unref(ctx);
}

static void test_versions(void)
{
    tls_config_t cfg = base_config();
    cfg.min_version = TLS_V1_3;
    tls_context_t *ctx = context(&cfg);
    tls_session_t *s = tls_session_new(ctx);
    client_t c;
    client_init(&c, TLS1_2_VERSION, NULL, 0, 0);
    long rc = 0;
    TAP_OK(!handshake(&c, s, &rc));
    TAP_EQ_INT(rc, TLS_ERROR);
    tls_session_free(s);
    client_free(&c);
    tls_context_unref(ctx);
    /* A client that only speaks TLS 1.1 never gets in (TLS 1.2 minimum). */
    cfg = base_config();
    ctx = context(&cfg);
    s = tls_session_new(ctx);
    client_init(&c, TLS1_1_VERSION, NULL, 0, 0);
    TAP_OK(!handshake(&c, s, &rc));
    tls_session_free(s);
    client_free(&c);
    tls_context_unref(ctx);
}

/* RFC 5746 renegotiation, client-initiated in TLS 1.2: refused; the connection survives or
 * fails, but no second handshake happens. */
static void test_renegotiation(void)
{
    tls_config_t cfg = base_config();
    tls_context_t *ctx = context(&cfg);
    tls_session_t *s = tls_session_new(ctx);
    client_t c;
    client_init(&c, TLS1_2_VERSION, NULL, 0, 0);
    TAP_OK(handshake(&c, s, NULL));
    TAP_EQ_INT(SSL_renegotiate(c.ssl), 1);
    SSL_do_handshake(c.ssl);
    pump(&c, s);
    char buf[64];
    long r = tls_session_read(s, buf, sizeof(buf));
    TAP_OK(r == TLS_WANT || r == TLS_ERROR);
    pump(&c, s);
    /* The client gets the server's no_renegotiation alert: its renegotiation fails. */
    int cr = SSL_do_handshake(c.ssl);
    TAP_EQ_INT(cr, -1);
    TAP_EQ_INT(SSL_get_error(c.ssl, cr), SSL_ERROR_SSL);
    ERR_clear_error();
    tls_session_free(s);
    client_free(&c);
    tls_context_unref(ctx);
}

int main(void)
{
    testcert_create(&certs);
    test_context_errors();
    test_exchange(0, "TLSv1.3");
    test_exchange(TLS1_2_VERSION, "TLSv1.2");
    test_no_alpn();
    test_large();
    test_garbage();
    test_client_certs();
    test_versions();
    test_renegotiation();
    testcert_remove(&certs);
    return tap_done();
}
