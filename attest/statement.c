/* The in-toto Statement v1 of one generation: built from an
 * attest_generation, and read back strictly by the verifier. The layout is
 * documented field by field in attest/PREDICATE.md; keep the two in step. */
#include "attest_internal.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const FINISH_REASONS[] = {"eos", "length", "stop"};

/* ---- shared checks ------------------------------------------------------ */

static int is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return 0;
    for (size_t i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* RFC 3339 in UTC: YYYY-MM-DDTHH:MM:SS, optional fraction of 1 to 9
 * digits, then "Z". Field ranges are checked loosely (month 01-12, ...). */
int attest_is_rfc3339_utc(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 20 || n >= ATTEST_TIME_LEN)
        return 0;
    if (!is_digits(s, 4) || s[4] != '-' || !is_digits(s + 5, 2) || s[7] != '-' ||
        !is_digits(s + 8, 2) || s[10] != 'T' || !is_digits(s + 11, 2) || s[13] != ':' ||
        !is_digits(s + 14, 2) || s[16] != ':' || !is_digits(s + 17, 2))
        return 0;
    int month = (s[5] - '0') * 10 + (s[6] - '0'), day = (s[8] - '0') * 10 + (s[9] - '0');
    int hour = (s[11] - '0') * 10 + (s[12] - '0'), min = (s[14] - '0') * 10 + (s[15] - '0');
    int sec = (s[17] - '0') * 10 + (s[18] - '0');
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return 0;
    size_t i = 19;
    if (s[i] == '.') {
        size_t digits = 0;
        while (s[i + 1 + digits] >= '0' && s[i + 1 + digits] <= '9')
            digits++;
        if (digits < 1 || digits > 9)
            return 0;
        i += 1 + digits;
    }
    return s[i] == 'Z' && s[i + 1] == '\0';
}

static int is_finish_reason(const char *s)
{
    for (size_t i = 0; i < sizeof FINISH_REASONS / sizeof FINISH_REASONS[0]; i++)
        if (s && strcmp(s, FINISH_REASONS[i]) == 0)
            return 1;
    return 0;
}

int attest_format_time(const struct timespec *t, char out[ATTEST_TIME_LEN])
{
    struct tm tm;
    if (!t || t->tv_nsec < 0 || t->tv_nsec >= 1000000000L || !gmtime_r(&t->tv_sec, &tm) ||
        tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return -1;
    int n = snprintf(out, ATTEST_TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     t->tv_nsec / 1000000L);
    return (n > 0 && n < ATTEST_TIME_LEN) ? 0 : -1;
}

void attest_prompt_commitment(const uint8_t salt[ATTEST_SALT_LEN], const uint8_t *prompt,
                              size_t prompt_len, char hex[ATTEST_HEX_LEN])
{
    crypto_hash_sha256_state st;
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, salt, ATTEST_SALT_LEN);
    if (prompt_len)
        crypto_hash_sha256_update(&st, prompt, prompt_len);
    crypto_hash_sha256_final(&st, digest);
    sodium_bin2hex(hex, ATTEST_HEX_LEN, digest, sizeof digest);
}

static void sha256_hex(const uint8_t *data, size_t len, char hex[ATTEST_HEX_LEN])
{
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, data, len);
    sodium_bin2hex(hex, ATTEST_HEX_LEN, digest, sizeof digest);
}

/* ---- building ----------------------------------------------------------- */

double attest_float_decimal(float f)
{
    for (int digits = 1; digits <= 9; digits++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f)
            return d;
    }
    return (double)f;
}

/* Names the first text field of g that is missing or too long, or NULL. */
static const char *generation_bad_text(const attest_generation *g)
{
    const struct {
        const char *name, *value;
    } fields[] = {
        {"model name", g->model_name},       {"model signer", g->model_signer},
        {"audit log id", g->audit_log_id},   {"engine version", g->engine_version},
        {"build id", g->build_id},           {"kernels", g->kernels},
        {"sandbox notes", g->sandbox.notes},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!fields[i].value || strlen(fields[i].value) >= ATTEST_TEXT_LEN)
            return fields[i].name;
    return NULL;
}

