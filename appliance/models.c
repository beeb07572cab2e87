/* Trust store and installed models: see models.h for the contract. */
#include "models.h"
#include "cli.h"
#include "worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUNDLE_MAX (16u << 20)

/* Writes PEM text to a private temporary file in the home (the OMS code
 * takes paths); the caller unlinks it. */
static int pem_to_temp(const home *h, const char *pem, char *path, size_t cap)
{
    snprintf(path, cap, "%s/.trust-XXXXXX", h->dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    size_t len = strlen(pem);
    int ok = write(fd, pem, len) == (ssize_t)len;
    if (close(fd) != 0 || !ok) {
        unlink(path);
        return -1;
    }
    return 0;
}

static int verify_with_keys(const policy *p, const home *h, const oms_bundle *b, char *signer,
                            size_t signer_len, char *err, size_t errlen)
{
    char path[HOME_PATH_CAP + 32], why[512] = "no publisher key is trusted by the policy";
    for (size_t i = 0; i < p->publisher_keys.count; i++) {
        if (pem_to_temp(h, p->publisher_keys.items[i], path, sizeof path) != 0)
            continue;
        oms_trust t = {.public_key_pem = path};
        int rc = oms_bundle_verify(b, OMS_METHOD_KEY, &t, signer, signer_len, why, sizeof why);
        unlink(path);
        if (rc == 0)
            return 0;
    }
    snprintf(err, errlen, "no trusted publisher key verifies the bundle (%s)", why);
    return -1;
}

static int verify_with_roots(const policy *p, const home *h, const oms_bundle *b, char *signer,
                             size_t signer_len, char *err, size_t errlen)
{
    size_t n = p->ca_roots.count, made = 0;
    char(*paths)[HOME_PATH_CAP + 32] = calloc(n ? n : 1, sizeof *paths);
    const char **list = calloc(n ? n : 1, sizeof *list);
    int rc = -1;
    for (size_t i = 0; paths && list && i < n; i++)
        if (pem_to_temp(h, p->ca_roots.items[i], paths[made], sizeof paths[made]) == 0) {
            list[made] = paths[made];
            made++;
        }
    if (made == 0)
        snprintf(err, errlen, "no CA root is trusted by the policy");
    else {
        oms_trust t = {.ca_paths = list, .n_ca_paths = made};
        rc = oms_bundle_verify(b, OMS_METHOD_CERTIFICATE, &t, signer, signer_len, err, errlen);
    }
    for (size_t i = 0; i < made; i++)
        unlink(paths[i]);
    free(paths);
    free(list);
    return rc;
}

int trust_verify_bundle(const policy *p, const home *h, const oms_bundle *b, char *signer,
                        size_t signer_len, char *err, size_t errlen)
{
    if (b->method == OMS_METHOD_KEY)
        return verify_with_keys(p, h, b, signer, signer_len, err, errlen);
    if (b->method == OMS_METHOD_CERTIFICATE)
        return verify_with_roots(p, h, b, signer, signer_len, err, errlen);
    snprintf(err, errlen, "sigstore bundles cannot be verified offline");
    return -1;
}

int trust_describe(const char *pem, char fp[KEY_FINGERPRINT_HEX], char *desc, size_t desc_len)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    unsigned char *der = NULL, d[32];
    int len = -1;
    if (!bio)
        return -1;
    if (strncmp(pem, "-----BEGIN CERTIFICATE-----", 27) == 0) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x) {
            len = i2d_X509(x, &der);
            X509_NAME_oneline(X509_get_subject_name(x), desc, (int)desc_len);
            X509_free(x);
        }
    } else {
        EVP_PKEY *k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        if (k) {
            len = i2d_PUBKEY(k, &der);
            snprintf(desc, desc_len, "%s public key (%d bits)", EVP_PKEY_get0_type_name(k),
                     EVP_PKEY_get_bits(k));
            EVP_PKEY_free(k);
        }
    }
    BIO_free(bio);
    if (len <= 0)
        return -1;
    crypto_hash_sha256(d, der, (unsigned long long)len);
    OPENSSL_free(der);
    sodium_bin2hex(fp, KEY_FINGERPRINT_HEX, d, sizeof d);
    return 0;
}

