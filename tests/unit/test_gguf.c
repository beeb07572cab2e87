/* GGUF reader/writer: the shared models open and read back, the writer
 * round-trips every value type, and hostile files are rejected with a
 * precise message (never a crash: this runs under ASan/UBSan). */
#include "engine/gguf.h"
#include "engine/quant.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---------- a raw byte builder for hand-made (hostile) files ---------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf;

static void b_put(buf *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        assert_non_null(b->p);
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void b_le(buf *b, uint64_t v, unsigned n)
{
    uint8_t t[8];
    for (unsigned i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    b_put(b, t, n);
}

static void b_str(buf *b, const char *s)
{
    b_le(b, strlen(s), 8);
    b_put(b, s, strlen(s));
}

static void b_header(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    b_put(b, "GGUF", 4);
    b_le(b, version, 4);
    b_le(b, n_tensors, 8);
    b_le(b, n_kv, 8);
}

static void b_kv_u32(buf *b, const char *key, uint32_t v)
{
    b_str(b, key);
    b_le(b, GGUF_TYPE_UINT32, 4);
    b_le(b, v, 4);
}

static void b_tensor(buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                     uint64_t offset)
{
    b_str(b, name);
    b_le(b, n_dims, 4);
    for (uint32_t i = 0; i < n_dims; i++)
        b_le(b, ne[i], 8);
    b_le(b, type, 4);
    b_le(b, offset, 8);
}

static void b_pad(buf *b, size_t align)
{
    while (b->len % align)
        b_le(b, 0, 1);
}

static void b_zeros(buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b_le(b, 0, 1);
}

/* Asserts that opening b fails with a message containing want. */
static void expect_reject(const buf *b, const char *want)
{
    char err[256] = "";
    gguf_file *f = gguf_open(b->p, b->len, err, sizeof err);
    if (f) {
        gguf_close(f);
        fail_msg("file accepted, expected error containing '%s'", want);
    }
    if (!strstr(err, want))
        fail_msg("error '%s' does not contain '%s'", err, want);
}

/* A one-tensor file: F32 tensor "t" of ne elements at offset off, with
 * data_len bytes of data after the padded header. */
static buf one_tensor_file(uint64_t ne0, uint32_t type, uint64_t off, size_t data_len)
{
    buf b = {0};
    b_header(&b, 3, 1, 0);
    b_tensor(&b, "t", 1, &ne0, type, off);
    b_pad(&b, 32);
    b_zeros(&b, data_len);
    return b;
}

/* ---------- helpers over real files ---------- */

static unsigned char *read_shared(const char *rel, size_t *len)
{
    char path[4096];
    if (!test_shared_path(path, sizeof path, rel))
        return NULL;
    unsigned char *p = test_read_file(path, len);
    assert_non_null(p);
    return p;
}

/* Writes w into a malloc'd memory buffer. */
static uint8_t *write_to_memory(gguf_writer *w, size_t *len)
{
    char *mem = NULL;
    size_t n = 0;
    FILE *out = open_memstream(&mem, &n);
    assert_non_null(out);
    char err[256] = "";
    int rc = gguf_writer_write(w, out, err, sizeof err);
    assert_int_equal(fclose(out), 0);
    if (rc != 0)
        fail_msg("gguf_writer_write: %s", err);
    *len = n;
    return (uint8_t *)mem;
}

/* ---------- tests on the shared models ---------- */

static const char *const MODELS[] = {
    "models/kq-f32.gguf",           "models/kq-f16.gguf",           "models/kq-bf16.gguf",
    "models/kq-q8_0.gguf",          "models/kq-q4_0.gguf",          "models/kq-q4_1.gguf",
    "models/kq-q5_0.gguf",          "models/kq-q5_1.gguf",          "models/kq-q4_k.gguf",
    "models/kq-q5_k.gguf",          "models/kq-q6_k.gguf",          "models/kq-q4_k_m.gguf",
    "models/aidreams260K-f32.gguf", "models/aidreams260K-f16.gguf",
};

static void check_model(const char *rel)
{
    size_t len;
    unsigned char *p = read_shared(rel, &len);
    if (!p)
        skip();
    char err[256] = "";
    gguf_file *f = gguf_open(p, len, err, sizeof err);
    if (!f)
        fail_msg("%s: %s", rel, err);
    int kq = strstr(rel, "kq-") != NULL;
    assert_int_equal(gguf_version(f), 3);
    assert_int_equal(gguf_alignment(f), 32);
    uint64_t emb = 0, layers = 0;
    assert_int_equal(gguf_get_u64(f, "llama.embedding_length", &emb), 0);
    assert_int_equal(emb, kq ? 256 : 64);
    assert_int_equal(gguf_get_u64(f, "llama.block_count", &layers), 0);
    assert_int_equal(layers, kq ? 2 : 4);
    float eps = 0;
    assert_int_equal(gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps), 0);
    assert_true(eps > 0.99e-5f && eps < 1.01e-5f);
    gguf_str s;
    assert_int_equal(gguf_get_str(f, "general.architecture", &s), 0);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "llama", 5);
    const gguf_kv *tokens = gguf_find(f, "tokenizer.ggml.tokens");
    assert_non_null(tokens);
    assert_int_equal(tokens->v.arr.count, kq ? 4096 : 512);
    assert_int_equal(gguf_arr_str(tokens, 1, &s), 0);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "<s>", 3);
    assert_int_equal(gguf_arr_str(tokens, tokens->v.arr.count, &s), -1);
    float score;
    int32_t tt;
    assert_int_equal(gguf_arr_f32(gguf_find(f, "tokenizer.ggml.scores"), 0, &score), 0);
    assert_int_equal(gguf_arr_i32(gguf_find(f, "tokenizer.ggml.token_type"), 1, &tt), 0);
    assert_int_equal(tt, 3); /* <s> is a control token */
    /* Every tensor: data inside the file and found by name. */
    assert_int_equal(gguf_tensor_count(f), kq ? 21 : 39);
    for (size_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        assert_true((const unsigned char *)t->data >= p);
        assert_true((const unsigned char *)t->data + t->size <= p + len);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        assert_ptr_equal(gguf_find_tensor(f, name), t);
    }
    const gguf_tensor *emb_t = gguf_find_tensor(f, "token_embd.weight");
    assert_non_null(emb_t);
    assert_int_equal(emb_t->ne[0], emb);
    assert_int_equal(emb_t->ne[1], kq ? 4096 : 512);
    assert_null(gguf_find_tensor(f, "no.such.tensor"));
    assert_null(gguf_find(f, "no.such.key"));
    gguf_close(f);
    free(p);
}

