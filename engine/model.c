/* The llama architecture as GGUF describes it: binding and checking the
 * weights, and the forward pass.
 *
 * Numerics, fixed so results are bit-identical for any thread count: every
 * output element is computed by exactly one thread in one fixed order
 * (RMSNorm sums in double, attention scores in float in token order, the
 * softmax sum as llama.cpp's, matrix products by the kernels' own fixed
 * order). RoPE uses the
 * "normal" pairing of adjacent elements (x[2i], x[2i+1]), as the GGUF llama
 * layout expects (its converter permutes the Q and K rows), with
 * theta_i = pos * base^(-2i/rope_dim) computed as llama.cpp does: a float
 * running product of base^(-2/rope_dim), and the rotation with its first
 * product fused (fmaf), as llama.cpp's compiled code does.
 *
 * Where llama.cpp (the reference) rounds, we round the same way, so that the
 * two agree to ~1e-6 instead of ~1e-2 on random-weight models (a rounding
 * difference upstream flips 8-bit activation codes downstream): the KV
 * cache holds F16 (converted back exactly, four at a time, in attention),
 * queries and attention weights are rounded to F16 precision before their
 * products with the cache, and activations entering F16 / BF16
 * weight products are rounded to F16 / BF16 precision (8-bit activation
 * codes are llama.cpp's already: quant.c). */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sanity limits: a hostile header must not make us allocate absurd buffers. */
#define MAX_DIM    (1u << 20)
#define MAX_LAYERS 4096u
#define MAX_CTX    (1u << 22)

/* ---- loading -------------------------------------------------------------- */

