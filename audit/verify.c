/* Re-verification of a whole log: chain, records, clock, in-log checkpoints,
 * an optional external checkpoint, and incomplete requests. The check order
 * per row is part of the format (FORMAT.md) so verify_log.py agrees. */
#include "audit_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const failure_codes[] = {
    "none",   "meta",  "gap",        "record",    "reorder",  "prev",      "hash",
    "column", "clock", "checkpoint", "truncated", "diverged", "signature",
};

const char *audit_failure_code(audit_failure f)
{
    return (unsigned)f < sizeof failure_codes / sizeof failure_codes[0] ? failure_codes[f] : "?";
}

typedef struct request_ref {
    char *id;
    uint64_t seq;
} request_ref;

typedef struct ref_list {
    request_ref *v;
    size_t n, cap;
} ref_list;

typedef struct key_list {
    uint8_t (*pk)[32];
    size_t n, cap;
} key_list;

/* Everything the single pass over the rows carries along. */
typedef struct vstate {
    audit_log *log;
    audit_verify_result *res;
    uint64_t expected;
    uint8_t prev[AUDIT_HASH_LEN];
    char last_ts[AUDIT_TS_LEN + 1];
    merkle_stack tree;
    uint64_t want_size; /* external checkpoint size, or UINT64_MAX */
    uint8_t root_at_want[AUDIT_HASH_LEN];
    ref_list prompts, closers;
    key_list keys; /* public keys of in-log checkpoints */
    int nomem;
} vstate;

/* One row, as read from the table. */
typedef struct vrow {
    uint64_t seq;
    const char *ts, *kind, *request_id, *actor;
    const uint8_t *record, *prev_hash, *hash;
    size_t record_len;
    int prev_len, hash_len;
} vrow;

static int fail_at(vstate *s, audit_failure f, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(vstate *s, audit_failure f, uint64_t seq, const char *fmt, ...)
{
    va_list ap;
    s->res->ok = 0;
    s->res->failure = f;
    s->res->first_bad_seq = seq;
    va_start(ap, fmt);
    vsnprintf(s->res->reason, sizeof s->res->reason, fmt, ap);
    va_end(ap);
    return 1;
}

static void refs_add(vstate *s, ref_list *l, const char *id, uint64_t seq)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        request_ref *nv = realloc(l->v, cap * sizeof *nv);
        if (!nv) {
            s->nomem = 1;
            return;
        }
        l->v = nv;
        l->cap = cap;
    }
    char *copy = strdup(id);
    if (!copy) {
        s->nomem = 1;
        return;
    }
    l->v[l->n++] = (request_ref){copy, seq};
}

static void refs_free(ref_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].id);
    free(l->v);
}

static void keys_add(vstate *s, const uint8_t pk[32])
{
    if (s->keys.n == s->keys.cap) {
        size_t cap = s->keys.cap ? s->keys.cap * 2 : 8;
        uint8_t(*nk)[32] = realloc(s->keys.pk, cap * sizeof *nk);
        if (!nk) {
            s->nomem = 1;
            return;
        }
        s->keys.pk = nk;
        s->keys.cap = cap;
    }
    memcpy(s->keys.pk[s->keys.n++], pk, 32);
}

/* Shape of a record object: exactly the seven keys with the right types. */
static int record_shape_ok(json_t *obj)
{
    static const char *const strings[] = {"ts", "kind", "request_id", "actor", "log_id"};
    audit_kind k;
    if (json_object_size(obj) != 7 || !json_is_integer(json_object_get(obj, "seq")) ||
        !json_is_object(json_object_get(obj, "body")))
        return 0;
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (!json_is_string(json_object_get(obj, strings[i])))
            return 0;
    return audit_kind_from_name(json_string_value(json_object_get(obj, "kind")), &k) == AUDIT_OK &&
           audit_ts_valid(json_string_value(json_object_get(obj, "ts")));
}

static int str_field_is(json_t *obj, const char *key, const char *col)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v && col && strcmp(v, col) == 0;
}

