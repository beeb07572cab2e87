/* Strict policy parsing: every key known, every type and range checked, the
 * first defect reported with its JSON path. */
#include "policy.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define POLICY_MAX_BYTES (1 << 20)

static const char *const content_names[] = {"sealed", "plaintext", "digest"};
/* Only the sealed copy is implemented: DESIGN.md's "mapped-file" (no copy,
 * for read-only model files) is refused rather than accepted and ignored. */
static const char *const load_names[] = {"sealed-copy"};
static const char *const role_names[] = {"clinician", "officer"};

const char *audit_content_mode_name(audit_content_mode m)
{
    return content_names[m];
}
const char *model_load_mode_name(model_load_mode m)
{
    return load_names[m];
}
const char *user_role_name(user_role r)
{
    return role_names[r];
}

static int perr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int perr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void strings_free(policy_strings *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->items[i]);
    free(s->items);
    s->items = NULL;
    s->count = 0;
}

void policy_free(policy *p)
{
    strings_free(&p->publisher_keys);
    strings_free(&p->ca_roots);
    strings_free(&p->pinned_models);
    free(p->reviewer_key);
    for (size_t i = 0; i < p->n_users; i++) {
        free(p->users[i].name);
        free(p->users[i].token_hash);
    }
    free(p->users);
    memset(p, 0, sizeof *p);
}

int policy_defaults(policy *p)
{
    memset(p, 0, sizeof *p);
    p->version = POLICY_VERSION;
    p->model_load = MODEL_LOAD_SEALED_COPY;
    p->max_prompt_bytes = 65536;
    p->max_new_tokens = 1024;
    p->context = 4096;
    p->requests_per_minute = 60;
    p->audit_content = AUDIT_CONTENT_SEALED;
    p->reviewer_key = strdup("reviewer.pub");
    p->checkpoint_interval = 100;
    p->sandbox_required = 1;
    return p->reviewer_key ? 0 : -1;
}

/* ---- validation helpers: each names the JSON path of what it checks ---- */

static int check_object(json_t *v, const char *path, const char *const *allowed, char *err,
                        size_t errlen)
{
    const char *key;
    json_t *val;
    if (!json_is_object(v))
        return perr(err, errlen, "%s: expected an object", path);
    json_object_foreach(v, key, val)
    {
        int known = 0;
        for (size_t i = 0; allowed[i]; i++)
            known |= strcmp(key, allowed[i]) == 0;
        if (!known)
            return perr(err, errlen, "%s.%s: unknown key", path, key);
    }
    return 0;
}

static int get_int(json_t *obj, const char *path, const char *key, int64_t lo, int64_t hi,
                   int64_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0; /* absent: keep the default */
    if (!json_is_integer(v))
        return perr(err, errlen, "%s.%s: expected an integer", path, key);
    json_int_t n = json_integer_value(v);
    if (n < lo || n > hi)
        return perr(err, errlen, "%s.%s: %lld is outside %lld..%lld", path, key, (long long)n,
                    (long long)lo, (long long)hi);
    *out = n;
    return 0;
}

static int get_enum(json_t *obj, const char *path, const char *key, const char *const *names,
                    size_t n_names, int *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_string(v))
        return perr(err, errlen, "%s.%s: expected a string", path, key);
    for (size_t i = 0; i < n_names; i++) {
        if (strcmp(json_string_value(v), names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    return perr(err, errlen, "%s.%s: \"%s\" is not one of the allowed values", path, key,
                json_string_value(v));
}

static int is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return 0;
    return 1;
}

/* What an element of a string list must look like. */
typedef enum { ITEM_PEM_PUBKEY, ITEM_PEM_CERT, ITEM_HEX_DIGEST } item_shape;

static int item_ok(const char *s, item_shape shape)
{
    switch (shape) {
    case ITEM_PEM_PUBKEY:
        return strncmp(s, "-----BEGIN PUBLIC KEY-----", 26) == 0;
    case ITEM_PEM_CERT:
        return strncmp(s, "-----BEGIN CERTIFICATE-----", 27) == 0;
    case ITEM_HEX_DIGEST:
        return is_hex64(s);
    }
    return 0;
}

static const char *shape_text(item_shape shape)
{
    return shape == ITEM_PEM_PUBKEY ? "a PEM public key"
           : shape == ITEM_PEM_CERT ? "a PEM certificate"
                                    : "64 lowercase hex digits";
}

static int get_strings(json_t *obj, const char *path, const char *key, item_shape shape,
                       policy_strings *out, char *err, size_t errlen)
{
    json_t *arr = json_object_get(obj, key), *v;
    size_t i;
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return perr(err, errlen, "%s.%s: expected an array", path, key);
    out->items = calloc(json_array_size(arr) + 1, sizeof *out->items);
    if (!out->items)
        return perr(err, errlen, "%s.%s: out of memory", path, key);
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            return perr(err, errlen, "%s.%s[%zu]: expected a string", path, key, i);
        if (!item_ok(json_string_value(v), shape))
            return perr(err, errlen, "%s.%s[%zu]: expected %s", path, key, i, shape_text(shape));
        if (!(out->items[out->count++] = strdup(json_string_value(v))))
            return perr(err, errlen, "%s.%s: out of memory", path, key);
    }
    return 0;
}

