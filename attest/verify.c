/* Verification of one envelope and of a JSON Lines bundle, in the order an
 * auditor would check by hand: envelope, signature, statement, evidence. */
#include "attest_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

attest_status attest_check_evidence(const attest_expect *expect, attest_verified *v, char *err,
                                    size_t errlen)
{
    char hex[ATTEST_HEX_LEN];
    if (!expect)
        return ATTEST_OK;
    if ((expect->prompt || expect->prompt_len) && !expect->salt)
        return attest_fail(ATTEST_E_INVALID, err, errlen, "a prompt was given without its salt");
    if (expect->salt && !expect->prompt && expect->prompt_len)
        return attest_fail(ATTEST_E_INVALID, err, errlen, "a salt was given without its prompt");
    if (!expect->output && expect->output_len)
        return attest_fail(ATTEST_E_INVALID, err, errlen, "the output bytes are missing");
    if (expect->output) {
        uint8_t digest[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(digest, expect->output, expect->output_len);
        sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
        if (sodium_memcmp(hex, v->output_sha256, 64) != 0)
            return attest_fail(ATTEST_E_OUTPUT, err, errlen,
                               "output digest mismatch: the output's sha256 is %s, the "
                               "attestation records %s",
                               hex, v->output_sha256);
        v->output_checked = 1;
    }
    if (expect->salt) {
        attest_prompt_commitment(expect->salt,
                                 expect->prompt ? expect->prompt : (const uint8_t *)"",
                                 expect->prompt_len, hex);
        if (sodium_memcmp(hex, v->prompt_commitment, 64) != 0)
            return attest_fail(ATTEST_E_PROMPT, err, errlen,
                               "prompt commitment mismatch: SHA-256(salt || prompt) is %s, the "
                               "attestation records %s",
                               hex, v->prompt_commitment);
        v->prompt_checked = 1;
    }
    return ATTEST_OK;
}

/* Envelope -> signature -> statement -> evidence, for one parsed envelope. */
static attest_status verify_envelope_json(json_t *env, const uint8_t pk[32],
                                          const attest_expect *expect, attest_verified *v,
                                          char *err, size_t errlen)
{
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    attest_status st = attest_envelope_open(env, pk, &payload, &payload_len, v, err, errlen);
    if (st != ATTEST_OK)
        return st;
    st = attest_statement_parse(payload, payload_len, v, err, errlen);
    free(payload);
    if (st != ATTEST_OK)
        return st;
    return attest_check_evidence(expect, v, err, errlen);
}

static json_t *load_json(const char *text, size_t len, json_error_t *jerr)
{
    return json_loadb(text, len, JSON_REJECT_DUPLICATES, jerr);
}

attest_status attest_verify(const char *envelope, size_t len, const uint8_t pk[32],
                            const attest_expect *expect, attest_verified *out, char *err,
                            size_t errlen)
{
    attest_verified local;
    attest_verified *v = out ? out : &local;
    json_error_t jerr;
    memset(v, 0, sizeof *v);
    if (!envelope || !pk)
        return attest_fail(ATTEST_E_INVALID, err, errlen, "no envelope or no public key given");
    if (len > ATTEST_MAX_ENVELOPE)
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "envelope is over %u bytes",
                           ATTEST_MAX_ENVELOPE);
    json_t *env = load_json(envelope, len, &jerr);
    if (!env)
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen,
                           "envelope is not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                           jerr.column);
    attest_status st = verify_envelope_json(env, pk, expect, v, err, errlen);
    json_decref(env);
    return st;
}

/* ---- bundles ------------------------------------------------------------- */

/* One record of a bundle: its line and its JSON (NULL when it did not
 * parse, with the parser's complaint in why). */
typedef struct bundle_record {
    size_t line;
    json_t *json;
    char why[200];
} bundle_record;

typedef struct bundle {
    bundle_record *records;
    size_t count, cap;
    int json_lines; /* 0: the whole file was one JSON document */
} bundle;

/* Appends a record for line and parses text into it (a failure to parse is
 * kept as the record's complaint). Returns -1 only when out of memory. */
static int bundle_add(bundle *b, size_t line, const char *text, size_t len)
{
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        bundle_record *r = realloc(b->records, cap * sizeof *r);
        if (!r)
            return -1;
        b->records = r;
        b->cap = cap;
    }
    bundle_record *r = &b->records[b->count++];
    json_error_t jerr;
    r->line = line;
    r->why[0] = '\0';
    r->json = NULL;
    if (len > ATTEST_MAX_ENVELOPE)
        snprintf(r->why, sizeof r->why, "the record is over %u bytes", ATTEST_MAX_ENVELOPE);
    else if (!(r->json = load_json(text, len, &jerr)))
        snprintf(r->why, sizeof r->why, "%s (column %d)", jerr.text, jerr.column);
    return 0;
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

