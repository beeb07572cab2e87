/* SentencePiece-style (llama vocabulary) tokenizer and UTF-8 stream repair.
 *
 * Encoding is a best-score-first merge over a linked list of symbols with a
 * binary heap of candidate pairs, as in llama.cpp's SPM tokenizer, so the
 * ids match it exactly; pieces are found through an open-addressing hash
 * table built once. Cost: O(n log n) in the text length. */
#include "tokenizer.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SPACE_MARK     "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK, "▁" */
#define SPACE_MARK_LEN 3
#define UNKNOWN_TEXT   "\xe2\x96\x85" /* "▅", what llama.cpp prints for <unk> */
/* Longest text tokenizer_encode accepts; keeps symbol indices in int32. */
#define MAX_TEXT_BYTES ((size_t)256 << 20)

struct tokenizer {
    size_t n;
    char *pieces;        /* every piece, concatenated */
    uint64_t *piece_off; /* n + 1 offsets into pieces */
    char *texts;         /* every token's output text, concatenated */
    uint64_t *text_off;  /* n + 1 offsets into texts */
    size_t max_text;
    float *scores;
    uint8_t *kinds;
    int32_t *slots; /* hash table of ids keyed by piece; -1 = empty */
    size_t slot_mask;
    int32_t byte_token[256]; /* id for each raw byte, -1 when none */
    int32_t bos, eos, eot, unk, pad;
    int add_bos, add_space_prefix;
};

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

/* ---------- UTF-8 ---------- */

/* Length of the well-formed UTF-8 sequence at s[i] (s has n bytes), or 0
 * when the bytes there are ill-formed. */
static size_t utf8_seq_len(const unsigned char *s, size_t n, size_t i)
{
    unsigned char c = s[i];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
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
        return 0;
    }
    if (n - i - 1 < need || s[i + 1] < lo || s[i + 1] > hi)
        return 0;
    for (size_t k = 2; k <= need; k++)
        if (s[i + k] < 0x80 || s[i + k] > 0xBF)
            return 0;
    return need + 1;
}

int utf8_validate(const char *s, size_t len, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq_len(u, len, i);
        if (k == 0) {
            if (bad)
                *bad = i;
            return 0;
        }
        i += k;
    }
    return 1;
}

void utf8_stream_init(utf8_stream *s)
{
    memset(s, 0, sizeof *s);
}

static size_t put_replacement(char *out)
{
    memcpy(out, "\xef\xbf\xbd", 3);
    return 3;
}

/* Starts a multi-byte character with lead byte c, or returns false when c
 * cannot start one. */
static bool stream_start(utf8_stream *s, unsigned char c)
{
    if (c >= 0xC2 && c <= 0xDF) {
        s->need = 1;
        s->lo = 0x80;
        s->hi = 0xBF;
    } else if (c >= 0xE0 && c <= 0xEF) {
        s->need = 2;
        s->lo = c == 0xE0 ? 0xA0 : 0x80;
        s->hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        s->need = 3;
        s->lo = c == 0xF0 ? 0x90 : 0x80;
        s->hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return false;
    }
    s->pend[0] = c;
    s->n_pend = 1;
    return true;
}

size_t utf8_stream_feed(utf8_stream *s, const void *in, size_t len, char *out)
{
    const unsigned char *p = in;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (s->need > 0 && (c < s->lo || c > s->hi)) {
            /* The character in progress is broken: one U+FFFD for it, and c
             * is looked at afresh. */
            s->need = 0;
            s->n_pend = 0;
            o += put_replacement(out + o);
        }
        if (s->need == 0) {
            if (c < 0x80)
                out[o++] = (char)c;
            else if (!stream_start(s, c))
                o += put_replacement(out + o);
            continue;
        }
        s->pend[s->n_pend++] = c;
        s->lo = 0x80;
        s->hi = 0xBF;
        if (--s->need == 0) {
            memcpy(out + o, s->pend, s->n_pend);
            o += s->n_pend;
            s->n_pend = 0;
        }
    }
    return o;
}

