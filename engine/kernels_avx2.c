/* AVX2 + FMA + F16C kernels. The integer dot of 4 adjacent bytes is
 * maddubs (u8 x s8 -> pairs of int16) then madd (pairs -> int32); in our
 * ranges (|u| <= 63, |s| <= 127, or |u| <= 127 with |s| <= 127 for the sign
 * trick) the int16 step never saturates, so the int32 lanes are exact.
 * KX_DOT4_SUM4 and KX_DOT4_PAIR (u <= 31 only) also add maddubs results in
 * int16. */
#include "kernels_impl.h"

#include <immintrin.h>

static inline __attribute__((always_inline)) __m256i avx2_dot4(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

static inline __attribute__((always_inline)) __m256i avx2_dot4_scaled(__m256i u, __m256i s,
                                                                      __m256i sc16)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), sc16);
}

/* (q - 32) * a summed per 4 bytes, times the scale: q*a - 32*a in int16
 * (|q*a pair| <= 16002, |32*a pair| <= 8128), then madd with the scales. */
static inline __attribute__((always_inline)) __m256i avx2_dot4_q6(__m256i q, __m256i a,
                                                                  __m256i sc16)
{
    const __m256i p = _mm256_maddubs_epi16(q, a);
    const __m256i off = _mm256_maddubs_epi16(_mm256_set1_epi8(32), a);
    return _mm256_madd_epi16(_mm256_sub_epi16(p, off), sc16);
}

/* The sum of four dot4's in one int32 lane each: the four maddubs results
 * are added as int16 first (each int16 is 8 products; with u <= 31 and
 * |s| <= 128 that is at most 31744, no overflow), then one madd. */
static inline __attribute__((always_inline)) __m256i avx2_dot4_sum4(__m256i u0, __m256i s0,
                                                                    __m256i u1, __m256i s1,
                                                                    __m256i u2, __m256i s2,
                                                                    __m256i u3, __m256i s3)
{
    const __m256i a = _mm256_add_epi16(_mm256_maddubs_epi16(u0, s0), _mm256_maddubs_epi16(u1, s1));
    const __m256i b = _mm256_add_epi16(_mm256_maddubs_epi16(u2, s2), _mm256_maddubs_epi16(u3, s3));
    return _mm256_madd_epi16(_mm256_add_epi16(a, b), _mm256_set1_epi16(1));
}

/* Two blocks' dot4's interleaved, for the block-exact decode: lanes
 * (i, j, i, j) in each 128-bit half, every lane an exact partial sum of its
 * block. The maddubs int16s of both blocks (2 products each) are
 * interleaved by dword and added in int16 (4 products; with u <= 31 and
 * |s| <= 128 at most 15872), then one madd serves both blocks: three
 * multiplies per pair instead of four. */
static inline __attribute__((always_inline)) __m256i avx2_dot4_pair(__m256i ui, __m256i si,
                                                                    __m256i uj, __m256i sj)
{
    const __m256i mi = _mm256_maddubs_epi16(ui, si), mj = _mm256_maddubs_epi16(uj, sj);
    const __m256i m =
        _mm256_add_epi16(_mm256_unpacklo_epi32(mi, mj), _mm256_unpackhi_epi32(mi, mj));
    return _mm256_madd_epi16(m, _mm256_set1_epi16(1));
}

#define KX_DOT4(u, s)                                avx2_dot4(u, s)
#define KX_DOT4_PAIR(ui, si, uj, sj)                 avx2_dot4_pair(ui, si, uj, sj)
#define KX_DOT4_SUM4(u0, s0, u1, s1, u2, s2, u3, s3) avx2_dot4_sum4(u0, s0, u1, s1, u2, s2, u3, s3)
#define KX_DOT4_SCALED(u, s, sc16)                   avx2_dot4_scaled(u, s, sc16)
#define KX_DOT4_Q6(q, a, sc16)                       avx2_dot4_q6(q, a, sc16)
#define KX_KERNELS                                   kernels_avx2
#define KX_NAME                                      "avx2"
#include "kernels_x86.h"
