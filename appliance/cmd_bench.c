/* appliance bench: prefill and decode speed, memory bandwidth, decode bound;
 * --audit and --sandbox are in cmd_bench_audit.c and cmd_bench_sandbox.c. */
#include "bench.h"
#include "commands.h"
#include "engine.h"
#include "model_map.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_USAGE                                                                                \
    "appliance bench (-m MODEL | --synthetic GEOMETRY:TYPE) [-p N] [-n N] [-t THREADS]\n"          \
    "       [-r REPS] [--kernels NAME] [--json]\n"                                                 \
    "       appliance bench --audit [--db FILE] [--synthetic SPEC] [-n N] [-t THREADS] [-r "       \
    "REPS]\n"                                                                                      \
    "       [--json]\n"                                                                            \
    "       appliance bench --sandbox on|off|compare [-m MODEL | --synthetic SPEC] [-n N]\n"       \
    "       [-t THREADS] [-r REPS] [--kernels NAME] [--json]"

#define BENCH_HELP                                                                                 \
    "Measures prefill (-p tokens in one batch) and decode (-n single-token steps after it)\n"      \
    "speed, like llama-bench pp/tg, the memory read bandwidth, and the decode bound\n"             \
    "(bandwidth / weight bytes read per token).\n"                                                 \
    "  -m, --model MODEL       a GGUF model file\n"                                                \
    "      --synthetic SPEC    write a random-weight model first: tinyllama or tiny, then\n"       \
    "                          :q4_0, :q8_0, :q4_k_m, :f16, ... (e.g. tinyllama:q4_0)\n"           \
    "  -p, --prompt-tokens N   prefill tokens (default 512)\n"                                     \
    "  -n, --gen-tokens N      decode tokens (default 128)\n"                                      \
    "  -t, --threads N         threads (default: online CPUs)\n"                                   \
    "  -r, --reps N            repetitions; median, min and max are reported (default 5)\n"        \
    "      --kernels NAME      kernel set (default: the best this CPU runs)\n"                     \
    "      --json              print one JSON object\n"                                            \
    "--audit measures the audit log instead: durable appends per second (one writer,\n"            \
    "several processes, group commit of many threads, batches) on a scratch log on the\n"          \
    "home's file system, that file system's raw fsync rate, and the share the audit takes\n"       \
    "of full greedy generate requests (-n tokens, default tinyllama:q4_0) on a scratch home.\n"    \
    "      --db FILE           measure on FILE's file system instead (FILE is not touched)\n"      \
    "--sandbox compares the same greedy generation through the sandboxed worker (on)\n"            \
    "and in-process (off); compare (or on and off both given) alternates them per\n"               \
    "repetition and reports the overhead. Model load is reported apart from generation.\n"

/* Buffer for the bandwidth probe: far larger than any last-level cache here. */
#define BANDWIDTH_BYTES ((size_t)512 << 20)

enum { OPT_SYNTH = 256, OPT_JSON, OPT_KERNELS, OPT_AUDIT, OPT_SANDBOX, OPT_DB };

/* --sandbox MODE: on, off, or compare (both); given twice, the modes add up. */
static int parse_sandbox_mode(const char *s, int *bits)
{
    if (strcmp(s, "on") == 0)
        *bits |= BENCH_SANDBOX_ON;
    else if (strcmp(s, "off") == 0)
        *bits |= BENCH_SANDBOX_OFF;
    else if (strcmp(s, "compare") == 0)
        *bits |= BENCH_SANDBOX_ON | BENCH_SANDBOX_OFF;
    else
        return -1;
    return 0;
}

static int parse_count(int c, const char *arg, bench_opts *o)
{
    uint64_t u, max = c == 't' ? 256 : c == 'r' ? BENCH_MAX_REPS : 1u << 20;
    if (cli_parse_u64(arg, max, &u) || (u == 0 && c != 'p' && c != 'n'))
        return cli_usage_error("bench", BENCH_USAGE, "invalid value '%s' for -%c", arg, c);
    if (c == 'p') {
        o->n_prompt = (uint32_t)u;
        o->n_prompt_given = 1;
    } else if (c == 'n') {
        o->n_gen = (uint32_t)u;
    } else if (c == 't') {
        o->threads = (int)u;
    } else {
        o->reps = (uint32_t)u;
    }
    return -1;
}

