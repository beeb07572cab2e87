/* attest: statements, DSSE envelopes and verification, with real Ed25519
 * keys. Every rejection is checked for its own message, so a verifier that
 * failed for the wrong reason would not pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "image/image.h"
#include "testutil.h"

static const char PROMPT[] = "Summarise: biopsy shows benign tissue.";
static const char OUTPUT[] = "The biopsy is benign. \xc3\xa9t\xc3\xa9"; /* UTF-8 on purpose */
static const char HEX_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char HEX_B[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char HEX_C[] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

typedef struct fixture {
    char *dir;
    uint8_t sk[64], pk[32];
    uint8_t other_sk[64], other_pk[32];
    uint8_t salt[ATTEST_SALT_LEN];
    attest_generation gen;
    char *envelope; /* a good envelope for gen */
} fixture;

static void fill_generation(fixture *f)
{
    attest_generation *g = &f->gen;
    memset(g, 0, sizeof *g);
    for (size_t i = 0; i < ATTEST_SALT_LEN; i++)
        f->salt[i] = (uint8_t)(i * 7 + 1);
    g->model_digest = HEX_A;
    g->model_name = "aidreams260K.gguf";
    g->model_signer = "key sha256:1234abcd";
    g->salt = f->salt;
    g->prompt = (const uint8_t *)PROMPT;
    g->prompt_len = strlen(PROMPT);
    g->sampling = (attest_sampling){0.8f, 40, 0.95f, 0.05f, 1.1f, 64, UINT64_MAX, 256};
    g->prompt_tokens = 12;
    g->output_tokens = 9;
    g->finish_reason = "eos";
    g->audit_log_id = "00112233445566778899aabbccddeeff";
    g->prompt_entry = (attest_entry_ref){41, ""};
    g->output_entry = (attest_entry_ref){42, ""};
    memcpy(g->prompt_entry.hash, HEX_B, 65);
    memcpy(g->output_entry.hash, HEX_C, 65);
    g->policy_digest = HEX_B;
    g->sandbox.seccomp_mode = 2;
    g->sandbox.no_new_privs = 1;
    g->sandbox.net_namespace = 1;
    g->sandbox.user_namespace = 1;
    g->sandbox.landlock_abi = 3;
    g->sandbox.landlock_enforced = 1;
    g->sandbox_required = 1;
    g->engine_version = "0.1.0";
    g->build_id = "bf8a763abcde";
    g->kernels = "avx2";
    g->started = "2026-11-25T17:43:18.123Z";
    g->finished = "2026-11-25T17:43:19.456Z";
    g->output = (const uint8_t *)OUTPUT;
    g->output_len = strlen(OUTPUT);
}

/* Signs the statement of f->gen into a fresh envelope. */
static char *sign_generation(const attest_generation *g, const uint8_t sk[64])
{
    char *json = NULL, *env = NULL, err[512];
    size_t len = 0;
    assert_int_equal(attest_statement_json(g, &json, &len, err, sizeof err), ATTEST_OK);
    assert_int_equal(attest_sign_envelope((const uint8_t *)json, len, sk, &env, err, sizeof err),
                     ATTEST_OK);
    free(json);
    return env;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[512], sec[4096], fp[KEY_FINGERPRINT_HEX];
    if (!f || sodium_init() < 0)
        return -1;
    f->dir = test_mkdtemp();
    if (!f->dir || keys_generate(KEY_DEVICE, f->dir, 0, fp, sec, NULL, err, sizeof err) != 0 ||
        keys_load_ed25519_secret(sec, f->sk, err, sizeof err) != 0)
        return -1;
    memcpy(f->pk, f->sk + 32, 32);
    crypto_sign_keypair(f->other_pk, f->other_sk);
    fill_generation(f);
    f->envelope = sign_generation(&f->gen, f->sk);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sodium_memzero(f->sk, sizeof f->sk);
    free(f->envelope);
    test_rmtree(f->dir);
    free(f);
    return 0;
}

static attest_status verify(const fixture *f, const char *env, const attest_expect *e,
                            attest_verified *v, char *err)
{
    return attest_verify(env, strlen(env), f->pk, e, v, err, 512);
}

/* Asserts that env fails with status and a message containing text. */
static void expect_reject(const fixture *f, const char *env, attest_status status, const char *text)
{
    char err[512] = "";
    attest_status st = verify(f, env, NULL, NULL, err);
    if (st != status || !strstr(err, text))
        fail_msg("want %s \"%s\", got %s \"%s\"", attest_status_name(status), text,
                 attest_status_name(st), err);
}

/* ---- envelope surgery helpers ------------------------------------------- */

static json_t *envelope_json(const char *env)
{
    json_t *j = json_loads(env, 0, NULL);
    assert_non_null(j);
    return j;
}

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    assert_non_null(s);
    return s;
}

