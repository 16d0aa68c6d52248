/* test_classifier.c - the evaluation ViT (lib/classifier.c): features,
 * logits, the image gradient and every parameter gradient against the
 * PyTorch transcription (tests/reference/ref_classifier.py), weights loaded
 * by name; the module's backward from logits.grad alone, features.grad alone
 * and both; finite differences on tiny shapes; same bits on repeated runs;
 * the preset's shapes; errors on bad metadata and fields. */
#include "test.h"
#include "gradcheck.h"

#include "classifier.h"
#include "cli.h"

static const struct module_ops *const ops[] = {&classifier_ops, NULL};

static struct st *meta_kv(const char *kv)
{
    struct st *meta = st_new();
    assert_int_equal(st_meta_apply_kv(meta, kv, ' '), 0);
    return meta;
}

/* ---- against PyTorch ---- */

static void test_ref(void **state)
{
    (void)state;
    struct st *s = ref_load("classifier");
    struct module m;
    if (module_build(&m, ops, s) != 0 || params_load(&m.params, s, 1) != 0) fail_msg("%s", tp_err());
    struct st *rec = st_new();
    st_put_copy(rec, "image", st_find(s, "image"));
    assert_int_equal(m.ops->forward(&m, rec, 1), 0);
    static const char *const outs[] = {"features", "logits"};
    struct st *g = st_new();
    for (int k = 0; k < 2; k++) {
        struct st_tensor *o = st_require(rec, outs[k], ST_F32, 2);
        assert_non_null(o);
        size_t n = (size_t)st_numel(o);
        check_close(outs[k], o->data, ref_f32(s, outs[k], n), n, 1e-4, 1e-3);
        char gname[32];
        snprintf(gname, sizeof gname, "%s.grad", outs[k]);
        st_put_copy(g, gname, st_find(s, gname));
    }
    /* the module's backward (no image gradient), then the library's with one */
    struct st *ig = st_new();
    assert_int_equal(m.ops->backward(&m, g, ig), 0);
    assert_int_equal(ig->n, 0);
    char name[160];
    for (int i = 0; i < m.params.n; i++) {
        const struct param_spec *e = &m.params.spec[i];
        snprintf(name, sizeof name, "%s.grad", e->name);
        check_close(name, m.params.grad + e->offset, ref_f32(s, name, e->numel), e->numel, 1e-4, 1e-3);
    }
    size_t ni = (size_t)st_numel(st_find(s, "image"));
    float *dimg = tp_calloc(ni, sizeof(float));
    classifier_backward(m.impl, dimg, st_find(g, "logits.grad")->data, st_find(g, "features.grad")->data);
    check_close("image.grad", dimg, ref_f32(s, "image.grad", ni), ni, 1e-4, 1e-3);
    free(dimg);
    st_free(ig), st_free(g), st_free(rec);
    module_free(&m);
    st_free(s);
}

/* ---- finite differences ---- */

#define TINY "channels=2 resolution=8 patch=4 width=16 layers=1 heads=2 classes=3"

struct net {
    struct classifier c;
    struct params p;
    int B, use_feat, use_logits;
    size_t ni, nf, nl;
    float *img, *dimg, *feat, *logits, *rf, *rl;
};

static void net_init(struct net *t, const char *kv, int B, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    struct st *meta = meta_kv(kv);
    params_init_table(&t->p);
    if (classifier_init(&t->c, &t->p, meta, 1) != 0) fail_msg("%s", tp_err());
    st_free(meta);
    const struct titok_cfg *c = &t->c.c;
    t->B = B;
    t->use_feat = t->use_logits = 1;
    t->ni = (size_t)B * c->C * c->R * c->R;
    t->nf = (size_t)B * c->E;
    t->nl = (size_t)B * t->c.V;
    t->img = tp_malloc(t->ni * sizeof(float));
    t->dimg = tp_calloc(t->ni, sizeof(float));
    t->feat = tp_malloc(t->nf * sizeof(float));
    t->rf = tp_malloc(t->nf * sizeof(float));
    t->logits = tp_malloc(t->nl * sizeof(float));
    t->rl = tp_malloc(t->nl * sizeof(float));
    struct rng r;
    rng_seed(&r, seed);
    fill_params(&t->p, &r);
    fill_uniform(&r, t->img, t->ni, 0, 1);
    fill_uniform(&r, t->rf, t->nf, -1, 1);
    fill_uniform(&r, t->rl, t->nl, -1, 1);
}

