/* Reading a signed statement back, strictly: every field PREDICATE.md lists
 * must be there with its type, and nothing else may be. A verifier that
 * skipped unknown fields would vouch for claims it never read. */
#include "attest_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A field's place in the statement, for messages ("predicate.model.name"). */
typedef struct field_path {
    const char *parent; /* "" at the top */
    const char *key;
} field_path;

#define FIELD_NAME_FMT "%s%s%s"
#define FIELD_NAME(p)  (p).parent, (p).parent[0] ? "." : "", (p).key

static attest_status field_fail(field_path p, const char *problem, char *err, size_t errlen)
{
    return attest_fail(ATTEST_E_STATEMENT, err, errlen, "statement field " FIELD_NAME_FMT " %s",
                       FIELD_NAME(p), problem);
}

static attest_status only_keys(json_t *obj, const char *path, const char *const *keys,
                               size_t n_keys, char *err, size_t errlen)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        size_t i = 0;
        while (i < n_keys && strcmp(key, keys[i]) != 0)
            i++;
        if (i == n_keys)
            return attest_fail(ATTEST_E_STATEMENT, err, errlen,
                               "statement has an unknown field %s%s%.64s", path, path[0] ? "." : "",
                               key);
    }
    return ATTEST_OK;
}

static attest_status get_member(json_t *obj, field_path p, json_t **out, char *err, size_t errlen)
{
    *out = json_object_get(obj, p.key);
    return *out ? ATTEST_OK : field_fail(p, "is missing", err, errlen);
}

static attest_status get_object(json_t *obj, field_path p, json_t **out, char *err, size_t errlen)
{
    attest_status st = get_member(obj, p, out, err, errlen);
    if (st == ATTEST_OK && !json_is_object(*out))
        return field_fail(p, "is not an object", err, errlen);
    return st;
}

/* A string without NUL bytes that fits in cap bytes with its terminator. */
static attest_status get_string(json_t *obj, field_path p, char *dst, size_t cap, char *err,
                                size_t errlen)
{
    json_t *v;
    attest_status st = get_member(obj, p, &v, err, errlen);
    if (st != ATTEST_OK)
        return st;
    if (!json_is_string(v))
        return field_fail(p, "is not a string", err, errlen);
    size_t n = json_string_length(v);
    if (n >= cap || strlen(json_string_value(v)) != n)
        return field_fail(p, "is too long or holds a NUL byte", err, errlen);
    memcpy(dst, json_string_value(v), n + 1);
    return ATTEST_OK;
}

static attest_status get_hex64(json_t *obj, field_path p, char dst[ATTEST_HEX_LEN], char *err,
                               size_t errlen)
{
    attest_status st = get_string(obj, p, dst, ATTEST_HEX_LEN, err, errlen);
    if (st != ATTEST_OK)
        return st;
    size_t i = 0;
    while (dst[i] && ((dst[i] >= '0' && dst[i] <= '9') || (dst[i] >= 'a' && dst[i] <= 'f')))
        i++;
    if (i != 64 || dst[i] != '\0')
        return field_fail(p, "is not 64 lowercase hex digits", err, errlen);
    return ATTEST_OK;
}

/* {"<algorithm>": hex}: a digest set holding exactly one algorithm. */
static attest_status get_digest(json_t *obj, field_path p, const char *algorithm,
                                char dst[ATTEST_HEX_LEN], char *err, size_t errlen)
{
    json_t *set;
    char path[128];
    attest_status st = get_object(obj, p, &set, err, errlen);
    if (st != ATTEST_OK)
        return st;
    snprintf(path, sizeof path, FIELD_NAME_FMT, FIELD_NAME(p));
    const char *const keys[] = {algorithm};
    st = only_keys(set, path, keys, 1, err, errlen);
    if (st != ATTEST_OK)
        return st;
    return get_hex64(set, (field_path){path, algorithm}, dst, err, errlen);
}

static attest_status get_uint(json_t *obj, field_path p, uint64_t max, uint64_t *out, char *err,
                              size_t errlen)
{
    json_t *v;
    attest_status st = get_member(obj, p, &v, err, errlen);
    if (st != ATTEST_OK)
        return st;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return field_fail(p, "is not a non-negative integer in range", err, errlen);
    *out = (uint64_t)json_integer_value(v);
    return ATTEST_OK;
}

