/*
 * Test certificates made at test time with OpenSSL (no files checked in): a CA, a server
 * certificate for localhost/127.0.0.1 and a client certificate, both signed by the CA, all
 * with P-256 keys, written as PEM files into a fresh temporary directory. The server key is
 * also written encrypted (password "secret"). Used by tests/c/test_tls.c and the TLS fuzz
 * target. Any failure aborts: a test cannot run without its certificates.
 */
#ifndef DB_TESTS_TLS_TESTCERT_H
#define DB_TESTS_TLS_TESTCERT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

typedef struct {
    char dir[64];
    char ca[96], cert[96], key[96], key_enc[96], client_cert[96], client_key[96];
    char other_key[96]; /* a key that matches no certificate */
} testcert_t;

static void testcert_die(const char *what)
{
    fprintf(stderr, "testcert: %s failed\n", what);
    abort();
}

static EVP_PKEY *testcert_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (k == NULL)
        testcert_die("EVP_EC_gen");
    return k;
}

static void testcert_ext(X509 *crt, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, crt, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (e == NULL || !X509_add_ext(crt, e, -1))
        testcert_die("X509_add_ext");
    X509_EXTENSION_free(e);
}

/* A certificate for key named cn, signed by issuer_key (self-signed when issuer is NULL). */
static X509 *testcert_make(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                           long serial, const char *san)
{
    X509 *crt = X509_new();
    if (crt == NULL)
        testcert_die("X509_new");
    X509_set_version(crt, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(crt), serial);
    X509_gmtime_adj(X509_getm_notBefore(crt), -3600);
    X509_gmtime_adj(X509_getm_notAfter(crt), 3600L * 24);
    X509_set_pubkey(crt, key);
    X509_NAME *name = X509_get_subject_name(crt);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(crt, issuer ? X509_get_subject_name(issuer) : name);
    X509 *iss = issuer ? issuer : crt;
    if (issuer == NULL) {
        testcert_ext(crt, iss, NID_basic_constraints, "critical,CA:TRUE");
        testcert_ext(crt, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        testcert_ext(crt, iss, NID_basic_constraints, "critical,CA:FALSE");
    }
    if (san != NULL)
        testcert_ext(crt, iss, NID_subject_alt_name, san);
    if (!X509_sign(crt, issuer_key, EVP_sha256()))
        testcert_die("X509_sign");
    return crt;
}

static void testcert_write(const char *path, X509 *crt, EVP_PKEY *key, const char *password)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        testcert_die(path);
    int ok = 1;
    if (crt != NULL)
        ok = PEM_write_X509(f, crt);
    if (ok && key != NULL)
        ok = password
                 ? PEM_write_PrivateKey(f, key, EVP_aes_128_cbc(), NULL, 0, NULL, (void *)password)
                 : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (fclose(f) != 0 || !ok)
        testcert_die(path);
}

static void testcert_create(testcert_t *t)
{
    strcpy(t->dir, "/tmp/db-tls-test-XXXXXX");
    if (mkdtemp(t->dir) == NULL)
        testcert_die("mkdtemp");
#define TC_PATH(field, name) snprintf(t->field, sizeof(t->field), "%s/%s", t->dir, name)
    TC_PATH(ca, "ca.pem");
    TC_PATH(cert, "cert.pem");
    TC_PATH(key, "key.pem");
    TC_PATH(key_enc, "key-enc.pem");
    TC_PATH(client_cert, "client.pem");
    TC_PATH(client_key, "client-key.pem");
    TC_PATH(other_key, "other-key.pem");
#undef TC_PATH
    EVP_PKEY *ca_key = testcert_key(), *key = testcert_key(), *ckey = testcert_key(),
             *other = testcert_key();
    X509 *ca = testcert_make(ca_key, "data-bridge test CA", NULL, ca_key, 1, NULL);
    X509 *crt = testcert_make(key, "localhost", ca, ca_key, 2, "DNS:localhost,IP:127.0.0.1");
    X509 *ccrt = testcert_make(ckey, "client", ca, ca_key, 3, NULL);
    testcert_write(t->ca, ca, NULL, NULL);
    testcert_write(t->cert, crt, NULL, NULL);
    testcert_write(t->key, NULL, key, NULL);
    testcert_write(t->key_enc, NULL, key, "secret");
    testcert_write(t->client_cert, ccrt, NULL, NULL);
    testcert_write(t->client_key, NULL, ckey, NULL);
    testcert_write(t->other_key, NULL, other, NULL);
    X509_free(ca);
    X509_free(crt);
    X509_free(ccrt);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ckey);
    EVP_PKEY_free(other);
}

static void testcert_remove(testcert_t *t)
{
    const char *files[] = {t->ca,          t->cert,       t->key,      t->key_enc,
                           t->client_cert, t->client_key, t->other_key};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(t->dir);
}

#endif
