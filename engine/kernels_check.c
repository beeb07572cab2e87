/* Known-answer check of a kernel set against the scalar reference, bit for
 * bit: the activation quantizer's bytes and the products of every supported
 * weight type, on deterministic pseudo-random inputs that reach each path a
 * set has (one activation row, small batches, 4- and 8-row tiles, whole
 * lane groups and their tails), and the attention helpers (every half
 * converted; dots and row updates with and without a tail). Model loading
 * runs the quick form before it trusts a SIMD set, so a set that computes
 * anything differently on some CPU (a compiler or emulator fault, a path
 * never run on that CPU family) is passed over instead of silently
 * breaking the replay of attestations; `appliance version` and
 * tests/kernels_selfcheck.c (under qemu-aarch64 too) run the thorough
 * form. */
#include "kernels_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t check_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float check_uniform(uint64_t *s) /* [-1, 1) */
{
    return (float)((double)(check_next(s) >> 11) / 4503599627370496.0 - 1.0);
}

/* Rows of weights: quantized random floats, or (raw) random bytes whose
 * fp16 scale fields are then set to modest finite values, so every code
 * value and bit pattern of the blocks occurs. */
static int fill_weights(uint32_t type, uint8_t *w, size_t rb, int64_t rows, int64_t n, int raw,
                        float *x, uint64_t *s)
{
    const tensor_type_info *t = tensor_type_get(type);
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = w + rb * (size_t)r;
        for (int64_t j = 0; j < n; j++)
            x[j] = check_uniform(s) * 0.05f;
        if (quantize_row(type, x, row, n) != 0)
            return -1;
        if (!raw || t->block == 1)
            continue;
        for (size_t i = 0; i < rb; i++)
            row[i] = (uint8_t)check_next(s);
        for (uint8_t *b = row; b < row + rb; b += t->bytes) {
            const size_t d_at = type == TT_Q6_K ? 208 : 0;
            uint16_t h = fp32_to_fp16(check_uniform(s) * 0.02f);
            memcpy(b + d_at, &h, 2);
            if (type == TT_Q4_1 || type == TT_Q5_1 || type == TT_Q4_K || type == TT_Q5_K) {
                h = fp32_to_fp16(check_uniform(s) * 0.02f);
                memcpy(b + 2, &h, 2);
            }
        }
    }
    return 0;
}

/* The buffers of one case, sized for the largest. */
typedef struct check_bufs {
    uint8_t *w, *a, *a_ref;
    float *x, *y, *y_ref;
} check_bufs;

enum { CHECK_ROWS = 21, CHECK_MAX_N = 1024, CHECK_MAX_NB = 9 };

/* One case: 0 when k equals scalar, 1 on a difference (err says where). */
static int check_case(const kernels *k, uint32_t type, int64_t n, int64_t nb, int raw,
                      const check_bufs *c, uint64_t *s, char *err, size_t errlen)
{
    const char *tn = tensor_type_get(type)->name;
    uint64_t rb;
    const size_t ab = activation_row_bytes(type, n);
    if (tensor_row_bytes(type, (uint64_t)n, &rb) != 0 || ab == 0 ||
        fill_weights(type, c->w, (size_t)rb, CHECK_ROWS, n, raw, c->x, s) != 0) {
        snprintf(err, errlen, "kernel check: cannot make %s weights of %lld", tn, (long long)n);
        return 1;
    }
    for (int64_t b = 0; b < nb; b++) {
        for (int64_t j = 0; j < n; j++)
            c->x[j] = check_uniform(s) * (b % 3 == 2 ? 1e-3f : 1.0f);
        k->quantize_activations(type, c->x, c->a + (size_t)b * ab, n);
        kernels_scalar.quantize_activations(type, c->x, c->a_ref + (size_t)b * ab, n);
        if (memcmp(c->a + (size_t)b * ab, c->a_ref + (size_t)b * ab, ab) != 0) {
            snprintf(err, errlen,
                     "kernel set %s: %s activation quantizer differs from scalar (n=%lld)", k->name,
                     tn, (long long)n);
            return 1;
        }
    }
    kernels_scalar.mul_mat(type, n, c->w, (size_t)rb, c->a, ab, nb, c->y_ref, CHECK_ROWS, 0,
                           CHECK_ROWS);
    k->mul_mat(type, n, c->w, (size_t)rb, c->a, ab, nb, c->y, CHECK_ROWS, 0, CHECK_ROWS);
    for (int64_t i = 0; i < CHECK_ROWS * nb; i++)
        if (memcmp(&c->y[i], &c->y_ref[i], sizeof(float)) != 0) {
            snprintf(err, errlen,
                     "kernel set %s: %s n=%lld nb=%lld%s output %lld is %.9g, scalar %.9g", k->name,
                     tn, (long long)n, (long long)nb, raw ? " (raw blocks)" : "", (long long)i,
                     (double)c->y[i], (double)c->y_ref[i]);
            return 1;
        }
    return 0;
}

static void free_bufs(check_bufs *c)
{
    free(c->w);
    free(c->a);
    free(c->a_ref);
    free(c->x);
    free(c->y);
    free(c->y_ref);
}

/* The attention helpers: every half converted, and dots and row updates at
 * a head's length and at one with a tail. 0 when k equals scalar. */
