/* Scalar reference kernels: the oracle every SIMD path must match bit for
 * bit. Written to spell out the canonical order of kernels_impl.h directly:
 * fmaf() wherever a SIMD path uses a fused multiply-add, plain float adds in
 * the fold, exact int32 arithmetic inside a block. */
#include "kernels_impl.h"

#include <math.h>

/* ------------------------------------------------------------ float weights */

static float load_weight(uint32_t type, const uint8_t *w, int64_t j)
{
    if (type == TT_F32) {
        float f;
        memcpy(&f, w + 4 * j, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, w + 2 * j, 2);
    return type == TT_F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
}

/* Element j into lane j % 32 with fmaf, then the 32-lane halving fold. */
static float dot_float(uint32_t type, int64_t n, const uint8_t *w, const float *x)
{
    float lane[F_LANES] = {0};
    for (int64_t j = 0; j < n; j++)
        lane[j % F_LANES] = fmaf(load_weight(type, w, j), x[j], lane[j % F_LANES]);
    return lanes_fold(lane, F_LANES);
}

/* ------------------------------------------------------- quantized weights */

/* Lane state of one quantized dot: groups of 8 lanes (block b goes to group
 * b % groups: two, or one for Q8_0) and one min/offset accumulator per
 * group. */
typedef struct {
    float lane[Q_GROUPS][Q_LANES];
    float mins[Q_GROUPS];
    int groups;
} qacc;

static void qacc_add(qacc *acc, int64_t block, float scale, const int32_t p[Q_LANES])
{
    float *l = acc->lane[block % acc->groups];
    for (int k = 0; k < Q_LANES; k++)
        l[k] = fmaf(scale, (float)p[k], l[k]);
}

static void qacc_add_min(qacc *acc, int64_t block, float a, float b)
{
    float *m = &acc->mins[block % acc->groups];
    *m = fmaf(a, b, *m);
}

/* Fold of the 8 * groups lanes (group 0 lanes 0..7, group 1 lanes 8..15),
 * then, with two groups, the min terms added (sign +1) or subtracted (sign
 * -1). */
static float qacc_result(qacc *acc, int min_sign)
{
    float l[Q_GROUPS * Q_LANES];
    memcpy(l, acc->lane, sizeof l);
    float r = lanes_fold(l, acc->groups * Q_LANES);
    if (acc->groups == 1)
        return r;
    float m = acc->mins[0] + acc->mins[1];
    return min_sign > 0 ? r + m : r - m;
}

/* p[k] = sum over e in [4k, 4k+4) of w[e] * a[e] for one 32-element chunk. */
static void partials32(const int *w, const int8_t *a, int32_t p[Q_LANES])
{
    for (int k = 0; k < Q_LANES; k++) {
        int32_t s = 0;
        for (int e = 4 * k; e < 4 * k + 4; e++)
            s += w[e] * a[e];
        p[k] = s;
    }
}

/* Unpacks the 32 integer weights of one legacy block (Q4_0/Q4_1/Q5_0/Q5_1/
 * Q8_0), offsets included, so the block value is d*q (+ m). */
static void unpack_legacy(uint32_t type, const uint8_t *blk, int q[32])
{
    switch (type) {
    case TT_Q4_0: {
        const block_q4_0 *b = (const block_q4_0 *)blk;
        for (int j = 0; j < 16; j++) {
            q[j] = (b->qs[j] & 0xF) - 8;
            q[j + 16] = (b->qs[j] >> 4) - 8;
        }
        break;
    }
    case TT_Q4_1: {
        const block_q4_1 *b = (const block_q4_1 *)blk;
        for (int j = 0; j < 16; j++) {
            q[j] = b->qs[j] & 0xF;
            q[j + 16] = b->qs[j] >> 4;
        }
        break;
    }
    case TT_Q5_0:
    case TT_Q5_1: {
        const uint8_t *qh =
            type == TT_Q5_0 ? ((const block_q5_0 *)blk)->qh : ((const block_q5_1 *)blk)->qh;
        const uint8_t *qs =
            type == TT_Q5_0 ? ((const block_q5_0 *)blk)->qs : ((const block_q5_1 *)blk)->qs;
        const int off = type == TT_Q5_0 ? 16 : 0;
        for (int j = 0; j < 16; j++) {
            q[j] = ((qs[j] & 0xF) | (((qh[j / 8] >> (j % 8)) & 1) << 4)) - off;
            q[j + 16] = ((qs[j] >> 4) | (((qh[2 + j / 8] >> (j % 8)) & 1) << 4)) - off;
        }
        break;
    }
    default: { /* TT_Q8_0 */
        const block_q8_0 *b = (const block_q8_0 *)blk;
        for (int j = 0; j < 32; j++)
            q[j] = b->qs[j];
        break;
    }
    }
}

static uint16_t blk_d(const uint8_t *blk)
{
    uint16_t h;
    memcpy(&h, blk, 2); /* d is the first field of every legacy block */
    return h;
}

static uint16_t blk_m(const uint8_t *blk)
{
    uint16_t h;
    memcpy(&h, blk + 2, 2); /* m follows d in Q4_1 / Q5_1 */
    return h;
}

/* Exact int32 dot of one legacy block: q includes the type's offset. */
static int32_t block_dot32(const int q[32], const int8_t *a)
{
    int32_t p[Q_LANES], sum = 0;
    partials32(q, a, p);
    for (int k = 0; k < Q_LANES; k++)
        sum += p[k];
    return sum;
}

/* Q8_0 against Q8_0 activations: 8 lanes, one lane group. */
static float dot_q8_0(int64_t n, const uint8_t *w, const uint8_t *a)
{
    qacc acc = {.groups = q_groups(TT_Q8_0)};
    for (int64_t b = 0; b < n / QK32; b++, w += sizeof(block_q8_0), a += sizeof(block_q8_0)) {
        int q[32];
        int32_t p[Q_LANES];
        unpack_legacy(TT_Q8_0, w, q);
        partials32(q, ((const block_q8_0 *)a)->qs, p);
        qacc_add(&acc, b, fp16_to_fp32(blk_d(w)) * fp16_to_fp32(blk_d(a)), p);
    }
    return qacc_result(&acc, +1);
}

/* The block-exact types (Q4_0/Q4_1/Q5_0/Q5_1) against Q8_0 / Q8_1
 * activations: one exact integer and one fmaf per block, block b into lane
 * b % 8. */
static float dot_block_exact(uint32_t type, int64_t n, const uint8_t *w, const uint8_t *a)
{
    const size_t wb = tensor_type_get(type)->bytes;
    const int with_min = type == TT_Q4_1 || type == TT_Q5_1;
    const size_t ab = with_min ? sizeof(block_q8_1) : sizeof(block_q8_0);
    float lane[Q_LANES] = {0}, mins = 0.0f;
    for (int64_t b = 0; b < n / QK32; b++, w += wb, a += ab) {
        int q[32];
        const int8_t *aq = with_min ? ((const block_q8_1 *)a)->qs : ((const block_q8_0 *)a)->qs;
        unpack_legacy(type, w, q);
        const int32_t p = block_dot32(q, aq);
        float *l = &lane[b % Q_LANES];
        *l = fmaf(fp16_to_fp32(blk_d(w)) * fp16_to_fp32(blk_d(a)), (float)p, *l);
        if (with_min)
            mins = fmaf(fp16_to_fp32(blk_m(w)), fp16_to_fp32(blk_m(a)), mins);
    }
    const float r = lanes_fold(lane, Q_LANES);
    return with_min ? r + mins : r;
}

/* The 256 integer weights of a k-quant super-block (Q6_K offset included),
 * and the per-element scale sc[e / 32] for Q4_K/Q5_K or sc[e / 16] for
 * Q6_K, expanded to one scale per element. */
static void unpack_kquant(uint32_t type, const uint8_t *blk, int q[256], int sc[256], int mins[8])
{
    if (type == TT_Q6_K) {
        const block_q6_K *b = (const block_q6_K *)blk;
        for (int c = 0; c < 8; c++) {
            const int h = c / 4, sub = c % 4;
            const uint8_t *ql = b->ql + 64 * h + (sub & 1) * 32, *qh = b->qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                int lo = sub >= 2 ? ql[l] >> 4 : ql[l] & 0xF;
                q[32 * c + l] = (lo | (((qh[l] >> (2 * sub)) & 3) << 4)) - 32;
                sc[32 * c + l] = b->scales[(32 * c + l) / 16];
            }
        }
        return;
    }
    const uint8_t *scales =
        type == TT_Q4_K ? ((const block_q4_K *)blk)->scales : ((const block_q5_K *)blk)->scales;
    const uint8_t *qs =
        type == TT_Q4_K ? ((const block_q4_K *)blk)->qs : ((const block_q5_K *)blk)->qs;
    for (int c = 0; c < 8; c++) {
        uint8_t s, m;
        kq_scale_min(c, scales, &s, &m);
        mins[c] = m;
        for (int l = 0; l < 32; l++) {
            const uint8_t byte = qs[32 * (c / 2) + l];
            int v = c % 2 ? byte >> 4 : byte & 0xF;
            if (type == TT_Q5_K)
                v |= ((((const block_q5_K *)blk)->qh[l] >> c) & 1) << 4;
            q[32 * c + l] = v;
            sc[32 * c + l] = s;
        }
    }
}

