/* Tensor types, fp16/bf16 conversion, reference (de)quantization and the
 * activation formats.
 *
 * Block layouts are GGML's, byte for byte, because GGUF files store them
 * that way. Dequantization evaluates the same float expressions in the same
 * order as llama.cpp's reference (ggml-quants.c, compiled without FP
 * contraction), so dequantized values are identical to what it computes.
 *
 * Activation formats are GGML's too: Q8_0 (for Q4_0, Q5_0, Q8_0 weights),
 * Q8_1 (for Q4_1, Q5_1: carries s = d * sum(qs) for the min term), Q8_K (for
 * the k-quants: float d and per-16 sums), F32 for float weights. The 8-bit
 * codes are the ones llama.cpp's x86 build writes (round half to even; see
 * quant_q8_0 and quant_q8_K); this is the reference every kernel set's
 * quantizer writes byte for byte (the x86 ones in vectors).
 *
 * Exactness across kernel paths: every supported weight type is computed
 * bit-identically by every path (canonical order in kernels_impl.h); no type
 * is documented as inexact. Quantized dot products are NOT bit-identical to
 * llama.cpp's (it uses other lane orders), only close within float rounding. */
#include "kernels_impl.h"
#include "quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

static const tensor_type_info TYPE_TABLE[TT_COUNT] = {
    [TT_F32] = {"f32", 1, 4, 1},       [TT_F16] = {"f16", 1, 2, 1},
    [TT_Q4_0] = {"q4_0", 32, 18, 1},   [TT_Q4_1] = {"q4_1", 32, 20, 1},
    [TT_Q5_0] = {"q5_0", 32, 22, 1},   [TT_Q5_1] = {"q5_1", 32, 24, 1},
    [TT_Q8_0] = {"q8_0", 32, 34, 1},   [TT_Q8_1] = {"q8_1", 32, 36, 0},
    [TT_Q2_K] = {"q2_K", 256, 84, 0},  [TT_Q3_K] = {"q3_K", 256, 110, 0},
    [TT_Q4_K] = {"q4_K", 256, 144, 1}, [TT_Q5_K] = {"q5_K", 256, 176, 1},
    [TT_Q6_K] = {"q6_K", 256, 210, 1}, [TT_Q8_K] = {"q8_K", 256, 292, 0},
    [TT_BF16] = {"bf16", 1, 2, 1},
};

const tensor_type_info *tensor_type_get(uint32_t type)
{
    if (type >= TT_COUNT || TYPE_TABLE[type].name == NULL)
        return NULL;
    return &TYPE_TABLE[type];
}

int tensor_row_bytes(uint32_t type, uint64_t n, uint64_t *bytes)
{
    const tensor_type_info *t = tensor_type_get(type);
    if (!t || n % t->block != 0)
        return -1;
    uint64_t blocks = n / t->block;
    if (blocks > UINT64_MAX / t->bytes)
        return -1;
    *bytes = blocks * t->bytes;
    return 0;
}

/* ---------------------------------------------------------------- fp16/bf16 */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) /* inf or NaN: keep the payload */
        return bits_f32(sign | 0x7f800000u | (mant << 13));
    if (exp != 0)
        return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
    if (mant == 0)
        return bits_f32(sign);
    /* Subnormal half: renormalise into a normal float (exact). */
    uint32_t e = 113;
    while (!(mant & 0x400)) {
        mant <<= 1;
        e--;
    }
    return bits_f32(sign | (e << 23) | ((mant & 0x3ff) << 13));
}

uint16_t fp32_to_fp16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: stays a quiet NaN */
        return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
    if (a >= 0x477ff000u) /* >= 65520 rounds to infinity */
        return (uint16_t)(sign | 0x7c00);
    if (a < 0x38800000u) {
        /* Below the smallest normal half: the result is round(|f| * 2^24)
         * units of 2^-24; scaling by a power of two is exact and rintf
         * rounds half to even. 1024 correctly becomes the smallest normal. */
        float scaled = bits_f32(a) * 16777216.0f;
        return (uint16_t)(sign | (uint16_t)rintf(scaled));
    }
    uint32_t t = a - 0x38000000u; /* rebias exponent 127 -> 15 */
    t += 0x0fffu + ((t >> 13) & 1u);
    return (uint16_t)(sign | (t >> 13));
}

