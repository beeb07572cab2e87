/* OMS verification and signing protocols, top to bottom:
 *   verify: parse bundle -> check signer (key hint / certificate chain) ->
 *           check DSSE signature -> hash the model -> compare manifests.
 *   sign:   hash the model -> statement -> DSSE signature -> bundle file. */
#include "oms_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_BUNDLE_BYTES (64u << 20)

/* ------------------------------------------------------------ signatures */

/* 1 when any DSSE signature of b verifies with key. */
static int any_signature_verifies(const oms_bundle *b, EVP_PKEY *key)
{
    for (size_t i = 0; i < b->n_sigs; i++)
        if (oms_verify_pae(key, b->payload, b->payload_len, b->sigs[i], b->sig_lens[i]))
            return 1;
    return 0;
}

/* Parses publicKey.rawBytes: DER SubjectPublicKeyInfo, or (as historical
 * signers wrote it) the PEM text. */
static EVP_PKEY *raw_key(const oms_bundle *b)
{
    const unsigned char *p = b->key_raw;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)b->key_raw_len);
    if (!k) {
        BIO *bio = BIO_new_mem_buf(b->key_raw, (int)b->key_raw_len);
        if (bio)
            k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    ERR_clear_error();
    return k;
}

static int verify_key_method(const oms_bundle *b, const oms_trust *t, char *signer, size_t slen,
                             char *err, size_t errlen)
{
    EVP_PKEY *key;
    char hint[65];
    int rc = -1;
    if (!t->public_key_pem)
        return oms_err(err, errlen, "the key method needs a trusted public key");
    if (!(key = oms_load_public_key(t->public_key_pem, err, errlen)))
        return -1;
    if (oms_key_hint(key, hint) != 0) {
        oms_err(err, errlen, "cannot compute the fingerprint of %s", t->public_key_pem);
        goto out;
    }
    if (b->key_hint && strcasecmp(b->key_hint, hint) != 0) {
        oms_err(err, errlen,
                "wrong key: the bundle was signed by key sha256:%s, the given public key is "
                "sha256:%s",
                b->key_hint, hint);
        goto out;
    }
    if (b->key_raw) {
        EVP_PKEY *rk = raw_key(b);
        int same = rk && EVP_PKEY_eq(rk, key) == 1;
        EVP_PKEY_free(rk);
        if (!same) {
            oms_err(err, errlen,
                    "wrong key: the public key in the bundle is not the given public key "
                    "(sha256:%s)",
                    hint);
            goto out;
        }
    }
    if (!any_signature_verifies(b, key)) {
        oms_err(err, errlen, "bad signature: the DSSE signature does not verify with key sha256:%s",
                hint);
        goto out;
    }
    snprintf(signer, slen, "key %s sha256:%s", oms_key_type(key), hint);
    rc = 0;
out:
    ERR_clear_error();
    EVP_PKEY_free(key);
    return rc;
}