size_t utf8_stream_finish(utf8_stream *s, char *out)
{
    size_t o = 0;
    if (s->need > 0)
        o = put_replacement(out);
    utf8_stream_init(s);
    return o;
}

/* ---------- piece table ---------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static const char *piece_ptr(const tokenizer *t, int32_t id, size_t *len)
{
    *len = (size_t)(t->piece_off[id + 1] - t->piece_off[id]);
    return t->pieces + t->piece_off[id];
}

/* Id of the piece s[0..n), or -1. */
static int32_t lookup(const tokenizer *t, const char *s, size_t n)
{
    size_t h = (size_t)hash_bytes(s, n) & t->slot_mask;
    for (;;) {
        int32_t id = t->slots[h];
        if (id < 0)
            return -1;
        size_t len;
        const char *p = piece_ptr(t, id, &len);
        if (len == n && memcmp(p, s, n) == 0)
            return id;
        h = (h + 1) & t->slot_mask;
    }
}

/* Adds id under its piece; a later id with the same piece replaces an
 * earlier one (llama.cpp's token_to_id map behaves the same way). */
static void insert(tokenizer *t, int32_t id)
{
    size_t n;
    const char *s = piece_ptr(t, id, &n);
    size_t h = (size_t)hash_bytes(s, n) & t->slot_mask;
    for (;;) {
        int32_t old = t->slots[h];
        if (old < 0) {
            t->slots[h] = id;
            return;
        }
        size_t len;
        const char *p = piece_ptr(t, old, &len);
        if (len == n && memcmp(p, s, n) == 0) {
            t->slots[h] = id;
            return;
        }
        h = (h + 1) & t->slot_mask;
    }
}

/* ---------- loading ---------- */

/* Copies every piece out of the tokens array. */
static int load_pieces(tokenizer *t, const gguf_kv *tokens, char *err, size_t errlen)
{
    uint64_t total = 0;
    for (size_t i = 0; i < t->n; i++) {
        gguf_str s;
        if (gguf_arr_str(tokens, i, &s) != 0) {
            set_err(err, errlen, "tokenizer.ggml.tokens element %zu is unreadable", i);
            return -1;
        }
        total += s.len; /* bounded by the mapped file size */
    }
    t->pieces = malloc(total ? (size_t)total : 1);
    t->piece_off = malloc((t->n + 1) * sizeof *t->piece_off);
    if (!t->pieces || !t->piece_off) {
        set_err(err, errlen, "out of memory loading %zu tokens", t->n);
        return -1;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < t->n; i++) {
        gguf_str s;
        (void)gguf_arr_str(tokens, i, &s);
        t->piece_off[i] = off;
        if (s.len)
            memcpy(t->pieces + off, s.ptr, (size_t)s.len);
        off += s.len;
    }
    t->piece_off[t->n] = off;
    return 0;
}

/* Reads an optional per-token array that must match the token count. */
static const gguf_kv *per_token_array(const gguf_file *f, const char *key, size_t n, char *err,
                                      size_t errlen, int *bad)
{
    const gguf_kv *kv = gguf_find(f, key);
    *bad = 0;
    if (!kv)
        return NULL;
    if (kv->type != GGUF_TYPE_ARRAY || kv->v.arr.count != n) {
        set_err(err, errlen, "%s has %" PRIu64 " entries but tokenizer.ggml.tokens has %zu", key,
                kv->type == GGUF_TYPE_ARRAY ? kv->v.arr.count : 1, n);
        *bad = 1;
    }
    return kv;
}

