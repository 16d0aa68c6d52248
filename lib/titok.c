/* titok.c - what TiTok's encoder and decoder share: the architecture
 * metadata and the ViT trunk (ln_pre, pre-LN blocks, ln_post on a slice of
 * rows). See titok.h. */
#include "titok.h"
#include "err.h"
#include "layernorm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integer metadata in [lo,hi]; def >= 0 is the value when the key is absent. */
static int get_int(const struct st *m, const char *key, long def, long lo, long hi, int *out)
{
    long v = def;
    if ((def < 0 || st_meta_get(m, key)) && st_meta_get_long(m, key, &v) != 0) return -1;
    if (v < lo || v > hi) return tp_err_set("metadata '%s': %ld is out of range [%ld, %ld]", key, v, lo, hi);
    *out = (int)v;
    return 0;
}

int titok_cfg_from_meta(struct titok_cfg *c, const struct st *meta, int dec)
{
    memset(c, 0, sizeof *c);
    if (get_int(meta, "resolution", -1, 1, 4096, &c->R) || get_int(meta, "patch", -1, 1, 4096, &c->P) ||
        get_int(meta, "width", -1, 1, 16384, &c->E) || get_int(meta, "layers", -1, 0, 256, &c->L) ||
        get_int(meta, "heads", -1, 1, 256, &c->NH) || get_int(meta, "tokens", -1, 1, 65536, &c->K) ||
        get_int(meta, "token_size", -1, 1, 16384, &c->D))
        return -1;
    if (c->E % c->NH) return tp_err_set("width %d is not a multiple of heads %d", c->E, c->NH);
    if (!dec) {
        if (c->R % c->P) return tp_err_set("resolution %d is not a multiple of patch %d", c->R, c->P);
        c->G = c->R / c->P;
        if (get_int(meta, "channels", -1, 1, 64, &c->C) || get_int(meta, "legacy", 1, 0, 1, &c->legacy)) return -1;
    } else {
        if (get_int(meta, "grid", c->R / c->P, 1, 4096, &c->G) ||
            get_int(meta, "proxy_codes", -1, 1, 1 << 20, &c->V) || get_int(meta, "pixel", 0, 0, 1, &c->pixel))
            return -1;
        if (c->pixel) {
            if (get_int(meta, "pixel_l2", 0, 0, 1, &c->pixel_l2)) return -1;
            if (vqgan_cfg_from_meta_keys(&c->pix, meta, "pixel_") != 0) return -1;
            int r = c->pix.resolution >> (c->pix.nlevels - 1);
            if (r != c->G)
                return tp_err_set("the pixel decoder's latent grid is %dx%d, the decoder's %dx%d", r, r, c->G, c->G);
        }
    }
    c->N = c->G * c->G;
    return 0;
}

size_t titok_param(struct params *p, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                   enum param_init init, float a)
{
    int64_t s[4] = {d0, d1, d2, d3};
    return params_add(p, NULL, name, ndim, s, init, a);
}

void titok_seq_build(float *x, int B, int N, int K, int E, const float *cls, const float *pos, const float *mid,
                     size_t mb, size_t mn, size_t me, const float *tok, size_t tb, const float *tpos)
{
    size_t T = (size_t)1 + N + K;
#pragma omp parallel for
    for (size_t r = 0; r < (size_t)B * T; r++) {
        size_t b = r / T, t = r % T;
        float *row = x + r * E;
        const float *p = t <= (size_t)N ? pos + t * E : tpos + (t - 1 - N) * E;
        for (int i = 0; i < E; i++) {
            float v = t == 0 ? cls[i]
                      : t <= (size_t)N ? mid[b * mb + (t - 1) * mn + i * me]
                                       : tok[b * tb + (t - 1 - N) * E + i];
            row[i] = v + p[i];
        }
    }
}

/* ---- trunk ------------------------------------------------------------------ */

static size_t add_norm(struct params *p, const char *prefix, const char *name, int E)
{
    char n[160];
    int64_t s[1] = {E};
    snprintf(n, sizeof n, "%s.weight", name);
    size_t off = params_add(p, prefix, n, 1, s, INIT_ONES, 0);
    snprintf(n, sizeof n, "%s.bias", name);
    params_add(p, prefix, n, 1, s, INIT_ZEROS, 0);
    return off;
}

