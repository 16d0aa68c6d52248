/* vqgan.c - MaskGIT-VQGAN encoder and decoder modules (see vqgan.h). */
#include "vqgan.h"
#include "err.h"
#include "layout.h"
#include "resblock.h"
#include "seqnet.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* metadata key kp + key (kp: "" or e.g. "pixel_") */
static int meta_int(const struct st *m, const char *kp, const char *key, int lo, int hi, int *out)
{
    char k[96];
    snprintf(k, sizeof k, "%s%s", kp, key);
    long v;
    if (st_meta_get_long(m, k, &v) != 0) return -1;
    if (v < lo || v > hi) return tp_err_set("metadata '%s': %ld is out of range [%d, %d]", k, v, lo, hi);
    *out = (int)v;
    return 0;
}

int vqgan_cfg_from_meta(struct vqgan_cfg *c, const struct st *meta)
{
    return vqgan_cfg_from_meta_keys(c, meta, "");
}

int vqgan_cfg_from_meta_keys(struct vqgan_cfg *c, const struct st *meta, const char *kp)
{
    memset(c, 0, sizeof *c);
    if (meta_int(meta, kp, "channels", 1, 4, &c->channels) ||
        meta_int(meta, kp, "resolution", 4, 4096, &c->resolution) ||
        meta_int(meta, kp, "hidden", 32, 4096, &c->hidden) ||
        meta_int(meta, kp, "res_blocks", 1, 16, &c->res_blocks) || meta_int(meta, kp, "z", 1, 4096, &c->z))
        return -1;
    char mk[96];
    snprintf(mk, sizeof mk, "%smult", kp);
    const char *m = st_meta_get(meta, mk);
    if (!m) return tp_err_set("metadata '%s' is missing", mk);
    const char *p = m;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 64 || c->nlevels == VQGAN_MAX_LEVELS)
            return tp_err_set("metadata '%s': '%s' is not a list of 1..%d multipliers", mk, m, VQGAN_MAX_LEVELS);
        c->mult[c->nlevels++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return tp_err_set("metadata '%s': '%s' is not a comma list", mk, m);
    }
    if (c->nlevels == 0) return tp_err_set("metadata '%s' is empty", mk);
    int down = 1 << (c->nlevels - 1);
    if (c->resolution % down) return tp_err_set("resolution %d is not a multiple of %d", c->resolution, down);
    for (int i = 0; i < c->nlevels; i++)
        if ((c->hidden * c->mult[i]) % RESBLOCK_GROUPS)
            return tp_err_set("hidden*mult[%d] = %d is not a multiple of %d groups", i, c->hidden * c->mult[i],
                              RESBLOCK_GROUPS);
    return 0;
}

/* ---- shared state ---------------------------------------------------------- */

struct vqgan_net {
    struct vqgan_cfg cfg;
    struct seqnet net;
    int B;
    float *x;     /* network input, NCHW, kept for backward */
    float *gbuf;  /* NCHW gradient at the network input/output */
};

static void net_free(struct module *m)
{
    struct vqgan_net *v = m->impl;
    if (!v) return;
    seqnet_free(&v->net);
    free(v->x);
    free(v->gbuf);
    free(v);
    m->impl = NULL;
}

static void net_reserve(struct vqgan_net *v, int B, size_t in_per, size_t out_per)
{
    if (v->B == B) return;
    free(v->x);
    free(v->gbuf);
    size_t g = in_per > out_per ? in_per : out_per;
    v->x = tp_aligned_alloc((size_t)B * in_per * sizeof(float));
    v->gbuf = tp_aligned_alloc((size_t)B * g * sizeof(float));
    v->B = B;
}

static char *pfx(char *buf, size_t n, const char *fmt, ...) TP_PRINTF(3, 4);
static char *pfx(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return buf;
}

/* ---- encoder ---------------------------------------------------------------- */