static void net_free(struct net *t)
{
    classifier_free(&t->c);
    params_free(&t->p);
    free(t->img), free(t->dimg), free(t->feat), free(t->rf), free(t->logits), free(t->rl);
}

static double net_loss(void *v)
{
    struct net *t = v;
    classifier_forward(&t->c, t->feat, t->logits, t->img, t->B, 1);
    return (t->use_feat ? gc_dot(t->feat, t->rf, t->nf) : 0.0) +
           (t->use_logits ? gc_dot(t->logits, t->rl, t->nl) : 0.0);
}

static void gradcheck(int use_feat, int use_logits)
{
    tp_threads_set(1);
    struct net t;
    net_init(&t, TINY, 2, 31);
    t.use_feat = use_feat, t.use_logits = use_logits;
    net_loss(&t);
    classifier_backward(&t.c, t.dimg, use_logits ? t.rl : NULL, use_feat ? t.rf : NULL);
    gc_check("image", t.img, t.dimg, t.ni, net_loss, &t, 1e-2f, 2e-2);
    for (int i = 0; i < t.p.n; i++) {
        const struct param_spec *e = &t.p.spec[i];
        if (!use_logits && strncmp(e->name, "head.", 5) == 0) { /* no gradient: the head is not used */
            for (size_t k = 0; k < e->numel; k++) assert_true(t.p.grad[e->offset + k] == 0.0f);
            continue;
        }
        gc_check_(e->name, t.p.data + e->offset, t.p.grad + e->offset, e->numel, net_loss, &t, 1e-2f, 2e-2, 48,
                  __FILE__, __LINE__);
    }
    net_free(&t);
}

static void test_gradcheck_both(void **state) { (void)state; gradcheck(1, 1); }
static void test_gradcheck_logits(void **state) { (void)state; gradcheck(0, 1); }
static void test_gradcheck_features(void **state) { (void)state; gradcheck(1, 0); }

/* ---- the module ---- */

/* features and logits of the preset, their shapes, and the parameter count:
 * patch embedding E*C*P*P + E, class E, positions (1 + N) E, L blocks of
 * 12 E^2 + 13 E (ViT block with MLP 4E), two LayerNorms 2 E each, head V E + V. */
static void test_preset(void **state)
{
    (void)state;
    struct st *meta = meta_kv(CLASSIFIER_TINY);
    struct module m;
    assert_int_equal(module_build(&m, ops, meta), 0);
    size_t E = 128, N = 16, L = 4, V = 10;
    size_t want = E * 64 + E + E + (1 + N) * E + L * (12 * E * E + 13 * E) + 4 * E + V * E + V;
    assert_int_equal(m.params.total, want);
    params_fill_init(&m.params, 1);
    struct st *rec = st_new();
    struct st_tensor *img = st_put_v(rec, "image", ST_F32, 4, (int64_t)3, (int64_t)1, (int64_t)32, (int64_t)32);
    struct rng r;
    rng_seed(&r, 2);
    fill_uniform(&r, img->data, (size_t)st_numel(img), 0, 1);
    st_put_v(rec, "label", ST_I32, 1, (int64_t)3);
    assert_int_equal(m.ops->forward(&m, rec, 0), 0);
    struct st_tensor *f = st_require(rec, "features", ST_F32, 2), *l = st_require(rec, "logits", ST_F32, 2);
    assert_non_null(f);
    assert_non_null(l);
    assert_int_equal(f->shape[0], 3), assert_int_equal(f->shape[1], 128);
    assert_int_equal(l->shape[0], 3), assert_int_equal(l->shape[1], 10);
    assert_non_null(st_find(rec, "label")); /* passes through */
    /* the features are ln_post's output: mean 0 and variance 1 before its affine (1, 0 at init) */
    const float *fv = f->data;
    for (int b = 0; b < 3; b++) {
        double s = 0, s2 = 0;
        for (int e = 0; e < 128; e++) s += fv[b * 128 + e], s2 += (double)fv[b * 128 + e] * fv[b * 128 + e];
        assert_true(fabs(s / 128) < 1e-4);
        assert_true(fabs(s2 / 128 - 1) < 1e-2);
    }
    st_free(rec);
    module_free(&m);
    st_free(meta);
}

