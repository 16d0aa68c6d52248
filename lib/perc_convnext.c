/* perc_convnext.c - torchvision ConvNeXt, forward and input backward (see
 * perc_convnext.h). */
#include "perc_convnext.h"

#include <stdio.h>
#include <string.h>

#include "act.h"
#include "chunks.h"
#include "conv2d.h"
#include "err.h"
#include "layernorm.h"
#include "layout.h"
#include "linear.h"


/* One block's weights, laid out in table order from its layer_scale. */
struct blk {
    const float *ls, *dww, *dwb, *lnw, *lnb, *w1, *b1, *w2, *b2;
};

static struct blk blk_point(const float *q, int d)
{
    struct blk k;
    k.ls = q, q += d;
    k.dww = q, q += (size_t)d * 49;
    k.dwb = q, q += d;
    k.lnw = q, q += d;
    k.lnb = q, q += d;
    k.w1 = q, q += (size_t)4 * d * d;
    k.b1 = q, q += (size_t)4 * d;
    k.w2 = q, q += (size_t)4 * d * d;
    k.b2 = q;
    return k;
}

static size_t add(struct params *p, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                  int64_t d3, enum param_init init)
{
    const int64_t shape[4] = {d0, d1, d2, d3};
    return params_add(p, "", name, ndim, shape, init, init == INIT_NORMAL ? 0.02f : 0);
}

/* An LN (weight, bias) pair and a conv or linear (weight, bias) pair under
 * prefix; returns the first offset. */
static size_t add_norm(struct params *p, const char *prefix, int d)
{
    char n[96];
    snprintf(n, sizeof n, "%sweight", prefix);
    size_t off = add(p, n, 1, d, 0, 0, 0, INIT_ONES);
    snprintf(n, sizeof n, "%sbias", prefix);
    add(p, n, 1, d, 0, 0, 0, INIT_ZEROS);
    return off;
}

static size_t add_conv(struct params *p, const char *prefix, int ndim, int64_t oc, int64_t c,
                       int64_t k)
{
    char n[96];
    snprintf(n, sizeof n, "%sweight", prefix);
    size_t off = add(p, n, ndim, oc, c, k, k, INIT_NORMAL);
    snprintf(n, sizeof n, "%sbias", prefix);
    add(p, n, 1, oc, 0, 0, 0, INIT_ZEROS);
    return off;
}

int perc_convnext_build(struct perc_convnext *v, struct params *p, const int d[4],
                        const int depths[4], int ncls)
{
    memset(v, 0, sizeof *v);
    v->C = 3;
    v->ncls = ncls;
    for (int s = 0; s < 4; s++) {
        if (d[s] < 1 || d[s] > 16384 || depths[s] < 1)
            return tp_err_set("convnext: bad width %d or depth %d of stage %d", d[s], depths[s], s);
        v->d[s] = d[s], v->depths[s] = depths[s], v->nblocks += depths[s];
    }
    if (v->nblocks > CNX_MAX_BLOCKS)
        return tp_err_set("convnext: %d blocks, at most %d", v->nblocks, CNX_MAX_BLOCKS);
    if (ncls < 1) return tp_err_set("convnext: %d classes", ncls);
    char pre[96];
    v->stem = add_conv(p, "features.0.0.", 4, d[0], v->C, 4);
    add_norm(p, "features.0.1.", d[0]);
    for (int s = 0, j0 = 0; s < 4; j0 += depths[s], s++) {
        const int f = 1 + 2 * s, w = d[s];
        for (int j = 0; j < depths[s]; j++) {
            snprintf(pre, sizeof pre, "features.%d.%d.layer_scale", f, j);
            v->block[j0 + j] = add(p, pre, 3, w, 1, 1, 0, INIT_ONES);
            snprintf(pre, sizeof pre, "features.%d.%d.block.0.", f, j);
            add_conv(p, pre, 4, w, 1, 7);
            snprintf(pre, sizeof pre, "features.%d.%d.block.2.", f, j);
            add_norm(p, pre, w);
            snprintf(pre, sizeof pre, "features.%d.%d.block.3.", f, j);
            add_conv(p, pre, 2, 4 * w, w, 0);
            snprintf(pre, sizeof pre, "features.%d.%d.block.5.", f, j);
            add_conv(p, pre, 2, w, 4 * w, 0);
        }
        if (s == 3) break;
        snprintf(pre, sizeof pre, "features.%d.0.", f + 1);
        v->down[s] = add_norm(p, pre, w);
        snprintf(pre, sizeof pre, "features.%d.1.", f + 1);
        add_conv(p, pre, 4, d[s + 1], w, 2);
    }
    v->head = add_norm(p, "classifier.0.", d[3]);
    add_conv(p, "classifier.2.", 2, ncls, d[3], 0);
    return 0;
}

