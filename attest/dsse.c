/* DSSE v1 envelopes: pre-authentication encoding, Ed25519 signing, and the
 * envelope checks a verifier makes before it trusts a single payload byte. */
#include "attest_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const uint8_t ATTEST_ED25519_SPKI_PREFIX[ATTEST_SPKI_PREFIX_LEN] = {
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

attest_status attest_fail(attest_status status, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

const char *attest_status_name(attest_status s)
{
    switch (s) {
    case ATTEST_OK:
        return "ok";
    case ATTEST_E_INVALID:
        return "invalid";
    case ATTEST_E_ENVELOPE:
        return "envelope";
    case ATTEST_E_SIGNATURE:
        return "signature";
    case ATTEST_E_STATEMENT:
        return "statement";
    case ATTEST_E_OUTPUT:
        return "output";
    case ATTEST_E_PROMPT:
        return "prompt";
    case ATTEST_E_BUNDLE:
        return "bundle";
    }
    return "unknown";
}

void attest_key_fingerprint(const uint8_t pk[32], char hex[ATTEST_HEX_LEN])
{
    uint8_t der[ATTEST_SPKI_PREFIX_LEN + 32], digest[crypto_hash_sha256_BYTES];
    memcpy(der, ATTEST_ED25519_SPKI_PREFIX, ATTEST_SPKI_PREFIX_LEN);
    memcpy(der + ATTEST_SPKI_PREFIX_LEN, pk, 32);
    crypto_hash_sha256(digest, der, sizeof der);
    sodium_bin2hex(hex, ATTEST_HEX_LEN, digest, sizeof digest);
}

int attest_hex32(const char *hex, uint8_t out[32])
{
    size_t n = 0;
    const char *end = NULL;
    if (!hex || strlen(hex) != 64)
        return -1;
    if (sodium_hex2bin(out, 32, hex, 64, NULL, &n, &end) != 0 || n != 32 || *end != '\0')
        return -1;
    return 0;
}

int attest_dsse_pae(const char *payload_type, const uint8_t *payload, size_t payload_len,
                    uint8_t **out, size_t *out_len)
{
    size_t type_len = strlen(payload_type);
    char head[128];
    /* "DSSEv1 <len(type)> <type> <len(payload)> ": the header around the type. */
    int n1 = snprintf(head, sizeof head, "DSSEv1 %zu ", type_len);
    char mid[32];
    int n2 = snprintf(mid, sizeof mid, " %zu ", payload_len);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof head || (size_t)n2 >= sizeof mid)
        return -1;
    size_t total = (size_t)n1 + type_len + (size_t)n2 + payload_len;
    uint8_t *buf = malloc(total ? total : 1);
    if (!buf)
        return -1;
    uint8_t *p = buf;
    memcpy(p, head, (size_t)n1);
    p += n1;
    memcpy(p, payload_type, type_len);
    p += type_len;
    memcpy(p, mid, (size_t)n2);
    p += n2;
    if (payload_len)
        memcpy(p, payload, payload_len);
    *out = buf;
    *out_len = total;
    return 0;
}

char *attest_b64_encode(const uint8_t *bytes, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *text = malloc(cap);
    if (!text)
        return NULL;
    sodium_bin2base64(text, cap, bytes, len, sodium_base64_VARIANT_ORIGINAL);
    return text;
}

int attest_b64_decode(const char *text, size_t text_len, size_t max, uint8_t **out, size_t *out_len)
{
    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    /* Three bytes per four characters, rounded up: enough for every variant. */
    size_t cap = text_len / 4 * 3 + 3;
    if (text_len / 4 * 3 > max + 3)
        return -1;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -1;
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        size_t n = 0;
        const char *end = NULL;
        if (sodium_base642bin(buf, cap, text, text_len, NULL, &n, &end, variants[i]) == 0 &&
            end == text + text_len && n <= max) {
            *out = buf;
            *out_len = n;
            return 0;
        }
    }
    free(buf);
    return -1;
}

