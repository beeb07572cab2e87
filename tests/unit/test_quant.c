/* Tensor type tests: fp16/bf16 conversions (rounding, NaN, infinities,
 * subnormals), row sizes, dequantization of hand-built blocks against
 * hand-computed values, and quantize -> dequantize error bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "engine/gguf.h"
#include "engine/quant.h"
#include "testutil.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_fp16_known_values(void **state)
{
    (void)state;
    assert_int_equal(fp32_to_fp16(1.0f), 0x3c00);
    assert_int_equal(fp32_to_fp16(-2.0f), 0xc000);
    assert_int_equal(fp32_to_fp16(0.0f), 0x0000);
    assert_int_equal(fp32_to_fp16(-0.0f), 0x8000);
    assert_int_equal(fp32_to_fp16(65504.0f), 0x7bff);
    assert_int_equal(fp32_to_fp16(65519.99f), 0x7bff);
    assert_int_equal(fp32_to_fp16(65520.0f), 0x7c00); /* rounds to infinity */
    assert_int_equal(fp32_to_fp16(INFINITY), 0x7c00);
    assert_int_equal(fp32_to_fp16(-INFINITY), 0xfc00);
    assert_int_equal(fp32_to_fp16(1e10f), 0x7c00);
    /* ties to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 */
    assert_int_equal(fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);
    assert_int_equal(fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);
    assert_int_equal(fp32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    /* subnormals */
    assert_int_equal(fp32_to_fp16(0x1p-24f), 0x0001);
    assert_int_equal(fp32_to_fp16(0x1p-25f), 0x0000);     /* tie -> even (0) */
    assert_int_equal(fp32_to_fp16(3 * 0x1p-25f), 0x0002); /* tie -> even (2) */
    assert_int_equal(fp32_to_fp16(0x1.8p-25f), 0x0001);   /* 0.75 ulp -> 1 */
    assert_int_equal(fp32_to_fp16(0x1p-14f), 0x0400);     /* smallest normal */
    assert_int_equal(fp32_to_fp16(0x1.ffcp-15f), 0x0400); /* 1023.5 ulps: tie -> even 1024 */
    assert_int_equal(fp32_to_fp16(-0x1p-24f), 0x8001);
    assert_int_equal(fp32_to_fp16(1e-30f), 0x0000);
    /* NaN stays NaN (exponent all ones, mantissa non-zero), sign kept */
    uint16_t h = fp32_to_fp16(NAN);
    assert_int_equal(h & 0x7c00, 0x7c00);
    assert_true((h & 0x03ff) != 0);
    h = fp32_to_fp16(from_bits(0xff800001u)); /* signalling NaN, tiny payload */
    assert_int_equal(h & 0xfc00, 0xfc00);
    assert_true((h & 0x03ff) != 0);

    assert_true(fp16_to_fp32(0x3c00) == 1.0f);
    assert_true(fp16_to_fp32(0x0001) == 0x1p-24f);
    assert_true(fp16_to_fp32(0x03ff) == 1023 * 0x1p-24f);
    assert_true(fp16_to_fp32(0x7bff) == 65504.0f);
    assert_true(isinf(fp16_to_fp32(0x7c00)) && fp16_to_fp32(0x7c00) > 0);
    assert_true(isinf(fp16_to_fp32(0xfc00)) && fp16_to_fp32(0xfc00) < 0);
    assert_true(isnan(fp16_to_fp32(0x7e00)));
    assert_true(isnan(fp16_to_fp32(0x7c01)));
    assert_int_equal(bits(fp16_to_fp32(0x8000)), 0x80000000u);
}

/* Every half round-trips, and every midpoint between neighbours rounds to
 * the even one (just below/above it to the nearer one). */
static void test_fp16_exhaustive(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = fp16_to_fp32((uint16_t)h);
        if (isnan(f)) {
            assert_true(isnan(fp16_to_fp32(fp32_to_fp16(f))));
            continue;
        }
        assert_int_equal(fp32_to_fp16(f), h);
    }
    for (uint32_t h = 0; h < 0x7bff; h++) {
        float lo = fp16_to_fp32((uint16_t)h), hi = fp16_to_fp32((uint16_t)(h + 1));
        float mid = lo + (hi - lo) / 2; /* exact: halves have 11-bit mantissas */
        uint32_t even = (h & 1) ? h + 1 : h;
        assert_int_equal(fp32_to_fp16(mid), even);
        assert_int_equal(fp32_to_fp16(nextafterf(mid, 0.0f)), h);
        assert_int_equal(fp32_to_fp16(nextafterf(mid, INFINITY)), h + 1);
        assert_int_equal(fp32_to_fp16(-mid), even | 0x8000);
    }
}

