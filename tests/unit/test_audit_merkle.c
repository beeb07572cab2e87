/* Merkle trees, inclusion proofs and signed checkpoints, checked against
 * independent computations (OpenSSL SHA3/SHA-256/Ed25519 directly). */
#include "test_audit_helpers.h"
#include "testutil.h"

#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void sha3(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t out[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = 0;
    EVP_DigestInit_ex(c, EVP_sha3_256(), NULL);
    EVP_DigestUpdate(c, a, alen);
    if (b)
        EVP_DigestUpdate(c, b, blen);
    EVP_DigestFinal_ex(c, out, &n);
    EVP_MD_CTX_free(c);
}

/* RFC 6962 MTH written out recursively, as the RFC states it. */
static void naive_root(const uint8_t (*h)[32], size_t n, uint8_t out[32])
{
    uint8_t buf[65];
    if (n == 0) {
        sha3((const uint8_t *)"", 0, NULL, 0, out);
        return;
    }
    if (n == 1) {
        buf[0] = 0;
        memcpy(buf + 1, h[0], 32);
        sha3(buf, 33, NULL, 0, out);
        return;
    }
    size_t k = 1;
    while (k * 2 < n)
        k *= 2;
    buf[0] = 1;
    naive_root(h, k, buf + 1);
    naive_root(h + k, n - k, buf + 33);
    sha3(buf, 65, NULL, 0, out);
}

static void test_root_matches_rfc6962_recursion(void **state)
{
    (void)state;
    uint8_t h[70][32], a[32], b[32];
    for (int i = 0; i < 70; i++)
        for (int j = 0; j < 32; j++)
            h[i][j] = (uint8_t)(i * 31 + j);
    for (size_t n = 0; n <= 70; n++) {
        audit_merkle_root((const uint8_t(*)[32])h, n, a);
        naive_root((const uint8_t(*)[32])h, n, b);
        assert_memory_equal(a, b, 32);
    }
}

