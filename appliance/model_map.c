#include "model_map.h"

#include <errno.h>
#include <fcntl.h>
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
