/* Kernel tests: the scalar product agrees with the dot product of the
 * dequantized operands; every SIMD path this CPU runs is bit-identical to
 * scalar for every type; results do not depend on the r0/r1 split or on the
 * number of activation rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "engine/gguf.h"
#include "testutil.h"
#include "engine/quant.h"

static const uint32_t WEIGHT_TYPES[] = {TT_F32,  TT_F16,  TT_BF16, TT_Q4_0, TT_Q4_1, TT_Q5_0,
                                        TT_Q5_1, TT_Q8_0, TT_Q4_K, TT_Q5_K, TT_Q6_K};
#define N_WEIGHT_TYPES (sizeof WEIGHT_TYPES / sizeof WEIGHT_TYPES[0])

/* Deterministic generator (xorshift64*), so a failure reproduces. */
typedef struct {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

static float rng_uniform(rng *r) /* [-1, 1) */
{
    return (float)((double)(rng_next(r) >> 11) / 4503599627370496.0 - 1.0);
}

/* Roughly normal values with occasional outliers, like real weights. */
static float rng_value(rng *r)
{
    float v = rng_uniform(r) + rng_uniform(r) + rng_uniform(r);
    if (rng_next(r) % 61 == 0)
        v *= 8.0f;
    return v;
}

static uint64_t row_bytes(uint32_t type, int64_t n)
{
    uint64_t b = 0;
    assert_int_equal(tensor_row_bytes(type, (uint64_t)n, &b), 0);
    return b;
}

static void put_half(uint8_t *p, float v)
{
    uint16_t h = fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* Random quantized bytes with sane (finite, modest) fp16 scale fields, to
 * reach bit patterns a quantizer never writes (e.g. Q8_0 -128). */
static void raw_random_blocks(uint32_t type, uint8_t *buf, int64_t n, rng *r)
{
    const tensor_type_info *t = tensor_type_get(type);
    const uint64_t bytes = row_bytes(type, n);
    for (uint64_t i = 0; i < bytes; i++)
        buf[i] = (uint8_t)rng_next(r);
    if (t->block == 1) { /* float rows: overwrite with finite values */
        float *tmp = malloc((size_t)n * sizeof(float));
        assert_non_null(tmp);
        for (int64_t i = 0; i < n; i++)
            tmp[i] = rng_value(r);
        assert_int_equal(quantize_row(type, tmp, buf, n), 0);
        free(tmp);
        return;
    }
    for (uint8_t *b = buf; b < buf + bytes; b += t->bytes) {
        switch (type) {
        case TT_Q4_1:
        case TT_Q5_1:
        case TT_Q4_K:
        case TT_Q5_K:
            put_half(b + 2, rng_uniform(r) * 0.05f);
            put_half(b, rng_uniform(r) * 0.05f);
            break;
        case TT_Q6_K:
            put_half(b + 208, rng_uniform(r) * 0.01f);
            break;
        default:
            put_half(b, rng_uniform(r) * 0.05f);
            break;
        }
    }
}

/* rows x n weights: realistic (quantized from random floats) or raw. */
static uint8_t *make_weights(uint32_t type, int64_t rows, int64_t n, int raw, rng *r)
{
    const uint64_t rb = row_bytes(type, n);
    uint8_t *w = malloc((size_t)(rb * (uint64_t)rows));
    float *x = malloc((size_t)n * sizeof(float));
    assert_non_null(w);
    assert_non_null(x);
    for (int64_t i = 0; i < rows; i++) {
        if (raw) {
            raw_random_blocks(type, w + (size_t)i * rb, n, r);
            continue;
        }
        for (int64_t j = 0; j < n; j++)
            x[j] = rng_value(r) * 0.02f;
        assert_int_equal(quantize_row(type, x, w + (size_t)i * rb, n), 0);
    }
    free(x);
    return w;
}

/* nb activation rows quantized for weight_type with kernel set k. */
static uint8_t *make_activations(const kernels *k, uint32_t type, int64_t nb, int64_t n,
                                 float **xs_out, rng *r)
{
    const size_t ab = activation_row_bytes(type, n);
    uint8_t *a = malloc(ab * (size_t)nb);
    float *xs = malloc((size_t)(nb * n) * sizeof(float));
    assert_true(ab > 0);
    assert_non_null(a);
    assert_non_null(xs);
    for (int64_t i = 0; i < nb * n; i++)
        xs[i] = rng_value(r);
    for (int64_t b = 0; b < nb; b++)
        k->quantize_activations(type, xs + b * n, a + (size_t)b * ab, n);
    if (xs_out)
        *xs_out = xs;
    else
        free(xs);
    return a;
}

static int64_t block_of(uint32_t type)
{
    return (int64_t)tensor_type_get(type)->block;
}

static float get_half(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return fp16_to_fp32(h);
}

/* Q4_1/Q5_1 meet Q8_1 activations whose block sum s = d * sum(q) is stored
 * as fp16 (GGML's layout), so the min term m * s carries up to 2^-11
 * relative rounding that the dequantized dot does not see. */
static double min_term_slack(uint32_t type, const uint8_t *w, const uint8_t *a, int64_t n)
{
    if (type != TT_Q4_1 && type != TT_Q5_1)
        return 0.0;
    const size_t wb = tensor_type_get(type)->bytes, ab = tensor_type_get(TT_Q8_1)->bytes;
    double slack = 0.0;
    for (int64_t b = 0; b < n / 32; b++)
        slack += fabs((double)get_half(w + b * wb + 2) * get_half(a + b * ab + 2)) / 1024.0;
    return slack;
}

static void test_selection(void **state)
{
    (void)state;
    const char *avail = kernels_available();
    assert_non_null(avail);
    assert_string_equal(avail, engine_kernels_available());
    assert_non_null(strstr(avail, "scalar"));
    assert_non_null(kernels_by_name("scalar"));
    assert_string_equal(kernels_by_name("scalar")->name, "scalar");
    assert_null(kernels_by_name("sse9"));
    assert_null(kernels_by_name(NULL));
    char note[512];
    const kernels *best = kernels_best(note, sizeof note);
    assert_non_null(best);
    assert_non_null(strstr(avail, best->name));
    /* the best set is the last advertised: every set here passes the check */
    assert_string_equal(note, "");
    assert_string_equal(strrchr(avail, ' ') ? strrchr(avail, ' ') + 1 : avail, best->name);
    /* every advertised name resolves to a table of that name */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", avail);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save)) {
        const kernels *k = kernels_by_name(tok);
        assert_non_null(k);
        assert_string_equal(k->name, tok);
    }
    printf("kernel sets on this CPU: %s (best: %s)\n", avail, best->name);
}

static size_t simd_sets(const kernels *sets[3]);

/* The self-check that model loading runs: every SIMD set of this CPU
 * passes it (quick and thorough, every case counted), and the public
 * report says so. */
static void test_kernels_check_passes(void **state)
{
    (void)state;
    char err[256], report[1024];
    const kernels *sets[3];
    const size_t n_sets = simd_sets(sets);
    for (size_t i = 0; i < n_sets; i++) {
        int quick = 0, thorough = 0;
        assert_int_equal(kernels_check(sets[i], 0, &quick, err, sizeof err), 0);
        assert_int_equal(kernels_check(sets[i], 1, &thorough, err, sizeof err), 0);
        /* 11 types x 4 batch sizes x 2 kinds of blocks (x 2 lengths when
         * thorough), and the attention helpers */
        assert_int_equal(quick, 89);
        assert_int_equal(thorough, 177);
    }
    assert_int_equal(engine_kernels_self_check(report, sizeof report), 0);
    if (n_sets)
        assert_non_null(strstr(report, "bit-identical to scalar in 177 cases"));
    else
        printf("no SIMD kernel set on this CPU: nothing to check against scalar\n");
}

/* A set that differs from scalar in one output bit of one path, or in one
 * quantizer byte, fails the check, and the error names where. */
static void mul_mat_off_by_one_bit(uint32_t type, int64_t n, const void *w, size_t w_stride,
                                   const void *a, size_t a_stride, int64_t nb, float *y,
                                   size_t y_stride, int64_t r0, int64_t r1)
{
    kernels_by_name("scalar")->mul_mat(type, n, w, w_stride, a, a_stride, nb, y, y_stride, r0, r1);
    if (type == TT_Q6_K && nb == 9) { /* only the 8-row tile path of one type */
        uint32_t bits;
        float *last = &y[(size_t)(nb - 1) * y_stride + (size_t)(r1 - 1)];
        memcpy(&bits, last, 4);
        bits ^= 1u;
        memcpy(last, &bits, 4);
    }
}

static void quantizer_off_by_one(uint32_t type, const float *x, void *out, int64_t n)
{
    kernels_by_name("scalar")->quantize_activations(type, x, out, n);
    if (type == TT_Q5_1)
        ((uint8_t *)out)[n > 64 ? 40 : 4] ^= 1u; /* one code of the second block */
}

/* The reference dot's lanes, but fused multiply-adds: what a SIMD port that
 * let FMA in would compute. */
static void dot_with_fma(const float *q, size_t q_stride, uint32_t nq, const float *b, uint32_t n,
                         float *out)
{
    for (uint32_t g = 0; g < nq; g++) {
        float lane[8] = {0};
        for (uint32_t i = 0; i < n; i++)
            lane[i % 8] = fmaf(q[g * q_stride + i], b[i], lane[i % 8]);
        out[g] = ((lane[0] + lane[4]) + (lane[2] + lane[6])) +
                 ((lane[1] + lane[5]) + (lane[3] + lane[7]));
    }
}

static void test_kernels_check_catches_a_difference(void **state)
{
    (void)state;
    char err[256];
    const kernels *scalar = kernels_by_name("scalar");
    kernels bad_product = *scalar, bad_quantizer = *scalar;
    bad_product.name = "bad-product";
    bad_product.mul_mat = mul_mat_off_by_one_bit;
    bad_quantizer.name = "bad-quantizer";
    bad_quantizer.quantize_activations = quantizer_off_by_one;
    int cases = -1;
    assert_int_equal(kernels_check(&bad_product, 0, &cases, err, sizeof err), 1);
    assert_non_null(strstr(err, "kernel set bad-product: q6_K n=768 nb=9 output"));
    assert_int_equal(cases, 10 * 8 + 6); /* 10 types before q6_K, then nb 1, 3 and 6 agreed */
    assert_int_equal(kernels_check(&bad_quantizer, 1, NULL, err, sizeof err), 1);
    assert_string_equal(err,
                        "kernel set bad-quantizer: q5_1 activation quantizer differs from scalar "
                        "(n=288)");
    kernels bad_dot = *scalar;
    bad_dot.name = "bad-dot";
    bad_dot.dot_f32 = dot_with_fma;
    assert_int_equal(kernels_check(&bad_dot, 0, &cases, err, sizeof err), 1);
    assert_non_null(strstr(err, "kernel set bad-dot: attention dot 0 of 37 is"));
    assert_int_equal(kernels_check(scalar, 0, &cases, err, sizeof err), 0);
}

/* Scalar mul_mat against a double-precision dot of the dequantized weight
 * row and dequantized activation row. */
static void test_scalar_matches_dequantized_dot(void **state)
{
    (void)state;
    const kernels *k = kernels_by_name("scalar");
    rng r = {0x1234567ULL};
    for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        const uint32_t type = WEIGHT_TYPES[ti];
        const int64_t ns[] = {block_of(type) == 1 ? 37 : block_of(type), 512, 1536};
        for (size_t ni = 0; ni < 3; ni++) {
            for (int raw = 0; raw < 2; raw++) {
                const int64_t n = ns[ni];
                const uint32_t at = activation_type(type);
                uint8_t *w = make_weights(type, 1, n, raw, &r);
                uint8_t *a = make_activations(k, type, 1, n, NULL, &r);
                float *dw = malloc((size_t)n * sizeof(float));
                float *da = malloc((size_t)n * sizeof(float));
                assert_int_equal(dequantize_row(type, w, dw, n), 0);
                assert_int_equal(dequantize_row(at, a, da, n), 0);
                double ref = 0.0, mag = 0.0;
                for (int64_t j = 0; j < n; j++) {
                    ref += (double)dw[j] * da[j];
                    mag += fabs((double)dw[j] * da[j]);
                }
                float y = NAN;
                k->mul_mat(type, n, w, 0, a, 0, 1, &y, 1, 0, 1);
                if (!(fabs(y - ref) <= 2e-5 * mag + min_term_slack(type, w, a, n) + 1e-12))
                    fail_msg("%s n=%lld raw=%d: scalar %.9g, dequantized dot %.9g (mag %.3g)",
                             tensor_type_get(type)->name, (long long)n, raw, y, ref, mag);
                free(dw);
                free(da);
                free(w);
                free(a);
            }
        }
    }
}