static void test_bf16(void **state)
{
    (void)state;
    assert_int_equal(fp32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(fp32_to_bf16(-1.0f), 0xbf80);
    assert_int_equal(fp32_to_bf16(from_bits(0x3f808000u)), 0x3f80); /* tie -> even */
    assert_int_equal(fp32_to_bf16(from_bits(0x3f818000u)), 0x3f82); /* tie -> even */
    assert_int_equal(fp32_to_bf16(from_bits(0x3f808001u)), 0x3f81);
    assert_int_equal(fp32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(fp32_to_bf16(-INFINITY), 0xff80);
    assert_int_equal(fp32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80); /* FLT_MAX -> inf */
    assert_int_equal(fp32_to_bf16(from_bits(0x00008000u)), 0x0000); /* subnormal tie */
    assert_int_equal(fp32_to_bf16(from_bits(0x00018000u)), 0x0002);
    assert_int_equal(fp32_to_bf16(from_bits(0x00010001u)), 0x0001); /* subnormal kept */
    assert_int_equal(fp32_to_bf16(from_bits(0x7f800001u)), 0x7fc0); /* sNaN -> qNaN */
    assert_int_equal(fp32_to_bf16(from_bits(0xffc00000u)), 0xffc0);
    assert_true(bf16_to_fp32(0x3f80) == 1.0f);
    assert_true(isnan(bf16_to_fp32(0x7fc0)));
    assert_true(bf16_to_fp32(0x0001) == from_bits(0x00010000u));
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = bf16_to_fp32((uint16_t)h);
        if (!isnan(f))
            assert_int_equal(fp32_to_bf16(f), h);
    }
}

static void test_types_and_row_bytes(void **state)
{
    (void)state;
    uint64_t b = 0;
    assert_int_equal(tensor_row_bytes(TT_Q4_0, 64, &b), 0);
    assert_int_equal(b, 36);
    assert_int_equal(tensor_row_bytes(TT_F32, 172, &b), 0);
    assert_int_equal(b, 688);
    assert_int_equal(tensor_row_bytes(TT_Q6_K, 512, &b), 0);
    assert_int_equal(b, 420);
    assert_int_equal(tensor_row_bytes(TT_Q4_K, 256, &b), 0);
    assert_int_equal(b, 144);
    assert_int_equal(tensor_row_bytes(TT_Q5_K, 256, &b), 0);
    assert_int_equal(b, 176);
    assert_int_equal(tensor_row_bytes(TT_Q8_K, 256, &b), 0);
    assert_int_equal(b, 292);
    assert_int_equal(tensor_row_bytes(TT_BF16, 0, &b), 0);
    assert_int_equal(b, 0);
    assert_int_equal(tensor_row_bytes(TT_Q4_0, 33, &b), -1); /* not whole blocks */
    assert_int_equal(tensor_row_bytes(TT_Q4_K, 128, &b), -1);
    assert_int_equal(tensor_row_bytes(4, 32, &b), -1); /* removed GGML type id */
    assert_int_equal(tensor_row_bytes(99, 32, &b), -1);
    assert_int_equal(tensor_row_bytes(TT_F32, UINT64_C(1) << 62, &b), -1); /* overflow */
    assert_int_equal(tensor_row_bytes(TT_Q8_0, UINT64_MAX - UINT64_MAX % 32, &b), -1);

    assert_null(tensor_type_get(4));
    assert_null(tensor_type_get(TT_COUNT));
    assert_null(tensor_type_get(UINT32_MAX));
    assert_string_equal(tensor_type_get(TT_Q4_K)->name, "q4_K");
    assert_true(tensor_type_get(TT_Q4_K)->supported);
    assert_false(tensor_type_get(TT_Q2_K)->supported);
    assert_false(tensor_type_get(TT_Q8_K)->supported);

    assert_int_equal(activation_type(TT_Q4_0), TT_Q8_0);
    assert_int_equal(activation_type(TT_Q5_1), TT_Q8_1);
    assert_int_equal(activation_type(TT_Q6_K), TT_Q8_K);
    assert_int_equal(activation_type(TT_BF16), TT_F32);
    assert_int_equal(activation_row_bytes(TT_Q4_1, 64), 72);
    assert_int_equal(activation_row_bytes(TT_Q4_K, 512), 584);
    assert_int_equal(activation_row_bytes(TT_F16, 10), 40);
    assert_int_equal(activation_row_bytes(TT_Q4_0, 40), 0);

    float out[256];
    uint8_t blk[512] = {0};
    assert_int_equal(dequantize_row(TT_Q2_K, blk, out, 256), -1);
    assert_int_equal(dequantize_row(TT_Q4_0, blk, out, 31), -1);
    assert_int_equal(quantize_row(TT_Q3_K, out, blk, 256), -1);
    assert_int_equal(quantize_row(77, out, blk, 256), -1);
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static float deq_at(uint32_t type, const uint8_t *blk, int64_t n, int64_t i)
{
    static float out[256];
    assert_int_equal(dequantize_row(type, blk, out, n), 0);
    return out[i];
}

/* Blocks written byte by byte; expected values worked out by hand from the
 * GGML formulas (see the comment beside each). */
static void test_dequantize_known_blocks(void **state)
{
    (void)state;
    uint8_t b[256];

    /* Q4_0: d=0.5, qs[0]=0x1F: e0 = (15-8)*0.5, e16 = (1-8)*0.5 */
    memset(b, 0, sizeof b);
    put16(b, 0x3800);
    b[2] = 0x1F;
    assert_true(deq_at(TT_Q4_0, b, 32, 0) == 3.5f);
    assert_true(deq_at(TT_Q4_0, b, 32, 16) == -3.5f);
    assert_true(deq_at(TT_Q4_0, b, 32, 1) == -4.0f);

    /* Q4_1: d=0.5, m=1, qs[0]=0x21: e0 = 1*0.5+1, e16 = 2*0.5+1 */
    memset(b, 0, sizeof b);
    put16(b, 0x3800);
    put16(b + 2, 0x3c00);
    b[4] = 0x21;
    assert_true(deq_at(TT_Q4_1, b, 32, 0) == 1.5f);
    assert_true(deq_at(TT_Q4_1, b, 32, 16) == 2.0f);
    assert_true(deq_at(TT_Q4_1, b, 32, 5) == 1.0f);

    /* Q5_0: d=1, qh bit 0 set, qs[0]=0x0F: e0 = (15|16)-16, e16 = 0-16 */
    memset(b, 0, sizeof b);
    put16(b, 0x3c00);
    b[2] = 0x01;
    b[6] = 0x0F;
    assert_true(deq_at(TT_Q5_0, b, 32, 0) == 15.0f);
    assert_true(deq_at(TT_Q5_0, b, 32, 16) == -16.0f);

    /* Q5_1: d=0.25, m=-1, qh bits 1 and 17, qs[1]=0x3A:
     * e1 = (10|16)*0.25-1 = 5.5, e17 = (3|16)*0.25-1 = 3.75 */
    memset(b, 0, sizeof b);
    put16(b, 0x3400);
    put16(b + 2, 0xbc00);
    b[4] = 0x02;
    b[6] = 0x02;
    b[9] = 0x3A;
    assert_true(deq_at(TT_Q5_1, b, 32, 1) == 5.5f);
    assert_true(deq_at(TT_Q5_1, b, 32, 17) == 3.75f);
    assert_true(deq_at(TT_Q5_1, b, 32, 0) == -1.0f);

    /* Q8_0: d=2, qs[5]=-3 */
    memset(b, 0, sizeof b);
    put16(b, 0x4000);
    b[2 + 5] = (uint8_t)-3;
    assert_true(deq_at(TT_Q8_0, b, 32, 5) == -6.0f);

    /* Q4_K: d=1, dmin=0.5. Sub-block 0: sc=3, m=2 (scales[0], scales[4]).
     * Sub-block 5: sc = (scales[9]&15) | (scales[1]>>6)<<4 = 1|16 = 17,
     * m = (scales[9]>>4) | (scales[5]>>6)<<4 = 2|32 = 34.
     * e0 = low nibble of qs[0] = 7 -> 1*3*7 - 0.5*2 = 20;
     * e32 = high nibble of qs[0] with sc1 = m1 = 0 -> 0;
     * e160 = high nibble of qs[64] = 5 -> 17*5 - 0.5*34 = 68. */
    memset(b, 0, sizeof b);
    put16(b, 0x3c00);
    put16(b + 2, 0x3800);
    uint8_t *sc = b + 4, *qs = b + 16;
    sc[0] = 3;
    sc[4] = 2;
    sc[9] = 0x21;
    sc[1] = 0x40;
    sc[5] = 0x80;
    qs[0] = 0x97;
    qs[64] = 0x50;
    assert_true(deq_at(TT_Q4_K, b, 256, 0) == 20.0f);
    assert_true(deq_at(TT_Q4_K, b, 256, 32) == 0.0f);
    assert_true(deq_at(TT_Q4_K, b, 256, 160) == 68.0f);
    assert_true(deq_at(TT_Q4_K, b, 256, 161) == -17.0f);

    /* Q5_K: d=1, dmin=1; e33: sub-block 1 (sc=scales[1]=2, m=scales[5]=3),
     * high nibble of qs[1] = 4, qh[1] bit 1 -> q = 20 -> 2*20 - 3 = 37 */
    memset(b, 0, sizeof b);
    put16(b, 0x3c00);
    put16(b + 2, 0x3c00);
    b[4 + 1] = 2;
    b[4 + 5] = 3;
    b[16 + 1] = 0x02;      /* qh[1] */
    b[16 + 32 + 1] = 0x40; /* qs[1] */
    assert_true(deq_at(TT_Q5_K, b, 256, 33) == 37.0f);
    assert_true(deq_at(TT_Q5_K, b, 256, 1) == 0.0f); /* sc0 = m0 = 0 */

    /* Q6_K: d=0.5 (at byte 208). e0 = (ql[0]&15 | (qh[0]&3)<<4) - 32 =
     * (5|32)-32 = 5, scale[0]=2 -> 5; e64 = (ql[0]>>4 | (qh[0]>>4&3)<<4) - 32
     * = -32, scale[4]=-1 -> 16; e200 (second half, l=8, third quarter):
     * (ql[72]>>4 | (qh[40]>>4&3)<<4) - 32 = 63-32 = 31, scale[12]=4 -> 62 */
    memset(b, 0, sizeof b);
    put16(b + 208, 0x3800);
    uint8_t *ql = b, *qh = b + 128;
    int8_t *s6 = (int8_t *)(b + 192);
    ql[0] = 0x05;
    qh[0] = 0x02;
    s6[0] = 2;
    s6[4] = -1;
    ql[72] = 0xF0;
    qh[40] = 0x30;
    s6[12] = 4;
    assert_true(deq_at(TT_Q6_K, b, 256, 0) == 5.0f);
    assert_true(deq_at(TT_Q6_K, b, 256, 64) == 16.0f);
    assert_true(deq_at(TT_Q6_K, b, 256, 200) == 62.0f);

    /* F16 / BF16 rows */
    put16(b, 0x3c00);
    put16(b + 2, 0xc000);
    assert_true(deq_at(TT_F16, b, 2, 1) == -2.0f);
    put16(b, 0x4040);
    assert_true(deq_at(TT_BF16, b, 2, 0) == 3.0f);
}

/* Activation codes are llama.cpp's x86 ones: Q8_0/Q8_1 round x * (127/amax)
 * half to even; Q8_K takes its scale from the signed element of largest
 * magnitude (d = -max/127, so d < 0 when that element is positive). */
static void test_activation_codes_match_llama_cpp(void **state)
{
    (void)state;
    float x[256] = {0};
    uint8_t buf[292];
    x[0] = 127.0f; /* amax 127: 127/amax = 1, d = 1 */
    x[1] = 2.5f;
    x[2] = 3.5f;
    x[3] = -2.5f;
    x[4] = -126.5f;
    x[5] = 0.5f;
    x[6] = 1.5f;
    static const int8_t want8[7] = {127, 2, 4, -2, -126, 0, 2};
    assert_int_equal(quantize_row(TT_Q8_0, x, buf, 32), 0);
    assert_int_equal(buf[0] | buf[1] << 8, 0x3c00);
    assert_memory_equal(buf + 2, want8, 7);
    assert_int_equal(quantize_row(TT_Q8_1, x, buf, 32), 0);
    assert_memory_equal(buf + 4, want8, 7);
    /* s = d * sum(codes) = 127+2+4-2-126+0+2 = 7 */
    assert_int_equal(buf[2] | buf[3] << 8, fp32_to_fp16(7.0f));

    memset(x, 0, sizeof x);
    x[7] = -254.0f; /* largest magnitude, negative: iscale = 0.5, d = 2 */
    x[0] = 127.0f;  /* 63.5 -> 64 */
    x[1] = 1.0f;    /* 0.5 -> 0 */
    x[2] = 3.0f;    /* 1.5 -> 2 */
    x[20] = -5.0f;  /* -2.5 -> -2 */
    assert_int_equal(quantize_row(TT_Q8_K, x, buf, 256), 0);
    float d;
    memcpy(&d, buf, 4);
    assert_true(d == 2.0f);
    const int8_t *qs = (const int8_t *)(buf + 4);
    assert_int_equal(qs[7], -127);
    assert_int_equal(qs[0], 64);
    assert_int_equal(qs[1], 0);
    assert_int_equal(qs[2], 2);
    assert_int_equal(qs[20], -2);
    int16_t bsums[16];
    memcpy(bsums, buf + 260, sizeof bsums);
    assert_int_equal(bsums[0], 64 + 2 - 127);
    assert_int_equal(bsums[1], -2);
    x[7] = 254.0f; /* now positive: iscale = -0.5, d = -2, codes flip sign */
    assert_int_equal(quantize_row(TT_Q8_K, x, buf, 256), 0);
    memcpy(&d, buf, 4);
    assert_true(d == -2.0f);
    assert_int_equal(qs[7], -127);
    assert_int_equal(qs[0], -64);
    assert_int_equal(qs[2], -2);
    assert_int_equal(qs[20], 2);
}

static double rel_rms_error(uint32_t type, const float *x, int64_t n)
{
    uint64_t bytes = 0;
    assert_int_equal(tensor_row_bytes(type, (uint64_t)n, &bytes), 0);
    uint8_t *q = malloc(bytes);
    float *back = malloc((size_t)n * sizeof(float));
    assert_non_null(q);
    assert_non_null(back);
    assert_int_equal(quantize_row(type, x, q, n), 0);
    assert_int_equal(dequantize_row(type, q, back, n), 0);
    double err = 0.0, sig = 0.0;
    for (int64_t i = 0; i < n; i++) {
        err += (back[i] - x[i]) * (double)(back[i] - x[i]);
        sig += (double)x[i] * x[i];
    }
    free(q);
    free(back);
    return sqrt(err / sig);
}

/* quantize -> dequantize of normal-ish data stays within each format's
 * expected error (bounds ~1.5x what these quantizers achieve), and zeros
 * stay exactly zero. */
static void test_quantize_error_bounds(void **state)
{
    (void)state;
    static const struct {
        uint32_t type;
        double bound;
    } cases[] = {
        {TT_F32, 0.0},   {TT_F16, 6e-4},  {TT_BF16, 5e-3}, {TT_Q8_0, 0.01}, {TT_Q8_1, 0.01},
        {TT_Q8_K, 0.01}, {TT_Q6_K, 0.04}, {TT_Q5_0, 0.06}, {TT_Q5_1, 0.05}, {TT_Q5_K, 0.06},
        {TT_Q4_0, 0.12}, {TT_Q4_1, 0.10}, {TT_Q4_K, 0.12},
    };
    const int64_t n = 4096;
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    uint64_t s = 88172645463325252ULL;
    for (int64_t i = 0; i < n; i++) {
        double acc = 0; /* sum of 4 uniforms: roughly normal */
        for (int k = 0; k < 4; k++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            acc += (double)(s >> 11) / 9007199254740992.0 - 0.5;
        }
        x[i] = (float)(acc * 0.05 + (i % 7 == 0 ? 0.01 : 0.0));
    }
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double e = rel_rms_error(cases[c].type, x, n);
        printf("%-5s relative rms error %.5f (bound %.5f)\n", tensor_type_get(cases[c].type)->name,
               e, cases[c].bound);
        if (cases[c].bound == 0.0 ? e != 0.0 : !(e < cases[c].bound))
            fail_msg("%s: relative rms error %.5f over bound %.5f",
                     tensor_type_get(cases[c].type)->name, e, cases[c].bound);
        /* all-zero input: exact zeros back, no NaN from 0/0 scales */
        float z[256] = {0}, back[256];
        uint8_t q[1024];
        int64_t bn = tensor_type_get(cases[c].type)->block == 1
                         ? 256
                         : tensor_type_get(cases[c].type)->block;
        assert_int_equal(quantize_row(cases[c].type, z, q, bn), 0);
        assert_int_equal(dequantize_row(cases[c].type, q, back, bn), 0);
        for (int64_t i = 0; i < bn; i++)
            assert_true(back[i] == 0.0f);
    }
    free(x);
}

/* One shared model file, read and parsed (NULL with a printed reason when
 * ../shared or the file is absent). */
typedef struct {
    unsigned char *bytes;
    gguf_file *gguf;
} model_file;

static int model_open(model_file *m, const char *name)
{
    char path[4096], rel[256], err[256];
    size_t len = 0;
    snprintf(rel, sizeof rel, "models/%s", name);
    m->bytes = NULL;
    m->gguf = NULL;
    if (!test_shared_path(path, sizeof path, rel)) {
        printf("skipped: ../shared/%s is absent\n", rel);
        return -1;
    }
    m->bytes = test_read_file(path, &len);
    assert_non_null(m->bytes);
    m->gguf = gguf_open(m->bytes, len, err, sizeof err);
    if (!m->gguf)
        fail_msg("%s: %s", name, err);
    return 0;
}

static void model_close(model_file *m)
{
    gguf_close(m->gguf);
    free(m->bytes);
}

/* Every tensor of ../shared/models/kq-TYPE.gguf, quantized from kq-f32.gguf
 * by llama.cpp, dequantizes close to the F32 original: a wrong block layout
 * or formula would give errors of the order of the values themselves.
 * Bounds are about 1.5x what llama.cpp's quantizers reach on this model. */
static void test_shared_models_dequantize_close_to_f32(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        double bound;
    } files[] = {
        {"kq-f16.gguf", 1e-3},  {"kq-bf16.gguf", 6e-3},   {"kq-q8_0.gguf", 0.01},
        {"kq-q6_k.gguf", 0.03}, {"kq-q5_0.gguf", 0.06},   {"kq-q5_1.gguf", 0.05},
        {"kq-q5_k.gguf", 0.05}, {"kq-q4_0.gguf", 0.12},   {"kq-q4_1.gguf", 0.10},
        {"kq-q4_k.gguf", 0.10}, {"kq-q4_k_m.gguf", 0.10},
    };
    model_file ref;
    if (model_open(&ref, "kq-f32.gguf") != 0)
        skip();
    for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
        model_file q;
        if (model_open(&q, files[fi].file) != 0)
            continue;
        double worst = 0.0;
        size_t compared = 0;
        for (size_t i = 0; i < gguf_tensor_count(q.gguf); i++) {
            const gguf_tensor *t = gguf_tensor_at(q.gguf, i);
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
            const gguf_tensor *r = gguf_find_tensor(ref.gguf, name);
            assert_non_null(r);
            assert_int_equal(r->type, TT_F32);
            if (t->type == TT_F32)
                continue; /* norms stay F32 */
            uint64_t count = 1;
            for (uint32_t d = 0; d < t->n_dims; d++)
                count *= t->ne[d];
            float *deq = malloc(count * sizeof(float));
            assert_non_null(deq);
            assert_int_equal(dequantize_row(t->type, t->data, deq, (int64_t)count), 0);
            const float *orig = r->data;
            double err = 0.0, sig = 0.0;
            for (uint64_t j = 0; j < count; j++) {
                err += (deq[j] - orig[j]) * (double)(deq[j] - orig[j]);
                sig += (double)orig[j] * orig[j];
            }
            free(deq);
            const double rel = sqrt(err / sig);
            if (rel > worst)
                worst = rel;
            if (!(rel < files[fi].bound))
                fail_msg("%s tensor %s (%s): relative rms error %.4g over %.4g", files[fi].file,
                         name, tensor_type_get(t->type)->name, rel, files[fi].bound);
            compared++;
        }
        printf("%-15s %zu tensors, worst relative rms error %.5f\n", files[fi].file, compared,
               worst);
        assert_true(compared > 0);
        model_close(&q);
    }
    model_close(&ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16_known_values),
        cmocka_unit_test(test_fp16_exhaustive),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_types_and_row_bytes),
        cmocka_unit_test(test_dequantize_known_blocks),
        cmocka_unit_test(test_activation_codes_match_llama_cpp),
        cmocka_unit_test(test_quantize_error_bounds),
        cmocka_unit_test(test_shared_models_dequantize_close_to_f32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