static void test_shared_models_open(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++)
        check_model(MODELS[i]);
}

static void test_q4_k_m_mixes_types(void **state)
{
    (void)state;
    size_t len;
    unsigned char *p = read_shared("models/kq-q4_k_m.gguf", &len);
    if (!p)
        skip();
    char err[256];
    gguf_file *f = gguf_open(p, len, err, sizeof err);
    assert_non_null(f);
    assert_int_equal(gguf_find_tensor(f, "output.weight")->type, TT_Q6_K);
    assert_int_equal(gguf_find_tensor(f, "token_embd.weight")->type, TT_Q4_K);
    assert_int_equal(gguf_find_tensor(f, "output.weight")->size, 4096u * 256 / 256 * 210);
    gguf_close(f);
    free(p);
}

static void test_vocab_files_open(void **state)
{
    (void)state;
    static const char *const files[] = {"vectors/tokenizer/ggml-vocab-llama-spm.gguf",
                                        "vectors/tokenizer/ggml-vocab-phi-3.gguf"};
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        unsigned char *p = read_shared(files[i], &len);
        if (!p)
            skip();
        char err[256];
        gguf_file *f = gguf_open(p, len, err, sizeof err);
        if (!f)
            fail_msg("%s: %s", files[i], err);
        assert_int_equal(gguf_tensor_count(f), 0);
        const gguf_kv *tokens = gguf_find(f, "tokenizer.ggml.tokens");
        assert_non_null(tokens);
        assert_int_equal(tokens->v.arr.count, i == 0 ? 32000 : 32064);
        gguf_str s;
        assert_int_equal(gguf_arr_str(tokens, 29871, &s), 0); /* "▁" */
        assert_int_equal(s.len, 3);
        assert_memory_equal(s.ptr, "\xe2\x96\x81", 3);
        uint64_t eos;
        assert_int_equal(gguf_get_u64(f, "tokenizer.ggml.eos_token_id", &eos), 0);
        assert_int_equal(eos, i == 0 ? 2 : 32000);
        int add_bos;
        assert_int_equal(gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos), 0);
        assert_int_equal(add_bos, 1);
        gguf_close(f);
        free(p);
    }
}

/* ---------- writer round trip ---------- */