int attest_sign_envelope(const uint8_t *payload, size_t payload_len, const uint8_t sk[64],
                         char **envelope, char *err, size_t errlen)
{
    uint8_t *pae = NULL, sig[crypto_sign_BYTES];
    size_t pae_len = 0;
    char keyid[ATTEST_HEX_LEN];
    *envelope = NULL;
    if (!payload || payload_len == 0 || payload_len > ATTEST_MAX_PAYLOAD)
        return attest_fail(ATTEST_E_INVALID, err, errlen,
                           "the payload to sign is empty or larger than %u bytes",
                           ATTEST_MAX_PAYLOAD);
    if (attest_dsse_pae(ATTEST_PAYLOAD_TYPE, payload, payload_len, &pae, &pae_len) != 0)
        return attest_fail(ATTEST_E_INVALID, err, errlen, "out of memory building the DSSE PAE");
    /* libsodium's secret key carries its public half in bytes 32..63; a
     * signature that does not verify with it means a corrupt key. */
    const uint8_t *pk = sk + 32;
    if (crypto_sign_detached(sig, NULL, pae, pae_len, sk) != 0 ||
        crypto_sign_verify_detached(sig, pae, pae_len, pk) != 0) {
        free(pae);
        return attest_fail(ATTEST_E_INVALID, err, errlen,
                           "the device key's signature does not verify with its own public half");
    }
    free(pae);
    attest_key_fingerprint(pk, keyid);
    char *payload_b64 = attest_b64_encode(payload, payload_len);
    char *sig_b64 = attest_b64_encode(sig, sizeof sig);
    json_t *env = NULL;
    if (payload_b64 && sig_b64)
        env = json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "payload", payload_b64, "payloadType",
                        ATTEST_PAYLOAD_TYPE, "signatures", "keyid", keyid, "sig", sig_b64);
    free(payload_b64);
    free(sig_b64);
    if (env)
        *envelope = json_dumps(env, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(env);
    if (!*envelope)
        return attest_fail(ATTEST_E_INVALID, err, errlen, "out of memory writing the envelope");
    return ATTEST_OK;
}

/* Fails unless obj has only the listed keys. */
static attest_status envelope_known_keys(json_t *obj, const char *const *keys, size_t n_keys,
                                         const char *what, char *err, size_t errlen)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        size_t i = 0;
        while (i < n_keys && strcmp(key, keys[i]) != 0)
            i++;
        if (i == n_keys)
            return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "%s has an unknown field \"%s\"",
                               what, key);
    }
    return ATTEST_OK;
}

/* The payload type must be present, a string, and the in-toto one. */
static attest_status envelope_check_type(json_t *env, char *err, size_t errlen)
{
    json_t *type = json_object_get(env, "payloadType");
    if (!type)
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "envelope has no payloadType");
    if (!json_is_string(type))
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "envelope payloadType is not a string");
    if (strcmp(json_string_value(type), ATTEST_PAYLOAD_TYPE) != 0 ||
        json_string_length(type) != strlen(ATTEST_PAYLOAD_TYPE))
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen,
                           "envelope payloadType is \"%.64s\", expected \"%s\"",
                           json_string_value(type), ATTEST_PAYLOAD_TYPE);
    return ATTEST_OK;
}

static attest_status envelope_decode_payload(json_t *env, uint8_t **payload, size_t *len, char *err,
                                             size_t errlen)
{
    json_t *p = json_object_get(env, "payload");
    if (!p)
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "envelope has no payload");
    if (!json_is_string(p))
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "envelope payload is not a string");
    if (attest_b64_decode(json_string_value(p), json_string_length(p), ATTEST_MAX_PAYLOAD, payload,
                          len) != 0)
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen,
                           "envelope payload is not valid base64 (or over %u bytes)",
                           ATTEST_MAX_PAYLOAD);
    if (*len == 0) {
        free(*payload);
        *payload = NULL;
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "envelope payload is empty");
    }
    return ATTEST_OK;
}