/* The activation row that the kernels see dequantizes close to the input. */
static void test_activation_formats(void **state)
{
    (void)state;
    rng r = {99};
    for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
        const uint32_t type = WEIGHT_TYPES[ti];
        const int64_t n = 512;
        float *xs = NULL;
        uint8_t *a = make_activations(kernels_by_name("scalar"), type, 1, n, &xs, &r);
        float *back = malloc((size_t)n * sizeof(float));
        assert_int_equal(dequantize_row(activation_type(type), a, back, n), 0);
        double err = 0, sig = 0;
        for (int64_t j = 0; j < n; j++) {
            err += (back[j] - xs[j]) * (double)(back[j] - xs[j]);
            sig += (double)xs[j] * xs[j];
        }
        /* rint to 8 bits: error <= d/2, d = block amax / 127 (outliers in
         * the data make 256-element blocks coarser) */
        const double bound = block_of(type) == 256 ? 0.04 : 0.02;
        if (!(sqrt(err / sig) < bound))
            fail_msg("%s activations: relative rms error %.4g", tensor_type_get(type)->name,
                     sqrt(err / sig));
        free(back);
        free(xs);
        free(a);
    }
}

static void compare_bits(const char *what, uint32_t type, int64_t n, int64_t nb, const float *ref,
                         const float *got, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (memcmp(&ref[i], &got[i], sizeof(float)) != 0)
            fail_msg("%s: %s n=%lld nb=%lld: output %zu is %.9g, scalar gives %.9g", what,
                     tensor_type_get(type)->name, (long long)n, (long long)nb, i, got[i], ref[i]);
    }
}

