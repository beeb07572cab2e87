/* Synthetic llama models with random weights, written with the GGUF writer,
 * so benchmarks and tests need no download.
 *
 * Weights: each matrix row is one of SYNTH_POOL_ROWS random rows (uniform in
 * [-sqrt(3/n_in), sqrt(3/n_in)], i.e. unit variance after the product) of
 * its length, quantized once per type and copied, chosen by the seeded PRNG.
 * Quantizing a pool instead of 1.1 billion fresh values keeps writing a
 * TinyLlama-sized file to seconds; speed does not depend on weight values.
 * Norm weights are 1. The vocabulary is <unk>, <s>, </s>, the 256 byte
 * tokens <0x00>..<0xFF>, then filler words made of syllables. */
#include "engine.h"
#include "gguf.h"
#include "quant.h"
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYNTH_POOL_ROWS   256
#define SYNTH_MAX_TENSORS 512

typedef struct geometry {
    const char *name;
    uint32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
} geometry;

static const geometry geometries[] = {
    {"tinyllama", 2048, 22, 32, 4, 5632, 32000, 2048},
    {"tiny", 256, 2, 4, 2, 512, 320, 128},
};

/* A named mix: the base type, and the type of output.weight and of the
 * attn_v / ffn_down tensors of the layers that get more bits. */
typedef struct type_mix {
    const char *name;
    uint32_t base, output, more_bits;
} type_mix;

static const type_mix mixes[] = {
    {"f32", TT_F32, TT_F32, TT_F32},     {"f16", TT_F16, TT_F16, TT_F16},
    {"bf16", TT_BF16, TT_BF16, TT_BF16}, {"q8_0", TT_Q8_0, TT_Q8_0, TT_Q8_0},
    {"q4_0", TT_Q4_0, TT_Q4_0, TT_Q4_0}, {"q4_1", TT_Q4_1, TT_Q4_1, TT_Q4_1},
    {"q5_0", TT_Q5_0, TT_Q5_0, TT_Q5_0}, {"q5_1", TT_Q5_1, TT_Q5_1, TT_Q5_1},
    {"q4_k", TT_Q4_K, TT_Q4_K, TT_Q4_K}, {"q5_k", TT_Q5_K, TT_Q5_K, TT_Q5_K},
    {"q6_k", TT_Q6_K, TT_Q6_K, TT_Q6_K}, {"q4_k_m", TT_Q4_K, TT_Q6_K, TT_Q6_K},
};

