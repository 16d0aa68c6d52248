/* blas.h - the library's one matrix product: cblas_sgemm, counting the
 * floating-point operations it is asked for (2*M*N*K a call), so that the
 * benchmarks can state a step's model FLOP rate against the sgemm peak.
 * With TP_FLOPS=FILE in the environment, a tool appends "NAME GFLOP ZSTD_S"
 * to FILE at exit (cli_init arranges it; ZSTD_S: its seconds in zstd). */
#ifndef TP_BLAS_H
#define TP_BLAS_H

#include <cblas.h>
#include <stdint.h>

void tp_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
              int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc);
/* count n operations of a product computed without sgemm (conv2d_tile.c) */
void tp_flops_add(uint64_t n);
/* count a product out[M,N] (+)= inp[M,K] W^T computed without sgemm
 * (linear_tile.c), and record it as the tp_sgemm call that would make it
 * (no transpose, W transposed, dense rows), so that bench_layers times the
 * same products by sgemm */
void tp_product_count(int M, int N, int K, int accumulate);
/* count and record a product computed without sgemm as the tp_sgemm call
 * it stands for (ta, tb: transposed; accumulate: beta != 0), as
 * attention_tile.c's head products do; tp_product_count is the case of
 * linear_tile.c's */
void tp_product_record(int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc, int accumulate);
/* operations counted so far in this process */
uint64_t tp_flops(void);

/* The shape of one tp_sgemm call (or tp_product_count product), as bench_layers times the same products
 * alone: row-major, transposes, sizes, leading dimensions, whether it
 * accumulated (beta != 0) and whether it ran inside an OpenMP parallel
 * region (one thread's product beside the others'). */
struct tp_sgemm_call {
    int ta, tb, M, N, K, lda, ldb, ldc, accumulate, in_parallel;
};
/* Record the calls from now on into calls[0..cap) (the ones past cap are
 * counted but not kept); calls NULL stops. Returns the count recorded
 * since the last start. */
int tp_sgemm_record(struct tp_sgemm_call *calls, int cap);

#endif
