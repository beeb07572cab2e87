/* GGUF v2/v3 reader and v3 writer.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 tensor_count, u64 kv_count,
 * kv_count x (string key, u32 type, value), tensor_count x (string name,
 * u32 n_dims, u64 ne[n_dims], u32 type, u64 offset), padding to the
 * alignment, then the data section; tensor offsets are relative to it.
 * A string is a u64 length and that many bytes; an array is a u32 element
 * type, a u64 count and the elements.
 *
 * The reader treats the bytes as hostile. Every read goes through a cursor
 * that checks the remaining length first; every count is bounded by the bytes
 * left before anything is allocated for it, so the allocations are at most a
 * small multiple of the file size; all size arithmetic is overflow-checked. */
#include "gguf.h"
#include "quant.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct gguf_file {
    const uint8_t *base;
    size_t size;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset; /* absolute offset of the data section */
    gguf_kv *kvs;
    size_t n_kvs;
    size_t *kv_by_key; /* kv indices sorted by key, for binary search */
    gguf_tensor *tensors;
    size_t n_tensors;
    size_t *tensor_by_name;
    gguf_str *str_pool; /* elements of every string array */
};

/* ---------- small helpers ---------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t load_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* True when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
 * points above U+10FFFF). */
static bool utf8_valid(const uint8_t *s, uint64_t n)
{
    uint64_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        unsigned need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            return false;
        }
        if (n - i - 1 < need)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (unsigned k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return false;
        i += need + 1;
    }
    return true;
}

static int str_cmp(gguf_str a, gguf_str b)
{
    uint64_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c != 0)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

/* Prints a file string into an error message safely (bounded, printable). */
static const char *printable(gguf_str s, char *buf, size_t cap)
{
    size_t n = 0;
    for (uint64_t i = 0; i < s.len && n + 5 < cap; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c >= 0x20 && c < 0x7F) {
            buf[n++] = (char)c;
        } else {
            n += (size_t)snprintf(buf + n, cap - n, "\\x%02x", c);
        }
    }
    if (n + 5 >= cap && s.len > 0 && n < cap - 4)
        memcpy(buf + n, "...", 4);
    else
        buf[n] = 0;
    return buf;
}

/* ---------- cursor ---------- */

typedef struct {
    const uint8_t *base;
    size_t size;
    size_t pos;
    char *err;
    size_t errlen;
    char what[160]; /* what is being read, for error messages */
} cursor;

/* Ensures n more bytes exist; otherwise reports truncation. */
static int need(cursor *c, uint64_t n)
{
    if (n > c->size - c->pos) {
        set_err(c->err, c->errlen,
                "file truncated: %s needs %" PRIu64
                " bytes at offset %zu but the file has %zu bytes",
                c->what, n, c->pos, c->size);
        return -1;
    }
    return 0;
}

static int read_uint(cursor *c, unsigned n, uint64_t *v)
{
    if (need(c, n) != 0)
        return -1;
    *v = load_le(c->base + c->pos, n);
    c->pos += n;
    return 0;
}

static int read_u32(cursor *c, uint32_t *v)
{
    uint64_t x;
    if (read_uint(c, 4, &x) != 0)
        return -1;
    *v = (uint32_t)x;
    return 0;
}

static int read_str(cursor *c, gguf_str *s)
{
    uint64_t len;
    if (read_uint(c, 8, &len) != 0 || need(c, len) != 0)
        return -1;
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += (size_t)len;
    return 0;
}

