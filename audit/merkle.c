/* RFC 6962 Merkle trees over the entry hashes, with SHA3-256; inclusion proofs. */
#include "audit_internal.h"

#include <stdlib.h>
#include <string.h>

void merkle_leaf_hash(const uint8_t entry_hash[AUDIT_HASH_LEN], uint8_t out[AUDIT_HASH_LEN])
{
    static const uint8_t zero = 0x00;
    (void)sha3_256_parts(&zero, 1, entry_hash, AUDIT_HASH_LEN, NULL, 0, out);
}

void merkle_node_hash(const uint8_t l[AUDIT_HASH_LEN], const uint8_t r[AUDIT_HASH_LEN],
                      uint8_t out[AUDIT_HASH_LEN])
{
    static const uint8_t one = 0x01;
    (void)sha3_256_parts(&one, 1, l, AUDIT_HASH_LEN, r, AUDIT_HASH_LEN, out);
}

void merkle_stack_init(merkle_stack *s)
{
    memset(s, 0, sizeof *s);
}

/* The stack holds one perfect subtree per set bit of `size`, largest first;
 * pushing a leaf is a binary increment that merges equal-sized neighbours. */
void merkle_stack_push(merkle_stack *s, const uint8_t entry_hash[AUDIT_HASH_LEN])
{
    merkle_leaf_hash(entry_hash, s->node[s->depth++]);
    for (uint64_t n = s->size; n & 1; n >>= 1) {
        s->depth--;
        merkle_node_hash(s->node[s->depth - 1], s->node[s->depth], s->node[s->depth - 1]);
    }
    s->size++;
}

/* RFC 6962 splits at the largest power of two below n, so the root folds the
 * perfect subtrees from the right. */
void merkle_stack_root(const merkle_stack *s, uint8_t root[AUDIT_HASH_LEN])
{
    if (s->depth == 0) {
        (void)sha3_256_parts("", 0, NULL, 0, NULL, 0, root);
        return;
    }
    uint8_t r[AUDIT_HASH_LEN];
    memcpy(r, s->node[s->depth - 1], AUDIT_HASH_LEN);
    for (int i = s->depth - 2; i >= 0; i--)
        merkle_node_hash(s->node[i], r, r);
    memcpy(root, r, AUDIT_HASH_LEN);
}

void audit_merkle_root(const uint8_t (*entry_hashes)[AUDIT_HASH_LEN], size_t n,
                       uint8_t root[AUDIT_HASH_LEN])
{
    merkle_stack s;
    merkle_stack_init(&s);
    for (size_t i = 0; i < n; i++)
        merkle_stack_push(&s, entry_hashes[i]);
    merkle_stack_root(&s, root);
}

int audit_log_root(audit_log *log, uint64_t tree_size, uint8_t root[AUDIT_HASH_LEN], char *err,
                   size_t errlen)
{
    uint8_t(*h)[AUDIT_HASH_LEN] = NULL;
    int rc = audit_load_hashes(log, tree_size, &h, err, errlen);
    if (rc != AUDIT_OK)
        return rc;
    audit_merkle_root((const uint8_t(*)[AUDIT_HASH_LEN])h, tree_size, root);
    free(h);
    return AUDIT_OK;
}

static uint64_t largest_pow2_below(uint64_t n)
{
    uint64_t k = 1;
    while (k << 1 < n)
        k <<= 1;
    return k;
}

/* RFC 6962 2.1.1 PATH(m, D[lo:lo+n]): appends the audit path, leaf to root. */
static void merkle_path(const uint8_t (*h)[AUDIT_HASH_LEN], uint64_t lo, uint64_t n, uint64_t m,
                        uint8_t (*path)[AUDIT_HASH_LEN], size_t *len)
{
    if (n <= 1)
        return;
    uint64_t k = largest_pow2_below(n);
    uint8_t sub[AUDIT_HASH_LEN];
    if (m < k) {
        merkle_path(h, lo, k, m, path, len);
        audit_merkle_root(h + lo + k, n - k, sub);
    } else {
        merkle_path(h, lo + k, n - k, m - k, path, len);
        audit_merkle_root(h + lo, k, sub);
    }
    memcpy(path[(*len)++], sub, AUDIT_HASH_LEN);
}

