/* Engine behaviour beyond the reference vectors: bit-identical logits for
 * 1, 2 and 3 threads, for any prefill batch size and across kernel sets;
 * context overflow and bad tokens as clean errors; load errors; stop
 * strings and streaming; synthetic models that load and generate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "engine/model.h"
#include "testutil.h"

static const char story[] = "Once upon a time, a small robot named Pip lived in a quiet "
                            "workshop. Every morning it polished the tools and counted gears.";

static unsigned char *read_model(const char *name, size_t *size)
{
    char rel[128], path[4096];
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    if (!test_shared_path(path, sizeof path, rel))
        return NULL;
    unsigned char *b = test_read_file(path, size);
    assert_non_null(b);
    return b;
}

/* The KV cache's F16 -> F32 conversion equals quant.c's for every half. */
static void test_f16_conversion_exhaustive(void **state)
{
    (void)state;
    static uint16_t h[65536];
    static float f[65536];
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    f16_to_f32_row(h, f, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        float want = fp16_to_fp32(h[i]);
        if (isnan(want)) {
            assert_true(isnan(f[i]));
            assert_int_equal(signbit(f[i]) != 0, signbit(want) != 0);
        } else if (memcmp(&want, &f[i], sizeof want) != 0) {
            fail_msg("half 0x%04x: %a, want %a", i, (double)f[i], (double)want);
        }
    }
}

/* The pool borrowed by contexts when threads < 0 (created before any model
 * is parsed, as the sandboxed worker does). */
static engine_threads *shared_pool;

