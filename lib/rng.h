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

/* counter-based: a 64-bit hash of (seed, i) (splitmix64's finaliser), and a
 * uniform [0,1) from it. Inline, so that loops over i (dropout masks)
 * vectorise. */
static inline uint64_t rng_hash(uint64_t seed, uint64_t i)
{
    uint64_t z = (seed ^ (i * 0xd1b54a32d192ed03ull)) + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline float rng_hash_uniform(uint64_t seed, uint64_t i)
{
    return (float)(int32_t)(rng_hash(seed, i) >> 40) * (1.0f / 16777216.0f);
}

#endif
