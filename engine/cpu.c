/* CPU feature detection for run-time kernel choice: the public name for
 * kernels_available() (kernels_select.c), so both always agree. */
#include "engine.h"
#include "quant.h"

const char *engine_kernels_available(void)
{
    return kernels_available();
}
