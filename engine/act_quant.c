/* Activation quantization that reproduces llama.cpp's x86 build bit for bit
 * (Q8_0 and Q8_1: quantize_row_q8_0/q8_1 AVX2 paths; Q8_K:
 * quantize_row_q8_K_ref), written to the GGML block layouts the kernels
 * read. Agreeing on these codes is what lets our logits match the
 * reference to ~1e-6 rather than ~2e-2: an activation one code off changes
 * a logit by ~0.5% of the row's spread. One scalar function serves every
 * kernel path, so results stay identical across paths. */
#include "kernels_impl.h"
#include "model.h"

#include <math.h>
#include <string.h>

static float block_abs_max(const float *x, int n)
{
    float m = 0.0f;
    for (int j = 0; j < n; j++)
        m = fabsf(x[j]) > m ? fabsf(x[j]) : m;
    return m;
}

/* d = amax/127 (stored F16), codes round-half-even(x * (127/amax)). */
static int quantize_block8(const float *x, int8_t *qs, float *d)
{
    float amax = block_abs_max(x, 32), id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    *d = amax / 127.0f;
    for (int j = 0; j < 32; j++) {
        qs[j] = (int8_t)rintf(x[j] * id);
        sum += qs[j];
    }
    return sum;
}

static void quantize_q8_0(const float *x, block_q8_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d;
        quantize_block8(x + 32 * i, y[i].qs, &d);
        y[i].d = fp32_to_fp16(d);
    }
}

static void quantize_q8_1(const float *x, block_q8_1 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        float d;
        int sum = quantize_block8(x + 32 * i, y[i].qs, &d);
        y[i].d = fp32_to_fp16(d);
        y[i].s = fp32_to_fp16(d * (float)sum);
    }
}

/* The element of largest magnitude (first one on ties) sets iscale =
 * -127/max; codes are min(127, round-half-even(iscale * x)); d = 1/iscale. */
static void quantize_q8_K(const float *x, block_q8_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 256) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 256; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < 256; j++) {
            float v = rintf(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127.0f ? v : 127.0f);
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += y[i].qs[16 * g + j];
            y[i].bsums[g] = (int16_t)s;
        }
        y[i].d = 1.0f / iscale;
    }
}

int quantize_activations_reference(uint32_t weight_type, const float *x, void *out, int64_t n)
{
    switch (activation_type(weight_type)) {
    case TT_Q8_0:
        quantize_q8_0(x, out, n / 32);
        return 0;
    case TT_Q8_1:
        quantize_q8_1(x, out, n / 32);
        return 0;
    case TT_Q8_K:
        quantize_q8_K(x, out, n / 256);
        return 0;
    default:
        return -1;
    }
}
