/* Tamper suite: every edit an attacker with file access can make is detected
 * with the right first bad sequence number, by the C verifier and by the
 * independent audit/verify_log.py, which must agree. */
#include "test_audit_helpers.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* The reference log: 8 entries, an in-log checkpoint (9), 5 more (10..14),
 * then the external checkpoint over 14 entries (stored as entry 15). */
#define ENTRIES_BEFORE_CP 14

typedef struct fixture {
    char *dir;
    char good[4200], work[4200], cp_file[4200], pem[4200];
    char *checkpoint;
    uint8_t pk[32], sk[64];
} fixture;

static void add(audit_log *log, audit_kind k, const char *rid, const char *body)
{
    char err[256];
    if (audit_append(log, k, rid, "clinician:alice", body, strlen(body), NULL, NULL, err,
                     sizeof err) != AUDIT_OK)
        fail_msg("append: %s", err);
}

static void build_reference(fixture *f)
{
    char err[256];
    audit_log *log = NULL;
    audit_open_opts o = {.create = 1};
    uint64_t seq;
    char *note = NULL;
    assert_int_equal(audit_open(&log, f->good, &o, err, sizeof err), AUDIT_OK);
    add(log, AUDIT_KIND_INIT, "", "{\"home\":\"/var/lib/appliance\"}");
    add(log, AUDIT_KIND_SESSION_START, "", "{\"pid\":42}");
    add(log, AUDIT_KIND_MODEL_LOAD, "", "{\"model\":\"sha256:abcd\",\"signer\":\"pub1\"}");
    add(log, AUDIT_KIND_PROMPT, "req-1", "{\"content\":{\"mode\":\"plaintext\",\"text\":\"hi\"}}");
    add(log, AUDIT_KIND_OUTPUT, "req-1", "{\"tokens\":12,\"finish\":\"stop\"}");
    add(log, AUDIT_KIND_ATTESTATION, "req-1", "{\"envelope\":\"e30=\"}");
    add(log, AUDIT_KIND_PROMPT, "req-2", "{\"content\":{\"mode\":\"plaintext\",\"text\":\"x\"}}");
    add(log, AUDIT_KIND_REFUSAL, "req-2", "{\"why\":\"too long\"}");
    assert_int_equal(audit_checkpoint_create(log, f->sk, "device", &note, &seq, err, sizeof err),
                     AUDIT_OK);
    assert_int_equal(seq, 9);
    free(note);
    add(log, AUDIT_KIND_POLICY_CHANGE, "", "{\"old\":\"a\",\"new\":\"b\"}");
    add(log, AUDIT_KIND_PROMPT, "req-3", "{\"content\":{\"mode\":\"plaintext\",\"text\":\"y\"}}");
    add(log, AUDIT_KIND_OUTPUT, "req-3", "{\"tokens\":3}");
    add(log, AUDIT_KIND_AUDIT_READ, "", "{\"range\":[1,12]}");
    add(log, AUDIT_KIND_PROMPT, "req-4", "{\"content\":{\"mode\":\"plaintext\",\"text\":\"z\"}}");
    assert_int_equal(
        audit_checkpoint_create(log, f->sk, "device", &f->checkpoint, &seq, err, sizeof err),
        AUDIT_OK);
    assert_int_equal(seq, ENTRIES_BEFORE_CP + 1);
    audit_close(log);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = test_mkdtemp();
    snprintf(f->good, sizeof f->good, "%s/good.db", f->dir);
    snprintf(f->work, sizeof f->work, "%s/work.db", f->dir);
    snprintf(f->cp_file, sizeof f->cp_file, "%s/checkpoint.txt", f->dir);
    snprintf(f->pem, sizeof f->pem, "%s/device.pub.pem", f->dir);
    if (sodium_init() < 0)
        return -1;
    crypto_sign_keypair(f->pk, f->sk);
    build_reference(f);
    assert_int_equal(write_text(f->cp_file, f->checkpoint), 0);
    assert_int_equal(write_pubkey_pem(f->pem, f->pk), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    free(f->checkpoint);
    test_rmtree(f->dir);
    free(f);
    return 0;
}

/* Both verifiers must say exactly `code` at `seq` (code "ok": seq ignored). */
static void expect_both(fixture *f, const char *cp, const char *cp_file, const uint8_t *pk,
                        const char *pem, const char *code, unsigned long long seq, const char *what)
{
    verdict c = c_verify(f->work, cp, pk);
    verdict p = py_verify(f->work, cp_file, pem);
    if (strcmp(c.code, code) != 0 || strcmp(p.code, code) != 0 ||
        (strcmp(code, "ok") != 0 && (c.seq != seq || p.seq != seq)))
        fail_msg("%s: want %s@%llu, C says %s@%llu, Python says %s@%llu", what, code, seq, c.code,
                 c.seq, p.code, p.seq);
    if (c.ok && (c.entries != p.entries || strcmp(c.head, p.head) != 0 ||
                 strcmp(c.incomplete, p.incomplete) != 0))
        fail_msg("%s: verifiers disagree on a good log: %llu/%llu entries, incomplete '%s' vs '%s'",
                 what, c.entries, p.entries, c.incomplete, p.incomplete);
}

static void fresh_copy(fixture *f)
{
    assert_int_equal(copy_db(f->good, f->work), 0);
}

static void test_good_log_verifies_in_both(void **state)
{
    fixture *f = *state;
    fresh_copy(f);
    expect_both(f, NULL, NULL, NULL, NULL, "ok", 0, "good log");
    expect_both(f, f->checkpoint, f->cp_file, NULL, NULL, "ok", 0, "good log + checkpoint");
    expect_both(f, f->checkpoint, f->cp_file, f->pk, f->pem, "ok", 0, "good log + pinned key");
    verdict c = c_verify(f->work, NULL, NULL);
    assert_int_equal(c.entries, ENTRIES_BEFORE_CP + 1);
    assert_string_equal(c.incomplete, "req-4 ");
}

/* Flips one byte in the middle of one column of one row. */
static void flip_byte(const char *path, unsigned long long seq, const char *col)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char sql[256];
    assert_int_equal(attack_sql(path, NULL), 0);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof sql, "SELECT %s, typeof(%s) FROM entries WHERE seq = %llu", col, col, seq);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int is_text = strcmp((const char *)sqlite3_column_text(st, 1), "text") == 0;
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    char *v = calloc(1, n + 2);
    if (n)
        memcpy(v, sqlite3_column_blob(st, 0), n);
    sqlite3_finalize(st);
    if (n == 0)
        v[n++] = 'x'; /* an empty text cannot lose a byte: give it one */
    else
        v[n / 2] ^= 1;
    snprintf(sql, sizeof sql, "UPDATE entries SET %s = ?1 WHERE seq = %llu", col, seq);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (is_text)
        sqlite3_bind_text(st, 1, v, (int)n, SQLITE_TRANSIENT);
    else
        sqlite3_bind_blob(st, 1, v, (int)n, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(v);
}