static int get_u32(const gguf_file *f, const char *key, int required, uint32_t dflt, uint32_t *out,
                   char *err, size_t errlen)
{
    uint64_t v;
    if (gguf_get_u64(f, key, &v) != 0) {
        if (!required && !gguf_find(f, key)) {
            *out = dflt;
            return 0;
        }
        snprintf(err, errlen, "metadata %s is %s", key,
                 gguf_find(f, key) ? "not an integer" : "missing");
        return -1;
    }
    if (v == 0 || v > MAX_DIM * 4ull) {
        snprintf(err, errlen, "metadata %s = %llu is out of range", key, (unsigned long long)v);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int get_f32(const gguf_file *f, const char *key, float dflt, float *out, char *err,
                   size_t errlen)
{
    if (!gguf_find(f, key)) {
        *out = dflt;
        return 0;
    }
    if (gguf_get_f32(f, key, out) != 0 || !isfinite(*out) || *out <= 0) {
        snprintf(err, errlen, "metadata %s is not a positive number", key);
        return -1;
    }
    return 0;
}

static int read_hparams(llama_hparams *hp, const gguf_file *f, char *err, size_t errlen)
{
    const gguf_kv *tokens = gguf_find(f, "tokenizer.ggml.tokens");
    if (!tokens || tokens->type != GGUF_TYPE_ARRAY || tokens->v.arr.count == 0 ||
        tokens->v.arr.count > MAX_DIM * 4ull) {
        snprintf(err, errlen, "metadata tokenizer.ggml.tokens is missing or not a token list");
        return -1;
    }
    hp->n_vocab = (uint32_t)tokens->v.arr.count;
    if (get_u32(f, "llama.context_length", 1, 0, &hp->n_ctx_train, err, errlen) ||
        get_u32(f, "llama.embedding_length", 1, 0, &hp->n_embd, err, errlen) ||
        get_u32(f, "llama.block_count", 1, 0, &hp->n_layer, err, errlen) ||
        get_u32(f, "llama.feed_forward_length", 1, 0, &hp->n_ff, err, errlen) ||
        get_u32(f, "llama.attention.head_count", 1, 0, &hp->n_head, err, errlen) ||
        get_u32(f, "llama.attention.head_count_kv", 0, hp->n_head, &hp->n_head_kv, err, errlen) ||
        get_f32(f, "llama.rope.freq_base", 10000.0f, &hp->rope_base, err, errlen) ||
        get_f32(f, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &hp->rms_eps, err, errlen))
        return -1;
    if (hp->n_embd > MAX_DIM || hp->n_ff > MAX_DIM || hp->n_layer > MAX_LAYERS ||
        hp->n_ctx_train > MAX_CTX) {
        snprintf(err, errlen,
                 "model dimensions (embedding %u, feed-forward %u, %u layers, "
                 "context %u) exceed this engine's limits",
                 hp->n_embd, hp->n_ff, hp->n_layer, hp->n_ctx_train);
        return -1;
    }
    if (hp->n_embd % hp->n_head != 0 || hp->n_head % hp->n_head_kv != 0) {
        snprintf(err, errlen,
                 "%u attention heads (%u key/value heads) do not divide an "
                 "embedding of %u",
                 hp->n_head, hp->n_head_kv, hp->n_embd);
        return -1;
    }
    hp->head_dim = hp->n_embd / hp->n_head;
    if (get_u32(f, "llama.rope.dimension_count", 0, hp->head_dim, &hp->rope_dim, err, errlen))
        return -1;
    if (hp->rope_dim > hp->head_dim || hp->rope_dim % 2 != 0) {
        snprintf(err, errlen,
                 "llama.rope.dimension_count %u must be even and at most the head "
                 "size %u",
                 hp->rope_dim, hp->head_dim);
        return -1;
    }
    return 0;
}

/* Finds a 2-D tensor name of n_in x n_out with a type the kernels compute. */
static int bind_weight(weight *w, const gguf_file *f, const char *name, int64_t n_in, int64_t n_out,
                       char *err, size_t errlen)
{
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        snprintf(err, errlen, "tensor %s is missing", name);
        return -1;
    }
    const tensor_type_info *ti = tensor_type_get(t->type);
    if (!ti || !ti->supported) {
        snprintf(err, errlen, "tensor %s has type %s, which this engine cannot compute with", name,
                 ti ? ti->name : "unknown");
        return -1;
    }
    int shape_ok =
        (t->n_dims == 2 || (t->n_dims > 2 && t->ne[2] == 1 && (t->n_dims < 4 || t->ne[3] == 1))) &&
        t->ne[0] == (uint64_t)n_in && t->ne[1] == (uint64_t)n_out;
    if (!shape_ok) {
        snprintf(err, errlen, "tensor %s has shape [%llu, %llu] (%u dims), expected [%lld, %lld]",
                 name, (unsigned long long)t->ne[0],
                 (unsigned long long)(t->n_dims > 1 ? t->ne[1] : 1), t->n_dims, (long long)n_in,
                 (long long)n_out);
        return -1;
    }
    uint64_t row;
    if (tensor_row_bytes(t->type, (uint64_t)n_in, &row) != 0 ||
        activation_row_bytes(t->type, n_in) == 0 || row * (uint64_t)n_out > t->size) {
        snprintf(err, errlen, "tensor %s: rows of %lld elements do not fit type %s blocks", name,
                 (long long)n_in, ti->name);
        return -1;
    }
    w->data = t->data;
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = n_out;
    w->row_bytes = (size_t)row;
    return 0;
}

/* Loads a 1-D norm weight of n elements, converted to a malloc'd F32 copy. */
static float *load_norm(const gguf_file *f, const char *name, int64_t n, char *err, size_t errlen)
{
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        snprintf(err, errlen, "tensor %s is missing", name);
        return NULL;
    }
    if (t->ne[0] != (uint64_t)n || (t->n_dims > 1 && t->ne[1] != 1)) {
        snprintf(err, errlen, "tensor %s has %llu elements per row, expected a vector of %lld",
                 name, (unsigned long long)t->ne[0], (long long)n);
        return NULL;
    }
    uint64_t bytes;
    if (t->type != TT_F32 && t->type != TT_F16 && t->type != TT_BF16) {
        const tensor_type_info *ti = tensor_type_get(t->type);
        snprintf(err, errlen, "tensor %s has type %s; norm weights must be f32, f16 or bf16", name,
                 ti ? ti->name : "unknown");
        return NULL;
    }
    if (tensor_row_bytes(t->type, (uint64_t)n, &bytes) != 0 || bytes > t->size) {
        snprintf(err, errlen, "tensor %s is smaller than its %lld elements", name, (long long)n);
        return NULL;
    }
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory loading tensor %s", name);
        return NULL;
    }
    if (dequantize_row(t->type, t->data, v, n) != 0) {
        snprintf(err, errlen, "tensor %s could not be converted to f32", name);
        free(v);
        return NULL;
    }
    return v;
}

