/* Unit tests of the OMS library (image/oms*.c) through its C API: path
 * canonicalisation, strict bundle parsing, key/rawBytes/keyid variants,
 * verification on an already open descriptor, shards and progress. Keys are
 * generated here (throwaway); nothing from ../shared is needed. */
#include "image/image.h"
#include "image/oms_internal.h"
#include "testutil.h"

#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct fixture {
    char *dir;
    char key[4200], pub[4200], key2[4200], pub2[4200], model[4200];
} fixture;

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* Generates an EC key on curve and writes private and public PEM files. */
static void make_key(const char *curve, const char *priv_path, const char *pub_path)
{
    EVP_PKEY *k = EVP_EC_gen(curve);
    FILE *f;
    assert_non_null(k);
    f = fopen(priv_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    f = fopen(pub_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PUBKEY(f, k), 1);
    fclose(f);
    EVP_PKEY_free(k);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    char p[4300];
    assert_non_null(fx);
    fx->dir = test_mkdtemp();
    assert_non_null(fx->dir);
    snprintf(fx->key, sizeof fx->key, "%s/k.pem", fx->dir);
    snprintf(fx->pub, sizeof fx->pub, "%s/k.pub", fx->dir);
    snprintf(fx->key2, sizeof fx->key2, "%s/k2.pem", fx->dir);
    snprintf(fx->pub2, sizeof fx->pub2, "%s/k2.pub", fx->dir);
    snprintf(fx->model, sizeof fx->model, "%s/model", fx->dir);
    make_key("P-256", fx->key, fx->pub);
    make_key("P-521", fx->key2, fx->pub2);
    assert_int_equal(mkdir(fx->model, 0755), 0);
    snprintf(p, sizeof p, "%s/sub", fx->model);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/a.bin", fx->model);
    write_text(p, "alpha");
    snprintf(p, sizeof p, "%s/sub/b:0:1.bin", fx->model);
    write_text(p, "bravo bravo bravo");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    test_rmtree(fx->dir);
    free(fx);
    return 0;
}

static void test_canonical_paths(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a", "a"},
        {"./a", "a"},
        {"a//b", "a/b"},
        {"a/./b/", "a/b"},
        {"sub/./x.bin", "sub/x.bin"},
        {"/abs", NULL},
        {"../x", NULL},
        {"a/../b", NULL},
        {".", NULL},
        {"", NULL},
        {"..a", "..a"},
        {"a/..b", "a/..b"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = oms_canonical_relpath(cases[i].in);
        if (!cases[i].out) {
            assert_null(got);
        } else {
            assert_non_null(got);
            assert_string_equal(got, cases[i].out);
        }
        free(got);
    }
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(oms_utf8_valid("plain"));
    assert_true(oms_utf8_valid("模型 ü"));
    assert_false(oms_utf8_valid("\xff"));
    assert_false(oms_utf8_valid("\xc0\xaf"));     /* overlong '/' */
    assert_false(oms_utf8_valid("\xed\xa0\x80")); /* surrogate */
    assert_false(oms_utf8_valid("\xe6\xa8"));     /* truncated */
}

static void test_base64_variants(void **state)
{
    /* 0xfb 0xff 0xbf: '+', '/' in standard, '-', '_' in URL-safe. */
    static const char *const ok[] = {"+/+/", "-_-_", "+/+/+w==", "+/+/+w", "-_-_-w"};
    static const char *const bad[] = {"+/+", "+/+/=", "+/ +/", "+/+/!", "+/+/+w==="};
    size_t n;
    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        unsigned char *b = oms_b64_decode(ok[i], &n);
        assert_non_null(b);
        assert_int_equal(b[0], 0xfb);
        assert_int_equal(b[2], 0xbf);
        free(b);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(oms_b64_decode(bad[i], &n));
}

static void test_shard_names(void **state)
{
    oms_resource r = {0};
    (void)state;
    r.name = strdup("dir/a:b:10:20");
    assert_int_equal(oms_parse_shard_name(&r), 0);
    assert_string_equal(r.path, "dir/a:b");
    assert_int_equal(r.start, 10);
    assert_int_equal(r.end, 20);
    free(r.path);
    free(r.name);
    static const char *const bad[] = {"x", "x:1", "x:2:1", "x:a:3", ":1:2", "x:1:2junk"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        oms_resource b = {.name = (char *)bad[i]};
        assert_int_not_equal(oms_parse_shard_name(&b), 0);
    }
}

/* Signs the model dir with key method into fx->dir/NAME; returns the path. */
static const char *sign_to(fixture *fx, const char *name, const char *key, uint64_t shard)
{
    static char out[4300];
    char err[512], root[65];
    size_t n = 0;
    oms_sign_opts o = {.method = OMS_METHOD_KEY,
                       .model_path = fx->model,
                       .private_key_pem = key,
                       .output_bundle = out,
                       .shard_size = shard};
    snprintf(out, sizeof out, "%s/%s", fx->dir, name);
    if (oms_sign_model(&o, root, &n, err, sizeof err) != 0)
        fail_msg("sign failed: %s", err);
    assert_int_equal(strlen(root), 64);
    return out;
}

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    assert_non_null(j);
    return j;
}

