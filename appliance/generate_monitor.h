/* The monitor's side of one generation (internal to appliance/): policy
 * limits, the sealed model copy, the sandboxed worker, the monitor's own
 * filter and the write-ahead audit entries, in that order. */
#ifndef APPLIANCE_GENERATE_MONITOR_H
#define APPLIANCE_GENERATE_MONITOR_H

#include "attest.h"
#include "audit.h"
#include "cli.h"
#include "home.h"
#include "policy.h"
#include "worker.h"

typedef struct gen_request {
    const char *model_path; /* or NULL with synthetic */
    const char *synthetic;
    const char *prompt;
    const char *kernels;
    uint32_t max_tokens, n_ctx;
    int threads;
    engine_sampler_params sampling;
    int reply_timeout_ms;
    int test_violation;      /* 0, or a `violation` (test builds only) */
    const char *attest_path; /* write the attestation envelope here too, or NULL */
    /* Replay: no home, no audit, and the sealed bytes must have this SHA-256
     * (hex), which the caller took from a verified OMS bundle. */
    int replay;
    const char *expect_sha256;
} gen_request;

/* Wall time of each audit step of one request, as the monitor saw it (for
 * appliance bench --audit); 0 for a step that did not run. Closing the log
 * (SQLite folds its WAL into the database) happens after the outcome is
 * final: the benchmark times that itself. */
typedef struct gen_audit_times {
    double open_ms;        /* the home, its policy, reviewer key and audit log opened */
    double limits_ms;      /* the policy limits checked (the actor's recent prompts counted) */
    double prompt_ms;      /* prompt entry sealed and durably appended */
    double output_ms;      /* output entry sealed and durably appended */
    double attestation_ms; /* statement built, signed with the device key, appended */
    double checkpoint_ms;  /* whether a checkpoint is due, and signing one when it is */
} gen_audit_times;

typedef struct gen_outcome {
    worker_result result;
    char request_id[33];
    char model_sha256[65];
    char policy_digest[POLICY_DIGEST_HEX];
    int audited;
    uint64_t prompt_seq, output_seq, attestation_seq;
    char salt_hex[65];        /* the prompt commitment's salt, also in the prompt entry */
    sandbox_facts observed;   /* the worker, as /proc shows it */
    int monitor_seccomp_mode; /* this process after its own filter, from /proc */
    char kernels[32];
    double load_ms;
    gen_audit_times audit_times;
} gen_outcome;

typedef int (*gen_text_fn)(void *user, const char *text, size_t len);

/* Runs one generation as the monitor. Prints nothing itself but the one
 * error line (as `appliance generate: ...`) on failure; returns EXIT_OK or
 * EXIT_FAIL. */
int generate_as_monitor(const app_ctx *ctx, const gen_request *req, gen_text_fn on_text, void *user,
                        gen_outcome *out);
void gen_outcome_free(gen_outcome *out);

#endif
