/* Content modes for prompt and output bodies: plaintext, sealed, digest. */
#include "audit_internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SEALED_ALG "x25519-xsalsa20poly1305-sealedbox"
#define DIGEST_ALG "sha256(salt||text)"
#define SALT_LEN   32

static const char *const mode_names[] = {"sealed", "plaintext", "digest"}; /* by value */

int audit_store_mode_from_name(const char *name, audit_store_mode *out)
{
    for (int i = 0; i < 3; i++) {
        if (name && strcmp(name, mode_names[i]) == 0) {
            *out = (audit_store_mode)i;
            return AUDIT_OK;
        }
    }
    return AUDIT_E_INVALID;
}

static char *b64_alloc(const uint8_t *p, size_t n)
{
    char *s = malloc(4 * (n / 3 + 1) + 1);
    if (s)
        b64_encode(p, n, s);
    return s;
}

/* SHA-256(salt || text). */
static void salted_digest(const uint8_t salt[SALT_LEN], const char *text, size_t len,
                          uint8_t out[crypto_hash_sha256_BYTES])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, salt, SALT_LEN);
    crypto_hash_sha256_update(&st, (const uint8_t *)text, len);
    crypto_hash_sha256_final(&st, out);
}

static json_t *encode_sealed(const uint8_t *pk, const char *text, size_t len)
{
    uint8_t *ct = malloc(len + crypto_box_SEALBYTES);
    char *b64 = NULL;
    json_t *o = NULL;
    if (ct && crypto_box_seal(ct, (const uint8_t *)text, len, pk) == 0 &&
        (b64 = b64_alloc(ct, len + crypto_box_SEALBYTES)) != NULL) {
        uint8_t kid[crypto_hash_sha256_BYTES];
        char kidhex[17];
        crypto_hash_sha256(kid, pk, crypto_box_PUBLICKEYBYTES);
        hex_encode(kid, 8, kidhex);
        o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "mode", "sealed", "alg", SEALED_ALG,
                      "reviewer_key_id", kidhex, "ciphertext", b64, "length", (json_int_t)len);
    }
    free(ct);
    free(b64);
    return o;
}

static json_t *encode_digest(const char *text, size_t len)
{
    uint8_t salt[SALT_LEN], d[crypto_hash_sha256_BYTES];
    char salthex[2 * SALT_LEN + 1], dhex[2 * crypto_hash_sha256_BYTES + 1];
    randombytes_buf(salt, sizeof salt);
    salted_digest(salt, text, len, d);
    hex_encode(salt, sizeof salt, salthex);
    hex_encode(d, sizeof d, dhex);
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "mode", "digest", "alg", DIGEST_ALG, "salt",
                     salthex, "digest", dhex, "length", (json_int_t)len);
}

int audit_content_encode(audit_store_mode mode, const uint8_t *reviewer_pk, const char *text,
                         size_t len, char **out_json, char *err, size_t errlen)
{
    *out_json = NULL;
    json_t *o = NULL;
    if (mode == AUDIT_STORE_PLAINTEXT) {
        o = json_pack("{s:s, s:s%}", "mode", "plaintext", "text", text, len);
        if (!o)
            return audit_fail(err, errlen, AUDIT_E_INVALID,
                              "audit content: plaintext must be UTF-8 without NUL bytes");
    } else if (mode == AUDIT_STORE_SEALED) {
        if (!reviewer_pk)
            return audit_fail(err, errlen, AUDIT_E_INVALID,
                              "audit content: sealed mode needs the reviewer public key");
        o = encode_sealed(reviewer_pk, text, len);
    } else if (mode == AUDIT_STORE_DIGEST) {
        o = encode_digest(text, len);
    } else {
        return audit_fail(err, errlen, AUDIT_E_INVALID, "audit content: unknown mode %d",
                          (int)mode);
    }
    abuf b = {0};
    if (o && canon_dump(o, &b) == 0)
        *out_json = abuf_take(&b, NULL);
    free(b.data); /* NULL once taken */
    json_decref(o);
    return *out_json ? AUDIT_OK
                     : audit_fail(err, errlen, AUDIT_E_NOMEM, "audit content: encoding failed");
}

static int decode_sealed(json_t *o, const uint8_t *pk, const uint8_t *sk, char **out,
                         size_t *out_len, char *err, size_t errlen)
{
    const char *b64 = json_string_value(json_object_get(o, "ciphertext"));
    if (!pk || !sk)
        return audit_fail(err, errlen, AUDIT_E_CRYPTO,
                          "audit content: sealed content needs the reviewer key pair");
    if (!b64)
        return audit_fail(err, errlen, AUDIT_E_INVALID, "audit content: no ciphertext");
    size_t cap = strlen(b64) / 4 * 3 + 1;
    uint8_t *ct = malloc(cap);
    long n = ct ? b64_decode(b64, strlen(b64), ct, cap) : -1;
    int rc = AUDIT_OK;
    if (n < (long)crypto_box_SEALBYTES) {
        rc = audit_fail(err, errlen, AUDIT_E_INVALID, "audit content: ciphertext malformed");
    } else {
        size_t plen = (size_t)n - crypto_box_SEALBYTES;
        *out = malloc(plen + 1);
        if (!*out) {
            rc = audit_fail(err, errlen, AUDIT_E_NOMEM, "out of memory");
        } else if (crypto_box_seal_open((uint8_t *)*out, ct, (size_t)n, pk, sk) != 0) {
            free(*out);
            *out = NULL;
            rc = audit_fail(err, errlen, AUDIT_E_CRYPTO,
                            "audit content: cannot open the sealed box (wrong key or altered "
                            "ciphertext)");
        } else {
            (*out)[plen] = 0;
            *out_len = plen;
        }
    }
    free(ct);
    return rc;
}

