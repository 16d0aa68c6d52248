/* attention_tile.c - one head's attention products by AVX2 register tiles
 * (see attention_tile.h). */
#include "attention_tile.h"

#include "blas.h"
#include "err.h"
#include "simd.h"

#define AT_VL 8   /* floats in an AVX2 vector */
#define AT_RMAX 6 /* rows per tile: 6 x 2 accumulators of AVX2's 16 registers */

/* out[r*ldo + n] = alpha sum_k A[r][k] B[k][n], r < M, n < N, where
 * A[r][k] = a[r*ars + k*aks] (either order: broadcast one element at a
 * time) and B[k][n] = b[k*ldb + n], readable up to N rounded up to 8. */
struct at_prod {
    float *out;
    const float *a, *b;
    int ldo, ars, aks, ldb, M, N, K;
    float alpha;
};

int attention_tile_applies(int T, int HD)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    return simd_vl() == AT_VL && HD % AT_VL == 0 && T >= 1 && T <= ATTENTION_TILE_TMAX;
#else
    (void)T, (void)HD;
    return 0;
#endif
}

/* T rounded up to whole vectors: the packed operand's row */
static int padded(int T) { return (T + AT_VL - 1) / AT_VL * AT_VL; }

size_t attention_tile_cols_floats(int T, int HD) { return (size_t)HD * padded(T); }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include "simd_avx2.h"
#define AT_TARGET __attribute__((target("avx2,fma")))

/* One tile: rows r0.. (R of them), NV vectors of outputs from n0; the last
 * vector keeps its first `lanes` (1..8) outputs. R and NV are constants at
 * each call site, so acc stays in registers. */
static inline __attribute__((always_inline)) AT_TARGET void tile(const int R, const int NV, const struct at_prod *p,
                                                                int r0, int n0, int lanes)
{
    vec acc[2][AT_RMAX];
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++)
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) acc[v][r] = VZERO();
    const float *a = p->a + (size_t)r0 * p->ars, *b = p->b + n0;
    const size_t ars = p->ars, aks = p->aks, ldb = p->ldb;
    for (int k = 0; k < p->K; k++, a += aks, b += ldb) {
        vec bv[2];
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) bv[v] = VLOAD(b + v * AT_VL);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const vec x = VBCAST(a[r * ars]);
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) acc[v][r] = VFMA(bv[v], x, acc[v][r]);
        }
    }
    const vec alpha = VBCAST(p->alpha);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        float *o = p->out + (size_t)(r0 + r) * p->ldo + n0;
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            const vec s = _mm256_mul_ps(acc[v][r], alpha);
            if (v == NV - 1 && lanes < AT_VL)
                _mm256_maskstore_ps(o + v * AT_VL, mask, s);
            else
                VSTORE(o + v * AT_VL, s);
        }
    }
}

#define AT_CASE(r)                                       \
    case r:                                              \
        if (nv == 2)                                     \
            tile(r, 2, p, r0, n0, lanes);                \
        else                                             \
            tile(r, 1, p, r0, n0, lanes);                \
        break;

static AT_TARGET void run_tile(int r, int nv, const struct at_prod *p, int r0, int n0, int lanes)
{
    switch (r) {
        AT_CASE(1) AT_CASE(2) AT_CASE(3) AT_CASE(4) AT_CASE(5) AT_CASE(6)
    default: TP_ASSERT(0);
    }
}

#undef AT_CASE

/* Panels of two vectors (one for what is left), each over all rows in
 * tiles of AT_RMAX: a panel of B (K x 16, K <= 256) stays in L1 while the
 * rows go by. */
static AT_TARGET void product(const struct at_prod *p)
{
    for (int n0 = 0; n0 < p->N; n0 += 2 * AT_VL) {
        const int left = p->N - n0, nv = left > AT_VL ? 2 : 1;
        const int lanes = left >= nv * AT_VL ? AT_VL : left - (nv - 1) * AT_VL;
        for (int r0 = 0; r0 < p->M; r0 += AT_RMAX)
            run_tile(p->M - r0 < AT_RMAX ? p->M - r0 : AT_RMAX, nv, p, r0, n0, lanes);
    }
}

