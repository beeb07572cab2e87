/* engine: run GGUF language models on the CPU.
 *
 * A pure library (libc, libm, pthreads): no file opening policy, no crypto,
 * no logging. Callers map the model bytes themselves (after verifying them)
 * and pass them in. Errors come back as a return code plus one sentence in a
 * caller-provided buffer.
 *
 * Determinism: for one model, prompt, parameters and seed, the logits and
 * tokens are bit-identical for any thread count, prefill batch size and
 * kernel set (scalar, avx2, ...; tests/unit/test_engine_model.c). */
#ifndef ENGINE_ENGINE_H
#define ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ENGINE_VERSION "0.1.0"

/* Space-separated names of the kernel sets this CPU can run ("scalar avx2"),
 * best last. */
const char *engine_kernels_available(void);

/* Runs the thorough self-check of every SIMD kernel set this CPU has against
 * the scalar reference (bit for bit; model loading runs a quick one) and
 * writes one line per set to out ("avx2: bit-identical to scalar in 177
 * cases", or the first difference). Returns 0 when all agree. */
int engine_kernels_self_check(char *out, size_t outlen);

/* ---- models ------------------------------------------------------------- */

typedef struct engine_model engine_model;

typedef struct engine_model_info {
    const char *arch;    /* "llama" */
    const char *name;    /* general.name, or "" */
    const char *kernels; /* kernel set in use: "scalar", "avx2", "avx512", ... */
    /* "" or why a faster set this CPU has was passed over: it failed the
     * self-check against scalar that every load runs (kernels_check) */
    const char *kernels_note;
    uint32_t n_vocab, n_ctx_train, n_layer, n_embd, n_head, n_head_kv, n_ff;
    int32_t bos, eos;                /* -1 when the vocabulary has none */
    int add_bos;                     /* prompts start with BOS (tokenizer.ggml.add_bos_token) */
    uint64_t weight_bytes_per_token; /* weight bytes one decode step reads */
} engine_model_info;

/* Parses and checks a GGUF model in data[0, size), which the caller mapped
 * (and verified) and keeps mapped until engine_model_free. kernels names a
 * kernel set ("scalar", "avx2", ...) or is NULL for the best this CPU runs.
 * Returns NULL and fills err on any defect. */
engine_model *engine_model_load(const void *data, size_t size, const char *kernels, char *err,
                                size_t errlen);
void engine_model_free(engine_model *m);
void engine_model_get_info(const engine_model *m, engine_model_info *info);

/* One metadata value of the model's GGUF header, looked up by key
 * ("general.license", "general.file_type", ...). Strings are the file's
 * bytes as stored: not validated (maybe not UTF-8, any length, control
 * characters included), not NUL-terminated, valid while the model is
 * loaded; whoever shows them must sanitise them. Unsigned integers (and
 * signed ones that are not negative) come decoded; every other type
 * (floats, bools, arrays, negative integers) is reported as OTHER. */
typedef enum engine_meta_kind {
    ENGINE_META_ABSENT,
    ENGINE_META_STRING,
    ENGINE_META_UINT,
    ENGINE_META_OTHER,
} engine_meta_kind;

typedef struct engine_meta_value {
    engine_meta_kind kind;
    const char *str; /* ENGINE_META_STRING: len bytes */
    size_t len;
    uint64_t u; /* ENGINE_META_UINT */
} engine_meta_value;

/* Fills *out for key (kind ENGINE_META_ABSENT when the file has no such key). */
void engine_model_meta(const engine_model *m, const char *key, engine_meta_value *out);

/* ---- text <-> tokens ------------------------------------------------------ */

/* Tokenizes len bytes of UTF-8 text (no special-token parsing), with a
 * leading BOS when add_bos. *ids is malloc'd (free it); *n its length.
 * Fails with err on invalid UTF-8. */
int engine_tokenize(const engine_model *m, const char *text, size_t len, int add_bos, int32_t **ids,
                    size_t *n, char *err, size_t errlen);
/* Text of n tokens as a malloc'd NUL-terminated UTF-8 string (broken UTF-8
 * becomes U+FFFD); NULL on out of memory. */
char *engine_detokenize(const engine_model *m, const int32_t *ids, size_t n, size_t *len);
/* 1 when id ends a generation (EOS or end-of-turn). */
int engine_token_is_end(const engine_model *m, int32_t id);