/* Size of a fixed-size value type, 0 for string/array/unknown. */
static unsigned scalar_size(uint32_t type)
{
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL:
        return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
        return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32:
        return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static bool is_signed_type(uint32_t type)
{
    return type == GGUF_TYPE_INT8 || type == GGUF_TYPE_INT16 || type == GGUF_TYPE_INT32 ||
           type == GGUF_TYPE_INT64;
}

static bool is_int_type(uint32_t type)
{
    return type <= GGUF_TYPE_INT32 || type == GGUF_TYPE_UINT64 || type == GGUF_TYPE_INT64;
}

/* Decodes one fixed-size scalar at p into kv's union. */
static void decode_scalar(uint32_t type, const uint8_t *p, gguf_kv *kv)
{
    unsigned n = scalar_size(type);
    uint64_t raw = load_le(p, n);
    if (type == GGUF_TYPE_FLOAT32) {
        uint32_t bits = (uint32_t)raw;
        float f;
        memcpy(&f, &bits, 4);
        kv->v.f64 = f;
    } else if (type == GGUF_TYPE_FLOAT64) {
        memcpy(&kv->v.f64, &raw, 8);
    } else if (type == GGUF_TYPE_BOOL) {
        kv->v.b = raw != 0;
    } else if (is_signed_type(type)) {
        unsigned shift = 64 - 8 * n;
        /* Sign-extend through an unsigned shift, then convert (two's complement). */
        uint64_t ext = (raw << shift);
        kv->v.i64 = (int64_t)ext >> shift;
    } else {
        kv->v.u64 = raw;
    }
}

/* ---------- parsing ---------- */

typedef struct {
    cursor c;
    gguf_file *f;
    uint64_t n_strs; /* string-array elements seen so far (first pass) */
} parser;

static int parse_array(parser *ps, gguf_kv *kv, char *kb)
{
    cursor *c = &ps->c;
    uint32_t et;
    uint64_t count;
    if (read_u32(c, &et) != 0 || read_uint(c, 8, &count) != 0)
        return -1;
    if (et == GGUF_TYPE_ARRAY) {
        set_err(c->err, c->errlen, "key %s: nested arrays are not supported", kb);
        return -1;
    }
    kv->v.arr.type = (enum gguf_value_type)et;
    kv->v.arr.count = count;
    kv->v.arr.data = c->base + c->pos;
    kv->v.arr.strs = NULL;
    if (et == GGUF_TYPE_STRING) {
        if (count > (c->size - c->pos) / 8) {
            set_err(c->err, c->errlen,
                    "key %s: array of %" PRIu64 " strings exceeds the %zu bytes left in the file",
                    kb, count, c->size - c->pos);
            return -1;
        }
        for (uint64_t i = 0; i < count; i++) {
            gguf_str s;
            if (read_str(c, &s) != 0)
                return -1;
        }
        ps->n_strs += count;
        return 0;
    }
    unsigned es = scalar_size(et);
    if (es == 0) {
        set_err(c->err, c->errlen, "key %s: unknown array element type %" PRIu32, kb, et);
        return -1;
    }
    if (count > (c->size - c->pos) / es) {
        set_err(c->err, c->errlen,
                "key %s: array of %" PRIu64 " elements exceeds the %zu bytes left in the file", kb,
                count, c->size - c->pos);
        return -1;
    }
    if (et == GGUF_TYPE_BOOL) {
        for (uint64_t i = 0; i < count; i++) {
            if (c->base[c->pos + i] > 1) {
                set_err(c->err, c->errlen, "key %s: boolean element %" PRIu64 " is %u, not 0 or 1",
                        kb, i, c->base[c->pos + i]);
                return -1;
            }
        }
    }
    c->pos += (size_t)(count * es);
    return 0;
}

static int parse_value(parser *ps, gguf_kv *kv, uint32_t type, char *kb)
{
    cursor *c = &ps->c;
    if (type == GGUF_TYPE_STRING)
        return read_str(c, &kv->v.str);
    if (type == GGUF_TYPE_ARRAY)
        return parse_array(ps, kv, kb);
    unsigned n = scalar_size(type);
    if (n == 0) {
        set_err(c->err, c->errlen, "key %s: unknown value type %" PRIu32, kb, type);
        return -1;
    }
    if (need(c, n) != 0)
        return -1;
    if (type == GGUF_TYPE_BOOL && c->base[c->pos] > 1) {
        set_err(c->err, c->errlen, "key %s: boolean value is %u, not 0 or 1", kb, c->base[c->pos]);
        return -1;
    }
    decode_scalar(type, c->base + c->pos, kv);
    c->pos += n;
    return 0;
}

static int parse_kv(parser *ps, uint64_t i, gguf_kv *kv)
{
    cursor *c = &ps->c;
    char kb[96];
    snprintf(c->what, sizeof c->what, "the key of metadata entry %" PRIu64, i);
    if (read_str(c, &kv->key) != 0)
        return -1;
    if (kv->key.len == 0) {
        set_err(c->err, c->errlen, "metadata entry %" PRIu64 " has an empty key", i);
        return -1;
    }
    if (!utf8_valid((const uint8_t *)kv->key.ptr, kv->key.len)) {
        set_err(c->err, c->errlen, "metadata entry %" PRIu64 " has a key that is not valid UTF-8",
                i);
        return -1;
    }
    /* Keys are looked up as C strings: an embedded NUL would hide a suffix. */
    if (memchr(kv->key.ptr, 0, (size_t)kv->key.len)) {
        set_err(c->err, c->errlen, "metadata entry %" PRIu64 " has a key containing a NUL byte", i);
        return -1;
    }
    printable(kv->key, kb, sizeof kb);
    snprintf(c->what, sizeof c->what, "the value of key %s", kb);
    uint32_t type;
    if (read_u32(c, &type) != 0)
        return -1;
    kv->type = (enum gguf_value_type)type;
    return parse_value(ps, kv, type, kb);
}

/* Builds the string index of every string array (second pass over the
 * already-validated bytes, so no checks can fail here). */
static int index_string_arrays(gguf_file *f, uint64_t n_strs, char *err, size_t errlen)
{
    if (n_strs == 0)
        return 0;
    f->str_pool = malloc((size_t)n_strs * sizeof *f->str_pool);
    if (!f->str_pool) {
        set_err(err, errlen, "out of memory indexing %" PRIu64 " metadata strings", n_strs);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < f->n_kvs; i++) {
        gguf_kv *kv = &f->kvs[i];
        if (kv->type != GGUF_TYPE_ARRAY || kv->v.arr.type != GGUF_TYPE_STRING)
            continue;
        const uint8_t *p = kv->v.arr.data;
        kv->v.arr.strs = f->str_pool + k;
        for (uint64_t j = 0; j < kv->v.arr.count; j++) {
            uint64_t len = load_le(p, 8);
            f->str_pool[k].ptr = (const char *)p + 8;
            f->str_pool[k].len = len;
            p += 8 + len;
            k++;
        }
    }
    return 0;
}

/* Sorts idx[0..n) by the strings they name (keys[i] is stride bytes apart),
 * stably, in O(n log n), using tmp (n entries) as scratch. A merge sort
 * rather than qsort, whose comparator could only reach the strings through
 * global state. */
static void sort_indices(size_t *idx, size_t n, const gguf_str *keys, size_t stride, size_t *tmp)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    sort_indices(idx, h, keys, stride, tmp);
    sort_indices(idx + h, n - h, keys, stride, tmp);
    size_t a = 0, b = h, o = 0;
    while (a < h && b < n) {
        const gguf_str *ka = (const gguf_str *)((const char *)keys + idx[a] * stride);
        const gguf_str *kb = (const gguf_str *)((const char *)keys + idx[b] * stride);
        tmp[o++] = str_cmp(*ka, *kb) <= 0 ? idx[a++] : idx[b++];
    }
    while (a < h)
        tmp[o++] = idx[a++];
    while (b < n)
        tmp[o++] = idx[b++];
    memcpy(idx, tmp, n * sizeof *idx);
}

