/* perceptual.c - the perceptual loss over frozen feature networks: loading
 * by architecture, input preparation, the two distances and their input
 * gradients (see perceptual.h). */
#include "perceptual.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chunks.h"
#include "err.h"
#include "imgops.h"
#include "perc_impl.h"
#include "perc_ops.h"


static const float lpips_shift[3] = {-0.030f, -0.088f, -0.188f};
static const float lpips_scale[3] = {0.458f, 0.448f, 0.450f};
static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};
static const char *const scaling_names[2] = {"scaling_layer.shift", "scaling_layer.scale"};

/* ---- construction -------------------------------------------------------- */

/* An integer key, def when absent. */
static int meta_int(const struct st *m, const char *key, int def, int lo, int hi, int *out)
{
    long v = def;
    if (st_meta_get(m, key) && st_meta_get_long(m, key, &v) != 0) return -1;
    if (v < lo || v > hi) return tp_err_set("metadata %s=%ld: not in [%d,%d]", key, v, lo, hi);
    *out = (int)v;
    return 0;
}

/* "a,b,c,d" into n ints >= 1, def when absent. */
static int meta_ints(const struct st *m, const char *key, const int *def, int *out, int n)
{
    const char *s = st_meta_get(m, key);
    if (!s) {
        memcpy(out, def, n * sizeof(int));
        return 0;
    }
    for (int i = 0; i < n; i++) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1 << 20 || *end != (i == n - 1 ? '\0' : ','))
            return tp_err_set("metadata %s=\"%s\": expected %d positive integers", key,
                              st_meta_get(m, key), n);
        out[i] = (int)v;
        s = end + 1;
    }
    return 0;
}

static int build_vgg(struct perceptual *p, const struct st *meta, int lpips)
{
    const char *cfg = st_meta_get(meta, "cfg");
    int C = 3, ncls = 0;
    double slope = 0;
    if (!cfg) cfg = lpips ? PERC_VGG16_CFG : PERC_DEFAULT_CFG;
    if (!lpips) {
        slope = PERC_DEFAULT_SLOPE;
        if (meta_int(meta, "in_channels", 1, 1, 3, &C) || meta_int(meta, "num_classes", 10, 0, 1 << 20, &ncls))
            return -1;
        if (C == 2) return tp_err_set("metadata in_channels=2: 1 or 3");
        if (st_meta_get(meta, "slope") && st_meta_get_double(meta, "slope", &slope) != 0) return -1;
        if (!(slope >= 0 && slope < 1)) return tp_err_set("metadata slope=%g: not in [0,1)", slope);
    }
    p->kind = PERC_LPIPS;
    p->net_c = C;
    for (int c = 0; c < C; c++) {
        p->shift[c] = lpips ? lpips_shift[c] : 0.0f;
        p->scale[c] = lpips ? lpips_scale[c] : 1.0f;
    }
    return perc_vgg_build(&p->vgg, &p->params, cfg, C, ncls, (float)slope);
}

static int build_convnext(struct perceptual *p, const struct st *meta)
{
    static const int dims0[4] = {96, 192, 384, 768}, depths0[4] = {3, 3, 27, 3};
    int d[4], depths[4], ncls;
    if (meta_ints(meta, "dims", dims0, d, 4) || meta_ints(meta, "depths", depths0, depths, 4) ||
        meta_int(meta, "num_classes", 1000, 1, 1 << 20, &ncls) ||
        meta_int(meta, "resize", 224, 0, 4096, &p->resize))
        return -1;
    if (p->resize && p->resize < 32) return tp_err_set("metadata resize=%d: 0 or at least 32", p->resize);
    p->kind = PERC_CONVNEXT;
    p->net_c = 3;
    return perc_convnext_build(&p->cnx, &p->params, d, depths, ncls);
}