static void cert_fingerprint(X509 *c, char hex[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    hex[0] = 0;
    if (X509_digest(c, EVP_sha256(), md, &n) == 1 && n == 32)
        oms_hex(md, 32, hex);
}

/* Formats an ASN1_TIME as "YYYY-MM-DD HH:MM:SS UTC". */
static void time_text(const ASN1_TIME *t, char *out, size_t cap)
{
    struct tm tm;
    snprintf(out, cap, "(unknown time)");
    if (t && ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* The leaf must be allowed to sign: key usage (when present) must include
 * digitalSignature, extended key usage (when present) must include code
 * signing. OpenSSL 3.0 has no code-signing purpose, so it is checked here. */
static int check_leaf_usage(X509 *leaf, const char *subj, char *err, size_t errlen)
{
    uint32_t ku = X509_get_key_usage(leaf);
    uint32_t xku = X509_get_extended_key_usage(leaf);
    if (ku != UINT32_MAX && !(ku & KU_DIGITAL_SIGNATURE))
        return oms_err(err, errlen,
                       "certificate %s may not sign: its key usage lacks digitalSignature", subj);
    if (xku != UINT32_MAX && !(xku & (XKU_CODE_SIGN | XKU_ANYEKU)))
        return oms_err(err, errlen,
                       "certificate %s may not sign code: its extended key usage lacks codeSigning",
                       subj);
    return 0;
}

static int chain_error(X509_STORE_CTX *ctx, char *err, size_t errlen)
{
    int e = X509_STORE_CTX_get_error(ctx);
    X509 *bad = X509_STORE_CTX_get_current_cert(ctx);
    char subj[256] = "(unknown)", when[64];
    if (bad)
        oms_cert_subject(bad, subj, sizeof subj);
    if (e == X509_V_ERR_CERT_HAS_EXPIRED && bad) {
        time_text(X509_get0_notAfter(bad), when, sizeof when);
        return oms_err(err, errlen, "certificate expired: %s was valid until %s", subj, when);
    }
    if (e == X509_V_ERR_CERT_NOT_YET_VALID && bad) {
        time_text(X509_get0_notBefore(bad), when, sizeof when);
        return oms_err(err, errlen, "certificate not yet valid: %s is valid from %s", subj, when);
    }
    if (e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
        e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT || e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
        e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT)
        return oms_err(err, errlen, "untrusted certificate: %s does not chain to a trusted CA (%s)",
                       subj, X509_verify_cert_error_string(e));
    return oms_err(err, errlen, "certificate chain rejected at %s: %s", subj,
                   X509_verify_cert_error_string(e));
}

/* Decodes the bundle's DER certificates: leaf into *leaf, the rest into
 * untrusted. */
static int decode_chain(const oms_bundle *b, X509 **leaf, STACK_OF(X509) * untrusted, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i < b->n_certs; i++) {
        const unsigned char *p = b->certs[i];
        X509 *c = d2i_X509(NULL, &p, (long)b->cert_lens[i]);
        if (!c || p != b->certs[i] + b->cert_lens[i]) {
            X509_free(c);
            ERR_clear_error();
            return oms_err(err, errlen,
                           "malformed bundle: x509CertificateChain.certificates[%zu] is not a DER "
                           "certificate",
                           i);
        }
        if (i == 0) {
            *leaf = c;
        } else if (!sk_X509_push(untrusted, c)) {
            X509_free(c);
            return oms_err(err, errlen, "out of memory");
        }
    }
    return 0;
}

static int build_store(const oms_trust *t, X509_STORE **out, char *err, size_t errlen)
{
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509) *cas = sk_X509_new_null();
    int rc = -1;
    if (!store || !cas) {
        oms_err(err, errlen, "out of memory");
        goto out;
    }
    if (t->n_ca_paths == 0) {
        oms_err(err, errlen, "the certificate method needs at least one trusted CA (--cert-chain)");
        goto out;
    }
    for (size_t i = 0; i < t->n_ca_paths; i++)
        if (oms_read_pem_certs(t->ca_paths[i], cas, err, errlen) < 0)
            goto out;
    for (int i = 0; i < sk_X509_num(cas); i++)
        if (X509_STORE_add_cert(store, sk_X509_value(cas, i)) != 1) {
            oms_err(err, errlen, "cannot add a trusted CA certificate");
            goto out;
        }
    /* Every certificate the user names is an anchor, root or intermediate. */
    X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
    *out = store;
    store = NULL;
    rc = 0;
out:
    ERR_clear_error();
    X509_STORE_free(store);
    sk_X509_pop_free(cas, X509_free);
    return rc;
}

static int verify_cert_method(const oms_bundle *b, const oms_trust *t, char *signer, size_t slen,
                              char *err, size_t errlen)
{
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509 *leaf = NULL;
    EVP_PKEY *key;
    char subj[256], fp[65];
    int rc = -1;
    if (!ctx || !untrusted) {
        oms_err(err, errlen, "out of memory");
        goto out;
    }
    if (decode_chain(b, &leaf, untrusted, err, errlen) != 0 ||
        build_store(t, &store, err, errlen) != 0)
        goto out;
    oms_cert_subject(leaf, subj, sizeof subj);
    if (X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
        oms_err(err, errlen, "cannot set up certificate verification");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        chain_error(ctx, err, errlen);
        goto out;
    }
    if (check_leaf_usage(leaf, subj, err, errlen) != 0)
        goto out;
    key = X509_get0_pubkey(leaf);
    if (!key || !oms_ec_md(key)) {
        oms_err(err, errlen, "certificate %s does not hold an EC P-256, P-384 or P-521 key", subj);
        goto out;
    }
    cert_fingerprint(leaf, fp);
    if (!any_signature_verifies(b, key)) {
        oms_err(err, errlen,
                "bad signature: the DSSE signature does not verify with certificate %s", subj);
        goto out;
    }
    snprintf(signer, slen, "certificate %s sha256:%s", subj, fp);
    rc = 0;
out:
    ERR_clear_error();
    X509_free(leaf);
    sk_X509_pop_free(untrusted, X509_free);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return rc;
}

int oms_bundle_verify(const oms_bundle *b, oms_method expected, const oms_trust *trust,
                      char *signer, size_t signer_len, char *err, size_t errlen)
{
    if (b->method == OMS_METHOD_SIGSTORE)
        return oms_err(err, errlen,
                       "the bundle uses the sigstore method (Fulcio certificate, Rekor log), which "
                       "cannot be verified offline; use the key or certificate method");
    if (b->method != expected)
        return oms_err(err, errlen, "the bundle uses the %s method, not the %s method given",
                       oms_method_name(b->method), oms_method_name(expected));
    if (expected == OMS_METHOD_KEY)
        return verify_key_method(b, trust, signer, signer_len, err, errlen);
    return verify_cert_method(b, trust, signer, signer_len, err, errlen);
}

int oms_bundle_describe_signer(const oms_bundle *b, char *out, size_t outlen)
{
    if (b->method == OMS_METHOD_KEY) {
        EVP_PKEY *k = b->key_raw ? raw_key(b) : NULL;
        char hint[65] = "";
        if (k && oms_key_hint(k, hint) != 0)
            hint[0] = 0;
        snprintf(out, outlen, "key %s sha256:%s", k ? oms_key_type(k) : "(type not recorded)",
                 b->key_hint ? b->key_hint : hint);
        EVP_PKEY_free(k);
        return 0;
    }
    if (b->method == OMS_METHOD_CERTIFICATE) {
        const unsigned char *p = b->certs[0];
        X509 *c = d2i_X509(NULL, &p, (long)b->cert_lens[0]);
        char subj[256], from[64], until[64], fp[65];
        ERR_clear_error();
        if (!c) {
            snprintf(out, outlen, "certificate (undecodable)");
            return -1;
        }
        oms_cert_subject(c, subj, sizeof subj);
        time_text(X509_get0_notBefore(c), from, sizeof from);
        time_text(X509_get0_notAfter(c), until, sizeof until);
        cert_fingerprint(c, fp);
        snprintf(out, outlen, "certificate %s sha256:%s (valid %s to %s, %zu in chain)", subj, fp,
                 from, until, b->n_certs);
        X509_free(c);
        return 0;
    }
    snprintf(out, outlen, "sigstore (keyless; not verifiable offline)");
    return 0;
}

/* ---------------------------------------------------- manifest comparison */

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

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
            free_strs(v, n);
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
    free_strs(req.ignore, req.n_ignore);
    return rc;
}

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
static char *relative_inside(const char *root_abs, const char *target)
{
    char *abs = resolve_path(target), *rel = NULL;
    size_t n = strlen(root_abs);
    if (abs && strncmp(abs, root_abs, n) == 0 && abs[n] == '/' && abs[n + 1])
        rel = strdup(abs + n + 1);
    free(abs);
    return rel;
}

