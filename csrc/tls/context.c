/*
 * TLS contexts: one SSL_CTX configured as uvicorn's create_ssl_context configures Python's
 * ssl.SSLContext(PROTOCOL_TLS_SERVER) (load_cert_chain, verify_mode, load_verify_locations,
 * set_ciphers), plus what the server needs: TLS 1.2 at least, no renegotiation, no
 * compression (CRIME), ALPN choosing http/1.1, and read buffers released while a connection
 * is idle.
 *
 * Ownership: the context is counted (tls.h); the SSL_CTX is freed with the last reference.
 * Each SSL made from it holds OpenSSL's own reference to the SSL_CTX as well.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls/tls_internal.h"

/* RFC 7301 §3.1: the protocol list as length-prefixed names. */
static const unsigned char alpn_http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

/* RFC 7301 §3.2: the server picks http/1.1 when the client offers it. Otherwise no protocol
 * is chosen and the handshake goes on without ALPN (SSL_TLSEXT_ERR_NOACK) rather than
 * failing with no_application_protocol: the client may still speak HTTP/1.1. */
static int on_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *chosen = NULL;
    if (SSL_select_next_proto(&chosen, outlen, alpn_http11, sizeof(alpn_http11), in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* OpenSSL asks for the key's password through this callback (PEM_read_bio_PrivateKey).
 * Without one given it answers "none" instead of OpenSSL's default, which would prompt on
 * the terminal: a server (and each of its workers) must not block on stdin. */
static int on_password(char *buf, int size, int rwflag, void *userdata)
{
    (void)rwflag;
    const char *password = userdata;
    if (password == NULL)
        return 0;
    size_t n = strlen(password);
    if (n > (size_t)size)
        return 0;
    memcpy(buf, password, n);
    return (int)n;
}

/* Writes "<what>: <OpenSSL's reason>" into err and empties the error queue. */
static void fail(char *err, size_t errlen, const char *what, const char *path)
{
    unsigned long e = ERR_peek_last_error();
    char reason[256] = "unknown error";
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    if (errlen > 0)
        snprintf(err, errlen, "%s%s%s: %s", what, path ? " " : "", path ? path : "", reason);
    ERR_clear_error();
}

static int set_versions(SSL_CTX *ctx, const tls_config_t *cfg, char *err, size_t errlen)
{
    int lo = cfg->min_version ? cfg->min_version : TLS_V1_2;
    int hi = cfg->max_version;
    if ((lo != TLS_V1_2 && lo != TLS_V1_3) || (hi != 0 && hi != TLS_V1_2 && hi != TLS_V1_3) ||
        (hi != 0 && hi < lo)) {
        snprintf(err, errlen, "unsupported TLS version range (TLS 1.2 and 1.3 only)");
        return -1;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, lo) || !SSL_CTX_set_max_proto_version(ctx, hi)) {
        fail(err, errlen, "cannot set the TLS versions", NULL);
        return -1;
    }
    return 0;
}

static int load_identity(SSL_CTX *ctx, const tls_config_t *cfg, char *err, size_t errlen)
{
    const char *keyfile = cfg->keyfile ? cfg->keyfile : cfg->certfile;
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->certfile) != 1) {
        fail(err, errlen, "cannot load the certificate chain from", cfg->certfile);
        return -1;
    }
    SSL_CTX_set_default_passwd_cb(ctx, on_password);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)cfg->password);
    int ok = SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) == 1;
    /* The password is the caller's: no pointer to it is kept past this call. */
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    if (!ok && ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
        fail(err, errlen, "the private key does not match the certificate: key", keyfile);
        return -1;
    }
    if (!ok) {
        fail(err, errlen,
             cfg->password ? "cannot load the private key (or wrong password) from"
                           : "cannot load the private key (if it is encrypted, give its "
                             "password) from",
             keyfile);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        fail(err, errlen, "the private key does not match the certificate of", cfg->certfile);
        return -1;
    }
    return 0;
}

static int load_verify(SSL_CTX *ctx, const tls_config_t *cfg, char *err, size_t errlen)
{
    int mode;
    switch (cfg->verify) {
    case TLS_VERIFY_NONE:
        mode = SSL_VERIFY_NONE;
        break;
    case TLS_VERIFY_OPTIONAL:
        mode = SSL_VERIFY_PEER;
        break;
    case TLS_VERIFY_REQUIRED:
        mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        break;
    default:
        snprintf(err, errlen, "cert_reqs must be 0 (none), 1 (optional) or 2 (required)");
        return -1;
    }
    SSL_CTX_set_verify(ctx, mode, NULL);
    if (cfg->ca_certs == NULL)
        return 0;
    if (SSL_CTX_load_verify_locations(ctx, cfg->ca_certs, NULL) != 1) {
        fail(err, errlen, "cannot load the CA certificates from", cfg->ca_certs);
        return -1;
    }
    /* The CertificateRequest names these CAs (RFC 8446 §4.2.4), so that a client holding
     * several certificates picks one they signed. */
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_certs);
    if (names != NULL)
        SSL_CTX_set_client_CA_list(ctx, names); /* takes ownership */
    ERR_clear_error();
    return 0;
}

tls_context_t *tls_context_new(const tls_config_t *cfg, char *err, size_t errlen)
{
    if (errlen > 0)
        err[0] = '\0';
    if (cfg->certfile == NULL) {
        snprintf(err, errlen, "a certificate file is required");
        return NULL;
    }
    tls_context_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->refs = 1;
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (t->ctx == NULL) {
        fail(err, errlen, "cannot create the TLS context", NULL);
        free(t);
        return NULL;
    }
    SSL_CTX *ctx = t->ctx;
    /* No compression (CRIME), the server's cipher order, and no renegotiation in TLS 1.2
     * (RFC 5746's secure renegotiation is still a way to make the server work per request;
     * TLS 1.3 has none). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION);
    /* An idle keep-alive connection gives its record buffers back (about 34 KiB). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Sessions resumed from the cache must be tied to this server's verification settings
     * (OpenSSL refuses to resume with client verification on without an id context). */
    static const unsigned char sid[] = "data-bridge";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn_select, NULL);
    if (set_versions(ctx, cfg, err, errlen) < 0 || load_identity(ctx, cfg, err, errlen) < 0 ||
        load_verify(ctx, cfg, err, errlen) < 0)
        goto error;
    if (cfg->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, cfg->ciphers) != 1) {
        fail(err, errlen, "no cipher can be selected from", cfg->ciphers);
        goto error;
    }
    ERR_clear_error(); /* what a successful load may leave (the chain file's end) */
    return t;
error:
    tls_context_unref(t);
    return NULL;
}

void tls_context_ref(tls_context_t *t)
{
    __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
}

void tls_context_unref(tls_context_t *t)
{
    if (t == NULL || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}
