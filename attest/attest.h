/* attest: a signed, offline-verifiable record of every generation.
 *
 * Each generation is described by an in-toto Statement v1 whose subject is
 * the output text (sha256) and whose predicate (attest/PREDICATE.md) names
 * the model, a salted prompt commitment, the sampling parameters and seed,
 * the audit entries, the policy digest and the sandbox as observed. The
 * statement is the payload of a DSSE v1 envelope signed with the device's
 * Ed25519 key, so `openssl pkeyutl -verify -rawin` can check it alone.
 *
 * Errors: functions return ATTEST_OK (0) or a negative attest_status, with
 * one sentence in the caller's err buffer. Nothing here prints or exits. */
#ifndef ATTEST_ATTEST_H
#define ATTEST_ATTEST_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "policy.h" /* sandbox_facts */

#define ATTEST_STATEMENT_TYPE "https://in-toto.io/Statement/v1"
#define ATTEST_PAYLOAD_TYPE   "application/vnd.in-toto+json"
/* The predicate type is this prefix followed by "v" and the version. */
#define ATTEST_PREDICATE_PREFIX  "https://appliance.local/attestation/generation/"
#define ATTEST_PREDICATE_VERSION 1
#define ATTEST_PREDICATE_TYPE    ATTEST_PREDICATE_PREFIX "v1"

#define ATTEST_SALT_LEN 32  /* bytes of the per-request prompt salt */
#define ATTEST_HEX_LEN  65  /* 64 lowercase hex digits and NUL (SHA-256, SHA3-256) */
#define ATTEST_TIME_LEN 32  /* "2026-11-25T17:43:18.123Z" and NUL, with room */
#define ATTEST_TEXT_LEN 512 /* longest name, signer, version or notes string */

typedef enum attest_status {
    ATTEST_OK = 0,
    ATTEST_E_INVALID = -1,   /* a bad argument (caller's mistake), or out of memory */
    ATTEST_E_ENVELOPE = -2,  /* not a DSSE envelope: not JSON, missing field, bad base64 */
    ATTEST_E_SIGNATURE = -3, /* no signature verifies with the given key */
    ATTEST_E_STATEMENT = -4, /* signed, but not a statement/predicate this verifier reads */
    ATTEST_E_OUTPUT = -5,    /* the output bytes do not match the subject digest */
    ATTEST_E_PROMPT = -6,    /* the prompt and salt do not match the commitment */
    ATTEST_E_BUNDLE = -7,    /* a bundle line that is not a valid record */
} attest_status;

/* Short name of a status ("ok", "envelope", "signature", ...). */
const char *attest_status_name(attest_status s);

/* Sampling as the engine used it. Reals are IEEE binary32, as the engine's
 * sampler takes them; the statement writes each as the shortest decimal
 * that reads back to the same binary32. */
typedef struct attest_sampling {
    float temperature;
    int32_t top_k;
    float top_p;
    float min_p;
    float repeat_penalty;
    int32_t repeat_last_n;
    uint64_t seed;
    uint32_t max_tokens;
} attest_sampling;

/* One audit log entry: its sequence number and hex SHA3-256 entry hash. */
typedef struct attest_entry_ref {
    uint64_t seq;
    char hash[ATTEST_HEX_LEN];
} attest_entry_ref;

/* Everything a statement records about one generation. The caller owns every
 * pointer; strings are NUL-terminated UTF-8 and at most ATTEST_TEXT_LEN-1
 * bytes. Hex fields are 64 lowercase hex digits. */
