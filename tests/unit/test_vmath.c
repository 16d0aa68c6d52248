/* test_vmath.c - the vectorisable expf and erff against double precision
 * over dense grids, and their edges (range ends, NaN, infinities). */
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
    if (worst_abs > 1.5e-7) fail_msg("vm_erff: %.3g absolute", worst_abs);
    if (worst_small > 4.0) fail_msg("vm_erff: %.2f ulp below 0.75", worst_small);
    assert_true(vm_erff(1e-30f) > 0.0f);
    assert_true(vm_erff(10.0f) == 1.0f && vm_erff(-INFINITY) == -1.0f);
    assert_true(isnan(vm_erff(NAN)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expf),
        cmocka_unit_test(test_erff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
