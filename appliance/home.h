/* The appliance home: one owner-only directory holding the policy, the
 * device's keys, the audit database and installed models.
 *
 *   HOME/policy.json          the policy (0600)
 *   HOME/keys/device.*.pem    the device's Ed25519 pair (attestations, checkpoints)
 *   HOME/keys/reviewer.pub.pem  the compliance officer's X25519 public key
 *   HOME/outbox/              the reviewer's secret key when init made it: it must leave
 *   HOME/audit/               the audit database
 *   HOME/models/              installed models
 */
#ifndef APPLIANCE_HOME_H
#define APPLIANCE_HOME_H

#include <stddef.h>

#define HOME_PATH_CAP 4096

typedef struct home {
    char dir[HOME_PATH_CAP];
    char policy[HOME_PATH_CAP];
    char keys[HOME_PATH_CAP];
    char device_key[HOME_PATH_CAP];
    char device_pub[HOME_PATH_CAP];
    char reviewer_pub[HOME_PATH_CAP];
    char outbox[HOME_PATH_CAP];
    char reviewer_secret[HOME_PATH_CAP]; /* in the outbox, only until moved away */
    char audit[HOME_PATH_CAP];
    char audit_db[HOME_PATH_CAP];
    char models[HOME_PATH_CAP];
} home;

/* Fills every path from the home directory (which need not exist). */
int home_layout(const char *dir, home *h, char *err, size_t errlen);

/* 1 when HOME/policy.json exists (init completed), else 0. */
int home_is_initialised(const home *h);

/* Creates dir (and missing parents) with the given mode; an existing
 * directory is accepted when it is not accessible to group or others. */
int home_make_private_dir(const char *dir, char *err, size_t errlen);

#endif
