/* perc_vgg.c - VGG-style feature network and the LPIPS distance (see
 * perc_vgg.h). */
#include "perc_vgg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act.h"
#include "chunks.h"
#include "conv2d.h"
#include "err.h"
#include "perc_ops.h"


static size_t add_param(struct params *p, const char *name, int ndim, int64_t d0, int64_t d1,
                        int64_t d2, int64_t d3, enum param_init init, float a)
{
    const int64_t shape[4] = {d0, d1, d2, d3};
    return params_add(p, "", name, ndim, shape, init, a);
}

/* Split cfg into layers (pool flags and widths); -1 on a malformed list. */
static int parse_cfg(struct perc_vgg *v, const char *cfg)
{
    const char *s = cfg;
    while (*s) {
        if (v->n == PERC_VGG_MAX) return tp_err_set("cfg '%s': more than %d layers", cfg, PERC_VGG_MAX);
        if (*s == 'M' && (s[1] == ',' || !s[1])) {
            if (v->n == 0 || v->pool[v->n - 1])
                return tp_err_set("cfg '%s': a pool must follow a conv", cfg);
            v->pool[v->n++] = 1;
            s++;
        } else {
            char *end;
            long w = strtol(s, &end, 10);
            if (end == s || w < 1 || w > 65536 || (*end && *end != ','))
                return tp_err_set("cfg '%s': expected a width or M at '%s'", cfg, s);
            v->oc[v->n++] = (int)w;
            s = end;
        }
        if (*s == ',') s++;
    }
    if (v->n == 0 || v->pool[v->n - 1]) return tp_err_set("cfg '%s': must end with a conv", cfg);
    return 0;
}

int perc_vgg_build(struct perc_vgg *v, struct params *p, const char *cfg, int C, int ncls,
                   float slope)
{
    memset(v, 0, sizeof *v);
    v->C = C;
    v->slope = slope;
    v->ncls = ncls;
    if (parse_cfg(v, cfg) != 0) return -1;
    char name[64];
    int c = C, index = 0;
    for (int l = 0; l < v->n; l++) {
        v->index[l] = index;
        if (v->pool[l]) {
            if (v->ntap == PERC_VGG_MAX_TAPS - 1)
                return tp_err_set("cfg '%s': more than %d pools", cfg, PERC_VGG_MAX_TAPS - 1);
            v->tap[v->ntap++] = l - 1;
            v->oc[l] = c;
            v->npool++;
            index += 1;
            continue;
        }
        const int oc = v->oc[l];
        snprintf(name, sizeof name, "features.%d.weight", index);
        v->woff[l] = add_param(p, name, 4, oc, c, 3, 3, INIT_NORMAL, sqrtf(2.0f / (9.0f * c)));
        snprintf(name, sizeof name, "features.%d.bias", index);
        add_param(p, name, 1, oc, 0, 0, 0, INIT_ZEROS, 0);
        c = oc;
        index += 2; /* conv and its activation */
    }
    v->tap[v->ntap++] = v->n - 1;
    for (int k = 0; k < v->ntap; k++) {
        snprintf(name, sizeof name, "lin%d.model.1.weight", k);
        v->linoff[k] = add_param(p, name, 4, 1, v->oc[v->tap[k]], 1, 1, INIT_ONES, 0);
    }
    if (ncls > 0) {
        v->clsoff = add_param(p, "classifier.weight", 2, ncls, c, 0, 0, INIT_KAIMING, 0);
        add_param(p, "classifier.bias", 1, ncls, 0, 0, 0, INIT_ZEROS, 0);
    }
    return 0;
}

int perc_vgg_min_side(const struct perc_vgg *v) { return 1 << v->npool; }

/* Sizes of every layer's output for B images of H x W; returns the floats
 * of outputs and pool indices, and the largest single buffer in *gmax. */
static size_t layout(const struct perc_vgg *v, struct perc_vgg_acts *a, float *base, int B, int H,
                     int W, size_t *gmax)
{
    size_t total = 0;
    *gmax = (size_t)B * v->C * H * W;
    int h = H, w = W;
    for (int l = 0; l < v->n; l++) {
        if (v->pool[l]) h /= 2, w /= 2;
        const size_t n = (size_t)B * v->oc[l] * h * w;
        a->h[l] = h, a->w[l] = w;
        a->out[l] = base ? base + total : NULL;
        total += n;
        a->idx[l] = NULL;
        if (v->pool[l]) { /* int32 indices in float-sized slots */
            a->idx[l] = base ? (int32_t *)(base + total) : NULL;
            total += n;
        }
        if (n > *gmax) *gmax = n;
    }
    return total;
}

size_t perc_vgg_acts_numel(const struct perc_vgg *v, int B, int H, int W)
{
    struct perc_vgg_acts a;
    size_t gmax, n = layout(v, &a, NULL, B, H, W, &gmax);
    return n + 2 * gmax;
}

void perc_vgg_acts_free(struct perc_vgg_acts *a)
{
    free(a->mem);
    memset(a, 0, sizeof *a);
}

static void reserve(const struct perc_vgg *v, struct perc_vgg_acts *a, int B, int H, int W)
{
    if (a->mem && a->B == B && a->H == H && a->W == W) return;
    size_t gmax, n = layout(v, a, NULL, B, H, W, &gmax);
    if (n + 2 * gmax > a->floats) { /* grow; a smaller batch reuses the block */
        free(a->mem);
        a->floats = n + 2 * gmax;
        a->mem = tp_aligned_alloc(a->floats * sizeof(float));
    }
    layout(v, a, a->mem, B, H, W, &gmax);
    a->g0 = a->mem + n;
    a->g1 = a->g0 + gmax;
    a->B = B, a->H = H, a->W = W;
}

