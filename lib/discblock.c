/* discblock.c - one NLayerDiscriminator stage, forward/backward (see
 * discblock.h). */
#include "discblock.h"

#include <string.h>

#include "act.h"
#include "err.h"
#include "groupnorm.h"
#include "pool.h"

static void check_cfg(const struct discblock_cfg *c)
{
    TP_ASSERT(c->B > 0 && c->C > 0 && c->OC > 0 && c->H > 0 && c->W > 0);
    TP_ASSERT(c->G > 0 && c->OC % c->G == 0);
}

struct discblock_cfg discblock_cfg_upstream(int B, int C, int OC, int H, int W)
{
    return (struct discblock_cfg){.B = B, .C = C, .OC = OC, .H = H, .W = W,
                                  .G = DISCBLOCK_GROUPS, .eps = DISCBLOCK_EPS,
                                  .slope = DISCBLOCK_SLOPE};
}

void discblock_out_hw(const struct discblock_cfg *c, int *H2, int *W2)
{
    *H2 = (c->H + 1) / 2;
    *W2 = (c->W + 1) / 2;
}

int discblock_params(struct convnet_param *p, int C, int OC)
{
    p[0] = convnet_param("0.weight", 4, OC, C, 3, 3);
    p[1] = convnet_param("0.bias", 1, OC, 0, 0, 0);
    p[2] = convnet_param("2.weight", 1, OC, 0, 0, 0);
    p[3] = convnet_param("2.bias", 1, OC, 0, 0, 0);
    return DISCBLOCK_NPARAMS;
}

size_t discblock_weights_point(struct discblock_weights *w, float *base, int C, int OC)
{
    struct convnet_param p[DISCBLOCK_NPARAMS];
    float **const slots[DISCBLOCK_NPARAMS] = {&w->conv_weight, &w->conv_bias,
                                              &w->norm_weight, &w->norm_bias};
    return convnet_params_point(slots, p, discblock_params(p, C, OC), base);
}

size_t discblock_acts_size(const struct discblock_cfg *c)
{
    check_cfg(c);
    int H2, W2;
    discblock_out_hw(c, &H2, &W2);
    const size_t full = (size_t)c->B * c->OC * c->H * c->W, half = (size_t)c->B * c->OC * H2 * W2;
    return 2 * full + 4 * half + 2 * (size_t)c->B * c->G;
}

void discblock_acts_point(struct discblock_acts *a, float *base, const struct discblock_cfg *c)
{
    check_cfg(c);
    int H2, W2;
    discblock_out_hw(c, &H2, &W2);
    const size_t full = (size_t)c->B * c->OC * c->H * c->W, half = (size_t)c->B * c->OC * H2 * W2;
    float *q = base;
    a->h = q, q += full;
    a->p = q, q += half;
    a->n = q, q += half;
    a->mean = q, q += (size_t)c->B * c->G;
    a->rstd = q, q += (size_t)c->B * c->G;
    a->g0 = q, q += full;
    a->g1 = q, q += half;
    a->g2 = q, q += half;
    TP_ASSERT((size_t)(q - base) == discblock_acts_size(c));
}

void discblock_forward(float *out, struct discblock_acts *a, const float *inp,
                       const struct discblock_weights *w, const struct discblock_cfg *c)
{
    check_cfg(c);
    int H2, W2;
    discblock_out_hw(c, &H2, &W2);
    const struct conv2d_shape s = conv2d_shape_same(c->B, c->C, c->H, c->W, c->OC, 3, 3, 1, 1);
    conv2d_forward(a->h, inp, w->conv_weight, w->conv_bias, &s);
    blur_forward(a->p, a->h, c->B, c->OC, c->H, c->W);
    groupnorm_forward(a->n, a->mean, a->rstd, a->p, w->norm_weight, w->norm_bias,
                      c->B, c->OC, H2 * W2, c->G, c->eps);
    leaky_relu_forward(out, a->n, (size_t)c->B * c->OC * H2 * W2, c->slope);
}

void discblock_backward(float *dinp, const struct discblock_weights *dw,
                        const float *dout, const float *inp,
                        const struct discblock_weights *w, struct discblock_acts *a,
                        const struct discblock_cfg *c)
{
    check_cfg(c);
    int H2, W2;
    discblock_out_hw(c, &H2, &W2);
    const size_t full = (size_t)c->B * c->OC * c->H * c->W, half = (size_t)c->B * c->OC * H2 * W2;
    const struct conv2d_shape s = conv2d_shape_same(c->B, c->C, c->H, c->W, c->OC, 3, 3, 1, 1);
    const struct discblock_weights none = {0};
    if (!dw) dw = &none;

    memset(a->g1, 0, half * sizeof(float));
    leaky_relu_backward(a->g1, dout, a->n, half, c->slope);
    memset(a->g2, 0, half * sizeof(float));
    groupnorm_backward(a->g2, dw->norm_weight, dw->norm_bias, a->g1, a->p,
                       w->norm_weight, a->mean, a->rstd, c->B, c->OC, H2 * W2, c->G);
    memset(a->g0, 0, full * sizeof(float));
    blur_backward(a->g0, a->g2, c->B, c->OC, c->H, c->W);
    conv2d_backward(dinp, dw->conv_weight, dw->conv_bias, a->g0, inp, w->conv_weight, &s);
}