/* Checks every field of g before anything is built. */
static attest_status generation_check(const attest_generation *g, char *err, size_t errlen)
{
    /* sandbox_facts.notes is a fixed array: it must hold its terminator. */
    if (!memchr(g->sandbox.notes, '\0', sizeof g->sandbox.notes))
        return attest_fail(ATTEST_E_INVALID, err, errlen, "the sandbox notes are not terminated");
    const char *bad = generation_bad_text(g);
    if (bad)
        return attest_fail(ATTEST_E_INVALID, err, errlen, "the %s is missing or over %d bytes", bad,
                           ATTEST_TEXT_LEN - 1);
    if (!is_hex64(g->model_digest))
        return attest_fail(ATTEST_E_INVALID, err, errlen,
                           "the model digest is not 64 lowercase hex digits");
    if (!is_hex64(g->policy_digest))
        return attest_fail(ATTEST_E_INVALID, err, errlen,
                           "the policy digest is not 64 lowercase hex digits");
    if (!is_hex64(g->prompt_entry.hash) || !is_hex64(g->output_entry.hash))
        return attest_fail(ATTEST_E_INVALID, err, errlen,
                           "an audit entry hash is not 64 lowercase hex digits");
    if (g->prompt_entry.seq > INT64_MAX || g->output_entry.seq > INT64_MAX ||
        g->prompt_tokens > INT64_MAX || g->output_tokens > INT64_MAX)
        return attest_fail(ATTEST_E_INVALID, err, errlen,
                           "a sequence number or token count is over 2^63-1");
    if (!g->salt || (!g->prompt && g->prompt_len))
        return attest_fail(ATTEST_E_INVALID, err, errlen, "the prompt salt is missing");
    if (!g->output && g->output_len)
        return attest_fail(ATTEST_E_INVALID, err, errlen, "the output bytes are missing");
    if (!is_finish_reason(g->finish_reason))
        return attest_fail(ATTEST_E_INVALID, err, errlen,
                           "the finish reason is not \"eos\", \"length\" or \"stop\"");
    if (!attest_is_rfc3339_utc(g->started) || !attest_is_rfc3339_utc(g->finished))
        return attest_fail(ATTEST_E_INVALID, err, errlen,
                           "a start or end time is not an RFC 3339 UTC time");
    const attest_sampling *s = &g->sampling;
    if (!isfinite(s->temperature) || !isfinite(s->top_p) || !isfinite(s->min_p) ||
        !isfinite(s->repeat_penalty))
        return attest_fail(ATTEST_E_INVALID, err, errlen,
                           "a sampling parameter is not a finite number");
    return ATTEST_OK;
}

static json_t *sampling_json(const attest_sampling *s)
{
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    return json_pack("{s:f, s:I, s:f, s:f, s:f, s:I, s:s, s:I}", "temperature",
                     attest_float_decimal(s->temperature), "topK", (json_int_t)s->top_k, "topP",
                     attest_float_decimal(s->top_p), "minP", attest_float_decimal(s->min_p),
                     "repeatPenalty", attest_float_decimal(s->repeat_penalty), "repeatLastN",
                     (json_int_t)s->repeat_last_n, "seed", seed, "maxTokens",
                     (json_int_t)s->max_tokens);
}

static json_t *sandbox_json(const attest_generation *g)
{
    const sandbox_facts *f = &g->sandbox;
    return json_pack("{s:b, s:I, s:b, s:b, s:b, s:I, s:b, s:s}", "required",
                     g->sandbox_required != 0, "seccompMode", (json_int_t)f->seccomp_mode,
                     "noNewPrivs", f->no_new_privs != 0, "networkNamespace", f->net_namespace != 0,
                     "userNamespace", f->user_namespace != 0, "landlockAbi",
                     (json_int_t)f->landlock_abi, "landlockEnforced", f->landlock_enforced != 0,
                     "notes", f->notes);
}

static json_t *entry_json(const attest_entry_ref *e)
{
    return json_pack("{s:I, s:{s:s}}", "seq", (json_int_t)e->seq, "digest", "sha3_256", e->hash);
}

static json_t *predicate_json(const attest_generation *g, const char *commitment)
{
    return json_pack(
        "{s:{s:s, s:{s:s}, s:s}, s:{s:{s:s}, s:I}, s:{s:I, s:s}, s:o, s:{s:s, s:o, s:o},"
        " s:{s:{s:s}}, s:o, s:{s:s, s:s, s:s}, s:s, s:s}",
        "model", "name", g->model_name, "digest", "sha256", g->model_digest, "signer",
        g->model_signer, "prompt", "commitment", "sha256", commitment, "tokens",
        (json_int_t)g->prompt_tokens, "output", "tokens", (json_int_t)g->output_tokens,
        "finishReason", g->finish_reason, "sampling", sampling_json(&g->sampling), "audit", "logId",
        g->audit_log_id, "promptEntry", entry_json(&g->prompt_entry), "outputEntry",
        entry_json(&g->output_entry), "policy", "digest", "sha256", g->policy_digest, "sandbox",
        sandbox_json(g), "engine", "version", g->engine_version, "buildId", g->build_id, "kernels",
        g->kernels, "startedOn", g->started, "finishedOn", g->finished);
}

int attest_statement_json(const attest_generation *g, char **json, size_t *json_len, char *err,
                          size_t errlen)
{
    char commitment[ATTEST_HEX_LEN], output_digest[ATTEST_HEX_LEN];
    *json = NULL;
    if (json_len)
        *json_len = 0;
    if (!g)
        return attest_fail(ATTEST_E_INVALID, err, errlen, "no generation was given");
    attest_status st = generation_check(g, err, errlen);
    if (st != ATTEST_OK)
        return st;
    attest_prompt_commitment(g->salt, g->prompt, g->prompt_len, commitment);
    sha256_hex(g->output ? g->output : (const uint8_t *)"", g->output_len, output_digest);
    json_t *statement =
        json_pack("{s:s, s:[{s:s, s:{s:s}}], s:s, s:o}", "_type", ATTEST_STATEMENT_TYPE, "subject",
                  "name", "output", "digest", "sha256", output_digest, "predicateType",
                  ATTEST_PREDICATE_TYPE, "predicate", predicate_json(g, commitment));
    if (statement)
        *json = json_dumps(statement, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(statement);
    if (!*json)
        return attest_fail(ATTEST_E_INVALID, err, errlen,
                           "the statement could not be built (a text field is not UTF-8, or "
                           "out of memory)");
    if (json_len)
        *json_len = strlen(*json);
    return ATTEST_OK;
}
