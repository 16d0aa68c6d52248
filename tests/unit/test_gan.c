/* test_gan.c - the stage-2 GAN objective (lib/gan.c): upstream defaults,
 * 3 steps of generator term, hinge + LeCam, EMAs, critic gradients and
 * AdamW against a PyTorch transcription of upstream's loss module and
 * training step, the start step, the generator side leaving the critic
 * alone, save/open resuming bit-identically, refusing a doubled step or
 * mismatched files, and identical bits across runs at 2 threads. */
#include "test.h"
#include "gan.h"

#include <cblas.h>
#include <omp.h>


static char *tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
    return buf;
}

static void test_defaults(void **state)
{
    (void)state;
    struct gan_cfg c;
    gan_cfg_init(&c);
    assert_true(c.g_weight == 0.01 && c.d_factor == 1.0 && c.lecam_weight == 0.001 && c.lecam_decay == 0.999);
    assert_int_equal(c.start_step, 20000);
    const struct optim_cfg *o = &c.d_opt;
    assert_true(o->kind == OPTIM_ADAMW && o->lr == 1e-4 && o->beta1 == 0.9 && o->beta2 == 0.999);
    assert_true(o->eps == 1e-8 && o->wd == 1e-4 && o->clip == 1.0 && o->end_lr == 1e-5);
    assert_true(o->schedule == OPTIM_COSINE && o->warmup == 5000 && o->total == 480000);
}

static double meta_double(const struct st *f, const char *key)
{
    double v;
    if (st_meta_get_double(f, key, &v) != 0) fail_msg("%s", tp_err());
    return v;
}

static void check_scalar(const char *what, double got, struct st *f, const char *name, double atol, double rtol)
{
    const float g = (float)got;
    check_close(what, &g, ref_f32(f, name, 1), 1, atol, rtol);
}

/* ---- PyTorch reference ----------------------------------------------------- */