static engine_ctx *new_ctx(engine_model *m, int threads, uint32_t n_ctx, uint32_t n_batch, int all)
{
    engine_ctx_params p;
    char err[256];
    engine_ctx_defaults(&p);
    p.n_threads = threads;
    if (threads < 0)
        p.threads = shared_pool;
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.logits_all = all;
    engine_ctx *c = engine_ctx_new(m, &p, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    return c;
}

/* Logits of the story prompt's last token, then of 4 more decode steps,
 * concatenated into out (5 * n_vocab floats). */
static void run_story(engine_model *m, int threads, uint32_t n_batch, float *out)
{
    engine_model_info info;
    char err[256];
    int32_t *ids;
    size_t n;
    engine_model_get_info(m, &info);
    assert_int_equal(engine_tokenize(m, story, strlen(story), 1, &ids, &n, err, sizeof err), 0);
    engine_ctx *c = new_ctx(m, threads, 0, n_batch, 0);
    assert_int_equal(engine_eval(c, ids, n, err, sizeof err), 0);
    for (int s = 0; s < 5; s++) {
        memcpy(out + (size_t)s * info.n_vocab, engine_logits(c, 0), info.n_vocab * sizeof(float));
        int32_t next = (int32_t)(100 + 7 * s);
        assert_int_equal(engine_eval(c, &next, 1, err, sizeof err), 0);
    }
    engine_ctx_free(c);
    free(ids);
}

static void test_threads_batches_kernels_bit_identical(void **state)
{
    (void)state;
    const char *models[] = {"kq-q4_k_m", "kq-f16", "kq-q8_0", "aidreams260K-f32"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        size_t size;
        char err[256];
        unsigned char *bytes = read_model(models[i], &size);
        assert_non_null(bytes);
        engine_model *m = engine_model_load(bytes, size, NULL, err, sizeof err);
        engine_model *ms = engine_model_load(bytes, size, "scalar", err, sizeof err);
        assert_non_null(m);
        assert_non_null(ms);
        engine_model_info info;
        engine_model_get_info(m, &info);
        size_t len = 5 * (size_t)info.n_vocab;
        float *a = malloc(len * sizeof *a), *b = malloc(len * sizeof *b);
        run_story(m, 1, 512, a);
        run_story(m, 2, 512, b);
        assert_memory_equal(a, b, len * sizeof *a);
        run_story(m, 3, 512, b);
        assert_memory_equal(a, b, len * sizeof *a);
        run_story(m, 2, 5, b); /* prefill in chunks of 5 */
        assert_memory_equal(a, b, len * sizeof *a);
        run_story(m, 2, 1, b); /* one token at a time: decode kernels and attention */
        assert_memory_equal(a, b, len * sizeof *a);
        run_story(m, -1, 512, b); /* a borrowed pool of 3, made before the model */
        assert_memory_equal(a, b, len * sizeof *a);
        run_story(ms, 2, 512, b); /* the scalar reference kernels */
        if (memcmp(a, b, len * sizeof *a) != 0)
            fail_msg("%s: kernels %s and scalar give different logits", models[i], info.kernels);
        printf(
            "%-18s logits bit-identical: 1/2/3 threads, own/borrowed pool, batch 512/5/1, kernels "
            "%s/scalar\n",
            models[i], info.kernels);
        free(a);
        free(b);
        engine_model_free(m);
        engine_model_free(ms);
        free(bytes);
    }
}

static void test_context_overflow_and_bad_tokens(void **state)
{
    (void)state;
    size_t size;
    char err[256];
    unsigned char *bytes = read_model("aidreams260K-f16", &size);
    engine_model *m = engine_model_load(bytes, size, NULL, err, sizeof err);
    assert_non_null(m);
    engine_ctx *c = new_ctx(m, 2, 8, 512, 0);
    assert_int_equal(engine_ctx_size(c), 8);
    int32_t toks[9] = {1, 303, 281, 269, 435, 447, 328, 446, 299};
    assert_int_equal(engine_eval(c, toks, 9, err, sizeof err), -1);
    assert_non_null(strstr(err, "context overflow"));
    assert_int_equal(engine_ctx_position(c), 0);
    assert_int_equal(engine_eval(c, toks, 8, err, sizeof err), 0);
    assert_int_equal(engine_eval(c, toks, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "context overflow"));
    assert_int_equal(engine_ctx_position(c), 8);
    engine_ctx_reset(c);
    int32_t bad = 512;
    assert_int_equal(engine_eval(c, &bad, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "outside the vocabulary"));
    assert_int_equal(engine_eval(c, toks, 0, err, sizeof err), -1);
    engine_ctx_free(c);
    /* a context larger than the model's is refused */
    engine_ctx_params p;
    engine_ctx_defaults(&p);
    p.n_ctx = 129;
    assert_null(engine_ctx_new(m, &p, err, sizeof err));
    assert_non_null(strstr(err, "exceeds the model's 128"));
    engine_model_free(m);
    free(bytes);
}

static void test_load_errors(void **state)
{
    (void)state;
    size_t size;
    char err[256] = "";
    unsigned char *bytes = read_model("aidreams260K-f16", &size);
    assert_null(engine_model_load(bytes, size / 2, NULL, err, sizeof err));
    assert_true(strlen(err) > 0);
    assert_null(engine_model_load(bytes, size, "no-such-kernels", err, sizeof err));
    assert_non_null(strstr(err, "no-such-kernels"));
    free(bytes);
}

typedef struct collected {
    char buf[4096];
    size_t len;
    int calls;
} collected;

static int collect(void *user, const char *text, size_t len)
{
    collected *c = user;
    assert_true(c->len + len < sizeof c->buf);
    memcpy(c->buf + c->len, text, len);
    c->len += len;
    c->calls++;
    return 0;
}

static void test_generate_stop_strings_and_streaming(void **state)
{
    (void)state;
    size_t size;
    char err[256];
    unsigned char *bytes = read_model("aidreams260K-f16", &size);
    engine_model *m = engine_model_load(bytes, size, NULL, err, sizeof err);
    engine_ctx *c = new_ctx(m, 2, 0, 512, 0);
    engine_generate_params gp = {.max_tokens = 64};
    engine_sampler_defaults(&gp.sampling);
    gp.sampling.temperature = 0;
    engine_generation g;
    collected col = {.len = 0};
    const char *want = ", as I sense the nodes, a gentle hum of probability.";

    assert_int_equal(engine_generate(c, "I dreamed", 9, &gp, collect, &col, &g, err, sizeof err),
                     0);
    assert_int_equal(g.n_prompt, 7);
    assert_int_equal(g.n_tokens, 64);
    assert_int_equal(g.finish, ENGINE_FINISH_LENGTH);
    assert_int_equal(strncmp(g.text, want, strlen(want)), 0);
    assert_int_equal(col.len, g.text_len);
    assert_memory_equal(col.buf, g.text, g.text_len);
    assert_true(col.calls > 10); /* streamed piece by piece */
    engine_generation_free(&g);

    const char *stops[] = {"zzz", "gentle h"};
    gp.stop = stops;
    gp.n_stop = 2;
    memset(&col, 0, sizeof col);
    assert_int_equal(engine_generate(c, "I dreamed", 9, &gp, collect, &col, &g, err, sizeof err),
                     0);
    assert_int_equal(g.finish, ENGINE_FINISH_STOP);
    assert_string_equal(g.text, ", as I sense the nodes, a ");
    assert_int_equal(col.len, g.text_len); /* "gentle" was held back, never streamed */
    assert_memory_equal(col.buf, g.text, g.text_len);
    engine_generation_free(&g);

    gp.max_tokens = 0;
    assert_int_equal(engine_generate(c, "I dreamed", 9, &gp, NULL, NULL, &g, err, sizeof err), 0);
    assert_int_equal(g.n_tokens, 0);
    assert_int_equal(g.finish, ENGINE_FINISH_LENGTH);
    assert_string_equal(g.text, "");
    engine_generation_free(&g);

    assert_int_equal(engine_generate(c, "bad \xff utf-8", 11, &gp, NULL, NULL, &g, err, sizeof err),
                     -1);
    engine_ctx_free(c);
    engine_model_free(m);
    free(bytes);
}

/* Writes spec to a temporary file and reads it back. */
static unsigned char *synth_bytes(const char *spec, uint64_t seed, size_t *size)
{
    char err[256];
    FILE *f = tmpfile();
    assert_non_null(f);
    if (engine_synth_write(spec, seed, f, err, sizeof err) != 0)
        fail_msg("%s: %s", spec, err);
    long n = ftell(f);
    assert_true(n > 0);
    unsigned char *b = malloc((size_t)n);
    rewind(f);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return b;
}

static void test_synthetic_models(void **state)
{
    (void)state;
    const char *specs[] = {"tiny:q4_k_m", "tiny:q8_0", "tiny:q4_0", "tiny:f16"};
    char err[256];
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        size_t size, size2;
        unsigned char *b = synth_bytes(specs[i], 7, &size);
        unsigned char *b2 = synth_bytes(specs[i], 7, &size2);
        assert_int_equal(size, size2);
        assert_memory_equal(b, b2, size); /* same spec and seed, same bytes */
        free(b2);
        engine_model *m = engine_model_load(b, size, NULL, err, sizeof err);
        if (!m)
            fail_msg("%s: %s", specs[i], err);
        engine_model_info info;
        engine_model_get_info(m, &info);
        assert_int_equal(info.n_vocab, 320);
        assert_int_equal(info.n_layer, 2);
        engine_ctx *c = new_ctx(m, 2, 0, 512, 0);
        engine_generate_params gp = {.max_tokens = 12};
        engine_sampler_defaults(&gp.sampling);
        gp.sampling.seed = 3;
        engine_generation g;
        assert_int_equal(
            engine_generate(c, "hello world", 11, &gp, NULL, NULL, &g, err, sizeof err), 0);
        assert_true(g.n_prompt >= 2);
        assert_true(g.n_tokens == 12 || g.finish == ENGINE_FINISH_EOS);
        printf("%-12s %zu bytes, generated %zu tokens: %s\n", specs[i], size, g.n_tokens, g.text);
        engine_generation_free(&g);
        engine_ctx_free(c);
        engine_model_free(m);
        free(b);
    }
    FILE *f = tmpfile();
    assert_int_equal(engine_synth_write("huge:q4_0", 1, f, err, sizeof err), -1);
    assert_non_null(strstr(err, "huge:q4_0"));
    fclose(f);
}

int main(void)
{
    char err[256];
    shared_pool = engine_threads_new(3, err, sizeof err);
    if (!shared_pool || engine_threads_count(shared_pool) != 3) {
        printf("cannot start a pool of 3 threads: %s\n", err);
        return 1;
    }
    const struct CMUnitTest with_shared[] = {
        cmocka_unit_test(test_f16_conversion_exhaustive),
        cmocka_unit_test(test_threads_batches_kernels_bit_identical),
        cmocka_unit_test(test_context_overflow_and_bad_tokens),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_generate_stop_strings_and_streaming),
        cmocka_unit_test(test_synthetic_models),
    };
    const struct CMUnitTest without_shared[] = {
        cmocka_unit_test(test_f16_conversion_exhaustive),
        cmocka_unit_test(test_synthetic_models),
    };
    int rc;
    if (!test_shared_dir()) {
        printf("../shared (APPLIANCE_SHARED_DIR) is absent: only synthetic-model tests run\n");
        rc = cmocka_run_group_tests(without_shared, NULL, NULL);
    } else {
        rc = cmocka_run_group_tests(with_shared, NULL, NULL);
    }
    engine_threads_free(shared_pool);
    return rc;
}