typedef struct attest_generation {
    /* model: OMS root digest (hex SHA-256), file name, signer description */
    const char *model_digest;
    const char *model_name;
    const char *model_signer;
    /* prompt commitment inputs: SHA-256(salt || prompt) is recorded */
    const uint8_t *salt; /* ATTEST_SALT_LEN random bytes, fresh per request */
    const uint8_t *prompt;
    size_t prompt_len;
    attest_sampling sampling;
    uint64_t prompt_tokens;    /* tokens fed to the model, BOS included */
    uint64_t output_tokens;    /* tokens generated */
    const char *finish_reason; /* "eos", "length" or "stop" */
    /* audit log: id (hex) and the prompt and output entries */
    const char *audit_log_id;
    attest_entry_ref prompt_entry;
    attest_entry_ref output_entry;
    const char *policy_digest; /* hex SHA-256 of policy.json's bytes */
    /* the worker's sandbox as observed, and whether the policy required it */
    sandbox_facts sandbox;
    int sandbox_required;
    /* engine */
    const char *engine_version;
    const char *build_id; /* e.g. the git commit of the build */
    const char *kernels;  /* kernel path used, e.g. "avx2" */
    /* RFC 3339 UTC times (attest_format_time), start and end of generation */
    const char *started;
    const char *finished;
    /* the exact output bytes: the subject digest is their SHA-256 */
    const uint8_t *output;
    size_t output_len;
} attest_generation;

/* What a verified statement says, copied out for display and replay. */
typedef struct attest_verified {
    char keyid[ATTEST_TEXT_LEN]; /* keyid of the signature that verified ("" if none) */
    int keyid_matches;           /* 1 when that keyid is the given key's fingerprint */
    char output_sha256[ATTEST_HEX_LEN];
    char prompt_commitment[ATTEST_HEX_LEN];
    char model_digest[ATTEST_HEX_LEN];
    char model_name[ATTEST_TEXT_LEN];
    char model_signer[ATTEST_TEXT_LEN];
    attest_sampling sampling;
    uint64_t prompt_tokens, output_tokens;
    char finish_reason[16];
    char audit_log_id[ATTEST_TEXT_LEN];
    attest_entry_ref prompt_entry, output_entry;
    char policy_digest[ATTEST_HEX_LEN];
    sandbox_facts sandbox;
    int sandbox_required;
    char engine_version[ATTEST_TEXT_LEN];
    char build_id[ATTEST_TEXT_LEN];
    char kernels[ATTEST_TEXT_LEN];
    char started[ATTEST_TIME_LEN], finished[ATTEST_TIME_LEN];
    int output_checked; /* 1 when output bytes were given and matched */
    int prompt_checked; /* 1 when prompt and salt were given and matched */
} attest_verified;

/* Optional evidence to check against a statement: prompt with salt (both
 * or neither), and the output bytes. NULL pointers mean "not given". */
typedef struct attest_expect {
    const uint8_t *prompt;
    size_t prompt_len;
    const uint8_t *salt; /* ATTEST_SALT_LEN bytes */
    const uint8_t *output;
    size_t output_len;
} attest_expect;

/* ---- helpers ---------------------------------------------------------- */

/* Hex SHA-256(salt || prompt): the salt's 32 bytes first, then the prompt's
 * bytes as given, nothing between or after. */
void attest_prompt_commitment(const uint8_t salt[ATTEST_SALT_LEN], const uint8_t *prompt,
                              size_t prompt_len, char hex[ATTEST_HEX_LEN]);

/* The key id: hex SHA-256 of the DER SubjectPublicKeyInfo of the Ed25519
 * key (RFC 8410: 302a300506032b6570032100 || pk), the same fingerprint as
 * image's keys_fingerprint_file and `openssl pkey -outform DER | sha256sum`. */
void attest_key_fingerprint(const uint8_t pk[32], char hex[ATTEST_HEX_LEN]);

/* Formats a time as RFC 3339 UTC with milliseconds ("...T17:43:18.123Z").
 * Returns 0, or -1 when the time is out of range. */
int attest_format_time(const struct timespec *t, char out[ATTEST_TIME_LEN]);

/* The double nearest to the shortest decimal (at most 9 significant digits)
 * that reads back as exactly f: printed with 9 significant digits (jansson's
 * JSON_REAL_PRECISION(9)) it shows as that decimal, 0.7f as 0.7. */
double attest_float_decimal(float f);

/* Parses 64 hex digits into 32 bytes (e.g. the salt); returns 0 or -1. */
int attest_hex32(const char *hex, uint8_t out[32]);

/* DSSE v1 pre-authentication encoding:
 *   "DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload
 * with lengths in ASCII decimal. *out is malloc'd; the caller frees it. */
int attest_dsse_pae(const char *payload_type, const uint8_t *payload, size_t payload_len,
                    uint8_t **out, size_t *out_len);