/* Allocates and fills a sorted index over n names; reports the first
 * duplicate name with the given noun ("key", "tensor name"). */
static size_t *sorted_unique_index(const gguf_str *names, size_t stride, size_t n, const char *noun,
                                   char *err, size_t errlen)
{
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    size_t *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!idx || !tmp) {
        free(idx);
        free(tmp);
        set_err(err, errlen, "out of memory indexing %zu %ss", n, noun);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    sort_indices(idx, n, names, stride, tmp);
    free(tmp);
    for (size_t i = 1; i < n; i++) {
        const gguf_str *a = (const gguf_str *)((const char *)names + idx[i - 1] * stride);
        const gguf_str *b = (const gguf_str *)((const char *)names + idx[i] * stride);
        if (str_cmp(*a, *b) == 0) {
            char pb[96];
            set_err(err, errlen, "duplicate %s %s", noun, printable(*a, pb, sizeof pb));
            free(idx);
            return NULL;
        }
    }
    return idx;
}

static int parse_kvs(parser *ps, uint64_t n_kv)
{
    cursor *c = &ps->c;
    gguf_file *f = ps->f;
    /* Smallest entry: 8-byte key length, 1-byte key, 4-byte type, 1-byte value. */
    if (n_kv > (c->size - c->pos) / 14) {
        set_err(c->err, c->errlen,
                "metadata count %" PRIu64 " exceeds what the %zu bytes left in the file can hold",
                n_kv, c->size - c->pos);
        return -1;
    }
    f->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *f->kvs);
    if (!f->kvs) {
        set_err(c->err, c->errlen, "out of memory for %" PRIu64 " metadata entries", n_kv);
        return -1;
    }
    f->n_kvs = (size_t)n_kv;
    for (uint64_t i = 0; i < n_kv; i++)
        if (parse_kv(ps, i, &f->kvs[i]) != 0)
            return -1;
    if (index_string_arrays(f, ps->n_strs, c->err, c->errlen) != 0)
        return -1;
    f->kv_by_key =
        sorted_unique_index(&f->kvs[0].key, sizeof(gguf_kv), f->n_kvs, "key", c->err, c->errlen);
    return f->kv_by_key ? 0 : -1;
}

/* Reads general.alignment when present: it must be a nonzero power of two
 * stored as u32 (as the spec and llama.cpp require). */
static int parse_alignment(gguf_file *f, char *err, size_t errlen)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_find(f, "general.alignment");
    if (!kv)
        return 0;
    if (kv->type != GGUF_TYPE_UINT32) {
        set_err(err, errlen, "general.alignment has value type %u, expected u32 (4)",
                (unsigned)kv->type);
        return -1;
    }
    uint64_t a = kv->v.u64;
    if (a == 0 || (a & (a - 1)) != 0) {
        set_err(err, errlen, "general.alignment %" PRIu64 " is not a nonzero power of two", a);
        return -1;
    }
    f->alignment = a;
    return 0;
}

