/* optim.c - AdamW, SGD, schedules, clipping, accumulation, EMA (see optim.h).
 *
 * Every pass over a tensor is cut into fixed blocks of BLOCK elements: the
 * blocks (of all the tensors of a pass at once) run in parallel and any sum
 * is made per block, then added in block order, so norms and updates do not
 * depend on the thread count.
 */
#include "optim.h"
#include "err.h"
#include "lanesum.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#define BLOCK 32768
#define NAME_MAX_SUFFIX 32 /* room for ".momentum_buffer" and the NUL */

struct optim {
    struct optim_cfg cfg;
    char *freeze;      /* owned copy of cfg.freeze */
    regex_t re;
    int has_re;
};

static const char *const no_decay_words[] = {
    "ln", "bias", "latent_tokens", "mask_token", "embedding", "norm", "gamma", "embed",
};

static const char *kind_name(enum optim_kind k) { return k == OPTIM_SGD ? "sgd" : "adamw"; }

void optim_cfg_init(struct optim_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->kind = OPTIM_ADAMW;
    c->lr = 1e-4;
    c->beta1 = 0.9;
    c->beta2 = 0.99;
    c->eps = 1e-8;
    c->wd = 1e-4;
    c->momentum = 0.9;
    c->schedule = OPTIM_CONSTANT;
    c->end_lr = 1e-5;
}

double optim_lr(const struct optim_cfg *c, long step)
{
    if (step < c->warmup) return c->lr * ((double)step / (double)(c->warmup > 1 ? c->warmup : 1));
    if (c->schedule == OPTIM_CONSTANT || c->lr == 0) return c->lr;
    long span = c->total - c->warmup;
    double p = (double)(step - c->warmup) / (double)(span > 1 ? span : 1);
    if (p > 1) p = 1;
    double ratio = fmax(0.0, 0.5 * (1.0 + cos(M_PI * p)));
    /* base * lambda, as LambdaLR computes it, so the doubles match torch's */
    return c->lr * ((c->end_lr + (c->lr - c->end_lr) * ratio) / c->lr);
}

int optim_decays(const char *name, int ndim)
{
    if (ndim < 2) return 0;
    for (size_t i = 0; i < sizeof no_decay_words / sizeof *no_decay_words; i++)
        if (strstr(name, no_decay_words[i])) return 0;
    return 1;
}

/* glibc's regcomp copies the expression under an interval {m,n} n times,
 * nested intervals multiplying: "(a{1000}){1000}" takes 1.6 s and 200 MB,
 * larger counts hang. It copies under a '+' too (a+ is a a*), so stacked
 * or nested '+' double it each ("a++++...", 40 of them, hung the fuzzer).
 * The interval counts of a freeze pattern, each '+' counting 2, may
 * multiply to at most this (tensor-name patterns need a few). */
#define FREEZE_MAX_REPEAT 1000
/* ... and its memory grows with the pattern's length, up to 24 KB a byte
 * (a 367-byte mix of '$' and ']' took 8.8 MB; found by fuzz_flags): tensor-
 * name patterns are tens of bytes. */
#define FREEZE_MAX_LEN 256

static int freeze_repeat_ok(const char *re)
{
    if (strlen(re) > FREEZE_MAX_LEN)
        return tp_err_set("freeze pattern of %zu bytes, over the limit of %d (FREEZE_MAX_LEN)", strlen(re),
                          FREEZE_MAX_LEN);
    double product = 1;
    int bracket = 0;
    for (const char *p = re; *p; p++) {
        if (*p == '\\' && p[1]) p++;
        else if (*p == '[') bracket = 1;
        else if (*p == ']') bracket = 0;
        else if (*p == '{' && !bracket) {
            double n = 0;
            for (p++; *p && *p != '}'; p++)   /* {m}, {m,}, {m,n}: the largest count */
                if (*p >= '0' && *p <= '9') n = n * 10 + (*p - '0');
                else if (*p == ',') product *= n > 1 ? n : 1, n = 0;
            product *= n > 1 ? n : 1;
            if (!*p) break;
        } else if (*p == '+' && !bracket) {
            product *= 2;
        }
    }
    if (product > FREEZE_MAX_REPEAT)
        return tp_err_set("freeze pattern '%s': interval counts (and '+', as 2) multiply to %.0f, over the "
                          "limit of %d (FREEZE_MAX_REPEAT)", re, product, FREEZE_MAX_REPEAT);
    return 0;
}

