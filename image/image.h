/* image: key files, trust and model signing (OMS bundles).
 *
 * Errors: functions return 0 on success and -1 on failure with one sentence
 * in the caller's err buffer. Secret key bytes handed out by this module are
 * the caller's to wipe with sodium_memzero. */
#ifndef IMAGE_IMAGE_H
#define IMAGE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Key files ----------------------------------------------------------
 * Every key is a pair of PEM files that `openssl pkey` reads:
 *   DIR/KIND.key.pem  secret, PKCS#8, mode 0600, written atomically
 *   DIR/KIND.pub.pem  SubjectPublicKeyInfo
 * The fingerprint of a key is the lowercase hex SHA-256 of the DER
 * SubjectPublicKeyInfo (`openssl pkey -pubin -in KIND.pub.pem -outform DER |
 * sha256sum` prints the same). */

typedef enum {
    KEY_DEVICE,    /* Ed25519: signs attestations and audit checkpoints */
    KEY_REVIEWER,  /* X25519: sealed audit content is encrypted to it */
    KEY_PUBLISHER, /* EC P-256: signs models (OMS bundles) */
} key_kind;

#define KEY_FINGERPRINT_HEX 65 /* 64 hex digits and NUL */

/* "device", "reviewer", "publisher"; NULL for an unknown kind. */
const char *key_kind_name(key_kind kind);
/* Parses a kind name; returns 0 and sets *kind, or -1. */
int key_kind_parse(const char *name, key_kind *kind);

/* Generates a fresh pair of the given kind into dir (which must exist).
 * Refuses to replace existing files unless force is set. On success writes
 * the fingerprint and the two paths (each buffer at least 4096 bytes); any
 * of the three may be NULL. */
int keys_generate(key_kind kind, const char *dir, int force, char fingerprint[KEY_FINGERPRINT_HEX],
                  char *secret_path, char *public_path, char *err, size_t errlen);

/* Fingerprint of the public key in a PEM file (a public key, or a private
 * key whose public half is used). */
int keys_fingerprint_file(const char *pem_path, char fingerprint[KEY_FINGERPRINT_HEX], char *err,
                          size_t errlen);

/* Reads a public key of the given kind from src_pem (a public key PEM, or a
 * private key whose public half is taken) and writes it as SPKI PEM to
 * dst_pem (atomically, mode 0644); returns its fingerprint. Refuses a key of
 * another kind. */
int keys_install_public(key_kind kind, const char *src_pem, const char *dst_pem,
                        char fingerprint[KEY_FINGERPRINT_HEX], char *err, size_t errlen);

/* Loads an Ed25519 secret key as libsodium's 64-byte form (seed || public).
 * Refuses files readable by group or others. */
int keys_load_ed25519_secret(const char *pem_path, uint8_t sk[64], char *err, size_t errlen);
int keys_load_ed25519_public(const char *pem_path, uint8_t pk[32], char *err, size_t errlen);
/* X25519 (reviewer) keys, raw 32 bytes. */
int keys_load_x25519_secret(const char *pem_path, uint8_t sk[32], char *err, size_t errlen);
int keys_load_x25519_public(const char *pem_path, uint8_t pk[32], char *err, size_t errlen);

/* ======================================================================
 * OpenSSF Model Signing (OMS v1.0) bundles: image/oms*.c
 *
 * A bundle is a Sigstore bundle v0.3 JSON holding a DSSE envelope whose
 * payload is an in-toto Statement v1 (predicateType
 * https://model_signing/signature/v1.0) listing every model file (or file
 * shard) with its digest. Everything here works offline: the `key` and
 * `certificate` methods are supported, `sigstore` bundles are rejected.
 *
 * Verification is three steps, each usable alone (the model loader hashes
 * while copying into a memfd and only needs steps 1 and 2):
 *   1. oms_bundle_parse:       JSON -> oms_bundle (structure only, no crypto)
 *   2. oms_bundle_verify:      signature + certificate chain against trust
 *   3. oms_manifest_check_at:  hash the model under an open fd and compare
 * oms_verify_model does all three for a path.
 * ====================================================================== */

#define OMS_PREDICATE_TYPE "https://model_signing/signature/v1.0"
#define OMS_PAYLOAD_TYPE   "application/vnd.in-toto+json"
#define OMS_STATEMENT_TYPE "https://in-toto.io/Statement/v1"
#define OMS_BUNDLE_MEDIA   "application/vnd.dev.sigstore.bundle.v0.3+json"
#define OMS_DIGEST_MAX     64  /* bytes: the largest supported digest (blake2b) */
#define OMS_SIGNER_MAX     512 /* bytes of the signer description */