static int load_layer(layer_weights *L, const gguf_file *f, const llama_hparams *hp, uint32_t i,
                      char *err, size_t errlen)
{
    char name[96];
    int64_t e = hp->n_embd, kv = (int64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
#define NAME(s) (snprintf(name, sizeof name, "blk.%u." s ".weight", i), name)
    if (!(L->attn_norm = load_norm(f, NAME("attn_norm"), e, err, errlen)) ||
        !(L->ffn_norm = load_norm(f, NAME("ffn_norm"), e, err, errlen)))
        return -1;
    if (bind_weight(&L->wq, f, NAME("attn_q"), e, e, err, errlen) ||
        bind_weight(&L->wk, f, NAME("attn_k"), e, kv, err, errlen) ||
        bind_weight(&L->wv, f, NAME("attn_v"), e, kv, err, errlen) ||
        bind_weight(&L->wo, f, NAME("attn_output"), e, e, err, errlen) ||
        bind_weight(&L->w_gate, f, NAME("ffn_gate"), e, ff, err, errlen) ||
        bind_weight(&L->w_up, f, NAME("ffn_up"), e, ff, err, errlen) ||
        bind_weight(&L->w_down, f, NAME("ffn_down"), ff, e, err, errlen))
        return -1;
#undef NAME
    return 0;
}

static uint64_t matrix_bytes(const weight *w)
{
    return (uint64_t)w->row_bytes * (uint64_t)w->n_out;
}

static uint64_t decode_bytes(const llama_model *m)
{
    const llama_hparams *hp = &m->hp;
    uint64_t b = m->tok_embd.row_bytes + matrix_bytes(&m->output) + 4ull * hp->n_embd;
    for (uint32_t i = 0; i < hp->n_layer; i++) {
        const layer_weights *L = &m->layers[i];
        b += matrix_bytes(&L->wq) + matrix_bytes(&L->wk) + matrix_bytes(&L->wv) +
             matrix_bytes(&L->wo) + matrix_bytes(&L->w_gate) + matrix_bytes(&L->w_up) +
             matrix_bytes(&L->w_down) + 8ull * hp->n_embd;
    }
    return b;
}

int llama_model_load(llama_model *m, const gguf_file *f, char *err, size_t errlen)
{
    gguf_str arch;
    memset(m, 0, sizeof *m);
    if (gguf_get_str(f, "general.architecture", &arch) != 0) {
        snprintf(err, errlen, "metadata general.architecture is missing");
        return -1;
    }
    if (arch.len != 5 || memcmp(arch.ptr, "llama", 5) != 0) {
        snprintf(err, errlen, "architecture '%.*s' is not supported (only llama)",
                 (int)(arch.len > 40 ? 40 : arch.len), arch.ptr);
        return -1;
    }
    if (read_hparams(&m->hp, f, err, errlen) != 0)
        return -1;
    const llama_hparams *hp = &m->hp;
    if (bind_weight(&m->tok_embd, f, "token_embd.weight", hp->n_embd, hp->n_vocab, err, errlen))
        return -1;
    if (gguf_find_tensor(f, "output.weight")) {
        if (bind_weight(&m->output, f, "output.weight", hp->n_embd, hp->n_vocab, err, errlen))
            return -1;
    } else {
        m->output = m->tok_embd; /* tied embeddings */
    }
    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        snprintf(err, errlen, "out of memory for %u layers", hp->n_layer);
        return -1;
    }
    if (!(m->output_norm = load_norm(f, "output_norm.weight", hp->n_embd, err, errlen)))
        goto fail;
    for (uint32_t i = 0; i < hp->n_layer; i++)
        if (load_layer(&m->layers[i], f, hp, i, err, errlen) != 0)
            goto fail;
    m->bytes_per_token = decode_bytes(m);
    return 0;
fail:
    llama_model_free(m);
    return -1;
}

void llama_model_free(llama_model *m)
{
    if (m->layers)
        for (uint32_t i = 0; i < m->hp.n_layer; i++) {
            free(m->layers[i].attn_norm);
            free(m->layers[i].ffn_norm);
        }
    free(m->layers);
    free(m->output_norm);
    memset(m, 0, sizeof *m);
}

/* ---- run state ------------------------------------------------------------ */