/* The combinations each benchmark accepts; -1 when they are fine. */
static int check_combination(const bench_opts *o)
{
    if (o->audit && o->sandbox)
        return cli_usage_error("bench", BENCH_USAGE, "give at most one of --audit and --sandbox");
    if (o->db && !o->audit)
        return cli_usage_error("bench", BENCH_USAGE, "--db applies to --audit only");
    if (o->audit || o->sandbox) {
        if (o->n_prompt_given)
            return cli_usage_error("bench", BENCH_USAGE,
                                   "-p applies to the engine benchmark only (--audit and "
                                   "--sandbox use a fixed prompt)");
        if (o->audit && o->model)
            return cli_usage_error("bench", BENCH_USAGE,
                                   "--audit runs a synthetic model in a scratch home: give "
                                   "--synthetic SPEC, not -m");
        if (o->model && o->synthetic)
            return cli_usage_error("bench", BENCH_USAGE,
                                   "give at most one of -m MODEL and --synthetic SPEC");
        if (o->n_gen == 0)
            return cli_usage_error("bench", BENCH_USAGE, "-n must be at least 1 here");
        return -1;
    }
    if (!o->model == !o->synthetic)
        return cli_usage_error("bench", BENCH_USAGE,
                               "give exactly one of -m MODEL and --synthetic SPEC");
    if (o->n_prompt + o->n_gen == 0)
        return cli_usage_error("bench", BENCH_USAGE, "nothing to measure: -p and -n are both 0");
    return -1;
}

static int parse_bench_args(int argc, char **argv, bench_opts *o)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"synthetic", required_argument, NULL, OPT_SYNTH},
        {"prompt-tokens", required_argument, NULL, 'p'},
        {"gen-tokens", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'},
        {"reps", required_argument, NULL, 'r'},
        {"kernels", required_argument, NULL, OPT_KERNELS},
        {"json", no_argument, NULL, OPT_JSON},
        {"audit", no_argument, NULL, OPT_AUDIT},
        {"sandbox", required_argument, NULL, OPT_SANDBOX},
        {"db", required_argument, NULL, OPT_DB},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:p:n:t:r:h", opts, NULL)) != -1) {
        if (c == 'm')
            o->model = optarg;
        else if (c == OPT_SYNTH)
            o->synthetic = optarg;
        else if (c == OPT_KERNELS)
            o->kernels = optarg;
        else if (c == OPT_JSON)
            o->json = 1;
        else if (c == OPT_AUDIT)
            o->audit = 1;
        else if (c == OPT_DB)
            o->db = optarg;
        else if (c == OPT_SANDBOX) {
            if (parse_sandbox_mode(optarg, &o->sandbox) != 0)
                return cli_usage_error("bench", BENCH_USAGE,
                                       "invalid value '%s' for --sandbox (on, off or compare)",
                                       optarg);
        } else if (c == 'h') {
            printf("usage: %s\n%s", BENCH_USAGE, BENCH_HELP);
            return EXIT_OK;
        } else if (c == 'p' || c == 'n' || c == 't' || c == 'r') {
            if ((rc = parse_count(c, optarg, o)) >= 0)
                return rc;
        } else
            return cli_bad_option("bench", BENCH_USAGE, argc, argv);
    }
    if (optind < argc)
        return cli_usage_error("bench", BENCH_USAGE, "unexpected argument '%s'", argv[optind]);
    return check_combination(o);
}

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bench_stats bench_summarize(double *v, uint32_t n)
{
    bench_stats s = {0, 0, 0};
    if (n == 0)
        return s;
    qsort(v, n, sizeof *v, cmp_double);
    s.min = v[0];
    s.max = v[n - 1];
    s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return s;
}

json_t *bench_stats_json(const bench_stats *s)
{
    return json_pack("{s:f, s:f, s:f}", "median", s->median, "min", s->min, "max", s->max);
}