static void test_one_byte_of_any_column_of_any_row(void **state)
{
    fixture *f = *state;
    static const char *const cols[] = {"ts",     "kind",      "request_id", "actor",
                                       "record", "prev_hash", "hash"};
    for (unsigned long long seq = 1; seq <= ENTRIES_BEFORE_CP + 1; seq++) {
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
            char what[64];
            fresh_copy(f);
            flip_byte(f->work, seq, cols[c]);
            verdict cv = c_verify(f->work, NULL, NULL);
            verdict pv = py_verify(f->work, NULL, NULL);
            snprintf(what, sizeof what, "flip %s of entry %llu", cols[c], seq);
            if (cv.ok || pv.ok || cv.seq != seq || pv.seq != seq || strcmp(cv.code, pv.code) != 0)
                fail_msg("%s: C says %s@%llu, Python says %s@%llu", what, cv.code, cv.seq, pv.code,
                         pv.seq);
            /* The column checks name the failure precisely. */
            if (strcmp(cols[c], "prev_hash") == 0)
                assert_string_equal(cv.code, "prev");
            else if (strcmp(cols[c], "hash") == 0)
                assert_string_equal(cv.code, "hash");
            else if (strcmp(cols[c], "record") != 0)
                assert_string_equal(cv.code, "column");
        }
    }
}

static void test_meta_log_id_edit(void **state)
{
    fixture *f = *state;
    fresh_copy(f);
    assert_int_equal(attack_sql(f->work,
                                "UPDATE meta SET value = '00000000000000000000000000000000'"
                                " WHERE key = 'log_id'"),
                     0);
    expect_both(f, NULL, NULL, NULL, NULL, "column", 1, "meta log_id edit");
    /* Another format version: the C library refuses to open it, Python says "meta". */
    fresh_copy(f);
    assert_int_equal(
        attack_sql(f->work, "UPDATE meta SET value = '2' WHERE key = 'format_version'"), 0);
    assert_string_equal(c_verify(f->work, NULL, NULL).code, "open");
    verdict p = py_verify(f->work, NULL, NULL);
    assert_string_equal(p.code, "meta");
    assert_false(p.ok);
}