void perc_vgg_forward(const struct perc_vgg *v, struct perc_vgg_acts *a, const float *inp,
                      const float *wts, int B, int H, int W)
{
    TP_ASSERT(H >= perc_vgg_min_side(v) && W >= perc_vgg_min_side(v));
    reserve(v, a, B, H, W);
    const float *x = inp;
    int c = v->C, h = H, w = W;
    for (int l = 0; l < v->n; l++) {
        if (v->pool[l]) {
            maxpool2_forward(a->out[l], a->idx[l], x, B, c, h, w);
        } else {
            const struct conv2d_shape s = conv2d_shape_same(B, c, h, w, v->oc[l], 3, 3, 1, 1);
            const float *wt = wts + v->woff[l];
            conv2d_forward(a->out[l], x, wt, wt + conv2d_weight_numel(&s), &s);
            leaky_relu_forward(a->out[l], a->out[l], conv2d_out_numel(&s), v->slope);
        }
        x = a->out[l], c = v->oc[l], h = a->h[l], w = a->w[l];
    }
}

void perc_vgg_backward(const struct perc_vgg *v, struct perc_vgg_acts *a, float *dinp,
                       float *dwts, float *const *dtap, const float *inp, const float *wts)
{
    const int B = a->B;
    float *buf[2] = {a->g0, a->g1};
    int cur = 0, k = v->ntap - 1;
    float *g = NULL; /* d/d output of layer l; NULL while it is zero */
    for (int l = v->n - 1; l >= 0; l--) {
        const size_t nout = (size_t)B * v->oc[l] * a->h[l] * a->w[l];
        if (k >= 0 && v->tap[k] == l) {
            if (dtap[k] && g) add_inplace(g, dtap[k], nout);
            else if (dtap[k]) g = memcpy(buf[cur], dtap[k], nout * sizeof(float));
            k--;
        }
        if (!g) continue;
        const float *x = l ? a->out[l - 1] : inp;
        const int c = l ? v->oc[l - 1] : v->C, h = l ? a->h[l - 1] : a->H, w = l ? a->w[l - 1] : a->W;
        const size_t nin = (size_t)B * c * h * w;
        float *other = buf[cur ^ 1];
        if (v->pool[l]) {
            memset(other, 0, nin * sizeof(float));
            maxpool2_backward(other, g, a->idx[l], B, c, h, w);
            g = other, cur ^= 1;
            continue;
        }
        /* through the activation into the other buffer, then the conv back
         * into this one (g is consumed by then) */
        memset(other, 0, nout * sizeof(float));
        leaky_relu_backward(other, g, a->out[l], nout, v->slope);
        float *dx = l ? buf[cur] : dinp;
        if (dx && l) memset(dx, 0, nin * sizeof(float));
        const struct conv2d_shape s = conv2d_shape_same(B, c, h, w, v->oc[l], 3, 3, 1, 1);
        const size_t nw = conv2d_weight_numel(&s);
        conv2d_backward(dx, dwts ? dwts + v->woff[l] : NULL, dwts ? dwts + v->woff[l] + nw : NULL,
                        other, x, wts + v->woff[l], &s);
        g = dx;
    }
}

void lpips_layer(double *dist, float *df0, const float *f0, const float *f1, const float *lin,
                 int B, int C, int HW, float gscale, double *scratch)
{
    const float k = 2.0f * gscale / (float)HW;
    for (int b = 0; b < B; b++) {
        const float *x = f0 + (size_t)b * C * HW, *t = f1 + (size_t)b * C * HW;
        float *d = df0 ? df0 + (size_t)b * C * HW : NULL;
        /* one position per iteration: its channel sums and its gradient
         * column belong to one thread */
#pragma omp parallel for if ((long)C * HW > PAR_MIN) schedule(static)
        for (int p = 0; p < HW; p++) {
            double s0 = 0, s1 = 0;
            for (int c = 0; c < C; c++) {
                const float a = x[(size_t)c * HW + p], e = t[(size_t)c * HW + p];
                s0 += (double)a * a, s1 += (double)e * e;
            }
            const float r0 = sqrtf((float)s0);
            const float n0 = r0 + LPIPS_EPS, n1 = sqrtf((float)s1) + LPIPS_EPS;
            double acc = 0, gf = 0;
            for (int c = 0; c < C; c++) {
                const float a = x[(size_t)c * HW + p];
                const float e = a / n0 - t[(size_t)c * HW + p] / n1;
                acc += (double)lin[c] * e * e;
                gf += (double)(k * lin[c] * e) * a;
            }
            scratch[p] = acc;
            if (!d) continue;
            /* df = g/(n+eps) - f (g.f) / (n (n+eps)^2), g = k lin (u0 - u1);
             * the second term is 0 where f = 0 */
            const float s2 = r0 > 0 ? (float)(gf / ((double)r0 * n0 * n0)) : 0.0f;
            for (int c = 0; c < C; c++) {
                const float a = x[(size_t)c * HW + p];
                const float e = a / n0 - t[(size_t)c * HW + p] / n1;
                d[(size_t)c * HW + p] += k * lin[c] * e / n0 - a * s2;
            }
        }
        double sum = 0;
        for (int p = 0; p < HW; p++) sum += scratch[p];
        dist[b] += sum / HW;
    }
}
