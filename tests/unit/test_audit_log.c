/* The audit log basics: schema, appends, canonical records, reads, guards. */
#include "test_audit_helpers.h"
#include "testutil.h"

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef struct fixture {
    char *dir;
    char path[4200];
    audit_log *log;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[256];
    audit_open_opts o = {.create = 1};
    assert_non_null(f);
    f->dir = test_mkdtemp();
    assert_non_null(f->dir);
    snprintf(f->path, sizeof f->path, "%s/audit.db", f->dir);
    assert_int_equal(audit_open(&f->log, f->path, &o, err, sizeof err), AUDIT_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    audit_close(f->log);
    test_rmtree(f->dir);
    free(f);
    return 0;
}

static uint64_t append(audit_log *log, audit_kind k, const char *rid, const char *body)
{
    char err[256];
    uint64_t seq = 0;
    int rc = audit_append(log, k, rid, "alice", body, strlen(body), &seq, NULL, err, sizeof err);
    if (rc != AUDIT_OK)
        fail_msg("append failed: %s", err);
    return seq;
}

typedef struct grab {
    char record[1024];
    char kinds[512];
    int count;
} grab;

static int grab_visit(const audit_entry *e, void *ctx)
{
    grab *g = ctx;
    snprintf(g->record, sizeof g->record, "%.*s", (int)e->record_len, (const char *)e->record);
    strncat(g->kinds, e->kind, sizeof g->kinds - strlen(g->kinds) - 2);
    strcat(g->kinds, ",");
    g->count++;
    return 0;
}

static void test_appends_are_dense_and_canonical(void **state)
{
    fixture *f = *state;
    assert_int_equal(append(f->log, AUDIT_KIND_INIT, "", "{}"), 1);
    /* Keys out of order, whitespace, escapes, unicode: stored canonically. */
    assert_int_equal(
        append(f->log, AUDIT_KIND_PROMPT, "r1",
               "{ \"z\": 1, \"a\": \"tab\\there \\u00e9 \\u001f\", \"m\": [true,null] }"),
        2);
    grab g = {0};
    audit_filter flt = {.seq_min = 2, .seq_max = 2};
    char err[256];
    assert_int_equal(audit_query(f->log, &flt, grab_visit, &g, err, sizeof err), AUDIT_OK);
    assert_int_equal(g.count, 1);
    char want[512];
    snprintf(want, sizeof want,
             "{\"actor\":\"alice\",\"body\":{\"a\":\"tab\\there \xc3\xa9 \\u001f\",\"m\":[true,"
             "null],\"z\":1},\"kind\":\"prompt\",\"log_id\":\"%s\",\"request_id\":\"r1\","
             "\"seq\":2,\"ts\":\"",
             audit_log_id(f->log));
    assert_memory_equal(g.record, want, strlen(want));
    uint64_t n;
    uint8_t head[AUDIT_HASH_LEN];
    assert_int_equal(audit_head(f->log, &n, head, err, sizeof err), AUDIT_OK);
    assert_int_equal(n, 2);
}

static void test_bad_bodies_are_rejected(void **state)
{
    fixture *f = *state;
    char err[256];
    const char *bad[] = {"[1]", "{\"a\":1.5}", "{\"a\":1,\"a\":2}", "{", "\"x\"", "{\"a\":1e3}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        assert_int_equal(audit_append(f->log, AUDIT_KIND_ERROR, "", "", bad[i], strlen(bad[i]),
                                      NULL, NULL, err, sizeof err),
                         AUDIT_E_INVALID);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(
        audit_append(f->log, (audit_kind)99, "", "", "{}", 2, NULL, NULL, err, sizeof err),
        AUDIT_E_INVALID);
    assert_int_equal(
        audit_append(f->log, AUDIT_KIND_ERROR, "\xff", "", "{}", 2, NULL, NULL, err, sizeof err),
        AUDIT_E_INVALID);
    uint64_t n;
    uint8_t head[AUDIT_HASH_LEN];
    assert_int_equal(audit_head(f->log, &n, head, err, sizeof err), AUDIT_OK);
    assert_int_equal(n, 0);
}

static void test_triggers_reject_update_and_delete(void **state)
{
    fixture *f = *state;
    append(f->log, AUDIT_KIND_INIT, "", "{}");
    append(f->log, AUDIT_KIND_SESSION_START, "", "{}");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    const char *attacks[] = {
        "UPDATE entries SET actor = 'mallory' WHERE seq = 1",
        "DELETE FROM entries WHERE seq = 2",
        "UPDATE meta SET value = 'x' WHERE key = 'log_id'",
        "DELETE FROM meta",
        /* Inserting out of chain order is refused too. */
        "INSERT INTO entries VALUES (5, 't', 'init', '', '', x'00', zeroblob(32), zeroblob(32))",
        "INSERT INTO entries VALUES (3, 't', 'init', '', '', x'00', zeroblob(32), zeroblob(32))",
    };
    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        char *msg = NULL;
        assert_int_not_equal(sqlite3_exec(db, attacks[i], NULL, NULL, &msg), SQLITE_OK);
        sqlite3_free(msg);
    }
    sqlite3_close(db);
    audit_verify_result r;
    char err[256];
    assert_int_equal(audit_verify(f->log, NULL, &r, err, sizeof err), AUDIT_OK);
    assert_true(r.ok);
    assert_int_equal(r.entries, 2);
    assert_false(r.triggers_missing);
    audit_verify_result_free(&r);
}