struct optim *optim_new(const struct optim_cfg *c)
{
    if (!(c->lr >= 0) || !(c->end_lr >= 0)) return tp_err_set("learning rate must be >= 0"), NULL;
    if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1))
        return tp_err_set("betas must be in [0,1)"), NULL;
    if (!(c->eps >= 0) || !(c->wd >= 0) || !(c->momentum >= 0))
        return tp_err_set("eps, weight decay and momentum must be >= 0"), NULL;
    if (c->warmup < 0 || c->total < 0) return tp_err_set("schedule steps must be >= 0"), NULL;
    if (c->schedule == OPTIM_COSINE && c->total <= c->warmup)
        return tp_err_set("cosine schedule: total steps (%ld) must exceed warmup (%ld)",
                          c->total, c->warmup), NULL;
    if (c->freeze && *c->freeze && freeze_repeat_ok(c->freeze) != 0) return NULL;
    struct optim *o = tp_calloc(1, sizeof *o);
    o->cfg = *c;
    if (c->freeze && *c->freeze) {
        int rc = regcomp(&o->re, c->freeze, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[256];
            regerror(rc, &o->re, msg, sizeof msg);
            free(o);
            return tp_err_set("freeze pattern '%s': %s", c->freeze, msg), NULL;
        }
        o->has_re = 1;
        o->freeze = tp_strdup(c->freeze);
    }
    o->cfg.freeze = o->freeze;
    return o;
}

void optim_free(struct optim *o)
{
    if (!o) return;
    if (o->has_re) regfree(&o->re);
    free(o->freeze);
    free(o);
}

const struct optim_cfg *optim_cfg(const struct optim *o) { return &o->cfg; }

int optim_frozen(const struct optim *o, const char *name)
{
    return o->has_re && regexec(&o->re, name, 0, NULL, 0) == 0;
}

static int trainable(const struct optim *o, const struct st_tensor *t)
{
    return t->dtype == ST_F32 && !optim_frozen(o, t->name);
}