/* Parses the bundle, checks it against trust, and takes the one signed
 * file digest out of it. */
static int check_bundle_file(const home *h, const policy *p, const char *bundle_path,
                             char sha256[65], char root[65], char *signer, size_t signer_len,
                             char *err, size_t errlen)
{
    size_t len;
    char *json = cli_read_file(bundle_path, BUNDLE_MAX, &len, err, errlen);
    oms_bundle b;
    unsigned char digest[OMS_DIGEST_MAX];
    size_t dlen;
    const char *hash_type;
    char why[512];
    if (!json)
        return -1;
    int rc = oms_bundle_parse((const unsigned char *)json, len, &b, why, sizeof why);
    free(json);
    if (rc != 0) {
        snprintf(err, errlen, "bundle %s: %s", bundle_path, why);
        return -1;
    }
    rc = -1;
    if (trust_verify_bundle(p, h, &b, signer, signer_len, err, errlen) != 0)
        ;
    else if (oms_manifest_single_file(&b.manifest, digest, &dlen, &hash_type, why, sizeof why) != 0)
        snprintf(err, errlen, "bundle %s does not sign one model file: %s", bundle_path, why);
    else if (strcmp(hash_type, "sha256") != 0 || dlen != 32)
        snprintf(err, errlen, "bundle %s uses %s; the appliance loads sha256-signed models",
                 bundle_path, hash_type);
    else {
        sodium_bin2hex(sha256, 65, digest, 32);
        snprintf(root, 65, "%s", b.manifest.root_digest);
        rc = 0;
    }
    oms_bundle_free(&b);
    return rc;
}

/* Asks a started worker for the provenance. Test builds only: when
 * APPLIANCE_TEST_ADD_VIOLATE is set, the worker is ordered to do what a
 * compromised one would try instead (tests/integration/model_provenance.sh). */
static worker_status ask_worker(worker *w, model_provenance *out, char *why, size_t len)
{
#ifdef APPLIANCE_TEST_HOOKS
    const char *act = getenv("APPLIANCE_TEST_ADD_VIOLATE");
    if (act)
        return worker_provoke(w, strcmp(act, "socket") == 0 ? VIOLATE_SOCKET_INET : VIOLATE_CRASH,
                              NULL, why, len);
#endif
    return worker_provenance(w, out, why, len);
}

/* Starts a sandboxed worker on the sealed copy (as generate does) and asks
 * it for the model's provenance. The context is kept tiny: nothing is
 * generated. Returns 0, -1, or MODEL_INSTALL_SANDBOX_VIOLATION. */
static int read_provenance(int sealed_fd, const policy *p, model_provenance *out, char *err,
                           size_t errlen)
{
    worker w;
    char why[512];
    worker_opts o = {.n_threads = 1,
                     .ctx_cap = 16,
                     .sandbox_required = p->sandbox_required,
                     .reply_timeout_ms = 120000};
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN); /* a dead worker is an error here */
    worker_status ws = worker_start(&w, sealed_fd, &o, why, sizeof why);
    if (ws == WORKER_OK)
        ws = ask_worker(&w, out, why, sizeof why);
    worker_stop(&w);
    signal(SIGPIPE, old_pipe);
    if (ws == WORKER_OK)
        return 0;
    snprintf(err, errlen, "the sandboxed engine could not read the model: %s", why);
    return ws == WORKER_SANDBOX_VIOLATION ? MODEL_INSTALL_SANDBOX_VIOLATION : -1;
}

/* The model as a sealed memfd, its SHA-256 (hex) compared with the signed
 * one; the descriptor, or -1 with err. */