static uint8_t *b64_decode(const char *b64, size_t *len)
{
    size_t cap = strlen(b64);
    uint8_t *out = malloc(cap + 1);
    assert_non_null(out);
    assert_int_equal(sodium_base642bin(out, cap, b64, strlen(b64), NULL, len, NULL,
                                       sodium_base64_VARIANT_ORIGINAL),
                     0);
    return out;
}

static char *b64_encode(const uint8_t *bytes, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(cap);
    assert_non_null(out);
    sodium_bin2base64(out, cap, bytes, len, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

/* The statement JSON inside an envelope. */
static char *payload_of(const char *env)
{
    json_t *j = envelope_json(env);
    size_t len = 0;
    uint8_t *raw = b64_decode(json_string_value(json_object_get(j, "payload")), &len);
    json_decref(j);
    raw[len] = '\0';
    return (char *)raw;
}

/* An envelope whose payload (any bytes) is properly signed by sk. */
static char *sign_text(const char *payload, const uint8_t sk[64])
{
    char *env = NULL, err[512];
    assert_int_equal(
        attest_sign_envelope((const uint8_t *)payload, strlen(payload), sk, &env, err, sizeof err),
        ATTEST_OK);
    return env;
}

/* The good statement with one substring replaced, re-signed. */
static char *resigned_with(const fixture *f, const char *from, const char *to)
{
    char *stmt = payload_of(f->envelope);
    char *at = strstr(stmt, from);
    assert_non_null(at);
    size_t n = strlen(stmt) - strlen(from) + strlen(to) + 1;
    char *edited = malloc(n);
    assert_non_null(edited);
    snprintf(edited, n, "%.*s%s%s", (int)(at - stmt), stmt, to, at + strlen(from));
    char *env = sign_text(edited, f->sk);
    free(edited);
    free(stmt);
    return env;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_pae_matches_the_dsse_spec(void **state)
{
    uint8_t *pae = NULL;
    size_t len = 0;
    (void)state;
    assert_int_equal(attest_dsse_pae("http://example.com/HelloWorld",
                                     (const uint8_t *)"hello world", 11, &pae, &len),
                     0);
    const char want[] = "DSSEv1 29 http://example.com/HelloWorld 11 hello world";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(pae, want, len);
    free(pae);
}

static void test_keyid_is_the_key_file_fingerprint(void **state)
{
    fixture *f = *state;
    char path[4200], fp_file[KEY_FINGERPRINT_HEX], fp[ATTEST_HEX_LEN], err[512];
    snprintf(path, sizeof path, "%s/device.pub.pem", f->dir);
    assert_int_equal(keys_fingerprint_file(path, fp_file, err, sizeof err), 0);
    attest_key_fingerprint(f->pk, fp);
    assert_string_equal(fp, fp_file);
    json_t *j = envelope_json(f->envelope);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "signatures"), 0), "keyid")),
                        fp);
    json_decref(j);
}

