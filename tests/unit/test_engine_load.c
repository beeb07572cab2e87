/* Model loading rejects malformed llama files with one precise sentence:
 * a missing tensor, a wrong shape, an unusable norm type, an unsupported
 * architecture, heads that do not divide the embedding, a bad RoPE size.
 * The files are built in memory with the project's GGUF writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "engine/gguf.h"
#include "engine/quant.h"

#define EMBD  32
#define FF    64
#define VOCAB 262 /* <unk>, <s>, </s>, 256 bytes, 3 words */

/* What to break in the otherwise valid model. */
typedef struct defect {
    const char *skip_tensor; /* leave this tensor out */
    const char *bad_shape;   /* give this matrix one row too many */
    const char *q8_norm;     /* store this norm as q8_0 */
    const char *arch;        /* general.architecture */
    uint32_t n_head, rope_dim;
} defect;

static float weights[FF * VOCAB]; /* large enough for every tensor */
static uint8_t q8_buf[64];

static void add(gguf_writer *w, const defect *d, const char *name, uint64_t n_in, uint64_t n_out)
{
    if (d->skip_tensor && strcmp(name, d->skip_tensor) == 0)
        return;
    if (n_out == 0) { /* a norm vector */
        uint64_t ne[1] = {n_in};
        if (d->q8_norm && strcmp(name, d->q8_norm) == 0) {
            assert_int_equal(quantize_row(TT_Q8_0, weights, q8_buf, (int64_t)n_in), 0);
            assert_int_equal(gguf_writer_add_tensor(w, name, TT_Q8_0, 1, ne, q8_buf), 0);
        } else {
            assert_int_equal(gguf_writer_add_tensor(w, name, TT_F32, 1, ne, weights), 0);
        }
        return;
    }
    if (d->bad_shape && strcmp(name, d->bad_shape) == 0)
        n_out++;
    uint64_t ne[2] = {n_in, n_out};
    assert_int_equal(gguf_writer_add_tensor(w, name, TT_F32, 2, ne, weights), 0);
}

/* Builds a one-layer llama model with the defect; returns malloc'd bytes. */
static unsigned char *build(const defect *d, size_t *size)
{
    static char names[VOCAB][16];
    const char *toks[VOCAB];
    float scores[VOCAB];
    int32_t types[VOCAB];
    for (int i = 0; i < VOCAB; i++) {
        if (i < 3)
            snprintf(names[i], sizeof names[i], "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259)
            snprintf(names[i], sizeof names[i], "<0x%02X>", i - 3);
        else
            snprintf(names[i], sizeof names[i], "\xe2\x96\x81w%d", i - 259);
        toks[i] = names[i];
        scores[i] = i < 259 ? 0.0f : -(float)i;
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
    }
    for (size_t i = 0; i < sizeof weights / sizeof weights[0]; i++)
        weights[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
    gguf_writer *w = gguf_writer_new(32);
    assert_non_null(w);
    uint32_t heads = d->n_head ? d->n_head : 2;
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", d->arch ? d->arch : "llama"),
                     0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.context_length", 64), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.embedding_length", EMBD), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.block_count", 1), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.feed_forward_length", FF), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.attention.head_count", heads), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.attention.head_count_kv", 1), 0);
    if (d->rope_dim)
        assert_int_equal(gguf_writer_set_u32(w, "llama.rope.dimension_count", d->rope_dim), 0);
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"), 0);
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, VOCAB), 0);
    assert_int_equal(gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", scores, VOCAB), 0);
    assert_int_equal(gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, VOCAB), 0);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1), 0);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2), 0);
    uint64_t kv = EMBD / heads;
    add(w, d, "token_embd.weight", EMBD, VOCAB);
    add(w, d, "output_norm.weight", EMBD, 0);
    add(w, d, "blk.0.attn_norm.weight", EMBD, 0);
    add(w, d, "blk.0.attn_q.weight", EMBD, EMBD);
    add(w, d, "blk.0.attn_k.weight", EMBD, kv);
    add(w, d, "blk.0.attn_v.weight", EMBD, kv);
    add(w, d, "blk.0.attn_output.weight", EMBD, EMBD);
    add(w, d, "blk.0.ffn_norm.weight", EMBD, 0);
    add(w, d, "blk.0.ffn_gate.weight", EMBD, FF);
    add(w, d, "blk.0.ffn_up.weight", EMBD, FF);
    add(w, d, "blk.0.ffn_down.weight", FF, EMBD);
    char err[256];
    char *buf = NULL;
    FILE *f = open_memstream(&buf, size);
    assert_non_null(f);
    assert_int_equal(gguf_writer_write(w, f, err, sizeof err), 0);
    assert_int_equal(fclose(f), 0);
    gguf_writer_free(w);
    return (unsigned char *)buf;
}

/* Loads the model with defect d; expects failure with msg in the error. */
static void expect_error(const defect *d, const char *msg)
{
    size_t size;
    char err[256] = "";
    unsigned char *b = build(d, &size);
    engine_model *m = engine_model_load(b, size, NULL, err, sizeof err);
    if (m || !strstr(err, msg))
        fail_msg("want an error containing '%s', got %s", msg, m ? "a model" : err);
    free(b);
}

static void test_valid_model_loads_and_runs(void **state)
{
    (void)state;
    size_t size;
    char err[256];
    defect none = {0};
    unsigned char *b = build(&none, &size);
    engine_model *m = engine_model_load(b, size, NULL, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    engine_model_info info;
    engine_model_get_info(m, &info);
    assert_int_equal(info.n_vocab, VOCAB);
    assert_int_equal(info.n_head_kv, 1);
    assert_string_equal(info.arch, "llama");
    /* tied output: no output.weight, so token_embd serves as classifier */
    engine_ctx_params cp;
    engine_ctx_defaults(&cp);
    engine_ctx *c = engine_ctx_new(m, &cp, err, sizeof err);
    assert_non_null(c);
    int32_t toks[3] = {1, 260, 261};
    assert_int_equal(engine_eval(c, toks, 3, err, sizeof err), 0);
    assert_non_null(engine_logits(c, 0));
    engine_ctx_free(c);
    engine_model_free(m);
    free(b);
}

static void test_defects(void **state)
{
    (void)state;
    expect_error(&(defect){.skip_tensor = "blk.0.ffn_up.weight"},
                 "tensor blk.0.ffn_up.weight is missing");
    expect_error(&(defect){.skip_tensor = "blk.0.attn_norm.weight"},
                 "tensor blk.0.attn_norm.weight is missing");
    expect_error(&(defect){.bad_shape = "blk.0.attn_k.weight"},
                 "tensor blk.0.attn_k.weight has shape [32, 17]");
    expect_error(&(defect){.q8_norm = "blk.0.ffn_norm.weight"},
                 "norm weights must be f32, f16 or bf16");
    expect_error(&(defect){.arch = "gpt2"}, "architecture 'gpt2' is not supported");
    expect_error(&(defect){.n_head = 3}, "do not divide an embedding of 32");
    expect_error(&(defect){.rope_dim = 7}, "dimension_count 7 must be even");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_model_loads_and_runs),
        cmocka_unit_test(test_defects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