/* Runs one whole product with kernel set k into y (nb x rows). */
static void run_full(const kernels *k, uint32_t type, int64_t n, const uint8_t *w, int64_t rows,
                     const uint8_t *a, int64_t nb, float *y)
{
    k->mul_mat(type, n, w, (size_t)row_bytes(type, n), a, activation_row_bytes(type, n), nb, y,
               (size_t)rows, 0, rows);
}

/* The SIMD kernel sets this CPU runs, in a fixed order (at most 3). */
static size_t simd_sets(const kernels *sets[3])
{
    static const char *const names[] = {"avx2", "avx512", "neon"};
    size_t n = 0;
    for (size_t i = 0; i < 3; i++)
        if ((sets[n] = kernels_by_name(names[i])) != NULL)
            n++;
    return n;
}

/* Fills a 512-element row with data meant to break a vector quantizer that
 * is not the reference's twin: ordinary values, then per 32-element block
 * (kind = block % 8) an all-zero block, a NaN, +-infinity, values that sit
 * exactly on rounding ties once scaled, an extreme magnitude at both signs
 * (first-on-ties for Q8_K), denormals, and negative zeros. */
static void quantizer_row(float *x, int64_t n, int variant, rng *r)
{
    for (int64_t j = 0; j < n; j++)
        x[j] = rng_value(r);
    for (int64_t b = 0; b < n / 32; b++) {
        float *blk = x + 32 * b;
        switch ((b + variant) % 8) {
        case 0:
            memset(blk, 0, 32 * sizeof(float));
            break;
        case 1:
            blk[5] = NAN;
            break;
        case 2:
            blk[3] = INFINITY;
            blk[7] = -INFINITY;
            break;
        case 3: /* amax 127: every k + 0.5 is a tie of x * 1 */
            blk[0] = 127.0f;
            for (int j = 1; j < 32; j++)
                blk[j] = (float)(j % 9) - 4.5f;
            break;
        case 4:
            blk[2] = -3.0f;
            blk[9] = 3.0f;
            blk[20] = -3.0f;
            break;
        case 5:
            for (int j = 0; j < 32; j++)
                blk[j] = (float)(j + 1) * 1e-40f;
            break;
        case 6:
            for (int j = 0; j < 32; j += 2)
                blk[j] = -0.0f;
            break;
        default:
            break;
        }
    }
}