static void test_writer_round_trip(void **state)
{
    (void)state;
    static const uint64_t aligns[] = {32, 64, 1, 4096};
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        gguf_writer *w = gguf_writer_new(aligns[a]);
        assert_non_null(w);
        const char *strs[] = {"alpha", "", "\xe2\x96\x81gamma"};
        const float fs[] = {1.5f, -2.25f, 3e-8f};
        const int32_t is[] = {-7, 0, INT32_MAX};
        assert_int_equal(gguf_writer_set_u32(w, "k.u32", 4000000000u), 0);
        assert_int_equal(gguf_writer_set_i32(w, "k.i32", -123456), 0);
        assert_int_equal(gguf_writer_set_u64(w, "k.u64", UINT64_MAX - 5), 0);
        assert_int_equal(gguf_writer_set_f32(w, "k.f32", 0.1f), 0);
        assert_int_equal(gguf_writer_set_bool(w, "k.bool", 7), 0);
        assert_int_equal(gguf_writer_set_str(w, "k.str", "h\xc3\xa9llo"), 0);
        assert_int_equal(gguf_writer_set_arr_str(w, "k.astr", strs, 3), 0);
        assert_int_equal(gguf_writer_set_arr_f32(w, "k.af32", fs, 3), 0);
        assert_int_equal(gguf_writer_set_arr_i32(w, "k.ai32", is, 3), 0);
        assert_int_equal(gguf_writer_set_arr_i32(w, "k.empty", is, 0), 0);
        float f32[64];
        for (int i = 0; i < 64; i++)
            f32[i] = (float)i * 0.5f;
        uint16_t f16[96];
        for (int i = 0; i < 96; i++)
            f16[i] = (uint16_t)(i * 31);
        uint8_t q8[34 * 4], q4k[144 * 2];
        for (size_t i = 0; i < sizeof q8; i++)
            q8[i] = (uint8_t)(i * 7);
        for (size_t i = 0; i < sizeof q4k; i++)
            q4k[i] = (uint8_t)(i * 13);
        const uint64_t ne_f32[] = {16, 4}, ne_f16[] = {3, 4, 2, 4}, ne_q8[] = {64, 2},
                       ne_q4k[] = {256, 1, 2};
        assert_int_equal(gguf_writer_add_tensor(w, "a.f32", TT_F32, 2, ne_f32, f32), 0);
        assert_int_equal(gguf_writer_add_tensor(w, "b.f16", TT_F16, 4, ne_f16, f16), 0);
        assert_int_equal(gguf_writer_add_tensor(w, "c.q8", TT_Q8_0, 2, ne_q8, q8), 0);
        assert_int_equal(gguf_writer_add_tensor(w, "d.q4k", TT_Q4_K, 3, ne_q4k, q4k), 0);
        size_t len;
        uint8_t *mem = write_to_memory(w, &len);
        gguf_writer_free(w);

        char err[256] = "";
        gguf_file *f = gguf_open(mem, len, err, sizeof err);
        if (!f)
            fail_msg("alignment %d: %s", (int)aligns[a], err);
        assert_int_equal(gguf_version(f), 3);
        assert_int_equal(gguf_alignment(f), aligns[a]);
        assert_int_equal(gguf_kv_count(f), aligns[a] == 32 ? 10 : 11);
        uint64_t u;
        assert_int_equal(gguf_get_u64(f, "k.u32", &u), 0);
        assert_int_equal(u, 4000000000u);
        assert_int_equal(gguf_find(f, "k.u32")->type, GGUF_TYPE_UINT32);
        assert_int_equal(gguf_find(f, "k.i32")->v.i64, -123456);
        assert_int_equal(gguf_get_u64(f, "k.i32", &u), -1); /* negative */
        assert_int_equal(gguf_get_u64(f, "k.u64", &u), 0);
        assert_true(u == UINT64_MAX - 5);
        float x;
        assert_int_equal(gguf_get_f32(f, "k.f32", &x), 0);
        assert_true(x == 0.1f);
        int bv;
        assert_int_equal(gguf_get_bool(f, "k.bool", &bv), 0);
        assert_int_equal(bv, 1);
        gguf_str s;
        assert_int_equal(gguf_get_str(f, "k.str", &s), 0);
        assert_int_equal(s.len, 6);
        assert_memory_equal(s.ptr, "h\xc3\xa9llo", 6);
        /* Type mismatches are refused. */
        assert_int_equal(gguf_get_str(f, "k.u32", &s), -1);
        assert_int_equal(gguf_get_bool(f, "k.u32", &bv), -1);
        assert_int_equal(gguf_get_f32(f, "k.str", &x), -1);
        assert_int_equal(gguf_get_u64(f, "k.f32", &u), -1);
        const gguf_kv *astr = gguf_find(f, "k.astr");
        for (int i = 0; i < 3; i++) {
            assert_int_equal(gguf_arr_str(astr, (uint64_t)i, &s), 0);
            assert_int_equal(s.len, strlen(strs[i]));
            assert_memory_equal(s.ptr, strs[i], s.len);
        }
        assert_int_equal(gguf_arr_f32(astr, 0, &x), -1);
        const gguf_kv *af = gguf_find(f, "k.af32"), *ai = gguf_find(f, "k.ai32");
        for (int i = 0; i < 3; i++) {
            int32_t iv;
            assert_int_equal(gguf_arr_f32(af, (uint64_t)i, &x), 0);
            assert_true(x == fs[i]);
            assert_int_equal(gguf_arr_i32(ai, (uint64_t)i, &iv), 0);
            assert_int_equal(iv, is[i]);
        }
        assert_int_equal(gguf_arr_f32(af, 3, &x), -1);
        assert_int_equal(gguf_arr_i32(af, 0, &(int32_t){0}), -1);
        assert_int_equal(gguf_arr_str(af, 0, &s), -1);
        assert_int_equal(gguf_find(f, "k.empty")->v.arr.count, 0);

        assert_int_equal(gguf_tensor_count(f), 4);
        const struct {
            const char *name;
            uint32_t type;
            const void *data;
            uint64_t size;
        } want[] = {{"a.f32", TT_F32, f32, sizeof f32},
                    {"b.f16", TT_F16, f16, sizeof f16},
                    {"c.q8", TT_Q8_0, q8, sizeof q8},
                    {"d.q4k", TT_Q4_K, q4k, sizeof q4k}};
        for (int i = 0; i < 4; i++) {
            const gguf_tensor *t = gguf_find_tensor(f, want[i].name);
            assert_non_null(t);
            assert_ptr_equal(t, gguf_tensor_at(f, (size_t)i));
            assert_int_equal(t->type, want[i].type);
            assert_int_equal(t->size, want[i].size);
            assert_int_equal(t->offset % aligns[a], 0);
            assert_int_equal(((const uint8_t *)t->data - mem) % aligns[a], 0);
            assert_memory_equal(t->data, want[i].data, want[i].size);
        }
        assert_int_equal(gguf_find_tensor(f, "b.f16")->n_dims, 4);
        assert_int_equal(gguf_find_tensor(f, "b.f16")->ne[3], 4);
        assert_int_equal(gguf_find_tensor(f, "d.q4k")->ne[3], 1);
        gguf_close(f);
        free(mem);
    }
}

