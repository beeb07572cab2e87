/* Content modes: sealed prompts only the reviewer can read, digests, and
 * plaintext; metadata stays readable; ciphertext tampering breaks the chain. */
#include "test_audit_helpers.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static const char prompt[] = "Summarise: patient \"J. Doe\", biopsy shows\nno malignancy. \xc3\xa9";

static void test_sealed_round_trip_only_with_reviewer_key(void **state)
{
    (void)state;
    uint8_t rpk[32], rsk[32], opk[32], osk[32];
    char err[256], *json = NULL, *text = NULL;
    size_t len = 0;
    assert_true(sodium_init() >= 0);
    crypto_box_keypair(rpk, rsk);
    crypto_box_keypair(opk, osk);
    assert_int_equal(audit_content_encode(AUDIT_STORE_SEALED, rpk, prompt, strlen(prompt), &json,
                                          err, sizeof err),
                     AUDIT_OK);
    assert_null(strstr(json, "malignancy"));
    assert_non_null(strstr(json, "\"mode\":\"sealed\""));
    /* The device holds only the public key: it cannot open its own entry. */
    assert_int_equal(
        audit_content_decode(json, strlen(json), rpk, NULL, &text, &len, err, sizeof err),
        AUDIT_E_CRYPTO);
    assert_int_equal(
        audit_content_decode(json, strlen(json), opk, osk, &text, &len, err, sizeof err),
        AUDIT_E_CRYPTO);
    assert_int_equal(
        audit_content_decode(json, strlen(json), rpk, rsk, &text, &len, err, sizeof err), AUDIT_OK);
    assert_int_equal(len, strlen(prompt));
    assert_string_equal(text, prompt);
    free(text);
    free(json);
    assert_int_equal(audit_content_encode(AUDIT_STORE_SEALED, NULL, prompt, strlen(prompt), &json,
                                          err, sizeof err),
                     AUDIT_E_INVALID);
}

static void test_digest_commitment(void **state)
{
    (void)state;
    char err[256], *json = NULL, *json2 = NULL, *text = NULL;
    size_t len;
    assert_int_equal(audit_content_encode(AUDIT_STORE_DIGEST, NULL, prompt, strlen(prompt), &json,
                                          err, sizeof err),
                     AUDIT_OK);
    assert_null(strstr(json, "malignancy"));
    assert_int_equal(
        audit_content_check_digest(json, strlen(json), prompt, strlen(prompt), err, sizeof err),
        AUDIT_OK);
    assert_int_equal(audit_content_check_digest(json, strlen(json), "other", 5, err, sizeof err),
                     AUDIT_E_CRYPTO);
    assert_int_equal(
        audit_content_decode(json, strlen(json), NULL, NULL, &text, &len, err, sizeof err),
        AUDIT_E_INVALID);
    /* Salted: the same text gives a different commitment each time. */
    assert_int_equal(audit_content_encode(AUDIT_STORE_DIGEST, NULL, prompt, strlen(prompt), &json2,
                                          err, sizeof err),
                     AUDIT_OK);
    assert_string_not_equal(json, json2);
    free(json);
    free(json2);
}

static void test_plaintext(void **state)
{
    (void)state;
    char err[256], *json = NULL, *text = NULL;
    size_t len;
    assert_int_equal(audit_content_encode(AUDIT_STORE_PLAINTEXT, NULL, prompt, strlen(prompt),
                                          &json, err, sizeof err),
                     AUDIT_OK);
    assert_int_equal(
        audit_content_decode(json, strlen(json), NULL, NULL, &text, &len, err, sizeof err),
        AUDIT_OK);
    assert_string_equal(text, prompt);
    free(text);
    free(json);
    assert_int_equal(
        audit_content_encode(AUDIT_STORE_PLAINTEXT, NULL, "\xff", 1, &json, err, sizeof err),
        AUDIT_E_INVALID);
    audit_store_mode m;
    assert_int_equal(audit_store_mode_from_name("sealed", &m), AUDIT_OK);
    assert_int_equal(m, AUDIT_STORE_SEALED);
    assert_int_equal(audit_store_mode_from_name("rot13", &m), AUDIT_E_INVALID);
}

typedef struct found {
    char record[4096];
} found;

static int keep_record(const audit_entry *e, void *ctx)
{
    found *f = ctx;
    snprintf(f->record, sizeof f->record, "%.*s", (int)e->record_len, (const char *)e->record);
    return 0;
}

