/* conv2d_tile.h - the convolution at stride 1 without im2col: each output
 * tile is summed in vector registers straight from a zero-padded copy of
 * the image. im2col + sgemm copies the input twice (the column matrix, then
 * OpenBLAS's packing of it); on the VQGAN's convolutions (K of 288 to 576,
 * 32 to 64 output channels) those copies took as long as the products.
 * Two kinds of tile, by the vector width the CPU has (simd.h):
 *  - channel tiles (AVX-512, and AVX2 where the position tiles do not
 *    apply): one row's run of positions times 16 to 64 output channels in
 *    vectors, weights loaded and inputs broadcast. OC must be a multiple of
 *    the vector length and C*KH*KW at least CONV2D_TILE_K_MIN: with fewer
 *    terms per output the tile's stores outweigh its sums, and im2col +
 *    sgemm ran up to 2x faster (the first convolution of a 1-channel
 *    image, K = 9; bench/bench_conv.c).
 *  - position tiles (AVX2, OW a multiple of 8): 1 to 4 output channels
 *    times vectors of positions along output rows, inputs loaded and
 *    weights broadcast; the sums are stored as whole rows of the output
 *    planes, without the channel tiles' transposition, and any OC and K
 *    apply. On this AVX2 machine (AMD EPYC, Zen 3) the VQGAN's shapes ran
 *    0.82-0.96x the channel tiles' time, its last convolution (32 -> 1)
 *    0.19x im2col's and its first (1 -> 32) 0.62-0.67x.
 * out = (beta ? out : 0) + conv(inp, weight); no bias (the caller adds it).
 * Every output value is summed by one thread over (c, kh, kw) in that order
 * (both kinds: the same bits): results are bit-identical run to run at any
 * thread count. The direct loops of conv2d.c are its test oracle. */
#ifndef TP_CONV2D_TILE_H
#define TP_CONV2D_TILE_H

#include "conv2d.h"

#define CONV2D_TILE_K_MIN 32

/* the forward applies (and so dinp as a convolution, conv2d.c) */
int conv2d_tile_applies(const struct conv2d_shape *s);
void conv2d_tile_forward(float *out, float beta, const float *inp, const float *weight,
                         const struct conv2d_shape *s);

/* dweight += the weight gradient, summed over the batch in the fixed image
 * ranges of conv2d.c (CONV2D_DW_PARTS): bit-identical at any thread count.
 * Called inside a parallel region (a chunk of seqnet.c's training, which
 * sums chunks apart), the images are added straight into dweight in order:
 * the chunk is one thread's, and 8 buffers of WN to zero and add were 2.5%
 * of a vqgan-tiny step's CPU. By the channel tiles where they apply (OC
 * in whole vectors, K of CONV2D_TILE_K_MIN or more); else, with AVX2 and rows of whole vectors, by position vectors:
 * per output channel and group of up to 12 taps of an input channel, an
 * accumulator a tap over the image's positions, its lanes summed in order
 * at the end (the VQGAN's last convolution, 32 -> 1, left im2col: 4.8 ms
 * at batch 32, 0.45-0.60 by positions; the first, 1 -> 32 with K = 9,
 * 0.46-0.61 by im2col, 0.25-0.35 by positions; bench/bench_conv.c). */
int conv2d_tile_dweight_applies(const struct conv2d_shape *s);
void conv2d_tile_dweight(float *dweight, const float *dout, const float *inp,
                         const struct conv2d_shape *s);

#endif
