/* attention_tile.h - one head's attention products by AVX2 register tiles,
 * for short sequences: the scores q k^T, the mix p v, and the backward's
 * dy v^T, dS k, p^T dy and dS^T q (attention.c's heads).
 *
 * Each product was a single-threaded sgemm call of T x T x HD (T = 33 in
 * MaskGIT's 1D sampling, 97 in TiTok's trunk): OpenBLAS packed both
 * operands, cleared the output (beta 0) and ran its kernel on edges, so
 * that such calls ran at about half the kernel's rate (41.6 GFLOP/s a
 * thread in a titok-tiny stage-1 step, where the linear layers' tiles ran
 * 72). A tile here is R <= 6 rows times one or two vectors of 8 outputs;
 * its accumulators take K broadcast elements of a row (or a column: p^T
 * reads p in place) times a row of the other operand, are scaled once and
 * stored. The operands are first copied out of qkv's strided rows, k and v
 * transposed (T padded to a multiple of 8 with zeros) where they are the
 * right operand of q k^T or dy v^T; the outputs' last vectors past T are
 * masked off.
 *
 * Applies with AVX2 + FMA (simd_vl() == 8: measured there; AVX-512 keeps
 * sgemm, not measured), HD a multiple of 8 and T <= ATTENTION_TILE_TMAX.
 * Single-threaded (attention.c's heads are the threads). Every output is
 * one pass over k in order: the same bits at any thread count, not
 * sgemm's (tests/unit/test_attention_tile.c: against double-precision
 * loops, and the attention's gradients against finite differences). */
#ifndef TP_ATTENTION_TILE_H
#define TP_ATTENTION_TILE_H

#include <stddef.h>

#define ATTENTION_TILE_TMAX 256

/* whether heads of HD features over T positions take the tiles */
int attention_tile_applies(int T, int HD);
/* floats of attention_tile_cols's output: HD rows of T rounded up to 8 */
size_t attention_tile_cols_floats(int T, int HD);

/* A head's operands made compact for the products, from rows of stride ld
 * (qkv's or y's): dst [T][HD] = the rows, or [HD][Tp] transposed (Tp: T
 * rounded up to 8, zeros past T). Strided rows of 3C floats fell on a few
 * sets of L1, so that an operand read once per tile did not stay there. */
void attention_tile_rows(float *dst, const float *src, int ld, int T, int HD);
void attention_tile_cols(float *dst, const float *src, int ld, int T, int HD);

/* The products on them (p: [T][T] probabilities or their gradients; a, x:
 * [T][HD] rows; bt: [HD][Tp] from attention_tile_cols):
 *   abt: s[i*lds + j] = alpha sum_d a[i][d] bt[d][j]    (scores q k^T, dP = dy v^T)
 *   px:  out[i*ldo + d] = alpha sum_j p[i][j] x[j][d]   (y = p v, dq = dS k)
 *   ptx: out[j*ldo + d] = alpha sum_i p[i][j] x[i][d]   (dv = p^T dy, dk = dS^T q) */
void attention_tile_abt(float *s, int lds, const float *a, const float *bt, int T, int HD, float alpha);
void attention_tile_px(float *out, int ldo, const float *p, const float *x, int T, int HD, float alpha);
void attention_tile_ptx(float *out, int ldo, const float *p, const float *x, int T, int HD, float alpha);

#endif