/* Opens the model: a directory, or a regular file. */
static int open_model(const char *path, char *err, size_t errlen)
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

static char *base_name_of(const char *path)
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
static char **model_relative_ignores(const char *root_abs, const char *const *paths, size_t n,
                                     size_t *n_out)
{
    char **v = calloc(n + 1, sizeof *v);
    size_t k = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char *rel = paths[i][0] == '/' ? relative_inside(root_abs, paths[i]) : strdup(paths[i]);
        char *canon = rel ? oms_canonical_relpath(rel) : NULL;
        free(rel);
        if (canon)
            v[k++] = canon;
    }
    *n_out = k;
    return v;
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
    if ((fd = open_model(model_path, err, errlen)) < 0)
        goto out;
    if (!(root_abs = realpath(model_path, NULL)) || !(name = base_name_of(root_abs))) {
        oms_err(err, errlen, "cannot resolve model path %s", model_path);
        goto out;
    }
    bundle_rel = relative_inside(root_abs, bundle_path);
    oms_check_opts o = opts ? *opts : (oms_check_opts){0};
    if (!(ign = model_relative_ignores(root_abs, o.ignore_paths, o.n_ignore_paths, &n_ign))) {
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
    free_strs(ign, n_ign);
    free(root_abs);
    free(bundle_rel);
    free(name);
    oms_bundle_free(&b);
    return rc;
}

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

static int compute_root(oms_manifest *m)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[32];
    unsigned int n = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < m->n_resources; i++)
        ok = EVP_DigestUpdate(ctx, m->resources[i].digest, m->resources[i].digest_len) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &n) == 1;
    EVP_MD_CTX_free(ctx);
    if (ok)
        oms_hex(md, 32, m->root_digest);
    return ok ? 0 : -1;
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
    char **user = model_relative_ignores(root_abs, o->ignore_paths, o->n_ignore_paths, &n_user);
    char *bundle_rel = o->output_bundle ? relative_inside(root_abs, o->output_bundle) : NULL;
    int rc = -1;
    struct stat st;
    snprintf(m->hash_type, sizeof m->hash_type, "sha256");
    m->shards = o->shard_size > 0;
    m->shard_size = o->shard_size;
    if (!user || !(m->model_name = base_name_of(root_abs)) ||
        !(m->ignore_paths = calloc(4 + n_user + 1, sizeof *m->ignore_paths))) {
        oms_err(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < 4; i++)
        m->ignore_paths[m->n_ignore_paths++] = strdup(oms_default_ignores[i]);
    for (size_t i = 0; i < n_user; i++)
        m->ignore_paths[m->n_ignore_paths++] = strdup(user[i]);
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
        req.file_name = m->model_name;
    if (oms_hash_model(&req, &e, &n, NULL, err, errlen) != 0 ||
        manifest_from_entries(m, e, n, err, errlen) != 0)
        goto out;
    if (compute_root(m) != 0) {
        oms_err(err, errlen, "cannot compute the root digest");
        goto out;
    }
    rc = 0;
out:
    oms_entries_free(e, n);
    free_strs(user, n_user);
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
    if ((fd = open_model(o->model_path, err, errlen)) < 0)
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
