/* Sealed model copies: the digest is the file's SHA-256, and the copy can be
 * neither written nor resized nor unsealed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "image/image.h"
#include "testutil.h"

typedef struct {
    uint64_t last, calls;
} progress_seen;

static void on_progress(void *user, uint64_t done, uint64_t total)
{
    progress_seen *p = user;
    assert_true(done <= total);
    assert_true(done >= p->last);
    p->last = done;
    p->calls++;
}

static void test_copy_hash_and_seals(void **state)
{
    (void)state;
    char *dir = test_mkdtemp(), path[4200], err[512];
    size_t n = 9 * 1024 * 1024 + 17; /* several copy chunks and a tail */
    uint8_t *data = malloc(n), want[32], got[32];
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 7 + (i >> 13));
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    SHA256(data, n, want);

    progress_seen p = {0, 0};
    int fd = image_sealed_copy(path, got, on_progress, &p, err, sizeof err);
    assert_true(fd >= 0);
    assert_memory_equal(got, want, 32);
    assert_int_equal(p.last, n);
    assert_true(p.calls >= 3);
    assert_true(image_is_sealed(fd));
    /* The bytes are there, and read-only mapping works. */
    uint8_t *map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    assert_true(map != MAP_FAILED);
    assert_memory_equal(map, data, n);
    munmap(map, n);
    /* Writing, growing, shrinking, writable shared maps and unsealing fail. */
    assert_int_equal(pwrite(fd, "x", 1, 0), -1);
    assert_int_equal(ftruncate(fd, (off_t)n + 1), -1);
    assert_int_equal(ftruncate(fd, 1), -1);
    assert_true(mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, 0), -1);
    /* Changing the file afterwards changes nothing in the copy. */
    f = fopen(path, "r+b");
    fputc('Z', f);
    fclose(f);
    uint8_t first;
    assert_int_equal(pread(fd, &first, 1, 0), 1);
    assert_int_equal(first, data[0]);
    close(fd);
    free(data);
    test_rmtree(dir);
}

static void test_refusals(void **state)
{
    (void)state;
    char *dir = test_mkdtemp(), link[4200], err[512];
    uint8_t d[32];
    assert_int_equal(image_sealed_copy("/nonexistent.gguf", d, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open model /nonexistent.gguf"));
    assert_int_equal(image_sealed_copy(dir, d, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a regular file"));
    /* A symlink is refused: the checked path must be the opened file. */
    snprintf(link, sizeof link, "%s/link.gguf", dir);
    assert_int_equal(symlink("/etc/hostname", link), 0);
    assert_int_equal(image_sealed_copy(link, d, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open model"));
    assert_int_equal(image_is_sealed(0), 0);
    test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_hash_and_seals),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
