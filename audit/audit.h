/* audit: the SHA3-256 hash-chained, append-only SQLite audit log.
 *
 * Every event is one row of the `entries` table whose canonical record bytes
 * are chained: hash = SHA3-256(tag || prev_hash || record). Signed checkpoints
 * (C2SP signed-note / tlog-checkpoint) commit to an RFC 6962 Merkle tree over
 * the entry hashes, so truncation and rollback are detectable by anyone who
 * kept an older checkpoint, and one entry can be proven without the rest.
 * audit/FORMAT.md is the byte-exact specification; audit/verify_log.py is an
 * independent re-verifier.
 *
 * Conventions: functions return AUDIT_OK (0) or a negative audit_status and
 * fill `err` (when non-NULL) with one sentence. Nothing here prints or exits.
 * Keys are raw libsodium keys: Ed25519 secret 64 bytes / public 32 bytes,
 * X25519 32 bytes. */
#ifndef APPLIANCE_AUDIT_H
#define APPLIANCE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#define AUDIT_HASH_LEN       32
#define AUDIT_LOG_ID_HEX_LEN 32 /* 16 random bytes, lowercase hex */
#define AUDIT_TS_LEN         24 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
#define AUDIT_FORMAT_VERSION 1

typedef enum audit_status {
    AUDIT_OK = 0,
    AUDIT_E_IO = -1,      /* SQLite or file error: disk full, read-only, corrupt file */
    AUDIT_E_BUSY = -2,    /* the log stayed locked past the busy timeout */
    AUDIT_E_FORMAT = -3,  /* not an audit log, or an unsupported format version */
    AUDIT_E_INVALID = -4, /* a bad argument: unknown kind, malformed JSON, bad sequence */
    AUDIT_E_CRYPTO = -5,  /* a signature, key or decryption failed */
    AUDIT_E_NOMEM = -6,
    AUDIT_E_NOTFOUND = -7, /* no such entry */
} audit_status;

/* The fixed list of entry kinds; the names are what the log stores. */
typedef enum audit_kind {
    AUDIT_KIND_INIT,
    AUDIT_KIND_SESSION_START,
    AUDIT_KIND_MODEL_LOAD,
    AUDIT_KIND_PROMPT,
    AUDIT_KIND_OUTPUT,
    AUDIT_KIND_ATTESTATION,
    AUDIT_KIND_REFUSAL,
    AUDIT_KIND_SANDBOX_VIOLATION,
    AUDIT_KIND_POLICY_CHANGE,
    AUDIT_KIND_AUDIT_READ,
    AUDIT_KIND_CHECKPOINT,
    AUDIT_KIND_ERROR,
    AUDIT_KIND_COUNT
} audit_kind;

/* "prompt", "output", ...; NULL for an out-of-range value. */
const char *audit_kind_name(audit_kind kind);
/* Parses a kind name; returns AUDIT_OK or AUDIT_E_INVALID. */
int audit_kind_from_name(const char *name, audit_kind *out);

typedef struct audit_log audit_log;

typedef struct audit_open_opts {
    int create;          /* create the file and schema when absent */
    int read_only;       /* open read-only (verify, prove); appends then fail */
    int busy_timeout_ms; /* how long a writer waits for the lock; 0 means 5000 */
} audit_open_opts;

/* Opens (and with opts->create, creates) the log at `path`. Sets WAL,
 * synchronous=FULL, foreign_keys, secure_delete on the connection and checks
 * the format version. Creating refuses a file that is another SQLite
 * database. A read-only open of a copy on read-only media falls back to
 * SQLite's immutable mode. On success *out owns the handle (audit_close). */
int audit_open(audit_log **out, const char *path, const audit_open_opts *opts, char *err,
               size_t errlen);
void audit_close(audit_log *log);
/* The log id: 32 lowercase hex characters, NUL-terminated, valid until close. */
const char *audit_log_id(const audit_log *log);
/* The checkpoint origin line and signed-note key name of this log:
 * "appliance.audit/<log id>/sha3-256". */
const char *audit_log_origin(const audit_log *log);

/* Appends one entry durably (BEGIN IMMEDIATE; prev computed under the lock;
 * COMMIT with synchronous=FULL). `body_json` must be one JSON object (UTF-8,
 * integers only, no duplicate keys); it is stored in canonical form.
 * request_id and actor may be "" but not NULL. On success fills out_seq and
 * out_hash when non-NULL. Fails closed: any write failure is an error and
 * nothing is appended. */
