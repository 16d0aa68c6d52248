/* dropout.h - inverted dropout with a counter-based mask.
 *
 * Element i of a tensor of n elements is kept iff
 * rng_hash_uniform(seed, i) >= p, and a kept element is scaled by 1/(1-p).
 * The mask is a pure function of (seed, i): forward and backward see the
 * same mask without storing it, whatever the thread count or schedule.
 * p = 0 is the identity (evaluation mode); p = 1 drops everything.
 * Callers derive one seed per dropout site (e.g. rng_hash(step_seed, site))
 * so that sites do not share masks.
 *
 * Backward accumulates: dinp += mask * dout / (1-p).
 */
#ifndef TP_DROPOUT_H
#define TP_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

/* The factor element i is multiplied by: 0 (dropped) or 1/(1-p) (kept).
 * For callers that drop a slice of a larger tensor (attention heads): pass
 * the element's index in the whole tensor. Needs 0 <= p <= 1. */
static inline float dropout_scale(float p, uint64_t seed, uint64_t i)
{
    if (p <= 0.0f) return 1.0f;
    return rng_hash_uniform(seed, i) >= p ? 1.0f / (1.0f - p) : 0.0f;
}

/* out = inp * mask / (1-p); out may alias inp. */
void dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed);
void dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed);
/* The same over elements first.. of a larger tensor (a chunk of a batch):
 * element i here is element first + i there, with its mask. */
void dropout_forward_at(float *out, const float *inp, size_t n, float p, uint64_t seed, uint64_t first);
void dropout_backward_at(float *dinp, const float *dout, size_t n, float p, uint64_t seed, uint64_t first);

#endif
