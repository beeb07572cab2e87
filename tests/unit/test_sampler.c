/* Sampler: PRNG known-answer values (computed independently from the
 * published SplitMix64 / xoshiro256** definitions), greedy ties, top-k,
 * top-p, min-p, temperature frequencies, repetition penalty, validation. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "engine/sampler.h"

static void test_prng_known_answers(void **state)
{
    (void)state;
    static const uint64_t seed0[5] = {0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL,
                                      0x1a5f849d4933e6e0ULL, 0x6aa594f1262d2d2cULL,
                                      0xbba5ad4a1f842e59ULL};
    static const uint64_t seed42[5] = {0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL,
                                       0xae17533239e499a1ULL, 0xecb8ad4703b360a1ULL,
                                       0xfde6dc7fe2ec5e64ULL};
    rng r;
    rng_seed(&r, 0);
    for (int i = 0; i < 5; i++)
        assert_true(rng_next(&r) == seed0[i]);
    rng_seed(&r, 42);
    for (int i = 0; i < 5; i++)
        assert_true(rng_next(&r) == seed42[i]);
    rng_seed(&r, 0);
    assert_true(rng_uniform(&r) == (float)(0x99ec5f36cb75f2b4ULL >> 40) * 0x1p-24f);
    rng_seed(&r, 0xdeadbeefcafef00dULL);
    assert_true(rng_uniform(&r) == 0.6179627776145935f);
    assert_true(rng_uniform(&r) == 0.08594387769699097f);
}

static engine_sampler *make(float temp, int top_k, float top_p, float min_p, float penalty,
                            int last_n, uint64_t seed, uint32_t n_vocab)
{
    engine_sampler_params p;
    char err[256];
    engine_sampler_defaults(&p);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = penalty;
    p.repeat_last_n = last_n;
    p.seed = seed;
    engine_sampler *s = engine_sampler_new(&p, n_vocab, err, sizeof err);
    assert_non_null(s);
    return s;
}

static void test_greedy_ties_lower_id(void **state)
{
    (void)state;
    const float logits[5] = {1, 3, 3, 2, NAN};
    engine_sampler *s = make(0, 0, 1, 0, 1, 0, 1, 5);
    assert_int_equal(engine_sampler_sample(s, logits), 1);
    engine_sampler_free(s);
    /* top-k 1 at any temperature is greedy too, with the same tie rule */
    s = make(1.5f, 1, 1, 0, 1, 0, 7, 5);
    for (int i = 0; i < 50; i++)
        assert_int_equal(engine_sampler_sample(s, logits), 1);
    engine_sampler_free(s);
}

