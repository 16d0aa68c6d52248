/* groupnorm.h - GroupNorm (PyTorch nn.GroupNorm, affine), forward/backward.
 *
 * Dimensions: B batch, C channels, HW = H*W positions per channel, G groups
 * (C % G == 0); a group is C/G consecutive channels of one image, so it
 * normalises n = (C/G)*HW values.
 *   inp, out [B,C,HW]; weight, bias [C]; mean, rstd [B,G] (saved).
 *   out = (inp - mean) * rstd * weight[c] + bias[c],
 *   rstd = 1/sqrt(var + eps), var the biased variance (as PyTorch).
 * Upstream: MaskGIT-VQGAN uses G=32, eps=1e-6; the discriminator's
 * nn.GroupNorm(32, C) keeps PyTorch's default eps=1e-5.
 *
 * weight and bias may be NULL (affine=False: 1 and 0).
 * Forward writes out, mean, rstd (out may not alias inp). Backward
 * accumulates (+=) into dinp, dweight, dbias; any may be NULL. Statistics
 * are summed in double. Parallel over (b, g) for out/dinp and over c for
 * dweight/dbias: each thread owns its writes.
 */
#ifndef TP_GROUPNORM_H
#define TP_GROUPNORM_H

void groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int B, int C,
                       int HW, int G, float eps);
void groupnorm_backward(float *dinp, float *dweight, float *dbias,
                        const float *dout, const float *inp,
                        const float *weight, const float *mean,
                        const float *rstd, int B, int C, int HW, int G);

#endif
