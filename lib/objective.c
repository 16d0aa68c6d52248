/* objective.c - weighted loss terms over a record (see objective.h). */
#include "objective.h"
#include "err.h"
#include "loss.h"
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {"mse", "l1", "ce", "psnr", "ssim", "gan", "perceptual", "acc", "fd"};

void objective_init(struct objective *o)
{
    memset(o, 0, sizeof *o);
    o->smoothing = 0;
    o->unmasked_weight = 1;
}

int objective_add(struct objective *o, const char *spec)
{
    char kind[32];
    const char *colon = strchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    if (n == 0 || n >= sizeof kind) return tp_err_set("bad loss term '%s'", spec);
    memcpy(kind, spec, n);
    kind[n] = 0;
    int k = -1;
    for (int i = 0; i < (int)(sizeof kind_names / sizeof *kind_names); i++)
        if (strcmp(kind, kind_names[i]) == 0) k = i;
    if (k < 0) return tp_err_set("unknown loss '%s' (mse, l1, ce, perceptual, gan; metrics psnr, ssim, acc, fd)", kind);
    double w = 1;
    if (colon) {
        char *end;
        w = strtod(colon + 1, &end);
        if (end == colon + 1 || *end || !isfinite(w)) return tp_err_set("bad weight in '%s'", spec);
    }
    if (o->n == OBJ_MAX_TERMS) return tp_err_set("at most %d loss terms", OBJ_MAX_TERMS);
    o->t[o->n].kind = (enum obj_kind)k;
    o->t[o->n].weight = w;
    o->n++;
    return 0;
}

const char *objective_term_name(const struct objective *o, int k) { return kind_names[o->t[k].kind]; }

