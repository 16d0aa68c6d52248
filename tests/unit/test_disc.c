/* test_disc.c - the NLayerDiscriminator (lib/disc.c): architecture metadata,
 * the parameter table against upstream's state_dict, the weights file
 * (init, blur buffers, strict load), backward against finite differences,
 * the PyTorch reference (a small config and upstream's default one) and
 * identical bits across runs at 2 threads. */
#include "gradcheck.h"
#include "disc.h"
#include "pool.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>


static struct disc_cfg tiny_cfg(int channels, const char *widths, int groups, int pool)
{
    struct st *m = st_new();
    st_meta_set_long(m, "channels", channels);
    st_meta_set(m, "widths", widths);
    st_meta_set_long(m, "groups", groups);
    st_meta_set_long(m, "pool", pool);
    struct disc_cfg c;
    if (disc_cfg_from_meta(&c, m) != 0) fail_msg("%s", tp_err());
    st_free(m);
    return c;
}

/* disc_cfg_from_meta on one metadata pair over otherwise empty metadata:
 * the return code, and the message must mention `what`. */
static void meta_rejects(const char *key, const char *val, const char *what)
{
    struct st *m = st_new();
    st_meta_set(m, key, val);
    struct disc_cfg c;
    assert_int_equal(disc_cfg_from_meta(&c, m), -1);
    if (!strstr(tp_err(), what)) fail_msg("%s=%s: message '%s' lacks '%s'", key, val, tp_err(), what);
    st_free(m);
}

static void test_cfg(void **state)
{
    (void)state;
    struct disc_cfg up, c;
    disc_cfg_upstream(&up, 3);
    assert_true(up.channels == 3 && up.nstages == 3 && up.groups == 32 && up.pool == 16);
    assert_true(up.width[0] == 128 && up.width[1] == 128 && up.width[2] == 256 && up.width[3] == 512);
    struct st *m = st_new();
    assert_int_equal(disc_cfg_from_meta(&c, m), 0); /* no metadata: upstream's */
    assert_memory_equal(&c, &up, sizeof c);
    c = tiny_cfg(1, "32,32,64,128", 32, 16);
    assert_true(c.channels == 1 && c.nstages == 3 && c.width[3] == 128);
    disc_cfg_to_meta(&c, m);
    assert_string_equal(st_meta_get(m, "arch"), DISC_ARCH);
    assert_string_equal(st_meta_get(m, "widths"), "32,32,64,128");
    struct disc_cfg back;
    assert_int_equal(disc_cfg_from_meta(&back, m), 0);
    assert_memory_equal(&back, &c, sizeof c);
    st_free(m);
    meta_rejects("arch", "vqgan-encoder", "arch");
    meta_rejects("widths", "128", "at least one stage");
    meta_rejects("widths", "128,x", "widths");
    meta_rejects("widths", "128,128,", "widths");
    meta_rejects("widths", "1,2,3,4,5,6,7,8,9,10", "widths");
    meta_rejects("widths", "128,48", "multiple of 32 groups");
    meta_rejects("pool", "0", "pool");
    meta_rejects("channels", "three", "channels");
}

