/* OMS signing: hash the model -> statement -> DSSE signature -> bundle. */
#include "oms_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- signing */

/* Loads the signing certificate and chain as DER blobs, leaf first, and
 * checks the leaf holds the private key's public half. */
static int load_cert_ders(const oms_sign_opts *o, EVP_PKEY *key, unsigned char ***ders,
                          size_t **lens, size_t *n, char *err, size_t errlen)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    int rc = -1;
    *ders = NULL;
    *lens = NULL;
    *n = 0;
    if (!sk)
        return oms_err(err, errlen, "out of memory");
    if (!o->signing_cert_pem) {
        oms_err(err, errlen, "the certificate method needs --signing-cert");
        goto out;
    }
    if (oms_read_pem_certs(o->signing_cert_pem, sk, err, errlen) < 0)
        goto out;
    if (EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(sk, 0)), key) != 1) {
        oms_err(err, errlen, "signing certificate %s does not match private key %s",
                o->signing_cert_pem, o->private_key_pem);
        goto out;
    }
    while (sk_X509_num(sk) > 1)
        X509_free(sk_X509_pop(sk)); /* only the leaf of the signing-cert file */
    for (size_t i = 0; i < o->n_chain_pems; i++)
        if (oms_read_pem_certs(o->chain_pems[i], sk, err, errlen) < 0)
            goto out;
    *ders = calloc((size_t)sk_X509_num(sk), sizeof **ders);
    *lens = calloc((size_t)sk_X509_num(sk), sizeof **lens);
    if (!*ders || !*lens) {
        oms_err(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < sk_X509_num(sk); i++) {
        unsigned char *der = NULL;
        int l = i2d_X509(sk_X509_value(sk, i), &der);
        if (l <= 0) {
            oms_err(err, errlen, "cannot encode a chain certificate");
            goto out;
        }
        (*ders)[i] = der;
        (*lens)[i] = (size_t)l;
        *n = (size_t)i + 1;
    }
    rc = 0;
out:
    ERR_clear_error();
    sk_X509_pop_free(sk, X509_free);
    return rc;
}

static void free_ders(unsigned char **ders, size_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++)
        OPENSSL_free(ders[i]);
    free(ders);
    free(lens);
}

int oms_sign_payload(const oms_sign_opts *o, const unsigned char *payload, size_t payload_len,
                     char **bundle_json, char *err, size_t errlen)
{
    EVP_PKEY *key = NULL;
    unsigned char **ders = NULL, *sig = NULL;
    size_t *lens = NULL, n_ders = 0, sig_len = 0;
    char hint[65];
    int rc = -1;
    *bundle_json = NULL;
    if (o->method != OMS_METHOD_KEY && o->method != OMS_METHOD_CERTIFICATE)
        return oms_err(err, errlen, "only the key and certificate methods can sign offline");
    if (!o->private_key_pem)
        return oms_err(err, errlen, "signing needs a private key");
    if (!(key = oms_load_private_key(o->private_key_pem, err, errlen)))
        return -1;
    if (o->method == OMS_METHOD_CERTIFICATE &&
        load_cert_ders(o, key, &ders, &lens, &n_ders, err, errlen) != 0)
        goto out;
    if (oms_key_hint(key, hint) != 0) {
        oms_err(err, errlen, "cannot compute the key fingerprint");
        goto out;
    }
    if (oms_sign_pae(key, payload, payload_len, &sig, &sig_len, err, errlen) != 0)
        goto out;
    *bundle_json = oms_bundle_build(hint, o->method == OMS_METHOD_CERTIFICATE ? ders : NULL, lens,
                                    n_ders, payload, payload_len, sig, sig_len);
    if (!*bundle_json) {
        oms_err(err, errlen, "cannot build the bundle JSON");
        goto out;
    }
    rc = 0;
out:
    free(sig);
    free_ders(ders, lens, n_ders);
    EVP_PKEY_free(key);
    return rc;
}

/* Writes data to path atomically: a temporary file beside it, then rename. */
static int write_atomic(const char *path, const char *data, char *err, size_t errlen)
{
    char *tmp = NULL;
    size_t len = strlen(data), off = 0;
    int fd;
    if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0)
        return oms_err(err, errlen, "out of memory");
    if ((fd = mkstemp(tmp)) < 0) {
        oms_err(err, errlen, "cannot create %s: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    if (off != len || fchmod(fd, 0644) != 0 || fsync(fd) != 0 || close(fd) != 0 ||
        rename(tmp, path) != 0) {
        if (off != len)
            close(fd);
        unlink(tmp);
        free(tmp);
        return oms_err(err, errlen, "cannot write bundle %s", path);
    }
    free(tmp);
    return 0;
}

