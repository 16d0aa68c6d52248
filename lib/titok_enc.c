/* titok_enc.c - TiTok's encoder: image to K latent tokens, and the
 * "titok-encoder" module (see titok.h). */
#include "titok.h"
#include "blas.h"
#include "conv2d.h"
#include "err.h"
#include "linear.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int titok_enc_init(struct titok_enc *e, struct params *p, const struct st *meta, int alloc)
{
    memset(e, 0, sizeof *e);
    if (titok_cfg_from_meta(&e->c, meta, 0) != 0) return -1;
    const struct titok_cfg *c = &e->c;
    float scale = 1.0f / sqrtf((float)c->E);
    /* upstream's state_dict order: TiTok's own latent_tokens first */
    e->off_lat = titok_param(p, "latent_tokens", 2, c->K, c->E, 0, 0, INIT_NORMAL, scale);
    e->off_cls = titok_param(p, "encoder.class_embedding", 2, 1, c->E, 0, 0, INIT_NORMAL, scale);
    e->off_pos = titok_param(p, "encoder.positional_embedding", 2, c->N + 1, c->E, 0, 0, INIT_NORMAL, scale);
    e->off_lpos =
        titok_param(p, "encoder.latent_token_positional_embedding", 2, c->K, c->E, 0, 0, INIT_NORMAL, scale);
    e->off_pw = titok_param(p, "encoder.patch_embed.weight", 4, c->E, c->C, c->P, c->P, INIT_NORMAL, BLOCK_INIT_STD);
    e->off_pb = titok_param(p, "encoder.patch_embed.bias", 1, c->E, 0, 0, 0, INIT_ZEROS, 0);
    titok_trunk_init(&e->tr, p, "encoder.", c, 1 + c->N + c->K, 1 + c->N, c->K);
    e->off_cw = titok_param(p, "encoder.conv_out.weight", 4, c->D, c->E, 1, 1, INIT_NORMAL, BLOCK_INIT_STD);
    e->off_cb = titok_param(p, "encoder.conv_out.bias", 1, c->D, 0, 0, 0, INIT_ZEROS, 0);
    if (alloc) {
        params_alloc(p);
        e->data = p->data;
        e->grad = p->grad;
        titok_trunk_bind(&e->tr, p);
    }
    return 0;
}

void titok_enc_free(struct titok_enc *e)
{
    titok_trunk_free(&e->tr);
    free(e->img);
    memset(e, 0, sizeof *e);
}

static void reserve(struct titok_enc *e, int B)
{
    if (e->B == B) return;
    const struct titok_cfg *c = &e->c;
    size_t img = (size_t)c->C * c->R * c->R, pe = (size_t)c->E * c->N, x = (size_t)(1 + c->N + c->K) * c->E,
           post = (size_t)c->K * c->E;
    free(e->img);
    float *m = e->img = tp_aligned_alloc((size_t)B * (img + 2 * pe + 2 * x + post) * sizeof(float));
    m += (size_t)B * img;
    e->pe = m, m += (size_t)B * pe;
    e->dpe = m, m += (size_t)B * pe;
    e->x = m, m += (size_t)B * x;
    e->dx = m, m += (size_t)B * x;
    e->dpost = m;
    e->B = B;
}

static struct conv2d_shape patch_shape(const struct titok_cfg *c, int B)
{
    struct conv2d_shape s = {B, c->C, c->R, c->R, c->E, c->P, c->P, c->P, c->P, 0, 0, 0, 0, 1, 0, 0};
    conv2d_shape_finish(&s);
    return s;
}

#define W(off) (e->data + e->off_##off)
#define G(off) (e->grad + e->off_##off)

void titok_enc_forward(struct titok_enc *e, float *latent, const float *image, int B, int train)
{
    reserve(e, B);
    const struct titok_cfg *c = &e->c;
    int E = c->E, N = c->N, K = c->K, D = c->D;
    memcpy(e->img, image, sizeof(float) * B * c->C * c->R * c->R);
    struct conv2d_shape cs = patch_shape(c, B);
    conv2d_forward(e->pe, e->img, W(pw), W(pb), &cs);
    /* [cls, patches] + positional_embedding, then latent_tokens + their positions */
    titok_seq_build(e->x, B, N, K, E, W(cls), W(pos), e->pe, (size_t)E * N, 1, N, W(lat), 0, W(lpos));
    const float *post = titok_trunk_forward(&e->tr, e->x, B, train);
    if (!c->legacy) {
        linear_forward(latent, post, W(cw), W(cb), B * K, E, D);
        return;
    }
    /* legacy: each image's [K,E] rows read as an [E,K] matrix X; conv_out
     * gives Y = Wc X [D,K], and latent[k,d] = Y[d,k]: latent = X^T Wc^T */
    for (int b = 0; b < B; b++)
        tp_sgemm(CblasRowMajor, CblasTrans, CblasTrans, K, D, E, 1.0f, post + (size_t)b * K * E, K, W(cw), E,
                 0.0f, latent + (size_t)b * K * D, D);
    const float *bias = W(cb);
#pragma omp parallel for
    for (size_t r = 0; r < (size_t)B * K; r++)
        for (int d = 0; d < D; d++) latent[r * D + d] += bias[d];
}