/* Chat templates build their input from plain-text fragments and special
 * tokens, each from its own call, so text a user typed can never become a
 * special token (engine/tokenizer.h):
 * - engine_tokenize_fragment: text without BOS; the SentencePiece leading
 *   space only when after_special (the fragment starts the input or follows
 *   a special token, as llama.cpp renders templates). Like engine_tokenize
 *   otherwise, and text never merges into a control token.
 * - engine_token_special: the id of the control or user-defined token whose
 *   piece is exactly text[0..len) ("<|im_start|>", "</s>"), or -1.
 * - engine_model_meta_str: a string of the model's metadata (for example
 *   "tokenizer.chat_template"), pointing into the model bytes (not
 *   NUL-terminated, valid while the model is loaded); NULL when absent or
 *   not a string. */
int engine_tokenize_fragment(const engine_model *m, const char *text, size_t len, int after_special,
                             int32_t **ids, size_t *n, char *err, size_t errlen);
int32_t engine_token_special(const engine_model *m, const char *text, size_t len);
const char *engine_model_meta_str(const engine_model *m, const char *key, size_t *len);

/* ---- threads ------------------------------------------------------------- */

/* A pool of threads, created once. The sandboxed worker creates it before
 * its seccomp filter forbids clone() and before it parses any model, then
 * hands it to engine_ctx_new; nothing in the engine starts threads later. */
typedef struct engine_threads engine_threads;

/* Starts n_threads - 1 threads (the calling thread is the first of n). */
engine_threads *engine_threads_new(int n_threads, char *err, size_t errlen);
/* Stops the threads; free every context using them first. NULL is accepted. */
void engine_threads_free(engine_threads *t);
int engine_threads_count(const engine_threads *t);

/* ---- contexts: KV cache and scratch ---------------------------------------- */

typedef struct engine_ctx engine_ctx;

typedef struct engine_ctx_params {
    uint32_t n_ctx;          /* 0: the model's context length; else at most that */
    uint32_t n_batch;        /* tokens per forward pass (prefill chunk) */
    engine_threads *threads; /* borrowed pool (contexts sharing one must not run at the
                                same time), or NULL: the context starts its own ... */
    int n_threads;           /* ... of this many threads */
    int logits_all;          /* keep logits for every token of an eval, not just the last */
} engine_ctx_params;

/* n_ctx 0, n_batch 512, own pool of 1 thread, last-token logits. */
void engine_ctx_defaults(engine_ctx_params *p);
/* Allocates the KV cache (F16, like llama.cpp's) and scratch, and starts
 * threads unless given some. */
engine_ctx *engine_ctx_new(const engine_model *m, const engine_ctx_params *p, char *err,
                           size_t errlen);
void engine_ctx_free(engine_ctx *c);
uint32_t engine_ctx_size(const engine_ctx *c);     /* n_ctx in effect */
uint32_t engine_ctx_position(const engine_ctx *c); /* tokens in the cache */
void engine_ctx_reset(engine_ctx *c);              /* forgets every cached token */

/* Appends n tokens to the context, in batches of up to n_batch (matrix-matrix
 * products). Fails cleanly, changing nothing, on an empty batch, a token id
 * outside the vocabulary, context overflow, or (with logits_all) n > n_batch. */
int engine_eval(engine_ctx *c, const int32_t *tokens, size_t n, char *err, size_t errlen);
/* n_vocab logits after the last eval: of its token i (logits_all), else of its
 * last token (i ignored). NULL before any eval or when i is out of range. */
const float *engine_logits(const engine_ctx *c, size_t i);

/* Measures memory read bandwidth in GB/s (1e9 bytes/s) with the context's
 * threads streaming a buffer of `bytes` (use several times the cache size);
 * best of reps passes. Returns a negative value when the buffer cannot be
 * allocated. */
double engine_ctx_read_bandwidth(engine_ctx *c, size_t bytes, int reps);

/* ---- sampling ---------------------------------------------------------- */

/* The procedure is documented step by step in engine/sampler.c and the
 * random generator (SplitMix64-seeded xoshiro256**) in engine/sampler.h. */
typedef struct engine_sampler_params {
    float temperature;     /* 0: greedy (argmax, ties to the lower id) */
    int32_t top_k;         /* 0: off */
    float top_p;           /* 1: off */
    float min_p;           /* 0: off */
    float repeat_penalty;  /* 1: off */
    int32_t repeat_last_n; /* how many recent tokens the penalty looks at */
    uint64_t seed;
} engine_sampler_params;

typedef struct engine_sampler engine_sampler;

/* temperature 0.8, top-p 0.95, others off, repeat window 64, seed 0. */
void engine_sampler_defaults(engine_sampler_params *p);
engine_sampler *engine_sampler_new(const engine_sampler_params *p, uint32_t n_vocab, char *err,
                                   size_t errlen);
