/* Tokenizer of `llama` (SentencePiece-style) vocabularies, and UTF-8 helpers
 * for streaming detokenization (internal to engine/).
 *
 * Encoding follows llama.cpp's SPM tokenizer so token ids match it exactly:
 * spaces become U+2581 "▁", a "▁" is prepended (add_space_prefix), the text
 * is split into UTF-8 characters, and the adjacent pair whose concatenation
 * is a vocabulary piece with the highest score is merged repeatedly (ties:
 * leftmost); pieces left outside the vocabulary become <0xXX> byte tokens.
 * No special-token parsing: text that looks like "<s>" is ordinary text, and
 * merges never produce a control token (a user who types "</s>" gets the
 * pieces of those characters, never the EOS id).
 *
 * A tokenizer copies what it needs from the GGUF file, so it may outlive it.
 * It is immutable after creation and safe to share between threads. */
#ifndef ENGINE_TOKENIZER_H
#define ENGINE_TOKENIZER_H

#include "gguf.h"

#include <stddef.h>
#include <stdint.h>

/* tokenizer.ggml.token_type values. */
enum token_kind {
    TOKEN_NORMAL = 1,
    TOKEN_UNKNOWN = 2,
    TOKEN_CONTROL = 3,
    TOKEN_USER_DEFINED = 4,
    TOKEN_UNUSED = 5,
    TOKEN_BYTE = 6,
};

typedef struct tokenizer tokenizer;

/* Builds the tokenizer described by f's tokenizer.ggml.* metadata. Only the
 * "llama" model is supported. Rejects inconsistent metadata (array lengths
 * that differ, special ids out of range, byte tokens that are not <0xXX>)
 * with one sentence in err. */
tokenizer *tokenizer_from_gguf(const gguf_file *f, char *err, size_t errlen);
void tokenizer_free(tokenizer *t);

size_t tokenizer_n_vocab(const tokenizer *t);
/* Special ids; -1 when the vocabulary has none. */
int32_t tokenizer_bos(const tokenizer *t);
int32_t tokenizer_eos(const tokenizer *t);
int32_t tokenizer_eot(const tokenizer *t);
int32_t tokenizer_unk(const tokenizer *t);
int32_t tokenizer_pad(const tokenizer *t);
/* tokenizer.ggml.add_bos_token (default 1 for llama vocabularies). */
int tokenizer_add_bos(const tokenizer *t);
/* 1 when id ends a generation (EOS or EOT). */
int tokenizer_is_eog(const tokenizer *t, int32_t id);

/* Most tokens tokenizer_encode can produce for len bytes of text. */
size_t tokenizer_encode_bound(size_t len);

/* Tokenizes text[0..len) (which must be valid UTF-8), with a leading BOS when
 * add_bos and the vocabulary has one. Writes at most cap ids to out and the
 * count to *n_out. Returns 0; or -1 with err filled when the text is not
 * valid UTF-8, when cap is too small (then *n_out is the count needed), or
 * when a byte has no token. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_bos, int32_t *out,
                     size_t cap, size_t *n_out, char *err, size_t errlen);

/* Tokenizes one plain-text fragment of a chat template rendering: no BOS,
 * and the SentencePiece leading space only when after_special (the fragment
 * begins the input or follows a special token, as llama.cpp renders
 * templates) and the vocabulary adds one. Same errors as tokenizer_encode. */
int tokenizer_encode_fragment(const tokenizer *t, const char *text, size_t len, int after_special,
                              int32_t *out, size_t cap, size_t *n_out, char *err, size_t errlen);

/* Id of the control or user-defined token whose piece is exactly
 * text[0..len) ("<|im_start|>", "</s>"); -1 when there is none. */
int32_t tokenizer_special_id(const tokenizer *t, const char *text, size_t len);

/* Kind of token id (0 when id is out of range). */
enum token_kind tokenizer_kind(const tokenizer *t, int32_t id);
/* The raw vocabulary piece of id ("▁Hello", "<0x0A>", "<s>"); {NULL, 0}
 * when id is out of range. */
gguf_str tokenizer_piece(const tokenizer *t, int32_t id);
/* The bytes id contributes to output text: "▁" becomes a space, a byte token
 * its byte, control and unused tokens nothing, the unknown token "▅" (as
 * llama.cpp). Not NUL-terminated and possibly a partial UTF-8 character;
 * feed it through a utf8_stream. Empty for ids out of range. */
const char *tokenizer_token_text(const tokenizer *t, int32_t id, size_t *len);
/* Longest tokenizer_token_text of the vocabulary. */
size_t tokenizer_max_token_text(const tokenizer *t);

/* Detokenizes ids into a malloc'd, NUL-terminated string of valid UTF-8
 * (invalid sequences become U+FFFD). With strip_leading_space, one leading
 * space of the result is dropped (the one add_space_prefix put there).
 * Returns NULL on out of memory. */
char *tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, int strip_leading_space,
                       size_t *len);

/* Streaming UTF-8 repair: bytes go in, only complete well-formed UTF-8 comes
 * out; a partial character is held back until the bytes that finish it
 * arrive, and each maximal ill-formed subsequence becomes one U+FFFD (the
 * Unicode-recommended practice). */
typedef struct {
    unsigned char pend[4]; /* bytes of the character in progress */
    unsigned char n_pend;  /* how many */
    unsigned char need;    /* continuation bytes still expected */
    unsigned char lo, hi;  /* allowed range of the next continuation byte */
} utf8_stream;

/* Output buffer size that utf8_stream_feed never exceeds for len input bytes. */
#define UTF8_STREAM_OUT_MAX(len) (3 * (size_t)(len) + 12)

void utf8_stream_init(utf8_stream *s);
/* Feeds len bytes; writes the completed text to out (at least
 * UTF8_STREAM_OUT_MAX(len) bytes) and returns how many bytes it wrote. */
size_t utf8_stream_feed(utf8_stream *s, const void *in, size_t len, char *out);
/* Ends the stream: a held-back partial character becomes U+FFFD. out must
 * hold 3 bytes; returns the bytes written (0 or 3). */
size_t utf8_stream_finish(utf8_stream *s, char *out);

/* Returns 1 when s[0..len) is well-formed UTF-8; else 0 and, when bad is not
 * NULL, the offset of the first byte of the first ill-formed sequence. */
int utf8_validate(const char *s, size_t len, size_t *bad);

#endif
