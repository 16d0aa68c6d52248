/* test_blas.c - tp_sgemm computes what cblas_sgemm does and counts
 * 2*M*N*K operations a call: a linear layer's forward is 2*BT*C*OC, its
 * backward twice that; calls from parallel threads are all counted. */
#include "test.h"
#include "blas.h"
#include "linear.h"

static void test_product_and_count(void **state)
{
    (void)state;
    float A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 0, 0, 1, 1, 1}, C[4];
    uint64_t before = tp_flops();
    /* [2x3] @ [3x2] */
    tp_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 3, 1.0f, A, 3, B, 2, 0.0f, C, 2);
    assert_true(C[0] == 4 && C[1] == 5 && C[2] == 10 && C[3] == 11);
    assert_int_equal(tp_flops() - before, 2 * 2 * 2 * 3);
}

static void test_linear_layer_counts(void **state)
{
    (void)state;
    enum { BT = 6, C = 5, OC = 7 };
    float inp[BT * C], w[OC * C], b[OC], out[BT * OC], din[BT * C], dw[OC * C], db[OC];
    for (int i = 0; i < BT * C; i++) inp[i] = 0.01f * i, din[i] = 0;
    for (int i = 0; i < OC * C; i++) w[i] = 0.02f * i, dw[i] = 0;
    for (int i = 0; i < OC; i++) b[i] = 0, db[i] = 0;
    uint64_t t0 = tp_flops();
    linear_forward(out, inp, w, b, BT, C, OC);
    uint64_t t1 = tp_flops();
    linear_backward(din, dw, db, out, inp, w, BT, C, OC);
    uint64_t t2 = tp_flops();
    assert_int_equal(t1 - t0, 2 * BT * C * OC);
    assert_int_equal(t2 - t1, 2 * 2 * BT * C * OC);
}

static void test_threads_all_counted(void **state)
{
    (void)state;
    float A[4] = {1, 2, 3, 4}, C[64 * 4];
    uint64_t before = tp_flops();
#pragma omp parallel for num_threads(4)
    for (int i = 0; i < 64; i++)
        tp_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0f, A, 2, A, 2, 0.0f,
                 C + 4 * i, 2);
    assert_int_equal(tp_flops() - before, 64 * 16);
}

/* tp_sgemm_record keeps each call's shape, whether it accumulated and
 * whether it ran inside a parallel region; past cap only counts; stopping
 * returns the count and keeps nothing more. */
static void test_record(void **state)
{
    (void)state;
    float A[12] = {0}, C[64 * 4];
    struct tp_sgemm_call calls[3] = {{0}};
    tp_sgemm_record(calls, 3);
    tp_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 2, 3, 4, 1.0f, A, 2, A, 3, 0.0f, C, 5);
#pragma omp parallel for num_threads(2)
    for (int i = 0; i < 4; i++)
        tp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, 2, 3, 1.0f, A, 3, A, 3, 1.0f, C + 4 * i, 2);
    assert_int_equal(tp_sgemm_record(NULL, 0), 5);
    const struct tp_sgemm_call want = {1, 0, 2, 3, 4, 2, 3, 5, 0, 0};
    assert_memory_equal(&calls[0], &want, sizeof want);
    for (int i = 1; i < 3; i++) {
        const struct tp_sgemm_call par = {0, 1, 1, 2, 3, 3, 3, 2, 1, 1};
        assert_memory_equal(&calls[i], &par, sizeof par);
    }
    tp_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1.0f, A, 1, A, 1, 0.0f, C, 1);
    assert_int_equal(calls[0].M, 2); /* stopped: nothing written */
    assert_int_equal(tp_sgemm_record(NULL, 0), 0);
}

/* tp_product_count counts a product made without sgemm and records it as
 * the call that would make it: inp [M,K] times W [N,K] transposed, dense. */
static void test_product_count(void **state)
{
    (void)state;
    struct tp_sgemm_call calls[2] = {{0}};
    uint64_t before = tp_flops();
    tp_sgemm_record(calls, 2);
    tp_product_count(6, 64, 256, 0);
#pragma omp parallel num_threads(2)
#pragma omp single
    tp_product_count(5, 16, 32, 1);
    assert_int_equal(tp_sgemm_record(NULL, 0), 2);
    assert_int_equal(tp_flops() - before, 2 * (6 * 64 * 256 + 5 * 16 * 32));
    const struct tp_sgemm_call want0 = {0, 1, 6, 64, 256, 256, 256, 64, 0, 0};
    const struct tp_sgemm_call want1 = {0, 1, 5, 16, 32, 32, 32, 16, 1, 1};
    assert_memory_equal(&calls[0], &want0, sizeof want0);
    assert_memory_equal(&calls[1], &want1, sizeof want1);
    tp_product_count(1, 1, 1, 0); /* stopped: counted, not kept */
    assert_int_equal(tp_sgemm_record(NULL, 0), 0);
    assert_int_equal(tp_flops() - before, 2 * (6 * 64 * 256 + 5 * 16 * 32 + 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_product_and_count),
        cmocka_unit_test(test_linear_layer_counts),
        cmocka_unit_test(test_threads_all_counted),
        cmocka_unit_test(test_record),
        cmocka_unit_test(test_product_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