static void test_round_trip_reads_every_field(void **state)
{
    fixture *f = *state;
    attest_verified v;
    char err[512];
    attest_expect e = {(const uint8_t *)PROMPT, strlen(PROMPT), f->salt, (const uint8_t *)OUTPUT,
                       strlen(OUTPUT)};
    assert_int_equal(verify(f, f->envelope, &e, &v, err), ATTEST_OK);
    assert_true(v.keyid_matches);
    assert_true(v.output_checked);
    assert_true(v.prompt_checked);
    assert_string_equal(v.model_digest, HEX_A);
    assert_string_equal(v.model_name, "aidreams260K.gguf");
    assert_string_equal(v.model_signer, "key sha256:1234abcd");
    /* Sampling reals come back as the identical binary32 values. */
    assert_memory_equal(&v.sampling, &f->gen.sampling, sizeof v.sampling);
    assert_true(v.sampling.seed == UINT64_MAX);
    assert_int_equal(v.prompt_tokens, 12);
    assert_int_equal(v.output_tokens, 9);
    assert_string_equal(v.finish_reason, "eos");
    assert_string_equal(v.audit_log_id, "00112233445566778899aabbccddeeff");
    assert_int_equal(v.prompt_entry.seq, 41);
    assert_string_equal(v.prompt_entry.hash, HEX_B);
    assert_int_equal(v.output_entry.seq, 42);
    assert_string_equal(v.output_entry.hash, HEX_C);
    assert_string_equal(v.policy_digest, HEX_B);
    assert_int_equal(v.sandbox.seccomp_mode, 2);
    assert_true(v.sandbox.no_new_privs && v.sandbox.net_namespace && v.sandbox.user_namespace);
    assert_int_equal(v.sandbox.landlock_abi, 3);
    assert_true(v.sandbox.landlock_enforced && v.sandbox_required);
    assert_string_equal(v.engine_version, "0.1.0");
    assert_string_equal(v.build_id, "bf8a763abcde");
    assert_string_equal(v.kernels, "avx2");
    assert_string_equal(v.started, "2026-11-25T17:43:18.123Z");
    assert_string_equal(v.finished, "2026-11-25T17:43:19.456Z");
    /* The subject is the SHA-256 of the exact output bytes. */
    uint8_t d[32];
    char hex[65];
    crypto_hash_sha256(d, (const uint8_t *)OUTPUT, strlen(OUTPUT));
    sodium_bin2hex(hex, sizeof hex, d, sizeof d);
    assert_string_equal(v.output_sha256, hex);
}

static void test_statement_bytes_are_canonical(void **state)
{
    fixture *f = *state;
    char *a = NULL, *b = NULL, err[512];
    size_t la = 0, lb = 0;
    assert_int_equal(attest_statement_json(&f->gen, &a, &la, err, sizeof err), ATTEST_OK);
    assert_int_equal(attest_statement_json(&f->gen, &b, &lb, err, sizeof err), ATTEST_OK);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    /* Sorted keys, the documented types, short decimals for binary32 reals,
     * and the seed as a string. */
    assert_true(strncmp(a, "{\"_type\":\"https://in-toto.io/Statement/v1\",\"predicate\":", 55) ==
                0);
    assert_non_null(strstr(a, "\"predicateType\":\"https://appliance.local/attestation/"
                              "generation/v1\""));
    assert_non_null(strstr(a, "\"temperature\":0.8,"));
    assert_non_null(strstr(a, "\"repeatPenalty\":1.1,"));
    assert_non_null(strstr(a, "\"seed\":\"18446744073709551615\""));
    assert_non_null(strstr(a, "\"subject\":[{\"digest\":{\"sha256\":\""));
    assert_non_null(strstr(a, "\"name\":\"output\"}]}"));
    assert_null(strchr(a, '\n'));
    free(a);
    free(b);
}

/* One binary32 value through statement, signature and verification. */
static void assert_float_round_trips(fixture *f, float value)
{
    attest_generation g = f->gen;
    attest_verified v;
    char err[512];
    g.sampling.top_p = value;
    char *env = sign_generation(&g, f->sk);
    assert_int_equal(verify(f, env, NULL, &v, err), ATTEST_OK);
    if (memcmp(&v.sampling.top_p, &value, sizeof value) != 0)
        fail_msg("%.9g came back as %.9g", (double)value, (double)v.sampling.top_p);
    free(env);
}

