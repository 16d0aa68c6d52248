/* layernorm.c - layer normalisation, forward and backward (see layernorm.h). */
#include "layernorm.h"

#include <math.h>
#include <stddef.h>

#include "chunks.h"
#include "clones.h"
#include "lanesum.h"

#define COLS 64        /* features per task of the parameter-gradient sums */

TP_CLONES void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int BT, int C,
                       float eps)
{
#pragma omp parallel for if ((long)BT * C > PAR_MIN) schedule(static)
    for (int r = 0; r < BT; r++) {
        const float *x = inp + (size_t)r * C;
        float *y = out + (size_t)r * C;
        /* two passes (mean, then centred squares): no cancellation */
        float m = (float)(lanesum(x, (size_t)C) / C);
        double v = lanesum_sqdev(x, (size_t)C, m);
        float rs = (float)(1.0 / sqrt(v / C + eps));
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * rs * weight[c] + bias[c];
        mean[r] = m;
        rstd[r] = rs;
    }
}

/* dinp: per row, with n = normalised input and g = dout * weight,
 *   dinp += rstd * (g - mean(g) - n * mean(g * n)). Each row is one task. */
TP_CLONES static void input_backward(float *dinp, const float *dout, const float *inp,
                           const float *weight, const float *mean,
                           const float *rstd, int BT, int C)
{
#pragma omp parallel for if ((long)BT * C > PAR_MIN) schedule(static)
    for (int r = 0; r < BT; r++) {
        const float *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;
        float *dx = dinp + (size_t)r * C;
        float m = mean[r], rs = rstd[r];
        double sg = 0, sgn = 0;
        lanesum_g_gxhat(dy, weight, x, (size_t)C, m, rs, &sg, &sgn);
        float mg = (float)(sg / C), mgn = (float)(sgn / C);
#pragma omp simd
        for (int c = 0; c < C; c++) {
            float n = (x[c] - m) * rs;
            dx[c] += rs * (dy[c] * weight[c] - mg - n * mgn);
        }
    }
}

/* dweight[c] += sum_r dout[r,c] * n[r,c]; dbias[c] += sum_r dout[r,c].
 * Each task owns COLS features and walks the rows in order. */
static void param_backward(float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *mean,
                           const float *rstd, int BT, int C)
{
    int ntask = (C + COLS - 1) / COLS;
#pragma omp parallel for if ((long)BT * C > PAR_MIN) schedule(static)
    for (int task = 0; task < ntask; task++) {
        int c0 = task * COLS, n = C - c0 < COLS ? C - c0 : COLS;
        float aw[COLS] = {0}, ab[COLS] = {0};
        for (int r = 0; r < BT; r++) {
            const float *x = inp + (size_t)r * C + c0, *dy = dout + (size_t)r * C + c0;
            float m = mean[r], rs = rstd[r];
#pragma omp simd
            for (int j = 0; j < n; j++) {
                aw[j] += dy[j] * ((x[j] - m) * rs);
                ab[j] += dy[j];
            }
        }
        for (int j = 0; j < n; j++) {
            if (dweight) dweight[c0 + j] += aw[j];
            if (dbias) dbias[c0 + j] += ab[j];
        }
    }
}

void layernorm_backward(float *dinp, float *dweight, float *dbias,
                        const float *dout, const float *inp,
                        const float *weight, const float *mean,
                        const float *rstd, int BT, int C)
{
    if (dinp) input_backward(dinp, dout, inp, weight, mean, rstd, BT, C);
    if (dweight || dbias) param_backward(dweight, dbias, dout, inp, mean, rstd, BT, C);
}
