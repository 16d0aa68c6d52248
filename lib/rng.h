/* rng.h - seeded randomness that gives the same bits on every run.
 *
 * Sequential draws: xoshiro256** seeded through splitmix64. Draws that must
 * not depend on thread scheduling (dropout masks, per-sample noise) use the
 * counter-based rng_hash_*: a pure function of (seed, index).
 */
#ifndef TP_RNG_H
#define TP_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4];
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_u64(struct rng *r);
/* uniform in [0,1) with 24 random bits (exactly representable as float) */
float rng_uniform(struct rng *r);
/* uniform integer in [0,n) without modulo bias */
uint64_t rng_below(struct rng *r, uint64_t n);
/* standard normal (Box-Muller) */
float rng_normal(struct rng *r);
/* normal truncated to [lo,hi] (in units of std), by rejection */
float rng_trunc_normal(struct rng *r, float lo, float hi);
/* Fisher-Yates permutation of 0..n-1 into perm */
void rng_permutation(struct rng *r, int64_t *perm, int64_t n);

/* counter-based: a 64-bit hash of (seed, i), and a uniform [0,1) from it */
uint64_t rng_hash(uint64_t seed, uint64_t i);
float rng_hash_uniform(uint64_t seed, uint64_t i);

#endif
