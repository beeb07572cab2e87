/* Checks a model on disk against a signed manifest: hashes it as the
 * serialization says and names the first file that differs, is missing or
 * is extra. */
#include "oms_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------- manifest comparison */

/* Collects the ignore list: defaults, the bundle's, the caller's, the
 * bundle file itself. Entries that are not relative model paths (such as
 * the Go signer's repository-relative paths) cannot match and are dropped. */
static int collect_ignores(const oms_manifest *m, const char *bundle_rel, const oms_check_opts *o,
                           char ***out, size_t *n_out)
{
    size_t cap = 4 + m->n_ignore_paths + (o ? o->n_ignore_paths : 0) + 1, n = 0;
    char **v = calloc(cap, sizeof *v);
    if (!v)
        return -1;
    for (size_t i = 0; i < 4; i++)
        v[n++] = strdup(oms_default_ignores[i]);
    for (size_t i = 0; i < m->n_ignore_paths; i++)
        if ((v[n] = oms_canonical_relpath(m->ignore_paths[i])))
            n++;
    for (size_t i = 0; o && i < o->n_ignore_paths; i++)
        if ((v[n] = oms_canonical_relpath(o->ignore_paths[i])))
            n++;
    if (bundle_rel && (v[n] = oms_canonical_relpath(bundle_rel)))
        n++;
    for (size_t i = 0; i < 4; i++)
        if (!v[i]) {
            oms_free_strs(v, n);
            return -1;
        }
    *out = v;
    *n_out = n;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_res_name(const void *a, const void *b)
{
    return strcmp((*(const oms_resource *const *)a)->name, (*(const oms_resource *const *)b)->name);
}

typedef struct diff {
    char first_mod[256], first_missing[256], first_extra[256];
    char mod_have[2 * OMS_DIGEST_MAX + 1], mod_want[2 * OMS_DIGEST_MAX + 1];
    size_t n_mod, n_missing, n_extra;
} diff;

static void note(char *slot, size_t *count, const char *name)
{
    if ((*count)++ == 0)
        snprintf(slot, 256, "%s", name);
}

/* Merge-walks the sorted expected resources and computed entries. */
static void compare(const oms_resource **exp, size_t ne, const oms_entry *got, size_t ng, diff *d)
{
    size_t i = 0, j = 0;
    while (i < ne || j < ng) {
        int c = i == ne ? 1 : j == ng ? -1 : strcmp(exp[i]->name, got[j].name);
        if (c < 0) {
            note(d->first_missing, &d->n_missing, exp[i++]->name);
        } else if (c > 0) {
            note(d->first_extra, &d->n_extra, got[j++].name);
        } else {
            if (exp[i]->digest_len != got[j].digest_len ||
                memcmp(exp[i]->digest, got[j].digest, got[j].digest_len) != 0) {
                if (d->n_mod == 0) {
                    oms_hex(got[j].digest, got[j].digest_len, d->mod_have);
                    oms_hex(exp[i]->digest, exp[i]->digest_len, d->mod_want);
                }
                note(d->first_mod, &d->n_mod, got[j].name);
            }
            i++;
            j++;
        }
    }
}

static int report(const diff *d, bool ignore_unsigned, const char *hash_type, char *err,
                  size_t errlen)
{
    size_t total = d->n_mod + d->n_missing + (ignore_unsigned ? 0 : d->n_extra);
    char more[64] = "";
    if (total == 0)
        return 0;
    if (total > 1)
        snprintf(more, sizeof more, " (and %zu more problem%s)", total - 1, total > 2 ? "s" : "");
    if (d->n_mod)
        return oms_err(err, errlen, "file '%s' does not match the bundle: %s %s, signed %s%s",
                       d->first_mod, hash_type, d->mod_have, d->mod_want, more);
    if (d->n_missing)
        return oms_err(err, errlen,
                       "file '%s' is signed in the bundle but missing from the model%s",
                       d->first_missing, more);
    return oms_err(err, errlen, "file '%s' is in the model but not signed by the bundle%s",
                   d->first_extra, more);
}

/* With --ignore-unsigned-files only signed paths are hashed: the sorted,
 * unique paths of the resources. */
static const char **signed_paths(const oms_manifest *m, size_t *n_out)
{
    const char **v = malloc((m->n_resources + 1) * sizeof *v);
    size_t n = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < m->n_resources; i++)
        v[i] = m->resources[i].path;
    qsort(v, m->n_resources, sizeof *v, cmp_str);
    for (size_t i = 0; i < m->n_resources; i++)
        if (n == 0 || strcmp(v[n - 1], v[i]) != 0)
            v[n++] = v[i];
    *n_out = n;
    return v;
}