static int load_scores_and_kinds(tokenizer *t, const gguf_file *f, char *err, size_t errlen)
{
    int bad;
    const gguf_kv *scores = per_token_array(f, "tokenizer.ggml.scores", t->n, err, errlen, &bad);
    if (bad)
        return -1;
    const gguf_kv *types = per_token_array(f, "tokenizer.ggml.token_type", t->n, err, errlen, &bad);
    if (bad)
        return -1;
    t->scores = calloc(t->n, sizeof *t->scores);
    t->kinds = malloc(t->n);
    if (!t->scores || !t->kinds) {
        set_err(err, errlen, "out of memory loading %zu tokens", t->n);
        return -1;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (scores && gguf_arr_f32(scores, i, &t->scores[i]) != 0) {
            set_err(err, errlen, "tokenizer.ggml.scores is not an array of floats");
            return -1;
        }
        int32_t k = TOKEN_NORMAL;
        if (types && gguf_arr_i32(types, i, &k) != 0) {
            set_err(err, errlen, "tokenizer.ggml.token_type is not an array of 32-bit integers");
            return -1;
        }
        if (k < TOKEN_NORMAL || k > TOKEN_BYTE) {
            set_err(err, errlen, "tokenizer.ggml.token_type[%zu] is %" PRId32 ", expected 1 to 6",
                    i, k);
            return -1;
        }
        t->kinds[i] = (uint8_t)k;
    }
    return 0;
}

/* Value of a "<0xXX>" piece, or -1. */
static int byte_piece_value(const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF0123456789abcdef";
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>')
        return -1;
    const char *hi = memchr(hex, p[3], 32), *lo = memchr(hex, p[4], 32);
    if (!hi || !lo || p[3] == 0 || p[4] == 0)
        return -1;
    return (int)(((hi - hex) % 16) * 16 + (lo - hex) % 16);
}

/* Computes every token's output text (see tokenizer_token_text). */
static int build_texts(tokenizer *t, char *err, size_t errlen)
{
    uint64_t cap = t->piece_off[t->n] + 3 * (uint64_t)t->n;
    t->texts = malloc(cap ? (size_t)cap : 1);
    t->text_off = malloc((t->n + 1) * sizeof *t->text_off);
    if (!t->texts || !t->text_off) {
        set_err(err, errlen, "out of memory loading %zu tokens", t->n);
        return -1;
    }
    uint64_t o = 0;
    for (size_t i = 0; i < t->n; i++) {
        size_t n;
        const char *p = piece_ptr(t, (int32_t)i, &n);
        t->text_off[i] = o;
        switch (t->kinds[i]) {
        case TOKEN_NORMAL:
            for (size_t k = 0; k < n;) {
                if (n - k >= SPACE_MARK_LEN && memcmp(p + k, SPACE_MARK, SPACE_MARK_LEN) == 0) {
                    t->texts[o++] = ' ';
                    k += SPACE_MARK_LEN;
                } else {
                    t->texts[o++] = p[k++];
                }
            }
            break;
        case TOKEN_USER_DEFINED:
            memcpy(t->texts + o, p, n);
            o += n;
            break;
        case TOKEN_UNKNOWN:
            memcpy(t->texts + o, UNKNOWN_TEXT, 3);
            o += 3;
            break;
        case TOKEN_BYTE: {
            int v = byte_piece_value(p, n);
            if (v < 0) {
                set_err(err, errlen, "token %zu has type byte but its piece is not <0xXX>", i);
                return -1;
            }
            t->texts[o++] = (char)v;
            break;
        }
        default: /* control, unused: no text */
            break;
        }
        if (o - t->text_off[i] > t->max_text)
            t->max_text = (size_t)(o - t->text_off[i]);
    }
    t->text_off[t->n] = o;
    return 0;
}

static int build_index(tokenizer *t, char *err, size_t errlen)
{
    size_t cap = 16;
    while (cap < 2 * t->n)
        cap *= 2;
    t->slots = malloc(cap * sizeof *t->slots);
    if (!t->slots) {
        set_err(err, errlen, "out of memory indexing %zu tokens", t->n);
        return -1;
    }
    memset(t->slots, 0xff, cap * sizeof *t->slots);
    t->slot_mask = cap - 1;
    for (size_t i = 0; i < t->n; i++) {
        size_t n;
        (void)piece_ptr(t, (int32_t)i, &n);
        if (n > 0)
            insert(t, (int32_t)i);
    }
    for (int b = 0; b < 256; b++) {
        char name[7];
        snprintf(name, sizeof name, "<0x%02X>", b);
        char raw = (char)b;
        int32_t id = lookup(t, name, 6);
        t->byte_token[b] = id >= 0 ? id : lookup(t, &raw, 1);
    }
    return 0;
}

