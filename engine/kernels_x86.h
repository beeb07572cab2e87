/* x86 kernel body shared by kernels_avx2.c and kernels_avx512.c (internal;
 * include only from those two files). The includer defines how 4 adjacent
 * u8 x s8 products become one int32 lane:
 *   KX_DOT4(u, s)               8 int32 lanes, lane k = sum of bytes 4k..4k+3
 *   KX_DOT4_SCALED(u, s, sc16)  the same times a per-lane scale given as
 *                               int16 pairs (both int16s of a pair equal)
 *   KX_DOT4_Q6(q, a, sc16)      sum of (q - 32) * a per lane, times scale
 * and KX_KERNELS, KX_NAME for the exported table. AVX2 uses maddubs+madd,
 * AVX-512 VNNI uses dpbusd; within our value ranges neither saturates, so
 * both give the same exact integers and everything after is shared code.
 *
 * KX_DOT4_SUM4 sums four KX_DOT4's; KX_DOT4_PAIR(ui, si, uj, sj) gives two
 * blocks' partial sums interleaved by int32 lane, (i, j, i, j) in each
 * 128-bit half (both: unsigned operands up to 31 only).
 *
 * Every float step follows the canonical order of kernels_impl.h: a
 * block-exact type's block gives one exact integer and one fmadd into lane
 * b % 8; a Q8_0 block fmadd's its 8 int32 partials into its one lane group,
 * a k-quant super-block into lane group b % 2; lanes are folded by the same
 * additions as lanes_fold(). */
#ifndef ENGINE_KERNELS_X86_H
#define ENGINE_KERNELS_X86_H

#include "kernels_impl.h"

#include <immintrin.h>
#include <math.h>

#define KX_ALWAYS_INLINE static inline __attribute__((always_inline))
#define KX_TILE          4 /* activation rows per weight-row pass */
/* Full tiles of Q8_0 rows up to this many blocks get their activation
 * scales converted to float once per tile (kx_tile_scales); the decode pass
 * prepares activation rows up to this long. */
#define KX_SC_BLOCKS 512
/* Decode passes prefetch weight bytes this far ahead: two threads then
 * stream ~10-15% closer to the DRAM read bandwidth than with the hardware
 * prefetchers alone (2048 beat 512 and 1024 in A/B runs). */
#define KX_PREFETCH  2048
#define KX_ROW_BLOCK 16 /* weight rows kept hot while activation tiles stream */

KX_ALWAYS_INLINE __m256i kx_load(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

KX_ALWAYS_INLINE float kx_h2f(const void *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* Byte i of the result is 0x10 when bit i of bits is set, else 0. */
KX_ALWAYS_INLINE __m256i kx_bits_to_0x10(uint32_t bits)
{
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                            2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* 16 packed bytes -> 32 nibbles in element order (low nibbles first). */
KX_ALWAYS_INLINE __m256i kx_nibbles(const uint8_t *qs)
{
    const __m128i x = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m));
}

/* 16 packed bytes -> 32 nibbles as kx_nibbles, by one broadcast load and a
 * per-half shift (the high half shifted right by 4). */
KX_ALWAYS_INLINE __m256i kx_nibbles_b(const uint8_t *qs)
{
    const __m256i x = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i sh = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    return _mm256_and_si256(_mm256_srlv_epi32(x, sh), _mm256_set1_epi8(0x0F));
}

/* The 8 six-bit scales and mins of a Q4_K/Q5_K super-block (the same
 * values as kq_scale_min, four bytes at a time). */
KX_ALWAYS_INLINE void kx_kscales(const uint8_t *s, uint8_t sc[8], uint8_t mn[8])
{
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    const uint32_t sc_lo = a & 0x3f3f3f3fu, mn_lo = b & 0x3f3f3f3fu;
    const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    const uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
    memcpy(sc, &sc_lo, 4);
    memcpy(sc + 4, &sc_hi, 4);
    memcpy(mn, &mn_lo, 4);
    memcpy(mn + 4, &mn_hi, 4);
}

/* Sum of the 8 int32 lanes (exact; integer order does not matter). */
KX_ALWAYS_INLINE int32_t kx_hsum_i32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* ----------------------------------------------------------- lane storage */

/* lanes_fold(l, 8) of the 8 lanes of v in registers: the same additions
 * (lane i + lane i + half for half = 4, 2, 1), as vector adds. */
KX_ALWAYS_INLINE float kx_fold8(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* Folds the two lane groups of a k-quant dot and adds the min accumulators
 * like qacc_result() in kernels_scalar.c: fold16(g0 ++ g1) is g0 + g1 (its
 * first halving step) then fold8. */
KX_ALWAYS_INLINE float kx_qresult(__m256 g0, __m256 g1, float m0, float m1, int min_sign)
{
    float r = kx_fold8(_mm256_add_ps(g0, g1));
    float m = m0 + m1;
    return min_sign > 0 ? r + m : r - m;
}

/* ---------------------------------------------------- block-exact types */

/* Q4_0/Q4_1/Q5_0/Q5_1: one exact int32 per block and output, then one
 * fmadd (kernels_impl.h). Codes stay unsigned (0..15 or 0..31, so they are
 * the unsigned maddubs operand without the sign trick); the offset of
 * Q4_0/Q5_0 comes back as -offset * (sum of the block's activation codes). */
KX_ALWAYS_INLINE int kx_code_offset(uint32_t type)
{
    return type == TT_Q4_0 ? 8 : type == TT_Q5_0 ? 16 : 0;
}

KX_ALWAYS_INLINE size_t kx_legacy_bytes(uint32_t type)
{
    return type == TT_Q4_0   ? sizeof(block_q4_0)
           : type == TT_Q4_1 ? sizeof(block_q4_1)
           : type == TT_Q5_0 ? sizeof(block_q5_0)
           : type == TT_Q5_1 ? sizeof(block_q5_1)
                             : sizeof(block_q8_0);
}

/* The 32 unsigned codes of a block-exact type's block, element order. */
KX_ALWAYS_INLINE __m256i kx_exact_codes(uint32_t type, const uint8_t *blk)
{
    if (type == TT_Q4_0 || type == TT_Q4_1)
        return kx_nibbles_b(blk + (type == TT_Q4_0 ? 2 : 4));
    const int q5_0 = type == TT_Q5_0;
    uint32_t qh;
    memcpy(&qh, blk + (q5_0 ? 2 : 4), 4);
    return _mm256_or_si256(kx_nibbles_b(blk + (q5_0 ? 6 : 8)), kx_bits_to_0x10(qh));
}

/* Block-exact weight row against NT activation rows, each block's integer
 * by a horizontal sum. For the small batches (2 or 3 rows) and rows too
 * long for the prepared paths; the hot paths are kx_gemv_exact_row and
 * kb_exact_row. */
KX_ALWAYS_INLINE void kx_exact_rows(uint32_t type, int NT, int64_t nblk, const uint8_t *w,
                                    const uint8_t *const *a, float *out)
{
    const size_t wb = kx_legacy_bytes(type);
    const int with_min = type == TT_Q4_1 || type == TT_Q5_1;
    const size_t ab = with_min ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const size_t aq_off = with_min ? 4 : 2;
    const int offset = kx_code_offset(type);
    float lane[KX_TILE][Q_LANES] = {{0}}, mins[KX_TILE] = {0};
    for (int64_t b = 0; b < nblk; b++) {
        const uint8_t *wblk = w + (size_t)b * wb;
        const __m256i u = kx_exact_codes(type, wblk);
        const float dw = kx_h2f(wblk);
        for (int t = 0; t < NT; t++) {
            const uint8_t *ablk = a[t] + (size_t)b * ab;
            const __m256i s = kx_load(ablk + aq_off);
            int32_t p = kx_hsum_i32(KX_DOT4(u, s));
            if (offset)
                p -= offset * kx_hsum_i32(KX_DOT4(_mm256_set1_epi8(1), s));
            float *l = &lane[t][b % Q_LANES];
            *l = fmaf(dw * kx_h2f(ablk), (float)p, *l);
            if (with_min)
                mins[t] = fmaf(kx_h2f(wblk + 2), kx_h2f(ablk + 2), mins[t]);
        }
    }
    for (int t = 0; t < NT; t++) {
        const float r = lanes_fold(lane[t], Q_LANES);
        out[t] = with_min ? r + mins[t] : r;
    }
}

/* Runs block_fn over k-quant super-blocks 0..nblk-1, even ones into (acc0, m0), odd
 * ones into (acc1, m1): the lane-group rule of the canonical order, with
 * both groups in registers (a runtime group index would force the
 * accumulators through memory). */
#define KX_BLOCK_PAIRS(nblk, block_fn)                                                             \
    do {                                                                                           \
        int64_t b_ = 0;                                                                            \
        for (; b_ + 1 < (nblk); b_ += 2) {                                                         \
            block_fn(b_, acc0, m0);                                                                \
            block_fn(b_ + 1, acc1, m1);                                                            \
        }                                                                                          \
        if (b_ < (nblk))                                                                           \
            block_fn(b_, acc0, m0);                                                                \
    } while (0)

#define KX_ACC_DECLARE(NT)                                                                         \
    __m256 acc0[KX_TILE], acc1[KX_TILE];                                                           \
    float m0[KX_TILE], m1[KX_TILE];                                                                \
    _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++)                                         \
    {                                                                                              \
        acc0[t] = acc1[t] = _mm256_setzero_ps();                                                   \
        m0[t] = m1[t] = 0.0f;                                                                      \
    }

#define KX_ACC_RESULT(NT, sign)                                                                    \
    _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) out[t] =                                \
        kx_qresult(acc0[t], acc1[t], m0[t], m1[t], sign)