int audit_content_decode(const char *content_json, size_t len, const uint8_t *reviewer_pk,
                         const uint8_t *reviewer_sk, char **out_text, size_t *out_len, char *err,
                         size_t errlen)
{
    *out_text = NULL;
    json_t *o = canon_parse_object(content_json, len, err, errlen);
    if (!o)
        return AUDIT_E_INVALID;
    const char *mode = json_string_value(json_object_get(o, "mode"));
    int rc;
    if (mode && strcmp(mode, "plaintext") == 0) {
        json_t *t = json_object_get(o, "text");
        *out_text = json_is_string(t) ? strndup(json_string_value(t), json_string_length(t)) : NULL;
        *out_len = json_string_length(t);
        rc = *out_text ? AUDIT_OK
                       : audit_fail(err, errlen, AUDIT_E_INVALID, "audit content: no text");
    } else if (mode && strcmp(mode, "sealed") == 0) {
        rc = decode_sealed(o, reviewer_pk, reviewer_sk, out_text, out_len, err, errlen);
    } else if (mode && strcmp(mode, "digest") == 0) {
        rc = audit_fail(err, errlen, AUDIT_E_INVALID,
                        "audit content: digest mode keeps only a commitment, not the text");
    } else {
        rc = audit_fail(err, errlen, AUDIT_E_INVALID, "audit content: unknown mode");
    }
    json_decref(o);
    return rc;
}

int audit_content_check_digest(const char *content_json, size_t len, const char *text,
                               size_t text_len, char *err, size_t errlen)
{
    json_t *o = canon_parse_object(content_json, len, err, errlen);
    if (!o)
        return AUDIT_E_INVALID;
    uint8_t salt[SALT_LEN], want[crypto_hash_sha256_BYTES], got[crypto_hash_sha256_BYTES];
    const char *mode = json_string_value(json_object_get(o, "mode"));
    const char *s = json_string_value(json_object_get(o, "salt"));
    const char *d = json_string_value(json_object_get(o, "digest"));
    int rc = AUDIT_OK;
    if (!mode || strcmp(mode, "digest") != 0 || !s || !d || hex_decode(s, salt, SALT_LEN) != 0 ||
        hex_decode(d, want, sizeof want) != 0) {
        rc = audit_fail(err, errlen, AUDIT_E_INVALID, "audit content: not a digest commitment");
    } else {
        salted_digest(salt, text, text_len, got);
        if (sodium_memcmp(got, want, sizeof got) != 0)
            rc = audit_fail(err, errlen, AUDIT_E_CRYPTO,
                            "audit content: the text does not match the commitment");
    }
    json_decref(o);
    return rc;
}

/* Metadata object + "content": the body of a prompt or output entry. */
static char *content_body(audit_store_mode mode, const uint8_t *pk, const char *text, size_t len,
                          const char *meta_json, char *err, size_t errlen)
{
    char *content = NULL;
    if (audit_content_encode(mode, pk, text, len, &content, err, errlen) != AUDIT_OK)
        return NULL;
    const char *meta = meta_json ? meta_json : "{}";
    json_t *body = canon_parse_object(meta, strlen(meta), err, errlen);
    json_t *c = json_loads(content, 0, NULL);
    free(content);
    char *out = NULL;
    if (body && json_object_get(body, "content"))
        audit_fail(err, errlen, AUDIT_E_INVALID,
                   "audit append: metadata must not have a 'content' key");
    else if (body && c && json_object_set(body, "content", c) == 0)
        out = json_dumps(body, JSON_COMPACT);
    json_decref(c);
    json_decref(body);
    return out;
}

static int append_with_content(audit_log *log, audit_kind kind, const char *request_id,
                               const char *actor, audit_store_mode mode, const uint8_t *pk,
                               const char *text, size_t len, const char *meta_json,
                               uint64_t *out_seq, uint8_t out_hash[AUDIT_HASH_LEN], char *err,
                               size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    char *body = content_body(mode, pk, text, len, meta_json, err, errlen);
    if (!body)
        return err && err[0]
                   ? AUDIT_E_INVALID
                   : audit_fail(err, errlen, AUDIT_E_NOMEM, "audit append: out of memory");
    int rc = audit_append(log, kind, request_id, actor, body, strlen(body), out_seq, out_hash, err,
                          errlen);
    sodium_memzero(body, strlen(body)); /* in plaintext mode it holds the text */
    free(body);
    return rc;
}

int audit_append_prompt(audit_log *log, const char *request_id, const char *actor,
                        audit_store_mode mode, const uint8_t *reviewer_pk, const char *text,
                        size_t text_len, const char *meta_json, uint64_t *out_seq,
                        uint8_t out_hash[AUDIT_HASH_LEN], char *err, size_t errlen)
{
    return append_with_content(log, AUDIT_KIND_PROMPT, request_id, actor, mode, reviewer_pk, text,
                               text_len, meta_json, out_seq, out_hash, err, errlen);
}

int audit_append_output(audit_log *log, const char *request_id, const char *actor,
                        audit_store_mode mode, const uint8_t *reviewer_pk, const char *text,
                        size_t text_len, const char *meta_json, uint64_t *out_seq,
                        uint8_t out_hash[AUDIT_HASH_LEN], char *err, size_t errlen)
{
    return append_with_content(log, AUDIT_KIND_OUTPUT, request_id, actor, mode, reviewer_pk, text,
                               text_len, meta_json, out_seq, out_hash, err, errlen);
}
