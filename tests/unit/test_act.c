/* test_act.c - GELU against erf in double, and the bias-fused GELU against
 * the bias added first and GELU after, bit for bit. */
#include "test.h"
#include "act.h"
#include "cli.h"
#include "rng.h"

static void test_gelu(void **state)
{
    (void)state;
    enum { N = 4099 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = -8.0f + 16.0f * (float)i / (N - 1);
    gelu_forward(y, x, N);
    for (int i = 0; i < N; i++) {
        double want = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
        if (fabs(y[i] - want) > 2e-7 + 1e-6 * fabs(want)) fail_msg("gelu(%g) = %.9g, want %.9g", x[i], y[i], want);
    }
}

/* rows x F of a linear layer's output and its bias, at 1 and 2 threads
 * (above the threads' threshold) */
static void test_gelu_bias(void **state)
{
    (void)state;
    enum { R = 37, F = 1000 };
    static float pre[R * F], fused[R * F], biased[R * F], want[R * F], bias[F];
    struct rng r;
    rng_seed(&r, 5);
    fill_uniform(&r, bias, F, -1, 1);
    for (int t = 1; t <= 2; t++) {
        tp_threads_set(t);
        fill_uniform(&r, pre, R * F, -4, 4);
        for (int i = 0; i < R * F; i++) biased[i] = pre[i] + bias[i % F];
        gelu_forward(want, biased, R * F);
        gelu_bias_forward(fused, pre, bias, R, F);
        assert_memory_equal(pre, biased, sizeof pre); /* the bias kept in pre for the backward */
        assert_memory_equal(fused, want, sizeof fused);
    }
    tp_threads_set(2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_gelu_bias),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