static void test_reference(void **state)
{
    (void)state;
    struct st *f = ref_load("gan");
    struct disc_cfg dc;
    if (disc_cfg_from_meta(&dc, f) != 0) fail_msg("%s", tp_err());
    struct disc d;
    disc_build(&d, &dc);
    if (params_load(&d.params, f, 1) != 0) fail_msg("%s", tp_err());
    char wpath[128], name[160];
    assert_int_equal(disc_save(&d, tmp_path(wpath, sizeof wpath, "ref.safetensors"), -1), 0);

    struct gan_cfg c;
    gan_cfg_init(&c);
    c.g_weight = meta_double(f, "g_weight");
    c.d_factor = meta_double(f, "d_factor");
    c.lecam_weight = meta_double(f, "lecam_weight");
    c.lecam_decay = meta_double(f, "lecam_decay");
    c.start_step = (long)meta_double(f, "start_step");
    c.d_opt.lr = meta_double(f, "lr");
    c.d_opt.wd = meta_double(f, "wd");
    c.d_opt.clip = meta_double(f, "clip");
    c.d_opt.schedule = OPTIM_CONSTANT;
    c.d_opt.warmup = 0;
    struct gan *g;
    if (gan_open(&g, wpath, NULL, &c) != 0) fail_msg("%s", tp_err());
    const struct params *p = gan_params(g);
    const int B = 2, C = 1, H = 16, W = 16;
    const size_t nimg = (size_t)B * C * H * W;
    float *dfake = tp_calloc(nimg, sizeof(float));

    /* before the start step nothing happens */
    float *w0 = tp_malloc(p->total * sizeof(float));
    memcpy(w0, p->data, p->total * sizeof(float));
    struct gan_d_report rep;
    assert_true(gan_generator_loss(g, dfake, ref_f32(f, "s0.fake", nimg), B, C, H, W, c.start_step - 1) == 0.0);
    assert_true(gan_discriminator_step(g, ref_f32(f, "s0.real", nimg), ref_f32(f, "s0.fake", nimg), B, C, H, W,
                                       c.start_step - 1, &rep) == 0.0);
    for (size_t i = 0; i < nimg; i++) assert_true(dfake[i] == 0);
    assert_memory_equal(p->data, w0, p->total * sizeof(float));
    assert_true(rep.opt.step == 0 && rep.loss == 0);

    for (int k = 0; k < 3; k++) {
        char pre[8];
        snprintf(pre, sizeof pre, "s%d.", k);
#define REF(n) (snprintf(name, sizeof name, "%s%s", pre, n), name)
        const float *real = ref_f32(f, REF("real"), nimg), *fake = ref_f32(f, REF("fake"), nimg);
        memset(dfake, 0, nimg * sizeof(float));
        double gl = gan_generator_loss(g, dfake, fake, B, C, H, W, c.start_step + k);
        check_scalar("g_loss", gl, f, REF("g_loss"), 1e-6, 1e-4);
        check_close("fake.grad", dfake, ref_f32(f, REF("fake.grad"), nimg), nimg, 1e-7, 1e-3);
        double dl = gan_discriminator_step(g, real, fake, B, C, H, W, c.start_step + k, &rep);
        assert_true(dl == rep.loss && rep.opt.step == k + 1);
        check_scalar("d_loss", dl, f, REF("d_loss"), 1e-6, 1e-4);
        check_scalar("hinge", rep.hinge, f, REF("hinge"), 1e-6, 1e-4);
        check_scalar("lecam", rep.lecam, f, REF("lecam"), 1e-7, 1e-3);
        check_scalar("logits_real", rep.logits_real, f, REF("logits_real"), 1e-6, 1e-4);
        check_scalar("logits_fake", rep.logits_fake, f, REF("logits_fake"), 1e-6, 1e-4);
        check_scalar("ema_real", rep.ema_real, f, REF("ema_real"), 1e-7, 1e-4);
        check_scalar("ema_fake", rep.ema_fake, f, REF("ema_fake"), 1e-7, 1e-4);
        float er, ef;
        gan_ema(g, &er, &ef);
        assert_true(er == (float)rep.ema_real && ef == (float)rep.ema_fake);
        /* optim_step clipped the gradients in place by clip_coef */
        for (int i = 0; i < p->n; i++) {
            const struct param_spec *s = &p->spec[i];
            snprintf(name, sizeof name, "%s%s.grad", pre, s->name);
            const float *want = ref_f32(f, name, s->numel);
            float *scaled = tp_malloc(s->numel * sizeof(float));
            for (size_t j = 0; j < s->numel; j++) scaled[j] = (float)(want[j] * rep.opt.clip_coef);
            check_close(name, p->grad + s->offset, scaled, s->numel, 1e-6, 1e-3);
            free(scaled);
        }
#undef REF
    }
    for (int i = 0; i < p->n; i++) {
        const struct param_spec *s = &p->spec[i];
        snprintf(name, sizeof name, "final.%s", s->name);
        check_close(name, p->data + s->offset, ref_f32(f, name, s->numel), s->numel, 1e-5, 1e-4);
    }
    free(w0);
    free(dfake);
    gan_free(g);
    disc_free(&d);
    st_free(f);
}

/* ---- resume, determinism, the generator side -------------------------------------- */

enum { RB = 2, RC = 1, RH = 16, RW = 16, NSTEPS = 6 };

static void small_cfg(struct gan_cfg *c)
{
    gan_cfg_init(c);
    c->g_weight = 0.1;
    c->lecam_weight = 0.5;
    c->lecam_decay = 0.9;
    c->start_step = 2;
    c->d_opt.lr = 1e-3;
    c->d_opt.warmup = 2;
    c->d_opt.total = 8;
}

/* A small critic's weights file. */
static void small_disc(const char *path)
{
    struct st *m = st_new();
    st_meta_set(m, "channels", "1");
    st_meta_set(m, "widths", "8,8,16");
    st_meta_set(m, "groups", "4");
    st_meta_set(m, "pool", "4");
    if (disc_init_file(path, m, 9) != 0) fail_msg("%s", tp_err());
    st_free(m);
}

/* Global steps [from, to): a batch drawn from the step number, the
 * generator term and its input gradient, then the critic's step; out[3s..]
 * gets the two values and the sum of the input gradient. */