static int enc_build(struct module *m, const struct st *meta)
{
    struct vqgan_net *v = tp_calloc(1, sizeof *v);
    m->impl = v;
    if (vqgan_cfg_from_meta(&v->cfg, meta) != 0) return -1;
    const struct vqgan_cfg *c = &v->cfg;
    struct seqnet *s = &v->net;
    struct params *p = &m->params;
    char name[96];
    seqnet_init(s, c->channels, c->resolution, c->resolution);
    seqnet_conv(s, p, "encoder.conv_in.", c->hidden, 3, 0);
    for (int i = 0; i < c->nlevels; i++) {
        for (int j = 0; j < c->res_blocks; j++)
            seqnet_res(s, p, pfx(name, sizeof name, "encoder.down.%d.block.%d.", i, j), c->hidden * c->mult[i]);
        if (i != c->nlevels - 1) seqnet_pool(s);
    }
    int mid = c->hidden * c->mult[c->nlevels - 1];
    for (int j = 0; j < c->res_blocks; j++)
        seqnet_res(s, p, pfx(name, sizeof name, "encoder.mid.%d.", j), mid);
    seqnet_gn(s, p, "encoder.norm_out.", RESBLOCK_GROUPS, RESBLOCK_EPS);
    seqnet_silu(s);
    seqnet_conv(s, p, "encoder.conv_out.", c->z, 1, 1);
    params_alloc(p);
    seqnet_bind(s, p);
    return 0;
}

static int enc_forward(struct module *m, struct st *rec, int train)
{
    struct vqgan_net *v = m->impl;
    const struct vqgan_cfg *c = &v->cfg;
    struct st_tensor *img = st_require(rec, "image", ST_F32, 4);
    if (!img) return -1;
    if (img->shape[1] != c->channels || img->shape[2] != c->resolution || img->shape[3] != c->resolution)
        return tp_err_set("field 'image': shape [%lld,%lld,%lld,%lld], the encoder takes [B,%d,%d,%d]",
                          (long long)img->shape[0], (long long)img->shape[1], (long long)img->shape[2],
                          (long long)img->shape[3], c->channels, c->resolution, c->resolution);
    int B = (int)img->shape[0], h, w, z;
    seqnet_out_dims(&v->net, &z, &h, &w);
    size_t in_per = (size_t)c->channels * c->resolution * c->resolution;
    net_reserve(v, B, in_per, (size_t)z * h * w);
    memcpy(v->x, img->data, (size_t)B * in_per * sizeof(float));
    const float *out = seqnet_forward(&v->net, v->x, B, train);
    struct st_tensor *lat = st_put_v(rec, "latent", ST_F32, 4, (int64_t)B, (int64_t)h, (int64_t)w, (int64_t)z);
    nchw_to_nhwc(lat->data, out, B, z, h * w);
    return 0;
}

static int enc_backward(struct module *m, const struct st *grad, struct st *in_grad)
{
    (void)in_grad;
    struct vqgan_net *v = m->impl;
    int z, h, w;
    seqnet_out_dims(&v->net, &z, &h, &w);
    struct st_tensor *g = st_require(grad, "latent.grad", ST_F32, 4);
    if (!g) return -1;
    if (g->shape[0] != v->B || g->shape[1] != h || g->shape[2] != w || g->shape[3] != z)
        return tp_err_set("field 'latent.grad': shape does not match the forward's latent");
    nhwc_to_nchw(v->gbuf, g->data, v->B, z, h * w);
    seqnet_backward(&v->net, NULL, v->gbuf, v->x);
    return 0;
}

const struct module_ops vqgan_encoder_ops = {
    .arch = "vqgan-encoder",
    .build = enc_build,
    .forward = enc_forward,
    .backward = enc_backward,
    .destroy = net_free,
};

/* ---- decoder ---------------------------------------------------------------- */