/* ------------------------------------------------------------------ Q8_0 */

/* Block b of a Q8_0 weight row against NT activation rows, into the one
 * 8-lane group of Q8_0's order (kernels_impl.h): |w| x sign(a, w), so the
 * unsigned maddubs operand is the weight. sc4 (full tiles) holds the
 * activation scales as floats, 4 per block, so the 4 products dw * da are
 * one vector multiply: the same 4 IEEE products. */
KX_ALWAYS_INLINE void kx_q8_0_block(int NT, int64_t b, const uint8_t *w, const uint8_t *const *a,
                                    const float *sc4, __m256 *acc)
{
    const uint8_t *wblk = w + (size_t)b * sizeof(block_q8_0);
    const __m256i q = kx_load(wblk + 2), u = _mm256_sign_epi8(q, q);
    const float dw = kx_h2f(wblk);
    float dd[KX_TILE] = {0};
    if (sc4)
        _mm_storeu_ps(dd, _mm_mul_ps(_mm_set1_ps(dw), _mm_loadu_ps(sc4 + (size_t)b * KX_TILE)));
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const uint8_t *ablk = a[t] + (size_t)b * sizeof(block_q8_0);
        const __m256i p = KX_DOT4(u, _mm256_sign_epi8(kx_load(ablk + 2), q));
        const __m256 scale = sc4 ? _mm256_broadcast_ss(&dd[t]) : _mm256_set1_ps(dw * kx_h2f(ablk));
        acc[t] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(p), acc[t]);
    }
}

KX_ALWAYS_INLINE void kx_q8_0_rows(int NT, int64_t nblk, const uint8_t *w, const uint8_t *const *a,
                                   const float *sc4, float *out)
{
    __m256 acc[KX_TILE];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nblk; b++)
        kx_q8_0_block(NT, b, w, a, sc4, acc);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
        out[t] = kx_fold8(acc[t]);
}

/* The fp16 scales of one full tile's Q8_0 activation blocks as floats,
 * KX_TILE per block, so a block's scales are one vector load. Exact, so
 * results do not change. */
static void kx_tile_scales(int64_t nblk, const uint8_t *const *a, float *sc4)
{
    for (int64_t b = 0; b < nblk; b++)
        for (int t = 0; t < KX_TILE; t++)
            sc4[b * KX_TILE + t] = kx_h2f(a[t] + (size_t)b * sizeof(block_q8_0));
}

/* ---------------------------------------------------------------- k-quants */

/* Super-block b of a Q4_K/Q5_K weight row against NT Q8_K activation rows. */
/* Elements 64 pr .. 64 pr + 63 of a Q4_K/Q5_K super-block as unsigned
 * bytes: *lo the first 32 (low nibbles of qs[32 pr ..]), *hi the next 32
 * (high nibbles), each with Q5_K's fifth bit (bits 2 pr and 2 pr + 1 of the
 * qh bytes) added. */
KX_ALWAYS_INLINE void kx_q45k_pair(uint32_t type, const uint8_t *qs, __m256i qh, int pr,
                                   __m256i *lo, __m256i *hi)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i x = kx_load(qs + 32 * pr);
    *lo = _mm256_and_si256(x, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
    if (type == TT_Q5_K) {
        const __m256i one = _mm256_set1_epi8(1);
        *lo = _mm256_or_si256(
            *lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * pr), one), 4));
        *hi = _mm256_or_si256(
            *hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * pr + 1), one), 4));
    }
}

/* Half h (elements 128 h .. 128 h + 127) of a Q6_K super-block as four
 * chunks of 32 unsigned 6-bit values (the -32 offset not applied). */
