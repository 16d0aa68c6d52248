/* perc_train.c - training the default perceptual network ("tokpipe-percep")
 * as an image classifier, and measuring its accuracy (see perceptual.h).
 *
 * Dimensions: n images per batch of C channels, H x W; the last tap has CL
 * channels over HW positions; NCLS classes.
 *
 * Classifier: logits = classifier(mean_hw(last tap)), cross-entropy on the
 * labels, AdamW (optim.h) on every conv and the classifier; the LPIPS heads
 * (all ones) are frozen. Samples come record by record in a seeded order:
 * each epoch permutes the records (through the stream's seek table) and
 * each record's samples, and a batch never spans two records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "linear.h"
#include "loss.h"
#include "optim.h"
#include "perc_impl.h"
#include "perceptual.h"
#include "rng.h"
#include "tz.h"

void perc_train_cfg_init(struct perc_train_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->batch = 64;
    c->lr = 2e-3;
    c->wd = 5e-4;
    c->warmup = 100;
    c->cfg = PERC_DEFAULT_CFG;
    c->slope = PERC_DEFAULT_SLOPE;
}

/* The image and label fields of a record, checked: image F32 [n,C,H,W],
 * label I32 [n] in [0, ncls) (ncls <= 0: any label >= 0). */
static int fields(const struct st *rec, const struct st_tensor **img, const struct st_tensor **lab,
                  int ncls)
{
    *img = st_require(rec, "image", ST_F32, 4);
    *lab = st_require(rec, "label", ST_I32, 1);
    if (!*img || !*lab) return -1;
    if ((*lab)->shape[0] != (*img)->shape[0])
        return tp_err_set("label has %lld rows, image %lld", (long long)(*lab)->shape[0],
                          (long long)(*img)->shape[0]);
    const int32_t *y = (*lab)->data;
    for (int64_t i = 0; i < (*lab)->shape[0]; i++)
        if (y[i] < 0 || (ncls > 0 && y[i] >= ncls))
            return tp_err_set("label %d of sample %lld: outside [0,%d)", y[i], (long long)i, ncls);
    return 0;
}

/* One pass over a stream: image size and channels, number of classes. */
static int scan(const char *path, int *C, int *H, int *W, int *ncls, long *nrec)
{
    struct tz_reader *r = tz_reader_open_path(path);
    if (!r) return -1;
    struct st *rec;
    int rc, max = -1;
    *nrec = 0;
    *C = 0;
    while ((rc = tz_reader_next(r, &rec)) == 1) {
        const struct st_tensor *img, *lab;
        if (fields(rec, &img, &lab, 0) != 0)
            rc = -1;
        else if (*C && (img->shape[1] != *C || img->shape[2] != *H || img->shape[3] != *W))
            rc = tp_err_set("images of another size than record 0's");
        if (rc == 1 && !*C) *C = (int)img->shape[1], *H = (int)img->shape[2], *W = (int)img->shape[3];
        for (int64_t i = 0; rc == 1 && i < lab->shape[0]; i++)
            if (((int32_t *)lab->data)[i] > max) max = ((int32_t *)lab->data)[i];
        st_free(rec);
        if (rc != 1) {
            tp_err_prefix("%s: record %ld", path, tz_reader_index(r) - 1);
            break;
        }
        (*nrec)++;
    }
    tz_reader_close(r);
    if (rc < 0) return -1;
    if (*nrec == 0 || max < 0) return tp_err_set("%s: no labelled images", path);
    if (*C != 1 && *C != 3) return tp_err_set("%s: %d channels, expected 1 or 3", path, *C);
    *ncls = max + 1;
    return 0;
}

/* ---- the classifier head --------------------------------------------------- */

struct head {
    float *pooled, *dpooled, *logits, *dlogits, *dtap;
};

static void head_alloc(struct head *h, const struct perceptual *p, int n, int H, int W)
{
    const struct perc_vgg *v = &p->vgg;
    const int CL = v->oc[v->n - 1];
    h->pooled = tp_malloc((size_t)n * CL * sizeof(float));
    h->dpooled = tp_malloc((size_t)n * CL * sizeof(float));
    h->logits = tp_malloc((size_t)n * v->ncls * sizeof(float));
    h->dlogits = tp_malloc((size_t)n * v->ncls * sizeof(float));
    h->dtap = tp_malloc(perc_vgg_acts_numel(v, n, H, W) * sizeof(float)); /* >= the last tap */
}