static void test_sampling_reals_round_trip_exactly(void **state)
{
    fixture *f = *state;
    static const float edges[] = {
        0.0f,  -0.0f,      1.0f, 0.1f, 0.95f, 1e-45f, 1.17549435e-38f, 3.40282347e+38f,
        -2.5f, 16777217.0f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        assert_float_round_trips(f, edges[i]);
    /* Random finite bit patterns. */
    for (int i = 0; i < 300; i++) {
        uint32_t bits = randombytes_random();
        float value;
        memcpy(&value, &bits, sizeof value);
        if (isfinite(value))
            assert_float_round_trips(f, value);
    }
}

static void test_prompt_commitment_byte_order(void **state)
{
    fixture *f = *state;
    uint8_t buf[ATTEST_SALT_LEN + sizeof PROMPT], d[32];
    char want[65], got[65];
    memcpy(buf, f->salt, ATTEST_SALT_LEN);
    memcpy(buf + ATTEST_SALT_LEN, PROMPT, strlen(PROMPT));
    crypto_hash_sha256(d, buf, ATTEST_SALT_LEN + strlen(PROMPT));
    sodium_bin2hex(want, sizeof want, d, sizeof d);
    attest_prompt_commitment(f->salt, (const uint8_t *)PROMPT, strlen(PROMPT), got);
    assert_string_equal(got, want);
}

static void test_prompt_commitment_rejects_one_character(void **state)
{
    fixture *f = *state;
    char err[512], changed[sizeof PROMPT];
    attest_verified v;
    memcpy(changed, PROMPT, sizeof PROMPT);
    changed[10] ^= 0x20; /* one letter's case */
    attest_expect e = {(const uint8_t *)changed, strlen(changed), f->salt, NULL, 0};
    assert_int_equal(verify(f, f->envelope, &e, &v, err), ATTEST_E_PROMPT);
    assert_non_null(strstr(err, "prompt commitment mismatch"));
    /* The right prompt with another salt fails too. */
    uint8_t salt[ATTEST_SALT_LEN];
    memcpy(salt, f->salt, sizeof salt);
    salt[31] ^= 1;
    attest_expect e2 = {(const uint8_t *)PROMPT, strlen(PROMPT), salt, NULL, 0};
    assert_int_equal(verify(f, f->envelope, &e2, &v, err), ATTEST_E_PROMPT);
    /* A prompt without its salt is the caller's mistake. */
    attest_expect e3 = {(const uint8_t *)PROMPT, strlen(PROMPT), NULL, NULL, 0};
    assert_int_equal(verify(f, f->envelope, &e3, &v, err), ATTEST_E_INVALID);
}

static void test_output_digest_mismatch(void **state)
{
    fixture *f = *state;
    char err[512], with_newline[sizeof OUTPUT + 1];
    attest_verified v;
    snprintf(with_newline, sizeof with_newline, "%s\n", OUTPUT);
    attest_expect e = {NULL, 0, NULL, (const uint8_t *)with_newline, strlen(with_newline)};
    assert_int_equal(verify(f, f->envelope, &e, &v, err), ATTEST_E_OUTPUT);
    assert_non_null(strstr(err, "output digest mismatch"));
    assert_false(v.output_checked);
}

static void test_tampered_payload_bytes_are_rejected(void **state)
{
    fixture *f = *state;
    size_t len = 0;
    json_t *j = envelope_json(f->envelope);
    uint8_t *raw = b64_decode(json_string_value(json_object_get(j, "payload")), &len);
    json_decref(j);
    /* Flip one bit at many places, one place at a time. */
    for (size_t i = 0; i < len; i += 13) {
        raw[i] ^= 0x01;
        char *b64 = b64_encode(raw, len);
        raw[i] ^= 0x01;
        j = envelope_json(f->envelope);
        json_object_set_new(j, "payload", json_string(b64));
        free(b64);
        char *env = dump(j);
        expect_reject(f, env, ATTEST_E_SIGNATURE, "signature does not verify");
        free(env);
    }
    free(raw);
}

static void test_tampered_signature_byte_is_rejected(void **state)
{
    fixture *f = *state;
    size_t len = 0;
    for (size_t i = 0; i < 64; i += 9) {
        json_t *j = envelope_json(f->envelope);
        json_t *s0 = json_array_get(json_object_get(j, "signatures"), 0);
        uint8_t *sig = b64_decode(json_string_value(json_object_get(s0, "sig")), &len);
        assert_int_equal(len, 64);
        sig[i] ^= 0x80;
        char *b64 = b64_encode(sig, len);
        free(sig);
        json_object_set_new(s0, "sig", json_string(b64));
        free(b64);
        char *env = dump(j);
        expect_reject(f, env, ATTEST_E_SIGNATURE, "signature does not verify");
        free(env);
    }
}

static void test_tampered_payload_type_is_rejected(void **state)
{
    fixture *f = *state;
    static const char *const types[] = {"application/vnd.in-toto+JSON", "application/json",
                                        "application/vnd.in-toto+json "};
    for (size_t i = 0; i < 3; i++) {
        json_t *j = envelope_json(f->envelope);
        json_object_set_new(j, "payloadType", json_string(types[i]));
        char *env = dump(j);
        expect_reject(f, env, ATTEST_E_ENVELOPE, "payloadType is");
        free(env);
    }
}

static void test_keyid_only_selects_the_key(void **state)
{
    fixture *f = *state;
    attest_verified v;
    char err[512];
    json_t *j = envelope_json(f->envelope);
    json_t *s0 = json_array_get(json_object_get(j, "signatures"), 0);
    json_object_set_new(s0, "keyid", json_string("somebody-else"));
    char *env = dump(j);
    assert_int_equal(verify(f, env, NULL, &v, err), ATTEST_OK);
    assert_false(v.keyid_matches);
    assert_string_equal(v.keyid, "somebody-else");
    free(env);
    /* Without a keyid at all: still the same signature. */
    j = envelope_json(f->envelope);
    json_object_del(json_array_get(json_object_get(j, "signatures"), 0), "keyid");
    env = dump(j);
    assert_int_equal(verify(f, env, NULL, &v, err), ATTEST_OK);
    free(env);
}

static void test_signature_by_another_key_is_rejected(void **state)
{
    fixture *f = *state;
    attest_verified v;
    char err[512];
    char *env = sign_generation(&f->gen, f->other_sk);
    expect_reject(f, env, ATTEST_E_SIGNATURE, "signature does not verify");
    /* Even when it claims the right keyid. */
    char fp[ATTEST_HEX_LEN];
    attest_key_fingerprint(f->pk, fp);
    json_t *j = envelope_json(env);
    free(env);
    json_object_set_new(json_array_get(json_object_get(j, "signatures"), 0), "keyid",
                        json_string(fp));
    env = dump(j);
    expect_reject(f, env, ATTEST_E_SIGNATURE, "signature does not verify");
    /* With both signatures, the one by the given key is found. */
    j = envelope_json(env);
    json_t *good = envelope_json(f->envelope);
    json_array_append(json_object_get(j, "signatures"),
                      json_array_get(json_object_get(good, "signatures"), 0));
    json_decref(good);
    free(env);
    env = dump(j);
    assert_int_equal(verify(f, env, NULL, &v, err), ATTEST_OK);
    assert_true(v.keyid_matches);
    free(env);
}

static void test_malformed_envelopes_each_have_a_message(void **state)
{
    fixture *f = *state;
    expect_reject(f, "this is not json", ATTEST_E_ENVELOPE, "envelope is not JSON");
    expect_reject(f, "[1,2]", ATTEST_E_ENVELOPE, "envelope is not a JSON object");
    static const struct {
        const char *field, *replacement, *message;
    } cases[] = {
        {"payload", NULL, "envelope has no payload"},
        {"payloadType", NULL, "envelope has no payloadType"},
        {"signatures", NULL, "envelope has no signatures"},
        {"payload", "\"not base64!!\"", "payload is not valid base64"},
        {"payload", "42", "payload is not a string"},
        {"payloadType", "\"text/plain\"", "payloadType is \"text/plain\""},
        {"signatures", "[]", "envelope signatures is empty"},
        {"signatures", "{}", "envelope signatures is not an array"},
        {"signatures", "[{\"keyid\":\"x\"}]", "signature 1 has no sig"},
        {"signatures", "[{\"sig\":\"@@@@\"}]", "signature 1 sig is not valid base64"},
        {"signatures", "[{\"sig\":\"AAAA\"}]", "signature 1 sig has 3 bytes"},
        {"signatures", "[{\"sig\":\"AAAA\",\"extra\":1}]", "unknown field \"extra\""},
        {"extra", "1", "envelope has an unknown field \"extra\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = envelope_json(f->envelope);
        if (cases[i].replacement)
            json_object_set_new(j, cases[i].field,
                                json_loads(cases[i].replacement, JSON_DECODE_ANY, NULL));
        else
            json_object_del(j, cases[i].field);
        char *env = dump(j);
        expect_reject(f, env, ATTEST_E_ENVELOPE, cases[i].message);
        free(env);
    }
    /* Duplicate keys are ambiguous: which payload was meant? */
    expect_reject(f, "{\"payload\":\"e30=\",\"payload\":\"e30=\"}", ATTEST_E_ENVELOPE,
                  "envelope is not JSON");
}

static void test_signed_but_wrong_statements_each_have_a_message(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *from, *to, *message;
    } cases[] = {
        {"https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1",
         "statement _type is \"https://in-toto.io/Statement/v0.1\""},
        {"generation/v1", "generation/v2", "predicate version \"v2\" is not supported"},
        {"https://appliance.local/attestation/generation/v1", "https://slsa.dev/provenance/v1",
         "predicateType \"https://slsa.dev/provenance/v1\" is not an appliance generation"},
        {"\"finishReason\":\"eos\"", "\"finishReason\":\"done\"",
         "predicate.output.finishReason is not"},
        {"\"finishReason\":\"eos\"", "\"finishReason\":\"eos\",\"extra\":1",
         "unknown field predicate.output.extra"},
        {"\"name\":\"output\"", "\"name\":\"prompt\"", "subject.0.name is not \"output\""},
        {"\"seed\":\"18446744073709551615\"", "\"seed\":42",
         "predicate.sampling.seed is not a string"},
        {"\"seed\":\"18446744073709551615\"", "\"seed\":\"18446744073709551616\"",
         "predicate.sampling.seed is not a decimal"},
        {"\"temperature\":0.8", "\"temperature\":1e300", "temperature is not a finite 32-bit"},
        {"\"startedOn\":\"2026-11-25T17:43:18.123Z\"", "\"startedOn\":\"yesterday\"",
         "predicate.startedOn is not an RFC 3339"},
        {"\"seccompMode\":2", "\"seccompMode\":3", "predicate.sandbox.seccompMode is not"},
        {"\"kernels\":\"avx2\",", "", "predicate.engine.kernels is missing"},
        {"{\"sha3_256\":\"0123", "{\"sha256\":\"0123", "unknown field predicate.audit"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *env = resigned_with(f, cases[i].from, cases[i].to);
        expect_reject(f, env, ATTEST_E_STATEMENT, cases[i].message);
        free(env);
    }
    char *env = sign_text("not json at all", f->sk);
    expect_reject(f, env, ATTEST_E_STATEMENT, "the signed payload is not JSON");
    free(env);
    env = sign_text("[]", f->sk);
    expect_reject(f, env, ATTEST_E_STATEMENT, "the signed payload is not a JSON object");
    free(env);
}

static void test_generation_fields_are_checked_before_signing(void **state)
{
    fixture *f = *state;
    attest_generation g = f->gen;
    char *json = NULL, err[512];
    g.model_digest = "ABCDEF";
    assert_int_equal(attest_statement_json(&g, &json, NULL, err, sizeof err), ATTEST_E_INVALID);
    assert_non_null(strstr(err, "model digest"));
    g = f->gen;
    g.finish_reason = "maybe";
    assert_int_equal(attest_statement_json(&g, &json, NULL, err, sizeof err), ATTEST_E_INVALID);
    assert_non_null(strstr(err, "finish reason"));
    g = f->gen;
    g.started = "2026-11-25 17:43:18";
    assert_int_equal(attest_statement_json(&g, &json, NULL, err, sizeof err), ATTEST_E_INVALID);
    g = f->gen;
    g.model_name = NULL;
    assert_int_equal(attest_statement_json(&g, &json, NULL, err, sizeof err), ATTEST_E_INVALID);
    assert_non_null(strstr(err, "model name"));
    g = f->gen;
    memset(g.sandbox.notes, 'x', sizeof g.sandbox.notes);
    assert_int_equal(attest_statement_json(&g, &json, NULL, err, sizeof err), ATTEST_E_INVALID);
    assert_non_null(strstr(err, "sandbox notes"));
    g = f->gen;
    g.model_name = "bad \xff utf-8";
    assert_int_equal(attest_statement_json(&g, &json, NULL, err, sizeof err), ATTEST_E_INVALID);
    assert_null(json);
}

static void test_format_time(void **state)
{
    char out[ATTEST_TIME_LEN];
    struct timespec t = {1795196598, 123456789};
    (void)state;
    assert_int_equal(attest_format_time(&t, out), 0);
    assert_string_equal(out, "2026-11-20T17:43:18.123Z");
    t.tv_nsec = 1000000000L;
    assert_int_equal(attest_format_time(&t, out), -1);
}

/* ---- bundles ------------------------------------------------------------------ */

typedef struct seen {
    size_t lines[16];
    attest_status status[16];
    size_t n;
    int checkpoint_calls;
} seen;

static void record_seen(void *user, size_t line, const char *type, attest_status status,
                        const char *message, const attest_verified *v)
{
    seen *s = user;
    (void)type;
    (void)message;
    (void)v;
    if (s->n < 16) {
        s->lines[s->n] = line;
        s->status[s->n++] = status;
    }
}

/* Stands in for the audit module's checkpoint check: accepts exactly the
 * note "good checkpoint" and requires the key it was given to be ours. */
static int checkpoint_check(void *user, const char *note, size_t len, const uint8_t pk[32],
                            char *err, size_t errlen)
{
    seen *s = user;
    (void)pk;
    s->checkpoint_calls++;
    if (len == 15 && memcmp(note, "good checkpoint", 15) == 0)
        return 0;
    snprintf(err, errlen, "bad signature line");
    return -1;
}

static char *device_key_line(const fixture *f, const char *pem_path_override)
{
    char path[4200], fp[ATTEST_HEX_LEN];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/device.pub.pem", f->dir);
    unsigned char *pem = test_read_file(pem_path_override ? pem_path_override : path, &len);
    assert_non_null(pem);
    attest_key_fingerprint(f->pk, fp);
    char *line = dump(json_pack("{s:s, s:s, s:s}", "type", "device_key", "fingerprint", fp, "pem",
                                (const char *)pem));
    free(pem);
    return line;
}

static char *join_lines(const char *const *lines, size_t n)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++)
        total += strlen(lines[i]) + 1;
    char *text = calloc(1, total);
    assert_non_null(text);
    for (size_t i = 0; i < n; i++) {
        strcat(text, lines[i]);
        strcat(text, "\n");
    }
    return text;
}