int audit_merkle_verify_inclusion(const uint8_t entry_hash[AUDIT_HASH_LEN], uint64_t index,
                                  uint64_t tree_size, const uint8_t (*path)[AUDIT_HASH_LEN],
                                  size_t path_len, const uint8_t root[AUDIT_HASH_LEN])
{
    if (index >= tree_size)
        return AUDIT_E_INVALID;
    uint64_t fn = index, sn = tree_size - 1;
    uint8_t r[AUDIT_HASH_LEN];
    merkle_leaf_hash(entry_hash, r);
    for (size_t i = 0; i < path_len; i++) {
        if (sn == 0)
            return AUDIT_E_CRYPTO;
        if ((fn & 1) || fn == sn) {
            merkle_node_hash(path[i], r, r);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            merkle_node_hash(r, path[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && memcmp(r, root, AUDIT_HASH_LEN) == 0 ? AUDIT_OK : AUDIT_E_CRYPTO;
}

/* Fetches one entry's record, prev_hash and hash. */
static int load_entry(audit_log *log, uint64_t seq, char **record, size_t *len,
                      uint8_t prev[AUDIT_HASH_LEN], uint8_t hash[AUDIT_HASH_LEN], char *err,
                      size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        log->db, "SELECT record, prev_hash, hash FROM entries WHERE seq = ?1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return audit_sqlite_fail(log->db, rc, "reading an entry", err, errlen);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
    rc = sqlite3_step(st);
    int out = AUDIT_OK;
    if (rc != SQLITE_ROW || sqlite3_column_bytes(st, 1) != AUDIT_HASH_LEN ||
        sqlite3_column_bytes(st, 2) != AUDIT_HASH_LEN) {
        out = audit_fail(err, errlen, AUDIT_E_NOTFOUND, "audit log has no entry %llu",
                         (unsigned long long)seq);
    } else {
        *len = (size_t)sqlite3_column_bytes(st, 0);
        *record = malloc(*len + 1);
        if (!*record) {
            out = audit_fail(err, errlen, AUDIT_E_NOMEM, "out of memory");
        } else {
            if (*len)
                memcpy(*record, sqlite3_column_blob(st, 0), *len);
            (*record)[*len] = 0;
            memcpy(prev, sqlite3_column_blob(st, 1), AUDIT_HASH_LEN);
            memcpy(hash, sqlite3_column_blob(st, 2), AUDIT_HASH_LEN);
        }
    }
    sqlite3_finalize(st);
    return out;
}

static json_t *proof_document(audit_log *log, uint64_t seq, uint64_t tree_size, const char *record,
                              size_t len, const uint8_t prev[AUDIT_HASH_LEN],
                              const uint8_t hash[AUDIT_HASH_LEN],
                              const uint8_t root[AUDIT_HASH_LEN],
                              const uint8_t (*path)[AUDIT_HASH_LEN], size_t path_len,
                              const char *checkpoint)
{
    char hex[2 * AUDIT_HASH_LEN + 1], b64root[64];
    char *b64rec = malloc(4 * (len / 3 + 1) + 1);
    json_t *doc = json_object(), *jpath = json_array();
    if (!b64rec || !doc || !jpath) {
        free(b64rec);
        json_decref(doc);
        json_decref(jpath);
        return NULL;
    }
    b64_encode((const uint8_t *)record, len, b64rec);
    b64_encode(root, AUDIT_HASH_LEN, b64root);
    json_object_set_new(doc, "format", json_string("appliance-audit-inclusion-proof/v1"));
    json_object_set_new(doc, "origin", json_string(log->origin));
    json_object_set_new(doc, "log_id", json_string(log->log_id));
    json_object_set_new(doc, "seq", json_integer((json_int_t)seq));
    json_object_set_new(doc, "leaf_index", json_integer((json_int_t)(seq - 1)));
    json_object_set_new(doc, "tree_size", json_integer((json_int_t)tree_size));
    json_object_set_new(doc, "record_b64", json_string(b64rec));
    hex_encode(prev, AUDIT_HASH_LEN, hex);
    json_object_set_new(doc, "prev_hash", json_string(hex));
    hex_encode(hash, AUDIT_HASH_LEN, hex);
    json_object_set_new(doc, "entry_hash", json_string(hex));
    json_object_set_new(doc, "root", json_string(b64root));
    for (size_t i = 0; i < path_len; i++) {
        hex_encode(path[i], AUDIT_HASH_LEN, hex);
        json_array_append_new(jpath, json_string(hex));
    }
    json_object_set_new(doc, "path", jpath);
    json_object_set_new(doc, "checkpoint", checkpoint ? json_string(checkpoint) : json_null());
    free(b64rec);
    return doc;
}

/* The tree size and root a proof must use: the checkpoint's when given. */
static int proof_target(audit_log *log, const char *checkpoint, uint64_t *tree_size, char *err,
                        size_t errlen)
{
    uint64_t count;
    uint8_t head[AUDIT_HASH_LEN];
    int rc = audit_head(log, &count, head, err, errlen);
    if (rc != AUDIT_OK)
        return rc;
    if (checkpoint) {
        audit_checkpoint cp;
        rc = audit_checkpoint_parse(checkpoint, strlen(checkpoint), &cp, err, errlen);
        if (rc != AUDIT_OK)
            return rc;
        if (strcmp(cp.origin, log->origin) != 0)
            return audit_fail(err, errlen, AUDIT_E_INVALID, "checkpoint is for log '%s', not '%s'",
                              cp.origin, log->origin);
        *tree_size = cp.tree_size;
    } else if (*tree_size == 0) {
        *tree_size = count;
    }
    if (*tree_size > count)
        return audit_fail(err, errlen, AUDIT_E_INVALID,
                          "tree size %llu exceeds the log's %llu entries",
                          (unsigned long long)*tree_size, (unsigned long long)count);
    return AUDIT_OK;
}

int audit_prove(audit_log *log, uint64_t seq, uint64_t tree_size, const char *checkpoint,
                char **out_json, char *err, size_t errlen)
{
    *out_json = NULL;
    int rc = proof_target(log, checkpoint, &tree_size, err, errlen);
    if (rc != AUDIT_OK)
        return rc;
    if (seq == 0 || seq > tree_size)
        return audit_fail(err, errlen, AUDIT_E_INVALID,
                          "entry %llu is not in the tree of size %llu", (unsigned long long)seq,
                          (unsigned long long)tree_size);
    uint8_t(*h)[AUDIT_HASH_LEN] = NULL, root[AUDIT_HASH_LEN], prev[AUDIT_HASH_LEN],
    hash[AUDIT_HASH_LEN], path[64][AUDIT_HASH_LEN];
    char *record = NULL;
    size_t len = 0, path_len = 0;
    rc = audit_load_hashes(log, tree_size, &h, err, errlen);
    if (rc == AUDIT_OK)
        rc = load_entry(log, seq, &record, &len, prev, hash, err, errlen);
    if (rc == AUDIT_OK) {
        const uint8_t(*ch)[AUDIT_HASH_LEN] = (const uint8_t(*)[AUDIT_HASH_LEN])h;
        audit_merkle_root(ch, tree_size, root);
        merkle_path(ch, 0, tree_size, seq - 1, path, &path_len);
        if (checkpoint) {
            audit_checkpoint cp;
            if (audit_checkpoint_parse(checkpoint, strlen(checkpoint), &cp, NULL, 0) != AUDIT_OK ||
                memcmp(cp.root, root, AUDIT_HASH_LEN) != 0)
                rc = audit_fail(err, errlen, AUDIT_E_CRYPTO,
                                "the log's root at size %llu differs from the checkpoint's",
                                (unsigned long long)tree_size);
        }
    }
    json_t *doc = NULL;
    if (rc == AUDIT_OK) {
        doc = proof_document(log, seq, tree_size, record, len, prev, hash, root,
                             (const uint8_t(*)[AUDIT_HASH_LEN])path, path_len, checkpoint);
        *out_json = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (!*out_json)
            rc = audit_fail(err, errlen, AUDIT_E_NOMEM, "out of memory building the proof");
    }
    json_decref(doc);
    free(record);
    free(h);
    return rc;
}

/* Reads a fixed-size hex or base64 field of a proof document. */
static int proof_hash_field(json_t *doc, const char *key, int base64, uint8_t out[AUDIT_HASH_LEN])
{
    const char *s = json_string_value(json_object_get(doc, key));
    if (!s)
        return -1;
    if (base64)
        return b64_decode(s, strlen(s), out, AUDIT_HASH_LEN) == AUDIT_HASH_LEN ? 0 : -1;
    return hex_decode(s, out, AUDIT_HASH_LEN);
}

static int proof_check_entry(json_t *doc, uint8_t hash[AUDIT_HASH_LEN], char *err, size_t errlen)
{
    uint8_t prev[AUDIT_HASH_LEN], calc[AUDIT_HASH_LEN];
    const char *rec = json_string_value(json_object_get(doc, "record_b64"));
    json_int_t seq = json_integer_value(json_object_get(doc, "seq"));
    if (!rec || proof_hash_field(doc, "prev_hash", 0, prev) != 0 ||
        proof_hash_field(doc, "entry_hash", 0, hash) != 0)
        return audit_fail(err, errlen, AUDIT_E_INVALID, "proof: entry fields are missing");
    size_t cap = strlen(rec) / 4 * 3 + 1;
    uint8_t *bytes = malloc(cap);
    long n = bytes ? b64_decode(rec, strlen(rec), bytes, cap) : -1;
    json_t *obj = NULL;
    int rc = AUDIT_OK;
    if (n < 0 || !canon_is_canonical(bytes, (size_t)n, &obj))
        rc = audit_fail(err, errlen, AUDIT_E_INVALID, "proof: the record is not canonical JSON");
    else if (json_integer_value(json_object_get(obj, "seq")) != seq)
        rc = audit_fail(err, errlen, AUDIT_E_CRYPTO, "proof: the record is not entry %lld",
                        (long long)seq);
    else if (audit_entry_hash(prev, bytes, (size_t)n, calc) != 0 ||
             memcmp(calc, hash, AUDIT_HASH_LEN) != 0)
        rc = audit_fail(err, errlen, AUDIT_E_CRYPTO,
                        "proof: entry_hash is not the hash of the record");
    json_decref(obj);
    free(bytes);
    return rc;
}

static int proof_check_checkpoint(json_t *doc, uint64_t tree_size,
                                  const uint8_t root[AUDIT_HASH_LEN], const uint8_t *pk, char *err,
                                  size_t errlen)
{
    const char *note = json_string_value(json_object_get(doc, "checkpoint"));
    if (!note)
        return pk ? audit_fail(err, errlen, AUDIT_E_CRYPTO,
                               "proof: no checkpoint to check the signature of")
                  : AUDIT_OK;
    audit_checkpoint cp;
    int rc = audit_checkpoint_parse(note, strlen(note), &cp, err, errlen);
    if (rc != AUDIT_OK)
        return rc;
    if (cp.tree_size != tree_size || memcmp(cp.root, root, AUDIT_HASH_LEN) != 0)
        return audit_fail(err, errlen, AUDIT_E_CRYPTO,
                          "proof: the checkpoint's size or root differs from the proof's");
    return pk ? audit_checkpoint_verify_sig(note, strlen(note), pk, err, errlen) : AUDIT_OK;
}

int audit_proof_verify(const char *proof_json, size_t len, const uint8_t *pk, char *err,
                       size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(proof_json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return audit_fail(err, errlen, AUDIT_E_INVALID, "proof is not JSON: %s", jerr.text);
    const char *format = json_string_value(json_object_get(doc, "format"));
    if (format && strcmp(format, "appliance-audit-consistency-proof/v1") == 0) {
        int crc = audit_consistency_verify_doc(doc, pk, err, errlen);
        json_decref(doc);
        return crc;
    }
    if (!format || strcmp(format, "appliance-audit-inclusion-proof/v1") != 0) {
        json_decref(doc);
        return audit_fail(err, errlen, AUDIT_E_INVALID, "proof: unknown format");
    }
    uint8_t hash[AUDIT_HASH_LEN], root[AUDIT_HASH_LEN], path[64][AUDIT_HASH_LEN];
    json_t *jpath = json_object_get(doc, "path");
    json_int_t idx = json_integer_value(json_object_get(doc, "leaf_index"));
    json_int_t size = json_integer_value(json_object_get(doc, "tree_size"));
    json_int_t seq = json_integer_value(json_object_get(doc, "seq"));
    int rc = proof_check_entry(doc, hash, err, errlen);
    if (rc == AUDIT_OK &&
        (!json_is_array(jpath) || json_array_size(jpath) > 64 || idx < 0 || idx + 1 != seq ||
         size <= idx || proof_hash_field(doc, "root", 1, root) != 0))
        rc = audit_fail(err, errlen, AUDIT_E_INVALID, "proof: index, size, root or path malformed");
    for (size_t i = 0; rc == AUDIT_OK && i < json_array_size(jpath); i++) {
        const char *s = json_string_value(json_array_get(jpath, i));
        if (!s || hex_decode(s, path[i], AUDIT_HASH_LEN) != 0)
            rc = audit_fail(err, errlen, AUDIT_E_INVALID, "proof: path element %zu malformed", i);
    }
    if (rc == AUDIT_OK && audit_merkle_verify_inclusion(hash, (uint64_t)idx, (uint64_t)size,
                                                        (const uint8_t(*)[AUDIT_HASH_LEN])path,
                                                        json_array_size(jpath), root) != AUDIT_OK)
        rc = audit_fail(err, errlen, AUDIT_E_CRYPTO,
                        "proof: the audit path does not lead to the root");
    if (rc == AUDIT_OK)
        rc = proof_check_checkpoint(doc, (uint64_t)size, root, pk, err, errlen);
    json_decref(doc);
    return rc;
}
