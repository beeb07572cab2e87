#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pwd.h>
#include <sys/random.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (cmd)
        fprintf(stderr, "appliance %s: ", cmd);
    else
        fprintf(stderr, "appliance: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "appliance%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fprintf(stderr, "usage: %s\n", usage);
    fprintf(stderr, "Try 'appliance %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
    return EXIT_USAGE;
}

int cli_bad_option(const char *cmd, const char *usage, int argc, char **argv)
{
    /* getopt_long already knows which element was wrong: optind points past it. */
    const char *arg = (optind - 1 < argc && optind > 0) ? argv[optind - 1] : "?";
    if (optopt && optopt != '?' && strchr(arg, '=') == NULL && arg[0] == '-' && arg[1] != '-')
        return cli_usage_error(cmd, usage, "bad option '-%c' or missing argument", optopt);
    return cli_usage_error(cmd, usage, "bad option '%s' or missing argument", arg);
}

int cli_resolve_home(const app_ctx *ctx, const char *flag, char *buf, size_t cap)
{
    const char *home = flag ? flag : (ctx ? ctx->home_flag : NULL);
    int n;
    if (!home)
        home = getenv("APPLIANCE_HOME");
    if (home && *home) {
        n = snprintf(buf, cap, "%s", home);
    } else {
        const char *user_home = getenv("HOME");
        if (!user_home || !*user_home)
            return -1;
        n = snprintf(buf, cap, "%s/.appliance", user_home);
    }
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

void cli_actor(char *buf, size_t cap)
{
    struct passwd *pw = getpwuid(getuid());
    snprintf(buf, cap, "local:%s", pw && pw->pw_name ? pw->pw_name : "unknown");
}

int cli_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_float(const char *s, float *out)
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

/* A probability-like flag value: a real in [lo, 1], or in (lo, 1] when
 * open_lo. */
static int parse_unit(const char *arg, float lo, int open_lo, float *out)
{
    float v;
    if (cli_parse_float(arg, &v) || v < lo || (open_lo && !(v > lo)) || v > 1)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_sampling_flag(int c, const char *arg, engine_sampler_params *p, int *have_seed,
                            const char **flag)
{
    uint64_t u;
    int bad;
    switch (c) {
    case CLI_OPT_TEMP:
        *flag = "--temp";
        bad = cli_parse_float(arg, &p->temperature) || p->temperature < 0;
        break;
    case CLI_OPT_TOPK:
        *flag = "--top-k";
        bad = cli_parse_u64(arg, INT32_MAX, &u);
        if (!bad)
            p->top_k = (int32_t)u;
        break;
    case CLI_OPT_TOPP:
        *flag = "--top-p";
        bad = parse_unit(arg, 0, 1, &p->top_p);
        break;
    case CLI_OPT_MINP:
        *flag = "--min-p";
        bad = parse_unit(arg, 0, 0, &p->min_p);
        break;
    case CLI_OPT_REPEAT:
        *flag = "--repeat-penalty";
        bad = cli_parse_float(arg, &p->repeat_penalty) || !(p->repeat_penalty > 0);
        break;
    case CLI_OPT_SEED:
        *flag = "--seed";
        bad = cli_parse_u64(arg, INT64_MAX, &p->seed);
        if (!bad)
            *have_seed = 1;
        break;
    case CLI_OPT_GREEDY:
        p->temperature = 0;
        return 1;
    default:
        return 0;
    }
    return bad ? -1 : 1;
}

void cli_run_defaults(cli_run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_predict = 256;
    engine_sampler_defaults(&o->sampling);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = cpus > 0 ? (int)(cpus < 256 ? cpus : 256) : 1;
}

int cli_parse_run_flag(int c, const char *arg, cli_run_opts *o, const char **flag)
{
    int s = cli_parse_sampling_flag(c, arg, &o->sampling, &o->have_seed, flag);
    if (s != 0)
        return s;
    uint64_t u;
    switch (c) {
    case 'm':
        o->model = arg;
        return 1;
    case CLI_OPT_SYNTH:
        o->synthetic = arg;
        return 1;
    case CLI_OPT_KERNELS:
        o->kernels = arg;
        return 1;
    case 'n':
        *flag = "-n";
        if (cli_parse_u64(arg, UINT32_MAX, &u))
            return -1;
        o->n_predict = (uint32_t)u;
        return 1;
    case 't':
        *flag = "-t";
        if (cli_parse_u64(arg, 256, &u) || u == 0)
            return -1;
        o->threads = (int)u;
        return 1;
    case 'c':
        *flag = "-c";
        if (cli_parse_u64(arg, UINT32_MAX, &u) || u == 0)
            return -1;
        o->n_ctx = (uint32_t)u;
        return 1;
    default:
        return 0;
    }
}

int cli_run_seed(const char *cmd, cli_run_opts *o)
{
    if (o->have_seed)
        return EXIT_OK;
    if (getrandom(&o->sampling.seed, sizeof o->sampling.seed, 0) != sizeof o->sampling.seed) {
        cli_error(cmd, "cannot draw a random seed: %s", strerror(errno));
        return EXIT_FAIL;
    }
    o->sampling.seed >>= 1; /* 63 bits: JSON readers take it as a signed integer */
    fprintf(stderr, "seed: %llu\n", (unsigned long long)o->sampling.seed);
    return EXIT_OK;
}

char *cli_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = f ? malloc(max + 1) : NULL;
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    if (!f || !buf || ferror(f) || n > max) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 !f ? strerror(errno) : (n > max ? "too large" : "read error"));
        free(buf);
        if (f)
            fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}