KX_ALWAYS_INLINE void kx_q6k_half(const block_q6_K *x, int h, __m256i q[4])
{
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    const __m256i x0 = kx_load(x->ql + 64 * h), x1 = kx_load(x->ql + 64 * h + 32);
    const __m256i hv = kx_load(x->qh + 32 * h);
#pragma GCC unroll 4
    for (int s = 0; s < 4; s++) {
        const __m256i lo4 =
            _mm256_and_si256(_mm256_srli_epi16(s & 1 ? x1 : x0, s >= 2 ? 4 : 0), m4);
        const __m256i hi2 = _mm256_and_si256(_mm256_srli_epi16(hv, 2 * s), m2);
        q[s] = _mm256_or_si256(lo4, _mm256_slli_epi16(hi2, 4));
    }
}

KX_ALWAYS_INLINE void kx_q45k_block(uint32_t type, int NT, int64_t b, const uint8_t *w,
                                    const uint8_t *const *a, __m256 *acc, float *mins)
{
    const size_t wb = type == TT_Q4_K ? sizeof(block_q4_K) : sizeof(block_q5_K);
    const uint8_t *wblk = w + (size_t)b * wb;
    const uint8_t *scales = wblk + 4;
    const uint8_t *qs =
        type == TT_Q4_K ? ((const block_q4_K *)wblk)->qs : ((const block_q5_K *)wblk)->qs;
    uint8_t sc[8], mn[8];
    kx_kscales(scales, sc, mn);
    __m256i qh = _mm256_setzero_si256();
    if (type == TT_Q5_K)
        qh = kx_load(((const block_q5_K *)wblk)->qh);
    __m256i p[KX_TILE];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
        p[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int pr = 0; pr < 4; pr++) {
        __m256i lo, hi;
        kx_q45k_pair(type, qs, qh, pr, &lo, &hi);
        const __m256i s_lo = _mm256_set1_epi16(sc[2 * pr]);
        const __m256i s_hi = _mm256_set1_epi16(sc[2 * pr + 1]);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            const int8_t *aq = ((const block_q8_K *)a[t])[b].qs + 64 * pr;
            p[t] = _mm256_add_epi32(p[t], KX_DOT4_SCALED(lo, kx_load(aq), s_lo));
            p[t] = _mm256_add_epi32(p[t], KX_DOT4_SCALED(hi, kx_load(aq + 32), s_hi));
        }
    }
    /* mins as int16, each twice: lane j of bsums (16 elements) meets m[j/2] */
    const __m128i m8 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn));
    const __m256i m16 = _mm256_set_m128i(_mm_unpackhi_epi16(m8, m8), _mm_unpacklo_epi16(m8, m8));
    const float dw = kx_h2f(wblk), dminw = kx_h2f(wblk + 2);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const block_q8_K *y = (const block_q8_K *)a[t] + b;
        const int32_t summs = kx_hsum_i32(_mm256_madd_epi16(kx_load(y->bsums), m16));
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * y->d), _mm256_cvtepi32_ps(p[t]), acc[t]);
        mins[t] = fmaf(dminw * y->d, (float)summs, mins[t]);
    }
}

KX_ALWAYS_INLINE void kx_q45k_rows(uint32_t type, int NT, int64_t nblk, const uint8_t *w,
                                   const uint8_t *const *a, float *out)
{
    KX_ACC_DECLARE(NT)
#define KX_Q45K_STEP(b, acc, m) kx_q45k_block(type, NT, b, w, a, acc, m)
    KX_BLOCK_PAIRS(nblk, KX_Q45K_STEP);
#undef KX_Q45K_STEP
    KX_ACC_RESULT(NT, -1);
}

/* Super-block b of a Q6_K weight row against NT Q8_K activation rows. */
KX_ALWAYS_INLINE void kx_q6k_block(int NT, int64_t b, const uint8_t *w, const uint8_t *const *a,
                                   __m256 *acc, float *mins)
{
    (void)mins; /* Q6_K has no min term */
    const block_q6_K *x = (const block_q6_K *)w + b;
    __m256i p[KX_TILE];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++)
        p[t] = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        __m256i q[4];
        kx_q6k_half(x, h, q);
#pragma GCC unroll 4
        for (int s = 0; s < 4; s++) {
            const int c = 4 * h + s;
            const __m256i sc16 = _mm256_set_m128i(_mm_set1_epi16(x->scales[2 * c + 1]),
                                                  _mm_set1_epi16(x->scales[2 * c]));
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const int8_t *aq = ((const block_q8_K *)a[t])[b].qs + 32 * c;
                p[t] = _mm256_add_epi32(p[t], KX_DOT4_Q6(q[s], kx_load(aq), sc16));
            }
        }
    }
    const float dw = kx_h2f(&x->d);
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) {
        const float d = dw * ((const block_q8_K *)a[t])[b].d;
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(p[t]), acc[t]);
    }
}

KX_ALWAYS_INLINE void kx_q6k_rows(int NT, int64_t nblk, const uint8_t *w, const uint8_t *const *a,
                                  float *out)
{
    KX_ACC_DECLARE(NT)
#define KX_Q6K_STEP(b, acc, m) kx_q6k_block(NT, b, w, a, acc, m)
    KX_BLOCK_PAIRS(nblk, KX_Q6K_STEP);
#undef KX_Q6K_STEP
    KX_ACC_RESULT(NT, +1);
}

/* ------------------------------------------------------------ float types */

/* 8 weights from element j on as floats (exact conversions). */
KX_ALWAYS_INLINE __m256 kx_load_w8(uint32_t type, const uint8_t *w, int64_t j)
{
    if (type == TT_F32)
        return _mm256_loadu_ps((const float *)(const void *)(w + 4 * j));
    const __m128i h = _mm_loadu_si128((const __m128i *)(w + 2 * j));
    if (type == TT_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* Element j of a row into lane j % 32: four 8-lane accumulators per
 * activation row; the tail (n % 32 elements) is finished in the stored
 * lanes with fmaf, exactly as the scalar loop would. */
KX_ALWAYS_INLINE void kx_float_rows(uint32_t type, int NT, int64_t n, const uint8_t *w,
                                    const uint8_t *const *a, float *out)
{
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int t = 0; t < NT; t++)
        for (int i = 0; i < 4; i++)
            acc[t][i] = _mm256_setzero_ps();
    const int64_t nmain = n - n % F_LANES;
    for (int64_t j = 0; j < nmain; j += F_LANES) {
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const __m256 wv = kx_load_w8(type, w, j + 8 * i);
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++) {
                const float *x = (const float *)(const void *)a[t];
                acc[t][i] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + j + 8 * i), acc[t][i]);
            }
        }
    }