static int sealed_signed_copy(const char *path, const char *shown, const char *signed_hex,
                              image_progress_fn progress, void *user, char *err, size_t errlen)
{
    uint8_t sha[32];
    char hex[65];
    int fd = image_sealed_copy(path, sha, progress, user, err, errlen);
    if (fd < 0)
        return -1;
    sodium_bin2hex(hex, sizeof hex, sha, sizeof sha);
    if (sodium_memcmp(hex, signed_hex, 64) != 0) {
        snprintf(err, errlen, "%s does not match the bundle: sha256 %s, signed %s", shown, hex,
                 signed_hex);
        close(fd);
        return -1;
    }
    return fd;
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] == '.')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static void record_paths(const home *h, const char *name, char *json, char *sig, size_t cap)
{
    snprintf(json, cap, "%s/%s.json", h->models, name);
    snprintf(sig, cap, "%s/%s.sig", h->models, name);
}

static int pinned_ok(const policy *p, const char *root)
{
    if (p->pinned_models.count == 0)
        return 1;
    for (size_t i = 0; i < p->pinned_models.count; i++)
        if (strcmp(p->pinned_models.items[i], root) == 0)
            return 1;
    return 0;
}

static int write_record(const char *path, const model_record *r, char *err, size_t errlen)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o*}", "name", r->name, "path", r->path,
                          "sha256", r->sha256, "root_digest", r->root_digest, "signer", r->signer,
                          "provenance", provenance_to_json(&r->prov));
    int rc = o ? json_dump_file(o, path, JSON_INDENT(2) | JSON_SORT_KEYS) : -1;
    json_decref(o);
    if (rc != 0 || chmod(path, 0600) != 0) {
        snprintf(err, errlen, "cannot write %s", path);
        return -1;
    }
    return 0;
}

static int copy_file(const char *from, const char *to, char *err, size_t errlen)
{
    size_t len;
    char *data = cli_read_file(from, BUNDLE_MAX, &len, err, errlen);
    if (!data)
        return -1;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = 0;
    free(data);
    if (!ok)
        snprintf(err, errlen, "cannot write %s", to);
    return ok ? 0 : -1;
}

int model_install(const home *h, const policy *p, const char *model_path, const char *bundle_path,
                  const char *name, image_progress_fn progress, void *progress_user,
                  model_record *out, char *err, size_t errlen)
{
    char real[PATH_MAX], json[HOME_PATH_CAP + 200], sig[HOME_PATH_CAP + 200];
    struct stat st;
    memset(out, 0, sizeof *out);
    if (!realpath(model_path, real) || stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a model file", model_path);
        return -1;
    }
    const char *base = strrchr(real, '/') + 1;
    snprintf(out->name, sizeof out->name, "%s", name ? name : base);
    if (!valid_name(out->name)) {
        snprintf(err, errlen, "model name '%s' must be 1-64 characters of [A-Za-z0-9._-]",
                 out->name);
        return -1;
    }
    record_paths(h, out->name, json, sig, sizeof json);
    if (stat(json, &st) == 0) {
        snprintf(err, errlen, "a model named %s is already installed", out->name);
        return -1;
    }
    if (check_bundle_file(h, p, bundle_path, out->sha256, out->root_digest, out->signer,
                          sizeof out->signer, err, errlen) != 0)
        return -1;
    if (!pinned_ok(p, out->root_digest)) {
        snprintf(err, errlen, "refused by policy trust.pinned_models: root digest %s is not pinned",
                 out->root_digest);
        return -1;
    }
    int fd =
        sealed_signed_copy(real, model_path, out->sha256, progress, progress_user, err, errlen);
    if (fd < 0)
        return -1;
    int rc = read_provenance(fd, p, &out->prov, err, errlen);
    close(fd);
    if (rc != 0)
        return rc;
    snprintf(out->path, sizeof out->path, "%s", real);
    if (copy_file(bundle_path, sig, err, errlen) != 0 ||
        write_record(json, out, err, errlen) != 0) {
        unlink(sig);
        return -1;
    }
    return 0;
}