/* Checks an in-log checkpoint entry against the tree of the entries before it. */
static int check_checkpoint_entry(vstate *s, const vrow *r, json_t *body)
{
    const char *note = json_string_value(json_object_get(body, "checkpoint"));
    const char *pk64 = json_string_value(json_object_get(body, "public_key"));
    json_t *jsize = json_object_get(body, "tree_size");
    uint8_t pk[33], root[AUDIT_HASH_LEN];
    audit_checkpoint cp;
    char why[160];
    if (!note || !pk64 || !json_is_integer(jsize) ||
        b64_decode(pk64, strlen(pk64), pk, sizeof pk) != 32)
        return fail_at(s, AUDIT_FAIL_CHECKPOINT, r->seq, "checkpoint entry %llu is malformed",
                       (unsigned long long)r->seq);
    if (audit_checkpoint_parse(note, strlen(note), &cp, why, sizeof why) != AUDIT_OK)
        return fail_at(s, AUDIT_FAIL_CHECKPOINT, r->seq, "checkpoint entry %llu: %s",
                       (unsigned long long)r->seq, why);
    merkle_stack_root(&s->tree, root);
    if ((uint64_t)json_integer_value(jsize) != r->seq - 1 || cp.tree_size != r->seq - 1 ||
        strcmp(cp.origin, s->log->origin) != 0 || memcmp(cp.root, root, AUDIT_HASH_LEN) != 0 ||
        memcmp(cp.chain_head, s->prev, AUDIT_HASH_LEN) != 0)
        return fail_at(s, AUDIT_FAIL_CHECKPOINT, r->seq,
                       "checkpoint entry %llu does not match the %llu entries before it",
                       (unsigned long long)r->seq, (unsigned long long)(r->seq - 1));
    if (audit_checkpoint_verify_sig(note, strlen(note), pk, why, sizeof why) != AUDIT_OK)
        return fail_at(s, AUDIT_FAIL_CHECKPOINT, r->seq, "checkpoint entry %llu: %s",
                       (unsigned long long)r->seq, why);
    keys_add(s, pk);
    s->res->checkpoints++;
    return 0;
}

/* The per-row checks in their documented order; returns 1 on the first failure. */
static int check_row(vstate *s, const vrow *r)
{
    unsigned long long seq = (unsigned long long)r->seq;
    if (r->seq != s->expected)
        return fail_at(s, AUDIT_FAIL_GAP, s->expected, "entry %llu is missing (next row is %llu)",
                       (unsigned long long)s->expected, seq);
    json_t *obj = NULL;
    if (!canon_is_canonical(r->record, r->record_len, &obj) || !record_shape_ok(obj)) {
        json_decref(obj);
        return fail_at(s, AUDIT_FAIL_RECORD, seq,
                       "entry %llu: record is not a canonical audit record", seq);
    }
    int rc = 0;
    uint8_t calc[AUDIT_HASH_LEN];
    json_int_t rseq = json_integer_value(json_object_get(obj, "seq"));
    const char *ts = json_string_value(json_object_get(obj, "ts"));
    if (rseq != (json_int_t)r->seq)
        rc = fail_at(s, AUDIT_FAIL_REORDER, seq, "row %llu holds the record of entry %lld", seq,
                     (long long)rseq);
    else if (r->prev_len != AUDIT_HASH_LEN || memcmp(r->prev_hash, s->prev, AUDIT_HASH_LEN) != 0)
        rc = fail_at(s, AUDIT_FAIL_PREV, seq, "entry %llu: prev_hash is not the hash of entry %llu",
                     seq, seq - 1);
    else if (audit_entry_hash(s->prev, r->record, r->record_len, calc) != 0 ||
             r->hash_len != AUDIT_HASH_LEN || memcmp(calc, r->hash, AUDIT_HASH_LEN) != 0)
        rc = fail_at(s, AUDIT_FAIL_HASH, seq, "entry %llu: hash mismatch", seq);
    else if (!str_field_is(obj, "ts", r->ts) || !str_field_is(obj, "kind", r->kind) ||
             !str_field_is(obj, "request_id", r->request_id) ||
             !str_field_is(obj, "actor", r->actor) || !str_field_is(obj, "log_id", s->log->log_id))
        rc = fail_at(s, AUDIT_FAIL_COLUMN, seq,
                     "entry %llu: a column (ts, kind, request_id, actor) or the log id disagrees "
                     "with the record",
                     seq);
    else if (strcmp(ts, s->last_ts) < 0)
        rc = fail_at(s, AUDIT_FAIL_CLOCK, seq,
                     "entry %llu: timestamp %s is earlier than the previous entry's %s", seq, ts,
                     s->last_ts);
    else if (strcmp(r->kind, "checkpoint") == 0)
        rc = check_checkpoint_entry(s, r, json_object_get(obj, "body"));
    json_decref(obj);
    return rc;
}

