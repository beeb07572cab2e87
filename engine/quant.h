/* Tensor types, quantized block formats and the compute kernels
 * (internal to engine/).
 *
 * Type ids are GGML's, as stored in GGUF tensor infos. Every kernel has a
 * scalar reference; SIMD variants (AVX2+FMA, AVX-512/VNNI, NEON) are chosen
 * at run time and must produce bit-identical results to the scalar one:
 * integer dot products inside a block are exact, and every float step
 * (block scales, accumulation across blocks) happens in one fixed order and
 * precision on every path. Where a type cannot be made exact, quant.c says so.
 *
 * Matrix products take activations already quantized to the weight type's
 * activation format (activation_type()), so one quantization of x serves
 * every row and every thread. */
#ifndef ENGINE_QUANT_H
#define ENGINE_QUANT_H

#include <stddef.h>
#include <stdint.h>

enum tensor_type {
    TT_F32 = 0,
    TT_F16 = 1,
    TT_Q4_0 = 2,
    TT_Q4_1 = 3,
    TT_Q5_0 = 6,
    TT_Q5_1 = 7,
    TT_Q8_0 = 8,
    TT_Q8_1 = 9,
    TT_Q2_K = 10,
    TT_Q3_K = 11,
    TT_Q4_K = 12,
    TT_Q5_K = 13,
    TT_Q6_K = 14,
    TT_Q8_K = 15,
    TT_BF16 = 30,
    TT_COUNT = 40 /* size of per-type tables; ids above are sparse */
};

typedef struct {
    const char *name; /* "q4_0", ... */
    uint32_t block;   /* elements per block */
    uint32_t bytes;   /* bytes per block */
    int supported;    /* weights of this type can be computed with */
} tensor_type_info;

/* NULL for ids that are not known at all. */
const tensor_type_info *tensor_type_get(uint32_t type);

/* Bytes of n elements of type; -1 when n is not a whole number of blocks,
 * the type is unknown, or the size overflows. */
int tensor_row_bytes(uint32_t type, uint64_t n, uint64_t *bytes);

/* Scalar conversions (exact, round-to-nearest-even where narrowing). */
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

/* Reference (de)quantization of one row of n elements (n a multiple of the
 * block size). Both support F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q4_K, Q5_K, Q6_K and the activation formats Q8_1, Q8_K; both return 0, or
 * -1 (writing nothing) for other types or a bad n. dequantize_row gives
 * exactly llama.cpp's values. quantize_row is a simple fit (not llama.cpp's
 * search), rounding half to even where it rounds to nearest. */
int dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);
int quantize_row(uint32_t type, const float *src, void *dst, int64_t n);

/* The activation format paired with a weight type (F32 for float weights,
 * Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for k-quants) and its
 * row size for n (0 when n is not a whole number of its blocks). */
uint32_t activation_type(uint32_t weight_type);
size_t activation_row_bytes(uint32_t weight_type, int64_t n);

typedef struct kernels {
    const char *name; /* "scalar", "avx2", "avx512", "neon" */
    /* x (n floats) -> activation format of weight_type, written to out. */
    void (*quantize_activations)(uint32_t weight_type, const float *x, void *out, int64_t n);
    /* y[b*y_stride + r] = dot(row r of w, activation row b) for r in [r0, r1)
     * and b in [0, nb). w rows are w_stride bytes apart, activation rows
     * a_stride bytes apart. Each output element has one fixed reduction order,
     * independent of r0, r1, nb and of the kernel path. weight_type must be
     * supported (tensor_type_get(t)->supported); a holds rows written by
     * quantize_activations (any path: all write the same bytes); a, a_stride
     * and y are 4-byte aligned, w and w_stride 2-byte aligned (GGUF data is). */
    void (*mul_mat)(uint32_t weight_type, int64_t n, const void *w, size_t w_stride, const void *a,
                    size_t a_stride, int64_t nb, float *y, size_t y_stride, int64_t r0, int64_t r1);
    /* Attention, the same arithmetic on every set (the references are in
     * kernels_scalar.c): n F16 values as F32 (exact; NaNs quiet); out[g] =
     * the dot of row g of q (nq rows, q_stride floats apart) with b, element
     * i in partial sum i % 8, each a product rounded then added, folded as
     * lanes_fold (the query heads that share one key row); y[i] = y[i] +
     * a[t] * x[t][i] for t = 0..nt-1 in order (x: nt rows of n floats, two
     * roundings each). */
    void (*f16_to_f32)(const uint16_t *src, float *dst, size_t n);
    void (*dot_f32)(const float *q, size_t q_stride, uint32_t nq, const float *b, uint32_t n,
                    float *out);
    void (*axpy_rows)(float *y, const float *a, const float *x, uint32_t nt, uint32_t n);
} kernels;

/* The scalar set's F16 -> F32 row conversion (the KV cache's). */
void f16_to_f32_row(const uint16_t *src, float *dst, size_t n);

/* The one named (NULL when the name is unknown or the CPU lacks it), or the
 * best set this CPU runs that passes the quick kernels_check; when a better
 * set fails it, note (if not NULL) says which and why. "scalar" always
 * exists. */
const kernels *kernels_best(char *note, size_t notelen);
const kernels *kernels_by_name(const char *name);
/* Compares k with the scalar reference bit for bit (activation quantizer
 * bytes and products of every supported type, on every path k has, and the
 * attention helpers; quick, or thorough with longer rows too). Returns 0 when all agree, 1 at the
 * first difference, -1 when out of memory; err says which. cases (if not
 * NULL) gets the number of cases that agreed. kernels_check.c */
int kernels_check(const kernels *k, int thorough, int *cases, char *err, size_t errlen);
/* Space-separated names of every set this CPU can run, best last. */
const char *kernels_available(void);

#endif
