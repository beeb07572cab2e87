#include "home.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int join(char *out, const char *dir, const char *rel)
{
    return (size_t)snprintf(out, HOME_PATH_CAP, "%s/%s", dir, rel) < HOME_PATH_CAP ? 0 : -1;
}

int home_layout(const char *dir, home *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    size_t n = strlen(dir);
    /* Strip trailing slashes so paths read cleanly ("/x/policy.json"). */
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n == 0 || n + 64 >= HOME_PATH_CAP) {
        snprintf(err, errlen, "appliance home path is empty or too long");
        return -1;
    }
    memcpy(h->dir, dir, n);
    h->dir[n] = 0;
    if (join(h->policy, h->dir, "policy.json") || join(h->keys, h->dir, "keys") ||
        join(h->device_key, h->keys, "device.key.pem") ||
        join(h->device_pub, h->keys, "device.pub.pem") ||
        join(h->reviewer_pub, h->keys, "reviewer.pub.pem") || join(h->outbox, h->dir, "outbox") ||
        join(h->reviewer_secret, h->outbox, "reviewer.key.pem") ||
        join(h->audit, h->dir, "audit") || join(h->audit_db, h->audit, "audit.db") ||
        join(h->models, h->dir, "models")) {
        snprintf(err, errlen, "appliance home path too long: %s", dir);
        return -1;
    }
    return 0;
}

int home_is_initialised(const home *h)
{
    struct stat st;
    return stat(h->policy, &st) == 0 && S_ISREG(st.st_mode);
}

int home_make_private_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a directory", dir);
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen, "%s is accessible to other users (mode %03o; must be 0700)", dir,
                 (unsigned)(st.st_mode & 0777));
        return -1;
    }
    return 0;
}