static void test_params(void **state)
{
    (void)state;
    struct disc_cfg c;
    disc_cfg_upstream(&c, 3);
    struct disc d;
    disc_build(&d, &c);
    /* upstream's state_dict order and shapes; 1,909,889 parameters as
     * torch counts NLayerDiscriminator() */
    static const struct { const char *name; int ndim; int64_t s0, s1, s2, s3; } want[] = {
        {"block_in.0.weight", 4, 128, 3, 5, 5}, {"block_in.0.bias", 1, 128, 0, 0, 0},
        {"blocks.0.0.weight", 4, 128, 128, 3, 3}, {"blocks.0.0.bias", 1, 128, 0, 0, 0},
        {"blocks.0.2.weight", 1, 128, 0, 0, 0}, {"blocks.0.2.bias", 1, 128, 0, 0, 0},
        {"blocks.1.0.weight", 4, 256, 128, 3, 3}, {"blocks.1.0.bias", 1, 256, 0, 0, 0},
        {"blocks.1.2.weight", 1, 256, 0, 0, 0}, {"blocks.1.2.bias", 1, 256, 0, 0, 0},
        {"blocks.2.0.weight", 4, 512, 256, 3, 3}, {"blocks.2.0.bias", 1, 512, 0, 0, 0},
        {"blocks.2.2.weight", 1, 512, 0, 0, 0}, {"blocks.2.2.bias", 1, 512, 0, 0, 0},
        {"to_logits.0.weight", 4, 512, 512, 1, 1}, {"to_logits.0.bias", 1, 512, 0, 0, 0},
        {"to_logits.2.weight", 4, 1, 512, 5, 5}, {"to_logits.2.bias", 1, 1, 0, 0, 0},
    };
    assert_int_equal(d.params.n, (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < d.params.n; i++) {
        const struct param_spec *s = &d.params.spec[i];
        assert_string_equal(s->name, want[i].name);
        assert_int_equal(s->ndim, want[i].ndim);
        const int64_t sh[4] = {want[i].s0, want[i].s1, want[i].s2, want[i].s3};
        for (int k = 0; k < s->ndim; k++) assert_int_equal(s->shape[k], sh[k]);
    }
    assert_int_equal(d.params.total, 1909889);
    assert_int_equal(disc_out_side(&d), 16);
    disc_free(&d);
}

/* Upstream init: convs U(+-1/sqrt(fan_in)) (weights and biases), spread
 * over the range; GroupNorm 1 and 0. */
static void check_init(const struct disc *d)
{
    for (int i = 0; i < d->params.n; i++) {
        const struct param_spec *s = &d->params.spec[i];
        const float *x = d->params.data + s->offset;
        if (strstr(s->name, ".2.") && strncmp(s->name, "blocks.", 7) == 0) {
            const float v = strstr(s->name, "weight") ? 1.0f : 0.0f;
            for (size_t j = 0; j < s->numel; j++) assert_true(x[j] == v);
            continue;
        }
        const struct param_spec *w = strstr(s->name, "bias") ? s - 1 : s;
        const double bound = 1.0 / sqrt((double)w->shape[1] * w->shape[2] * w->shape[3]);
        double lo = 0, hi = 0;
        for (size_t j = 0; j < s->numel; j++) {
            assert_true(fabs(x[j]) <= bound);
            lo = fmin(lo, x[j]), hi = fmax(hi, x[j]);
        }
        if (s->numel >= 32 && !(lo < -0.5 * bound && hi > 0.5 * bound))
            fail_msg("%s: values in [%g, %g], bound %g", s->name, lo, hi, bound);
    }
}

static void test_file(void **state)
{
    (void)state;
    char path[128], bad[128];
    snprintf(path, sizeof path, "%s/d.safetensors", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", tmpdir);
    struct disc_cfg c = tiny_cfg(2, "32,32,64", 32, 8);
    struct st *meta = st_new();
    disc_cfg_to_meta(&c, meta);
    assert_int_equal(disc_init_file(path, meta, 5), 0);
    struct disc a, b;
    long step;
    assert_int_equal(disc_load(&a, path, &step), 0);
    assert_int_equal(step, -1);
    assert_memory_equal(&a.cfg, &c, sizeof c);
    check_init(&a);
    disc_build(&b, &c);
    disc_init_weights(&b, 5);
    assert_memory_equal(a.params.data, b.params.data, a.params.total * sizeof(float));
    disc_init_weights(&b, 6);
    assert_memory_not_equal(a.params.data, b.params.data, a.params.total * sizeof(float));

    /* the file: metadata, parameters and the two blur buffers, nothing else */
    assert_int_equal(disc_save(&a, path, 7), 0);
    struct st *f;
    assert_int_equal(st_load(&f, path), 0);
    assert_int_equal(f->n, a.params.n + 2);
    assert_string_equal(st_meta_get(f, "step"), "7");
    assert_string_equal(st_meta_get(f, "widths"), "32,32,64");
    assert_string_equal(st_meta_get(f, "pool"), "8");
    float k[16];
    blur_kernel(k);
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "blocks.%d.1.kernel", i);
        struct st_tensor *t = st_require(f, name, ST_F32, 4);
        assert_non_null(t);
        assert_memory_equal(t->data, k, sizeof k);
    }
    disc_free(&b);
    assert_int_equal(disc_load(&b, path, &step), 0);
    assert_int_equal(step, 7);
    assert_memory_equal(a.params.data, b.params.data, a.params.total * sizeof(float));
    disc_free(&b);

    /* strict load: a wrong blur buffer, a missing one, a blur buffer of a
     * stage that does not exist, an extra tensor, a wrong shape */
    struct st_tensor *kt = st_find(f, "blocks.1.1.kernel");
    ((float *)kt->data)[0] += 1;
    assert_int_equal(st_save(f, bad), 0);
    assert_int_equal(disc_load(&b, bad, NULL), -1);
    assert_non_null(strstr(tp_err(), "blocks.1.1.kernel"));
    assert_non_null(strstr(tp_err(), bad));
    st_remove(f, "blocks.1.1.kernel");
    assert_int_equal(st_save(f, bad), 0);
    assert_int_equal(disc_load(&b, bad, NULL), -1);
    assert_non_null(strstr(tp_err(), "blocks.1.1.kernel"));
    struct st *g;
    assert_int_equal(st_load(&g, path), 0);
    blur_kernel(st_put_v(g, "blocks.2.1.kernel", ST_F32, 4, (int64_t)1, (int64_t)1, (int64_t)4, (int64_t)4)->data);
    assert_int_equal(st_save(g, bad), 0);
    assert_int_equal(disc_load(&b, bad, NULL), -1);
    assert_non_null(strstr(tp_err(), "blocks.2.1.kernel"));
    st_remove(g, "blocks.2.1.kernel");
    st_put_v(g, "blocks.2.0.weight", ST_F32, 1, (int64_t)3);
    assert_int_equal(st_save(g, bad), 0);
    assert_int_equal(disc_load(&b, bad, NULL), -1);
    assert_non_null(strstr(tp_err(), "blocks.2.0.weight"));
    st_remove(g, "blocks.2.0.weight");
    st_meta_set(g, "widths", "32,32,96");
    assert_int_equal(st_save(g, bad), 0);
    assert_int_equal(disc_load(&b, bad, NULL), -1);
    assert_non_null(strstr(tp_err(), "blocks.1.0.weight"));
    st_free(g);
    st_free(f);
    st_free(meta);
    disc_free(&a);

    /* an upstream state_dict converted as is (no metadata) loads as
     * upstream's architecture */
    disc_cfg_upstream(&c, 3);
    disc_build(&a, &c);
    disc_init_weights(&a, 1);
    g = st_new();
    params_view(&a.params, g, 0);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "blocks.%d.1.kernel", i);
        blur_kernel(st_put_v(g, name, ST_F32, 4, (int64_t)1, (int64_t)1, (int64_t)4, (int64_t)4)->data);
    }
    assert_int_equal(st_save(g, bad), 0);
    assert_int_equal(disc_load(&b, bad, &step), 0);
    assert_memory_equal(&b.cfg, &c, sizeof c);
    assert_int_equal(step, -1);
    assert_memory_equal(a.params.data, b.params.data, a.params.total * sizeof(float));
    st_free(g);
    disc_free(&a);
    disc_free(&b);
}

