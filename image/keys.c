/* Key generation and loading. Ed25519 and X25519 pairs come from libsodium
 * (the library that uses them); OpenSSL only encodes them as PKCS#8 /
 * SubjectPublicKeyInfo PEM so that standard tools read every key file. */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_CAP 4096

static const char *const kind_names[] = {"device", "reviewer", "publisher"};

const char *key_kind_name(key_kind kind)
{
    return (unsigned)kind < 3 ? kind_names[kind] : NULL;
}

int key_kind_parse(const char *name, key_kind *kind)
{
    for (unsigned i = 0; i < 3; i++) {
        if (strcmp(name, kind_names[i]) == 0) {
            *kind = (key_kind)i;
            return 0;
        }
    }
    return -1;
}

static int fail(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    snprintf(err, errlen, fmt, a, b);
    return -1;
}

/* Fresh key pair as an OpenSSL object; secret bytes from libsodium are wiped
 * before returning. */
static EVP_PKEY *generate_pkey(key_kind kind)
{
    EVP_PKEY *pkey = NULL;
    if (kind == KEY_DEVICE) {
        uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
        if (crypto_sign_keypair(pk, sk) == 0) /* sk = seed || pk; PKCS#8 holds the seed */
            pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, crypto_sign_SEEDBYTES);
        sodium_memzero(sk, sizeof sk);
    } else if (kind == KEY_REVIEWER) {
        uint8_t pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
        if (crypto_box_keypair(pk, sk) == 0)
            pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, sizeof sk);
        sodium_memzero(sk, sizeof sk);
    } else if (kind == KEY_PUBLISHER) {
        pkey = EVP_EC_gen("P-256");
    }
    return pkey;
}

static int fingerprint_pkey(EVP_PKEY *pkey, char fingerprint[KEY_FINGERPRINT_HEX])
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(pkey, &der);
    if (len <= 0)
        return -1;
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, der, (unsigned long long)len);
    OPENSSL_free(der);
    sodium_bin2hex(fingerprint, KEY_FINGERPRINT_HEX, digest, sizeof digest);
    return 0;
}

/* Writes len bytes to path atomically: a private temporary file in the same
 * directory (mode 0600 from mkstemp, then chmod to mode), fsync, rename. */
static int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, char *err,
                             size_t errlen)
{
    char tmp[PATH_CAP];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path) >= sizeof tmp)
        return fail(err, errlen, "path too long: %s%s", path, "");
    int fd = mkstemp(tmp);
    if (fd < 0)
        return fail(err, errlen, "cannot create %s: %s", path, strerror(errno));
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        left -= (size_t)n;
    }
    int ok = left == 0 && fchmod(fd, mode) == 0 && fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            saved = errno;
        unlink(tmp);
        return fail(err, errlen, "cannot write %s: %s", path, strerror(saved ? saved : EIO));
    }
    return 0;
}

/* PEM-encodes the secret (PKCS#8) or public (SPKI) half into secure memory
 * and writes it; the PEM text of a secret is wiped by the BIO on free. */
static int write_pem(EVP_PKEY *pkey, int secret, const char *path, char *err, size_t errlen)
{
    BIO *bio = secret ? BIO_new(BIO_s_secmem()) : BIO_new(BIO_s_mem());
    if (!bio)
        return fail(err, errlen, "out of memory encoding %s%s", path, "");
    int ok = secret ? PEM_write_bio_PKCS8PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
                    : PEM_write_bio_PUBKEY(bio, pkey);
    char *text = NULL;
    long len = BIO_get_mem_data(bio, &text);
    int rc = -1;
    if (!ok || len <= 0)
        fail(err, errlen, "cannot encode key for %s%s", path, "");
    else
        rc = write_file_atomic(path, text, (size_t)len, secret ? 0600 : 0644, err, errlen);
    BIO_free(bio);
    return rc;
}

int keys_generate(key_kind kind, const char *dir, int force, char fingerprint[KEY_FINGERPRINT_HEX],
                  char *secret_path, char *public_path, char *err, size_t errlen)
{
    const char *name = key_kind_name(kind);
    char sec[PATH_CAP], pub[PATH_CAP], fp_unused[KEY_FINGERPRINT_HEX];
    struct stat st;
    if (!name)
        return fail(err, errlen, "unknown key kind%s%s", "", "");
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fail(err, errlen, "output directory %s does not exist%s", dir, "");
    if ((size_t)snprintf(sec, sizeof sec, "%s/%s.key.pem", dir, name) >= sizeof sec ||
        (size_t)snprintf(pub, sizeof pub, "%s/%s.pub.pem", dir, name) >= sizeof pub)
        return fail(err, errlen, "output directory path too long: %s%s", dir, "");
    if (!force && (lstat(sec, &st) == 0 || lstat(pub, &st) == 0))
        return fail(err, errlen, "%s already exists; use --force to replace %s key",
                    lstat(sec, &st) == 0 ? sec : pub, name);
    if (sodium_init() < 0)
        return fail(err, errlen, "libsodium failed to initialise%s%s", "", "");
    if (!fingerprint)
        fingerprint = fp_unused;
    EVP_PKEY *pkey = generate_pkey(kind);
    if (!pkey)
        return fail(err, errlen, "cannot generate %s key%s", name, "");
    int rc = -1;
    if (fingerprint_pkey(pkey, fingerprint) != 0)
        fail(err, errlen, "cannot encode %s public key%s", name, "");
    else if (write_pem(pkey, 1, sec, err, errlen) == 0 && write_pem(pkey, 0, pub, err, errlen) == 0)
        rc = 0;
    EVP_PKEY_free(pkey);
    if (rc == 0 && secret_path)
        snprintf(secret_path, PATH_CAP, "%s", sec);
    if (rc == 0 && public_path)
        snprintf(public_path, PATH_CAP, "%s", pub);
    return rc;
}

