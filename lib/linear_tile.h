/* linear_tile.h - a linear layer's product by register tiles, with its
 * weights packed once and the pass that follows it fused in: inference's,
 * and in training the chunked blocks' forward products and input gradients
 * (block.c).
 *
 * out[BT,OC] = act(inp[BT,C] W^T + bias (+ add)), W [OC,C] as linear.h's.
 * A tile is R <= 6 rows times one panel of LINEAR_TILE_PW(vl) outputs (64
 * with AVX-512, 16 with AVX2 + FMA; simd.h): its accumulators start at the
 * bias, take C broadcast inputs times the panel's packed weights, get add
 * (a residual) and the activation (GELU) in registers, and are stored once.
 * sgemm packs both operands again at every call (on the transformer's
 * chunks of 528 rows that was 11% of inference) and needs a pass of its own
 * for the bias (rows copied under the product), the residual and GELU.
 *
 * Applies when the kernels exist (simd_vl() > 0) and OC is a multiple of
 * the panel width. Single-threaded: the callers' chunks are the threads.
 * Every output is summed by one pass over c in order, bias first: the same
 * bits at any thread count and chunking; not sgemm's bits (its kernels sum
 * in blocks), equal to the double-precision product to float rounding
 * (tests/unit/test_linear_tile.c, against direct loops). */
#ifndef TP_LINEAR_TILE_H
#define TP_LINEAR_TILE_H

#include <stddef.h>

enum linear_tile_act { LINEAR_TILE_NONE, LINEAR_TILE_GELU, LINEAR_TILE_GELU_TANH };

/* floats of the packed weights of a [OC,C] layer, 0 where the tiles do not
 * apply (no kernel, or OC not a multiple of the panel width) */
size_t linear_tile_packed_floats(int C, int OC);
/* packed = weight [OC,C] as panels [OC/PW][C][PW]: a panel's weights of one
 * input feature side by side, as the tile loads them */
void linear_tile_pack(float *packed, const float *weight, int C, int OC);
/* packed = weight [OC,C] transposed and packed: the operand of a layer's
 * input gradient dinp[BT,C] = dout[BT,OC] W, as linear_tile_forward(dinp,
 * dout, packed, NULL, dinp, BT, OC, C, ...) takes it (it adds onto dinp).
 * Its size is linear_tile_packed_floats(OC, C) (C a multiple of the panel
 * width); each panel row is a slice of a row of weight. */
void linear_tile_pack_t(float *packed, const float *weight, int C, int OC);
/* out = act(inp W^T + bias + add); bias and add may be NULL; add is
 * [BT,OC] and may be out itself; out must not overlap inp. packed: made
 * with linear_tile_pack at the same vector width. */
void linear_tile_forward(float *out, const float *inp, const float *packed, const float *bias,
                         const float *add, int BT, int C, int OC, enum linear_tile_act act);

/* Packed weights kept between calls (a sampling run's steps, an encoder's
 * records), remade only when the weights moved: version is their params'
 * (params.h), and the vector width the packing was for counts too. */
struct linear_tile_cache {
    float *mem;
    size_t floats;
    unsigned long version;
    int vl;
};
/* The cache's memory of n floats; *stale = 1 when the caller must pack
 * into it (new, resized, other weights or width), 0 when it holds them. */
float *linear_tile_cache_get(struct linear_tile_cache *c, size_t n, unsigned long version, int *stale);
void linear_tile_cache_free(struct linear_tile_cache *c);
/* weight [OC,C] packed, from c (packed into it when stale); NULL where the
 * tiles do not apply */
const float *linear_tile_cached(struct linear_tile_cache *c, const float *weight, int C, int OC,
                                unsigned long version);

#endif
