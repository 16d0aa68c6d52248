/* vmath.h - expf and erff as branch-free inline code, so that a loop over
 * them vectorises (#pragma omp simd) where libm's calls keep it scalar.
 * Accuracy (tests/unit/test_vmath.c, against double precision): vm_expf
 * within 2 ulp on [-87, 88]; vm_erff within 1.5e-7 absolute and 4 ulp for
 * |x| < 0.75. Polynomials fitted here (least squares on Chebyshev nodes):
 *   exp(r) = 1 + r + r^2 q(r), |r| <= ln2/2, q of degree 5;
 *   erf(x) = x p(x^2) for |x| < 0.75, p of degree 5;
 *   erfc(x) = exp(-x^2) h(1/(1 + x/2)) for 0.75 <= x <= 4, h of degree 7
 *   (beyond 4, erf rounds to 1 in float).
 * exp of anything below -87 is 0 (the exact result is subnormal or 0:
 * masked logits at -inf get exactly 0), above 88 it is exp(88); NaN gives
 * NaN. */
#ifndef TP_VMATH_H
#define TP_VMATH_H

#include <math.h>
#include <stdint.h>

static inline float vm_expf(float x)
{
    float xc = x > -87.0f ? x : -87.0f; /* NaN lands here too, and is restored below */
    xc = xc < 88.0f ? xc : 88.0f;
    /* k = round(x / ln2) by the 1.5 * 2^23 trick, r = x - k ln2 in two parts */
    const float shift = 12582912.0f;
    float kf = xc * 1.44269504088896341f + shift;
    kf -= shift;
    float r = xc - kf * 0.693145751953125f;
    r -= kf * 1.428606765330187e-06f;
    float q = 1.9826496207134297e-4f;
    q = q * r + 1.3946020781752497e-3f;
    q = q * r + 8.333429975323126e-3f;
    q = q * r + 4.166627028511606e-2f;
    q = q * r + 1.6666666163889046e-1f;
    q = q * r + 5.000000078130322e-1f;
    float e = 1.0f + r + r * r * q;
    union { uint32_t u; float f; } scale = {.u = (uint32_t)((int32_t)kf + 127) << 23};
    float y = x >= -87.0f ? e * scale.f : 0.0f; /* below: a subnormal result, flushed */
    return x == x ? y : x;
}

static inline float vm_erff(float x)
{
    float a = fabsf(x), t = a * a;
    float p = -6.787303651923889e-4f;
    p = p * t + 5.119888702056177e-3f;
    p = p * t - 2.6837520018453676e-2f;
    p = p * t + 1.1283440315369388e-1f;
    p = p * t - 3.7612624044872583e-1f;
    p = p * t + 1.128379166453178f;
    float small = x * p;
    float ac = a < 4.0f ? a : 4.0f;
    float u = 1.0f / (1.0f + 0.5f * ac);
    float h = 1.1903323104806235e-1f;
    h = h * u - 4.7007943472753927e-1f;
    h = h * u + 5.615776251470725e-1f;
    h = h * u - 1.0220483090004061e-1f;
    h = h * u + 3.471056224139115e-1f;
    h = h * u + 2.5989355347894827e-1f;
    h = h * u + 2.8487897296791037e-1f;
    h = h * u - 1.5185621187140613e-4f;
    float big = copysignf(1.0f - vm_expf(-ac * ac) * h, x);
    float y = a < 0.75f ? small : big;
    return x == x ? y : x;
}

#endif