void vqgan_decoder_net(struct seqnet *s, struct params *p, const struct vqgan_cfg *c, const char *prefix)
{
    char name[160];
    int r = c->resolution >> (c->nlevels - 1);
    seqnet_init(s, c->z, r, r);
    int top = c->hidden * c->mult[c->nlevels - 1];
    seqnet_conv(s, p, pfx(name, sizeof name, "%sconv_in.", prefix), top, 3, 1);
    for (int j = 0; j < c->res_blocks; j++)
        seqnet_res(s, p, pfx(name, sizeof name, "%smid.%d.", prefix, j), top);
    for (int i = c->nlevels - 1; i >= 0; i--) {
        int ch = c->hidden * c->mult[i];
        for (int j = 0; j < c->res_blocks; j++)
            seqnet_res(s, p, pfx(name, sizeof name, "%sup.%d.block.%d.", prefix, i, j), ch);
        if (i != 0) {
            seqnet_up(s);
            seqnet_conv(s, p, pfx(name, sizeof name, "%sup.%d.upsample_conv.", prefix, i), ch, 3, 1);
        }
    }
    seqnet_gn(s, p, pfx(name, sizeof name, "%snorm_out.", prefix), RESBLOCK_GROUPS, RESBLOCK_EPS);
    seqnet_silu(s);
    seqnet_conv(s, p, pfx(name, sizeof name, "%sconv_out.", prefix), c->channels, 3, 1);
}

static int dec_build(struct module *m, const struct st *meta)
{
    struct vqgan_net *v = tp_calloc(1, sizeof *v);
    m->impl = v;
    if (vqgan_cfg_from_meta(&v->cfg, meta) != 0) return -1;
    struct seqnet *s = &v->net;
    struct params *p = &m->params;
    vqgan_decoder_net(s, p, &v->cfg, "decoder.");
    params_alloc(p);
    seqnet_bind(s, p);
    return 0;
}

static int dec_forward(struct module *m, struct st *rec, int train)
{
    struct vqgan_net *v = m->impl;
    const struct vqgan_cfg *c = &v->cfg;
    struct st_tensor *q = st_require(rec, "quant", ST_F32, 4);
    if (!q) return -1;
    int h = v->net.H, w = v->net.W;
    if (q->shape[1] != h || q->shape[2] != w || q->shape[3] != c->z)
        return tp_err_set("field 'quant': shape [%lld,%lld,%lld,%lld], the decoder takes [B,%d,%d,%d]",
                          (long long)q->shape[0], (long long)q->shape[1], (long long)q->shape[2],
                          (long long)q->shape[3], h, w, c->z);
    int B = (int)q->shape[0];
    size_t out_per = (size_t)c->channels * c->resolution * c->resolution;
    net_reserve(v, B, (size_t)c->z * h * w, out_per);
    nhwc_to_nchw(v->x, q->data, B, c->z, h * w);
    const float *out = seqnet_forward(&v->net, v->x, B, train);
    struct st_tensor *r = st_put_v(rec, "recon", ST_F32, 4, (int64_t)B, (int64_t)c->channels,
                                   (int64_t)c->resolution, (int64_t)c->resolution);
    memcpy(r->data, out, (size_t)B * out_per * sizeof(float));
    return 0;
}

static int dec_backward(struct module *m, const struct st *grad, struct st *in_grad)
{
    struct vqgan_net *v = m->impl;
    const struct vqgan_cfg *c = &v->cfg;
    struct st_tensor *g = st_require(grad, "recon.grad", ST_F32, 4);
    if (!g) return -1;
    if (g->shape[0] != v->B || g->shape[1] != c->channels || g->shape[2] != c->resolution ||
        g->shape[3] != c->resolution)
        return tp_err_set("field 'recon.grad': shape does not match the forward's recon");
    int h = v->net.H, w = v->net.W;
    size_t n = (size_t)v->B * c->z * h * w;
    memset(v->gbuf, 0, n * sizeof(float));
    seqnet_backward(&v->net, v->gbuf, g->data, v->x);
    struct st_tensor *qg = st_put_v(in_grad, "quant.grad", ST_F32, 4, (int64_t)v->B, (int64_t)h, (int64_t)w,
                                    (int64_t)c->z);
    nchw_to_nhwc(qg->data, v->gbuf, v->B, c->z, h * w);
    return 0;
}

const struct module_ops vqgan_decoder_ops = {
    .arch = "vqgan-decoder",
    .build = dec_build,
    .forward = dec_forward,
    .backward = dec_backward,
    .destroy = net_free,
};
