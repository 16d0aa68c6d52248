/* vq.c - vector quantizer (see vq.h).
 *
 * The nearest code comes from one sgemm per chunk of VQ_CHUNK rows against
 * the whole codebook ([rows,D] x [D,K]), so the [rows,K] scratch stays small
 * while each call stays large. Row loops are parallel over n and the
 * codebook gradient is parallel over k with each code's rows visited in
 * increasing n: no atomics, and the sums do not depend on the thread count.
 */
#include "vq.h"
#include "blas.h"
#include "err.h"

#include <math.h>
#include <string.h>

#define L2_EPS 1e-12 /* torch F.normalize's eps */

/* out = x / max(||x||, eps) for one row of D; returns the clamped norm. */
static float l2_row(float *out, const float *x, int D)
{
    double s = 0;
    for (int j = 0; j < D; j++) s += (double)x[j] * x[j];
    float n = (float)fmax(sqrt(s), L2_EPS);
    for (int j = 0; j < D; j++) out[j] = x[j] / n;
    return n;
}

void vq_l2_rows(float *out, float *norms, const float *x, int64_t rows, int D)
{
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) norms[r] = l2_row(out + r * D, x + r * D, D);
}

/* dx += d(normalize)/dx^T dy for one row: (dy - y (y.dy)) / n when the norm
 * was not clamped, dy / eps when it was (the denominator is then constant). */
static void l2_row_backward(float *dx, const float *dy, const float *y, float n, int D)
{
    double dot = 0;
    if (n > (float)L2_EPS)
        for (int j = 0; j < D; j++) dot += (double)y[j] * dy[j];
    for (int j = 0; j < D; j++) dx[j] += (dy[j] - y[j] * (float)dot) / n;
}

void vq_l2_rows_backward(float *dx, const float *dy, const float *y, const float *norms, int64_t rows, int D)
{
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) l2_row_backward(dx + r * D, dy + r * D, y + r * D, norms[r], D);
}

/* The vectors the quantizer works on: normalised copies in l2 mode,
 * the inputs themselves otherwise. */
struct vq_work {
    const float *zn, *en;
    float *zbuf, *ebuf, *znorm, *enorm;
};

static void work_open(struct vq_work *w, const float *z, const float *codebook,
                      int64_t N, int D, int K, int l2)
{
    memset(w, 0, sizeof *w);
    w->zn = z;
    w->en = codebook;
    if (!l2) return;
    w->zbuf = tp_malloc((size_t)N * D * sizeof(float));
    w->ebuf = tp_malloc((size_t)K * D * sizeof(float));
    w->znorm = tp_malloc((size_t)N * sizeof(float));
    w->enorm = tp_malloc((size_t)K * sizeof(float));
    vq_l2_rows(w->zbuf, w->znorm, z, N, D);
    vq_l2_rows(w->ebuf, w->enorm, codebook, K, D);
    w->zn = w->zbuf;
    w->en = w->ebuf;
}

static void work_close(struct vq_work *w)
{
    free(w->zbuf);
    free(w->ebuf);
    free(w->znorm);
    free(w->enorm);
}

double vq_forward(float *zq, int32_t *ids, const float *z, const float *codebook,
                  int64_t N, int D, int K, int l2)
{
    TP_ASSERT(N >= 0 && D > 0 && K > 0);
    struct vq_work w;
    work_open(&w, z, codebook, N, D, K, l2);
    float *ee = tp_malloc((size_t)K * sizeof(float));
    for (int k = 0; k < K; k++) {
        double s = 0;
        for (int j = 0; j < D; j++) s += (double)w.en[k * D + j] * w.en[k * D + j];
        ee[k] = (float)s;
    }
    float *dots = tp_malloc((size_t)VQ_CHUNK * K * sizeof(float));
    double *rowsq = tp_malloc((size_t)(N > 0 ? N : 1) * sizeof(double));

    for (int64_t n0 = 0; n0 < N; n0 += VQ_CHUNK) {
        int rows = (int)(N - n0 < VQ_CHUNK ? N - n0 : VQ_CHUNK);
        const float *zc = w.zn + n0 * D;
        tp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, K, D, 1.0f, zc, D,
                 w.en, D, 0.0f, dots, K);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++) {
            const float *zr = zc + (int64_t)r * D;
            double s = 0;
            for (int j = 0; j < D; j++) s += (double)zr[j] * zr[j];
            float zz = (float)s;
            const float *dr = dots + (int64_t)r * K;
            int best = 0;
            float bestd = zz + ee[0] - 2.0f * dr[0];
            for (int k = 1; k < K; k++) {
                float d = zz + ee[k] - 2.0f * dr[k];
                if (d < bestd) { /* strict: ties keep the lowest index */
                    bestd = d;
                    best = k;
                }
            }
            int64_t n = n0 + r;
            ids[n] = best;
            const float *e = w.en + (int64_t)best * D;
            double sq = 0;
            for (int j = 0; j < D; j++) {
                float diff = e[j] - zr[j];
                sq += (double)diff * diff;
                if (zq) zq[n * D + j] = e[j];
            }
            rowsq[n] = sq;
        }
    }
    double mse = 0;
    for (int64_t n = 0; n < N; n++) mse += rowsq[n];
    mse = N > 0 ? mse / ((double)N * D) : 0.0;
    free(rowsq);
    free(dots);
    free(ee);
    work_close(&w);
    return mse;
}