static void run_steps(struct gan *g, long from, long to, double *out)
{
    const size_t n = (size_t)RB * RC * RH * RW;
    float *real = tp_malloc(n * sizeof(float)), *fake = tp_malloc(n * sizeof(float));
    float *dfake = tp_malloc(n * sizeof(float));
    for (long s = from; s < to; s++) {
        struct rng r;
        rng_seed(&r, 100 + (uint64_t)s);
        fill_uniform(&r, real, n, 0, 1);
        fill_uniform(&r, fake, n, 0, 1);
        memset(dfake, 0, n * sizeof(float));
        out[3 * s] = gan_generator_loss(g, dfake, fake, RB, RC, RH, RW, s);
        out[3 * s + 1] = gan_discriminator_step(g, real, fake, RB, RC, RH, RW, s, NULL);
        if (isnan(out[3 * s + 1])) fail_msg("step %ld: %s", s, tp_err());
        out[3 * s + 2] = 0;
        for (size_t i = 0; i < n; i++) out[3 * s + 2] += dfake[i];
    }
    free(real), free(fake), free(dfake);
}

static void assert_same_file(const char *a, const char *b)
{
    struct st *x, *y;
    assert_int_equal(st_load(&x, a), 0);
    assert_int_equal(st_load(&y, b), 0);
    assert_int_equal(x->n, y->n);
    for (int i = 0; i < x->n; i++) {
        struct st_tensor *t = st_find(y, x->t[i].name);
        if (!t || t->nbytes != x->t[i].nbytes || memcmp(t->data, x->t[i].data, t->nbytes))
            fail_msg("%s and %s differ in '%s'", a, b, x->t[i].name);
    }
    assert_int_equal(x->nmeta, y->nmeta);
    for (int i = 0; i < x->nmeta; i++) {
        const char *v = st_meta_get(y, x->meta_key[i]);
        if (!v || strcmp(v, x->meta_val[i])) fail_msg("%s and %s differ in '%s'", a, b, x->meta_key[i]);
    }
    st_free(x);
    st_free(y);
}

static void test_resume(void **state)
{
    (void)state;
    char w0[128], wa[128], sa[128], wb[128], sb[128], smid[128];
    small_disc(tmp_path(w0, sizeof w0, "w0.safetensors"));
    tmp_path(wa, sizeof wa, "a.safetensors");
    tmp_path(sa, sizeof sa, "a.state.safetensors");
    tmp_path(wb, sizeof wb, "b.safetensors");
    tmp_path(sb, sizeof sb, "b.state.safetensors");
    tmp_path(smid, sizeof smid, "mid.state.safetensors");
    struct gan_cfg c;
    small_cfg(&c);
    double va[3 * NSTEPS], vb[3 * NSTEPS];

    /* A: all steps in memory */
    struct gan *g;
    if (gan_open(&g, w0, sa, &c) != 0) fail_msg("%s", tp_err()); /* sa does not exist yet */
    run_steps(g, 0, NSTEPS, va);
    assert_int_equal(gan_save(g, wa, sa), 0);
    gan_free(g);
    assert_true(va[3] == 0 && va[4] == 0 && va[5] == 0 && va[6] != 0 && va[7] != 0 && va[8] != 0); /* start 2 */

    /* B: killed after step 3, resumed from its files */
    if (gan_open(&g, w0, NULL, &c) != 0) fail_msg("%s", tp_err());
    run_steps(g, 0, 4, vb);
    assert_int_equal(gan_save(g, wb, sb), 0);
    assert_int_equal(gan_save(g, wb, smid), 0);
    gan_free(g);
    if (gan_open(&g, wb, sb, &c) != 0) fail_msg("%s", tp_err());
    const size_t n = (size_t)RB * RC * RH * RW;
    float *img = tp_calloc(n, sizeof(float));
    assert_true(isnan(gan_discriminator_step(g, img, img, RB, RC, RH, RW, 3, NULL)));
    assert_non_null(strstr(tp_err(), "already holds the update of step 3"));
    run_steps(g, 4, NSTEPS, vb);
    assert_int_equal(gan_save(g, wb, sb), 0);
    gan_free(g);
    assert_memory_equal(va, vb, sizeof va);
    assert_same_file(wa, wb);
    assert_same_file(sa, sb);
    struct st *s;
    assert_int_equal(st_load(&s, sa), 0);
    assert_string_equal(st_meta_get(s, "step"), "4");
    assert_string_equal(st_meta_get(s, "last_step"), "5");
    assert_non_null(st_require(s, "ema_real_logits_mean", ST_F32, 1));
    assert_non_null(st_require(s, "blocks.0.0.weight.exp_avg_sq", ST_F32, 4));
    st_free(s);

    /* weights and state of different updates, a channel count the critic
     * does not take, a missing file */
    assert_int_equal(gan_open(&g, wa, smid, &c), -1);
    assert_non_null(strstr(tp_err(), "2 critic updates, the weights 4"));
    if (gan_open(&g, wa, sa, &c) != 0) fail_msg("%s", tp_err());
    assert_true(isnan(gan_generator_loss(g, NULL, img, 1, 2, 8, 8, 9)));
    assert_non_null(strstr(tp_err(), "2 channels"));
    gan_free(g);
    assert_int_equal(gan_open(&g, tmp_path(w0, sizeof w0, "missing.safetensors"), NULL, &c), -1);
    assert_non_null(strstr(tp_err(), "missing.safetensors"));
    free(img);
}

