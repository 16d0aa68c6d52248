/* groupnorm.c - GroupNorm forward/backward (see groupnorm.h). */
#include "groupnorm.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "chunks.h"
#include "clones.h"
#include "err.h"
#include "lanesum.h"

TP_CLONES void groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int B, int C,
                       int HW, int G, float eps)
{
    TP_ASSERT(B > 0 && C > 0 && HW > 0 && G > 0 && C % G == 0);
    const int Cg = C / G;
    const size_t n = (size_t)Cg * HW;
#pragma omp parallel for collapse(2) if ((size_t)B * C * HW > PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            const size_t off = ((size_t)b * C + (size_t)g * Cg) * HW;
            const float *x = inp + off;
            const double m = lanesum(x, n) / (double)n;
            const double v = lanesum_sqdev(x, n, m); /* two passes: no cancellation when |mean| >> std */
            const float r = (float)(1.0 / sqrt(v / (double)n + (double)eps));
            mean[b * G + g] = (float)m;
            rstd[b * G + g] = r;
            for (int c = 0; c < Cg; c++) {
                const int ch = g * Cg + c;
                const float w = weight ? weight[ch] : 1.0f, bi = bias ? bias[ch] : 0.0f;
                const float *xc = x + (size_t)c * HW;
                float *o = out + off + (size_t)c * HW;
#pragma omp simd
                for (int i = 0; i < HW; i++) o[i] = ((float)(xc[i] - m) * r) * w + bi;
            }
        }
}

/* One task per (image, group): a pass over its dout and inp gives each
 * channel's sums (dout, dout * xhat), which are both the parameters'
 * gradients of that image and, weighted by the channel's weight, the
 * group's mean terms; the pass writing dinp follows while the group is in
 * cache. The parameters' gradients are then summed over the images in
 * order: the same bits at any thread count. (The sums had been a pass of
 * their own over the whole batch.) */
TP_CLONES void groupnorm_backward(float *dinp, float *dweight, float *dbias,
                        const float *dout, const float *inp,
                        const float *weight, const float *mean,
                        const float *rstd, int B, int C, int HW, int G)
{
    TP_ASSERT(B > 0 && C > 0 && HW > 0 && G > 0 && C % G == 0);
    const int Cg = C / G;
    const size_t n = (size_t)Cg * HW, work = (size_t)B * C * HW;
    const int params = dweight || dbias;
    if (!params && !dinp) return;
    double *sums = params ? tp_malloc((size_t)B * C * 2 * sizeof(double)) : NULL; /* [B][C][db, dw] */
    /* dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),
     * dxhat = dout * weight, means over the group */
#pragma omp parallel for collapse(2) if (work > PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            const size_t off = ((size_t)b * C + (size_t)g * Cg) * HW;
            const float m = mean[b * G + g], r = rstd[b * G + g];
            double s1 = 0, s2 = 0;
            for (int c = 0; c < Cg; c++) { /* dxhat = d * w: w comes out of both sums */
                const int ch = g * Cg + c;
                const double w = weight ? weight[ch] : 1.0f;
                double sd = 0, sdx = 0;
                lanesum_g_gxhat(dout + off + (size_t)c * HW, NULL, inp + off + (size_t)c * HW, (size_t)HW, m, r,
                                &sd, &sdx);
                if (sums) {
                    double *s = sums + ((size_t)b * C + ch) * 2;
                    s[0] = sd, s[1] = sdx;
                }
                s1 += w * sd;
                s2 += w * sdx;
            }
            if (!dinp) continue;
            const float a = (float)(s1 / (double)n), bb = (float)(s2 / (double)n);
            for (int c = 0; c < Cg; c++) {
                const float w = weight ? weight[g * Cg + c] : 1.0f;
                const float *x = inp + off + (size_t)c * HW, *d = dout + off + (size_t)c * HW;
                float *dx = dinp + off + (size_t)c * HW;
#pragma omp simd
                for (int i = 0; i < HW; i++)
                    dx[i] += r * (d[i] * w - a - (x[i] - m) * r * bb);
            }
        }
    if (!params) return;
    for (int c = 0; c < C; c++) {
        double sb = 0, sw = 0;
        for (int b = 0; b < B; b++) {
            const double *s = sums + ((size_t)b * C + c) * 2;
            sb += s[0], sw += s[1];
        }
        if (dweight) dweight[c] += (float)sw;
        if (dbias) dbias[c] += (float)sb;
    }
    free(sums);
}
