/* appliance bench, shared between its three parts (internal to appliance/):
 * the engine benchmark (cmd_bench.c), the audit log benchmark
 * (cmd_bench_audit.c) and the sandbox overhead benchmark
 * (cmd_bench_sandbox.c). Every timing is CLOCK_MONOTONIC wall time; every
 * repeated figure is reported as median, min and max. */
#ifndef APPLIANCE_BENCH_H
#define APPLIANCE_BENCH_H

#include <jansson.h>
#include <stdint.h>

#include "cli.h"

/* -r at most: the per-repetition figures live in arrays of this size. */
#define BENCH_MAX_REPS 1000

/* Which sandbox modes --sandbox asked for (bits). */
enum { BENCH_SANDBOX_ON = 1, BENCH_SANDBOX_OFF = 2 };

/* The fixed prompt of the audit and sandbox benchmarks: both measure the
 * same request. Short, so that it fits the tiny test model's context; the
 * synthetic TinyLlama Q4_0 answers it greedily with 128 tokens and more
 * (other prompts meet its end-of-sequence token sooner). */
#define BENCH_PROMPT "The quick brown fox"

typedef struct bench_opts {
    const char *model, *synthetic, *kernels;
    const char *db; /* --audit: measure on this file's folder */
    uint32_t n_prompt, n_gen, reps;
    int threads, json;
    int audit;   /* --audit */
    int sandbox; /* --sandbox: BENCH_SANDBOX_* bits, 0 when not asked */
    int n_prompt_given;
} bench_opts;

typedef struct bench_stats {
    double median, min, max;
} bench_stats;

/* Seconds on CLOCK_MONOTONIC. */
double bench_now_s(void);
/* Sorts v[0, n) and returns its median, min and max (zeros when n is 0). */
bench_stats bench_summarize(double *v, uint32_t n);
/* {"median": m, "min": a, "max": b}; NULL on out of memory. */
json_t *bench_stats_json(const bench_stats *s);
/* Prints j compactly on one line to stdout and releases it; 0, or -1 when
 * it cannot be written. */
int bench_print_json(json_t *j);

/* appliance bench --audit: durable appends per second (single writer,
 * several processes, group commit, batches), the file system's raw fsync
 * rate, and the audit share of full generate requests on a scratch home.
 * Prints its report; returns an exit code. */
int bench_audit(const app_ctx *ctx, const bench_opts *o);

/* appliance bench --sandbox: the same greedy generation through the
 * sandboxed worker and in-process, alternated; prints medians, spread and
 * the overhead. Returns an exit code. */
int bench_sandbox(const bench_opts *o);

#endif
