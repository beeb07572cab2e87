/* AArch64 Advanced SIMD (NEON) kernels: baseline ARMv8.0 instructions only
 * (no dot-product extension), one weight row by one activation row. Simpler
 * than the x86 paths but the same canonical order (kernels_impl.h):
 * int8 x int8 products widen to int16 (|w| <= 128, |a| <= 127: no
 * overflow), pairwise adds give the exact int32 partial of elements
 * 4k..4k+3, and vfmaq_f32 (fused, like fmaf) accumulates them into the
 * lane group of the block's parity (one group for Q8_0); lanes_fold()
 * finishes. Weight unpacking
 * into int8 is plain C. Compiled only for aarch64 (engine/CMakeLists.txt);
 * scripts/cross-check-neon builds and runs it under emulation. */
#include "kernels_impl.h"

#include <arm_neon.h>
#include <math.h>

/* Partials of 32 int8 products: lanes 0..3 in *lo, lanes 4..7 in *hi. */
static inline void neon_partials32(const int8_t *w, const int8_t *a, int32x4_t *lo, int32x4_t *hi)
{
    const int8x16_t w0 = vld1q_s8(w), w1 = vld1q_s8(w + 16);
    const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
    const int32x4_t s0 = vpaddlq_s16(vmull_s8(vget_low_s8(w0), vget_low_s8(a0)));
    const int32x4_t s1 = vpaddlq_s16(vmull_high_s8(w0, a0));
    const int32x4_t s2 = vpaddlq_s16(vmull_s8(vget_low_s8(w1), vget_low_s8(a1)));
    const int32x4_t s3 = vpaddlq_s16(vmull_high_s8(w1, a1));
    *lo = vpaddq_s32(s0, s1);
    *hi = vpaddq_s32(s2, s3);
}

/* Lane groups of 8 (as 2 x float32x4 each; two groups, one for Q8_0) plus
 * min accumulators. */
typedef struct {
    float32x4_t lo[Q_GROUPS], hi[Q_GROUPS];
    float mins[Q_GROUPS];
    int groups;
} neon_acc;

static inline void neon_acc_add(neon_acc *acc, int64_t b, float scale, int32x4_t lo, int32x4_t hi)
{
    const int g = (int)(b % acc->groups);
    const float32x4_t s = vdupq_n_f32(scale);
    acc->lo[g] = vfmaq_f32(acc->lo[g], vcvtq_f32_s32(lo), s);
    acc->hi[g] = vfmaq_f32(acc->hi[g], vcvtq_f32_s32(hi), s);
}

static inline float neon_acc_result(const neon_acc *acc, int min_sign)
{
    float l[Q_GROUPS * Q_LANES];
    for (int g = 0; g < Q_GROUPS; g++) {
        vst1q_f32(l + Q_LANES * g, acc->lo[g]);
        vst1q_f32(l + Q_LANES * g + 4, acc->hi[g]);
    }
    const float r = lanes_fold(l, acc->groups * Q_LANES);
    if (acc->groups == 1)
        return r;
    const float m = acc->mins[0] + acc->mins[1];
    return min_sign > 0 ? r + m : r - m;
}

static inline void neon_acc_init(neon_acc *acc, uint32_t type)
{
    acc->groups = q_groups(type);
    for (int g = 0; g < Q_GROUPS; g++) {
        acc->lo[g] = acc->hi[g] = vdupq_n_f32(0.0f);
        acc->mins[g] = 0.0f;
    }
}

static float h2f(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return fp16_to_fp32(h);
}

/* ------------------------------------------------------------ float types */

static float neon_dot_float(uint32_t type, int64_t n, const uint8_t *w, const float *x)
{
    float32x4_t acc[8];
    for (int i = 0; i < 8; i++)
        acc[i] = vdupq_n_f32(0.0f);
    const int64_t nmain = n - n % F_LANES;
    for (int64_t j = 0; j < nmain; j += F_LANES) {
        for (int i = 0; i < 8; i++) {
            const int64_t e = j + 4 * i;
            float32x4_t wv;
            if (type == TT_F32) {
                float tmp[4];
                memcpy(tmp, w + 4 * e, sizeof tmp);
                wv = vld1q_f32(tmp);
            } else if (type == TT_F16) {
                uint16_t tmp[4];
                memcpy(tmp, w + 2 * e, sizeof tmp);
                wv = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(tmp)));
            } else {
                uint16_t tmp[4];
                memcpy(tmp, w + 2 * e, sizeof tmp);
                wv = vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(tmp), 16));
            }
            acc[i] = vfmaq_f32(acc[i], wv, vld1q_f32(x + e));
        }
    }
    float lane[F_LANES];
    for (int i = 0; i < 8; i++)
        vst1q_f32(lane + 4 * i, acc[i]);
    for (int64_t j = nmain; j < n; j++) {
        float wj;
        if (type == TT_F32) {
            memcpy(&wj, w + 4 * j, 4);
        } else {
            uint16_t h;
            memcpy(&h, w + 2 * j, 2);
            wj = type == TT_F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
        }
        lane[j % F_LANES] = fmaf(wj, x[j], lane[j % F_LANES]);
    }
    return lanes_fold(lane, F_LANES);
}