typedef struct fixture {
    char *dir;
    char path[4200];
    audit_log *log;
    uint8_t pk[32], sk[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[256];
    audit_open_opts o = {.create = 1};
    f->dir = test_mkdtemp();
    snprintf(f->path, sizeof f->path, "%s/a.db", f->dir);
    if (audit_open(&f->log, f->path, &o, err, sizeof err) != AUDIT_OK)
        return -1;
    for (int i = 0; i < 21; i++) {
        char body[32];
        snprintf(body, sizeof body, "{\"i\":%d}", i);
        if (audit_append(f->log, AUDIT_KIND_SESSION_START, "", "t", body, strlen(body), NULL, NULL,
                         err, sizeof err) != AUDIT_OK)
            return -1;
    }
    crypto_sign_keypair(f->pk, f->sk);
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

static void test_every_inclusion_proof_verifies(void **state)
{
    fixture *f = *state;
    char err[256];
    for (uint64_t size = 1; size <= 21; size++) {
        for (uint64_t seq = 1; seq <= size; seq++) {
            char *proof = NULL;
            assert_int_equal(audit_prove(f->log, seq, size, NULL, &proof, err, sizeof err),
                             AUDIT_OK);
            if (audit_proof_verify(proof, strlen(proof), NULL, err, sizeof err) != AUDIT_OK)
                fail_msg("proof of %llu in %llu: %s", (unsigned long long)seq,
                         (unsigned long long)size, err);
            free(proof);
        }
    }
    char *proof = NULL;
    assert_int_equal(audit_prove(f->log, 22, 0, NULL, &proof, err, sizeof err), AUDIT_E_INVALID);
    assert_int_equal(audit_prove(f->log, 3, 40, NULL, &proof, err, sizeof err), AUDIT_E_INVALID);
}

/* Changes the character at the first occurrence of `needle` + offset. */
static int mutate(char *doc, const char *needle, size_t offset)
{
    char *p = strstr(doc, needle);
    if (!p)
        return -1;
    p += strlen(needle) + offset;
    *p = *p == 'a' ? 'b' : 'a';
    return 0;
}

static void test_tampered_proofs_fail(void **state)
{
    fixture *f = *state;
    char err[256];
    static const struct {
        const char *needle;
        size_t offset;
    } edits[] = {{"\"path\": [\n    \"", 3},
                 {"\"entry_hash\": \"", 5},
                 {"\"root\": \"", 2},
                 {"\"record_b64\": \"", 10},
                 {"\"prev_hash\": \"", 0}};
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *proof = NULL;
        assert_int_equal(audit_prove(f->log, 6, 21, NULL, &proof, err, sizeof err), AUDIT_OK);
        assert_int_equal(mutate(proof, edits[i].needle, edits[i].offset), 0);
        assert_int_not_equal(audit_proof_verify(proof, strlen(proof), NULL, err, sizeof err),
                             AUDIT_OK);
        free(proof);
    }
    /* A proof claiming another index or tree size fails too. */
    uint8_t h[21][32], root[32], path[8][32];
    assert_int_equal(audit_log_root(f->log, 21, root, err, sizeof err), AUDIT_OK);
    memset(path, 0, sizeof path);
    memset(h, 0, sizeof h);
    assert_int_not_equal(
        audit_merkle_verify_inclusion(h[0], 21, 21, (const uint8_t(*)[32])path, 5, root), AUDIT_OK);
}

static void test_checkpoint_format_and_signature(void **state)
{
    fixture *f = *state;
    char err[256], *note = NULL;
    uint64_t seq = 0;
    uint8_t root[32];
    assert_int_equal(audit_log_root(f->log, 21, root, err, sizeof err), AUDIT_OK);
    assert_int_equal(audit_checkpoint_create(f->log, f->sk, "device", &note, &seq, err, sizeof err),
                     AUDIT_OK);
    assert_int_equal(seq, 22);
    audit_checkpoint cp;
    assert_int_equal(audit_checkpoint_parse(note, strlen(note), &cp, err, sizeof err), AUDIT_OK);
    assert_string_equal(cp.origin, audit_log_origin(f->log));
    assert_string_equal(cp.key_name, audit_log_origin(f->log));
    assert_int_equal(cp.tree_size, 21);
    assert_memory_equal(cp.root, root, 32);
    /* Lines: origin, size, root, chain-head, blank, em-dash signature line. */
    char want_prefix[256];
    snprintf(want_prefix, sizeof want_prefix, "%s\n21\n", audit_log_origin(f->log));
    assert_memory_equal(note, want_prefix, strlen(want_prefix));
    char *sig_line = strstr(note, "\n\n\xe2\x80\x94 ");
    assert_non_null(sig_line);
    assert_int_equal(cp.text_len, (size_t)(sig_line - note) + 1);
    /* Key id per signed-note: SHA-256(name || 0x0A || 0x01 || pk)[:4]. */
    uint8_t md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    EVP_DigestUpdate(c, cp.key_name, strlen(cp.key_name));
    EVP_DigestUpdate(c, "\n\x01", 2);
    EVP_DigestUpdate(c, f->pk, 32);
    EVP_DigestFinal_ex(c, md, &mdlen);
    EVP_MD_CTX_free(c);
    assert_memory_equal(cp.key_id, md, 4);
    /* The signature verifies with OpenSSL's Ed25519 over the note text. */
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, f->pk, 32);
    EVP_MD_CTX *v = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(v, NULL, NULL, NULL, pkey), 1);
    assert_int_equal(EVP_DigestVerify(v, cp.signature, 64, (const uint8_t *)note, cp.text_len), 1);
    EVP_MD_CTX_free(v);
    EVP_PKEY_free(pkey);
    assert_int_equal(audit_checkpoint_verify_sig(note, strlen(note), f->pk, err, sizeof err),
                     AUDIT_OK);
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    assert_int_equal(audit_checkpoint_verify_sig(note, strlen(note), pk2, err, sizeof err),
                     AUDIT_E_CRYPTO);
    note[strlen(audit_log_origin(f->log)) + 1] = '3'; /* claim size 31 */
    assert_int_equal(audit_checkpoint_verify_sig(note, strlen(note), f->pk, err, sizeof err),
                     AUDIT_E_CRYPTO);
    free(note);
}

static void test_proof_against_checkpoint(void **state)
{
    fixture *f = *state;
    char err[256], *note = NULL, *proof = NULL;
    uint64_t seq;
    assert_int_equal(audit_checkpoint_create(f->log, f->sk, "device", &note, &seq, err, sizeof err),
                     AUDIT_OK);
    /* The log grows after the checkpoint; the proof still targets it. */
    assert_int_equal(
        audit_append(f->log, AUDIT_KIND_ERROR, "", "t", "{}", 2, NULL, NULL, err, sizeof err),
        AUDIT_OK);
    assert_int_equal(audit_prove(f->log, 7, 0, note, &proof, err, sizeof err), AUDIT_OK);
    assert_non_null(strstr(proof, "\"tree_size\": 21"));
    assert_int_equal(audit_proof_verify(proof, strlen(proof), f->pk, err, sizeof err), AUDIT_OK);
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    assert_int_equal(audit_proof_verify(proof, strlen(proof), pk2, err, sizeof err),
                     AUDIT_E_CRYPTO);
    free(proof);
    /* An entry after the checkpoint cannot be proven against it. */
    assert_int_equal(audit_prove(f->log, 23, 0, note, &proof, err, sizeof err), AUDIT_E_INVALID);
    /* The log verifies against its checkpoint, with the pinned key too. */
    audit_verify_opts o = {note, strlen(note), f->pk};
    audit_verify_result r;
    assert_int_equal(audit_verify(f->log, &o, &r, err, sizeof err), AUDIT_OK);
    assert_true(r.ok);
    assert_int_equal(r.checkpoints, 1);
    audit_verify_result_free(&r);
    free(note);
}