static size_t max_act_bytes(const llama_model *m)
{
    size_t best = activation_row_bytes(m->output.type, m->output.n_in);
    for (uint32_t i = 0; i < m->hp.n_layer; i++) {
        const layer_weights *L = &m->layers[i];
        const weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t j = 0; j < sizeof ws / sizeof ws[0]; j++) {
            size_t b = activation_row_bytes(ws[j]->type, ws[j]->n_in);
            if (b > best)
                best = b;
        }
    }
    return best;
}

static float *alloc_floats(size_t n, int *failed)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p)
        *failed = 1;
    return p;
}

/* Cached value rows converted to F32 together, then summed into each
 * head's output while the output stays in registers. */
#define ATTN_V_TILE 32

/* Per-thread attention scratch: the scores of one query-head group over
 * the context, ATTN_V_TILE key or value rows converted to F32, and the
 * group's dots with one key row. */
static size_t attn_scratch_floats(const llama_hparams *hp, uint32_t n_ctx)
{
    const size_t group = hp->n_head / hp->n_head_kv;
    return group * n_ctx + (size_t)ATTN_V_TILE * hp->head_dim + group;
}

int llama_state_init(llama_state *s, const llama_model *m, uint32_t n_ctx, uint32_t n_batch,
                     int n_threads, int logits_all, char *err, size_t errlen)
{
    const llama_hparams *hp = &m->hp;
    size_t nb = n_batch, kv = (size_t)hp->n_head_kv * hp->head_dim;
    int failed = 0;
    memset(s, 0, sizeof *s);
    s->n_ctx = n_ctx;
    s->n_batch = n_batch;
    s->n_threads = n_threads;
    s->logits_all = logits_all;
    s->x = alloc_floats(nb * hp->n_embd, &failed);
    s->xb = alloc_floats(nb * hp->n_embd, &failed);
    s->xb2 = alloc_floats(nb * hp->n_embd, &failed);
    s->q = alloc_floats(nb * hp->n_embd, &failed);
    s->k = alloc_floats(nb * kv, &failed);
    s->v = alloc_floats(nb * kv, &failed);
    s->hb = alloc_floats(nb * hp->n_ff, &failed);
    s->hb2 = alloc_floats(nb * hp->n_ff, &failed);
    s->att = alloc_floats((size_t)n_threads * attn_scratch_floats(hp, n_ctx), &failed);
    s->rope = alloc_floats(nb * hp->rope_dim, &failed);
    s->key_cache = calloc((size_t)hp->n_layer * n_ctx * kv + 1, sizeof(uint16_t));
    s->value_cache = calloc((size_t)hp->n_layer * n_ctx * kv + 1, sizeof(uint16_t));
    failed |= !s->key_cache || !s->value_cache;
    s->logits = alloc_floats((logits_all ? nb : 1) * hp->n_vocab, &failed);
    s->act_cap = max_act_bytes(m) * nb;
    for (int i = 0; i < 3; i++)
        if (!(s->act[i] = malloc(s->act_cap)))
            failed = 1;
    if (failed) {
        llama_state_free(s);
        snprintf(err, errlen, "out of memory for a context of %u tokens (batch %u)", n_ctx,
                 n_batch);
        return -1;
    }
    return 0;
}

void llama_state_free(llama_state *s)
{
    float *bufs[] = {s->x,  s->xb,  s->xb2, s->q,    s->k,     s->v,
                     s->hb, s->hb2, s->att, s->rope, s->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    for (int i = 0; i < 3; i++)
        free(s->act[i]);
    free(s->key_cache);
    free(s->value_cache);
    memset(s, 0, sizeof *s);
}

/* ---- building blocks ------------------------------------------------------ */

/* x rounded to the nearest F16 value (ties to even), as a float: equals
 * fp16_to_fp32(fp32_to_fp16(x)), with a fast path for F16's normal range. */
static inline float round_f16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x38800000u && a < 0x477fe000u) { /* [2^-14, 65504): normal, no overflow */
        u += 0x0fffu + ((u >> 13) & 1u);
        u &= 0xffffe000u;
        memcpy(&x, &u, sizeof x);
        return x;
    }
    return fp16_to_fp32(fp32_to_fp16(x));
}

