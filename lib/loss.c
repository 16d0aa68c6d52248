/* loss.c - training losses (see loss.h).
 *
 * Row and element loops are parallel over their output index; loss sums are
 * taken afterwards in index order in double, so the result does not depend
 * on the thread count. Probabilities and the log-sum-exp come from
 * softmax.h's stable row softmax.
 */
#include "loss.h"
#include "chunks.h"
#include "err.h"
#include "softmax.h"

#include <math.h>
#include <string.h>

/* First index of the row maximum (torch.argmax) and the row sum. */
static int row_argmax_sum(const float *x, int V, double *sum)
{
    int am = 0;
    double sx = 0;
    for (int c = 0; c < V; c++) {
        if (x[c] > x[am]) am = c;
        sx += x[c];
    }
    *sum = sx;
    return am;
}

static int ce_counts(const struct ce_opts *o, int64_t i)
{
    if (o->weight && o->skip_zero && o->weight[i] == 0.0f) return 0;
    return 1;
}

static int ce_check_targets(const int32_t *targets, int64_t N, int V,
                            const struct ce_opts *o)
{
    for (int64_t i = 0; i < N; i++)
        if (ce_counts(o, i) && (targets[i] < 0 || targets[i] >= V))
            return tp_err_set("position %lld: target %d is outside [0,%d)",
                              (long long)i, targets[i], V);
    return 0;
}

/* Mean over groups of the per-group accuracy (see ce_opts.acc_group). */
static void ce_accuracy(struct ce_stats *st, const uint8_t *correct,
                        const uint8_t *counted, int64_t N, int64_t group)
{
    if (group <= 0) group = N > 0 ? N : 1;
    double acc = 0;
    int64_t groups = 0, total = 0;
    for (int64_t g0 = 0; g0 < N; g0 += group) {
        int64_t n = 0, k = 0;
        for (int64_t i = g0; i < g0 + group && i < N; i++)
            if (counted[i]) {
                n++;
                k += correct[i];
            }
        if (n == 0) continue;
        acc += (double)k / (double)n;
        groups++;
        total += n;
    }
    st->acc = groups ? acc / (double)groups : 0.0;
    st->counted = total;
}

double loss_ce(float *dlogits, struct ce_stats *st, const float *logits,
               const int32_t *targets, int64_t N, int V,
               const struct ce_opts *o, float scale)
{
    static const struct ce_opts zero;
    if (!o) o = &zero;
    TP_ASSERT(V > 0 && N >= 0);
    if (ce_check_targets(targets, N, V, o) != 0) return NAN;

    double *rowloss = tp_malloc((size_t)N * sizeof *rowloss);
    uint8_t *correct = tp_malloc((size_t)N), *counted = tp_malloc((size_t)N);
    double wsum = 0;
    for (int64_t i = 0; i < N; i++)
        if (ce_counts(o, i)) wsum += o->weight ? (double)o->weight[i] : 1.0;
    double eps = o->smoothing, off = eps / V;

#pragma omp parallel if (N * (int64_t)V > PAR_MIN)
    {
        float *p = tp_malloc((size_t)V * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t i = 0; i < N; i++) {
            rowloss[i] = 0;
            correct[i] = counted[i] = 0;
            if (!ce_counts(o, i)) continue;
            const float *x = logits + i * V;
            int t = targets[i];
            double sumx;
            correct[i] = row_argmax_sum(x, V, &sumx) == t;
            counted[i] = o->acc_mask ? o->acc_mask[i] != 0
                                     : (!o->weight || o->weight[i] != 0.0f);
            double lse = softmax_row(p, x, V);
            rowloss[i] = lse - (1.0 - eps) * x[t] - off * sumx;
            double w = o->weight ? (double)o->weight[i] : 1.0;
            if (!dlogits || wsum == 0 || w == 0) continue;
            float g = (float)(scale * w / wsum);
            float qoff = (float)off, qon = (float)(off + 1.0 - eps); /* smoothed target */
            float *d = dlogits + i * V;
            for (int c = 0; c < V; c++) d[c] += g * (p[c] - (c == t ? qon : qoff));
        }
        free(p);
    }

    double loss = 0;
    for (int64_t i = 0; i < N; i++)
        loss += (o->weight ? (double)o->weight[i] : 1.0) * rowloss[i];
    loss = wsum != 0 ? loss / wsum : 0.0;
    if (isnan(loss)) tp_err_set("the cross-entropy is NaN: NaN or Inf among the logits");
    if (st) {
        st->loss = loss;
        st->wsum = wsum;
        ce_accuracy(st, correct, counted, N, o->acc_group);
    }
    free(rowloss);
    free(correct);
    free(counted);
    return loss;
}

/* Elementwise losses: f(d) summed over d = pred - target, and g(d) =
 * df/dd written as dpred += s * g(d). */
enum ew_kind { EW_MSE, EW_L1 };

static double ew_loss(enum ew_kind k, float *dpred, const float *pred,
                      const float *target, size_t n, float scale)
{
    if (n == 0) return 0;
    if (dpred) {
        float s = scale / (float)n;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float d = pred[i] - target[i];
            float g = k == EW_MSE ? 2.0f * d : (float)((d > 0) - (d < 0));
            dpred[i] += s * g;
        }
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)pred[i] - (double)target[i];
        sum += k == EW_MSE ? d * d : fabs(d);
    }
    return sum / (double)n;
}

double loss_mse(float *dpred, const float *pred, const float *target, size_t n,
                float scale)
{
    return ew_loss(EW_MSE, dpred, pred, target, n, scale);
}

double loss_l1(float *dpred, const float *pred, const float *target, size_t n,
               float scale)
{
    return ew_loss(EW_L1, dpred, pred, target, n, scale);
}

/* mean relu(1 + sign * x), with gradient s * sign * [1 + sign x > 0] / n. */
static double hinge_term(float *dx, const float *x, size_t n, float sign, float s)
{
    if (n == 0) return 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        float h = 1.0f + sign * x[i];
        if (h > 0) sum += h;
    }
    if (dx) {
        float g = s * sign / (float)n;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++)
            if (1.0f + sign * x[i] > 0) dx[i] += g;
    }
    return sum / (double)n;
}

double loss_hinge_d(float *dreal, float *dfake, const float *real, size_t nr,
                    const float *fake, size_t nf, float scale)
{
    double lr = hinge_term(dreal, real, nr, -1.0f, 0.5f * scale);
    double lf = hinge_term(dfake, fake, nf, 1.0f, 0.5f * scale);
    return 0.5 * (lr + lf);
}

double loss_hinge_g(float *dfake, const float *fake, size_t n, float scale)
{
    if (n == 0) return 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += fake[i];
    if (dfake) {
        float g = -scale / (float)n;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++) dfake[i] += g;
    }
    return -sum / (double)n;
}