static void head_free(struct head *h)
{
    free(h->pooled), free(h->dpooled), free(h->logits), free(h->dlogits), free(h->dtap);
}

/* logits of prepared images x [n, net_c, H, W] */
static void classify(struct perceptual *p, struct head *h, const float *x, int n, int H, int W)
{
    const struct perc_vgg *v = &p->vgg;
    const int l = v->n - 1, CL = v->oc[l];
    perc_vgg_forward(v, &p->va, x, p->params.data, n, H, W);
    const int HW = p->va.h[l] * p->va.w[l];
    const float *f = p->va.out[l];
#pragma omp parallel for if ((long)n * CL * HW > 16384) schedule(static)
    for (int i = 0; i < n * CL; i++) {
        double s = 0;
        for (int k = 0; k < HW; k++) s += f[(size_t)i * HW + k];
        h->pooled[i] = (float)(s / HW);
    }
    const float *w = p->params.data + v->clsoff;
    linear_forward(h->logits, h->pooled, w, w + (size_t)v->ncls * CL, n, CL, v->ncls);
}

/* weight gradients of the loss whose logit gradient is h->dlogits */
static void classify_backward(struct perceptual *p, struct head *h, const float *x, int n)
{
    const struct perc_vgg *v = &p->vgg;
    const int l = v->n - 1, CL = v->oc[l], HW = p->va.h[l] * p->va.w[l];
    const float *w = p->params.data + v->clsoff;
    float *dw = p->params.grad + v->clsoff;
    memset(h->dpooled, 0, (size_t)n * CL * sizeof(float));
    linear_backward(h->dpooled, dw, dw + (size_t)v->ncls * CL, h->dlogits, h->pooled, w, n, CL,
                    v->ncls);
#pragma omp parallel for if ((long)n * CL * HW > 16384) schedule(static)
    for (int i = 0; i < n * CL; i++)
        for (int k = 0; k < HW; k++) h->dtap[(size_t)i * HW + k] = h->dpooled[i] / (float)HW;
    float *dtap[PERC_VGG_MAX_TAPS] = {0};
    dtap[v->ntap - 1] = h->dtap;
    perc_vgg_backward(v, &p->va, NULL, p->params.grad, dtap, x, p->params.data);
}

static int argmax(const float *x, int n)
{
    int k = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[k]) k = i;
    return k;
}

/* Accuracy of p on every record of a labelled stream. */
static int accuracy(struct perceptual *p, const char *path, double *acc, long *count)
{
    struct tz_reader *r = tz_reader_open_path(path);
    if (!r) return -1;
    struct st *rec;
    struct head h = {0};
    int rc, cap = 0, C = 0, H = 0, W = 0;
    float *x = NULL;
    long right = 0, n = 0;
    while ((rc = tz_reader_next(r, &rec)) == 1) {
        const struct st_tensor *img, *lab;
        if (fields(rec, &img, &lab, p->vgg.ncls) != 0 || perceptual_check(p, (int)img->shape[1], (int)img->shape[2],
                                                                           (int)img->shape[3]) != 0) {
            tp_err_prefix("%s: record %ld", path, tz_reader_index(r) - 1);
            st_free(rec);
            rc = -1;
            break;
        }
        const int b = (int)img->shape[0];
        if (b > cap || img->shape[1] != C || img->shape[2] != H || img->shape[3] != W) {
            head_free(&h), free(x);
            cap = b, C = (int)img->shape[1], H = (int)img->shape[2], W = (int)img->shape[3];
            head_alloc(&h, p, cap, H, W);
            x = tp_malloc((size_t)cap * p->net_c * H * W * sizeof(float));
        }
        perc_prep_lpips(p, x, img->data, b, C, H * W);
        classify(p, &h, x, b, H, W);
        for (int i = 0; i < b; i++)
            right += argmax(h.logits + (size_t)i * p->vgg.ncls, p->vgg.ncls) == ((int32_t *)lab->data)[i];
        n += b;
        st_free(rec);
    }
    tz_reader_close(r);
    head_free(&h), free(x);
    if (rc < 0) return -1;
    if (n == 0) return tp_err_set("%s: no images", path);
    *acc = (double)right / n;
    *count = n;
    return 0;
}

