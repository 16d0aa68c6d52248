/* disc.c - NLayerDiscriminator, forward/backward, weights file (see
 * disc.h). */
#include "disc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act.h"
#include "conv2d.h"
#include "err.h"
#include "pool.h"

/* ---- architecture ---------------------------------------------------------- */

void disc_cfg_upstream(struct disc_cfg *c, int channels)
{
    static const int w[] = {128, 128, 256, 512};
    memset(c, 0, sizeof *c);
    c->channels = channels;
    c->nstages = 3;
    memcpy(c->width, w, sizeof w);
    c->groups = DISCBLOCK_GROUPS;
    c->pool = 16;
}

/* An int metadata value in [lo,hi]; an absent key keeps *out. */
static int meta_opt_int(const struct st *m, const char *key, int lo, int hi, int *out)
{
    long v;
    if (!st_meta_get(m, key)) return 0;
    if (st_meta_get_long(m, key, &v) != 0) return -1;
    if (v < lo || v > hi) return tp_err_set("metadata '%s': %ld is out of range [%d, %d]", key, v, lo, hi);
    *out = (int)v;
    return 0;
}

static int parse_widths(struct disc_cfg *c, const char *s)
{
    int n = 0;
    for (const char *p = s;; p++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 8192 || n == DISC_MAX_STAGES + 1 || (*end && *end != ','))
            return tp_err_set("metadata 'widths': '%s' is not a list of 2..%d widths in [1, 8192]", s,
                              DISC_MAX_STAGES + 1);
        c->width[n++] = (int)v;
        if (!*end) break;
        p = end;
    }
    if (n < 2) return tp_err_set("metadata 'widths': '%s' needs block_in's width and at least one stage's", s);
    c->nstages = n - 1;
    return 0;
}

int disc_cfg_from_meta(struct disc_cfg *c, const struct st *meta)
{
    disc_cfg_upstream(c, 3);
    const char *arch = st_meta_get(meta, "arch");
    if (arch && strcmp(arch, DISC_ARCH) != 0)
        return tp_err_set("metadata 'arch': '%s', expected '%s'", arch, DISC_ARCH);
    const char *w = st_meta_get(meta, "widths");
    if (meta_opt_int(meta, "channels", 1, 64, &c->channels) || meta_opt_int(meta, "groups", 1, 8192, &c->groups) ||
        meta_opt_int(meta, "pool", 1, 1024, &c->pool) || (w && parse_widths(c, w)))
        return -1;
    for (int i = 1; i <= c->nstages; i++)
        if (c->width[i] % c->groups)
            return tp_err_set("widths[%d] = %d is not a multiple of %d groups", i, c->width[i], c->groups);
    return 0;
}

void disc_cfg_to_meta(const struct disc_cfg *c, struct st *meta)
{
    char w[16 * (DISC_MAX_STAGES + 1)];
    size_t k = 0;
    for (int i = 0; i <= c->nstages; i++) k += snprintf(w + k, sizeof w - k, "%s%d", i ? "," : "", c->width[i]);
    st_meta_set(meta, "arch", DISC_ARCH);
    st_meta_set_long(meta, "channels", c->channels);
    st_meta_set(meta, "widths", w);
    st_meta_set_long(meta, "groups", c->groups);
    st_meta_set_long(meta, "pool", c->pool);
}

/* ---- parameters -------------------------------------------------------------- */

/* A conv's weight [OC,C,K,K] and bias [OC] with torch's default init. */
static size_t add_conv(struct params *p, const char *prefix, int OC, int C, int K)
{
    const int64_t ws[4] = {OC, C, K, K}, bs[1] = {OC};
    size_t off = params_add(p, prefix, "weight", 4, ws, INIT_KAIMING, 0);
    params_add(p, prefix, "bias", 1, bs, INIT_UNIFORM, (float)(1.0 / sqrt((double)C * K * K)));
    return off;
}

