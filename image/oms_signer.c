/* Who signed a bundle: the key method (hint, rawBytes, signature) and the
 * certificate method (chain to trusted CAs, validity, usage, signature). */
#include "oms_internal.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ------------------------------------------------------------ signatures */

/* 1 when any DSSE signature of b verifies with key. */
static int any_signature_verifies(const oms_bundle *b, EVP_PKEY *key)
{
    for (size_t i = 0; i < b->n_sigs; i++)
        if (oms_verify_pae(key, b->payload, b->payload_len, b->sigs[i], b->sig_lens[i]))
            return 1;
    return 0;
}

/* Parses publicKey.rawBytes: DER SubjectPublicKeyInfo, or (as historical
 * signers wrote it) the PEM text. */
static EVP_PKEY *raw_key(const oms_bundle *b)
{
    const unsigned char *p = b->key_raw;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)b->key_raw_len);
    if (!k) {
        BIO *bio = BIO_new_mem_buf(b->key_raw, (int)b->key_raw_len);
        if (bio)
            k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    ERR_clear_error();
    return k;
}

static int verify_key_method(const oms_bundle *b, const oms_trust *t, char *signer, size_t slen,
                             char *err, size_t errlen)
{
    EVP_PKEY *key;
    char hint[65];
    int rc = -1;
    if (!t->public_key_pem)
        return oms_err(err, errlen, "the key method needs a trusted public key");
    if (!(key = oms_load_public_key(t->public_key_pem, err, errlen)))
        return -1;
    if (oms_key_hint(key, hint) != 0) {
        oms_err(err, errlen, "cannot compute the fingerprint of %s", t->public_key_pem);
        goto out;
    }
    if (b->key_hint && strcasecmp(b->key_hint, hint) != 0) {
        oms_err(err, errlen,
                "wrong key: the bundle was signed by key sha256:%s, the given public key is "
                "sha256:%s",
                b->key_hint, hint);
        goto out;
    }
    if (b->key_raw) {
        EVP_PKEY *rk = raw_key(b);
        int same = rk && EVP_PKEY_eq(rk, key) == 1;
        EVP_PKEY_free(rk);
        if (!same) {
            oms_err(err, errlen,
                    "wrong key: the public key in the bundle is not the given public key "
                    "(sha256:%s)",
                    hint);
            goto out;
        }
    }
    if (!any_signature_verifies(b, key)) {
        oms_err(err, errlen, "bad signature: the DSSE signature does not verify with key sha256:%s",
                hint);
        goto out;
    }
    snprintf(signer, slen, "key %s sha256:%s", oms_key_type(key), hint);
    rc = 0;
out:
    ERR_clear_error();
    EVP_PKEY_free(key);
    return rc;
}

