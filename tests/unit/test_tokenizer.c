/* llama (SentencePiece-style) tokenizer: reproduces llama.cpp's ids on the
 * shared test vectors, round-trips text, repairs streamed UTF-8, rejects
 * inconsistent vocabularies and invalid text, and stays fast on 64 KB. */
#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "testutil.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* A GGUF file loaded into memory with its tokenizer. */
typedef struct {
    unsigned char *bytes;
    gguf_file *gguf;
    tokenizer *tok;
} vocab;

static int open_vocab(const char *rel, vocab *v)
{
    char path[4096];
    size_t len;
    if (!test_shared_path(path, sizeof path, rel))
        return -1;
    v->bytes = test_read_file(path, &len);
    assert_non_null(v->bytes);
    char err[256] = "";
    v->gguf = gguf_open(v->bytes, len, err, sizeof err);
    if (!v->gguf)
        fail_msg("%s: %s", rel, err);
    v->tok = tokenizer_from_gguf(v->gguf, err, sizeof err);
    if (!v->tok)
        fail_msg("%s: %s", rel, err);
    return 0;
}

static void close_vocab(vocab *v)
{
    tokenizer_free(v->tok);
    gguf_close(v->gguf);
    free(v->bytes);
}

/* Tokenizes s; returns a malloc'd id array and its length. */
static int32_t *encode(const tokenizer *t, const char *s, size_t len, int add_bos, size_t *n)
{
    size_t cap = tokenizer_encode_bound(len);
    int32_t *ids = malloc(cap * sizeof *ids);
    assert_non_null(ids);
    char err[256] = "";
    if (tokenizer_encode(t, s, len, add_bos, ids, cap, n, err, sizeof err) != 0)
        fail_msg("encode: %s", err);
    return ids;
}

/* Parses one line of space-separated ids. */
static size_t parse_ids(const char *line, const char *end, int32_t *ids, size_t cap)
{
    size_t n = 0;
    const char *p = line;
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        if (p >= end)
            break;
        char *q;
        long v = strtol(p, &q, 10);
        assert_true(q > p && n < cap);
        ids[n++] = (int32_t)v;
        p = q;
    }
    return n;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "%s:", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* Runs every case of NAME.inp / NAME.out (see vectors/README.md). */
static void check_vocab_vectors(const char *name)
{
    char rel[256], path[4096];
    vocab v;
    snprintf(rel, sizeof rel, "vectors/tokenizer/%s", name);
    if (open_vocab(rel, &v) != 0)
        skip();
    snprintf(rel, sizeof rel, "vectors/tokenizer/%s.inp", name);
    size_t inp_len, out_len;
    char *inp = (char *)test_read_file(test_shared_path(path, sizeof path, rel), &inp_len);
    snprintf(rel, sizeof rel, "vectors/tokenizer/%s.out", name);
    char *out = (char *)test_read_file(test_shared_path(path, sizeof path, rel), &out_len);
    assert_non_null(inp);
    assert_non_null(out);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const char *p = inp, *line = out;
    size_t cases = 0, failures = 0;
    for (;;) {
        const char *end = strstr(p, sep);
        if (!end)
            break;
        const char *eol = strchr(line, '\n');
        assert_non_null(eol);
        int32_t want[1024];
        size_t n_want = parse_ids(line, eol, want, 1024), n_got;
        int32_t *got = encode(v.tok, p, (size_t)(end - p), 0, &n_got);
        if (n_got != n_want || memcmp(got, want, n_got * sizeof *got) != 0) {
            fprintf(stderr, "%s case %zu: '%.*s'\n", name, cases, (int)(end - p), p);
            print_ids("  want", want, n_want);
            print_ids("  got ", got, n_got);
            failures++;
        }
        /* Round trip: the text comes back, minus the prefix space. */
        size_t dl;
        char *back = tokenizer_decode(v.tok, got, n_got, 1, &dl);
        assert_non_null(back);
        if (dl != (size_t)(end - p) || memcmp(back, p, dl) != 0) {
            fprintf(stderr, "%s case %zu: round trip gave '%s'\n", name, cases, back);
            failures++;
        }
        free(back);
        free(got);
        cases++;
        p = end + strlen(sep);
        line = eol + 1;
    }
    assert_int_equal(cases, 46);
    assert_int_equal(failures, 0);
    free(inp);
    free(out);
    close_vocab(&v);
}