static attest_status get_int32(json_t *obj, field_path p, int32_t *out, char *err, size_t errlen)
{
    json_t *v;
    attest_status st = get_member(obj, p, &v, err, errlen);
    if (st != ATTEST_OK)
        return st;
    if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
        json_integer_value(v) > INT32_MAX)
        return field_fail(p, "is not a 32-bit integer", err, errlen);
    *out = (int32_t)json_integer_value(v);
    return ATTEST_OK;
}

static attest_status get_bool(json_t *obj, field_path p, int *out, char *err, size_t errlen)
{
    json_t *v;
    attest_status st = get_member(obj, p, &v, err, errlen);
    if (st != ATTEST_OK)
        return st;
    if (!json_is_boolean(v))
        return field_fail(p, "is not true or false", err, errlen);
    *out = json_is_true(v);
    return ATTEST_OK;
}

/* A number that is a finite binary32 value (the engine's float). */
static attest_status get_float(json_t *obj, field_path p, float *out, char *err, size_t errlen)
{
    json_t *v;
    attest_status st = get_member(obj, p, &v, err, errlen);
    if (st != ATTEST_OK)
        return st;
    if (!json_is_number(v))
        return field_fail(p, "is not a number", err, errlen);
    double d = json_number_value(v);
    float f = (float)d;
    if (!isfinite(d) || !isfinite(f))
        return field_fail(p, "is not a finite 32-bit float", err, errlen);
    *out = f;
    return ATTEST_OK;
}

/* The seed is a decimal string so that every uint64 survives any JSON reader. */
static attest_status get_seed(json_t *obj, field_path p, uint64_t *out, char *err, size_t errlen)
{
    char text[24];
    attest_status st = get_string(obj, p, text, sizeof text, err, errlen);
    if (st != ATTEST_OK)
        return st;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno == ERANGE ||
        (text[0] == '0' && text[1] != '\0'))
        return field_fail(p, "is not a decimal 64-bit unsigned integer string", err, errlen);
    *out = (uint64_t)n;
    return ATTEST_OK;
}

/* ---- the statement, section by section ------------------------------------ */

static attest_status read_model(json_t *pred, attest_verified *v, char *err, size_t errlen)
{
    static const char *const keys[] = {"name", "digest", "signer"};
    json_t *m;
    attest_status st = get_object(pred, (field_path){"predicate", "model"}, &m, err, errlen);
    if (st == ATTEST_OK)
        st = only_keys(m, "predicate.model", keys, 3, err, errlen);
    if (st == ATTEST_OK)
        st = get_string(m, (field_path){"predicate.model", "name"}, v->model_name,
                        sizeof v->model_name, err, errlen);
    if (st == ATTEST_OK)
        st = get_digest(m, (field_path){"predicate.model", "digest"}, "sha256", v->model_digest,
                        err, errlen);
    if (st == ATTEST_OK)
        st = get_string(m, (field_path){"predicate.model", "signer"}, v->model_signer,
                        sizeof v->model_signer, err, errlen);
    return st;
}

static attest_status read_prompt_output(json_t *pred, attest_verified *v, char *err, size_t errlen)
{
    static const char *const prompt_keys[] = {"commitment", "tokens"};
    static const char *const output_keys[] = {"tokens", "finishReason"};
    json_t *p, *o;
    attest_status st = get_object(pred, (field_path){"predicate", "prompt"}, &p, err, errlen);
    if (st == ATTEST_OK)
        st = only_keys(p, "predicate.prompt", prompt_keys, 2, err, errlen);
    if (st == ATTEST_OK)
        st = get_digest(p, (field_path){"predicate.prompt", "commitment"}, "sha256",
                        v->prompt_commitment, err, errlen);
    if (st == ATTEST_OK)
        st = get_uint(p, (field_path){"predicate.prompt", "tokens"}, INT64_MAX, &v->prompt_tokens,
                      err, errlen);
    if (st == ATTEST_OK)
        st = get_object(pred, (field_path){"predicate", "output"}, &o, err, errlen);
    if (st == ATTEST_OK)
        st = only_keys(o, "predicate.output", output_keys, 2, err, errlen);
    if (st == ATTEST_OK)
        st = get_uint(o, (field_path){"predicate.output", "tokens"}, INT64_MAX, &v->output_tokens,
                      err, errlen);
    if (st == ATTEST_OK)
        st = get_string(o, (field_path){"predicate.output", "finishReason"}, v->finish_reason,
                        sizeof v->finish_reason, err, errlen);
    if (st == ATTEST_OK && strcmp(v->finish_reason, "eos") != 0 &&
        strcmp(v->finish_reason, "length") != 0 && strcmp(v->finish_reason, "stop") != 0)
        st = field_fail((field_path){"predicate.output", "finishReason"},
                        "is not \"eos\", \"length\" or \"stop\"", err, errlen);
    return st;
}