/* A file that is one JSON document is one record; otherwise every non-blank
 * line is a record. */
static int bundle_split(const char *text, size_t len, bundle *b)
{
    json_error_t jerr;
    json_t *whole = len <= ATTEST_MAX_ENVELOPE ? load_json(text, len, &jerr) : NULL;
    if (whole) {
        json_decref(whole);
        return bundle_add(b, 1, text, len);
    }
    b->json_lines = 1;
    size_t line = 1, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && text[i] != '\n')
            continue;
        if (!is_blank(text + start, i - start) && bundle_add(b, line, text + start, i - start) != 0)
            return -1;
        line++;
        start = i + 1;
    }
    return 0;
}

static void bundle_free(bundle *b)
{
    for (size_t i = 0; i < b->count; i++)
        json_decref(b->records[i].json);
    free(b->records);
}

static int is_attestation(json_t *rec)
{
    return json_is_object(rec) && json_object_get(rec, "type") == NULL;
}

/* Reads "-----BEGIN PUBLIC KEY-----" PEM holding an Ed25519 SPKI. */
static int pem_ed25519_public(const char *pem, uint8_t pk[32])
{
    const char *b = strstr(pem, ATTEST_PEM_BEGIN);
    const char *e = b ? strstr(b, ATTEST_PEM_END) : NULL;
    if (!b || !e)
        return -1;
    b += strlen(ATTEST_PEM_BEGIN);
    uint8_t der[64];
    size_t n = 0;
    const char *stop = NULL;
    if (sodium_base642bin(der, sizeof der, b, (size_t)(e - b), "\r\n", &n, &stop,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        stop != e || n != ATTEST_SPKI_PREFIX_LEN + 32 ||
        memcmp(der, ATTEST_ED25519_SPKI_PREFIX, ATTEST_SPKI_PREFIX_LEN) != 0)
        return -1;
    memcpy(pk, der + ATTEST_SPKI_PREFIX_LEN, 32);
    return 0;
}

/* {"type":"device_key","fingerprint":HEX,"pem":PEM}: must be the key the
 * auditor brought, so a bundle cannot smuggle in a key of its own. */
static attest_status check_device_key(json_t *rec, const uint8_t pk[32], char *err, size_t errlen)
{
    json_t *fp = json_object_get(rec, "fingerprint"), *pem = json_object_get(rec, "pem");
    char want[ATTEST_HEX_LEN], got[ATTEST_HEX_LEN];
    uint8_t key[32];
    if (json_object_size(rec) != 3 || !json_is_string(fp) || !json_is_string(pem))
        return attest_fail(ATTEST_E_BUNDLE, err, errlen,
                           "device_key record needs exactly the string fields fingerprint and pem");
    if (pem_ed25519_public(json_string_value(pem), key) != 0)
        return attest_fail(ATTEST_E_BUNDLE, err, errlen,
                           "device_key pem is not an Ed25519 public key in PEM");
    attest_key_fingerprint(pk, want);
    attest_key_fingerprint(key, got);
    if (sodium_memcmp(key, pk, 32) != 0)
        return attest_fail(ATTEST_E_BUNDLE, err, errlen,
                           "the bundle's device key (fingerprint %.16s...) is not the given "
                           "public key (fingerprint %.16s...)",
                           got, want);
    if (strcmp(json_string_value(fp), got) != 0)
        return attest_fail(ATTEST_E_BUNDLE, err, errlen,
                           "device_key fingerprint %.64s is not the fingerprint of its pem (%s)",
                           json_string_value(fp), got);
    return ATTEST_OK;
}

/* {"type":"checkpoint","note":TEXT}: handed to the audit module's check. */
static attest_status check_checkpoint(json_t *rec, const attest_bundle_opts *o, char *err,
                                      size_t errlen)
{
    json_t *note = json_object_get(rec, "note");
    if (json_object_size(rec) != 2 || !json_is_string(note))
        return attest_fail(ATTEST_E_BUNDLE, err, errlen,
                           "checkpoint record needs exactly the string field note");
    if (!o->check_checkpoint)
        return attest_fail(ATTEST_E_BUNDLE, err, errlen,
                           "checkpoint record cannot be checked: no checkpoint verifier given");
    char why[384];
    why[0] = '\0';
    if (o->check_checkpoint(o->checkpoint_user, json_string_value(note), json_string_length(note),
                            o->pk, why, sizeof why) != 0)
        return attest_fail(ATTEST_E_BUNDLE, err, errlen, "checkpoint does not verify: %s", why);
    return ATTEST_OK;
}

/* What a bundle record is, and the name callers see for it. */
typedef enum record_kind {
    RECORD_ATTESTATION,
    RECORD_DEVICE_KEY,
    RECORD_CHECKPOINT,
    RECORD_OTHER
} record_kind;
static const char *const RECORD_NAMES[] = {"attestation", "device_key", "checkpoint", "record"};

/* Checks one record; says what kind it is in *kind. */
static attest_status check_record(const bundle_record *r, const attest_bundle_opts *o,
                                  const attest_expect *expect, record_kind *kind,
                                  attest_verified *v, char *err, size_t errlen)
{
    *kind = RECORD_ATTESTATION;
    if (!r->json)
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "not JSON: %s", r->why);
    if (!json_is_object(r->json))
        return attest_fail(ATTEST_E_ENVELOPE, err, errlen, "not a JSON object");
    if (is_attestation(r->json))
        return verify_envelope_json(r->json, o->pk, expect, v, err, errlen);
    json_t *t = json_object_get(r->json, "type");
    *kind = RECORD_OTHER;
    if (!json_is_string(t))
        return attest_fail(ATTEST_E_BUNDLE, err, errlen, "record type is not a string");
    if (strcmp(json_string_value(t), "device_key") == 0) {
        *kind = RECORD_DEVICE_KEY;
        return check_device_key(r->json, o->pk, err, errlen);
    }
    if (strcmp(json_string_value(t), "checkpoint") == 0) {
        *kind = RECORD_CHECKPOINT;
        return check_checkpoint(r->json, o, err, errlen);
    }
    return attest_fail(ATTEST_E_BUNDLE, err, errlen, "unknown record type \"%.64s\"",
                       json_string_value(t));
}