static void test_deterministic(void **state)
{
    (void)state;
    tp_threads_set(2);
    const char *kv = "channels=3 resolution=16 patch=4 width=32 layers=2 heads=4 classes=7";
    float *keep[3] = {0};
    for (int k = 0; k < 2; k++) {
        struct net t;
        net_init(&t, kv, 5, 9);
        net_loss(&t);
        classifier_backward(&t.c, t.dimg, t.rl, t.rf);
        if (k == 0) {
            keep[0] = tp_malloc(t.nl * sizeof(float)), memcpy(keep[0], t.logits, t.nl * sizeof(float));
            keep[1] = tp_malloc(t.p.total * sizeof(float)), memcpy(keep[1], t.p.grad, t.p.total * sizeof(float));
            keep[2] = tp_malloc(t.ni * sizeof(float)), memcpy(keep[2], t.dimg, t.ni * sizeof(float));
        } else {
            assert_memory_equal(keep[0], t.logits, t.nl * sizeof(float));
            assert_memory_equal(keep[1], t.p.grad, t.p.total * sizeof(float));
            assert_memory_equal(keep[2], t.dimg, t.ni * sizeof(float));
        }
        net_free(&t);
    }
    for (int i = 0; i < 3; i++) free(keep[i]);
}

/* ---- errors ---- */

static void expect_build_error(const char *kv, const char *msg)
{
    struct st *meta = meta_kv(kv);
    struct module m;
    assert_int_equal(module_build(&m, ops, meta), -1);
    if (!strstr(tp_err(), msg)) fail_msg("error '%s' does not mention '%s'", tp_err(), msg);
    st_free(meta);
}

static void test_errors(void **state)
{
    (void)state;
    expect_build_error("arch=vit-classifier " TINY " heads=3", "heads");
    expect_build_error("arch=vit-classifier " TINY " patch=3", "patch");
    expect_build_error("arch=vit-classifier channels=1 resolution=8 patch=4 width=16 layers=1 heads=2", "classes");
    expect_build_error("arch=vit-classifier " TINY " classes=0", "classes");

    struct st *meta = meta_kv("arch=vit-classifier " TINY);
    struct module m;
    assert_int_equal(module_build(&m, ops, meta), 0);
    struct st *rec = st_new();
    st_put_v(rec, "image", ST_F32, 4, (int64_t)2, (int64_t)1, (int64_t)8, (int64_t)8);
    assert_int_equal(m.ops->forward(&m, rec, 0), -1);
    assert_non_null(strstr(tp_err(), "'image'"));
    st_put_v(rec, "image", ST_F32, 4, (int64_t)2, (int64_t)2, (int64_t)8, (int64_t)8);
    assert_int_equal(m.ops->forward(&m, rec, 1), 0);
    struct st *g = st_new(), *ig = st_new();
    assert_int_equal(m.ops->backward(&m, g, ig), -1); /* no gradient field */
    assert_non_null(strstr(tp_err(), "logits.grad"));
    st_put_v(g, "logits.grad", ST_F32, 2, (int64_t)2, (int64_t)4);
    assert_int_equal(m.ops->backward(&m, g, ig), -1); /* 4 classes, the model has 3 */
    assert_non_null(strstr(tp_err(), "'logits.grad'"));
    st_put_v(g, "logits.grad", ST_F32, 2, (int64_t)2, (int64_t)3);
    st_put_v(g, "features.grad", ST_F32, 2, (int64_t)3, (int64_t)16);
    assert_int_equal(m.ops->backward(&m, g, ig), -1); /* batch 3, the forward's 2 */
    assert_non_null(strstr(tp_err(), "'features.grad'"));
    st_free(g), st_free(ig), st_free(rec);
    module_free(&m);
    st_free(meta);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref),
        cmocka_unit_test(test_gradcheck_both),
        cmocka_unit_test(test_gradcheck_logits),
        cmocka_unit_test(test_gradcheck_features),
        cmocka_unit_test(test_preset),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
