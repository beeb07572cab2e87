#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pwd.h>
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
