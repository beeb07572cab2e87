/* Fuzzes the audit parsers that read bytes an attacker may hand an auditor:
 * checkpoint notes, inclusion proof documents and content objects. */
#include "audit/audit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t pk[32] = {1, 2, 3};
    char err[256], *text = NULL;
    size_t len = 0;
    audit_checkpoint cp;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0; /* the library takes lengths; the NUL guards strlen in proofs */
    (void)audit_checkpoint_parse(s, size, &cp, err, sizeof err);
    (void)audit_checkpoint_verify_sig(s, size, pk, err, sizeof err);
    (void)audit_proof_verify(s, size, NULL, err, sizeof err);
    (void)audit_proof_verify(s, size, pk, err, sizeof err);
    if (audit_content_decode(s, size, pk, pk, &text, &len, err, sizeof err) == AUDIT_OK)
        free(text);
    (void)audit_content_check_digest(s, size, "x", 1, err, sizeof err);
    free(s);
    return 0;
}