static void test_llama_spm_vectors(void **state)
{
    (void)state;
    check_vocab_vectors("ggml-vocab-llama-spm.gguf");
}

static void test_phi3_vectors(void **state)
{
    (void)state;
    check_vocab_vectors("ggml-vocab-phi-3.gguf");
}

/* Checks one JSON file of vectors/engine: prompt_tokens (with BOS) from the
 * model's own vocabulary, and greedy_text from the greedy token ids. */
static void check_engine_json(const char *json_name)
{
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "vectors/engine/%s", json_name);
    if (!test_shared_path(path, sizeof path, rel))
        skip();
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (!root)
        fail_msg("%s: %s", json_name, jerr.text);
    const char *model = json_string_value(json_object_get(root, "model"));
    const char *prompt = json_string_value(json_object_get(root, "prompt"));
    const char *greedy_text = json_string_value(json_object_get(root, "greedy_text"));
    size_t greedy_len = json_string_length(json_object_get(root, "greedy_text"));
    json_t *want = json_object_get(root, "prompt_tokens");
    json_t *greedy = json_object_get(root, "greedy_tokens");
    assert_non_null(model);
    assert_non_null(prompt);
    assert_true(json_is_array(want));
    vocab v;
    snprintf(rel, sizeof rel, "models/%s", model);
    assert_int_equal(open_vocab(rel, &v), 0);
    assert_int_equal(tokenizer_n_vocab(v.tok),
                     json_integer_value(json_object_get(root, "n_vocab")));
    assert_int_equal(tokenizer_add_bos(v.tok), 1);
    size_t n;
    int32_t *got = encode(v.tok, prompt, strlen(prompt), 1, &n);
    int ok = n == json_array_size(want);
    for (size_t i = 0; ok && i < n; i++)
        ok = got[i] == json_integer_value(json_array_get(want, i));
    if (!ok) {
        fprintf(stderr, "%s: prompt '%s'\n", json_name, prompt);
        print_ids("  got", got, n);
    }
    assert_true(ok);
    free(got);
    /* The greedy continuation decodes to greedy_text. */
    size_t ng = json_array_size(greedy), dl;
    int32_t *ids = malloc((ng ? ng : 1) * sizeof *ids);
    for (size_t i = 0; i < ng; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(greedy, i));
    char *text = tokenizer_decode(v.tok, ids, ng, 0, &dl);
    if (dl != greedy_len || memcmp(text, greedy_text, dl) != 0)
        fail_msg("%s: greedy text '%s', expected '%s'", json_name, text, greedy_text);
    free(text);
    free(ids);
    close_vocab(&v);
    json_decref(root);
}

static void test_engine_prompts(void **state)
{
    (void)state;
    static const char *const types[] = {"f32",  "f16",  "bf16", "q8_0", "q4_0", "q4_1",
                                        "q5_0", "q5_1", "q4_k", "q5_k", "q6_k", "q4_k_m"};
    char name[128];
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        for (int p = 1; p <= 4; p++) {
            snprintf(name, sizeof name, "kq-%s.p%d.json", types[i], p);
            check_engine_json(name);
        }
    }
    for (int p = 1; p <= 2; p++) {
        snprintf(name, sizeof name, "aidreams260K-f32.p%d.json", p);
        check_engine_json(name);
        snprintf(name, sizeof name, "aidreams260K-f16.p%d.json", p);
        check_engine_json(name);
    }
}