int perceptual_accuracy(const char *weights, const char *data_tz, double *acc, long *n)
{
    struct perceptual *p;
    if (perceptual_load(&p, weights) != 0) return -1;
    int rc = -1;
    if (p->kind != PERC_LPIPS || p->vgg.ncls < 1)
        tp_err_set("%s: %s has no classifier", weights, p->arch);
    else
        rc = accuracy(p, data_tz, acc, n);
    perceptual_free(p);
    return rc;
}

/* ---- batches ------------------------------------------------------------------ */

struct src {
    struct tz_reader *r;
    long nrec, pos;          /* records; next position in order */
    int64_t *order, *perm;   /* record order of the epoch; sample order of rec */
    struct st *rec;
    long nrow, next;         /* samples in rec; next position in perm */
    struct rng rng;
    int ncls;
};

/* Up to `want` samples (images [n,C,H,W] into x, labels into y) from the
 * current record, loading the next one (and starting a new epoch) when it
 * is spent. Returns n, or -1. */
static int src_next(struct src *s, float *x, int32_t *y, int want)
{
    if (!s->rec || s->next == s->nrow) {
        if (s->pos == s->nrec || !s->order) {
            if (!s->order) s->order = tp_malloc(s->nrec * sizeof(int64_t));
            rng_permutation(&s->rng, s->order, s->nrec);
            s->pos = 0;
        }
        st_free(s->rec);
        s->rec = NULL;
        const long i = s->order[s->pos++];
        const struct st_tensor *img, *lab;
        if (tz_reader_seek(s->r, i) != 0 || tz_reader_next(s->r, &s->rec) != 1 ||
            fields(s->rec, &img, &lab, s->ncls) != 0)
            return tp_err_prefix("record %ld", i);
        s->nrow = (long)img->shape[0];
        s->perm = tp_realloc(s->perm, s->nrow * sizeof(int64_t));
        rng_permutation(&s->rng, s->perm, s->nrow);
        s->next = 0;
    }
    const struct st_tensor *img = st_find(s->rec, "image"), *lab = st_find(s->rec, "label");
    const size_t per = (size_t)(st_numel(img) / img->shape[0]);
    int n = 0;
    for (; n < want && s->next < s->nrow; n++, s->next++) {
        const int64_t j = s->perm[s->next];
        memcpy(x + n * per, (const float *)img->data + j * per, per * sizeof(float));
        y[n] = ((const int32_t *)lab->data)[j];
    }
    return n;
}

static void src_close(struct src *s)
{
    if (s->r) tz_reader_close(s->r);
    st_free(s->rec);
    free(s->order), free(s->perm);
}

/* ---- training ------------------------------------------------------------------ */

static void train_meta(struct st *m, const struct perc_train_cfg *c, int C, int ncls)
{
    st_meta_set(m, "arch", PERC_DEFAULT_ARCH);
    st_meta_set(m, "cfg", c->cfg);
    st_meta_set_long(m, "in_channels", C);
    st_meta_set_long(m, "num_classes", ncls);
    char v[32];
    snprintf(v, sizeof v, "%g", c->slope); /* "0.1", not the float's 17 digits */
    st_meta_set(m, "slope", v);
}

static struct optim *train_optim(const struct perc_train_cfg *c, int steps)
{
    struct optim_cfg oc;
    optim_cfg_init(&oc);
    oc.kind = OPTIM_ADAMW;
    oc.lr = c->lr;
    oc.beta2 = 0.999;
    oc.wd = c->wd;
    oc.schedule = OPTIM_COSINE;
    oc.warmup = c->warmup < steps ? c->warmup : steps / 10; /* cosine needs total > warmup */
    oc.total = steps;
    oc.end_lr = c->lr / 100;
    oc.freeze = "^lin[0-9]+\\.";
    return optim_new(&oc);
}