/* Fills m->resources from the computed entries (sorted by name). */
static int manifest_from_entries(oms_manifest *m, oms_entry *e, size_t n, char *err, size_t errlen)
{
    if (n == 0)
        return oms_err(err, errlen, "the model has no files to sign (after exclusions)");
    if (!(m->resources = calloc(n, sizeof *m->resources)))
        return oms_err(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        m->resources[i].name = e[i].name;
        e[i].name = NULL;
        memcpy(m->resources[i].digest, e[i].digest, e[i].digest_len);
        m->resources[i].digest_len = e[i].digest_len;
        m->n_resources = i + 1;
    }
    return 0;
}

/* Hashes the model for signing and builds the manifest. */
static int sign_manifest(const oms_sign_opts *o, int fd, const char *root_abs, oms_manifest *m,
                         char *err, size_t errlen)
{
    oms_hash_req req = {.root_fd = fd,
                        .hash_type = "sha256",
                        .shard_size = o->shard_size,
                        .strict_names = true,
                        .threads = o->threads,
                        .progress = o->progress,
                        .progress_arg = o->progress_arg};
    oms_entry *e = NULL;
    size_t n = 0, n_user = 0;
    char **user = oms_model_relative_ignores(root_abs, o->ignore_paths, o->n_ignore_paths, &n_user);
    char *bundle_rel = o->output_bundle ? oms_relative_inside(root_abs, o->output_bundle) : NULL;
    int rc = -1;
    struct stat st;
    snprintf(m->hash_type, sizeof m->hash_type, "sha256");
    m->shards = o->shard_size > 0;
    m->shard_size = o->shard_size;
    if (!user || !(m->model_name = oms_base_name(root_abs)) ||
        !(m->ignore_paths = calloc(4 + n_user + 1, sizeof *m->ignore_paths))) {
        oms_err(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < 4; i++)
        m->ignore_paths[m->n_ignore_paths++] = strdup(oms_default_ignores[i]);
    for (size_t i = 0; i < n_user; i++) {
        /* OMS 6.2.1: ignore paths are exact paths, never patterns. */
        if (strpbrk(user[i], "*?[")) {
            oms_err(err, errlen,
                    "ignore path '%s' holds a glob character (*, ? or [), which OMS forbids",
                    user[i]);
            goto out;
        }
        m->ignore_paths[m->n_ignore_paths++] = strdup(user[i]);
    }
    if (bundle_rel)
        m->ignore_paths[m->n_ignore_paths++] = oms_canonical_relpath(bundle_rel);
    for (size_t i = 0; i < m->n_ignore_paths; i++)
        if (!m->ignore_paths[i]) {
            oms_err(err, errlen, "out of memory");
            goto out;
        }
    req.ignore = m->ignore_paths;
    req.n_ignore = m->n_ignore_paths;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        req.file_name = o->single_file_basename ? m->model_name : ".";
    if (oms_hash_model(&req, &e, &n, NULL, err, errlen) != 0 ||
        manifest_from_entries(m, e, n, err, errlen) != 0)
        goto out;
    if (oms_root_digest(m, m->root_digest) != 0) {
        oms_err(err, errlen, "cannot compute the root digest");
        goto out;
    }
    rc = 0;
out:
    oms_entries_free(e, n);
    oms_free_strs(user, n_user);
    free(bundle_rel);
    return rc;
}

int oms_sign_model(const oms_sign_opts *o, char root_digest[65], size_t *n_files, char *err,
                   size_t errlen)
{
    oms_manifest m = {0};
    char *root_abs = NULL, *payload = NULL, *bundle = NULL;
    int fd, rc = -1;
    if (!o->model_path || !o->output_bundle)
        return oms_err(err, errlen, "signing needs a model path and an output bundle path");
    if ((fd = oms_open_model(o->model_path, err, errlen)) < 0)
        return -1;
    if (!(root_abs = realpath(o->model_path, NULL))) {
        oms_err(err, errlen, "cannot resolve model path %s", o->model_path);
        goto out;
    }
    if (sign_manifest(o, fd, root_abs, &m, err, errlen) != 0)
        goto out;
    if (!(payload = oms_statement_build(&m))) {
        oms_err(err, errlen, "cannot build the statement JSON (a file name is not valid UTF-8?)");
        goto out;
    }
    if (oms_sign_payload(o, (const unsigned char *)payload, strlen(payload), &bundle, err,
                         errlen) != 0 ||
        write_atomic(o->output_bundle, bundle, err, errlen) != 0)
        goto out;
    if (root_digest)
        memcpy(root_digest, m.root_digest, 65);
    if (n_files)
        *n_files = m.n_resources;
    rc = 0;
out:
    close(fd);
    free(root_abs);
    free(payload);
    free(bundle);
    oms_manifest_free(&m);
    return rc;
}
