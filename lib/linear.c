/* linear.c - fully connected layer over sgemm (see linear.h). */
#include "linear.h"

#include <string.h>

#include "blas.h"

#define COLS 64 /* output features per task of the bias-gradient sum */

void linear_forward(float *out, const float *inp, const float *weight,
                    const float *bias, int BT, int C, int OC)
{
    /* Start from the bias rows so sgemm adds onto them (beta = 1). */
    if (bias) {
#pragma omp parallel for if ((long)BT * OC > 65536) schedule(static)
        for (int i = 0; i < BT; i++) memcpy(out + (size_t)i * OC, bias, sizeof(float) * OC);
    }
    tp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BT, OC, C, 1.0f, inp, C,
             weight, C, bias ? 1.0f : 0.0f, out, OC);
}

/* dbias[o] += sum over rows of dout[:,o]. Each task owns COLS features and
 * walks the rows in order, so the sum order never depends on threads. */
static void bias_backward(float *dbias, const float *dout, int BT, int OC)
{
    int ntask = (OC + COLS - 1) / COLS;
#pragma omp parallel for if ((long)BT * OC > 65536) schedule(static)
    for (int task = 0; task < ntask; task++) {
        int o0 = task * COLS, n = OC - o0 < COLS ? OC - o0 : COLS;
        float acc[COLS] = {0};
        for (int i = 0; i < BT; i++) {
            const float *row = dout + (size_t)i * OC + o0;
#pragma omp simd
            for (int j = 0; j < n; j++) acc[j] += row[j];
        }
        for (int j = 0; j < n; j++) dbias[o0 + j] += acc[j];
    }
}

void linear_backward(float *dinp, float *dweight, float *dbias,
                     const float *dout, const float *inp, const float *weight,
                     int BT, int C, int OC)
{
    if (dinp) /* dinp[BT,C] += dout[BT,OC] @ weight[OC,C] */
        tp_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BT, C, OC, 1.0f, dout, OC,
                 weight, C, 1.0f, dinp, C);
    if (dweight) /* dweight[OC,C] += dout^T @ inp */
        tp_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, BT, 1.0f, dout, OC,
                 inp, C, 1.0f, dweight, C);
    if (dbias) bias_backward(dbias, dout, BT, OC);
}
