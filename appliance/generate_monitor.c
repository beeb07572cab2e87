/* One generation as the monitor sees it. The order matters and reads top to
 * bottom in generate_as_monitor(): every refusal happens before the engine
 * sees the prompt, and the prompt is durably audited before it does. */
#include "generate_monitor.h"
#include "admin.h"
#include "build_info.h"
#include "image.h"
#include "model_map.h"
#include "models.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The command that speaks: generate, chat, or attest replay rerunning one. */
#define CMD (s->req->replay ? "attest replay" : s->req->chat ? "chat" : "generate")

#ifdef APPLIANCE_SANITIZE
void __lsan_do_leak_check(void);
#endif

typedef struct session session;

struct session {
    const gen_request *req; /* the request in progress (or the one that opened the session) */
    gen_outcome *out;       /* its outcome */
    gen_outcome base;       /* what the session's requests share: model, policy, worker */
    int opener_checked;     /* the request that opened the session passed check_limits */
    int monitor_locked;
    admin a; /* home, policy, audit log (NULL without a home) and actor */
    audit_store_mode mode;
    uint8_t reviewer_pk[32];
    int model_fd;
    worker w;
    char root_digest[65];
    char signer[OMS_SIGNER_MAX];
    char model_name[128];
    uint8_t salt[ATTEST_SALT_LEN];
    uint8_t prompt_hash[AUDIT_HASH_LEN], output_hash[AUDIT_HASH_LEN];
    struct timespec started, finished;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void hex32(const uint8_t *b, char out[65])
{
    sodium_bin2hex(out, 65, b, 32);
}

/* Appends an event entry (refusal, error, sandbox_violation, model_load) when
 * there is a log; returns 0, or -1 when the write failed. */
static int audit_event(session *s, audit_kind kind, json_t *body)
{
    char err[256];
    int rc = 0;
    if (s->a.log && body) {
        char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
        if (!text || audit_append(s->a.log, kind, s->out->request_id, s->a.actor, text,
                                  strlen(text), NULL, NULL, err, sizeof err) != AUDIT_OK) {
            cli_error(CMD, "the audit log refused an entry: %s", text ? err : "out of memory");
            rc = -1;
        }
        free(text);
    }
    json_decref(body);
    return rc;
}

/* A refusal: said once on stderr, audited with the rule it cites. */
static int refuse(session *s, const char *rule, const char *why)
{
    cli_error(CMD, "refused by policy %s: %s", rule, why);
    audit_event(s, AUDIT_KIND_REFUSAL, json_pack("{s:s, s:s}", "rule", rule, "reason", why));
    return EXIT_FAIL;
}

static int fail_event(session *s, audit_kind kind, const char *what)
{
    cli_error(CMD, "%s", what);
    audit_event(s, kind, json_pack("{s:s}", "error", what));
    return EXIT_FAIL;
}

/* The home's policy and audit log, or the default policy and no log when
 * there is no appliance home yet (said once on stderr). */
static int open_session(const app_ctx *ctx, session *s)
{
    char dir[HOME_PATH_CAP], err[768], path[HOME_PATH_CAP * 2];
    home h;
    cli_actor(s->a.actor, sizeof s->a.actor);
    if (s->req->replay || cli_resolve_home(ctx, NULL, dir, sizeof dir) != 0 ||
        home_layout(dir, &h, err, sizeof err) != 0 || !home_is_initialised(&h)) {
        policy_defaults(&s->a.pol);             /* said in the summary: not audited */
        char *text = policy_to_json(&s->a.pol); /* the digest of the built-in policy */
        if (!text)
            return -1;
        policy_digest_bytes(text, strlen(text), s->out->policy_digest);
        free(text);
        return 0;
    }
    double t0 = now_ms();
    if (admin_open(ctx, NULL, CMD, &s->a) != 0)
        return -1;
    s->out->audit_times.open_ms = now_ms() - t0;
    memcpy(s->out->policy_digest, s->a.digest, sizeof s->a.digest);
    if (audit_store_mode_from_name(audit_content_mode_name(s->a.pol.audit_content), &s->mode) !=
        AUDIT_OK) {
        cli_error(CMD, "unknown audit content mode");
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s", s->a.h.dir, s->a.pol.reviewer_key);
    if (s->mode == AUDIT_STORE_SEALED &&
        keys_load_x25519_public(path, s->reviewer_pk, err, sizeof err) != 0) {
        cli_error(CMD, "sealed audit content needs the reviewer key: %s", err);
        return -1;
    }
    return 0;
}

static int count_entry(const audit_entry *e, void *ctx)
{
    (void)e;
    (*(uint64_t *)ctx)++;
    return 0;
}

/* Requests this actor made in the last minute, from the audit log itself,
 * so the limit holds across one-shot processes. -1 when it cannot tell. */
static int64_t recent_requests(session *s)
{
    struct timespec now;
    char since[ATTEST_TIME_LEN], err[256];
    uint64_t n = 0;
    clock_gettime(CLOCK_REALTIME, &now);
    now.tv_sec -= 60;
    audit_filter f = {.since = since, .kind = "prompt", .actor = s->a.actor};
    double t0 = now_ms();
    int ok = attest_format_time(&now, since) == 0 &&
             audit_query(s->a.log, &f, count_entry, &n, err, sizeof err) == AUDIT_OK;
    s->out->audit_times.limits_ms = now_ms() - t0;
    return ok ? (int64_t)n : -1;
}

static int check_limits(session *s)
{
    char why[256];
    if (s->a.log) {
        int64_t recent = recent_requests(s);
        if (recent < 0 || recent >= s->a.pol.requests_per_minute) {
            snprintf(why, sizeof why,
                     "%s has made %lld requests in the last minute, the limit is %lld", s->a.actor,
                     (long long)recent, (long long)s->a.pol.requests_per_minute);
            return refuse(s, "limits.requests_per_minute", why);
        }
    }
    /* A chat turn is limited by what the user typed now, not the history. */
    size_t len = s->req->chat ? s->req->chat->user_bytes : strlen(s->req->prompt);
    if ((int64_t)len > s->a.pol.max_prompt_bytes) {
        snprintf(why, sizeof why, "the %s has %zu bytes, the limit is %lld",
                 s->req->chat ? "message" : "prompt", len, (long long)s->a.pol.max_prompt_bytes);
        return refuse(s, "limits.max_prompt_bytes", why);
    }
    size_t plen = strlen(s->req->prompt), bad = utf8_invalid_at(s->req->prompt, plen);
    if (bad != plen) { /* not a policy rule: the input itself is malformed */
        snprintf(why, sizeof why, "%s: invalid UTF-8 at byte %zu",
                 s->req->chat ? "chat transcript" : "prompt", bad);
        cli_error(CMD, "%s", why);
        audit_event(s, AUDIT_KIND_REFUSAL, json_pack("{s:s}", "reason", why));
        return EXIT_FAIL;
    }
    if ((int64_t)s->req->max_tokens > s->a.pol.max_new_tokens) {
        snprintf(why, sizeof why, "%u new tokens asked, the limit is %lld", s->req->max_tokens,
                 (long long)s->a.pol.max_new_tokens);
        return refuse(s, "limits.max_new_tokens", why);
    }
    if ((int64_t)s->req->n_ctx > s->a.pol.context) {
        snprintf(why, sizeof why, "a context of %u tokens asked, the limit is %lld", s->req->n_ctx,
                 (long long)s->a.pol.context);
        return refuse(s, "limits.context", why);
    }
    return EXIT_OK;
}

/* With a home, only installed models run: -m names one (by_name: r holds
 * its record already), or is a path whose bytes are an installed model's. The bundle's signature is
 * checked again against the policy's current trust, and the signed digest against the bytes that
 * were just copied and sealed: what was checked is what runs. */
static int resolve_installed(session *s, int by_name, const char *loaded_sha, model_record *r)
{
    char err[768], signed_sha[65], why[900];
    const char *m = s->req->model_path;
    if (!by_name && model_lookup_digest(&s->a.h, loaded_sha, r) != 0) {
        snprintf(why, sizeof why,
                 "%s is not an installed model (appliance model add MODEL "
                 "--bundle BUNDLE)",
                 m);
        return refuse(s, "trust (installed, signed models only)", why);
    }
    int rc = model_recheck(&s->a.h, &s->a.pol, r, signed_sha, s->signer, sizeof s->signer, err,
                           sizeof err);
    if (rc != 0)
        return refuse(s, rc == MODEL_NOT_PINNED ? "trust.pinned_models" : "trust", err);
    if (sodium_memcmp(signed_sha, loaded_sha, 64) != 0) {
        snprintf(why, sizeof why, "model %s changed since it was signed: sha256 %s, signed %s",
                 r->name, loaded_sha, signed_sha);
        return refuse(s, "trust", why);
    }
    snprintf(s->root_digest, sizeof s->root_digest, "%s", r->root_digest);
    snprintf(s->model_name, sizeof s->model_name, "%s", r->name);
    return EXIT_OK;
}

/* Progress of the copy-while-hashing of a large model, on a terminal only:
 * bytes, rate and time left, redrawn in place. */
typedef struct copy_progress {
    double t0, last;
} copy_progress;

static void show_progress(void *user, uint64_t done, uint64_t total)
{
    copy_progress *p = user;
    double now = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    if (p->t0 == 0)
        p->t0 = now;
    if (done < total && now - p->last < 0.1)
        return;
    p->last = now;
    double mb = (double)done / 1e6, rate = mb / (now - p->t0 > 1e-3 ? now - p->t0 : 1e-3);
    fprintf(stderr, "\rverifying model: %.0f / %.0f MB, %.0f MB/s, %.0f s left   ", mb,
            (double)total / 1e6, rate, rate > 0 ? ((double)total / 1e6 - mb) / rate : 0);
    if (done == total)
        fputc('\n', stderr);
}

/* A progress bar for models over 100 MB when stderr is a terminal. */
static image_progress_fn progress_for(const char *path)
{
    struct stat st;
    return isatty(STDERR_FILENO) && stat(path, &st) == 0 && st.st_size > 100 * 1000 * 1000
               ? show_progress
               : NULL;
}

/* The model, copied into a sealed memfd while hashed: what is recorded is
 * what the worker maps. */
static int load_model(session *s)
{
    char err[512];
    uint8_t sha[32];
    model_record r;
    const char *path = s->req->model_path;
    int named = path && s->a.log && strchr(path, '/') == NULL &&
                model_lookup(&s->a.h, path, &r, err, sizeof err) == 0;
    if (named)
        path = r.path;
    copy_progress prog = {0, 0};
    s->model_fd = path ? image_sealed_copy(path, sha, progress_for(path), &prog, err, sizeof err)
                       : model_synthetic_sealed(s->req->synthetic, sha, err, sizeof err);
    if (s->model_fd < 0)
        return fail_event(s, AUDIT_KIND_ERROR, err);
    hex32(sha, s->out->model_sha256);
    if (!s->req->model_path) {
        snprintf(s->signer, sizeof s->signer, "synthetic test model (random weights, made here)");
        snprintf(s->root_digest, sizeof s->root_digest, "%s", s->out->model_sha256);
        snprintf(s->model_name, sizeof s->model_name, "%s", s->req->synthetic);
        return EXIT_OK;
    }
    if (s->req->expect_sha256 && sodium_memcmp(s->req->expect_sha256, s->out->model_sha256, 64)) {
        snprintf(err, sizeof err, "model %s does not match its bundle: sha256 %s, signed %.64s",
                 path, s->out->model_sha256, s->req->expect_sha256);
        return fail_event(s, AUDIT_KIND_ERROR, err);
    }
    if (!s->a.log) { /* no home: a developer's run, said so in every record */
        const char *base = strrchr(path, '/');
        snprintf(s->signer, sizeof s->signer, "unverified (no appliance home)");
        snprintf(s->root_digest, sizeof s->root_digest, "%s", s->out->model_sha256);
        snprintf(s->model_name, sizeof s->model_name, "%s", base ? base + 1 : path);
        return EXIT_OK;
    }
    return resolve_installed(s, named, s->out->model_sha256, &r);
}

static json_t *facts_json(const sandbox_facts *f)
{
    return json_pack("{s:i, s:b, s:b, s:b, s:i, s:b, s:s}", "seccomp_mode", f->seccomp_mode,
                     "no_new_privs", f->no_new_privs, "network_namespace", f->net_namespace,
                     "user_namespace", f->user_namespace, "landlock_abi", f->landlock_abi,
                     "landlock", f->landlock_enforced, "notes", f->notes);
}

static audit_kind kind_of(worker_status ws)
{
    return ws == WORKER_SANDBOX_VIOLATION ? AUDIT_KIND_SANDBOX_VIOLATION : AUDIT_KIND_ERROR;
}

/* The monitor's own filter; -1 with err when it cannot be installed (test
 * builds: or when APPLIANCE_TEST_SANDBOX_UNAVAILABLE=monitor says so). */
static int lock_down_monitor(char *err, size_t errlen)
{
#ifdef APPLIANCE_TEST_HOOKS
    if (worker_test_sandbox_unavailable("monitor")) {
        snprintf(err, errlen,
                 "seccomp is unavailable (simulated by APPLIANCE_TEST_SANDBOX_UNAVAILABLE)");
        return -1;
    }
#endif
    return sandbox_monitor_lockdown(err, errlen);
}

static int start_worker(session *s)
{
    char err[512];
    worker_opts o = {.n_threads = s->req->threads,
                     .n_ctx = s->req->n_ctx,
                     .ctx_cap = (uint32_t)s->a.pol.context,
                     .kernels = s->req->kernels,
                     .sandbox_required = s->a.pol.sandbox_required,
                     .reply_timeout_ms = s->req->reply_timeout_ms};
    double t0 = now_ms();
    worker_status ws = worker_start(&s->w, s->model_fd, &o, err, sizeof err);
    s->out->load_ms = now_ms() - t0;
    if (ws == WORKER_SANDBOX_UNAVAILABLE)
        return refuse(s, "sandbox.required", err);
    if (ws != WORKER_OK)
        return fail_event(s, kind_of(ws), err);
    s->out->observed = s->w.observed;
    snprintf(s->out->kernels, sizeof s->out->kernels, "%s", s->w.model.kernels);
    if (s->monitor_locked) /* a replacement worker: the monitor is locked already */
        return EXIT_OK;
    s->monitor_locked = 1;
    /* From here the monitor itself can reach no network and exec nothing. */
#ifdef APPLIANCE_SANITIZE
    /* LeakSanitizer's exit-time check needs ptrace, which the filter denies:
     * check now instead, in sanitizer builds only (the filter stays the same). */
    __lsan_do_leak_check();
#endif
    if (lock_down_monitor(err, sizeof err) != 0 && s->a.pol.sandbox_required) {
        char why[700];
        snprintf(why, sizeof why, "the monitor's seccomp filter cannot be installed: %s", err);
        return refuse(s, "sandbox.required", why);
    }
    sandbox_facts mine = {0};
    sandbox_read_status(0, &mine);
    s->out->monitor_seccomp_mode = mine.seccomp_mode;
    return EXIT_OK;
}

static json_t *sampling_json(const engine_sampler_params *p)
{
    char t[32], tp[32], mp[32], rp[32], seed[24];
    /* The audit record holds integers only: reals as their shortest text. */
    snprintf(t, sizeof t, "%.9g", (double)p->temperature);
    snprintf(tp, sizeof tp, "%.9g", (double)p->top_p);
    snprintf(mp, sizeof mp, "%.9g", (double)p->min_p);
    snprintf(rp, sizeof rp, "%.9g", (double)p->repeat_penalty);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)p->seed);
    return json_pack("{s:s, s:i, s:s, s:s, s:s, s:i, s:s}", "temperature", t, "top_k", p->top_k,
                     "top_p", tp, "min_p", mp, "repeat_penalty", rp, "repeat_last_n",
                     p->repeat_last_n, "seed", seed);
}

