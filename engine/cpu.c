/* CPU feature detection for run-time kernel choice: the public names for
 * kernels_available() (kernels_select.c), so both always agree, and for the
 * self-check of the sets (kernels_check.c). */
#include "engine.h"
#include "quant.h"

#include <string.h>

const char *engine_kernels_available(void)
{
    return kernels_available();
}

int engine_kernels_self_check(char *out, size_t outlen)
{
    char names[128];
    int failed = 0;
    size_t used = 0;
    snprintf(names, sizeof names, "%s", kernels_available());
    if (outlen)
        out[0] = '\0';
    for (char *save = NULL, *tok = strtok_r(names, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save)) {
        const kernels *k = kernels_by_name(tok);
        char why[256] = "advertised but not resolvable";
        int cases = 0;
        if (k && strcmp(tok, "scalar") == 0)
            continue;
        const int rc = k ? kernels_check(k, 1, &cases, why, sizeof why) : 1;
        failed |= rc != 0;
        if (used < outlen) {
            if (rc == 0)
                snprintf(out + used, outlen - used, "%s: bit-identical to scalar in %d cases\n",
                         tok, cases);
            else
                snprintf(out + used, outlen - used, "%s: FAILED: %s\n", tok, why);
            used = strlen(out);
        }
    }
    return failed;
}