static void test_specials_and_pieces(void **state)
{
    (void)state;
    vocab v;
    if (open_vocab("models/aidreams260K-f32.gguf", &v) != 0)
        skip();
    const tokenizer *t = v.tok;
    assert_int_equal(tokenizer_n_vocab(t), 512);
    assert_int_equal(tokenizer_bos(t), 1);
    assert_int_equal(tokenizer_eos(t), 2);
    assert_int_equal(tokenizer_unk(t), 0);
    assert_int_equal(tokenizer_pad(t), -1); /* stored as 0xFFFFFFFF: none */
    assert_int_equal(tokenizer_eot(t), -1);
    assert_true(tokenizer_is_eog(t, 2));
    assert_false(tokenizer_is_eog(t, 1));
    assert_false(tokenizer_is_eog(t, -1));
    assert_int_equal(tokenizer_kind(t, 1), TOKEN_CONTROL);
    assert_int_equal(tokenizer_kind(t, 3 + 0x41), TOKEN_BYTE);
    assert_int_equal(tokenizer_kind(t, 512), 0);
    gguf_str s = tokenizer_piece(t, 3 + 0x41);
    assert_int_equal(s.len, 6);
    assert_memory_equal(s.ptr, "<0x41>", 6);
    assert_null(tokenizer_piece(t, -1).ptr);
    size_t len;
    const char *tx = tokenizer_token_text(t, 3 + 0x41, &len);
    assert_int_equal(len, 1);
    assert_int_equal(tx[0], 'A');
    tx = tokenizer_token_text(t, 1, &len); /* control: no text */
    assert_int_equal(len, 0);
    tx = tokenizer_token_text(t, 0, &len); /* unknown */
    assert_int_equal(len, 3);
    assert_memory_equal(tx, "\xe2\x96\x85", 3);
    assert_true(tokenizer_max_token_text(t) >= 3);
    /* Empty text gives nothing, or just BOS. */
    int32_t ids[4];
    size_t n;
    char err[256];
    assert_int_equal(tokenizer_encode(t, "", 0, 0, ids, 4, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tokenizer_encode(t, "", 0, 1, ids, 4, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 1);
    /* Too small a buffer reports the count needed. */
    assert_int_equal(tokenizer_encode(t, "I dreamed", 9, 1, ids, 4, &n, err, sizeof err), -1);
    assert_int_equal(n, 7);
    assert_non_null(strstr(err, "text needs 7 tokens but the buffer holds 4"));
    close_vocab(&v);
}

static void test_invalid_utf8_rejected(void **state)
{
    (void)state;
    vocab v;
    if (open_vocab("models/kq-f32.gguf", &v) != 0)
        skip();
    static const struct {
        const char *s;
        size_t bad;
    } cases[] = {
        {"abc\xff", 3},          {"\xc0\xaf", 0}, {"ok \xe2\x82", 3},  {"\xed\xa0\x80 x", 0},
        {"\xf4\x90\x80\x80", 0}, {"caf\xc3", 3},  {"\xe2\x28\xa1", 0},
    };
    int32_t ids[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        char err[256] = "", want[96];
        assert_int_equal(tokenizer_encode(v.tok, cases[i].s, strlen(cases[i].s), 1, ids, 64, &n,
                                          err, sizeof err),
                         -1);
        snprintf(want, sizeof want, "text is not valid UTF-8 (first bad byte at offset %zu)",
                 cases[i].bad);
        assert_string_equal(err, want);
    }
    close_vocab(&v);
}

/* Feeds in[0..len) in chunks of chunk bytes, then finishes. */
static size_t stream_all(const char *in, size_t len, size_t chunk, char *out)
{
    utf8_stream s;
    utf8_stream_init(&s);
    size_t o = 0;
    for (size_t i = 0; i < len; i += chunk) {
        size_t k = len - i < chunk ? len - i : chunk;
        o += utf8_stream_feed(&s, in + i, k, out + o);
    }
    o += utf8_stream_finish(&s, out + o);
    return o;
}

static void test_utf8_stream(void **state)
{
    (void)state;
#define R "\xef\xbf\xbd"
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain ascii", "plain ascii"},
        {"caf\xc3\xa9 \xe6\x9d\xb1 \xf0\x9f\x9a\x91", "caf\xc3\xa9 \xe6\x9d\xb1 \xf0\x9f\x9a\x91"},
        {"\xe2\x82", R},                 /* truncated at the end */
        {"a\xffz", "a" R "z"},           /* never-valid byte */
        {"\xc0\xaf", R R},               /* overlong */
        {"\xed\xa0\x80", R R R},         /* surrogate */
        {"\xf0\x28\x8c\xbc", R "(" R R}, /* bad second byte */
        {"\xf0\x9f\x9a", R},             /* 3 of 4 bytes */
        {"\xf0\x9f\x9a\xe6\x9d\xb1", R "\xe6\x9d\xb1"},
        {"\xf4\x90\x80\x80", R R R R}, /* above U+10FFFF */
        {"\x80\xbf", R R},             /* lone continuations */
    };
    char out[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].in);
        for (size_t chunk = 1; chunk <= len; chunk++) {
            assert_true(UTF8_STREAM_OUT_MAX(len) <= sizeof out);
            size_t n = stream_all(cases[i].in, len, chunk, out);
            out[n] = 0;
            if (strcmp(out, cases[i].out) != 0)
                fail_msg("case %zu chunk %zu: got '%s'", i, chunk, out);
            assert_int_equal(utf8_validate(out, n, NULL), 1);
        }
    }
