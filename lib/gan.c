/* gan.c - generator and discriminator sides of the stage-2 GAN objective,
 * the critic's update and its resumable state (see gan.h). */
#include "gan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "loss.h"

#define EMA_REAL "ema_real_logits_mean"
#define EMA_FAKE "ema_fake_logits_mean"

struct gan {
    struct gan_cfg cfg;
    struct disc d;
    struct optim *opt;
    struct st *wv, *gv;   /* views of the critic's values and gradients */
    struct st *state;     /* optimizer state, EMA buffers, last_step */
    long last_step;       /* -1: no update yet */
    size_t cap;           /* floats in buf */
    float *buf;           /* x, logits, dlogits */
    float *x, *logits, *dlogits;
};

void gan_cfg_init(struct gan_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->g_weight = 0.01;
    c->d_factor = 1.0;
    c->lecam_weight = 0.001;
    c->lecam_decay = 0.999;
    c->start_step = 20000;
    optim_cfg_init(&c->d_opt);
    c->d_opt.beta2 = 0.999;
    c->d_opt.schedule = OPTIM_COSINE;
    c->d_opt.warmup = 5000;
    c->d_opt.total = 500000 - 20000;
    c->d_opt.clip = 1.0;
}

/* The EMA buffer of the state (created as 0 by gan_open). */
static float *ema(const struct gan *g, const char *name)
{
    struct st_tensor *t = st_find(g->state, name);
    TP_ASSERT(t && t->dtype == ST_F32 && st_numel(t) == 1);
    return t->data;
}

/* A step count of a file's metadata, -1 if absent. */
static int meta_step(const struct st *s, const char *key, long *v)
{
    *v = -1;
    return st_meta_get(s, key) ? st_meta_get_long(s, key, v) : 0;
}

static int open_state(struct gan *g, const char *path, long wstep)
{
    if (path && access(path, F_OK) == 0) {
        if (st_load(&g->state, path) != 0) return -1;
    } else {
        g->state = st_new();
    }
    long sstep;
    if (optim_check_state(g->opt, g->wv, g->state) != 0 || meta_step(g->state, "step", &sstep) != 0 ||
        meta_step(g->state, "last_step", &g->last_step) != 0)
        return -1;
    if (sstep >= 0 && wstep >= 0 && sstep != wstep)
        return tp_err_set("state has %ld critic updates, the weights %ld", sstep, wstep);
    if (sstep < 0) st_meta_set_long(g->state, "step", 0); /* optim.h: a state with tensors has a step */
    static const char *const names[2] = {EMA_REAL, EMA_FAKE};
    for (int i = 0; i < 2; i++) {
        const struct st_tensor *t = st_find(g->state, names[i]);
        if (!t) st_put_v(g->state, names[i], ST_F32, 1, (int64_t)1);
        else if (t->dtype != ST_F32 || st_numel(t) != 1)
            return tp_err_set("'%s' is not one F32 value", names[i]);
    }
    return 0;
}

int gan_open(struct gan **out, const char *disc_weights, const char *disc_state, const struct gan_cfg *c)
{
    *out = NULL;
    long wstep;
    struct gan *g = tp_calloc(1, sizeof *g);
    g->cfg = *c;
    if (disc_load(&g->d, disc_weights, &wstep) != 0) {
        free(g);
        return -1;
    }
    g->opt = optim_new(&c->d_opt);
    g->wv = st_new();
    g->gv = st_new();
    params_view(&g->d.params, g->wv, 0);
    params_view(&g->d.params, g->gv, 1);
    if (!g->opt || open_state(g, disc_state, wstep) != 0) {
        if (g->opt) tp_err_prefix("%s", disc_state ? disc_state : disc_weights);
        gan_free(g);
        return -1;
    }
    *out = g;
    return 0;
}

void gan_free(struct gan *g)
{
    if (!g) return;
    disc_free(&g->d);
    optim_free(g->opt);
    st_free(g->wv);
    st_free(g->gv);
    st_free(g->state);
    free(g->buf);
    free(g);
}

/* Room for nx input floats and nl logits and their gradients (zeroed). */
static void reserve(struct gan *g, size_t nx, size_t nl)
{
    if (nx + 2 * nl > g->cap) {
        free(g->buf);
        g->cap = nx + 2 * nl;
        g->buf = tp_aligned_alloc(g->cap * sizeof(float));
    }
    g->x = g->buf;
    g->logits = g->x + nx;
    g->dlogits = g->logits + nl;
    memset(g->dlogits, 0, nl * sizeof(float));
}

