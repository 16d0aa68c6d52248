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
 * epilogues of linear_tile.h compute the same bits.
 *
 * The exact form as x/2 + h, h = (x/2) erf(x/sqrt2), which is even in x:
 * with s = x^2 and vm_erff's rational (vmath.h), h = s P(s/2) / (2 sqrt2
 * Q(s/2)): its coefficients scaled to that (GELU_P, GELU_Q: by 2^-i, P's
 * by 1/(2 sqrt2) too). No |x|, sign or NaN steps: 19 vector operations
 * where x/2 (1 + vm_erff(x/sqrt2)) took 30, and GELU's share of the tile
 * product 256 -> 1024 went from 12% to 6.5% (bench/levers.md). From s =
 * 30.72 on (|x|/sqrt2 >= 3.9192, where erf rounds to 1 in float) GELU is x
 * or 0; NaN stays NaN. Within 1e-6 + 1e-6 |GELU| (0.97 of it at worst,
 * near x = -5.3, where h cancels x/2). Without fused steps (a build below
 * x86-64-v3) its roundings go past that bound (1.37 of it), and the erf
 * form, which stays within it, is used. */
#define GELU_P(i) (float)((double)VM_ERF_P##i / (1 << i) / (2.0 * M_SQRT2))
#define GELU_Q(i) (float)((double)VM_ERF_Q##i / (1 << i))
VM_INLINE float act_gelu(float x)
{
#ifdef __FMA__
    static const float p_s[7] = {GELU_P(6), GELU_P(5), GELU_P(4), GELU_P(3), GELU_P(2), GELU_P(1), GELU_P(0)};
    static const float q_s[6] = {GELU_Q(5), GELU_Q(4), GELU_Q(3), GELU_Q(2), GELU_Q(1), GELU_Q(0)};
    const float s = x * x;
    const float y = VM_FMAF(0.5f, x, s * vm_horner(s, p_s, 7) / vm_horner(s, q_s, 6));
    const float tail = x < 0.0f ? 0.0f : x;
    return s < 2.0f * VM_ERF_ONE * VM_ERF_ONE ? y : tail; /* |x| / sqrt2 < VM_ERF_ONE */
#else
    return 0.5f * x * (1.0f + vm_erff(x * (float)M_SQRT1_2));
#endif
}
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
