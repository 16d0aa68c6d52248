/* perc_ops.h - the few layers the perceptual networks (perceptual.h) need
 * beyond lib/'s shared ones, forward and backward.
 *
 * Dimensions: B batch, C channels, H,W input size, OH,OW output size,
 * P = B*C planes, HW = H*W positions. Tensors are contiguous F32, NCHW
 * unless said otherwise. Backward accumulates (+=) into dinp.
 *
 * maxpool2:  nn.MaxPool2d(2, 2) (VGG): OH = floor(H/2), OW = floor(W/2);
 *            an odd last row or column is not read. The first maximum of a
 *            window in row-major order wins and a NaN wins (PyTorch's CPU
 *            rule); idx [B,C,OH,OW] keeps the winner's h*W + w in its plane.
 * resize_aa: F.interpolate(mode="bilinear", align_corners=False,
 *            antialias=True) (upstream TiTok resizes to 224 so before its
 *            ConvNeXt): separable, W first then H as torch's CPU kernel,
 *            with torch's triangle-filter weights (support widened by the
 *            scale when shrinking, each output's weights normalised to sum
 *            to 1). An axis whose size does not change is the identity.
 * channels_backward: the adjoint of imgops.h img_channels (1 -> 3 repeats,
 *            3 -> 1 is luma) over a batch.
 */
#ifndef TP_PERC_OPS_H
#define TP_PERC_OPS_H

#include <stddef.h>
#include <stdint.h>

void maxpool2_forward(float *out, int32_t *idx, const float *inp, int B, int C, int H, int W);
void maxpool2_backward(float *dinp, const float *dout, const int32_t *idx, int B, int C,
                       int H, int W);

/* One axis of an antialiased resize: output i reads inputs lo[i] ..
 * lo[i] + taps - 1 with weights w[i*taps ..] (zero past the window). */
struct resize_axis {
    int in, out, taps;
    int *lo;
    float *w;
};

struct resize_aa {
    int H, W, OH, OW;
    struct resize_axis y, x;
};

void resize_aa_init(struct resize_aa *r, int H, int W, int OH, int OW);
void resize_aa_free(struct resize_aa *r);
/* Floats of scratch forward and backward need for P planes: P*H*OW. */
size_t resize_aa_tmp_numel(const struct resize_aa *r, int P);
/* out [P,OH,OW] = resize(inp [P,H,W]); tmp as resize_aa_tmp_numel. */
void resize_aa_forward(float *out, float *tmp, const float *inp, const struct resize_aa *r, int P);
void resize_aa_backward(float *dinp, float *tmp, const float *dout, const struct resize_aa *r,
                        int P);

/* dinp [B,C,HW] += adjoint of img_channels(out [B,OC,HW] <- inp [B,C,HW])
 * applied to dout. */
void channels_backward(float *dinp, int C, const float *dout, int OC, int B, int HW);

#endif