static void test_delete_and_swap_rows(void **state)
{
    fixture *f = *state;
    fresh_copy(f);
    assert_int_equal(attack_sql(f->work, "DELETE FROM entries WHERE seq = 5"), 0);
    expect_both(f, NULL, NULL, NULL, NULL, "gap", 5, "delete row 5");
    fresh_copy(f);
    assert_int_equal(attack_sql(f->work, "DELETE FROM entries WHERE seq = 1"), 0);
    expect_both(f, NULL, NULL, NULL, NULL, "gap", 1, "delete row 1");
    fresh_copy(f);
    /* Swap rows 4 and 7 (all columns but seq). */
    assert_int_equal(attack_sql(f->work,
                                "CREATE TEMP TABLE t AS SELECT * FROM entries WHERE seq IN (4,7);"
                                "UPDATE entries SET (ts, kind, request_id, actor, record,"
                                " prev_hash, hash) = (SELECT ts, kind, request_id, actor, record,"
                                " prev_hash, hash FROM t WHERE t.seq = 11 - entries.seq)"
                                " WHERE seq IN (4,7);"),
                     0);
    expect_both(f, NULL, NULL, NULL, NULL, "reorder", 4, "swap rows 4 and 7");
    fresh_copy(f);
    /* Renumber instead: row 4 takes seq 100. */
    assert_int_equal(attack_sql(f->work, "UPDATE entries SET seq = 100 WHERE seq = 4"), 0);
    expect_both(f, NULL, NULL, NULL, NULL, "gap", 4, "renumber row 4");
}

static void test_truncation_and_rollback_vs_checkpoint(void **state)
{
    fixture *f = *state;
    fresh_copy(f);
    assert_int_equal(attack_sql(f->work, "DELETE FROM entries WHERE seq > 11"), 0);
    /* Without a checkpoint a clean tail cut is invisible; with one it is not. */
    expect_both(f, NULL, NULL, NULL, NULL, "ok", 0, "truncated, no checkpoint");
    expect_both(f, f->checkpoint, f->cp_file, NULL, NULL, "truncated", 12, "truncated tail");
    expect_both(f, f->checkpoint, f->cp_file, f->pk, f->pem, "truncated", 12,
                "truncated tail, pinned key");
    /* Rollback: an older copy of the real log (taken at 9 entries). */
    fresh_copy(f);
    assert_int_equal(attack_sql(f->work, "DELETE FROM entries WHERE seq > 9"), 0);
    expect_both(f, f->checkpoint, f->cp_file, NULL, NULL, "truncated", 10, "rolled back");
}

static void set_old_ts(json_t *rec, unsigned long long seq)
{
    if (seq == 6)
        json_object_set_new(rec, "ts", json_string("2001-01-01T00:00:00.000Z"));
}

static void change_output(json_t *rec, unsigned long long seq)
{
    if (seq == 11)
        json_object_set_new(json_object_get(rec, "body"), "tokens", json_integer(999));
}

static void change_prompt(json_t *rec, unsigned long long seq)
{
    if (seq == 4)
        json_object_set_new(rec, "actor", json_string("clinician:mallory"));
}

static void test_rechained_forgeries(void **state)
{
    fixture *f = *state;
    /* A consistent chain with a clock rollback. */
    fresh_copy(f);
    assert_int_equal(rechain(f->work, 6, set_old_ts), 0);
    expect_both(f, NULL, NULL, NULL, NULL, "clock", 6, "clock rollback");
    /* Re-chained after entry 4: the in-log checkpoint (entry 9) catches it. */
    fresh_copy(f);
    assert_int_equal(rechain(f->work, 4, change_prompt), 0);
    assert_int_equal(attack_sql(f->work, "UPDATE entries SET actor = 'clinician:mallory'"
                                         " WHERE seq = 4"),
                     0);
    expect_both(f, NULL, NULL, NULL, NULL, "checkpoint", 9, "rechained before a checkpoint");
    /* Re-chained after the in-log checkpoint, its own final checkpoint
     * dropped: only the kept external checkpoint tells. */
    fresh_copy(f);
    assert_int_equal(attack_sql(f->work, "DELETE FROM entries WHERE seq = 15"), 0);
    assert_int_equal(rechain(f->work, 11, change_output), 0);
    expect_both(f, NULL, NULL, NULL, NULL, "ok", 0, "rechained tail, no checkpoint");
    expect_both(f, f->checkpoint, f->cp_file, NULL, NULL, "diverged", ENTRIES_BEFORE_CP,
                "rechained tail vs checkpoint");
    expect_both(f, f->checkpoint, f->cp_file, f->pk, f->pem, "diverged", ENTRIES_BEFORE_CP,
                "rechained tail vs checkpoint, pinned key");
}

static void test_whole_db_replaced(void **state)
{
    fixture *f = *state;
    char err[256];
    audit_log *log = NULL;
    audit_open_opts o = {.create = 1};
    remove(f->work);
    assert_int_equal(audit_open(&log, f->work, &o, err, sizeof err), AUDIT_OK);
    for (int i = 0; i < ENTRIES_BEFORE_CP; i++)
        add(log, AUDIT_KIND_SESSION_START, "", "{}");
    audit_close(log);
    expect_both(f, NULL, NULL, NULL, NULL, "ok", 0, "forgery alone");
    expect_both(f, f->checkpoint, f->cp_file, f->pk, f->pem, "signature", 0,
                "forgery vs checkpoint");
}

