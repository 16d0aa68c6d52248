/* metrics.h - image quality metrics over [B,C,H,W] images in [0,1].
 *
 * Predictions are clamped to [0,1] first (as upstream clamps decoded
 * images before evaluating). Both return the mean over the B images.
 *   PSNR: 10 log10(1 / MSE) per image (MSE over C*H*W); an exact image
 *         counts as 100 dB rather than infinity.
 *   SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5),
 *         K1 = 0.01, K2 = 0.03, data range 1, over the valid positions
 *         (no padding), averaged over positions and channels; images
 *         smaller than the window use a window of their size.
 */
#ifndef TP_METRICS_H
#define TP_METRICS_H

double metric_psnr(const float *pred, const float *target, int B, int C, int H, int W);
double metric_ssim(const float *pred, const float *target, int B, int C, int H, int W);

#endif
