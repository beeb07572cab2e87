/* appliance generate: run a model on a prompt and stream the output. */
#include "commands.h"
#include "engine.h"
#include "model_map.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define GENERATE_USAGE                                                                             \
    "appliance generate (-m MODEL | --synthetic SPEC) -p PROMPT [-n N] [--temp T]\n"               \
    "       [--top-k K] [--top-p P] [--min-p M] [--repeat-penalty R] [--seed S] [--greedy]\n"      \
    "       [-t THREADS] [-c CTX] [--kernels NAME] [--json]"

#define GENERATE_HELP                                                                              \
    "Generates text from MODEL (a GGUF file) after PROMPT and streams it to stdout.\n"             \
    "  -m, --model MODEL       the GGUF model file\n"                                              \
    "  -p, --prompt PROMPT     the prompt (UTF-8)\n"                                               \
    "  -n, --n-predict N       new tokens at most (default 256)\n"                                 \
    "      --temp T            temperature (default 0.8; 0 = greedy)\n"                            \
    "      --top-k K           keep the K most likely tokens (default 0 = off)\n"                  \
    "      --top-p P           nucleus sampling (default 0.95; 1 = off)\n"                         \
    "      --min-p M           drop tokens below M times the best (default 0 = off)\n"             \
    "      --repeat-penalty R  penalize the last 64 tokens (default 1 = off)\n"                    \
    "      --seed S            random seed, 0..2^63-1 (default: random, printed to stderr)\n"      \
    "      --greedy            same as --temp 0\n"                                                 \
    "  -t, --threads N         threads (default: online CPUs)\n"                                   \
    "  -c, --ctx-size N        context length (default: the model's, at most 4096)\n"              \
    "      --kernels NAME      kernel set (default: the best this CPU runs)\n"                     \
    "      --json              print one JSON object instead of streaming text\n"

typedef struct gen_opts {
    const char *model, *synthetic, *prompt, *kernels;
    uint32_t n_predict, n_ctx;
    int threads, json, have_seed;
    engine_sampler_params sampling;
} gen_opts;