void engine_sampler_free(engine_sampler *s);
/* Picks a token from n_vocab logits (not modified). */
int32_t engine_sampler_sample(engine_sampler *s, const float *logits);
/* Records a token (prompt or generated) for the repetition penalty. */
void engine_sampler_accept(engine_sampler *s, int32_t token);

/* ---- generation ------------------------------------------------------------ */

typedef enum engine_finish {
    ENGINE_FINISH_EOS,       /* the model produced an end-of-generation token */
    ENGINE_FINISH_LENGTH,    /* max_tokens reached, or the context is full */
    ENGINE_FINISH_STOP,      /* a stop string appeared, or the callback asked to stop */
    ENGINE_FINISH_CANCELLED, /* the cancel hook asked to stop (a user's Ctrl-C) */
} engine_finish;

/* "eos", "length", "stop" or "cancelled". */
const char *engine_finish_name(engine_finish f);

typedef struct engine_generate_params {
    engine_sampler_params sampling;
    uint32_t max_tokens;     /* new tokens at most */
    const char *const *stop; /* stop strings (not part of the output), may be NULL */
    size_t n_stop;
    /* More ids that end the answer like EOS (a chat template's end of turn,
     * e.g. <|im_end|>), may be NULL. */
    const int32_t *end_tokens;
    size_t n_end_tokens;
    /* Asked before each new token when not NULL; nonzero ends the generation
     * with ENGINE_FINISH_CANCELLED. The tokens so far are kept, and the text
     * is finished exactly as when max_tokens ends it, so the same request
     * with max_tokens = n_tokens reproduces it. */
    int (*cancel)(void *user);
    void *cancel_user;
} engine_generate_params;

/* Receives output text as it is decided: complete UTF-8 only, never text a
 * stop string could still claim. Return nonzero to end the generation. */
typedef int (*engine_text_fn)(void *user, const char *text, size_t len);

typedef struct engine_generation {
    int32_t *prompt_tokens; /* BOS included when the model adds one */
    size_t n_prompt;
    int32_t *tokens; /* generated ids (an ending EOS is not included) */
    size_t n_tokens;
    char *text; /* the output, NUL-terminated, stop string excluded */
    size_t text_len;
    engine_finish finish;
    double prompt_ms, decode_ms; /* wall time of prefill and of decode steps */
    uint32_t n_decode_evals;     /* single-token forward passes in decode_ms */
    size_t n_reused;             /* input tokens found in the KV cache (engine_generate_tokens) */
} engine_generation;

/* Resets c, feeds the prompt (tokenized with the model's BOS rule) in
 * batches, then samples up to max_tokens tokens, calling on_text (may be
 * NULL) with each piece of text. Fills *out (free with
 * engine_generation_free). Fails with err on invalid UTF-8, a prompt that
 * leaves no room in the context, or bad sampling parameters. */
int engine_generate(engine_ctx *c, const char *prompt, size_t prompt_len,
                    const engine_generate_params *p, engine_text_fn on_text, void *user,
                    engine_generation *out, char *err, size_t errlen);
void engine_generation_free(engine_generation *g);

/* Like engine_generate, but from a pre-tokenized input (a chat template's
 * rendering, BOS included when wanted), and without resetting c: the
 * longest prefix of input that c still holds stays cached and only the rest
 * is evaluated (at least the last token, for its logits), so each turn of
 * a conversation costs only its new tokens. The logits, and so the tokens,
 * are bit-identical to a fresh evaluation of the whole input. Afterwards c
 * holds input and the generated tokens (the last one unless cancelled). out->prompt_tokens
 * is a copy of input; out->n_reused how many came from the cache. Fails with
 * err, c reset, on an empty input, ids outside the vocabulary, or an input
 * that leaves no room in the context. */
int engine_generate_tokens(engine_ctx *c, const int32_t *input, size_t n_input,
                           const engine_generate_params *p, engine_text_fn on_text, void *user,
                           engine_generation *out, char *err, size_t errlen);

/* ---- synthetic models ---------------------------------------------------- */

/* Writes a llama model with random weights (engine/synth.c says how) as GGUF
 * to out. spec is GEOMETRY:TYPE: GEOMETRY "tinyllama" (TinyLlama-1.1B:
 * embedding 2048, 22 layers, 32 heads, 4 KV heads, feed-forward 5632, vocab
 * 32000, context 2048) or "tiny" (for tests: 256, 2, 4, 2, 512, 320, 128);
 * TYPE f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, or
 * q4_k_m (Q4_K with Q6_K output and llama.cpp's choice of attn_v/ffn_down).
 * The same spec and seed give the same bytes. Returns 0, or -1 with err. */
int engine_synth_write(const char *spec, uint64_t seed, FILE *out, char *err, size_t errlen);

#endif
