/* Policy parsing: defaults, round trips, and one rejection per field with
 * the JSON path named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "testutil.h"

static void test_defaults_round_trip(void **state)
{
    (void)state;
    policy p, q;
    char err[512];
    assert_int_equal(policy_defaults(&p), 0);
    char *text = policy_to_json(&p);
    assert_non_null(text);
    assert_int_equal(policy_parse(text, strlen(text), &q, err, sizeof err), 0);
    assert_int_equal(q.version, 1);
    assert_int_equal(q.max_prompt_bytes, 65536);
    assert_int_equal(q.max_new_tokens, 1024);
    assert_int_equal(q.context, 4096);
    assert_int_equal(q.requests_per_minute, 60);
    assert_int_equal(q.audit_content, AUDIT_CONTENT_SEALED);
    assert_int_equal(q.checkpoint_interval, 100);
    assert_int_equal(q.sandbox_required, 1);
    assert_int_equal(q.model_load, MODEL_LOAD_SEALED_COPY);
    char *again = policy_to_json(&q);
    assert_string_equal(text, again);
    free(text);
    free(again);
    policy_free(&p);
    policy_free(&q);
}

static void test_minimal_policy_takes_defaults(void **state)
{
    (void)state;
    policy p;
    char err[512];
    const char *text = "{\"version\": 1, \"limits\": {\"context\": 2048}}";
    assert_int_equal(policy_parse(text, strlen(text), &p, err, sizeof err), 0);
    assert_int_equal(p.context, 2048);
    assert_int_equal(p.max_new_tokens, 1024);
    policy_free(&p);
}

static void test_full_policy(void **state)
{
    (void)state;
    policy p;
    char err[512];
    const char *text =
        "{\"version\":1,\"trust\":{\"publisher_keys\":[\"-----BEGIN PUBLIC KEY-----\\nAA\\n"
        "-----END PUBLIC KEY-----\\n\"],\"ca_roots\":[],\"pinned_models\":[\""
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"]},"
        "\"models\":{\"load\":\"sealed-copy\"},\"audit\":{\"content\":\"digest\","
        "\"reviewer_key\":\"r.pem\",\"checkpoint_interval\":7},\"sandbox\":{\"required\":false},"
        "\"users\":[{\"name\":\"dr.lee\",\"role\":\"officer\",\"token_hash\":"
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}";
    assert_int_equal(policy_parse(text, strlen(text), &p, err, sizeof err), 0);
    assert_int_equal(p.publisher_keys.count, 1);
    assert_int_equal(p.pinned_models.count, 1);
    assert_int_equal(p.model_load, MODEL_LOAD_SEALED_COPY);
    assert_int_equal(p.audit_content, AUDIT_CONTENT_DIGEST);
    assert_string_equal(p.reviewer_key, "r.pem");
    assert_int_equal(p.checkpoint_interval, 7);
    assert_int_equal(p.sandbox_required, 0);
    assert_int_equal(p.n_users, 1);
    assert_string_equal(p.users[0].name, "dr.lee");
    assert_int_equal(p.users[0].role, ROLE_OFFICER);
    policy_free(&p);
}

/* Each malformed policy and the error text it must produce. */
static const struct {
    const char *json;
    const char *error;
} bad_cases[] = {
    {"", "$: not valid JSON"},
    {"[]", "$: expected an object"},
    {"{}", "$.version: missing"},
    {"{\"version\":2}", "$.version: expected the integer 1"},
    {"{\"version\":\"1\"}", "$.version: expected the integer 1"},
    {"{\"version\":1,\"extra\":0}", "$.extra: unknown key"},
    {"{\"version\":1,\"version\":1}", "$: not valid JSON"},
    {"{\"version\":1,\"trust\":[]}", "$.trust: expected an object"},
    {"{\"version\":1,\"trust\":{\"keys\":[]}}", "$.trust.keys: unknown key"},
    {"{\"version\":1,\"trust\":{\"publisher_keys\":{}}}",
     "$.trust.publisher_keys: expected an array"},
    {"{\"version\":1,\"trust\":{\"publisher_keys\":[1]}}",
     "$.trust.publisher_keys[0]: expected a string"},
    {"{\"version\":1,\"trust\":{\"publisher_keys\":[\"abc\"]}}",
     "$.trust.publisher_keys[0]: expected a PEM public key"},
    {"{\"version\":1,\"trust\":{\"ca_roots\":[\"-----BEGIN PUBLIC KEY-----\"]}}",
     "$.trust.ca_roots[0]: expected a PEM certificate"},
    {"{\"version\":1,\"trust\":{\"pinned_models\":[\"ABC\"]}}",
     "$.trust.pinned_models[0]: expected 64 lowercase hex digits"},
    {"{\"version\":1,\"models\":{\"load\":\"copy\"}}", "$.models.load: \"copy\" is not supported"},
    {"{\"version\":1,\"models\":{\"load\":\"mapped-file\"}}",
     "$.models.load: \"mapped-file\" is not supported; this build always copies a model into a "
     "sealed memfd (\"sealed-copy\")"},
    {"{\"version\":1,\"models\":{\"load\":1}}", "$.models.load: expected a string"},
    {"{\"version\":1,\"models\":{\"mode\":1}}", "$.models.mode: unknown key"},
    {"{\"version\":1,\"limits\":{\"max_prompt_bytes\":0}}",
     "$.limits.max_prompt_bytes: 0 is outside 1..16777216"},
    {"{\"version\":1,\"limits\":{\"max_new_tokens\":1.5}}",
     "$.limits.max_new_tokens: expected an integer"},
    {"{\"version\":1,\"limits\":{\"context\":\"4096\"}}", "$.limits.context: expected an integer"},
    {"{\"version\":1,\"limits\":{\"requests_per_minute\":-1}}",
     "$.limits.requests_per_minute: -1 is outside"},
    {"{\"version\":1,\"audit\":{\"content\":\"secret\"}}", "$.audit.content: \"secret\" is not"},
    {"{\"version\":1,\"audit\":{\"reviewer_key\":\"\"}}",
     "$.audit.reviewer_key: expected a non-empty string"},
    {"{\"version\":1,\"audit\":{\"checkpoint_interval\":0}}",
     "$.audit.checkpoint_interval: 0 is outside"},
    {"{\"version\":1,\"sandbox\":{\"required\":1}}", "$.sandbox.required: expected true or false"},
    {"{\"version\":1,\"users\":{}}", "$.users: expected an array"},
    {"{\"version\":1,\"users\":[{\"name\":\"a b\",\"role\":\"officer\",\"token_hash\":\"\"}]}",
     "$.users[0].name: expected 1-64 characters"},
    {"{\"version\":1,\"users\":[{\"name\":\"a\",\"role\":\"admin\",\"token_hash\":"
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
     "$.users[0].role: \"admin\" is not one of"},
    {"{\"version\":1,\"users\":[{\"name\":\"a\",\"role\":\"officer\",\"token_hash\":\"x\"}]}",
     "$.users[0].token_hash: expected 64 lowercase hex digits"},
    {"{\"version\":1,\"users\":[{\"name\":\"a\",\"token_hash\":"
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
     "$.users[0].role: missing"},
    {"{\"version\":1,\"users\":[{\"name\":\"a\",\"role\":\"officer\",\"token_hash\":"
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"},{\"name\":\"a\","
     "\"role\":\"clinician\",\"token_hash\":"
     "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}]}",
     "$.users[1].name: duplicate user \"a\""},
    {"{\"version\":1,\"users\":[{\"name\":\"a\",\"role\":\"officer\",\"token\":1}]}",
     "$.users[0].token: unknown key"},
};