static attest_status check_bundle(const fixture *f, const char *text, const attest_expect *e,
                                  seen *s, attest_bundle_summary *sum, char *err)
{
    attest_bundle_opts o = {f->pk, e, checkpoint_check, s, record_seen, s};
    memset(s, 0, sizeof *s);
    return attest_verify_bundle(text, strlen(text), &o, sum, err, 512);
}

static void test_bundle_checks_every_line(void **state)
{
    fixture *f = *state;
    seen s;
    attest_bundle_summary sum;
    char err[512];
    char *key = device_key_line(f, NULL);
    char *second = sign_generation(&f->gen, f->sk);
    char *cp = dump(json_pack("{s:s, s:s}", "type", "checkpoint", "note", "good checkpoint"));
    const char *lines[] = {key, f->envelope, "", second, cp};
    char *text = join_lines(lines, 5);
    assert_int_equal(check_bundle(f, text, NULL, &s, &sum, err), ATTEST_OK);
    assert_int_equal(sum.records, 4);
    assert_int_equal(sum.attestations, 2);
    assert_int_equal(sum.device_keys, 1);
    assert_int_equal(sum.checkpoints, 1);
    assert_int_equal(sum.failed, 0);
    assert_int_equal(s.checkpoint_calls, 1);
    assert_int_equal(s.lines[2], 4); /* the blank line 3 is skipped but counted */
    free(text);

    /* Evidence needs exactly one attestation. */
    attest_expect e = {NULL, 0, NULL, (const uint8_t *)OUTPUT, strlen(OUTPUT)};
    text = join_lines(lines, 5);
    assert_int_equal(check_bundle(f, text, &e, &s, &sum, err), ATTEST_E_INVALID);
    assert_non_null(strstr(err, "exactly one attestation, the file holds 2"));
    free(text);

    /* A bad line 2 is named; the lines after it are still checked. */
    const char *bad[] = {key, "{\"payload\":\"e30=\"}", second, cp};
    text = join_lines(bad, 4);
    assert_int_equal(check_bundle(f, text, NULL, &s, &sum, err), ATTEST_E_ENVELOPE);
    assert_non_null(strstr(err, "line 2: envelope has no payloadType"));
    assert_int_equal(sum.failed, 1);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.status[2], ATTEST_OK);
    free(text);

    /* A checkpoint the audit check refuses fails the bundle. */
    char *badcp = dump(json_pack("{s:s, s:s}", "type", "checkpoint", "note", "forged"));
    const char *cps[] = {f->envelope, badcp};
    text = join_lines(cps, 2);
    assert_int_equal(check_bundle(f, text, NULL, &s, &sum, err), ATTEST_E_BUNDLE);
    assert_non_null(strstr(err, "line 2: checkpoint does not verify: bad signature line"));
    free(text);
    /* Without a checkpoint verifier, a checkpoint cannot pass unchecked. */
    text = join_lines((const char *[]){f->envelope, cp}, 2);
    attest_bundle_opts o = {f->pk, NULL, NULL, NULL, NULL, NULL};
    assert_int_equal(attest_verify_bundle(text, strlen(text), &o, &sum, err, sizeof err),
                     ATTEST_E_BUNDLE);
    assert_non_null(strstr(err, "no checkpoint verifier"));
    free(text);
    free(badcp);
    free(cp);
    free(second);
    free(key);
}

