/* test_act.c - GELU against erf in double, its ends and special values,
 * the bias-fused GELU against the bias added first and GELU after, bit for
 * bit, and the in-place GELU gradient against the accumulating one into
 * zeros (the same values; a zero's sign may differ), with the derivative
 * against a central difference of GELU in double. */
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
        /* act_gelu (act.h) is x/2 + h with h within a few ulp: where x/2
         * is large the absolute error is that of h, and where h cancels
         * x/2 (x below -3) it is all of GELU's; 7.9e-7 the worst here, at 5.1 */
        if (fabs(y[i] - want) > 1e-6 + 1e-6 * fabs(want)) fail_msg("gelu(%g) = %.9g, want %.9g", x[i], y[i], want);
    }
}

/* GELU's ends and special values: x from where erf rounds to 1 (|x| >=
 * 5.5426) on, 0 below it; NaN stays NaN; either side of that edge within
 * the bound */
static void test_gelu_ends(void **state)
{
    (void)state;
    assert_true(act_gelu(INFINITY) == INFINITY);
    assert_true(act_gelu(1e30f) == 1e30f && act_gelu(-1e30f) == 0.0f);
    assert_true(act_gelu(6.0f) == 6.0f && act_gelu(-6.0f) == 0.0f);
    assert_true(isnan(act_gelu(NAN)));
    assert_true(act_gelu(0.0f) == 0.0f);
    for (float x = 5.53f; x < 5.56f; x = nextafterf(x, 6.0f))
        for (int sign = -1; sign <= 1; sign += 2) {
            const float v = (float)sign * x;
            const double want = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
            if (fabs(act_gelu(v) - want) > 1e-6 + 1e-6 * fabs(want))
                fail_msg("gelu(%.9g) = %.9g, want %.9g", v, act_gelu(v), want);
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

/* the tanh form's inner function, in double */
static double std_tanh(double a) { return tanh(0.7978845608028654 * (a + 0.044715 * a * a * a)); }

static void test_gelu_backward_inplace(void **state)
{
    (void)state;
    enum { N = 40000 };
    static float x[N], d[N], acc[N];
    struct rng r;
    rng_seed(&r, 9);
    for (int tanh_form = 0; tanh_form <= 1; tanh_form++) {
        fill_uniform(&r, x, N, -6, 6);
        fill_uniform(&r, d, N, -1, 1);
        memset(acc, 0, sizeof acc);
        if (tanh_form)
            gelu_tanh_backward(acc, d, x, N);
        else
            gelu_backward(acc, d, x, N);
        for (int i = 0; i < N; i++) {
            const double h = 1e-4, a = x[i];
            const double g = tanh_form ? (0.5 * (a + h) * (1 + std_tanh(a + h)) - 0.5 * (a - h) * (1 + std_tanh(a - h))) / (2 * h)
                                  : (0.5 * (a + h) * (1 + erf((a + h) / sqrt(2.0))) - 0.5 * (a - h) * (1 + erf((a - h) / sqrt(2.0)))) / (2 * h);
            if (fabs(acc[i] - g * d[i]) > 1e-5) fail_msg("gelu'(%g) * %g = %.9g, want %.9g", x[i], d[i], acc[i], g * d[i]);
        }
        gelu_backward_inplace(d, x, N, tanh_form);
        /* equal values: only the sign of a zero may differ (0 + -0 is +0) */
        for (int i = 0; i < N; i++)
            if (!(d[i] == acc[i])) fail_msg("in place %.9g, into zeros %.9g at %g", d[i], acc[i], x[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_gelu_ends),
        cmocka_unit_test(test_gelu_bias),
        cmocka_unit_test(test_gelu_backward_inplace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
