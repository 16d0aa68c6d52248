/* perc_ops.c - max pooling, antialiased bilinear resize and the
 * channel-conversion adjoint (see perc_ops.h). Every loop is
 * parallel over an output index (a plane, or a position): each thread owns
 * its writes and sums run in a fixed order. */
#include "perc_ops.h"

#include <math.h>
#include <string.h>

#include "act.h"
#include "chunks.h"
#include "err.h"
#include "imgops.h"


void maxpool2_forward(float *out, int32_t *idx, const float *inp, int B, int C, int H, int W)
{
    const int OH = H / 2, OW = W / 2;
    const long P = (long)B * C;
#pragma omp parallel for if (P * OH * OW > PAR_MIN) schedule(static)
    for (long p = 0; p < P; p++) {
        const float *in = inp + (size_t)p * H * W;
        float *o = out + (size_t)p * OH * OW;
        int32_t *ix = idx + (size_t)p * OH * OW;
        for (int i = 0; i < OH; i++)
            for (int j = 0; j < OW; j++) {
                int best = 2 * i * W + 2 * j;
                float m = in[best];
                for (int k = 1; k < 4; k++) {
                    int q = (2 * i + k / 2) * W + 2 * j + k % 2;
                    if (in[q] > m || isnan(in[q])) m = in[q], best = q;
                }
                o[i * OW + j] = m;
                ix[i * OW + j] = best;
            }
    }
}

void maxpool2_backward(float *dinp, const float *dout, const int32_t *idx, int B, int C,
                       int H, int W)
{
    const int OH = H / 2, OW = W / 2;
    const long P = (long)B * C;
    /* windows do not overlap, so each input gets at most one output */
#pragma omp parallel for if (P * OH * OW > PAR_MIN) schedule(static)
    for (long p = 0; p < P; p++) {
        float *d = dinp + (size_t)p * H * W;
        const float *g = dout + (size_t)p * OH * OW;
        const int32_t *ix = idx + (size_t)p * OH * OW;
        for (int k = 0; k < OH * OW; k++) d[ix[k]] += g[k];
    }
}

/* ---- antialiased bilinear resize --------------------------------------- */

static float tri(float x)
{
    if (x < 0) x = -x;
    return x < 1.0f ? 1.0f - x : 0.0f;
}

/* torch 1.13 _compute_indices_weights_aa with the bilinear filter, in the
 * same float/double mix so the weights agree to the last bits. */
static void axis_init(struct resize_axis *a, int in, int out)
{
    TP_ASSERT(in > 0 && out > 0);
    const float scale = (float)in / (float)out;
    const float support = scale >= 1.0f ? scale : 1.0f;
    const float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
    a->in = in, a->out = out;
    a->taps = (int)ceilf(support) * 2 + 1;
    a->lo = tp_malloc((size_t)out * sizeof(int));
    a->w = tp_calloc((size_t)out * a->taps, sizeof(float));
    for (int i = 0; i < out; i++) {
        const float center = (float)(scale * (i + 0.5));
        long xmin = (long)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        long xmax = (long)(center + support + 0.5);
        if (xmax > in) xmax = in;
        const long xsize = xmax - xmin;
        TP_ASSERT(xsize >= 1 && xsize <= a->taps);
        float *w = a->w + (size_t)i * a->taps, total = 0;
        for (long j = 0; j < xsize; j++) {
            w[j] = tri((float)(((double)(float)(j + xmin - center) + 0.5) * invscale));
            total += w[j];
        }
        if (total != 0.0f)
            for (long j = 0; j < xsize; j++) w[j] /= total;
        a->lo[i] = (int)xmin;
    }
}

void resize_aa_init(struct resize_aa *r, int H, int W, int OH, int OW)
{
    r->H = H, r->W = W, r->OH = OH, r->OW = OW;
    axis_init(&r->y, H, OH);
    axis_init(&r->x, W, OW);
}

void resize_aa_free(struct resize_aa *r)
{
    free(r->y.lo), free(r->y.w), free(r->x.lo), free(r->x.w);
    memset(r, 0, sizeof *r);
}

size_t resize_aa_tmp_numel(const struct resize_aa *r, int P) { return (size_t)P * r->H * r->OW; }

/* Taps past the input's end have weight 0 but would read out of bounds:
 * the number of valid taps of output i. */
static int ntaps(const struct resize_axis *a, int i)
{
    int n = a->in - a->lo[i];
    return n < a->taps ? n : a->taps;
}

/* out[p,y,o] = sum_k w[o,k] in[p,y,lo[o]+k] over the rows of plane p */
static void pass_x(float *out, const float *in, const struct resize_axis *a, int P, int rows)
{
#pragma omp parallel for if ((long)P * rows * a->out > PAR_MIN) schedule(static)
    for (long pr = 0; pr < (long)P * rows; pr++) {
        const float *src = in + (size_t)pr * a->in;
        float *dst = out + (size_t)pr * a->out;
        for (int o = 0; o < a->out; o++) {
            const float *w = a->w + (size_t)o * a->taps, *s = src + a->lo[o];
            const int n = ntaps(a, o);
            float t = s[0] * w[0];
            for (int k = 1; k < n; k++) t += s[k] * w[k];
            dst[o] = t;
        }
    }
}

