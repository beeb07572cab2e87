/* Writing the records of an exported bundle other than the envelopes, in
 * the exact shape attest_verify_bundle reads (PREDICATE.md, "The bundle"). */
#include "attest_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The SubjectPublicKeyInfo PEM of an Ed25519 key: 44 DER bytes are 60
 * base64 characters, so one body line, as OpenSSL writes it. */
static char *ed25519_public_pem(const uint8_t pk[32])
{
    uint8_t der[ATTEST_SPKI_PREFIX_LEN + 32];
    memcpy(der, ATTEST_ED25519_SPKI_PREFIX, ATTEST_SPKI_PREFIX_LEN);
    memcpy(der + ATTEST_SPKI_PREFIX_LEN, pk, 32);
    char *body = attest_b64_encode(der, sizeof der);
    if (!body)
        return NULL;
    size_t cap = strlen(ATTEST_PEM_BEGIN) + strlen(body) + strlen(ATTEST_PEM_END) + 4;
    char *pem = malloc(cap);
    if (pem)
        snprintf(pem, cap, "%s\n%s\n%s\n", ATTEST_PEM_BEGIN, body, ATTEST_PEM_END);
    free(body);
    return pem;
}

static int dump_line(json_t *record, char **line, char *err, size_t errlen)
{
    *line = record ? json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(record);
    if (!*line)
        return attest_fail(ATTEST_E_INVALID, err, errlen,
                           "the bundle record could not be written (text not UTF-8, or out of "
                           "memory)");
    return ATTEST_OK;
}

int attest_bundle_device_key_line(const uint8_t pk[32], char **line, char *err, size_t errlen)
{
    char fingerprint[ATTEST_HEX_LEN];
    char *pem = ed25519_public_pem(pk);
    *line = NULL;
    if (!pem)
        return attest_fail(ATTEST_E_INVALID, err, errlen, "out of memory writing the key PEM");
    attest_key_fingerprint(pk, fingerprint);
    json_t *record =
        json_pack("{s:s, s:s, s:s}", "type", "device_key", "fingerprint", fingerprint, "pem", pem);
    free(pem);
    return dump_line(record, line, err, errlen);
}

int attest_bundle_checkpoint_line(const char *note, size_t note_len, char **line, char *err,
                                  size_t errlen)
{
    *line = NULL;
    if (!note || note_len == 0)
        return attest_fail(ATTEST_E_INVALID, err, errlen, "the checkpoint note is empty");
    return dump_line(json_pack("{s:s, s:s%}", "type", "checkpoint", "note", note, note_len), line,
                     err, errlen);
}
