/* perc_vgg.h - a VGG-style feature network (torchvision's vgg16().features
 * layout) with LPIPS's distance over its taps: the "lpips-vgg16" and
 * "tokpipe-percep" perceptual networks (perceptual.h), forward, backward to
 * the input, and backward to the weights (training the default network).
 *
 * Dimensions: B batch, C channels, H,W input size; layer l has output
 * channels oc[l] and size h[l] x w[l]; HW positions of a tap.
 *
 * cfg is torchvision's make_layers list: conv widths and "M" (max pool), e.g.
 * VGG16 ("D") up to relu5_3, which is all LPIPS uses:
 *   64,64,M,128,128,M,256,256,256,M,512,512,512,M,512,512,512
 * Every conv is 3x3, padding 1, with bias, followed by ReLU (LeakyReLU when
 * slope > 0: the default network uses 0.1, see below); torchvision
 * numbers the modules in order (conv i, its ReLU i+1; a pool takes one
 * index), so the convs of VGG16 are features.0, 2, 5, 7, 10, ... 28. The
 * network must start and end with a conv, and a pool must follow a conv.
 * Tap k is the ReLU output just before the k-th pool, and the last ReLU
 * (VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3, as LPIPS slices it).
 *
 * Parameters (params.h table, in this order):
 *   features.<i>.weight [OC,C,3,3], features.<i>.bias [OC]   each conv
 *   lin<k>.model.1.weight [1,C_k,1,1]                         each tap
 *   classifier.weight [NCLS,C_last], classifier.bias [NCLS]   if NCLS > 0
 * The classifier (global average of the last tap, then a linear layer) is
 * what the default network is trained with; the distance does not use it.
 *
 * LPIPS distance (richzhang/PerceptualSimilarity, as upstream TiTok's
 * lpips.py), per image, over taps k of pred and target features f0, f1:
 *   u = f / (||f||_c + 1e-10)     (unit length over channels, per position)
 *   d = sum_k mean_hw sum_c lin_k[c] (u0 - u1)^2
 * torch's autograd gives NaN where a pred feature vector is exactly zero
 * (sqrt'(0) * 0); lpips_layer uses the exact derivative there, I/eps (the
 * second term of d u / d f vanishes). That is huge, so a network whose ReLU
 * can zero a whole feature vector (a flat black background) makes a poor
 * training loss: the default network has LeakyReLU(0.1), whose features are
 * never all zero.
 */
#ifndef TP_PERC_VGG_H
#define TP_PERC_VGG_H

#include <stddef.h>
#include <stdint.h>

#include "params.h"

#define PERC_VGG_MAX 48
#define PERC_VGG_MAX_TAPS 8
#define LPIPS_EPS 1e-10f

/* torchvision VGG16 features up to relu5_3 (LPIPS) */
#define PERC_VGG16_CFG "64,64,M,128,128,M,256,256,256,M,512,512,512,M,512,512,512"

struct perc_vgg {
    int C;                       /* input channels */
    float slope;                 /* negative slope of the activations */
    int n;                       /* layers */
    int pool[PERC_VGG_MAX];      /* 1: max pool, 0: conv + activation */
    int oc[PERC_VGG_MAX];        /* output channels (a pool keeps its input's) */
    int index[PERC_VGG_MAX];     /* torchvision module index */
    size_t woff[PERC_VGG_MAX];   /* conv weight offset; the bias follows it */
    int ntap, tap[PERC_VGG_MAX_TAPS];   /* the layer each tap reads */
    size_t linoff[PERC_VGG_MAX_TAPS];   /* LPIPS head offsets */
    int npool;
    int ncls;
    size_t clsoff;               /* classifier weight; its bias follows */
};

/* Parse cfg and add the parameters to p (prefix "" names). -1 and a
 * message on a malformed cfg. Initialisation: convs He-normal (std
 * sqrt(2/fan_in)), biases 0, LPIPS heads 1, classifier torch-default. */
int perc_vgg_build(struct perc_vgg *v, struct params *p, const char *cfg, int C, int ncls,
                   float slope);

/* Smallest input side the pools leave at least one pixel of. */
int perc_vgg_min_side(const struct perc_vgg *v);

struct perc_vgg_acts {
    int B, H, W;                 /* the sizes the buffers hold */
    float *out[PERC_VGG_MAX];    /* conv: post-ReLU output; pool: output */
    int32_t *idx[PERC_VGG_MAX];  /* pool argmax */
    int h[PERC_VGG_MAX], w[PERC_VGG_MAX];
    float *g0, *g1;              /* backward ping-pong, largest layer */
    float *mem;
    size_t floats;                 /* capacity of mem */
};

/* Floats forward and backward hold for B images of H x W. */
size_t perc_vgg_acts_numel(const struct perc_vgg *v, int B, int H, int W);
void perc_vgg_acts_free(struct perc_vgg_acts *a);

/* Run inp [B,C,H,W] through the layers with weights at wts (the params
 * data); tap k is then a->out[v->tap[k]]. (Re)sizes a as needed. */
void perc_vgg_forward(const struct perc_vgg *v, struct perc_vgg_acts *a, const float *inp,
                      const float *wts, int B, int H, int W);
/* Backward of the last forward from gradients of the taps (dtap[k] shaped
 * as tap k, or NULL for none): dinp += d/dinp (may be NULL); dwts += the
 * conv weight and bias gradients at the params offsets (NULL: skipped). */
void perc_vgg_backward(const struct perc_vgg *v, struct perc_vgg_acts *a, float *dinp,
                       float *dwts, float *const *dtap, const float *inp, const float *wts);

/* One tap's LPIPS term for B images of C channels and HW positions: dist[b]
 * += mean_hw sum_c lin[c] (u0 - u1)^2, and, if df0 is not NULL, df0 +=
 * gscale * d dist[b] / d f0. scratch holds HW doubles. */
void lpips_layer(double *dist, float *df0, const float *f0, const float *f1, const float *lin,
                 int B, int C, int HW, float gscale, double *scratch);

#endif
