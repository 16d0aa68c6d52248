/* titok_dec.c - TiTok's decoder: K quantized tokens to proxy-code logits
 * and, with the pixel path, through the teacher's codebook and VQGAN
 * decoder to pixels; and the "titok-decoder" module (see titok.h). */
#include "titok.h"
#include "act.h"
#include "blas.h"
#include "err.h"
#include "layout.h"
#include "linear.h"
#include "softmax.h"
#include "vq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int titok_dec_init(struct titok_dec *d, struct params *p, const struct st *meta, int alloc)
{
    memset(d, 0, sizeof *d);
    if (titok_cfg_from_meta(&d->c, meta, 1) != 0) return -1;
    const struct titok_cfg *c = &d->c;
    float scale = 1.0f / sqrtf((float)c->E), std = BLOCK_INIT_STD;
    d->off_cls = titok_param(p, "decoder.class_embedding", 2, 1, c->E, 0, 0, INIT_NORMAL, scale);
    d->off_pos = titok_param(p, "decoder.positional_embedding", 2, c->N + 1, c->E, 0, 0, INIT_NORMAL, scale);
    d->off_mask = titok_param(p, "decoder.mask_token", 3, 1, 1, c->E, 0, INIT_NORMAL, scale);
    d->off_lpos =
        titok_param(p, "decoder.latent_token_positional_embedding", 2, c->K, c->E, 0, 0, INIT_NORMAL, scale);
    d->off_ew = titok_param(p, "decoder.decoder_embed.weight", 2, c->E, c->D, 0, 0, INIT_NORMAL, std);
    d->off_eb = titok_param(p, "decoder.decoder_embed.bias", 1, c->E, 0, 0, 0, INIT_ZEROS, 0);
    titok_trunk_init(&d->tr, p, "decoder.", c, 1 + c->N + c->K, 1, c->N);
    d->off_f0w = titok_param(p, "decoder.ffn.0.weight", 4, 2 * c->E, c->E, 1, 1, INIT_NORMAL, std);
    d->off_f0b = titok_param(p, "decoder.ffn.0.bias", 1, 2 * c->E, 0, 0, 0, INIT_ZEROS, 0);
    d->off_f2w = titok_param(p, "decoder.ffn.2.weight", 4, c->V, 2 * c->E, 1, 1, INIT_NORMAL, std);
    d->off_f2b = titok_param(p, "decoder.ffn.2.bias", 1, c->V, 0, 0, 0, INIT_ZEROS, 0);
    if (c->pixel) {
        /* upstream's Pixel_Quantizer init; the decoder's is seqnet's (torch's) */
        d->off_cb = titok_param(p, "pixel_quantize.embedding.weight", 2, c->V, c->pix.z, 0, 0, INIT_UNIFORM,
                                1.0f / (float)c->V);
        vqgan_decoder_net(&d->pixnet, p, &c->pix, "pixel_decoder.");
    }
    if (alloc) {
        params_alloc(p);
        d->data = p->data;
        d->grad = p->grad;
        titok_trunk_bind(&d->tr, p);
        if (c->pixel) seqnet_bind(&d->pixnet, p);
    }
    return 0;
}

void titok_dec_free(struct titok_dec *d)
{
    titok_trunk_free(&d->tr);
    seqnet_free(&d->pixnet);
    free(d->q);
    memset(d, 0, sizeof *d);
}

static void reserve(struct titok_dec *d, int B)
{
    if (d->B == B) return;
    const struct titok_cfg *c = &d->c;
    size_t E = c->E, BK = (size_t)B * c->K, BN = (size_t)B * c->N, BT = (size_t)B * (1 + c->N + c->K);
    size_t V = c->V, Dv = c->pixel ? c->pix.z : 0;
    size_t total = BK * c->D + 2 * BK * E + 2 * BT * E + 4 * BN * 2 * E + BN * E + (c->N + 1) * E + BN * V +
                   (c->pixel ? 2 * BN * V + 4 * BN * Dv : 0) + (c->pixel_l2 ? 2 * V * Dv + V : 0);
    free(d->q);
    float *m = d->q = tp_aligned_alloc(total * sizeof(float));
    m += BK * c->D;
    d->emb = m, m += BK * E;
    d->demb = m, m += BK * E;
    d->x = m, m += BT * E;
    d->dx = m, m += BT * E;
    d->h1 = m, m += BN * 2 * E;
    d->h2 = m, m += BN * 2 * E;
    d->dh1 = m, m += BN * 2 * E;
    d->dh2 = m, m += BN * 2 * E;
    d->dpost = m, m += BN * E;
    d->sums = m, m += (c->N + 1) * E;
    d->dlog = m, m += BN * V;
    if (c->pixel) {
        d->probs = m, m += BN * V;
        d->dprobs = m, m += BN * V;
        d->qz = m, m += BN * Dv;
        d->qz_nchw = m, m += BN * Dv;
        d->dqz = m, m += BN * Dv;
        d->dqz_nchw = m, m += BN * Dv;
    }
    if (c->pixel_l2) {
        d->cbn = m, m += V * Dv;
        d->dcbn = m, m += V * Dv;
        d->cbnorm = m, m += V;
    }
    TP_ASSERT(m == d->q + total);
    d->B = B;
}