static void test_pragmas_and_meta(void **state)
{
    fixture *f = *state;
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='log_id'", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), audit_log_id(f->log));
    assert_int_equal(strlen(audit_log_id(f->log)), 32);
    sqlite3_finalize(st);
    sqlite3_close(db);
    char origin[128];
    snprintf(origin, sizeof origin, "appliance.audit/%s/sha3-256", audit_log_id(f->log));
    assert_string_equal(audit_log_origin(f->log), origin);
}

static void test_reopen_and_not_a_log(void **state)
{
    fixture *f = *state;
    char err[256], other[4300];
    audit_log *again = NULL;
    append(f->log, AUDIT_KIND_INIT, "", "{}");
    assert_int_equal(audit_open(&again, f->path, NULL, err, sizeof err), AUDIT_OK);
    assert_string_equal(audit_log_id(again), audit_log_id(f->log));
    assert_int_equal(append(again, AUDIT_KIND_SESSION_START, "", "{}"), 2);
    audit_close(again);
    snprintf(other, sizeof other, "%s/missing.db", f->dir);
    assert_int_equal(audit_open(&again, other, NULL, err, sizeof err), AUDIT_E_NOTFOUND);
    snprintf(other, sizeof other, "%s/plain.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(audit_open(&again, other, NULL, err, sizeof err), AUDIT_E_FORMAT);
    assert_non_null(strstr(err, "not an audit log"));
}

static void test_read_only_append_fails(void **state)
{
    fixture *f = *state;
    char err[256];
    audit_open_opts ro = {.read_only = 1};
    audit_log *r = NULL;
    append(f->log, AUDIT_KIND_INIT, "", "{}");
    assert_int_equal(audit_open(&r, f->path, &ro, err, sizeof err), AUDIT_OK);
    assert_int_not_equal(
        audit_append(r, AUDIT_KIND_ERROR, "", "", "{}", 2, NULL, NULL, err, sizeof err), AUDIT_OK);
    audit_close(r);
}

static void test_query_filters(void **state)
{
    fixture *f = *state;
    append(f->log, AUDIT_KIND_INIT, "", "{}");
    append(f->log, AUDIT_KIND_PROMPT, "r1", "{}");
    append(f->log, AUDIT_KIND_OUTPUT, "r1", "{}");
    append(f->log, AUDIT_KIND_PROMPT, "r2", "{}");
    char err[256];
    grab g = {0};
    audit_filter byk = {.kind = "prompt"};
    assert_int_equal(audit_query(f->log, &byk, grab_visit, &g, err, sizeof err), AUDIT_OK);
    assert_string_equal(g.kinds, "prompt,prompt,");
    memset(&g, 0, sizeof g);
    audit_filter byr = {.request_id = "r1"};
    assert_int_equal(audit_query(f->log, &byr, grab_visit, &g, err, sizeof err), AUDIT_OK);
    assert_string_equal(g.kinds, "prompt,output,");
    memset(&g, 0, sizeof g);
    audit_filter future = {.since = "2999"};
    assert_int_equal(audit_query(f->log, &future, grab_visit, &g, err, sizeof err), AUDIT_OK);
    assert_int_equal(g.count, 0);
    audit_filter past = {.until = "2999", .actor = "alice"};
    assert_int_equal(audit_query(f->log, &past, grab_visit, &g, err, sizeof err), AUDIT_OK);
    assert_int_equal(g.count, 4);
    /* The dangling prompt r2 is incomplete, r1 is not. */
    audit_verify_result r;
    assert_int_equal(audit_verify(f->log, NULL, &r, err, sizeof err), AUDIT_OK);
    assert_true(r.ok);
    assert_int_equal(r.n_incomplete, 1);
    assert_string_equal(r.incomplete[0], "r2");
    audit_verify_result_free(&r);
}

static void test_batch_is_all_or_nothing(void **state)
{
    fixture *f = *state;
    char err[256];
    uint64_t first = 0, n;
    uint8_t head[AUDIT_HASH_LEN];
    append(f->log, AUDIT_KIND_INIT, "", "{}");
    audit_append_req ok[3] = {{AUDIT_KIND_PROMPT, "r1", "a", "{\"p\":1}", 7},
                              {AUDIT_KIND_OUTPUT, "r1", "a", "{\"o\":1}", 7},
                              {AUDIT_KIND_ATTESTATION, "r1", "a", "{}", 2}};
    assert_int_equal(audit_append_batch(f->log, ok, 3, &first, err, sizeof err), AUDIT_OK);
    assert_int_equal(first, 2);
    audit_append_req bad[2] = {{AUDIT_KIND_PROMPT, "r2", "a", "{}", 2},
                               {AUDIT_KIND_OUTPUT, "r2", "a", "{\"x\":0.5}", 9}};
    assert_int_equal(audit_append_batch(f->log, bad, 2, &first, err, sizeof err), AUDIT_E_INVALID);
    assert_int_equal(audit_head(f->log, &n, head, err, sizeof err), AUDIT_OK);
    assert_int_equal(n, 4);
    audit_verify_result r;
    assert_int_equal(audit_verify(f->log, NULL, &r, err, sizeof err), AUDIT_OK);
    assert_true(r.ok);
    assert_int_equal(r.n_incomplete, 0);
    audit_verify_result_free(&r);
}

static void set_future_ts(json_t *rec, unsigned long long seq)
{
    if (seq == 2)
        json_object_set_new(rec, "ts", json_string("2999-01-01T00:00:00.000Z"));
}

static int keep_ts(const audit_entry *e, void *ctx)
{
    snprintf(ctx, AUDIT_TS_LEN + 1, "%s", e->ts);
    return 0;
}

/* A clock behind the last entry (here: an entry from the future) never makes
 * timestamps go backwards: the writer reuses the last time. */
static void test_clock_behind_last_entry_is_clamped(void **state)
{
    fixture *f = *state;
    char err[256], ts[AUDIT_TS_LEN + 1] = "";
    append(f->log, AUDIT_KIND_INIT, "", "{}");
    append(f->log, AUDIT_KIND_SESSION_START, "", "{}");
    audit_close(f->log);
    assert_int_equal(rechain(f->path, 2, set_future_ts), 0);
    assert_int_equal(audit_open(&f->log, f->path, NULL, err, sizeof err), AUDIT_OK);
    assert_int_equal(append(f->log, AUDIT_KIND_PROMPT, "r", "{}"), 3);
    audit_filter last = {.seq_min = 3};
    assert_int_equal(audit_query(f->log, &last, keep_ts, ts, err, sizeof err), AUDIT_OK);
    assert_string_equal(ts, "2999-01-01T00:00:00.000Z");
    assert_string_equal(c_verify(f->path, NULL, NULL).code, "ok");
}

static void test_checkpoint_interval_and_foreign_db(void **state)
{
    fixture *f = *state;
    char err[256], other[4300];
    uint64_t n = 99, seq;
    uint8_t pk[32], sk[64];
    char *note = NULL;
    crypto_sign_keypair(pk, sk);
    assert_int_equal(audit_entries_since_checkpoint(f->log, &n, err, sizeof err), AUDIT_OK);
    assert_int_equal(n, 0);
    append(f->log, AUDIT_KIND_INIT, "", "{}");
    append(f->log, AUDIT_KIND_SESSION_START, "", "{}");
    assert_int_equal(audit_entries_since_checkpoint(f->log, &n, err, sizeof err), AUDIT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(audit_checkpoint_create(f->log, sk, "d", &note, &seq, err, sizeof err),
                     AUDIT_OK);
    free(note);
    append(f->log, AUDIT_KIND_PROMPT, "r", "{}");
    assert_int_equal(audit_entries_since_checkpoint(f->log, &n, err, sizeof err), AUDIT_OK);
    assert_int_equal(n, 1);
    /* create on somebody else's database refuses to add tables to it. */
    snprintf(other, sizeof other, "%s/other.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE notes(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    audit_log *log = NULL;
    audit_open_opts o = {.create = 1};
    assert_int_equal(audit_open(&log, other, &o, err, sizeof err), AUDIT_E_FORMAT);
    assert_non_null(strstr(err, "another SQLite database"));
}

static void test_kind_names(void **state)
{
    (void)state;
    audit_kind k;
    for (int i = 0; i < AUDIT_KIND_COUNT; i++) {
        assert_non_null(audit_kind_name((audit_kind)i));
        assert_int_equal(audit_kind_from_name(audit_kind_name((audit_kind)i), &k), AUDIT_OK);
        assert_int_equal(k, i);
    }
    assert_int_equal(audit_kind_from_name("bogus", &k), AUDIT_E_INVALID);
    assert_null(audit_kind_name(AUDIT_KIND_COUNT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_appends_are_dense_and_canonical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_bodies_are_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_triggers_reject_update_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pragmas_and_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_and_not_a_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_append_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_is_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_behind_last_entry_is_clamped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_interval_and_foreign_db, setup, teardown),
        cmocka_unit_test(test_kind_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