static attest_status read_sampling(json_t *pred, attest_sampling *s, char *err, size_t errlen)
{
    static const char *const keys[] = {"temperature",   "topK",        "topP", "minP",
                                       "repeatPenalty", "repeatLastN", "seed", "maxTokens"};
    const char *path = "predicate.sampling";
    json_t *o;
    uint64_t max_tokens = 0;
    attest_status st = get_object(pred, (field_path){"predicate", "sampling"}, &o, err, errlen);
    if (st == ATTEST_OK)
        st = only_keys(o, path, keys, 8, err, errlen);
    if (st == ATTEST_OK)
        st = get_float(o, (field_path){path, "temperature"}, &s->temperature, err, errlen);
    if (st == ATTEST_OK)
        st = get_int32(o, (field_path){path, "topK"}, &s->top_k, err, errlen);
    if (st == ATTEST_OK)
        st = get_float(o, (field_path){path, "topP"}, &s->top_p, err, errlen);
    if (st == ATTEST_OK)
        st = get_float(o, (field_path){path, "minP"}, &s->min_p, err, errlen);
    if (st == ATTEST_OK)
        st = get_float(o, (field_path){path, "repeatPenalty"}, &s->repeat_penalty, err, errlen);
    if (st == ATTEST_OK)
        st = get_int32(o, (field_path){path, "repeatLastN"}, &s->repeat_last_n, err, errlen);
    if (st == ATTEST_OK)
        st = get_seed(o, (field_path){path, "seed"}, &s->seed, err, errlen);
    if (st == ATTEST_OK)
        st = get_uint(o, (field_path){path, "maxTokens"}, UINT32_MAX, &max_tokens, err, errlen);
    s->max_tokens = (uint32_t)max_tokens;
    return st;
}

static attest_status read_entry(json_t *audit, const char *key, attest_entry_ref *e, char *err,
                                size_t errlen)
{
    static const char *const keys[] = {"seq", "digest"};
    char path[64];
    json_t *o;
    snprintf(path, sizeof path, "predicate.audit.%s", key);
    attest_status st = get_object(audit, (field_path){"predicate.audit", key}, &o, err, errlen);
    if (st == ATTEST_OK)
        st = only_keys(o, path, keys, 2, err, errlen);
    if (st == ATTEST_OK)
        st = get_uint(o, (field_path){path, "seq"}, INT64_MAX, &e->seq, err, errlen);
    if (st == ATTEST_OK)
        st = get_digest(o, (field_path){path, "digest"}, "sha3_256", e->hash, err, errlen);
    return st;
}

static attest_status read_audit_policy(json_t *pred, attest_verified *v, char *err, size_t errlen)
{
    static const char *const audit_keys[] = {"logId", "promptEntry", "outputEntry"};
    static const char *const policy_keys[] = {"digest"};
    json_t *a, *p;
    attest_status st = get_object(pred, (field_path){"predicate", "audit"}, &a, err, errlen);
    if (st == ATTEST_OK)
        st = only_keys(a, "predicate.audit", audit_keys, 3, err, errlen);
    if (st == ATTEST_OK)
        st = get_string(a, (field_path){"predicate.audit", "logId"}, v->audit_log_id,
                        sizeof v->audit_log_id, err, errlen);
    if (st == ATTEST_OK)
        st = read_entry(a, "promptEntry", &v->prompt_entry, err, errlen);
    if (st == ATTEST_OK)
        st = read_entry(a, "outputEntry", &v->output_entry, err, errlen);
    if (st == ATTEST_OK)
        st = get_object(pred, (field_path){"predicate", "policy"}, &p, err, errlen);
    if (st == ATTEST_OK)
        st = only_keys(p, "predicate.policy", policy_keys, 1, err, errlen);
    if (st == ATTEST_OK)
        st = get_digest(p, (field_path){"predicate.policy", "digest"}, "sha256", v->policy_digest,
                        err, errlen);
    return st;
}