static void test_forged_checkpoints(void **state)
{
    fixture *f = *state;
    char path[4300];
    fresh_copy(f);
    snprintf(path, sizeof path, "%s/forged.txt", f->dir);
    /* Same signature, different root line. */
    char *forged = strdup(f->checkpoint);
    char *root = strchr(strchr(forged, '\n') + 1, '\n') + 1;
    root[0] = root[0] == 'A' ? 'B' : 'A';
    assert_int_equal(write_text(path, forged), 0);
    expect_both(f, forged, path, NULL, NULL, "signature", 0, "edited checkpoint root");
    expect_both(f, forged, path, f->pk, f->pem, "signature", 0, "edited root, pinned key");
    free(forged);
    /* Signed by another key under the same name. */
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    audit_log *log = NULL;
    char err[256], *note = NULL;
    uint64_t seq;
    assert_int_equal(copy_db(f->good, path), 0);
    assert_int_equal(audit_open(&log, path, NULL, err, sizeof err), AUDIT_OK);
    assert_int_equal(audit_checkpoint_create(log, sk2, "mallory", &note, &seq, err, sizeof err),
                     AUDIT_OK);
    audit_close(log);
    snprintf(path, sizeof path, "%s/other-key.txt", f->dir);
    assert_int_equal(write_text(path, note), 0);
    expect_both(f, note, path, f->pk, f->pem, "signature", 0, "checkpoint by another key");
    free(note);
}

/* The entries table rebuilt without STRICT or CHECKs, holding values of the
 * wrong types: both verifiers report the row, neither crashes. */
static void test_hostile_schema_values(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *sql;
        unsigned long long seq;
    } cases[] = {
        {"UPDATE entries SET ts = NULL WHERE seq = 3", 3},
        {"UPDATE entries SET record = NULL WHERE seq = 4", 4},
        {"UPDATE entries SET record = 12345 WHERE seq = 5", 5},
        {"UPDATE entries SET hash = x'0011' WHERE seq = 6", 6},
        {"UPDATE entries SET prev_hash = 'text' WHERE seq = 7", 7},
        {"UPDATE entries SET kind = NULL, actor = 7 WHERE seq = 8", 8},
        {"UPDATE entries SET seq = 'x' WHERE seq = 2", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char sql[1024], what[64];
        fresh_copy(f);
        snprintf(sql, sizeof sql,
                 "CREATE TABLE loose(seq, ts, kind, request_id, actor, record, prev_hash, hash);"
                 "INSERT INTO loose SELECT * FROM entries; DROP TABLE entries;"
                 "ALTER TABLE loose RENAME TO entries; %s",
                 cases[i].sql);
        assert_int_equal(attack_sql(f->work, sql), 0);
        verdict c = c_verify(f->work, NULL, NULL);
        verdict p = py_verify(f->work, NULL, NULL);
        snprintf(what, sizeof what, "hostile case %zu", i);
        if (c.ok || p.ok || c.seq != cases[i].seq || p.seq != cases[i].seq ||
            strcmp(c.code, p.code) != 0)
            fail_msg("%s: C says %s@%llu, Python says %s@%llu", what, c.code, c.seq, p.code, p.seq);
    }
}

static void test_dropped_triggers_alone_still_verify(void **state)
{
    fixture *f = *state;
    fresh_copy(f);
    assert_int_equal(attack_sql(f->work, NULL), 0);
    expect_both(f, NULL, NULL, NULL, NULL, "ok", 0, "triggers dropped");
    audit_log *log = NULL;
    char err[256];
    audit_verify_result r;
    assert_int_equal(audit_open(&log, f->work, NULL, err, sizeof err), AUDIT_OK);
    assert_int_equal(audit_verify(log, NULL, &r, err, sizeof err), AUDIT_OK);
    assert_true(r.ok);
    assert_true(r.triggers_missing);
    audit_verify_result_free(&r);
    audit_close(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_log_verifies_in_both),
        cmocka_unit_test(test_one_byte_of_any_column_of_any_row),
        cmocka_unit_test(test_meta_log_id_edit),
        cmocka_unit_test(test_delete_and_swap_rows),
        cmocka_unit_test(test_truncation_and_rollback_vs_checkpoint),
        cmocka_unit_test(test_rechained_forgeries),
        cmocka_unit_test(test_whole_db_replaced),
        cmocka_unit_test(test_forged_checkpoints),
        cmocka_unit_test(test_hostile_schema_values),
        cmocka_unit_test(test_dropped_triggers_alone_still_verify),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
