/* Attestations made with key files from `keys_generate`, the way the
 * appliance will: secret PEM -> libsodium key -> signed envelope, checked
 * with the public PEM alone.
 *
 * Test-only helper as well (there is no user-facing "sign anything"
 * command): the integration tests run
 *   test_attest_sign write SECRET.pem PROMPT_FILE SALT_HEX OUTPUT_FILE OUT
 * to get a genuine generation attestation for the CLI to verify. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "image/image.h"
#include "testutil.h"

static const char MODEL_DIGEST[] =
    "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
static const char ENTRY_HASH[] = "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9";

/* A generation with fixed, plausible values around the given evidence. */
static void example_generation(attest_generation *g, const uint8_t salt[ATTEST_SALT_LEN],
                               const uint8_t *prompt, size_t prompt_len, const uint8_t *output,
                               size_t output_len)
{
    memset(g, 0, sizeof *g);
    g->model_digest = MODEL_DIGEST;
    g->model_name = "aidreams260K.gguf";
    g->model_signer = "key sha256:5e2b1c0f";
    g->salt = salt;
    g->prompt = prompt;
    g->prompt_len = prompt_len;
    g->sampling = (attest_sampling){0.7f, 40, 0.9f, 0.0f, 1.0f, 64, 1234, 128};
    g->prompt_tokens = 7;
    g->output_tokens = 5;
    g->finish_reason = "length";
    g->audit_log_id = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    g->prompt_entry.seq = 3;
    g->output_entry.seq = 4;
    memcpy(g->prompt_entry.hash, ENTRY_HASH, sizeof ENTRY_HASH);
    memcpy(g->output_entry.hash, ENTRY_HASH, sizeof ENTRY_HASH);
    g->policy_digest = MODEL_DIGEST;
    g->sandbox.seccomp_mode = 2;
    g->sandbox.no_new_privs = 1;
    g->sandbox.net_namespace = 1;
    g->sandbox_required = 1;
    snprintf(g->sandbox.notes, sizeof g->sandbox.notes, "landlock unavailable");
    g->engine_version = "0.1.0";
    g->build_id = "test";
    g->kernels = "scalar";
    g->started = "2026-11-25T18:00:00.000Z";
    g->finished = "2026-11-25T18:00:01.250Z";
    g->output = output;
    g->output_len = output_len;
}

/* Statement + envelope with the secret key in a PEM file. */
static int sign_with_key_file(const char *secret_pem, const attest_generation *g, char **env,
                              char *err, size_t errlen)
{
    uint8_t sk[64];
    char *json = NULL;
    size_t len = 0;
    int rc = -1;
    if (keys_load_ed25519_secret(secret_pem, sk, err, errlen) == 0 &&
        attest_statement_json(g, &json, &len, err, errlen) == ATTEST_OK &&
        attest_sign_envelope((const uint8_t *)json, len, sk, env, err, errlen) == ATTEST_OK)
        rc = 0;
    sodium_memzero(sk, sizeof sk);
    free(json);
    return rc;
}

static int write_mode(char **argv)
{
    char err[512], *env = NULL;
    uint8_t salt[ATTEST_SALT_LEN];
    size_t prompt_len = 0, output_len = 0;
    unsigned char *prompt = test_read_file(argv[3], &prompt_len);
    unsigned char *output = test_read_file(argv[5], &output_len);
    attest_generation g;
    int rc = 1;
    if (!prompt || !output || attest_hex32(argv[4], salt) != 0) {
        fprintf(stderr, "test_attest_sign: cannot read the prompt, output or salt\n");
        goto out;
    }
    example_generation(&g, salt, prompt, prompt_len, output, output_len);
    if (sign_with_key_file(argv[2], &g, &env, err, sizeof err) != 0) {
        fprintf(stderr, "test_attest_sign: %s\n", err);
        goto out;
    }
    FILE *f = fopen(argv[6], "w");
    if (f && fprintf(f, "%s\n", env) > 0 && fclose(f) == 0)
        rc = 0;
    else
        fprintf(stderr, "test_attest_sign: cannot write %s\n", argv[6]);
out:
    free(env);
    free(prompt);
    free(output);
    return rc;
}

static void test_key_files_sign_and_verify(void **state)
{
    char *dir = test_mkdtemp(), fp[KEY_FINGERPRINT_HEX], sec[4096], pub[4096], err[512];
    uint8_t salt[ATTEST_SALT_LEN], pk[32];
    attest_generation g;
    attest_verified v;
    char *env = NULL;
    (void)state;
    assert_non_null(dir);
    assert_int_equal(keys_generate(KEY_DEVICE, dir, 0, fp, sec, pub, err, sizeof err), 0);
    randombytes_buf(salt, sizeof salt);
    example_generation(&g, salt, (const uint8_t *)"hi", 2, (const uint8_t *)"hello", 5);
    assert_int_equal(sign_with_key_file(sec, &g, &env, err, sizeof err), 0);
    assert_int_equal(keys_load_ed25519_public(pub, pk, err, sizeof err), 0);
    attest_expect e = {(const uint8_t *)"hi", 2, salt, (const uint8_t *)"hello", 5};
    assert_int_equal(attest_verify(env, strlen(env), pk, &e, &v, err, sizeof err), ATTEST_OK);
    /* The keyid in the envelope is the fingerprint `appliance keygen` printed. */
    assert_true(v.keyid_matches);
    assert_string_equal(v.keyid, fp);
    assert_string_equal(v.sandbox.notes, "landlock unavailable");
    free(env);
    test_rmtree(dir);
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "write") == 0)
        return write_mode(argv);
    if (argc != 1) {
        fprintf(stderr, "usage: test_attest_sign [write SECRET.pem PROMPT SALT_HEX OUTPUT OUT]\n");
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_files_sign_and_verify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