static attest_status read_sandbox(json_t *pred, attest_verified *v, char *err, size_t errlen)
{
    static const char *const keys[] = {"required",         "seccompMode",   "noNewPrivs",
                                       "networkNamespace", "userNamespace", "landlockAbi",
                                       "landlockEnforced", "notes"};
    const char *path = "predicate.sandbox";
    sandbox_facts *f = &v->sandbox;
    json_t *o;
    uint64_t mode = 0, abi = 0;
    attest_status st = get_object(pred, (field_path){"predicate", "sandbox"}, &o, err, errlen);
    if (st == ATTEST_OK)
        st = only_keys(o, path, keys, 8, err, errlen);
    if (st == ATTEST_OK)
        st = get_bool(o, (field_path){path, "required"}, &v->sandbox_required, err, errlen);
    if (st == ATTEST_OK)
        st = get_uint(o, (field_path){path, "seccompMode"}, 2, &mode, err, errlen);
    if (st == ATTEST_OK)
        st = get_bool(o, (field_path){path, "noNewPrivs"}, &f->no_new_privs, err, errlen);
    if (st == ATTEST_OK)
        st = get_bool(o, (field_path){path, "networkNamespace"}, &f->net_namespace, err, errlen);
    if (st == ATTEST_OK)
        st = get_bool(o, (field_path){path, "userNamespace"}, &f->user_namespace, err, errlen);
    if (st == ATTEST_OK)
        st = get_uint(o, (field_path){path, "landlockAbi"}, INT32_MAX, &abi, err, errlen);
    if (st == ATTEST_OK)
        st =
            get_bool(o, (field_path){path, "landlockEnforced"}, &f->landlock_enforced, err, errlen);
    if (st == ATTEST_OK)
        st = get_string(o, (field_path){path, "notes"}, f->notes, sizeof f->notes, err, errlen);
    f->seccomp_mode = (int)mode;
    f->landlock_abi = (int)abi;
    return st;
}

static attest_status read_engine_times(json_t *pred, attest_verified *v, char *err, size_t errlen)
{
    static const char *const keys[] = {"version", "buildId", "kernels"};
    json_t *e;
    attest_status st = get_object(pred, (field_path){"predicate", "engine"}, &e, err, errlen);
    if (st == ATTEST_OK)
        st = only_keys(e, "predicate.engine", keys, 3, err, errlen);
    if (st == ATTEST_OK)
        st = get_string(e, (field_path){"predicate.engine", "version"}, v->engine_version,
                        sizeof v->engine_version, err, errlen);
    if (st == ATTEST_OK)
        st = get_string(e, (field_path){"predicate.engine", "buildId"}, v->build_id,
                        sizeof v->build_id, err, errlen);
    if (st == ATTEST_OK)
        st = get_string(e, (field_path){"predicate.engine", "kernels"}, v->kernels,
                        sizeof v->kernels, err, errlen);
    if (st == ATTEST_OK)
        st = get_string(pred, (field_path){"predicate", "startedOn"}, v->started, sizeof v->started,
                        err, errlen);
    if (st == ATTEST_OK)
        st = get_string(pred, (field_path){"predicate", "finishedOn"}, v->finished,
                        sizeof v->finished, err, errlen);
    if (st == ATTEST_OK && !attest_is_rfc3339_utc(v->started))
        st = field_fail((field_path){"predicate", "startedOn"}, "is not an RFC 3339 UTC time", err,
                        errlen);
    if (st == ATTEST_OK && !attest_is_rfc3339_utc(v->finished))
        st = field_fail((field_path){"predicate", "finishedOn"}, "is not an RFC 3339 UTC time", err,
                        errlen);
    return st;
}

