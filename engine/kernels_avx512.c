/* AVX-512 (F/BW/VL/DQ) + VNNI kernels. The shared x86 body runs on 256-bit
 * vectors (EVEX-encoded, 32 registers); the integer dot of 4 adjacent bytes
 * is one vpdpbusd, which accumulates in int32 without saturation, giving
 * the same exact lanes as the AVX2 maddubs+madd pair. Scales are applied
 * with an int32 multiply (the int16 scale pairs are sign-extended). */
#include "kernels_impl.h"

#include <immintrin.h>

static inline __attribute__((always_inline)) __m256i vnni_dot4(__m256i u, __m256i s)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}

/* sc16 holds each int32 lane's scale in both of its int16 halves; the low
 * half, sign-extended, is the scale. */
static inline __attribute__((always_inline)) __m256i vnni_scale32(__m256i sc16)
{
    return _mm256_srai_epi32(_mm256_slli_epi32(sc16, 16), 16);
}

static inline __attribute__((always_inline)) __m256i vnni_dot4_scaled(__m256i u, __m256i s,
                                                                      __m256i sc16)
{
    return _mm256_mullo_epi32(vnni_dot4(u, s), vnni_scale32(sc16));
}

static inline __attribute__((always_inline)) __m256i vnni_dot4_q6(__m256i q, __m256i a,
                                                                  __m256i sc16)
{
    const __m256i p = _mm256_sub_epi32(vnni_dot4(q, a), vnni_dot4(_mm256_set1_epi8(32), a));
    return _mm256_mullo_epi32(p, vnni_scale32(sc16));
}

/* Four dot4's summed per lane: a chain of dpbusd accumulations. */
static inline __attribute__((always_inline)) __m256i vnni_dot4_sum4(__m256i u0, __m256i s0,
                                                                    __m256i u1, __m256i s1,
                                                                    __m256i u2, __m256i s2,
                                                                    __m256i u3, __m256i s3)
{
    const __m256i a = _mm256_dpbusd_epi32(vnni_dot4(u0, s0), u1, s1);
    const __m256i b = _mm256_dpbusd_epi32(vnni_dot4(u2, s2), u3, s3);
    return _mm256_add_epi32(a, b);
}

/* Two blocks' dot4's interleaved by dword: lanes (i, j, i, j) per half. */
static inline __attribute__((always_inline)) __m256i vnni_dot4_pair(__m256i ui, __m256i si,
                                                                    __m256i uj, __m256i sj)
{
    const __m256i di = vnni_dot4(ui, si), dj = vnni_dot4(uj, sj);
    return _mm256_add_epi32(_mm256_unpacklo_epi32(di, dj), _mm256_unpackhi_epi32(di, dj));
}

#define KX_DOT4(u, s)                                vnni_dot4(u, s)
#define KX_DOT4_PAIR(ui, si, uj, sj)                 vnni_dot4_pair(ui, si, uj, sj)
#define KX_DOT4_SUM4(u0, s0, u1, s1, u2, s2, u3, s3) vnni_dot4_sum4(u0, s0, u1, s1, u2, s2, u3, s3)
#define KX_DOT4_SCALED(u, s, sc16)                   vnni_dot4_scaled(u, s, sc16)
#define KX_DOT4_Q6(q, a, sc16)                       vnni_dot4_q6(q, a, sc16)
#define KX_KERNELS                                   kernels_avx512
#define KX_NAME                                      "avx512"
#include "kernels_x86.h"