/* Value types the writer does not produce (u8, i8, u16, i16, i64, f64 and
 * arrays of them) decode through the same getters. */
static void test_reader_decodes_every_value_type(void **state)
{
    (void)state;
    buf b = {0};
    b_header(&b, 3, 0, 10);
    static const struct {
        const char *key;
        uint32_t type;
        uint64_t raw;
        unsigned size;
    } scalars[] = {
        {"u8", GGUF_TYPE_UINT8, 250, 1},
        {"i8", GGUF_TYPE_INT8, 0x80, 1},
        {"u16", GGUF_TYPE_UINT16, 65535, 2},
        {"i16", GGUF_TYPE_INT16, 0xFFFE, 2},
        {"i64", GGUF_TYPE_INT64, 1ull << 62, 8},
        {"f64", GGUF_TYPE_FLOAT64, 0x3FF8000000000000ull, 8},
    };
    for (size_t i = 0; i < 6; i++) {
        b_str(&b, scalars[i].key);
        b_le(&b, scalars[i].type, 4);
        b_le(&b, scalars[i].raw, scalars[i].size);
    }
    b_str(&b, "a.i16");
    b_le(&b, GGUF_TYPE_ARRAY, 4);
    b_le(&b, GGUF_TYPE_INT16, 4);
    b_le(&b, 2, 8);
    b_le(&b, 0xFFFF, 2);
    b_le(&b, 7, 2);
    b_str(&b, "a.u32");
    b_le(&b, GGUF_TYPE_ARRAY, 4);
    b_le(&b, GGUF_TYPE_UINT32, 4);
    b_le(&b, 2, 8);
    b_le(&b, 5, 4);
    b_le(&b, 0x80000000u, 4); /* does not fit in int32 */
    b_str(&b, "a.f64");
    b_le(&b, GGUF_TYPE_ARRAY, 4);
    b_le(&b, GGUF_TYPE_FLOAT64, 4);
    b_le(&b, 1, 8);
    b_le(&b, 0xC000000000000000ull, 8); /* -2.0 */
    b_str(&b, "a.bool");
    b_le(&b, GGUF_TYPE_ARRAY, 4);
    b_le(&b, GGUF_TYPE_BOOL, 4);
    b_le(&b, 2, 8);
    b_le(&b, 1, 1);
    b_le(&b, 0, 1);
    char err[256] = "";
    gguf_file *f = gguf_open(b.p, b.len, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    uint64_t u;
    assert_int_equal(gguf_get_u64(f, "u8", &u), 0);
    assert_int_equal(u, 250);
    assert_int_equal(gguf_find(f, "i8")->v.i64, -128);
    assert_int_equal(gguf_get_u64(f, "i8", &u), -1);
    assert_int_equal(gguf_get_u64(f, "u16", &u), 0);
    assert_int_equal(u, 65535);
    assert_int_equal(gguf_find(f, "i16")->v.i64, -2);
    assert_int_equal(gguf_get_u64(f, "i64", &u), 0);
    assert_true(u == 1ull << 62);
    float x;
    assert_int_equal(gguf_get_f32(f, "f64", &x), 0);
    assert_true(x == 1.5f);
    int32_t v;
    const gguf_kv *kv = gguf_find(f, "a.i16");
    assert_int_equal(gguf_arr_i32(kv, 0, &v), 0);
    assert_int_equal(v, -1);
    assert_int_equal(gguf_arr_i32(kv, 1, &v), 0);
    assert_int_equal(v, 7);
    kv = gguf_find(f, "a.u32");
    assert_int_equal(gguf_arr_i32(kv, 0, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(gguf_arr_i32(kv, 1, &v), -1);
    assert_int_equal(gguf_arr_f32(gguf_find(f, "a.f64"), 0, &x), 0);
    assert_true(x == -2.0f);
    assert_int_equal(gguf_arr_i32(gguf_find(f, "a.bool"), 0, &v), -1);
    assert_int_equal(gguf_find(f, "a.bool")->v.arr.count, 2);
    gguf_close(f);
    free(b.p);
}

static void test_writer_rejects_bad_input(void **state)
{
    (void)state;
    assert_null(gguf_writer_new(0));
    assert_null(gguf_writer_new(48));
    static const struct {
        uint32_t type, n_dims;
        uint64_t ne[4];
        const char *why;
    } bad[] = {
        {TT_Q8_0, 1, {33}, "not a multiple of block size 32"},
        {99, 1, {4}, "unknown tensor type 99"},
        {TT_F32, 5, {1, 1, 1, 1}, "5 dimensions"},
        {TT_F32, 2, {4, 0}, "dimension 1 is zero"},
    };
    float data[64] = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gguf_writer *w = gguf_writer_new(32);
        assert_int_equal(
            gguf_writer_add_tensor(w, "x", bad[i].type, bad[i].n_dims, bad[i].ne, data), -1);
        char err[256] = "";
        assert_int_equal(gguf_writer_write(w, stdout, err, sizeof err), -1);
        if (!strstr(err, bad[i].why))
            fail_msg("writer error '%s' lacks '%s'", err, bad[i].why);
        gguf_writer_free(w);
    }
    gguf_writer *w = gguf_writer_new(32);
    assert_int_equal(gguf_writer_set_u32(w, "k", 1), 0);
    assert_int_equal(gguf_writer_set_str(w, "k", "again"), -1);
    char err[256] = "";
    assert_int_equal(gguf_writer_write(w, stdout, err, sizeof err), -1);
    assert_non_null(strstr(err, "duplicate metadata key k"));
    gguf_writer_free(w);
    w = gguf_writer_new(64);
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 64), -1);
    gguf_writer_free(w);
}

