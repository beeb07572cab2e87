/* The monitor's side of one generation (internal to appliance/): policy
 * limits, the sealed model copy, the sandboxed worker, the monitor's own
 * filter and the write-ahead audit entries, in that order. */
#ifndef APPLIANCE_GENERATE_MONITOR_H
#define APPLIANCE_GENERATE_MONITOR_H

#include <jansson.h>

#include "attest.h"
#include "audit.h"
#include "cli.h"
#include "home.h"
#include "policy.h"
#include "worker.h"

/* A chat turn: the worker renders these messages with the template
 * instead of taking a plain prompt (appliance chat, attest replay of one). */
typedef struct gen_chat {
    const char *template_name; /* as worker_chat_setup chose it */
    const struct chat_message *messages;
    size_t n_messages;
    const char *conversation_id;  /* 32 hex digits, in every entry of the conversation */
    uint32_t turn;                /* 1, 2, ... since the conversation began */
    size_t user_bytes;            /* the new user message: limits.max_prompt_bytes */
    int cancel_fd;                /* readable = stop the answer (a SIGINT signalfd), or -1 */
    int fresh_cache;              /* the worker forgets its KV cache first (/reset) */
    uint32_t test_token_delay_ms; /* test builds only: a slow worker */
} gen_chat;

typedef struct gen_request {
    const char *model_path; /* or NULL with synthetic */
    const char *synthetic;
    const char *prompt; /* for a chat turn: the committed conversation (chat_transcript.h) */
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
    const gen_chat *chat; /* a chat turn, or NULL */
} gen_request;

/* A request carrying the run flags of generate or chat (model or synthetic
 * spec, kernels, -n, -c, -t, sampling); the caller sets the rest. */
gen_request gen_request_for_run(const cli_run_opts *o);

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

/* A session of several requests on one verified model and one worker
 * (appliance chat). generate_as_monitor is open + run + close.
 *
 * gen_session_open: the policy and audit log, the limits of req when it
 * has a prompt, the sealed model copy, the worker and the monitor's own
 * filter. gen_session_run: one request, audited as generate's (limits,
 * write-ahead prompt entry, output, attestation, periodic checkpoint); a
 * worker lost in an earlier request is replaced first. gen_session_close:
 * stops the worker and, when checkpoint and there is a log, signs one
 * closing checkpoint (the device key is loaded only for it). Errors are
 * printed once; the functions return EXIT_OK or EXIT_FAIL. */
typedef struct session gen_session;
int gen_session_open(const app_ctx *ctx, const gen_request *req, gen_session **s);
int gen_session_run(gen_session *s, const gen_request *req, gen_text_fn on_text, void *user,
                    gen_outcome *out);
void gen_session_close(gen_session *s, int checkpoint);
/* The current worker (its model info and sandbox facts); pid <= 0 when lost. */
worker *gen_session_worker(gen_session *s);
/* Appends an event entry (body consumed) under request_id when there is a
 * log; EXIT_FAIL after printing why when the log refused it. */
int gen_session_audit(gen_session *s, audit_kind kind, const char *request_id, json_t *body);
/* 1 when requests are audited (there is an appliance home). */
int gen_session_has_log(const gen_session *s);

#endif