static attest_status read_predicate(json_t *stmt, attest_verified *v, char *err, size_t errlen)
{
    static const char *const keys[] = {"model",  "prompt",  "output", "sampling",  "audit",
                                       "policy", "sandbox", "engine", "startedOn", "finishedOn"};
    json_t *pred;
    attest_status st = get_object(stmt, (field_path){"", "predicate"}, &pred, err, errlen);
    if (st == ATTEST_OK)
        st = only_keys(pred, "predicate", keys, 10, err, errlen);
    if (st == ATTEST_OK)
        st = read_model(pred, v, err, errlen);
    if (st == ATTEST_OK)
        st = read_prompt_output(pred, v, err, errlen);
    if (st == ATTEST_OK)
        st = read_sampling(pred, &v->sampling, err, errlen);
    if (st == ATTEST_OK)
        st = read_audit_policy(pred, v, err, errlen);
    if (st == ATTEST_OK)
        st = read_sandbox(pred, v, err, errlen);
    if (st == ATTEST_OK)
        st = read_engine_times(pred, v, err, errlen);
    return st;
}

/* _type, then predicateType (so a future version is named as such before
 * its fields are judged), then the subject. */
static attest_status read_header(json_t *stmt, attest_verified *v, char *err, size_t errlen)
{
    static const char *const keys[] = {"_type", "subject", "predicateType", "predicate"};
    char type[ATTEST_TEXT_LEN];
    attest_status st = get_string(stmt, (field_path){"", "_type"}, type, sizeof type, err, errlen);
    if (st != ATTEST_OK)
        return st;
    if (strcmp(type, ATTEST_STATEMENT_TYPE) != 0)
        return attest_fail(ATTEST_E_STATEMENT, err, errlen,
                           "statement _type is \"%.128s\", expected \"%s\"", type,
                           ATTEST_STATEMENT_TYPE);
    st = get_string(stmt, (field_path){"", "predicateType"}, type, sizeof type, err, errlen);
    if (st != ATTEST_OK)
        return st;
    size_t prefix = strlen(ATTEST_PREDICATE_PREFIX);
    if (strncmp(type, ATTEST_PREDICATE_PREFIX, prefix) != 0)
        return attest_fail(ATTEST_E_STATEMENT, err, errlen,
                           "predicateType \"%.128s\" is not an appliance generation attestation",
                           type);
    if (strcmp(type, ATTEST_PREDICATE_TYPE) != 0)
        return attest_fail(ATTEST_E_STATEMENT, err, errlen,
                           "predicate version \"%.32s\" is not supported (this verifier reads "
                           "v%d)",
                           type + prefix, ATTEST_PREDICATE_VERSION);
    st = only_keys(stmt, "", keys, 4, err, errlen);
    if (st != ATTEST_OK)
        return st;
    json_t *subject;
    st = get_member(stmt, (field_path){"", "subject"}, &subject, err, errlen);
    if (st != ATTEST_OK)
        return st;
    if (!json_is_array(subject) || json_array_size(subject) != 1)
        return field_fail((field_path){"", "subject"}, "is not an array of exactly one subject",
                          err, errlen);
    json_t *s0 = json_array_get(subject, 0);
    static const char *const subject_keys[] = {"name", "digest"};
    char name[16];
    if (!json_is_object(s0))
        return field_fail((field_path){"subject", "0"}, "is not an object", err, errlen);
    st = only_keys(s0, "subject.0", subject_keys, 2, err, errlen);
    if (st == ATTEST_OK)
        st = get_string(s0, (field_path){"subject.0", "name"}, name, sizeof name, err, errlen);
    if (st == ATTEST_OK && strcmp(name, "output") != 0)
        st = field_fail((field_path){"subject.0", "name"}, "is not \"output\"", err, errlen);
    if (st == ATTEST_OK)
        st = get_digest(s0, (field_path){"subject.0", "digest"}, "sha256", v->output_sha256, err,
                        errlen);
    return st;
}

attest_status attest_statement_parse(const uint8_t *payload, size_t len, attest_verified *v,
                                     char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *stmt = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!stmt)
        return attest_fail(ATTEST_E_STATEMENT, err, errlen,
                           "the signed payload is not JSON: %s (line %d, column %d)", jerr.text,
                           jerr.line, jerr.column);
    attest_status st = ATTEST_OK;
    if (!json_is_object(stmt))
        st =
            attest_fail(ATTEST_E_STATEMENT, err, errlen, "the signed payload is not a JSON object");
    if (st == ATTEST_OK)
        st = read_header(stmt, v, err, errlen);
    if (st == ATTEST_OK)
        st = read_predicate(stmt, v, err, errlen);
    json_decref(stmt);
    return st;
}
