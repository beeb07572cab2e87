/* Stand-alone kernel self-check with no test framework, so it also runs on
 * other architectures (scripts/cross-check-neon runs it under qemu-aarch64).
 * For every kernel set this CPU has and every supported weight type: the
 * result equals scalar bit for bit, over several lengths and activation-row
 * counts, on quantizer-made and on raw random blocks. Exit 0 when all agree,
 * 1 on the first difference (printed). The cmocka suite
 * (tests/unit/test_kernels.c) covers more on the build machine. */
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float uniform(uint64_t *s) /* [-1, 1) */
{
    return (float)((double)(next(s) >> 11) / 4503599627370496.0 - 1.0);
}

/* Fills rows of type with quantized random floats, or (raw) random bytes
 * whose fp16 scale fields are then set to modest finite values. */
static int fill_weights(uint32_t type, uint8_t *w, int64_t rows, int64_t n, int raw, uint64_t *s)
{
    const tensor_type_info *t = tensor_type_get(type);
    uint64_t rb;
    if (tensor_row_bytes(type, (uint64_t)n, &rb) != 0)
        return -1;
    float *x = malloc((size_t)n * sizeof(float));
    if (!x)
        return -1;
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = w + (size_t)(rb * (uint64_t)r);
        for (int64_t j = 0; j < n; j++)
            x[j] = uniform(s) * 0.05f;
        if (quantize_row(type, x, row, n) != 0) {
            free(x);
            return -1;
        }
        if (!raw || t->block == 1)
            continue;
        for (uint64_t i = 0; i < rb; i++)
            row[i] = (uint8_t)next(s);
        for (uint8_t *b = row; b < row + rb; b += t->bytes) {
            const size_t off = type == TT_Q6_K ? 208 : 0;
            uint16_t h = fp32_to_fp16(uniform(s) * 0.02f);
            memcpy(b + off, &h, 2);
            if (type == TT_Q4_1 || type == TT_Q5_1 || type == TT_Q4_K || type == TT_Q5_K) {
                h = fp32_to_fp16(uniform(s) * 0.02f);
                memcpy(b + 2, &h, 2);
            }
        }
    }
    free(x);
    return 0;
}

static int check(const kernels *k, uint32_t type, int64_t n, int64_t nb, int raw, uint64_t *s)
{
    const kernels *scalar = kernels_by_name("scalar");
    const int64_t rows = 21;
    uint64_t rb;
    const size_t ab = activation_row_bytes(type, n);
    if (tensor_row_bytes(type, (uint64_t)n, &rb) != 0 || ab == 0)
        return -1;
    uint8_t *w = malloc((size_t)(rb * rows));
    uint8_t *a = malloc(ab * (size_t)nb);
    float *x = malloc((size_t)n * sizeof(float));
    float *y0 = malloc(sizeof(float) * (size_t)(rows * nb));
    float *y1 = malloc(sizeof(float) * (size_t)(rows * nb));
    int rc = -1;
    if (!w || !a || !x || !y0 || !y1 || fill_weights(type, w, rows, n, raw, s) != 0)
        goto out;
    for (int64_t b = 0; b < nb; b++) {
        for (int64_t j = 0; j < n; j++)
            x[j] = uniform(s);
        k->quantize_activations(type, x, a + (size_t)b * ab, n);
    }
    scalar->mul_mat(type, n, w, rb, a, ab, nb, y0, (size_t)rows, 0, rows);
    k->mul_mat(type, n, w, rb, a, ab, nb, y1, (size_t)rows, 0, rows);
    rc = 0;
    for (int64_t i = 0; i < rows * nb; i++) {
        if (memcmp(&y0[i], &y1[i], sizeof(float)) != 0) {
            printf("MISMATCH %s %s n=%lld nb=%lld raw=%d out %lld: %.9g vs scalar %.9g\n", k->name,
                   tensor_type_get(type)->name, (long long)n, (long long)nb, raw, (long long)i,
                   y1[i], y0[i]);
            rc = 1;
            break;
        }
    }
out:
    free(w);
    free(a);
    free(x);
    free(y0);
    free(y1);
    return rc;
}

int main(void)
{
    static const uint32_t types[] = {TT_F32,  TT_F16,  TT_BF16, TT_Q4_0, TT_Q4_1, TT_Q5_0,
                                     TT_Q5_1, TT_Q8_0, TT_Q4_K, TT_Q5_K, TT_Q6_K};
    char names[128];
    uint64_t s = 0x243F6A8885A308D3ULL;
    int checked = 0;
    snprintf(names, sizeof names, "%s", kernels_available());
    for (char *save = NULL, *tok = strtok_r(names, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save)) {
        const kernels *k = kernels_by_name(tok);
        if (!k) {
            printf("kernel set %s advertised but not resolvable\n", tok);
            return 1;
        }
        if (strcmp(tok, "scalar") == 0)
            continue;
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            const int64_t blk = tensor_type_get(types[i])->block;
            const int64_t ns[] = {blk == 1 ? 37 : blk == 32 ? 96 : 256, 1024};
            const int64_t nbs[] = {1, 3, 6};
            for (int ni = 0; ni < 2; ni++)
                for (int bi = 0; bi < 3; bi++)
                    for (int raw = 0; raw < 2; raw++) {
                        int rc = check(k, types[i], ns[ni], nbs[bi], raw, &s);
                        if (rc != 0) {
                            if (rc < 0)
                                printf("setup failed for %s\n", tensor_type_get(types[i])->name);
                            return 1;
                        }
                        checked++;
                    }
        }
        printf("kernel set %s: bit-identical to scalar (%d cases)\n", tok, checked);
    }
    printf("kernels available: %s\n", kernels_available());
    return 0;
}