/* Bookkeeping after a row verified: chain state, tree, request tracking. */
static void accept_row(vstate *s, const vrow *r)
{
    memcpy(s->prev, r->hash, AUDIT_HASH_LEN);
    snprintf(s->last_ts, sizeof s->last_ts, "%s", r->ts);
    merkle_stack_push(&s->tree, r->hash);
    if (s->tree.size == s->want_size)
        merkle_stack_root(&s->tree, s->root_at_want);
    if (strcmp(r->kind, "prompt") == 0)
        refs_add(s, &s->prompts, r->request_id, r->seq);
    else if (strcmp(r->kind, "output") == 0 || strcmp(r->kind, "refusal") == 0 ||
             strcmp(r->kind, "error") == 0)
        refs_add(s, &s->closers, r->request_id, r->seq);
    s->expected++;
    s->res->entries++;
}

static int walk_rows(vstate *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->log->db,
                                "SELECT seq, ts, kind, request_id, actor, record, prev_hash, hash"
                                " FROM entries ORDER BY seq",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return audit_sqlite_fail(s->log->db, rc, "reading entries", err, errlen);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        vrow r = {
            .seq = (uint64_t)sqlite3_column_int64(st, 0),
            .ts = (const char *)sqlite3_column_text(st, 1),
            .kind = (const char *)sqlite3_column_text(st, 2),
            .request_id = (const char *)sqlite3_column_text(st, 3),
            .actor = (const char *)sqlite3_column_text(st, 4),
            .record = sqlite3_column_blob(st, 5),
            .record_len = (size_t)sqlite3_column_bytes(st, 5),
            .prev_hash = sqlite3_column_blob(st, 6),
            .prev_len = sqlite3_column_bytes(st, 6),
            .hash = sqlite3_column_blob(st, 7),
            .hash_len = sqlite3_column_bytes(st, 7),
        };
        if (!r.record)
            r.record = (const uint8_t *)"";
        if (check_row(s, &r))
            break;
        accept_row(s, &r);
    }
    int out = AUDIT_OK;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        out = audit_sqlite_fail(s->log->db, rc, "reading entries", err, errlen);
    else if (s->nomem)
        out = audit_fail(err, errlen, AUDIT_E_NOMEM, "audit verify: out of memory");
    sqlite3_finalize(st);
    return out;
}

/* Finds the key for the external checkpoint among the log's own keys. */
static const uint8_t *key_from_log(vstate *s, const audit_checkpoint *cp)
{
    for (size_t i = 0; i < s->keys.n; i++) {
        uint8_t id[4];
        audit_note_key_id(cp->key_name, s->keys.pk[i], id);
        if (memcmp(id, cp->key_id, 4) == 0)
            return s->keys.pk[i];
    }
    return NULL;
}

/* External checkpoint: well-formed, for this log, signed, and extended by the log. */
static void check_external(vstate *s, const audit_verify_opts *o)
{
    audit_checkpoint cp;
    char why[200];
    if (audit_checkpoint_parse(o->checkpoint, o->checkpoint_len, &cp, why, sizeof why) != 0) {
        fail_at(s, AUDIT_FAIL_SIGNATURE, 0, "%s", why);
        return;
    }
    if (strcmp(cp.origin, s->log->origin) != 0) {
        fail_at(s, AUDIT_FAIL_SIGNATURE, 0, "the checkpoint is for '%s', not this log '%s'",
                cp.origin, s->log->origin);
        return;
    }
    const uint8_t *pk = o->checkpoint_pubkey;
    if (!pk) {
        pk = key_from_log(s, &cp);
        s->res->checkpoint_key_from_log = 1;
    }
    if (!pk) {
        fail_at(s, AUDIT_FAIL_SIGNATURE, 0,
                "the checkpoint's key id matches no key recorded in this log (replaced log or "
                "forged checkpoint); pass the device public key to check it");
        return;
    }
    if (audit_checkpoint_verify_sig(o->checkpoint, o->checkpoint_len, pk, why, sizeof why) != 0) {
        fail_at(s, AUDIT_FAIL_SIGNATURE, 0, "%s", why);
        return;
    }
    if (cp.tree_size > s->res->entries)
        fail_at(s, AUDIT_FAIL_TRUNCATED, s->res->entries + 1,
                "the log has %llu entries but the checkpoint covers %llu (truncated or rolled "
                "back)",
                (unsigned long long)s->res->entries, (unsigned long long)cp.tree_size);
    else if (memcmp(cp.root, s->root_at_want, AUDIT_HASH_LEN) != 0)
        fail_at(s, AUDIT_FAIL_DIVERGED, cp.tree_size,
                "the log's Merkle root at size %llu differs from the checkpoint's (entries "
                "1..%llu were replaced)",
                (unsigned long long)cp.tree_size, (unsigned long long)cp.tree_size);
}