/* ------------------------------------------------------ legacy block types */

/* 32 integer weights of one legacy block, offsets applied (all fit int8). */
static void neon_unpack_legacy(uint32_t type, const uint8_t *blk, int8_t q[32])
{
    if (type == TT_Q8_0) {
        memcpy(q, ((const block_q8_0 *)blk)->qs, 32);
        return;
    }
    const uint8_t *qs = type == TT_Q4_0   ? ((const block_q4_0 *)blk)->qs
                        : type == TT_Q4_1 ? ((const block_q4_1 *)blk)->qs
                        : type == TT_Q5_0 ? ((const block_q5_0 *)blk)->qs
                                          : ((const block_q5_1 *)blk)->qs;
    const uint8x16_t x = vld1q_u8(qs);
    uint8x16_t lo = vandq_u8(x, vdupq_n_u8(0x0F)), hi = vshrq_n_u8(x, 4);
    if (type == TT_Q5_0 || type == TT_Q5_1) {
        const uint8_t *qhp =
            type == TT_Q5_0 ? ((const block_q5_0 *)blk)->qh : ((const block_q5_1 *)blk)->qh;
        uint8_t hb[32];
        for (int j = 0; j < 32; j++)
            hb[j] = (uint8_t)(((qhp[j / 8] >> (j % 8)) & 1) << 4);
        lo = vorrq_u8(lo, vld1q_u8(hb));
        hi = vorrq_u8(hi, vld1q_u8(hb + 16));
    }
    int8x16_t slo = vreinterpretq_s8_u8(lo), shi = vreinterpretq_s8_u8(hi);
    if (type == TT_Q4_0 || type == TT_Q5_0) {
        const int8x16_t off = vdupq_n_s8(type == TT_Q4_0 ? 8 : 16);
        slo = vsubq_s8(slo, off);
        shi = vsubq_s8(shi, off);
    }
    vst1q_s8(q, slo);
    vst1q_s8(q + 16, shi);
}

/* The block-exact types (kernels_impl.h): one exact int32 per block (the
 * partials summed), then one fmaf per block into lane b % 8, as the scalar
 * reference. */
static float neon_dot_block_exact(uint32_t type, int64_t n, const uint8_t *w, const uint8_t *a)
{
    const size_t wb = tensor_type_get(type)->bytes;
    const int with_min = type == TT_Q4_1 || type == TT_Q5_1;
    const size_t ab = with_min ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const size_t aq_off = with_min ? 4 : 2;
    float lane[Q_LANES] = {0}, mins = 0.0f;
    for (int64_t b = 0; b < n / QK32; b++, w += wb, a += ab) {
        int8_t q[32];
        int32x4_t lo, hi;
        neon_unpack_legacy(type, w, q);
        neon_partials32(q, (const int8_t *)(a + aq_off), &lo, &hi);
        const int32_t p = vaddvq_s32(vaddq_s32(lo, hi));
        float *l = &lane[b % Q_LANES];
        *l = fmaf(h2f(w) * h2f(a), (float)p, *l);
        if (with_min)
            mins = fmaf(h2f(w + 2), h2f(a + 2), mins);
    }
    const float r = lanes_fold(lane, Q_LANES);
    return with_min ? r + mins : r;
}

static float neon_dot_legacy(uint32_t type, int64_t n, const uint8_t *w, const uint8_t *a)
{
    if (q_block_exact(type))
        return neon_dot_block_exact(type, n, w, a);
    const size_t wb = tensor_type_get(type)->bytes;
    const int with_min = type == TT_Q4_1 || type == TT_Q5_1;
    const size_t ab = with_min ? sizeof(block_q8_1) : sizeof(block_q8_0);
    const size_t aq_off = with_min ? 4 : 2;
    neon_acc acc;
    neon_acc_init(&acc, type);
    for (int64_t b = 0; b < n / QK32; b++, w += wb, a += ab) {
        int8_t q[32];
        int32x4_t lo, hi;
        neon_unpack_legacy(type, w, q);
        neon_partials32(q, (const int8_t *)(a + aq_off), &lo, &hi);
        neon_acc_add(&acc, b, h2f(w) * h2f(a), lo, hi);
        if (with_min)
            acc.mins[b % acc.groups] = fmaf(h2f(w + 2), h2f(a + 2), acc.mins[b % acc.groups]);
    }
    return neon_acc_result(&acc, +1);
}

