/* pool.c - average pool, nearest upsample, adaptive max pool, blur (see
 * pool.h). Loops run over planes in parallel: each thread owns the output
 * (forward) or input-gradient (backward) plane it writes. */
#include "pool.h"

#include <math.h>
#include <stddef.h>

#include "chunks.h"
#include "err.h"


void avgpool2_forward(float *out, const float *inp, int B, int C, int H, int W)
{
    const int OH = H / 2, OW = W / 2;
    TP_ASSERT(OH > 0 && OW > 0);
#pragma omp parallel for if ((size_t)B * C * H * W > PAR_MIN) schedule(static)
    for (long pl = 0; pl < (long)B * C; pl++) {
        const float *in = inp + (size_t)pl * H * W;
        float *o = out + (size_t)pl * OH * OW;
        for (int y = 0; y < OH; y++) {
            const float *r0 = in + (size_t)(2 * y) * W, *r1 = r0 + W;
            for (int x = 0; x < OW; x++)
                o[(size_t)y * OW + x] = 0.25f * (r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1]);
        }
    }
}

void avgpool2_backward(float *dinp, const float *dout, int B, int C, int H, int W)
{
    const int OH = H / 2, OW = W / 2;
    TP_ASSERT(OH > 0 && OW > 0);
#pragma omp parallel for if ((size_t)B * C * H * W > PAR_MIN) schedule(static)
    for (long pl = 0; pl < (long)B * C; pl++) {
        float *di = dinp + (size_t)pl * H * W;
        const float *d = dout + (size_t)pl * OH * OW;
        for (int y = 0; y < OH; y++) {
            float *r0 = di + (size_t)(2 * y) * W, *r1 = r0 + W;
            for (int x = 0; x < OW; x++) {
                const float g = 0.25f * d[(size_t)y * OW + x];
                r0[2 * x] += g;
                r0[2 * x + 1] += g;
                r1[2 * x] += g;
                r1[2 * x + 1] += g;
            }
        }
    }
}

void upsample2_forward(float *out, const float *inp, int B, int C, int H, int W)
{
    const int OW = 2 * W;
#pragma omp parallel for if ((size_t)B * C * H * W > PAR_MIN) schedule(static)
    for (long pl = 0; pl < (long)B * C; pl++) {
        const float *in = inp + (size_t)pl * H * W;
        float *o = out + (size_t)pl * 4 * H * W;
        for (int y = 0; y < 2 * H; y++) {
            const float *r = in + (size_t)(y / 2) * W;
            float *orow = o + (size_t)y * OW;
            for (int x = 0; x < OW; x++) orow[x] = r[x / 2];
        }
    }
}

void upsample2_backward(float *dinp, const float *dout, int B, int C, int H, int W)
{
    const int OW = 2 * W;
#pragma omp parallel for if ((size_t)B * C * H * W > PAR_MIN) schedule(static)
    for (long pl = 0; pl < (long)B * C; pl++) {
        float *di = dinp + (size_t)pl * H * W;
        const float *d = dout + (size_t)pl * 4 * H * W;
        for (int y = 0; y < H; y++) {
            const float *d0 = d + (size_t)(2 * y) * OW, *d1 = d0 + OW;
            for (int x = 0; x < W; x++)
                di[(size_t)y * W + x] += (d0[2 * x] + d0[2 * x + 1]) + (d1[2 * x] + d1[2 * x + 1]);
        }
    }
}

/* Bin i of n over an axis of length len: [floor(i*len/n), ceil((i+1)*len/n)). */
static int bin_start(int i, int len, int n) { return (int)((long)i * len / n); }
static int bin_end(int i, int len, int n) { return (int)(((long)(i + 1) * len + n - 1) / n); }

void adaptive_maxpool_forward(float *out, int32_t *idx, const float *inp, int B,
                              int C, int H, int W, int OH, int OW)
{
    TP_ASSERT(B > 0 && C > 0 && H > 0 && W > 0 && OH > 0 && OW > 0);
#pragma omp parallel for if ((size_t)B * C * H * W > PAR_MIN) schedule(static)
    for (long pl = 0; pl < (long)B * C; pl++) {
        const float *in = inp + (size_t)pl * H * W;
        for (int i = 0; i < OH; i++) {
            const int h0 = bin_start(i, H, OH), h1 = bin_end(i, H, OH);
            for (int j = 0; j < OW; j++) {
                const int w0 = bin_start(j, W, OW), w1 = bin_end(j, W, OW);
                int32_t best = h0 * W + w0;
                float m = -INFINITY;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) {
                        const float v = in[(size_t)h * W + w];
                        if (v > m || isnan(v)) {
                            m = v;
                            best = h * W + w;
                        }
                    }
                const size_t o = (size_t)pl * OH * OW + (size_t)i * OW + j;
                out[o] = m;
                idx[o] = best;
            }
        }
    }
}

void adaptive_maxpool_backward(float *dinp, const float *dout, const int32_t *idx,
                               int B, int C, int H, int W, int OH, int OW)
{
    const size_t P = (size_t)OH * OW;
    /* overlapping bins may route several outputs to one input: the plane's
     * thread adds them in output order */
#pragma omp parallel for if ((size_t)B * C * P > PAR_MIN) schedule(static)
    for (long pl = 0; pl < (long)B * C; pl++) {
        float *di = dinp + (size_t)pl * H * W;
        for (size_t p = 0; p < P; p++) {
            const int32_t k = idx[(size_t)pl * P + p];
            TP_ASSERT(k >= 0 && k < H * W);
            di[k] += dout[(size_t)pl * P + p];
        }
    }
}

void blur_kernel(float k[16])
{
    static const float f[4] = {1, 3, 3, 1};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) k[i * 4 + j] = f[i] * f[j] / 64.0f;
}

struct conv2d_shape blur_shape(int B, int C, int H, int W)
{
    return conv2d_shape_same(B, C, H, W, C, 4, 4, 2, C);
}

/* The same 4x4 filter for every channel: weight [C,1,4,4]. */
static float *blur_weight(int C)
{
    float *w = tp_malloc((size_t)C * 16 * sizeof(float));
    blur_kernel(w);
    for (int c = 1; c < C; c++)
        for (int i = 0; i < 16; i++) w[(size_t)c * 16 + i] = w[i];
    return w;
}

void blur_forward(float *out, const float *inp, int B, int C, int H, int W)
{
    struct conv2d_shape s = blur_shape(B, C, H, W);
    float *w = blur_weight(C);
    conv2d_forward(out, inp, w, NULL, &s);
    free(w);
}

void blur_backward(float *dinp, const float *dout, int B, int C, int H, int W)
{
    struct conv2d_shape s = blur_shape(B, C, H, W);
    float *w = blur_weight(C);
    conv2d_backward(dinp, NULL, NULL, dout, NULL, w, &s);
    free(w);
}