/* x rounded to the nearest BF16 value (ties to even), as a float. */
static inline float round_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) >= 0x7f800000u) /* inf and NaN pass through */
        return x;
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Everything a parallel step needs, passed to the pool callbacks. */
typedef struct run {
    const llama_model *m;
    llama_state *s;
    const kernels *k;
    pool *p;
} run;

/* y = W x for up to three weights reading the same nb input rows x (each of
 * n_in floats). x is quantized once per distinct activation format, then one
 * parallel-for covers the rows of all the weights together (one barrier). */
typedef struct matmul_job {
    const kernels *k;
    int n_mats, nb;
    const weight *w[3];
    const uint8_t *act[3];
    size_t act_stride[3];
    float *y[3];
    int64_t first_row[4]; /* rows of weight i are [first_row[i], first_row[i+1]) */
} matmul_job;

static void matmul_rows(void *arg, int64_t begin, int64_t end, int thread)
{
    const matmul_job *j = arg;
    (void)thread;
    for (int i = 0; i < j->n_mats; i++) {
        int64_t r0 = begin > j->first_row[i] ? begin : j->first_row[i];
        int64_t r1 = end < j->first_row[i + 1] ? end : j->first_row[i + 1];
        if (r0 >= r1)
            continue;
        const weight *w = j->w[i];
        j->k->mul_mat(w->type, w->n_in, w->data, w->row_bytes, j->act[i], j->act_stride[i], j->nb,
                      j->y[i], (size_t)w->n_out, r0 - j->first_row[i], r1 - j->first_row[i]);
    }
}

/* Quantization of nb rows of n floats into a weight type's activation
 * format. A single row (decode) is split into parts of QUANT_PART elements
 * (whole activation blocks, which are independent) so that both threads
 * share the work; nb rows are split by row. With up set, x is first
 * replaced by silu(x) * up over the same elements (SwiGLU), so the FFN
 * needs no separate pass for it. */
#define QUANT_PART 256

typedef struct quant_job {
    const kernels *k;
    uint32_t weight_type;
    float *x;
    const float *up; /* NULL, or SwiGLU's up projection (x is the gate) */
    int64_t n, parts;
    uint8_t *out;
    size_t stride, part_bytes;
} quant_job;

/* Float weights take F32 activations; F16 and BF16 ones get them rounded to
 * their own precision first, as llama.cpp does. 8-bit formats come from the
 * kernel set, whose codes are llama.cpp's byte for byte. */
static void quantize_items(void *arg, int64_t begin, int64_t end, int thread)
{
    const quant_job *q = arg;
    (void)thread;
    for (int64_t item = begin; item < end; item++) {
        const int64_t b = item / q->parts, e0 = item % q->parts * QUANT_PART;
        const int64_t len = q->n - e0 < QUANT_PART || q->parts == 1 ? q->n - e0 : QUANT_PART;
        uint8_t *out = q->out + (size_t)b * q->stride + (size_t)(item % q->parts) * q->part_bytes;
        float *x = q->x + b * q->n + e0;
        if (q->up) {
            const float *u = q->up + b * q->n + e0;
            for (int64_t i = 0; i < len; i++)
                x[i] = x[i] / (1.0f + expf(-x[i])) * u[i];
        }
        if ((q->weight_type == TT_F16 || q->weight_type == TT_BF16) &&
            activation_type(q->weight_type) == TT_F32) {
            float *o = (float *)(void *)out;
            for (int64_t i = 0; i < len; i++)
                o[i] = q->weight_type == TT_F16 ? round_f16(x[i]) : round_bf16(x[i]);
        } else {
            q->k->quantize_activations(q->weight_type, x, out, len);
        }
    }
}

/* Quantizes x (nb rows of n) for weight type wt into out, rows stride bytes
 * apart, in parallel; applies SwiGLU first when up is set. */
static void quantize(const run *r, uint32_t wt, float *x, const float *up, int64_t n, int nb,
                     uint8_t *out, size_t stride)
{
    quant_job q = {r->k, wt, x, up, n, 1, out, stride, 0};
    if (nb == 1 && n > QUANT_PART) {
        q.parts = (n + QUANT_PART - 1) / QUANT_PART;
        q.part_bytes = activation_row_bytes(wt, QUANT_PART);
    }
    pool_for(r->p, nb * q.parts, nb == 1 ? 2 : 1, quantize_items, &q);
}