/* Names of GGML tensor types that exist but that this engine does not know
 * (quant.c has no geometry for them), so a rejection can say what the file
 * holds. */
static const char *unsupported_type_name(uint32_t type)
{
    static const char *const names[] = {
        [4] = "q4_2",   [5] = "q4_3",    [16] = "iq2_xxs", [17] = "iq2_xs", [18] = "iq3_xxs",
        [19] = "iq1_s", [20] = "iq4_nl", [21] = "iq3_s",   [22] = "iq2_s",  [23] = "iq4_xs",
        [24] = "i8",    [25] = "i16",    [26] = "i32",     [27] = "i64",    [28] = "f64",
        [29] = "iq1_m", [34] = "tq1_0",  [35] = "tq2_0",
    };
    return type < sizeof names / sizeof names[0] ? names[type] : NULL;
}

/* Computes the element count and byte size of t; checks type and shape. */
static int tensor_shape(gguf_tensor *t, const char *nb, char *err, size_t errlen)
{
    const tensor_type_info *g = tensor_type_get(t->type);
    if (!g) {
        const char *name = unsupported_type_name(t->type);
        if (name)
            set_err(err, errlen, "tensor %s: tensor type %" PRIu32 " (%s) is not supported", nb,
                    t->type, name);
        else
            set_err(err, errlen, "tensor %s: unknown tensor type %" PRIu32, nb, t->type);
        return -1;
    }
    uint64_t elems = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (t->ne[d] == 0) {
            set_err(err, errlen, "tensor %s: dimension %" PRIu32 " is zero", nb, d);
            return -1;
        }
        if (t->ne[d] > (uint64_t)INT64_MAX / elems) {
            set_err(err, errlen, "tensor %s: dimensions overflow a 64-bit element count", nb);
            return -1;
        }
        elems *= t->ne[d];
    }
    if (t->ne[0] % g->block != 0) {
        set_err(err, errlen, "tensor %s: row length %" PRIu64 " is not a multiple of block size %u",
                nb, t->ne[0], (unsigned)g->block);
        return -1;
    }
    uint64_t rb;
    if (tensor_row_bytes(t->type, t->ne[0], &rb) != 0 || elems / t->ne[0] > UINT64_MAX / rb) {
        set_err(err, errlen, "tensor %s: byte size overflows 64 bits", nb);
        return -1;
    }
    t->size = rb * (elems / t->ne[0]);
    return 0;
}

static int parse_tensor_info(parser *ps, uint64_t i, gguf_tensor *t)
{
    cursor *c = &ps->c;
    char nb[96];
    snprintf(c->what, sizeof c->what, "the name of tensor %" PRIu64, i);
    if (read_str(c, &t->name) != 0)
        return -1;
    if (t->name.len == 0 || !utf8_valid((const uint8_t *)t->name.ptr, t->name.len) ||
        memchr(t->name.ptr, 0, (size_t)t->name.len)) {
        set_err(c->err, c->errlen,
                "tensor %" PRIu64 " has an empty, non-UTF-8 or NUL-containing name", i);
        return -1;
    }
    printable(t->name, nb, sizeof nb);
    snprintf(c->what, sizeof c->what, "the info of tensor %s", nb);
    if (read_u32(c, &t->n_dims) != 0)
        return -1;
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS) {
        set_err(c->err, c->errlen, "tensor %s: %" PRIu32 " dimensions, expected 1 to %d", nb,
                t->n_dims, GGUF_MAX_DIMS);
        return -1;
    }
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++)
        if (read_uint(c, 8, &t->ne[d]) != 0)
            return -1;
    if (read_u32(c, &t->type) != 0 || read_uint(c, 8, &t->offset) != 0)
        return -1;
    return tensor_shape(t, nb, c->err, c->errlen);
}

/* Checks that every tensor's data lies inside the file, aligned, and that no
 * two tensors overlap; sets the data pointers. */
static int place_tensors(gguf_file *f, char *err, size_t errlen)
{
    for (size_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        char nb[96];
        printable(t->name, nb, sizeof nb);
        if (t->offset % f->alignment != 0) {
            set_err(err, errlen,
                    "tensor %s: data offset %" PRIu64
                    " is not a multiple of the alignment %" PRIu64,
                    nb, t->offset, f->alignment);
            return -1;
        }
        uint64_t start = f->data_offset + t->offset; /* wrap-around is detected just below */
        bool overflow = t->offset > UINT64_MAX - f->data_offset || t->size > UINT64_MAX - start;
        if (overflow || start + t->size > f->size) {
            if (overflow)
                set_err(err, errlen, "tensor %s: data offset %" PRIu64 " overflows 64 bits", nb,
                        t->offset);
            else
                set_err(err, errlen,
                        "tensor %s: data [%" PRIu64 ", %" PRIu64 ") outside file of %zu bytes", nb,
                        start, start + t->size, f->size);
            return -1;
        }
        t->data = f->base + start;
    }
    return 0;
}