#pragma GCC unroll 2
    for (int t = 0; t < NT; t++) {
        float lane[F_LANES];
        const float *x = (const float *)(const void *)a[t];
        for (int i = 0; i < 4; i++)
            _mm256_storeu_ps(lane + 8 * i, acc[t][i]);
        for (int64_t j = nmain; j < n; j++) {
            float wj;
            if (type == TT_F32) {
                memcpy(&wj, w + 4 * j, 4);
            } else {
                uint16_t h;
                memcpy(&h, w + 2 * j, 2);
                wj = type == TT_F16 ? _cvtsh_ss(h) : bf16_to_fp32(h);
            }
            lane[j % F_LANES] = fmaf(wj, x[j], lane[j % F_LANES]);
        }
        out[t] = lanes_fold(lane, F_LANES);
    }
}

/* ------------------------------------------- decode: one activation row */

/* The matrix-vector product (nb == 1) of a decode step streams every weight
 * byte once, so it runs at memory speed only if each block costs a few
 * cycles. Per call, facts about the one activation row that every weight
 * row needs are computed once (kx_act1); each weight row is then one pass
 * with no per-block conversions of activation data. The arithmetic is the
 * canonical order, unchanged: integer partials are exact however they are
 * formed, and the float steps are the same fmadd's into the same lanes. */

/* Activation facts for up to KX_SC_BLOCKS 32-element blocks (legacy types)
 * or KX_SC_BLOCKS / 8 super-blocks (k-quants). */
typedef struct kx_act1 {
    float d[KX_SC_BLOCKS]; /* fp32(a.d) per block */
    float s[KX_SC_BLOCKS]; /* fp32(a.s) per block (Q8_1) */
    /* Q4_0/Q5_0: -offset * (sum of the block's codes); with unsigned
     * weight codes q, dot(q, a) + off = dot(q - offset, a). */
    int32_t off[KX_SC_BLOCKS];
    /* k-quants: bsum[2c] + bsum[2c+1] as int16 lane c, per super-block */
    __m128i bsum2[KX_SC_BLOCKS / 8];
    /* The row's activation codes, contiguous and 32-byte aligned: in the
     * blocks they sit 2 or 4 bytes into 34-, 36- or 292-byte records, so
     * about half of the 32-byte loads of every weight row would straddle a
     * cache line. */
    _Alignas(32) int8_t qs[KX_SC_BLOCKS * QK32];
} kx_act1;

/* The fp32 values of the fp16 fields at p, p + stride, p + 2 stride and
 * p + 3 stride (the d of 4 consecutive blocks): one conversion for four. */
KX_ALWAYS_INLINE __m128 kx_h2f_x4(const uint8_t *p, size_t stride)
{
    uint16_t h[4];
    for (int i = 0; i < 4; i++)
        memcpy(&h[i], p + (size_t)i * stride, 2);
    uint64_t v;
    memcpy(&v, h, 8);
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)v));
}

/* Lane j (0..3) of the 128-bit v, in all 8 lanes, given vv = v ++ v. */
#define KX_LANE_ALL(vv, j) _mm256_permute_ps(vv, (j)*0x55)

static int kx_act1_prepare(uint32_t type, int64_t n, const uint8_t *a, kx_act1 *f)
{
    if (type == TT_Q4_K || type == TT_Q5_K || type == TT_Q6_K) {
        const int64_t nsb = n / QK_K;
        if (nsb > KX_SC_BLOCKS / 8)
            return 0;
        for (int64_t b = 0; b < nsb; b++) {
            const block_q8_K *y = (const block_q8_K *)a + b;
            const __m256i bs = kx_load(y->bsums);
            /* adjacent int16 pairs summed: madd with ones, then packed back */
            const __m256i s32 = _mm256_madd_epi16(bs, _mm256_set1_epi16(1));
            f->bsum2[b] =
                _mm_packs_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
            memcpy(f->qs + b * QK_K, y->qs, QK_K);
        }
        return 1;
    }
    const int64_t nblk = n / QK32;
    if (nblk > KX_SC_BLOCKS)
        return 0;
    const int q8_1 = activation_type(type) == TT_Q8_1;
    const size_t ab = q8_1 ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const int offset = kx_code_offset(type);
    for (int64_t b = 0; b < nblk; b++) {
        const uint8_t *ablk = a + (size_t)b * ab;
        f->d[b] = kx_h2f(ablk);
        f->s[b] = q8_1 ? kx_h2f(ablk + 2) : 0.0f;
        f->off[b] =
            offset ? -offset * kx_hsum_i32(KX_DOT4(_mm256_set1_epi8(1), kx_load(ablk + 2))) : 0;
        memcpy(f->qs + b * QK32, ablk + (q8_1 ? 4 : 2), QK32);
    }
    return 1;
}

/* One Q8_0 block in the decode pass: p = exact partials, then
 * acc += D * p with D = dw * da given in all lanes. */
KX_ALWAYS_INLINE void kx_gemv_q8_0_block(const uint8_t *wblk, const int8_t *aqs, __m256 dd,
                                         __m256 *acc)
{
    const __m256i q = kx_load(((const block_q8_0 *)wblk)->qs);
    const __m256i p = KX_DOT4(_mm256_sign_epi8(q, q), _mm256_sign_epi8(kx_load(aqs), q));
    *acc = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(p), *acc);
}

/* One Q8_0 weight row against the prepared activation row (one lane group).
 * Blocks go four at a time so that their four weight scales are converted
 * and multiplied by the activation scales in one vector step each. */
KX_ALWAYS_INLINE float kx_gemv_q8_0_row(int64_t nblk, const uint8_t *w, const kx_act1 *f)
{
    const size_t wb = sizeof(block_q8_0), ab = QK32;
    __m256 acc = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 4 <= nblk; b += 4) {
        const uint8_t *wblk = w + (size_t)b * wb;
        const int8_t *ablk = f->qs + (size_t)b * ab;
        _mm_prefetch((const char *)wblk + KX_PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)wblk + KX_PREFETCH + 64, _MM_HINT_T0);
        const __m128 d4 = _mm_mul_ps(kx_h2f_x4(wblk, wb), _mm_loadu_ps(f->d + b));
        const __m256 dd = _mm256_set_m128(d4, d4);
        kx_gemv_q8_0_block(wblk, ablk, KX_LANE_ALL(dd, 0), &acc);
        kx_gemv_q8_0_block(wblk + wb, ablk + ab, KX_LANE_ALL(dd, 1), &acc);
        kx_gemv_q8_0_block(wblk + 2 * wb, ablk + 2 * ab, KX_LANE_ALL(dd, 2), &acc);
        kx_gemv_q8_0_block(wblk + 3 * wb, ablk + 3 * ab, KX_LANE_ALL(dd, 3), &acc);
    }
    for (; b < nblk; b++) {
        const uint8_t *wblk = w + (size_t)b * wb;
        kx_gemv_q8_0_block(wblk, f->qs + (size_t)b * ab, _mm256_set1_ps(kx_h2f(wblk) * f->d[b]),
                           &acc);
    }
    return kx_fold8(acc);
}

