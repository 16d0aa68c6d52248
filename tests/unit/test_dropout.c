/* test_dropout.c - counter-based dropout: identity at p=0, drop rate and
 * scaling, the same mask in forward and backward and at any thread count,
 * element masks matching dropout_scale, finite differences, and a slice
 * through the _at forms (the whole tensor's mask). */
#include "test.h"
#include "gradcheck.h"

#include <omp.h>

#include "cli.h"
#include "dropout.h"

enum { N = 100000 };

static float *ramp(size_t n)
{
    float *x = tp_malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f + (float)(i % 97);
    return x;
}

static void test_identity(void **state)
{
    (void)state;
    float *x = ramp(N), *y = tp_malloc(sizeof(float) * N), *d = tp_calloc(N, sizeof(float));
    dropout_forward(y, x, N, 0.0f, 7);
    assert_memory_equal(x, y, sizeof(float) * N);
    dropout_backward(d, x, N, 0.0f, 7);
    assert_memory_equal(x, d, sizeof(float) * N);
    free(x), free(y), free(d);
}

static void test_rate_and_scale(void **state)
{
    (void)state;
    const float p = 0.25f;
    float *x = ramp(N), *y = tp_malloc(sizeof(float) * N);
    dropout_forward(y, x, N, p, 11);
    size_t zeros = 0;
    for (size_t i = 0; i < N; i++) {
        if (y[i] == 0.0f)
            zeros++;
        else if (y[i] != x[i] * (1.0f / (1.0f - p)))
            fail_msg("y[%zu] = %g, want %g", i, y[i], x[i] / (1 - p));
    }
    double rate = (double)zeros / N; /* binomial std 0.0014 */
    if (fabs(rate - p) > 0.01) fail_msg("drop rate %.4f, want %.2f", rate, p);
    /* p = 1 drops everything */
    dropout_forward(y, x, N, 1.0f, 11);
    for (size_t i = 0; i < N; i++)
        if (y[i] != 0.0f) fail_msg("p=1: y[%zu] = %g", i, y[i]);
    free(x), free(y);
}

/* Backward applies the forward's mask; a slice's mask is dropout_scale at
 * the element's index; the mask changes with the seed. */
static void test_same_mask(void **state)
{
    (void)state;
    const float p = 0.4f;
    float *one = tp_malloc(sizeof(float) * N), *f = tp_malloc(sizeof(float) * N);
    float *b = tp_calloc(N, sizeof(float)), *g = tp_malloc(sizeof(float) * N);
    for (size_t i = 0; i < N; i++) one[i] = 1.0f;
    dropout_forward(f, one, N, p, 5);
    dropout_backward(b, one, N, p, 5);
    assert_memory_equal(f, b, sizeof(float) * N);
    for (size_t i = 0; i < N; i++)
        if (f[i] != dropout_scale(p, 5, i)) fail_msg("element %zu: mask differs", i);
    dropout_forward(g, one, N, p, 6);
    size_t differ = 0;
    for (size_t i = 0; i < N; i++) differ += f[i] != g[i];
    if (differ < N / 4) fail_msg("seeds 5 and 6 differ on only %zu of %d", differ, N);
    free(one), free(f), free(b), free(g);
}

static void test_threads(void **state)
{
    (void)state;
    float *x = ramp(N), *y1 = tp_malloc(sizeof(float) * N), *y2 = tp_malloc(sizeof(float) * N);
    int keep = omp_get_max_threads();
    tp_threads_set(1);
    dropout_forward(y1, x, N, 0.3f, 9);
    tp_threads_set(2);
    dropout_forward(y2, x, N, 0.3f, 9);
    tp_threads_set(keep);
    assert_memory_equal(y1, y2, sizeof(float) * N);
    free(x), free(y1), free(y2);
}

enum { M = 50 };
struct ctx {
    float x[M], y[M], r[M];
};

static double loss(void *p)
{
    struct ctx *c = p;
    dropout_forward(c->y, c->x, M, 0.3f, 3);
    return gc_dot(c->y, c->r, M);
}

static void test_gradcheck(void **state)
{
    (void)state;
    struct ctx c;
    struct rng r;
    rng_seed(&r, 1);
    fill_uniform(&r, c.x, M, -1, 1);
    fill_uniform(&r, c.r, M, -1, 1);
    float d[M] = {0};
    dropout_backward(d, c.r, M, 0.3f, 3);
    gc_check("dinp", c.x, d, M, loss, &c, 1e-2f, 1e-3);
}

/* A slice of a tensor through the _at forms gets the whole tensor's mask
 * for those elements (a batch cut into chunks, block.h). */
static void test_slice(void **state)
{
    (void)state;
    enum { W = 1000, FIRST = 337, SLICE = 400 };
    float x[W], whole[W], part[SLICE], dwhole[W] = {0}, dpart[SLICE] = {0};
    struct rng r;
    rng_seed(&r, 4);
    fill_uniform(&r, x, W, -1, 1);
    dropout_forward(whole, x, W, 0.4f, 21);
    dropout_forward_at(part, x + FIRST, SLICE, 0.4f, 21, FIRST);
    assert_memory_equal(part, whole + FIRST, sizeof part);
    dropout_backward(dwhole, x, W, 0.4f, 21);
    dropout_backward_at(dpart, x + FIRST, SLICE, 0.4f, 21, FIRST);
    assert_memory_equal(dpart, dwhole + FIRST, sizeof dpart);
    dropout_forward_at(part, x + FIRST, SLICE, 0.4f, 21, 0);
    assert_memory_not_equal(part, whole + FIRST, sizeof part);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_rate_and_scale),
        cmocka_unit_test(test_same_mask),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_slice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
