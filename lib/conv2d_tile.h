/* conv2d_tile.h - the forward convolution at stride 1 without im2col: each
 * output tile (one row's run of positions times 16 or 32 output channels)
 * is summed in vector registers straight from a zero-padded copy of the
 * image. im2col + sgemm copies the input twice (the column matrix, then
 * OpenBLAS's packing of it); on the VQGAN's convolutions (K of 288 to 576,
 * 32 to 64 output channels) those copies took as long as the products.
 *
 * Applies when stride is 1, groups 1, OC a multiple of the vector length
 * (16 floats with AVX-512, 8 with AVX2 + FMA, as the CPU says at run
 * time, simd.h; without either, never), and C*KH*KW at least CONV2D_TILE_K_MIN:
 * with fewer terms per output the tile's stores outweigh its sums, and
 * im2col + sgemm ran up to 2x faster (the first convolution of a 1-channel
 * image, K = 9; bench/bench_conv.c).
 * out = (beta ? out : 0) + conv(inp, weight); no bias (the caller adds it).
 * Every output value is summed by one thread over (c, kh, kw) in that order:
 * results are bit-identical run to run at any thread count. The direct
 * loops of conv2d.c are its test oracle. */
#ifndef TP_CONV2D_TILE_H
#define TP_CONV2D_TILE_H

#include "conv2d.h"

#define CONV2D_TILE_K_MIN 32

int conv2d_tile_applies(const struct conv2d_shape *s);
void conv2d_tile_forward(float *out, float beta, const float *inp, const float *weight,
                         const struct conv2d_shape *s);

/* dweight += the weight gradient, summed over the batch in the fixed image
 * ranges of conv2d.c (CONV2D_DW_PARTS): bit-identical at any thread count.
 * Called inside a parallel region (a chunk of seqnet.c's training, which
 * sums chunks apart), the images are added straight into dweight in order:
 * the chunk is one thread's, and 8 buffers of WN to zero and add were 2.5%
 * of a vqgan-tiny step's CPU. */
void conv2d_tile_dweight(float *dweight, const float *dout, const float *inp,
                         const struct conv2d_shape *s);

#endif
