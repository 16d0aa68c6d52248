/* conv2d.h - 2-D convolution (PyTorch Conv2d semantics), forward and backward.
 *
 * Dimensions: B batch, C input channels, H,W input height and width,
 * OC output channels, KH,KW kernel size, OH,OW output height and width,
 * G groups (C and OC are both multiples of G; G == C == OC is depthwise).
 * Layouts (contiguous F32, row-major, as PyTorch):
 *   inp [B,C,H,W], out [B,OC,OH,OW], weight [OC,C/G,KH,KW], bias [OC].
 * Padding is explicit and may be asymmetric (top, bottom, left, right): the
 * input is read as if surrounded by zeros, which is what upstream's
 * Conv2dSame does with F.pad before an unpadded conv.
 *   OH = (H + pad_top + pad_bottom - KH) / stride_h + 1   (same for W)
 *
 * Forward writes out (=). Backward accumulates (+=) into dinp, dweight,
 * dbias; any of the three may be NULL. bias may be NULL (no bias).
 *
 * Paths, chosen by conv2d_forward/backward (tests hold them to each other):
 *   - 1x1, stride 1, no padding, G == 1: out_b = W @ inp_b, one sgemm per image;
 *   - G == C > 1 (depthwise, also with a channel multiplier): direct loops,
 *     since the product per group would be a KHxKW dot;
 *   - stride 1, G == 1, OC a multiple of the vector length, C*KH*KW of
 *     CONV2D_TILE_K_MIN or more: register tiles
 *     straight from a zero-padded copy of each image (conv2d_tile.h), for
 *     the forward, for dinp as the convolution below, and for dweight;
 *   - otherwise im2col + sgemm per image and group, over column chunks that
 *     bound the scratch memory (CONV2D_COL_FLOATS); dinp at stride 1 as the
 *     convolution of dout with the flipped kernel, else by col2im;
 *     a batch's images are shared among the threads (single-threaded
 *     sgemm calls), the weight gradient summed over fixed ranges of images.
 * Every loop is parallel over an output index; sums run in a fixed order,
 * so results are bit-identical run to run at a fixed thread count (and, on
 * the im2col path with two or more images, at any thread count).
 */
#ifndef TP_CONV2D_H
#define TP_CONV2D_H

#include <stddef.h>
#include <stdint.h>

/* The weight gradient is summed over images in CONV2D_DW_PARTS fixed ranges
 * of the batch, each into its own buffer of WN floats, the buffers then
 * added in order by chunk_parts_add (chunks.h): the same sums whatever the
 * number of threads. */
#define CONV2D_DW_PARTS 8

/* Upper bound on the im2col scratch, in floats (16 MB). */
#define CONV2D_COL_FLOATS ((size_t)4 << 20)

struct conv2d_shape {
    int B, C, H, W;           /* input */
    int OC, KH, KW;           /* output channels, kernel */
    int stride_h, stride_w;
    int pad_top, pad_bottom, pad_left, pad_right;
    int groups;
    int OH, OW;               /* derived by conv2d_shape_finish */
};

/* TF 'SAME' padding of one axis (upstream Conv2dSame, dilation 1):
 * total = max((ceil(n/stride) - 1) * stride + k - n, 0), before = total/2,
 * after = total - before. The output then has ceil(n/stride) elements. */
void conv2d_same_pad(int n, int k, int stride, int *before, int *after);

/* Check a filled-in shape (TP_ASSERT on nonsense) and derive OH, OW. */
void conv2d_shape_finish(struct conv2d_shape *s);

/* Fill a whole shape with SAME padding: conv2d_same_pad on each axis, then
 * conv2d_shape_finish. */
struct conv2d_shape conv2d_shape_same(int B, int C, int H, int W, int OC,
                                      int KH, int KW, int stride, int groups);

size_t conv2d_inp_numel(const struct conv2d_shape *s);    /* B*C*H*W */
size_t conv2d_out_numel(const struct conv2d_shape *s);    /* B*OC*OH*OW */
size_t conv2d_weight_numel(const struct conv2d_shape *s); /* OC*(C/G)*KH*KW */

void conv2d_forward(float *out, const float *inp, const float *weight,
                    const float *bias, const struct conv2d_shape *s);
void conv2d_backward(float *dinp, float *dweight, float *dbias,
                     const float *dout, const float *inp, const float *weight,
                     const struct conv2d_shape *s);

/* The direct loops, for any shape: the depthwise path, and the oracle the
 * sgemm paths are tested against. */
void conv2d_forward_direct(float *out, const float *inp, const float *weight,
                           const float *bias, const struct conv2d_shape *s);
void conv2d_backward_direct(float *dinp, float *dweight, float *dbias,
                            const float *dout, const float *inp,
                            const float *weight, const struct conv2d_shape *s);

/* One parameter of a block, for the (name, shape) tables models build their
 * weight files and buffers from. Names are upstream's state_dict names,
 * relative to the block (the model adds its prefix, e.g. "encoder.down.0.
 * block.1."). Shared by the conv-side blocks (resblock.h, discblock.h). */
struct convnet_param {
    const char *name;
    int ndim;
    int64_t shape[4];
    size_t numel;
};

/* A parameter descriptor of ndim <= 4 dimensions; numel is their product. */
struct convnet_param convnet_param(const char *name, int ndim, int64_t d0,
                                   int64_t d1, int64_t d2, int64_t d3);

/* Point *slots[i] at consecutive stretches of base, params[i].numel floats
 * each, in table order (base NULL: only count). Returns the total numel. */
size_t convnet_params_point(float **const *slots, const struct convnet_param *params,
                            int n, float *base);

#endif
