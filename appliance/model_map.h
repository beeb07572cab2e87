/* Read-only mapping of a model file for the CLI (internal to appliance/).
 * The engine never opens files: commands map the bytes and pass them in. */
#ifndef APPLIANCE_MODEL_MAP_H
#define APPLIANCE_MODEL_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct model_map {
    void *data;
    size_t size;
} model_map;

/* Maps path read-only (MAP_PRIVATE). Returns 0, or -1 with one sentence in
 * err naming the path and the reason. */
int model_map_open(model_map *m, const char *path, char *err, size_t errlen);
/* Maps an already open descriptor (not closed here). */
int model_map_fd(model_map *m, int fd, const char *what, char *err, size_t errlen);
/* Writes the synthetic model spec ("tiny:q8_0", see engine_synth_write) to
 * an unlinked temporary file and maps it; says so on stderr. */
int model_map_synthetic(model_map *m, const char *spec, char *err, size_t errlen);
void model_map_close(model_map *m);

#endif

/* Writes the synthetic model spec into a sealed memfd (image_is_sealed) and
 * hashes it; returns the descriptor, or -1 with err. */
int model_synthetic_sealed(const char *spec, uint8_t sha256[32], char *err, size_t errlen);
