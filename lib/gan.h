/* gan.h - the adversarial part of TiTok's stage-2 objective (upstream
 * ReconstructionLoss_Stage2 in bytedance/1d-tokenizer modeling/modules/
 * losses.py, and the discriminator step of utils/train_utils.py) around the
 * NLayerDiscriminator of disc.h, with the critic's own AdamW.
 *
 * Dimensions: B images, C channels, H,W size; images [B,C,H,W] F32 in
 * [0,1]; n = B*P*P logits per batch (disc.h). "step" is the global training
 * step (upstream's global_step, counted from 0); the adversarial part is on
 * when step >= start_step (should_discriminator_be_trained).
 *
 * Generator side, for the reconstructions x^ (upstream _forward_generator):
 *   L_G = g_weight * d_factor * (-mean D(x^))
 *   computed only when g_weight and d_factor are both > 0 (upstream's guard);
 *   the critic's parameter gradients are not touched (upstream sets
 *   requires_grad False on them).
 * Discriminator side, after the generator's step of the same global step
 * (upstream _forward_discriminator, then clip and AdamW):
 *   mr = mean D(x), mf = mean D(x^)   (x^ detached)
 *   hinge = 0.5 (mean relu(1 - D(x)) + mean relu(1 + D(x^)))
 *   lecam = lecam_weight * (relu(mr - ema_fake)^2 + relu(ema_real - mf)^2)
 *           with the EMAs of the previous steps (zero at first)
 *   L_D = d_factor * hinge + lecam
 *   then the critic's gradients are clipped and AdamW-updated (optim.h,
 *   cfg.d_opt; its schedule counts the critic's own updates, as upstream's
 *   discriminator LR scheduler), and, when lecam_weight > 0, the EMAs move:
 *   ema = ema * decay + m * (1 - decay), in float32 as torch's buffers.
 * The real and fake batches go through the critic as one batch of 2B
 * (GroupNorm is per image, so this is upstream's two calls).
 *
 * Files (both written atomically, DESIGN section 3):
 *   weights  disc.h's, with "step" = critic updates done
 *   state    AdamW's NAME.exp_avg / NAME.exp_avg_sq with "step" and
 *            "optimizer" (optim.h), plus the EMA buffers under upstream's
 *            names ema_real_logits_mean, ema_fake_logits_mean (F32 [1]),
 *            and "last_step": the last global step whose critic update the
 *            state holds (absent: none).
 * gan_open checks that weights and state record the same number of
 * updates; gan_discriminator_step refuses a global step at or before
 * last_step, so a resume never applies an update twice. Saving after any
 * step and reopening continues bit-identically to staying in memory.
 */
#ifndef TP_GAN_H
#define TP_GAN_H

#include <stdint.h>

#include "disc.h" /* disc_init_file creates the critic's weights */
#include "optim.h"
#include "params.h"
#include "st.h"

struct gan_cfg {
    double g_weight;      /* upstream discriminator_weight */
    double d_factor;      /* upstream discriminator_factor */
    double lecam_weight;  /* upstream lecam_regularization_weight; 0: off */
    double lecam_decay;   /* upstream lecam_ema_decay */
    long start_step;      /* upstream discriminator_start */
    struct optim_cfg d_opt;
};

/* Upstream's stage-2 values: g_weight 0.01, d_factor 1.0, lecam 0.001 with
 * decay 0.999, start 20000; the critic's AdamW: lr 1e-4, betas (0.9,
 * 0.999), eps 1e-8, wd 1e-4 (not on biases, norms, 1-D tensors), cosine
 * to 1e-5 after 5000 warmup steps over 500000 - 20000 updates, clip 1.0. */
void gan_cfg_init(struct gan_cfg *c);

struct gan;

/* What one discriminator step did (all zero before start_step). */
struct gan_d_report {
    double loss;                      /* L_D, the return value */
    double hinge;                     /* unweighted hinge term */
    double lecam;                     /* weighted LeCam term */
    double logits_real, logits_fake;  /* mr, mf */
    double ema_real, ema_fake;        /* after this step's update */
    struct optim_report opt;          /* the critic's update */
};

/* Load the critic from disc_weights and its state from disc_state (NULL or
 * a file that does not exist: a fresh optimizer and zero EMAs). -1 and a
 * message naming the file on any mismatch. */
int gan_open(struct gan **g, const char *disc_weights, const char *disc_state, const struct gan_cfg *c);
void gan_free(struct gan *g);

/* L_G for fake [B,C,H,W]; when dfake is not NULL, dL_G/dfake is added into
 * it. Before start_step (or with a zero weight): 0, nothing added. NAN and
 * tp_err() on a channel count the critic does not take. */
double gan_generator_loss(struct gan *g, float *dfake, const float *fake, int B, int C, int H, int W, long step);

/* The critic's step on real and fake [B,C,H,W] (see above); r may be NULL.
 * Before start_step: 0, nothing changes. NAN and tp_err() on a bad shape,
 * a step already applied, or a failed update (then nothing changed). */
double gan_discriminator_step(struct gan *g, const float *real, const float *fake, int B, int C, int H, int W,
                              long step, struct gan_d_report *r);

/* Write weights and (if the path is not NULL) state atomically. */
int gan_save(struct gan *g, const char *disc_weights, const char *disc_state);

/* The critic's parameters (values and the last step's gradients). */
const struct params *gan_params(const struct gan *g);

/* The EMAs of the mean real and fake logits. */
void gan_ema(const struct gan *g, float *ema_real, float *ema_fake);

#endif