/* ---- finite differences ------------------------------------------------------ */

struct gc {
    struct disc d;
    int B, H, W;
    size_t nin, nout;
    float *x, *out, *r, *dx, *dp;
};

static double gc_loss(void *ctx)
{
    struct gc *g = ctx;
    disc_forward(&g->d, g->out, g->x, g->B, g->H, g->W);
    return gc_dot(g->out, g->r, g->nout);
}

static void gc_init(struct gc *g, const struct disc_cfg *c, int B, int H, int W, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    memset(g, 0, sizeof *g);
    disc_build(&g->d, c);
    disc_init_weights(&g->d, seed);
    /* non-trivial GroupNorm affines */
    for (int i = 0; i < g->d.params.n; i++) {
        const struct param_spec *s = &g->d.params.spec[i];
        if (strncmp(s->name, "blocks.", 7) == 0 && strstr(s->name, ".2."))
            fill_uniform(&r, g->d.params.data + s->offset, s->numel, strstr(s->name, "weight") ? 0.7f : -0.3f,
                         strstr(s->name, "weight") ? 1.3f : 0.3f);
    }
    g->B = B, g->H = H, g->W = W;
    const int P = disc_out_side(&g->d);
    g->nin = (size_t)B * c->channels * H * W;
    g->nout = (size_t)B * P * P;
    g->x = tp_malloc(g->nin * sizeof(float));
    g->dx = tp_calloc(g->nin, sizeof(float));
    g->out = tp_malloc(g->nout * sizeof(float));
    g->r = tp_malloc(g->nout * sizeof(float));
    g->dp = tp_calloc(g->d.params.total, sizeof(float));
    fill_uniform(&r, g->x, g->nin, 0, 1);
    fill_uniform(&r, g->r, g->nout, -1, 1);
}

static void gc_free(struct gc *g)
{
    disc_free(&g->d);
    free(g->x), free(g->dx), free(g->out), free(g->r), free(g->dp);
}