void disc_build(struct disc *d, const struct disc_cfg *cfg)
{
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    TP_ASSERT(cfg->nstages >= 1 && cfg->nstages <= DISC_MAX_STAGES);
    struct params *p = &d->params;
    params_init_table(p);
    const int *w = cfg->width, S = cfg->nstages;
    d->off_in = add_conv(p, "block_in.0.", w[0], cfg->channels, DISC_KIN);
    for (int i = 0; i < S; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "blocks.%d.0.", i);
        d->off_blk[i] = add_conv(p, prefix, w[i + 1], w[i], 3);
        const int64_t s[1] = {w[i + 1]};
        snprintf(prefix, sizeof prefix, "blocks.%d.2.", i);
        params_add(p, prefix, "weight", 1, s, INIT_ONES, 0);
        params_add(p, prefix, "bias", 1, s, INIT_ZEROS, 0);
    }
    d->off_mid = add_conv(p, "to_logits.0.", w[S], w[S], 1);
    d->off_out = add_conv(p, "to_logits.2.", 1, w[S], DISC_KOUT);
    params_alloc(p);
}

void disc_free(struct disc *d)
{
    params_free(&d->params);
    free(d->acts);
    free(d->idx);
    memset(d, 0, sizeof *d);
}

void disc_init_weights(struct disc *d, uint64_t seed) { params_fill_init(&d->params, seed); }

/* Pointers of every layer into a buffer laid out as the table. */
struct disc_ptrs {
    float *in_w, *in_b, *mid_w, *mid_b, *out_w, *out_b;
    struct discblock_weights blk[DISC_MAX_STAGES];
};

static void disc_point(const struct disc *d, float *base, struct disc_ptrs *q)
{
    const struct disc_cfg *c = &d->cfg;
    q->in_w = base + d->off_in;
    q->in_b = q->in_w + (size_t)c->width[0] * c->channels * DISC_KIN * DISC_KIN;
    for (int i = 0; i < c->nstages; i++)
        discblock_weights_point(&q->blk[i], base + d->off_blk[i], c->width[i], c->width[i + 1]);
    const size_t wS = c->width[c->nstages];
    q->mid_w = base + d->off_mid;
    q->mid_b = q->mid_w + wS * wS;
    q->out_w = base + d->off_out;
    q->out_b = q->out_w + wS * DISC_KOUT * DISC_KOUT;
    TP_ASSERT((size_t)(q->out_b + 1 - base) == d->params.total);
}

static void kernel_name(char *buf, size_t n, int i) { snprintf(buf, n, "blocks.%d.1.kernel", i); }

static int is_kernel(const char *name, int nstages)
{
    char k[48];
    for (int i = 0; i < nstages; i++) {
        kernel_name(k, sizeof k, i);
        if (strcmp(name, k) == 0) return 1;
    }
    return 0;
}

int disc_load(struct disc *d, const char *path, long *step)
{
    struct st *w;
    struct disc_cfg cfg;
    memset(d, 0, sizeof *d);
    if (st_load(&w, path) != 0) return -1;
    if (disc_cfg_from_meta(&cfg, w) != 0) {
        st_free(w);
        return tp_err_prefix("%s", path);
    }
    disc_build(d, &cfg);
    float k[16];
    blur_kernel(k);
    /* the parameters seen without the blur buffers, so params_load still
     * refuses any tensor that is neither */
    struct st *view = st_new();
    int rc = 0;
    for (int i = 0; i < cfg.nstages && rc == 0; i++) {
        char name[48];
        kernel_name(name, sizeof name, i);
        const struct st_tensor *t = st_require(w, name, ST_F32, 4);
        if (!t) rc = -1;
        else if (st_numel(t) != 16 || t->shape[0] != 1 || t->shape[1] != 1 || memcmp(t->data, k, sizeof k) != 0)
            rc = tp_err_set("'%s' is not the [1,1,4,4] (1,3,3,1) blur filter", name);
    }
    for (int i = 0; i < w->n && rc == 0; i++)
        if (!is_kernel(w->t[i].name, cfg.nstages))
            st_put_ref(view, w->t[i].name, w->t[i].dtype, w->t[i].ndim, w->t[i].shape, w->t[i].data);
    if (rc == 0) rc = params_load(&d->params, view, 0);
    if (rc == 0 && step) {
        *step = -1;
        if (st_meta_get(w, "step")) rc = st_meta_get_long(w, "step", step);
    }
    st_free(view);
    st_free(w);
    if (rc != 0) {
        disc_free(d);
        return tp_err_prefix("%s", path);
    }
    return 0;
}

