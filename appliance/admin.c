#include "admin.h"
#include "image.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

int admin_open(const app_ctx *ctx, const char *home_flag, const char *cmd, admin *a)
{
    char dir[HOME_PATH_CAP], err[768];
    audit_open_opts o = {0};
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit is a write error, not a death */
    cli_actor(a->actor, sizeof a->actor);
    if (cli_resolve_home(ctx, home_flag, dir, sizeof dir) != 0 ||
        home_layout(dir, &a->h, err, sizeof err) != 0 || !home_is_initialised(&a->h)) {
        cli_error(cmd, "no initialised appliance home (run 'appliance init')");
        return -1;
    }
    if (policy_load_file(a->h.policy, &a->pol, a->digest, err, sizeof err) != 0) {
        cli_error(cmd, "%s", err);
        return -1;
    }
    if (audit_open(&a->log, a->h.audit_db, &o, err, sizeof err) != AUDIT_OK) {
        cli_error(cmd, "cannot open the audit log: %s", err);
        policy_free(&a->pol);
        return -1;
    }
    return 0;
}

void admin_close(admin *a)
{
    audit_close(a->log);
    policy_free(&a->pol);
    a->log = NULL;
}

int admin_audit(admin *a, audit_kind kind, json_t *body)
{
    char err[256];
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(body);
    int rc = text && audit_append(a->log, kind, "", a->actor, text, strlen(text), NULL, NULL, err,
                                  sizeof err) == AUDIT_OK
                 ? 0
                 : -1;
    if (rc != 0)
        cli_error(a->cmd, "the audit log refused the entry: %s", text ? err : "out of memory");
    free(text);
    return rc;
}

int admin_save_policy(admin *a, const char *change)
{
    char err[512], digest[POLICY_DIGEST_HEX];
    /* Audit first: a change that cannot be recorded is not made. */
    char *text = policy_to_json(&a->pol);
    if (!text) {
        cli_error(a->cmd, "out of memory");
        return -1;
    }
    policy_digest_bytes(text, strlen(text), digest);
    free(text);
    if (admin_audit(a, AUDIT_KIND_POLICY_CHANGE,
                    json_pack("{s:s, s:s, s:s}", "change", change, "old_policy_digest", a->digest,
                              "new_policy_digest", digest)) != 0)
        return -1;
    if (policy_write_file(&a->pol, a->h.policy, a->digest, err, sizeof err) != 0) {
        cli_error(a->cmd, "%s", err);
        return -1;
    }
    return 0;
}

char *device_checkpoint(audit_log *log, const char *device_key_path, const char *actor, char *err,
                        size_t errlen)
{
    uint8_t *sk = secret_alloc(64, err, errlen);
    char *note = NULL;
    uint64_t seq;
    if (sk && keys_load_ed25519_secret(device_key_path, sk, err, errlen) == 0 &&
        audit_checkpoint_create(log, sk, actor, &note, &seq, err, errlen) != AUDIT_OK)
        note = NULL;
    secret_free(sk, 64);
    return note;
}
