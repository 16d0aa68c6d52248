/* act.h - elementwise activations, forward and backward.
 *
 * Forward: out[i] = f(inp[i]) for i < n; out may alias inp.
 * Backward: dinp[i] += f'(inp[i]) * dout[i]  (accumulates, llm.c style);
 * inp is the forward's input, which backward needs (keep it).
 */
#ifndef TP_ACT_H
#define TP_ACT_H

#include <math.h>
#include <stddef.h>

#include "vmath.h"

/* One value's GELU, exact and tanh form: the passes below and the fused
 * epilogues of linear_tile.h compute the same bits. */
VM_INLINE float act_gelu(float x) { return 0.5f * x * (1.0f + vm_erff(x * (float)M_SQRT1_2)); }
#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_C 0.044715f
VM_INLINE float act_gelu_tanh(float x) { return 0.5f * x * (1.0f + vm_tanhf(GELU_K * (x + GELU_C * x * x * x))); }
/* their derivatives, as the backward passes below take them */
VM_INLINE float act_gelu_grad(float x)
{
    const float cdf = 0.5f * (1.0f + vm_erff(x * (float)M_SQRT1_2));
    const float pdf = 0.3989422804014327f * vm_expf(-0.5f * x * x); /* 1/sqrt(2 pi) */
    return cdf + x * pdf;
}
VM_INLINE float act_gelu_tanh_grad(float x)
{
    const float t = vm_tanhf(GELU_K * (x + GELU_C * x * x * x));
    const float sech2 = 1.0f - t * t, du = GELU_K * (1.0f + 3.0f * GELU_C * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * sech2 * du;
}

/* GELU, exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (torch default, HF BERT) */
void gelu_forward(float *out, const float *inp, size_t n);
/* pre [rows,F] += bias (a linear layer's output without its bias), then
 * out = gelu(pre): the bias in GELU's pass instead of a pass of its own. */
void gelu_bias_forward(float *out, float *pre, const float *bias, int rows, int F);
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
/* d[i] = gelu'(inp[i]) * d[i]: the gradient through GELU in place, where
 * nothing else adds to it (no buffer of its own to clear first); the values
 * of gelu_backward into zeros (a zero keeps its sign, where 0 + -0 is +0).
 * tanh_form: the tanh form. */
void gelu_backward_inplace(float *d, const float *inp, size_t n, int tanh_form);
/* GELU, tanh approximation (torch approximate="tanh", Flax default) */
void gelu_tanh_forward(float *out, const float *inp, size_t n);
void gelu_tanh_backward(float *dinp, const float *dout, const float *inp, size_t n);
void tanh_forward(float *out, const float *inp, size_t n);
void tanh_backward(float *dinp, const float *dout, const float *inp, size_t n);
/* SiLU / swish: x * sigmoid(x) */
void silu_forward(float *out, const float *inp, size_t n);
void silu_backward(float *dinp, const float *dout, const float *inp, size_t n);
/* LeakyReLU with negative slope (upstream's discriminator: 0.1) */
void leaky_relu_forward(float *out, const float *inp, size_t n, float slope);
void leaky_relu_backward(float *dinp, const float *dout, const float *inp, size_t n, float slope);
/* out = a + b (residual); backward is dout added to both: use add_inplace */
void residual_forward(float *out, const float *a, const float *b, size_t n);
/* y += x */
void add_inplace(float *y, const float *x, size_t n);

#endif
