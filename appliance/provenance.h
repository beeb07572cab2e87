/* GGUF provenance of a model (internal to appliance/): what a GGUF file says
 * about itself in its general.* keys (name, license, source, author, base
 * models, quantisation), read inside the sandboxed worker and checked by
 * the monitor before it is recorded, audited or printed.
 *
 * The bytes come from a hostile file through a possibly compromised worker,
 * so the two sides have different jobs:
 * - the worker (provenance_encode) makes friendly values: invalid UTF-8 and
 *   bidirectional controls become U+FFFD, other control characters (newline,
 *   escape, ...) a space, and each value is cut to PROVENANCE_VALUE_MAX
 *   bytes at a character boundary;
 * - the monitor (provenance_decode) trusts none of that: a message with an
 *   unknown or repeated key, an over-long, empty, invalid-UTF-8 value, or
 *   any control or bidirectional character is malformed, and the worker is
 *   killed. So what reaches a terminal is always printable text.
 *
 * Wire format of MSG_PROVENANCE: u32 count, then count times (u8 index into
 * provenance_keys, strictly increasing; bytes value). Integer keys
 * (general.file_type, general.base_model.count) travel as decimal text. */
#ifndef APPLIANCE_PROVENANCE_H
#define APPLIANCE_PROVENANCE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "ipc.h"

#define PROVENANCE_VALUE_MAX 256 /* bytes of one value */
#define PROVENANCE_KEYS      25

typedef struct provenance_key {
    const char *gguf_key; /* "general.license" */
    const char *label;    /* what `model show` prints: "license" */
    int integer;          /* an integer key, sent as decimal text */
} provenance_key;

/* The keys recorded, in wire order (listed in README.md too). */
extern const provenance_key provenance_keys[PROVENANCE_KEYS];

typedef struct model_provenance {
    size_t n;
    struct {
        uint8_t key; /* index into provenance_keys */
        char value[PROVENANCE_VALUE_MAX + 1];
    } item[PROVENANCE_KEYS];
} model_provenance;

/* Worker side: appends the MSG_PROVENANCE payload for model m to w. */
void provenance_encode(const engine_model *m, ipc_writer *w);

/* Makes a friendly value of len raw bytes (see above) into out (cap bytes,
 * at most PROVENANCE_VALUE_MAX + 1, NUL included); returns its length (0:
 * nothing left). Leading, trailing and doubled spaces are dropped. */
size_t provenance_sanitize(const char *in, size_t len, char *out, size_t cap);

/* 1 when s[0, len) is 1..PROVENANCE_VALUE_MAX bytes of UTF-8 without control
 * characters (C0, DEL, C1) or bidirectional controls. */
int provenance_text_ok(const char *s, size_t len);

/* Monitor side: decodes and checks a MSG_PROVENANCE payload. Integer values
 * become their display form ("Q4_K_M (15)" for general.file_type). Returns
 * 0, or -1 when anything is malformed (then *out is empty). */
int provenance_decode(const uint8_t *payload, size_t len, model_provenance *out);

/* The value recorded for a GGUF key, or NULL. */
const char *provenance_get(const model_provenance *p, const char *gguf_key);

/* llama.cpp's name of a general.file_type value ("Q4_K_M"), or NULL. */
const char *provenance_file_type_name(uint64_t file_type);

/* {"general.name": "...", ...} (a new reference), or NULL on no memory. */
json_t *provenance_to_json(const model_provenance *p);
/* Reads such an object back (a record on disk): known keys with printable
 * values are kept, anything else is dropped. */
void provenance_from_json(const json_t *o, model_provenance *out);

#endif
