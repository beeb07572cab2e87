/* RFC 6962 consistency proofs: a newer tree extends an older one, shown
 * without the entries, so an auditor holding two checkpoints can check that
 * nothing before the older one was rewritten. */
#include "audit_internal.h"

#include <stdlib.h>
#include <string.h>

static uint64_t split_point(uint64_t n)
{
    uint64_t k = 1;
    while (k << 1 < n)
        k <<= 1;
    return k;
}

/* RFC 6962 2.1.2 SUBPROOF(m, D[lo:lo+n], b), appended to path. */
static void subproof(const uint8_t (*h)[AUDIT_HASH_LEN], uint64_t lo, uint64_t n, uint64_t m, int b,
                     uint8_t (*path)[AUDIT_HASH_LEN], size_t *len)
{
    if (m == n) {
        if (!b)
            audit_merkle_root(h + lo, n, path[(*len)++]);
        return;
    }
    uint64_t k = split_point(n);
    if (m <= k) {
        subproof(h, lo, k, m, b, path, len);
        audit_merkle_root(h + lo + k, n - k, path[(*len)++]);
    } else {
        subproof(h, lo + k, n - k, m - k, 0, path, len);
        audit_merkle_root(h + lo, k, path[(*len)++]);
    }
}

int audit_merkle_verify_consistency(uint64_t first, uint64_t second,
                                    const uint8_t first_root[AUDIT_HASH_LEN],
                                    const uint8_t second_root[AUDIT_HASH_LEN],
                                    const uint8_t (*path)[AUDIT_HASH_LEN], size_t path_len)
{
    if (first > second)
        return AUDIT_E_INVALID;
    if (first == second) /* RFC 9162 2.1.4.2: empty proof, equal roots */
        return path_len == 0 && memcmp(first_root, second_root, AUDIT_HASH_LEN) == 0
                   ? AUDIT_OK
                   : AUDIT_E_CRYPTO;
    if (first == 0) /* the empty tree is a prefix of every tree */
        return path_len == 0 ? AUDIT_OK : AUDIT_E_CRYPTO;
    /* RFC 9162 2.1.4.2, with first_root prepended when first is a power of 2. */
    const uint8_t *p0 = path_len ? path[0] : NULL;
    size_t i = 0;
    if ((first & (first - 1)) == 0)
        p0 = first_root;
    else
        i = 1;
    if (!p0)
        return AUDIT_E_CRYPTO;
    uint64_t fn = first - 1, sn = second - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    uint8_t fr[AUDIT_HASH_LEN], sr[AUDIT_HASH_LEN];
    memcpy(fr, p0, AUDIT_HASH_LEN);
    memcpy(sr, p0, AUDIT_HASH_LEN);
    for (; i < path_len; i++) {
        if (sn == 0)
            return AUDIT_E_CRYPTO;
        if ((fn & 1) || fn == sn) {
            merkle_node_hash(path[i], fr, fr);
            merkle_node_hash(path[i], sr, sr);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            merkle_node_hash(sr, path[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && memcmp(fr, first_root, AUDIT_HASH_LEN) == 0 &&
                   memcmp(sr, second_root, AUDIT_HASH_LEN) == 0
               ? AUDIT_OK
               : AUDIT_E_CRYPTO;
}

/* Parses a checkpoint and checks it names this log. */
static int parse_for_log(audit_log *log, const char *note, audit_checkpoint *cp, char *err,
                         size_t errlen)
{
    int rc = audit_checkpoint_parse(note, strlen(note), cp, err, errlen);
    if (rc == AUDIT_OK && strcmp(cp->origin, log->origin) != 0)
        rc = audit_fail(err, errlen, AUDIT_E_INVALID, "checkpoint is for log '%s', not '%s'",
                        cp->origin, log->origin);
    return rc;
}

static char *consistency_document(audit_log *log, uint64_t m, uint64_t n,
                                  const uint8_t old_root[AUDIT_HASH_LEN],
                                  const uint8_t new_root[AUDIT_HASH_LEN],
                                  const uint8_t (*path)[AUDIT_HASH_LEN], size_t len,
                                  const char *old_note, const char *new_note)
{
    char b64old[64], b64new[64], hex[2 * AUDIT_HASH_LEN + 1];
    b64_encode(old_root, AUDIT_HASH_LEN, b64old);
    b64_encode(new_root, AUDIT_HASH_LEN, b64new);
    json_t *jpath = json_array();
    for (size_t i = 0; jpath && i < len; i++) {
        hex_encode(path[i], AUDIT_HASH_LEN, hex);
        json_array_append_new(jpath, json_string(hex));
    }
    json_t *doc = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:o, s:s, s:o}", "format",
                            "appliance-audit-consistency-proof/v1", "origin", log->origin,
                            "old_size", (json_int_t)m, "new_size", (json_int_t)n, "old_root",
                            b64old, "new_root", b64new, "path", jpath, "old_checkpoint", old_note,
                            "new_checkpoint", new_note ? json_string(new_note) : json_null());
    char *s = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    return s;
}

int audit_prove_consistency(audit_log *log, const char *old_note, const char *new_note,
                            char **out_json, char *err, size_t errlen)
{
    audit_checkpoint oldcp, newcp;
    uint64_t count;
    uint8_t head[AUDIT_HASH_LEN];
    *out_json = NULL;
    int rc = parse_for_log(log, old_note, &oldcp, err, errlen);
    if (rc == AUDIT_OK && new_note)
        rc = parse_for_log(log, new_note, &newcp, err, errlen);
    if (rc == AUDIT_OK)
        rc = audit_head(log, &count, head, err, errlen);
    if (rc != AUDIT_OK)
        return rc;
    uint64_t m = oldcp.tree_size, n = new_note ? newcp.tree_size : count;
    if (m > n || n > count)
        return audit_fail(err, errlen, AUDIT_E_INVALID,
                          "cannot prove size %llu extends to size %llu in a log of %llu entries",
                          (unsigned long long)m, (unsigned long long)n, (unsigned long long)count);
    uint8_t(*h)[AUDIT_HASH_LEN] = NULL, old_root[AUDIT_HASH_LEN], new_root[AUDIT_HASH_LEN];
    uint8_t path[130][AUDIT_HASH_LEN];
    size_t len = 0;
    rc = audit_load_hashes(log, n, &h, err, errlen);
    if (rc != AUDIT_OK)
        return rc;
    const uint8_t(*ch)[AUDIT_HASH_LEN] = (const uint8_t(*)[AUDIT_HASH_LEN])h;
    audit_merkle_root(ch, m, old_root);
    audit_merkle_root(ch, n, new_root);
    if (m > 0 && m < n)
        subproof(ch, 0, n, m, 1, path, &len);
    free(h);
    if (memcmp(old_root, oldcp.root, AUDIT_HASH_LEN) != 0 ||
        (new_note && memcmp(new_root, newcp.root, AUDIT_HASH_LEN) != 0))
        return audit_fail(err, errlen, AUDIT_E_CRYPTO,
                          "the log's root differs from a checkpoint's: it does not extend it");
    *out_json =
        consistency_document(log, m, n, old_root, new_root, (const uint8_t(*)[AUDIT_HASH_LEN])path,
                             len, old_note, new_note);
    return *out_json ? AUDIT_OK
                     : audit_fail(err, errlen, AUDIT_E_NOMEM, "out of memory building the proof");
}

/* A checkpoint embedded in a consistency proof must match its size and
 * root; with pk its signature must verify. */
static int check_embedded(const char *note, uint64_t size, const uint8_t root[AUDIT_HASH_LEN],
                          const uint8_t *pk, const char *which, char *err, size_t errlen)
{
    audit_checkpoint cp;
    if (!note)
        return pk ? audit_fail(err, errlen, AUDIT_E_CRYPTO,
                               "proof: no %s checkpoint to check the signature of", which)
                  : AUDIT_OK;
    int rc = audit_checkpoint_parse(note, strlen(note), &cp, err, errlen);
    if (rc != AUDIT_OK)
        return rc;
    if (cp.tree_size != size || memcmp(cp.root, root, AUDIT_HASH_LEN) != 0)
        return audit_fail(err, errlen, AUDIT_E_CRYPTO,
                          "proof: the %s checkpoint's size or root differs from the proof's",
                          which);
    return pk ? audit_checkpoint_verify_sig(note, strlen(note), pk, err, errlen) : AUDIT_OK;
}

int audit_consistency_verify_doc(json_t *doc, const uint8_t *pk, char *err, size_t errlen)
{
    json_int_t m = json_integer_value(json_object_get(doc, "old_size"));
    json_int_t n = json_integer_value(json_object_get(doc, "new_size"));
    const char *o64 = json_string_value(json_object_get(doc, "old_root"));
    const char *n64 = json_string_value(json_object_get(doc, "new_root"));
    json_t *jpath = json_object_get(doc, "path");
    uint8_t old_root[AUDIT_HASH_LEN], new_root[AUDIT_HASH_LEN], path[130][AUDIT_HASH_LEN];
    if (m < 0 || n < m || !o64 || !n64 || !json_is_array(jpath) || json_array_size(jpath) > 130 ||
        b64_decode(o64, strlen(o64), old_root, AUDIT_HASH_LEN) != AUDIT_HASH_LEN ||
        b64_decode(n64, strlen(n64), new_root, AUDIT_HASH_LEN) != AUDIT_HASH_LEN)
        return audit_fail(err, errlen, AUDIT_E_INVALID, "proof: sizes, roots or path malformed");
    for (size_t i = 0; i < json_array_size(jpath); i++) {
        const char *s = json_string_value(json_array_get(jpath, i));
        if (!s || hex_decode(s, path[i], AUDIT_HASH_LEN) != 0)
            return audit_fail(err, errlen, AUDIT_E_INVALID, "proof: path element %zu malformed", i);
    }
    if (audit_merkle_verify_consistency((uint64_t)m, (uint64_t)n, old_root, new_root,
                                        (const uint8_t(*)[AUDIT_HASH_LEN])path,
                                        json_array_size(jpath)) != AUDIT_OK)
        return audit_fail(err, errlen, AUDIT_E_CRYPTO,
                          "proof: the tree of size %lld does not extend the tree of size %lld",
                          (long long)n, (long long)m);
    const char *oldn = json_string_value(json_object_get(doc, "old_checkpoint"));
    if (!oldn)
        return audit_fail(err, errlen, AUDIT_E_INVALID, "proof: no old checkpoint");
    int rc = check_embedded(oldn, (uint64_t)m, old_root, pk, "old", err, errlen);
    if (rc == AUDIT_OK)
        rc = check_embedded(json_string_value(json_object_get(doc, "new_checkpoint")), (uint64_t)n,
                            new_root, pk, "new", err, errlen);
    return rc;
}