void titok_trunk_init(struct titok_trunk *t, struct params *p, const char *prefix, const struct titok_cfg *c,
                      int T, int row0, int nrows)
{
    memset(t, 0, sizeof *t);
    t->bc = (struct block_cfg){BLOCK_PRE_LN, c->E, c->NH, 4 * c->E, LN_EPS_VIT, 0, 0.0f, 0.0f};
    t->L = c->L, t->T = T, t->row0 = row0, t->nrows = nrows;
    t->off_blk = tp_calloc((size_t)c->L + 1, sizeof *t->off_blk);
    t->bp = tp_calloc((size_t)c->L + 1, sizeof *t->bp);
    t->dbp = tp_calloc((size_t)c->L + 1, sizeof *t->dbp);
    t->acts = tp_calloc((size_t)c->L + 1, sizeof *t->acts);
    t->off_pre = add_norm(p, prefix, "ln_pre", c->E);
    char n[160];
    for (int i = 0; i < c->L; i++) {
        snprintf(n, sizeof n, "%stransformer.%d.", prefix, i);
        t->off_blk[i] = block_params_add(p, n, &t->bc);
    }
    t->off_post = add_norm(p, prefix, "ln_post", c->E);
}

void titok_trunk_bind(struct titok_trunk *t, const struct params *p)
{
    int E = t->bc.C;
    t->params = p;
    t->pre_w = p->data + t->off_pre, t->pre_b = t->pre_w + E;
    t->dpre_w = p->grad + t->off_pre, t->dpre_b = t->dpre_w + E;
    t->post_w = p->data + t->off_post, t->post_b = t->post_w + E;
    t->dpost_w = p->grad + t->off_post, t->dpost_b = t->dpost_w + E;
    for (int i = 0; i < t->L; i++) {
        block_params_point(&t->bp[i], p->data + t->off_blk[i], &t->bc);
        block_params_point(&t->dbp[i], p->grad + t->off_blk[i], &t->bc);
    }
}

void titok_trunk_free(struct titok_trunk *t)
{
    free(t->off_blk);
    free(t->bp);
    free(t->dbp);
    free(t->acts);
    free(t->mem);
    free(t->keep);
    linear_tile_cache_free(&t->pk);
    memset(t, 0, sizeof *t);
}

/* Size the activations for batch B. Training keeps every block's input and
 * activations; inference the blocks' input and output, block_stack_infer's
 * chunks keeping their own activations (titok-l-32's encoder over 4 images
 * of 256x256 kept 2.2 GB for its 24 blocks). A training layout serves
 * inference too. */
static void trunk_reserve(struct titok_trunk *t, int B, int train)
{
    if (t->B == B && (t->train || !train)) return;
    size_t E = t->bc.C, BT = (size_t)B * t->T, BS = (size_t)B * t->nrows;
    size_t na = block_acts_floats(&t->bc, B, t->T, 0);
    size_t nx = train ? (size_t)t->L + 1 : 2, nacts = train ? (size_t)t->L + 1 : 0; /* + scratch */
    size_t total = nx * BT * E + 2 * BT + 2 * BS + (train ? 3 : 2) * BS * E + (train ? 2 * BT * E : 0) + nacts * na;
    free(t->mem);
    float *m = t->mem = tp_aligned_alloc(total * sizeof(float));
    t->xs = m, m += nx * BT * E;
    t->pre_mean = m, m += BT;
    t->pre_rstd = m, m += BT;
    t->post_mean = m, m += BS;
    t->post_rstd = m, m += BS;
    t->sel = m, m += BS * E;
    t->out = m, m += BS * E;
    t->dsel = t->g0 = t->g1 = NULL;
    if (train) {
        t->dsel = m, m += BS * E;
        t->g0 = m, m += BT * E;
        t->g1 = m, m += BT * E;
    }
    if (train) {
        for (int i = 0; i < t->L; i++) m = block_acts_point(&t->acts[i], m, &t->bc, B, t->T, 0);
        m = block_acts_point(&t->scratch, m, &t->bc, B, t->T, 0);
    }
    TP_ASSERT(m == t->mem + total);
    free(t->keep);
    t->keep = tp_malloc(BT);
    for (size_t i = 0; i < BT; i++) {
        const int r = (int)(i % t->T);
        t->keep[i] = r >= t->row0 && r < t->row0 + t->nrows;
    }
    t->B = B;
    t->train = train;
}