/* Lane i of the result = the sum of block i's partials, for 8 blocks given
 * as KX_DOT4_PAIR's: w[t] holds blocks 2t and 2t + 1 interleaved. The
 * pairs are interleaved again by qword and added (blocks 0-3, then 4-7,
 * per half), then the halves are added. Exact, so the order of the
 * additions does not matter; unpacks, not the costlier hadd or a lane
 * permute per block. */
KX_ALWAYS_INLINE __m256i kx_sum_pairs_i32(const __m256i w[4])
{
    const __m256i x0 =
        _mm256_add_epi32(_mm256_unpacklo_epi64(w[0], w[1]), _mm256_unpackhi_epi64(w[0], w[1]));
    const __m256i x1 =
        _mm256_add_epi32(_mm256_unpacklo_epi64(w[2], w[3]), _mm256_unpackhi_epi64(w[2], w[3]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(x0, x1, 0x20),
                            _mm256_permute2x128_si256(x0, x1, 0x31));
}

/* The fp16 fields at p, p + stride, ..., p + 7 stride (one field of 8
 * consecutive blocks) as 8 floats. */
KX_ALWAYS_INLINE __m256 kx_h2f_x8(const uint8_t *p, size_t stride)
{
    /* written for general-purpose registers (idle in this loop) rather
     * than vector inserts, which compete with the dot products; GCC still
     * vectorises part of it, and forcing all of it into general-purpose
     * registers (an empty asm) measured 3% slower in decode */
    uint64_t q[2] = {0, 0};
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        uint16_t h;
        memcpy(&h, p + (size_t)i * stride, 2);
        q[i / 4] |= (uint64_t)h << (16 * (i % 4));
    }
    return _mm256_cvtph_ps(_mm_set_epi64x((long long)q[1], (long long)q[0]));
}

/* One block-exact weight row against the prepared activation row. Blocks
 * go eight at a time, lane i = block b + i, which is the lane b % 8 of the
 * canonical order: the eight blocks' partials are summed into one vector of
 * exact block integers, so the conversion, the scale product and the fmadd
 * are one each for eight blocks. Blocks past the last multiple of 8 and
 * the fold finish in scalar, as the reference. */
KX_ALWAYS_INLINE float kx_gemv_exact_row(uint32_t type, int64_t nblk, const uint8_t *w,
                                         const kx_act1 *f)
{
    const size_t wb = kx_legacy_bytes(type);
    const int with_min = type == TT_Q4_1 || type == TT_Q5_1;
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    int64_t b = 0;
    for (; b + 8 <= nblk; b += 8) {
        const uint8_t *wblk = w + (size_t)b * wb;
        for (size_t o = 0; o < 8 * wb; o += 64)
            _mm_prefetch((const char *)wblk + KX_PREFETCH + o, _MM_HINT_T0);
        __m256i w2[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const int8_t *ai = f->qs + (size_t)(b + 2 * t) * QK32;
            w2[t] = KX_DOT4_PAIR(kx_exact_codes(type, wblk + (size_t)(2 * t) * wb), kx_load(ai),
                                 kx_exact_codes(type, wblk + (size_t)(2 * t + 1) * wb),
                                 kx_load(ai + QK32));
        }
        __m256i pb = kx_sum_pairs_i32(w2);
        if (kx_code_offset(type))
            pb = _mm256_add_epi32(pb, _mm256_loadu_si256((const __m256i *)(f->off + b)));
        const __m256 dd = _mm256_mul_ps(kx_h2f_x8(wblk, wb), _mm256_loadu_ps(f->d + b));
        acc = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(pb), acc);
        if (with_min)
            for (int i = 0; i < 8; i++)
                mins = fmaf(kx_h2f(wblk + (size_t)i * wb + 2), f->s[b + i], mins);
    }
    float lane[Q_LANES];
    _mm256_storeu_ps(lane, acc);
    for (; b < nblk; b++) {
        const uint8_t *wblk = w + (size_t)b * wb;
        const __m256i s = kx_load(f->qs + (size_t)b * QK32);
        const int32_t p = kx_hsum_i32(KX_DOT4(kx_exact_codes(type, wblk), s)) + f->off[b];
        lane[b % Q_LANES] = fmaf(kx_h2f(wblk) * f->d[b], (float)p, lane[b % Q_LANES]);
        if (with_min)
            mins = fmaf(kx_h2f(wblk + 2), f->s[b], mins);
    }
    const float r = lanes_fold(lane, Q_LANES);
    return with_min ? r + mins : r;
}

/* Per-chunk int16 scale vectors of a k-quant super-block: sc16 holds the 8
 * chunk scales as int16 in each 128-bit half; chunk c's vector is its scale
 * in every int16 lane (one byte shuffle). */
KX_ALWAYS_INLINE __m256i kx_chunk_scale(__m256i sc16, int c)
{
    return _mm256_shuffle_epi8(sc16, _mm256_set1_epi16((short)(0x0100 + 0x0202 * c)));
}

/* One Q4_K/Q5_K super-block in the decode pass. */
KX_ALWAYS_INLINE void kx_gemv_q45k_block(uint32_t type, const uint8_t *wblk, const block_q8_K *y,
                                         const int8_t *aqs, __m128i bsum2, __m256 *acc, float *mins)
{
    const uint8_t *s = wblk + 4;
    uint32_t a, bb, c;
    memcpy(&a, s, 4);
    memcpy(&bb, s + 4, 4);
    memcpy(&c, s + 8, 4);
    const uint32_t sc_lo = a & 0x3f3f3f3fu, mn_lo = bb & 0x3f3f3f3fu;
    const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    const uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0fu) | ((bb >> 2) & 0x30303030u);
    const __m128i sc8 = _mm_cvtepu8_epi16(
        _mm_cvtsi64_si128((long long)(((uint64_t)sc_hi << 32) | (uint64_t)sc_lo)));
    const __m128i mn8 = _mm_cvtepu8_epi16(
        _mm_cvtsi64_si128((long long)(((uint64_t)mn_hi << 32) | (uint64_t)mn_lo)));
    const __m256i sc16 = _mm256_broadcastsi128_si256(sc8);
    const uint8_t *qs =
        type == TT_Q4_K ? ((const block_q4_K *)wblk)->qs : ((const block_q5_K *)wblk)->qs;
    __m256i qh = _mm256_setzero_si256();
    if (type == TT_Q5_K)
        qh = kx_load(((const block_q5_K *)wblk)->qh);
    __m256i p = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int pr = 0; pr < 4; pr++) {
        __m256i lo, hi;
        kx_q45k_pair(type, qs, qh, pr, &lo, &hi);
        p = _mm256_add_epi32(
            p, KX_DOT4_SCALED(lo, kx_load(aqs + 64 * pr), kx_chunk_scale(sc16, 2 * pr)));
        p = _mm256_add_epi32(
            p, KX_DOT4_SCALED(hi, kx_load(aqs + 64 * pr + 32), kx_chunk_scale(sc16, 2 * pr + 1)));
    }
    /* S = sum_c m_c * (bsum[2c] + bsum[2c+1]), exact in int32 */
    __m128i sm = _mm_madd_epi16(mn8, bsum2);
    sm = _mm_add_epi32(sm, _mm_shuffle_epi32(sm, 0x4e));
    sm = _mm_add_epi32(sm, _mm_shuffle_epi32(sm, 0xb1));
    const float dw = kx_h2f(wblk), dminw = kx_h2f(wblk + 2);
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * y->d), _mm256_cvtepi32_ps(p), *acc);
    *mins = fmaf(dminw * y->d, (float)_mm_cvtsi128_si32(sm), *mins);
}