int perceptual_train(const char *data_tz, const char *out_path, int steps, uint64_t seed,
                     const struct perc_train_cfg *cfg)
{
    struct perc_train_cfg c;
    if (cfg) c = *cfg;
    else perc_train_cfg_init(&c);
    if (steps < 1 || c.batch < 1) return tp_err_set("steps %d, batch %d: both must be positive", steps, c.batch);
    int C = 0, H = 0, W = 0, ncls = 0;
    struct src s = {0};
    if (scan(data_tz, &C, &H, &W, &ncls, &s.nrec) != 0) return -1;
    struct st *meta = st_new();
    train_meta(meta, &c, C, ncls);
    struct perceptual p;
    if (perc_build(&p, meta) != 0 || perceptual_check(&p, C, H, W) != 0) {
        params_free(&p.params);
        st_free(meta);
        return tp_err_prefix("%s", data_tz);
    }
    params_alloc(&p.params);
    params_fill_init(&p.params, seed);
    s.ncls = ncls;
    rng_seed(&s.rng, seed ^ 0x9e3779b97f4a7c15ull);
    s.r = tz_reader_open_path(data_tz);
    struct optim *o = train_optim(&c, steps);
    struct st *wv = st_new(), *gv = st_new(), *state = st_new();
    params_view(&p.params, wv, 0);
    params_view(&p.params, gv, 1);
    struct head h;
    head_alloc(&h, &p, c.batch, H, W);
    float *img = tp_malloc((size_t)c.batch * C * H * W * sizeof(float));
    float *x = tp_malloc((size_t)c.batch * p.net_c * H * W * sizeof(float));
    int32_t *y = tp_malloc(c.batch * sizeof(int32_t));
    double sum_loss = 0, sum_acc = 0, last_loss = 0, last_acc = 0;
    int rc = s.r && o ? 0 : -1, window = 0;
    for (int step = 0; rc == 0 && step < steps; step++) {
        const int n = src_next(&s, img, y, c.batch);
        if (n < 0) {
            rc = tp_err_prefix("%s", data_tz);
            break;
        }
        perc_prep_lpips(&p, x, img, n, C, H * W);
        classify(&p, &h, x, n, H, W);
        struct ce_stats cs;
        struct ce_opts co = {0};
        params_zero_grad(&p.params);
        memset(h.dlogits, 0, (size_t)n * ncls * sizeof(float)); /* loss_ce adds */
        loss_ce(h.dlogits, &cs, h.logits, y, n, ncls, &co, 1.0f);
        classify_backward(&p, &h, x, n);
        struct optim_report rep;
        if (optim_step(o, wv, gv, state, &rep) != 0) {
            rc = tp_err_prefix("step %d", step);
            break;
        }
        params_changed(&p.params);
        sum_loss += cs.loss, sum_acc += cs.acc, window++;
        if (window == 100 || step == steps - 1) {
            last_loss = sum_loss / window, last_acc = sum_acc / window;
            if (c.log)
                fprintf(c.log, "step %d loss %.4f acc %.4f lr %.3g\n", step + 1, last_loss, last_acc, rep.lr);
            sum_loss = sum_acc = 0, window = 0;
        }
    }
    if (rc == 0) {
        st_meta_set_long(meta, "train_steps", steps);
        st_meta_set_long(meta, "train_batch", c.batch);
        st_meta_set_double(meta, "train_lr", c.lr);
        st_meta_set_long(meta, "train_seed", (long)seed);
        st_meta_set_double(meta, "train_loss", last_loss);
        st_meta_set_double(meta, "train_acc", last_acc);
        double acc;
        long nt;
        if (c.test && accuracy(&p, c.test, &acc, &nt) == 0) {
            st_meta_set_double(meta, "test_acc", acc);
            st_meta_set_long(meta, "test_samples", nt);
            if (c.log) fprintf(c.log, "test accuracy %.4f on %ld images\n", acc, nt);
        } else if (c.test) {
            rc = -1;
        }
    }
    if (rc == 0) rc = perc_save(&p, out_path, meta);
    head_free(&h);
    free(img), free(x), free(y);
    st_free(wv), st_free(gv), st_free(state), st_free(meta);
    optim_free(o);
    src_close(&s);
    params_free(&p.params);
    perc_vgg_acts_free(&p.va);
    return rc;
}
