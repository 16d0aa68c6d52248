/* softmax.c - stable softmax over rows (see softmax.h). The exponentials
 * are vmath.h's, in a loop of their own so that it vectorises; the sums run
 * in double (lanesum.h's lanes in softmax_row). */
#include "softmax.h"

#include <math.h>
#include <stddef.h>

#include "chunks.h"
#include "lanesum.h"
#include "vmath.h"


/* The row loops run in blocks of SM_BLOCK (an AVX2 vector) and a scalar
 * rest: as plain simd loops GCC peeled up to 7 scalar iterations at each
 * end to align them, most of a row of 33 (the attention heads'), which
 * then took 263 ns against 56 (softmax_row, one thread). */
#define SM_BLOCK 8

static float row_max(const float *x, int V)
{
    float mb[SM_BLOCK];
    for (int j = 0; j < SM_BLOCK; j++) mb[j] = -INFINITY;
    int v = 0;
    for (; v + SM_BLOCK <= V; v += SM_BLOCK)
#pragma omp simd
        for (int j = 0; j < SM_BLOCK; j++) mb[j] = x[v + j] > mb[j] ? x[v + j] : mb[j];
    float m = -INFINITY;
    for (int j = 0; j < SM_BLOCK; j++) m = mb[j] > m ? mb[j] : m;
    for (; v < V; v++) m = x[v] > m ? x[v] : m;
    return m;
}

/* out = the probabilities; returns the sum of exp(inp - *m), *m the row's max */
static double probs_row(float *out, const float *inp, int V, float *m)
{
    const float mx = *m = row_max(inp, V);
    int v = 0;
    for (; v + SM_BLOCK <= V; v += SM_BLOCK)
#pragma omp simd
        for (int j = 0; j < SM_BLOCK; j++) out[v + j] = vm_expf(inp[v + j] - mx);
    for (; v < V; v++) out[v] = vm_expf(inp[v] - mx);
    double s = lanesum(out, (size_t)V);
    float inv = (float)(1.0 / s);
    for (v = 0; v + SM_BLOCK <= V; v += SM_BLOCK)
#pragma omp simd
        for (int j = 0; j < SM_BLOCK; j++) out[v + j] *= inv;
    for (; v < V; v++) out[v] *= inv;
    return s;
}

float softmax_row(float *out, const float *inp, int V)
{
    float m;
    double s = probs_row(out, inp, V, &m);
    return (float)(m + log(s));
}

void softmax_probs_row(float *out, const float *inp, int V)
{
    float m;
    probs_row(out, inp, V, &m);
}

void softmax_row_backward(float *dinp, const float *dout, const float *p, int V)
{
    float dot = 0;
    for (int v = 0; v < V; v++) dot += dout[v] * p[v];
    for (int v = 0; v < V; v++) dinp[v] += p[v] * (dout[v] - dot);
}

void softmax_row_backward_inplace(float *d, const float *p, int V)
{
    float dot = 0;
    for (int v = 0; v < V; v++) dot += d[v] * p[v];
    for (int v = 0; v < V; v++) d[v] = p[v] * (d[v] - dot);
}

float logsumexp_row(const float *inp, int V)
{
    float m = row_max(inp, V);
    double s = 0;
    for (int v = 0; v < V; v++) s += vm_expf(inp[v] - m);
    return (float)(m + log(s));
}

void log_softmax_row(float *out, const float *inp, int V)
{
    float lse = logsumexp_row(inp, V);
    for (int v = 0; v < V; v++) out[v] = inp[v] - lse;
}

void softmax_forward(float *out, const float *inp, int N, int V)
{
#pragma omp parallel for if ((long)N * V > PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) softmax_row(out + (size_t)n * V, inp + (size_t)n * V, V);
}

void softmax_backward(float *dinp, const float *dout, const float *out, int N, int V)
{
#pragma omp parallel for if ((long)N * V > PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++)
        softmax_row_backward(dinp + (size_t)n * V, dout + (size_t)n * V, out + (size_t)n * V, V);
}