/* Rejects overlapping tensor data (sorting by offset, O(n log n)). */
static int check_overlap(gguf_file *f, char *err, size_t errlen)
{
    size_t n = f->n_tensors;
    if (n < 2)
        return 0;
    size_t *idx = malloc(n * sizeof *idx), *tmp = malloc(n * sizeof *tmp);
    if (!idx || !tmp) {
        free(idx);
        free(tmp);
        set_err(err, errlen, "out of memory checking %zu tensors for overlap", n);
        return -1;
    }
    /* Merge sort by offset (offsets are unique unless overlapping). */
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi)
                tmp[o++] =
                    f->tensors[idx[a]].offset <= f->tensors[idx[b]].offset ? idx[a++] : idx[b++];
            while (a < mid)
                tmp[o++] = idx[a++];
            while (b < hi)
                tmp[o++] = idx[b++];
        }
        memcpy(idx, tmp, n * sizeof *idx);
    }
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++) {
        const gguf_tensor *a = &f->tensors[idx[i - 1]], *b = &f->tensors[idx[i]];
        if (a->offset + a->size > b->offset) {
            char na[96], nb[96];
            set_err(err, errlen, "tensors %s and %s overlap in the data section",
                    printable(a->name, na, sizeof na), printable(b->name, nb, sizeof nb));
            rc = -1;
        }
    }
    free(idx);
    free(tmp);
    return rc;
}

static int parse_tensors(parser *ps, uint64_t n_t)
{
    cursor *c = &ps->c;
    gguf_file *f = ps->f;
    /* Smallest info: 8-byte name length, 1-byte name, n_dims, one dim, type, offset. */
    if (n_t > (c->size - c->pos) / 33) {
        set_err(c->err, c->errlen,
                "tensor count %" PRIu64 " exceeds what the %zu bytes left in the file can hold",
                n_t, c->size - c->pos);
        return -1;
    }
    f->tensors = calloc(n_t ? (size_t)n_t : 1, sizeof *f->tensors);
    if (!f->tensors) {
        set_err(c->err, c->errlen, "out of memory for %" PRIu64 " tensors", n_t);
        return -1;
    }
    f->n_tensors = (size_t)n_t;
    for (uint64_t i = 0; i < n_t; i++)
        if (parse_tensor_info(ps, i, &f->tensors[i]) != 0)
            return -1;
    f->tensor_by_name = sorted_unique_index(&f->tensors[0].name, sizeof(gguf_tensor), f->n_tensors,
                                            "tensor name", c->err, c->errlen);
    if (!f->tensor_by_name)
        return -1;
    uint64_t pad = (f->alignment - c->pos % f->alignment) % f->alignment;
    f->data_offset = (uint64_t)c->pos + pad;
    if (place_tensors(f, c->err, c->errlen) != 0)
        return -1;
    return check_overlap(f, c->err, c->errlen);
}

static int parse_header(parser *ps, uint64_t *n_t, uint64_t *n_kv)
{
    cursor *c = &ps->c;
    if (c->size < 4 || memcmp(c->base, "GGUF", 4) != 0) {
        set_err(c->err, c->errlen, "not a GGUF file (bad magic)");
        return -1;
    }
    c->pos = 4;
    snprintf(c->what, sizeof c->what, "the GGUF header");
    uint32_t v;
    if (read_u32(c, &v) != 0)
        return -1;
    if (v == 1) {
        set_err(c->err, c->errlen,
                "GGUF version 1 is not supported (it uses 32-bit counts); convert the file to v3");
        return -1;
    }
    if (v != 2 && v != 3) {
        if ((v & 0xFFFF) == 0 && v != 0)
            set_err(c->err, c->errlen, "big-endian GGUF files are not supported");
        else
            set_err(c->err, c->errlen, "unsupported GGUF version %" PRIu32 " (expected 2 or 3)", v);
        return -1;
    }
    ps->f->version = v;
    if (read_uint(c, 8, n_t) != 0 || read_uint(c, 8, n_kv) != 0)
        return -1;
    return 0;
}

