/*
 * Layout shared by the files of csrc/tls/ only.
 */
#ifndef DB_TLS_INTERNAL_H
#define DB_TLS_INTERNAL_H

#include <openssl/ssl.h>

#include "tls/tls.h"

struct tls_context {
    SSL_CTX *ctx;
    int refs; /* atomic: servers on different threads may share a context */
};

#endif
