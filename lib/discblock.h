/* discblock.h - one stage of upstream's NLayerDiscriminator (bytedance/
 * 1d-tokenizer modeling/modules/discriminator.py, `blocks[i]`, an
 * nn.Sequential), forward and backward:
 *
 *   [0] h = Conv2dSame(C, OC, 3)(x)        3x3, stride 1, SAME, with bias
 *   [1] p = BlurBlock((1,3,3,1))(h)        pool.h blur: stride 2, [B,OC,H2,W2]
 *   [2] n = nn.GroupNorm(32, OC)(p)        PyTorch default eps 1e-5, affine
 *   [3] out = LeakyReLU(0.1)(n)
 *
 * Dimensions: B batch, C input channels, OC output channels, H,W input size,
 * H2 = ceil(H/2), W2 = ceil(W/2) output size, G groups. inp [B,C,H,W],
 * out [B,OC,H2,W2].
 *
 * Parameter names are the Sequential indices, relative to the stage (the
 * model adds "blocks.<i>."): 0.weight [OC,C,3,3], 0.bias [OC], 2.weight [OC],
 * 2.bias [OC]. Upstream's state_dict also holds the constant buffer
 * 1.kernel [1,1,4,4] (pool.h blur_kernel gives its value); it is not a
 * parameter and is not in discblock_params.
 *
 * discblock_forward fills the activations backward needs; discblock_backward
 * accumulates (+=) into dinp and the gradient struct (dinp, dw or any field
 * may be NULL), using the acts' g0..g2 as scratch.
 */
#ifndef TP_DISCBLOCK_H
#define TP_DISCBLOCK_H

#include <stddef.h>

#include "conv2d.h"

#define DISCBLOCK_GROUPS 32
#define DISCBLOCK_EPS 1e-5f
#define DISCBLOCK_SLOPE 0.1f
#define DISCBLOCK_NPARAMS 4

struct discblock_cfg {
    int B, C, OC, H, W;
    int G;        /* GroupNorm groups, divides OC */
    float eps;    /* GroupNorm eps */
    float slope;  /* LeakyReLU negative slope */
};

struct discblock_weights {
    float *conv_weight; /* "0.weight" [OC,C,3,3] */
    float *conv_bias;   /* "0.bias"   [OC] */
    float *norm_weight; /* "2.weight" [OC] */
    float *norm_bias;   /* "2.bias"   [OC] */
};

struct discblock_acts {
    float *h;            /* [B,OC,H,W]   conv out */
    float *p, *n;        /* [B,OC,H2,W2] blur out, norm out */
    float *mean, *rstd;  /* [B,G] */
    float *g0;           /* [B,OC,H,W]   backward scratch */
    float *g1, *g2;      /* [B,OC,H2,W2] backward scratch */
};

/* Upstream's stage: G = 32, eps = 1e-5, slope 0.1. */
struct discblock_cfg discblock_cfg_upstream(int B, int C, int OC, int H, int W);
/* Output height and width: ceil(H/2), ceil(W/2). */
void discblock_out_hw(const struct discblock_cfg *c, int *H2, int *W2);

/* The parameter table (DISCBLOCK_NPARAMS entries) in state_dict order. */
int discblock_params(struct convnet_param *p, int C, int OC);
size_t discblock_weights_point(struct discblock_weights *w, float *base, int C, int OC);

size_t discblock_acts_size(const struct discblock_cfg *c); /* floats */
void discblock_acts_point(struct discblock_acts *a, float *base, const struct discblock_cfg *c);

void discblock_forward(float *out, struct discblock_acts *a, const float *inp,
                       const struct discblock_weights *w, const struct discblock_cfg *c);
void discblock_backward(float *dinp, const struct discblock_weights *dw,
                        const float *dout, const float *inp,
                        const struct discblock_weights *w, struct discblock_acts *a,
                        const struct discblock_cfg *c);

#endif