static void test_grad(void **state)
{
    (void)state;
    /* 2 images 1x8x8, widths 4,4,8 in 2 groups: 8 -> 4 -> 2, pooled to 3x3
     * (overlapping bins). Kept this small because a bias moves a whole
     * channel across LeakyReLU and max-pool kinks: at 16x16 the central
     * differences of the conv biases are off by a few percent at any eps
     * float32 resolves (the PyTorch reference checks those sizes). */
    const struct disc_cfg c = tiny_cfg(1, "4,4,8", 2, 3);
    static struct gc g;
    gc_init(&g, &c, 2, 8, 8, 11);
    gc_loss(&g);
    disc_backward(&g.d, g.dx, g.dp, g.r, g.x);
    gc_check("x", g.x, g.dx, g.nin, gc_loss, &g, 1e-3f, 1e-2);
    for (int i = 0; i < g.d.params.n; i++) {
        const struct param_spec *s = &g.d.params.spec[i];
        gc_check(s->name, g.d.params.data + s->offset, g.dp + s->offset, s->numel, gc_loss, &g, 1e-4f, 1e-2);
    }
    /* backward accumulates; without dparams it computes dx alone, the same */
    float *dx1 = tp_malloc(g.nin * sizeof(float)), *dp1 = tp_malloc(g.d.params.total * sizeof(float));
    memcpy(dx1, g.dx, g.nin * sizeof(float));
    memcpy(dp1, g.dp, g.d.params.total * sizeof(float));
    gc_loss(&g);
    disc_backward(&g.d, g.dx, g.dp, g.r, g.x);
    for (size_t i = 0; i < g.nin; i++) dx1[i] *= 2;
    for (size_t i = 0; i < g.d.params.total; i++) dp1[i] *= 2;
    check_close("2 dx", g.dx, dx1, g.nin, 1e-6, 1e-6);
    check_close("2 dparams", g.dp, dp1, g.d.params.total, 1e-6, 1e-6);
    memset(g.dx, 0, g.nin * sizeof(float));
    disc_backward(&g.d, g.dx, NULL, g.r, g.x);
    for (size_t i = 0; i < g.nin; i++) dx1[i] *= 0.5f;
    assert_memory_equal(g.dx, dx1, g.nin * sizeof(float));
    free(dx1), free(dp1);
    gc_free(&g);
}

/* ---- PyTorch reference --------------------------------------------------------- */

static void check_fixture(const char *name, double atol, double rtol)
{
    struct st *f = ref_load(name);
    long B, H, W;
    struct disc_cfg c;
    if (st_meta_get_long(f, "B", &B) || st_meta_get_long(f, "H", &H) || st_meta_get_long(f, "W", &W) ||
        disc_cfg_from_meta(&c, f))
        fail_msg("%s", tp_err());
    struct disc d;
    disc_build(&d, &c);
    if (params_load(&d.params, f, 1) != 0) fail_msg("%s", tp_err());
    float k[16];
    blur_kernel(k);
    char pname[128];
    for (int i = 0; i < c.nstages; i++) {
        snprintf(pname, sizeof pname, "blocks.%d.1.kernel", i);
        check_close(pname, k, ref_f32(f, pname, 16), 16, 0, 1e-7);
    }
    const int P = disc_out_side(&d);
    const size_t nin = (size_t)B * c.channels * H * W, nout = (size_t)B * P * P;
    const float *x = ref_f32(f, "x", nin);
    float *out = tp_malloc(nout * sizeof(float)), *dx = tp_calloc(nin, sizeof(float));
    float *dp = tp_calloc(d.params.total, sizeof(float));
    disc_forward(&d, out, x, (int)B, (int)H, (int)W);
    check_close("out", out, ref_f32(f, "out", nout), nout, atol, rtol);
    disc_backward(&d, dx, dp, ref_f32(f, "dout", nout), x);
    check_close("x.grad", dx, ref_f32(f, "x.grad", nin), nin, atol, rtol);
    for (int i = 0; i < d.params.n; i++) {
        const struct param_spec *s = &d.params.spec[i];
        snprintf(pname, sizeof pname, "%s.grad", s->name);
        check_close(pname, dp + s->offset, ref_f32(f, pname, s->numel), s->numel, atol, rtol);
    }
    free(out), free(dx), free(dp);
    disc_free(&d);
    st_free(f);
}

static void test_reference_tiny(void **state)
{
    (void)state;
    check_fixture("disc_tiny", 1e-4, 1e-3);
}

static void test_reference_default(void **state)
{
    (void)state;
    check_fixture("disc_default", 1e-4, 1e-3);
}

static void test_threads_deterministic(void **state)
{
    (void)state;
    omp_set_num_threads(2);
    openblas_set_num_threads(2);
    const struct disc_cfg c = tiny_cfg(3, "32,32,64", 32, 16);
    static struct gc run[2];
    for (int k = 0; k < 2; k++) {
        gc_init(&run[k], &c, 2, 32, 32, 3);
        gc_loss(&run[k]);
        disc_backward(&run[k].d, run[k].dx, run[k].dp, run[k].r, run[k].x);
    }
    assert_memory_equal(run[0].out, run[1].out, run[0].nout * sizeof(float));
    assert_memory_equal(run[0].dx, run[1].dx, run[0].nin * sizeof(float));
    assert_memory_equal(run[0].dp, run[1].dp, run[0].d.params.total * sizeof(float));
    gc_free(&run[0]);
    gc_free(&run[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cfg),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_grad),
        cmocka_unit_test(test_reference_tiny),
        cmocka_unit_test(test_reference_default),
        cmocka_unit_test(test_threads_deterministic),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
