/* Token sampler. The exact procedure (what a replay must reproduce):
 *
 *  1. Repetition penalty: each distinct token among the last repeat_last_n
 *     accepted tokens has its logit divided by repeat_penalty when positive,
 *     multiplied when negative or zero. NaN logits count as -infinity.
 *  2. temperature <= 0 (greedy): the largest logit wins, ties to the lower id;
 *     no random number is drawn.
 *  3. Otherwise candidates are ranked by logit, descending, ties by lower id
 *     (l_0 is the best logit). top_k > 0 keeps the first top_k in rank order.
 *  4. At temperature 1, with e_i = exp(l_i - l_0) in double and
 *     Z = the sum of e_i over the kept candidates in ascending token id
 *     order: top_p < 1 keeps the shortest rank-order prefix whose running
 *     sum of e_i (in rank order) is >= top_p * Z; min_p > 0 then keeps the
 *     candidates with e_i >= min_p. At least one candidate always remains.
 *  5. Weights w_i = exp((l_i - l_0) / temperature), summed in double in
 *     sorted order to W; one uniform u is drawn (sampler.h) and the first
 *     candidate whose running sum exceeds u * W is chosen (the last one if
 *     rounding leaves none).
 * This is llama.cpp's default chain order (penalties, top-k, top-p, min-p,
 * temperature, draw). Only as much of the ranking as step 4 needs is
 * computed (selection, then a sort of the best few), which gives the same
 * result as sorting everything. */
#include "sampler.h"
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rng_uniform(rng *r)
{
    return (float)(rng_next(r) >> 40) * 0x1p-24f;
}

typedef struct candidate {
    float logit;
    int32_t id;
} candidate;

struct engine_sampler {
    engine_sampler_params p;
    uint32_t n_vocab;
    rng rng;
    candidate *cand;  /* n_vocab */
    int32_t *history; /* ring of the last repeat_last_n accepted tokens */
    size_t hist_len, hist_next;
    uint8_t *seen; /* n_vocab flags, to penalize each token once */
};

void engine_sampler_defaults(engine_sampler_params *p)
{
    p->temperature = 0.8f;
    p->top_k = 0;
    p->top_p = 0.95f;
    p->min_p = 0.0f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0;
}

static int check_params(const engine_sampler_params *p, char *err, size_t errlen)
{
    if (!isfinite(p->temperature) || p->temperature < 0)
        snprintf(err, errlen, "temperature %g is not a finite number >= 0", p->temperature);
    else if (p->top_k < 0)
        snprintf(err, errlen, "top-k %d is negative", (int)p->top_k);
    else if (!(p->top_p > 0 && p->top_p <= 1))
        snprintf(err, errlen, "top-p %g is outside (0, 1]", p->top_p);
    else if (!(p->min_p >= 0 && p->min_p <= 1))
        snprintf(err, errlen, "min-p %g is outside [0, 1]", p->min_p);
    else if (!(isfinite(p->repeat_penalty) && p->repeat_penalty > 0))
        snprintf(err, errlen, "repeat penalty %g is not a finite number > 0", p->repeat_penalty);
    else if (p->repeat_last_n < 0)
        snprintf(err, errlen, "repeat window %d is negative", (int)p->repeat_last_n);
    else
        return 0;
    return -1;
}

engine_sampler *engine_sampler_new(const engine_sampler_params *p, uint32_t n_vocab, char *err,
                                   size_t errlen)
{
    if (check_params(p, err, errlen) != 0)
        return NULL;
    if (n_vocab == 0) {
        snprintf(err, errlen, "cannot sample from an empty vocabulary");
        return NULL;
    }
    engine_sampler *s = calloc(1, sizeof *s);
    if (s) {
        s->cand = malloc(n_vocab * sizeof *s->cand);
        s->seen = calloc(n_vocab, 1);
        s->history = malloc(((size_t)p->repeat_last_n + 1) * sizeof *s->history);
    }
    if (!s || !s->cand || !s->seen || !s->history) {
        engine_sampler_free(s);
        snprintf(err, errlen, "out of memory for a sampler over %u tokens", n_vocab);
        return NULL;
    }
    s->p = *p;
    s->n_vocab = n_vocab;
    rng_seed(&s->rng, p->seed);
    return s;
}

void engine_sampler_free(engine_sampler *s)
{
    if (!s)
        return;
    free(s->cand);
    free(s->seen);
    free(s->history);
    free(s);
}

void engine_sampler_accept(engine_sampler *s, int32_t token)
{
    if (s->p.repeat_last_n == 0)
        return;
    s->history[s->hist_next] = token;
    s->hist_next = (s->hist_next + 1) % (size_t)s->p.repeat_last_n;
    if (s->hist_len < (size_t)s->p.repeat_last_n)
        s->hist_len++;
}

static void load_candidates(engine_sampler *s, const float *logits)
{
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        s->cand[i].id = (int32_t)i;
        s->cand[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
    }
}

