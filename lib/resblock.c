/* resblock.c - MaskGIT-VQGAN ResnetBlock forward/backward (see resblock.h). */
#include "resblock.h"

#include <string.h>

#include "act.h"
#include "err.h"
#include "groupnorm.h"

static void check_cfg(const struct resblock_cfg *c)
{
    TP_ASSERT(c->B > 0 && c->C > 0 && c->OC > 0 && c->H > 0 && c->W > 0);
    TP_ASSERT(c->G > 0 && c->C % c->G == 0 && c->OC % c->G == 0);
}

struct resblock_cfg resblock_cfg_upstream(int B, int C, int OC, int H, int W)
{
    return (struct resblock_cfg){.B = B, .C = C, .OC = OC, .H = H, .W = W,
                                 .G = RESBLOCK_GROUPS, .eps = RESBLOCK_EPS};
}

int resblock_params(struct convnet_param *p, int C, int OC)
{
    int n = 0;
    p[n++] = convnet_param("norm1.weight", 1, C, 0, 0, 0);
    p[n++] = convnet_param("norm1.bias", 1, C, 0, 0, 0);
    p[n++] = convnet_param("conv1.weight", 4, OC, C, 3, 3);
    p[n++] = convnet_param("norm2.weight", 1, OC, 0, 0, 0);
    p[n++] = convnet_param("norm2.bias", 1, OC, 0, 0, 0);
    p[n++] = convnet_param("conv2.weight", 4, OC, OC, 3, 3);
    if (C != OC) p[n++] = convnet_param("nin_shortcut.weight", 4, OC, OC, 1, 1);
    return n;
}

size_t resblock_weights_point(struct resblock_weights *w, float *base, int C, int OC)
{
    struct convnet_param p[RESBLOCK_MAX_PARAMS];
    float **const slots[RESBLOCK_MAX_PARAMS] = {
        &w->norm1_weight, &w->norm1_bias, &w->conv1_weight, &w->norm2_weight,
        &w->norm2_bias, &w->conv2_weight, &w->nin_shortcut_weight};
    int n = resblock_params(p, C, OC);
    if (base && C == OC) w->nin_shortcut_weight = NULL;
    return convnet_params_point(slots, p, n, base);
}

size_t resblock_acts_size(const struct resblock_cfg *c)
{
    check_cfg(c);
    const size_t hw = (size_t)c->B * c->H * c->W, bg = (size_t)c->B * c->G;
    const size_t mx = (size_t)(c->C > c->OC ? c->C : c->OC);
    return 2 * c->C * hw + 4 * c->OC * hw + 4 * bg + 2 * mx * hw;
}

void resblock_acts_point(struct resblock_acts *a, float *base, const struct resblock_cfg *c)
{
    check_cfg(c);
    const size_t hw = (size_t)c->B * c->H * c->W, bg = (size_t)c->B * c->G;
    const size_t mx = (size_t)(c->C > c->OC ? c->C : c->OC);
    float *p = base;
    a->n1 = p, p += c->C * hw;
    a->a1 = p, p += c->C * hw;
    a->h1 = p, p += c->OC * hw;
    a->n2 = p, p += c->OC * hw;
    a->a2 = p, p += c->OC * hw;
    a->h2 = p, p += c->OC * hw;
    a->mean1 = p, p += bg;
    a->rstd1 = p, p += bg;
    a->mean2 = p, p += bg;
    a->rstd2 = p, p += bg;
    a->g0 = p, p += mx * hw;
    a->g1 = p, p += mx * hw;
    TP_ASSERT((size_t)(p - base) == resblock_acts_size(c));
}

struct resblock_acts resblock_acts_slice(const struct resblock_acts *a, int b0, const struct resblock_cfg *c)
{
    const size_t hw = (size_t)b0 * c->H * c->W, bg = (size_t)b0 * c->G;
    const size_t mx = (size_t)(c->C > c->OC ? c->C : c->OC);
    struct resblock_acts v = *a;
    v.n1 += c->C * hw, v.a1 += c->C * hw;
    v.h1 += c->OC * hw, v.n2 += c->OC * hw, v.a2 += c->OC * hw, v.h2 += c->OC * hw;
    v.mean1 += bg, v.rstd1 += bg, v.mean2 += bg, v.rstd2 += bg;
    v.g0 += mx * hw, v.g1 += mx * hw;
    return v;
}

