/*
 * TLS for the server's connections, with OpenSSL, through memory BIOs: the server reads
 * ciphertext from the socket itself (on the loop's libuv stream), feeds it to a session and
 * takes the plaintext out for the HTTP parser; plaintext responses go in, and the
 * ciphertext to write comes out. No socket, no loop and no Python here, so the component
 * is unit-tested (tests/c/test_tls.c) and fuzzed (fuzz/fuzz_tls_records.c) on its own.
 *
 * A context holds what uvicorn's --ssl-* options configure (ssl.SSLContext's
 * load_cert_chain, verify_mode, load_verify_locations, set_ciphers), TLS 1.2 as the lowest
 * version, and ALPN choosing http/1.1 (RFC 7301) when the client offers it. It is counted:
 * the server holds one reference and each session holds one, so that a context replaced by a
 * certificate reload lives until its last connection closes.
 *
 * A session is one connection's TLS state. It never blocks: reads that need more input say
 * so, and writes always complete, into the output buffer. Renegotiation is refused
 * (SSL_OP_NO_RENEGOTIATION; TLS 1.3 has none). Errors are sticky: after TLS_ERROR the
 * connection is to be closed, once the alert OpenSSL queued (if any) was written.
 *
 * Thread rule: OpenSSL's error queue is per thread; every function here leaves it empty.
 */
#ifndef DB_TLS_TLS_H
#define DB_TLS_TLS_H

#include <stddef.h>

typedef struct tls_context tls_context_t;
typedef struct tls_session tls_session_t;

/* Client certificates (uvicorn's --ssl-cert-reqs, Python's ssl.CERT_* values). */
enum {
    TLS_VERIFY_NONE = 0,     /* not asked for */
    TLS_VERIFY_OPTIONAL = 1, /* asked for; verified when sent */
    TLS_VERIFY_REQUIRED = 2, /* the handshake fails without a valid one */
};

/* Protocol versions, as on the wire (RFC 8446 §4.2.1). */
#define TLS_V1_2 0x0303
#define TLS_V1_3 0x0304

typedef struct {
    const char *certfile; /* PEM: the certificate, then its chain (required) */
    const char *keyfile;  /* PEM private key; NULL: the key is in certfile */
    const char *password; /* for an encrypted key; NULL: none (an encrypted key then fails) */
    const char *ca_certs; /* PEM CA certificates for client certificates; NULL: none */
    int verify;           /* TLS_VERIFY_* */
    const char *ciphers;  /* OpenSSL cipher list for TLS 1.2 (set_ciphers); NULL: default */
    int min_version;      /* TLS_V1_2 or TLS_V1_3; 0: TLS_V1_2 */
    int max_version;      /* 0: the highest OpenSSL supports */
} tls_config_t;

/* A context, or NULL with a message in err[errlen] (a file that cannot be read, a key that
 * does not match the certificate, an empty cipher list, ...). The caller holds one
 * reference. */
tls_context_t *tls_context_new(const tls_config_t *cfg, char *err, size_t errlen);
void tls_context_ref(tls_context_t *ctx);
void tls_context_unref(tls_context_t *ctx); /* frees it with the last reference */

enum {
    TLS_WANT = 0,    /* tls_session_read: no plaintext until more ciphertext arrives */
    TLS_CLOSED = -1, /* the peer's close_notify arrived (RFC 8446 §6.1): end of data */
    TLS_ERROR = -2,  /* fatal: handshake failure, bad record, renegotiation attempt... */
    TLS_NOMEM = -3,  /* out of memory */
};

/* A server session in the accept state (the handshake is driven by tls_session_read);
 * NULL when out of memory. Holds a reference to ctx. */
tls_session_t *tls_session_new(tls_context_t *ctx);
void tls_session_free(tls_session_t *s);

/* Ciphertext received from the peer. Returns 0, or TLS_NOMEM. */
int tls_session_feed(tls_session_t *s, const char *data, size_t len);
/* Decrypts up to cap bytes of plaintext into out, driving the handshake first: the number
 * of bytes (> 0), TLS_WANT, TLS_CLOSED or TLS_ERROR. Call until it returns <= 0 (or until
 * out is full) after each feed: plaintext may be buffered inside the session. Output to send
 * (handshake messages, session tickets, alerts) may be queued by any call. */
long tls_session_read(tls_session_t *s, char *out, size_t cap);
/* Encrypts len bytes of plaintext into the output, whole. Returns 0 or TLS_ERROR (the
 * handshake is not finished, or the session failed). */
int tls_session_write(tls_session_t *s, const char *data, size_t len);
/* Queues close_notify (RFC 8446 §6.1) when the handshake finished and the session did not
 * fail; the connection's sending side may be closed after it is written. */
void tls_session_shutdown(tls_session_t *s);

/* Ciphertext waiting to be sent, and taking up to cap bytes of it into out (returns how
 * many). */
size_t tls_session_pending(const tls_session_t *s);
/* Input the session holds that tls_session_read has not returned yet: plaintext of a record
 * already decrypted, or ciphertext fed but not processed (a whole record, or part of one). */
int tls_session_has_input(const tls_session_t *s);
size_t tls_session_take(tls_session_t *s, char *out, size_t cap);

/* The handshake finished. */
int tls_session_established(const tls_session_t *s);
/* The ALPN protocol chosen ("http/1.1"), or NULL (none offered that we speak). */
const char *tls_session_alpn(const tls_session_t *s, size_t *len);
/* The protocol version in use ("TLSv1.3"), "unknown" before the handshake. */
const char *tls_session_version(const tls_session_t *s);
/* Why the session failed (OpenSSL's reason), or "" when it did not. */
const char *tls_session_error(const tls_session_t *s);

#endif