/* Draw n tokens from 3 candidates with probabilities 0.5, 0.3, 0.2. */
static void histogram(engine_sampler *s, int n, int counts[3])
{
    const float logits[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
    counts[0] = counts[1] = counts[2] = 0;
    for (int i = 0; i < n; i++) {
        int32_t t = engine_sampler_sample(s, logits);
        assert_true(t >= 0 && t < 3);
        counts[t]++;
    }
}

static void test_temperature_one_frequencies(void **state)
{
    (void)state;
    int c[3];
    engine_sampler *s = make(1, 0, 1, 0, 1, 0, 123, 3);
    histogram(s, 20000, c);
    assert_true(fabs(c[0] / 20000.0 - 0.5) < 0.02);
    assert_true(fabs(c[1] / 20000.0 - 0.3) < 0.02);
    assert_true(fabs(c[2] / 20000.0 - 0.2) < 0.02);
    engine_sampler_free(s);
    /* a low temperature sharpens: 0.25 gives weights 0.5^4 : 0.3^4 : 0.2^4 */
    s = make(0.25f, 0, 1, 0, 1, 0, 5, 3);
    histogram(s, 20000, c);
    double w0 = pow(0.5, 4), w1 = pow(0.3, 4), w2 = pow(0.2, 4), t = w0 + w1 + w2;
    assert_true(fabs(c[0] / 20000.0 - w0 / t) < 0.02);
    assert_true(fabs(c[1] / 20000.0 - w1 / t) < 0.02);
    assert_true(fabs(c[2] / 20000.0 - w2 / t) < 0.01);
    engine_sampler_free(s);
}

static void test_top_k_top_p_min_p(void **state)
{
    (void)state;
    int c[3];
    engine_sampler *s = make(1, 2, 1, 0, 1, 0, 9, 3); /* top-k 2: never token 2 */
    histogram(s, 4000, c);
    assert_int_equal(c[2], 0);
    assert_true(c[0] > 0 && c[1] > 0);
    assert_true(fabs(c[0] / 4000.0 - 0.625) < 0.03);
    engine_sampler_free(s);
    s = make(1, 0, 0.5f, 0, 1, 0, 9, 3); /* cumulative 0.5 reached by token 0 alone */
    histogram(s, 500, c);
    assert_int_equal(c[0], 500);
    engine_sampler_free(s);
    s = make(1, 0, 0.7f, 0, 1, 0, 9, 3); /* needs tokens 0 and 1 */
    histogram(s, 4000, c);
    assert_int_equal(c[2], 0);
    assert_true(c[1] > 0);
    engine_sampler_free(s);
    s = make(1, 0, 1, 0.5f, 1, 0, 9, 3); /* keeps p >= 0.25: tokens 0 and 1 */
    histogram(s, 4000, c);
    assert_int_equal(c[2], 0);
    assert_true(c[1] > 0);
    engine_sampler_free(s);
    s = make(1, 0, 1, 0.7f, 1, 0, 9, 3); /* keeps p >= 0.35: token 0 only */
    histogram(s, 500, c);
    assert_int_equal(c[0], 500);
    engine_sampler_free(s);
}

static void test_repetition_penalty(void **state)
{
    (void)state;
    const float pos[3] = {2.0f, 1.9f, -1.0f};
    engine_sampler *s = make(0, 0, 1, 0, 1.5f, 2, 0, 3);
    assert_int_equal(engine_sampler_sample(s, pos), 0);
    engine_sampler_accept(s, 0); /* 2.0 / 1.5 = 1.33 < 1.9 */
    assert_int_equal(engine_sampler_sample(s, pos), 1);
    engine_sampler_accept(s, 1); /* both penalized: 1.33 vs 1.27 */
    assert_int_equal(engine_sampler_sample(s, pos), 0);
    engine_sampler_accept(s, 2); /* window of 2: token 0 left the window */
    engine_sampler_accept(s, 2);
    assert_int_equal(engine_sampler_sample(s, pos), 0);
    engine_sampler_free(s);
    const float neg[2] = {-1.0f, -1.2f};
    s = make(0, 0, 1, 0, 1.5f, 4, 0, 2);
    engine_sampler_accept(s, 0);
    engine_sampler_accept(s, 0); /* penalized once, not twice: -1.5 < -1.2 */
    assert_int_equal(engine_sampler_sample(s, neg), 1);
    engine_sampler_free(s);
}

static void test_seed_determinism(void **state)
{
    (void)state;
    float logits[64];
    for (int i = 0; i < 64; i++)
        logits[i] = sinf((float)i);
    engine_sampler *a = make(1, 0, 0.95f, 0.01f, 1.1f, 8, 77, 64);
    engine_sampler *b = make(1, 0, 0.95f, 0.01f, 1.1f, 8, 77, 64);
    engine_sampler *c = make(1, 0, 0.95f, 0.01f, 1.1f, 8, 78, 64);
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        int32_t ta = engine_sampler_sample(a, logits), tb = engine_sampler_sample(b, logits);
        int32_t tc = engine_sampler_sample(c, logits);
        assert_int_equal(ta, tb);
        differ |= ta != tc;
        engine_sampler_accept(a, ta);
        engine_sampler_accept(b, tb);
        engine_sampler_accept(c, tc);
    }
    assert_true(differ);
    engine_sampler_free(a);
    engine_sampler_free(b);
    engine_sampler_free(c);
}

static void test_invalid_params(void **state)
{
    (void)state;
    engine_sampler_params p;
    char err[256];
    engine_sampler_defaults(&p);
    p.top_p = 0;
    assert_null(engine_sampler_new(&p, 10, err, sizeof err));
    assert_non_null(strstr(err, "top-p"));
    engine_sampler_defaults(&p);
    p.temperature = -1;
    assert_null(engine_sampler_new(&p, 10, err, sizeof err));
    assert_non_null(strstr(err, "temperature"));
    engine_sampler_defaults(&p);
    p.repeat_penalty = 0;
    assert_null(engine_sampler_new(&p, 10, err, sizeof err));
    engine_sampler_defaults(&p);
    assert_null(engine_sampler_new(&p, 0, err, sizeof err));
}

