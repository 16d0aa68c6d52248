/* blas.c - cblas_sgemm with an operation count (see blas.h). */
#include "blas.h"

static uint64_t flops; /* added from inside parallel regions too: atomically */

void tp_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
              int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc)
{
    tp_flops_add(2 * (uint64_t)M * (uint64_t)N * (uint64_t)K);
    cblas_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void tp_flops_add(uint64_t n)
{
    __atomic_fetch_add(&flops, n, __ATOMIC_RELAXED);
}

uint64_t tp_flops(void)
{
    return __atomic_load_n(&flops, __ATOMIC_RELAXED);
}
