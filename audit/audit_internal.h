/* Internal helpers shared by the audit/ sources (not for other modules). */
#ifndef APPLIANCE_AUDIT_INTERNAL_H
#define APPLIANCE_AUDIT_INTERNAL_H

#include "audit.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>

/* Domain-separation tag prefixed to every entry hash input (FORMAT.md). */
#define AUDIT_ENTRY_TAG     "APPLIANCE-AUDIT-ENTRY-V1"
#define AUDIT_ENTRY_TAG_LEN 25 /* including the trailing NUL byte */

struct audit_log {
    sqlite3 *db;
    char log_id[AUDIT_LOG_ID_HEX_LEN + 1];
    char origin[96];
    int read_only;
    int busy_timeout_ms; /* how long busy_wait() keeps retrying a locked log */
    double busy_since;   /* when the current wait began (CLOCK_MONOTONIC seconds) */
};

/* Fills err with a printf-style sentence; returns `code` for tail calls. */
int audit_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps a SQLite result code to an audit_status and one sentence. */
int audit_sqlite_fail(sqlite3 *db, int rc, const char *what, char *err, size_t errlen);

/* A growable byte buffer; on allocation failure `failed` is set and further
 * appends are ignored, so callers check once at the end. */
typedef struct abuf {
    char *data;
    size_t len, cap;
    int failed;
} abuf;
void abuf_put(abuf *b, const void *p, size_t n);
void abuf_puts(abuf *b, const char *s);
void abuf_printf(abuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Terminates with NUL and hands the buffer over (NULL on failure). */
char *abuf_take(abuf *b, size_t *len);

/* Canonical JSON (FORMAT.md): sorted keys, no whitespace, minimal escapes,
 * integers only. Returns 0, or -1 for values it cannot represent (reals). */
int canon_dump(const json_t *v, abuf *out);
/* Parses `bytes` strictly (no duplicate keys) and requires a JSON object.
 * Returns a new reference or NULL with err filled. */
json_t *canon_parse_object(const char *bytes, size_t len, char *err, size_t errlen);
/* 1 when `bytes` is an object whose canonical form is exactly `bytes`. */
int canon_is_canonical(const uint8_t *bytes, size_t len, json_t **out_obj);

/* SHA3-256(tag || prev || record). */
int audit_entry_hash(const uint8_t prev[AUDIT_HASH_LEN], const uint8_t *record, size_t len,
                     uint8_t out[AUDIT_HASH_LEN]);
/* SHA3-256 over the concatenation of up to three pieces (NULL pieces skipped). */
int sha3_256_parts(const void *a, size_t alen, const void *b, size_t blen, const void *c,
                   size_t clen, uint8_t out[AUDIT_HASH_LEN]);

void hex_encode(const uint8_t *in, size_t n, char *out); /* out: 2n+1 */
int hex_decode(const char *in, uint8_t *out, size_t n);  /* exactly 2n hex chars */
/* Standard base64 (RFC 4648 section 4) with padding; out: 4*ceil(n/3)+1. */
void b64_encode(const uint8_t *in, size_t n, char *out);
/* Decodes exactly; returns decoded length or -1. */
long b64_decode(const char *in, size_t inlen, uint8_t *out, size_t cap);

/* Compact Merkle range: the roots of the perfect subtrees covering the
 * leaves pushed so far (at most 64), left to right. */
typedef struct merkle_stack {
    uint8_t node[64][AUDIT_HASH_LEN];
    uint64_t size; /* leaves pushed */
    int depth;     /* entries used in node[] */
} merkle_stack;
void merkle_stack_init(merkle_stack *s);
void merkle_stack_push(merkle_stack *s, const uint8_t entry_hash[AUDIT_HASH_LEN]);
void merkle_stack_root(const merkle_stack *s, uint8_t root[AUDIT_HASH_LEN]);
void merkle_leaf_hash(const uint8_t entry_hash[AUDIT_HASH_LEN], uint8_t out[AUDIT_HASH_LEN]);
void merkle_node_hash(const uint8_t l[AUDIT_HASH_LEN], const uint8_t r[AUDIT_HASH_LEN],
                      uint8_t out[AUDIT_HASH_LEN]);

/* Reads the entry hashes of seq 1..n into a malloc'd array. */
int audit_load_hashes(audit_log *log, uint64_t n, uint8_t (**out)[AUDIT_HASH_LEN], char *err,
                      size_t errlen);

/* Builds the checkpoint note text (without signatures) for the given tree. */
char *checkpoint_note_text(const char *origin, uint64_t size, const uint8_t root[AUDIT_HASH_LEN],
                           const uint8_t head[AUDIT_HASH_LEN], size_t *len);
/* Appends an entry inside an already open write transaction. */
int audit_append_locked(audit_log *log, audit_kind kind, const char *request_id, const char *actor,
                        json_t *body, uint64_t *out_seq, uint8_t out_hash[AUDIT_HASH_LEN],
                        char *err, size_t errlen);
/* Checks one request (kind, UTF-8 ids, integer-only JSON object body) and
 * parses its body; NULL with err filled when invalid. */
json_t *audit_parse_body(audit_log *log, const audit_append_req *r, char *err, size_t errlen);
int audit_begin_immediate(audit_log *log, char *err, size_t errlen);
int audit_commit(audit_log *log, char *err, size_t errlen);
void audit_rollback(audit_log *log);

/* Verifies a parsed consistency proof document (consistency.c). */
int audit_consistency_verify_doc(json_t *doc, const uint8_t *pk, char *err, size_t errlen);

/* 1 when ts has the exact form YYYY-MM-DDTHH:MM:SS.mmmZ with sane ranges. */
int audit_ts_valid(const char *ts);

#endif
