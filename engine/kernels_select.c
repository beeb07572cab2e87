/* Run-time choice of the kernel set from the CPU's features. Every set
 * computes bit-identical results (kernels_impl.h), so the choice changes
 * speed only; kernels_best confirms it on this CPU (kernels_check) before
 * it hands out a SIMD set. */
#include "kernels_impl.h"

#include <stdio.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

/* A CPUID ECX feature bit (leaf, sub-leaf 0), for features clang 14's
 * __builtin_cpu_supports has no name for: F16C (leaf 1 bit 29) and
 * AVX512-VNNI (leaf 7 bit 11). OS support of the vector state comes with the
 * builtin's avx2 / avx512f checks. */
static int cpuid_ecx_bit(unsigned leaf, unsigned bit)
{
    unsigned eax, ebx, ecx, edx;
    return __get_cpuid_count(leaf, 0, &eax, &ebx, &ecx, &edx) && ((ecx >> bit) & 1u);
}

/* The AVX2 file is compiled with -mavx2 -mfma -mf16c -mbmi2. */
static int cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("bmi2") && cpuid_ecx_bit(1, 29);
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

/* Appends why (a kernels_check error, which names the set) to note. */
static void note_failure(char *note, size_t notelen, const char *why)
{
    const size_t used = note ? strlen(note) : 0;
    if (note && used < notelen)
        snprintf(note + used, notelen - used, "%s%s", used ? "; " : "", why);
}

const kernels *kernels_best(char *note, size_t notelen)
{
    const kernels *candidates[2] = {NULL, NULL};
#if defined(__x86_64__)
    candidates[0] = cpu_has_avx512() ? &kernels_avx512 : NULL;
    candidates[1] = cpu_has_avx2() ? &kernels_avx2 : NULL;
#elif defined(__aarch64__)
    candidates[0] = &kernels_neon;
#endif
    if (note && notelen)
        note[0] = '\0';
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char why[256];
        if (!candidates[i])
            continue;
        if (kernels_check(candidates[i], 0, NULL, why, sizeof why) == 0)
            return candidates[i];
        note_failure(note, notelen, why);
    }
    return &kernels_scalar;
}