/* dst[j*HD + d] = src[j*ld + d]: by vectors, as a call of memcpy a row
 * took 13% of a T = 33 head's time */
static AT_TARGET void rows(float *dst, const float *src, int ld, int T, int HD)
{
    for (int j = 0; j < T; j++)
        for (int d = 0; d < HD; d += AT_VL) VSTORE(dst + (size_t)j * HD + d, VLOAD(src + (size_t)j * ld + d));
}

/* dst[d*Tp + j] = src[j*ld + d] for j < T, zeros for T <= j < Tp, d < HD
 * (HD a multiple of 8): blocks of 8 x 8 transposed in registers */
static AT_TARGET void cols(float *dst, const float *src, int ld, int T, int HD, int Tp)
{
    for (int j0 = 0; j0 < Tp; j0 += AT_VL)
        for (int d0 = 0; d0 < HD; d0 += AT_VL) {
            __m256 r[8], t[8], u[8];
            for (int i = 0; i < 8; i++)
                r[i] = j0 + i < T ? VLOAD(src + (size_t)(j0 + i) * ld + d0) : VZERO();
            for (int i = 0; i < 8; i += 2) {
                t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
                t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
            }
            for (int i = 0; i < 8; i += 4) {
                u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
                u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
                u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
                u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
            }
            for (int i = 0; i < 4; i++) {
                VSTORE(dst + (size_t)(d0 + i) * Tp + j0, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
                VSTORE(dst + (size_t)(d0 + i + 4) * Tp + j0, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
            }
        }
}

#include "simd_undef.h"
#undef AT_TARGET

#else

static void product(const struct at_prod *p)
{
    (void)p;
    TP_ASSERT(0); /* attention_tile_applies is 0 */
}

static void rows(float *dst, const float *src, int ld, int T, int HD)
{
    (void)dst, (void)src, (void)ld, (void)T, (void)HD;
    TP_ASSERT(0);
}

static void cols(float *dst, const float *src, int ld, int T, int HD, int Tp)
{
    (void)dst, (void)src, (void)ld, (void)T, (void)HD, (void)Tp;
    TP_ASSERT(0);
}

#endif

void attention_tile_rows(float *dst, const float *src, int ld, int T, int HD)
{
    TP_ASSERT(attention_tile_applies(T, HD));
    rows(dst, src, ld, T, HD);
}

void attention_tile_cols(float *dst, const float *src, int ld, int T, int HD)
{
    TP_ASSERT(attention_tile_applies(T, HD));
    cols(dst, src, ld, T, HD, padded(T));
}

void attention_tile_abt(float *s, int lds, const float *a, const float *bt, int T, int HD, float alpha)
{
    TP_ASSERT(attention_tile_applies(T, HD));
    const int Tp = padded(T);
    tp_product_record(0, 0, T, T, HD, HD, Tp, lds, 0);
    const struct at_prod p = {s, a, bt, lds, HD, 1, Tp, T, T, HD, alpha};
    product(&p);
}

void attention_tile_px(float *out, int ldo, const float *p, const float *x, int T, int HD, float alpha)
{
    TP_ASSERT(attention_tile_applies(T, HD));
    tp_product_record(0, 0, T, HD, T, T, HD, ldo, 0);
    const struct at_prod q = {out, p, x, ldo, T, 1, HD, T, HD, T, alpha};
    product(&q);
}

void attention_tile_ptx(float *out, int ldo, const float *p, const float *x, int T, int HD, float alpha)
{
    TP_ASSERT(attention_tile_applies(T, HD));
    tp_product_record(1, 0, T, HD, T, T, HD, ldo, 0);
    const struct at_prod q = {out, p, x, ldo, 1, T, HD, T, HD, T, alpha};
    product(&q);
}
