/* pool.h - resampling layers of the conv networks, forward and backward.
 *
 * Dimensions: B batch, C channels, H,W input size, OH,OW output size. All
 * tensors NCHW, contiguous F32; one (b, c) pair is a "plane". Backward
 * accumulates (+=) into dinp.
 *
 * avgpool2:  2x2 average, stride 2, no padding: OH = H/2, OW = W/2 (floor).
 *            With an odd H (or W) the last row (column) is not read and gets
 *            no gradient: that is F.avg_pool2d(x, 2, 2) and flax avg_pool
 *            with VALID padding, the two upstreams' (MaskGIT-VQGAN encoder).
 * upsample2: nearest x2 (F.interpolate scale 2 "nearest"): OH = 2H, OW = 2W.
 * adaptive_maxpool: nn.AdaptiveMaxPool2d((OH, OW)). Output row i covers input
 *            rows [floor(i*H/OH), ceil((i+1)*H/OH)), columns alike; bins may
 *            overlap or repeat (OH > H). The first maximum in row-major order
 *            wins, a NaN wins (PyTorch's CPU rule). idx [B,C,OH,OW] saves the
 *            winner's index h*W + w within its plane for backward.
 * blur:      upstream's BlurBlock (discriminator): depthwise conv with the
 *            4x4 filter k = [1,3,3,1] outer [1,3,3,1] / 64, stride 2, TF-SAME
 *            padding for k=4, s=2: an even side gets 1 pixel each side, an
 *            odd side 1 before and 2 after. OH = ceil(H/2), OW = ceil(W/2).
 */
#ifndef TP_POOL_H
#define TP_POOL_H

#include <stdint.h>

#include "conv2d.h"

void avgpool2_forward(float *out, const float *inp, int B, int C, int H, int W);
void avgpool2_backward(float *dinp, const float *dout, int B, int C, int H, int W);

void upsample2_forward(float *out, const float *inp, int B, int C, int H, int W);
void upsample2_backward(float *dinp, const float *dout, int B, int C, int H, int W);

void adaptive_maxpool_forward(float *out, int32_t *idx, const float *inp, int B,
                              int C, int H, int W, int OH, int OW);
void adaptive_maxpool_backward(float *dinp, const float *dout, const int32_t *idx,
                               int B, int C, int H, int W, int OH, int OW);

/* The normalised 4x4 filter (also upstream's state_dict buffer "kernel",
 * shape [1,1,4,4], which a converted checkpoint carries). */
void blur_kernel(float k[16]);
/* The depthwise conv2d the blur is; its OH, OW are the output size. */
struct conv2d_shape blur_shape(int B, int C, int H, int W);
void blur_forward(float *out, const float *inp, int B, int C, int H, int W);
void blur_backward(float *dinp, const float *dout, int B, int C, int H, int W);

#endif