int audit_append(audit_log *log, audit_kind kind, const char *request_id, const char *actor,
                 const char *body_json, size_t body_len, uint64_t *out_seq,
                 uint8_t out_hash[AUDIT_HASH_LEN], char *err, size_t errlen);

/* One entry of a batch append (fields as for audit_append). */
typedef struct audit_append_req {
    audit_kind kind;
    const char *request_id, *actor;
    const char *body_json;
    size_t body_len;
} audit_append_req;

/* Appends n entries in one transaction: one fsync for all (group commit),
 * consecutive seqs starting at *out_first_seq. All or nothing: on any error
 * none is appended. Durable when it returns AUDIT_OK. */
int audit_append_batch(audit_log *log, const audit_append_req *reqs, size_t n,
                       uint64_t *out_first_seq, char *err, size_t errlen);

/* Number of entries and the chain head (32 zero bytes for an empty log). */
int audit_head(audit_log *log, uint64_t *out_count, uint8_t out_head[AUDIT_HASH_LEN], char *err,
               size_t errlen);

/* ---- group commit for many threads of one process ---- */

/* A thread-safe writer: concurrent audit_writer_append calls are committed
 * together, one transaction and one fsync per group, so durable appends/s
 * grow with the number of concurrent callers instead of being capped by the
 * disk's fsync rate. Each call still returns only once its entry is durable
 * (or with an error, fail closed). The writer owns its own connection. */
typedef struct audit_writer audit_writer;
int audit_writer_open(audit_writer **out, const char *path, const audit_open_opts *opts, char *err,
                      size_t errlen);
int audit_writer_append(audit_writer *w, const audit_append_req *req, uint64_t *out_seq,
                        uint8_t out_hash[AUDIT_HASH_LEN], char *err, size_t errlen);
/* The writer's log handle, for reads, checkpoints and verification from the
 * thread that owns the writer while no append is in flight. */
audit_log *audit_writer_log(audit_writer *w);
void audit_writer_close(audit_writer *w);

/* Entries appended after the last checkpoint entry (all of them when there
 * is none): the caller checkpoints when this reaches the policy interval. */
int audit_entries_since_checkpoint(audit_log *log, uint64_t *out, char *err, size_t errlen);

/* ---- reading ---- */

typedef struct audit_entry {
    uint64_t seq;
    char ts[AUDIT_TS_LEN + 1];
    const char *kind; /* as stored */
    const char *request_id;
    const char *actor;
    const uint8_t *record; /* canonical record bytes, not NUL-terminated */
    size_t record_len;
    uint8_t prev_hash[AUDIT_HASH_LEN];
    uint8_t hash[AUDIT_HASH_LEN];
} audit_entry;

/* Which entries audit_query visits; zero/NULL fields do not filter. Times
 * compare as RFC 3339 strings (a prefix such as "2026-11-25" works). */
typedef struct audit_filter {
    uint64_t seq_min, seq_max;
    const char *since, *until; /* ts >= since, ts < until */
    const char *kind, *actor, *request_id;
} audit_filter;

/* Calls visit() for each matching entry in sequence order; the entry's
 * pointers are valid only during the call. A non-zero return from visit()
 * stops the walk and is returned. */
int audit_query(audit_log *log, const audit_filter *filter,
                int (*visit)(const audit_entry *entry, void *ctx), void *ctx, char *err,
                size_t errlen);

/* ---- verification ---- */

/* Why verification failed; the code words are shared with verify_log.py. */
typedef enum audit_failure {
    AUDIT_FAIL_NONE,
    AUDIT_FAIL_META,       /* "meta": missing or malformed meta table */
    AUDIT_FAIL_GAP,        /* "gap": a sequence number is missing */
    AUDIT_FAIL_RECORD,     /* "record": record bytes not canonical / malformed */
    AUDIT_FAIL_REORDER,    /* "reorder": the record belongs at another seq */
    AUDIT_FAIL_PREV,       /* "prev": prev_hash is not the previous entry's hash */
    AUDIT_FAIL_HASH,       /* "hash": stored hash differs from the recomputed one */
    AUDIT_FAIL_COLUMN,     /* "column": a column disagrees with the record */
    AUDIT_FAIL_CLOCK,      /* "clock": timestamp earlier than the previous entry */
    AUDIT_FAIL_CHECKPOINT, /* "checkpoint": an in-log checkpoint entry is wrong */
    AUDIT_FAIL_TRUNCATED,  /* "truncated": fewer entries than the given checkpoint */
    AUDIT_FAIL_DIVERGED,   /* "diverged": Merkle root at the checkpoint size differs */
    AUDIT_FAIL_SIGNATURE,  /* "signature": the given checkpoint's signature is bad */
} audit_failure;