static void apply_repeat_penalty(engine_sampler *s)
{
    float r = s->p.repeat_penalty;
    if (r == 1.0f)
        return;
    for (size_t i = 0; i < s->hist_len; i++) {
        int32_t t = s->history[i];
        if (t < 0 || (uint32_t)t >= s->n_vocab || s->seen[t])
            continue;
        s->seen[t] = 1;
        float *l = &s->cand[t].logit;
        *l = *l > 0 ? *l / r : *l * r;
    }
    for (size_t i = 0; i < s->hist_len; i++)
        if (s->history[i] >= 0 && (uint32_t)s->history[i] < s->n_vocab)
            s->seen[s->history[i]] = 0;
}

static int32_t argmax(const candidate *c, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (c[i].logit > c[best].logit) /* strict: ties keep the lower id */
            best = i;
    return c[best].id;
}

static int by_logit_desc(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int better(const candidate *a, const candidate *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static void swap_cand(candidate *a, candidate *b)
{
    candidate t = *a;
    *a = *b;
    *b = t;
}

/* Moves the m best candidates of c[0, n) (rank order) into c[0, m), in no
 * particular order: quickselect with a median-of-three pivot, falling back
 * to a full sort if the partitions keep coming out lopsided. */
static void select_best(candidate *c, size_t n, size_t m)
{
    size_t lo = 0, hi = n;
    for (int round = 0; hi - lo > 1; round++) {
        if (round == 64) {
            qsort(c + lo, hi - lo, sizeof *c, by_logit_desc);
            return;
        }
        size_t mid = lo + (hi - lo) / 2, last = hi - 1;
        if (better(&c[mid], &c[lo]))
            swap_cand(&c[mid], &c[lo]);
        if (better(&c[last], &c[lo]))
            swap_cand(&c[last], &c[lo]);
        if (better(&c[mid], &c[last]))
            swap_cand(&c[mid], &c[last]); /* the median is now at last */
        size_t store = lo;
        for (size_t i = lo; i < last; i++)
            if (better(&c[i], &c[last]))
                swap_cand(&c[i], &c[store++]);
        swap_cand(&c[store], &c[last]);
        if (store == m)
            return;
        if (store < m)
            lo = store + 1;
        else
            hi = store;
    }
}

static int by_id(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Z of step 4: the sum of exp(l_i - l0) over c[0, n), in ascending id order
 * (c is in id order when n is the whole vocabulary; else sorted here). */
static double partition_sum(candidate *c, size_t n, double l0, int in_id_order)
{
    if (!in_id_order)
        qsort(c, n, sizeof *c, by_id);
    double z = 0;
    for (size_t i = 0; i < n; i++)
        z += exp((double)c[i].logit - l0);
    return z;
}

/* Length of the rank-order prefix of c[0, m) kept by top-p and min-p, or 0
 * when the cut may lie beyond m. c[0, m) is sorted; z as above. */
static size_t nucleus(const candidate *c, size_t m, int complete, double z, float top_p,
                      float min_p)
{
    double l0 = (double)c[0].logit, cum = 0;
    size_t keep = complete ? m : 0;
    if (top_p < 1.0f) {
        for (size_t i = 0; i < m; i++) {
            cum += exp((double)c[i].logit - l0);
            if (cum >= (double)top_p * z) {
                keep = i + 1;
                break;
            }
        }
    }
    if (min_p > 0.0f) {
        size_t k = 1, limit = keep ? keep : m;
        while (k < limit && exp((double)c[k].logit - l0) >= (double)min_p)
            k++;
        if (k < limit || keep)
            keep = k;
    }
    return keep;
}

static int32_t draw(engine_sampler *s, size_t n)
{
    const candidate *c = s->cand;
    double inv_t = 1.0 / (double)s->p.temperature, total = 0;
    for (size_t i = 0; i < n; i++)
        total += exp(((double)c[i].logit - (double)c[0].logit) * inv_t);
    double target = (double)rng_uniform(&s->rng) * total, cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += exp(((double)c[i].logit - (double)c[0].logit) * inv_t);
        if (cum > target)
            return c[i].id;
    }
    return c[n - 1].id;
}

int32_t engine_sampler_sample(engine_sampler *s, const float *logits)
{
    load_candidates(s, logits);
    apply_repeat_penalty(s);
    if (s->p.temperature <= 0.0f)
        return argmax(s->cand, s->n_vocab);
    size_t n = s->n_vocab;
    int32_t best = argmax(s->cand, s->n_vocab);
    double l0 = (double)s->cand[best].logit;
    if (l0 == -INFINITY)
        return best; /* nothing finite: the lowest id */
    if (s->p.top_k > 0 && (uint32_t)s->p.top_k < n) {
        select_best(s->cand, n, (size_t)s->p.top_k);
        n = (size_t)s->p.top_k;
    }
    double z = partition_sum(s->cand, n, l0, n == s->n_vocab);
    /* rank only as deep as the nucleus reaches: 64, then 8x more each time */
    for (size_t m = n < 64 ? n : 64;; m = m * 8 < n ? m * 8 : n) {
        select_best(s->cand, n, m);
        qsort(s->cand, m, sizeof *s->cand, by_logit_desc);
        size_t keep = nucleus(s->cand, m, m == n, z, s->p.top_p, s->p.min_p);
        if (keep)
            return draw(s, keep);
    }
}