static void test_sealed_entry_in_log(void **state)
{
    (void)state;
    char *dir = test_mkdtemp(), path[4200], err[256], *content = NULL, body[4096];
    uint8_t rpk[32], rsk[32];
    audit_log *log = NULL;
    audit_open_opts o = {.create = 1};
    crypto_box_keypair(rpk, rsk);
    snprintf(path, sizeof path, "%s/a.db", dir);
    assert_int_equal(audit_open(&log, path, &o, err, sizeof err), AUDIT_OK);
    assert_int_equal(audit_content_encode(AUDIT_STORE_SEALED, rpk, prompt, strlen(prompt), &content,
                                          err, sizeof err),
                     AUDIT_OK);
    snprintf(body, sizeof body,
             "{\"model\":\"sha256:feed\",\"policy\":\"sha256:beef\",\"seed\":7,\"content\":%s}",
             content);
    free(content);
    assert_int_equal(audit_append(log, AUDIT_KIND_PROMPT, "req-9", "clinician:bob", body,
                                  strlen(body), NULL, NULL, err, sizeof err),
                     AUDIT_OK);
    found fr = {0};
    assert_int_equal(audit_query(log, NULL, keep_record, &fr, err, sizeof err), AUDIT_OK);
    audit_close(log);
    /* Metadata readable; the text is not. */
    assert_non_null(strstr(fr.record, "\"model\":\"sha256:feed\""));
    assert_non_null(strstr(fr.record, "\"actor\":\"clinician:bob\""));
    assert_null(strstr(fr.record, "malignancy"));
    /* The reviewer opens it from the stored record. */
    json_t *rec = json_loads(fr.record, 0, NULL);
    char *cjson = json_dumps(json_object_get(json_object_get(rec, "body"), "content"), 0);
    char *text = NULL;
    size_t len;
    assert_int_equal(
        audit_content_decode(cjson, strlen(cjson), rpk, rsk, &text, &len, err, sizeof err),
        AUDIT_OK);
    assert_string_equal(text, prompt);
    free(text);
    free(cjson);
    json_decref(rec);
    /* One altered ciphertext character breaks the chain at that entry. */
    assert_string_equal(c_verify(path, NULL, NULL).code, "ok");
    assert_int_equal(attack_sql(path, "UPDATE entries SET record = CAST(replace(CAST(record AS"
                                      " TEXT), '\"ciphertext\":\"', '\"ciphertext\":\"A') AS BLOB)"
                                      " WHERE seq = 1"),
                     0);
    verdict v = c_verify(path, NULL, NULL);
    assert_string_equal(v.code, "hash");
    assert_int_equal(v.seq, 1);
    test_rmtree(dir);
}

static void test_write_ahead_helpers(void **state)
{
    (void)state;
    char *dir = test_mkdtemp(), path[4200], err[256];
    uint8_t rpk[32], rsk[32];
    audit_log *log = NULL;
    audit_open_opts o = {.create = 1};
    uint64_t seq = 0;
    crypto_box_keypair(rpk, rsk);
    snprintf(path, sizeof path, "%s/a.db", dir);
    assert_int_equal(audit_open(&log, path, &o, err, sizeof err), AUDIT_OK);
    assert_int_equal(audit_append_prompt(log, "req-1", "clinician:bob", AUDIT_STORE_SEALED, rpk,
                                         prompt, strlen(prompt),
                                         "{\"model\":\"sha256:aa\",\"seed\":7}", &seq, NULL, err,
                                         sizeof err),
                     AUDIT_OK);
    assert_int_equal(seq, 1);
    /* Between the two, a crash leaves an incomplete (not a broken) log. */
    verdict v = c_verify(path, NULL, NULL);
    assert_string_equal(v.code, "ok");
    assert_string_equal(v.incomplete, "req-1 ");
    assert_int_equal(audit_append_output(log, "req-1", "clinician:bob", AUDIT_STORE_DIGEST, NULL,
                                         "answer", 6, "{\"tokens\":2,\"finish\":\"stop\"}", &seq,
                                         NULL, err, sizeof err),
                     AUDIT_OK);
    assert_int_equal(seq, 2);
    assert_int_equal(audit_append_output(log, "req-1", "x", AUDIT_STORE_PLAINTEXT, NULL, "a", 1,
                                         "{\"content\":1}", &seq, NULL, err, sizeof err),
                     AUDIT_E_INVALID);
    assert_int_equal(audit_append_prompt(log, "req-2", "x", AUDIT_STORE_SEALED, NULL, "a", 1, NULL,
                                         &seq, NULL, err, sizeof err),
                     AUDIT_E_INVALID);
    found fr = {0};
    audit_filter f = {.seq_min = 1, .seq_max = 1};
    assert_int_equal(audit_query(log, &f, keep_record, &fr, err, sizeof err), AUDIT_OK);
    assert_non_null(strstr(fr.record, "\"seed\":7"));
    assert_non_null(strstr(fr.record, "\"mode\":\"sealed\""));
    assert_null(strstr(fr.record, "malignancy"));
    audit_close(log);
    v = c_verify(path, NULL, NULL);
    assert_string_equal(v.code, "ok");
    assert_string_equal(v.incomplete, "");
    test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sealed_round_trip_only_with_reviewer_key),
        cmocka_unit_test(test_digest_commitment),
        cmocka_unit_test(test_plaintext),
        cmocka_unit_test(test_sealed_entry_in_log),
        cmocka_unit_test(test_write_ahead_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