const char *audit_failure_code(audit_failure f);

typedef struct audit_verify_opts {
    /* Optional external checkpoint (a signed note) that the log must extend. */
    const char *checkpoint;
    size_t checkpoint_len;
    /* Key to check its signature with; NULL uses the key recorded in the
     * log's own checkpoint entries with the same key id (weaker: say so). */
    const uint8_t *checkpoint_pubkey;
} audit_verify_opts;

typedef struct audit_verify_result {
    int ok;           /* 1 when everything verified */
    uint64_t entries; /* rows read */
    uint8_t head[AUDIT_HASH_LEN];
    uint64_t checkpoints;   /* in-log checkpoint entries verified */
    audit_failure failure;  /* first failure */
    uint64_t first_bad_seq; /* 0 when the failure is not an entry's */
    char reason[256];       /* one sentence */
    char **incomplete;      /* request ids of prompts with no output/refusal/error */
    size_t n_incomplete;
    int triggers_missing;        /* the append-only triggers were dropped (warning) */
    int checkpoint_key_from_log; /* the external checkpoint was checked with the log's key */
} audit_verify_result;

/* Re-verifies the whole log (and the optional checkpoint). Returns AUDIT_OK
 * when the verification ran, whatever its verdict (see res->ok); an error
 * when it could not run. Free the result with audit_verify_result_free. */
int audit_verify(audit_log *log, const audit_verify_opts *opts, audit_verify_result *res, char *err,
                 size_t errlen);
void audit_verify_result_free(audit_verify_result *res);

/* ---- Merkle tree (RFC 6962 with SHA3-256) ---- */

/* Root of the tree over `n` entry hashes (leaf = H(0x00||hash)). */
void audit_merkle_root(const uint8_t (*entry_hashes)[AUDIT_HASH_LEN], size_t n,
                       uint8_t root[AUDIT_HASH_LEN]);
/* Root of the log's first `tree_size` entries. */
int audit_log_root(audit_log *log, uint64_t tree_size, uint8_t root[AUDIT_HASH_LEN], char *err,
                   size_t errlen);

/* ---- signed checkpoints (C2SP signed-note + tlog-checkpoint) ---- */

typedef struct audit_checkpoint {
    char origin[128];
    uint64_t tree_size;
    uint8_t root[AUDIT_HASH_LEN];
    uint8_t chain_head[AUDIT_HASH_LEN]; /* hash of entry tree_size */
    char key_name[128];
    uint8_t key_id[4];
    uint8_t signature[64];
    size_t text_len; /* bytes of the signed note text (the signed message) */
} audit_checkpoint;

/* Signs a checkpoint over all current entries with the Ed25519 secret key and
 * appends it as a `checkpoint` entry (one transaction, so it covers exactly
 * the entries before it). *out_note is the malloc'd signed note. */
int audit_checkpoint_create(audit_log *log, const uint8_t sk[64], const char *actor,
                            char **out_note, uint64_t *out_seq, char *err, size_t errlen);
/* Parses a signed note holding one Ed25519 signature line. */
int audit_checkpoint_parse(const char *note, size_t len, audit_checkpoint *out, char *err,
                           size_t errlen);
/* Checks the key id and the signature against the 32-byte public key. */
int audit_checkpoint_verify_sig(const char *note, size_t len, const uint8_t pk[32], char *err,
                                size_t errlen);
/* Signed-note key id: SHA-256(name || 0x0A || 0x01 || pk)[0:4]. */
void audit_note_key_id(const char *key_name, const uint8_t pk[32], uint8_t id[4]);

/* ---- inclusion proofs (RFC 6962 audit paths) ---- */

/* Builds an inclusion proof for entry `seq` in the tree of the first
 * `tree_size` entries (0 means all). *out_json is a malloc'd JSON document
 * (format in FORMAT.md); `checkpoint` (may be NULL) is embedded verbatim. */
int audit_prove(audit_log *log, uint64_t seq, uint64_t tree_size, const char *checkpoint,
                char **out_json, char *err, size_t errlen);
