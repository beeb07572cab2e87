/* Small helpers shared by the cmocka unit tests. */
#ifndef TESTUTIL_H
#define TESTUTIL_H
#include <stddef.h>

/* Path of ../shared (from APPLIANCE_SHARED_DIR), or NULL when it is absent. */
const char *test_shared_dir(void);

/* Builds "<shared>/<rel>" into buf; returns buf, or NULL when ../shared or the
 * file is absent. */
const char *test_shared_path(char *buf, size_t cap, const char *rel);

/* Creates a fresh private temporary directory; returns a static-free path the
 * caller frees with test_rmtree(). */
char *test_mkdtemp(void);
void test_rmtree(char *dir);

/* Reads a whole file; returns malloc'd bytes (NUL-terminated) or NULL. */
unsigned char *test_read_file(const char *path, size_t *len);

/* Exit code that ctest treats as "skipped". */
#define TEST_SKIP_CODE 77
#endif