/* One Q6_K super-block in the decode pass. */
KX_ALWAYS_INLINE void kx_gemv_q6k_block(const uint8_t *wblk, const block_q8_K *y, const int8_t *aqs,
                                        __m256 *acc)
{
    const block_q6_K *x = (const block_q6_K *)wblk;
    __m256i p = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        /* scales 8h..8h+7 as int16 in both halves; sub-chunk s takes scale
         * 2s (+8h) in its low half and 2s+1 in its high half */
        const __m256i sc16 = _mm256_broadcastsi128_si256(
            _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(x->scales + 8 * h))));
        __m256i q[4];
        kx_q6k_half(x, h, q);
#pragma GCC unroll 4
        for (int sub = 0; sub < 4; sub++) {
            const __m256i pick =
                _mm256_set_m128i(_mm_set1_epi16((short)(0x0100 + 0x0202 * (2 * sub + 1))),
                                 _mm_set1_epi16((short)(0x0100 + 0x0202 * (2 * sub))));
            const __m256i scv = _mm256_shuffle_epi8(sc16, pick);
            p = _mm256_add_epi32(p, KX_DOT4_Q6(q[sub], kx_load(aqs + 32 * (4 * h + sub)), scv));
        }
    }
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(kx_h2f(&x->d) * y->d), _mm256_cvtepi32_ps(p), *acc);
}

KX_ALWAYS_INLINE float kx_gemv_kquant_row(uint32_t type, int64_t nsb, const uint8_t *w,
                                          const uint8_t *a, const kx_act1 *f)
{
    const size_t wb = type == TT_Q4_K   ? sizeof(block_q4_K)
                      : type == TT_Q5_K ? sizeof(block_q5_K)
                                        : sizeof(block_q6_K);
    const block_q8_K *y = (const block_q8_K *)a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float m0 = 0.0f, m1 = 0.0f;
    int64_t b = 0;
    for (; b + 2 <= nsb; b += 2) {
        for (size_t o = 0; o < 2 * wb; o += 64)
            _mm_prefetch((const char *)w + (size_t)b * wb + KX_PREFETCH + o, _MM_HINT_T0);
        if (type == TT_Q6_K) {
            kx_gemv_q6k_block(w + (size_t)b * wb, y + b, f->qs + b * QK_K, &acc0);
            kx_gemv_q6k_block(w + (size_t)(b + 1) * wb, y + b + 1, f->qs + (b + 1) * QK_K, &acc1);
        } else {
            kx_gemv_q45k_block(type, w + (size_t)b * wb, y + b, f->qs + b * QK_K, f->bsum2[b],
                               &acc0, &m0);
            kx_gemv_q45k_block(type, w + (size_t)(b + 1) * wb, y + b + 1, f->qs + (b + 1) * QK_K,
                               f->bsum2[b + 1], &acc1, &m1);
        }
    }
    if (b < nsb) {
        if (type == TT_Q6_K)
            kx_gemv_q6k_block(w + (size_t)b * wb, y + b, f->qs + b * QK_K, &acc0);
        else
            kx_gemv_q45k_block(type, w + (size_t)b * wb, y + b, f->qs + b * QK_K, f->bsum2[b],
                               &acc0, &m0);
    }
    return kx_qresult(acc0, acc1, m0, m1, type == TT_Q6_K ? +1 : -1);
}

/* The decode product y[r] = dot(row r, a) for r in [r0, r1). Returns 0 (and
 * computes nothing) for types or lengths it does not specialise. */
static int kx_gemv(uint32_t type, int64_t n, const uint8_t *w, size_t w_stride, const uint8_t *a,
                   float *y, int64_t r0, int64_t r1)
{
    kx_act1 f;
    switch (type) {
    case TT_Q4_0:
    case TT_Q4_1:
    case TT_Q5_0:
    case TT_Q5_1:
    case TT_Q8_0:
    case TT_Q4_K:
    case TT_Q5_K:
    case TT_Q6_K:
        break;
    default:
        return 0;
    }
    if (!kx_act1_prepare(type, n, a, &f))
        return 0;
#define KX_GEMV_LEGACY(T)                                                                          \
    for (int64_t r = r0; r < r1; r++)                                                              \
        y[r] = kx_gemv_exact_row(T, n / QK32, w + (size_t)r * w_stride, &f);
#define KX_GEMV_KQUANT(T)                                                                          \
    for (int64_t r = r0; r < r1; r++)                                                              \
        y[r] = kx_gemv_kquant_row(T, n / QK_K, w + (size_t)r * w_stride, a, &f);
    switch (type) {
    case TT_Q4_0:
        KX_GEMV_LEGACY(TT_Q4_0) break;
    case TT_Q4_1:
        KX_GEMV_LEGACY(TT_Q4_1) break;
    case TT_Q5_0:
        KX_GEMV_LEGACY(TT_Q5_0) break;
    case TT_Q5_1:
        KX_GEMV_LEGACY(TT_Q5_1) break;
    case TT_Q8_0:
        for (int64_t r = r0; r < r1; r++)
            y[r] = kx_gemv_q8_0_row(n / QK32, w + (size_t)r * w_stride, &f);
        break;
    case TT_Q4_K:
        KX_GEMV_KQUANT(TT_Q4_K) break;
    case TT_Q5_K:
        KX_GEMV_KQUANT(TT_Q5_K) break;
    default:
        KX_GEMV_KQUANT(TT_Q6_K) break;
    }
#undef KX_GEMV_LEGACY
#undef KX_GEMV_KQUANT
    return 1;
}