/* Reads a PEM key file: a private key when secret, otherwise a public key
 * (or, failing that, the public half of a private key). Secret files must
 * not be readable by group or others. */
static EVP_PKEY *read_pem(const char *path, int secret, char *err, size_t errlen)
{
    struct stat st;
    FILE *f = fopen(path, "r");
    if (!f) {
        fail(err, errlen, "cannot open key %s: %s", path, strerror(errno));
        return NULL;
    }
    if (secret && fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        fclose(f);
        fail(err, errlen, "secret key %s is readable by others (mode must be 0600)%s", path, "");
        return NULL;
    }
    EVP_PKEY *pkey =
        secret ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : PEM_read_PUBKEY(f, NULL, NULL, NULL);
    if (!pkey && !secret) {
        rewind(f);
        pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    }
    fclose(f);
    if (!pkey)
        fail(err, errlen, "%s is not a PEM %s key", path, secret ? "private" : "public");
    return pkey;
}

int keys_fingerprint_file(const char *pem_path, char fingerprint[KEY_FINGERPRINT_HEX], char *err,
                          size_t errlen)
{
    EVP_PKEY *pkey = read_pem(pem_path, 0, err, errlen);
    if (!pkey)
        return -1;
    int rc = fingerprint_pkey(pkey, fingerprint);
    EVP_PKEY_free(pkey);
    if (rc != 0)
        fail(err, errlen, "cannot encode public key of %s%s", pem_path, "");
    return rc;
}

/* Raw bytes of a key of the expected OpenSSL type (secret or public half). */
static int load_raw(const char *path, int type, int secret, uint8_t *out, size_t len, char *err,
                    size_t errlen)
{
    EVP_PKEY *pkey = read_pem(path, secret, err, errlen);
    if (!pkey)
        return -1;
    size_t got = len;
    int rc = -1;
    if (EVP_PKEY_get_base_id(pkey) != type)
        fail(err, errlen, "%s holds a %s key", path, EVP_PKEY_get0_type_name(pkey));
    else if ((secret ? EVP_PKEY_get_raw_private_key(pkey, out, &got)
                     : EVP_PKEY_get_raw_public_key(pkey, out, &got)) != 1 ||
             got != len)
        fail(err, errlen, "cannot read the raw key in %s%s", path, "");
    else
        rc = 0;
    EVP_PKEY_free(pkey);
    return rc;
}

int keys_load_ed25519_secret(const char *pem_path, uint8_t sk[64], char *err, size_t errlen)
{
    uint8_t seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES];
    if (sodium_init() < 0)
        return fail(err, errlen, "libsodium failed to initialise%s%s", "", "");
    if (load_raw(pem_path, EVP_PKEY_ED25519, 1, seed, sizeof seed, err, errlen) != 0) {
        sodium_memzero(seed, sizeof seed);
        return -1;
    }
    int rc = crypto_sign_seed_keypair(pk, sk, seed);
    sodium_memzero(seed, sizeof seed);
    return rc == 0 ? 0 : fail(err, errlen, "cannot expand Ed25519 key %s%s", pem_path, "");
}

int keys_load_ed25519_public(const char *pem_path, uint8_t pk[32], char *err, size_t errlen)
{
    return load_raw(pem_path, EVP_PKEY_ED25519, 0, pk, 32, err, errlen);
}

int keys_load_x25519_secret(const char *pem_path, uint8_t sk[32], char *err, size_t errlen)
{
    return load_raw(pem_path, EVP_PKEY_X25519, 1, sk, 32, err, errlen);
}

int keys_load_x25519_public(const char *pem_path, uint8_t pk[32], char *err, size_t errlen)
{
    return load_raw(pem_path, EVP_PKEY_X25519, 0, pk, 32, err, errlen);
}

static int kind_pkey_type(key_kind kind)
{
    return kind == KEY_DEVICE     ? EVP_PKEY_ED25519
           : kind == KEY_REVIEWER ? EVP_PKEY_X25519
                                  : EVP_PKEY_EC;
}

int keys_install_public(key_kind kind, const char *src_pem, const char *dst_pem,
                        char fingerprint[KEY_FINGERPRINT_HEX], char *err, size_t errlen)
{
    EVP_PKEY *pkey = read_pem(src_pem, 0, err, errlen);
    if (!pkey)
        return -1;
    int rc = -1;
    if (EVP_PKEY_get_base_id(pkey) != kind_pkey_type(kind))
        fail(err, errlen, "%s is not a %s key", src_pem, key_kind_name(kind));
    else if (fingerprint_pkey(pkey, fingerprint) != 0)
        fail(err, errlen, "cannot encode the public key of %s%s", src_pem, "");
    else
        rc = write_pem(pkey, 0, dst_pem, err, errlen);
    EVP_PKEY_free(pkey);
    return rc;
}