static int same_shape(const struct st_tensor *a, const struct st_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static int shape_mismatch(const char *what, const struct st_tensor *t,
                          const struct st_tensor *ref)
{
    char a[128], b[128];
    return tp_err_set("%s '%s': shape %s, the weight is %s", what, t->name,
                      st_shape_str(t, a, sizeof a), st_shape_str(ref, b, sizeof b));
}

/* ---- blocked passes ------------------------------------------------------ */

static size_t nblocks(size_t n) { return (n + BLOCK - 1) / BLOCK; }

static double sum_blocks(const double *part, size_t nb)
{
    double s = 0;
    for (size_t b = 0; b < nb; b++) s += part[b];
    return s;
}

/* ---- passes over many tensors ---------------------------------------------
 * A pass (sums of squares, scaling, the update, the EMA) runs as one
 * parallel loop over the blocks of all its tensors, numbered tensor after
 * tensor: the threads meet once a pass, not once a tensor. With passive
 * waiting every meeting woke a sleeping thread (20-40 us on this machine's
 * virtual CPUs), and a maskgit-tiny step's optimizer met about 130 times. A
 * tensor's sum adds its blocks' in order: the bits of a loop per tensor. */
enum span_op { SPAN_SUMSQ, SPAN_SCALE, SPAN_UPDATE, SPAN_EMA };

struct upd;
struct span {
    float *a;          /* the tensor the pass reads (SUMSQ) or changes */
    const float *b;    /* UPDATE: the gradient; EMA: the weights */
    float *s1, *s2;    /* UPDATE: the optimizer's state */
    const struct upd *u;
    size_t n;
    double sum;        /* after the pass: SUMSQ's sum of squares, UPDATE's of the changes */
};

static double span_block(const struct span *t, enum span_op op, float c, size_t lo, size_t hi);

/* op over every block of t[0..n); c: SCALE's factor, EMA's 1 - decay */
static void spans_run(struct span *t, int n, enum span_op op, float c)
{
    size_t *first = tp_malloc(((size_t)n + 1) * sizeof *first), total = 0;
    first[0] = 0;
    for (int j = 0; j < n; j++) first[j + 1] = first[j] + nblocks(t[j].n), total += t[j].n;
    const size_t nb = first[n];
    int *owner = tp_malloc((nb ? nb : 1) * sizeof *owner);
    double *part = tp_malloc((nb ? nb : 1) * sizeof *part);
    for (int j = 0; j < n; j++)
        for (size_t b = first[j]; b < first[j + 1]; b++) owner[b] = j;
#pragma omp parallel for schedule(static) if (total > BLOCK)
    for (size_t b = 0; b < nb; b++) {
        const struct span *x = &t[owner[b]];
        const size_t lo = (b - first[owner[b]]) * BLOCK, hi = lo + BLOCK < x->n ? lo + BLOCK : x->n;
        part[b] = span_block(x, op, c, lo, hi);
    }
    for (int j = 0; j < n; j++) t[j].sum = sum_blocks(part + first[j], first[j + 1] - first[j]);
    free(part), free(owner), free(first);
}

/* ---- gradients ------------------------------------------------------------ */

int optim_grads_accumulate(struct st *acc, const struct st *g)
{
    if (acc->n != g->n)
        return tp_err_set("%d gradients, the first set has %d", g->n, acc->n);
    for (int i = 0; i < acc->n; i++) {
        struct st_tensor *a = &acc->t[i];
        const struct st_tensor *b = st_find(g, a->name);
        if (!b) return tp_err_set("gradient '%s' is missing", a->name);
        if (a->dtype != ST_F32 || b->dtype != ST_F32)
            return tp_err_set("gradient '%s': dtype %s, expected F32", a->name,
                              st_dtype_name(a->dtype != ST_F32 ? a->dtype : b->dtype));
        if (!same_shape(a, b)) {
            char x[128], y[128];
            return tp_err_set("gradient '%s': shape %s, the first set has %s", a->name,
                              st_shape_str(b, x, sizeof x), st_shape_str(a, y, sizeof y));
        }
    }
    for (int i = 0; i < acc->n; i++) {
        float *a = acc->t[i].data;
        const float *b = st_find(g, acc->t[i].name)->data;
        size_t n = (size_t)st_numel(&acc->t[i]);
#pragma omp parallel for schedule(static) if (n > BLOCK)
        for (size_t k = 0; k < n; k++) a[k] += b[k];
    }
    return 0;
}

void optim_grads_average(struct st *acc, int n)
{
    TP_ASSERT(n >= 1);
    if (n == 1) return;
    for (int i = 0; i < acc->n; i++) {
        if (acc->t[i].dtype != ST_F32) continue;
        float *a = acc->t[i].data;
        size_t m = (size_t)st_numel(&acc->t[i]);
#pragma omp parallel for schedule(static) if (m > BLOCK)
        for (size_t k = 0; k < m; k++) a[k] /= (float)n;
    }
}

/* sums[i]: the sum of squares of g's tensor i (0 for one not F32); an
 * error for the first non-finite element */
static int check_finite_sums(const struct st *g, double *sums)
{
    struct span *t = tp_calloc(g->n ? (size_t)g->n : 1, sizeof *t);
    for (int i = 0; i < g->n; i++)
        if (g->t[i].dtype == ST_F32) t[i].a = g->t[i].data, t[i].n = (size_t)st_numel(&g->t[i]);
    spans_run(t, g->n, SPAN_SUMSQ, 0);
    int rc = 0;
    for (int i = 0; i < g->n && rc == 0; i++) {
        sums[i] = t[i].sum;
        if (isfinite(t[i].sum)) continue;   /* squares of finite floats fit a double */
        const float *x = t[i].a;
        for (size_t k = 0; k < t[i].n && rc == 0; k++)
            if (!isfinite(x[k]))
                rc = tp_err_set("gradient '%s': element %zu is %s", g->t[i].name, k,
                                isnan(x[k]) ? "NaN" : "Inf");
    }
    free(t);
    return rc;
}

int optim_check_finite(const struct st *g)
{
    double *sums = tp_malloc((g->n ? (size_t)g->n : 1) * sizeof *sums);
    int rc = check_finite_sums(g, sums);
    free(sums);
    return rc;
}

/* the gradients' names, dtypes and shapes against the weights */
static int check_grad_shapes(const struct optim *o, const struct st *w, const struct st *g)
{
    for (int i = 0; i < g->n; i++) {
        const struct st_tensor *gt = &g->t[i];
        const struct st_tensor *wt = st_find(w, gt->name);
        if (!wt) return tp_err_set("gradient '%s': no weight of that name", gt->name);
        if (gt->dtype != ST_F32)
            return tp_err_set("gradient '%s': dtype %s, expected F32", gt->name,
                              st_dtype_name(gt->dtype));
        if (wt->dtype != ST_F32)
            return tp_err_set("gradient '%s': the weight is %s, not trainable", gt->name,
                              st_dtype_name(wt->dtype));
        if (!same_shape(gt, wt)) return shape_mismatch("gradient", gt, wt);
    }
    for (int i = 0; i < w->n; i++)
        if (trainable(o, &w->t[i]) && !st_find(g, w->t[i].name))
            return tp_err_set("weight '%s' has no gradient and is not frozen", w->t[i].name);
    return 0;
}

int optim_check_grads(const struct optim *o, const struct st *w, const struct st *g)
{
    return check_grad_shapes(o, w, g) != 0 ? -1 : optim_check_finite(g);
}

/* ---- state ------------------------------------------------------------------ */

static const char *const adamw_slots[] = {"exp_avg", "exp_avg_sq"};
static const char *const sgd_slots[] = {"momentum_buffer"};

static int nslots(enum optim_kind k) { return k == OPTIM_SGD ? 1 : 2; }
static const char *slot(enum optim_kind k, int i) { return k == OPTIM_SGD ? sgd_slots[i] : adamw_slots[i]; }

static char *slot_name(char *buf, size_t n, const char *name, const char *suffix)
{
    snprintf(buf, n, "%s.%s", name, suffix);
    return buf;
}

static int state_step(const struct st *state, long *step)
{
    *step = 0;
    if (!st_meta_get(state, "step")) {
        if (state->n > 0) return tp_err_set("metadata 'step' is missing");
        return 0;
    }
    if (st_meta_get_long(state, "step", step) != 0) return -1;
    if (*step < 0) return tp_err_set("metadata 'step' is %ld", *step);
    return 0;
}

int optim_check_state(const struct optim *o, const struct st *w, const struct st *state)
{
    const char *kind = st_meta_get(state, "optimizer");
    if (kind && strcmp(kind, kind_name(o->cfg.kind)) != 0)
        return tp_err_set("state of optimizer '%s', not '%s'", kind, kind_name(o->cfg.kind));
    long step;
    if (state_step(state, &step) != 0) return -1;
    for (int i = 0; i < w->n; i++) {
        const struct st_tensor *wt = &w->t[i];
        if (wt->dtype != ST_F32) continue;
        size_t len = strlen(wt->name) + NAME_MAX_SUFFIX;
        char *nm = tp_malloc(len);
        int rc = 0;
        for (int k = 0; k < nslots(o->cfg.kind) && rc == 0; k++) {
            const struct st_tensor *s = st_find(state, slot_name(nm, len, wt->name, slot(o->cfg.kind, k)));
            if (!s) continue;
            if (s->dtype != ST_F32)
                rc = tp_err_set("state '%s': dtype %s, expected F32", nm, st_dtype_name(s->dtype));
            else if (!same_shape(s, wt))
                rc = shape_mismatch("state", s, wt);
        }
        free(nm);
        if (rc) return rc;
    }
    return 0;
}

/* ---- the update ---------------------------------------------------------------- */

/* Per-step constants, as float where torch applies them to float tensors. */
struct upd {
    enum optim_kind kind;
    float decay, b1, omb1, b2, omb2, bc2_sqrt, eps, neg_step; /* AdamW */
    float wd, momentum, neg_lr;                               /* SGD */
};

static void upd_init(struct upd *u, const struct optim_cfg *c, double lr, long t, int decays)
{
    double wd = decays ? c->wd : 0.0;
    memset(u, 0, sizeof *u);
    u->kind = c->kind;
    u->decay = (float)(1.0 - lr * wd);
    u->b1 = (float)c->beta1;
    u->omb1 = (float)(1.0 - c->beta1);
    u->b2 = (float)c->beta2;
    u->omb2 = (float)(1.0 - c->beta2);
    u->bc2_sqrt = (float)sqrt(1.0 - pow(c->beta2, (double)t));
    u->eps = (float)c->eps;
    u->neg_step = (float)(-(lr / (1.0 - pow(c->beta1, (double)t))));
    u->wd = (float)wd;
    u->momentum = (float)c->momentum;
    u->neg_lr = (float)(-lr);
}

/* Update element i of one tensor; return its change. s1, s2: exp_avg,
 * exp_avg_sq (AdamW); s1: momentum_buffer (SGD). One function per
 * optimizer, so that neither carries a branch. */
static inline double adamw_one(const struct upd *restrict u, float *restrict p, const float *restrict g,
                               float *restrict s1, float *restrict s2, size_t i)
{
    float p0 = p[i], x = p0 * u->decay;
    s1[i] = s1[i] * u->b1 + u->omb1 * g[i];
    s2[i] = s2[i] * u->b2 + (u->omb2 * g[i]) * g[i];
    float denom = sqrtf(s2[i]) / u->bc2_sqrt + u->eps;
    x = x + (u->neg_step * s1[i]) / denom;
    p[i] = x;
    return (double)x - (double)p0;
}

static inline double sgd_one(const struct upd *restrict u, float *restrict p, const float *restrict g,
                             float *restrict s1, size_t i)
{
    float p0 = p[i];
    float d = u->wd != 0.0f ? g[i] + u->wd * p0 : g[i];
    s1[i] = s1[i] * u->momentum + d;
    float x = p0 + u->neg_lr * s1[i];
    p[i] = x;
    return (double)x - (double)p0;
}

/* Update elements [i0,i1); return the sum of squared changes, over
 * lanesum.h's lanes: one chain of double additions kept the loop scalar
 * (AdamW was 3.9% of a maskgit-tiny training step's CPU). */
static double adamw_range(const struct upd *restrict u, float *restrict p, const float *restrict g,
                          float *restrict s1, float *restrict s2, size_t i0, size_t i1)
{
    double q[LANESUM_LANES] = {0};
    size_t i = i0;
    for (; i + LANESUM_LANES <= i1; i += LANESUM_LANES)
#pragma omp simd
        for (int j = 0; j < LANESUM_LANES; j++) {
            const double du = adamw_one(u, p, g, s1, s2, i + j);
            q[j] += du * du;
        }
    for (; i < i1; i++) {
        const double du = adamw_one(u, p, g, s1, s2, i);
        q[0] += du * du;
    }
    return lanesum_total(q);
}

static double sgd_range(const struct upd *restrict u, float *restrict p, const float *restrict g,
                        float *restrict s1, size_t i0, size_t i1)
{
    double q[LANESUM_LANES] = {0};
    size_t i = i0;
    for (; i + LANESUM_LANES <= i1; i += LANESUM_LANES)
#pragma omp simd
        for (int j = 0; j < LANESUM_LANES; j++) {
            const double du = sgd_one(u, p, g, s1, i + j);
            q[j] += du * du;
        }
    for (; i < i1; i++) {
        const double du = sgd_one(u, p, g, s1, i);
        q[0] += du * du;
    }
    return lanesum_total(q);
}

static double span_block(const struct span *t, enum span_op op, float c, size_t lo, size_t hi)
{
    float *a = t->a;
    switch (op) {
    case SPAN_SUMSQ: return lanesum_sqdev(a + lo, hi - lo, 0.0);
    case SPAN_SCALE:
#pragma omp simd
        for (size_t i = lo; i < hi; i++) a[i] *= c;
        return 0;
    case SPAN_UPDATE:
        return t->u->kind == OPTIM_ADAMW ? adamw_range(t->u, a, t->b, t->s1, t->s2, lo, hi)
                                         : sgd_range(t->u, a, t->b, t->s1, lo, hi);
    case SPAN_EMA:
#pragma omp simd
        for (size_t i = lo; i < hi; i++) a[i] = a[i] - c * (a[i] - t->b[i]);
        return 0;
    }
    return 0;
}

/* The state tensor of a weight, created zeroed if absent. */
static float *state_slot(struct st *state, const struct st_tensor *wt, const char *suffix)
{
    size_t len = strlen(wt->name) + NAME_MAX_SUFFIX;
    char *nm = tp_malloc(len);
    slot_name(nm, len, wt->name, suffix);
    struct st_tensor *s = st_find(state, nm);
    if (!s) s = st_put(state, nm, ST_F32, wt->ndim, wt->shape);
    free(nm);
    return s->data;
}

/* sums: the sums of squares of g's tensors (check_finite_sums) */
static double clip_grads(const struct optim *o, const struct st *w, struct st *g,
                         const double *sums, double *coef)
{
    double ss = 0;
    struct span *t = tp_calloc(w->n ? (size_t)w->n : 1, sizeof *t);
    int n = 0;
    for (int i = 0; i < w->n; i++)
        if (trainable(o, &w->t[i])) {
            struct st_tensor *gt = st_find(g, w->t[i].name);
            ss += sums[gt - g->t];
            t[n++] = (struct span){.a = gt->data, .n = (size_t)st_numel(gt)};
        }
    double norm = sqrt(ss);
    *coef = 1.0;
    /* torch: max_norm * reciprocal(total_norm + 1e-6) in float, clamped to 1 */
    float c = (1.0f / ((float)norm + 1e-6f)) * (float)o->cfg.clip;
    if (o->cfg.clip > 0 && c < 1.0f) {
        *coef = c;
        spans_run(t, n, SPAN_SCALE, c);
    }
    free(t);
    return norm;
}

int optim_step(struct optim *o, struct st *w, struct st *g, struct st *state,
               struct optim_report *r)
{
    long step;
    if (check_grad_shapes(o, w, g) != 0 || optim_check_state(o, w, state) != 0 ||
        state_step(state, &step) != 0)
        return -1;
    double *sums = tp_malloc((g->n ? (size_t)g->n : 1) * sizeof *sums);
    if (check_finite_sums(g, sums) != 0) {
        free(sums);
        return -1;
    }
    const struct optim_cfg *c = &o->cfg;
    struct optim_report rep = {.step = step + 1, .lr = optim_lr(c, step)};
    rep.grad_norm = clip_grads(o, w, g, sums, &rep.clip_coef);
    free(sums);

    /* every tensor's pointers first (state slots made on the first step),
     * then one pass over them all */
    struct span *t = tp_calloc(w->n ? (size_t)w->n : 1, sizeof *t);
    struct upd u[2];
    upd_init(&u[0], c, rep.lr, rep.step, 0);
    upd_init(&u[1], c, rep.lr, rep.step, 1);
    int n = 0;
    for (int i = 0; i < w->n; i++) {
        struct st_tensor *wt = &w->t[i];
        if (!trainable(o, wt)) continue;
        float *s1 = state_slot(state, wt, slot(c->kind, 0));
        float *s2 = c->kind == OPTIM_ADAMW ? state_slot(state, wt, slot(c->kind, 1)) : NULL;
        const struct st_tensor *gt = st_find(g, wt->name);
        t[n++] = (struct span){wt->data, gt->data, s1, s2, &u[optim_decays(wt->name, wt->ndim) != 0],
                               (size_t)st_numel(wt), 0};
    }
    spans_run(t, n, SPAN_UPDATE, 0);
    double ss = 0;
    for (int j = 0; j < n; j++) ss += t[j].sum;
    free(t);
    rep.update_norm = sqrt(ss);
    st_meta_set_long(state, "step", rep.step);
    st_meta_set(state, "optimizer", kind_name(c->kind));
    st_meta_set_long(w, "step", rep.step);
    if (r) *r = rep;
    return 0;
}

/* ---- EMA --------------------------------------------------------------------- */

double optim_ema_decay(long step, double max_decay)
{
    long s = step - 1;
    if (s <= 0) return 0.0;
    double d = (1.0 + (double)s) / (10.0 + (double)s);
    return d < max_decay ? d : max_decay;
}

int optim_ema_update(const struct optim *o, struct st *ema, const struct st *w,
                     long step, double max_decay)
{
    for (int i = 0; i < w->n; i++) {
        const struct st_tensor *wt = &w->t[i];
        const struct st_tensor *et = st_find(ema, wt->name);
        if (et && (et->dtype != wt->dtype || !same_shape(et, wt)))
            return shape_mismatch("EMA", et, wt);
    }
    float omd = (float)(1.0 - optim_ema_decay(step, max_decay));
    struct span *t = tp_calloc(w->n ? (size_t)w->n : 1, sizeof *t);
    int n = 0;
    for (int i = 0; i < w->n; i++) {
        const struct st_tensor *wt = &w->t[i];
        struct st_tensor *et = st_find(ema, wt->name);
        if (!et)
            st_put_copy(ema, wt->name, wt);
        else if (!trainable(o, wt))   /* upstream copies what has no grad */
            memcpy(et->data, wt->data, wt->nbytes);
        else   /* tensor data stays where it is when st_put_copy grows the table */
            t[n++] = (struct span){.a = et->data, .b = wt->data, .n = (size_t)st_numel(wt)};
    }
    spans_run(t, n, SPAN_EMA, omd);
    free(t);
    st_meta_set_long(ema, "step", step);
    return 0;
}
