/* metrics.c - PSNR and SSIM (see metrics.h). Per-image sums in double;
 * parallel over images, each thread owning its slots. */
#include "metrics.h"
#include "err.h"

#include <math.h>
#include <stdlib.h>

static inline double clamp01(float x) { return x < 0 ? 0 : x > 1 ? 1 : (double)x; }

double metric_psnr(const float *pred, const float *target, int B, int C, int H, int W)
{
    size_t per = (size_t)C * H * W;
    double *v = tp_malloc((size_t)B * sizeof(double));
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        double se = 0;
        for (size_t i = 0; i < per; i++) {
            double d = clamp01(pred[b * per + i]) - target[b * per + i];
            se += d * d;
        }
        double mse = se / (double)per;
        v[b] = mse > 1e-10 ? 10 * log10(1 / mse) : 100;
    }
    double s = 0;
    for (int b = 0; b < B; b++) s += v[b];
    free(v);
    return s / B;
}

/* SSIM of one channel plane with a separable Gaussian window of size k. */
static double ssim_plane(const float *x, const float *y, int H, int W, int k, const double *g)
{
    const double C1 = 0.01 * 0.01, C2 = 0.03 * 0.03;
    int oh = H - k + 1, ow = W - k + 1;
    double total = 0;
    for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++) {
            double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
            for (int u = 0; u < k; u++)
                for (int v = 0; v < k; v++) {
                    double w = g[u] * g[v];
                    double a = clamp01(x[(i + u) * W + j + v]), b = y[(i + u) * W + j + v];
                    mx += w * a, my += w * b;
                    sxx += w * a * a, syy += w * b * b, sxy += w * a * b;
                }
            double vx = sxx - mx * mx, vy = syy - my * my, cxy = sxy - mx * my;
            total += ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
        }
    return total / ((double)oh * ow);
}

double metric_ssim(const float *pred, const float *target, int B, int C, int H, int W)
{
    int k = 11;
    if (H < k) k = H;
    if (W < k) k = W;
    double g[11], gs = 0;
    for (int i = 0; i < k; i++) {
        double d = i - (k - 1) / 2.0;
        g[i] = exp(-d * d / (2 * 1.5 * 1.5));
        gs += g[i];
    }
    for (int i = 0; i < k; i++) g[i] /= gs;
    size_t plane = (size_t)H * W;
    double *v = tp_malloc((size_t)B * sizeof(double));
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int c = 0; c < C; c++)
            s += ssim_plane(pred + ((size_t)b * C + c) * plane, target + ((size_t)b * C + c) * plane, H, W, k, g);
        v[b] = s / C;
    }
    double s = 0;
    for (int b = 0; b < B; b++) s += v[b];
    free(v);
    return s / B;
}
