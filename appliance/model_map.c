#include "model_map.h"
#include "engine.h"

#include <errno.h>
#include <openssl/sha.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int model_map_fd(model_map *m, int fd, const char *what, char *err, size_t errlen)
{
    struct stat st;
    m->data = NULL;
    m->size = 0;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat model '%s': %s", what, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
        snprintf(err, errlen, "model '%s' is not a non-empty regular file", what);
        return -1;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "cannot map model '%s': %s", what, strerror(errno));
        return -1;
    }
    m->data = p;
    m->size = (size_t)st.st_size;
    return 0;
}

int model_map_open(model_map *m, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open model '%s': %s", path, strerror(errno));
        m->data = NULL;
        m->size = 0;
        return -1;
    }
    int rc = model_map_fd(m, fd, path, err, errlen);
    close(fd);
    return rc;
}

void model_map_close(model_map *m)
{
    if (m->data)
        munmap(m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

/* Writes the synthetic model to an unlinked temporary file and maps it. */
int model_map_synthetic(model_map *map, const char *spec, char *err, size_t errlen)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/appliance-synth-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a temporary file in %s: %s",
                 dir && *dir ? dir : "/tmp", strerror(errno));
        return -1;
    }
    unlink(path); /* the mapping keeps the data; nothing is left behind */
    FILE *f = fdopen(fd, "w+b");
    if (!f) {
        snprintf(err, errlen, "cannot open the temporary file: %s", strerror(errno));
        close(fd);
        return -1;
    }
    fprintf(stderr,
            "appliance: writing synthetic model %s (random weights: gibberish by design) to a "
            "temporary file\n",
            spec);
    int rc = engine_synth_write(spec, 1, f, err, errlen);
    if (rc == 0 && fflush(f) != 0) {
        snprintf(err, errlen, "cannot write the temporary file: %s", strerror(errno));
        rc = -1;
    }
    if (rc == 0)
        rc = model_map_fd(map, fileno(f), spec, err, errlen);
    fclose(f);
    return rc;
}

int model_synthetic_sealed(const char *spec, uint8_t sha256[32], char *err, size_t errlen)
{
    int fd = memfd_create("synthetic-model", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int dupfd = fd >= 0 ? dup(fd) : -1;
    FILE *f = dupfd >= 0 ? fdopen(dupfd, "wb") : NULL;
    if (!f) {
        snprintf(err, errlen, "cannot create memory for the synthetic model: %s", strerror(errno));
        if (dupfd >= 0)
            close(dupfd);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* No note on stderr here: an error must stay one line; the attestation
     * and audit entries name the model as synthetic. */
    int rc = engine_synth_write(spec, 1, f, err, errlen);
    if (fclose(f) != 0 && rc == 0) {
        snprintf(err, errlen, "cannot write the synthetic model: %s", strerror(errno));
        rc = -1;
    }
    struct stat st;
    void *p = MAP_FAILED;
    if (rc == 0 &&
        (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0 ||
         fstat(fd, &st) != 0 ||
         (p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)) {
        snprintf(err, errlen, "cannot seal the synthetic model: %s", strerror(errno));
        rc = -1;
    }
    if (rc == 0) {
        SHA256(p, (size_t)st.st_size, sha256);
        munmap(p, (size_t)st.st_size);
        return fd;
    }
    close(fd);
    return -1;
}