#define W(off) (d->data + d->off_##off)
#define G(off) (d->grad + d->off_##off)

void titok_dec_forward(struct titok_dec *d, float *logits, float *recon, const float *quant, int B, int train)
{
    reserve(d, B);
    /* no caller buffer (the pixel path keeps only its softmax): the logits
     * gradient's buffer, which backward overwrites first, holds them */
    if (!logits) logits = d->dlog;
    const struct titok_cfg *c = &d->c;
    int E = c->E, N = c->N, K = c->K;
    memcpy(d->q, quant, sizeof(float) * B * K * c->D);
    linear_forward(d->emb, d->q, W(ew), W(eb), B * K, c->D, E);
    /* [cls, N mask tokens] + positional_embedding, then the embedded tokens
     * + latent_token_positional_embedding */
    titok_seq_build(d->x, B, N, K, E, W(cls), W(pos), W(mask), 0, 0, 1, d->emb, (size_t)K * E, W(lpos));
    const float *post = titok_trunk_forward(&d->tr, d->x, B, train);
    /* the legacy head: 1x1 convs over NHWC rows are Linear layers */
    size_t BN = (size_t)B * N;
    linear_forward(d->h1, post, W(f0w), W(f0b), (int)BN, E, 2 * E);
    tanh_forward(d->h2, d->h1, BN * 2 * E);
    linear_forward(logits, d->h2, W(f2w), W(f2b), (int)BN, 2 * E, c->V);
    if (!c->pixel) return;
    /* soft codes: softmax over V, then the codebook's rows weighted by it */
    int Dv = c->pix.z;
    softmax_forward(d->probs, logits, (int)BN, c->V);
    const float *cb = W(cb);
    if (c->pixel_l2) {
        vq_l2_rows(d->cbn, d->cbnorm, cb, c->V, Dv);
        cb = d->cbn;
    }
    tp_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)BN, Dv, c->V, 1.0f, d->probs, c->V, cb, Dv, 0.0f,
             d->qz, Dv);
    nhwc_to_nchw(d->qz_nchw, d->qz, B, Dv, N);
    const float *out = seqnet_forward(&d->pixnet, d->qz_nchw, B, train);
    memcpy(recon, out, sizeof(float) * B * c->pix.channels * c->pix.resolution * c->pix.resolution);
}

void titok_dec_backward(struct titok_dec *d, float *dquant, const float *dlogits, const float *drecon)
{
    const struct titok_cfg *c = &d->c;
    int B = d->B, E = c->E, N = c->N, K = c->K, T = 1 + N + K, V = c->V;
    TP_ASSERT(B > 0 && (c->pixel || !drecon));
    size_t BN = (size_t)B * N;
    if (dlogits) memcpy(d->dlog, dlogits, sizeof(float) * BN * V);
    else memset(d->dlog, 0, sizeof(float) * BN * V);
    if (drecon) {
        int Dv = c->pix.z;
        memset(d->dqz_nchw, 0, sizeof(float) * BN * Dv);
        seqnet_backward(&d->pixnet, d->dqz_nchw, drecon, d->qz_nchw);
        nchw_to_nhwc(d->dqz, d->dqz_nchw, B, Dv, N);
        /* dprobs = dqz cb^T; dcb += probs^T dqz (through the normalisation
         * of the rows with pixel_l2) */
        const float *cb = c->pixel_l2 ? d->cbn : W(cb);
        tp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)BN, V, Dv, 1.0f, d->dqz, Dv, cb, Dv, 0.0f,
                 d->dprobs, V);
        tp_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, Dv, (int)BN, 1.0f, d->probs, V, d->dqz, Dv,
                 c->pixel_l2 ? 0.0f : 1.0f, c->pixel_l2 ? d->dcbn : G(cb), Dv);
        if (c->pixel_l2) vq_l2_rows_backward(G(cb), d->dcbn, d->cbn, d->cbnorm, V, Dv);
        softmax_backward(d->dlog, d->dprobs, d->probs, (int)BN, V);
    }
    memset(d->dh2, 0, sizeof(float) * BN * 2 * E);
    linear_backward(d->dh2, G(f2w), G(f2b), d->dlog, d->h2, W(f2w), (int)BN, 2 * E, V);
    memset(d->dh1, 0, sizeof(float) * BN * 2 * E);
    tanh_backward(d->dh1, d->dh2, d->h1, BN * 2 * E);
    memset(d->dpost, 0, sizeof(float) * BN * E);
    linear_backward(d->dpost, G(f0w), G(f0b), d->dh1, d->tr.out, W(f0w), (int)BN, E, 2 * E);
    memset(d->dx, 0, sizeof(float) * B * T * E);
    titok_trunk_backward(&d->tr, d->dx, d->dpost, d->x);
    const float *dx = d->dx;
    /* position sums once, then the mask token gets the sum over positions 1..N */
    memset(d->sums, 0, sizeof(float) * (N + 1) * E);
    titok_sum_batch(d->sums, dx, B, T, E, 0, 1 + N);
    add_inplace(G(pos), d->sums, (size_t)(N + 1) * E);
    add_inplace(G(cls), d->sums, (size_t)E);
    float *dmask = G(mask);
    const float *sums = d->sums;
