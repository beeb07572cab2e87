/* The monitor's UTF-8 check, which refuses a prompt and says where it
 * breaks: the offset of the first byte that does not start a well-formed
 * sequence, for each way a sequence can be malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "worker.h"

static const struct {
    const char *bytes;
    size_t len;
    size_t bad_at; /* == len: valid */
} cases[] = {
    {"", 0, 0},
    {"plain ascii", 11, 11},
    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, 14}, /* 2-, 3- and 4-byte forms */
    {"\xff", 1, 0},                                        /* never a lead byte */
    {"ok \xc3\x28 x", 7, 3},                               /* lead without continuation */
    {"ab\x80", 3, 2},                                      /* a lone continuation byte */
    {"abc\xe2\x82", 5, 3},                                 /* cut short at the end */
    {"x\xc0\xaf", 3, 1},                                   /* overlong '/' (2 bytes) */
    {"xy\xe0\x80\xaf", 5, 2},                              /* overlong '/' (3 bytes) */
    {"\xed\xa0\x80", 3, 0},                                /* a UTF-16 surrogate */
    {"a\xf4\x90\x80\x80", 5, 1},                           /* past U+10FFFF */
    {"\xf4\x8f\xbf\xbf!", 5, 5},                           /* U+10FFFF itself */
};

static void test_invalid_offsets(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t at = utf8_invalid_at(cases[i].bytes, cases[i].len);
        if (at != cases[i].bad_at)
            fail_msg("case %zu: invalid at %zu, expected %zu", i, at, cases[i].bad_at);
        assert_int_equal(utf8_valid(cases[i].bytes, cases[i].len), cases[i].bad_at == cases[i].len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