void titok_enc_backward(struct titok_enc *e, float *dimage, const float *dlatent)
{
    const struct titok_cfg *c = &e->c;
    int B = e->B, E = c->E, N = c->N, K = c->K, D = c->D, T = 1 + N + K;
    TP_ASSERT(B > 0);
    const float *post = e->tr.out;
    if (!c->legacy) {
        memset(e->dpost, 0, sizeof(float) * B * K * E);
        linear_backward(e->dpost, G(cw), G(cb), dlatent, post, W(cw), B * K, E, D);
    } else {
        for (int b = 0; b < B; b++) {
            const float *X = post + (size_t)b * K * E, *dl = dlatent + (size_t)b * K * D;
            /* dX [E,K] = Wc^T dl^T;  dWc [D,E] += dl^T X^T (batches in order) */
            tp_sgemm(CblasRowMajor, CblasTrans, CblasTrans, E, K, D, 1.0f, W(cw), E, dl, D, 0.0f,
                     e->dpost + (size_t)b * K * E, K);
            tp_sgemm(CblasRowMajor, CblasTrans, CblasTrans, D, E, K, 1.0f, dl, D, X, K, 1.0f, G(cw), E);
        }
        float *db = G(cb);
#pragma omp parallel for
        for (int d = 0; d < D; d++) {
            float s = 0.0f;
            for (size_t r = 0; r < (size_t)B * K; r++) s += dlatent[r * D + d];
            db[d] += s;
        }
    }
    memset(e->dx, 0, sizeof(float) * B * T * E);
    titok_trunk_backward(&e->tr, e->dx, e->dpost, e->x);
    const float *dx = e->dx;
    titok_sum_batch(G(cls), dx, B, T, E, 0, 1);
    titok_sum_batch(G(pos), dx, B, T, E, 0, 1 + N);
    titok_sum_batch(G(lat), dx, B, T, E, 1 + N, K);
    titok_sum_batch(G(lpos), dx, B, T, E, 1 + N, K);
    float *dpe = e->dpe;
#pragma omp parallel for
    for (size_t o = 0; o < (size_t)B * E * N; o++) {
        size_t b = o / ((size_t)E * N), i = o / N % E, n = o % N;
        dpe[o] = dx[(b * T + 1 + n) * E + i];
    }
    struct conv2d_shape cs = patch_shape(c, B);
    conv2d_backward(dimage, G(pw), G(pb), dpe, e->img, W(pw), &cs);
}

#undef W
#undef G

/* ---- module ------------------------------------------------------------------ */

static int enc_build(struct module *m, const struct st *meta)
{
    m->impl = tp_calloc(1, sizeof(struct titok_enc));
    return titok_enc_init(m->impl, &m->params, meta, 1);
}

static void enc_destroy(struct module *m)
{
    if (m->impl) titok_enc_free(m->impl);
    free(m->impl);
}

static int enc_forward(struct module *m, struct st *rec, int train)
{
    struct titok_enc *e = m->impl;
    const struct titok_cfg *c = &e->c;
    struct st_tensor *img = st_require(rec, "image", ST_F32, 4);
    if (!img) return -1;
    if (img->shape[0] < 1 || img->shape[1] != c->C || img->shape[2] != c->R || img->shape[3] != c->R)
        return tp_err_set("field 'image': shape [%lld,%lld,%lld,%lld], the encoder takes [B,%d,%d,%d]",
                          (long long)img->shape[0], (long long)img->shape[1], (long long)img->shape[2],
                          (long long)img->shape[3], c->C, c->R, c->R);
    int B = (int)img->shape[0];
    struct st_tensor *lat = st_put_v(rec, "latent", ST_F32, 3, (int64_t)B, (int64_t)c->K, (int64_t)c->D);
    titok_enc_forward(e, lat->data, img->data, B, train);
    return 0;
}

static int enc_backward(struct module *m, const struct st *grad, struct st *in_grad)
{
    (void)in_grad; /* the image needs no gradient */
    struct titok_enc *e = m->impl;
    struct st_tensor *g = st_require(grad, "latent.grad", ST_F32, 3);
    if (!g) return -1;
    if (g->shape[0] != e->B || g->shape[1] != e->c.K || g->shape[2] != e->c.D)
        return tp_err_set("field 'latent.grad': shape [%lld,%lld,%lld], the forward's latent is [%d,%d,%d]",
                          (long long)g->shape[0], (long long)g->shape[1], (long long)g->shape[2], e->B, e->c.K,
                          e->c.D);
    titok_enc_backward(e, NULL, g->data);
    return 0;
}

const struct module_ops titok_encoder_ops = {
    .arch = "titok-encoder",
    .build = enc_build,
    .forward = enc_forward,
    .backward = enc_backward,
    .destroy = enc_destroy,
};