/* k-quants against Q8_K: partial k sums scale * q * a over the elements
 * 4k..4k+3 of all 8 chunks; mins use the activation's per-16 sums. */
static float dot_kquant(uint32_t type, int64_t n, const uint8_t *w, const uint8_t *a)
{
    const size_t wb = tensor_type_get(type)->bytes;
    qacc acc = {.groups = q_groups(type)};
    for (int64_t b = 0; b < n / QK_K; b++, w += wb, a += sizeof(block_q8_K)) {
        const block_q8_K *y = (const block_q8_K *)a;
        int q[256], sc[256], mins[8];
        int32_t p[Q_LANES] = {0};
        unpack_kquant(type, w, q, sc, mins);
        for (int c = 0; c < 8; c++)
            for (int k = 0; k < Q_LANES; k++)
                for (int e = 32 * c + 4 * k; e < 32 * c + 4 * k + 4; e++)
                    p[k] += sc[e] * q[e] * y->qs[e];
        if (type == TT_Q6_K) {
            const float d = fp16_to_fp32(((const block_q6_K *)w)->d) * y->d;
            qacc_add(&acc, b, d, p);
            continue;
        }
        uint16_t d16, dmin16;
        memcpy(&d16, w, 2); /* Q4_K and Q5_K start with d, dmin */
        memcpy(&dmin16, w + 2, 2);
        int32_t summs = 0;
        for (int c = 0; c < 8; c++)
            summs += mins[c] * (y->bsums[2 * c] + y->bsums[2 * c + 1]);
        qacc_add(&acc, b, fp16_to_fp32(d16) * y->d, p);
        qacc_add_min(&acc, b, fp16_to_fp32(dmin16) * y->d, (float)summs);
    }
    return qacc_result(&acc, type == TT_Q6_K ? +1 : -1);
}