/* y[i] = W[i] x for n_mats weights sharing the input x; with up set (one
 * weight only), x = silu(x) * up first. */
static void matmul_ex(const run *r, int n_mats, const weight *const *w, float *const *y, float *x,
                      const float *up, int nb)
{
    matmul_job j = {.k = r->k, .n_mats = n_mats, .nb = nb};
    int64_t n_in = w[0]->n_in;
    for (int i = 0; i < n_mats; i++) {
        uint32_t at = activation_type(w[i]->type);
        j.w[i] = w[i];
        j.y[i] = y[i];
        j.act_stride[i] = activation_row_bytes(w[i]->type, n_in);
        j.first_row[i + 1] = j.first_row[i] + w[i]->n_out;
        for (int prev = 0; prev < i && !j.act[i]; prev++)
            if (activation_type(w[prev]->type) == at)
                j.act[i] = j.act[prev];
        if (!j.act[i]) {
            quantize(r, w[i]->type, x, i == 0 ? up : NULL, n_in, nb, r->s->act[i], j.act_stride[i]);
            j.act[i] = r->s->act[i];
        }
    }
    /* at least ~64K multiply-adds per chunk, so tiny products run inline */
    int64_t grain = (65536 / (n_in * nb) + 15) / 16 * 16;
    pool_for(r->p, j.first_row[n_mats], grain < 16 ? 16 : grain, matmul_rows, &j);
}

static void matmul(const run *r, int n_mats, const weight *const *w, float *const *y, float *x,
                   int nb)
{
    matmul_ex(r, n_mats, w, y, x, NULL, nb);
}

/* out = x / sqrt(mean(x^2) + eps) * w, for nb rows of n; sums in double. */
typedef struct norm_job {
    float *out;
    const float *x, *w;
    int64_t n;
    float eps;
} norm_job;

static void rmsnorm_rows(void *arg, int64_t begin, int64_t end, int thread)
{
    const norm_job *j = arg;
    (void)thread;
    for (int64_t b = begin; b < end; b++) {
        const float *x = j->x + b * j->n;
        float *o = j->out + b * j->n;
        double sum = 0;
        for (int64_t i = 0; i < j->n; i++)
            sum += (double)(x[i] * x[i]);
        float mean = (float)(sum / (double)j->n);
        float scale = 1.0f / sqrtf(mean + j->eps);
        for (int64_t i = 0; i < j->n; i++)
            o[i] = (x[i] * scale) * j->w[i];
    }
}

static void rmsnorm(const run *r, float *out, const float *x, const float *w, int nb)
{
    norm_job j = {out, x, w, r->m->hp.n_embd, r->m->hp.rms_eps};
    pool_for(r->p, nb, 1, rmsnorm_rows, &j);
}

/* Fills the cos/sin table of each batch row: rope[b][2i] = cos, [2i+1] = sin. */
static void rope_table(const run *r, uint32_t pos, int nb)
{
    const llama_hparams *hp = &r->m->hp;
    float theta_scale = powf(hp->rope_base, -2.0f / (float)hp->rope_dim);
    for (int b = 0; b < nb; b++) {
        float theta = (float)(pos + (uint32_t)b), *t = r->s->rope + (size_t)b * hp->rope_dim;
        for (uint32_t i = 0; i < hp->rope_dim / 2; i++) {
            t[2 * i] = cosf(theta);
            t[2 * i + 1] = sinf(theta);
            theta *= theta_scale;
        }
    }
}

/* Rotates adjacent pairs of the first rope_dim elements of every head. */
static void rope(const run *r, float *v, int n_heads, int nb)
{
    const llama_hparams *hp = &r->m->hp;
    for (int b = 0; b < nb; b++) {
        const float *t = r->s->rope + (size_t)b * hp->rope_dim;
        for (int h = 0; h < n_heads; h++) {
            float *x = v + ((size_t)b * n_heads + h) * hp->head_dim;
            for (uint32_t i = 0; i < hp->rope_dim; i += 2) {
                float x0 = x[i], x1 = x[i + 1], c = t[i], s = t[i + 1];
                /* the reference's compiler fuses the first product of each
                 * component into an FMA (GCC's default -ffp-contract=fast);
                 * fmaf is exactly rounded on every platform */
                x[i] = fmaf(x0, c, -(x1 * s));
                x[i + 1] = fmaf(x0, s, x1 * c);
            }
        }
    }
}