static void count_record(attest_bundle_summary *s, record_kind kind)
{
    s->records++;
    s->attestations += kind == RECORD_ATTESTATION;
    s->device_keys += kind == RECORD_DEVICE_KEY;
    s->checkpoints += kind == RECORD_CHECKPOINT;
}

/* Checks every record; the first failure (with its line) goes to err. */
static attest_status bundle_check_all(const bundle *b, const attest_bundle_opts *o,
                                      const attest_expect *expect, attest_bundle_summary *s,
                                      char *err, size_t errlen)
{
    attest_status first = ATTEST_OK;
    for (size_t i = 0; i < b->count; i++) {
        const bundle_record *r = &b->records[i];
        attest_verified v;
        char msg[512] = "";
        record_kind kind = RECORD_ATTESTATION;
        memset(&v, 0, sizeof v);
        attest_status st = check_record(r, o, expect, &kind, &v, msg, sizeof msg);
        count_record(s, kind);
        if (o->on_record)
            o->on_record(o->record_user, r->line, RECORD_NAMES[kind], st,
                         st == ATTEST_OK ? NULL : msg, kind == RECORD_ATTESTATION ? &v : NULL);
        if (st == ATTEST_OK)
            continue;
        s->failed++;
        if (first != ATTEST_OK)
            continue;
        first = st;
        if (b->json_lines)
            attest_fail(st, err, errlen, "line %zu: %s", r->line, msg);
        else
            attest_fail(st, err, errlen, "%s", msg);
    }
    return first;
}

attest_status attest_verify_bundle(const char *text, size_t len, const attest_bundle_opts *o,
                                   attest_bundle_summary *summary, char *err, size_t errlen)
{
    attest_bundle_summary local;
    attest_bundle_summary *s = summary ? summary : &local;
    bundle b = {0};
    memset(s, 0, sizeof *s);
    if (!text || !o || !o->pk)
        return attest_fail(ATTEST_E_INVALID, err, errlen, "no text or no public key given");
    if (bundle_split(text, len, &b) != 0) {
        bundle_free(&b);
        return attest_fail(ATTEST_E_INVALID, err, errlen, "out of memory reading the bundle");
    }
    size_t n_att = 0;
    for (size_t i = 0; i < b.count; i++)
        n_att += b.records[i].json && is_attestation(b.records[i].json);
    const attest_expect *expect = o->expect;
    int has_evidence =
        expect && (expect->salt || expect->prompt || expect->output || expect->prompt_len);
    attest_status st = ATTEST_OK;
    if (has_evidence && n_att != 1)
        st = attest_fail(ATTEST_E_INVALID, err, errlen,
                         "prompt or output evidence needs exactly one attestation, the file "
                         "holds %zu",
                         n_att);
    if (st == ATTEST_OK)
        st = bundle_check_all(&b, o, expect, s, err, errlen);
    bundle_free(&b);
    if (st == ATTEST_OK && s->attestations == 0)
        st = attest_fail(ATTEST_E_BUNDLE, err, errlen, "the file holds no attestation");
    return st;
}
