/* engine: run GGUF language models on the CPU.
 *
 * A pure library (libc, libm, pthreads): no file opening policy, no crypto,
 * no logging. Callers map the model bytes themselves (after verifying them)
 * and pass them in. Errors come back as a return code plus one sentence in a
 * caller-provided buffer.
 *
 * Determinism: for one model, kernel set, prompt, parameters and seed, the
 * logits and tokens are bit-identical for any thread count. */
#ifndef ENGINE_ENGINE_H
#define ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#define ENGINE_VERSION "0.1.0"

/* Space-separated names of the kernel sets this CPU can run ("scalar avx2"),
 * best last. */
const char *engine_kernels_available(void);

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

#endif
