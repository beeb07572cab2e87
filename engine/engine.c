/* The engine's public API: models, contexts, evaluation, bandwidth probe. */
#include "engine.h"
#include "gguf.h"
#include "model.h"
#include "pool.h"
#include "quant.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct engine_model {
    gguf_file *gguf;
    llama_model llama;
    tokenizer *tok;
    const kernels *k;
    char kernels_note[512]; /* why a better kernel set was passed over, or "" */
    char name[128];
};

struct engine_threads {
    pool *p;
};

struct engine_ctx {
    const engine_model *m;
    pool *p;
    engine_threads *own; /* the pool this context started, or NULL when borrowed */
    llama_state s;
    uint32_t pos;      /* tokens in the KV cache */
    uint32_t n_logits; /* rows of logits the last eval left (0: none) */
    int32_t *cached;   /* the ids of the pos tokens in the KV cache (n_ctx slots) */
};

engine_model *engine_model_load(const void *data, size_t size, const char *kernels_name, char *err,
                                size_t errlen)
{
    char note[512] = "";
    const kernels *k =
        kernels_name ? kernels_by_name(kernels_name) : kernels_best(note, sizeof note);
    if (!k) {
        snprintf(err, errlen, "kernel set '%s' is unknown or not supported by this CPU",
                 kernels_name);
        return NULL;
    }
    /* a set asked for by name is checked too: it must not run if it differs */
    if (kernels_name && strcmp(k->name, "scalar") != 0 &&
        kernels_check(k, 0, NULL, err, errlen) != 0)
        return NULL;
    engine_model *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory loading a model");
        return NULL;
    }
    m->k = k;
    snprintf(m->kernels_note, sizeof m->kernels_note, "%s", note);
    m->gguf = gguf_open(data, size, err, errlen);
    if (!m->gguf || llama_model_load(&m->llama, m->gguf, err, errlen) != 0) {
        gguf_close(m->gguf);
        free(m);
        return NULL;
    }
    m->tok = tokenizer_from_gguf(m->gguf, err, errlen);
    if (!m->tok || tokenizer_n_vocab(m->tok) != m->llama.hp.n_vocab) {
        if (m->tok)
            snprintf(err, errlen, "the tokenizer has %zu tokens but the model %u",
                     tokenizer_n_vocab(m->tok), m->llama.hp.n_vocab);
        engine_model_free(m);
        return NULL;
    }
    gguf_str name;
    if (gguf_get_str(m->gguf, "general.name", &name) == 0)
        snprintf(m->name, sizeof m->name, "%.*s", (int)(name.len < 127 ? name.len : 127), name.ptr);
    return m;
}

void engine_model_free(engine_model *m)
{
    if (!m)
        return;
    tokenizer_free(m->tok);
    llama_model_free(&m->llama);
    gguf_close(m->gguf);
    free(m);
}

void engine_model_get_info(const engine_model *m, engine_model_info *info)
{
    const llama_hparams *hp = &m->llama.hp;
    memset(info, 0, sizeof *info);
    info->arch = "llama";
    info->name = m->name;
    info->kernels = m->k->name;
    info->kernels_note = m->kernels_note;
    info->n_vocab = hp->n_vocab;
    info->n_ctx_train = hp->n_ctx_train;
    info->n_layer = hp->n_layer;
    info->n_embd = hp->n_embd;
    info->n_head = hp->n_head;
    info->n_head_kv = hp->n_head_kv;
    info->n_ff = hp->n_ff;
    info->bos = tokenizer_bos(m->tok);
    info->eos = tokenizer_eos(m->tok);
    info->add_bos = tokenizer_add_bos(m->tok);
    info->weight_bytes_per_token = m->llama.bytes_per_token;
}

