/* Copy-while-hashing into a sealed memfd: one pass over the model file, and
 * afterwards the verified bytes cannot change. */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_CHUNK (4u << 20)
#define ALL_SEALS  (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads src to its end, hashing and appending each chunk to dst. */
static int copy_and_hash(int src, int dst, uint64_t total, EVP_MD_CTX *md, uint8_t *buf,
                         image_progress_fn progress, void *user, char *err, size_t errlen)
{
    uint64_t done = 0;
    for (;;) {
        ssize_t n = read(src, buf, COPY_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "read failed: %s", strerror(errno));
            return -1;
        }
        if (n == 0)
            break;
        if (EVP_DigestUpdate(md, buf, (size_t)n) != 1 || write_all(dst, buf, (size_t)n) != 0) {
            snprintf(err, errlen, "copy into memory failed: %s", strerror(errno));
            return -1;
        }
        done += (uint64_t)n;
        if (progress)
            progress(user, done, total);
    }
    if (done != total) {
        snprintf(err, errlen, "the file changed size while it was read (%llu of %llu bytes)",
                 (unsigned long long)done, (unsigned long long)total);
        return -1;
    }
    return 0;
}

int image_sealed_copy(const char *path, uint8_t sha256[32], image_progress_fn progress, void *user,
                      char *err, size_t errlen)
{
    char why[256] = "";
    struct stat st;
    int src = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (src < 0) {
        snprintf(err, errlen, "cannot open model %s: %s", path, strerror(errno));
        return -1;
    }
    int mfd = -1, ok = 0;
    uint8_t *buf = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int dlen = 0;
    if (fstat(src, &st) != 0 || !S_ISREG(st.st_mode))
        snprintf(why, sizeof why, "not a regular file");
    else if ((mfd = memfd_create("model", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0)
        snprintf(why, sizeof why, "memfd_create failed: %s", strerror(errno));
    else if (!md || !(buf = malloc(COPY_CHUNK)) || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        snprintf(why, sizeof why, "out of memory");
    else if (ftruncate(mfd, st.st_size) != 0 || lseek(mfd, 0, SEEK_SET) != 0)
        snprintf(why, sizeof why, "cannot size %lld bytes of memory: %s", (long long)st.st_size,
                 strerror(errno));
    else if (copy_and_hash(src, mfd, (uint64_t)st.st_size, md, buf, progress, user, why,
                           sizeof why) == 0 &&
             EVP_DigestFinal_ex(md, sha256, &dlen) == 1 && dlen == 32) {
        if (fcntl(mfd, F_ADD_SEALS, ALL_SEALS) != 0)
            snprintf(why, sizeof why, "cannot seal the copy: %s", strerror(errno));
        else
            ok = 1;
    }
    free(buf);
    EVP_MD_CTX_free(md);
    close(src);
    if (!ok) {
        snprintf(err, errlen, "cannot load model %s: %s", path, why[0] ? why : "hashing failed");
        if (mfd >= 0)
            close(mfd);
        return -1;
    }
    return mfd;
}

int image_is_sealed(int fd)
{
    int seals = fcntl(fd, F_GET_SEALS);
    return seals >= 0 && (seals & ALL_SEALS) == ALL_SEALS;
}