static void test_malformed_policies_name_their_path(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        policy p;
        char err[512] = "";
        int rc = policy_parse(bad_cases[i].json, strlen(bad_cases[i].json), &p, err, sizeof err);
        if (rc == 0 || strstr(err, bad_cases[i].error) == NULL)
            fail_msg("case %zu %s: rc=%d, error '%s', expected '%s'", i, bad_cases[i].json, rc, err,
                     bad_cases[i].error);
    }
}

static void test_digest_is_sha256_of_file_bytes(void **state)
{
    (void)state;
    char *dir = test_mkdtemp(), path[4200], digest[POLICY_DIGEST_HEX], digest2[POLICY_DIGEST_HEX],
         err[512];
    policy p, q;
    assert_non_null(dir);
    snprintf(path, sizeof path, "%s/policy.json", dir);
    assert_int_equal(policy_defaults(&p), 0);
    assert_int_equal(policy_write_file(&p, path, digest, err, sizeof err), 0);
    assert_int_equal(policy_load_file(path, &q, digest2, err, sizeof err), 0);
    assert_string_equal(digest, digest2);
    /* Known answer: SHA-256 of "abc". */
    policy_digest_bytes("abc", 3, digest2);
    assert_string_equal(digest2,
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    policy_free(&p);
    policy_free(&q);
    test_rmtree(dir);
}

static void test_missing_file_names_path(void **state)
{
    (void)state;
    policy p;
    char err[512];
    assert_int_not_equal(policy_load_file("/nonexistent/policy.json", &p, NULL, err, sizeof err),
                         0);
    assert_non_null(strstr(err, "/nonexistent/policy.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_round_trip),
        cmocka_unit_test(test_minimal_policy_takes_defaults),
        cmocka_unit_test(test_full_policy),
        cmocka_unit_test(test_malformed_policies_name_their_path),
        cmocka_unit_test(test_digest_is_sha256_of_file_bytes),
        cmocka_unit_test(test_missing_file_names_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
