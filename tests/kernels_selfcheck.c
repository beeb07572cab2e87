/* Stand-alone kernel self-check with no test framework, so it also runs on
 * other architectures (scripts/cross-check-neon runs it under
 * qemu-aarch64): engine_kernels_self_check, the thorough kernels_check of
 * every kernel set this CPU has against scalar, bit for bit. Prints a line
 * per set; exit 0 when all agree, 1 otherwise. */
#include "engine.h"

#include <stdio.h>

int main(void)
{
    char report[1024];
    const int failed = engine_kernels_self_check(report, sizeof report);
    fputs(report, stdout);
    printf("kernels available: %s\n", engine_kernels_available());
    return failed ? 1 : 0;
}