/* The one path all resources share, or NULL when they name several. */
static const char *single_path(const oms_manifest *m)
{
    for (size_t i = 1; i < m->n_resources; i++)
        if (strcmp(m->resources[i].path, m->resources[0].path) != 0)
            return NULL;
    return m->n_resources ? m->resources[0].path : NULL;
}

int oms_manifest_single_file(const oms_manifest *m, unsigned char digest[OMS_DIGEST_MAX],
                             size_t *digest_len, const char **hash_type, char *err, size_t errlen)
{
    if (m->shards)
        return oms_err(err, errlen, "the bundle signs the model in shards, not as one file");
    if (m->n_resources != 1)
        return oms_err(err, errlen, "the bundle signs %zu files, not a single-file model",
                       m->n_resources);
    memcpy(digest, m->resources[0].digest, m->resources[0].digest_len);
    *digest_len = m->resources[0].digest_len;
    *hash_type = m->hash_type;
    return 0;
}

int oms_manifest_check_at(const oms_manifest *m, int model_fd, const char *file_name,
                          const char *bundle_rel, const oms_check_opts *opts,
                          uint64_t *bytes_hashed, char *err, size_t errlen)
{
    oms_hash_req req = {.root_fd = model_fd,
                        .hash_type = m->hash_type,
                        .shard_size = m->shards ? m->shard_size : 0,
                        .allow_symlinks = m->allow_symlinks};
    bool ignore_unsigned = opts && opts->ignore_unsigned_files;
    const char **only = NULL;
    const oms_resource **exp = NULL;
    oms_entry *got = NULL;
    size_t n_got = 0, n_only = 0;
    diff d = {0};
    int rc = -1;
    struct stat st;
    if (fstat(model_fd, &st) != 0)
        return oms_err(err, errlen, "cannot stat the model");
    if (S_ISREG(st.st_mode)) {
        /* A single-file model is its content: when every resource names one
         * and the same file (historical bundles call it "."), that is this
         * file whatever it is called now, so a renamed copy still verifies. */
        req.file_name = single_path(m) ? single_path(m) : file_name;
        if (!req.file_name)
            return oms_err(err, errlen, "the model file needs a name");
    }
    if (opts) {
        req.threads = opts->threads;
        req.progress = opts->progress;
        req.progress_arg = opts->progress_arg;
    }
    if (collect_ignores(m, bundle_rel, opts, &req.ignore, &req.n_ignore) != 0)
        return oms_err(err, errlen, "out of memory");
    if (ignore_unsigned) {
        if (!(only = signed_paths(m, &n_only))) {
            oms_err(err, errlen, "out of memory");
            goto out;
        }
        req.only_paths = only;
        req.n_only_paths = n_only;
    }
    if (oms_hash_model(&req, &got, &n_got, bytes_hashed, err, errlen) != 0)
        goto out;
    if (!(exp = malloc((m->n_resources + 1) * sizeof *exp))) {
        oms_err(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < m->n_resources; i++)
        exp[i] = &m->resources[i];
    qsort(exp, m->n_resources, sizeof *exp, cmp_res_name);
    compare(exp, m->n_resources, got, n_got, &d);
    rc = report(&d, ignore_unsigned, m->hash_type, err, errlen);
out:
    free(exp);
    free(only);
    oms_entries_free(got, n_got);
    oms_free_strs(req.ignore, req.n_ignore);
    return rc;
}
