/* vq.h - vector quantizer (upstream VectorQuantizer, use_l2_norm on or off).
 *
 * Dimensions: N vectors to quantize (B*K tokens, or B*h*w positions),
 * D vector size (token dim), K codebook entries.
 * Layouts (contiguous F32, row-major): z [N,D], codebook [K,D] (upstream's
 * quantize.embedding.weight), zq [N,D], ids [N] I32.
 *
 * Forward, with zn = l2 ? normalize(z) : z and en = l2 ? normalize(codebook)
 * : codebook (normalize = torch F.normalize: x / max(||x||, 1e-12) per row):
 *   ids[n] = argmin_k ||zn_n||^2 + ||en_k||^2 - 2 zn_n.en_k  (the distance
 *            matrix through sgemm in chunks of rows; ties to the lowest k,
 *            as torch.argmin)
 *   zq[n]  = en[ids[n]]
 *   returns mse = mean((zq - zn)^2) over N*D; upstream's
 *            commitment_loss = beta * mse and codebook_loss = mse.
 *
 * Backward: zq is used straight-through (zq = zn + sg(en[id] - zn)), so
 *   dzn += dzq
 *   dzn += commit_scale * 2 (zn - zq) / (N D)    commitment: sg(zq) - zn
 *   den[id] += codebook_scale * 2 (zq - zn) / (N D)  codebook: zq - sg(zn)
 * then through the normalisation when l2 is on:
 *   dz += (dzn - zn (zn.dzn)) / ||z||, dcodebook likewise from den.
 * commit_scale is the weight of mean((sg(zq)-z)^2), i.e. w * beta for
 * upstream's w * (beta * commitment + codebook); codebook_scale is w.
 * Backward accumulates (+=); dz, dcodebook and dzq may be NULL.
 */
#ifndef TP_VQ_H
#define TP_VQ_H

#include <stddef.h>
#include <stdint.h>

/* Rows of z per distance chunk: bounds the [rows,K] scratch. */
#define VQ_CHUNK 256

/* zq may be NULL (ids and the returned mse only). */
double vq_forward(float *zq, int32_t *ids, const float *z, const float *codebook,
                  int64_t N, int D, int K, int l2);

void vq_backward(float *dz, float *dcodebook, const float *dzq, const float *z,
                 const float *codebook, const int32_t *ids, int64_t N, int D,
                 int K, int l2, float commit_scale, float codebook_scale);

/* out = x / max(||x||, 1e-12) row by row (torch F.normalize), norms the
 * clamped norms; and its backward, dx += d(out)/dx^T dy, from out and norms. */
void vq_l2_rows(float *out, float *norms, const float *x, int64_t rows, int D);
void vq_l2_rows_backward(float *dx, const float *dy, const float *y, const float *norms, int64_t rows, int D);

/* out[n] = codebook[ids[n]] (normalised rows when l2, as upstream's
 * get_codebook_entry). An id outside [0,K) is an input error: -1, tp_err()
 * names the position, out is untouched. */
int vq_lookup(float *out, const int32_t *ids, const float *codebook, int64_t N,
              int D, int K, int l2);

/* Code usage: counts[k] += occurrences of k in ids (accumulates, so it
 * spans batches). ids must be valid. */
void vq_count(int64_t *counts, const int32_t *ids, int64_t N, int K);

struct vq_usage {
    int64_t total;     /* sum of counts */
    int used;          /* codes with a nonzero count */
    int dead;          /* K - used */
    double perplexity; /* exp(-sum p log p), p = counts/total; 0 if total 0 */
};
void vq_usage_stats(struct vq_usage *u, const int64_t *counts, int K);

#endif