gguf_file *gguf_open(const void *data, size_t size, char *err, size_t errlen)
{
    if (!data && size > 0) {
        set_err(err, errlen, "no data given");
        return NULL;
    }
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) {
        set_err(err, errlen, "out of memory opening a GGUF file");
        return NULL;
    }
    f->base = data;
    f->size = size;
    parser ps = {.c = {.base = data, .size = size, .err = err, .errlen = errlen}, .f = f};
    uint64_t n_t, n_kv;
    if (parse_header(&ps, &n_t, &n_kv) != 0 || parse_kvs(&ps, n_kv) != 0 ||
        parse_alignment(f, err, errlen) != 0 || parse_tensors(&ps, n_t) != 0) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

void gguf_close(gguf_file *f)
{
    if (!f)
        return;
    free(f->kvs);
    free(f->kv_by_key);
    free(f->tensors);
    free(f->tensor_by_name);
    free(f->str_pool);
    free(f);
}

uint32_t gguf_version(const gguf_file *f)
{
    return f->version;
}

uint64_t gguf_alignment(const gguf_file *f)
{
    return f->alignment;
}

size_t gguf_kv_count(const gguf_file *f)
{
    return f->n_kvs;
}

const gguf_kv *gguf_kv_at(const gguf_file *f, size_t i)
{
    return i < f->n_kvs ? &f->kvs[i] : NULL;
}

/* Binary search of a sorted index; returns the element index or SIZE_MAX. */
static size_t find_sorted(const size_t *idx, size_t n, const gguf_str *names, size_t stride,
                          const char *name)
{
    if (!idx || !name)
        return SIZE_MAX;
    gguf_str want = {name, strlen(name)};
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const gguf_str *s = (const gguf_str *)((const char *)names + idx[mid] * stride);
        int c = str_cmp(*s, want);
        if (c == 0)
            return idx[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

const gguf_kv *gguf_find(const gguf_file *f, const char *key)
{
    if (f->n_kvs == 0)
        return NULL;
    size_t i = find_sorted(f->kv_by_key, f->n_kvs, &f->kvs[0].key, sizeof(gguf_kv), key);
    return i == SIZE_MAX ? NULL : &f->kvs[i];
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv || !is_int_type(kv->type))
        return -1;
    if (is_signed_type(kv->type)) {
        if (kv->v.i64 < 0)
            return -1;
        *out = (uint64_t)kv->v.i64;
    } else {
        *out = kv->v.u64;
    }
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv || (kv->type != GGUF_TYPE_FLOAT32 && kv->type != GGUF_TYPE_FLOAT64))
        return -1;
    *out = (float)kv->v.f64;
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv || kv->type != GGUF_TYPE_BOOL)
        return -1;
    *out = kv->v.b;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv || kv->type != GGUF_TYPE_STRING)
        return -1;
    *out = kv->v.str;
    return 0;
}

int gguf_arr_str(const gguf_kv *kv, uint64_t i, gguf_str *out)
{
    if (!kv || kv->type != GGUF_TYPE_ARRAY || kv->v.arr.type != GGUF_TYPE_STRING ||
        i >= kv->v.arr.count || !kv->v.arr.strs)
        return -1;
    *out = kv->v.arr.strs[i];
    return 0;
}

/* Decodes element i of a numeric array into a scratch kv. */
static int arr_scalar(const gguf_kv *kv, uint64_t i, gguf_kv *tmp)
{
    if (!kv || kv->type != GGUF_TYPE_ARRAY || i >= kv->v.arr.count)
        return -1;
    unsigned es = scalar_size(kv->v.arr.type);
    if (es == 0)
        return -1;
    decode_scalar(kv->v.arr.type, kv->v.arr.data + i * es, tmp);
    return 0;
}

int gguf_arr_f32(const gguf_kv *kv, uint64_t i, float *out)
{
    gguf_kv tmp;
    if (!kv || kv->type != GGUF_TYPE_ARRAY ||
        (kv->v.arr.type != GGUF_TYPE_FLOAT32 && kv->v.arr.type != GGUF_TYPE_FLOAT64) ||
        arr_scalar(kv, i, &tmp) != 0)
        return -1;
    *out = (float)tmp.v.f64;
    return 0;
}

int gguf_arr_i32(const gguf_kv *kv, uint64_t i, int32_t *out)
{
    gguf_kv tmp;
    if (!kv || kv->type != GGUF_TYPE_ARRAY || !is_int_type(kv->v.arr.type) ||
        arr_scalar(kv, i, &tmp) != 0)
        return -1;
    if (is_signed_type(kv->v.arr.type)) {
        if (tmp.v.i64 < INT32_MIN || tmp.v.i64 > INT32_MAX)
            return -1;
        *out = (int32_t)tmp.v.i64;
    } else {
        if (tmp.v.u64 > INT32_MAX)
            return -1;
        *out = (int32_t)tmp.v.u64;
    }
    return 0;
}