/* Reads special id key into *id: absent keeps the default (when in range,
 * else -1), 0xFFFFFFFF or a negative value means none, anything else must be
 * a valid token id. */
static int load_special(const tokenizer *t, const gguf_file *f, const char *key, int32_t dflt,
                        int32_t *id, char *err, size_t errlen)
{
    const gguf_kv *kv = gguf_find(f, key);
    *id = dflt >= 0 && (size_t)dflt < t->n ? dflt : -1;
    if (!kv)
        return 0;
    int64_t v;
    if (kv->type == GGUF_TYPE_INT8 || kv->type == GGUF_TYPE_INT16 || kv->type == GGUF_TYPE_INT32 ||
        kv->type == GGUF_TYPE_INT64) {
        v = kv->v.i64;
    } else if (kv->type <= GGUF_TYPE_INT32 || kv->type == GGUF_TYPE_UINT64) {
        v = kv->v.u64 == UINT32_MAX || kv->v.u64 == UINT64_MAX ? -1
            : kv->v.u64 > INT32_MAX                            ? INT32_MAX
                                                               : (int64_t)kv->v.u64;
    } else {
        set_err(err, errlen, "%s is not an integer", key);
        return -1;
    }
    if (v < 0) {
        *id = -1;
        return 0;
    }
    if ((uint64_t)v >= t->n) {
        set_err(err, errlen, "%s %" PRId64 " is out of range for %zu tokens", key, v, t->n);
        return -1;
    }
    *id = (int32_t)v;
    return 0;
}

static int load_flag(const gguf_file *f, const char *key, int dflt, int *out, char *err,
                     size_t errlen)
{
    const gguf_kv *kv = gguf_find(f, key);
    *out = dflt;
    if (!kv)
        return 0;
    if (gguf_get_bool(f, key, out) != 0) {
        set_err(err, errlen, "%s is not a boolean", key);
        return -1;
    }
    return 0;
}

static int load_specials(tokenizer *t, const gguf_file *f, char *err, size_t errlen)
{
    if (load_special(t, f, "tokenizer.ggml.bos_token_id", 1, &t->bos, err, errlen) != 0 ||
        load_special(t, f, "tokenizer.ggml.eos_token_id", 2, &t->eos, err, errlen) != 0 ||
        load_special(t, f, "tokenizer.ggml.eot_token_id", -1, &t->eot, err, errlen) != 0 ||
        load_special(t, f, "tokenizer.ggml.unknown_token_id", 0, &t->unk, err, errlen) != 0 ||
        load_special(t, f, "tokenizer.ggml.padding_token_id", -1, &t->pad, err, errlen) != 0)
        return -1;
    if (load_flag(f, "tokenizer.ggml.add_bos_token", 1, &t->add_bos, err, errlen) != 0 ||
        load_flag(f, "tokenizer.ggml.add_space_prefix", 1, &t->add_space_prefix, err, errlen) != 0)
        return -1;
    return 0;
}

