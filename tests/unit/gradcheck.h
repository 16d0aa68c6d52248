/* gradcheck.h - backward passes against central finite differences.
 *
 * The layer's forward runs in F32; the scalar probed is L = sum(out * r) with
 * r a fixed random projection, accumulated in double by the caller's loss
 * function. For each checked index i, (L(x+eps) - L(x-eps)) / 2eps is
 * compared with the analytic gradient dL/dx[i] that the backward produced
 * from dout = r. A relative tolerance of a few 1e-2 still catches a wrong
 * sign, a missing term or a transposed index, which all give O(1) errors.
 */
#ifndef TP_GRADCHECK_H
#define TP_GRADCHECK_H

#include "test.h"

typedef double (*gc_loss_fn)(void *ctx);

/* Dot product of an F32 output with a projection, in double. */
static inline double gc_dot(const float *out, const float *r, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * r[i];
    return s;
}

/* Check analytic[0..n) = dL/dx against finite differences on at most
 * max_checks indices spread over x (all if n is small). Kinks: indices where
 * the two one-sided slopes disagree by more than tol are skipped. */
static inline void gc_check_(const char *what, float *x, const float *analytic,
                             size_t n, gc_loss_fn loss, void *ctx, float eps,
                             double tol, size_t max_checks, const char *file,
                             int line)
{
    size_t step = n > max_checks ? n / max_checks : 1;
    double worst = 0;
    size_t worst_i = 0, checked = 0;
    double l0 = loss(ctx);
    for (size_t i = 0; i < n; i += step) {
        float keep = x[i];
        x[i] = keep + eps;
        double lp = loss(ctx);
        x[i] = keep - eps;
        double lm = loss(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * (double)eps);
        double right = (lp - l0) / eps, left = (l0 - lm) / eps;
        double scale = fabs(right) + fabs(left) + 1e-3;
        if (fabs(right - left) > 0.5 * scale && fabs(right - left) > 1e-2) continue; /* kink */
        double err = fabs(num - analytic[i]) / fmax(1.0, fmax(fabs(num), fabs(analytic[i])));
        checked++;
        if (err > worst) {
            worst = err;
            worst_i = i;
        }
        if (err > tol)
            print_error("%s[%zu]: analytic %.6g numeric %.6g\n", what, i, analytic[i], num);
    }
    if (worst > tol || checked == 0) {
        print_error("%s: worst error %.3g at %zu (tol %g), %zu checked\n", what, worst,
                    worst_i, tol, checked);
        _fail(file, line);
    }
}
#define gc_check(what, x, analytic, n, loss, ctx, eps, tol) \
    gc_check_(what, x, analytic, n, loss, ctx, eps, tol, 256, __FILE__, __LINE__)

#endif
