/* lanesum.h - sums in double over LANESUM_LANES interleaved partial sums,
 * added in a fixed order at the end. One chain of dependent double
 * additions waits on the adder's latency at every element (groupnorm and
 * layernorm spent 2 ns an element there); eight independent lanes keep it
 * busy and vectorize. The order is fixed, so results are the same on any
 * CPU and at any thread count. */
#ifndef TP_LANESUM_H
#define TP_LANESUM_H

#include <stddef.h>

#define LANESUM_LANES 8

static inline double lanesum_total(const double *a)
{
    double t = 0;
    for (int j = 0; j < LANESUM_LANES; j++) t += a[j];
    return t;
}

/* the sum of x[i] */
static inline double lanesum(const float *x, size_t n)
{
    double a[LANESUM_LANES] = {0};
    size_t i = 0;
    for (; i + LANESUM_LANES <= n; i += LANESUM_LANES)
        for (int j = 0; j < LANESUM_LANES; j++) a[j] += x[i + j];
    for (; i < n; i++) a[0] += x[i];
    return lanesum_total(a);
}

/* the sum of (x[i] - m)^2 */
static inline double lanesum_sqdev(const float *x, size_t n, double m)
{
    double q[LANESUM_LANES] = {0};
    size_t i = 0;
    for (; i + LANESUM_LANES <= n; i += LANESUM_LANES)
        for (int j = 0; j < LANESUM_LANES; j++) {
            const double v = x[i + j] - m;
            q[j] += v * v;
        }
    for (; i < n; i++) {
        const double v = x[i] - m;
        q[0] += v * v;
    }
    return lanesum_total(q);
}

/* The two sums of a normalisation's backward, added to *sg and *sgn:
 * g = d[i] * w[i] (w NULL: d[i]) and g * xhat, xhat = (x[i] - m) * r, the
 * products in float as the forward computed xhat. */
static inline void lanesum_g_gxhat(const float *d, const float *w, const float *x, size_t n,
                                   float m, float r, double *sg, double *sgn)
{
    double a[LANESUM_LANES] = {0}, q[LANESUM_LANES] = {0};
    size_t i = 0;
    for (; i + LANESUM_LANES <= n; i += LANESUM_LANES)
        for (int j = 0; j < LANESUM_LANES; j++) {
            const float g = w ? d[i + j] * w[i + j] : d[i + j];
            a[j] += g;
            q[j] += (double)g * ((x[i + j] - m) * r);
        }
    for (; i < n; i++) {
        const float g = w ? d[i] * w[i] : d[i];
        a[0] += g;
        q[0] += (double)g * ((x[i] - m) * r);
    }
    *sg += lanesum_total(a);
    *sgn += lanesum_total(q);
}

#endif
