/* Secret memory: locked, not dumped, wiped on fork. */
#include "image.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t page_round(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

void *secret_alloc(size_t n, char *err, size_t errlen)
{
    size_t len = page_round(n ? n : 1);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "cannot allocate secret memory: %s", strerror(errno));
        return NULL;
    }
    /* Wipe-on-fork is the property that matters: without it, refuse. */
    if (madvise(p, len, MADV_WIPEONFORK) != 0 || madvise(p, len, MADV_DONTDUMP) != 0) {
        snprintf(err, errlen, "cannot protect secret memory from forks and dumps: %s",
                 strerror(errno));
        munmap(p, len);
        return NULL;
    }
    /* Locking may exceed RLIMIT_MEMLOCK for unprivileged users: best effort. */
    (void)mlock(p, len);
    return p;
}

void secret_free(void *p, size_t n)
{
    if (!p)
        return;
    size_t len = page_round(n ? n : 1);
    sodium_memzero(p, len);
    munlock(p, len);
    munmap(p, len);
}