size_t gguf_tensor_count(const gguf_file *f)
{
    return f->n_tensors;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    if (f->n_tensors == 0)
        return NULL;
    size_t i = find_sorted(f->tensor_by_name, f->n_tensors, &f->tensors[0].name,
                           sizeof(gguf_tensor), name);
    return i == SIZE_MAX ? NULL : &f->tensors[i];
}

/* ---------- writer ---------- */

/* One metadata entry, already encoded (value type + value bytes). */
typedef struct {
    char *key;
    uint8_t *val;
    size_t val_len;
} writer_kv;

typedef struct {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t size;
    const void *data;
} writer_tensor;

struct gguf_writer {
    uint64_t alignment;
    writer_kv *kvs;
    size_t n_kvs, cap_kvs;
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
    char first_err[200]; /* sticky: the first failed call, reported by write */
};

/* A growable byte buffer used to encode values. */
typedef struct {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} bytes;

static void put(bytes *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_le(bytes *b, uint64_t v, unsigned n)
{
    uint8_t tmp[8];
    for (unsigned i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    put(b, tmp, n);
}

static void put_str(bytes *b, const char *s, size_t n)
{
    put_le(b, n, 8);
    put(b, s, n);
}

gguf_writer *gguf_writer_new(uint64_t alignment)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > UINT32_MAX)
        return NULL;
    gguf_writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->alignment = alignment;
    if (alignment != GGUF_DEFAULT_ALIGNMENT &&
        gguf_writer_set_u32(w, "general.alignment", (uint32_t)alignment) != 0) {
        gguf_writer_free(w);
        return NULL;
    }
    return w;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kvs; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].val);
    }
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

/* Records the first failure so gguf_writer_write can report it; returns -1. */
static int writer_fail(gguf_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int writer_fail(gguf_writer *w, const char *fmt, ...)
{
    if (w->first_err[0] == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->first_err, sizeof w->first_err, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Takes ownership of the encoded value in b (type word included). */
static int writer_add_kv(gguf_writer *w, const char *key, bytes *b)
{
    if (!key || !*key) {
        free(b->p);
        return writer_fail(w, "metadata key is empty");
    }
    for (size_t i = 0; i < w->n_kvs; i++) {
        if (strcmp(w->kvs[i].key, key) == 0) {
            free(b->p);
            return writer_fail(w, "duplicate metadata key %s", key);
        }
    }
    if (b->oom || w->n_kvs == SIZE_MAX / sizeof *w->kvs / 2) {
        free(b->p);
        return writer_fail(w, "out of memory encoding key %s", key);
    }
    if (w->n_kvs == w->cap_kvs) {
        size_t cap = w->cap_kvs ? 2 * w->cap_kvs : 16;
        writer_kv *nk = realloc(w->kvs, cap * sizeof *nk);
        if (!nk) {
            free(b->p);
            return writer_fail(w, "out of memory adding key %s", key);
        }
        w->kvs = nk;
        w->cap_kvs = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(b->p);
        return writer_fail(w, "out of memory adding key %s", key);
    }
    w->kvs[w->n_kvs++] = (writer_kv){k, b->p, b->len};
    return 0;
}

static int writer_set_scalar(gguf_writer *w, const char *key, uint32_t type, uint64_t raw)
{
    bytes b = {0};
    put_le(&b, type, 4);
    put_le(&b, raw, scalar_size(type));
    return writer_add_kv(w, key, &b);
}

int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v)
{
    return writer_set_scalar(w, key, GGUF_TYPE_UINT32, v);
}

int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v)
{
    return writer_set_scalar(w, key, GGUF_TYPE_INT32, (uint32_t)v);
}

int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v)
{
    return writer_set_scalar(w, key, GGUF_TYPE_UINT64, v);
}

int gguf_writer_set_f32(gguf_writer *w, const char *key, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return writer_set_scalar(w, key, GGUF_TYPE_FLOAT32, bits);
}

int gguf_writer_set_bool(gguf_writer *w, const char *key, int v)
{
    return writer_set_scalar(w, key, GGUF_TYPE_BOOL, v != 0);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v)
{
    if (!v)
        return writer_fail(w, "key %s: string value is NULL", key ? key : "(null)");
    bytes b = {0};
    put_le(&b, GGUF_TYPE_STRING, 4);
    put_str(&b, v, strlen(v));
    return writer_add_kv(w, key, &b);
}

int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v, size_t n)
{
    bytes b = {0};
    put_le(&b, GGUF_TYPE_ARRAY, 4);
    put_le(&b, GGUF_TYPE_STRING, 4);
    put_le(&b, n, 8);
    for (size_t i = 0; i < n; i++) {
        if (!v[i]) {
            free(b.p);
            return writer_fail(w, "key %s: string element %zu is NULL", key ? key : "(null)", i);
        }
        put_str(&b, v[i], strlen(v[i]));
    }
    return writer_add_kv(w, key, &b);
}