/* ---- sections ---------------------------------------------------------- */

static int parse_trust(json_t *v, policy *p, char *err, size_t errlen)
{
    static const char *const keys[] = {"publisher_keys", "ca_roots", "pinned_models", NULL};
    if (check_object(v, "$.trust", keys, err, errlen) != 0)
        return -1;
    if (get_strings(v, "$.trust", "publisher_keys", ITEM_PEM_PUBKEY, &p->publisher_keys, err,
                    errlen) != 0 ||
        get_strings(v, "$.trust", "ca_roots", ITEM_PEM_CERT, &p->ca_roots, err, errlen) != 0)
        return -1;
    return get_strings(v, "$.trust", "pinned_models", ITEM_HEX_DIGEST, &p->pinned_models, err,
                       errlen);
}

static int parse_models(json_t *v, policy *p, char *err, size_t errlen)
{
    static const char *const keys[] = {"load", NULL};
    json_t *load;
    if (check_object(v, "$.models", keys, err, errlen) != 0)
        return -1;
    if ((load = json_object_get(v, "load")) == NULL)
        return 0;
    if (!json_is_string(load))
        return perr(err, errlen, "$.models.load: expected a string");
    if (strcmp(json_string_value(load), load_names[MODEL_LOAD_SEALED_COPY]) != 0)
        return perr(err, errlen,
                    "$.models.load: \"%s\" is not supported; this build always copies a model "
                    "into a sealed memfd (\"sealed-copy\")",
                    json_string_value(load));
    p->model_load = MODEL_LOAD_SEALED_COPY;
    return 0;
}

static int parse_limits(json_t *v, policy *p, char *err, size_t errlen)
{
    static const char *const keys[] = {"max_prompt_bytes", "max_new_tokens", "context",
                                       "requests_per_minute", NULL};
    const char *path = "$.limits";
    if (check_object(v, path, keys, err, errlen) != 0)
        return -1;
    if (get_int(v, path, "max_prompt_bytes", 1, 16 << 20, &p->max_prompt_bytes, err, errlen) ||
        get_int(v, path, "max_new_tokens", 1, 1 << 20, &p->max_new_tokens, err, errlen) ||
        get_int(v, path, "context", 16, 1 << 20, &p->context, err, errlen))
        return -1;
    return get_int(v, path, "requests_per_minute", 1, 1000000, &p->requests_per_minute, err,
                   errlen);
}

static int parse_audit(json_t *v, policy *p, char *err, size_t errlen)
{
    static const char *const keys[] = {"content", "reviewer_key", "checkpoint_interval", NULL};
    int mode = (int)p->audit_content;
    json_t *rk;
    if (check_object(v, "$.audit", keys, err, errlen) != 0 ||
        get_enum(v, "$.audit", "content", content_names, 3, &mode, err, errlen) != 0 ||
        get_int(v, "$.audit", "checkpoint_interval", 1, 1000000, &p->checkpoint_interval, err,
                errlen) != 0)
        return -1;
    p->audit_content = (audit_content_mode)mode;
    if ((rk = json_object_get(v, "reviewer_key")) != NULL) {
        if (!json_is_string(rk) || json_string_length(rk) == 0)
            return perr(err, errlen, "$.audit.reviewer_key: expected a non-empty string");
        free(p->reviewer_key);
        if (!(p->reviewer_key = strdup(json_string_value(rk))))
            return perr(err, errlen, "$.audit.reviewer_key: out of memory");
    }
    return 0;
}