static int ref_cmp(const void *a, const void *b)
{
    const request_ref *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Prompts with no later output, refusal or error of the same request id. */
static int collect_incomplete(vstate *s)
{
    if (s->closers.n)
        qsort(s->closers.v, s->closers.n, sizeof *s->closers.v, ref_cmp);
    audit_verify_result *res = s->res;
    res->incomplete = calloc(s->prompts.n ? s->prompts.n : 1, sizeof *res->incomplete);
    if (!res->incomplete)
        return -1;
    for (size_t i = 0; i < s->prompts.n; i++) {
        const request_ref *p = &s->prompts.v[i];
        /* Last closer with this id has the largest seq. */
        size_t lo = 0, hi = s->closers.n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (strcmp(s->closers.v[mid].id, p->id) <= 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        int closed = lo > 0 && strcmp(s->closers.v[lo - 1].id, p->id) == 0 &&
                     s->closers.v[lo - 1].seq > p->seq;
        if (!closed && !(res->incomplete[res->n_incomplete++] = strdup(p->id)))
            return -1;
    }
    return 0;
}

static int triggers_present(audit_log *log)
{
    sqlite3_stmt *st = NULL;
    int n = 0;
    if (sqlite3_prepare_v2(log->db,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN"
                           " ('entries_no_update', 'entries_no_delete')",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n == 2;
}

int audit_verify(audit_log *log, const audit_verify_opts *opts, audit_verify_result *res, char *err,
                 size_t errlen)
{
    audit_verify_opts none = {0};
    const audit_verify_opts *o = opts ? opts : &none;
    memset(res, 0, sizeof *res);
    res->ok = 1;
    vstate s = {.log = log, .res = res, .expected = 1, .want_size = UINT64_MAX};
    merkle_stack_init(&s.tree);
    audit_checkpoint cp;
    if (o->checkpoint &&
        audit_checkpoint_parse(o->checkpoint, o->checkpoint_len, &cp, NULL, 0) == AUDIT_OK)
        s.want_size = cp.tree_size;
    if (s.want_size == 0)
        merkle_stack_root(&s.tree, s.root_at_want);
    int rc = sqlite3_exec(log->db, "BEGIN", NULL, NULL, NULL); /* one consistent snapshot */
    if (rc != SQLITE_OK)
        return audit_sqlite_fail(log->db, rc, "starting a read", err, errlen);
    rc = walk_rows(&s, err, errlen);
    res->triggers_missing = !triggers_present(log);
    (void)sqlite3_exec(log->db, "COMMIT", NULL, NULL, NULL);
    memcpy(res->head, s.prev, AUDIT_HASH_LEN);
    if (rc == AUDIT_OK && res->ok && o->checkpoint)
        check_external(&s, o);
    if (rc == AUDIT_OK && collect_incomplete(&s) != 0)
        rc = audit_fail(err, errlen, AUDIT_E_NOMEM, "audit verify: out of memory");
    refs_free(&s.prompts);
    refs_free(&s.closers);
    free(s.keys.pk);
    if (rc != AUDIT_OK)
        audit_verify_result_free(res);
    return rc;
}

void audit_verify_result_free(audit_verify_result *res)
{
    for (size_t i = 0; i < res->n_incomplete; i++)
        free(res->incomplete[i]);
    free(res->incomplete);
    res->incomplete = NULL;
    res->n_incomplete = 0;
}