/* ---------- hostile files ---------- */

/* A small valid file with metadata of several types and two tensors. */
static uint8_t *small_valid_file(size_t *len)
{
    gguf_writer *w = gguf_writer_new(32);
    const char *toks[] = {"<unk>", "<s>", "a"};
    const float sc[] = {0, 0, -1};
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.embedding_length", 8), 0);
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3), 0);
    assert_int_equal(gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", sc, 3), 0);
    assert_int_equal(gguf_writer_set_bool(w, "b", 1), 0);
    static float d1[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static uint8_t d2[34];
    const uint64_t n1[] = {8}, n2[] = {32};
    assert_int_equal(gguf_writer_add_tensor(w, "t1", TT_F32, 1, n1, d1), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "t2", TT_Q8_0, 1, n2, d2), 0);
    uint8_t *mem = write_to_memory(w, len);
    gguf_writer_free(w);
    return mem;
}

static void test_every_prefix_rejected(void **state)
{
    (void)state;
    size_t len;
    uint8_t *mem = small_valid_file(&len);
    char err[256];
    gguf_file *f = gguf_open(mem, len, err, sizeof err);
    assert_non_null(f);
    gguf_close(f);
    for (size_t n = 0; n < len; n++) {
        /* A fresh exact-size copy so ASan sees any read past the prefix. */
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, mem, n);
        err[0] = 0;
        f = gguf_open(copy, n, err, sizeof err);
        if (f)
            fail_msg("prefix of %zu of %zu bytes accepted", n, len);
        assert_true(strstr(err, "truncated") || strstr(err, "bad magic") ||
                    strstr(err, "outside file") || strstr(err, "exceeds"));
        free(copy);
    }
    free(mem);
}

