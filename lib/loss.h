/* loss.h - training losses: the value and the gradient in one call.
 *
 * Every function returns the loss as a double and, when its gradient
 * pointer is not NULL, ADDS scale * dL/dpred into it (it accumulates like
 * every backward in lib/, so a weighted sum of losses on one prediction is
 * two calls with their weights as scale; zero the buffer once per step).
 * Sums run in a fixed order, so values and gradients are bit-identical run
 * to run whatever the thread count.
 *
 * Dimensions: N positions (rows), V classes, n elements.
 * Layouts: logits [N,V] row-major F32 (a [B,T,V] stream field is N = B*T),
 * targets [N] I32, weights [N] F32.
 */
#ifndef TP_LOSS_H
#define TP_LOSS_H

#include <stddef.h>
#include <stdint.h>

/* Cross-entropy options. Zeroed = torch's nn.CrossEntropyLoss() (mean over
 * the N positions, no smoothing), accuracy over all positions. */
struct ce_opts {
    /* torch's label_smoothing: the target distribution is (1-eps) on the
     * true class plus eps/V on EVERY class, the true one included. */
    float smoothing;
    /* [N] per-position weights or NULL (all 1). The loss is
     * sum_i w_i l_i / sum_i w_i: upstream MLMLoss with 1 on masked and
     * loss_weight_unmasked_token (0.1) on unmasked positions. A zero total
     * weight gives loss 0 and no gradient. */
    const float *weight;
    /* 1: positions of weight 0 are ignored altogether: their target is not
     * read (it may be anything, e.g. -100) and they count in no statistic. */
    int skip_zero;
    /* [N] positions counted in the accuracy (1 = count), or NULL: every
     * position of nonzero weight (all when weight is NULL). Upstream counts
     * the masked tokens only: pass the mask. */
    const uint8_t *acc_mask;
    /* Accuracy is averaged within each group of acc_group consecutive rows
     * (a sample's tokens), then over the groups that count any position:
     * upstream's per-sample mean. 0: one group of all N rows. */
    int64_t acc_group;
};

struct ce_stats {
    double loss;     /* the returned value */
    double wsum;     /* the normaliser: sum of weights (N without weights) */
    double acc;      /* argmax == target (first max wins, like torch.argmax) */
    int64_t counted; /* positions counted in acc */
};

/* Cross-entropy over logits [N,V] with integer targets [N]. A stable
 * log-softmax (max subtracted, sum of exp in double) per row:
 *   l_i = logsumexp(x_i) - (1-eps) x_i[t_i] - (eps/V) sum_c x_i[c]
 *   dL/dx_i[c] = w_i / wsum * (softmax(x_i)[c] - (eps/V) - (1-eps)[c == t_i])
 * st may be NULL. A target outside [0,V) (at a position that is not
 * skipped) is an input error: nothing is written, the return is NAN and
 * tp_err() names the position and the value. A NAN return always comes
 * with a message (NaN or Inf logits give one too). */
double loss_ce(float *dlogits, struct ce_stats *st, const float *logits,
               const int32_t *targets, int64_t N, int V,
               const struct ce_opts *o, float scale);

/* mean((pred - target)^2); gradient 2 (pred - target) / n. */
double loss_mse(float *dpred, const float *pred, const float *target, size_t n,
                float scale);

/* mean|pred - target|; gradient sign(pred - target) / n (0 where equal, as
 * torch's l1_loss). */
double loss_l1(float *dpred, const float *pred, const float *target, size_t n,
               float scale);

/* Discriminator hinge loss (upstream hinge_d_loss):
 *   0.5 * (mean relu(1 - real) + mean relu(1 + fake))
 * over nr real and nf fake logits; gradients into dreal and dfake (either
 * may be NULL). Where the relu input is exactly 0 the gradient is 0, as
 * torch's relu. */
double loss_hinge_d(float *dreal, float *dfake, const float *real, size_t nr,
                    const float *fake, size_t nf, float scale);

/* Generator adversarial loss: -mean(fake); gradient -1/n. */
double loss_hinge_g(float *dfake, const float *fake, size_t n, float scale);

#endif
