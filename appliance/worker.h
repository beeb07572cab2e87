/* The sandboxed engine worker and the monitor's handle on it (internal to
 * appliance/).
 *
 * The monitor forks the worker, hands it the sealed model descriptor and
 * talks to it over one SOCK_SEQPACKET socket (ipc.h). The worker's start-up
 * order is DESIGN.md's: map the model (no parsing), isolate (rlimits,
 * descriptors, network namespace, Landlock), create the thread pool, seccomp
 * with TSYNC, and only then parse the GGUF. Every message from the worker is
 * validated as hostile: sizes, token ids, UTF-8, enum values. */
#ifndef APPLIANCE_WORKER_H
#define APPLIANCE_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine.h"
#include "policy.h"

/* Message types. */
enum {
    MSG_INIT = 1,     /* monitor -> worker, carries the model descriptor */
    MSG_READY = 2,    /* worker -> monitor: sandbox facts and model info */
    MSG_GENERATE = 3, /* monitor -> worker: prompt and parameters */
    MSG_TEXT = 4,     /* worker -> monitor: a piece of output text */
    MSG_DONE = 5,     /* worker -> monitor: the generation's record */
    MSG_ERROR = 6,    /* worker -> monitor: why a request failed */
    MSG_SHUTDOWN = 7, /* monitor -> worker */
    MSG_VIOLATE = 8,  /* monitor -> worker, test builds only: attempt a forbidden act */
    /* worker -> monitor at start-up: its sandbox cannot be installed and the
     * policy requires it (payload: why); nothing was parsed. */
    MSG_NO_SANDBOX = 9,
    /* worker -> monitor, instead of an answer: the prompt and max_tokens do
     * not fit the context policy limits.context allows (payload: why). */
    MSG_OVER_CONTEXT = 10,
    /* model add (provenance.h): */
    MSG_PROVENANCE_REQUEST = 16, /* monitor -> worker: the model's GGUF provenance, please */
    MSG_PROVENANCE = 17,         /* worker -> monitor: provenance.h's payload */
    /* appliance chat: */
    MSG_CHAT = 32,       /* monitor -> worker: a conversation to answer; replies as MSG_GENERATE */
    MSG_CANCEL = 33,     /* monitor -> worker: stop the answer in progress (empty payload) */
    MSG_CHAT_SETUP = 34, /* monitor -> worker: template wanted ("" = detect); worker -> monitor:
                            the template chosen and why */
};

/* Forbidden acts a test build can ask the worker to attempt (each must end
 * it with SIGSYS). */
typedef enum {
    VIOLATE_SOCKET_INET = 1,
    VIOLATE_CONNECT,
    VIOLATE_OPEN_AUDIT_DB,
    VIOLATE_EXECVE,
    VIOLATE_READ_DEVICE_KEY,
    VIOLATE_CRASH, /* a plain segmentation fault */
    VIOLATE_HANG,  /* stops answering */
} violation;

typedef struct worker_opts {
    int n_threads;
    uint32_t n_ctx;       /* 0: the model's, at most ctx_cap */
    uint32_t ctx_cap;     /* the policy's context limit */
    const char *kernels;  /* NULL: best for this CPU */
    int sandbox_required; /* refuse to run when seccomp cannot be installed */
    int reply_timeout_ms; /* a silent worker is killed after this long */
} worker_opts;

typedef struct worker_model_info {
    char arch[32];
    char name[128];
    char kernels[32];
    uint32_t n_vocab, n_ctx;
} worker_model_info;

typedef struct worker {
    pid_t pid;
    int sock;
    worker_opts opts;
    sandbox_facts facts;    /* as the worker reported them */
    sandbox_facts observed; /* as /proc/PID/status shows them to the monitor */
    worker_model_info model;
} worker;

/* One generation request. */
typedef struct worker_request {
    const char *prompt;
    size_t prompt_len;
    engine_sampler_params sampling;
    uint32_t max_tokens;
    const char *const *stop;
    size_t n_stop;
} worker_request;

/* What came back, validated. */
typedef struct worker_result {
    int32_t *prompt_tokens;
    size_t n_prompt;
    int32_t *tokens;
    size_t n_tokens;
    char *text;
    size_t text_len;
    engine_finish finish;
    double prompt_ms, decode_ms;
    uint32_t n_decode_evals;
} worker_result;

