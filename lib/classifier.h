/* classifier.h - a small ViT image classifier ("vit-classifier"): the
 * evaluation network whose features give the Frechet distances (fd.h) and
 * whose predictions give the accuracy of class-conditional samples.
 *
 * It is TiTok's encoder (titok.h) with no latent tokens and a head: the
 * same patch embedding, sequence builder and ViT trunk (ln_pre, pre-LN
 * blocks, ln_post), the class token as the summary (the layout of CLIP's and
 * open_clip's VisionTransformer, which TiTok's encoder itself follows).
 *
 * Dimensions: B batch; C image channels, R image side, P patch, G = R/P,
 * N = G*G patches, T = 1+N; E width, L blocks, NH heads (MLP 4E); V classes.
 *
 * Forward (fields image F32 [B,C,R,R] -> features F32 [B,E], logits F32 [B,V]):
 *   patch_embed Conv2d C->E, kernel = stride = P, bias -> N patch rows;
 *   [class_embedding, patches] + positional_embedding [T,E] -> ln_pre ->
 *   L pre-LN blocks (block.h) -> row 0 (the class token) -> ln_post =
 *   features; head Linear E->V = logits.
 * Backward: logits.grad and/or features.grad (at least one) -> parameter
 * gradients; the module writes no image.grad (classifier_backward can).
 * Accumulates (+=).
 *
 * Names: class_embedding [1,E], positional_embedding [T,E],
 * patch_embed.{weight,bias}, ln_pre.*, transformer.I.* (block.h's pre-LN
 * names), ln_post.*, head.{weight,bias}. Init as TiTok's encoder: Linear and
 * Conv weights N(0, 0.02), biases 0, LayerNorm (1, 0), embeddings
 * E^-0.5 N(0,1), attention in_proj Xavier.
 *
 * Metadata (all required; the vit-classifier preset of encode gives them):
 * arch=vit-classifier, channels, resolution, patch, width, layers, heads,
 * classes.
 */
#ifndef TP_CLASSIFIER_H
#define TP_CLASSIFIER_H

#include "module.h"
#include "titok.h"

/* encode's preset: 32x32 images, patch 8 (16 patches), width 128, 4 blocks
 * of 4 heads; channels and classes of Fashion-MNIST (--set for others).
 * Patch 8 rather than 4: a step costs about a quarter, and in the same time
 * on Fashion-MNIST (2 cores) patch 8 reached 87.5% test accuracy in 1500
 * steps of 64 where patch 4 reached 82.8% in 600 (less than an epoch). */
#define CLASSIFIER_TINY \
    "arch=vit-classifier channels=1 resolution=32 patch=8 width=128 layers=4 heads=4 classes=10"

struct classifier {
    struct titok_cfg c;   /* C, R, P, G, N, E, L, NH (K = 0) */
    int V;                /* classes */
    struct titok_trunk tr;
    size_t off_cls, off_pos, off_pw, off_pb, off_hw, off_hb;
    float *data, *grad;   /* the bound parameter buffers */
    int B;                /* batch the buffers hold */
    float *img;           /* [B,C,R,R] copy of the input */
    float *pe, *dpe;      /* [B,E,N] patch_embed output, its gradient */
    float *x, *dx;        /* [B,T,E] trunk input, its gradient */
    float *dfeat;         /* [B,E] */
};

/* Parse meta and append the parameters to p; alloc = 1 then allocates p
 * and binds the model to it (0: the table only). -1 on a bad value. */
int classifier_init(struct classifier *m, struct params *p, const struct st *meta, int alloc);
void classifier_free(struct classifier *m);
/* features [B,E] and logits [B,V] (either may be NULL) from image
 * [B,C,R,R] (copied). The features stay valid in m->tr.out until the next
 * forward. train: keep what backward needs. */
void classifier_forward(struct classifier *m, float *features, float *logits, const float *image, int B,
                        int train);
/* Gradients of the last forward from dlogits [B,V] and/or dfeatures [B,E]
 * (either may be NULL); dimage may be NULL. */
void classifier_backward(struct classifier *m, float *dimage, const float *dlogits, const float *dfeatures);

extern const struct module_ops classifier_ops;

#endif