typedef enum oms_method { OMS_METHOD_KEY, OMS_METHOD_CERTIFICATE, OMS_METHOD_SIGSTORE } oms_method;

/* One entry of predicate.resources: a whole file, or the byte range
 * [start, end) of `path` when the serialization is "shards". */
typedef struct oms_resource {
    char *name;     /* canonical resource name as signed */
    char *path;     /* file path (name without a shard suffix) */
    uint64_t start; /* shard start (0 for whole files) */
    uint64_t end;   /* shard end, exclusive (0 for whole files) */
    unsigned char digest[OMS_DIGEST_MAX];
    size_t digest_len;
} oms_resource;

/* The signed manifest: the decoded in-toto statement. */
typedef struct oms_manifest {
    char *model_name;     /* subject[0].name: informational only */
    char root_digest[65]; /* subject[0].digest.sha256, lowercase hex */
    char hash_type[16];   /* "sha256" or "blake2b" */
    bool shards;          /* serialization.method == "shards" */
    uint64_t shard_size;  /* when shards */
    bool allow_symlinks;  /* serialization.allow_symlinks */
    char **ignore_paths;  /* serialization.ignore_paths (may be 0 entries) */
    size_t n_ignore_paths;
    oms_resource *resources; /* in bundle order (sorted by name) */
    size_t n_resources;
} oms_manifest;

/* A parsed bundle. Nothing in it is trusted until oms_bundle_verify passed. */
typedef struct oms_bundle {
    oms_method method;      /* from the verificationMaterial present */
    char *key_hint;         /* publicKey.hint, or NULL */
    unsigned char *key_raw; /* publicKey.rawBytes decoded, or NULL */
    size_t key_raw_len;
    unsigned char **certs; /* x509CertificateChain DER, leaf first */
    size_t *cert_lens;
    size_t n_certs;
    unsigned char *payload; /* DSSE payload bytes (the statement JSON) */
    size_t payload_len;
    unsigned char **sigs; /* DSSE signatures (DER ECDSA) */
    size_t *sig_lens;
    size_t n_sigs;
    oms_manifest manifest; /* parsed from payload */
} oms_bundle;

/* What the caller trusts: exactly one of the two is used, by method. */
typedef struct oms_trust {
    const char *public_key_pem;  /* key method: path of a PEM public key */
    const char *const *ca_paths; /* certificate method: PEM files of trusted CA */
    size_t n_ca_paths;           /* certificates (any one of them may anchor) */
} oms_trust;

/* Progress of hashing, called from the calling thread about 10 times a
 * second while files are hashed (and once at the end); may be NULL. */
typedef void (*oms_progress_fn)(void *arg, uint64_t done_bytes, uint64_t total_bytes);

typedef struct oms_check_opts {
    const char *const *ignore_paths; /* extra paths relative to the model root */
    size_t n_ignore_paths;
    bool ignore_unsigned_files; /* files not in the bundle are not an error */
    unsigned threads;           /* 0 = number of online CPUs (max 16) */
    oms_progress_fn progress;
    void *progress_arg;
} oms_check_opts;

typedef struct oms_sign_opts {
    oms_method method;               /* KEY or CERTIFICATE */
    const char *model_path;          /* a directory or a single file */
    const char *private_key_pem;     /* path of the PEM private key (EC P-256/384/521) */
    const char *signing_cert_pem;    /* certificate method: the leaf certificate */
    const char *const *chain_pems;   /* certificate method: more certificates for */
    size_t n_chain_pems;             /* the bundle's chain (PEM files, in order) */
    const char *const *ignore_paths; /* absolute, or relative to the model root */
    size_t n_ignore_paths;
    const char *output_bundle; /* written atomically; excluded from the model */
    uint64_t shard_size;       /* 0 = "files" serialization, else "shards" */
    /* A single-file model's one resource is named "." as the Python
     * reference signer names it and verifies it (image/OMS.md); true names
     * it by the file's basename instead, as OMS v1.0 6.1.2 item 5 says
     * (which the reference's verifier rejects). */
    bool single_file_basename;
    unsigned threads; /* 0 = automatic */
    oms_progress_fn progress;
    void *progress_arg;
} oms_sign_opts;

/* Result of a successful verification. */
typedef struct oms_verified {
    char root_digest[65];        /* hex sha256 root digest (the subject) */
    char signer[OMS_SIGNER_MAX]; /* "key sha256:<hint>" or "certificate CN=... sha256:<fp>" */
    char model_name[256];        /* subject name, truncated */
    size_t n_resources;
    uint64_t bytes_hashed;
} oms_verified;

/* Parses bundle JSON (and its DSSE payload) strictly: every required field
 * present with the right type. Returns 0 and fills *out (free it with
 * oms_bundle_free), or -1 with one sentence in err naming the bad field. */
