/* vmath.h - expf, erff, tanhf and a double log as branch-free inline code, so
 * that a loop over them vectorises (#pragma omp simd) where libm's calls
 * keep it scalar.
 * Accuracy (tests/unit/test_vmath.c, against double precision): vm_expf
 * within 2 ulp on [-87, 88]; vm_erff within 3.5e-7 absolute (5.3 ulp of
 * 1 near 4) and 4 ulp for |x| < 0.75. Polynomials fitted here (least
 * squares on Chebyshev nodes):
 *   exp(r) = 1 + r + r^2 q(r), |r| <= ln2/2, q of degree 5;
 *   erf(x) = x P(x^2) / Q(x^2) for |x| <= 4, P of degree 6 and Q of
 *   degree 5, for relative error (linearised, reweighted towards the
 *   largest: 2e-9 in double; the rest is float rounding; beyond 4 erf
 *   rounds to 1 in float).
 * exp of anything below -87 is 0 (the exact result is subnormal or 0:
 * masked logits at -inf get exactly 0), above 88 it is exp(88); NaN gives
 * NaN. */
#ifndef TP_VMATH_H
#define TP_VMATH_H

#include <math.h>
#include <stdint.h>

/* a * b + c in one rounding where the build has FMA (x86-64-v3, the
 * default here): ISO C mode (-std=c11) contracts nothing, and a multiply
 * and an add were two instructions at every step of the polynomials. */
/* inlined always: a call inside a simd loop keeps the loop scalar (with the
 * fused steps GCC stopped inlining vm_erff into GELU's tile epilogue) */
#define VM_INLINE static inline __attribute__((always_inline))

#ifdef __FMA__
#define VM_FMAF(a, b, c) __builtin_fmaf(a, b, c)
#define VM_FMA(a, b, c) __builtin_fma(a, b, c)
#else
#define VM_FMAF(a, b, c) ((a) * (b) + (c))
#define VM_FMA(a, b, c) ((a) * (b) + (c))
#endif

VM_INLINE float vm_expf(float x)
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
    q = VM_FMAF(q, r, 1.3946020781752497e-3f);
    q = VM_FMAF(q, r, 8.333429975323126e-3f);
    q = VM_FMAF(q, r, 4.166627028511606e-2f);
    q = VM_FMAF(q, r, 1.6666666163889046e-1f);
    q = VM_FMAF(q, r, 5.000000078130322e-1f);
    float e = 1.0f + r + r * r * q;
    union { uint32_t u; float f; } scale = {.u = (uint32_t)((int32_t)kf + 127) << 23};
    float y = x >= -87.0f ? e * scale.f : 0.0f; /* below: a subnormal result, flushed */
    return x == x ? y : x;
}

/* c[0] t^(n-1) + c[1] t^(n-2) + ... + c[n-1], by Horner's rule: n is a
 * constant at the call, and the loop unrolls into a chain of FMAs before
 * the caller's loop vectorises (without the pragma GCC left GELU's tile
 * epilogue scalar: 48 GFLOP/s against 89) */
VM_INLINE float vm_horner(float t, const float *c, int n)
{
    float p = c[0];
#pragma GCC unroll 16
    for (int i = 1; i < n; i++) p = VM_FMAF(p, t, c[i]);
    return p;
}

/* erf(x) = x P(x^2) / Q(x^2) for |x| <= 4: P's and Q's coefficients
 * (VM_ERF_Pi of t^i), highest power first; erf rounds to 1 in float from
 * |x| = VM_ERF_ONE on */
#define VM_ERF_P6 -1.3201803206186469e-8f
#define VM_ERF_P5 4.684688065026421e-6f
#define VM_ERF_P4 3.796062374021858e-4f
#define VM_ERF_P3 3.8496290799230337e-3f
#define VM_ERF_P2 5.43169230222702e-2f
#define VM_ERF_P1 1.8520386517047882e-1f
#define VM_ERF_P0 1.128379225730896f
#define VM_ERF_Q5 6.310975004453212e-5f
#define VM_ERF_Q4 1.307570026256144e-3f
#define VM_ERF_Q3 1.5462113544344902e-2f
#define VM_ERF_Q2 1.1395861208438873e-1f
#define VM_ERF_Q1 4.974660575389862e-1f
#define VM_ERF_Q0 1.0f
#define VM_ERF_ONE 3.9192059f
static const float vm_erf_p[7] = {VM_ERF_P6, VM_ERF_P5, VM_ERF_P4, VM_ERF_P3, VM_ERF_P2, VM_ERF_P1, VM_ERF_P0};
static const float vm_erf_q[6] = {VM_ERF_Q5, VM_ERF_Q4, VM_ERF_Q3, VM_ERF_Q2, VM_ERF_Q1, VM_ERF_Q0};

