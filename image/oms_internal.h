/* Internal pieces shared by image/oms*.c (not for other modules). */
#ifndef APPLIANCE_OMS_INTERNAL_H
#define APPLIANCE_OMS_INTERNAL_H

#include "image.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdarg.h>

/* Writes one formatted sentence into err (when err is not NULL); returns -1
 * so callers can `return oms_err(...)`. */
int oms_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Base64 (RFC 4648, with padding) through libsodium. decode returns a
 * malloc'd buffer (NUL-terminated for convenience) or NULL when the text is
 * not valid base64; encode returns a malloc'd string or NULL. */
unsigned char *oms_b64_decode(const char *text, size_t *len);
char *oms_b64_encode(const unsigned char *bin, size_t len);

/* Lowercase hex of bin into out (2*len+1 bytes). */
void oms_hex(const unsigned char *bin, size_t len, char *out);

/* Canonicalises a relative model path per OMS 6.1.2: collapses "." parts
 * and repeated '/', drops a trailing '/'. Returns a malloc'd string, or
 * NULL when the path is empty, absolute, contains "..", or is only ".". */
char *oms_canonical_relpath(const char *path);

/* True when s (NUL-terminated) is valid UTF-8. */
bool oms_utf8_valid(const char *s);

/* The digest algorithm named by an OMS hash_type ("sha256", "blake2b"), or
 * NULL. The returned EVP_MD is fetched and must be freed by the caller. */
EVP_MD *oms_fetch_md(const char *hash_type);

/* --- crypto (oms_crypto.c) --- */

/* The DSSE pre-authentication encoding of payload with payloadType
 * OMS_PAYLOAD_TYPE: "DSSEv1 SP len(type) SP type SP len(body) SP body".
 * malloc'd; NULL on allocation failure. */
unsigned char *oms_pae(const unsigned char *payload, size_t len, size_t *pae_len);

/* Loads a PEM public key / private key and checks it is EC P-256/384/521. */
EVP_PKEY *oms_load_public_key(const char *path, char *err, size_t errlen);
EVP_PKEY *oms_load_private_key(const char *path, char *err, size_t errlen);

/* The signature hash the OMS reference pairs with the key's curve
 * (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512), or NULL for other keys. */
const EVP_MD *oms_ec_md(const EVP_PKEY *pkey);

/* Short name of the key type ("ecdsa-p256", ...), "unsupported" otherwise. */
const char *oms_key_type(const EVP_PKEY *pkey);

/* The OMS key hint: hex sha256 of the key's SubjectPublicKeyInfo PEM text. */
int oms_key_hint(const EVP_PKEY *pkey, char hint[65]);

/* ECDSA over the PAE of payload; returns malloc'd DER signature. */
int oms_sign_pae(EVP_PKEY *key, const unsigned char *payload, size_t len, unsigned char **sig,
                 size_t *sig_len, char *err, size_t errlen);
/* 1 when sig verifies over the PAE of payload with key, 0 when not. */
int oms_verify_pae(EVP_PKEY *key, const unsigned char *payload, size_t len,
                   const unsigned char *sig, size_t sig_len);

/* Reads every certificate of a PEM file and appends it to sk; returns the
 * number appended, or -1. */
int oms_read_pem_certs(const char *path, STACK_OF(X509) * sk, char *err, size_t errlen);

/* "CN=..., O=..." one-line subject of a certificate into out. */
void oms_cert_subject(X509 *cert, char *out, size_t outlen);

/* --- bundle JSON (oms_bundle.c) --- */

/* Parses only the statement (DSSE payload) into m; frees nothing on error
 * (call oms_manifest_free). */
int oms_statement_parse(const unsigned char *payload, size_t len, oms_manifest *m, char *err,
                        size_t errlen);
void oms_manifest_free(oms_manifest *m);

/* Builds the statement JSON for m (resources already sorted). malloc'd. */
char *oms_statement_build(const oms_manifest *m);

/* Builds the bundle JSON from its parts. cert_ders NULL for the key method. */
char *oms_bundle_build(const char *key_hint, unsigned char *const *cert_ders,
                       const size_t *cert_lens, size_t n_certs, const unsigned char *payload,
                       size_t payload_len, const unsigned char *sig, size_t sig_len);

/* The root digest: hex sha256 over the raw resource digests in order. */
int oms_root_digest(const oms_manifest *m, char hex[65]);

/* Parses "path:start:end" into r (r->name already set). */
int oms_parse_shard_name(oms_resource *r);

/* --- model hashing (oms_hash.c) --- */

/* One computed entry of the model as it is on disk. */
typedef struct oms_entry {
    char *name; /* resource name ("path" or "path:start:end") */
    unsigned char digest[OMS_DIGEST_MAX];
    size_t digest_len;
} oms_entry;

typedef struct oms_hash_req {
    int root_fd;           /* directory fd, or regular file fd */
    const char *file_name; /* resource name when root_fd is a file */
    const char *hash_type; /* "sha256" / "blake2b" */
    uint64_t shard_size;   /* 0 = whole files */
    bool allow_symlinks;
    char **ignore; /* canonical relative paths to exclude */
    size_t n_ignore;
    bool strict_names; /* signing: reject non-UTF-8 names */
    /* Optional filter: only files whose path is in this sorted list. */
    const char *const *only_paths;
    size_t n_only_paths;
    unsigned threads;
    oms_progress_fn progress;
    void *progress_arg;
} oms_hash_req;

/* Enumerates and hashes the model; entries come back sorted by name
 * (strcmp). Free with oms_entries_free. */
int oms_hash_model(const oms_hash_req *req, oms_entry **entries, size_t *n_entries, uint64_t *bytes,
                   char *err, size_t errlen);
void oms_entries_free(oms_entry *entries, size_t n);

/* --- paths (oms_paths.c) --- */

void oms_free_strs(char **v, size_t n);
/* Path of target relative to directory root_abs (a realpath) when it lies
 * inside it, its last component not resolved; malloc'd, else NULL. */
char *oms_relative_inside(const char *root_abs, const char *target);
/* Opens the model (a directory or a regular file); the fd, or -1. */
int oms_open_model(const char *path, char *err, size_t errlen);
/* Last component of path (trailing '/' ignored); malloc'd. */
char *oms_base_name(const char *path);
/* The caller's ignore paths (absolute, or relative to the model root) as
 * canonical model-relative paths; ones outside the model are dropped. */
char **oms_model_relative_ignores(const char *root_abs, const char *const *paths, size_t n,
                                  size_t *n_out);

/* The four paths every OMS signer and verifier excludes at the model root. */
extern const char *const oms_default_ignores[4];

#endif
