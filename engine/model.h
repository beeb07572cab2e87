/* The llama architecture: weights bound from a GGUF file, the run state
 * (KV cache and scratch), and the forward pass (internal to engine/). */
#ifndef ENGINE_MODEL_H
#define ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "pool.h"
#include "quant.h"

/* A matrix of n_out rows of n_in elements each, stored in the mapped file. */
typedef struct weight {
    const uint8_t *data;
    uint32_t type;
    int64_t n_in, n_out;
    size_t row_bytes;
} weight;

typedef struct layer_weights {
    float *attn_norm, *ffn_norm; /* n_embd floats each (converted at load) */
    weight wq, wk, wv, wo;
    weight w_gate, w_up, w_down;
} layer_weights;

typedef struct llama_hparams {
    uint32_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, n_ff;
    uint32_t head_dim, rope_dim;
    float rope_base, rms_eps;
} llama_hparams;

typedef struct llama_model {
    llama_hparams hp;
    weight tok_embd, output; /* output aliases tok_embd when the file ties them */
    float *output_norm;
    layer_weights *layers;
    uint64_t bytes_per_token; /* weight bytes one decode step reads */
} llama_model;

/* Binds every llama tensor of f, checking presence, type and shape. On error
 * fills err (naming the tensor or key) and leaves nothing to free. */
int llama_model_load(llama_model *m, const gguf_file *f, char *err, size_t errlen);
void llama_model_free(llama_model *m);

/* Scratch and KV cache (F16) for batches of up to n_batch tokens at positions
 * below n_ctx, used by up to n_threads threads. */
typedef struct llama_state {
    uint32_t n_ctx, n_batch;
    int n_threads, logits_all;
    float *x, *xb, *xb2, *q, *k, *v, *hb, *hb2; /* [n_batch][width] */
    float *att;                                 /* [n_threads][n_ctx] */
    float *rope;                                /* [n_batch][rope_dim] cos, sin */
    uint8_t *act[3];                            /* quantized activations */
    size_t act_cap;                             /* bytes per act buffer */
    uint16_t *key_cache, *value_cache;          /* F16 [n_layer][n_ctx][n_head_kv*head_dim] */
    float *logits;                              /* [logits_all ? n_batch : 1][n_vocab] */
} llama_state;

int llama_state_init(llama_state *s, const llama_model *m, uint32_t n_ctx, uint32_t n_batch,
                     int n_threads, int logits_all, char *err, size_t errlen);
void llama_state_free(llama_state *s);

/* Runs nb (1..n_batch) tokens at positions pos..pos+nb-1 (the caller checks
 * pos + nb <= n_ctx and the token ids), appending their keys and values to
 * the cache. Leaves logits for every token (logits_all) or the last one. */
void llama_forward(const llama_model *m, llama_state *s, const kernels *k, pool *p,
                   const int32_t *tokens, uint32_t nb, uint32_t pos);

#endif