/* Shape of signatures[i]: {"sig": base64 of 64 bytes, "keyid": string?}. */
static attest_status envelope_read_signature(json_t *s, size_t i, uint8_t sig[64],
                                             const char **keyid, char *err, size_t errlen)
{
    static const char *const keys[] = {"keyid", "sig"};
    char what[48];
    snprintf(what, sizeof what, "envelope signature %zu", i + 1);
    if (!json_is_object(s))
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "%s is not an object", what);
    attest_status st = envelope_known_keys(s, keys, 2, what, err, errlen);
    if (st != ATTEST_OK)
        return st;
    json_t *k = json_object_get(s, "keyid"), *b = json_object_get(s, "sig");
    if (k && !json_is_string(k))
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "%s keyid is not a string", what);
    *keyid = k ? json_string_value(k) : "";
    if (!b)
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "%s has no sig", what);
    if (!json_is_string(b))
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "%s sig is not a string", what);
    uint8_t *raw = NULL;
    size_t n = 0;
    if (attest_b64_decode(json_string_value(b), json_string_length(b), 64, &raw, &n) != 0)
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "%s sig is not valid base64", what);
    if (n != 64) {
        free(raw);
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen,
                           "%s sig has %zu bytes, an Ed25519 signature has 64", what, n);
    }
    memcpy(sig, raw, 64);
    free(raw);
    return ATTEST_OK;
}

/* Tries pk against every signature over pae. Malformed signatures fail the
 * envelope; well-formed ones that do not verify are simply not accepted. */
static attest_status envelope_check_signatures(json_t *env, const uint8_t pk[32],
                                               const uint8_t *pae, size_t pae_len,
                                               attest_verified *v, char *err, size_t errlen)
{
    json_t *sigs = json_object_get(env, "signatures");
    char fingerprint[ATTEST_HEX_LEN];
    if (!sigs)
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "envelope has no signatures");
    if (!json_is_array(sigs))
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "envelope signatures is not an array");
    size_t n = json_array_size(sigs);
    if (n == 0)
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "envelope signatures is empty");
    if (n > ATTEST_MAX_SIGNATURES)
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen,
                           "envelope has %zu signatures, at most %d are read", n,
                           ATTEST_MAX_SIGNATURES);
    attest_key_fingerprint(pk, fingerprint);
    int verified = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t sig[64];
        const char *keyid = "";
        attest_status st =
            envelope_read_signature(json_array_get(sigs, i), i, sig, &keyid, err, errlen);
        if (st != ATTEST_OK)
            return st;
        if (verified || crypto_sign_verify_detached(sig, pae, pae_len, pk) != 0)
            continue;
        verified = 1;
        if (v) {
            snprintf(v->keyid, sizeof v->keyid, "%s", keyid);
            v->keyid_matches = strcmp(keyid, fingerprint) == 0;
        }
    }
    if (!verified)
        return attest_fail(ATTEST_E_SIGNATURE, err, errlen,
                           "signature does not verify with the given public key (fingerprint "
                           "%.16s...)",
                           fingerprint);
    return ATTEST_OK;
}

attest_status attest_envelope_open(json_t *env, const uint8_t pk[32], uint8_t **payload,
                                   size_t *payload_len, attest_verified *v, char *err,
                                   size_t errlen)
{
    static const char *const keys[] = {"payload", "payloadType", "signatures"};
    uint8_t *pae = NULL, *body = NULL;
    size_t pae_len = 0, body_len = 0;
    *payload = NULL;
    *payload_len = 0;
    if (!json_is_object(env))
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "envelope is not a JSON object");
    attest_status st = envelope_known_keys(env, keys, 3, "envelope", err, errlen);
    if (st == ATTEST_OK)
        st = envelope_check_type(env, err, errlen);
    if (st == ATTEST_OK)
        st = envelope_decode_payload(env, &body, &body_len, err, errlen);
    if (st != ATTEST_OK)
        return st;
    if (attest_dsse_pae(ATTEST_PAYLOAD_TYPE, body, body_len, &pae, &pae_len) != 0) {
        free(body);
        return attest_fail(ATTEST_E_INVALID, err, errlen, "out of memory building the DSSE PAE");
    }
    st = envelope_check_signatures(env, pk, pae, pae_len, v, err, errlen);
    free(pae);
    if (st != ATTEST_OK) {
        free(body);
        return st;
    }
    *payload = body;
    *payload_len = body_len;
    return ATTEST_OK;
}
