/* perceptual.h - the perceptual loss: a frozen feature network loaded from a
 * safetensors file, the distance it defines between a predicted and a
 * target image, and its gradient with respect to the prediction.
 *
 * Images are [B,C,H,W] F32 in [0,1] (DESIGN.md section 2), C = 1 or 3; gray
 * is repeated to 3 channels where the network needs RGB, and RGB is turned
 * into luma (imgops.h weights) for a gray network. The architecture comes
 * from the file's metadata "arch" (or, for a converted file without one,
 * from its tensor names):
 *
 *   lpips-vgg16     LPIPS (richzhang/PerceptualSimilarity; upstream TiTok's
 *                   modeling/modules/lpips.py): x -> 2x - 1 -> (x - shift) /
 *                   scale, torchvision VGG16 features to relu5_3, the
 *                   distance of perc_vgg.h over relu{1_2,2_2,3_3,4_3,5_3}
 *                   with the linear heads lin0..lin4. Tensors:
 *                   features.N.{weight,bias} (torchvision names; LPIPS's own
 *                   net.sliceK.N.{weight,bias} are accepted too),
 *                   lin{0..4}.model.1.weight [1,C,1,1], and optionally
 *                   scaling_layer.{shift,scale} [1,3,1,1] (default LPIPS's
 *                   -0.030,-0.088,-0.188 and 0.458,0.448,0.450). Other
 *                   tensors (torchvision's classifier.*) are ignored.
 *                   Metadata "cfg" may narrow the widths (tests do).
 *   convnext-s      upstream TiTok stage 2's loss: both images bilinearly
 *                   resized with antialiasing to "resize" x "resize" (224),
 *                   normalised with the ImageNet mean and std, through
 *                   torchvision convnext_small (perc_convnext.h, its
 *                   state_dict names); the loss is the MSE between the
 *                   logits. Metadata "dims" (96,192,384,768), "depths"
 *                   (3,3,27,3), "num_classes" (1000), "resize" (224; 0: the
 *                   image as it is, square, side >= 32) may change the size
 *                   (tests use a narrow one).
 *   tokpipe-percep  the project's default, trained here (perceptual_train)
 *                   because no public weights can be downloaded: a small
 *                   VGG-style net, cfg "32,M,64,M,128,M,128", LeakyReLU(0.1),
 *                   trained as a Fashion-MNIST classifier; the distance is
 *                   LPIPS's over its four activations with all-ones heads.
 *                   Input scaling as LPIPS with shift 0, scale 1 (so the net
 *                   sees [-1,1]). Metadata: cfg, in_channels, num_classes,
 *                   slope. Tensors as lpips-vgg16, plus classifier.{weight,
 *                   bias} (the training head; the loss does not use it) and
 *                   scaling_layer.{shift,scale} [1,in_channels,1,1]. Trained
 *                   by build/bench/perc_train for 1200 steps it reaches 88.6%
 *                   test accuracy and sharpens L2 reconstructions (figures
 *                   and commands: bench/perceptual.md).
 *
 * The loss is the mean over the batch of the per-image distance (LPIPS), or
 * the mean over the batch and classes of the squared logit difference
 * (convnext-s), exactly as upstream's modules reduce. Gradients flow to pred
 * only (target is a constant, as upstream's frozen nets treat it).
 * Images go through in chunks that bound the activation memory
 * (PERCEPTUAL_MEM_BYTES); every loop is parallel over an output index, so
 * results are bit-identical run to run at a fixed thread count.
 */
#ifndef TP_PERCEPTUAL_H
#define TP_PERCEPTUAL_H

#include <stdint.h>
#include <stdio.h>

#include "st.h"

#define PERCEPTUAL_MEM_BYTES ((size_t)512 << 20)

/* The default network */
#define PERC_DEFAULT_ARCH "tokpipe-percep"
#define PERC_DEFAULT_CFG "32,M,64,M,128,M,128"
#define PERC_DEFAULT_SLOPE 0.1f

struct perceptual;

/* Load a frozen network from a safetensors file (architecture above). */
int perceptual_load(struct perceptual **out, const char *path);
/* The same from tensors already in memory (copied; w may be freed after). */
int perceptual_from_st(struct perceptual **out, const struct st *w);
void perceptual_free(struct perceptual *p);
const char *perceptual_arch(const struct perceptual *p);

/* 0 if images of C x H x W can go through the network, else -1 and a
 * message (channels not 1 or 3, too small for the pools, ...). */
int perceptual_check(const struct perceptual *p, int C, int H, int W);

/* Loss between pred and target images [B,C,H,W] in [0,1]; adds scale *
 * d loss / d pred into dpred (may be NULL). Returns the loss (mean over the
 * batch), or NAN with a message when perceptual_check fails. */
double perceptual_loss(struct perceptual *p, float *dpred, const float *pred, const float *target,
                       int B, int C, int H, int W, float scale);

/* Write a weights file of the architecture meta describes ("arch" and the
 * optional keys above; meta is saved with it) with freshly initialised
 * weights drawn from seed: torchvision's init for convnext-s, He-normal
 * convs and all-ones heads for the VGG-style nets. */
int perceptual_create(const char *path, const struct st *meta, uint64_t seed);

/* ---- training the default network (perc_train.c) ---------------------- */

struct perc_train_cfg {
    int batch;          /* images per update */
    double lr;          /* peak; linear warmup, cosine to lr/100 */
    double wd;          /* AdamW weight decay */
    int warmup;
    const char *cfg;    /* layers (PERC_DEFAULT_CFG) */
    float slope;        /* activation negative slope */
    const char *test;   /* labelled stream to report accuracy on, or NULL */
    FILE *log;          /* progress lines, or NULL */
};

/* Defaults: batches of 64 images, lr 2e-3, wd 5e-4, warmup 100, the
 * default network, no test set, no log. */
void perc_train_cfg_init(struct perc_train_cfg *c);

/* Train the default network as a classifier for `steps` AdamW updates on a
 * labelled image stream (fields image F32 [B,C,H,W] in [0,1], label I32
 * [B]) and save it to out_path (atomically) as a "tokpipe-percep" weights
 * file. seed draws the init and the sample order. The metadata records the
 * training (steps, batch, lr, seed, final train loss and accuracy, test
 * accuracy when c->test is set). c may be NULL (defaults).
 * The data stream must have a seek table (a file written by img2patch or
 * tz); samples are drawn by a seeded permutation of records and of samples
 * within each record. */
int perceptual_train(const char *data_tz, const char *out_path, int steps, uint64_t seed,
                     const struct perc_train_cfg *c);

/* Classification accuracy of a tokpipe-percep file on a labelled stream;
 * *n gets the number of samples. */
int perceptual_accuracy(const char *weights, const char *data_tz, double *acc, long *n);

#endif
