/* The engine against reference vectors (../shared/vectors/engine, computed by
 * llama.cpp): for every kq-TYPE and aidreams260K model and every prompt,
 * prompt tokens identical; every logit row (batched prefill, then each
 * greedy step) within tolerance, measured as max |diff| / stddev of the
 * reference row; greedy tokens identical up to the first non-decisive step.
 * Prints the worst ratio per model. Skips (77) when ../shared is absent. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "testutil.h"

typedef struct vectors {
    char *prompt;
    int32_t prompt_tokens[256], greedy[128];
    size_t n_prompt, n_greedy, n_rows;
    uint32_t n_vocab;
    float *logits; /* n_rows x n_vocab */
} vectors;

/* ---- a minimal reader for the vector JSON files (fixed, trusted layout) ---- */

static const char *after_key(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? p + strlen(pat) : NULL;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80)
        return (size_t)(o[0] = (char)cp, 1);
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 63));
        o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63));
    o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

static char *json_string(const char *json, const char *key)
{
    const char *p = after_key(json, key);
    assert_non_null(p);
    while (*p == ' ')
        p++;
    assert_true(*p == '"');
    char *out = malloc(strlen(p) + 1), *o = out;
    for (p++; *p && *p != '"'; p++) {
        if (*p != '\\') {
            *o++ = *p;
            continue;
        }
        p++;
        switch (*p) {
        case 'n':
            *o++ = '\n';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'u': {
            unsigned cp = (unsigned)strtoul((char[5]){p[1], p[2], p[3], p[4], 0}, NULL, 16);
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p[1] == '\\' && p[2] == 'u') {
                unsigned lo = (unsigned)strtoul((char[5]){p[3], p[4], p[5], p[6], 0}, NULL, 16);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            o += put_utf8(o, cp);
            break;
        }
        default:
            *o++ = *p;
            break;
        }
    }
    *o = 0;
    return out;
}

static size_t json_ints(const char *json, const char *key, int32_t *out, size_t cap)
{
    const char *p = after_key(json, key);
    assert_non_null(p);
    p = strchr(p, '[');
    assert_non_null(p);
    size_t n = 0;
    for (p++;;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        assert_true(n < cap);
        out[n++] = (int32_t)v;
        p = end;
        while (*p == ' ' || *p == '\n' || *p == ',')
            p++;
    }
    return n;
}

static long json_int(const char *json, const char *key)
{
    const char *p = after_key(json, key);
    assert_non_null(p);
    return strtol(p, NULL, 10);
}

/* Loads <model>.<prompt>.json/.f32; returns 0 when that prompt does not exist. */
static int load_vectors(const char *model, const char *prompt, vectors *v)
{
    char rel[256], path[4096];
    size_t len;
    snprintf(rel, sizeof rel, "vectors/engine/%s.%s.json", model, prompt);
    if (!test_shared_path(path, sizeof path, rel))
        return 0;
    char *json = (char *)test_read_file(path, &len);
    assert_non_null(json);
    memset(v, 0, sizeof *v);
    v->prompt = json_string(json, "prompt");
    v->n_prompt = json_ints(json, "prompt_tokens", v->prompt_tokens, 256);
    v->n_greedy = json_ints(json, "greedy_tokens", v->greedy, 128);
    v->n_vocab = (uint32_t)json_int(json, "n_vocab");
    v->n_rows = (size_t)json_int(json, "logits_rows");
    free(json);
    assert_int_equal(v->n_rows, v->n_prompt + v->n_greedy);
    snprintf(rel, sizeof rel, "vectors/engine/%s.%s.f32", model, prompt);
    assert_non_null(test_shared_path(path, sizeof path, rel));
    v->logits = (float *)test_read_file(path, &len);
    assert_non_null(v->logits);
    assert_int_equal(len, v->n_rows * v->n_vocab * sizeof(float));
    return 1;
}

static void free_vectors(vectors *v)
{
    free(v->prompt);
    free(v->logits);
}

/* ---- the comparison --------------------------------------------------------- */

static double row_stddev(const float *r, uint32_t n)
{
    double mean = 0, var = 0;
    for (uint32_t i = 0; i < n; i++)
        mean += r[i];
    mean /= n;
    for (uint32_t i = 0; i < n; i++)
        var += (r[i] - mean) * (r[i] - mean);
    return sqrt(var / n);
}

static double row_ratio(const float *ours, const float *ref, uint32_t n)
{
    double max = 0;
    for (uint32_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - (double)ref[i]);
        max = d > max || isnan(d) ? d : max;
    }
    return max / row_stddev(ref, n);
}

static int32_t argmax(const float *r, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (r[i] > r[best])
            best = i;
    return (int32_t)best;
}

/* Top-two gap of the reference row relative to its stddev. */
static double top_two_gap(const float *r, uint32_t n)
{
    float a = -INFINITY, b = -INFINITY;
    for (uint32_t i = 0; i < n; i++) {
        if (r[i] > a) {
            b = a;
            a = r[i];
        } else if (r[i] > b) {
            b = r[i];
        }
    }
    return (double)(a - b) / row_stddev(r, n);
}

