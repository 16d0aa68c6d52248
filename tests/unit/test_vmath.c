/* test_vmath.c - the vectorisable expf and erff against double precision
 * over dense grids, and their edges (range ends, NaN, infinities); the
 * double log against libm's over the range the Gumbel noise uses. */
#include "test.h"
#include "vmath.h"

#include <float.h>

/* distance in ulps of f from the double d (at f's exponent) */
static double ulps(float f, double d)
{
    int e;
    frexp(d, &e);
    double ulp = ldexp(1.0, e - 24);
    if (ulp < FLT_MIN * FLT_EPSILON) ulp = FLT_MIN * FLT_EPSILON;
    return fabs((double)f - d) / ulp;
}

static void test_expf(void **state)
{
    (void)state;
    double worst = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -87.0f + 175.0f * (float)i / 2000000.0f;
        double u = ulps(vm_expf(x), exp((double)x));
        if (u > worst) worst = u;
    }
    if (worst > 2.0) fail_msg("vm_expf: %.2f ulp", worst);
    assert_true(vm_expf(0.0f) == 1.0f);
    assert_true(vm_expf(-87.5f) == 0.0f && vm_expf(-INFINITY) == 0.0f);
    assert_true(isfinite(vm_expf(1000.0f)) && vm_expf(1000.0f) > 1e38f);
    assert_true(isnan(vm_expf(NAN)));
}

static void test_erff(void **state)
{
    (void)state;
    double worst_abs = 0, worst_small = 0;
    for (int i = -2000000; i <= 2000000; i++) {
        float x = 6.0f * (float)i / 2000000.0f;
        float y = vm_erff(x);
        double d = erf((double)x), err = fabs((double)y - d);
        if (err > worst_abs) worst_abs = err;
        if (fabsf(x) < 0.75f && x != 0.0f) {
            double u = ulps(y, d);
            if (u > worst_small) worst_small = u;
        }
        if (y != -vm_erff(-x)) fail_msg("vm_erff is not odd at %g", x);
    }
    if (worst_abs > 3.5e-7) fail_msg("vm_erff: %.3g absolute", worst_abs);
    if (worst_small > 4.0) fail_msg("vm_erff: %.2f ulp below 0.75", worst_small);
    assert_true(vm_erff(1e-30f) > 0.0f);
    assert_true(vm_erff(10.0f) == 1.0f && vm_erff(-INFINITY) == -1.0f);
    assert_true(isnan(vm_erff(NAN)));
}

static void test_tanhf(void **state)
{
    (void)state;
    double worst = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -12.0f + 24.0f * (float)i / 2000000.0f;
        double u = ulps(vm_tanhf(x), tanh((double)x));
        if (u > worst) worst = u;
    }
    for (int i = 1; i <= 100000; i++) { /* small arguments, where tanh(x) ~ x */
        float x = 1e-6f * (float)i;
        double u = ulps(vm_tanhf(x), tanh((double)x));
        if (u > worst) worst = u;
    }
    if (worst > 2.0) fail_msg("vm_tanhf: %.2f ulp", worst);
    assert_true(vm_tanhf(0.0f) == 0.0f && vm_tanhf(-0.0f) == 0.0f);
    assert_true(vm_tanhf(INFINITY) == 1.0f && vm_tanhf(-INFINITY) == -1.0f && vm_tanhf(-50.0f) == -1.0f);
    assert_true(isnan(vm_tanhf(NAN)));
}

/* distance in ulps of y from libm's log(x), at the larger's exponent */
static double log_ulps(double x)
{
    double want = log(x), got = vm_log(x);
    int e;
    frexp(fabs(want) > fabs(got) ? want : got, &e);
    return fabs(got - want) / ldexp(1.0, e - 53);
}

/* Gumbel noise takes -log(u) of every uniform u = j/2^24 (1e-20 for 0),
 * then -log of that, in (1e-20, 47]: a log-spaced grid over [1e-20, 1e3]
 * and every u. Exact at 1 and at powers of two. (Measured: 1.0 ulp at
 * worst, and the float noise -log(-log(u)) equal to libm's for every u.) */
static void test_log(void **state)
{
    (void)state;
    double worst = 0;
    for (int i = 0; i <= 2000000; i++) {
        double u = log_ulps(1e-20 * pow(1e23, i / 2000000.0));
        if (u > worst) worst = u;
    }
    for (int j = 1; j < 1 << 24; j++) {
        double u = log_ulps(j / 16777216.0);
        if (u > worst) worst = u;
    }
    if (worst > 1.0) fail_msg("vm_log: %.3f ulp", worst);
    assert_true(vm_log(1.0) == 0.0);
    assert_true(vm_log(0.5) == -log(2.0) && vm_log(1024.0) == 10 * log(2.0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expf),
        cmocka_unit_test(test_erff),
        cmocka_unit_test(test_tanhf),
        cmocka_unit_test(test_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