/* ---- making an attestation ------------------------------------------- */

/* Builds the statement for g as compact JSON with sorted keys (the exact
 * bytes that get signed). *json is malloc'd and NUL-terminated; the caller
 * frees it. Fails with ATTEST_E_INVALID naming the first bad field. */
int attest_statement_json(const attest_generation *g, char **json, size_t *json_len, char *err,
                          size_t errlen);

/* Signs payload (an in-toto statement) into a one-line DSSE envelope:
 * {"payload":B64,"payloadType":ATTEST_PAYLOAD_TYPE,"signatures":[{"keyid":
 * fingerprint(pk),"sig":B64(Ed25519(sk, PAE))}]}. sk is libsodium's 64-byte
 * secret key (seed || pk); the signature is checked against its public half
 * before it is returned. *envelope is malloc'd and has no newline. */
int attest_sign_envelope(const uint8_t *payload, size_t payload_len, const uint8_t sk[64],
                         char **envelope, char *err, size_t errlen);

/* ---- bundles ------------------------------------------------------------
 * An exported bundle is JSON Lines (PREDICATE.md): the device key record,
 * the envelopes (each a line as attest_sign_envelope writes it), and a
 * signed audit checkpoint covering them. These build the two other records
 * exactly as the verifier reads them; each *line is malloc'd, one line with
 * no newline. */

/* {"type":"device_key","fingerprint":HEX,"pem":"-----BEGIN PUBLIC KEY-----
 * ..."}; the PEM is byte for byte what `openssl pkey -pubout` writes. */
int attest_bundle_device_key_line(const uint8_t pk[32], char **line, char *err, size_t errlen);
/* {"type":"checkpoint","note":TEXT} for a C2SP signed-note checkpoint. */
int attest_bundle_checkpoint_line(const char *note, size_t note_len, char **line, char *err,
                                  size_t errlen);

/* ---- verifying --------------------------------------------------------- */

/* Verifies one DSSE envelope with the Ed25519 public key pk, in order:
 * envelope shape and base64, payloadType, signature (every signature is
 * tried with pk; keyid, which DSSE does not authenticate, only reports
 * whether it names pk), statement shape, _type, predicateType and version,
 * every predicate field, then the evidence in expect (may be NULL). Fills
 * *out (may be NULL) as far as it got. */
attest_status attest_verify(const char *envelope, size_t len, const uint8_t pk[32],
                            const attest_expect *expect, attest_verified *out, char *err,
                            size_t errlen);

/* Checks a checkpoint record of a bundle (a C2SP signed note) against the
 * device key; returns 0, or -1 with err. The audit module provides it. */
typedef int (*attest_checkpoint_fn)(void *user, const char *note, size_t note_len,
                                    const uint8_t pk[32], char *err, size_t errlen);

/* Told about each record of a bundle after it was checked: its line (1 for
 * a single envelope), its type ("attestation", "device_key", "checkpoint"),
 * the result, the message when it failed, and for attestations what the
 * statement says (NULL otherwise). */
typedef void (*attest_record_fn)(void *user, size_t line, const char *type, attest_status status,
                                 const char *message, const attest_verified *v);

typedef struct attest_bundle_opts {
    const uint8_t *pk;                     /* the device public key the auditor trusts */
    const attest_expect *expect;           /* may be NULL; needs exactly one attestation */
    attest_checkpoint_fn check_checkpoint; /* NULL: checkpoint records fail */
    void *checkpoint_user;
    attest_record_fn on_record; /* may be NULL */
    void *record_user;
} attest_bundle_opts;

typedef struct attest_bundle_summary {
    size_t records, attestations, device_keys, checkpoints;
    size_t failed; /* records that did not check out */
} attest_bundle_summary;

/* Verifies a file's text: one JSON envelope (possibly pretty-printed), or a
 * JSON Lines bundle (format in PREDICATE.md). Every record is checked, even
 * after a failure; err names the first failure with its line. Returns
 * ATTEST_OK only when there is at least one attestation and every record
 * checks out. */
attest_status attest_verify_bundle(const char *text, size_t len, const attest_bundle_opts *opts,
                                   attest_bundle_summary *summary, char *err, size_t errlen);

#endif
