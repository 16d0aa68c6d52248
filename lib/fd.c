/* fd.c - feature statistics and the Frechet distance (see fd.h). */
#include "fd.h"
#include "err.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK's symmetric eigensolver, exported by OpenBLAS (gfortran's calling
 * convention: the lengths of the character arguments come last). */
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                   double *work, const int *lwork, int *info, size_t jobz_len, size_t uplo_len);

void fd_stats_init(struct fd_stats *s) { memset(s, 0, sizeof *s); }

void fd_stats_free(struct fd_stats *s)
{
    free(s->mean);
    free(s->m2);
    memset(s, 0, sizeof *s);
}

int fd_stats_add(struct fd_stats *s, const float *x, int64_t B, int D)
{
    if (D < 1) return tp_err_set("features of size %d", D);
    if (s->D == 0) {
        s->D = D;
        s->mean = tp_calloc((size_t)D, sizeof(double));
        s->m2 = tp_calloc((size_t)D * D, sizeof(double));
    } else if (s->D != D) {
        return tp_err_set("features of size %d, expected %d", D, s->D);
    }
    if (B <= 0) return 0;
    size_t nb = (size_t)B * D;
    for (size_t i = 0; i < nb; i++)
        if (!isfinite(x[i])) return tp_err_set("feature %zu of the batch is not finite (%g)", i, x[i]);
    double *xc = tp_malloc(nb * sizeof(double)), *bm = tp_calloc((size_t)D, sizeof(double));
    double *bm2 = tp_malloc((size_t)D * D * sizeof(double));
    for (int64_t b = 0; b < B; b++)
        for (int d = 0; d < D; d++) bm[d] += x[b * D + d];
    for (int d = 0; d < D; d++) bm[d] /= (double)B;
    for (int64_t b = 0; b < B; b++)
        for (int d = 0; d < D; d++) xc[b * D + d] = x[b * D + d] - bm[d];
    /* the batch's scatter Xc^T Xc, then Chan's merge with what came before */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, D, (int)B, 1.0, xc, D, xc, D, 0.0, bm2, D);
    double na = (double)s->n, nbt = (double)B, n = na + nbt;
    for (int d = 0; d < D; d++) bm[d] -= s->mean[d]; /* delta */
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) s->m2[(size_t)i * D + j] += bm2[(size_t)i * D + j] + bm[i] * bm[j] * na * nbt / n;
    for (int d = 0; d < D; d++) s->mean[d] += bm[d] * nbt / n;
    s->n += B;
    free(xc);
    free(bm);
    free(bm2);
    return 0;
}

int fd_stats_moments(const struct fd_stats *s, double *mu, double *sigma)
{
    if (s->n < 2) return tp_err_set("%lld feature vectors: a covariance needs at least 2", (long long)s->n);
    size_t D = (size_t)s->D;
    memcpy(mu, s->mean, D * sizeof(double));
    for (size_t i = 0; i < D * D; i++) sigma[i] = s->m2[i] / (double)(s->n - 1);
    return 0;
}

int fd_stats_save(const struct fd_stats *s, const char *path, const struct st *meta)
{
    struct st *o = st_new();
    if (meta)
        for (int i = 0; i < meta->nmeta; i++) st_meta_set(o, meta->meta_key[i], meta->meta_val[i]);
    st_meta_set(o, "kind", "fd-stats");
    st_meta_set_long(o, "count", (long)s->n);
    st_meta_set_long(o, "dim", s->D);
    struct st_tensor *mu = st_put_v(o, "mu", ST_F64, 1, (int64_t)s->D);
    struct st_tensor *sg = st_put_v(o, "sigma", ST_F64, 2, (int64_t)s->D, (int64_t)s->D);
    int rc = fd_stats_moments(s, mu->data, sg->data);
    if (rc == 0) rc = st_save(o, path);
    if (rc != 0) tp_err_prefix("%s", path);
    st_free(o);
    return rc;
}