int disc_save(const struct disc *d, const char *path, long step)
{
    struct st *s = st_new();
    disc_cfg_to_meta(&d->cfg, s);
    if (step >= 0) st_meta_set_long(s, "step", step);
    params_view(&d->params, s, 0);
    for (int i = 0; i < d->cfg.nstages; i++) {
        char name[48];
        kernel_name(name, sizeof name, i);
        struct st_tensor *t = st_put_v(s, name, ST_F32, 4, (int64_t)1, (int64_t)1, (int64_t)4, (int64_t)4);
        blur_kernel(t->data);
    }
    int rc = st_save(s, path);
    st_free(s);
    return rc;
}

int disc_init_file(const char *path, const struct st *meta, uint64_t seed)
{
    struct disc_cfg cfg;
    struct st *none = st_new();
    int rc = disc_cfg_from_meta(&cfg, meta ? meta : none);
    st_free(none);
    if (rc != 0) return -1;
    struct disc d;
    disc_build(&d, &cfg);
    disc_init_weights(&d, seed);
    rc = disc_save(&d, path, -1);
    disc_free(&d);
    return rc;
}

/* ---- forward / backward ---------------------------------------------------- */

int disc_out_side(const struct disc *d) { return d->cfg.pool; }

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

/* At least need elements of size in *p (contents not kept). */
static void grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return;
    free(*p);
    *p = tp_aligned_alloc(need * size);
    *cap = need;
}

/* Lay the activations out for B images HxW (grows the block as needed). */
static void disc_reserve(struct disc *d, int B, int H, int W)
{
    const struct disc_cfg *c = &d->cfg;
    const int S = c->nstages, P = c->pool;
    const size_t full = (size_t)B * c->width[0] * H * W, pooled = (size_t)B * c->width[S] * P * P;
    size_t need = 2 * full + 3 * pooled, gmax = zmax(full, pooled);
    int h = H, w = W;
    for (int i = 0; i < S; i++) {
        struct disc_stage *s = &d->st[i];
        s->cfg = discblock_cfg_upstream(B, c->width[i], c->width[i + 1], h, w);
        s->cfg.G = c->groups;
        discblock_out_hw(&s->cfg, &h, &w);
        const size_t out = (size_t)B * c->width[i + 1] * h * w;
        need += discblock_acts_size(&s->cfg) + out;
        gmax = zmax(gmax, out);
    }
    need += 2 * gmax;
    grow((void **)&d->acts, &d->cap, need, sizeof(float));
    grow((void **)&d->idx, &d->idx_cap, pooled, sizeof(int32_t));
    float *q = d->acts;
    d->h0 = q, q += full;
    d->a0 = q, q += full;
    for (int i = 0; i < S; i++) {
        struct disc_stage *s = &d->st[i];
        discblock_acts_point(&s->acts, q, &s->cfg);
        q += discblock_acts_size(&s->cfg);
        int h2, w2;
        discblock_out_hw(&s->cfg, &h2, &w2);
        s->out = q, q += (size_t)B * s->cfg.OC * h2 * w2;
    }
    d->pooled = q, q += pooled;
    d->t1 = q, q += pooled;
    d->t2 = q, q += pooled;
    d->g0 = q, q += gmax;
    d->g1 = q, q += gmax;
    TP_ASSERT((size_t)(q - d->acts) == need);
    d->B = B, d->H = H, d->W = W;
}

