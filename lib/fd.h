/* fd.h - Frechet distance between two sets of feature vectors, each
 * summarised by its mean and covariance (the FID formula of Heusel et al.
 * 2017, on whatever features the caller gives: here the evaluation
 * classifier's, classifier.h):
 *
 *   FD = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))
 *
 * Statistics: fd_stats accumulates a stream of [B,D] F32 rows in double,
 * one batch at a time: the batch's mean and centred scatter (a dgemm), then
 * Chan et al.'s pairwise update of the running mean and scatter M2, so no
 * sum of squares minus a squared sum loses digits. The covariance is
 * M2 / (n - 1) (numpy's np.cov, which pytorch-fid uses).
 *
 * Distance: tr (S1 S2)^(1/2) = sum_i sqrt(l_i) over the eigenvalues l_i of
 * the symmetric positive semi-definite A S2 A with A = S1^(1/2) (S1 S2 and
 * A S2 A are similar). Both eigendecompositions are LAPACK's dsyev (from
 * OpenBLAS) on symmetrised matrices; eigenvalues that rounding leaves
 * slightly negative count as 0. This avoids the non-symmetric sqrtm of
 * pytorch-fid, whose complex rounding residue it has to discard.
 *
 * Files: fd_stats_save writes a safetensors file with "mu" F64 [D] and
 * "sigma" F64 [D,D] (pytorch-fid's .npz names) and metadata kind=fd-stats,
 * count, dim (and what the caller adds); fd_ref_load reads one back.
 */
#ifndef TP_FD_H
#define TP_FD_H

#include <stdint.h>

#include "st.h"

struct fd_stats {
    int D;          /* feature size; 0 until the first batch */
    int64_t n;      /* rows seen */
    double *mean;   /* [D] */
    double *m2;     /* [D,D] sum of (x - mean)(x - mean)^T */
};

void fd_stats_init(struct fd_stats *s);
void fd_stats_free(struct fd_stats *s);
/* Add B rows x [B,D]; -1 if D differs from earlier batches' or a value is
 * not finite. B = 0 (x may be NULL) only fixes D. */
int fd_stats_add(struct fd_stats *s, const float *x, int64_t B, int D);
/* mu [D] and the covariance sigma [D,D]; -1 with fewer than 2 rows. */
int fd_stats_moments(const struct fd_stats *s, double *mu, double *sigma);
/* Write mu and sigma (meta's entries added, may be NULL); -1 on an error. */
int fd_stats_save(const struct fd_stats *s, const char *path, const struct st *meta);

/* Reference statistics as fd_stats_save wrote them. */
struct fd_ref {
    int D;
    int64_t n;
    double *mu, *sigma;  /* [D], [D,D] */
};
int fd_ref_load(struct fd_ref *r, const char *path);
void fd_ref_free(struct fd_ref *r);

/* The Frechet distance of (mu1, s1) and (mu2, s2), all D-dimensional;
 * NAN with a message if LAPACK fails. */
double fd_distance(const double *mu1, const double *s1, const double *mu2, const double *s2, int D);

#endif