static int check_model(const gguf_file *f, const gguf_kv **tokens, char *err, size_t errlen)
{
    gguf_str model;
    if (gguf_get_str(f, "tokenizer.ggml.model", &model) != 0) {
        set_err(err, errlen, "tokenizer.ggml.model is missing or not a string");
        return -1;
    }
    if (model.len != 5 || memcmp(model.ptr, "llama", 5) != 0) {
        set_err(err, errlen, "tokenizer model '%.*s' is not supported (only 'llama')",
                (int)(model.len > 40 ? 40 : model.len), model.ptr);
        return -1;
    }
    *tokens = gguf_find(f, "tokenizer.ggml.tokens");
    if (!*tokens || (*tokens)->type != GGUF_TYPE_ARRAY ||
        (*tokens)->v.arr.type != GGUF_TYPE_STRING) {
        set_err(err, errlen, "tokenizer.ggml.tokens is missing or not an array of strings");
        return -1;
    }
    uint64_t n = (*tokens)->v.arr.count;
    if (n == 0 || n > INT32_MAX) {
        set_err(err, errlen, "tokenizer.ggml.tokens has %" PRIu64 " entries", n);
        return -1;
    }
    return 0;
}

tokenizer *tokenizer_from_gguf(const gguf_file *f, char *err, size_t errlen)
{
    const gguf_kv *tokens;
    if (check_model(f, &tokens, err, errlen) != 0)
        return NULL;
    tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        set_err(err, errlen, "out of memory creating the tokenizer");
        return NULL;
    }
    t->n = (size_t)tokens->v.arr.count;
    if (load_pieces(t, tokens, err, errlen) != 0 || load_scores_and_kinds(t, f, err, errlen) != 0 ||
        build_texts(t, err, errlen) != 0 || build_index(t, err, errlen) != 0 ||
        load_specials(t, f, err, errlen) != 0) {
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

void tokenizer_free(tokenizer *t)
{
    if (!t)
        return;
    free(t->pieces);
    free(t->piece_off);
    free(t->texts);
    free(t->text_off);
    free(t->scores);
    free(t->kinds);
    free(t->slots);
    free(t);
}

size_t tokenizer_n_vocab(const tokenizer *t)
{
    return t->n;
}

int32_t tokenizer_bos(const tokenizer *t)
{
    return t->bos;
}

int32_t tokenizer_eos(const tokenizer *t)
{
    return t->eos;
}

int32_t tokenizer_eot(const tokenizer *t)
{
    return t->eot;
}

int32_t tokenizer_unk(const tokenizer *t)
{
    return t->unk;
}

int32_t tokenizer_pad(const tokenizer *t)
{
    return t->pad;
}

int tokenizer_add_bos(const tokenizer *t)
{
    return t->add_bos;
}

int tokenizer_is_eog(const tokenizer *t, int32_t id)
{
    return id >= 0 && (id == t->eos || id == t->eot);
}

enum token_kind tokenizer_kind(const tokenizer *t, int32_t id)
{
    if (id < 0 || (size_t)id >= t->n)
        return 0;
    return (enum token_kind)t->kinds[id];
}

gguf_str tokenizer_piece(const tokenizer *t, int32_t id)
{
    gguf_str s = {NULL, 0};
    if (id < 0 || (size_t)id >= t->n)
        return s;
    size_t n;
    s.ptr = piece_ptr(t, id, &n);
    s.len = n;
    return s;
}

const char *tokenizer_token_text(const tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= t->n) {
        *len = 0;
        return "";
    }
    *len = (size_t)(t->text_off[id + 1] - t->text_off[id]);
    return t->texts + t->text_off[id];
}

size_t tokenizer_max_token_text(const tokenizer *t)
{
    return t->max_text;
}

/* ---------- encoding ---------- */

typedef struct {
    int32_t start; /* byte offset into the escaped text */
    int32_t len;   /* 0 once merged into its left neighbour */
    int32_t prev, next;
} symbol;

typedef struct {
    float score;
    int32_t left, right;
    int32_t len; /* len of the merged piece when queued; stale if it changed */
} bigram;

typedef struct {
    bigram *v;
    size_t n;
} heap;