static void test_truncated_message(void **state)
{
    (void)state;
    size_t len;
    uint8_t *mem = small_valid_file(&len);
    /* Cut inside the header, inside a key and inside the tensor data. */
    buf b = {mem, 10, len};
    expect_reject(&b, "file truncated: the GGUF header needs 8 bytes at offset 8 but the file has "
                      "10 bytes");
    b.len = len - 1;
    expect_reject(&b, "tensor t2: data [");
    expect_reject(&b, ") outside file of ");
    free(mem);
    b = (buf){0};
    b_header(&b, 3, 0, 1);
    b_str(&b, "general.architecture");
    b.len = 40;
    expect_reject(&b, "file truncated: the key of metadata entry 0 needs 20 bytes at offset 32 but "
                      "the file has 40 bytes");
    b.len = 0;
    b_header(&b, 3, 0, 1);
    b_kv_u32(&b, "general.alignment", 64);
    b.len -= 2;
    expect_reject(&b, "file truncated: the value of key general.alignment needs 4 bytes");
    free(b.p);
}

static void test_bad_magic_and_version(void **state)
{
    (void)state;
    buf b = {0};
    b_put(&b, "GGUG", 4);
    b_le(&b, 3, 4);
    b_zeros(&b, 16);
    expect_reject(&b, "not a GGUF file (bad magic)");
    static const struct {
        uint32_t version;
        const char *why;
    } cases[] = {
        {1, "GGUF version 1 is not supported"},
        {0, "unsupported GGUF version 0 (expected 2 or 3)"},
        {4, "unsupported GGUF version 4"},
        {0x03000000, "big-endian GGUF files are not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        b.len = 0;
        b_header(&b, cases[i].version, 0, 0);
        expect_reject(&b, cases[i].why);
    }
    /* v2 with no content is fine. */
    b.len = 0;
    b_header(&b, 2, 0, 0);
    char err[256];
    gguf_file *f = gguf_open(b.p, b.len, err, sizeof err);
    assert_non_null(f);
    assert_int_equal(gguf_version(f), 2);
    assert_int_equal(gguf_kv_count(f), 0);
    assert_null(gguf_find(f, "x"));
    assert_null(gguf_find_tensor(f, "x"));
    gguf_close(f);
    free(b.p);
}

static void test_huge_counts(void **state)
{
    (void)state;
    buf b = {0};
    b_header(&b, 3, 0, UINT64_MAX);
    expect_reject(&b, "metadata count 18446744073709551615 exceeds");
    b.len = 0;
    b_header(&b, 3, 1ull << 40, 0);
    expect_reject(&b, "tensor count 1099511627776 exceeds");
    /* A string whose length runs past the end. */
    b.len = 0;
    b_header(&b, 3, 0, 1);
    b_le(&b, UINT64_MAX - 3, 8);
    b_zeros(&b, 16);
    expect_reject(&b, "the key of metadata entry 0 needs 18446744073709551612 bytes");
    /* Arrays whose count exceeds the remaining bytes. */
    static const uint32_t et[] = {GGUF_TYPE_STRING, GGUF_TYPE_UINT64, GGUF_TYPE_UINT8};
    for (size_t i = 0; i < 3; i++) {
        b.len = 0;
        b_header(&b, 3, 0, 1);
        b_str(&b, "arr");
        b_le(&b, GGUF_TYPE_ARRAY, 4);
        b_le(&b, et[i], 4);
        b_le(&b, 1ull << 61, 8);
        b_zeros(&b, 64);
        expect_reject(&b, "key arr: array of 2305843009213693952 ");
    }
    free(b.p);
}

static void test_bad_values(void **state)
{
    (void)state;
    buf b = {0};
    b_header(&b, 3, 0, 1);
    b_str(&b, "nest");
    b_le(&b, GGUF_TYPE_ARRAY, 4);
    b_le(&b, GGUF_TYPE_ARRAY, 4);
    b_le(&b, 1, 8);
    b_zeros(&b, 32);
    expect_reject(&b, "key nest: nested arrays are not supported");
    b.len = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "odd");
    b_le(&b, 13, 4);
    b_zeros(&b, 8);
    expect_reject(&b, "key odd: unknown value type 13");
    b.len = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "oddarr");
    b_le(&b, GGUF_TYPE_ARRAY, 4);
    b_le(&b, 200, 4);
    b_le(&b, 1, 8);
    b_zeros(&b, 8);
    expect_reject(&b, "key oddarr: unknown array element type 200");
    b.len = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "flag");
    b_le(&b, GGUF_TYPE_BOOL, 4);
    b_le(&b, 2, 1);
    expect_reject(&b, "key flag: boolean value is 2, not 0 or 1");
    b.len = 0;
    b_header(&b, 3, 0, 2);
    b_kv_u32(&b, "dup", 1);
    b_kv_u32(&b, "dup", 2);
    expect_reject(&b, "duplicate key dup");
    b.len = 0;
    b_header(&b, 3, 0, 1);
    b_kv_u32(&b, "bad\xff", 1);
    expect_reject(&b, "metadata entry 0 has a key that is not valid UTF-8");
    b.len = 0;
    b_header(&b, 3, 0, 1);
    b_kv_u32(&b, "over\xc0\xaflong", 1);
    expect_reject(&b, "not valid UTF-8");
    b.len = 0;
    b_header(&b, 3, 0, 1);
    b_kv_u32(&b, "", 1);
    expect_reject(&b, "metadata entry 0 has an empty key");
    b.len = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "general.name");
    b.p[b.len - 5] = 0; /* "general\0name" */
    b_le(&b, GGUF_TYPE_UINT32, 4);
    b_le(&b, 1, 4);
    expect_reject(&b, "metadata entry 0 has a key containing a NUL byte");
    free(b.p);
}