int perc_build(struct perceptual *p, const struct st *meta)
{
    memset(p, 0, sizeof *p);
    params_init_table(&p->params);
    const char *arch = st_meta_get(meta, "arch");
    if (!arch) return tp_err_set("no metadata \"arch\"");
    snprintf(p->arch, sizeof p->arch, "%s", arch);
    int rc;
    if (strcmp(arch, "lpips-vgg16") == 0) rc = build_vgg(p, meta, 1);
    else if (strcmp(arch, PERC_DEFAULT_ARCH) == 0) rc = build_vgg(p, meta, 0);
    else if (strcmp(arch, "convnext-s") == 0) rc = build_convnext(p, meta);
    else
        return tp_err_set("arch '%s': not a perceptual network (lpips-vgg16, convnext-s, %s)", arch,
                          PERC_DEFAULT_ARCH);
    return rc;
}

static void release(struct perceptual *p)
{
    params_free(&p->params);
    perc_vgg_acts_free(&p->va);
    perc_vgg_acts_free(&p->vt);
    perc_convnext_acts_free(&p->ca);
}

void perceptual_free(struct perceptual *p)
{
    if (!p) return;
    release(p);
    free(p);
}

const char *perceptual_arch(const struct perceptual *p) { return p->arch; }

/* A parameter of w by name; LPIPS's own checkpoints name VGG's layers
 * net.sliceK.N.* where torchvision says features.N.* */
static const struct st_tensor *find_param(const struct st *w, const char *name, int lpips)
{
    const struct st_tensor *t = st_find(w, name);
    char alt[160];
    for (int k = 1; !t && lpips && k <= 5 && strncmp(name, "features.", 9) == 0; k++) {
        snprintf(alt, sizeof alt, "net.slice%d.%s", k, name + 9);
        t = st_find(w, alt);
    }
    return t;
}

static int is_scaling(const char *name)
{
    return strcmp(name, scaling_names[0]) == 0 || strcmp(name, scaling_names[1]) == 0;
}

static int load_weights(struct perceptual *p, const struct st *w)
{
    const int lpips = strcmp(p->arch, "lpips-vgg16") == 0;
    struct st *view = st_new();
    for (int i = 0; i < p->params.n; i++) {
        const struct st_tensor *t = find_param(w, p->params.spec[i].name, lpips);
        if (t) st_put_ref(view, p->params.spec[i].name, t->dtype, t->ndim, t->shape, t->data);
    }
    int rc = params_load(&p->params, view, 0);
    st_free(view);
    if (rc != 0) return -1;
    /* a converted torchvision vgg16 carries its classifier: ignore it */
    for (int i = 0; i < w->n && !lpips; i++)
        if (!params_find(&p->params, w->t[i].name) && !is_scaling(w->t[i].name))
            return tp_err_set("tensor '%s' is not a parameter of %s", w->t[i].name, p->arch);
    float *dst[2] = {p->shift, p->scale};
    for (int k = 0; k < 2; k++) {
        const struct st_tensor *t = st_find(w, scaling_names[k]);
        if (!t) continue;
        if (p->kind != PERC_LPIPS) return tp_err_set("tensor '%s' is not a tensor of %s", t->name, p->arch);
        if (t->dtype != ST_F32 || st_numel(t) != p->net_c)
            return tp_err_set("tensor '%s': expected F32 with %d values", t->name, p->net_c);
        memcpy(dst[k], t->data, p->net_c * sizeof(float));
    }
    for (int c = 0; c < p->net_c && p->kind == PERC_LPIPS; c++)
        if (!(p->scale[c] != 0 && isfinite(p->scale[c]) && isfinite(p->shift[c])))
            return tp_err_set("scaling_layer: scale %g shift %g", p->scale[c], p->shift[c]);
    return 0;
}

