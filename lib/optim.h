/* optim.h - optimizers over named tensors: AdamW and SGD with momentum,
 * learning-rate schedules, global-norm clipping, gradient accumulation, EMA.
 *
 * Weights, gradients and optimizer state are each a struct st (st.h) keyed
 * by the upstream state_dict names; the `optim` tool and the training tools
 * (stream mode) call the same functions, so both give the same bits.
 *
 *   weights  NAME                 F32, any shape; non-F32 tensors are buffers
 *                                 and never updated
 *   grads    NAME                 same name and shape as the weight
 *   state    NAME.exp_avg, NAME.exp_avg_sq     (AdamW)
 *            NAME.momentum_buffer              (SGD)
 *            __metadata__ "step" (updates done), "optimizer" ("adamw"|"sgd")
 *   weights and EMA get "step" in their metadata too, so a resume can check
 *   that weights and state come from the same update.
 *
 * Semantics (torch 1.13, single-tensor path, float32 arithmetic in torch's
 * operation order; scalars in double):
 *   AdamW (torch.optim.AdamW, amsgrad off), t = step + 1:
 *     p *= 1 - lr wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *     p += -(lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *   SGD (torch.optim.SGD, dampening 0, no nesterov): d = g + wd p (L2,
 *     coupled, as torch); buf = momentum buf + d (buf starts at 0, so the
 *     first step gives buf = d as torch's clone); p += -lr buf.
 *   Weight decay applies only to tensors of ndim >= 2 whose name contains
 *   none of ln, bias, latent_tokens, mask_token, embedding, norm, gamma,
 *   embed (substrings, exactly upstream's create_optimizer exclusion).
 *   Frozen tensors (cfg.freeze) are not updated; their gradients, if any,
 *   are ignored and their state is left as it is.
 *   Learning rate for the update after `step` updates: see optim_lr().
 *   Clipping (torch.nn.utils.clip_grad_norm_): norm = ||all used grads||_2,
 *     grads *= clip / (norm + 1e-6) when that is below 1.
 *
 * Sums (norms) run over fixed blocks and are then added in block order, so
 * every result is bit-identical whatever the thread count; elementwise
 * updates are parallel over elements.
 */
#ifndef TP_OPTIM_H
#define TP_OPTIM_H

#include "st.h"

enum optim_kind { OPTIM_ADAMW, OPTIM_SGD };
enum optim_schedule { OPTIM_CONSTANT, OPTIM_COSINE };

struct optim_cfg {
    enum optim_kind kind;
    double lr;                 /* base learning rate */
    double beta1, beta2, eps;  /* AdamW */
    double wd;                 /* weight decay */
    double momentum;           /* SGD */
    enum optim_schedule schedule;
    long warmup, total;        /* schedule steps */
    double end_lr;             /* cosine: the rate at step `total` */
    double clip;               /* max global grad norm; <= 0: no clipping */
    /* POSIX extended regex, searched anywhere in each tensor name (anchor
     * it with ^...$ for whole names); matching tensors are frozen. NULL or
     * "": nothing frozen. */
    const char *freeze;
};

/* Upstream TiTok stage-1 values: AdamW lr 1e-4, betas (0.9, 0.99), eps
 * 1e-8, wd 1e-4, momentum 0.9 (SGD), constant schedule without warmup,
 * end_lr 1e-5, no clipping, nothing frozen. */
void optim_cfg_init(struct optim_cfg *c);

/* Learning rate of the update that follows `step` completed updates, as
 * upstream's LambdaLR (stepped after each optimizer.step()), s = step:
 *   s < warmup: lr * s / max(1, warmup)        (so the first update has lr 0
 *                                               when there is a warmup)
 *   constant:   lr
 *   cosine:     p = (s - warmup) / max(1, total - warmup),
 *               end_lr + (lr - end_lr) * max(0, 0.5 (1 + cos(pi p)))
 * p is clamped to 1, so the rate stays at end_lr after `total` (upstream
 * stops there; its formula would rise again). */
double optim_lr(const struct optim_cfg *c, long step);

/* 1 if weight decay applies to this tensor (see above). */
int optim_decays(const char *name, int ndim);

struct optim;

/* Check and compile cfg (the freeze regex, ranges); NULL and tp_err(). */
struct optim *optim_new(const struct optim_cfg *c);
void optim_free(struct optim *o);
const struct optim_cfg *optim_cfg(const struct optim *o);
int optim_frozen(const struct optim *o, const char *name);

/* Gradient accumulation: acc += g (same names, dtypes and shapes), then
 * optim_grads_average(acc, n) divides by the number of sets. */
int optim_grads_accumulate(struct st *acc, const struct st *g);
void optim_grads_average(struct st *acc, int n);

/* -1 naming the tensor and element if an F32 tensor holds NaN or Inf. */
int optim_check_finite(const struct st *g);

/* Gradients against weights: every gradient names an F32 weight of the
 * same shape, every trainable weight has a gradient, all are finite. */
int optim_check_grads(const struct optim *o, const struct st *w, const struct st *g);

/* State against weights and cfg: the same optimizer kind, a valid step,
 * state tensors shaped like their weights. An empty state is valid. */
int optim_check_state(const struct optim *o, const struct st *w, const struct st *state);

struct optim_report {
    long step;           /* updates done, this one included */
    double lr;           /* rate used by this update */
    double grad_norm;    /* global norm of the used gradients, before clipping */
    double clip_coef;    /* factor applied to the gradients (1: not clipped) */
    double update_norm;  /* ||w_after - w_before|| over the updated tensors */
};

/* One update: optim_check_grads and optim_check_state, then clip g (in
 * place), update w and state (state tensors are created, zeroed, as
 * needed). Nothing is modified when a check fails (-1). */
int optim_step(struct optim *o, struct st *w, struct st *g, struct st *state,
               struct optim_report *r);

/* EMA decay after `step` updates (upstream EMAModel.get_decay, warm-up on):
 * s = step - 1; 0 if s <= 0, else min(max_decay, (1 + s) / (10 + s)). */
double optim_ema_decay(long step, double max_decay);

/* ema -= (1 - decay) (ema - w) for trainable tensors, ema = w for frozen
 * ones; a tensor missing from ema is copied from w. step is the number of
 * updates done (optim_report.step); it goes to ema's metadata. */
int optim_ema_update(const struct optim *o, struct st *ema, const struct st *w,
                     long step, double max_decay);

#endif