static void test_bad_alignment(void **state)
{
    (void)state;
    static const uint32_t bad[] = {0, 3, 48, 0x80000001u};
    buf b = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b.len = 0;
        b_header(&b, 3, 0, 1);
        b_kv_u32(&b, "general.alignment", bad[i]);
        char want[128];
        snprintf(want, sizeof want, "general.alignment %u is not a nonzero power of two", bad[i]);
        expect_reject(&b, want);
    }
    b.len = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "general.alignment");
    b_le(&b, GGUF_TYPE_UINT64, 4);
    b_le(&b, 64, 8);
    expect_reject(&b, "general.alignment has value type 10, expected u32");
    /* A valid non-default alignment is honoured: offset 16 is misaligned at 64. */
    b.len = 0;
    uint64_t ne = 4;
    b_header(&b, 3, 1, 1);
    b_kv_u32(&b, "general.alignment", 64);
    b_tensor(&b, "t", 1, &ne, TT_F32, 32);
    b_pad(&b, 64);
    b_zeros(&b, 128);
    expect_reject(&b, "tensor t: data offset 32 is not a multiple of the alignment 64");
    free(b.p);
}

static void test_bad_tensor_infos(void **state)
{
    (void)state;
    buf b = one_tensor_file(32, 77, 0, 256);
    expect_reject(&b, "tensor t: unknown tensor type 77");
    free(b.p);
    b = one_tensor_file(256, 23, 0, 256);
    expect_reject(&b, "tensor t: tensor type 23 (iq4_xs) is not supported");
    free(b.p);
    b = one_tensor_file(33, TT_Q4_0, 0, 256);
    expect_reject(&b, "tensor t: row length 33 is not a multiple of block size 32");
    free(b.p);
    b = one_tensor_file(256, TT_Q4_K, 0, 100);
    expect_reject(&b, "outside file");
    free(b.p);
    b = one_tensor_file(8, TT_F32, 8, 256);
    expect_reject(&b, "tensor t: data offset 8 is not a multiple of the alignment 32");
    free(b.p);
    b = one_tensor_file(8, TT_F32, UINT64_MAX - 31, 256);
    expect_reject(&b, "tensor t: data offset 18446744073709551584 overflows 64 bits");
    free(b.p);

    b = (buf){0};
    uint64_t five[5] = {1, 1, 1, 1, 1};
    b_header(&b, 3, 1, 0);
    b_tensor(&b, "t", 5, five, TT_F32, 0);
    expect_reject(&b, "tensor t: 5 dimensions, expected 1 to 4");
    b.len = 0;
    b_header(&b, 3, 1, 0);
    b_tensor(&b, "t", 0, five, TT_F32, 0);
    b_zeros(&b, 64);
    expect_reject(&b, "tensor t: 0 dimensions");
    b.len = 0;
    const uint64_t zero[] = {4, 0};
    b_header(&b, 3, 1, 0);
    b_tensor(&b, "t", 2, zero, TT_F32, 0);
    b_zeros(&b, 64);
    expect_reject(&b, "tensor t: dimension 1 is zero");
    b.len = 0;
    const uint64_t big[] = {1ull << 32, 1ull << 32};
    b_header(&b, 3, 1, 0);
    b_tensor(&b, "t", 2, big, TT_F32, 0);
    b_zeros(&b, 64);
    expect_reject(&b, "tensor t: dimensions overflow a 64-bit element count");
    b.len = 0;
    const uint64_t bytes_big[] = {1ull << 31, 1ull << 31};
    b_header(&b, 3, 1, 0); /* 2^62 elements fit; 2^64 bytes do not */
    b_tensor(&b, "t", 2, bytes_big, TT_F32, 0);
    b_zeros(&b, 64);
    expect_reject(&b, "tensor t: byte size overflows 64 bits");
    b.len = 0;
    b_header(&b, 3, 1, 0);
    b_tensor(&b, "\xed\xa0\x80", 1, five, TT_F32, 0); /* a UTF-16 surrogate */
    b_zeros(&b, 64);
    expect_reject(&b, "tensor 0 has an empty, non-UTF-8 or NUL-containing name");
    free(b.p);
}