float bf16_to_fp32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

uint16_t fp32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: force quiet */
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* ----------------------------------------------------------- dequantization */

static void dequant_q4_0(const block_q4_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += 32) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = ((x[i].qs[j] & 0xF) - 8) * d;
            y[j + 16] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequant_q4_1(const block_q4_1 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += 32) {
        const float d = fp16_to_fp32(x[i].d), m = fp16_to_fp32(x[i].m);
        for (int j = 0; j < 16; j++) {
            y[j] = (x[i].qs[j] & 0xF) * d + m;
            y[j + 16] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

static uint32_t load_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void dequant_q5_0(const block_q5_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += 32) {
        const float d = fp16_to_fp32(x[i].d);
        const uint32_t qh = load_u32le(x[i].qh);
        for (int j = 0; j < 16; j++) {
            int x0 = (int)((x[i].qs[j] & 0xF) | (((qh >> j) & 1u) << 4)) - 16;
            int x1 = (int)((x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
            y[j] = x0 * d;
            y[j + 16] = x1 * d;
        }
    }
}

static void dequant_q5_1(const block_q5_1 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += 32) {
        const float d = fp16_to_fp32(x[i].d), m = fp16_to_fp32(x[i].m);
        const uint32_t qh = load_u32le(x[i].qh);
        for (int j = 0; j < 16; j++) {
            int x0 = (int)((x[i].qs[j] & 0xF) | (((qh >> j) & 1u) << 4));
            int x1 = (int)((x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
            y[j] = x0 * d + m;
            y[j + 16] = x1 * d + m;
        }
    }
}

static void dequant_q8_0(const block_q8_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += 32) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < 32; j++)
            y[j] = x[i].qs[j] * d;
    }
}

static void dequant_q8_1(const block_q8_1 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += 32) {
        const float d = fp16_to_fp32(x[i].d);
        for (int j = 0; j < 32; j++)
            y[j] = x[i].qs[j] * d;
    }
}