#pragma omp parallel for
    for (int i = 0; i < E; i++) {
        float s = 0.0f;
        for (int t = 1; t <= N; t++) s += sums[(size_t)t * E + i];
        dmask[i] += s;
    }
    titok_sum_batch(G(lpos), dx, B, T, E, 1 + N, K);
    block_rows_gather(d->demb, dx, B, T, 1 + N, K, E);
    linear_backward(dquant, G(ew), G(eb), d->demb, d->q, W(ew), B * K, c->D, E);
}

#undef W
#undef G

/* ---- module ------------------------------------------------------------------ */

static int dec_build(struct module *m, const struct st *meta)
{
    m->impl = tp_calloc(1, sizeof(struct titok_dec));
    return titok_dec_init(m->impl, &m->params, meta, 1);
}

static void dec_destroy(struct module *m)
{
    if (m->impl) titok_dec_free(m->impl);
    free(m->impl);
}

static int dec_forward(struct module *m, struct st *rec, int train)
{
    struct titok_dec *d = m->impl;
    const struct titok_cfg *c = &d->c;
    struct st_tensor *q = st_require(rec, "quant", ST_F32, 3);
    if (!q) return -1;
    if (q->shape[0] < 1 || q->shape[1] != c->K || q->shape[2] != c->D)
        return tp_err_set("field 'quant': shape [%lld,%lld,%lld], the decoder takes [B,%d,%d]",
                          (long long)q->shape[0], (long long)q->shape[1], (long long)q->shape[2], c->K, c->D);
    int64_t B = q->shape[0], G = c->G;
    /* the pixel path outputs the image alone: its [B,h,w,V] logits are an
     * intermediate (16 MB a batch of 64 at V=1024) no stage downstream reads */
    struct st_tensor *lg = NULL, *rc = NULL;
    if (c->pixel) {
        int64_t R = c->pix.resolution;
        rc = st_put_v(rec, "recon", ST_F32, 4, B, (int64_t)c->pix.channels, R, R);
    } else {
        lg = st_put_v(rec, "logits", ST_F32, 4, B, G, G, (int64_t)c->V);
    }
    titok_dec_forward(d, lg ? lg->data : NULL, rc ? rc->data : NULL, q->data, (int)B, train);
    return 0;
}

/* grad's field name if present with the shape of the forward's output, NULL
 * if absent; -1 (through *bad) on a wrong dtype or shape. */
static const float *grad_field(const struct st *grad, const char *name, const int64_t *shape, int *bad)
{
    struct st_tensor *t = st_find(grad, name);
    if (!t) return NULL;
    int ok = t->dtype == ST_F32 && t->ndim == 4;
    for (int i = 0; ok && i < 4; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        *bad = tp_err_set("field '%s': expected F32 [%lld,%lld,%lld,%lld] as the forward's output", name,
                          (long long)shape[0], (long long)shape[1], (long long)shape[2], (long long)shape[3]);
        return NULL;
    }
    return t->data;
}

static int dec_backward(struct module *m, const struct st *grad, struct st *in_grad)
{
    struct titok_dec *d = m->impl;
    const struct titok_cfg *c = &d->c;
    int bad = 0;
    int64_t ls[4] = {d->B, c->G, c->G, c->V}, rs[4] = {d->B, c->pix.channels, c->pix.resolution, c->pix.resolution};
    const float *dl = grad_field(grad, "logits.grad", ls, &bad);
    const float *dr = c->pixel ? grad_field(grad, "recon.grad", rs, &bad) : NULL;
    if (bad) return -1;
    if (!dl && !dr)
        return tp_err_set("no field 'logits.grad'%s", c->pixel ? " or 'recon.grad'" : "");
    struct st_tensor *qg = st_put_v(in_grad, "quant.grad", ST_F32, 3, (int64_t)d->B, (int64_t)c->K, (int64_t)c->D);
    titok_dec_backward(d, qg->data, dl, dr);
    return 0;
}

const struct module_ops titok_decoder_ops = {
    .arch = "titok-decoder",
    .build = dec_build,
    .forward = dec_forward,
    .backward = dec_backward,
    .destroy = dec_destroy,
};
