/* perc_convnext.h - torchvision's ConvNeXt classifier (convnext_small by
 * default), eval mode, forward to the logits and backward to the input:
 * the "convnext-s" perceptual network (upstream TiTok stage 2, perceptual.h).
 *
 * Dimensions: B batch, C = 3 input channels, R x R input (224 upstream),
 * stage s has width d[s] and H_s x W_s positions (HW_s), NCLS classes.
 * Structure (torchvision.models.convnext; stochastic depth is off in eval):
 *   features.0     Conv2d(C, d0, 4, stride 4) + LayerNorm2d(d0)
 *   features.1+2s  stage s: depths[s] CNBlocks of width d[s]
 *   features.2+2s  (s < 3) LayerNorm2d(d[s]) + Conv2d(d[s], d[s+1], 2, stride 2)
 *   avgpool        global average
 *   classifier     LayerNorm2d(d3), Flatten, Linear(d3, NCLS)
 *   CNBlock(x) = x + layer_scale * Permute(Linear2(GELU(Linear1(LN(Permute(
 *                dwconv7x7(x)))))))   (Linear1: d -> 4d, exact erf GELU)
 * Every LayerNorm has eps 1e-6. convnext_small: d = 96,192,384,768, depths
 * 3,3,27,3, NCLS 1000: 50,223,688 parameters. Names (torchvision
 * state_dict), stem features.0.0.{weight,bias} [d0,C,4,4] [d0],
 * features.0.1.{weight,bias}; block j of stage feature f:
 *   features.f.j.layer_scale [d,1,1], .block.0.{weight [d,1,7,7], bias},
 *   .block.2.{weight,bias} (LN), .block.3.{weight [4d,d], bias [4d]},
 *   .block.5.{weight [d,4d], bias [d]};
 * downsample f: features.f.0.{weight,bias} (LN), features.f.1.{weight
 * [d',d,2,2], bias}; head classifier.0.{weight,bias} (LN),
 * classifier.2.{weight [NCLS,d3], bias}.
 *
 * Only what the input gradient needs is kept between forward and backward:
 * per block the dwconv output (LayerNorm input, NHWC), the LN statistics
 * and the first Linear's output (GELU input); linear_backward and
 * conv2d_backward read no input when no weight gradient is asked.
 */
#ifndef TP_PERC_CONVNEXT_H
#define TP_PERC_CONVNEXT_H

#include <stddef.h>

#include "params.h"

#define CNX_EPS 1e-6f
#define CNX_MAX_BLOCKS 64

struct perc_convnext {
    int C, d[4], depths[4], ncls, nblocks;
    size_t stem;                   /* offset of features.0.0.weight */
    size_t block[CNX_MAX_BLOCKS];  /* offset of each block's layer_scale */
    size_t down[3];                /* offset of each downsample's LN weight */
    size_t head;                   /* offset of classifier.0.weight */
};

/* Add the parameter table to p; -1 and a message on bad dimensions.
 * Initialisation as torchvision's: weights N(0, 0.02^2), biases 0, norms
 * (1, 0); layer_scale starts at 1 here (perc_convnext_init sets 1e-6). */
int perc_convnext_build(struct perc_convnext *v, struct params *p, const int d[4],
                        const int depths[4], int ncls);
/* torchvision's layer_scale init value 1e-6 into the weights at wts. */
void perc_convnext_init(const struct perc_convnext *v, float *wts);

struct perc_convnext_acts {
    int B, R;                      /* the sizes the buffers hold */
    int h[4];                      /* stage sides (square inputs) */
    float *z0, *m0, *r0;           /* stem LN input [B*HW0,d0], stats */
    float *z[CNX_MAX_BLOCKS], *m[CNX_MAX_BLOCKS], *r[CNX_MAX_BLOCKS], *u[CNX_MAX_BLOCKS];
    float *zd[3], *md[3], *rd[3];  /* downsample LN input and stats */
    float *pooled, *hm, *hr, *hln; /* head [B,d3], stats [B], LN out */
    float *x, *sa, *sb;            /* NCHW-sized scratch (largest stage) */
    float *ha, *hb;                /* hidden-sized scratch (largest stage) */
    float *mem;
    size_t floats;                 /* capacity of mem */
};

size_t perc_convnext_acts_numel(const struct perc_convnext *v, int B, int R);
void perc_convnext_acts_free(struct perc_convnext_acts *a);

/* logits [B,NCLS] of inp [B,C,R,R] (R >= 32, so every stage has a pixel). */
void perc_convnext_forward(const struct perc_convnext *v, struct perc_convnext_acts *a,
                           float *logits, const float *inp, const float *wts, int B, int R);
/* dinp += d/dinp of sum(logits * dlogits), for the last forward. */
void perc_convnext_backward(const struct perc_convnext *v, struct perc_convnext_acts *a,
                            float *dinp, const float *dlogits, const float *inp,
                            const float *wts);

#endif