void perc_convnext_init(const struct perc_convnext *v, float *wts)
{
    for (int s = 0, j = 0; s < 4; s++)
        for (int e = j + v->depths[s]; j < e; j++)
            for (int c = 0; c < v->d[s]; c++) wts[v->block[j] + c] = 1e-6f;
}

/* ---- activations --------------------------------------------------------- */

static int stage_of(const struct perc_convnext *v, int j)
{
    int s = 0;
    for (int e = v->depths[0]; j >= e; e += v->depths[++s]) {}
    return s;
}

/* Point (base != NULL) or count the buffers for B images of R x R. */
static size_t layout(const struct perc_convnext *v, struct perc_convnext_acts *a, float *base,
                     int B, int R)
{
    size_t t = 0, big = 0, hid = 0;
#define TAKE(ptr, n) (a->ptr = base ? base + t : NULL, t += (n))
    int h = R / 4;
    for (int s = 0; s < 4; s++) {
        a->h[s] = h;
        const size_t rows = (size_t)B * h * h, nchw = rows * v->d[s];
        if (nchw > big) big = nchw;
        if (4 * nchw > hid) hid = 4 * nchw;
        h /= 2;
    }
    const size_t rows0 = (size_t)B * a->h[0] * a->h[0];
    TAKE(z0, rows0 * v->d[0]);
    TAKE(m0, rows0);
    TAKE(r0, rows0);
    for (int j = 0; j < v->nblocks; j++) {
        const int s = stage_of(v, j);
        const size_t rows = (size_t)B * a->h[s] * a->h[s];
        TAKE(z[j], rows * v->d[s]);
        TAKE(m[j], rows);
        TAKE(r[j], rows);
        TAKE(u[j], 4 * rows * v->d[s]);
    }
    for (int s = 0; s < 3; s++) {
        const size_t rows = (size_t)B * a->h[s] * a->h[s];
        TAKE(zd[s], rows * v->d[s]);
        TAKE(md[s], rows);
        TAKE(rd[s], rows);
    }
    TAKE(pooled, (size_t)B * v->d[3]);
    TAKE(hm, B);
    TAKE(hr, B);
    TAKE(hln, (size_t)B * v->d[3]);
    TAKE(x, big);
    TAKE(sa, big);
    TAKE(sb, big);
    TAKE(ha, hid);
    TAKE(hb, hid);
#undef TAKE
    return t;
}

size_t perc_convnext_acts_numel(const struct perc_convnext *v, int B, int R)
{
    struct perc_convnext_acts a;
    return layout(v, &a, NULL, B, R);
}

void perc_convnext_acts_free(struct perc_convnext_acts *a)
{
    free(a->mem);
    memset(a, 0, sizeof *a);
}

static void reserve(const struct perc_convnext *v, struct perc_convnext_acts *a, int B, int R)
{
    if (a->mem && a->B == B && a->R == R) return;
    const size_t n = layout(v, a, NULL, B, R);
    if (n > a->floats) { /* grow; a smaller batch reuses the block */
        free(a->mem);
        a->floats = n;
        a->mem = tp_aligned_alloc(n * sizeof(float));
    }
    layout(v, a, a->mem, B, R);
    a->B = B, a->R = R;
}

/* ---- forward ------------------------------------------------------------- */

static struct conv2d_shape conv_shape(int B, int C, int H, int OC, int k, int stride, int pad,
                                      int groups)
{
    struct conv2d_shape s = {.B = B, .C = C, .H = H, .W = H, .OC = OC, .KH = k, .KW = k,
                             .stride_h = stride, .stride_w = stride, .pad_top = pad,
                             .pad_bottom = pad, .pad_left = pad, .pad_right = pad,
                             .groups = groups};
    conv2d_shape_finish(&s);
    return s;
}

/* LayerNorm2d on x [B,d,HW] (NCHW): out (NCHW) = LN over channels; z
 * (NHWC) keeps the LN input, t is NHWC scratch. */
