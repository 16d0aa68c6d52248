/* classifier.c - the ViT classifier (see classifier.h): TiTok's patch
 * embedding, sequence and trunk (titok.c) with no latent tokens, the class
 * token's features and a linear head. */
#include "classifier.h"
#include "conv2d.h"
#include "err.h"
#include "linear.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Required integer metadata in [lo,hi]. */
static int get_int(const struct st *m, const char *key, long lo, long hi, int *out)
{
    long v;
    if (st_meta_get_long(m, key, &v) != 0) return -1;
    if (v < lo || v > hi) return tp_err_set("metadata '%s': %ld is out of range [%ld, %ld]", key, v, lo, hi);
    *out = (int)v;
    return 0;
}

static int cfg_from_meta(struct classifier *m, const struct st *meta)
{
    struct titok_cfg *c = &m->c;
    memset(c, 0, sizeof *c);
    if (get_int(meta, "channels", 1, 64, &c->C) || get_int(meta, "resolution", 1, 4096, &c->R) ||
        get_int(meta, "patch", 1, 4096, &c->P) || get_int(meta, "width", 1, 16384, &c->E) ||
        get_int(meta, "layers", 0, 256, &c->L) || get_int(meta, "heads", 1, 256, &c->NH) ||
        get_int(meta, "classes", 1, 1 << 20, &m->V))
        return -1;
    if (c->E % c->NH) return tp_err_set("width %d is not a multiple of heads %d", c->E, c->NH);
    if (c->R % c->P) return tp_err_set("resolution %d is not a multiple of patch %d", c->R, c->P);
    c->G = c->R / c->P;
    c->N = c->G * c->G;
    return 0;
}

int classifier_init(struct classifier *m, struct params *p, const struct st *meta, int alloc)
{
    memset(m, 0, sizeof *m);
    if (cfg_from_meta(m, meta) != 0) return -1;
    const struct titok_cfg *c = &m->c;
    float scale = 1.0f / sqrtf((float)c->E);
    m->off_cls = titok_param(p, "class_embedding", 2, 1, c->E, 0, 0, INIT_NORMAL, scale);
    m->off_pos = titok_param(p, "positional_embedding", 2, c->N + 1, c->E, 0, 0, INIT_NORMAL, scale);
    m->off_pw = titok_param(p, "patch_embed.weight", 4, c->E, c->C, c->P, c->P, INIT_NORMAL, BLOCK_INIT_STD);
    m->off_pb = titok_param(p, "patch_embed.bias", 1, c->E, 0, 0, 0, INIT_ZEROS, 0);
    titok_trunk_init(&m->tr, p, "", c, 1 + c->N, 0, 1);
    m->off_hw = titok_param(p, "head.weight", 2, m->V, c->E, 0, 0, INIT_NORMAL, BLOCK_INIT_STD);
    m->off_hb = titok_param(p, "head.bias", 1, m->V, 0, 0, 0, INIT_ZEROS, 0);
    if (alloc) {
        params_alloc(p);
        m->data = p->data;
        m->grad = p->grad;
        titok_trunk_bind(&m->tr, p);
    }
    return 0;
}

void classifier_free(struct classifier *m)
{
    titok_trunk_free(&m->tr);
    free(m->img);
    memset(m, 0, sizeof *m);
}

static void reserve(struct classifier *m, int B)
{
    if (m->B == B) return;
    const struct titok_cfg *c = &m->c;
    size_t img = (size_t)c->C * c->R * c->R, pe = (size_t)c->E * c->N, x = (size_t)(1 + c->N) * c->E;
    free(m->img);
    float *p = m->img = tp_aligned_alloc((size_t)B * (img + 2 * pe + 2 * x + c->E) * sizeof(float));
    p += (size_t)B * img;
    m->pe = p, p += (size_t)B * pe;
    m->dpe = p, p += (size_t)B * pe;
    m->x = p, p += (size_t)B * x;
    m->dx = p, p += (size_t)B * x;
    m->dfeat = p;
    m->B = B;
}

static struct conv2d_shape patch_shape(const struct titok_cfg *c, int B)
{
    struct conv2d_shape s = {B, c->C, c->R, c->R, c->E, c->P, c->P, c->P, c->P, 0, 0, 0, 0, 1, 0, 0};
    conv2d_shape_finish(&s);
    return s;
}

#define W(off) (m->data + m->off_##off)
#define G(off) (m->grad + m->off_##off)

