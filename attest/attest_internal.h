/* Internal pieces shared by the attest/ sources (not for other modules). */
#ifndef ATTEST_ATTEST_INTERNAL_H
#define ATTEST_ATTEST_INTERNAL_H

#include "attest.h"

#include <jansson.h>
#include <stdarg.h>

/* Bounds that keep a hostile file from costing much: a statement is a few
 * kilobytes, so these are generous. */
#define ATTEST_MAX_PAYLOAD    (1u << 20) /* decoded payload bytes */
#define ATTEST_MAX_ENVELOPE   (4u << 20) /* one envelope's JSON text */
#define ATTEST_MAX_SIGNATURES 16

/* RFC 8410: the DER SubjectPublicKeyInfo of an Ed25519 key is this fixed
 * prefix followed by the 32 key bytes. */
#define ATTEST_SPKI_PREFIX_LEN 12
extern const uint8_t ATTEST_ED25519_SPKI_PREFIX[ATTEST_SPKI_PREFIX_LEN];

#define ATTEST_PEM_BEGIN "-----BEGIN PUBLIC KEY-----"
#define ATTEST_PEM_END   "-----END PUBLIC KEY-----"

/* Writes one formatted sentence into err (when err is non-NULL) and returns
 * status, so a failure is reported in one statement. */
attest_status attest_fail(attest_status status, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Decodes base64 in any RFC 4648 form DSSE allows (standard or URL-safe,
 * padded or not) into a malloc'd buffer of at most max bytes. Returns 0, or
 * -1 when text is not valid base64 (or too long). */
int attest_b64_decode(const char *text, size_t text_len, size_t max, uint8_t **out,
                      size_t *out_len);
/* Standard, padded base64 of bytes as a malloc'd string, or NULL. */
char *attest_b64_encode(const uint8_t *bytes, size_t len);

/* 1 when s is an RFC 3339 UTC time: YYYY-MM-DDTHH:MM:SS[.fraction]Z. */
int attest_is_rfc3339_utc(const char *s);

/* Reads a statement payload into v (keyid and check flags untouched),
 * checking _type, predicateType and version, subject and every predicate
 * field strictly (unknown fields are errors). */
attest_status attest_statement_parse(const uint8_t *payload, size_t len, attest_verified *v,
                                     char *err, size_t errlen);

/* Checks a DSSE envelope (already parsed JSON) and its signature with pk;
 * on success *payload is the decoded, malloc'd payload. */
attest_status attest_envelope_open(json_t *envelope, const uint8_t pk[32], uint8_t **payload,
                                   size_t *payload_len, attest_verified *v, char *err,
                                   size_t errlen);

/* Checks the statement's subject and commitment against given evidence. */
attest_status attest_check_evidence(const attest_expect *expect, attest_verified *v, char *err,
                                    size_t errlen);

#endif