static uint16_t *cache_row(uint16_t *cache, const llama_hparams *hp, uint32_t n_ctx, uint32_t layer,
                           uint32_t pos)
{
    size_t kv = (size_t)hp->n_head_kv * hp->head_dim;
    return cache + ((size_t)layer * n_ctx + pos) * kv;
}

/* Sums 16 floats as a halving tree (lane i + lane i+8, then +4, +2, +1),
 * the order of a 16-lane vector's horizontal sum. */
static float lanes_fold16(float *l)
{
    for (int half = 8; half >= 1; half /= 2)
        for (int i = 0; i < half; i++)
            l[i] = l[i] + l[i + half];
    return l[0];
}

/* Softmax of the n scores in att, in place, each probability rounded to
 * F16 precision. The normalising sum is llama.cpp's (ggml_vec_soft_max_f32
 * on x86): exps taken 16 at a time from index 0, each group of 16 summed
 * as a float halving tree, the group sums accumulated in double, and the
 * probabilities scaled by (float)(1.0 / sum). Depends only on the row, so
 * it is the same for any batch size or thread count. */
static void softmax_f16(float *att, uint32_t n)
{
    float max = -INFINITY;
    for (uint32_t t = 0; t < n; t++)
        max = att[t] > max ? att[t] : max;
    double sum = 0;
    for (uint32_t t0 = 0; t0 < n; t0 += 16) {
        float lanes[16] = {0};
        for (uint32_t t = t0; t < n && t < t0 + 16; t++)
            lanes[t - t0] = att[t] = expf(att[t] - max);
        sum += (double)lanes_fold16(lanes);
    }
    const float inv = (float)(1.0 / sum);
    for (uint32_t t = 0; t < n; t++)
        att[t] = round_f16(att[t] * inv);
}

/* Causal grouped-query attention of batch row b for the query heads that
 * share one key/value head. Each cached key and value row is converted to
 * F32 once (exactly) and used by every head of the group; per head, the
 * arithmetic is the same as one head at a time. */
typedef struct attn_job {
    const run *r;
    uint32_t layer, pos;
} attn_job;

static void attention_group(const attn_job *j, uint32_t b, uint32_t kvh, float *scratch)
{
    const llama_hparams *hp = &j->r->m->hp;
    llama_state *s = j->r->s;
    const kernels *k = j->r->k;
    const uint32_t hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const uint32_t last = j->pos + b, kvo = kvh * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *row = scratch + (size_t)group * s->n_ctx; /* converted K or V rows */
    float *dots = row + (size_t)ATTN_V_TILE * hd;
    float *q0 = s->q + ((size_t)b * hp->n_head + (size_t)kvh * group) * hd;
    float *out0 = s->xb2 + ((size_t)b * hp->n_head + (size_t)kvh * group) * hd;
    for (uint32_t i = 0; i < group * hd; i++)
        q0[i] = round_f16(q0[i]);
    for (uint32_t t = 0; t <= last; t++) {
        k->f16_to_f32(cache_row(s->key_cache, hp, s->n_ctx, j->layer, t) + kvo, row, hd);
        k->dot_f32(q0, hd, group, row, hd, dots);
        for (uint32_t g = 0; g < group; g++)
            scratch[(size_t)g * s->n_ctx + t] = dots[g] * scale;
    }
    for (uint32_t g = 0; g < group; g++)
        softmax_f16(scratch + (size_t)g * s->n_ctx, last + 1);
    memset(out0, 0, (size_t)group * hd * sizeof *out0);
    for (uint32_t t0 = 0; t0 <= last; t0 += ATTN_V_TILE) {
        const uint32_t nt = last + 1 - t0 < ATTN_V_TILE ? last + 1 - t0 : ATTN_V_TILE;
        for (uint32_t t = 0; t < nt; t++)
            k->f16_to_f32(cache_row(s->value_cache, hp, s->n_ctx, j->layer, t0 + t) + kvo,
                          row + (size_t)t * hd, hd);
        for (uint32_t g = 0; g < group; g++)
            k->axpy_rows(out0 + (size_t)g * hd, scratch + (size_t)g * s->n_ctx + t0, row, nt, hd);
    }
}