/* Every kernel set's activation quantizer writes the reference's bytes. */
static void test_quantizer_identical(void **state)
{
    (void)state;
    const uint32_t types[] = {TT_Q4_0, TT_Q4_1, TT_Q4_K, TT_F32};
    const int64_t n = 512;
    rng r = {0xabcdULL};
    const kernels *sets[3];
    const size_t n_sets = simd_sets(sets);
    for (size_t ki = 0; ki < n_sets; ki++) {
        const kernels *k = sets[ki];
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
            for (int variant = 0; variant < 8; variant++) {
                float x[512];
                const size_t ab = activation_row_bytes(types[ti], n);
                uint8_t *ref = malloc(ab), *got = malloc(ab);
                assert_non_null(ref);
                assert_non_null(got);
                quantizer_row(x, n, variant, &r);
                kernels_by_name("scalar")->quantize_activations(types[ti], x, ref, n);
                k->quantize_activations(types[ti], x, got, n);
                if (memcmp(ref, got, ab) != 0)
                    fail_msg("%s quantizer for %s weights (variant %d) differs from the reference",
                             k->name, tensor_type_get(types[ti])->name, variant);
                free(ref);
                free(got);
            }
    }
    if (!n_sets)
        printf("no SIMD kernel set on this CPU: quantizer comparison skipped\n");
}