/* ---------------------------------------------------------------- driver */

/* One weight row against nt (1 or KX_TILE) activation rows, with the row
 * count a compile-time constant in each specialisation (two of them, to
 * keep code size and compile time down; see kx_row_tile for 2 and 3). */
#define KX_DISPATCH_NT(call_with_nt)                                                               \
    if (nt == 1) {                                                                                 \
        call_with_nt(1);                                                                           \
    } else {                                                                                       \
        call_with_nt(KX_TILE);                                                                     \
    }

static void kx_row_tile(uint32_t type, int64_t n, const uint8_t *w, const uint8_t *const *a, int nt,
                        const float *sc4, float *out)
{
    if (q_block_exact(type)) {
        kx_exact_rows(type, nt, n / QK32, w, a, out);
        return;
    }
    if (nt > 1 && nt < KX_TILE) {
        /* A partial tile runs as a full one whose extra rows repeat the
         * last real row; their results are dropped. Each output's own
         * arithmetic does not depend on its neighbours. */
        const uint8_t *a_full[KX_TILE];
        float out_full[KX_TILE];
        for (int t = 0; t < KX_TILE; t++)
            a_full[t] = a[t < nt ? t : nt - 1];
        kx_row_tile(type, n, w, a_full, KX_TILE, NULL, out_full);
        memcpy(out, out_full, (size_t)nt * sizeof(float));
        return;
    }
    switch (type) {
#define KX_Q8_0(N) kx_q8_0_rows(N, n / QK32, w, a, (N) == KX_TILE ? sc4 : NULL, out)
#define KX_Q4K(N)  kx_q45k_rows(TT_Q4_K, N, n / QK_K, w, a, out)
#define KX_Q5K(N)  kx_q45k_rows(TT_Q5_K, N, n / QK_K, w, a, out)
#define KX_Q6K(N)  kx_q6k_rows(N, n / QK_K, w, a, out)
    case TT_Q8_0:
        KX_DISPATCH_NT(KX_Q8_0) break;
    case TT_Q4_K:
        KX_DISPATCH_NT(KX_Q4K) break;
    case TT_Q5_K:
        KX_DISPATCH_NT(KX_Q5K) break;
    case TT_Q6_K:
        KX_DISPATCH_NT(KX_Q6K) break;
    case TT_F32:
    case TT_F16:
    case TT_BF16:
        /* float tiles are at most 2 rows: 4 accumulators per row */
        for (int t = 0; t < nt; t += 2) {
            if (nt - t >= 2) {
                if (type == TT_F32)
                    kx_float_rows(TT_F32, 2, n, w, a + t, out + t);
                else if (type == TT_F16)
                    kx_float_rows(TT_F16, 2, n, w, a + t, out + t);
                else
                    kx_float_rows(TT_BF16, 2, n, w, a + t, out + t);
            } else {
                if (type == TT_F32)
                    kx_float_rows(TT_F32, 1, n, w, a + t, out + t);
                else if (type == TT_F16)
                    kx_float_rows(TT_F16, 1, n, w, a + t, out + t);
                else
                    kx_float_rows(TT_BF16, 1, n, w, a + t, out + t);
            }
        }
        break;
    default:
        for (int t = 0; t < nt; t++)
            out[t] = kernels_dot_scalar(type, n, w, a[t]);
        break;
    }
}

#include "kernels_x86_batch.h"

/* Batches of quantized rows go to kb_mul_mat (kernels_x86_batch.h). Else:
 * blocks of KX_ROW_BLOCK weight rows; within a block, activation rows in
 * tiles of KX_TILE, each tile against every row of the block. The loop
 * order changes only which outputs are computed when, never how. */
static void kx_mul_mat(uint32_t weight_type, int64_t n, const void *w, size_t w_stride,
                       const void *a, size_t a_stride, int64_t nb, float *y, size_t y_stride,
                       int64_t r0, int64_t r1)
{
    const uint8_t *wp = w, *ap = a;
    if (nb == 1 && kx_gemv(weight_type, n, w, w_stride, a, y, r0, r1))
        return;
    if (kb_handles(weight_type, n, nb)) {
        kb_mul_mat(weight_type, n, wp, w_stride, ap, a_stride, nb, y, y_stride, r0, r1);
        return;
    }
    const int64_t nblk = n / QK32;
    float sc4_buf[KX_SC_BLOCKS * KX_TILE];
    for (int64_t rb = r0; rb < r1; rb += KX_ROW_BLOCK) {
        const int64_t re = rb + KX_ROW_BLOCK < r1 ? rb + KX_ROW_BLOCK : r1;
        for (int64_t b = 0; b < nb; b += KX_TILE) {
            const int nt = (int)(nb - b < KX_TILE ? nb - b : KX_TILE);
            const uint8_t *arow[KX_TILE];
            for (int t = 0; t < nt; t++)
                arow[t] = ap + (size_t)(b + t) * a_stride;
            const float *sc4 = NULL;
            if (weight_type == TT_Q8_0 && nt == KX_TILE && nblk <= KX_SC_BLOCKS) {
                kx_tile_scales(nblk, arow, sc4_buf);
                sc4 = sc4_buf;
            }
            for (int64_t r = rb; r < re; r++) {
                float out[KX_TILE];
                kx_row_tile(weight_type, n, wp + (size_t)r * w_stride, arow, nt, sc4, out);
                for (int t = 0; t < nt; t++)
                    y[(size_t)(b + t) * y_stride + (size_t)r] = out[t];
            }
        }
    }
}

/* ------------------------------------------------- activation quantizer */

/* The 8-bit activation formats written with vectors, byte for byte what
 * the shared reference (quant.c) writes: the same IEEE operations in the
 * same order per element (products x * iscale, round to nearest even,
 * clamp to [-127, 127] in float so NaN gives -127 and infinities the
 * bound, as round_clamp does), and the block maxima are exact whatever the
 * order. test_kernels compares every format against the reference,
 * special values included. */

/* max over the block of |x|, NaN ignored (max_ps returns its second operand
 * when one is NaN, so the running maximum goes second). */
KX_ALWAYS_INLINE float kx_abs_max(const float *x, int n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8)
        m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* Codes of 32 elements into qs; returns the 8 int32 lane sums of codes
 * (lane i: codes 4i..4i+3, for the sum formats). */
KX_ALWAYS_INLINE __m256i kx_codes32(const float *x, float iscale, int8_t *qs)
{
    const __m256 sc = _mm256_set1_ps(iscale), lo = _mm256_set1_ps(-127.0f);
    const __m256 hi = _mm256_set1_ps(127.0f);
    __m256i c[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * i), sc),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        c[i] = _mm256_cvtps_epi32(v);
    }
    /* packs interleave 128-bit halves; the permute restores element order */
    const __m256i p16a = _mm256_packs_epi32(c[0], c[1]), p16b = _mm256_packs_epi32(c[2], c[3]);
    const __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b),
                                                   _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)qs, p8);
    return KX_DOT4(_mm256_set1_epi8(1), p8);
}

