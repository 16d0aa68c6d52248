/* disc.h - upstream's NLayerDiscriminator (bytedance/1d-tokenizer modeling/
 * modules/discriminator.py), the stage-2 GAN critic, forward and backward:
 *
 *   block_in:  Conv2dSame(C, w0, 5) -> LeakyReLU(0.1)          [B,w0,H,W]
 *   blocks[i]: discblock.h, w[i] -> w[i+1], halves H and W     i < S
 *   pool:      AdaptiveMaxPool2d((P, P))                      [B,wS,P,P]
 *   to_logits: Conv2dSame(wS, wS, 1) -> LeakyReLU(0.1)
 *              -> Conv2dSame(wS, 1, 5)                        [B,1,P,P]
 *
 * Dimensions: B batch, C image channels, H,W image size, S stages, w[0..S]
 * channel widths (w[0] is block_in's), P the pooled side, G GroupNorm
 * groups. Upstream is C 3, widths 128,128,256,512 (hidden_channels 128 times
 * (1,1,2,4)), G 32, P 16; any image size works (the pool fixes the logit
 * map at PxP, repeating bins when the map is smaller than P).
 *
 * Weights file (one safetensors, DESIGN section 3): upstream's state_dict
 * names, so a strict torch load_state_dict of ours works and a converted
 * upstream checkpoint loads:
 *   block_in.0.weight [w0,C,5,5], block_in.0.bias [w0]
 *   blocks.<i>.0.weight [w[i+1],w[i],3,3], .0.bias, .2.weight, .2.bias
 *   blocks.<i>.1.kernel [1,1,4,4]   the blur's constant buffer (pool.h
 *                                   blur_kernel); written on save, checked
 *                                   on load, never a parameter
 *   to_logits.0.weight [wS,wS,1,1], .0.bias, to_logits.2.weight [1,wS,5,5],
 *   to_logits.2.bias [1]
 * __metadata__: arch "nlayer-discriminator", channels, widths (comma list
 * of S+1 numbers), groups, pool, and "step" (updates done) once trained.
 * A key that is absent takes upstream's value, so a converted upstream
 * checkpoint without metadata loads (shapes are still checked by name).
 *
 * Initialisation is torch's default, which upstream keeps (the loss module
 * applies no init of its own): conv weight and bias U(+-1/sqrt(fan_in)),
 * GroupNorm weight 1, bias 0.
 *
 * disc_forward keeps the activations of the last call; disc_backward
 * differentiates that call: dx (may be NULL) gets += dL/dx, and when dparams
 * is not NULL (a buffer laid out as d->params, normally d->params.grad)
 * the parameter gradients are added into it; with dparams NULL they are not
 * computed at all (the generator's view of a frozen critic). Every loop is
 * a lib/ layer's, parallel over outputs, so results are bit-identical run
 * to run at a fixed thread count.
 */
#ifndef TP_DISC_H
#define TP_DISC_H

#include <stdint.h>

#include "discblock.h"
#include "params.h"
#include "st.h"

#define DISC_ARCH "nlayer-discriminator"
#define DISC_MAX_STAGES 8
#define DISC_KIN 5      /* block_in kernel */
#define DISC_KOUT 5     /* to_logits.2 kernel */
#define DISC_SLOPE 0.1f /* LeakyReLU */

struct disc_cfg {
    int channels;                    /* C */
    int nstages;                     /* S */
    int width[DISC_MAX_STAGES + 1];  /* w[0..S] */
    int groups;                      /* G, divides w[1..S] */
    int pool;                        /* P */
};

/* Upstream's values for C image channels. */
void disc_cfg_upstream(struct disc_cfg *c, int channels);
/* Read the architecture from metadata (absent keys: upstream's); -1 and a
 * message on a malformed or out-of-range value. */
int disc_cfg_from_meta(struct disc_cfg *c, const struct st *meta);
/* Write arch, channels, widths, groups, pool into meta. */
void disc_cfg_to_meta(const struct disc_cfg *c, struct st *meta);

struct disc_stage {
    struct discblock_cfg cfg;  /* B, H, W of the current activations */
    struct discblock_acts acts;
    float *out;                /* [B,w[i+1],H/2,W/2] after the stage */
};

struct disc {
    struct disc_cfg cfg;
    struct params params;      /* values, gradients, table in state_dict order */
    size_t off_in, off_blk[DISC_MAX_STAGES], off_mid, off_out; /* first float of each layer */
    /* activations of the last forward, for a batch of B images HxW */
    int B, H, W;
    size_t cap, idx_cap;       /* elements allocated in acts, idx */
    float *acts;
    int32_t *idx;              /* pool winners [B,wS,P,P] */
    float *h0, *a0;            /* block_in conv out, after LeakyReLU [B,w0,H,W] */
    struct disc_stage st[DISC_MAX_STAGES];
    float *pooled, *t1, *t2;   /* [B,wS,P,P]: pool, 1x1 conv, LeakyReLU */
    float *g0, *g1;            /* backward ping-pong */
};

/* Build the table and zeroed buffers for cfg (weights all zero). */
void disc_build(struct disc *d, const struct disc_cfg *cfg);
void disc_free(struct disc *d);
/* Upstream's initialisation, drawn from seed. */
void disc_init_weights(struct disc *d, uint64_t seed);
/* Build from a weights file and load it (every parameter present with its
 * shape, blur kernels equal to blur_kernel(), nothing else); *step (may be
 * NULL) gets the file's "step", -1 if it has none. On failure d is left
 * freed. */
int disc_load(struct disc *d, const char *path, long *step);
/* Save weights, blur kernels and architecture metadata atomically; step
 * < 0 writes no "step". */
int disc_save(const struct disc *d, const char *path, long step);
/* A new weights file: the architecture from meta (absent keys: upstream's),
 * upstream's init from seed. */
int disc_init_file(const char *path, const struct st *meta, uint64_t seed);

/* The logit map side for any input: P x P. */
int disc_out_side(const struct disc *d);
/* logits [B,1,P,P] from x [B,C,H,W]; x must stay unchanged until
 * disc_backward. */
void disc_forward(struct disc *d, float *logits, const float *x, int B, int H, int W);
/* dlogits [B,1,P,P] of the last forward; see the header comment. */
void disc_backward(struct disc *d, float *dx, float *dparams, const float *dlogits,
                   const float *x);

#endif