/* Parses a jansson value as a bundle; returns the rc and the message. */
static int parse_json(json_t *j, oms_bundle *b, char *err, size_t errlen)
{
    char *text = json_dumps(j, 0);
    int rc;
    assert_non_null(text);
    rc = oms_bundle_parse((const unsigned char *)text, strlen(text), b, err, errlen);
    free(text);
    return rc;
}

static void expect_parse_error(json_t *j, const char *want)
{
    oms_bundle b;
    char err[512] = "";
    int rc = parse_json(j, &b, err, sizeof err);
    if (rc == 0) {
        oms_bundle_free(&b);
        fail_msg("parse succeeded, expected '%s'", want);
    }
    if (!strstr(err, want))
        fail_msg("error '%s' does not contain '%s'", err, want);
}

static void test_parse_rejects_malformed_fields(void **state)
{
    fixture *fx = *state;
    const char *path = sign_to(fx, "p.sig", fx->key, 0);
    json_t *good = load_json(path), *j;
    json_t *env, *sig0;

    j = json_deep_copy(good);
    json_object_del(j, "mediaType");
    expect_parse_error(j, "bundle.mediaType is missing");
    json_decref(j);

    j = json_deep_copy(good);
    json_object_set_new(json_object_get(j, "verificationMaterial"), "x509CertificateChain",
                        json_object());
    expect_parse_error(j, "exactly one of publicKey");
    json_decref(j);

    j = json_deep_copy(good);
    json_object_set_new(json_object_get(json_object_get(j, "verificationMaterial"), "publicKey"),
                        "rawBytes", json_string("not base64!"));
    expect_parse_error(j, "rawBytes is not base64");
    json_decref(j);

    j = json_deep_copy(good);
    env = json_object_get(j, "dsseEnvelope");
    sig0 = json_array_get(json_object_get(env, "signatures"), 0);
    json_object_set_new(sig0, "keyid", json_integer(7));
    expect_parse_error(j, "keyid is not a string");
    json_decref(j);

    j = json_deep_copy(good);
    json_object_set_new(json_object_get(j, "dsseEnvelope"), "payload", json_integer(1));
    expect_parse_error(j, "dsseEnvelope.payload is missing");
    json_decref(j);

    j = json_deep_copy(good);
    json_object_set_new(json_object_get(j, "verificationMaterial"), "tlogEntries",
                        json_string("x"));
    expect_parse_error(j, "tlogEntries is not an array");
    json_decref(j);

    json_decref(good);
    {
        oms_bundle b;
        char err[256];
        const char *dup = "{\"mediaType\":\"a\",\"mediaType\":\"b\"}";
        assert_int_not_equal(
            oms_bundle_parse((const unsigned char *)dup, strlen(dup), &b, err, sizeof err), 0);
        assert_non_null(strstr(err, "not valid JSON"));
    }
}