/* ---------------------------------------------------------------- k-quants */

static float neon_dot_kquant(uint32_t type, int64_t n, const uint8_t *w, const uint8_t *a)
{
    const size_t wb = tensor_type_get(type)->bytes;
    neon_acc acc;
    neon_acc_init(&acc, type);
    for (int64_t b = 0; b < n / QK_K; b++, w += wb, a += sizeof(block_q8_K)) {
        const block_q8_K *y = (const block_q8_K *)a;
        int8_t q[256];
        int32_t sc_lo[8], sc_hi[8], mins[8] = {0};
        if (type == TT_Q6_K) {
            const block_q6_K *x = (const block_q6_K *)w;
            for (int c = 0; c < 8; c++) {
                const int h = c / 4, sub = c % 4;
                const uint8_t *ql = x->ql + 64 * h + (sub & 1) * 32, *qh = x->qh + 32 * h;
                for (int l = 0; l < 32; l++) {
                    const int low = sub >= 2 ? ql[l] >> 4 : ql[l] & 0xF;
                    q[32 * c + l] = (int8_t)((low | (((qh[l] >> (2 * sub)) & 3) << 4)) - 32);
                }
                sc_lo[c] = x->scales[2 * c];
                sc_hi[c] = x->scales[2 * c + 1];
            }
        } else {
            const uint8_t *scales = w + 4;
            const uint8_t *qs =
                type == TT_Q4_K ? ((const block_q4_K *)w)->qs : ((const block_q5_K *)w)->qs;
            for (int c = 0; c < 8; c++) {
                uint8_t s, m;
                kq_scale_min(c, scales, &s, &m);
                sc_lo[c] = sc_hi[c] = s;
                mins[c] = m;
                for (int l = 0; l < 32; l++) {
                    const uint8_t byte = qs[32 * (c / 2) + l];
                    int v = c % 2 ? byte >> 4 : byte & 0xF;
                    if (type == TT_Q5_K)
                        v |= ((((const block_q5_K *)w)->qh[l] >> c) & 1) << 4;
                    q[32 * c + l] = (int8_t)v;
                }
            }
        }
        int32x4_t plo = vdupq_n_s32(0), phi = vdupq_n_s32(0);
        for (int c = 0; c < 8; c++) {
            int32x4_t lo, hi;
            neon_partials32(q + 32 * c, y->qs + 32 * c, &lo, &hi);
            plo = vmlaq_n_s32(plo, lo, sc_lo[c]);
            phi = vmlaq_n_s32(phi, hi, sc_hi[c]);
        }
        if (type == TT_Q6_K) {
            neon_acc_add(&acc, b, h2f(w + 208) * y->d, plo, phi);
            continue;
        }
        int32_t summs = 0;
        for (int c = 0; c < 8; c++)
            summs += mins[c] * (y->bsums[2 * c] + y->bsums[2 * c + 1]);
        neon_acc_add(&acc, b, h2f(w) * y->d, plo, phi);
        acc.mins[b % acc.groups] = fmaf(h2f(w + 2) * y->d, (float)summs, acc.mins[b % acc.groups]);
    }
    return neon_acc_result(&acc, type == TT_Q6_K ? +1 : -1);
}

static float neon_dot(uint32_t type, int64_t n, const uint8_t *w, const uint8_t *a)
{
    switch (type) {
    case TT_F32:
    case TT_F16:
    case TT_BF16:
        return neon_dot_float(type, n, w, (const float *)(const void *)a);
    case TT_Q4_0:
    case TT_Q4_1:
    case TT_Q5_0:
    case TT_Q5_1:
    case TT_Q8_0:
        return neon_dot_legacy(type, n, w, a);
    case TT_Q4_K:
    case TT_Q5_K:
    case TT_Q6_K:
        return neon_dot_kquant(type, n, w, a);
    default:
        return kernels_dot_scalar(type, n, w, a);
    }
}

static void neon_mul_mat(uint32_t weight_type, int64_t n, const void *w, size_t w_stride,
                         const void *a, size_t a_stride, int64_t nb, float *y, size_t y_stride,
                         int64_t r0, int64_t r1)
{
    const uint8_t *wp = w, *ap = a;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t b = 0; b < nb; b++)
            y[(size_t)b * y_stride + (size_t)r] =
                neon_dot(weight_type, n, wp + (size_t)r * w_stride, ap + (size_t)b * a_stride);
}

const kernels kernels_neon = {"neon",
                              kernels_quantize_activations_ref,
                              neon_mul_mat,
                              f16_to_f32_row,
                              kernels_dot_f32_ref,
                              kernels_axpy_rows_ref};