/* Verifies a proof document on its own. Inclusion proofs: the entry hash
 * from its record, the audit path to the root, and (when embedded) that the
 * checkpoint names the same size and root, with its signature checked when
 * pk is non-NULL. Consistency proofs: the path, and both checkpoints. */
int audit_proof_verify(const char *proof_json, size_t len, const uint8_t *pk, char *err,
                       size_t errlen);
/* RFC 9162 2.1.3.2: verifies a path from leaf `index` to `root`. */
int audit_merkle_verify_inclusion(const uint8_t entry_hash[AUDIT_HASH_LEN], uint64_t index,
                                  uint64_t tree_size, const uint8_t (*path)[AUDIT_HASH_LEN],
                                  size_t path_len, const uint8_t root[AUDIT_HASH_LEN]);

/* Consistency proof (RFC 6962 2.1.2) that the log's tree at the size of
 * `new_checkpoint` (NULL: all current entries, unsigned) extends the tree of
 * `old_checkpoint`. *out_json is malloc'd (FORMAT.md section 7); check it
 * with audit_proof_verify, which accepts both proof formats. */
int audit_prove_consistency(audit_log *log, const char *old_checkpoint, const char *new_checkpoint,
                            char **out_json, char *err, size_t errlen);
/* RFC 9162 2.1.4.2: verifies that the tree (second, second_root) extends
 * (first, first_root) by the given path. */
int audit_merkle_verify_consistency(uint64_t first, uint64_t second,
                                    const uint8_t first_root[AUDIT_HASH_LEN],
                                    const uint8_t second_root[AUDIT_HASH_LEN],
                                    const uint8_t (*path)[AUDIT_HASH_LEN], size_t path_len);

/* ---- content modes ---- */

/* How prompt/output text is stored (the policy's "audit.content"). The
 * values equal policy.h's audit_content_mode, so the policy setting maps
 * one to one; the names differ so both headers can be included together. */
typedef enum audit_store_mode {
    AUDIT_STORE_SEALED = 0,    /* crypto_box_seal to the reviewer's X25519 key */
    AUDIT_STORE_PLAINTEXT = 1, /* the text itself */
    AUDIT_STORE_DIGEST = 2,    /* salted SHA-256 commitment only */
} audit_store_mode;

int audit_store_mode_from_name(const char *name, audit_store_mode *out);

/* Encodes a prompt/output text as the JSON object to put under a body key
 * (e.g. "content"). Sealed mode needs reviewer_pk. *out_json is malloc'd. */
int audit_content_encode(audit_store_mode mode, const uint8_t *reviewer_pk, const char *text,
                         size_t len, char **out_json, char *err, size_t errlen);
/* Recovers the text from an encoded content object: plaintext directly,
 * sealed only with the reviewer key pair; digest mode has no text
 * (AUDIT_E_INVALID). *out_text is malloc'd and NUL-terminated. */
int audit_content_decode(const char *content_json, size_t len, const uint8_t *reviewer_pk,
                         const uint8_t *reviewer_sk, char **out_text, size_t *out_len, char *err,
                         size_t errlen);
/* Write-ahead helpers for generate. The body is the caller's metadata object
 * (model digest, policy digest, sampling parameters, seed for a prompt;
 * token ids/count, finish reason, timings for an output; no "content" key)
 * plus "content": the text encoded in `mode`. audit_append_prompt must
 * succeed before the engine sees the prompt; audit_append_output after it
 * finishes. Both are durable on AUDIT_OK and fail closed otherwise. */
int audit_append_prompt(audit_log *log, const char *request_id, const char *actor,
                        audit_store_mode mode, const uint8_t *reviewer_pk, const char *text,
                        size_t text_len, const char *meta_json, uint64_t *out_seq,
                        uint8_t out_hash[AUDIT_HASH_LEN], char *err, size_t errlen);
int audit_append_output(audit_log *log, const char *request_id, const char *actor,
                        audit_store_mode mode, const uint8_t *reviewer_pk, const char *text,
                        size_t text_len, const char *meta_json, uint64_t *out_seq,
                        uint8_t out_hash[AUDIT_HASH_LEN], char *err, size_t errlen);

/* Returns AUDIT_OK when `text` opens the digest commitment, AUDIT_E_CRYPTO
 * when it does not. */
int audit_content_check_digest(const char *content_json, size_t len, const char *text,
                               size_t text_len, char *err, size_t errlen);

#endif