static void kx_quant_q8_0(const float *x, block_q8_0 *y, int64_t nb, block_q8_1 *y1)
{
    for (int64_t i = 0; i < nb; i++, x += QK32) {
        const float amax = kx_abs_max(x, QK32), d = amax / 127.0f;
        const float iscale = amax != 0.0f ? 127.0f / amax : 0.0f;
        if (!y1) {
            y[i].d = fp32_to_fp16(d);
            (void)kx_codes32(x, iscale, y[i].qs);
            continue;
        }
        const int32_t sum = kx_hsum_i32(kx_codes32(x, iscale, y1[i].qs));
        y1[i].d = fp32_to_fp16(d);
        y1[i].s = fp32_to_fp16(d * (float)sum);
    }
}

/* Q8_K: the element of largest magnitude, first on ties, with its sign. */
static void kx_quant_q8_K(const float *x, block_q8_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        const float amax = kx_abs_max(x, QK_K);
        float max = 0.0f;
        for (int j = 0; amax != 0.0f && j < QK_K; j++)
            if (fabsf(x[j]) == amax) {
                max = x[j];
                break;
            }
        const float iscale = max != 0.0f ? -127.0f / max : 0.0f;
        y[i].d = iscale != 0.0f ? 1.0f / iscale : 0.0f;
        for (int c = 0; c < QK_K / QK32; c++) {
            /* lanes 4k..: per-4 sums; bsums are per 16 codes */
            const __m256i s4 = kx_codes32(x + QK32 * c, iscale, y[i].qs + QK32 * c);
            const __m128i s8 = _mm_add_epi32(_mm256_castsi256_si128(s4),
                                             _mm_shuffle_epi32(_mm256_castsi256_si128(s4), 0x4e));
            const __m128i t8 =
                _mm_add_epi32(_mm256_extracti128_si256(s4, 1),
                              _mm_shuffle_epi32(_mm256_extracti128_si256(s4, 1), 0x4e));
            y[i].bsums[2 * c] = (int16_t)(_mm_cvtsi128_si32(s8) + _mm_extract_epi32(s8, 1));
            y[i].bsums[2 * c + 1] = (int16_t)(_mm_cvtsi128_si32(t8) + _mm_extract_epi32(t8, 1));
        }
    }
}

static void kx_quantize_activations(uint32_t weight_type, const float *x, void *out, int64_t n)
{
    switch (activation_type(weight_type)) {
    case TT_Q8_0:
        kx_quant_q8_0(x, out, n / QK32, NULL);
        return;
    case TT_Q8_1:
        kx_quant_q8_0(x, NULL, n / QK32, out);
        return;
    case TT_Q8_K:
        kx_quant_q8_K(x, out, n / QK_K);
        return;
    default:
        kernels_quantize_activations_ref(weight_type, x, out, n);
        return;
    }
}

/* ------------------------------------------------------------- attention */

/* F16C converts exactly and quiets NaNs, as the reference does. */
static void kx_f16_to_f32(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++)
        dst[i] = _cvtsh_ss(src[i]);
}

/* One dot: element i into lane i % 8 (a rounded product, then an add,
 * never an fmadd), folded as lanes_fold: the reference's two 4-lane
 * vectors are this vector's halves. */
static float kx_dot_f32_one(const float *a, const float *b, uint32_t n)
{
    __m256 acc = _mm256_setzero_ps();
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    if (i == n)
        return kx_fold8(acc);
    float lane[8];
    _mm256_storeu_ps(lane, acc);
    for (; i < n; i++)
        lane[i % 8] += a[i] * b[i];
    return lanes_fold(lane, 8);
}

/* Two query rows against one key row (n a multiple of 8), the key loaded
 * once, and both folds in one vector: lanes_fold's first step adds the
 * halves (one permute puts row 0's in the low half, row 1's in the high),
 * the second adds lanes two apart, the third neighbours; IEEE addition
 * commutes, so the swapped copies give the same sums. */
static void kx_dot_f32_two(const float *q0, const float *q1, const float *b, uint32_t n, float *out)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (uint32_t i = 0; i < n; i += 8) {
        const __m256 bv = _mm256_loadu_ps(b + i);
        a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_loadu_ps(q0 + i), bv));
        a1 = _mm256_add_ps(a1, _mm256_mul_ps(_mm256_loadu_ps(q1 + i), bv));
    }
    __m256 t =
        _mm256_add_ps(_mm256_permute2f128_ps(a0, a1, 0x20), _mm256_permute2f128_ps(a0, a1, 0x31));
    t = _mm256_add_ps(t, _mm256_permute_ps(t, 0x4E));
    t = _mm256_add_ps(t, _mm256_permute_ps(t, 0xB1));
    out[0] = _mm256_cvtss_f32(t);
    out[1] = _mm_cvtss_f32(_mm256_extractf128_ps(t, 1));
}

static void kx_dot_f32(const float *q, size_t q_stride, uint32_t nq, const float *b, uint32_t n,
                       float *out)
{
    uint32_t g = 0;
    if (n % 8 == 0)
        for (; g + 2 <= nq; g += 2)
            kx_dot_f32_two(q + g * q_stride, q + (g + 1) * q_stride, b, n, out + g);
    for (; g < nq; g++)
        out[g] = kx_dot_f32_one(q + g * q_stride, b, n);
}

/* y[i] = y[i] + a[t] * x[t][i], rows in order, 32 outputs held in
 * registers across the rows. */
static void kx_axpy_rows(float *y, const float *a, const float *x, uint32_t nt, uint32_t n)
{
    uint32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 acc[4];
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_loadu_ps(y + i + 8 * k);
        for (uint32_t t = 0; t < nt; t++) {
            const __m256 av = _mm256_set1_ps(a[t]);
            const float *xt = x + (size_t)t * n + i;
            for (int k = 0; k < 4; k++)
                acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(av, _mm256_loadu_ps(xt + 8 * k)));
        }
        for (int k = 0; k < 4; k++)
            _mm256_storeu_ps(y + i + 8 * k, acc[k]);
    }
    for (; i < n; i++)
        for (uint32_t t = 0; t < nt; t++)
            y[i] += a[t] * x[(size_t)t * n + i];
}

const kernels KX_KERNELS = {
    KX_NAME, kx_quantize_activations, kx_mul_mat, kx_f16_to_f32, kx_dot_f32, kx_axpy_rows};

#endif