/* Items are (batch row, key/value head) pairs. */
static void attention_items(void *arg, int64_t begin, int64_t end, int thread)
{
    const attn_job *j = arg;
    const llama_hparams *hp = &j->r->m->hp;
    float *scratch = j->r->s->att + (size_t)thread * attn_scratch_floats(hp, j->r->s->n_ctx);
    for (int64_t item = begin; item < end; item++)
        attention_group(j, (uint32_t)(item / hp->n_head_kv), (uint32_t)(item % hp->n_head_kv),
                        scratch);
}

static void attention(const run *r, uint32_t layer, uint32_t pos, int nb)
{
    const llama_hparams *hp = &r->m->hp;
    size_t kv = (size_t)hp->n_head_kv * hp->head_dim;
    uint16_t *kc = cache_row(r->s->key_cache, hp, r->s->n_ctx, layer, pos);
    uint16_t *vc = cache_row(r->s->value_cache, hp, r->s->n_ctx, layer, pos);
    for (size_t i = 0; i < (size_t)nb * kv; i++) {
        kc[i] = fp32_to_fp16(r->s->k[i]);
        vc[i] = fp32_to_fp16(r->s->v[i]);
    }
    attn_job j = {r, layer, pos};
    /* an item's work grows with the context; keep chunks above ~32K multiply-adds */
    const int64_t group = hp->n_head / hp->n_head_kv;
    int64_t grain = 32768 / ((int64_t)(pos + (uint32_t)nb) * hp->head_dim * 2 * group) + 1;
    pool_for(r->p, (int64_t)nb * hp->n_head_kv, grain, attention_items, &j);
}

static void add_rows(float *x, const float *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += d[i];
}

static void embed(const run *r, const int32_t *tokens, int nb)
{
    const weight *e = &r->m->tok_embd;
    for (int b = 0; b < nb; b++)
        /* the type was checked at load: every supported type dequantizes */
        (void)dequantize_row(e->type, e->data + (size_t)tokens[b] * e->row_bytes,
                             r->s->x + (size_t)b * e->n_in, e->n_in);
}

/* ---- the forward pass ------------------------------------------------------ */

void llama_forward(const llama_model *m, llama_state *s, const kernels *k, pool *p,
                   const int32_t *tokens, uint32_t n_tokens, uint32_t pos)
{
    const llama_hparams *hp = &m->hp;
    const run r = {m, s, k, p};
    const int nb = (int)n_tokens;
    const size_t dim = hp->n_embd;

    embed(&r, tokens, nb);
    rope_table(&r, pos, nb);
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const layer_weights *L = &m->layers[l];
        /* attention block: x += Wo * attention(rope(Wq xn), rope(Wk xn), Wv xn) */
        rmsnorm(&r, s->xb, s->x, L->attn_norm, nb);
        matmul(&r, 3, (const weight *[]){&L->wq, &L->wk, &L->wv}, (float *[]){s->q, s->k, s->v},
               s->xb, nb);
        rope(&r, s->q, (int)hp->n_head, nb);
        rope(&r, s->k, (int)hp->n_head_kv, nb);
        attention(&r, l, pos, nb);
        matmul(&r, 1, (const weight *[]){&L->wo}, (float *[]){s->xb}, s->xb2, nb);
        add_rows(s->x, s->xb, nb * dim);
        /* feed-forward block: x += W_down (silu(W_gate xn) * W_up xn) */
        rmsnorm(&r, s->xb, s->x, L->ffn_norm, nb);
        matmul(&r, 2, (const weight *[]){&L->w_gate, &L->w_up}, (float *[]){s->hb, s->hb2}, s->xb,
               nb);
        /* hb = silu(hb) * hb2 (SwiGLU), applied as hb is quantized for W_down */
        matmul_ex(&r, 1, (const weight *[]){&L->w_down}, (float *[]){s->xb}, s->hb, s->hb2, nb);
        add_rows(s->x, s->xb, nb * dim);
    }
    /* classifier over every row, or only the last one */
    const int first = s->logits_all ? 0 : nb - 1, n_out = nb - first;
    rmsnorm(&r, s->xb, s->x + (size_t)first * dim, m->output_norm, n_out);
    matmul(&r, 1, (const weight *[]){&m->output}, (float *[]){s->logits}, s->xb, n_out);
}