int oms_bundle_parse(const unsigned char *json, size_t len, oms_bundle *out, char *err,
                     size_t errlen);
void oms_bundle_free(oms_bundle *b);

/* Checks the DSSE signature with the trusted key, or the bundle's
 * certificate chain against the trusted CAs (validity period enforced at
 * the current time) and then the signature with the leaf's key. On success
 * writes the signer description into signer (OMS_SIGNER_MAX bytes). */
int oms_bundle_verify(const oms_bundle *b, oms_method expected, const oms_trust *trust,
                      char *signer, size_t signer_len, char *err, size_t errlen);

/* Hashes the model under model_fd (an open directory, or an open regular
 * file whose resource name is file_name) exactly as the manifest's
 * serialization says and compares with the manifest. bundle_rel, when not
 * NULL, is the bundle's own path relative to the model root (excluded).
 * Returns 0 when every signed file is present and matches and (unless
 * opts->ignore_unsigned_files) no other file exists; -1 with the first
 * problem named in err. *bytes_hashed may be NULL. */
int oms_manifest_check_at(const oms_manifest *m, int model_fd, const char *file_name,
                          const char *bundle_rel, const oms_check_opts *opts,
                          uint64_t *bytes_hashed, char *err, size_t errlen);

/* For a loader that hashes a single-file model itself (say while copying
 * it into a sealed memfd): when the manifest signs exactly one whole file
 * (any name), copies its digest and hash type ("sha256"/"blake2b") out and
 * returns 0; otherwise -1 with the reason (several files, shards). */
int oms_manifest_single_file(const oms_manifest *m, unsigned char digest[OMS_DIGEST_MAX],
                             size_t *digest_len, const char **hash_type, char *err, size_t errlen);

/* Convenience: parse the bundle at bundle_path, verify it, check the model
 * at model_path. out may be NULL. */
int oms_verify_model(const char *model_path, const char *bundle_path, oms_method method,
                     const oms_trust *trust, const oms_check_opts *opts, oms_verified *out,
                     char *err, size_t errlen);

/* Hashes the model, builds the statement, signs it and writes the bundle.
 * root_digest (65 bytes) may be NULL; *n_files may be NULL. */
int oms_sign_model(const oms_sign_opts *opts, char root_digest[65], size_t *n_files, char *err,
                   size_t errlen);

/* Signs an arbitrary statement payload into bundle JSON (malloc'd, NUL
 * terminated) with the key/certificate fields of opts (model fields are
 * unused). Used by oms_sign_model and by tests that need odd statements. */
int oms_sign_payload(const oms_sign_opts *opts, const unsigned char *payload, size_t payload_len,
                     char **bundle_json, char *err, size_t errlen);

/* Describes the signer recorded in a bundle without verifying anything
 * (hint, or leaf certificate subject and validity). */
int oms_bundle_describe_signer(const oms_bundle *b, char *out, size_t outlen);

/* Name of a method ("key", "certificate", "sigstore"). */
const char *oms_method_name(oms_method m);

/* ====================== end of the OMS section ======================== */

#endif

/* ---- Sealed model copies ---------------------------------------------------
 * The bytes that were checked must be the bytes that are used. The monitor
 * copies a model file into an anonymous memfd while hashing it (one pass),
 * then seals the memfd (F_SEAL_WRITE|F_SEAL_GROW|F_SEAL_SHRINK|F_SEAL_SEAL)
 * so nobody, not even the monitor, can change it afterwards; the worker maps
 * that descriptor. */

/* Progress of a long copy: called every few MiB with bytes done and total. */
typedef void (*image_progress_fn)(void *user, uint64_t done, uint64_t total);

/* Copies the regular file at path into a sealed memfd; writes the file's
 * SHA-256 (32 bytes) and returns the memfd, or -1 with err. */
int image_sealed_copy(const char *path, uint8_t sha256[32], image_progress_fn progress, void *user,
                      char *err, size_t errlen);

/* 1 when fd is a memfd carrying all four seals, else 0. */
int image_is_sealed(int fd);

/* ---- Memory for secrets ----------------------------------------------------
 * Secret keys in the monitor live in pages that are locked (never swapped),
 * left out of core dumps, and wiped to zero in every forked child
 * (MADV_WIPEONFORK): the sandboxed worker is forked from the monitor, and it
 * must not inherit a copy of the device key. */

/* n bytes of such memory (zeroed), or NULL with err. */
void *secret_alloc(size_t n, char *err, size_t errlen);
/* Wipes with sodium_memzero and releases; NULL is accepted. */
void secret_free(void *p, size_t n);
