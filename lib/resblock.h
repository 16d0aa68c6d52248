/* resblock.h - the MaskGIT-VQGAN ResnetBlock (upstream modeling/modules/
 * maskgit_vqgan.py, a port of the JAX original), forward and backward.
 *
 * Dimensions: B batch, C input channels, OC output channels, H,W spatial
 * size (kept), G GroupNorm groups (upstream 32, eps 1e-6: RESBLOCK_GROUPS,
 * RESBLOCK_EPS). inp [B,C,H,W], out [B,OC,H,W].
 *
 *   n1 = norm1(x)    a1 = silu(n1)    h1 = conv1(a1)     3x3 SAME, no bias
 *   n2 = norm2(h1)   a2 = silu(n2)    h2 = conv2(a2)     3x3 SAME, no bias
 *   out = x + h2                       if C == OC
 *   out = h2 + nin_shortcut(h2)        if C != OC        1x1, no bias
 * The second form is upstream's quirk (in both the JAX and the PyTorch
 * code): the shortcut convolves the block's own output h2, and the input x
 * does not reach the output except through the convolutions. Dropout is
 * upstream's nn.Dropout(0.0) (config dropout 0), so it is left out.
 *
 * Weights are named as upstream's state_dict (resblock_params), relative to
 * the block: norm1.weight [C], norm1.bias [C], conv1.weight [OC,C,3,3],
 * norm2.weight [OC], norm2.bias [OC], conv2.weight [OC,OC,3,3],
 * nin_shortcut.weight [OC,OC,1,1] (only when C != OC).
 *
 * resblock_forward fills the activation buffers backward needs;
 * resblock_backward accumulates (+=) into dinp and the gradient struct
 * (dinp, dw, or any field of dw may be NULL) and uses the acts' g0/g1 as
 * scratch.
 */
#ifndef TP_RESBLOCK_H
#define TP_RESBLOCK_H

#include <stddef.h>

#include "conv2d.h"

#define RESBLOCK_GROUPS 32
#define RESBLOCK_EPS 1e-6f
#define RESBLOCK_MAX_PARAMS 7

struct resblock_cfg {
    int B, C, OC, H, W;
    int G;      /* GroupNorm groups, divides C and OC */
    float eps;  /* GroupNorm eps */
};

struct resblock_weights {
    float *norm1_weight;        /* [C] */
    float *norm1_bias;          /* [C] */
    float *conv1_weight;        /* [OC,C,3,3] */
    float *norm2_weight;        /* [OC] */
    float *norm2_bias;          /* [OC] */
    float *conv2_weight;        /* [OC,OC,3,3] */
    float *nin_shortcut_weight; /* [OC,OC,1,1]; NULL when C == OC */
};

struct resblock_acts {
    float *n1, *a1;              /* [B,C,H,W] norm1 out, silu of it */
    float *h1, *n2, *a2, *h2;    /* [B,OC,H,W] conv1 out, norm2 out, silu, conv2 out */
    float *mean1, *rstd1;        /* [B,G] */
    float *mean2, *rstd2;        /* [B,G] */
    float *g0, *g1;              /* [B,max(C,OC),H,W] backward scratch */
};

/* Upstream's configuration: G = 32, eps = 1e-6. */
struct resblock_cfg resblock_cfg_upstream(int B, int C, int OC, int H, int W);

/* The parameter table in upstream's state_dict order; returns its length
 * (6, or 7 with nin_shortcut). p holds RESBLOCK_MAX_PARAMS entries. */
int resblock_params(struct convnet_param *p, int C, int OC);
/* Point w's fields into base in table order (NULL base: count only).
 * Returns the number of floats. nin_shortcut_weight is NULL when C == OC. */
size_t resblock_weights_point(struct resblock_weights *w, float *base, int C, int OC);

size_t resblock_acts_size(const struct resblock_cfg *c); /* floats */
void resblock_acts_point(struct resblock_acts *a, float *base, const struct resblock_cfg *c);
/* a's fields from image b0 on (every field is batch-major): the
 * activations of images b0.. of the batch a was pointed for, as a
 * resblock_cfg of those images takes them */
struct resblock_acts resblock_acts_slice(const struct resblock_acts *a, int b0, const struct resblock_cfg *c);

void resblock_forward(float *out, struct resblock_acts *a, const float *inp,
                      const struct resblock_weights *w, const struct resblock_cfg *c);
void resblock_backward(float *dinp, const struct resblock_weights *dw,
                       const float *dout, const float *inp,
                       const struct resblock_weights *w, struct resblock_acts *a,
                       const struct resblock_cfg *c);

#endif
