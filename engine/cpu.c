/* CPU feature detection for run-time kernel choice. */
#include "engine.h"

const char *engine_kernels_available(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "scalar avx2 avx512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c"))
        return "scalar avx2";
    return "scalar";
#elif defined(__aarch64__)
    return "scalar neon";
#else
    return "scalar";
#endif
}
