/* Activation quantization (engine/act_quant.c) reproduces llama.cpp's codes:
 * hand-computed blocks for Q8_0 (ties to even, id = 127/amax), Q8_1 (with
 * s = d * sum) and Q8_K (scale from the signed element of largest
 * magnitude, codes capped at 127, block sums). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/kernels_impl.h"
#include "engine/model.h"

static void test_q8_0_ties_to_even(void **state)
{
    (void)state;
    float x[32] = {0};
    x[0] = 127.0f; /* amax 127: id = 1, d = 1 */
    x[1] = 2.5f;   /* tie: to even 2 */
    x[2] = 3.5f;   /* tie: to even 4 */
    x[3] = -2.5f;
    x[4] = 0.49f;
    x[5] = -126.6f;
    block_q8_0 b;
    assert_int_equal(quantize_activations_reference(TT_Q4_0, x, &b, 32), 0);
    assert_true(fp16_to_fp32(b.d) == 1.0f);
    assert_int_equal(b.qs[0], 127);
    assert_int_equal(b.qs[1], 2);
    assert_int_equal(b.qs[2], 4);
    assert_int_equal(b.qs[3], -2);
    assert_int_equal(b.qs[4], 0);
    assert_int_equal(b.qs[5], -127);
    for (int j = 6; j < 32; j++)
        assert_int_equal(b.qs[j], 0);
}

static void test_q8_1_sum(void **state)
{
    (void)state;
    float x[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 8) / 4.0f; /* amax 23/4: d = 23/508 */
    block_q8_1 b;
    assert_int_equal(quantize_activations_reference(TT_Q4_1, x, &b, 32), 0);
    float d = (23.0f / 4.0f) / 127.0f, id = 127.0f / (23.0f / 4.0f);
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        assert_int_equal(b.qs[j], (int)rintf(x[j] * id));
        sum += b.qs[j];
    }
    assert_int_equal(b.qs[31], 127);
    assert_true(b.d == fp32_to_fp16(d));
    assert_true(b.s == fp32_to_fp16(d * (float)sum));
}

static void test_q8_K_signed_scale(void **state)
{
    (void)state;
    float x[256];
    for (int j = 0; j < 256; j++)
        x[j] = 0.01f * (float)(j % 7);
    x[10] = -2.0f; /* largest magnitude, negative: iscale = 63.5 */
    x[11] = 2.0f;  /* same magnitude later: the first one wins */
    block_q8_K b;
    assert_int_equal(quantize_activations_reference(TT_Q4_K, x, &b, 256), 0);
    assert_true(b.d == 1.0f / 63.5f);
    assert_int_equal(b.qs[10], -127);
    assert_int_equal(b.qs[11], 127);
    assert_int_equal(b.qs[1], (int)rintf(63.5f * 0.01f));
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += b.qs[16 * g + j];
        assert_int_equal(b.bsums[g], s);
    }
    /* positive maximum: iscale negative, so the maximum codes as -127 */
    x[10] = 0;
    assert_int_equal(quantize_activations_reference(TT_Q6_K, x, &b, 256), 0);
    assert_int_equal(b.qs[11], -127);
    assert_true(b.d < 0);
    /* all zero: zero block */
    memset(x, 0, sizeof x);
    assert_int_equal(quantize_activations_reference(TT_Q5_K, x, &b, 256), 0);
    assert_true(b.d == 0.0f);
    /* float weights have no 8-bit activation format */
    assert_int_equal(quantize_activations_reference(TT_F16, x, &b, 256), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_0_ties_to_even),
        cmocka_unit_test(test_q8_1_sum),
        cmocka_unit_test(test_q8_K_signed_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