void classifier_forward(struct classifier *m, float *features, float *logits, const float *image, int B,
                        int train)
{
    reserve(m, B);
    const struct titok_cfg *c = &m->c;
    int E = c->E, N = c->N;
    memcpy(m->img, image, sizeof(float) * B * c->C * c->R * c->R);
    struct conv2d_shape cs = patch_shape(c, B);
    conv2d_forward(m->pe, m->img, W(pw), W(pb), &cs);
    /* [cls, patches] + positional_embedding; no latent tokens (K = 0) */
    titok_seq_build(m->x, B, N, 0, E, W(cls), W(pos), m->pe, (size_t)E * N, 1, N, NULL, 0, NULL);
    const float *feat = titok_trunk_forward(&m->tr, m->x, B, train); /* [B,1,E]: the class token */
    if (features) memcpy(features, feat, sizeof(float) * B * E);
    if (logits) linear_forward(logits, feat, W(hw), W(hb), B, E, m->V);
}

void classifier_backward(struct classifier *m, float *dimage, const float *dlogits, const float *dfeatures)
{
    const struct titok_cfg *c = &m->c;
    int B = m->B, E = c->E, N = c->N, T = 1 + N;
    TP_ASSERT(B > 0);
    if (dfeatures) memcpy(m->dfeat, dfeatures, sizeof(float) * B * E);
    else memset(m->dfeat, 0, sizeof(float) * B * E);
    if (dlogits) linear_backward(m->dfeat, G(hw), G(hb), dlogits, m->tr.out, W(hw), B, E, m->V);
    memset(m->dx, 0, sizeof(float) * B * T * E);
    titok_trunk_backward(&m->tr, m->dx, m->dfeat, m->x);
    const float *dx = m->dx;
    titok_sum_batch(G(cls), dx, B, T, E, 0, 1);
    titok_sum_batch(G(pos), dx, B, T, E, 0, T);
    float *dpe = m->dpe;
#pragma omp parallel for
    for (size_t o = 0; o < (size_t)B * E * N; o++) {
        size_t b = o / ((size_t)E * N), i = o / N % E, n = o % N;
        dpe[o] = dx[(b * T + 1 + n) * E + i];
    }
    struct conv2d_shape cs = patch_shape(c, B);
    conv2d_backward(dimage, G(pw), G(pb), dpe, m->img, W(pw), &cs);
}

#undef W
#undef G

/* ---- module ------------------------------------------------------------------ */

static int cls_build(struct module *m, const struct st *meta)
{
    m->impl = tp_calloc(1, sizeof(struct classifier));
    return classifier_init(m->impl, &m->params, meta, 1);
}

static void cls_destroy(struct module *m)
{
    if (m->impl) classifier_free(m->impl);
    free(m->impl);
}

static int cls_forward(struct module *m, struct st *rec, int train)
{
    struct classifier *k = m->impl;
    const struct titok_cfg *c = &k->c;
    struct st_tensor *img = st_require(rec, "image", ST_F32, 4);
    if (!img) return -1;
    if (img->shape[0] < 1 || img->shape[1] != c->C || img->shape[2] != c->R || img->shape[3] != c->R)
        return tp_err_set("field 'image': shape [%lld,%lld,%lld,%lld], the classifier takes [B,%d,%d,%d]",
                          (long long)img->shape[0], (long long)img->shape[1], (long long)img->shape[2],
                          (long long)img->shape[3], c->C, c->R, c->R);
    int B = (int)img->shape[0];
    struct st_tensor *f = st_put_v(rec, "features", ST_F32, 2, (int64_t)B, (int64_t)c->E);
    struct st_tensor *l = st_put_v(rec, "logits", ST_F32, 2, (int64_t)B, (int64_t)k->V);
    classifier_forward(k, f->data, l->data, img->data, B, train);
    return 0;
}

/* A gradient field of shape [B,n], or NULL if absent; *bad set on a mismatch. */
static const float *grad_field(const struct st *grad, const char *name, int B, int n, int *bad)
{
    struct st_tensor *g = st_find(grad, name);
    if (!g) return NULL;
    if (g->dtype != ST_F32 || g->ndim != 2 || g->shape[0] != B || g->shape[1] != n) {
        tp_err_set("field '%s': expected F32 [%d,%d], as the forward's output", name, B, n);
        *bad = 1;
        return NULL;
    }
    return g->data;
}

static int cls_backward(struct module *m, const struct st *grad, struct st *in_grad)
{
    (void)in_grad; /* the image needs no gradient */
    struct classifier *k = m->impl;
    int bad = 0;
    const float *dl = grad_field(grad, "logits.grad", k->B, k->V, &bad);
    if (bad) return -1;
    const float *df = grad_field(grad, "features.grad", k->B, k->c.E, &bad);
    if (bad) return -1;
    if (!dl && !df) return tp_err_set("missing field 'logits.grad' (or 'features.grad')");
    classifier_backward(k, NULL, dl, df);
    return 0;
}

const struct module_ops classifier_ops = {
    .arch = "vit-classifier",
    .build = cls_build,
    .forward = cls_forward,
    .backward = cls_backward,
    .destroy = cls_destroy,
};