int bench_print_json(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int rc = s && printf("%s\n", s) >= 0 ? 0 : -1;
    free(s);
    return rc;
}

typedef struct bench_result {
    bench_stats prefill, decode;
    double bandwidth_gb_s, bound;
} bench_result;

/* One repetition: prefill n_prompt tokens in one batch, then n_gen steps. */
static int run_once(engine_ctx *c, const int32_t *toks, const bench_opts *o, double *pp, double *tg,
                    char *err, size_t errlen)
{
    engine_ctx_reset(c);
    double t0 = bench_now_s();
    if (o->n_prompt && engine_eval(c, toks, o->n_prompt, err, errlen) != 0)
        return -1;
    double t1 = bench_now_s();
    for (uint32_t i = 0; i < o->n_gen; i++)
        if (engine_eval(c, &toks[o->n_prompt + i], 1, err, errlen) != 0)
            return -1;
    double t2 = bench_now_s();
    *pp = o->n_prompt && t1 > t0 ? o->n_prompt / (t1 - t0) : 0;
    *tg = o->n_gen && t2 > t1 ? o->n_gen / (t2 - t1) : 0;
    return 0;
}

static int measure(engine_ctx *c, const engine_model_info *info, const bench_opts *o,
                   bench_result *r, char *err, size_t errlen)
{
    size_t n = (size_t)o->n_prompt + o->n_gen;
    int32_t *toks = malloc(n * sizeof *toks);
    double *pp = calloc(o->reps, sizeof *pp), *tg = calloc(o->reps, sizeof *tg), w1, w2;
    int rc = -1;
    if (!toks || !pp || !tg) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) /* arbitrary valid ids; speed does not depend on them */
        toks[i] = (int32_t)((i * 7919 + 13) % info->n_vocab);
    /* warm-up: faults the mapped weights in and settles the threads */
    if (run_once(c, toks, &(bench_opts){.n_prompt = o->n_prompt ? 8 : 0, .n_gen = 1}, &w1, &w2, err,
                 errlen) != 0)
        goto done;
    /* The bandwidth is probed after every repetition and the best probe
     * kept: on a shared machine a single probe can land in a moment of
     * contention and make the bound, and the fraction reached, look better
     * than they are; the best one is the machine's own limit. */
    r->bandwidth_gb_s = 0;
    for (uint32_t i = 0; i < o->reps; i++) {
        if (run_once(c, toks, o, &pp[i], &tg[i], err, errlen) != 0)
            goto done;
        const double bw = engine_ctx_read_bandwidth(c, BANDWIDTH_BYTES, 3);
        if (bw <= 0) {
            snprintf(err, errlen, "cannot allocate %zu MB to measure memory bandwidth",
                     BANDWIDTH_BYTES >> 20);
            goto done;
        }
        if (bw > r->bandwidth_gb_s)
            r->bandwidth_gb_s = bw;
    }
    r->prefill = bench_summarize(pp, o->reps);
    r->decode = bench_summarize(tg, o->reps);
    r->bound = r->bandwidth_gb_s * 1e9 / (double)info->weight_bytes_per_token;
    rc = 0;
done:
    free(toks);
    free(pp);
    free(tg);
    return rc;
}

static int print_json(const char *model, const bench_opts *o, const engine_model_info *info,
                      const bench_result *r)
{
    json_t *j = json_pack(
        "{s:s, s:i, s:{s:i, s:{s:f, s:f, s:f}}, s:{s:i, s:{s:f, s:f, s:f}}, s:f, s:f, s:f, s:s}",
        "model", model, "threads", o->threads, "prefill", "tokens", (int)o->n_prompt,
        "tokens_per_s", "median", r->prefill.median, "min", r->prefill.min, "max", r->prefill.max,
        "decode", "tokens", (int)o->n_gen, "tokens_per_s", "median", r->decode.median, "min",
        r->decode.min, "max", r->decode.max, "bandwidth_gb_s", r->bandwidth_gb_s,
        "decode_bound_tokens_per_s", r->bound, "decode_fraction_of_bound",
        r->bound > 0 ? r->decode.median / r->bound : 0.0, "kernels", info->kernels);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        return -1;
    printf("%s\n", s);
    free(s);
    return 0;
}

