/* softmax.c - stable softmax over rows (see softmax.h). The exponentials
 * are vmath.h's, in a loop of their own so that it vectorises; the sums run
 * in double (lanesum.h's lanes in softmax_row). */
#include "softmax.h"

#include <math.h>
#include <stddef.h>

#include "chunks.h"
#include "lanesum.h"
#include "vmath.h"


static float row_max(const float *x, int V)
{
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int v = 0; v < V; v++)
        if (x[v] > m) m = x[v];
    return m;
}

float softmax_row(float *out, const float *inp, int V)
{
    float m = row_max(inp, V);
#pragma omp simd
    for (int v = 0; v < V; v++) out[v] = vm_expf(inp[v] - m);
    double s = lanesum(out, (size_t)V);
    float inv = (float)(1.0 / s);
#pragma omp simd
    for (int v = 0; v < V; v++) out[v] *= inv;
    return (float)(m + log(s));
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