#undef R
    /* Partial characters are held back until complete. */
    utf8_stream s;
    utf8_stream_init(&s);
    assert_int_equal(utf8_stream_feed(&s, "\xf0\x9f", 2, out), 0);
    assert_int_equal(utf8_stream_feed(&s, "\x9a", 1, out), 0);
    assert_int_equal(utf8_stream_feed(&s, "\x91!", 2, out), 5);
    assert_memory_equal(out, "\xf0\x9f\x9a\x91!", 5);
    assert_int_equal(utf8_stream_finish(&s, out), 0);
}

/* Byte-fallback tokens of one character arrive one token at a time. */
static void test_stream_over_byte_tokens(void **state)
{
    (void)state;
    vocab v;
    if (open_vocab("models/kq-f32.gguf", &v) != 0)
        skip();
    const char *text = "\xf0\x9f\x9a\x91 \xe6\x9d\xb1\xe4\xba\xac";
    size_t n;
    int32_t *ids = encode(v.tok, text, strlen(text), 0, &n);
    utf8_stream s;
    utf8_stream_init(&s);
    char *out = malloc(UTF8_STREAM_OUT_MAX(tokenizer_max_token_text(v.tok)) * n + 4);
    size_t o = 0, emitted_partial = 0;
    for (size_t i = 0; i < n; i++) {
        size_t tl;
        const char *tx = tokenizer_token_text(v.tok, ids[i], &tl);
        size_t k = utf8_stream_feed(&s, tx, tl, out + o);
        assert_int_equal(utf8_validate(out + o, k, NULL), 1); /* never a partial char */
        emitted_partial += tl > 0 && k == 0;
        o += k;
    }
    o += utf8_stream_finish(&s, out + o);
    assert_true(emitted_partial > 0); /* some tokens held bytes back */
    /* This 4096-piece vocabulary lacks "▁" itself, so each space went out as
     * the bytes of "▁" and comes back as "▁", exactly as llama.cpp does. */
    const char *want = "\xe2\x96\x81\xf0\x9f\x9a\x91\xe2\x96\x81\xe6\x9d\xb1\xe4\xba\xac";
    assert_int_equal(o, strlen(want));
    assert_memory_equal(out, want, o);
    free(out);
    free(ids);
    close_vocab(&v);
}