static void dequant_q4_K(const block_q4_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(x[i].d), dmin = fp16_to_fp32(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int is = 0; is < 8; is += 2, q += 32) {
            uint8_t sc, m;
            kq_scale_min(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            kq_scale_min(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

static void dequant_q5_K(const block_q5_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(x[i].d), dmin = fp16_to_fp32(x[i].dmin);
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            kq_scale_min(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            kq_scale_min(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

static void dequant_q6_K(const block_q6_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < 2; n++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}

static void dequant_q8_K(const block_q8_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += 256)
        for (int j = 0; j < 256; j++)
            y[j] = x[i].d * x[i].qs[j];
}

int dequantize_row(uint32_t type, const void *src, float *dst, int64_t n)
{
    const tensor_type_info *t = tensor_type_get(type);
    if (!t || n < 0 || n % t->block != 0)
        return -1;
    int64_t nb = n / t->block;
    switch (type) {
    case TT_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return 0;
    case TT_F16:
    case TT_BF16: {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = type == TT_F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
        }
        return 0;
    }
    case TT_Q4_0:
        dequant_q4_0(src, dst, nb);
        return 0;
    case TT_Q4_1:
        dequant_q4_1(src, dst, nb);
        return 0;
    case TT_Q5_0:
        dequant_q5_0(src, dst, nb);
        return 0;
    case TT_Q5_1:
        dequant_q5_1(src, dst, nb);
        return 0;
    case TT_Q8_0:
        dequant_q8_0(src, dst, nb);
        return 0;
    case TT_Q8_1:
        dequant_q8_1(src, dst, nb);
        return 0;
    case TT_Q4_K:
        dequant_q4_K(src, dst, nb);
        return 0;
    case TT_Q5_K:
        dequant_q5_K(src, dst, nb);
        return 0;
    case TT_Q6_K:
        dequant_q6_K(src, dst, nb);
        return 0;
    case TT_Q8_K:
        dequant_q8_K(src, dst, nb);
        return 0;
    default:
        return -1; /* Q2_K, Q3_K: known layouts, no dequantizer */
    }
}

/* ------------------------------------------------------------- quantization */

/* rintf(v) clamped to [lo, hi]; NaN maps to lo (never an undefined cast). */
static int round_clamp(float v, int lo, int hi)
{
    float r = rintf(v);
    if (!(r >= (float)lo))
        return lo;
    if (r > (float)hi)
        return hi;
    return (int)r;
}

/* floorf(v) clamped to [lo, hi], NaN to lo: GGML's truncating rounding of
 * x*id + 8.5 for the legacy 4/5-bit types. */
static int floor_clamp(float v, int lo, int hi)
{
    float r = floorf(v);
    if (!(r >= (float)lo))
        return lo;
    if (r > (float)hi)
        return hi;
    return (int)r;
}

static float abs_max(const float *x, int n)
{
    float amax = 0.0f;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax)
            amax = fabsf(x[j]);
    return amax;
}

/* The element of largest magnitude, with its sign (first one on ties). */
static float signed_max(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void min_max(const float *x, int n, float *mn, float *mx)
{
    *mn = FLT_MAX;
    *mx = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < *mn)
            *mn = x[j];
        if (x[j] > *mx)
            *mx = x[j];
    }
}

/* 8-bit codes q = rint(x * iscale) clamped to [-127, 127]; returns sum(q).
 * For finite input the clamp never binds except where llama.cpp's own
 * MIN(127, v) does (Q8_K). */
static int quant8_codes(const float *x, int n, float iscale, int8_t *qs)
{
    int sum = 0;
    for (int j = 0; j < n; j++) {
        qs[j] = (int8_t)round_clamp(x[j] * iscale, -127, 127);
        sum += qs[j];
    }
    return sum;
}

/* Q8_0 / Q8_1 as llama.cpp's x86 build writes activations
 * (quantize_row_q8_0/q8_1, AVX2): d = amax/127, codes rint(x * (127/amax))
 * with ties to even. Same codes means our logits can match its to float
 * rounding rather than to quantization noise. */
static void quant_q8_0(const float *x, block_q8_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 32) {
        const float amax = abs_max(x, 32);
        y[i].d = fp32_to_fp16(amax / 127.0f);
        quant8_codes(x, 32, amax != 0.0f ? 127.0f / amax : 0.0f, y[i].qs);
    }
}

static void quant_q8_1(const float *x, block_q8_1 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 32) {
        const float amax = abs_max(x, 32), d = amax / 127.0f;
        const int sum = quant8_codes(x, 32, amax != 0.0f ? 127.0f / amax : 0.0f, y[i].qs);
        y[i].d = fp32_to_fp16(d);
        y[i].s = fp32_to_fp16(d * (float)sum);
    }
}

/* Q8_K as llama.cpp's quantize_row_q8_K_ref: the element of largest
 * magnitude (first on ties), with its sign, sets iscale = -127/max; codes
 * min(127, rint(iscale * x)); d = 1/iscale (negative when max > 0); per-16
 * code sums. An all-zero block stays zero with d = 0. */
static void quant_q8_K(const float *x, block_q8_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 256) {
        const float max = signed_max(x, 256);
        const float iscale = max != 0.0f ? -127.0f / max : 0.0f;
        y[i].d = iscale != 0.0f ? 1.0f / iscale : 0.0f;
        quant8_codes(x, 256, iscale, y[i].qs);
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += y[i].qs[16 * g + j];
            y[i].bsums[g] = (int16_t)s;
        }
    }
}