static void test_data_outside_file_message(void **state)
{
    (void)state;
    buf b = {0};
    const uint64_t ne[] = {256, 256};
    b_header(&b, 3, 2, 0);
    b_tensor(&b, "blk.3.attn_k.weight", 2, ne, TT_F32, 0);
    b_tensor(&b, "blk.3.attn_q.weight", 2, ne, TT_F32, 262144);
    b_pad(&b, 32);
    size_t data_start = b.len;
    b_zeros(&b, 262144 + 1000);
    char want[160];
    snprintf(want, sizeof want,
             "tensor blk.3.attn_q.weight: data [%zu, %zu) outside file of %zu bytes",
             data_start + 262144, data_start + 2 * 262144, b.len);
    expect_reject(&b, want);
    free(b.p);
}

static void test_overlap_and_duplicates(void **state)
{
    (void)state;
    buf b = {0};
    const uint64_t ne[] = {16};
    b_header(&b, 3, 3, 0);
    b_tensor(&b, "a", 1, ne, TT_F32, 0);
    b_tensor(&b, "c", 1, ne, TT_F32, 128);
    b_tensor(&b, "b", 1, ne, TT_F32, 32); /* [32, 96) overlaps a = [0, 64) */
    b_pad(&b, 32);
    b_zeros(&b, 256);
    expect_reject(&b, "tensors a and b overlap in the data section");
    b.len = 0;
    b_header(&b, 3, 2, 0);
    b_tensor(&b, "same", 1, ne, TT_F32, 0);
    b_tensor(&b, "same", 1, ne, TT_F32, 64);
    b_pad(&b, 32);
    b_zeros(&b, 256);
    expect_reject(&b, "duplicate tensor name same");
    /* Adjacent, non-overlapping tensors at the same alignment are fine. */
    b.len = 0;
    b_header(&b, 3, 2, 0);
    b_tensor(&b, "x", 1, ne, TT_F32, 64);
    b_tensor(&b, "y", 1, ne, TT_F32, 0);
    b_pad(&b, 32);
    b_zeros(&b, 128);
    char err[256];
    gguf_file *f = gguf_open(b.p, b.len, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    gguf_close(f);
    free(b.p);
}

/* Every single-byte corruption of the header/metadata region of a real model
 * is either accepted or rejected cleanly (ASan checks the "cleanly"). */
static void test_byte_flips_on_real_model(void **state)
{
    (void)state;
    size_t len;
    unsigned char *p = read_shared("models/aidreams260K-f16.gguf", &len);
    if (!p)
        skip();
    char err[256];
    gguf_file *f = gguf_open(p, len, err, sizeof err);
    assert_non_null(f);
    size_t head = (size_t)((const unsigned char *)gguf_tensor_at(f, 0)->data - p);
    gguf_close(f);
    size_t rejected = 0, step = head > 4000 ? head / 4000 : 1;
    for (size_t i = 0; i < head; i += step) {
        unsigned char saved = p[i];
        p[i] ^= (unsigned char)(0x80 | (i & 0x7f));
        f = gguf_open(p, len, err, sizeof err);
        if (!f)
            rejected++;
        gguf_close(f);
        p[i] = saved;
    }
    assert_true(rejected > 0);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_models_open),
        cmocka_unit_test(test_q4_k_m_mixes_types),
        cmocka_unit_test(test_vocab_files_open),
        cmocka_unit_test(test_writer_round_trip),
        cmocka_unit_test(test_reader_decodes_every_value_type),
        cmocka_unit_test(test_writer_rejects_bad_input),
        cmocka_unit_test(test_every_prefix_rejected),
        cmocka_unit_test(test_truncated_message),
        cmocka_unit_test(test_bad_magic_and_version),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_bad_alignment),
        cmocka_unit_test(test_bad_tensor_infos),
        cmocka_unit_test(test_data_outside_file_message),
        cmocka_unit_test(test_overlap_and_duplicates),
        cmocka_unit_test(test_byte_flips_on_real_model),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed == 0 && !test_shared_dir()) {
        printf("skipped: ../shared (APPLIANCE_SHARED_DIR) is absent, so the real-model tests "
               "did not run\n");
        return TEST_SKIP_CODE;
    }
    return failed;
}