static int same_shape(const struct st_tensor *a, const struct st_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static int eval_ce(struct objective *o, struct obj_term *t, const struct st *rec, float *dpred,
                   const struct st_tensor *p)
{
    const char *tname = o->target ? o->target : "target";
    struct st_tensor *tg = st_require(rec, tname, ST_I32, p->ndim - 1);
    if (!tg) return -1;
    for (int i = 0; i < tg->ndim; i++)
        if (tg->shape[i] != p->shape[i])
            return tp_err_set("field '%s' does not match the leading shape of '%s'", tname, p->name);
    int V = (int)p->shape[p->ndim - 1];
    int64_t N = st_numel(tg);
    float *w = NULL;
    const uint8_t *m = NULL;
    struct st_tensor *mt = st_find(rec, o->mask ? o->mask : "mask");
    if (mt) {
        if (mt->dtype != ST_U8 || st_numel(mt) != N)
            return tp_err_set("field '%s': expected U8 with one entry per target", mt->name);
        m = mt->data;
        w = tp_malloc((size_t)N * sizeof(float));
        for (int64_t i = 0; i < N; i++) w[i] = m[i] ? 1.0f : o->unmasked_weight;
    } else if (o->mask) {
        return tp_err_set("missing field '%s'", o->mask);
    }
    struct ce_opts co = {.smoothing = o->smoothing, .weight = w, .acc_mask = m,
                         .acc_group = tg->ndim >= 2 ? N / tg->shape[0] : 0};
    struct ce_stats cs;
    t->value = loss_ce(dpred, &cs, p->data, tg->data, N, V, &co, (float)t->weight);
    free(w);
    if (isnan(t->value)) return -1;
    o->acc = cs.acc;
    return 0;
}

/* The acc and fd metrics: each reads its own fields, none has a gradient. */
static int eval_stream_metric(struct objective *o, struct obj_term *t, const struct st *rec)
{
    const char *name = kind_names[t->kind];
    if (!o->eval_only) return tp_err_set("%s is a metric, not a loss: use --eval", name);
    if (t->kind == OBJ_FD) {
        const char *pname = o->pred ? o->pred : "features";
        struct st_tensor *p = st_require(rec, pname, ST_F32, 2);
        if (!p) return -1;
        if (!o->fd) return tp_err_set("the fd term needs feature statistics");
        if (fd_stats_add(o->fd, p->data, p->shape[0], (int)p->shape[1]) != 0)
            return tp_err_prefix("field '%s'", pname);
        t->value = NAN;
        return 0;
    }
    const char *pname = o->pred ? o->pred : "logits", *tname = o->target ? o->target : "label";
    struct st_tensor *p = st_require(rec, pname, ST_F32, -1);
    if (!p) return -1;
    struct st_tensor *tg = st_require(rec, tname, ST_I32, p->ndim - 1);
    if (!tg) return -1;
    for (int i = 0; i < tg->ndim; i++)
        if (tg->shape[i] != p->shape[i])
            return tp_err_set("field '%s' does not match the leading shape of '%s'", tname, pname);
    int64_t N = st_numel(tg), V = p->shape[p->ndim - 1], right = 0;
    const float *x = p->data;
    const int32_t *y = tg->data;
    for (int64_t i = 0; i < N; i++) {
        const float *row = x + i * V;
        int64_t best = 0;
        for (int64_t c = 1; c < V; c++)
            if (row[c] > row[best]) best = c;
        right += best == y[i];
    }
    o->acc_right += right;
    o->acc_seen += N;
    t->value = N ? (double)right / (double)N : NAN;
    return 0;
}

static int is_stream_metric(enum obj_kind k) { return k == OBJ_ACC || k == OBJ_FD; }

int objective_eval(struct objective *o, const struct st *rec, struct st *grad)
{
    if (o->n == 0) return tp_err_set("no loss terms");
    o->total = 0;
    o->acc = NAN;
    int first = -1;
    for (int k = 0; k < o->n; k++) {
        if (!is_stream_metric(o->t[k].kind)) {
            if (first < 0) first = k;
        } else if (eval_stream_metric(o, &o->t[k], rec) != 0) {
            return -1;
        }
    }
    if (first < 0) return 0; /* metrics only: no prediction gradient */
    int is_ce = o->t[first].kind == OBJ_CE;
    for (int k = first + 1; k < o->n; k++)
        if (!is_stream_metric(o->t[k].kind) && (o->t[k].kind == OBJ_CE) != is_ce)
            return tp_err_set("ce cannot be mixed with pixel losses");
    const char *pname = o->pred ? o->pred : is_ce ? "logits" : "recon";
    struct st_tensor *p = st_require(rec, pname, ST_F32, -1);
    if (!p) return -1;
    char gname[160];
    snprintf(gname, sizeof gname, "%s.grad", pname);
    struct st_tensor *g = st_put(grad, gname, ST_F32, p->ndim, p->shape);
    memset(&o->drep, 0, sizeof o->drep);
    long step = 0;
    const char *sv = st_meta_get(rec, "step");
    if (sv) step = strtol(sv, NULL, 10);
    const struct st_tensor *real = NULL;
    for (int k = 0; k < o->n; k++) {
        struct obj_term *t = &o->t[k];
        if (is_stream_metric(t->kind)) continue;
        if (t->kind == OBJ_CE) {
            if (eval_ce(o, t, rec, g->data, p) != 0) return -1;
        } else {
            if ((t->kind == OBJ_PSNR || t->kind == OBJ_SSIM) && !o->eval_only)
                return tp_err_set("%s is a metric, not a loss: use --eval", kind_names[t->kind]);
            const char *tname = o->target ? o->target : "image";
            struct st_tensor *tg = st_require(rec, tname, ST_F32, -1);
            if (!tg) return -1;
            if (!same_shape(tg, p)) return tp_err_set("fields '%s' and '%s' differ in shape", pname, tname);
            size_t n = (size_t)st_numel(p);
            if (t->kind == OBJ_GAN) {
                if (!o->gan) return tp_err_set("the gan term needs a discriminator");
                if (p->ndim != 4) return tp_err_set("gan needs [B,C,H,W] images");
                /* the generator side, weighted inside by the gan's g_weight */
                double v = gan_generator_loss(o->gan, g->data, p->data, (int)p->shape[0], (int)p->shape[1],
                                              (int)p->shape[2], (int)p->shape[3], step);
                if (isnan(v)) return -1;
                t->value = t->weight != 0 ? v / t->weight : 0;
                o->total += v;
                real = tg;
                continue;
            }
            if (t->kind == OBJ_PERCEPTUAL) {
                if (!o->perc) return tp_err_set("the perceptual term needs a network");
                if (p->ndim != 4) return tp_err_set("perceptual needs [B,C,H,W] images");
                t->value = perceptual_loss(o->perc, g->data, p->data, tg->data, (int)p->shape[0], (int)p->shape[1],
                                           (int)p->shape[2], (int)p->shape[3], (float)t->weight);
                if (isnan(t->value)) return -1;
                o->total += t->weight * t->value;
                continue;
            }
            if (t->kind == OBJ_PSNR || t->kind == OBJ_SSIM) {
                if (p->ndim != 4) return tp_err_set("%s needs [B,C,H,W] images", kind_names[t->kind]);
                int B = (int)p->shape[0], C = (int)p->shape[1], H = (int)p->shape[2], W = (int)p->shape[3];
                t->value = t->kind == OBJ_PSNR ? metric_psnr(p->data, tg->data, B, C, H, W)
                                               : metric_ssim(p->data, tg->data, B, C, H, W);
                continue; /* a metric adds nothing to the total */
            }
            t->value = t->kind == OBJ_MSE ? loss_mse(g->data, p->data, tg->data, n, (float)t->weight)
                                          : loss_l1(g->data, p->data, tg->data, n, (float)t->weight);
        }
        o->total += t->weight * t->value;
    }
    if (real) { /* the critic learns after the generator's gradient is taken */
        double d = gan_discriminator_step(o->gan, real->data, p->data, (int)p->shape[0], (int)p->shape[1],
                                          (int)p->shape[2], (int)p->shape[3], step, &o->drep);
        if (isnan(d)) return -1;
    }
    static const char *const keys[] = {"step", "seed"};
    for (int i = 0; i < 2; i++) {
        const char *v = st_meta_get(rec, keys[i]);
        if (v) st_meta_set(grad, keys[i], v);
    }
    return 0;
}
