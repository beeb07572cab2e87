/* Internal to engine/ kernels: GGML block layouts and the canonical
 * reduction order that every kernel path (scalar, AVX2, AVX-512, NEON)
 * implements bit for bit.
 *
 * Canonical order of one output y = dot(weight row, activation row):
 *  - F32/F16/BF16 weights (F32 activations): element j goes to float lane
 *    j % 32: lane = fmaf(w[j], x[j], lane), elements in increasing j (the
 *    fp16/bf16 -> fp32 conversion is exact). Then the halving fold:
 *    for half = 16, 8, 4, 2, 1: lane[i] = lane[i] + lane[i + half].
 *  - K-quant and Q8_0 weights, per block b (32 elements, or a 256-element
 *    super-block): 8 exact int32 partials P[k] = sum of s_e * q_e * a_e
 *    over elements e with (e % 32) / 4 == k (s_e = sub-block scale for
 *    k-quants, 1 otherwise; q_e includes the type's offset: -8, -16, -32).
 *    Lane group g = b % 2 gets lane[g][k] = fmaf(D_b, (float)P[k],
 *    lane[g][k]), D_b = fp32(w.d) * fp32(a.d) (one float product). Min terms
 *    go to mins[g] = fmaf(M_b, S_b, mins[g]): Q4_1/Q5_1 M = fp32(w.m),
 *    S = fp32(a.s); Q4_K/Q5_K M = fp32(w.dmin) * a.d, S = (float) sum_c
 *    m_c * (bsum[2c] + bsum[2c+1]). Result = fold16(lane[0] ++ lane[1]) +
 *    (mins[0] + mins[1]) for Q4_1/Q5_1, minus it for Q4_K/Q5_K.
 *  - Q8_0 is an exception: ONE lane group (every block into lane[0]) and
 *    result = fold8(lane[0]). That is llama.cpp's own x86 Q8_0 x Q8_0 order
 *    (one 8-lane fmadd accumulator, then hsum_float_8, which is this fold),
 *    so our Q8_0 activations downstream get the reference's 8-bit codes.
 *  - Q4_0, Q4_1, Q5_0 and Q5_1 ("block-exact" types): per block, ONE exact
 *    int32 P_b = sum over the block's 32 elements of (q_e - offset) * a_e
 *    (|P_b| < 2^17, so (float)P_b is exact), and ONE fmaf into lane
 *    b % 8: lane[b % 8] = fmaf(D_b, (float)P_b, lane[b % 8]); the min term
 *    goes to one accumulator, mins = fmaf(M_b, S_b, mins), in block order.
 *    Result = fold8(lane) + mins (Q4_1/Q5_1) or fold8(lane). One float step
 *    per block and output (not 8) lets a SIMD path give a vector's lanes to
 *    8 outputs (8 activation rows in prefill) or to 8 consecutive blocks of
 *    one output (decode): 8x fewer conversions and fmadd's.
 * Nothing depends on which rows or how many activation rows one call
 * computes, so results are the same for any thread split or batch size. */
#ifndef ENGINE_KERNELS_IMPL_H
#define ENGINE_KERNELS_IMPL_H

#include "quant.h"

#include <stdint.h>
#include <string.h>

#define QK32     32
#define QK_K     256
#define F_LANES  32 /* float lanes of the F32/F16/BF16 dot */
#define Q_LANES  8  /* int32 partials per block */
#define Q_GROUPS 2  /* lane groups (block parity); Q8_0 uses one */

typedef struct {
    uint16_t d;
    uint8_t qs[16];
} block_q4_0;
typedef struct {
    uint16_t d, m;
    uint8_t qs[16];
} block_q4_1;
typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[16];
} block_q5_0;
typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[16];
} block_q5_1;
typedef struct {
    uint16_t d;
    int8_t qs[32];
} block_q8_0;
typedef struct {
    uint16_t d, s; /* s = d * sum(qs), as fp16 (GGML layout) */
    int8_t qs[32];
} block_q8_1;
typedef struct {
    uint8_t scales[16];
    uint8_t qs[64];
    uint16_t d, dmin;
} block_q2_K;
typedef struct {
    uint8_t hmask[32];
    uint8_t qs[64];
    uint8_t scales[12];
    uint16_t d;
} block_q3_K;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[128];
} block_q4_K;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
} block_q5_K;
typedef struct {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;
} block_q6_K;
typedef struct {
    float d;
    int8_t qs[256];
    int16_t bsums[16]; /* sum of qs per 16 elements */
} block_q8_K;

_Static_assert(sizeof(block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(block_q8_K) == 292, "q8_K layout");

/* 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block. */
static inline void kq_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* 1 for the block-exact legacy types (see above): one int32 per block. */
static inline int q_block_exact(uint32_t weight_type)
{
    return weight_type == TT_Q4_0 || weight_type == TT_Q4_1 || weight_type == TT_Q5_0 ||
           weight_type == TT_Q5_1;
}

/* Lane groups of a quantized type's canonical order (see above). */
static inline int q_groups(uint32_t weight_type)
{
    return weight_type == TT_Q8_0 ? 1 : Q_GROUPS;
}

/* Folds n (a power of two) lanes in place as the canonical halving tree and
 * returns lane 0. Every path uses this order (SIMD paths realise the same
 * additions with vector adds). */
static inline float lanes_fold(float *l, int n)
{
    for (int half = n / 2; half >= 1; half /= 2)
        for (int i = 0; i < half; i++)
            l[i] = l[i] + l[i + half];
    return l[0];
}

/* The reference activation quantizer (quant.c). Scalar and NEON use it; the
 * x86 sets have a vector twin that writes the same bytes (test_kernels
 * compares them, special values included), because at ~5% of a prefill it
 * was the largest cost outside the products. */
void kernels_quantize_activations_ref(uint32_t weight_type, const float *x, void *out, int64_t n);

/* The scalar dot of one weight row with one activation row, per the
 * canonical order; exposed so SIMD paths can use it for types they do not
 * specialise. Returns 0 for unsupported types. */
float kernels_dot_scalar(uint32_t weight_type, int64_t n, const void *w, const void *a);

/* The references of the attention helpers (kernels_scalar.c), which the
 * NEON set shares. */
void kernels_dot_f32_ref(const float *q, size_t q_stride, uint32_t nq, const float *b, uint32_t n,
                         float *out);
void kernels_axpy_rows_ref(float *y, const float *a, const float *x, uint32_t nt, uint32_t n);

extern const kernels kernels_scalar;
#if defined(__x86_64__)
extern const kernels kernels_avx2;
extern const kernels kernels_avx512;
#endif
#if defined(__aarch64__)
extern const kernels kernels_neon;
#endif

#endif