static int check_shape(const struct gan *g, int B, int C, int H, int W)
{
    if (B < 1 || H < 1 || W < 1) return tp_err_set("images [%d,%d,%d,%d]: empty", B, C, H, W);
    if (C != g->d.cfg.channels)
        return tp_err_set("images have %d channels, the discriminator takes %d", C, g->d.cfg.channels);
    return 0;
}

double gan_generator_loss(struct gan *g, float *dfake, const float *fake, int B, int C, int H, int W, long step)
{
    const double scale = g->cfg.g_weight * g->cfg.d_factor;
    if (step < g->cfg.start_step || !(g->cfg.g_weight > 0 && g->cfg.d_factor > 0)) return 0.0;
    if (check_shape(g, B, C, H, W) != 0) return NAN;
    const int P = disc_out_side(&g->d);
    const size_t n = (size_t)B * P * P;
    reserve(g, 0, n);
    disc_forward(&g->d, g->logits, fake, B, H, W);
    const double v = loss_hinge_g(g->dlogits, g->logits, n, (float)scale);
    if (dfake) disc_backward(&g->d, dfake, NULL, g->dlogits, fake);
    return scale * v;
}

/* Mean of n logits, summed in double in index order, as a float. */
static float mean_f(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return (float)(s / (double)n);
}

static void add_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++) x[i] += v;
}

double gan_discriminator_step(struct gan *g, const float *real, const float *fake, int B, int C, int H, int W,
                              long step, struct gan_d_report *r)
{
    struct gan_d_report rep;
    memset(&rep, 0, sizeof rep);
    if (r) *r = rep;
    const struct gan_cfg *c = &g->cfg;
    if (step < c->start_step) return 0.0;
    if (check_shape(g, B, C, H, W) != 0) return NAN;
    if (step <= g->last_step) {
        tp_err_set("step %ld: the discriminator state already holds the update of step %ld", step, g->last_step);
        return NAN;
    }
    const int P = disc_out_side(&g->d);
    const size_t n = (size_t)B * P * P, img = (size_t)B * C * H * W;
    reserve(g, 2 * img, 2 * n);
    memcpy(g->x, real, img * sizeof(float));
    memcpy(g->x + img, fake, img * sizeof(float));
    disc_forward(&g->d, g->logits, g->x, 2 * B, H, W);
    const float *lr = g->logits, *lf = g->logits + n;
    float *dr = g->dlogits, *df = g->dlogits + n;
    const float mr = mean_f(lr, n), mf = mean_f(lf, n);
    float *er = ema(g, EMA_REAL), *ef = ema(g, EMA_FAKE);

    rep.hinge = loss_hinge_d(dr, df, lr, n, lf, n, (float)c->d_factor);
    if (c->lecam_weight > 0) {
        /* d/dmr of w relu(mr - ef)^2 is 2 w relu(mr - ef); each logit gets 1/n of it */
        const double a = fmax((double)mr - *ef, 0), b = fmax((double)*er - mf, 0);
        rep.lecam = c->lecam_weight * (a * a + b * b);
        add_const(dr, n, (float)(2 * c->lecam_weight * a / (double)n));
        add_const(df, n, (float)(-2 * c->lecam_weight * b / (double)n));
    }
    params_zero_grad(&g->d.params);
    disc_backward(&g->d, NULL, g->d.params.grad, g->dlogits, g->x);
    if (optim_step(g->opt, g->wv, g->gv, g->state, &rep.opt) != 0) return NAN;
    params_changed(&g->d.params);
    if (c->lecam_weight > 0) {
        /* torch: buffer * decay + mean * (1 - decay), float32 operations */
        const float dk = (float)c->lecam_decay, om = (float)(1.0 - c->lecam_decay);
        const float a = *er * dk, b = mr * om, a2 = *ef * dk, b2 = mf * om;
        *er = a + b;
        *ef = a2 + b2;
    }
    g->last_step = step;
    st_meta_set_long(g->state, "last_step", step);
    rep.loss = c->d_factor * rep.hinge + rep.lecam;
    rep.logits_real = mr;
    rep.logits_fake = mf;
    rep.ema_real = *er;
    rep.ema_fake = *ef;
    if (r) *r = rep;
    return rep.loss;
}

int gan_save(struct gan *g, const char *disc_weights, const char *disc_state)
{
    long step;
    if (meta_step(g->state, "step", &step) != 0) return -1;
    if (disc_save(&g->d, disc_weights, step) != 0) return -1;
    return disc_state ? st_save(g->state, disc_state) : 0;
}

const struct params *gan_params(const struct gan *g) { return &g->d.params; }

void gan_ema(const struct gan *g, float *ema_real, float *ema_fake)
{
    *ema_real = *ema(g, EMA_REAL);
    *ema_fake = *ema(g, EMA_FAKE);
}