static int parse_sandbox(json_t *v, policy *p, char *err, size_t errlen)
{
    static const char *const keys[] = {"required", NULL};
    json_t *r;
    if (check_object(v, "$.sandbox", keys, err, errlen) != 0)
        return -1;
    if ((r = json_object_get(v, "required")) != NULL) {
        if (!json_is_boolean(r))
            return perr(err, errlen, "$.sandbox.required: expected true or false");
        p->sandbox_required = json_is_true(r);
    }
    return 0;
}

static int valid_user_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static int parse_user(json_t *v, size_t i, policy *p, char *err, size_t errlen)
{
    static const char *const keys[] = {"name", "role", "token_hash", NULL};
    char path[64];
    snprintf(path, sizeof path, "$.users[%zu]", i);
    if (check_object(v, path, keys, err, errlen) != 0)
        return -1;
    json_t *name = json_object_get(v, "name"), *hash = json_object_get(v, "token_hash");
    int role = -1;
    if (!json_is_string(name) || !valid_user_name(json_string_value(name)))
        return perr(err, errlen, "%s.name: expected 1-64 characters of [A-Za-z0-9._-]", path);
    if (!json_is_string(hash) || !is_hex64(json_string_value(hash)))
        return perr(err, errlen, "%s.token_hash: expected 64 lowercase hex digits", path);
    if (get_enum(v, path, "role", role_names, 2, &role, err, errlen) != 0)
        return -1;
    if (role < 0)
        return perr(err, errlen, "%s.role: missing (clinician or officer)", path);
    for (size_t j = 0; j < p->n_users; j++)
        if (strcmp(p->users[j].name, json_string_value(name)) == 0)
            return perr(err, errlen, "%s.name: duplicate user \"%s\"", path, p->users[j].name);
    policy_user *u = &p->users[p->n_users];
    u->role = (user_role)role;
    u->name = strdup(json_string_value(name));
    u->token_hash = strdup(json_string_value(hash));
    p->n_users++;
    return (u->name && u->token_hash) ? 0 : perr(err, errlen, "%s: out of memory", path);
}