static void print_text(const char *model, const bench_opts *o, const engine_model_info *info,
                       const bench_result *r)
{
    printf("model %s: %u layers, embedding %u, vocab %u; kernels %s; %d threads; %u reps\n", model,
           info->n_layer, info->n_embd, info->n_vocab, info->kernels, o->threads, o->reps);
    if (info->kernels_note[0])
        printf("kernels: a faster set was passed over: %s\n", info->kernels_note);
    printf("prefill pp%-5u %8.2f tokens/s (min %.2f, max %.2f)\n", o->n_prompt, r->prefill.median,
           r->prefill.min, r->prefill.max);
    printf("decode  tg%-5u %8.2f tokens/s (min %.2f, max %.2f)\n", o->n_gen, r->decode.median,
           r->decode.min, r->decode.max);
    printf("memory read bandwidth %.1f GB/s; weights read per token %.1f MB; decode bound "
           "%.1f tokens/s",
           r->bandwidth_gb_s, (double)info->weight_bytes_per_token / 1e6, r->bound);
    if (o->n_gen > 0)
        printf("; achieved %.0f%%", r->bound > 0 ? 100.0 * r->decode.median / r->bound : 0.0);
    printf("\n");
}

/* Shrinks -p/-n so that they fit the context, saying so. */
static void clamp_to_context(bench_opts *o, uint32_t n_ctx)
{
    if ((uint64_t)o->n_prompt + o->n_gen <= n_ctx)
        return;
    uint32_t p = o->n_prompt, n = o->n_gen;
    if (n >= n_ctx) {
        n = p ? n_ctx / 2 : n_ctx;
        p = p ? n_ctx - n : 0;
    } else {
        p = n_ctx - n;
    }
    fprintf(stderr, "bench: -p %u + -n %u exceed the context of %u; using -p %u -n %u\n",
            o->n_prompt, o->n_gen, n_ctx, p, n);
    o->n_prompt = p;
    o->n_gen = n;
}

int cmd_bench(const app_ctx *ctx, int argc, char **argv)
{
    bench_opts o = {.n_prompt = 512, .n_gen = 128, .reps = 5};
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o.threads = cpus > 0 ? (int)(cpus < 256 ? cpus : 256) : 1;
    int rc = parse_bench_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (o.audit)
        return bench_audit(ctx, &o);
    if (o.sandbox)
        return bench_sandbox(&o);
    model_map map = {0};
    engine_model *m = NULL;
    engine_ctx *c = NULL;
    engine_model_info info;
    engine_ctx_params cp;
    bench_result r;
    char err[512];
    const char *name = o.model ? o.model : o.synthetic;
    rc = EXIT_FAIL;
    if ((o.model ? model_map_open(&map, o.model, err, sizeof err)
                 : model_map_synthetic(&map, o.synthetic, err, sizeof err)) != 0 ||
        !(m = engine_model_load(map.data, map.size, o.kernels, err, sizeof err)))
        goto fail;
    engine_model_get_info(m, &info);
    clamp_to_context(&o, info.n_ctx_train);
    engine_ctx_defaults(&cp);
    cp.n_ctx = o.n_prompt + o.n_gen;
    cp.n_batch = o.n_prompt ? o.n_prompt : 1;
    cp.n_threads = o.threads;
    if (!(c = engine_ctx_new(m, &cp, err, sizeof err)) ||
        measure(c, &info, &o, &r, err, sizeof err) != 0)
        goto fail;
    if (o.json) {
        if (print_json(name, &o, &info, &r) != 0) {
            snprintf(err, sizeof err, "cannot write the JSON result");
            goto fail;
        }
    } else {
        print_text(name, &o, &info, &r);
    }
    rc = EXIT_OK;
    goto done;
fail:
    cli_error("bench", "%s", err);
done:
    engine_ctx_free(c);
    engine_model_free(m);
    model_map_close(&map);
    return rc;
}
