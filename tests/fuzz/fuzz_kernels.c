/* libFuzzer target for the kernels: arbitrary bytes become weight rows of a
 * supported type (any fp16 scale, including inf and NaN) and arbitrary
 * floats become activations. Every kernel set this CPU has must give the
 * scalar result bit for bit (or NaN where scalar gives NaN: NaN payloads
 * are not part of the contract) and quantize activations to the reference's
 * bytes, and dequantize_row must read only its
 * row. Layout of an input: type selector, nb, rows, length selector, then
 * weight bytes, then activation floats (zeros when the input runs out). */
#include "engine/quant.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t TYPES[] = {TT_F32,  TT_F16,  TT_BF16, TT_Q4_0, TT_Q4_1, TT_Q5_0,
                                 TT_Q5_1, TT_Q8_0, TT_Q4_K, TT_Q5_K, TT_Q6_K};

/* Copies up to len bytes from the input cursor into dst, zero-filling the
 * rest when the input is exhausted. */
static void take(const uint8_t **p, size_t *left, void *dst, size_t len)
{
    size_t n = *left < len ? *left : len;
    memcpy(dst, *p, n);
    memset((uint8_t *)dst + n, 0, len - n);
    *p += n;
    *left -= n;
}

static int same_result(float a, float b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    const uint32_t type = TYPES[data[0] % (sizeof TYPES / sizeof TYPES[0])];
    const int64_t nb = 1 + data[1] % 5, rows = 1 + data[2] % 4;
    const int64_t block = tensor_type_get(type)->block;
    const int64_t n = block == 1 ? 1 + data[3] % 70 : block * (1 + data[3] % 3);
    const uint8_t *p = data + 4;
    size_t left = size - 4;
    uint64_t rb;
    if (tensor_row_bytes(type, (uint64_t)n, &rb) != 0)
        __builtin_trap();
    const size_t ab = activation_row_bytes(type, n);
    uint8_t *w = malloc((size_t)rb * (size_t)rows);
    uint8_t *a = malloc(ab * (size_t)nb), *a2 = malloc(ab);
    float *x = malloc(sizeof(float) * (size_t)n);
    float *y0 = malloc(sizeof(float) * (size_t)(rows * nb));
    float *y1 = malloc(sizeof(float) * (size_t)(rows * nb));
    if (!w || !a || !a2 || !x || !y0 || !y1)
        goto out;
    take(&p, &left, w, (size_t)rb * (size_t)rows);
    const kernels *scalar = kernels_by_name("scalar");
    static const char *const names[] = {"avx2", "avx512", "neon"};
    for (int64_t b = 0; b < nb; b++) {
        take(&p, &left, x, sizeof(float) * (size_t)n);
        scalar->quantize_activations(type, x, a + (size_t)b * ab, n);
        /* every set's quantizer writes the reference's bytes */
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            const kernels *ks = kernels_by_name(names[k]);
            if (!ks)
                continue;
            ks->quantize_activations(type, x, a2, n);
            if (memcmp(a2, a + (size_t)b * ab, ab) != 0)
                __builtin_trap(); /* a SIMD quantizer differs from the reference */
        }
    }
    for (int64_t r = 0; r < rows; r++)
        if (dequantize_row(type, w + (size_t)r * rb, x, n) != 0)
            __builtin_trap();
    scalar->mul_mat(type, n, w, rb, a, ab, nb, y0, (size_t)rows, 0, rows);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const kernels *ks = kernels_by_name(names[k]);
        if (!ks)
            continue;
        ks->mul_mat(type, n, w, rb, a, ab, nb, y1, (size_t)rows, 0, rows);
        for (int64_t i = 0; i < rows * nb; i++)
            if (!same_result(y0[i], y1[i]))
                __builtin_trap(); /* a SIMD path differs from scalar */
    }
out:
    free(w);
    free(a);
    free(a2);
    free(x);
    free(y0);
    free(y1);
    return 0;
}
