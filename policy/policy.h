/* policy: the appliance's written rules (policy.json), and later the sandbox.
 *
 * The policy file is strict JSON: unknown keys and wrong types are errors
 * naming the JSON path ("$.limits.context: expected an integer"). Keys that
 * are absent take the defaults of policy_defaults(). The policy digest is
 * the SHA-256 of the file's exact bytes (so `sha256sum policy.json` gives the
 * digest recorded in audit entries and attestations). */
#ifndef POLICY_POLICY_H
#define POLICY_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define POLICY_VERSION    1
#define POLICY_DIGEST_HEX 65

/* How a verified model reaches the worker: copied into a sealed memfd. */
typedef enum { MODEL_LOAD_SEALED_COPY } model_load_mode;
typedef enum {
    AUDIT_CONTENT_SEALED,
    AUDIT_CONTENT_PLAINTEXT,
    AUDIT_CONTENT_DIGEST
} audit_content_mode;
typedef enum { ROLE_CLINICIAN, ROLE_OFFICER } user_role;

typedef struct {
    char **items;
    size_t count;
} policy_strings;

typedef struct {
    char *name;
    user_role role;
    char *token_hash; /* hex keyed hash of the bearer token (never the token) */
} policy_user;

typedef struct policy {
    int version;
    /* trust */
    policy_strings publisher_keys; /* PEM SubjectPublicKeyInfo texts */
    policy_strings ca_roots;       /* PEM certificate texts */
    policy_strings pinned_models;  /* hex SHA-256 OMS root digests */
    /* models */
    model_load_mode model_load;
    /* limits */
    int64_t max_prompt_bytes;
    int64_t max_new_tokens;
    int64_t context;
    int64_t requests_per_minute;
    /* audit */
    audit_content_mode audit_content;
    char *reviewer_key; /* path of the reviewer's X25519 public key, relative to home */
    int64_t checkpoint_interval;
    /* sandbox */
    int sandbox_required;
    /* users */
    policy_user *users;
    size_t n_users;
} policy;

/* Fills p with the defaults of DESIGN.md. policy_free releases it. */
int policy_defaults(policy *p);
void policy_free(policy *p);

/* Parses and validates JSON text; on error returns -1 with the JSON path and
 * the reason in err. */
int policy_parse(const char *text, size_t len, policy *p, char *err, size_t errlen);

/* Reads and validates a policy file, and computes its digest. */
int policy_load_file(const char *path, policy *p, char digest[POLICY_DIGEST_HEX], char *err,
                     size_t errlen);

/* The policy as canonical, indented JSON (malloc'd, NUL-terminated; the
 * caller frees). Parsing the result gives back the same policy. */
char *policy_to_json(const policy *p);

/* Writes the policy to path atomically (mode 0600) and returns its digest. */
int policy_write_file(const policy *p, const char *path, char digest[POLICY_DIGEST_HEX], char *err,
                      size_t errlen);

/* Hex SHA-256 of bytes, the digest form used for policies. */
void policy_digest_bytes(const void *data, size_t len, char digest[POLICY_DIGEST_HEX]);

const char *audit_content_mode_name(audit_content_mode m);
const char *model_load_mode_name(model_load_mode m);
const char *user_role_name(user_role r);

/* ---- Sandbox ------------------------------------------------------------
 * The engine worker parses hostile bytes, so it is locked down in two steps
 * (DESIGN.md, worker start-up order):
 *   1. sandbox_worker_isolate(), before any thread exists: no core dumps, not
 *      dumpable, every descriptor but the kept ones closed, an empty network
 *      namespace (inside a new user namespace when unprivileged), Landlock
 *      with no file-system rights. Namespaces and Landlock bind the calling
 *      thread only, so they must come before the thread pool.
 *   2. sandbox_worker_lockdown(), after the pool exists: no_new_privs and the
 *      seccomp allow-list (default: kill the process), synchronised to every
 *      thread (TSYNC).
 * The monitor runs under a looser filter: no connect, no socket but AF_UNIX,
 * no exec, no io_uring (which could connect without a system call). */

#include <sys/types.h>

typedef struct sandbox_facts {
    int seccomp_mode;      /* /proc status "Seccomp:": 0 off, 1 strict, 2 filter */
    int no_new_privs;      /* /proc status "NoNewPrivs:" */
    int net_namespace;     /* 1 when the worker has its own empty network namespace */
    int user_namespace;    /* 1 when a user namespace was needed and made */
    int landlock_abi;      /* kernel's Landlock ABI version, 0 when unavailable */
    int landlock_enforced; /* 1 when the no-rights ruleset is in force */
    char notes[256];       /* what the kernel refused, in words */
} sandbox_facts;

/* Step 1 (see above). keep lists descriptors that stay open (the IPC
 * socket, stderr). Fails only on steps that cannot legitimately be missing
 * (rlimit, dumpable, closing descriptors); namespaces and Landlock that the
 * kernel refuses are recorded in facts->notes instead. */
int sandbox_worker_isolate(const int *keep, size_t n_keep, sandbox_facts *facts, char *err,
                           size_t errlen);

/* Step 2 (see above): ipc_fd is the only descriptor the worker may read,
 * and it may write only to ipc_fd and stderr. */
int sandbox_worker_lockdown(int ipc_fd, sandbox_facts *facts, char *err, size_t errlen);

/* The monitor's filter, installed once start-up is done (and any listening
 * socket is bound). */
int sandbox_monitor_lockdown(char *err, size_t errlen);

/* Reads Seccomp and NoNewPrivs of a process (0 = this one) from /proc, and
 * for another process whether it is in a network namespace of its own. */
int sandbox_read_status(pid_t pid, sandbox_facts *facts);

/* One line of a filter, for `appliance policy show-sandbox`. */
typedef struct sandbox_rule {
    const char *syscall;
    const char *action; /* "allow", "allow if ...", "deny (EPERM)", ... */
    const char *why;
} sandbox_rule;

typedef enum { SANDBOX_WORKER, SANDBOX_MONITOR } sandbox_filter;

/* The filter's rules, in table order, and its default action. */
size_t sandbox_filter_size(sandbox_filter f);
sandbox_rule sandbox_filter_rule(sandbox_filter f, size_t i);
const char *sandbox_filter_default(sandbox_filter f);

#endif