static void quant_q4_0(const float *x, block_q4_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 32) {
        const float d = signed_max(x, 32) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        for (int j = 0; j < 16; j++) {
            int q0 = floor_clamp(x[j] * id + 8.5f, 0, 15);
            int q1 = floor_clamp(x[j + 16] * id + 8.5f, 0, 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void quant_q4_1(const float *x, block_q4_1 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float mn, mx;
        min_max(x, 32, &mn, &mx);
        const float d = (mx - mn) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = fp32_to_fp16(d);
        y[i].m = fp32_to_fp16(mn);
        for (int j = 0; j < 16; j++) {
            int q0 = floor_clamp((x[j] - mn) * id + 0.5f, 0, 15);
            int q1 = floor_clamp((x[j + 16] - mn) * id + 0.5f, 0, 15);
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Packs 32 five-bit values into GGML's nibbles + high-bit word. */
static void pack5(const int *q, uint8_t qs[16], uint8_t qh[4])
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
        h |= (uint32_t)((q[j] >> 4) & 1) << j;
        h |= (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
    }
    for (int b = 0; b < 4; b++)
        qh[b] = (uint8_t)(h >> (8 * b));
}

static void quant_q5_0(const float *x, block_q5_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 32) {
        const float d = signed_max(x, 32) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int q[32];
        for (int j = 0; j < 32; j++)
            q[j] = floor_clamp(x[j] * id + 16.5f, 0, 31);
        y[i].d = fp32_to_fp16(d);
        pack5(q, y[i].qs, y[i].qh);
    }
}

static void quant_q5_1(const float *x, block_q5_1 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float mn, mx;
        min_max(x, 32, &mn, &mx);
        const float d = (mx - mn) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int q[32];
        for (int j = 0; j < 32; j++)
            q[j] = floor_clamp((x[j] - mn) * id + 0.5f, 0, 31);
        y[i].d = fp32_to_fp16(d);
        y[i].m = fp32_to_fp16(mn);
        pack5(q, y[i].qs, y[i].qh);
    }
}

/* Chooses the 8 six-bit scales and mins of a Q4_K/Q5_K super-block and the
 * quantized values q[256] in [0, nmax]. Simple min/max fit per sub-block
 * (not llama.cpp's search): x ~= d*sc*q - dmin*m. */
static void kquant_fit(const float *x, int nmax, uint16_t *d16, uint16_t *dmin16, uint8_t sc[8],
                       uint8_t mn[8], int q[256])
{
    float scale[8], mins[8], max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        float lo, hi;
        min_max(x + 32 * j, 32, &lo, &hi);
        if (lo > 0.0f)
            lo = 0.0f;
        scale[j] = (hi - lo) / (float)nmax;
        mins[j] = -lo;
        max_scale = fmaxf(max_scale, scale[j]);
        max_min = fmaxf(max_min, mins[j]);
    }
    *d16 = fp32_to_fp16(max_scale / 63.0f);
    *dmin16 = fp32_to_fp16(max_min / 63.0f);
    const float d = fp16_to_fp32(*d16), dmin = fp16_to_fp32(*dmin16);
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(d > 0.0f ? round_clamp(scale[j] / d, 0, 63) : 0);
        if (sc[j] == 0 && scale[j] > 0.0f && d > 0.0f)
            sc[j] = 1;
        mn[j] = (uint8_t)(dmin > 0.0f ? round_clamp(mins[j] / dmin, 0, 63) : 0);
        const float ds = d * sc[j], dm = dmin * mn[j];
        for (int l = 0; l < 32; l++)
            q[32 * j + l] = ds > 0.0f ? round_clamp((x[32 * j + l] + dm) / ds, 0, nmax) : 0;
    }
}

/* Inverse of kq_scale_min: 8 six-bit scales and mins into 12 bytes. */
static void kquant_pack_scales(const uint8_t sc[8], const uint8_t mn[8], uint8_t s[12])
{
    for (int j = 0; j < 4; j++) {
        s[j] = sc[j];
        s[j + 4] = mn[j];
    }
    for (int j = 4; j < 8; j++) {
        s[j + 4] = (uint8_t)((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
        s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
        s[j] |= (uint8_t)((mn[j] >> 4) << 6);
    }
}

static void quant_q4_K(const float *x, block_q4_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 256) {
        uint8_t sc[8], mn[8];
        int q[256];
        kquant_fit(x, 15, &y[i].d, &y[i].dmin, sc, mn, q);
        kquant_pack_scales(sc, mn, y[i].scales);
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * p + l] = (uint8_t)(q[64 * p + l] | (q[64 * p + 32 + l] << 4));
    }
}

static void quant_q5_K(const float *x, block_q5_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 256) {
        uint8_t sc[8], mn[8];
        int q[256];
        kquant_fit(x, 31, &y[i].d, &y[i].dmin, sc, mn, q);
        kquant_pack_scales(sc, mn, y[i].scales);
        memset(y[i].qh, 0, sizeof y[i].qh);
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * p + l] =
                    (uint8_t)((q[64 * p + l] & 0xF) | ((q[64 * p + 32 + l] & 0xF) << 4));
        for (int c = 0; c < 8; c++)
            for (int l = 0; l < 32; l++)
                y[i].qh[l] |= (uint8_t)(((q[32 * c + l] >> 4) & 1) << c);
    }
}