static void test_bundle_rejects_foreign_keys_and_unknown_records(void **state)
{
    fixture *f = *state;
    seen s;
    attest_bundle_summary sum;
    char err[512], fp[ATTEST_HEX_LEN];
    /* A device_key line for a different key than the auditor's. */
    char *other_dir = test_mkdtemp(), sec[4096], pub[4096];
    assert_int_equal(keys_generate(KEY_DEVICE, other_dir, 0, fp, sec, pub, err, sizeof err), 0);
    char *foreign = device_key_line(f, pub);
    char *text = join_lines((const char *[]){foreign, f->envelope}, 2);
    assert_int_equal(check_bundle(f, text, NULL, &s, &sum, err), ATTEST_E_BUNDLE);
    assert_non_null(strstr(err, "line 1: the bundle's device key"));
    free(text);
    free(foreign);
    test_rmtree(other_dir);

    char *odd = dump(json_pack("{s:s}", "type", "audit_entry"));
    text = join_lines((const char *[]){f->envelope, odd}, 2);
    assert_int_equal(check_bundle(f, text, NULL, &s, &sum, err), ATTEST_E_BUNDLE);
    assert_non_null(strstr(err, "line 2: unknown record type \"audit_entry\""));
    free(text);
    free(odd);

    char *key = device_key_line(f, NULL);
    text = join_lines((const char *[]){key}, 1);
    assert_int_equal(check_bundle(f, text, NULL, &s, &sum, err), ATTEST_E_BUNDLE);
    assert_non_null(strstr(err, "holds no attestation"));
    free(text);
    free(key);

    text = join_lines((const char *[]){f->envelope, "{not json"}, 2);
    assert_int_equal(check_bundle(f, text, NULL, &s, &sum, err), ATTEST_E_ENVELOPE);
    assert_non_null(strstr(err, "line 2: not JSON"));
    free(text);
}

