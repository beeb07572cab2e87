/* The OMS verification protocol for a model path, top to bottom: read and
 * parse the bundle, check the signer and signature, then the model. */
#include "oms_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_BUNDLE_BYTES (64u << 20)

/* ------------------------------------------------------------ whole flows */

/* Reads a whole (bounded) file. */
static unsigned char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    unsigned char *buf = NULL;
    size_t off = 0;
    if (fd < 0) {
        oms_err(err, errlen, "cannot open bundle %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_BUNDLE_BYTES) {
        oms_err(err, errlen, "bundle %s is not a regular file of at most 64 MiB", path);
        goto fail;
    }
    if (!(buf = malloc((size_t)st.st_size + 1))) {
        oms_err(err, errlen, "out of memory reading %s", path);
        goto fail;
    }
    while (off < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            oms_err(err, errlen, "cannot read bundle %s", path);
            goto fail;
        }
        off += (size_t)n;
    }
    close(fd);
    *len = off;
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

int oms_verify_model(const char *model_path, const char *bundle_path, oms_method method,
                     const oms_trust *trust, const oms_check_opts *opts, oms_verified *out,
                     char *err, size_t errlen)
{
    oms_bundle b;
    unsigned char *json;
    size_t len = 0, n_ign = 0;
    char signer[OMS_SIGNER_MAX], *root_abs = NULL, *bundle_rel = NULL, *name = NULL;
    char **ign = NULL;
    uint64_t bytes = 0;
    int fd = -1, rc = -1;
    if (!(json = read_file(bundle_path, &len, err, errlen)))
        return -1;
    rc = oms_bundle_parse(json, len, &b, err, errlen);
    free(json);
    if (rc != 0)
        return -1;
    rc = -1;
    if (oms_bundle_verify(&b, method, trust, signer, sizeof signer, err, errlen) != 0)
        goto out;
    if ((fd = oms_open_model(model_path, err, errlen)) < 0)
        goto out;
    if (!(root_abs = realpath(model_path, NULL)) || !(name = oms_base_name(root_abs))) {
        oms_err(err, errlen, "cannot resolve model path %s", model_path);
        goto out;
    }
    bundle_rel = oms_relative_inside(root_abs, bundle_path);
    oms_check_opts o = opts ? *opts : (oms_check_opts){0};
    if (!(ign = oms_model_relative_ignores(root_abs, o.ignore_paths, o.n_ignore_paths, &n_ign))) {
        oms_err(err, errlen, "out of memory");
        goto out;
    }
    o.ignore_paths = (const char *const *)ign;
    o.n_ignore_paths = n_ign;
    if (oms_manifest_check_at(&b.manifest, fd, name, bundle_rel, &o, &bytes, err, errlen) != 0)
        goto out;
    if (out) {
        memset(out, 0, sizeof *out);
        memcpy(out->root_digest, b.manifest.root_digest, sizeof out->root_digest);
        snprintf(out->signer, sizeof out->signer, "%s", signer);
        snprintf(out->model_name, sizeof out->model_name, "%s", b.manifest.model_name);
        out->n_resources = b.manifest.n_resources;
        out->bytes_hashed = bytes;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    oms_free_strs(ign, n_ign);
    free(root_abs);
    free(bundle_rel);
    free(name);
    oms_bundle_free(&b);
    return rc;
}
