/* image: key files, trust and model signing (OMS bundles).
 *
 * Errors: functions return 0 on success and -1 on failure with one sentence
 * in the caller's err buffer. Secret key bytes handed out by this module are
 * the caller's to wipe with sodium_memzero. */
#ifndef IMAGE_IMAGE_H
#define IMAGE_IMAGE_H

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
 * the fingerprint and the two paths (each buffer at least 4096 bytes, or
 * NULL). */
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
