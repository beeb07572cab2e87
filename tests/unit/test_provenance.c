/* GGUF provenance between worker and monitor (appliance/provenance.h): the
 * worker's sanitiser makes any bytes printable, the monitor's decoder
 * accepts printable, bounded, well-formed messages only, and a real model's
 * metadata survives the round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine.h"
#include "provenance.h"

static size_t sanitize(const char *in, char *out)
{
    return provenance_sanitize(in, strlen(in), out, PROVENANCE_VALUE_MAX + 1);
}

static void test_sanitize_makes_printable_text(void **state)
{
    (void)state;
    char out[PROVENANCE_VALUE_MAX + 1];
    size_t n = sanitize("Evil\x1b[31mRED\x07\n\tname", out);
    assert_int_equal(n, strlen(out));
    assert_string_equal(out, "Evil [31mRED name");
    sanitize("\xff\xfeOrg", out);
    assert_string_equal(out, "\xef\xbf\xbd\xef\xbf\xbdOrg");
    sanitize("A\xe2\x80\xae"
             "evil",
             out); /* U+202E RIGHT-TO-LEFT OVERRIDE */
    assert_string_equal(out, "A\xef\xbf\xbd"
                             "evil");
    sanitize("\xc2\x85x\x7f", out); /* C1 NEL and DEL */
    assert_string_equal(out, "x");
    sanitize("\xc0\xaf\xed\xa0\x80", out); /* overlong '/', a surrogate */
    assert_true(provenance_text_ok(out, strlen(out)));
    sanitize("Zo\xc3\xab \xe6\xa8\xa1\xe5\x9e\x8b", out);
    assert_string_equal(out, "Zo\xc3\xab \xe6\xa8\xa1\xe5\x9e\x8b");
    assert_int_equal(sanitize("  \n\x1b  ", out), 0);
    assert_string_equal(out, "");
}

static void test_sanitize_cuts_at_a_character(void **state)
{
    (void)state;
    char in[1000], out[PROVENANCE_VALUE_MAX + 1], small[8];
    for (int i = 0; i < 300; i++)
        memcpy(in + 3 * i, "\xe6\xa8\xa1", 3);
    in[900] = 0;
    assert_int_equal(sanitize(in, out), 255); /* 85 whole characters */
    assert_true(provenance_text_ok(out, strlen(out)));
    assert_int_equal(provenance_sanitize(in, 900, small, sizeof small), 6);
    memset(in, 'a', 999);
    in[999] = 0;
    assert_int_equal(sanitize(in, out), PROVENANCE_VALUE_MAX);
}

static void test_text_ok_is_strict(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "a\x1b",
                         "a\x7f",
                         "\xc2\x85",
                         "\xff",
                         "\xc0\xaf",
                         "\xed\xa0\x80",
                         ("a\xe2\x80\xae"
                          "b"), /* one string: a right-to-left override inside text */
                         "\xe2\x81\xa6",
                         "\xf4\x90\x80\x80",
                         "\xe6\xa8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(provenance_text_ok(bad[i], strlen(bad[i])));
    char big[PROVENANCE_VALUE_MAX + 1];
    memset(big, 'a', sizeof big);
    assert_false(provenance_text_ok(big, sizeof big));
    assert_true(provenance_text_ok(big, sizeof big - 1));
    assert_true(provenance_text_ok("apache-2.0 \xe6\xa8\xa1", 14));
}

/* Index of a GGUF key in the wire table. */
static uint8_t key_index(const char *key)
{
    for (size_t i = 0; i < PROVENANCE_KEYS; i++)
        if (strcmp(provenance_keys[i].gguf_key, key) == 0)
            return (uint8_t)i;
    fail_msg("unknown key %s", key);
    return 0;
}

static int decode_items(uint32_t count, const uint8_t *keys, const char *const *values,
                        model_provenance *out)
{
    ipc_writer w;
    ipc_writer_init(&w);
    ipc_put_u32(&w, count);
    for (uint32_t i = 0; i < count; i++) {
        ipc_put_u8(&w, keys[i]);
        ipc_put_bytes(&w, values[i], strlen(values[i]));
    }
    assert_false(w.failed);
    int rc = provenance_decode(w.data, w.len, out);
    ipc_writer_free(&w);
    return rc;
}