static void ln2d_forward(float *out, float *z, float *mean, float *rstd, float *t, const float *x,
                         const float *w, const float *b, int B, int d, int HW)
{
    nchw_to_nhwc(z, x, B, d, HW);
    layernorm_forward(t, mean, rstd, z, w, b, B * HW, d, CNX_EPS);
    nhwc_to_nchw(out, t, B, d, HW);
}

/* dx (NCHW, overwritten) = LayerNorm2d backward of dy (NCHW); t, u NHWC
 * scratch. dx may alias dy. */
static void ln2d_backward(float *dx, float *t, float *u, const float *dy, const float *z,
                          const float *w, const float *mean, const float *rstd, int B, int d,
                          int HW)
{
    nchw_to_nhwc(t, dy, B, d, HW);
    memset(u, 0, (size_t)B * HW * d * sizeof(float));
    layernorm_backward(u, NULL, NULL, t, z, w, mean, rstd, B * HW, d);
    nhwc_to_nchw(dx, u, B, d, HW);
}

static void block_forward(struct perc_convnext_acts *a, int j, const struct blk *k, int B, int d,
                          int h)
{
    const int HW = h * h;
    const size_t rows = (size_t)B * HW;
    const struct conv2d_shape s = conv_shape(B, d, h, d, 7, 1, 3, d);
    conv2d_forward(a->sa, a->x, k->dww, k->dwb, &s);
    nchw_to_nhwc(a->z[j], a->sa, B, d, HW);
    layernorm_forward(a->sb, a->m[j], a->r[j], a->z[j], k->lnw, k->lnb, (int)rows, d, CNX_EPS);
    linear_forward(a->u[j], a->sb, k->w1, k->b1, (int)rows, d, 4 * d);
    gelu_forward(a->ha, a->u[j], rows * 4 * d);
    linear_forward(a->sb, a->ha, k->w2, k->b2, (int)rows, 4 * d, d);
    /* x += layer_scale * v, v back in NCHW; one (b, c) plane per thread */
#pragma omp parallel for collapse(2) if (rows * d > PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < d; c++) {
            float *x = a->x + ((size_t)b * d + c) * HW;
            const float *v = a->sb + (size_t)b * HW * d + c;
            for (int p = 0; p < HW; p++) x[p] = k->ls[c] * v[(size_t)p * d] + x[p];
        }
}

void perc_convnext_forward(const struct perc_convnext *v, struct perc_convnext_acts *a,
                           float *logits, const float *inp, const float *wts, int B, int R)
{
    TP_ASSERT(R >= 32);
    reserve(v, a, B, R);
    const float *q = wts + v->stem;
    const int d0 = v->d[0], HW0 = a->h[0] * a->h[0];
    const struct conv2d_shape stem = conv_shape(B, v->C, R, d0, 4, 4, 0, 1);
    const size_t nstem = conv2d_weight_numel(&stem);
    conv2d_forward(a->sa, inp, q, q + nstem, &stem);
    ln2d_forward(a->x, a->z0, a->m0, a->r0, a->sb, a->sa, q + nstem + d0, q + nstem + 2 * d0, B,
                 d0, HW0);
    for (int s = 0, j = 0; s < 4; s++) {
        const int d = v->d[s], h = a->h[s];
        for (int e = j + v->depths[s]; j < e; j++) {
            const struct blk k = blk_point(wts + v->block[j], d);
            block_forward(a, j, &k, B, d, h);
        }
        if (s == 3) break;
        const float *dq = wts + v->down[s];
        ln2d_forward(a->sa, a->zd[s], a->md[s], a->rd[s], a->sb, a->x, dq, dq + d, B, d, h * h);
        const struct conv2d_shape ds = conv_shape(B, d, h, v->d[s + 1], 2, 2, 0, 1);
        conv2d_forward(a->x, a->sa, dq + 2 * d, dq + 2 * d + conv2d_weight_numel(&ds), &ds);
    }
    const int d3 = v->d[3], HW3 = a->h[3] * a->h[3];
#pragma omp parallel for if ((long)B * d3 * HW3 > PAR_MIN) schedule(static)
    for (int bc = 0; bc < B * d3; bc++) {
        const float *x = a->x + (size_t)bc * HW3;
        double sum = 0;
        for (int p = 0; p < HW3; p++) sum += x[p];
        a->pooled[bc] = (float)(sum / HW3);
    }
    const float *hq = wts + v->head;
    layernorm_forward(a->hln, a->hm, a->hr, a->pooled, hq, hq + d3, B, d3, CNX_EPS);
    linear_forward(logits, a->hln, hq + 2 * d3, hq + 2 * d3 + (size_t)v->ncls * d3, B, d3, v->ncls);
}