/* ---------- inconsistent metadata ---------- */

typedef struct {
    const char *model;
    size_t n_tokens, n_scores, n_types;
    int32_t bad_type_at;
    const char *bos_key;
    uint32_t bos;
    int bad_byte_piece;
} vocab_spec;

static void expect_vocab_error(const vocab_spec *sp, const char *want)
{
    static const char *const pieces[] = {"<unk>", "<s>", "</s>", "<0x41>", "\xe2\x96\x81", "a"};
    const char *toks[6];
    memcpy(toks, pieces, sizeof toks);
    if (sp->bad_byte_piece)
        toks[3] = "<0xZZ>";
    float scores[6] = {0, 0, 0, 0, -1, -2};
    int32_t types[6] = {2, 3, 3, 6, 1, 1};
    if (sp->bad_type_at >= 0)
        types[sp->bad_type_at] = 9;
    gguf_writer *w = gguf_writer_new(32);
    if (sp->model)
        gguf_writer_set_str(w, "tokenizer.ggml.model", sp->model);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, sp->n_tokens);
    gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", scores, sp->n_scores);
    gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, sp->n_types);
    if (sp->bos_key)
        gguf_writer_set_u32(w, sp->bos_key, sp->bos);
    char *mem = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&mem, &len);
    char err[256] = "";
    assert_int_equal(gguf_writer_write(w, out, err, sizeof err), 0);
    fclose(out);
    gguf_writer_free(w);
    gguf_file *f = gguf_open(mem, len, err, sizeof err);
    assert_non_null(f);
    tokenizer *t = tokenizer_from_gguf(f, err, sizeof err);
    if (!want) {
        if (!t)
            fail_msg("valid vocabulary rejected: %s", err);
        size_t n;
        int32_t ids[8];
        /* "a a": "▁a" is not a piece, so "▁" and "a" each. */
        assert_int_equal(tokenizer_encode(t, "aA", 2, 1, ids, 8, &n, err, sizeof err), 0);
        assert_int_equal(n, 4);
        assert_int_equal(ids[0], 1);
        assert_int_equal(ids[1], 4);
        assert_int_equal(ids[2], 5);
        assert_int_equal(ids[3], 3); /* "A" via <0x41> */
    } else {
        if (t)
            fail_msg("inconsistent vocabulary accepted, expected '%s'", want);
        if (!strstr(err, want))
            fail_msg("error '%s' lacks '%s'", err, want);
    }
    tokenizer_free(t);
    gguf_close(f);
    free(mem);
}

static void test_inconsistent_metadata(void **state)
{
    (void)state;
    vocab_spec ok = {"llama", 6, 6, 6, -1, NULL, 0, 0};
    expect_vocab_error(&ok, NULL);
    vocab_spec sp = ok;
    sp.n_scores = 5;
    expect_vocab_error(&sp, "tokenizer.ggml.scores has 5 entries but tokenizer.ggml.tokens has 6");
    sp = ok;
    sp.n_types = 4;
    expect_vocab_error(&sp,
                       "tokenizer.ggml.token_type has 4 entries but tokenizer.ggml.tokens has 6");
    sp = ok;
    sp.bad_type_at = 5;
    expect_vocab_error(&sp, "tokenizer.ggml.token_type[5] is 9, expected 1 to 6");
    sp = ok;
    sp.bos_key = "tokenizer.ggml.bos_token_id";
    sp.bos = 6;
    expect_vocab_error(&sp, "tokenizer.ggml.bos_token_id 6 is out of range for 6 tokens");
    sp.bos_key = "tokenizer.ggml.eos_token_id";
    sp.bos = 1000;
    expect_vocab_error(&sp, "tokenizer.ggml.eos_token_id 1000 is out of range for 6 tokens");
    sp.bos = UINT32_MAX; /* "none" is fine */
    expect_vocab_error(&sp, NULL);
    sp = ok;
    sp.bad_byte_piece = 1;
    expect_vocab_error(&sp, "token 3 has type byte but its piece is not <0xXX>");
    sp = ok;
    sp.model = "gpt2";
    expect_vocab_error(&sp, "tokenizer model 'gpt2' is not supported (only 'llama')");
    sp.model = NULL;
    expect_vocab_error(&sp, "tokenizer.ggml.model is missing or not a string");
}

