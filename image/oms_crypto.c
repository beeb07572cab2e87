/* OMS cryptography with OpenSSL: EC keys, DSSE PAE signatures, certificates. */
#include "oms_internal.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned char *oms_pae(const unsigned char *payload, size_t len, size_t *pae_len)
{
    char head[128];
    int h = snprintf(head, sizeof head, "DSSEv1 %zu %s %zu ", strlen(OMS_PAYLOAD_TYPE),
                     OMS_PAYLOAD_TYPE, len);
    unsigned char *out;
    if (h < 0 || (size_t)h >= sizeof head)
        return NULL;
    out = malloc((size_t)h + len + 1);
    if (!out)
        return NULL;
    memcpy(out, head, (size_t)h);
    if (len)
        memcpy(out + h, payload, len);
    *pae_len = (size_t)h + len;
    return out;
}

/* The curve name of an EC key ("prime256v1", ...) into buf, or "" when the
 * key is not EC. */
static void ec_group_name(const EVP_PKEY *pkey, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, buf, cap, &n) != 1)
        buf[0] = 0;
}

const EVP_MD *oms_ec_md(const EVP_PKEY *pkey)
{
    char g[64];
    ec_group_name(pkey, g, sizeof g);
    if (strcmp(g, "prime256v1") == 0 || strcmp(g, "P-256") == 0)
        return EVP_sha256();
    if (strcmp(g, "secp384r1") == 0 || strcmp(g, "P-384") == 0)
        return EVP_sha384();
    if (strcmp(g, "secp521r1") == 0 || strcmp(g, "P-521") == 0)
        return EVP_sha512();
    return NULL;
}

const char *oms_key_type(const EVP_PKEY *pkey)
{
    const EVP_MD *md = oms_ec_md(pkey);
    if (md == EVP_sha256())
        return "ecdsa-p256";
    if (md == EVP_sha384())
        return "ecdsa-p384";
    if (md == EVP_sha512())
        return "ecdsa-p521";
    return "unsupported";
}

static EVP_PKEY *check_supported(EVP_PKEY *pkey, const char *path, char *err, size_t errlen)
{
    if (!oms_ec_md(pkey)) {
        oms_err(err, errlen, "key %s is not an EC P-256, P-384 or P-521 key", path);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

EVP_PKEY *oms_load_public_key(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *pkey;
    if (!f) {
        oms_err(err, errlen, "cannot open public key %s", path);
        return NULL;
    }
    pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    ERR_clear_error();
    if (!pkey) {
        oms_err(err, errlen, "%s holds no PEM public key", path);
        return NULL;
    }
    return check_supported(pkey, path, err, errlen);
}

/* Refuses to prompt for a passphrase: encrypted keys are reported instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    *(int *)u = 1;
    return -1;
}

EVP_PKEY *oms_load_private_key(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *pkey;
    int wanted_pass = 0;
    if (!f) {
        oms_err(err, errlen, "cannot open private key %s", path);
        return NULL;
    }
    pkey = PEM_read_PrivateKey(f, NULL, no_passphrase, &wanted_pass);
    fclose(f);
    ERR_clear_error();
    if (!pkey) {
        if (wanted_pass)
            oms_err(err, errlen, "private key %s is encrypted; give an unencrypted PEM key", path);
        else
            oms_err(err, errlen, "%s holds no PEM private key", path);
        return NULL;
    }
    return check_supported(pkey, path, err, errlen);
}

int oms_key_hint(const EVP_PKEY *pkey, char hint[65])
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long n;
    unsigned char md[32];
    unsigned int mdlen = 0;
    int rc = -1;
    if (!bio)
        return -1;
    if (PEM_write_bio_PUBKEY(bio, (EVP_PKEY *)pkey) == 1 && (n = BIO_get_mem_data(bio, &pem)) > 0 &&
        EVP_Digest(pem, (size_t)n, md, &mdlen, EVP_sha256(), NULL) == 1) {
        oms_hex(md, 32, hint);
        rc = 0;
    }
    BIO_free(bio);
    return rc;
}

int oms_sign_pae(EVP_PKEY *key, const unsigned char *payload, size_t len, unsigned char **sig,
                 size_t *sig_len, char *err, size_t errlen)
{
    size_t pae_len = 0, slen = 0;
    unsigned char *pae = oms_pae(payload, len, &pae_len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *s = NULL;
    int rc = -1;
    if (!pae || !ctx)
        goto out;
    if (EVP_DigestSignInit(ctx, NULL, oms_ec_md(key), NULL, key) != 1 ||
        EVP_DigestSign(ctx, NULL, &slen, pae, pae_len) != 1 || !(s = malloc(slen)) ||
        EVP_DigestSign(ctx, s, &slen, pae, pae_len) != 1)
        goto out;
    *sig = s;
    *sig_len = slen;
    s = NULL;
    rc = 0;
out:
    if (rc != 0)
        oms_err(err, errlen, "signing the DSSE envelope failed");
    ERR_clear_error();
    free(s);
    free(pae);
    EVP_MD_CTX_free(ctx);
    return rc;
}

int oms_verify_pae(EVP_PKEY *key, const unsigned char *payload, size_t len,
                   const unsigned char *sig, size_t sig_len)
{
    size_t pae_len = 0;
    unsigned char *pae = oms_pae(payload, len, &pae_len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const EVP_MD *md = oms_ec_md(key);
    int ok = 0;
    if (pae && ctx && md && EVP_DigestVerifyInit(ctx, NULL, md, NULL, key) == 1)
        ok = EVP_DigestVerify(ctx, sig, sig_len, pae, pae_len) == 1;
    ERR_clear_error();
    free(pae);
    EVP_MD_CTX_free(ctx);
    return ok;
}

int oms_read_pem_certs(const char *path, STACK_OF(X509) * sk, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    X509 *c;
    int n = 0;
    if (!f)
        return oms_err(err, errlen, "cannot open certificate file %s", path);
    while ((c = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(sk, c)) {
            X509_free(c);
            fclose(f);
            return oms_err(err, errlen, "out of memory reading %s", path);
        }
        n++;
    }
    fclose(f);
    ERR_clear_error();
    if (n == 0)
        return oms_err(err, errlen, "%s holds no PEM certificate", path);
    return n;
}

void oms_cert_subject(X509 *cert, char *out, size_t outlen)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n;
    snprintf(out, outlen, "(unknown subject)");
    if (!bio)
        return;
    if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0,
                           XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB) >= 0 &&
        (n = BIO_get_mem_data(bio, &data)) > 0)
        snprintf(out, outlen, "%.*s", (int)n, data);
    BIO_free(bio);
}