static void test_decode_accepts_and_displays(void **state)
{
    (void)state;
    model_provenance p;
    uint8_t keys[] = {key_index("general.name"), key_index("general.file_type"),
                      key_index("general.license"), key_index("general.base_model.count")};
    const char *values[] = {"TinyLlama", "15", "apache-2.0", "2"};
    assert_int_equal(decode_items(4, keys, values, &p), 0);
    assert_int_equal(p.n, 4);
    assert_string_equal(provenance_get(&p, "general.name"), "TinyLlama");
    assert_string_equal(provenance_get(&p, "general.file_type"), "Q4_K_M (15)");
    assert_string_equal(provenance_get(&p, "general.base_model.count"), "2");
    assert_null(provenance_get(&p, "general.author"));
    /* Through the record's JSON and back. */
    json_t *o = provenance_to_json(&p);
    model_provenance q;
    provenance_from_json(o, &q);
    json_decref(o);
    assert_int_equal(q.n, 4);
    assert_string_equal(provenance_get(&q, "general.license"), "apache-2.0");
    assert_int_equal(decode_items(0, NULL, NULL, &p), 0);
    assert_int_equal(p.n, 0);
}

static void test_decode_rejects_malformed(void **state)
{
    (void)state;
    model_provenance p;
    uint8_t name = key_index("general.name"), lic = key_index("general.license"),
            ft = key_index("general.file_type");
    struct {
        uint32_t count;
        uint8_t keys[2];
        const char *values[2];
    } bad[] = {
        {2, {lic, name}, {"mit", "x"}}, /* out of order */
        {2, {name, name}, {"a", "b"}},  /* repeated */
        {1, {PROVENANCE_KEYS}, {"x"}},  /* unknown key */
        {1, {name}, {""}},              /* empty */
        {1, {name}, {"a\x1b[2Jb"}},     /* escape */
        {1, {name}, {"\xff"}},          /* not UTF-8 */
        {1,
         {name},
         {"a\xe2\x80\xae"
          "b"}},                             /* bidi override */
        {1, {ft}, {"Q4"}},                   /* integer key, not digits */
        {1, {ft}, {"015"}},                  /* leading zero */
        {1, {ft}, {"18446744073709551616"}}, /* past 2^64 - 1 */
        {2, {name}, {"only one"}},           /* count says more (see below) */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t n = bad[i].count;
        if (i == sizeof bad / sizeof bad[0] - 1) {
            /* Claims two, carries one: truncated. */
            ipc_writer w;
            ipc_writer_init(&w);
            ipc_put_u32(&w, n);
            ipc_put_u8(&w, name);
            ipc_put_bytes(&w, "only one", 8);
            assert_int_equal(provenance_decode(w.data, w.len, &p), -1);
            ipc_writer_free(&w);
            continue;
        }
        assert_int_equal(decode_items(n, bad[i].keys, bad[i].values, &p), -1);
        assert_int_equal(p.n, 0);
    }
    /* Too long, too many, trailing bytes. */
    char big[PROVENANCE_VALUE_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    const char *values[] = {big};
    assert_int_equal(decode_items(1, &name, values, &p), -1);
    uint8_t one[] = {0x1a, 0, 0, 0};
    assert_int_equal(provenance_decode(one, sizeof one, &p), -1);
    uint8_t trailing[] = {0, 0, 0, 0, 0};
    assert_int_equal(provenance_decode(trailing, sizeof trailing, &p), -1);
    assert_int_equal(provenance_decode(trailing, 4, &p), 0);
}

/* A synthetic model's metadata, encoded as the worker does and decoded as
 * the monitor does. */
static void test_round_trip_from_a_model(void **state)
{
    (void)state;
    char err[256];
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    assert_int_equal(engine_synth_write("tiny:q8_0", 1, f, err, sizeof err), 0);
    assert_int_equal(fclose(f), 0);
    engine_model *m = engine_model_load(buf, size, NULL, err, sizeof err);
    assert_non_null(m);
    engine_meta_value v;
    engine_model_meta(m, "general.architecture", &v);
    assert_int_equal(v.kind, ENGINE_META_STRING);
    assert_memory_equal(v.str, "llama", 5);
    engine_model_meta(m, "general.license", &v);
    assert_int_equal(v.kind, ENGINE_META_ABSENT);
    engine_model_meta(m, "llama.block_count", &v);
    assert_int_equal(v.kind, ENGINE_META_UINT);
    assert_int_equal(v.u, 2);
    ipc_writer w;
    ipc_writer_init(&w);
    provenance_encode(m, &w);
    assert_false(w.failed);
    model_provenance p;
    assert_int_equal(provenance_decode(w.data, w.len, &p), 0);
    assert_string_equal(provenance_get(&p, "general.architecture"), "llama");
    assert_non_null(provenance_get(&p, "general.name"));
    ipc_writer_free(&w);
    engine_model_free(m);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sanitize_makes_printable_text),
        cmocka_unit_test(test_sanitize_cuts_at_a_character),
        cmocka_unit_test(test_text_ok_is_strict),
        cmocka_unit_test(test_decode_accepts_and_displays),
        cmocka_unit_test(test_decode_rejects_malformed),
        cmocka_unit_test(test_round_trip_from_a_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
