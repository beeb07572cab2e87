/* libFuzzer target for model loading: arbitrary bytes go through
 * engine_model_load (GGUF reader, llama hyperparameter and tensor checks,
 * tokenizer); a model that loads then runs a short prefill and one decode
 * step in a tiny context, so a shape the checks let through that the
 * forward pass cannot handle shows up as a sanitizer report. */
#include "engine/engine.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    engine_model *m = engine_model_load(data, size, "scalar", err, sizeof err);
    if (!m)
        return 0;
    engine_model_info info;
    engine_model_get_info(m, &info);
    engine_ctx_params p;
    engine_ctx_defaults(&p);
    p.n_ctx = info.n_ctx_train < 8 ? info.n_ctx_train : 8;
    p.n_batch = 4;
    engine_ctx *c = engine_ctx_new(m, &p, err, sizeof err);
    if (c) {
        int32_t toks[3] = {0, (int32_t)(1 % info.n_vocab), (int32_t)(info.n_vocab - 1)};
        size_t n = p.n_ctx < 3 ? p.n_ctx : 3;
        if (engine_eval(c, toks, n, err, sizeof err) == 0 && engine_ctx_position(c) < p.n_ctx) {
            const float *l = engine_logits(c, 0);
            int32_t best = 0;
            for (uint32_t i = 1; i < info.n_vocab; i++)
                best = l[i] > l[best] ? (int32_t)i : best;
            (void)engine_eval(c, &best, 1, err, sizeof err);
        }
        engine_ctx_free(c);
    }
    engine_model_free(m);
    return 0;
}
