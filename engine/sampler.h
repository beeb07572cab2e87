/* The sampler's pseudo-random generator (internal to engine/; the sampler
 * itself is declared in engine.h).
 *
 * Algorithm, fixed so a replay on any machine draws the same numbers:
 *   - seeding: the four 64-bit state words are the first four outputs of
 *     SplitMix64 started at the u64 seed (state += 0x9e3779b97f4a7c15;
 *     z = state; z = (z ^ z>>30) * 0xbf58476d1ce4e5b9;
 *     z = (z ^ z>>27) * 0x94d049bb133111eb; output z ^ z>>31);
 *   - next: xoshiro256** 1.0 (Blackman and Vigna): result =
 *     rotl(s1 * 5, 7) * 9, then the standard xorshift/rotate state update;
 *   - uniform float in [0, 1): (next() >> 40) * 2^-24, exact in binary32. */
#ifndef ENGINE_SAMPLER_H
#define ENGINE_SAMPLER_H

#include <stdint.h>

typedef struct rng {
    uint64_t s[4];
} rng;

void rng_seed(rng *r, uint64_t seed);
uint64_t rng_next(rng *r);
float rng_uniform(rng *r);

#endif