int fd_ref_load(struct fd_ref *r, const char *path)
{
    memset(r, 0, sizeof *r);
    struct st *s;
    if (st_load(&s, path) != 0) return -1;
    struct st_tensor *mu = st_require(s, "mu", ST_F64, 1), *sg = mu ? st_require(s, "sigma", ST_F64, 2) : NULL;
    long n = 0;
    int rc = -1;
    if (!sg) tp_err_prefix("%s", path);
    else if (sg->shape[0] != mu->shape[0] || sg->shape[1] != mu->shape[0] || mu->shape[0] < 1)
        tp_err_set("%s: 'sigma' is not [D,D] for 'mu' [D]", path);
    else if (st_meta_get_long(s, "count", &n) != 0)
        tp_err_prefix("%s", path);
    else {
        size_t D = (size_t)mu->shape[0];
        r->D = (int)D;
        r->n = n;
        r->mu = tp_malloc(D * sizeof(double));
        r->sigma = tp_malloc(D * D * sizeof(double));
        memcpy(r->mu, mu->data, D * sizeof(double));
        memcpy(r->sigma, sg->data, D * D * sizeof(double));
        rc = 0;
    }
    st_free(s);
    return rc;
}

void fd_ref_free(struct fd_ref *r)
{
    free(r->mu);
    free(r->sigma);
    memset(r, 0, sizeof *r);
}

/* Eigenvalues (ascending) into w and, with vectors, the eigenvectors as the
 * rows of a (LAPACK's column-major columns); a [D,D] symmetric, overwritten. */
static int eig_sym(double *a, double *w, int D, int vectors)
{
    int info = 0, lwork = -1;
    double q;
    const char *jobz = vectors ? "V" : "N";
    dsyev_(jobz, "U", &D, a, &D, w, &q, &lwork, &info, 1, 1);
    if (info != 0) return tp_err_set("dsyev workspace query failed (info %d)", info);
    lwork = (int)q;
    double *work = tp_malloc((size_t)lwork * sizeof(double));
    dsyev_(jobz, "U", &D, a, &D, w, work, &lwork, &info, 1, 1);
    free(work);
    if (info != 0) return tp_err_set("dsyev did not converge (info %d)", info);
    return 0;
}

static void symmetrise(double *a, int D)
{
    for (int i = 0; i < D; i++)
        for (int j = i + 1; j < D; j++) {
            double m = 0.5 * (a[(size_t)i * D + j] + a[(size_t)j * D + i]);
            a[(size_t)i * D + j] = a[(size_t)j * D + i] = m;
        }
}

double fd_distance(const double *mu1, const double *s1, const double *mu2, const double *s2, int D)
{
    size_t DD = (size_t)D * D;
    double *a = tp_malloc(DD * sizeof(double)), *w = tp_malloc((size_t)D * sizeof(double));
    double *root = tp_malloc(DD * sizeof(double)), *t = tp_malloc(DD * sizeof(double));
    double fd = NAN;
    memcpy(a, s1, DD * sizeof(double));
    symmetrise(a, D);
    if (eig_sym(a, w, D, 1) != 0) goto out;
    /* A = V diag(sqrt(max(w,0))) V^T; a's rows are the eigenvectors */
    for (int k = 0; k < D; k++) w[k] = sqrt(fmax(w[k], 0.0));
    for (int k = 0; k < D; k++)
        for (int j = 0; j < D; j++) t[(size_t)k * D + j] = w[k] * a[(size_t)k * D + j];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, D, D, 1.0, a, D, t, D, 0.0, root, D);
    /* M = A S2 A, symmetric positive semi-definite */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, D, 1.0, root, D, s2, D, 0.0, t, D);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, D, D, D, 1.0, t, D, root, D, 0.0, a, D);
    symmetrise(a, D);
    if (eig_sym(a, w, D, 0) != 0) goto out;
    double tr_root = 0, tr = 0, dm = 0;
    for (int k = 0; k < D; k++) tr_root += sqrt(fmax(w[k], 0.0));
    for (int k = 0; k < D; k++) {
        tr += s1[(size_t)k * D + k] + s2[(size_t)k * D + k];
        dm += (mu1[k] - mu2[k]) * (mu1[k] - mu2[k]);
    }
    /* >= 0 in exact arithmetic; equal inputs may round to -1e-13 or so */
    fd = fmax(dm + tr - 2.0 * tr_root, 0.0);
out:
    free(a), free(w), free(root), free(t);
    return fd;
}