/* A chat turn's place in its conversation, in its prompt entry. */
static json_t *chat_json(const gen_chat *c)
{
    return json_pack("{s:s, s:I, s:s}", "conversation_id", c->conversation_id, "turn",
                     (json_int_t)c->turn, "template", c->template_name);
}

/* Write-ahead: durable before the engine sees the prompt, or no generation. */
static int audit_prompt(session *s)
{
    char err[256];
    if (!s->a.log)
        return EXIT_OK;
    double t0 = now_ms();
    /* The salt of the attestation's prompt commitment lives here, so the
     * officer can later prove the prompt without the attestation leaking it. */
    json_t *meta = json_pack(
        "{s:{s:s, s:s, s:s, s:s}, s:s, s:o, s:i, s:o, s:s, s:s}", "model", "sha256",
        s->out->model_sha256, "root_digest", s->root_digest, "name", s->model_name, "signer",
        s->signer, "policy_digest", s->out->policy_digest, "sampling",
        sampling_json(&s->req->sampling), "max_tokens", s->req->max_tokens, "sandbox",
        facts_json(&s->w.observed), "kernels", s->w.model.kernels, "prompt_salt", s->out->salt_hex);
    if (meta && s->req->chat)
        json_object_set_new(meta, "chat", chat_json(s->req->chat));
    char *text = meta ? json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(meta);
    int rc = text ? audit_append_prompt(s->a.log, s->out->request_id, s->a.actor, s->mode,
                                        s->reviewer_pk, s->req->prompt, strlen(s->req->prompt),
                                        text, &s->out->prompt_seq, s->prompt_hash, err, sizeof err)
                  : AUDIT_E_NOMEM;
    free(text);
    clock_gettime(CLOCK_REALTIME, &s->started);
    s->out->audit_times.prompt_ms = now_ms() - t0;
    if (rc != AUDIT_OK) {
        cli_error(CMD, "refused: the prompt could not be audited (%s)", err);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static json_t *ids_json(const int32_t *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static int audit_output(session *s)
{
    char err[256];
    const worker_result *r = &s->out->result;
    if (!s->a.log)
        return EXIT_OK;
    double t0 = now_ms();
    json_t *meta =
        json_pack("{s:i, s:o, s:i, s:s, s:{s:I, s:I}}", "prompt_token_count", (int)r->n_prompt,
                  "tokens", ids_json(r->tokens, r->n_tokens), "token_count", (int)r->n_tokens,
                  "finish_reason", engine_finish_name(r->finish), "timings_us", "prompt",
                  (json_int_t)(r->prompt_ms * 1e3), "decode", (json_int_t)(r->decode_ms * 1e3));
    if (meta && s->req->chat)
        json_object_set_new(meta, "conversation_id", json_string(s->req->chat->conversation_id));
    char *text = meta ? json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(meta);
    int rc = text ? audit_append_output(s->a.log, s->out->request_id, s->a.actor, s->mode,
                                        s->reviewer_pk, r->text, r->text_len, text,
                                        &s->out->output_seq, s->output_hash, err, sizeof err)
                  : AUDIT_E_NOMEM;
    free(text);
    s->out->audit_times.output_ms = now_ms() - t0;
    if (rc != AUDIT_OK) {
        cli_error(CMD, "the output could not be audited (%s)", err);
        return EXIT_FAIL;
    }
    s->out->audited = 1;
    return EXIT_OK;
}

/* The statement of this generation, as the attest module defines it. */
static void describe_generation(session *s, attest_generation *g, char *started, char *finished)
{
    const worker_result *r = &s->out->result;
    memset(g, 0, sizeof *g);
    g->model_digest = s->root_digest;
    g->model_name = s->model_name;
    g->model_signer = s->signer;
    g->salt = s->salt;
    g->prompt = (const uint8_t *)s->req->prompt;
    g->prompt_len = strlen(s->req->prompt);
    g->sampling = (attest_sampling){s->req->sampling.temperature,    s->req->sampling.top_k,
                                    s->req->sampling.top_p,          s->req->sampling.min_p,
                                    s->req->sampling.repeat_penalty, s->req->sampling.repeat_last_n,
                                    s->req->sampling.seed,           s->req->max_tokens};
    g->prompt_tokens = r->n_prompt;
    g->output_tokens = r->n_tokens;
    /* PREDICATE.md's "stop" covers a caller's stop: a user's cancel. */
    g->finish_reason =
        r->finish == ENGINE_FINISH_CANCELLED ? "stop" : engine_finish_name(r->finish);
    g->audit_log_id = audit_log_id(s->a.log);
    g->prompt_entry.seq = s->out->prompt_seq;
    g->output_entry.seq = s->out->output_seq;
    hex32(s->prompt_hash, g->prompt_entry.hash);
    hex32(s->output_hash, g->output_entry.hash);
    g->policy_digest = s->out->policy_digest;
    g->sandbox = s->w.observed;
    g->sandbox_required = s->a.pol.sandbox_required;
    g->engine_version = ENGINE_VERSION;
    g->build_id = APPLIANCE_GIT_COMMIT;
    g->kernels = s->w.model.kernels;
    attest_format_time(&s->started, started);
    attest_format_time(&s->finished, finished);
    g->started = started;
    g->finished = finished;
    g->output = (const uint8_t *)r->text;
    g->output_len = r->text_len;
}

/* Signs the statement with the device key, which is loaded only now, into
 * memory that no forked worker can inherit, and wiped right after. */
static int sign_statement(session *s, const char *payload, size_t len, char **envelope)
{
    char err[512];
    uint8_t *sk = secret_alloc(64, err, sizeof err);
    int rc = -1;
    if (sk && keys_load_ed25519_secret(s->a.h.device_key, sk, err, sizeof err) == 0 &&
        attest_sign_envelope((const uint8_t *)payload, len, sk, envelope, err, sizeof err) ==
            ATTEST_OK)
        rc = 0;
    secret_free(sk, 64);
    if (rc != 0)
        cli_error(CMD, "cannot sign the attestation: %s", err);
    return rc;
}

static int write_attestation_file(const char *path, const char *envelope)
{
    FILE *f = fopen(path, "w");
    int ok = f && fputs(envelope, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        cli_error("generate", "cannot write the attestation to %s: %s", path, strerror(errno));
    return ok ? 0 : -1;
}

/* Every audited generation gets an attestation, appended to the log right
 * after the output entry it names (and written to --attest FILE). */
static int attest(session *s)
{
    attest_generation g;
    char started[ATTEST_TIME_LEN], finished[ATTEST_TIME_LEN], err[512];
    char *payload = NULL, *envelope = NULL;
    size_t len;
    if (!s->a.log)
        return EXIT_OK;
    double t0 = now_ms();
    describe_generation(s, &g, started, finished);
    int rc = EXIT_FAIL;
    if (attest_statement_json(&g, &payload, &len, err, sizeof err) != ATTEST_OK)
        cli_error(CMD, "cannot build the attestation: %s", err);
    else if (sign_statement(s, payload, len, &envelope) == 0) {
        json_t *body = json_pack("{s:s, s:I}", "envelope", envelope, "output_seq",
                                 (json_int_t)s->out->output_seq);
        char *text = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(body);
        if (!text ||
            audit_append(s->a.log, AUDIT_KIND_ATTESTATION, s->out->request_id, s->a.actor, text,
                         strlen(text), &s->out->attestation_seq, NULL, err, sizeof err) != AUDIT_OK)
            cli_error(CMD, "the attestation could not be audited (%s)", text ? err : "no memory");
        else if (!s->req->attest_path || write_attestation_file(s->req->attest_path, envelope) == 0)
            rc = EXIT_OK;
        free(text);
    }
    free(payload);
    free(envelope);
    s->out->audit_times.attestation_ms = now_ms() - t0;
    return rc;
}

/* Every policy audit.checkpoint_interval entries a signed checkpoint goes
 * into the log, so an officer who keeps one detects truncation later. A
 * failure here does not undo the finished request: it is said on stderr. */
static void checkpoint_if_due(session *s)
{
    uint64_t since = 0;
    char err[512], *note = NULL;
    double t0 = now_ms();
    if (s->a.log && audit_entries_since_checkpoint(s->a.log, &since, err, sizeof err) == AUDIT_OK &&
        since >= (uint64_t)s->a.pol.checkpoint_interval &&
        !(note = device_checkpoint(s->a.log, s->a.h.device_key, s->a.actor, err, sizeof err)))
        fprintf(stderr, "appliance: warning: the periodic audit checkpoint failed: %s\n", err);
    free(note);
    s->out->audit_times.checkpoint_ms = now_ms() - t0;
}

static int run_request(session *s, gen_text_fn on_text, void *user)
{
    char err[512];
    worker_status ws;
#ifdef APPLIANCE_TEST_HOOKS
    if (s->req->test_violation) {
        const char *path =
            s->req->test_violation == VIOLATE_READ_DEVICE_KEY ? s->a.h.device_key : s->a.h.audit_db;
        ws = worker_provoke(&s->w, (violation)s->req->test_violation, path, err, sizeof err);
        return fail_event(s, kind_of(ws), err);
    }
#endif
    worker_request wr = {.prompt = s->req->prompt,
                         .prompt_len = strlen(s->req->prompt),
                         .sampling = s->req->sampling,
                         .max_tokens = s->req->max_tokens};
    if (s->req->chat) {
        const gen_chat *c = s->req->chat;
        worker_chat_request cr = {.template_name = c->template_name,
                                  .messages = c->messages,
                                  .n_messages = c->n_messages,
                                  .gen = wr,
                                  .reset_cache = c->fresh_cache,
                                  .test_token_delay_ms = c->test_token_delay_ms};
        ws = worker_chat(&s->w, &cr, on_text, user, c->cancel_fd, &s->out->result, err, sizeof err);
    } else
        ws = worker_generate(&s->w, &wr, on_text, user, &s->out->result, err, sizeof err);
    clock_gettime(CLOCK_REALTIME, &s->finished);
    if (ws == WORKER_OVER_CONTEXT)
        return refuse(s, "limits.context", err);
    if (ws != WORKER_OK)
        return fail_event(s, kind_of(ws), err);
    if (audit_output(s) != EXIT_OK || attest(s) != EXIT_OK)
        return EXIT_FAIL;
    checkpoint_if_due(s);
    return EXIT_OK;
}

static void close_session(session *s)
{
    worker_stop(&s->w);
    if (s->model_fd >= 0)
        close(s->model_fd);
    admin_close(&s->a);
}

/* A fresh request id and prompt salt in s->out. */
static int draw_request_ids(session *s)
{
    uint8_t id[16];
    if (getrandom(id, sizeof id, 0) != sizeof id) {
        cli_error(CMD, "cannot draw a request id: %s", strerror(errno));
        return EXIT_FAIL;
    }
    sodium_bin2hex(s->out->request_id, sizeof s->out->request_id, id, sizeof id);
    if (getrandom(s->salt, sizeof s->salt, 0) != sizeof s->salt) {
        cli_error(CMD, "cannot draw the prompt salt: %s", strerror(errno));
        return EXIT_FAIL;
    }
    sodium_bin2hex(s->out->salt_hex, sizeof s->out->salt_hex, s->salt, sizeof s->salt);
    return EXIT_OK;
}

gen_request gen_request_for_run(const cli_run_opts *o)
{
    return (gen_request){.model_path = o->model,
                         .synthetic = o->synthetic,
                         .kernels = o->kernels,
                         .max_tokens = o->n_predict,
                         .n_ctx = o->n_ctx,
                         .threads = o->threads,
                         .sampling = o->sampling};
}

int gen_session_open(const app_ctx *ctx, const gen_request *req, gen_session **sp)
{
    session *s = calloc(1, sizeof *s);
    *sp = NULL;
    if (!s) {
        cli_error(req->replay ? "attest replay" : req->chat ? "chat" : "generate", "out of memory");
        return EXIT_FAIL;
    }
    s->req = req;
    s->out = &s->base;
    s->model_fd = -1;
    s->w.pid = -1;
    s->w.sock = -1;
    signal(SIGPIPE, SIG_IGN); /* a dead worker is an error to handle, not our death */
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit is a write error: refuse, don't die */
    int rc = draw_request_ids(s);
    if (rc == EXIT_OK)
        rc = open_session(ctx, s) != 0 ? EXIT_FAIL : EXIT_OK;
    if (rc == EXIT_OK && req->attest_path && !s->a.log) {
        cli_error(CMD, "--attest needs an appliance home (its device key signs; run 'appliance "
                       "init')");
        rc = EXIT_FAIL;
    }
    if (rc == EXIT_OK && req->prompt) { /* refused before the model is even copied */
        rc = check_limits(s);
        s->opener_checked = rc == EXIT_OK;
    }
    if (rc == EXIT_OK)
        rc = load_model(s);
    if (rc == EXIT_OK)
        rc = start_worker(s);
    if (rc != EXIT_OK) {
        gen_session_close(s, 0);
        return rc;
    }
    *sp = s;
    return EXIT_OK;
}

int gen_session_run(gen_session *s, const gen_request *req, gen_text_fn on_text, void *user,
                    gen_outcome *out)
{
    *out = s->base; /* the model, policy and worker facts */
    memset(&out->result, 0, sizeof out->result);
    out->audited = 0;
    out->prompt_seq = out->output_seq = out->attestation_seq = 0;
    s->req = req;
    s->out = out;
    /* The request that opened the session keeps the ids drawn then (its
     * refusals or load errors were audited under them). */
    int opener = s->opener_checked;
    s->opener_checked = 0;
    int rc = opener ? EXIT_OK : draw_request_ids(s);
    if (rc == EXIT_OK && !opener)
        rc = check_limits(s);
    if (rc == EXIT_OK && s->w.pid <= 0) /* the last worker died: a new one, history re-fed */
        rc = start_worker(s);
    if (rc == EXIT_OK)
        rc = audit_prompt(s);
    if (rc == EXIT_OK)
        rc = run_request(s, on_text, user);
    out->observed = s->w.pid > 0 ? s->w.observed : out->observed;
    return rc;
}

worker *gen_session_worker(gen_session *s)
{
    return &s->w;
}

int gen_session_audit(gen_session *s, audit_kind kind, const char *request_id, json_t *body)
{
    gen_outcome *saved = s->out;
    gen_outcome tmp;
    memset(&tmp, 0, sizeof tmp);
    snprintf(tmp.request_id, sizeof tmp.request_id, "%s", request_id);
    s->out = &tmp; /* audit_event names the request in s->out */
    int rc = audit_event(s, kind, body);
    s->out = saved;
    return rc == 0 ? EXIT_OK : EXIT_FAIL;
}

int gen_session_has_log(const gen_session *s)
{
    return s->a.log != NULL;
}

void gen_session_close(gen_session *s, int checkpoint)
{
    char err[512], *note;
    if (!s)
        return;
    worker_stop(&s->w);
    /* At a clean end of a session, one signed checkpoint covers all of it. */
    if (checkpoint && s->a.log) {
        if (!(note = device_checkpoint(s->a.log, s->a.h.device_key, s->a.actor, err, sizeof err)))
            fprintf(stderr, "appliance: warning: the closing audit checkpoint failed: %s\n", err);
        free(note);
    }
    close_session(s);
    sodium_memzero(s, sizeof *s);
    free(s);
}

int generate_as_monitor(const app_ctx *ctx, const gen_request *req, gen_text_fn on_text, void *user,
                        gen_outcome *out)
{
    gen_session *s;
    memset(out, 0, sizeof *out);
    int rc = gen_session_open(ctx, req, &s);
    if (rc != EXIT_OK)
        return rc;
    rc = gen_session_run(s, req, on_text, user, out);
    gen_session_close(s, 0);
    return rc;
}

void gen_outcome_free(gen_outcome *out)
{
    worker_result_free(&out->result);
}