/* block_stack_infer's tail: a chunk's kept rows, nrows a sequence in order
 * (all T of them where every row is kept), into sel, on its thread */
static void trunk_take(void *ctx, const float *y, int s0, int ns, const int *rows, int nr, float *scratch)
{
    const struct titok_trunk *t = ctx;
    const size_t len = (size_t)t->nrows * t->bc.C;
    (void)rows, (void)nr, (void)scratch;
    memcpy(t->sel + (size_t)s0 * len, y, sizeof(float) * ns * len);
}

const float *titok_trunk_forward(struct titok_trunk *t, const float *x, int B, int train)
{
    trunk_reserve(t, B, train);
    int E = t->bc.C, T = t->T, n = t->nrows;
    size_t BTE = (size_t)B * T * E;
    layernorm_forward(t->xs, t->pre_mean, t->pre_rstd, x, t->pre_w, t->pre_b, B * T, E, t->bc.eps);
    if (train) {
        /* the last block over the rows ln_post reads alone */
        for (int i = 0; i < t->L; i++)
            block_forward_rows(t->xs + (i + 1) * BTE, &t->acts[i], t->xs + i * BTE, &t->bp[i], &t->bc, B, T, 0, 0,
                               t->row0, i == t->L - 1 ? n : 0);
    } else {
        /* the last block's out_proj and MLP over the kept rows alone, which
         * come to sel through trunk_take */
        const float *packed = block_stack_cached(&t->pk, t->bp, t->L, &t->bc, t->params->version);
        const struct block_tail tail = {trunk_take, t, 1, 0, t->keep};
        block_stack_infer(NULL, t->xs, t->bp, packed, t->L, &t->bc, B, T, NULL, &tail);
    }
    if (train) block_rows_gather(t->sel, t->xs + (size_t)t->L * BTE, B, T, t->row0, n, E);
    layernorm_forward(t->out, t->post_mean, t->post_rstd, t->sel, t->post_w, t->post_b, B * n, E, t->bc.eps);
    return t->out;
}

void titok_trunk_backward(struct titok_trunk *t, float *dx, const float *dout, const float *x)
{
    int B = t->B, E = t->bc.C, T = t->T, n = t->nrows;
    TP_ASSERT(B > 0 && t->train);
    size_t BTE = (size_t)B * T * E;
    memset(t->dsel, 0, sizeof(float) * B * n * E);
    layernorm_backward(t->dsel, t->dpost_w, t->dpost_b, dout, t->sel, t->post_w, t->post_mean, t->post_rstd, B * n,
                       E);
    /* only the kept rows get a gradient at the last block's output, and
     * block_backward_rows reads it there alone */
    float *g = t->g0, *h = t->g1;
    block_rows_put(g, t->dsel, B, T, t->row0, n, E, 0);
    for (int i = t->L - 1; i >= 0; i--) {
        memset(h, 0, sizeof(float) * BTE);
        block_backward_rows(h, &t->dbp[i], &t->scratch, g, t->xs + i * BTE, &t->bp[i], &t->acts[i], &t->bc, B, T,
                            0, 0, t->row0, i == t->L - 1 ? n : 0);
        float *s = g;
        g = h, h = s;
    }
    layernorm_backward(dx, t->dpre_w, t->dpre_b, g, x, t->pre_w, t->pre_mean, t->pre_rstd, B * T, E);
}

void titok_sum_batch(float *acc, const float *x, int B, int T, int E, int t0, int n)
{
    size_t m = (size_t)n * E;
#pragma omp parallel for
    for (size_t i = 0; i < m; i++) {
        size_t t = i / E, e = i % E;
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += x[((size_t)b * T + t0 + t) * E + e];
        acc[i] += s;
    }
}
