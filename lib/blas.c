/* blas.c - cblas_sgemm with an operation count (see blas.h). */
#include "blas.h"

#ifdef _OPENMP
#include <omp.h>
#else
static int omp_in_parallel(void) { return 0; } /* the fuzz build: no threads */
#endif

static uint64_t flops; /* added from inside parallel regions too: atomically */
static struct tp_sgemm_call *rec_calls;
static int rec_cap, rec_n;

static void record(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K,
                   int lda, int ldb, int ldc, float beta)
{
    int i = __atomic_fetch_add(&rec_n, 1, __ATOMIC_RELAXED);
    if (i < rec_cap)
        rec_calls[i] = (struct tp_sgemm_call){ta == CblasTrans, tb == CblasTrans, M, N, K, lda, ldb, ldc,
                                              beta != 0.0f, omp_in_parallel()};
}

int tp_sgemm_record(struct tp_sgemm_call *calls, int cap)
{
    int n = rec_n;
    rec_calls = calls, rec_cap = calls ? cap : 0, rec_n = 0;
    return n;
}

void tp_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
              int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc)
{
    tp_flops_add(2 * (uint64_t)M * (uint64_t)N * (uint64_t)K);
    if (rec_calls) record(ta, tb, M, N, K, lda, ldb, ldc, beta);
    cblas_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void tp_product_record(int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc, int accumulate)
{
    tp_flops_add(2 * (uint64_t)M * (uint64_t)N * (uint64_t)K);
    if (rec_calls)
        record(ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, lda, ldb, ldc,
               accumulate ? 1.0f : 0.0f);
}

void tp_product_count(int M, int N, int K, int accumulate) { tp_product_record(0, 1, M, N, K, K, K, N, accumulate); }

void tp_flops_add(uint64_t n)
{
    __atomic_fetch_add(&flops, n, __ATOMIC_RELAXED);
}

uint64_t tp_flops(void)
{
    return __atomic_load_n(&flops, __ATOMIC_RELAXED);
}