/* Q6_K: per-16 signed scales (int8) under one fp16 d; values q-32 in
 * [-32, 31]. The largest-magnitude element of a sub-block maps to -32. */
static void quant_q6_K(const float *x, block_q6_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 256) {
        float scale[16], max_scale = 0.0f, amax = 0.0f;
        for (int j = 0; j < 16; j++) {
            scale[j] = signed_max(x + 16 * j, 16) / -32.0f;
            if (fabsf(scale[j]) > amax) {
                amax = fabsf(scale[j]);
                max_scale = scale[j];
            }
        }
        int q[256];
        const float iscale = max_scale != 0.0f ? -128.0f / max_scale : 0.0f;
        y[i].d = fp32_to_fp16(iscale != 0.0f ? 1.0f / iscale : 0.0f);
        const float d = fp16_to_fp32(y[i].d);
        for (int j = 0; j < 16; j++) {
            y[i].scales[j] = (int8_t)round_clamp(iscale * scale[j], -128, 127);
            const float ds = d * y[i].scales[j];
            for (int l = 0; l < 16; l++)
                q[16 * j + l] = 32 + (ds != 0.0f ? round_clamp(x[16 * j + l] / ds, -32, 31) : 0);
        }
        for (int h = 0; h < 2; h++) {
            const int *L = q + 128 * h;
            uint8_t *ql = y[i].ql + 64 * h, *qh = y[i].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((L[l] & 0xF) | ((L[l + 64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((L[l + 32] & 0xF) | ((L[l + 96] & 0xF) << 4));
                qh[l] = (uint8_t)((L[l] >> 4) | ((L[l + 32] >> 4) << 2) | ((L[l + 64] >> 4) << 4) |
                                  ((L[l + 96] >> 4) << 6));
            }
        }
    }
}

int quantize_row(uint32_t type, const float *src, void *dst, int64_t n)
{
    const tensor_type_info *t = tensor_type_get(type);
    if (!t || n < 0 || n % t->block != 0)
        return -1;
    int64_t nb = n / t->block;
    switch (type) {
    case TT_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return 0;
    case TT_F16:
    case TT_BF16: {
        uint8_t *p = dst;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = type == TT_F16 ? fp32_to_fp16(src[i]) : fp32_to_bf16(src[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        return 0;
    }
    case TT_Q4_0:
        quant_q4_0(src, dst, nb);
        return 0;
    case TT_Q4_1:
        quant_q4_1(src, dst, nb);
        return 0;
    case TT_Q5_0:
        quant_q5_0(src, dst, nb);
        return 0;
    case TT_Q5_1:
        quant_q5_1(src, dst, nb);
        return 0;
    case TT_Q8_0:
        quant_q8_0(src, dst, nb);
        return 0;
    case TT_Q8_1:
        quant_q8_1(src, dst, nb);
        return 0;
    case TT_Q4_K:
        quant_q4_K(src, dst, nb);
        return 0;
    case TT_Q5_K:
        quant_q5_K(src, dst, nb);
        return 0;
    case TT_Q6_K:
        quant_q6_K(src, dst, nb);
        return 0;
    case TT_Q8_K:
        quant_q8_K(src, dst, nb);
        return 0;
    default:
        return -1;
    }
}

/* ------------------------------------------------------- activation formats */

uint32_t activation_type(uint32_t weight_type)
{
    switch (weight_type) {
    case TT_Q4_0:
    case TT_Q5_0:
    case TT_Q8_0:
        return TT_Q8_0;
    case TT_Q4_1:
    case TT_Q5_1:
        return TT_Q8_1;
    case TT_Q4_K:
    case TT_Q5_K:
    case TT_Q6_K:
        return TT_Q8_K;
    default:
        return TT_F32;
    }
}

size_t activation_row_bytes(uint32_t weight_type, int64_t n)
{
    uint64_t bytes;
    if (n < 0 || tensor_row_bytes(activation_type(weight_type), (uint64_t)n, &bytes) != 0 ||
        bytes > SIZE_MAX)
        return 0;
    return (size_t)bytes;
}

void kernels_quantize_activations_ref(uint32_t weight_type, const float *x, void *out, int64_t n)
{
    (void)quantize_row(activation_type(weight_type), x, out, n);
}