/* erf(x) = x P(x^2) / Q(x^2), |x| clamped at 4, the result at 1: one
 * branch-free path, 2.2-2.4x faster than the two it replaced (a polynomial
 * below 0.75, exp(-x^2) times a polynomial in 1/(1 + x/2) above: a vector
 * computed both, with a division and an exp) */
VM_INLINE float vm_erff(float x)
{
    float a = fabsf(x);
    a = a < 4.0f ? a : 4.0f;
    const float t = a * a;
    float r = a * vm_horner(t, vm_erf_p, 7) / vm_horner(t, vm_erf_q, 6);
    r = a < VM_ERF_ONE && r < 1.0f ? r : 1.0f; /* from where erf rounds to 1 */
    const float y = copysignf(r, x);
    return x == x ? y : x;
}

/* tanh: x + x^3 p(x^2) for |x| < 0.625 (p of degree 4, fitted as above for
 * relative error), else 1 - 2 / (exp(2|x|) + 1) with x's sign (|x| clamped
 * at 10, where both round to 1). Within 2 ulp (tested). */
VM_INLINE float vm_tanhf(float x)
{
    float a = fabsf(x), z = x * x;
    float p = -5.691985599696636e-3f;
    p = VM_FMAF(p, z, 2.0626291632652283e-2f);
    p = VM_FMAF(p, z, -5.373531952500343e-2f);
    p = VM_FMAF(p, z, 1.3331381976604462e-1f);
    p = VM_FMAF(p, z, -3.333328068256378e-1f);
    float small = VM_FMAF(x * z, p, x);
    float e = vm_expf(2.0f * (a < 10.0f ? a : 10.0f));
    float big = copysignf(1.0f - 2.0f / (e + 1.0f), x);
    float y = a < 0.625f ? small : big;
    return x == x ? y : x;
}

/* log of a positive normal double, within 1 ulp (tested), for the Gumbel
 * noise of sampling (maskgit.c), whose libm calls kept it scalar: x = 2^k m
 * with m in [sqrt(1/2), sqrt(2)), f = m - 1, s = f / (2 + f), and
 * log(1 + f) = 2 atanh(s) = f - (f^2/2 - s (f^2/2 + R)), R = 2 s^2/3 +
 * 2 s^4/5 + ... to s^20 (|s| < 0.172: what follows is below 1e-18 of the
 * result); k ln2 in two parts, the first exact in a product by k. Callers
 * clamp: no care for 0, subnormals, infinities or NaN. */
VM_INLINE double vm_log(double x)
{
    const uint64_t sqrt_half = 0x3fe6a09e667f3bcdull; /* the bits of sqrt(1/2) */
    union { double d; uint64_t u; } b = {.d = x}, m, kd;
    /* the offset carries into the exponent where the mantissa is sqrt(2) or
     * more: k one higher and m = mantissa / 2 */
    uint64_t ix = b.u + (0x3ff0000000000000ull - sqrt_half);
    m.u = (ix & 0x000fffffffffffffull) + sqrt_half;
    kd.u = 0x4330000000000000ull | (ix >> 52); /* 2^52 + biased k, exactly */
    double k = (kd.d - 4503599627370496.0) - 1023.0;
    double f = m.d - 1.0, hfsq = 0.5 * f * f, s = f / (2.0 + f), z = s * s;
    double r = 2.0 / 21;
    r = VM_FMA(r, z, 2.0 / 19);
    r = VM_FMA(r, z, 2.0 / 17);
    r = VM_FMA(r, z, 2.0 / 15);
    r = VM_FMA(r, z, 2.0 / 13);
    r = VM_FMA(r, z, 2.0 / 11);
    r = VM_FMA(r, z, 2.0 / 9);
    r = VM_FMA(r, z, 2.0 / 7);
    r = VM_FMA(r, z, 2.0 / 5);
    r = VM_FMA(r, z, 2.0 / 3);
    r *= z;
    const double ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 0x1.a39ef35793c76p-33;
    return k * ln2_hi - ((hfsq - (s * (hfsq + r) + k * ln2_lo)) - f);
}

#endif
