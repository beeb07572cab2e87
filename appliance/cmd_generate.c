/* appliance generate: run a model on a prompt and stream the output. */
#include "commands.h"
#include "engine.h"
#include "generate_monitor.h"

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
    "       [-t THREADS] [-c CTX] [--kernels NAME] [--attest FILE] [--json]"

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
    "      --attest FILE       also write the signed attestation (DSSE envelope) to FILE\n"        \
    "      --json              print one JSON object instead of streaming text\n"                  \
    "With an appliance home (appliance init) the prompt is audited before the model\n"             \
    "sees it, the output after, and a signed attestation follows them in the log.\n"

typedef struct gen_opts {
    cli_run_opts run;
    const char *prompt, *attest;
    int json;
    int reply_timeout_ms;
    int test_violation;
} gen_opts;

static int bad_value(const char *flag, const char *value)
{
    return cli_usage_error("generate", GENERATE_USAGE, "invalid value '%s' for %s", value, flag);
}

enum {
    OPT_JSON = CLI_OPT_RUN_END,
    OPT_ATTEST,
    OPT_TEST_VIOLATE,
    OPT_TEST_TIMEOUT,
};

#ifdef APPLIANCE_TEST_HOOKS
/* Test builds only: what --test-violate asks the sandboxed worker to try. */
static int parse_violation(const char *s)
{
    static const char *const names[] = {"",       "socket",          "connect", "open-audit-db",
                                        "execve", "read-device-key", "crash",   "hang"};
    for (int i = 1; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return 0;
}
#endif

/* Parses argv into o; returns -1 when done, else an exit code to return. */
static int parse_generate_args(int argc, char **argv, gen_opts *o)
{
    static const struct option opts[] = {
        CLI_RUN_OPTIONS,
        {"prompt", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, OPT_JSON},
        {"attest", required_argument, NULL, OPT_ATTEST},
#ifdef APPLIANCE_TEST_HOOKS
        {"test-violate", required_argument, NULL, OPT_TEST_VIOLATE},
        {"test-reply-timeout", required_argument, NULL, OPT_TEST_TIMEOUT},
#endif
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, CLI_RUN_SHORT "p:h", opts, NULL)) != -1) {
        const char *flag;
        int s = cli_parse_run_flag(c, optarg, &o->run, &flag);
        if (s < 0)
            return bad_value(flag, optarg);
        if (s > 0)
            continue;
        switch (c) {
        case 'p':
            o->prompt = optarg;
            break;
        case OPT_JSON:
            o->json = 1;
            break;
        case OPT_ATTEST:
            o->attest = optarg;
            break;
#ifdef APPLIANCE_TEST_HOOKS
        case OPT_TEST_VIOLATE:
            if (!(o->test_violation = parse_violation(optarg)))
                return bad_value("--test-violate", optarg);
            break;
        case OPT_TEST_TIMEOUT: {
            uint64_t u;
            if (cli_parse_u64(optarg, 3600000, &u) || u == 0)
                return bad_value("--test-reply-timeout", optarg);
            o->reply_timeout_ms = (int)u;
            break;
        }
#endif
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
    if (!o->run.model == !o->run.synthetic || !o->prompt)
        return cli_usage_error("generate", GENERATE_USAGE,
                               "give -p PROMPT and exactly one of -m MODEL and --synthetic SPEC");
    return -1;
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

static json_t *audit_json(const gen_outcome *g)
{
    if (!g->audited)
        return json_null();
    return json_pack("{s:I, s:I, s:I, s:s}", "prompt_seq", (json_int_t)g->prompt_seq, "output_seq",
                     (json_int_t)g->output_seq, "attestation_seq", (json_int_t)g->attestation_seq,
                     "prompt_salt", g->salt_hex);
}

static int print_json(const gen_outcome *g, uint64_t seed)
{
    const worker_result *r = &g->result;
    json_t *o = json_pack(
        "{s:o, s:o, s:s%, s:s, s:I, s:{s:f, s:f, s:f, s:f, s:f}, s:s, s:s, s:s, s:o, "
        "s:{s:i, s:b, s:b, s:b, s:i}, s:s}",
        "prompt_tokens", token_array(r->prompt_tokens, r->n_prompt), "tokens",
        token_array(r->tokens, r->n_tokens), "text", r->text, r->text_len, "finish_reason",
        engine_finish_name(r->finish), "seed", (json_int_t)seed, "timings", "load_ms", g->load_ms,
        "prompt_ms", r->prompt_ms, "decode_ms", r->decode_ms, "prefill_tokens_per_s",
        per_second((double)r->n_prompt, r->prompt_ms), "decode_tokens_per_s",
        per_second(r->n_decode_evals, r->decode_ms), "request_id", g->request_id, "model_sha256",
        g->model_sha256, "policy_digest", g->policy_digest, "audit", audit_json(g), "sandbox",
        "seccomp_mode", g->observed.seccomp_mode, "no_new_privs", g->observed.no_new_privs,
        "network_namespace", g->observed.net_namespace, "landlock", g->observed.landlock_enforced,
        "monitor_seccomp_mode", g->monitor_seccomp_mode, "kernels", g->kernels);
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

int cmd_generate(const app_ctx *ctx, int argc, char **argv)
{
    gen_opts o = {.reply_timeout_ms = 120000};
    cli_run_defaults(&o.run);
    int rc = parse_generate_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if ((rc = cli_run_seed("generate", &o.run)) != EXIT_OK)
        return rc;
    gen_request req = gen_request_for_run(&o.run);
    req.prompt = o.prompt;
    req.reply_timeout_ms = o.reply_timeout_ms;
    req.test_violation = o.test_violation;
    req.attest_path = o.attest;
    gen_outcome g;
    rc = generate_as_monitor(ctx, &req, o.json ? NULL : stream_stdout, NULL, &g);
    if (rc == EXIT_OK && o.json) {
        if (print_json(&g, o.run.sampling.seed) != 0) {
            cli_error("generate", "cannot write the JSON result");
            rc = EXIT_FAIL;
        }
    } else if (rc == EXIT_OK) {
        const worker_result *r = &g.result;
        printf("\n");
        fflush(stdout); /* before the statistics on stderr */
        fprintf(stderr,
                "prompt: %zu tokens, %.1f ms (%.1f tokens/s); output: %zu tokens, "
                "%.1f ms decode (%.1f tokens/s); finish: %s; sandbox: seccomp %d%s\n",
                r->n_prompt, r->prompt_ms, per_second((double)r->n_prompt, r->prompt_ms),
                r->n_tokens, r->decode_ms, per_second(r->n_decode_evals, r->decode_ms),
                engine_finish_name(r->finish), g.observed.seccomp_mode,
                g.audited ? ", audited"
                          : "; NOT audited: no appliance home (run 'appliance init')");
    }
    gen_outcome_free(&g);
    if (fflush(stdout) != 0)
        rc = EXIT_FAIL;
    return rc;
}