/* Every non-scalar set this CPU runs equals scalar bit for bit, for every
 * type, several lengths and activation-row counts, realistic and raw data. */
static void test_simd_bit_identical(void **state)
{
    (void)state;
    const kernels *scalar = kernels_by_name("scalar");
    rng r = {0xfeedULL};
    const kernels *sets[3];
    const size_t n_sets = simd_sets(sets);
    for (size_t ki = 0; ki < n_sets; ki++) {
        const kernels *k = sets[ki];
        for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
            const uint32_t type = WEIGHT_TYPES[ti];
            const int64_t bs = block_of(type);
            const int64_t ns[] = {bs == 1 ? 172 : (bs == 32 ? 96 : 256), 512, bs == 1 ? 33 : 2048};
            const int64_t nbs[] = {1, 3, 4, 5, 9, 8, 17};
            for (size_t ni = 0; ni < 3; ni++) {
                for (size_t bi = 0; bi < 7; bi++) {
                    const int64_t n = ns[ni], nb = nbs[bi], rows = 19;
                    const int raw = (int)((ni + bi) % 2);
                    uint8_t *w = make_weights(type, rows, n, raw, &r);
                    uint8_t *a = make_activations(scalar, type, nb, n, NULL, &r);
                    float *ys = malloc((size_t)(rows * nb) * sizeof(float));
                    float *yk = malloc((size_t)(rows * nb) * sizeof(float));
                    run_full(scalar, type, n, w, rows, a, nb, ys);
                    run_full(k, type, n, w, rows, a, nb, yk);
                    compare_bits(k->name, type, n, nb, ys, yk, (size_t)(rows * nb));
                    free(ys);
                    free(yk);
                    free(w);
                    free(a);
                }
            }
        }
        /* rows of more than 16384 elements are too long for the x86 batch
         * tiles' scratch (kernels_x86_batch.h) and take the 4-row path; rows
         * above 512 legacy blocks convert activation scales per row there */
        for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
            const uint32_t type = WEIGHT_TYPES[ti];
            if (block_of(type) == 1)
                continue;
            const int64_t bs = block_of(type);
            const int64_t ns[] = {bs == 32 ? 32 * 520 : 256 * 120,
                                  bs == 32 ? 32 * 1030 : 256 * 130};
            for (size_t ni = 0; ni < 2; ni++) {
                const int64_t n = ns[ni], nb = 8, rows = 3;
                uint8_t *w = make_weights(type, rows, n, 1, &r);
                uint8_t *a = make_activations(scalar, type, nb, n, NULL, &r);
                float ys[24], yk[24];
                run_full(scalar, type, n, w, rows, a, nb, ys);
                run_full(k, type, n, w, rows, a, nb, yk);
                compare_bits(k->name, type, n, nb, ys, yk, 24);
                free(w);
                free(a);
            }
        }
        /* activation quantization is the same bytes on every path */
        const int64_t n = 1024;
        for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
            const uint32_t type = WEIGHT_TYPES[ti];
            rng r1 = {7}, r2 = {7};
            float *x1 = NULL, *x2 = NULL;
            uint8_t *a1 = make_activations(scalar, type, 1, n, &x1, &r1);
            uint8_t *a2 = make_activations(k, type, 1, n, &x2, &r2);
            assert_memory_equal(a1, a2, activation_row_bytes(type, n));
            free(a1);
            free(a2);
            free(x1);
            free(x2);
        }
        printf("kernel set %s: bit-identical to scalar for all %zu types\n", k->name,
               N_WEIGHT_TYPES);
    }
    if (!n_sets)
        printf("no SIMD kernel set on this CPU: nothing to compare with scalar\n");
}

