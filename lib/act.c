/* act.c - elementwise activations (see act.h). Loops are split across
 * threads by index, so each thread owns its outputs: results do not depend
 * on the thread count. exp and erf come from vmath.h, whose inline forms
 * vectorise (libm's calls kept GELU and SiLU scalar: erff alone was 4-9% of
 * a transformer step). */
#include "act.h"

#include <math.h>

#include "chunks.h"
#include "clones.h"
#include "vmath.h"

/* "if (parallel : ...)": a bare if clause on "parallel for simd" turns the
 * simd off too (OpenMP 5), and GELU over 4096 floats ran scalar, 8.4
 * against 1.0 ns an element. */

TP_CLONES void gelu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = act_gelu(inp[i]);
}

TP_CLONES void gelu_bias_forward(float *out, float *pre, const float *bias, int rows, int F)
{
#pragma omp parallel for if ((size_t)rows * F > PAR_MIN) schedule(static)
    for (int r = 0; r < rows; r++) {
        float *p = pre + (size_t)r * F, *o = out + (size_t)r * F;
#pragma omp simd
        for (int f = 0; f < F; f++) {
            float x = p[f] + bias[f];
            p[f] = x;
            o[f] = act_gelu(x);
        }
    }
}

TP_CLONES void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] += act_gelu_grad(inp[i]) * dout[i];
}

TP_CLONES void gelu_backward_inplace(float *d, const float *inp, size_t n, int tanh_form)
{
    if (tanh_form) {
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (size_t i = 0; i < n; i++) d[i] = act_gelu_tanh_grad(inp[i]) * d[i];
    } else {
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
        for (size_t i = 0; i < n; i++) d[i] = act_gelu_grad(inp[i]) * d[i];
    }
}

TP_CLONES void gelu_tanh_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = act_gelu_tanh(inp[i]);
}

TP_CLONES void gelu_tanh_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] += act_gelu_tanh_grad(inp[i]) * dout[i];
}

/* vm_tanhf: libm's tanhf, a call per element, was 3% of a TiTok stage-1
 * decoder's step (its proxy-code head's tanh, forward and backward) */
TP_CLONES void tanh_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = vm_tanhf(inp[i]);
}

TP_CLONES void tanh_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float t = vm_tanhf(inp[i]);
        dinp[i] += (1.0f - t * t) * dout[i];
    }
}

TP_CLONES void silu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = x / (1.0f + vm_expf(-x));
    }
}

TP_CLONES void silu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
#pragma omp parallel for simd if (parallel : n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float s = 1.0f / (1.0f + vm_expf(-x));
        dinp[i] += s * (1.0f + x * (1.0f - s)) * dout[i];
    }
}

void leaky_relu_forward(float *out, const float *inp, size_t n, float slope)
{
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0 ? inp[i] : slope * inp[i];
}

void leaky_relu_backward(float *dinp, const float *dout, const float *inp, size_t n, float slope)
{
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] += (inp[i] > 0 ? 1.0f : slope) * dout[i];
}

void residual_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void add_inplace(float *y, const float *x, size_t n)
{
#pragma omp parallel for if (n > PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}
