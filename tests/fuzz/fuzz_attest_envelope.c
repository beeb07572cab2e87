/* Fuzz target: the DSSE envelope, bundle and statement parsers must reject
 * or accept any bytes without crashing or leaking.
 *
 * A forged signature never gets past the envelope, so the input is also
 * signed as a payload with a fixed key: that drives the statement parser
 * with bytes that carry a valid signature, as a compromised signer could. */
#include "attest/attest.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int reject_checkpoint(void *user, const char *note, size_t len, const uint8_t pk[32],
                             char *err, size_t errlen)
{
    (void)user;
    (void)note;
    (void)len;
    (void)pk;
    if (errlen)
        err[0] = '\0';
    return -1;
}

/* A statement that verified must have read back well-formed fields. */
static void check_verified(const attest_verified *v)
{
    if (strlen(v->output_sha256) != 64 || strlen(v->prompt_commitment) != 64 ||
        strlen(v->model_digest) != 64 || strlen(v->policy_digest) != 64 || !v->keyid_matches)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t seed[32] = "fuzz_attest_envelope fixed seed";
    uint8_t pk[32], sk[64];
    char err[512], *env = NULL;
    attest_verified v;
    if (sodium_init() < 0)
        abort();
    crypto_sign_seed_keypair(pk, sk, seed);

    /* 1. The bytes as one envelope, and as a bundle. */
    attest_verify((const char *)data, size, pk, NULL, &v, err, sizeof err);
    attest_bundle_opts opts = {pk, NULL, reject_checkpoint, NULL, NULL, NULL};
    attest_bundle_summary summary;
    attest_verify_bundle((const char *)data, size, &opts, &summary, err, sizeof err);
    if (summary.failed > summary.records)
        abort();

    /* 2. The bytes as a signed statement. */
    if (attest_sign_envelope(data, size, sk, &env, err, sizeof err) != ATTEST_OK)
        return 0;
    attest_status st = attest_verify(env, strlen(env), pk, NULL, &v, err, sizeof err);
    if (st == ATTEST_OK)
        check_verified(&v);
    else if (st == ATTEST_E_ENVELOPE || st == ATTEST_E_SIGNATURE)
        abort(); /* our own envelope must always open */
    free(env);
    sodium_memzero(sk, sizeof sk);
    return 0;
}