/* The decode path (one activation row) of every SIMD set against scalar,
 * bit for bit, at lengths that leave every remainder of its 4-block and
 * 2-super-block steps, and beyond its prepared-activation capacity (512
 * blocks, 64 super-blocks), where it hands over to the general path. */
static void test_decode_lengths(void **state)
{
    (void)state;
    const kernels *scalar = kernels_by_name("scalar");
    rng r = {0xdec0deULL};
    const kernels *sets[3];
    const size_t n_sets = simd_sets(sets);
    for (size_t ki = 0; ki < n_sets; ki++) {
        const kernels *k = sets[ki];
        for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
            const uint32_t type = WEIGHT_TYPES[ti];
            const int64_t bs = block_of(type);
            if (bs == 1)
                continue;
            const int64_t blocks[] = {
                1, 2, 3, 5, 6, 7, 8, 9, bs == 32 ? 512 : 64, bs == 32 ? 513 : 65};
            for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
                const int64_t n = bs * blocks[i], rows = 5;
                uint8_t *w = make_weights(type, rows, n, (int)(i % 2), &r);
                uint8_t *a = make_activations(scalar, type, 1, n, NULL, &r);
                float ys[5], yk[5];
                run_full(scalar, type, n, w, rows, a, 1, ys);
                run_full(k, type, n, w, rows, a, 1, yk);
                compare_bits(k->name, type, n, 1, ys, yk, (size_t)rows);
                free(w);
                free(a);
            }
        }
    }
    if (!n_sets)
        printf("no SIMD kernel set on this CPU: decode path not exercised\n");
}

/* Splitting rows (as threads do) or feeding activation rows one at a time
 * (as decode does) changes no bit of any output, on every available path. */
static void test_split_independence(void **state)
{
    (void)state;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", kernels_available());
    rng r = {4242};
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save)) {
        const kernels *k = kernels_by_name(tok);
        for (size_t ti = 0; ti < N_WEIGHT_TYPES; ti++) {
            const uint32_t type = WEIGHT_TYPES[ti];
            const int64_t n = block_of(type) == 256 ? 768 : 160, rows = 37, nb = 7;
            const size_t ab = activation_row_bytes(type, n);
            const size_t wb = (size_t)row_bytes(type, n);
            uint8_t *w = make_weights(type, rows, n, 0, &r);
            uint8_t *a = make_activations(k, type, nb, n, NULL, &r);
            float *full = malloc((size_t)(rows * nb) * sizeof(float));
            float *part = malloc((size_t)(rows * nb) * sizeof(float));
            run_full(k, type, n, w, rows, a, nb, full);
            /* uneven row ranges, all activation rows at once */
            const int64_t cuts[] = {0, 1, 6, 17, 18, 37};
            for (int c = 0; c + 1 < 6; c++)
                k->mul_mat(type, n, w, wb, a, ab, nb, part, (size_t)rows, cuts[c], cuts[c + 1]);
            compare_bits("row split", type, n, nb, full, part, (size_t)(rows * nb));
            /* one activation row at a time, one weight row at a time */
            memset(part, 0, (size_t)(rows * nb) * sizeof(float));
            for (int64_t b = 0; b < nb; b++)
                for (int64_t row = 0; row < rows; row++)
                    k->mul_mat(type, n, w, wb, a + (size_t)b * ab, ab, 1, part + b * rows, 1, row,
                               row + 1);
            compare_bits("single rows", type, n, nb, full, part, (size_t)(rows * nb));
            free(full);
            free(part);
            free(w);
            free(a);
        }
    }
}

/* Real weights as llama.cpp's quantizers wrote them (../shared/models):
 * for every tensor type in the kq-*.gguf files, 24 rows of one tensor
 * against 5 random activation rows: scalar agrees with the dequantized dot
 * and every SIMD path agrees with scalar bit for bit. */