/* out[p,o,x] = sum_k w[o,k] in[p,lo[o]+k,x] */
static void pass_y(float *out, const float *in, const struct resize_axis *a, int P, int cols)
{
#pragma omp parallel for if ((long)P * a->out * cols > PAR_MIN) schedule(static)
    for (long po = 0; po < (long)P * a->out; po++) {
        const long p = po / a->out;
        const int o = (int)(po % a->out), n = ntaps(a, o);
        const float *w = a->w + (size_t)o * a->taps;
        const float *s = in + ((size_t)p * a->in + a->lo[o]) * cols;
        float *dst = out + (size_t)po * cols;
        for (int x = 0; x < cols; x++) dst[x] = s[x] * w[0];
        for (int k = 1; k < n; k++)
            for (int x = 0; x < cols; x++) dst[x] += s[(size_t)k * cols + x] * w[k];
    }
}

/* The adjoints: each thread owns one plane (or one row of it) of din and
 * walks the outputs in order, so sums never depend on scheduling. */
static void pass_x_adj(float *din, const float *dout, const struct resize_axis *a, int P, int rows)
{
#pragma omp parallel for if ((long)P * rows * a->out > PAR_MIN) schedule(static)
    for (long pr = 0; pr < (long)P * rows; pr++) {
        float *d = din + (size_t)pr * a->in;
        const float *g = dout + (size_t)pr * a->out;
        for (int o = 0; o < a->out; o++) {
            const float *w = a->w + (size_t)o * a->taps;
            const int n = ntaps(a, o);
            for (int k = 0; k < n; k++) d[a->lo[o] + k] += w[k] * g[o];
        }
    }
}

static void pass_y_adj(float *din, const float *dout, const struct resize_axis *a, int P, int cols)
{
#pragma omp parallel for if ((long)P * a->out * cols > PAR_MIN) schedule(static)
    for (long p = 0; p < P; p++)
        for (int o = 0; o < a->out; o++) {
            const float *w = a->w + (size_t)o * a->taps;
            const float *g = dout + ((size_t)p * a->out + o) * cols;
            float *d = din + ((size_t)p * a->in + a->lo[o]) * cols;
            const int n = ntaps(a, o);
            for (int k = 0; k < n; k++)
                for (int x = 0; x < cols; x++) d[(size_t)k * cols + x] += w[k] * g[x];
        }
}

void resize_aa_forward(float *out, float *tmp, const float *inp, const struct resize_aa *r, int P)
{
    const int sx = r->W != r->OW, sy = r->H != r->OH;
    if (!sx && !sy) {
        memcpy(out, inp, (size_t)P * r->H * r->W * sizeof(float));
    } else if (!sy) {
        pass_x(out, inp, &r->x, P, r->H);
    } else {
        const float *mid = inp;
        if (sx) pass_x(tmp, inp, &r->x, P, r->H), mid = tmp;
        pass_y(out, mid, &r->y, P, r->OW);
    }
}

void resize_aa_backward(float *dinp, float *tmp, const float *dout, const struct resize_aa *r,
                        int P)
{
    const int sx = r->W != r->OW, sy = r->H != r->OH;
    if (!sx && !sy) {
        add_inplace(dinp, dout, (size_t)P * r->H * r->W);
    } else if (!sy) {
        pass_x_adj(dinp, dout, &r->x, P, r->H);
    } else if (!sx) {
        pass_y_adj(dinp, dout, &r->y, P, r->OW);
    } else {
        memset(tmp, 0, resize_aa_tmp_numel(r, P) * sizeof(float));
        pass_y_adj(tmp, dout, &r->y, P, r->OW);
        pass_x_adj(dinp, tmp, &r->x, P, r->H);
    }
}

/* ---- channels ------------------------------------------------------------ */

void channels_backward(float *dinp, int C, const float *dout, int OC, int B, int HW)
{
    static const float luma[3] = {IMG_LUMA_R, IMG_LUMA_G, IMG_LUMA_B};
    TP_ASSERT(C == OC || (C == 1 && OC == 3) || (C == 3 && OC == 1));
#pragma omp parallel for collapse(2) if ((long)B * C * HW > PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float *d = dinp + ((size_t)b * C + c) * HW;
            const float *g = dout + (size_t)b * OC * HW;
            if (C == OC) {
                g += (size_t)c * HW;
                for (int p = 0; p < HW; p++) d[p] += g[p];
            } else if (C == 1) { /* repeated into every output channel */
                for (int p = 0; p < HW; p++) d[p] += g[p] + g[HW + p] + g[2 * (size_t)HW + p];
            } else { /* luma: out = sum_c luma[c] in[c] */
                for (int p = 0; p < HW; p++) d[p] += luma[c] * g[p];
            }
        }
}