/* ---- the documented procedure, written plainly with a full sort ---------- */

typedef struct ref_cand {
    float logit;
    int32_t id;
} ref_cand;

static int ref_rank(const void *a, const void *b)
{
    const ref_cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int ref_by_id(const void *a, const void *b)
{
    const ref_cand *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static int32_t reference_sample(const float *logits, int n, float temp, int top_k, float top_p,
                                float min_p, rng *r)
{
    ref_cand *c = malloc((size_t)n * sizeof *c), *k = malloc((size_t)n * sizeof *k);
    for (int i = 0; i < n; i++)
        c[i] = (ref_cand){logits[i], i};
    qsort(c, (size_t)n, sizeof *c, ref_rank);
    size_t kept = top_k > 0 && top_k < n ? (size_t)top_k : (size_t)n;
    double l0 = c[0].logit, z = 0, cum = 0;
    memcpy(k, c, kept * sizeof *k);
    qsort(k, kept, sizeof *k, ref_by_id);
    for (size_t i = 0; i < kept; i++)
        z += exp((double)k[i].logit - l0);
    size_t keep = kept;
    for (size_t i = 0; top_p < 1 && i < kept; i++) {
        cum += exp((double)c[i].logit - l0);
        if (cum >= (double)top_p * z) {
            keep = i + 1;
            break;
        }
    }
    size_t m = 1;
    while (min_p > 0 && m < keep && exp((double)c[m].logit - l0) >= (double)min_p)
        m++;
    if (min_p > 0)
        keep = m;
    double total = 0, run = 0;
    for (size_t i = 0; i < keep; i++)
        total += exp(((double)c[i].logit - l0) * (1.0 / (double)temp));
    double target = (double)rng_uniform(r) * total;
    int32_t pick = c[keep - 1].id;
    for (size_t i = 0; i < keep; i++) {
        run += exp(((double)c[i].logit - l0) * (1.0 / (double)temp));
        if (run > target) {
            pick = c[i].id;
            break;
        }
    }
    free(c);
    free(k);
    return pick;
}

/* The sampler ranks only as deep as needed; it must pick exactly what the
 * plain full-sort procedure picks, ties included (logits rounded to 1/8). */
static void test_matches_full_sort_procedure(void **state)
{
    (void)state;
    enum { N = 3000 };
    static float logits[N];
    const struct {
        float temp, scale;
        int top_k;
        float top_p, min_p;
    } cfg[] = {
        {0.8f, 1.0f, 0, 0.95f, 0},    {1.0f, 8.0f, 0, 0.9f, 0},     {0.7f, 8.0f, 40, 0.95f, 0},
        {1.2f, 3.0f, 0, 1.0f, 0.05f}, {1.0f, 0.5f, 0, 0.5f, 0.01f}, {0.9f, 20.0f, 500, 1.0f, 0},
    };
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        rng gen, mirror;
        rng_seed(&gen, 1000 + c);
        rng_seed(&mirror, 99);
        engine_sampler *s =
            make(cfg[c].temp, cfg[c].top_k, cfg[c].top_p, cfg[c].min_p, 1, 0, 99, N);
        for (int round = 0; round < 40; round++) {
            for (int i = 0; i < N; i++)
                logits[i] = roundf((rng_uniform(&gen) * 2 - 1) * cfg[c].scale * 8) / 8;
            int32_t want = reference_sample(logits, N, cfg[c].temp, cfg[c].top_k, cfg[c].top_p,
                                            cfg[c].min_p, &mirror);
            assert_int_equal(engine_sampler_sample(s, logits), want);
        }
        engine_sampler_free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prng_known_answers),
        cmocka_unit_test(test_greedy_ties_lower_id),
        cmocka_unit_test(test_temperature_one_frequencies),
        cmocka_unit_test(test_top_k_top_p_min_p),
        cmocka_unit_test(test_repetition_penalty),
        cmocka_unit_test(test_seed_determinism),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_matches_full_sort_procedure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