/* llama.cpp's rule for which layers of a _M mix get more bits. */
static int use_more_bits(uint32_t i, uint32_t n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* Random rows quantized once, per (row length, type). */
typedef struct row_pool {
    int64_t n_in;
    uint32_t type;
    size_t row_bytes;
    uint8_t *rows; /* SYNTH_POOL_ROWS * row_bytes */
} row_pool;

typedef struct synth {
    gguf_writer *w;
    rng rng;
    row_pool pools[16];
    size_t n_pools;
    void *blobs[SYNTH_MAX_TENSORS]; /* tensor data, alive until the write */
    size_t n_blobs;
    char *err;
    size_t errlen;
} synth;

static const row_pool *get_pool(synth *s, int64_t n_in, uint32_t type)
{
    for (size_t i = 0; i < s->n_pools; i++)
        if (s->pools[i].n_in == n_in && s->pools[i].type == type)
            return &s->pools[i];
    uint64_t rb;
    if (s->n_pools == sizeof s->pools / sizeof s->pools[0] ||
        tensor_row_bytes(type, (uint64_t)n_in, &rb) != 0) {
        snprintf(s->err, s->errlen, "cannot make rows of %lld elements of type %u", (long long)n_in,
                 type);
        return NULL;
    }
    row_pool *p = &s->pools[s->n_pools];
    float *x = malloc((size_t)n_in * sizeof *x);
    p->rows = malloc(SYNTH_POOL_ROWS * (size_t)rb);
    if (!x || !p->rows) {
        free(x);
        free(p->rows);
        snprintf(s->err, s->errlen, "out of memory making random weights");
        return NULL;
    }
    float a = sqrtf(3.0f / (float)n_in);
    for (int r = 0; r < SYNTH_POOL_ROWS; r++) {
        for (int64_t i = 0; i < n_in; i++)
            x[i] = (2.0f * rng_uniform(&s->rng) - 1.0f) * a;
        if (quantize_row(type, x, p->rows + (size_t)r * rb, n_in) != 0) {
            free(x);
            free(p->rows);
            snprintf(s->err, s->errlen, "cannot quantize rows of type %u", type);
            return NULL;
        }
    }
    free(x);
    p->n_in = n_in;
    p->type = type;
    p->row_bytes = rb;
    s->n_pools++;
    return p;
}

static void *new_blob(synth *s, size_t bytes)
{
    void *b = s->n_blobs < SYNTH_MAX_TENSORS ? malloc(bytes ? bytes : 1) : NULL;
    if (!b) {
        snprintf(s->err, s->errlen, "out of memory for %zu bytes of synthetic weights", bytes);
        return NULL;
    }
    s->blobs[s->n_blobs++] = b;
    return b;
}

static int add_matrix(synth *s, const char *name, int64_t n_in, int64_t n_out, uint32_t type)
{
    const row_pool *p = get_pool(s, n_in, type);
    uint8_t *data = p ? new_blob(s, p->row_bytes * (size_t)n_out) : NULL;
    if (!data)
        return -1;
    for (int64_t r = 0; r < n_out; r++)
        memcpy(data + (size_t)r * p->row_bytes,
               p->rows + (rng_next(&s->rng) % SYNTH_POOL_ROWS) * p->row_bytes, p->row_bytes);
    uint64_t ne[2] = {(uint64_t)n_in, (uint64_t)n_out};
    if (gguf_writer_add_tensor(s->w, name, type, 2, ne, data) != 0) {
        snprintf(s->err, s->errlen, "cannot add tensor %s", name);
        return -1;
    }
    return 0;
}

static int add_norm(synth *s, const char *name, int64_t n)
{
    float *v = new_blob(s, (size_t)n * sizeof *v);
    if (!v)
        return -1;
    for (int64_t i = 0; i < n; i++)
        v[i] = 1.0f;
    uint64_t ne[1] = {(uint64_t)n};
    if (gguf_writer_add_tensor(s->w, name, TT_F32, 1, ne, v) != 0) {
        snprintf(s->err, s->errlen, "cannot add tensor %s", name);
        return -1;
    }
    return 0;
}

static int add_layer(synth *s, const geometry *g, const type_mix *t, uint32_t i)
{
    char n[96];
    int64_t e = g->n_embd, kv = (int64_t)g->n_embd / g->n_head * g->n_head_kv, ff = g->n_ff;
    uint32_t more = use_more_bits(i, g->n_layer) ? t->more_bits : t->base;
#define NAME(x) (snprintf(n, sizeof n, "blk.%u." x ".weight", i), n)
    return add_norm(s, NAME("attn_norm"), e) || add_matrix(s, NAME("attn_q"), e, e, t->base) ||
                   add_matrix(s, NAME("attn_k"), e, kv, t->base) ||
                   add_matrix(s, NAME("attn_v"), e, kv, more) ||
                   add_matrix(s, NAME("attn_output"), e, e, t->base) ||
                   add_norm(s, NAME("ffn_norm"), e) ||
                   add_matrix(s, NAME("ffn_gate"), e, ff, t->base) ||
                   add_matrix(s, NAME("ffn_up"), e, ff, t->base) ||
                   add_matrix(s, NAME("ffn_down"), ff, e, more)
               ? -1
               : 0;
#undef NAME
}

/* Filler word i: "\u2581" then one syllable per base-8 digit of i (unique). */
static void filler_piece(uint32_t i, char *out, size_t cap)
{
    static const char *const syl[8] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo"};
    char digits[16];
    int n = 0;
    do {
        digits[n++] = (char)(i % 8);
        i /= 8;
    } while (i);
    size_t len = (size_t)snprintf(out, cap, "\xe2\x96\x81");
    while (n-- > 0 && len + 3 < cap)
        len += (size_t)snprintf(out + len, cap - len, "%s", syl[(int)digits[n]]);
}

static int add_vocab(synth *s, const geometry *g)
{
    size_t n = g->n_vocab;
    char **tok = calloc(n, sizeof *tok), *text = malloc(n * 40);
    float *scores = malloc(n * sizeof *scores);
    int32_t *types = malloc(n * sizeof *types);
    int rc = -1;
    if (!tok || !text || !scores || !types) {
        snprintf(s->err, s->errlen, "out of memory for a vocabulary of %zu tokens", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        tok[i] = text + i * 40;
        scores[i] = 0;
        if (i < 3) {
            snprintf(tok[i], 40, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
            types[i] = i == 0 ? 2 : 3;
        } else if (i < 259) {
            snprintf(tok[i], 40, "<0x%02X>", (unsigned)(i - 3));
            types[i] = 6;
        } else {
            filler_piece((uint32_t)(i - 259), tok[i], 40);
            scores[i] = -(float)(i - 259);
            types[i] = 1;
        }
    }
    if (gguf_writer_set_str(s->w, "tokenizer.ggml.model", "llama") ||
        gguf_writer_set_arr_str(s->w, "tokenizer.ggml.tokens", (const char *const *)tok, n) ||
        gguf_writer_set_arr_f32(s->w, "tokenizer.ggml.scores", scores, n) ||
        gguf_writer_set_arr_i32(s->w, "tokenizer.ggml.token_type", types, n) ||
        gguf_writer_set_u32(s->w, "tokenizer.ggml.bos_token_id", 1) ||
        gguf_writer_set_u32(s->w, "tokenizer.ggml.eos_token_id", 2) ||
        gguf_writer_set_u32(s->w, "tokenizer.ggml.unknown_token_id", 0) ||
        gguf_writer_set_bool(s->w, "tokenizer.ggml.add_bos_token", 1))
        snprintf(s->err, s->errlen, "cannot write the synthetic vocabulary");
    else
        rc = 0;
done:
    free(tok);
    free(text);
    free(scores);
    free(types);
    return rc;
}

static int add_hparams(synth *s, const geometry *g, const char *spec)
{
    char name[96];
    snprintf(name, sizeof name, "synthetic-%s", spec);
    if (gguf_writer_set_str(s->w, "general.architecture", "llama") ||
        gguf_writer_set_str(s->w, "general.name", name) ||
        gguf_writer_set_u32(s->w, "llama.context_length", g->n_ctx) ||
        gguf_writer_set_u32(s->w, "llama.embedding_length", g->n_embd) ||
        gguf_writer_set_u32(s->w, "llama.block_count", g->n_layer) ||
        gguf_writer_set_u32(s->w, "llama.feed_forward_length", g->n_ff) ||
        gguf_writer_set_u32(s->w, "llama.attention.head_count", g->n_head) ||
        gguf_writer_set_u32(s->w, "llama.attention.head_count_kv", g->n_head_kv) ||
        gguf_writer_set_u32(s->w, "llama.rope.dimension_count", g->n_embd / g->n_head) ||
        gguf_writer_set_f32(s->w, "llama.rope.freq_base", 10000.0f) ||
        gguf_writer_set_f32(s->w, "llama.attention.layer_norm_rms_epsilon", 1e-5f)) {
        snprintf(s->err, s->errlen, "cannot write the model metadata");
        return -1;
    }
    return 0;
}

static int parse_spec(const char *spec, const geometry **g, const type_mix **t, char *err,
                      size_t errlen)
{
    const char *colon = strchr(spec, ':');
    *g = NULL;
    *t = NULL;
    for (size_t i = 0; colon && i < sizeof geometries / sizeof geometries[0]; i++)
        if (strlen(geometries[i].name) == (size_t)(colon - spec) &&
            strncmp(spec, geometries[i].name, (size_t)(colon - spec)) == 0)
            *g = &geometries[i];
    for (size_t i = 0; colon && i < sizeof mixes / sizeof mixes[0]; i++)
        if (strcmp(colon + 1, mixes[i].name) == 0)
            *t = &mixes[i];
    if (!*g || !*t) {
        snprintf(err, errlen,
                 "synthetic model '%s' is not GEOMETRY:TYPE with GEOMETRY tinyllama "
                 "or tiny and TYPE f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, "
                 "q6_k or q4_k_m",
                 spec);
        return -1;
    }
    return 0;
}

int engine_synth_write(const char *spec, uint64_t seed, FILE *out, char *err, size_t errlen)
{
    const geometry *g;
    const type_mix *t;
    if (parse_spec(spec, &g, &t, err, errlen) != 0)
        return -1;
    synth s = {.w = gguf_writer_new(GGUF_DEFAULT_ALIGNMENT), .err = err, .errlen = errlen};
    rng_seed(&s.rng, seed);
    int rc = -1;
    if (!s.w) {
        snprintf(err, errlen, "out of memory creating a GGUF writer");
        return -1;
    }
    if (add_hparams(&s, g, spec) || add_vocab(&s, g) ||
        add_matrix(&s, "token_embd.weight", g->n_embd, g->n_vocab, t->base) ||
        add_norm(&s, "output_norm.weight", g->n_embd) ||
        add_matrix(&s, "output.weight", g->n_embd, g->n_vocab, t->output))
        goto done;
    for (uint32_t i = 0; i < g->n_layer; i++)
        if (add_layer(&s, g, t, i) != 0)
            goto done;
    rc = gguf_writer_write(s.w, out, err, errlen);
done:
    for (size_t i = 0; i < s.n_pools; i++)
        free(s.pools[i].rows);
    for (size_t i = 0; i < s.n_blobs; i++)
        free(s.blobs[i]);
    gguf_writer_free(s.w);
    return rc;
}
