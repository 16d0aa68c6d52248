/* dropout.c - inverted dropout with a counter-based mask (see dropout.h). */
#include "dropout.h"

#include "chunks.h"
#include "err.h"


void dropout_forward_at(float *out, const float *inp, size_t n, float p, uint64_t seed, uint64_t first)
{
    TP_ASSERT(p >= 0.0f && p <= 1.0f);
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] * dropout_scale(p, seed, first + i);
}

void dropout_backward_at(float *dinp, const float *dout, size_t n, float p, uint64_t seed, uint64_t first)
{
    TP_ASSERT(p >= 0.0f && p <= 1.0f);
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * dropout_scale(p, seed, first + i);
}

void dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed)
{
    dropout_forward_at(out, inp, n, p, seed, 0);
}

void dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed)
{
    dropout_backward_at(dinp, dout, n, p, seed, 0);
}