/* ---------- randomized comparison with a naive reference ---------- */

/* Reference SPM merge, quadratic on purpose: scan every adjacent pair of the
 * current segmentation, merge the best-scoring one whose concatenation is a
 * piece (leftmost on ties), repeat; then map segments to ids or bytes. */
static size_t naive_encode(const tokenizer *t, const gguf_file *f, const char *text, size_t len,
                           int32_t *out)
{
    const gguf_kv *scores = gguf_find(f, "tokenizer.ggml.scores");
    char esc[4096];
    size_t n = 0, seg[1024], nseg = 0; /* segment start offsets; end = next start */
    memcpy(esc, "\xe2\x96\x81", 3);
    n = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(esc + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            esc[n++] = text[i];
        }
    }
    for (size_t i = 0; i < n;) {
        seg[nseg++] = i;
        unsigned char c = (unsigned char)esc[i];
        i += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    }
    seg[nseg] = n;
    for (;;) {
        size_t best = SIZE_MAX;
        float best_score = 0;
        for (size_t k = 0; k + 1 < nseg; k++) {
            size_t pl = seg[k + 2] - seg[k];
            int32_t id = -1;
            for (size_t v = 0; v < tokenizer_n_vocab(t); v++) {
                gguf_str p = tokenizer_piece(t, (int32_t)v);
                if (p.len == pl && memcmp(p.ptr, esc + seg[k], pl) == 0)
                    id = (int32_t)v; /* the last one wins, as in the real map */
            }
            float sc;
            if (id < 0 || gguf_arr_f32(scores, (uint64_t)id, &sc) != 0)
                continue;
            if (best == SIZE_MAX || sc > best_score) {
                best = k;
                best_score = sc;
            }
        }
        if (best == SIZE_MAX)
            break;
        memmove(&seg[best + 1], &seg[best + 2], (nseg - best - 1) * sizeof seg[0]);
        nseg--;
    }
    size_t o = 0;
    for (size_t k = 0; k < nseg; k++) {
        size_t pl = seg[k + 1] - seg[k];
        int32_t id = -1;
        for (size_t v = 0; v < tokenizer_n_vocab(t); v++) {
            gguf_str p = tokenizer_piece(t, (int32_t)v);
            if (p.len == pl && memcmp(p.ptr, esc + seg[k], pl) == 0)
                id = (int32_t)v;
        }
        if (id >= 0) {
            out[o++] = id;
            continue;
        }
        for (size_t b = 0; b < pl; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", (unsigned char)esc[seg[k] + b]);
            for (size_t v = 0; v < tokenizer_n_vocab(t); v++) {
                gguf_str p = tokenizer_piece(t, (int32_t)v);
                if (p.len == 6 && memcmp(p.ptr, name, 6) == 0)
                    id = (int32_t)v;
            }
            out[o++] = id;
        }
    }
    return o;
}