float kernels_dot_scalar(uint32_t weight_type, int64_t n, const void *w, const void *a)
{
    switch (weight_type) {
    case TT_F32:
    case TT_F16:
    case TT_BF16:
        return dot_float(weight_type, n, w, a);
    case TT_Q4_0:
    case TT_Q4_1:
    case TT_Q5_0:
    case TT_Q5_1:
        return dot_block_exact(weight_type, n, w, a);
    case TT_Q8_0:
        return dot_q8_0(n, w, a);
    case TT_Q4_K:
    case TT_Q5_K:
    case TT_Q6_K:
        return dot_kquant(weight_type, n, w, a);
    default:
        return 0.0f;
    }
}

static void mul_mat_scalar(uint32_t weight_type, int64_t n, const void *w, size_t w_stride,
                           const void *a, size_t a_stride, int64_t nb, float *y, size_t y_stride,
                           int64_t r0, int64_t r1)
{
    const uint8_t *wp = w, *ap = a;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t b = 0; b < nb; b++)
            y[(size_t)b * y_stride + (size_t)r] = kernels_dot_scalar(
                weight_type, n, wp + (size_t)r * w_stride, ap + (size_t)b * a_stride);
}

/* ---- attention helpers --------------------------------------------------- */

/* Four-float vectors (GNU C; SSE2/NEON registers): each lane is its own
 * sum, so the order of every float operation is fixed by this code, not by
 * the compiler or the CPU. */
