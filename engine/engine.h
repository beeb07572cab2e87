/* engine: run GGUF language models on the CPU.
 *
 * A pure library (libc, libm, pthreads): no file opening policy, no crypto,
 * no logging. Callers map the model bytes themselves (after verifying them)
 * and pass them in. Errors come back as a return code plus one sentence in a
 * caller-provided buffer. */
#ifndef ENGINE_ENGINE_H
#define ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#define ENGINE_VERSION "0.1.0"

/* Space-separated names of the kernel sets this CPU can run ("scalar avx2"),
 * best last. */
const char *engine_kernels_available(void);

#endif