typedef struct model_case {
    const char *name;
    double tolerance, decisive; /* per README: by bit width */
} model_case;

static const model_case cases[] = {
    {"kq-f32", 5e-3, 0.01},           {"kq-f16", 5e-3, 0.01},           {"kq-bf16", 5e-3, 0.01},
    {"kq-q8_0", 5e-3, 0.01},          {"kq-q4_0", 2e-2, 0.03},          {"kq-q4_1", 2e-2, 0.03},
    {"kq-q5_0", 2e-2, 0.03},          {"kq-q5_1", 2e-2, 0.03},          {"kq-q4_k", 2e-2, 0.03},
    {"kq-q5_k", 2e-2, 0.03},          {"kq-q6_k", 2e-2, 0.03},          {"kq-q4_k_m", 2e-2, 0.03},
    {"aidreams260K-f32", 5e-3, 0.01}, {"aidreams260K-f16", 5e-3, 0.01},
};

/* Checks one prompt; returns the worst row ratio; counts greedy steps matched. */
static double check_prompt(engine_model *m, const model_case *mc, const vectors *v, size_t *matched)
{
    char err[256];
    int32_t *ids;
    size_t n;
    assert_int_equal(engine_tokenize(m, v->prompt, strlen(v->prompt), 1, &ids, &n, err, sizeof err),
                     0);
    assert_int_equal(n, v->n_prompt);
    assert_memory_equal(ids, v->prompt_tokens, n * sizeof *ids);
    free(ids);

    engine_ctx_params cp;
    engine_ctx_defaults(&cp);
    cp.n_threads = 2;
    cp.logits_all = 1;
    cp.n_batch = 256;
    engine_ctx *c = engine_ctx_new(m, &cp, err, sizeof err);
    assert_non_null(c);
    double worst = 0;
    assert_int_equal(engine_eval(c, v->prompt_tokens, v->n_prompt, err, sizeof err), 0);
    for (size_t r = 0; r < v->n_prompt; r++) {
        double q = row_ratio(engine_logits(c, r), v->logits + r * v->n_vocab, v->n_vocab);
        worst = q > worst ? q : worst;
    }
    /* Greedy: compare our choice while every step so far is decisive, then feed
     * the reference token so later rows stay comparable. */
    int decisive = 1;
    *matched = 0;
    for (size_t s = 0; s < v->n_greedy; s++) {
        const float *ref = v->logits + (v->n_prompt - 1 + s) * v->n_vocab;
        decisive = decisive && top_two_gap(ref, v->n_vocab) >= mc->decisive;
        int32_t ours = argmax(engine_logits(c, s == 0 ? v->n_prompt - 1 : 0), v->n_vocab);
        if (decisive) {
            if (ours != v->greedy[s])
                fail_msg("%s: greedy step %zu: token %d, reference %d", mc->name, s, ours,
                         v->greedy[s]);
            (*matched)++;
        }
        assert_int_equal(engine_eval(c, &v->greedy[s], 1, err, sizeof err), 0);
        double q =
            row_ratio(engine_logits(c, 0), v->logits + (v->n_prompt + s) * v->n_vocab, v->n_vocab);
        worst = q > worst ? q : worst;
    }
    engine_ctx_free(c);
    return worst;
}

static void test_reference_vectors(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[128], path[4096], err[256];
        size_t size;
        snprintf(rel, sizeof rel, "models/%s.gguf", cases[i].name);
        assert_non_null(test_shared_path(path, sizeof path, rel));
        unsigned char *bytes = test_read_file(path, &size);
        assert_non_null(bytes);
        engine_model *m = engine_model_load(bytes, size, NULL, err, sizeof err);
        if (!m)
            fail_msg("%s: %s", cases[i].name, err);
        double worst = 0;
        size_t prompts = 0, steps = 0, total = 0;
        for (int p = 1; p <= 4; p++) {
            vectors v;
            char prompt[8];
            snprintf(prompt, sizeof prompt, "p%d", p);
            if (!load_vectors(cases[i].name, prompt, &v))
                continue;
            size_t matched;
            double q = check_prompt(m, &cases[i], &v, &matched);
            if (q >= cases[i].tolerance) {
                printf("FAIL %s %s: logits differ by %.3g of the row stddev (tolerance %.1e)\n",
                       cases[i].name, prompt, q, cases[i].tolerance);
                failures++;
            }
            worst = q > worst ? q : worst;
            prompts++;
            steps += matched;
            total += v.n_greedy;
            if (strncmp(cases[i].name, "aidreams", 8) == 0)
                assert_int_equal(matched, v.n_greedy); /* all steps decisive there */
            free_vectors(&v);
        }
        assert_true(prompts > 0);
        printf("%-18s %zu prompts, worst max|diff|/stddev %.2e (tolerance %.1e), greedy %zu/%zu "
               "decisive steps matched\n",
               cases[i].name, prompts, worst, cases[i].tolerance, steps, total);
        engine_model_free(m);
        free(bytes);
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    if (!test_shared_dir()) {
        printf("skipped: ../shared (APPLIANCE_SHARED_DIR) is absent, no reference vectors\n");
        return TEST_SKIP_CODE;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
