/* libFuzzer target for the GGUF reader: open arbitrary bytes, then walk every
 * metadata entry, array element and tensor through the public getters, and
 * touch the first and last byte of every tensor's data, so that any bound the
 * reader failed to check shows up as a sanitizer report. When the metadata
 * describes a llama vocabulary, the tokenizer is built from it and used, so
 * hostile vocabularies are fuzzed too. */
#include "engine/gguf.h"
#include "engine/tokenizer.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Reads every element of an array kv through the typed accessors. */
static unsigned walk_array(const gguf_kv *kv)
{
    unsigned acc = 0;
    /* Bounded so a file with millions of elements stays fast to fuzz. */
    uint64_t n = kv->v.arr.count < 4096 ? kv->v.arr.count : 4096;
    for (uint64_t i = 0; i <= n; i++) { /* i == n probes the bound check */
        gguf_str s;
        float f;
        int32_t v;
        if (gguf_arr_str(kv, i, &s) == 0 && s.len > 0)
            acc += (unsigned char)s.ptr[s.len - 1];
        if (gguf_arr_f32(kv, i, &f) == 0)
            acc += f > 0;
        if (gguf_arr_i32(kv, i, &v) == 0)
            acc += (unsigned)v;
    }
    if (gguf_arr_str(kv, kv->v.arr.count, &(gguf_str){0}) == 0)
        __builtin_trap(); /* out-of-range element returned */
    return acc;
}

static unsigned walk_kv(const gguf_file *f, const gguf_kv *kv)
{
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 255 ? kv->key.len : 255), kv->key.ptr);
    unsigned acc = 0;
    uint64_t u;
    float x;
    int b;
    gguf_str s;
    if (kv->key.len < 255 && gguf_find(f, key) != kv)
        __builtin_trap(); /* lookup must find the same entry */
    if (gguf_get_u64(f, key, &u) == 0)
        acc += (unsigned)u;
    if (gguf_get_f32(f, key, &x) == 0)
        acc += x > 0;
    if (gguf_get_bool(f, key, &b) == 0)
        acc += (unsigned)b;
    if (gguf_get_str(f, key, &s) == 0 && s.len > 0)
        acc += (unsigned char)s.ptr[0] + (unsigned char)s.ptr[s.len - 1];
    if (kv->type == GGUF_TYPE_ARRAY)
        acc += walk_array(kv);
    return acc;
}

/* Builds a tokenizer from f when it has a vocabulary, and round-trips text
 * through it (the text covers spaces, multi-byte characters and bytes that
 * need the byte fallback). */
static unsigned walk_tokenizer(const gguf_file *f)
{
    char err[256];
    tokenizer *t = tokenizer_from_gguf(f, err, sizeof err);
    if (!t)
        return 0;
    static const char text[] = "ab a\xc3\xa9 \xe6\x9d\xb1 <s>\x01";
    int32_t ids[64];
    size_t n = 0;
    unsigned acc = 0;
    if (tokenizer_encode(t, text, sizeof text - 1, 1, ids, 64, &n, err, sizeof err) == 0) {
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || (size_t)ids[i] >= tokenizer_n_vocab(t))
                __builtin_trap(); /* ids must be in range */
        size_t len;
        char *back = tokenizer_decode(t, ids, n, 1, &len);
        if (back && !utf8_validate(back, len, NULL))
            __builtin_trap(); /* decoded text must be valid UTF-8 */
        free(back);
        acc += (unsigned)n;
    }
    tokenizer_free(t);
    return acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    gguf_file *f = gguf_open(data, size, err, sizeof err);
    if (!f)
        return 0;
    volatile unsigned acc = gguf_version(f) + (unsigned)gguf_alignment(f);
    for (size_t i = 0; i < gguf_kv_count(f); i++)
        acc += walk_kv(f, gguf_kv_at(f, i));
    for (size_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        const uint8_t *p = t->data;
        acc += p[0] + p[t->size - 1];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(t->name.len < 255 ? t->name.len : 255),
                 t->name.ptr);
        if (t->name.len < 255 && gguf_find_tensor(f, name) != t)
            __builtin_trap();
    }
    acc += walk_tokenizer(f);
    gguf_close(f);
    (void)acc; /* a volatile read: keeps the data reads above observable */
    return 0;
}
