/* Key files: generation of every kind, permissions, refusal to overwrite,
 * loading back, and the fingerprint definition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image/image.h"
#include "testutil.h"

static int setup(void **state)
{
    *state = test_mkdtemp();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    test_rmtree(*state);
    return 0;
}

static void path_of(char *buf, const char *dir, const char *name)
{
    snprintf(buf, 4096, "%s/%s", dir, name);
}

static void test_generate_every_kind_with_modes(void **state)
{
    const char *dir = *state;
    for (int k = KEY_DEVICE; k <= KEY_PUBLISHER; k++) {
        char fp[KEY_FINGERPRINT_HEX], fp2[KEY_FINGERPRINT_HEX], sec[4096], pub[4096], err[512];
        struct stat st;
        assert_int_equal(keys_generate((key_kind)k, dir, 0, fp, sec, pub, err, sizeof err), 0);
        assert_int_equal(strlen(fp), 64);
        assert_int_equal(stat(sec, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(stat(pub, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0644);
        /* The fingerprint of the public file, and of the secret file's public
         * half, equal the one printed at generation. */
        assert_int_equal(keys_fingerprint_file(pub, fp2, err, sizeof err), 0);
        assert_string_equal(fp, fp2);
        assert_int_equal(keys_fingerprint_file(sec, fp2, err, sizeof err), 0);
        assert_string_equal(fp, fp2);
    }
}

static void test_refuses_overwrite_without_force(void **state)
{
    const char *dir = *state;
    char fp[KEY_FINGERPRINT_HEX], fp2[KEY_FINGERPRINT_HEX], err[512];
    assert_int_equal(keys_generate(KEY_DEVICE, dir, 0, fp, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(keys_generate(KEY_DEVICE, dir, 0, fp2, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "already exists; use --force"));
    assert_int_equal(keys_generate(KEY_DEVICE, dir, 1, fp2, NULL, NULL, err, sizeof err), 0);
    assert_string_not_equal(fp, fp2);
}

static void test_missing_directory_is_an_error(void **state)
{
    char fp[KEY_FINGERPRINT_HEX], err[512];
    (void)state;
    assert_int_equal(
        keys_generate(KEY_DEVICE, "/nonexistent/dir", 0, fp, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/dir does not exist"));
}

static void test_ed25519_load_signs_and_verifies(void **state)
{
    const char *dir = *state;
    char sec[4096], pub[4096], fp[KEY_FINGERPRINT_HEX], err[512];
    uint8_t sk[64], sk2[64], pk[32], sig[64];
    const uint8_t msg[] = "attestation";
    assert_int_equal(keys_generate(KEY_DEVICE, dir, 0, fp, sec, pub, err, sizeof err), 0);
    assert_int_equal(keys_load_ed25519_secret(sec, sk, err, sizeof err), 0);
    assert_int_equal(keys_load_ed25519_secret(sec, sk2, err, sizeof err), 0);
    assert_int_equal(sodium_memcmp(sk, sk2, sizeof sk), 0);
    assert_int_equal(keys_load_ed25519_public(pub, pk, err, sizeof err), 0);
    /* libsodium's secret key ends with the public key. */
    assert_memory_equal(sk + 32, pk, 32);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
    assert_int_equal(crypto_sign_verify_detached(sig, msg, sizeof msg, pk), 0);
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(sk2, sizeof sk2);
}

static void test_x25519_load_seals_and_opens(void **state)
{
    const char *dir = *state;
    char sec[4096], pub[4096], fp[KEY_FINGERPRINT_HEX], err[512];
    uint8_t sk[32], pk[32], box[crypto_box_SEALBYTES + 5], out[5];
    assert_int_equal(keys_generate(KEY_REVIEWER, dir, 0, fp, sec, pub, err, sizeof err), 0);
    assert_int_equal(keys_load_x25519_secret(sec, sk, err, sizeof err), 0);
    assert_int_equal(keys_load_x25519_public(pub, pk, err, sizeof err), 0);
    assert_int_equal(crypto_box_seal(box, (const uint8_t *)"hello", 5, pk), 0);
    assert_int_equal(crypto_box_seal_open(out, box, sizeof box, pk, sk), 0);
    assert_memory_equal(out, "hello", 5);
    sodium_memzero(sk, sizeof sk);
}

static void test_wrong_kind_and_loose_permissions_are_refused(void **state)
{
    const char *dir = *state;
    char sec[4096], pub[4096], fp[KEY_FINGERPRINT_HEX], err[512], dst[4096];
    uint8_t sk[64];
    assert_int_equal(keys_generate(KEY_PUBLISHER, dir, 0, fp, sec, pub, err, sizeof err), 0);
    assert_int_equal(keys_load_ed25519_public(pub, sk, err, sizeof err), -1);
    assert_non_null(strstr(err, "holds a EC key"));
    path_of(dst, dir, "x.pub.pem");
    assert_int_equal(keys_install_public(KEY_REVIEWER, pub, dst, fp, err, sizeof err), -1);
    assert_non_null(strstr(err, "is not a reviewer key"));
    assert_int_equal(keys_generate(KEY_DEVICE, dir, 0, fp, sec, pub, err, sizeof err), 0);
    assert_int_equal(chmod(sec, 0644), 0);
    assert_int_equal(keys_load_ed25519_secret(sec, sk, err, sizeof err), -1);
    assert_non_null(strstr(err, "readable by others"));
}

static void test_garbage_file_is_not_a_key(void **state)
{
    const char *dir = *state;
    char path[4096], fp[KEY_FINGERPRINT_HEX], err[512];
    path_of(path, dir, "junk.pem");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", f);
    fclose(f);
    assert_int_equal(keys_fingerprint_file(path, fp, err, sizeof err), -1);
    assert_non_null(strstr(err, "is not a PEM public key"));
}

static void test_kind_names(void **state)
{
    key_kind k;
    (void)state;
    assert_int_equal(key_kind_parse("reviewer", &k), 0);
    assert_int_equal(k, KEY_REVIEWER);
    assert_int_equal(key_kind_parse("root", &k), -1);
    assert_string_equal(key_kind_name(KEY_PUBLISHER), "publisher");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generate_every_kind_with_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_overwrite_without_force, setup, teardown),
        cmocka_unit_test(test_missing_directory_is_an_error),
        cmocka_unit_test_setup_teardown(test_ed25519_load_signs_and_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_x25519_load_seals_and_opens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_kind_and_loose_permissions_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file_is_not_a_key, setup, teardown),
        cmocka_unit_test(test_kind_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