static int read_record(const char *path, model_record *r)
{
    json_error_t je;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    const char *name, *mpath, *sha, *root, *signer;
    int rc = -1;
    if (o && json_unpack(o, "{s:s, s:s, s:s, s:s, s:s}", "name", &name, "path", &mpath, "sha256",
                         &sha, "root_digest", &root, "signer", &signer) == 0) {
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", name);
        snprintf(r->path, sizeof r->path, "%s", mpath);
        snprintf(r->sha256, sizeof r->sha256, "%s", sha);
        snprintf(r->root_digest, sizeof r->root_digest, "%s", root);
        snprintf(r->signer, sizeof r->signer, "%s", signer);
        /* Absent in records made before provenance was kept. */
        provenance_from_json(json_object_get(o, "provenance"), &r->prov);
        rc = 0;
    }
    json_decref(o);
    return rc;
}

int model_lookup(const home *h, const char *name, model_record *out, char *err, size_t errlen)
{
    char json[HOME_PATH_CAP + 200], sig[HOME_PATH_CAP + 200];
    if (!valid_name(name)) {
        snprintf(err, errlen, "no installed model is named %s", name);
        return -1;
    }
    record_paths(h, name, json, sig, sizeof json);
    if (read_record(json, out) != 0) {
        snprintf(err, errlen, "no installed model is named %s", name);
        return -1;
    }
    return 0;
}

int model_lookup_digest(const home *h, const char *sha256_hex, model_record *out)
{
    DIR *d = opendir(h->models);
    struct dirent *e;
    int found = -1;
    while (d && found != 0 && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        char path[HOME_PATH_CAP + 300];
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", h->models, e->d_name);
        if (read_record(path, out) == 0 && sodium_memcmp(out->sha256, sha256_hex, 64) == 0)
            found = 0;
    }
    if (d)
        closedir(d);
    return found;
}

int model_recheck(const home *h, const policy *p, const model_record *r, char sha256[65],
                  char *signer, size_t signer_len, char *err, size_t errlen)
{
    char json[HOME_PATH_CAP + 200], sig[HOME_PATH_CAP + 200], root[65];
    record_paths(h, r->name, json, sig, sizeof json);
    if (check_bundle_file(h, p, sig, sha256, root, signer, signer_len, err, errlen) != 0)
        return -1;
    if (!pinned_ok(p, root)) {
        snprintf(err, errlen, "model %s: root digest %s is not pinned", r->name, root);
        return MODEL_NOT_PINNED;
    }
    return 0;
}

int model_remove(const home *h, const char *name, char *err, size_t errlen)
{
    char json[HOME_PATH_CAP + 200], sig[HOME_PATH_CAP + 200];
    model_record r;
    if (model_lookup(h, name, &r, err, errlen) != 0)
        return -1;
    record_paths(h, name, json, sig, sizeof json);
    if (unlink(json) != 0) {
        snprintf(err, errlen, "cannot remove %s: %s", json, strerror(errno));
        return -1;
    }
    unlink(sig);
    return 0;
}

char *trust_load_pem(const char *path, int is_cert, char fp[KEY_FINGERPRINT_HEX], char *desc,
                     size_t desc_len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    BIO *out = BIO_new(BIO_s_mem());
    char *text = NULL, *data;
    int ok = 0;
    if (f && out) {
        if (is_cert) {
            X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
            ok = x && PEM_write_bio_X509(out, x);
            X509_free(x);
        } else {
            EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
            ok = k && EVP_PKEY_get_base_id(k) == EVP_PKEY_EC && PEM_write_bio_PUBKEY(out, k);
            EVP_PKEY_free(k);
        }
    }
    if (f)
        fclose(f);
    long len = ok ? BIO_get_mem_data(out, &data) : 0;
    if (len > 0 && (text = malloc((size_t)len + 1)) != NULL) {
        memcpy(text, data, (size_t)len);
        text[len] = 0;
    }
    BIO_free(out);
    if (!text || trust_describe(text, fp, desc, desc_len) != 0) {
        snprintf(err, errlen, "%s is not a PEM %s", path,
                 is_cert ? "certificate" : "EC public key (P-256, P-384 or P-521)");
        free(text);
        return NULL;
    }
    return text;
}
