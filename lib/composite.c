/* composite.c - the blended composite of MaskGIT's editing; see composite.h. */
#include "composite.h"

#include "err.h"

#include <math.h>
#include <stdlib.h>

int composite_radius(double sigma)
{
    return sigma > 0 ? (int)ceil(3.0 * sigma) : 0;
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void composite_mask(float *m, const uint8_t *region, int GH, int GW, int H, int W, double sigma)
{
    TP_ASSERT(GH > 0 && GW > 0 && H % GH == 0 && W % GW == 0 && sigma >= 0);
    int ph = H / GH, pw = W / GW, r = composite_radius(sigma);
    double *w = tp_malloc(sizeof(double) * (size_t)(2 * r + 1)), sum = 0;
    for (int k = -r; k <= r; k++) sum += w[k + r] = r ? exp(-(double)k * k / (2.0 * sigma * sigma)) : 1.0;
    for (int k = 0; k <= 2 * r; k++) w[k] /= sum;
    /* rows: the upsampled region blurred along x */
    double *row = tp_malloc(sizeof(double) * (size_t)H * W);
    for (int y = 0; y < H; y++) {
        const uint8_t *g = region + (size_t)(y / ph) * GW;
        for (int x = 0; x < W; x++) {
            double a = 0;
            for (int k = -r; k <= r; k++) a += g[clampi(x + k, 0, W - 1) / pw] ? w[k + r] : 0.0;
            row[(size_t)y * W + x] = a;
        }
    }
    /* columns */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double a = 0;
            for (int k = -r; k <= r; k++) a += w[k + r] * row[(size_t)clampi(y + k, 0, H - 1) * W + x];
            float v = (float)a;
            m[(size_t)y * W + x] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
    free(row);
    free(w);
}

void composite_blend(float *out, const float *in, const float *gen, const float *m, int C, int H, int W)
{
    size_t n = (size_t)H * W;
    for (int c = 0; c < C; c++)
        for (size_t i = 0; i < n; i++) {
            size_t j = (size_t)c * n + i;
            out[j] = gen[j] * m[i] + in[j] * (1.0f - m[i]);
        }
}

void composite_grey(float *out, const float *in, const uint8_t *region, int GH, int GW, int C, int H, int W,
                    float value)
{
    TP_ASSERT(GH > 0 && GW > 0 && H % GH == 0 && W % GW == 0);
    int ph = H / GH, pw = W / GW;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t j = ((size_t)c * H + y) * W + x;
                out[j] = region[(size_t)(y / ph) * GW + x / pw] ? value : in[j];
            }
}