/* a comes out before b: higher score first, then the leftmost. */
static bool before(const bigram *a, const bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

/* The heap array has room for every push (at most 3 per symbol). */
static void heap_push(heap *h, bigram b)
{
    size_t i = h->n++;
    while (i > 0 && before(&b, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = b;
}

static bigram heap_pop(heap *h)
{
    bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!before(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0)
        h->v[i] = last;
    return top;
}

typedef struct {
    int32_t *out;
    size_t cap, n;
} emitter;

static void emit(emitter *e, int32_t id)
{
    if (e->n < e->cap)
        e->out[e->n] = id;
    e->n++;
}

/* Queues the merge of symbols left and right when their concatenation is a
 * piece of the vocabulary. */
static void try_pair(const tokenizer *t, const char *text, const symbol *sym, heap *h, int32_t left,
                     int32_t right)
{
    if (left < 0 || right < 0)
        return;
    int32_t len = sym[left].len + sym[right].len;
    int32_t id = lookup(t, text + sym[left].start, (size_t)len);
    if (id < 0 || t->kinds[id] == TOKEN_CONTROL)
        return; /* text never becomes a control token ("</s>" typed by a user stays text) */
    heap_push(h, (bigram){t->scores[id], left, right, len});
}

/* Writes the escaped text ("▁" for spaces, "▁" prefix when space_prefix) to
 * esc; returns its length. */
static size_t escape_spaces(int space_prefix, const char *text, size_t len, char *esc)
{
    size_t o = 0;
    if (space_prefix) {
        memcpy(esc, SPACE_MARK, SPACE_MARK_LEN);
        o = SPACE_MARK_LEN;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(esc + o, SPACE_MARK, SPACE_MARK_LEN);
            o += SPACE_MARK_LEN;
        } else {
            esc[o++] = text[i];
        }
    }
    return o;
}

/* Emits the ids of one final symbol: its piece, or its bytes. */
static int emit_symbol(const tokenizer *t, const char *s, size_t n, emitter *e, char *err,
                       size_t errlen)
{
    int32_t id = lookup(t, s, n);
    if (id >= 0 && t->kinds[id] != TOKEN_CONTROL) {
        emit(e, id);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        int32_t b = t->byte_token[(unsigned char)s[i]];
        if (b < 0)
            b = t->unk;
        if (b < 0) {
            set_err(err, errlen, "byte 0x%02X has no token and the vocabulary has no unknown token",
                    (unsigned char)s[i]);
            return -1;
        }
        emit(e, b);
    }
    return 0;
}

/* Tokenizes valid UTF-8 text (len > 0) into e. */
static int spm_encode(const tokenizer *t, const char *text, size_t len, int space_prefix,
                      emitter *e, char *err, size_t errlen)
{
    /* Escaping at most triples the bytes; every character of the escaped
     * text is one input character or the prefix mark, so there are at most
     * len + 1 symbols, and at most 3 heap entries per symbol. */
    size_t n_chars = len + 1;
    char *esc = malloc(3 * len + SPACE_MARK_LEN);
    symbol *sym = malloc(n_chars * sizeof *sym);
    heap h = {malloc(3 * n_chars * sizeof *h.v), 0};
    if (!esc || !sym || !h.v) {
        free(esc);
        free(sym);
        free(h.v);
        set_err(err, errlen, "out of memory tokenizing %zu bytes", len);
        return -1;
    }
    size_t n_esc = escape_spaces(space_prefix, text, len, esc);
    int32_t n_sym = 0;
    for (size_t i = 0; i < n_esc;) {
        size_t k = utf8_seq_len((const unsigned char *)esc, n_esc, i);
        assert(k > 0 && (size_t)n_sym < n_chars);
        sym[n_sym] = (symbol){(int32_t)i, (int32_t)k, n_sym - 1, n_sym + 1};
        n_sym++;
        i += k;
    }
    sym[n_sym - 1].next = -1;
    for (int32_t i = 1; i < n_sym; i++)
        try_pair(t, esc, sym, &h, i - 1, i);
    while (h.n > 0) {
        bigram b = heap_pop(&h);
        symbol *l = &sym[b.left], *r = &sym[b.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != b.len)
            continue; /* stale: one side changed since it was queued */
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = b.left;
        try_pair(t, esc, sym, &h, l->prev, b.left);
        try_pair(t, esc, sym, &h, b.left, l->next);
    }
    int rc = 0;
    for (int32_t i = 0; i >= 0 && rc == 0; i = sym[i].next)
        rc = emit_symbol(t, esc + sym[i].start, (size_t)sym[i].len, e, err, errlen);
    free(esc);
    free(sym);
    free(h.v);
    return rc;
}

size_t tokenizer_encode_bound(size_t len)
{
    /* Each byte becomes at most 3 escaped bytes, each at most one token;
     * plus the space prefix and BOS. */
    return len > (SIZE_MAX - 4) / 3 ? SIZE_MAX : 3 * len + SPACE_MARK_LEN + 1;
}

/* tokenizer_encode and tokenizer_encode_fragment: the same SPM encoding,
 * with or without BOS and the leading space. */
static int encode(const tokenizer *t, const char *text, size_t len, int add_bos, int space_prefix,
                  int32_t *out, size_t cap, size_t *n_out, char *err, size_t errlen)
{
    size_t bad;
    *n_out = 0;
    if (len > MAX_TEXT_BYTES) {
        set_err(err, errlen, "text of %zu bytes is too long to tokenize (limit %zu)", len,
                MAX_TEXT_BYTES);
        return -1;
    }
    if (!utf8_validate(text, len, &bad)) {
        set_err(err, errlen, "text is not valid UTF-8 (first bad byte at offset %zu)", bad);
        return -1;
    }
    emitter e = {out, cap, 0};
    if (add_bos && t->bos >= 0)
        emit(&e, t->bos);
    if (len > 0 && spm_encode(t, text, len, space_prefix, &e, err, errlen) != 0)
        return -1;
    *n_out = e.n;
    if (e.n > cap) {
        set_err(err, errlen, "text needs %zu tokens but the buffer holds %zu", e.n, cap);
        return -1;
    }
    return 0;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_bos, int32_t *out,
                     size_t cap, size_t *n_out, char *err, size_t errlen)
{
    return encode(t, text, len, add_bos, t->add_space_prefix, out, cap, n_out, err, errlen);
}

int tokenizer_encode_fragment(const tokenizer *t, const char *text, size_t len, int after_special,
                              int32_t *out, size_t cap, size_t *n_out, char *err, size_t errlen)
{
    return encode(t, text, len, 0, after_special && t->add_space_prefix, out, cap, n_out, err,
                  errlen);
}

int32_t tokenizer_special_id(const tokenizer *t, const char *text, size_t len)
{
    if (len == 0 || t->n == 0)
        return -1;
    int32_t id = lookup(t, text, len);
    if (id < 0)
        return -1;
    enum token_kind k = (enum token_kind)t->kinds[id];
    return k == TOKEN_CONTROL || k == TOKEN_USER_DEFINED ? id : -1;
}

/* ---------- decoding ---------- */

char *tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, int strip_leading_space,
                       size_t *len)
{
    size_t cap = 64, o = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    utf8_stream st;
    utf8_stream_init(&st);
    for (size_t i = 0; i <= n; i++) {
        size_t tl = 0;
        const char *tx = i < n ? tokenizer_token_text(t, ids[i], &tl) : "";
        size_t need = UTF8_STREAM_OUT_MAX(tl) + 1;
        if (cap - o < need) {
            while (cap - o < need)
                cap *= 2;
            char *ns = realloc(s, cap);
            if (!ns) {
                free(s);
                return NULL;
            }
            s = ns;
        }
        o += i < n ? utf8_stream_feed(&st, tx, tl, s + o) : utf8_stream_finish(&st, s + o);
    }
    size_t skip = strip_leading_space && o > 0 && s[0] == ' ' ? 1 : 0;
    memmove(s, s + skip, o - skip);
    o -= skip;
    s[o] = 0;
    if (len)
        *len = o;
    return s;
}