/* Rows of each code, in increasing n: order[start[k] .. start[k+1]). */
static void rows_by_code(int64_t *start, int64_t *order, const int32_t *ids,
                         int64_t N, int K)
{
    memset(start, 0, (size_t)(K + 1) * sizeof *start);
    for (int64_t n = 0; n < N; n++) start[ids[n] + 1]++;
    for (int k = 0; k < K; k++) start[k + 1] += start[k];
    int64_t *fill = tp_malloc((size_t)K * sizeof *fill);
    memcpy(fill, start, (size_t)K * sizeof *fill);
    for (int64_t n = 0; n < N; n++) order[fill[ids[n]]++] = n;
    free(fill);
}

void vq_backward(float *dz, float *dcodebook, const float *dzq, const float *z,
                 const float *codebook, const int32_t *ids, int64_t N, int D,
                 int K, int l2, float commit_scale, float codebook_scale)
{
    if (N <= 0 || (!dz && !dcodebook)) return;
    struct vq_work w;
    work_open(&w, z, codebook, N, D, K, l2);
    float cc = (float)(2.0 * commit_scale / ((double)N * D));
    float cb = (float)(2.0 * codebook_scale / ((double)N * D));

    if (dz) {
#pragma omp parallel
        {
            float *dzn = tp_malloc((size_t)D * sizeof(float));
#pragma omp for schedule(static)
            for (int64_t n = 0; n < N; n++) {
                const float *zr = w.zn + n * D, *e = w.en + (int64_t)ids[n] * D;
                for (int j = 0; j < D; j++)
                    dzn[j] = (dzq ? dzq[n * D + j] : 0.0f) + cc * (zr[j] - e[j]);
                if (l2)
                    l2_row_backward(dz + n * D, dzn, zr, w.znorm[n], D);
                else
                    for (int j = 0; j < D; j++) dz[n * D + j] += dzn[j];
            }
            free(dzn);
        }
    }

    if (dcodebook && cb != 0.0f) {
        int64_t *start = tp_malloc((size_t)(K + 1) * sizeof *start);
        int64_t *order = tp_malloc((size_t)N * sizeof *order);
        rows_by_code(start, order, ids, N, K);
#pragma omp parallel
        {
            float *den = tp_malloc((size_t)D * sizeof(float));
#pragma omp for schedule(dynamic, 16)
            for (int k = 0; k < K; k++) {
                if (start[k] == start[k + 1]) continue;
                const float *e = w.en + (int64_t)k * D;
                memset(den, 0, (size_t)D * sizeof(float));
                for (int64_t i = start[k]; i < start[k + 1]; i++) {
                    const float *zr = w.zn + order[i] * D;
                    for (int j = 0; j < D; j++) den[j] += cb * (e[j] - zr[j]);
                }
                if (l2)
                    l2_row_backward(dcodebook + (int64_t)k * D, den, e, w.enorm[k], D);
                else
                    for (int j = 0; j < D; j++) dcodebook[(int64_t)k * D + j] += den[j];
            }
            free(den);
        }
        free(start);
        free(order);
    }
    work_close(&w);
}

int vq_lookup(float *out, const int32_t *ids, const float *codebook, int64_t N,
              int D, int K, int l2)
{
    for (int64_t n = 0; n < N; n++)
        if (ids[n] < 0 || ids[n] >= K)
            return tp_err_set("position %lld: id %d is outside [0,%d)", (long long)n,
                              ids[n], K);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *e = codebook + (int64_t)ids[n] * D;
        float *o = out + n * D;
        if (l2)
            l2_row(o, e, D);
        else
            memcpy(o, e, (size_t)D * sizeof(float));
    }
    return 0;
}

void vq_count(int64_t *counts, const int32_t *ids, int64_t N, int K)
{
    for (int64_t n = 0; n < N; n++) {
        TP_ASSERT(ids[n] >= 0 && ids[n] < K);
        counts[ids[n]]++;
    }
}

void vq_usage_stats(struct vq_usage *u, const int64_t *counts, int K)
{
    memset(u, 0, sizeof *u);
    for (int k = 0; k < K; k++) {
        u->total += counts[k];
        u->used += counts[k] > 0;
    }
    u->dead = K - u->used;
    if (u->total == 0) return;
    double h = 0;
    for (int k = 0; k < K; k++)
        if (counts[k] > 0) {
            double p = (double)counts[k] / (double)u->total;
            h -= p * log(p);
        }
    u->perplexity = exp(h);
}
