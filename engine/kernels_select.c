/* Run-time choice of the kernel set from the CPU's features. Every set
 * computes bit-identical results (kernels_impl.h), so the choice changes
 * speed only. */
#include "kernels_impl.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

/* A CPUID ECX feature bit, for features clang 14 has no
 * __builtin_cpu_supports name for (F16C: leaf 1 bit 29; AVX512-VNNI: leaf 7
 * bit 11); the OS-support checks come with avx2/avx512f from the builtin. */
static int cpuid_ecx_bit(unsigned leaf, unsigned bit)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(leaf, 0, &a, &b, &c, &d) && (c & (1u << bit));
}

static int cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           cpuid_ecx_bit(1, 29) && __builtin_cpu_supports("bmi2");
}

/* The AVX-512 file is compiled for F/BW/VL/DQ/VNNI (and AVX2, FMA, F16C);
 * it uses no AVX512-BF16 instruction, so that feature is not required. */
static int cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && cpuid_ecx_bit(7, 11);
}
#endif

const char *kernels_available(void)
{
#if defined(__x86_64__)
    if (cpu_has_avx512())
        return "scalar avx2 avx512";
    if (cpu_has_avx2())
        return "scalar avx2";
    return "scalar";
#elif defined(__aarch64__)
    return "scalar neon"; /* Advanced SIMD is mandatory on AArch64 */
#else
    return "scalar";
#endif
}

const kernels *kernels_by_name(const char *name)
{
    if (!name)
        return NULL;
    if (strcmp(name, "scalar") == 0)
        return &kernels_scalar;
#if defined(__x86_64__)
    if (strcmp(name, "avx2") == 0)
        return cpu_has_avx2() ? &kernels_avx2 : NULL;
    if (strcmp(name, "avx512") == 0)
        return cpu_has_avx512() ? &kernels_avx512 : NULL;
#endif
#if defined(__aarch64__)
    if (strcmp(name, "neon") == 0)
        return &kernels_neon;
#endif
    return NULL;
}

const kernels *kernels_best(void)
{
#if defined(__x86_64__)
    if (cpu_has_avx512())
        return &kernels_avx512;
    if (cpu_has_avx2())
        return &kernels_avx2;
#elif defined(__aarch64__)
    return &kernels_neon;
#endif
    return &kernels_scalar;
}