static void test_single_pretty_envelope_is_one_record(void **state)
{
    fixture *f = *state;
    seen s;
    attest_bundle_summary sum;
    char err[512];
    json_t *j = envelope_json(f->envelope);
    char *pretty = json_dumps(j, JSON_INDENT(4));
    json_decref(j);
    attest_expect e = {(const uint8_t *)PROMPT, strlen(PROMPT), f->salt, (const uint8_t *)OUTPUT,
                       strlen(OUTPUT)};
    assert_int_equal(check_bundle(f, pretty, &e, &s, &sum, err), ATTEST_OK);
    assert_int_equal(sum.attestations, 1);
    free(pretty);
}

static void test_bundle_writers_match_the_reader(void **state)
{
    fixture *f = *state;
    seen s;
    attest_bundle_summary sum;
    char err[512], path[4200], *key = NULL, *cp = NULL;
    size_t len = 0;
    assert_int_equal(attest_bundle_device_key_line(f->pk, &key, err, sizeof err), ATTEST_OK);
    assert_int_equal(attest_bundle_checkpoint_line("good checkpoint", 15, &cp, err, sizeof err),
                     ATTEST_OK);
    /* The PEM inside is byte for byte the key file keygen wrote. */
    snprintf(path, sizeof path, "%s/device.pub.pem", f->dir);
    unsigned char *file = test_read_file(path, &len);
    json_t *j = envelope_json(key);
    assert_string_equal(json_string_value(json_object_get(j, "pem")), (const char *)file);
    json_decref(j);
    free(file);
    char *text = join_lines((const char *[]){key, f->envelope, cp}, 3);
    assert_int_equal(check_bundle(f, text, NULL, &s, &sum, err), ATTEST_OK);
    assert_int_equal(sum.device_keys, 1);
    assert_int_equal(sum.checkpoints, 1);
    assert_int_equal(s.checkpoint_calls, 1);
    free(text);
    free(cp);
    free(key);
    assert_int_equal(attest_bundle_checkpoint_line("", 0, &cp, err, sizeof err), ATTEST_E_INVALID);
    assert_null(cp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pae_matches_the_dsse_spec),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test_setup_teardown(test_keyid_is_the_key_file_fingerprint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_reads_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_bytes_are_canonical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prompt_commitment_byte_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sampling_reals_round_trip_exactly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prompt_commitment_rejects_one_character, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_output_digest_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_payload_bytes_are_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_signature_byte_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_payload_type_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyid_only_selects_the_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signature_by_another_key_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_envelopes_each_have_a_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_signed_but_wrong_statements_each_have_a_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_generation_fields_are_checked_before_signing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bundle_checks_every_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bundle_rejects_foreign_keys_and_unknown_records, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_single_pretty_envelope_is_one_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bundle_writers_match_the_reader, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