void resblock_forward(float *out, struct resblock_acts *a, const float *inp,
                      const struct resblock_weights *w, const struct resblock_cfg *c)
{
    check_cfg(c);
    const int HW = c->H * c->W;
    const size_t nc = (size_t)c->B * c->C * HW, no = (size_t)c->B * c->OC * HW;
    const struct conv2d_shape s1 = conv2d_shape_same(c->B, c->C, c->H, c->W, c->OC, 3, 3, 1, 1);
    const struct conv2d_shape s2 = conv2d_shape_same(c->B, c->OC, c->H, c->W, c->OC, 3, 3, 1, 1);

    groupnorm_forward(a->n1, a->mean1, a->rstd1, inp, w->norm1_weight, w->norm1_bias,
                      c->B, c->C, HW, c->G, c->eps);
    silu_forward(a->a1, a->n1, nc);
    conv2d_forward(a->h1, a->a1, w->conv1_weight, NULL, &s1);
    groupnorm_forward(a->n2, a->mean2, a->rstd2, a->h1, w->norm2_weight, w->norm2_bias,
                      c->B, c->OC, HW, c->G, c->eps);
    silu_forward(a->a2, a->n2, no);
    conv2d_forward(a->h2, a->a2, w->conv2_weight, NULL, &s2);
    if (c->C != c->OC) {
        TP_ASSERT(w->nin_shortcut_weight);
        const struct conv2d_shape s3 = conv2d_shape_same(c->B, c->OC, c->H, c->W, c->OC, 1, 1, 1, 1);
        conv2d_forward(out, a->h2, w->nin_shortcut_weight, NULL, &s3);
        add_inplace(out, a->h2, no);
    } else {
        residual_forward(out, inp, a->h2, no);
    }
}

void resblock_backward(float *dinp, const struct resblock_weights *dw,
                       const float *dout, const float *inp,
                       const struct resblock_weights *w, struct resblock_acts *a,
                       const struct resblock_cfg *c)
{
    check_cfg(c);
    const int HW = c->H * c->W;
    const size_t nc = (size_t)c->B * c->C * HW, no = (size_t)c->B * c->OC * HW;
    const struct conv2d_shape s1 = conv2d_shape_same(c->B, c->C, c->H, c->W, c->OC, 3, 3, 1, 1);
    const struct conv2d_shape s2 = conv2d_shape_same(c->B, c->OC, c->H, c->W, c->OC, 3, 3, 1, 1);
    const struct resblock_weights none = {0};
    if (!dw) dw = &none;

    /* dL/dh2: dout through the identity, plus the shortcut's path (into g0) */
    const float *dh2 = dout;
    if (c->C != c->OC) {
        const struct conv2d_shape s3 = conv2d_shape_same(c->B, c->OC, c->H, c->W, c->OC, 1, 1, 1, 1);
        memcpy(a->g0, dout, no * sizeof(float));
        conv2d_backward(a->g0, dw->nin_shortcut_weight, NULL, dout, a->h2,
                        w->nin_shortcut_weight, &s3);
        dh2 = a->g0;
    } else if (dinp) {
        add_inplace(dinp, dout, nc);
    }
    /* down the chain, ping-ponging between the two scratch buffers */
    memset(a->g1, 0, no * sizeof(float));
    conv2d_backward(a->g1, dw->conv2_weight, NULL, dh2, a->a2, w->conv2_weight, &s2);
    memset(a->g0, 0, no * sizeof(float));
    silu_backward(a->g0, a->g1, a->n2, no);
    memset(a->g1, 0, no * sizeof(float));
    groupnorm_backward(a->g1, dw->norm2_weight, dw->norm2_bias, a->g0, a->h1,
                       w->norm2_weight, a->mean2, a->rstd2, c->B, c->OC, HW, c->G);
    memset(a->g0, 0, nc * sizeof(float));
    conv2d_backward(a->g0, dw->conv1_weight, NULL, a->g1, a->a1, w->conv1_weight, &s1);
    memset(a->g1, 0, nc * sizeof(float));
    silu_backward(a->g1, a->g0, a->n1, nc);
    groupnorm_backward(dinp, dw->norm1_weight, dw->norm1_bias, a->g1, inp,
                       w->norm1_weight, a->mean1, a->rstd1, c->B, c->C, HW, c->G);
}
