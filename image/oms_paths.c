/* Path helpers of the OMS commands: model-relative paths of bundles and
 * ignore paths, opening the model, base names. */
#include "oms_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void oms_free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Absolute form of path with its directory resolved (symlinks included)
 * but its last component kept as named, so a symbolic link inside the
 * model stays the link. The last component need not exist. malloc'd or
 * NULL. */
static char *resolve_path(const char *path)
{
    char *dup1 = strdup(path), *dup2 = strdup(path), *dir = NULL, *out = NULL;
    const char *base;
    if (!dup1 || !dup2)
        goto out;
    base = basename(dup2);
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strcmp(base, "/") == 0) {
        out = realpath(path, NULL);
        goto out;
    }
    if (!(dir = realpath(dirname(dup1), NULL)))
        goto out;
    if (asprintf(&out, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", base) < 0)
        out = NULL;
out:
    free(dir);
    free(dup1);
    free(dup2);
    return out;
}

/* Path of target relative to directory root when it lies inside it (malloc'd),
 * else NULL. */
char *oms_relative_inside(const char *root_abs, const char *target)
{
    char *abs = resolve_path(target), *rel = NULL;
    size_t n = strlen(root_abs);
    if (abs && strncmp(abs, root_abs, n) == 0 && abs[n] == '/' && abs[n + 1])
        rel = strdup(abs + n + 1);
    free(abs);
    return rel;
}

/* Opens the model: a directory, or a regular file. */
int oms_open_model(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return oms_err(err, errlen, "cannot open model %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))) {
        close(fd);
        return oms_err(err, errlen, "model %s is neither a directory nor a regular file", path);
    }
    return fd;
}

char *oms_base_name(const char *path)
{
    char *copy = strdup(path), *b, *out;
    size_t n;
    if (!copy)
        return NULL;
    n = strlen(copy);
    while (n > 1 && copy[n - 1] == '/')
        copy[--n] = 0;
    b = basename(copy);
    out = strdup(b);
    free(copy);
    return out;
}

/* Turns the caller's ignore paths (absolute, or relative to the model root)
 * into model-relative paths; ones outside the model are dropped. */
char **oms_model_relative_ignores(const char *root_abs, const char *const *paths, size_t n,
                                  size_t *n_out)
{
    char **v = calloc(n + 1, sizeof *v);
    size_t k = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char *rel = paths[i][0] == '/' ? oms_relative_inside(root_abs, paths[i]) : strdup(paths[i]);
        char *canon = rel ? oms_canonical_relpath(rel) : NULL;
        free(rel);
        if (canon)
            v[k++] = canon;
    }
    *n_out = k;
    return v;
}
