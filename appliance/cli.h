/* Shared pieces of the appliance command line (internal to appliance/). */
#ifndef APPLIANCE_CLI_H
#define APPLIANCE_CLI_H

#include "engine.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes: 0 success, 1 the operation failed, 2 the command line was wrong. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* What main() learned before the subcommand: passed to every command. */
typedef struct app_ctx {
    const char *home_flag; /* --home given before the command, or NULL */
} app_ctx;

typedef struct command {
    const char *name;
    const char *summary;
    int (*run)(const app_ctx *ctx, int argc, char **argv);
} command;

/* The command table, in the order `appliance --help` lists it. */
const command *commands_table(size_t *count);

/* Prints "appliance CMD: message" on one line to stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the one-line error, then "usage: ..." and a hint; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reports the getopt_long result for an unknown option or missing argument. */
int cli_bad_option(const char *cmd, const char *usage, int argc, char **argv);

/* A decimal whole number in [0, max] (no sign, no trailing text): 0 and
 * *out set, or -1. */
int cli_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* A finite decimal real: 0 and *out set, or -1. */
int cli_parse_float(const char *s, float *out);

/* The sampling flags that generate and chat share, as getopt_long option
 * ids; a command numbers its own long options from CLI_OPT_SAMPLING_END. */
enum {
    CLI_OPT_TEMP = 256,
    CLI_OPT_TOPK,
    CLI_OPT_TOPP,
    CLI_OPT_MINP,
    CLI_OPT_REPEAT,
    CLI_OPT_SEED,
    CLI_OPT_GREEDY,
    CLI_OPT_SAMPLING_END,
};
/* Their entries for a getopt_long table. */
/* clang-format off */
#define CLI_SAMPLING_OPTIONS                                      \
    {"temp", required_argument, NULL, CLI_OPT_TEMP},              \
    {"top-k", required_argument, NULL, CLI_OPT_TOPK},             \
    {"top-p", required_argument, NULL, CLI_OPT_TOPP},             \
    {"min-p", required_argument, NULL, CLI_OPT_MINP},             \
    {"repeat-penalty", required_argument, NULL, CLI_OPT_REPEAT},  \
    {"seed", required_argument, NULL, CLI_OPT_SEED},              \
    {"greedy", no_argument, NULL, CLI_OPT_GREEDY}
/* clang-format on */

/* Applies sampling flag c with value arg to p (and *have_seed for --seed):
 * 1 when c was one and its value is good; 0 when c is another flag; -1 for a
 * bad value, with *flag set to the flag's name ("--temp") for the error. */
int cli_parse_sampling_flag(int c, const char *arg, engine_sampler_params *p, int *have_seed,
                            const char **flag);

/* The flags of the commands that run a model (generate, chat): -m MODEL or
 * --synthetic SPEC, -n, -t, -c, --kernels and the sampling flags. A command
 * numbers its own long options from CLI_OPT_RUN_END. */
typedef struct cli_run_opts {
    const char *model, *synthetic, *kernels;
    uint32_t n_predict, n_ctx;
    int threads, have_seed;
    engine_sampler_params sampling;
} cli_run_opts;

enum {
    CLI_OPT_SYNTH = CLI_OPT_SAMPLING_END,
    CLI_OPT_KERNELS,
    CLI_OPT_RUN_END,
};
/* clang-format off */
#define CLI_RUN_OPTIONS                                         \
    {"model", required_argument, NULL, 'm'},                    \
    {"n-predict", required_argument, NULL, 'n'},                \
    {"threads", required_argument, NULL, 't'},                  \
    {"ctx-size", required_argument, NULL, 'c'},                 \
    CLI_SAMPLING_OPTIONS,                                       \
    {"synthetic", required_argument, NULL, CLI_OPT_SYNTH},      \
    {"kernels", required_argument, NULL, CLI_OPT_KERNELS}
/* clang-format on */
#define CLI_RUN_SHORT "m:n:t:c:" /* the short ones, for getopt_long's optstring */

/* Defaults: 256 new tokens, the sampler's defaults, one thread per online
 * CPU (at most 256), no model. */
void cli_run_defaults(cli_run_opts *o);

/* Applies run flag c with value arg to o, as cli_parse_sampling_flag: 1 when
 * taken, 0 for another flag, -1 for a bad value with *flag named. */
int cli_parse_run_flag(int c, const char *arg, cli_run_opts *o, const char **flag);

/* Without --seed, draws a random seed (63 bits: JSON readers take it as a
 * signed integer) and prints it on stderr, as a replay needs it. EXIT_OK, or
 * EXIT_FAIL with one line naming cmd. */
int cli_run_seed(const char *cmd, cli_run_opts *o);

/* Reads a whole file of at most max bytes into malloc'd memory (with a
 * NUL after it); NULL with one sentence in err. */
char *cli_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);

/* Who is acting, as the audit log records it: "local:USERNAME" for a
 * person at this machine. */
void cli_actor(char *buf, size_t cap);

/* Resolves the appliance home: flag, else $APPLIANCE_HOME, else ~/.appliance.
 * Writes into buf; returns 0, or -1 when no home can be determined. */
int cli_resolve_home(const app_ctx *ctx, const char *flag, char *buf, size_t cap);

#endif
