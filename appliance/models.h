/* Trusted publishers and installed models (internal to appliance/).
 *
 * Trust lives in the policy (PEM texts of publisher keys and CA roots), so
 * the policy digest recorded with every request commits to it. An installed
 * model is a record HOME/models/NAME.json plus a copy of its OMS bundle
 * HOME/models/NAME.sig; generate re-checks the bundle's signature against
 * the policy's current trust and compares the signed digest with the bytes
 * it actually loads (the sealed copy), so there is no window between the
 * check and the use, and revoking a publisher takes effect at once. */
#ifndef APPLIANCE_MODELS_H
#define APPLIANCE_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "home.h"
#include "image.h"
#include "policy.h"
#include "provenance.h"

typedef struct model_record {
    char name[128];
    char path[HOME_PATH_CAP]; /* absolute path of the GGUF file */
    char sha256[65];          /* signed digest of that file */
    char root_digest[65];     /* OMS root digest (the bundle's subject) */
    char signer[OMS_SIGNER_MAX];
    model_provenance prov; /* what the GGUF says about itself, checked printable */
} model_record;

/* Checks a parsed bundle's signature against the policy's trusted
 * publisher keys (key method) or CA roots (certificate method). On success
 * writes the signer description. */
int trust_verify_bundle(const policy *p, const home *h, const oms_bundle *b, char *signer,
                        size_t signer_len, char *err, size_t errlen);

/* Fingerprint and a short description of a trusted PEM (key or certificate). */
int trust_describe(const char *pem, char fp[KEY_FINGERPRINT_HEX], char *desc, size_t desc_len);

/* Verifies model_path against bundle_path with the policy's trust, copies
 * it into a sealed memfd while hashing it (the bytes compared are the bytes
 * read next; progress, when not NULL, hears how the copy goes), has a
 * sandboxed engine worker read its GGUF provenance from
 * that copy (a hostile file can at worst kill the worker), and installs it
 * as name (or the file's base name). Returns 0; -1 when refused; or
 * MODEL_INSTALL_SANDBOX_VIOLATION when the worker broke its sandbox (to be
 * audited as such). */
#define MODEL_INSTALL_SANDBOX_VIOLATION (-2)
int model_install(const home *h, const policy *p, const char *model_path, const char *bundle_path,
                  const char *name, image_progress_fn progress, void *progress_user,
                  model_record *out, char *err, size_t errlen);

/* Reads the record of an installed model by name; -1 when absent. */
int model_lookup(const home *h, const char *name, model_record *out, char *err, size_t errlen);
/* Finds an installed model by the SHA-256 of its file; -1 when none. */
int model_lookup_digest(const home *h, const char *sha256_hex, model_record *out);
/* Parses and re-verifies an installed model's bundle against the policy's
 * trust now; writes the signed file digest (hex) and signer. Returns 0, -1
 * when the signature no longer verifies, or MODEL_NOT_PINNED when it does
 * but its root digest is not in policy trust.pinned_models (err says which). */
#define MODEL_NOT_PINNED (-3)
int model_recheck(const home *h, const policy *p, const model_record *r, char sha256[65],
                  char *signer, size_t signer_len, char *err, size_t errlen);
int model_remove(const home *h, const char *name, char *err, size_t errlen);

/* Reads a publisher public key (EC) or a CA certificate from a PEM file and
 * returns it re-encoded as canonical PEM text (malloc'd), with its
 * fingerprint and description. */
char *trust_load_pem(const char *path, int is_cert, char fp[KEY_FINGERPRINT_HEX], char *desc,
                     size_t desc_len, char *err, size_t errlen);

#endif