static void test_random_text_matches_naive_reference(void **state)
{
    (void)state;
    vocab v;
    if (open_vocab("models/aidreams260K-f32.gguf", &v) != 0)
        skip();
    static const char *const alphabet[] = {"a",
                                           "e",
                                           "i",
                                           "o",
                                           "n",
                                           "s",
                                           "t",
                                           "r",
                                           "d",
                                           "h",
                                           " ",
                                           " ",
                                           " ",
                                           "I",
                                           ",",
                                           ".",
                                           "m",
                                           "g",
                                           "\n",
                                           "\t",
                                           "\xc3\xa9",
                                           "\xe6\x9d\xb1",
                                           "\xf0\x9f\x9a\x91",
                                           "7",
                                           "th",
                                           "ing",
                                           "dream",
                                           " the",
                                           "  "};
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (int iter = 0; iter < 200; iter++) {
        char text[512];
        size_t len = 0;
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        size_t words = (size_t)(rng >> 58); /* 0..63 */
        for (size_t w = 0; w < words; w++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            const char *a = alphabet[(rng >> 33) % (sizeof alphabet / sizeof alphabet[0])];
            memcpy(text + len, a, strlen(a));
            len += strlen(a);
        }
        size_t n;
        int32_t *got = encode(v.tok, text, len, 0, &n);
        int32_t want[2048];
        size_t nw = len ? naive_encode(v.tok, v.gguf, text, len, want) : 0;
        if (n != nw || memcmp(got, want, n * sizeof *got) != 0) {
            fprintf(stderr, "text '%.*s'\n", (int)len, text);
            print_ids("  naive", want, nw);
            print_ids("  heap ", got, n);
            fail();
        }
        size_t dl;
        char *back = tokenizer_decode(v.tok, got, n, 1, &dl);
        assert_int_equal(dl, len);
        assert_memory_equal(back, text, len);
        free(back);
        free(got);
    }
    close_vocab(&v);
}

/* ---------- performance ---------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_64k_prompt_is_fast(void **state)
{
    (void)state;
    vocab v;
    if (open_vocab("vectors/tokenizer/ggml-vocab-llama-spm.gguf", &v) != 0)
        skip();
    static const char chunk[] =
        "The patient, a 54-year-old caf\xc3\xa9 owner, reported "
        "na\xc3\xafve   symptoms \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x9a\x91\n";
    size_t len = 65536;
    char *text = malloc(len);
    for (size_t i = 0; i < len; i++)
        text[i] = chunk[i % (sizeof chunk - 1)];
    while (len > 0 && ((unsigned char)text[len - 1] & 0xC0) == 0x80)
        len--; /* do not cut a character */
    while (len > 0 && (unsigned char)text[len - 1] >= 0xC0)
        len--;
    double t0 = now_seconds();
    size_t n;
    int32_t *ids = encode(v.tok, text, len, 1, &n);
    double dt = now_seconds() - t0;
    /* One long run of a single repeated character: the worst case for
     * merge-based tokenizers without a heap. */
    memset(text, 'a', len);
    t0 = now_seconds();
    size_t n2;
    int32_t *ids2 = encode(v.tok, text, len, 1, &n2);
    double dt2 = now_seconds() - t0;
    printf("tokenized %zu bytes into %zu tokens in %.1f ms; %zu x 'a' into %zu tokens in %.1f ms\n",
           len, n, dt * 1e3, len, n2, dt2 * 1e3);
    assert_true(dt < 2.0 && dt2 < 2.0); /* generous: sanitizer builds are slow */
    size_t dl;
    char *back = tokenizer_decode(v.tok, ids2, n2, 1, &dl);
    assert_int_equal(dl, len);
    assert_memory_equal(back, text, len);
    free(back);
    free(ids);
    free(ids2);
    free(text);
    close_vocab(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_spm_vectors),
        cmocka_unit_test(test_phi3_vectors),
        cmocka_unit_test(test_engine_prompts),
        cmocka_unit_test(test_specials_and_pieces),
        cmocka_unit_test(test_invalid_utf8_rejected),
        cmocka_unit_test(test_utf8_stream),
        cmocka_unit_test(test_stream_over_byte_tokens),
        cmocka_unit_test(test_inconsistent_metadata),
        cmocka_unit_test(test_random_text_matches_naive_reference),
        cmocka_unit_test(test_64k_prompt_is_fast),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed == 0 && !test_shared_dir()) {
        printf("skipped: ../shared (APPLIANCE_SHARED_DIR) is absent, so the vector tests did "
               "not run\n");
        return TEST_SKIP_CODE;
    }
    return failed;
}
