/* Secret memory is wiped in forked children: a worker forked from the
 * monitor sees zeros where the monitor holds the device key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/image.h"

static void test_child_sees_zeros_parent_keeps_secret(void **state)
{
    (void)state;
    char err[256];
    uint8_t *sk = secret_alloc(64, err, sizeof err);
    assert_non_null(sk);
    memset(sk, 0xA5, 64);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int leaked = 0;
        for (int i = 0; i < 64; i++)
            leaked |= sk[i];
        _exit(leaked ? 1 : 0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    for (int i = 0; i < 64; i++)
        assert_int_equal(sk[i], 0xA5);
    secret_free(sk, 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_child_sees_zeros_parent_keeps_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