void disc_forward(struct disc *d, float *logits, const float *x, int B, int H, int W)
{
    const struct disc_cfg *c = &d->cfg;
    const int S = c->nstages, P = c->pool, wS = c->width[S];
    disc_reserve(d, B, H, W);
    struct disc_ptrs p;
    disc_point(d, d->params.data, &p);
    const struct conv2d_shape s_in = conv2d_shape_same(B, c->channels, H, W, c->width[0], DISC_KIN, DISC_KIN, 1, 1);
    conv2d_forward(d->h0, x, p.in_w, p.in_b, &s_in);
    leaky_relu_forward(d->a0, d->h0, conv2d_out_numel(&s_in), DISC_SLOPE);
    const float *cur = d->a0;
    for (int i = 0; i < S; i++) {
        discblock_forward(d->st[i].out, &d->st[i].acts, cur, &p.blk[i], &d->st[i].cfg);
        cur = d->st[i].out;
    }
    int hS, wSide;
    discblock_out_hw(&d->st[S - 1].cfg, &hS, &wSide);
    adaptive_maxpool_forward(d->pooled, d->idx, cur, B, wS, hS, wSide, P, P);
    const struct conv2d_shape s_mid = conv2d_shape_same(B, wS, P, P, wS, 1, 1, 1, 1);
    conv2d_forward(d->t1, d->pooled, p.mid_w, p.mid_b, &s_mid);
    leaky_relu_forward(d->t2, d->t1, conv2d_out_numel(&s_mid), DISC_SLOPE);
    const struct conv2d_shape s_out = conv2d_shape_same(B, wS, P, P, 1, DISC_KOUT, DISC_KOUT, 1, 1);
    conv2d_forward(logits, d->t2, p.out_w, p.out_b, &s_out);
}

static float *zeroed(float *g, size_t n)
{
    memset(g, 0, n * sizeof(float));
    return g;
}

void disc_backward(struct disc *d, float *dx, float *dparams, const float *dlogits, const float *x)
{
    const struct disc_cfg *c = &d->cfg;
    const int S = c->nstages, P = c->pool, wS = c->width[S], B = d->B;
    TP_ASSERT(B > 0);
    if (!dx && !dparams) return;
    struct disc_ptrs p, dp;
    disc_point(d, d->params.data, &p);
    if (dparams) disc_point(d, dparams, &dp);
    else memset(&dp, 0, sizeof dp);
    const size_t pooled = (size_t)B * wS * P * P;
    const struct conv2d_shape s_out = conv2d_shape_same(B, wS, P, P, 1, DISC_KOUT, DISC_KOUT, 1, 1);
    const struct conv2d_shape s_mid = conv2d_shape_same(B, wS, P, P, wS, 1, 1, 1, 1);
    float *ga = d->g0, *gb = d->g1, *tmp;

    conv2d_backward(zeroed(ga, pooled), dp.out_w, dp.out_b, dlogits, d->t2, p.out_w, &s_out);
    leaky_relu_backward(zeroed(gb, pooled), ga, d->t1, pooled, DISC_SLOPE);
    conv2d_backward(zeroed(ga, pooled), dp.mid_w, dp.mid_b, gb, d->pooled, p.mid_w, &s_mid);
    int hS, wSide;
    discblock_out_hw(&d->st[S - 1].cfg, &hS, &wSide);
    adaptive_maxpool_backward(zeroed(gb, (size_t)B * wS * hS * wSide), ga, d->idx, B, wS, hS, wSide, P, P);
    /* gb holds the gradient of the current stage's output */
    for (int i = S - 1; i >= 0; i--) {
        const struct discblock_cfg *bc = &d->st[i].cfg;
        const float *in = i ? d->st[i - 1].out : d->a0;
        discblock_backward(zeroed(ga, (size_t)B * bc->C * bc->H * bc->W), dparams ? &dp.blk[i] : NULL, gb, in,
                           &p.blk[i], &d->st[i].acts, bc);
        tmp = ga, ga = gb, gb = tmp;
    }
    const struct conv2d_shape s_in =
        conv2d_shape_same(B, c->channels, d->H, d->W, c->width[0], DISC_KIN, DISC_KIN, 1, 1);
    const size_t full = conv2d_out_numel(&s_in);
    leaky_relu_backward(zeroed(ga, full), gb, d->h0, full, DISC_SLOPE);
    conv2d_backward(dx, dp.in_w, dp.in_b, ga, x, p.in_w, &s_in);
}