void engine_model_meta(const engine_model *m, const char *key, engine_meta_value *out)
{
    const gguf_kv *kv = gguf_find(m->gguf, key);
    memset(out, 0, sizeof *out);
    if (!kv)
        return;
    switch (kv->type) {
    case GGUF_TYPE_STRING:
        out->kind = ENGINE_META_STRING;
        out->str = kv->v.str.ptr;
        out->len = (size_t)kv->v.str.len;
        return;
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        out->kind = ENGINE_META_UINT;
        out->u = kv->v.u64;
        return;
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64:
        out->kind = kv->v.i64 >= 0 ? ENGINE_META_UINT : ENGINE_META_OTHER;
        out->u = kv->v.i64 >= 0 ? (uint64_t)kv->v.i64 : 0;
        return;
    default:
        out->kind = ENGINE_META_OTHER;
    }
}

int engine_tokenize(const engine_model *m, const char *text, size_t len, int add_bos, int32_t **ids,
                    size_t *n, char *err, size_t errlen)
{
    size_t cap = tokenizer_encode_bound(len);
    *ids = malloc((cap ? cap : 1) * sizeof **ids);
    *n = 0;
    if (!*ids) {
        snprintf(err, errlen, "out of memory tokenizing %zu bytes", len);
        return -1;
    }
    if (tokenizer_encode(m->tok, text, len, add_bos, *ids, cap, n, err, errlen) != 0) {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

char *engine_detokenize(const engine_model *m, const int32_t *ids, size_t n, size_t *len)
{
    return tokenizer_decode(m->tok, ids, n, 0, len);
}

int engine_token_is_end(const engine_model *m, int32_t id)
{
    return tokenizer_is_eog(m->tok, id);
}

int engine_tokenize_fragment(const engine_model *m, const char *text, size_t len, int after_special,
                             int32_t **ids, size_t *n, char *err, size_t errlen)
{
    size_t cap = tokenizer_encode_bound(len);
    *ids = malloc((cap ? cap : 1) * sizeof **ids);
    *n = 0;
    if (!*ids) {
        snprintf(err, errlen, "out of memory tokenizing %zu bytes", len);
        return -1;
    }
    if (tokenizer_encode_fragment(m->tok, text, len, after_special, *ids, cap, n, err, errlen) !=
        0) {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

int32_t engine_token_special(const engine_model *m, const char *text, size_t len)
{
    return tokenizer_special_id(m->tok, text, len);
}

const char *engine_model_meta_str(const engine_model *m, const char *key, size_t *len)
{
    gguf_str v;
    if (gguf_get_str(m->gguf, key, &v) != 0) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)v.len;
    return v.ptr;
}

engine_threads *engine_threads_new(int n_threads, char *err, size_t errlen)
{
    engine_threads *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory creating a thread pool");
        return NULL;
    }
    if (!(t->p = pool_create(n_threads, err, errlen))) {
        free(t);
        return NULL;
    }
    return t;
}

void engine_threads_free(engine_threads *t)
{
    if (!t)
        return;
    pool_destroy(t->p);
    free(t);
}

int engine_threads_count(const engine_threads *t)
{
    return pool_threads(t->p);
}

void engine_ctx_defaults(engine_ctx_params *p)
{
    p->n_ctx = 0;
    p->n_batch = 512;
    p->threads = NULL;
    p->n_threads = 1;
    p->logits_all = 0;
}

engine_ctx *engine_ctx_new(const engine_model *m, const engine_ctx_params *p, char *err,
                           size_t errlen)
{
    uint32_t train = m->llama.hp.n_ctx_train;
    uint32_t n_ctx = p->n_ctx ? p->n_ctx : train;
    if (n_ctx > train) {
        snprintf(err, errlen, "requested context of %u tokens exceeds the model's %u", n_ctx,
                 train);
        return NULL;
    }
    if (p->n_batch == 0) {
        snprintf(err, errlen, "batch size must be at least 1");
        return NULL;
    }
    uint32_t n_batch = p->n_batch < n_ctx ? p->n_batch : n_ctx;
    engine_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory creating a context");
        return NULL;
    }
    c->m = m;
    if (!p->threads && !(c->own = engine_threads_new(p->n_threads, err, errlen))) {
        free(c);
        return NULL;
    }
    c->p = (p->threads ? p->threads : c->own)->p;
    c->cached = malloc((size_t)n_ctx * sizeof *c->cached);
    if (!c->cached) {
        snprintf(err, errlen, "out of memory for a context of %u tokens", n_ctx);
        engine_threads_free(c->own);
        free(c);
        return NULL;
    }
    if (llama_state_init(&c->s, &m->llama, n_ctx, n_batch, pool_threads(c->p), p->logits_all != 0,
                         err, errlen) != 0) {
        engine_threads_free(c->own);
        free(c->cached);
        free(c);
        return NULL;
    }
    return c;
}

void engine_ctx_free(engine_ctx *c)
{
    if (!c)
        return;
    engine_threads_free(c->own);
    llama_state_free(&c->s);
    free(c->cached);
    free(c);
}

uint32_t engine_ctx_size(const engine_ctx *c)
{
    return c->s.n_ctx;
}

uint32_t engine_ctx_position(const engine_ctx *c)
{
    return c->pos;
}

void engine_ctx_reset(engine_ctx *c)
{
    c->pos = 0;
    c->n_logits = 0;
}

static int check_batch(const engine_ctx *c, const int32_t *tokens, size_t n, char *err,
                       size_t errlen)
{
    uint32_t n_vocab = c->m->llama.hp.n_vocab;
    if (n == 0) {
        snprintf(err, errlen, "nothing to evaluate: the batch is empty");
        return -1;
    }
    if (n > c->s.n_ctx - c->pos) {
        snprintf(err, errlen,
                 "context overflow: %zu more tokens after %u do not fit in a "
                 "context of %u",
                 n, c->pos, c->s.n_ctx);
        return -1;
    }
    if (c->s.logits_all && n > c->s.n_batch) {
        snprintf(err, errlen, "%zu tokens exceed the batch of %u that keeps every logit row", n,
                 c->s.n_batch);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= n_vocab) {
            snprintf(err, errlen, "token id %d at index %zu is outside the vocabulary of %u",
                     (int)tokens[i], i, n_vocab);
            return -1;
        }
    return 0;
}

int engine_eval(engine_ctx *c, const int32_t *tokens, size_t n, char *err, size_t errlen)
{
    if (check_batch(c, tokens, n, err, errlen) != 0)
        return -1;
    for (size_t done = 0; done < n;) {
        uint32_t nb = (uint32_t)(n - done < c->s.n_batch ? n - done : c->s.n_batch);
        llama_forward(&c->m->llama, &c->s, c->m->k, c->p, tokens + done, nb, c->pos);
        memcpy(c->cached + c->pos, tokens + done, nb * sizeof *tokens);
        c->pos += nb;
        c->n_logits = c->s.logits_all ? nb : 1;
        done += nb;
    }
    return 0;
}

const float *engine_logits(const engine_ctx *c, size_t i)
{
    if (c->n_logits == 0)
        return NULL;
    if (!c->s.logits_all)
        i = 0;
    if (i >= c->n_logits)
        return NULL;
    return c->s.logits + i * c->m->llama.hp.n_vocab;
}

/* ---- memory bandwidth probe ------------------------------------------------
 *
 * What it measures: bytes per second that the context's own threads read
 * from a buffer far larger than the last-level cache, in pool_for chunks,
 * best of reps passes: the sustained DRAM read bandwidth the weights of a
 * decode step can be streamed at (the decode bound divides it by the weight
 * bytes one token reads). Checked against simple loops on the 2-core AMD
 * EPYC VM this was developed on (2 threads, 512 MB, SCHED_FIFO so other
 * load does not interfere): this probe 21-24 GB/s, a plain AVX2 load loop
 * 25-26 GB/s, glibc memchr 24-26 GB/s, memcpy 18-21 GB/s (read side). It
 * sits within ~10% below the best plain read loop, so the fraction of the
 * bound it reports errs, if anything, slightly high. */

typedef uint64_t u64x4 __attribute__((vector_size(32)));

typedef struct stream_job {
    const u64x4 *buf;
    u64x4 sums[POOL_MAX_THREADS]; /* one per thread, so the reads are not dead code */
} stream_job;

/* Reads [begin, end) blocks of 8 vectors with independent accumulators. */
static void stream_read(void *arg, int64_t begin, int64_t end, int thread)
{
    stream_job *j = arg;
    u64x4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (int64_t i = begin * 8; i < end * 8; i += 8) {
        a0 += j->buf[i] + j->buf[i + 4];
        a1 += j->buf[i + 1] + j->buf[i + 5];
        a2 += j->buf[i + 2] + j->buf[i + 6];
        a3 += j->buf[i + 3] + j->buf[i + 7];
    }
    j->sums[thread] = a0 + a1 + a2 + a3;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double engine_ctx_read_bandwidth(engine_ctx *c, size_t bytes, int reps)
{
    size_t block = 8 * sizeof(u64x4), n_blocks = bytes / block;
    stream_job *j = calloc(1, sizeof *j);
    u64x4 *buf = n_blocks ? aligned_alloc(64, n_blocks * block) : NULL;
    if (!j || !buf) {
        free(j);
        free(buf);
        return -1;
    }
    memset(buf, 1, n_blocks * block); /* fault every page in before timing */
    j->buf = buf;
    double best = 0;
    for (int r = 0; r < (reps < 1 ? 1 : reps); r++) {
        double t0 = now_seconds();
        pool_for(c->p, (int64_t)n_blocks, 64, stream_read, j);
        double dt = now_seconds() - t0;
        if (dt > 0 && (double)(n_blocks * block) / dt > best)
            best = (double)(n_blocks * block) / dt;
    }
    free(buf);
    free(j);
    return best / 1e9;
}

/* ---- generation ------------------------------------------------------------ */

const char *engine_finish_name(engine_finish f)
{
    switch (f) {
    case ENGINE_FINISH_EOS:
        return "eos";
    case ENGINE_FINISH_LENGTH:
        return "length";
    case ENGINE_FINISH_CANCELLED:
        return "cancelled";
    case ENGINE_FINISH_STOP:
        break;
    }
    return "stop";
}

/* The output text as it grows, what the callback has seen, and stop strings. */
typedef struct text_out {
    char *buf;
    size_t len, cap, emitted;
    utf8_stream u8;
    const engine_generate_params *p;
    engine_text_fn on_text;
    void *user;
    int stopped; /* a stop string matched or the callback asked to stop */
} text_out;

static int text_append(text_out *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *b = realloc(t->buf, cap);
        if (!b)
            return -1;
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = 0;
    return 0;
}

static void text_emit(text_out *t, size_t upto)
{
    if (upto > t->emitted && t->on_text &&
        t->on_text(t->user, t->buf + t->emitted, upto - t->emitted) != 0)
        t->stopped = 1;
    if (upto > t->emitted)
        t->emitted = upto;
}

/* Earliest stop-string match ending after byte `from`; returns its start or len. */
static size_t find_stop(const text_out *t, size_t from)
{
    size_t best = t->len;
    for (size_t i = 0; i < t->p->n_stop; i++) {
        size_t sl = strlen(t->p->stop[i]);
        if (sl == 0 || sl > t->len)
            continue;
        size_t start = from + 1 > sl ? from + 1 - sl : 0;
        for (size_t q = start; q + sl <= t->len && q < best; q++)
            if (memcmp(t->buf + q, t->p->stop[i], sl) == 0)
                best = q;
    }
    return best;
}

/* Longest suffix of the text that is a proper prefix of a stop string. */
static size_t stop_holdback(const text_out *t)
{
    size_t hold = 0;
    for (size_t i = 0; i < t->p->n_stop; i++) {
        size_t sl = strlen(t->p->stop[i]);
        for (size_t k = sl > 0 ? sl - 1 : 0; k > hold; k--)
            if (k <= t->len && memcmp(t->buf + t->len - k, t->p->stop[i], k) == 0) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* Adds the text of one token; returns -1 on out of memory. */
static int text_add_token(text_out *t, const tokenizer *tok, int32_t id)
{
    size_t plen, before = t->len;
    const char *piece = tokenizer_token_text(tok, id, &plen);
    char tmp[UTF8_STREAM_OUT_MAX(64)];
    for (size_t off = 0; off < plen; off += 64) {
        size_t n = plen - off < 64 ? plen - off : 64;
        if (text_append(t, tmp, utf8_stream_feed(&t->u8, piece + off, n, tmp)) != 0)
            return -1;
    }
    if (t->len == before)
        return 0;
    size_t stop = find_stop(t, before);
    if (stop < t->len) {
        t->len = stop;
        t->buf[stop] = 0;
        text_emit(t, stop);
        t->stopped = 1;
        return 0;
    }
    text_emit(t, t->len - stop_holdback(t));
    return 0;
}

static int text_finish(text_out *t)
{
    char tmp[4];
    if (!t->stopped && text_append(t, tmp, utf8_stream_finish(&t->u8, tmp)) != 0)
        return -1;
    if (!t->stopped)
        text_emit(t, t->len);
    return 0;
}

static double ms_since(double t0)
{
    return (now_seconds() - t0) * 1e3;
}

static int push_token(engine_generation *g, size_t *cap, int32_t id)
{
    if (g->n_tokens == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        int32_t *t = realloc(g->tokens, nc * sizeof *t);
        if (!t)
            return -1;
        g->tokens = t;
        *cap = nc;
    }
    g->tokens[g->n_tokens++] = id;
    return 0;
}

/* 1 when id ends the answer: EOS, end-of-turn, or one of the caller's. */
static int is_end(const engine_ctx *c, const engine_generate_params *p, int32_t id)
{
    if (tokenizer_is_eog(c->m->tok, id))
        return 1;
    for (size_t i = 0; i < p->n_end_tokens; i++)
        if (p->end_tokens[i] == id)
            return 1;
    return 0;
}

/* The decode loop after the prompt: sample, stream, evaluate, until done. */
static int decode_loop(engine_ctx *c, engine_sampler *smp, text_out *t, engine_generation *g,
                       char *err, size_t errlen)
{
    const tokenizer *tok = c->m->tok;
    size_t cap = 0;
    for (;;) {
        if (g->n_tokens >= t->p->max_tokens) {
            g->finish = ENGINE_FINISH_LENGTH;
            return 0;
        }
        if (t->p->cancel && t->p->cancel(t->p->cancel_user)) {
            g->finish = ENGINE_FINISH_CANCELLED;
            return 0;
        }
        int32_t id = engine_sampler_sample(smp, engine_logits(c, 0));
        engine_sampler_accept(smp, id);
        if (is_end(c, t->p, id)) {
            g->finish = ENGINE_FINISH_EOS;
            return 0;
        }
        if (push_token(g, &cap, id) != 0 || text_add_token(t, tok, id) != 0) {
            snprintf(err, errlen, "out of memory after %zu generated tokens", g->n_tokens);
            return -1;
        }
        if (t->stopped) {
            g->finish = ENGINE_FINISH_STOP;
            return 0;
        }
        if (g->n_tokens >= t->p->max_tokens || c->pos >= c->s.n_ctx) {
            g->finish = ENGINE_FINISH_LENGTH;
            return 0;
        }
        double t0 = now_seconds();
        if (engine_eval(c, &id, 1, err, errlen) != 0)
            return -1;
        g->decode_ms += ms_since(t0);
        g->n_decode_evals++;
    }
}

/* Feeds out->prompt_tokens from position `keep` on (the first keep are
 * already cached), then decodes. On failure out is freed. */
static int generate_from(engine_ctx *c, size_t keep, const engine_generate_params *p,
                         engine_text_fn on_text, void *user, engine_generation *out, char *err,
                         size_t errlen)
{
    if (out->n_prompt == 0 || out->n_prompt >= c->s.n_ctx) {
        snprintf(err, errlen,
                 "the prompt has %zu tokens; the context of %u needs at least one "
                 "token and room for one more",
                 out->n_prompt, c->s.n_ctx);
        engine_ctx_reset(c);
        engine_generation_free(out);
        return -1;
    }
    engine_sampler *smp = engine_sampler_new(&p->sampling, c->m->llama.hp.n_vocab, err, errlen);
    if (!smp) {
        engine_ctx_reset(c);
        engine_generation_free(out);
        return -1;
    }
    for (size_t i = 0; i < out->n_prompt; i++)
        engine_sampler_accept(smp, out->prompt_tokens[i]);
    text_out t = {.p = p, .on_text = on_text, .user = user};
    utf8_stream_init(&t.u8);
    c->pos = (uint32_t)keep;
    c->n_logits = 0;
    out->n_reused = keep;
    double t0 = now_seconds();
    int rc = engine_eval(c, out->prompt_tokens + keep, out->n_prompt - keep, err, errlen);
    out->prompt_ms = ms_since(t0);
    if (rc == 0)
        rc = decode_loop(c, smp, &t, out, err, errlen);
    if (rc == 0 && text_finish(&t) != 0) {
        snprintf(err, errlen, "out of memory finishing the output text");
        rc = -1;
    }
    engine_sampler_free(smp);
    out->text = t.buf ? t.buf : calloc(1, 1);
    out->text_len = t.buf ? t.len : 0;
    if (rc == 0 && !out->text) {
        snprintf(err, errlen, "out of memory for the output text");
        rc = -1;
    }
    if (rc != 0) {
        engine_ctx_reset(c);
        engine_generation_free(out);
    }
    return rc;
}

int engine_generate(engine_ctx *c, const char *prompt, size_t prompt_len,
                    const engine_generate_params *p, engine_text_fn on_text, void *user,
                    engine_generation *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    engine_ctx_reset(c);
    if (engine_tokenize(c->m, prompt, prompt_len, tokenizer_add_bos(c->m->tok), &out->prompt_tokens,
                        &out->n_prompt, err, errlen) != 0)
        return -1;
    return generate_from(c, 0, p, on_text, user, out, err, errlen);
}

int engine_generate_tokens(engine_ctx *c, const int32_t *input, size_t n_input,
                           const engine_generate_params *p, engine_text_fn on_text, void *user,
                           engine_generation *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->prompt_tokens = malloc((n_input ? n_input : 1) * sizeof *input);
    if (!out->prompt_tokens) {
        snprintf(err, errlen, "out of memory for an input of %zu tokens", n_input);
        engine_ctx_reset(c);
        return -1;
    }
    if (n_input)
        memcpy(out->prompt_tokens, input, n_input * sizeof *input);
    out->n_prompt = n_input;
    /* K and V at a position depend only on the tokens up to it, so the
     * longest common prefix stays valid; the last input token is always
     * evaluated again, for the logits that pick the first new token. */
    size_t keep = 0;
    while (keep < c->pos && keep + 1 < n_input && c->cached[keep] == input[keep])
        keep++;
    return generate_from(c, keep, p, on_text, user, out, err, errlen);
}

void engine_generation_free(engine_generation *g)
{
    free(g->prompt_tokens);
    free(g->tokens);
    free(g->text);
    memset(g, 0, sizeof *g);
}
