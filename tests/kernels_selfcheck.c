/* Stand-alone kernel self-check with no test framework, so it also runs on
 * other architectures and emulated CPUs (scripts/cross-check-neon runs it
 * under qemu-aarch64, scripts/cross-check-avx512 in Bochs as the /init of a
 * Linux boot). For every kernel set this CPU has, the thorough
 * kernels_check (engine/kernels_check.c): bit for bit equal to scalar,
 * quantizer and products, every type, several lengths and batch sizes, on
 * quantizer-made and on raw random blocks. Exit 0 when all agree, 1 on the
 * first difference (printed). */
#include "quant.h"

#include <stdio.h>
#include <string.h>

int main(void)
{
    char names[128], err[256];
    snprintf(names, sizeof names, "%s", kernels_available());
    for (char *save = NULL, *tok = strtok_r(names, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save)) {
        const kernels *k = kernels_by_name(tok);
        int cases = 0;
        if (!k) {
            printf("kernel set %s advertised but not resolvable\n", tok);
            return 1;
        }
        if (strcmp(tok, "scalar") == 0)
            continue;
        if (kernels_check(k, 1, &cases, err, sizeof err) != 0) {
            printf("MISMATCH %s\n", err);
            return 1;
        }
        printf("kernel set %s: bit-identical to scalar (%d cases)\n", tok, cases);
    }
    printf("kernels available: %s\n", kernels_available());
    return 0;
}