/* ---- backward ------------------------------------------------------------ */

/* a->x holds d/d(block output) on entry and d/d(block input) on return. */
static void block_backward(struct perc_convnext_acts *a, int j, const struct blk *k, int B, int d,
                           int h)
{
    const int HW = h * h;
    const size_t rows = (size_t)B * HW, hid = rows * 4 * d;
    /* dv (NHWC) = layer_scale * dx; the residual keeps dx itself */
    nchw_to_nhwc(a->sa, a->x, B, d, HW);
#pragma omp parallel for if (rows * d > PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < d; c++) a->sa[r * d + c] *= k->ls[c];
    memset(a->ha, 0, hid * sizeof(float));
    linear_backward(a->ha, NULL, NULL, a->sa, a->hb, k->w2, (int)rows, 4 * d, d);
    memset(a->hb, 0, hid * sizeof(float));
    gelu_backward(a->hb, a->ha, a->u[j], hid);
    memset(a->sa, 0, rows * d * sizeof(float));
    linear_backward(a->sa, NULL, NULL, a->hb, a->ha, k->w1, (int)rows, d, 4 * d);
    memset(a->sb, 0, rows * d * sizeof(float));
    layernorm_backward(a->sb, NULL, NULL, a->sa, a->z[j], k->lnw, a->m[j], a->r[j], (int)rows, d);
    nhwc_to_nchw(a->sa, a->sb, B, d, HW);
    const struct conv2d_shape s = conv_shape(B, d, h, d, 7, 1, 3, d);
    conv2d_backward(a->x, NULL, NULL, a->sa, a->sb, k->dww, &s);
}

void perc_convnext_backward(const struct perc_convnext *v, struct perc_convnext_acts *a,
                            float *dinp, const float *dlogits, const float *inp,
                            const float *wts)
{
    const int B = a->B, d3 = v->d[3], HW3 = a->h[3] * a->h[3];
    const float *hq = wts + v->head;
    memset(a->sa, 0, (size_t)B * d3 * sizeof(float));
    linear_backward(a->sa, NULL, NULL, dlogits, a->hln, hq + 2 * d3, B, d3, v->ncls);
    memset(a->sb, 0, (size_t)B * d3 * sizeof(float));
    layernorm_backward(a->sb, NULL, NULL, a->sa, a->pooled, hq, a->hm, a->hr, B, d3);
#pragma omp parallel for if ((long)B * d3 * HW3 > PAR_MIN) schedule(static)
    for (int bc = 0; bc < B * d3; bc++)
        for (int p = 0; p < HW3; p++) a->x[(size_t)bc * HW3 + p] = a->sb[bc] / (float)HW3;
    for (int s = 3, j = v->nblocks - 1; s >= 0; s--) {
        const int d = v->d[s], h = a->h[s];
        for (int e = j - v->depths[s]; j > e; j--) {
            const struct blk k = blk_point(wts + v->block[j], d);
            block_backward(a, j, &k, B, d, h);
        }
        if (s == 0) break;
        /* downsample s-1: conv back into sa, then LN2d back into x */
        const int dp = v->d[s - 1], hp = a->h[s - 1];
        const float *dq = wts + v->down[s - 1];
        const struct conv2d_shape ds = conv_shape(B, dp, hp, d, 2, 2, 0, 1);
        memset(a->sa, 0, (size_t)B * dp * hp * hp * sizeof(float));
        conv2d_backward(a->sa, NULL, NULL, a->x, a->sb, dq + 2 * dp, &ds);
        ln2d_backward(a->x, a->sb, a->hb, a->sa, a->zd[s - 1], dq, a->md[s - 1], a->rd[s - 1], B,
                      dp, hp * hp);
    }
    const float *q = wts + v->stem;
    const int d0 = v->d[0], HW0 = a->h[0] * a->h[0];
    const struct conv2d_shape stem = conv_shape(B, v->C, a->R, d0, 4, 4, 0, 1);
    const size_t nstem = conv2d_weight_numel(&stem);
    ln2d_backward(a->sa, a->sb, a->hb, a->x, a->z0, q + nstem + d0, a->m0, a->r0, B, d0, HW0);
    conv2d_backward(dinp, NULL, NULL, a->sa, inp, q, &stem);
}