static void cert_fingerprint(X509 *c, char hex[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    hex[0] = 0;
    if (X509_digest(c, EVP_sha256(), md, &n) == 1 && n == 32)
        oms_hex(md, 32, hex);
}

/* Formats an ASN1_TIME as "YYYY-MM-DD HH:MM:SS UTC". */
static void time_text(const ASN1_TIME *t, char *out, size_t cap)
{
    struct tm tm;
    snprintf(out, cap, "(unknown time)");
    if (t && ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* The leaf must be allowed to sign: key usage (when present) must include
 * digitalSignature, extended key usage (when present) must include code
 * signing. OpenSSL 3.0 has no code-signing purpose, so it is checked here. */
static int check_leaf_usage(X509 *leaf, const char *subj, char *err, size_t errlen)
{
    uint32_t ku = X509_get_key_usage(leaf);
    uint32_t xku = X509_get_extended_key_usage(leaf);
    if (ku != UINT32_MAX && !(ku & KU_DIGITAL_SIGNATURE))
        return oms_err(err, errlen,
                       "certificate %s may not sign: its key usage lacks digitalSignature", subj);
    if (xku != UINT32_MAX && !(xku & (XKU_CODE_SIGN | XKU_ANYEKU)))
        return oms_err(err, errlen,
                       "certificate %s may not sign code: its extended key usage lacks codeSigning",
                       subj);
    return 0;
}

static int chain_error(X509_STORE_CTX *ctx, char *err, size_t errlen)
{
    int e = X509_STORE_CTX_get_error(ctx);
    X509 *bad = X509_STORE_CTX_get_current_cert(ctx);
    char subj[256] = "(unknown)", when[64];
    if (bad)
        oms_cert_subject(bad, subj, sizeof subj);
    if (e == X509_V_ERR_CERT_HAS_EXPIRED && bad) {
        time_text(X509_get0_notAfter(bad), when, sizeof when);
        return oms_err(err, errlen, "certificate expired: %s was valid until %s", subj, when);
    }
    if (e == X509_V_ERR_CERT_NOT_YET_VALID && bad) {
        time_text(X509_get0_notBefore(bad), when, sizeof when);
        return oms_err(err, errlen, "certificate not yet valid: %s is valid from %s", subj, when);
    }
    if (e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
        e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT || e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
        e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)
        return oms_err(err, errlen, "untrusted certificate: %s does not chain to a trusted CA (%s)",
                       subj, X509_verify_cert_error_string(e));
    return oms_err(err, errlen, "certificate chain rejected at %s: %s", subj,
                   X509_verify_cert_error_string(e));
}

/* Decodes the bundle's DER certificates: leaf into *leaf, the rest into
 * untrusted. */
static int decode_chain(const oms_bundle *b, X509 **leaf, STACK_OF(X509) * untrusted, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i < b->n_certs; i++) {
        const unsigned char *p = b->certs[i];
        X509 *c = d2i_X509(NULL, &p, (long)b->cert_lens[i]);
        if (!c || p != b->certs[i] + b->cert_lens[i]) {
            X509_free(c);
            ERR_clear_error();
            return oms_err(err, errlen,
                           "malformed bundle: x509CertificateChain.certificates[%zu] is not a DER "
                           "certificate",
                           i);
        }
        if (i == 0) {
            *leaf = c;
        } else if (!sk_X509_push(untrusted, c)) {
            X509_free(c);
            return oms_err(err, errlen, "out of memory");
        }
    }
    return 0;
}

static int build_store(const oms_trust *t, X509_STORE **out, char *err, size_t errlen)
{
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509) *cas = sk_X509_new_null();
    int rc = -1;
    if (!store || !cas) {
        oms_err(err, errlen, "out of memory");
        goto out;
    }
    if (t->n_ca_paths == 0) {
        oms_err(err, errlen, "the certificate method needs at least one trusted CA (--cert-chain)");
        goto out;
    }
    for (size_t i = 0; i < t->n_ca_paths; i++)
        if (oms_read_pem_certs(t->ca_paths[i], cas, err, errlen) < 0)
            goto out;
    for (int i = 0; i < sk_X509_num(cas); i++)
        if (X509_STORE_add_cert(store, sk_X509_value(cas, i)) != 1) {
            oms_err(err, errlen, "cannot add a trusted CA certificate");
            goto out;
        }
    /* Every certificate the user names is an anchor, root or intermediate. */
    X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
    *out = store;
    store = NULL;
    rc = 0;
out:
    ERR_clear_error();
    X509_STORE_free(store);
    sk_X509_pop_free(cas, X509_free);
    return rc;
}

static int verify_cert_method(const oms_bundle *b, const oms_trust *t, char *signer, size_t slen,
                              char *err, size_t errlen)
{
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509 *leaf = NULL;
    EVP_PKEY *key;
    char subj[256], fp[65];
    int rc = -1;
    if (!ctx || !untrusted) {
        oms_err(err, errlen, "out of memory");
        goto out;
    }
    if (decode_chain(b, &leaf, untrusted, err, errlen) != 0 ||
        build_store(t, &store, err, errlen) != 0)
        goto out;
    oms_cert_subject(leaf, subj, sizeof subj);
    if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
        oms_err(err, errlen, "cannot set up certificate verification");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        chain_error(ctx, err, errlen);
        goto out;
    }
    if (check_leaf_usage(leaf, subj, err, errlen) != 0)
        goto out;
    key = X509_get0_pubkey(leaf);
    if (!key || !oms_ec_md(key)) {
        oms_err(err, errlen, "certificate %s does not hold an EC P-256, P-384 or P-521 key", subj);
        goto out;
    }
    cert_fingerprint(leaf, fp);
    if (!any_signature_verifies(b, key)) {
        oms_err(err, errlen,
                "bad signature: the DSSE signature does not verify with certificate %s", subj);
        goto out;
    }
    snprintf(signer, slen, "certificate %s sha256:%s", subj, fp);
    rc = 0;
out:
    ERR_clear_error();
    X509_free(leaf);
    sk_X509_pop_free(untrusted, X509_free);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return rc;
}

int oms_bundle_verify(const oms_bundle *b, oms_method expected, const oms_trust *trust,
                      char *signer, size_t signer_len, char *err, size_t errlen)
{
    if (b->method == OMS_METHOD_SIGSTORE)
        return oms_err(err, errlen,
                       "the bundle uses the sigstore method (Fulcio certificate, Rekor log), which "
                       "cannot be verified offline; use the key or certificate method");
    if (b->method != expected)
        return oms_err(err, errlen, "the bundle uses the %s method, not the %s method given",
                       oms_method_name(b->method), oms_method_name(expected));
    if (expected == OMS_METHOD_KEY)
        return verify_key_method(b, trust, signer, signer_len, err, errlen);
    return verify_cert_method(b, trust, signer, signer_len, err, errlen);
}

int oms_bundle_describe_signer(const oms_bundle *b, char *out, size_t outlen)
{
    if (b->method == OMS_METHOD_KEY) {
        EVP_PKEY *k = b->key_raw ? raw_key(b) : NULL;
        char hint[65] = "";
        if (k && oms_key_hint(k, hint) != 0)
            hint[0] = 0;
        snprintf(out, outlen, "key %s sha256:%s", k ? oms_key_type(k) : "(type not recorded)",
                 b->key_hint ? b->key_hint : hint);
        EVP_PKEY_free(k);
        return 0;
    }
    if (b->method == OMS_METHOD_CERTIFICATE) {
        const unsigned char *p = b->certs[0];
        X509 *c = d2i_X509(NULL, &p, (long)b->cert_lens[0]);
        char subj[256], from[64], until[64], fp[65];
        ERR_clear_error();
        if (!c) {
            snprintf(out, outlen, "certificate (undecodable)");
            return -1;
        }
        oms_cert_subject(c, subj, sizeof subj);
        time_text(X509_get0_notBefore(c), from, sizeof from);
        time_text(X509_get0_notAfter(c), until, sizeof until);
        cert_fingerprint(c, fp);
        snprintf(out, outlen, "certificate %s sha256:%s (valid %s to %s, %zu in chain)", subj, fp,
                 from, until, b->n_certs);
        X509_free(c);
        return 0;
    }
    snprintf(out, outlen, "sigstore (keyless; not verifiable offline)");
    return 0;
}