static int writer_set_arr_fixed(gguf_writer *w, const char *key, uint32_t et, const void *v,
                                size_t n)
{
    bytes b = {0};
    put_le(&b, GGUF_TYPE_ARRAY, 4);
    put_le(&b, et, 4);
    put_le(&b, n, 8);
    const uint8_t *p = v;
    for (size_t i = 0; i < n; i++) {
        uint32_t x;
        memcpy(&x, p + 4 * i, 4);
        put_le(&b, x, 4);
    }
    return writer_add_kv(w, key, &b);
}

int gguf_writer_set_arr_f32(gguf_writer *w, const char *key, const float *v, size_t n)
{
    return writer_set_arr_fixed(w, key, GGUF_TYPE_FLOAT32, v, n);
}

int gguf_writer_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, size_t n)
{
    return writer_set_arr_fixed(w, key, GGUF_TYPE_INT32, v, n);
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const uint64_t *ne, const void *data)
{
    if (!name || !*name)
        return writer_fail(w, "tensor name is empty");
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return writer_fail(w, "duplicate tensor name %s", name);
    writer_tensor t = {.type = type, .n_dims = n_dims, .data = data};
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS)
        return writer_fail(w, "tensor %s: %" PRIu32 " dimensions, expected 1 to %d", name, n_dims,
                           GGUF_MAX_DIMS);
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
        t.ne[d] = d < n_dims ? ne[d] : 1;
    gguf_tensor probe = {.n_dims = n_dims, .type = type};
    memcpy(probe.ne, t.ne, sizeof probe.ne);
    char why[160];
    if (tensor_shape(&probe, name, why, sizeof why) != 0)
        return writer_fail(w, "%s", why);
    t.size = probe.size;
    if (probe.size > 0 && !data)
        return writer_fail(w, "tensor %s: data is NULL", name);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 16;
        writer_tensor *nt = realloc(w->tensors, cap * sizeof *nt);
        if (!nt)
            return writer_fail(w, "out of memory adding tensor %s", name);
        w->tensors = nt;
        w->cap_tensors = cap;
    }
    t.name = strdup(name);
    if (!t.name)
        return writer_fail(w, "out of memory adding tensor %s", name);
    w->tensors[w->n_tensors++] = t;
    return 0;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

/* Encodes header, metadata and tensor infos (with offsets laid out in
 * insertion order, each aligned), padded to the alignment. */
static void encode_head(const gguf_writer *w, bytes *b)
{
    put(b, "GGUF", 4);
    put_le(b, 3, 4);
    put_le(b, w->n_tensors, 8);
    put_le(b, w->n_kvs, 8);
    for (size_t i = 0; i < w->n_kvs; i++) {
        put_str(b, w->kvs[i].key, strlen(w->kvs[i].key));
        put(b, w->kvs[i].val, w->kvs[i].val_len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        put_str(b, t->name, strlen(t->name));
        put_le(b, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_le(b, t->ne[d], 8);
        put_le(b, t->type, 4);
        put_le(b, off, 8);
        off = align_up(off + t->size, w->alignment);
    }
    static const uint8_t zeros[64];
    while (!b->oom && b->len % w->alignment != 0) {
        size_t n = (size_t)(w->alignment - b->len % w->alignment);
        put(b, zeros, n < sizeof zeros ? n : sizeof zeros);
    }
}

static int write_padding(FILE *out, uint64_t n)
{
    static const uint8_t zeros[256];
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (fwrite(zeros, 1, k, out) != k)
            return -1;
        n -= k;
    }
    return 0;
}

int gguf_writer_write(gguf_writer *w, FILE *out, char *err, size_t errlen)
{
    if (w->first_err[0]) {
        set_err(err, errlen, "%s", w->first_err);
        return -1;
    }
    bytes b = {0};
    encode_head(w, &b);
    if (b.oom) {
        free(b.p);
        set_err(err, errlen, "out of memory encoding the GGUF header");
        return -1;
    }
    int rc = fwrite(b.p, 1, b.len, out) == b.len ? 0 : -1;
    free(b.p);
    for (size_t i = 0; i < w->n_tensors && rc == 0; i++) {
        const writer_tensor *t = &w->tensors[i];
        if (fwrite(t->data, 1, (size_t)t->size, out) != t->size)
            rc = -1;
        else if (i + 1 < w->n_tensors)
            rc = write_padding(out, align_up(t->size, w->alignment) - t->size);
    }
    if (rc == 0 && fflush(out) != 0)
        rc = -1;
    if (rc != 0)
        set_err(err, errlen, "writing the GGUF file failed");
    return rc;
}