static int parse_users(json_t *v, policy *p, char *err, size_t errlen)
{
    json_t *u;
    size_t i;
    if (!json_is_array(v))
        return perr(err, errlen, "$.users: expected an array");
    p->users = calloc(json_array_size(v) + 1, sizeof *p->users);
    if (!p->users)
        return perr(err, errlen, "$.users: out of memory");
    json_array_foreach(v, i, u)
    {
        if (parse_user(u, i, p, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static int parse_root(json_t *root, policy *p, char *err, size_t errlen)
{
    static const char *const keys[] = {"version", "trust",   "models", "limits",
                                       "audit",   "sandbox", "users",  NULL};
    typedef int (*section_fn)(json_t *, policy *, char *, size_t);
    static const struct {
        const char *key;
        section_fn parse;
    } sections[] = {{"trust", parse_trust}, {"models", parse_models},   {"limits", parse_limits},
                    {"audit", parse_audit}, {"sandbox", parse_sandbox}, {"users", parse_users}};
    json_t *version;
    if (check_object(root, "$", keys, err, errlen) != 0)
        return -1;
    version = json_object_get(root, "version");
    if (!version)
        return perr(err, errlen, "$.version: missing (this appliance reads version %d)",
                    POLICY_VERSION);
    if (!json_is_integer(version) || json_integer_value(version) != POLICY_VERSION)
        return perr(err, errlen, "$.version: expected the integer %d", POLICY_VERSION);
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        json_t *v = json_object_get(root, sections[i].key);
        if (v && sections[i].parse(v, p, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int policy_parse(const char *text, size_t len, policy *p, char *err, size_t errlen)
{
    json_error_t jerr;
    if (len > POLICY_MAX_BYTES)
        return perr(err, errlen, "$: policy is larger than %d bytes", POLICY_MAX_BYTES);
    if (policy_defaults(p) != 0)
        return perr(err, errlen, "$: out of memory");
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        policy_free(p);
        return perr(err, errlen, "$: not valid JSON at line %d column %d: %s", jerr.line,
                    jerr.column, jerr.text);
    }
    int rc = parse_root(root, p, err, errlen);
    json_decref(root);
    if (rc != 0)
        policy_free(p);
    return rc;
}

void policy_digest_bytes(const void *data, size_t len, char digest[POLICY_DIGEST_HEX])
{
    uint8_t d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, data, len);
    sodium_bin2hex(digest, POLICY_DIGEST_HEX, d, sizeof d);
}

static char *read_small_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perr(err, errlen, "cannot open policy %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(POLICY_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, POLICY_MAX_BYTES + 1, f) : 0;
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad || n > POLICY_MAX_BYTES) {
        free(buf);
        perr(err, errlen, "cannot read policy %s: %s", path,
             bad ? "read error" : "larger than 1 MiB");
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

int policy_load_file(const char *path, policy *p, char digest[POLICY_DIGEST_HEX], char *err,
                     size_t errlen)
{
    size_t len;
    char msg[512];
    char *text = read_small_file(path, &len, err, errlen);
    if (!text)
        return -1;
    int rc = policy_parse(text, len, p, msg, sizeof msg);
    if (rc != 0)
        perr(err, errlen, "%s: %s", path, msg);
    else if (digest)
        policy_digest_bytes(text, len, digest);
    free(text);
    return rc;
}

/* ---- serialisation ----------------------------------------------------- */

static json_t *strings_json(const policy_strings *s)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < s->count; i++)
        json_array_append_new(a, json_string(s->items[i]));
    return a;
}

static json_t *users_json(const policy *p)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < p->n_users; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "name", p->users[i].name, "role",
                                           role_names[p->users[i].role], "token_hash",
                                           p->users[i].token_hash));
    return a;
}

char *policy_to_json(const policy *p)
{
    json_t *root = json_pack(
        "{s:i, s:{s:o, s:o, s:o}, s:{s:s}, s:{s:I, s:I, s:I, s:I}, s:{s:s, s:s, s:I}, s:{s:b}, "
        "s:o}",
        "version", p->version, "trust", "publisher_keys", strings_json(&p->publisher_keys),
        "ca_roots", strings_json(&p->ca_roots), "pinned_models", strings_json(&p->pinned_models),
        "models", "load", load_names[p->model_load], "limits", "max_prompt_bytes",
        (json_int_t)p->max_prompt_bytes, "max_new_tokens", (json_int_t)p->max_new_tokens, "context",
        (json_int_t)p->context, "requests_per_minute", (json_int_t)p->requests_per_minute, "audit",
        "content", content_names[p->audit_content], "reviewer_key", p->reviewer_key,
        "checkpoint_interval", (json_int_t)p->checkpoint_interval, "sandbox", "required",
        p->sandbox_required, "users", users_json(p));
    if (!root)
        return NULL;
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return NULL;
    /* A trailing newline, as text files have. */
    size_t n = strlen(text);
    char *out = realloc(text, n + 2);
    if (!out) {
        free(text);
        return NULL;
    }
    out[n] = '\n';
    out[n + 1] = 0;
    return out;
}

int policy_write_file(const policy *p, const char *path, char digest[POLICY_DIGEST_HEX], char *err,
                      size_t errlen)
{
    char tmp[4096];
    char *text = policy_to_json(p);
    if (!text)
        return perr(err, errlen, "cannot serialise the policy");
    size_t len = strlen(text);
    int fd = -1, rc = -1;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path) >= sizeof tmp)
        perr(err, errlen, "policy path too long: %s", path);
    else if ((fd = mkstemp(tmp)) < 0)
        perr(err, errlen, "cannot create %s: %s", path, strerror(errno));
    else if (write(fd, text, len) != (ssize_t)len || fsync(fd) != 0)
        perr(err, errlen, "cannot write %s: %s", path, strerror(errno));
    else if (close(fd) != 0 || (fd = -1, rename(tmp, path) != 0))
        perr(err, errlen, "cannot write %s: %s", path, strerror(errno));
    else
        rc = 0;
    if (rc != 0) {
        if (fd >= 0)
            close(fd);
        unlink(tmp);
    } else if (digest) {
        policy_digest_bytes(text, len, digest);
    }
    free(text);
    return rc;
}
