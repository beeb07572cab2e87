/* GGUF reader and writer (internal to engine/; other modules use engine.h).
 *
 * The reader works on bytes the caller has already mapped (read-only mmap of
 * the sealed model descriptor, or a fuzzer's buffer). The file is hostile:
 * every count, length, dimension, type, offset and size is checked against
 * the buffer before use; errors are one precise sentence in err. Nothing is
 * copied: strings and tensor data point into the buffer, which must outlive
 * the gguf_file. */
#ifndef ENGINE_GGUF_H
#define ENGINE_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum gguf_value_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
};

#define GGUF_MAX_DIMS          4
#define GGUF_DEFAULT_ALIGNMENT 32

/* A string inside the mapped file: not NUL-terminated. */
typedef struct {
    const char *ptr;
    uint64_t len;
} gguf_str;

typedef struct {
    gguf_str key;
    enum gguf_value_type type;
    /* Scalars are decoded; strings point into the file; arrays keep their
     * element type, count and a pointer to the first encoded element. */
    union {
        uint64_t u64;
        int64_t i64;
        double f64;
        int b;
        gguf_str str;
        struct {
            enum gguf_value_type type;
            uint64_t count;
            const uint8_t *data;  /* encoded elements (strings length-prefixed) */
            const gguf_str *strs; /* string arrays: every element, indexed at open */
        } arr;
    } v;
} gguf_kv;

typedef struct {
    gguf_str name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the row length (fastest-varying) */
    uint32_t type;              /* enum tensor_type in quant.h */
    uint64_t offset;            /* relative to the data section */
    uint64_t size;              /* bytes, from type and dimensions */
    const void *data;           /* into the mapped file */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Parses a GGUF v2/v3 image of size bytes. Returns NULL and fills err on any
 * defect (e.g. "tensor blk.3.attn_q.weight: data [o, o+s) outside file of N
 * bytes"). */
gguf_file *gguf_open(const void *data, size_t size, char *err, size_t errlen);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_alignment(const gguf_file *f);

size_t gguf_kv_count(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, size_t i);
const gguf_kv *gguf_find(const gguf_file *f, const char *key); /* NULL if absent */

/* Typed getters: return 0 and set *out when key exists with a compatible
 * type (any integer type for integers, f32/f64 for floats), else -1. */
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* Array element access (bounds-checked against count; -1 on type mismatch). */
int gguf_arr_str(const gguf_kv *kv, uint64_t i, gguf_str *out);
int gguf_arr_f32(const gguf_kv *kv, uint64_t i, float *out);
int gguf_arr_i32(const gguf_kv *kv, uint64_t i, int32_t *out);

size_t gguf_tensor_count(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Writer: collects metadata and tensors, then writes a GGUF v3 file with the
 * given alignment. Tensor data is copied at gguf_writer_write time from the
 * caller's pointers, which must stay valid until then. */
typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_new(uint64_t alignment);
void gguf_writer_free(gguf_writer *w);
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(gguf_writer *w, const char *key, int v);
int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v, size_t n);
int gguf_writer_set_arr_f32(gguf_writer *w, const char *key, const float *v, size_t n);
int gguf_writer_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, size_t n);
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const uint64_t *ne, const void *data);
/* Writes everything to out; returns 0, or -1 with err filled. */
int gguf_writer_write(gguf_writer *w, FILE *out, char *err, size_t errlen);

#endif
