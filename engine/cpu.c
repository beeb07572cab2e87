/* CPU feature detection for run-time kernel choice. */
#include "engine.h"

#if defined(__x86_64__)
#include <cpuid.h>

/* A CPUID ECX feature bit, for features older compilers have no
 * __builtin_cpu_supports name for (F16C: leaf 1 bit 29; AVX512-VNNI: leaf 7
 * bit 11). The OS-support checks come with avx2/avx512f from the builtin. */
static int cpuid_ecx_bit(unsigned leaf, unsigned bit)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(leaf, 0, &a, &b, &c, &d) && (c & (1u << bit));
}
#endif

const char *engine_kernels_available(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && cpuid_ecx_bit(7, 11) &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "scalar avx2 avx512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpuid_ecx_bit(1, 29))
        return "scalar avx2";
    return "scalar";
#elif defined(__aarch64__)
    return "scalar neon";
#else
    return "scalar";
#endif
}
