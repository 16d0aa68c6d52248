/* objective.h - a weighted sum of loss terms over one record, with the
 * gradient of the prediction: what the `loss` tool computes per record.
 *
 * Terms (loss.h does the arithmetic):
 *   mse, l1   pred (default field recon) against target (default image),
 *             same shape, F32
 *   ce        pred logits F32 [...,V] against target ids I32 [...] (default
 *             field target), label smoothing, per-position weights from the
 *             mask field U8 (1 masked: weight 1; 0: unmasked_weight), as
 *             upstream's MLMLoss; accuracy on masked positions
 *   perceptual  distance of pred and target images in a frozen network's
 *             features (perceptual.h; needs o->perc)
 *   gan       the adversarial term of upstream's stage-2 loss (gan.h): the
 *             critic's -mean D(pred) times the term's weight, from the
 *             gan's start step; then, in the same call, the critic's own
 *             hinge + LeCam step on target (real) and pred (fake). Needs
 *             o->gan; the step is the record's "step" metadata.
 *   psnr, ssim  metrics (lib/metrics.h), only with eval_only: reported, not
 *             part of the total, no gradient
 *   acc       metric (eval_only): argmax of pred logits F32 [...,V] (default
 *             field logits) against target ids I32 [...] (default field
 *             label), first maximum wins; counts add up in acc_right and
 *             acc_seen over the records
 *   fd        metric (eval_only): pred features F32 [B,D] (default field
 *             features) added to o->fd (fd.h; not owned), whose Frechet
 *             distance the caller computes at the end; its per-record
 *             value is NaN
 * Each term reads o->pred / o->target if set, else its own default fields,
 * so one evaluation pass can report acc (logits) and fd (features).
 * The total is sum_k weight_k * term_k; the gradient record holds
 * "PRED.grad" = d total / d pred, and the record's step/seed metadata.
 */
#ifndef TP_OBJECTIVE_H
#define TP_OBJECTIVE_H

#include "fd.h"
#include "gan.h"
#include "perceptual.h"
#include "st.h"

#define OBJ_MAX_TERMS 8

enum obj_kind { OBJ_MSE, OBJ_L1, OBJ_CE, OBJ_PSNR, OBJ_SSIM, OBJ_GAN, OBJ_PERCEPTUAL, OBJ_ACC, OBJ_FD };

struct obj_term {
    enum obj_kind kind;
    double weight;
    double value; /* of the last record, unweighted */
};

struct objective {
    int n;
    struct obj_term t[OBJ_MAX_TERMS];
    const char *pred, *target, *mask; /* NULL: the defaults of the terms */
    float smoothing, unmasked_weight;
    int eval_only;  /* metrics allowed; the gradient is not used */
    struct gan *gan;                  /* for the gan term (not owned) */
    struct perceptual *perc;          /* for the perceptual term (not owned) */
    struct fd_stats *fd;              /* for the fd term (not owned) */
    int64_t acc_right, acc_seen;      /* the acc term, summed over records */
    /* of the last record */
    double total, acc;
    struct gan_d_report drep;         /* the critic's step */
};

void objective_init(struct objective *o);
/* Add a term from "KIND" or "KIND:WEIGHT"; -1 and a message if malformed. */
int objective_add(struct objective *o, const char *spec);
/* The name of term k ("mse", "ce", ...). */
const char *objective_term_name(const struct objective *o, int k);
/* Evaluate on rec; put the gradient field into grad. */
int objective_eval(struct objective *o, const struct st *rec, struct st *grad);

#endif