/* keyid absent, "", null all parse and verify (OMS 4.1). */
static void test_keyid_variants_and_rawbytes(void **state)
{
    fixture *fx = *state;
    const char *path = sign_to(fx, "k.sig", fx->key, 0);
    json_t *good = load_json(path);
    oms_trust trust = {.public_key_pem = fx->pub};
    for (int variant = 0; variant < 4; variant++) {
        json_t *j = json_deep_copy(good);
        json_t *sig0 =
            json_array_get(json_object_get(json_object_get(j, "dsseEnvelope"), "signatures"), 0);
        json_t *pk = json_object_get(json_object_get(j, "verificationMaterial"), "publicKey");
        oms_bundle b;
        char err[512], signer[OMS_SIGNER_MAX];
        if (variant == 0)
            json_object_del(sig0, "keyid");
        else if (variant == 1)
            json_object_set_new(sig0, "keyid", json_null());
        else if (variant == 2)
            json_object_set_new(sig0, "keyid", json_string(""));
        if (variant == 3) {
            /* Historical: rawBytes = base64 of the PEM text, no hint. */
            size_t len = 0;
            unsigned char *pem = test_read_file(fx->pub, &len);
            char *b64 = oms_b64_encode(pem, len);
            json_object_del(pk, "hint");
            json_object_set_new(pk, "rawBytes", json_string(b64));
            free(b64);
            free(pem);
        }
        assert_int_equal(parse_json(j, &b, err, sizeof err), 0);
        if (oms_bundle_verify(&b, OMS_METHOD_KEY, &trust, signer, sizeof signer, err, sizeof err) !=
            0)
            fail_msg("variant %d: %s", variant, err);
        assert_non_null(strstr(signer, "ecdsa-p256"));
        oms_bundle_free(&b);
        json_decref(j);
    }
    json_decref(good);
}

static int verify_path(fixture *fx, const char *bundle, const char *pub, char *err, size_t len)
{
    oms_trust trust = {.public_key_pem = pub};
    oms_verified v;
    return oms_verify_model(fx->model, bundle, OMS_METHOD_KEY, &trust, NULL, &v, err, len);
}

static void test_wrong_key_names_both_fingerprints(void **state)
{
    fixture *fx = *state;
    const char *path = sign_to(fx, "w.sig", fx->key, 0);
    char err[512];
    assert_int_equal(verify_path(fx, path, fx->pub, err, sizeof err), 0);
    assert_int_not_equal(verify_path(fx, path, fx->pub2, err, sizeof err), 0);
    assert_non_null(strstr(err, "wrong key"));
    assert_non_null(strstr(err, "given public key is sha256:"));
}

/* The loader verifies on descriptors it already holds: the path may change
 * afterwards without affecting what is checked. */