int perceptual_from_st(struct perceptual **out, const struct st *w)
{
    *out = NULL;
    struct st *meta = st_new();
    for (int i = 0; i < w->nmeta; i++) st_meta_set(meta, w->meta_key[i], w->meta_val[i]);
    if (!st_meta_get(meta, "arch")) { /* a converted checkpoint: tell by its names */
        if (st_find(w, "features.1.0.layer_scale")) st_meta_set(meta, "arch", "convnext-s");
        else if (st_find(w, "lin0.model.1.weight")) st_meta_set(meta, "arch", "lpips-vgg16");
    }
    struct perceptual *p = tp_calloc(1, sizeof *p);
    int rc = perc_build(p, meta);
    st_free(meta);
    if (rc == 0) {
        params_alloc(&p->params);
        params_drop_grad(&p->params); /* frozen: no weight gradients */
        rc = load_weights(p, w);
    }
    if (rc != 0) {
        perceptual_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

int perceptual_load(struct perceptual **out, const char *path)
{
    struct st *w = NULL;
    *out = NULL;
    if (st_load(&w, path) != 0) return tp_err_prefix("%s", path);
    int rc = perceptual_from_st(out, w);
    st_free(w);
    return rc ? tp_err_prefix("%s", path) : 0;
}

int perc_save(const struct perceptual *p, const char *path, const struct st *meta)
{
    struct st *s = st_new();
    for (int i = 0; i < meta->nmeta; i++) st_meta_set(s, meta->meta_key[i], meta->meta_val[i]);
    st_meta_set(s, "arch", p->arch);
    params_view(&p->params, s, 0);
    if (p->kind == PERC_LPIPS) {
        const float *src[2] = {p->shift, p->scale};
        for (int k = 0; k < 2; k++) {
            struct st_tensor *t = st_put_v(s, scaling_names[k], ST_F32, 4, 1, p->net_c, 1, 1);
            memcpy(t->data, src[k], p->net_c * sizeof(float));
        }
    }
    int rc = st_save(s, path);
    st_free(s);
    return rc;
}

int perceptual_create(const char *path, const struct st *meta, uint64_t seed)
{
    struct perceptual p;
    int rc = perc_build(&p, meta);
    if (rc == 0) {
        params_alloc(&p.params);
        params_fill_init(&p.params, seed);
        if (p.kind == PERC_CONVNEXT) perc_convnext_init(&p.cnx, p.params.data);
        rc = perc_save(&p, path, meta);
    }
    release(&p);
    return rc;
}

int perceptual_check(const struct perceptual *p, int C, int H, int W)
{
    if (C != 1 && C != 3) return tp_err_set("%d channels: %s takes 1 or 3", C, p->arch);
    if (p->kind == PERC_LPIPS) {
        const int m = perc_vgg_min_side(&p->vgg);
        if (H < m || W < m) return tp_err_set("%dx%d images: %s needs at least %dx%d", H, W, p->arch, m, m);
    } else if (!p->resize && (H != W || H < 32)) {
        return tp_err_set("%dx%d images: %s without resize needs square images of side >= 32", H, W,
                          p->arch);
    } else if (H < 1 || W < 1) {
        return tp_err_set("%dx%d images", H, W);
    }
    return 0;
}

/* ---- input preparation ---------------------------------------------------- */

/* x[n, Cn, HW] = (x - a[c]) / b[c], in place */
static void affine_channels(float *x, const float *a, const float *b, int n, int Cn, int HW)
{
#pragma omp parallel for collapse(2) if ((long)n * Cn * HW > PAR_MIN) schedule(static)
    for (int i = 0; i < n; i++)
        for (int c = 0; c < Cn; c++) {
            float *q = x + ((size_t)i * Cn + c) * HW;
            for (int k = 0; k < HW; k++) q[k] = (q[k] - a[c]) / b[c];
        }
}

/* dx[n, Cn, HW] = dx / b[c] * m, in place (the chain rule of the above, times m) */
static void scale_channels(float *dx, const float *b, float m, int n, int Cn, int HW)
{
#pragma omp parallel for collapse(2) if ((long)n * Cn * HW > PAR_MIN) schedule(static)
    for (int i = 0; i < n; i++)
        for (int c = 0; c < Cn; c++) {
            float *q = dx + ((size_t)i * Cn + c) * HW;
            for (int k = 0; k < HW; k++) q[k] = q[k] / b[c] * m;
        }
}

static void to_net_channels(float *out, int Cn, const float *img, int n, int C, int HW)
{
    for (int i = 0; i < n; i++)
        img_channels(out + (size_t)i * Cn * HW, Cn, img + (size_t)i * C * HW, C, 1, HW);
}

void perc_prep_lpips(const struct perceptual *p, float *out, const float *img, int n, int C, int HW)
{
    const int Cn = p->net_c;
    to_net_channels(out, Cn, img, n, C, HW);
    const size_t N = (size_t)n * Cn * HW;
#pragma omp parallel for if (N > PAR_MIN) schedule(static)
    for (size_t i = 0; i < N; i++) out[i] = out[i] * 2.0f - 1.0f;
    affine_channels(out, p->shift, p->scale, n, Cn, HW);
}

/* Images per chunk: as many as fit PERCEPTUAL_MEM_BYTES at `per` floats
 * each, at least 1, at most B. */
static int chunk_of(size_t per, int B)
{
    size_t n = PERCEPTUAL_MEM_BYTES / sizeof(float) / (per ? per : 1);
    return n < 1 ? 1 : n > (size_t)B ? B : (int)n;
}

/* ---- LPIPS ---------------------------------------------------------------- */

static double loss_lpips(struct perceptual *p, float *dpred, const float *pred, const float *target,
                         int B, int C, int H, int W, float scale)
{
    const struct perc_vgg *v = &p->vgg;
    const int Cn = p->net_c, HW = H * W;
    const size_t img = (size_t)Cn * HW, acts = perc_vgg_acts_numel(v, 1, H, W);
    const int chunk = chunk_of(2 * acts + 3 * img, B);
    float *xp = tp_aligned_alloc(chunk * img * sizeof(float));
    float *xt = tp_aligned_alloc(chunk * img * sizeof(float));
    float *dx = tp_aligned_alloc(chunk * img * sizeof(float));
    double *dist = tp_malloc(chunk * sizeof(double)), *scratch = tp_malloc(HW * sizeof(double));
    float *dtap[PERC_VGG_MAX_TAPS] = {0};
    double total = 0;
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int n = B - b0 < chunk ? B - b0 : chunk;
        perc_prep_lpips(p, xt, target + (size_t)b0 * C * HW, n, C, HW);
        perc_prep_lpips(p, xp, pred + (size_t)b0 * C * HW, n, C, HW);
        perc_vgg_forward(v, &p->vt, xt, p->params.data, n, H, W);
        perc_vgg_forward(v, &p->va, xp, p->params.data, n, H, W);
        memset(dist, 0, n * sizeof(double));
        for (int k = 0; k < v->ntap; k++) {
            const int l = v->tap[k], hw = p->va.h[l] * p->va.w[l];
            const size_t nf = (size_t)n * v->oc[l] * hw;
            if (dpred && !dtap[k]) dtap[k] = tp_aligned_alloc(chunk * (nf / n) * sizeof(float));
            if (dpred) memset(dtap[k], 0, nf * sizeof(float));
            lpips_layer(dist, dtap[k], p->va.out[l], p->vt.out[l], p->params.data + v->linoff[k], n,
                        v->oc[l], hw, scale / (float)B, scratch);
        }
        for (int i = 0; i < n; i++) total += dist[i];
        if (!dpred) continue;
        memset(dx, 0, n * img * sizeof(float));
        perc_vgg_backward(v, &p->va, dx, NULL, dtap, xp, p->params.data);
        scale_channels(dx, p->scale, 2.0f, n, Cn, HW);
        channels_backward(dpred + (size_t)b0 * C * HW, C, dx, Cn, n, HW);
    }
    for (int k = 0; k < v->ntap; k++) free(dtap[k]);
    free(xp), free(xt), free(dx), free(dist), free(scratch);
    return total / B;
}

/* ---- ConvNeXt logits ------------------------------------------------------ */

struct cnx_bufs {
    struct resize_aa rs;
    int R;
    float *adapt, *tmp, *x, *dx, *lt, *lp;
};

/* x [n,3,R,R] = normalise(resize(3-channel img)) */
static void prep_convnext(struct cnx_bufs *q, const float *img, int n, int C, int H, int W)
{
    to_net_channels(q->adapt, 3, img, n, C, H * W);
    resize_aa_forward(q->x, q->tmp, q->adapt, &q->rs, n * 3);
    affine_channels(q->x, imagenet_mean, imagenet_std, n, 3, q->R * q->R);
}

static double loss_convnext(struct perceptual *p, float *dpred, const float *pred,
                            const float *target, int B, int C, int H, int W, float scale)
{
    const struct perc_convnext *v = &p->cnx;
    struct cnx_bufs q;
    q.R = p->resize ? p->resize : H;
    resize_aa_init(&q.rs, H, W, q.R, q.R);
    const size_t ni = (size_t)3 * H * W, nr = (size_t)3 * q.R * q.R, K = v->ncls;
    const size_t per = perc_convnext_acts_numel(v, 1, q.R) + ni * 2 + nr * 2 + resize_aa_tmp_numel(&q.rs, 3);
    const int chunk = chunk_of(per, B);
    q.adapt = tp_aligned_alloc(chunk * ni * sizeof(float));
    q.tmp = tp_aligned_alloc(resize_aa_tmp_numel(&q.rs, 3 * chunk) * sizeof(float));
    q.x = tp_aligned_alloc(chunk * nr * sizeof(float));
    q.dx = tp_aligned_alloc(chunk * nr * sizeof(float));
    q.lt = tp_aligned_alloc(chunk * K * sizeof(float));
    q.lp = tp_aligned_alloc(chunk * K * sizeof(float));
    const double norm = (double)B * K;
    double total = 0;
    for (int b0 = 0; b0 < B; b0 += chunk) {
        const int n = B - b0 < chunk ? B - b0 : chunk;
        prep_convnext(&q, target + (size_t)b0 * C * H * W, n, C, H, W);
        perc_convnext_forward(v, &p->ca, q.lt, q.x, p->params.data, n, q.R);
        prep_convnext(&q, pred + (size_t)b0 * C * H * W, n, C, H, W);
        perc_convnext_forward(v, &p->ca, q.lp, q.x, p->params.data, n, q.R);
        /* MSE over n*K logits; lp becomes d loss / d logits */
        for (size_t i = 0; i < n * K; i++) {
            const float e = q.lp[i] - q.lt[i];
            total += (double)e * e;
            q.lp[i] = (float)(2.0 * scale / norm) * e;
        }
        if (!dpred) continue;
        memset(q.dx, 0, n * nr * sizeof(float));
        perc_convnext_backward(v, &p->ca, q.dx, q.lp, q.x, p->params.data);
        scale_channels(q.dx, imagenet_std, 1.0f, n, 3, q.R * q.R);
        memset(q.adapt, 0, n * ni * sizeof(float));
        resize_aa_backward(q.adapt, q.tmp, q.dx, &q.rs, n * 3);
        channels_backward(dpred + (size_t)b0 * C * H * W, C, q.adapt, 3, n, H * W);
    }
    resize_aa_free(&q.rs);
    free(q.adapt), free(q.tmp), free(q.x), free(q.dx), free(q.lt), free(q.lp);
    return total / norm;
}

double perceptual_loss(struct perceptual *p, float *dpred, const float *pred, const float *target,
                       int B, int C, int H, int W, float scale)
{
    if (perceptual_check(p, C, H, W) != 0) return NAN;
    if (B <= 0) return 0;
    return p->kind == PERC_LPIPS ? loss_lpips(p, dpred, pred, target, B, C, H, W, scale)
                                 : loss_convnext(p, dpred, pred, target, B, C, H, W, scale);
}
