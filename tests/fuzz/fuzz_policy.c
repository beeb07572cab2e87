/* Fuzz target: the strict policy parser must reject or accept any bytes
 * without crashing, and whatever it accepts must serialise and re-parse to
 * the same canonical text. */
#include "policy/policy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    policy p, q;
    char err[512];
    if (policy_parse((const char *)data, size, &p, err, sizeof err) != 0)
        return 0;
    char *text = policy_to_json(&p);
    if (!text)
        abort();
    if (policy_parse(text, strlen(text), &q, err, sizeof err) != 0)
        abort();
    char *again = policy_to_json(&q);
    if (!again || strcmp(text, again) != 0)
        abort();
    free(again);
    free(text);
    policy_free(&q);
    policy_free(&p);
    return 0;
}