static void test_check_on_open_descriptor(void **state)
{
    fixture *fx = *state;
    char bundle[4300], moved[4300], err[512], signer[OMS_SIGNER_MAX], file[4400];
    size_t len = 0;
    unsigned char *json;
    oms_bundle b;
    oms_trust trust = {.public_key_pem = fx->pub};
    int fd, ffd;
    uint64_t bytes = 0;
    snprintf(bundle, sizeof bundle, "%s", sign_to(fx, "fd.sig", fx->key, 0));
    json = test_read_file(bundle, &len);
    assert_non_null(json);
    assert_int_equal(oms_bundle_parse(json, len, &b, err, sizeof err), 0);
    free(json);
    assert_int_equal(
        oms_bundle_verify(&b, OMS_METHOD_KEY, &trust, signer, sizeof signer, err, sizeof err), 0);
    fd = open(fx->model, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    snprintf(moved, sizeof moved, "%s/moved", fx->dir);
    assert_int_equal(rename(fx->model, moved), 0);
    if (oms_manifest_check_at(&b.manifest, fd, NULL, NULL, NULL, &bytes, err, sizeof err) != 0)
        fail_msg("check on fd: %s", err);
    assert_int_equal(bytes, strlen("alpha") + strlen("bravo bravo bravo"));
    /* Tamper through the new path: the descriptor sees the same directory. */
    snprintf(file, sizeof file, "%s/a.bin", moved);
    write_text(file, "ALPHA");
    assert_int_not_equal(
        oms_manifest_check_at(&b.manifest, fd, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    assert_non_null(strstr(err, "file 'a.bin' does not match"));
    write_text(file, "alpha");
    assert_int_equal(rename(moved, fx->model), 0);
    close(fd);
    /* One regular file cannot satisfy a manifest of two files. */
    snprintf(file, sizeof file, "%s/a.bin", fx->model);
    ffd = open(file, O_RDONLY);
    assert_true(ffd >= 0);
    assert_int_not_equal(
        oms_manifest_check_at(&b.manifest, ffd, "x", NULL, NULL, NULL, err, sizeof err), 0);
    close(ffd);
    oms_bundle_free(&b);
}

/* A loader hashing a single file itself compares with this digest. */
static void test_single_file_digest(void **state)
{
    fixture *fx = *state;
    char model[4400], out[4400], err[512];
    unsigned char digest[OMS_DIGEST_MAX], want[32];
    size_t dlen = 0, len = 0;
    const char *ht = NULL;
    unsigned char *json;
    oms_bundle b;
    snprintf(model, sizeof model, "%s/a.bin", fx->model);
    snprintf(out, sizeof out, "%s/one.sig", fx->dir);
    oms_sign_opts o = {.method = OMS_METHOD_KEY,
                       .model_path = model,
                       .private_key_pem = fx->key,
                       .output_bundle = out};
    assert_int_equal(oms_sign_model(&o, NULL, NULL, err, sizeof err), 0);
    json = test_read_file(out, &len);
    assert_int_equal(oms_bundle_parse(json, len, &b, err, sizeof err), 0);
    free(json);
    assert_int_equal(oms_manifest_single_file(&b.manifest, digest, &dlen, &ht, err, sizeof err), 0);
    assert_string_equal(ht, "sha256");
    assert_int_equal(dlen, 32);
    assert_int_equal(EVP_Digest("alpha", 5, want, NULL, EVP_sha256(), NULL), 1);
    assert_memory_equal(digest, want, 32);
    /* "." as the reference signer names it (image/OMS.md, single files). */
    assert_string_equal(b.manifest.resources[0].name, ".");
    oms_bundle_free(&b);
    o.single_file_basename = true; /* OMS 6.1.2 item 5 */
    assert_int_equal(oms_sign_model(&o, NULL, NULL, err, sizeof err), 0);
    json = test_read_file(out, &len);
    assert_int_equal(oms_bundle_parse(json, len, &b, err, sizeof err), 0);
    free(json);
    assert_string_equal(b.manifest.resources[0].name, "a.bin");
    assert_int_equal(oms_manifest_single_file(&b.manifest, digest, &dlen, &ht, err, sizeof err), 0);
    assert_memory_equal(digest, want, 32);
    oms_bundle_free(&b);
    json = test_read_file(sign_to(fx, "two.sig", fx->key, 0), &len);
    assert_int_equal(oms_bundle_parse(json, len, &b, err, sizeof err), 0);
    free(json);
    assert_int_not_equal(oms_manifest_single_file(&b.manifest, digest, &dlen, &ht, err, sizeof err),
                         0);
    assert_non_null(strstr(err, "signs 2 files"));
    oms_bundle_free(&b);
}

static void count_progress(void *arg, uint64_t done, uint64_t total)
{
    uint64_t *last = arg;
    assert_true(done <= total);
    last[0] = done;
    last[1] = total;
}

static void test_shards_and_progress(void **state)
{
    fixture *fx = *state;
    const char *path = sign_to(fx, "s.sig", fx->key2, 4);
    size_t len = 0;
    unsigned char *json = test_read_file(path, &len);
    oms_bundle b;
    char err[512];
    uint64_t seen[2] = {0, 0};
    oms_check_opts opts = {.progress = count_progress, .progress_arg = seen, .threads = 3};
    int fd;
    assert_int_equal(oms_bundle_parse(json, len, &b, err, sizeof err), 0);
    free(json);
    assert_true(b.manifest.shards);
    assert_int_equal(b.manifest.shard_size, 4);
    /* "alpha" = 2 shards, "bravo bravo bravo" (17 bytes) = 5 shards. */
    assert_int_equal(b.manifest.n_resources, 7);
    assert_string_equal(b.manifest.resources[2].path, "sub/b:0:1.bin");
    fd = open(fx->model, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    if (oms_manifest_check_at(&b.manifest, fd, NULL, NULL, &opts, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(seen[0], 22);
    assert_int_equal(seen[1], 22);
    close(fd);
    oms_bundle_free(&b);
}

static void test_sign_payload_odd_statement(void **state)
{
    fixture *fx = *state;
    const char *stmt = "{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[],"
                       "\"predicateType\":\"https://model_signing/signature/v1.0\"}";
    oms_sign_opts o = {.method = OMS_METHOD_KEY, .private_key_pem = fx->key};
    char *bundle = NULL, err[512];
    oms_bundle b;
    assert_int_equal(
        oms_sign_payload(&o, (const unsigned char *)stmt, strlen(stmt), &bundle, err, sizeof err),
        0);
    assert_int_not_equal(
        oms_bundle_parse((const unsigned char *)bundle, strlen(bundle), &b, err, sizeof err), 0);
    assert_non_null(strstr(err, "subject must be an array of one entry"));
    free(bundle);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_paths),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_shard_names),
        cmocka_unit_test(test_base64_variants),
        cmocka_unit_test_setup_teardown(test_parse_rejects_malformed_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyid_variants_and_rawbytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key_names_both_fingerprints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_on_open_descriptor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shards_and_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_file_digest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_payload_odd_statement, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
