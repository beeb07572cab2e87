/* Micro-benchmark of mul_mat (not a test; built and run by
 * scripts/bench-kernels). For each weight type, a 2048x2048 matrix, one
 * thread:
 *  - decode (nb=1): GB/s of weight bytes streamed; the matrices are cycled
 *    through a pool larger than the last-level cache, so it is DRAM traffic;
 *  - prefill (nb=128): GFLOP/s counted as 2*rows*n*nb.
 * Prints the median of several runs for every kernel set this CPU has. Time
 * is this thread's CPU time, so a busy shared machine inflates it less. */
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DIM        2048
#define RUNS       9
#define POOL_BYTES (160u << 20)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static float rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((double)(*s >> 11) / 9007199254740992.0 - 0.5);
}

static int bench_type(uint32_t type)
{
    uint64_t rb, seed = 0x9E3779B97F4A7C15ULL;
    if (tensor_row_bytes(type, DIM, &rb) != 0)
        return -1;
    const size_t mat = (size_t)rb * DIM;
    const size_t copies = POOL_BYTES / mat + 1;
    uint8_t *pool = malloc(mat * copies);
    float *row = malloc(DIM * sizeof(float));
    const int64_t nb_pf = 128;
    const size_t ab = activation_row_bytes(type, DIM);
    uint8_t *act = malloc(ab * (size_t)nb_pf);
    float *y = malloc(sizeof(float) * DIM * (size_t)nb_pf);
    if (!pool || !row || !act || !y)
        return -1;
    for (int r = 0; r < DIM; r++) {
        for (int j = 0; j < DIM; j++)
            row[j] = rnd(&seed);
        if (quantize_row(type, row, pool + (size_t)r * rb, DIM) != 0)
            return -1;
    }
    for (size_t c = 1; c < copies; c++)
        memcpy(pool + c * mat, pool, mat);
    const kernels *scalar = kernels_by_name("scalar");
    for (int64_t b = 0; b < nb_pf; b++) {
        for (int j = 0; j < DIM; j++)
            row[j] = rnd(&seed);
        scalar->quantize_activations(type, row, act + (size_t)b * ab, DIM);
    }
    char names[128];
    snprintf(names, sizeof names, "%s", kernels_available());
    for (char *save = NULL, *tok = strtok_r(names, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save)) {
        const kernels *k = kernels_by_name(tok);
        double t1[RUNS], t128[RUNS];
        size_t c = 0;
        for (int run = 0; run < RUNS; run++) {
            /* decode: enough matrices per sample to leave the cache */
            const int reps = (int)(copies < 16 ? copies : 16);
            double t0 = now_s();
            for (int i = 0; i < reps; i++, c = (c + 1) % copies)
                k->mul_mat(type, DIM, pool + c * mat, rb, act, ab, 1, y, DIM, 0, DIM);
            t1[run] = (now_s() - t0) / reps;
        }
        const int pf_runs = strcmp(tok, "scalar") == 0 ? 3 : RUNS;
        for (int run = 0; run < pf_runs; run++) {
            double t0 = now_s();
            k->mul_mat(type, DIM, pool, rb, act, ab, nb_pf, y, DIM, 0, DIM);
            t128[run] = now_s() - t0;
        }
        printf("%-5s %-7s nb=1: %7.2f GB/s (%.3f ms)   nb=128: %7.2f GFLOP/s (%.1f ms)\n",
               tensor_type_get(type)->name, tok, (double)mat / median(t1, RUNS) / 1e9,
               median(t1, RUNS) * 1e3, 2.0 * DIM * DIM * nb_pf / median(t128, pf_runs) / 1e9,
               median(t128, pf_runs) * 1e3);
        fflush(stdout);
    }
    free(pool);
    free(row);
    free(act);
    free(y);
    return 0;
}

int main(int argc, char **argv)
{
    static const uint32_t types[] = {TT_Q4_0, TT_Q8_0, TT_Q4_K, TT_Q6_K, TT_F16};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (argc > 1 && strcmp(argv[1], tensor_type_get(types[i])->name) != 0)
            continue;
        if (bench_type(types[i]) != 0) {
            fprintf(stderr, "bench_kernels: setup failed for %s\n",
                    tensor_type_get(types[i])->name);
            return 1;
        }
    }
    return 0;
}