/* Why a worker call failed: distinguishes a sandbox kill from other ends. */
typedef enum {
    WORKER_OK = 0,
    WORKER_REQUEST_FAILED, /* the worker said no (bad prompt, context full...) */
    WORKER_SANDBOX_VIOLATION,
    WORKER_CRASHED,
    WORKER_TIMED_OUT,
    WORKER_PROTOCOL_ERROR, /* it sent something malformed; it was killed */
    /* its sandbox could not be installed and policy sandbox.required holds */
    WORKER_SANDBOX_UNAVAILABLE,
    /* the request does not fit the context policy limits.context allows */
    WORKER_OVER_CONTEXT,
} worker_status;

typedef int (*worker_text_fn)(void *user, const char *text, size_t len);

/* Forks the worker, hands it model_fd (a sealed memfd or a read-only file)
 * and waits until it reports ready. */
worker_status worker_start(worker *w, int model_fd, const worker_opts *o, char *err, size_t errlen);
/* Runs one generation, streaming text to on_text. On any status but
 * WORKER_OK and WORKER_REQUEST_FAILED the worker is gone (reaped). */
worker_status worker_generate(worker *w, const worker_request *req, worker_text_fn on_text,
                              void *user, worker_result *out, char *err, size_t errlen);
void worker_result_free(worker_result *r);
/* Asks the worker to stop, then reaps it (killing it if it does not). */
void worker_stop(worker *w);
/* Test builds only: asks the worker to attempt a forbidden act, then
 * reports how it ended. */
worker_status worker_provoke(worker *w, violation v, const char *path, char *err, size_t errlen);

/* ---- chat (worker_monitor.c; the worker's side in worker.c) ---- */

/* One turn: the conversation so far (messages alternate user and assistant
 * after an optional system message, ending with the user's new one), the
 * template to render it with, and the generation parameters (req.prompt is
 * unused). */
typedef struct worker_chat_request {
    const char *template_name;
    const struct chat_message *messages;
    size_t n_messages;
    worker_request gen;
    int reset_cache;              /* forget the KV cache first (a new conversation) */
    uint32_t test_token_delay_ms; /* test builds only: the worker waits this long per token */
} worker_chat_request;

/* Asks the worker which template it renders with: `wanted` (NULL or "" to
 * detect it from the model). Fills name (a known template name) and source
 * (why, for the user). WORKER_REQUEST_FAILED when the model cannot use the
 * wanted template. */
worker_status worker_chat_setup(worker *w, const char *wanted, char name[16], char source[32],
                                char *err, size_t errlen);
/* Runs one turn, streaming text to on_text. While it runs, whenever
 * cancel_fd (>= 0, e.g. a signalfd for SIGINT) becomes readable, it is
 * drained and the worker is told to stop (MSG_CANCEL): the turn then ends
 * with ENGINE_FINISH_CANCELLED and the tokens so far. Statuses as
 * worker_generate. */
worker_status worker_chat(worker *w, const worker_chat_request *req, worker_text_fn on_text,
                          void *user, int cancel_fd, worker_result *out, char *err, size_t errlen);

/* Asks the worker for the model's GGUF provenance (provenance.h) and
 * checks the answer as hostile; on any status but WORKER_OK and
 * WORKER_REQUEST_FAILED the worker is gone (reaped). */
struct model_provenance;
worker_status worker_provenance(worker *w, struct model_provenance *out, char *err, size_t errlen);

/* The monitor's decoders of worker messages, exposed so that tests and the
 * IPC fuzz target drive exactly the code the monitor runs. Each returns 0,
 * or -1 when the payload is malformed. */
int worker_decode_ready(worker *w, const uint8_t *payload, size_t len);
int worker_decode_done(const worker *w, const worker_request *q, const uint8_t *payload, size_t len,
                       worker_result *out);
/* A MSG_ERROR payload as a one-line error text. */
void worker_error_text(const uint8_t *payload, size_t len, char *err, size_t errlen);

#ifdef APPLIANCE_TEST_HOOKS
/* Test builds only: 1 when $APPLIANCE_TEST_SANDBOX_UNAVAILABLE names `which`
 * ("worker" or "monitor"): that process then acts as on a kernel that cannot
 * install its seccomp filter, so policy sandbox.required can be tested. */
int worker_test_sandbox_unavailable(const char *which);
#endif

/* 1 when len bytes are well-formed UTF-8. */
int utf8_valid(const char *s, size_t len);
/* The offset of the first byte that does not start a well-formed UTF-8
 * sequence (overlong, surrogate, past U+10FFFF, cut short), or len. */
size_t utf8_invalid_at(const char *s, size_t len);

#endif