static int parse_u64_arg(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_float_arg(const char *s, float *out)
{
    char *end;
    errno = 0;
    if (!s || !*s)
        return -1;
    float v = strtof(s, &end);
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int bad_value(const char *flag, const char *value)
{
    return cli_usage_error("generate", GENERATE_USAGE, "invalid value '%s' for %s", value, flag);
}

enum {
    OPT_TEMP = 256,
    OPT_TOPK,
    OPT_TOPP,
    OPT_MINP,
    OPT_REPEAT,
    OPT_SEED,
    OPT_GREEDY,
    OPT_JSON,
    OPT_KERNELS,
    OPT_SYNTH,
};

/* Parses argv into o; returns -1 when done, else an exit code to return. */
static int parse_generate_args(int argc, char **argv, gen_opts *o)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"n-predict", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'},
        {"ctx-size", required_argument, NULL, 'c'},
        {"temp", required_argument, NULL, OPT_TEMP},
        {"top-k", required_argument, NULL, OPT_TOPK},
        {"top-p", required_argument, NULL, OPT_TOPP},
        {"min-p", required_argument, NULL, OPT_MINP},
        {"repeat-penalty", required_argument, NULL, OPT_REPEAT},
        {"seed", required_argument, NULL, OPT_SEED},
        {"greedy", no_argument, NULL, OPT_GREEDY},
        {"json", no_argument, NULL, OPT_JSON},
        {"synthetic", required_argument, NULL, OPT_SYNTH},
        {"kernels", required_argument, NULL, OPT_KERNELS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t u;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:p:n:t:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            o->model = optarg;
            break;
        case 'p':
            o->prompt = optarg;
            break;
        case 'n':
            if (parse_u64_arg(optarg, UINT32_MAX, &u))
                return bad_value("-n", optarg);
            o->n_predict = (uint32_t)u;
            break;
        case 't':
            if (parse_u64_arg(optarg, 256, &u) || u == 0)
                return bad_value("-t", optarg);
            o->threads = (int)u;
            break;
        case 'c':
            if (parse_u64_arg(optarg, UINT32_MAX, &u) || u == 0)
                return bad_value("-c", optarg);
            o->n_ctx = (uint32_t)u;
            break;
        case OPT_TEMP:
            if (parse_float_arg(optarg, &o->sampling.temperature) || o->sampling.temperature < 0)
                return bad_value("--temp", optarg);
            break;
        case OPT_TOPK:
            if (parse_u64_arg(optarg, INT32_MAX, &u))
                return bad_value("--top-k", optarg);
            o->sampling.top_k = (int32_t)u;
            break;
        case OPT_TOPP:
            if (parse_float_arg(optarg, &o->sampling.top_p) || !(o->sampling.top_p > 0) ||
                o->sampling.top_p > 1)
                return bad_value("--top-p", optarg);
            break;
        case OPT_MINP:
            if (parse_float_arg(optarg, &o->sampling.min_p) || o->sampling.min_p < 0 ||
                o->sampling.min_p > 1)
                return bad_value("--min-p", optarg);
            break;
        case OPT_REPEAT:
            if (parse_float_arg(optarg, &o->sampling.repeat_penalty) ||
                !(o->sampling.repeat_penalty > 0))
                return bad_value("--repeat-penalty", optarg);
            break;
        case OPT_SEED:
            if (parse_u64_arg(optarg, INT64_MAX, &o->sampling.seed))
                return bad_value("--seed", optarg);
            o->have_seed = 1;
            break;
        case OPT_GREEDY:
            o->sampling.temperature = 0;
            break;
        case OPT_JSON:
            o->json = 1;
            break;
        case OPT_SYNTH:
            o->synthetic = optarg;
            break;
        case OPT_KERNELS:
            o->kernels = optarg;
            break;
        case 'h':
            printf("usage: %s\n%s", GENERATE_USAGE, GENERATE_HELP);
            return EXIT_OK;
        default:
            return cli_bad_option("generate", GENERATE_USAGE, argc, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("generate", GENERATE_USAGE, "unexpected argument '%s'",
                               argv[optind]);
    if (!o->model == !o->synthetic || !o->prompt)
        return cli_usage_error("generate", GENERATE_USAGE,
                               "give -p PROMPT and exactly one of -m MODEL and --synthetic SPEC");
    return -1;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int stream_stdout(void *user, const char *text, size_t len)
{
    (void)user;
    if (fwrite(text, 1, len, stdout) != len)
        return 1;
    fflush(stdout);
    return 0;
}

static json_t *token_array(const int32_t *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer(ids[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static double per_second(double count, double ms)
{
    return ms > 0 ? count * 1e3 / ms : 0;
}

static int print_json(const engine_generation *g, uint64_t seed, double load_ms)
{
    json_t *o = json_pack(
        "{s:o, s:o, s:s%, s:s, s:I, s:{s:f, s:f, s:f, s:f, s:f}}", "prompt_tokens",
        token_array(g->prompt_tokens, g->n_prompt), "tokens", token_array(g->tokens, g->n_tokens),
        "text", g->text, g->text_len, "finish_reason", engine_finish_name(g->finish), "seed",
        (json_int_t)seed, "timings", "load_ms", load_ms, "prompt_ms", g->prompt_ms, "decode_ms",
        g->decode_ms, "prefill_tokens_per_s", per_second((double)g->n_prompt, g->prompt_ms),
        "decode_tokens_per_s", per_second(g->n_decode_evals, g->decode_ms));
    if (!o)
        return -1;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return -1;
    int rc = printf("%s\n", s) < 0 ? -1 : 0;
    free(s);
    return rc;
}

/* Loads the model and a context; returns 0 or -1 after printing the error. */
static int load(const gen_opts *o, model_map *map, engine_model **m, engine_ctx **c)
{
    char err[512];
    engine_ctx_params cp;
    engine_model_info info;
    if ((o->model ? model_map_open(map, o->model, err, sizeof err)
                  : model_map_synthetic(map, o->synthetic, err, sizeof err)) != 0 ||
        !(*m = engine_model_load(map->data, map->size, o->kernels, err, sizeof err))) {
        cli_error("generate", "%s", err);
        return -1;
    }
    engine_model_get_info(*m, &info);
    engine_ctx_defaults(&cp);
    cp.n_ctx = o->n_ctx ? o->n_ctx : (info.n_ctx_train < 4096 ? info.n_ctx_train : 4096);
    cp.n_threads = o->threads;
    if (!(*c = engine_ctx_new(*m, &cp, err, sizeof err))) {
        cli_error("generate", "%s", err);
        return -1;
    }
    return 0;
}

int cmd_generate(const app_ctx *ctx, int argc, char **argv)
{
    gen_opts o = {.n_predict = 256};
    (void)ctx;
    engine_sampler_defaults(&o.sampling);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o.threads = cpus > 0 ? (int)(cpus < 256 ? cpus : 256) : 1;
    int rc = parse_generate_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (!o.have_seed) {
        if (getrandom(&o.sampling.seed, sizeof o.sampling.seed, 0) != sizeof o.sampling.seed) {
            cli_error("generate", "cannot draw a random seed: %s", strerror(errno));
            return EXIT_FAIL;
        }
        o.sampling.seed >>= 1; /* 63 bits: JSON readers take it as a signed integer */
        fprintf(stderr, "seed: %llu\n", (unsigned long long)o.sampling.seed);
    }
    model_map map = {0};
    engine_model *m = NULL;
    engine_ctx *c = NULL;
    engine_generation g = {0};
    char err[512];
    double t0 = now_ms();
    rc = EXIT_FAIL;
    if (load(&o, &map, &m, &c) != 0)
        goto done;
    double load_ms = now_ms() - t0;
    engine_generate_params gp = {.sampling = o.sampling, .max_tokens = o.n_predict};
    if (engine_generate(c, o.prompt, strlen(o.prompt), &gp, o.json ? NULL : stream_stdout, NULL, &g,
                        err, sizeof err) != 0) {
        cli_error("generate", "%s", err);
        goto done;
    }
    if (o.json) {
        if (print_json(&g, o.sampling.seed, load_ms) != 0) {
            cli_error("generate", "cannot write the JSON result");
            goto done;
        }
    } else {
        printf("\n");
        fflush(stdout); /* before the statistics on stderr */
        fprintf(stderr,
                "prompt: %zu tokens, %.1f ms (%.1f tokens/s); output: %zu tokens, "
                "%.1f ms decode (%.1f tokens/s); finish: %s\n",
                g.n_prompt, g.prompt_ms, per_second((double)g.n_prompt, g.prompt_ms), g.n_tokens,
                g.decode_ms, per_second(g.n_decode_evals, g.decode_ms),
                engine_finish_name(g.finish));
    }
    rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
done:
    engine_generation_free(&g);
    engine_ctx_free(c);
    engine_model_free(m);
    model_map_close(&map);
    return rc;
}