typedef float v4f __attribute__((vector_size(16)));

static v4f load4(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

typedef uint32_t v4u __attribute__((vector_size(16)));

/* Four F16 values as F32, exactly: the magnitude bits shifted into place are
 * a float 2^112 too small (for subnormal halves too), so one exact multiply
 * rebases the exponent; infinities and NaNs get the all-ones exponent. */
typedef uint16_t v4h __attribute__((vector_size(8)));

static v4f f16x4(const uint16_t *h)
{
    v4h hv;
    memcpy(&hv, h, sizeof hv); /* one 8-byte load, widened in registers */
    v4u x = __builtin_convertvector(hv, v4u), u, mag = (x & 0x7fffu) << 13;
    v4f f;
    memcpy(&f, &mag, sizeof f);
    f *= 0x1p112f;
    memcpy(&u, &f, sizeof u);
    u |= (v4u)((x & 0x7c00u) == 0x7c00u) & 0x7f800000u;
    /* NaNs come out quiet, as F16C's conversion makes them */
    u |= (v4u)(((x & 0x7c00u) == 0x7c00u) & ((x & 0x3ffu) != 0)) & 0x00400000u;
    u |= (x & 0x8000u) << 16;
    memcpy(&f, &u, sizeof f);
    return f;
}

void f16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f f = f16x4(src + i);
        memcpy(dst + i, &f, sizeof f);
    }
    if (i < n) { /* the last 1-3 halves, by the same conversion */
        uint16_t h[4] = {0, 0, 0, 0};
        memcpy(h, src + i, (n - i) * sizeof *h);
        v4f f = f16x4(h);
        memcpy(dst + i, &f, (n - i) * sizeof *dst);
    }
}

/* Dot product in one fixed order: element i goes to partial sum i % 8 (two
 * 4-lane vectors), and the eight sums are folded as lanes_fold. */
static float dot_lanes8(const float *a, const float *b, uint32_t n)
{
    v4f lo = {0, 0, 0, 0}, hi = {0, 0, 0, 0};
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        lo += load4(a + i) * load4(b + i);
        hi += load4(a + i + 4) * load4(b + i + 4);
    }
    float acc[8] = {lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]};
    for (; i < n; i++)
        acc[i % 8] += a[i] * b[i];
    return lanes_fold(acc, 8);
}

void kernels_dot_f32_ref(const float *q, size_t q_stride, uint32_t nq, const float *b, uint32_t n,
                         float *out)
{
    for (uint32_t g = 0; g < nq; g++)
        out[g] = dot_lanes8(q + g * q_stride, b, n);
}

/* y += a[t] * x[t] for t = 0..nt-1 (x: nt rows of n floats), element by
 * element in t order (y[i] = y[i] + a[t] * x[t][i], two roundings, as every
 * path computes it), with 32 outputs at a time held in registers across the
 * rows instead of stored after each one. */
void kernels_axpy_rows_ref(float *y, const float *a, const float *x, uint32_t nt, uint32_t n)
{
    uint32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        v4f acc[8];
        for (int k = 0; k < 8; k++)
            acc[k] = load4(y + i + 4 * k);
        for (uint32_t t = 0; t < nt; t++) {
            const v4f av = {a[t], a[t], a[t], a[t]};
            const float *xt = x + (size_t)t * n + i;
            for (int k = 0; k < 8; k++)
                acc[k] = acc[k] + av * load4(xt + 4 * k);
        }
        for (int k = 0; k < 8; k++)
            memcpy(y + i + 4 * k, &acc[k], sizeof acc[k]);
    }
    for (; i < n; i++)
        for (uint32_t t = 0; t < nt; t++)
            y[i] += a[t] * x[(size_t)t * n + i];
}

const kernels kernels_scalar = {"scalar",
                                kernels_quantize_activations_ref,
                                mul_mat_scalar,
                                f16_to_f32_row,
                                kernels_dot_f32_ref,
                                kernels_axpy_rows_ref};