/* A parseable (unsigned: zero signature) note for size n of this log. */
static char *craft_note(fixture *f, uint64_t n)
{
    uint8_t root[32], zero[68] = {0};
    char err[256], b64root[64], b64zero[128], *note = malloc(1024);
    assert_int_equal(audit_log_root(f->log, n, root, err, sizeof err), AUDIT_OK);
    sodium_bin2base64(b64root, sizeof b64root, root, 32, sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(b64zero, sizeof b64zero, zero, 68, sodium_base64_VARIANT_ORIGINAL);
    snprintf(note, 1024, "%s\n%llu\n%s\nchain-head %s\n\n\xe2\x80\x94 k %s\n",
             audit_log_origin(f->log), (unsigned long long)n, b64root, b64root, b64zero);
    return note;
}

static void test_every_consistency_proof_verifies(void **state)
{
    fixture *f = *state;
    char err[256];
    for (uint64_t m = 1; m <= 21; m++) {
        char *old_note = craft_note(f, m);
        for (uint64_t n = m; n <= 21; n++) {
            char *new_note = craft_note(f, n), *proof = NULL;
            assert_int_equal(
                audit_prove_consistency(f->log, old_note, new_note, &proof, err, sizeof err),
                AUDIT_OK);
            if (audit_proof_verify(proof, strlen(proof), NULL, err, sizeof err) != AUDIT_OK)
                fail_msg("consistency %llu -> %llu: %s", (unsigned long long)m,
                         (unsigned long long)n, err);
            /* Any changed path element breaks it. */
            char *p = strstr(proof, "\"path\": [\n    \"");
            if (p) {
                p += 17;
                *p = *p == 'a' ? 'b' : 'a';
                assert_int_not_equal(
                    audit_proof_verify(proof, strlen(proof), NULL, err, sizeof err), AUDIT_OK);
            }
            free(proof);
            free(new_note);
        }
        free(old_note);
    }
}

static void test_signed_consistency_and_rewritten_history(void **state)
{
    fixture *f = *state;
    char err[256], *old_note = NULL, *new_note = NULL, *proof = NULL;
    uint64_t seq;
    assert_int_equal(audit_checkpoint_create(f->log, f->sk, "d", &old_note, &seq, err, sizeof err),
                     AUDIT_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(
            audit_append(f->log, AUDIT_KIND_ERROR, "", "t", "{}", 2, NULL, NULL, err, sizeof err),
            AUDIT_OK);
    assert_int_equal(audit_checkpoint_create(f->log, f->sk, "d", &new_note, &seq, err, sizeof err),
                     AUDIT_OK);
    assert_int_equal(audit_prove_consistency(f->log, old_note, new_note, &proof, err, sizeof err),
                     AUDIT_OK);
    assert_int_equal(audit_proof_verify(proof, strlen(proof), f->pk, err, sizeof err), AUDIT_OK);
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    assert_int_not_equal(audit_proof_verify(proof, strlen(proof), pk2, err, sizeof err), AUDIT_OK);
    free(proof);
    /* A checkpoint whose root the log does not have cannot be extended. */
    char *fake = craft_note(f, 10);
    char *root = strchr(strchr(fake, '\n') + 1, '\n') + 1;
    root[0] = root[0] == 'A' ? 'B' : 'A';
    assert_int_equal(audit_prove_consistency(f->log, fake, NULL, &proof, err, sizeof err),
                     AUDIT_E_CRYPTO);
    /* Swapped roots do not verify at the Merkle level either. */
    uint8_t r10[32], r20[32], path[1][32] = {{0}};
    assert_int_equal(audit_log_root(f->log, 10, r10, err, sizeof err), AUDIT_OK);
    assert_int_equal(audit_log_root(f->log, 20, r20, err, sizeof err), AUDIT_OK);
    assert_int_not_equal(
        audit_merkle_verify_consistency(10, 20, r20, r10, (const uint8_t(*)[32])path, 1), AUDIT_OK);
    assert_int_not_equal(
        audit_merkle_verify_consistency(20, 10, r20, r10, (const uint8_t(*)[32])path, 0), AUDIT_OK);
    free(fake);
    free(old_note);
    free(new_note);
}

static void test_malformed_checkpoints_rejected(void **state)
{
    (void)state;
    audit_checkpoint cp;
    char err[256];
    static const char *const bad[] = {
        "",
        "origin\n1\nAAAA\n",
        "origin\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nchain-head "
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\xe2\x80\x94 k "
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "A"
        "=\n",
        "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\xe2\x80\x94 k AAAA\n",
        "o\r\n1\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(audit_checkpoint_parse(bad[i], strlen(bad[i]), &cp, err, sizeof err),
                         AUDIT_E_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root_matches_rfc6962_recursion),
        cmocka_unit_test_setup_teardown(test_every_inclusion_proof_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_proofs_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_format_and_signature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proof_against_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_consistency_proof_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signed_consistency_and_rewritten_history, setup,
                                        teardown),
        cmocka_unit_test(test_malformed_checkpoints_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
