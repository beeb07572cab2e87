/* What administrative commands (trust, model) share: the home, its policy
 * and its audit log, opened together; every change is audited (internal to
 * appliance/). Errors are printed once as "appliance CMD: ...". */
#ifndef APPLIANCE_ADMIN_H
#define APPLIANCE_ADMIN_H

#include <jansson.h>

#include "audit.h"
#include "cli.h"
#include "home.h"
#include "policy.h"

typedef struct admin {
    const char *cmd;
    home h;
    policy pol;
    char digest[POLICY_DIGEST_HEX];
    audit_log *log;
    char actor[128];
} admin;

int admin_open(const app_ctx *ctx, const char *home_flag, const char *cmd, admin *a);
void admin_close(admin *a);
/* Appends an entry (body is consumed); returns 0, or -1 after printing why. */
int admin_audit(admin *a, audit_kind kind, json_t *body);
/* Writes a->pol as the home's policy and audits a policy_change naming the
 * old and new digests and the change. */
int admin_save_policy(admin *a, const char *change);

/* Signs a checkpoint of log now with the device key at device_key_path,
 * which is loaded into wipe-on-fork secret memory and wiped right after.
 * Returns the note (malloc'd), or NULL with err. */
char *device_checkpoint(audit_log *log, const char *device_key_path, const char *actor, char *err,
                        size_t errlen);

#endif