static void test_shared_model_weights(void **state)
{
    (void)state;
    static const char *files[] = {"kq-f16.gguf",  "kq-bf16.gguf", "kq-q8_0.gguf",  "kq-q4_0.gguf",
                                  "kq-q4_1.gguf", "kq-q5_0.gguf", "kq-q5_1.gguf",  "kq-q4_k.gguf",
                                  "kq-q5_k.gguf", "kq-q6_k.gguf", "kq-q4_k_m.gguf"};
    const kernels *scalar = kernels_by_name("scalar");
    const kernels *sets[3];
    const size_t n_sets = simd_sets(sets);
    rng r = {31337};
    if (!test_shared_dir()) {
        printf("skipped: ../shared is absent\n");
        skip();
    }
    for (size_t fi = 0; fi < sizeof files / sizeof files[0]; fi++) {
        char path[4096], rel[256], err[256];
        size_t len = 0;
        snprintf(rel, sizeof rel, "models/%s", files[fi]);
        if (!test_shared_path(path, sizeof path, rel)) {
            printf("skipped: ../shared/%s is absent\n", rel);
            continue;
        }
        unsigned char *bytes = test_read_file(path, &len);
        assert_non_null(bytes);
        gguf_file *g = gguf_open(bytes, len, err, sizeof err);
        if (!g)
            fail_msg("%s: %s", files[fi], err);
        uint32_t seen[TT_COUNT] = {0};
        for (size_t ti = 0; ti < gguf_tensor_count(g); ti++) {
            const gguf_tensor *t = gguf_tensor_at(g, ti);
            if (t->type == TT_F32 || t->n_dims != 2 || seen[t->type]++)
                continue; /* one matrix per type per file */
            const int64_t n = (int64_t)t->ne[0], rows = t->ne[1] < 24 ? (int64_t)t->ne[1] : 24;
            const int64_t nb = 5;
            const size_t wb = (size_t)row_bytes(t->type, n), ab = activation_row_bytes(t->type, n);
            float *xs = NULL;
            uint8_t *a = make_activations(scalar, t->type, nb, n, &xs, &r);
            float *ys = malloc(sizeof(float) * (size_t)(rows * nb));
            float *yk = malloc(sizeof(float) * (size_t)(rows * nb));
            float *dw = malloc(sizeof(float) * (size_t)n), *da = malloc(sizeof(float) * (size_t)n);
            scalar->mul_mat(t->type, n, t->data, wb, a, ab, nb, ys, (size_t)rows, 0, rows);
            for (int64_t row = 0; row < rows; row++) {
                const uint8_t *wrow = (const uint8_t *)t->data + (size_t)row * wb;
                assert_int_equal(dequantize_row(t->type, wrow, dw, n), 0);
                assert_int_equal(dequantize_row(activation_type(t->type), a, da, n), 0);
                double ref = 0.0, mag = 0.0;
                for (int64_t j = 0; j < n; j++) {
                    ref += (double)dw[j] * da[j];
                    mag += fabs((double)dw[j] * da[j]);
                }
                const double slack = 2e-5 * mag + min_term_slack(t->type, wrow, a, n);
                if (!(fabs(ys[row] - ref) <= slack))
                    fail_msg("%s %s row %lld: scalar %.9g, dequantized dot %.9g", files[fi],
                             tensor_type_get(t->type)->name, (long long)row, ys[row], ref);
            }
            for (size_t ki = 0; ki < n_sets; ki++) {
                const kernels *k = sets[ki];
                k->mul_mat(t->type, n, t->data, wb, a, ab, nb, yk, (size_t)rows, 0, rows);
                compare_bits(k->name, t->type, n, nb, ys, yk, (size_t)(rows * nb));
            }
            printf("%-15s %-5s %lld x %lld: scalar matches dequantized dot; SIMD bit-identical\n",
                   files[fi], tensor_type_get(t->type)->name, (long long)rows, (long long)n);
            free(xs);
            free(a);
            free(ys);
            free(yk);
            free(dw);
            free(da);
        }
        gguf_close(g);
        free(bytes);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_selection),
        cmocka_unit_test(test_kernels_check_passes),
        cmocka_unit_test(test_kernels_check_catches_a_difference),
        cmocka_unit_test(test_activation_formats),
        cmocka_unit_test(test_scalar_matches_dequantized_dot),
        cmocka_unit_test(test_simd_bit_identical),
        cmocka_unit_test(test_quantizer_identical),
        cmocka_unit_test(test_decode_lengths),
        cmocka_unit_test(test_split_independence),
        cmocka_unit_test(test_shared_model_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