static void test_generator_side(void **state)
{
    (void)state;
    char w[128];
    small_disc(tmp_path(w, sizeof w, "gen.safetensors"));
    struct gan_cfg c;
    small_cfg(&c);
    struct gan *g;
    if (gan_open(&g, w, NULL, &c) != 0) fail_msg("%s", tp_err());
    double v[3 * NSTEPS];
    run_steps(g, 0, 3, v);
    /* the critic's values and last gradients stay as they are */
    const struct params *p = gan_params(g);
    float *data = tp_malloc(p->total * sizeof(float)), *grad = tp_malloc(p->total * sizeof(float));
    memcpy(data, p->data, p->total * sizeof(float));
    memcpy(grad, p->grad, p->total * sizeof(float));
    const size_t n = (size_t)RB * RC * RH * RW;
    float *x = tp_malloc(n * sizeof(float)), *dx = tp_calloc(n, sizeof(float));
    struct rng r;
    rng_seed(&r, 1);
    fill_uniform(&r, x, n, 0, 1);
    double l = gan_generator_loss(g, dx, x, RB, RC, RH, RW, 3);
    assert_memory_equal(p->data, data, p->total * sizeof(float));
    assert_memory_equal(p->grad, grad, p->total * sizeof(float));
    /* dL/dx added, accumulating; the value does not depend on dx */
    float *dx1 = tp_malloc(n * sizeof(float));
    memcpy(dx1, dx, n * sizeof(float));
    double sumsq = 0;
    for (size_t i = 0; i < n; i++) sumsq += (double)dx[i] * dx[i];
    assert_true(sumsq > 0);
    assert_true(gan_generator_loss(g, NULL, x, RB, RC, RH, RW, 3) == l);
    assert_true(gan_generator_loss(g, dx, x, RB, RC, RH, RW, 3) == l);
    for (size_t i = 0; i < n; i++) dx1[i] *= 2;
    check_close("2 dx", dx, dx1, n, 1e-9, 1e-6);
    /* a zero weight switches the term off, as upstream's guard */
    gan_free(g);
    c.g_weight = 0;
    if (gan_open(&g, w, NULL, &c) != 0) fail_msg("%s", tp_err());
    memset(dx, 0, n * sizeof(float));
    assert_true(gan_generator_loss(g, dx, x, RB, RC, RH, RW, 3) == 0.0);
    for (size_t i = 0; i < n; i++) assert_true(dx[i] == 0);
    gan_free(g);
    free(data), free(grad), free(x), free(dx), free(dx1);
}

static void test_threads_deterministic(void **state)
{
    (void)state;
    omp_set_num_threads(2);
    openblas_set_num_threads(2);
    char w[128];
    small_disc(tmp_path(w, sizeof w, "thr.safetensors"));
    struct gan_cfg c;
    small_cfg(&c);
    double v[2][3 * NSTEPS];
    float *data[2];
    size_t total = 0;
    for (int k = 0; k < 2; k++) {
        struct gan *g;
        if (gan_open(&g, w, NULL, &c) != 0) fail_msg("%s", tp_err());
        run_steps(g, 0, NSTEPS, v[k]);
        total = gan_params(g)->total;
        data[k] = tp_malloc(total * sizeof(float));
        memcpy(data[k], gan_params(g)->data, total * sizeof(float));
        gan_free(g);
    }
    assert_memory_equal(v[0], v[1], sizeof v[0]);
    assert_memory_equal(data[0], data[1], total * sizeof(float));
    free(data[0]), free(data[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_generator_side),
        cmocka_unit_test(test_threads_deterministic),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