static int check_attention(const kernels *k, uint64_t *s, char *err, size_t errlen)
{
    enum { HALVES = 65536, N = 64, ROWS = 5 };
    uint16_t *h = malloc(HALVES * sizeof *h);
    float *f = malloc(HALVES * sizeof *f), *f_ref = malloc(HALVES * sizeof *f_ref);
    int rc = 0;
    if (!h || !f || !f_ref) {
        snprintf(err, errlen, "kernel check: out of memory");
        rc = -1;
        goto out;
    }
    for (uint32_t i = 0; i < HALVES; i++)
        h[i] = (uint16_t)i;
    k->f16_to_f32(h, f, HALVES);
    kernels_scalar.f16_to_f32(h, f_ref, HALVES);
    for (uint32_t i = 0; rc == 0 && i < HALVES; i++)
        if (memcmp(&f[i], &f_ref[i], sizeof *f) != 0) {
            uint32_t got, want;
            memcpy(&got, &f[i], 4);
            memcpy(&want, &f_ref[i], 4);
            snprintf(err, errlen, "kernel set %s: half 0x%04x converts to 0x%08x, scalar 0x%08x",
                     k->name, i, got, want);
            rc = 1;
        }
    /* in f: ROWS + 1 rows of N (the queries and, last, the key of the dots;
     * rows 1.. are the value rows of the updates) and the ROWS row weights;
     * in f_ref: y twice */
    for (uint32_t n = N - 27; rc == 0 && n <= N; n += 27) {
        float *x = f, *a = f + N * (ROWS + 1), *y = f_ref, *y_ref = f_ref + N;
        for (uint32_t i = 0; i < N * (ROWS + 1) + ROWS; i++)
            f[i] = check_uniform(s);
        for (uint32_t i = 0; i < N; i++)
            y[i] = y_ref[i] = check_uniform(s);
        /* ROWS query rows (an odd count) against the last row of x */
        float d[ROWS], d_ref[ROWS];
        k->dot_f32(x, N, ROWS, x + N * ROWS, n, d);
        kernels_scalar.dot_f32(x, N, ROWS, x + N * ROWS, n, d_ref);
        k->axpy_rows(y, a, x + N, ROWS, n);
        kernels_scalar.axpy_rows(y_ref, a, x + N, ROWS, n);
        uint32_t g = 0;
        while (g < ROWS && memcmp(&d[g], &d_ref[g], sizeof *d) == 0)
            g++;
        if (g < ROWS) {
            snprintf(err, errlen, "kernel set %s: attention dot %u of %u is %.9g, scalar %.9g",
                     k->name, g, n, (double)d[g], (double)d_ref[g]);
            rc = 1;
        } else if (memcmp(y, y_ref, n * sizeof *y) != 0) {
            snprintf(err, errlen, "kernel set %s: attention row update of %u differs from scalar",
                     k->name, n);
            rc = 1;
        }
    }
out:
    free(h);
    free(f);
    free(f_ref);
    return rc;
}

int kernels_check(const kernels *k, int thorough, int *cases, char *err, size_t errlen)
{
    static const uint32_t types[] = {TT_F32,  TT_F16,  TT_BF16, TT_Q4_0, TT_Q4_1, TT_Q5_0,
                                     TT_Q5_1, TT_Q8_0, TT_Q4_K, TT_Q5_K, TT_Q6_K};
    /* 1: decode; 3: small batch; 6: a 4-row tile and a rest; 9: an 8-row
     * tile and a rest */
    static const int64_t nbs[] = {1, 3, 6, 9};
    const size_t max_row = (size_t)CHECK_MAX_N * 4; /* F32: the widest row and activation */
    check_bufs c = {malloc(max_row * CHECK_ROWS),
                    malloc(max_row * CHECK_MAX_NB),
                    malloc(max_row * CHECK_MAX_NB),
                    malloc(sizeof(float) * CHECK_MAX_N),
                    malloc(sizeof(float) * CHECK_ROWS * CHECK_MAX_NB),
                    malloc(sizeof(float) * CHECK_ROWS * CHECK_MAX_NB)};
    uint64_t s = 0x243F6A8885A308D3ULL;
    int n_cases = 0, rc = 0;
    if (!c.w || !c.a || !c.a_ref || !c.x || !c.y || !c.y_ref) {
        snprintf(err, errlen, "kernel check: out of memory");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < sizeof types / sizeof types[0]; i++) {
        const int64_t blk = tensor_type_get(types[i])->block;
        /* the quick lengths fill whole lane groups (8 blocks, 2 super-blocks)
         * plus a tail where the type has one; thorough adds a long row */
        const int64_t ns[] = {blk == 1 ? 37 : blk == 32 ? 288 : 768, CHECK_MAX_N};
        for (int ni = 0; rc == 0 && ni < (thorough ? 2 : 1); ni++)
            for (size_t bi = 0; rc == 0 && bi < sizeof nbs / sizeof nbs[0]; bi++)
                for (int raw = 0; rc == 0 && raw < 2; raw++) {
                    rc = check_case(k, types[i], ns[ni], nbs[bi], raw, &c, &s, err, errlen);
                    n_cases += rc == 0;
                }
    }
    free_bufs(&c);
    if (rc == 0) {
        rc = check_attention(k, &s, err, errlen);
        n_cases += rc == 0;
    }
    if (cases)
        *cases = n_cases;
    return rc;
}
