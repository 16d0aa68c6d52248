/* test_titok.c - TiTok's encoder and decoder (lib/titok*.c): outputs, the
 * input gradient and every parameter gradient against the PyTorch
 * transcription of upstream (tests/reference/ref_titok.py: legacy reshape on
 * and off, the proxy-code head, the stage-2 pixel path), weights loaded by
 * their state_dict names; finite differences of both backwards on tiny
 * shapes; the presets' parameter counts against upstream's module shapes;
 * same bits on repeated runs; errors on bad metadata and fields. */
#include "test.h"
#include "gradcheck.h"

#include "cli.h"
#include "titok.h"

static const struct module_ops *const enc_ops[] = {&titok_encoder_ops, NULL};
static const struct module_ops *const dec_ops[] = {&titok_decoder_ops, NULL};

/* Metadata from "k=v k=v ..." (the presets' form). */
static struct st *meta_kv(const char *kv)
{
    struct st *meta = st_new();
    assert_int_equal(st_meta_apply_kv(meta, kv, ' '), 0);
    return meta;
}

static float *copy_f32(const float *x, size_t n)
{
    float *y = tp_malloc(n * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}

/* Every parameter gradient against the fixture's "<name>.grad", atol in
 * units of the gradient's root mean square where that is above 1: through
 * the pixel decoder's convolutions the first layers' gradients reach an rms
 * of 6 and a largest value of 40, and an element that is the small
 * difference of such terms differs by float rounding alone (2.6e-4 on one
 * of 768, with the convolutions summed in another order, each conv within
 * 2e-7 of the direct loops). */
static void check_param_grads(const struct params *p, struct st *s, double atol, double rtol)
{
    char name[160];
    for (int i = 0; i < p->n; i++) {
        const struct param_spec *e = &p->spec[i];
        snprintf(name, sizeof name, "%s.grad", e->name);
        const float *want = ref_f32(s, name, e->numel);
        double ss = 0;
        for (size_t k = 0; k < e->numel; k++) ss += (double)want[k] * want[k];
        const double rms = sqrt(ss / (double)e->numel);
        check_close(name, p->grad + e->offset, want, e->numel, atol * (rms > 1 ? rms : 1), rtol);
    }
}

/* ---- against PyTorch ---- */

static void ref_encoder(const char *fixture)
{
    struct st *s = ref_load(fixture);
    struct module m;
    if (module_build(&m, enc_ops, s) != 0 || params_load(&m.params, s, 1) != 0) fail_msg("%s", tp_err());
    struct st *rec = st_new();
    st_put_copy(rec, "image", st_find(s, "image"));
    assert_int_equal(m.ops->forward(&m, rec, 1), 0);
    struct st_tensor *lat = st_require(rec, "latent", ST_F32, 3);
    assert_non_null(lat);
    size_t n = (size_t)st_numel(lat), ni = (size_t)st_numel(st_find(s, "image"));
    check_close("latent", lat->data, ref_f32(s, "latent", n), n, 1e-4, 1e-3);
    float *dimg = tp_calloc(ni, sizeof(float));
    titok_enc_backward(m.impl, dimg, ref_f32(s, "latent.grad", n));
    check_close("image.grad", dimg, ref_f32(s, "image.grad", ni), ni, 1e-4, 1e-3);
    check_param_grads(&m.params, s, 1e-4, 1e-3);
    free(dimg);
    st_free(rec);
    module_free(&m);
    st_free(s);
}

static void ref_decoder(const char *fixture, int pixel)
{
    struct st *s = ref_load(fixture);
    struct module m;
    if (module_build(&m, dec_ops, s) != 0 || params_load(&m.params, s, 1) != 0) fail_msg("%s", tp_err());
    struct st *rec = st_new(), *g = st_new(), *ig = st_new();
    st_put_copy(rec, "quant", st_find(s, "quant"));
    assert_int_equal(m.ops->forward(&m, rec, 1), 0);
    /* the proxy-code decoder outputs logits, the pixel decoder recon alone;
     * backward takes the gradients of both (the fixture's loss uses both) */
    static const char *const outs[] = {"logits", "recon"};
    for (int k = 0; k < 2; k++) {
        char gname[32];
        snprintf(gname, sizeof gname, "%s.grad", outs[k]);
        if (k == 1 && !pixel) break;
        st_put_copy(g, gname, st_find(s, gname));
        if (k != pixel) {
            assert_null(st_find(rec, outs[k]));
            continue;
        }
        struct st_tensor *o = st_require(rec, outs[k], ST_F32, 4);
        assert_non_null(o);
        size_t n = (size_t)st_numel(o);
        check_close(outs[k], o->data, ref_f32(s, outs[k], n), n, 1e-4, 1e-3);
    }
    if (!pixel) assert_null(st_find(rec, "recon"));
    assert_int_equal(m.ops->backward(&m, g, ig), 0);
    struct st_tensor *qg = st_require(ig, "quant.grad", ST_F32, 3);
    assert_non_null(qg);
    size_t nq = (size_t)st_numel(qg);
    check_close("quant.grad", qg->data, ref_f32(s, "quant.grad", nq), nq, 1e-4, 1e-3);
    check_param_grads(&m.params, s, 1e-4, 1e-3);
    st_free(rec), st_free(g), st_free(ig);
    module_free(&m);
    st_free(s);
}

static void test_ref_encoder_legacy(void **state) { (void)state; ref_encoder("titok_enc_legacy"); }
static void test_ref_encoder_new(void **state) { (void)state; ref_encoder("titok_enc_new"); }
static void test_ref_decoder(void **state) { (void)state; ref_decoder("titok_dec", 0); }
static void test_ref_decoder_pixel(void **state) { (void)state; ref_decoder("titok_dec_pixel", 1); }
static void test_ref_decoder_pixel_l2(void **state) { (void)state; ref_decoder("titok_dec_pixel_l2", 1); }

/* ---- finite differences ---- */

#define ENC_TINY "channels=2 resolution=8 patch=4 width=16 layers=1 heads=2 tokens=4 token_size=3"
#define DEC_TINY "resolution=8 patch=4 width=16 layers=1 heads=2 tokens=4 token_size=3 proxy_codes=8"
#define PIX_TINY \
    " pixel=1 pixel_channels=1 pixel_resolution=4 pixel_hidden=32 pixel_mult=1,2 pixel_res_blocks=1 pixel_z=4"

struct enc_net {
    struct titok_enc e;
    struct params p;
    int B;
    size_t ni, no;
    float *img, *lat, *r, *dimg;
};

static void enc_net_init(struct enc_net *t, const char *kv, int B, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    struct st *meta = meta_kv(kv);
    params_init_table(&t->p);
    if (titok_enc_init(&t->e, &t->p, meta, 1) != 0) fail_msg("%s", tp_err());
    st_free(meta);
    const struct titok_cfg *c = &t->e.c;
    t->B = B;
    t->ni = (size_t)B * c->C * c->R * c->R;
    t->no = (size_t)B * c->K * c->D;
    t->img = tp_malloc(t->ni * sizeof(float));
    t->dimg = tp_calloc(t->ni, sizeof(float));
    t->lat = tp_malloc(t->no * sizeof(float));
    t->r = tp_malloc(t->no * sizeof(float));
    struct rng r;
    rng_seed(&r, seed);
    fill_params(&t->p, &r);
    fill_uniform(&r, t->img, t->ni, 0, 1);
    fill_uniform(&r, t->r, t->no, -1, 1);
}

static void enc_net_free(struct enc_net *t)
{
    titok_enc_free(&t->e);
    params_free(&t->p);
    free(t->img), free(t->dimg), free(t->lat), free(t->r);
}

static double enc_loss(void *v)
{
    struct enc_net *t = v;
    titok_enc_forward(&t->e, t->lat, t->img, t->B, 1);
    return gc_dot(t->lat, t->r, t->no);
}

/* One thread: thousands of tiny forwards, where a team of threads would
 * only add synchronisation (threads are test_deterministic's concern). */
static void gradcheck_encoder(const char *kv)
{
    tp_threads_set(1);
    struct enc_net t;
    enc_net_init(&t, kv, 2, 11);
    enc_loss(&t);
    titok_enc_backward(&t.e, t.dimg, t.r);
    gc_check("image", t.img, t.dimg, t.ni, enc_loss, &t, 1e-2f, 2e-2);
    for (int i = 0; i < t.p.n; i++) {
        const struct param_spec *e = &t.p.spec[i];
        gc_check_(e->name, t.p.data + e->offset, t.p.grad + e->offset, e->numel, enc_loss, &t, 1e-2f, 2e-2, 48,
                  __FILE__, __LINE__);
    }
    enc_net_free(&t);
}

static void test_gradcheck_encoder_legacy(void **state) { (void)state; gradcheck_encoder(ENC_TINY " legacy=1"); }
static void test_gradcheck_encoder_new(void **state) { (void)state; gradcheck_encoder(ENC_TINY " legacy=0"); }

struct dec_net {
    struct titok_dec d;
    struct params p;
    int B, use_logits;
    size_t nq, nl, nr;
    float *q, *dq, *logits, *recon, *rl, *rr;
};

static void dec_net_init(struct dec_net *t, const char *kv, int B, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    struct st *meta = meta_kv(kv);
    params_init_table(&t->p);
    if (titok_dec_init(&t->d, &t->p, meta, 1) != 0) fail_msg("%s", tp_err());
    st_free(meta);
    const struct titok_cfg *c = &t->d.c;
    t->B = B;
    t->use_logits = 1;
    t->nq = (size_t)B * c->K * c->D;
    t->nl = (size_t)B * c->N * c->V;
    t->nr = c->pixel ? (size_t)B * c->pix.channels * c->pix.resolution * c->pix.resolution : 0;
    t->q = tp_malloc(t->nq * sizeof(float));
    t->dq = tp_calloc(t->nq, sizeof(float));
    t->logits = tp_malloc(t->nl * sizeof(float));
    t->rl = tp_malloc(t->nl * sizeof(float));
    t->recon = tp_malloc((t->nr + 1) * sizeof(float));
    t->rr = tp_malloc((t->nr + 1) * sizeof(float));
    struct rng r;
    rng_seed(&r, seed);
    fill_params(&t->p, &r);
    fill_uniform(&r, t->q, t->nq, -1, 1);
    fill_uniform(&r, t->rl, t->nl, -1, 1);
    fill_uniform(&r, t->rr, t->nr, -1, 1);
}

static void dec_net_free(struct dec_net *t)
{
    titok_dec_free(&t->d);
    params_free(&t->p);
    free(t->q), free(t->dq), free(t->logits), free(t->rl), free(t->recon), free(t->rr);
}

static double dec_loss(void *v)
{
    struct dec_net *t = v;
    titok_dec_forward(&t->d, t->logits, t->nr ? t->recon : NULL, t->q, t->B, 1);
    return (t->use_logits ? gc_dot(t->logits, t->rl, t->nl) : 0.0) + gc_dot(t->recon, t->rr, t->nr);
}

static void dec_net_backward(struct dec_net *t)
{
    titok_dec_backward(&t->d, t->dq, t->use_logits ? t->rl : NULL, t->nr ? t->rr : NULL);
}

static void gradcheck_decoder(const char *kv, int use_logits)
{
    tp_threads_set(1);
    struct dec_net t;
    dec_net_init(&t, kv, 2, 12);
    t.use_logits = use_logits;
    dec_loss(&t);
    dec_net_backward(&t);
    gc_check("quant", t.q, t.dq, t.nq, dec_loss, &t, 1e-2f, 2e-2);
    for (int i = 0; i < t.p.n; i++) {
        const struct param_spec *e = &t.p.spec[i];
        gc_check_(e->name, t.p.data + e->offset, t.p.grad + e->offset, e->numel, dec_loss, &t, 1e-2f, 2e-2, 24,
                  __FILE__, __LINE__);
    }
    dec_net_free(&t);
}

static void test_gradcheck_decoder(void **state) { (void)state; gradcheck_decoder(DEC_TINY, 1); }
static void test_gradcheck_decoder_pixel(void **state) { (void)state; gradcheck_decoder(DEC_TINY PIX_TINY, 1); }
static void test_gradcheck_decoder_pixel_l2(void **state)
{
    (void)state;
    gradcheck_decoder(DEC_TINY PIX_TINY " pixel_l2=1", 1);
}
static void test_gradcheck_decoder_pixel_recon_only(void **state)
{
    (void)state;
    gradcheck_decoder(DEC_TINY PIX_TINY, 0);
}

/* ---- presets against upstream's shapes ---- */

static const char *const enc_presets[][2] = {TITOK_ENCODER_PRESETS};
static const char *const dec_presets[][2] = {TITOK_DECODER_PRESETS};

static size_t count_of(struct st *s, const char *preset, const char *part)
{
    char key[96];
    snprintf(key, sizeof key, "%s.%s", preset, part);
    long v;
    if (st_meta_get_long(s, key, &v) != 0) fail_msg("%s", tp_err());
    return (size_t)v;
}

static void test_preset_counts(void **state)
{
    (void)state;
    struct st *s = ref_load("titok_counts");
    for (size_t i = 0; i < sizeof enc_presets / sizeof *enc_presets; i++) {
        struct st *meta = meta_kv(enc_presets[i][1]);
        struct titok_enc e;
        struct params p;
        params_init_table(&p);
        assert_int_equal(titok_enc_init(&e, &p, meta, 0), 0);
        size_t want_e = count_of(s, enc_presets[i][0], "encoder");
        size_t want_l = count_of(s, enc_presets[i][0], "latent_tokens");
        printf("encode %-18s %zu parameters (upstream's shapes: %zu + %zu)\n", enc_presets[i][0], p.total, want_e,
               want_l);
        assert_int_equal(params_count(&p, "encoder."), want_e);
        assert_int_equal(params_count(&p, "latent_tokens"), want_l);
        assert_int_equal(p.total, want_e + want_l);
        titok_enc_free(&e);
        params_free(&p);
        st_free(meta);
    }
    for (size_t i = 0; i < sizeof dec_presets / sizeof *dec_presets; i++) {
        const char *name = dec_presets[i][0];
        struct st *meta = meta_kv(dec_presets[i][1]);
        struct titok_dec d;
        struct params p;
        params_init_table(&p);
        assert_int_equal(titok_dec_init(&d, &p, meta, 0), 0);
        char base[64];
        snprintf(base, sizeof base, "%s", name);
        char *suffix = strstr(base, "-pixel");
        if (suffix) *suffix = 0;
        size_t want = count_of(s, base, "decoder");
        assert_int_equal(params_count(&p, "decoder."), want);
        if (suffix) {
            const char *pix = strcmp(base, "titok-tiny") == 0 ? "titok-tiny" : "f16";
            size_t wq = count_of(s, pix, "pixel_quantize"), wd = count_of(s, pix, "pixel_decoder");
            assert_int_equal(params_count(&p, "pixel_quantize."), wq);
            assert_int_equal(params_count(&p, "pixel_decoder."), wd);
            want += wq + wd;
        }
        printf("decode %-18s %zu parameters (upstream's shapes: %zu)\n", name, p.total, want);
        assert_int_equal(p.total, want);
        titok_dec_free(&d);
        params_free(&p);
        st_free(meta);
    }
    st_free(s);
}

/* ---- determinism at a fixed thread count ---- */

static void test_deterministic(void **state)
{
    (void)state;
    tp_threads_set(2);
    const char *enc = "channels=3 resolution=16 patch=4 width=32 layers=2 heads=2 tokens=8 token_size=6 legacy=1";
    const char *dec = "resolution=16 patch=4 width=32 layers=2 heads=2 tokens=8 token_size=6 proxy_codes=16"
                      " pixel=1 pixel_channels=3 pixel_resolution=8 pixel_hidden=32 pixel_mult=1,2"
                      " pixel_res_blocks=1 pixel_z=4";
    float *keep[4] = {0};
    for (int k = 0; k < 2; k++) {
        struct enc_net a;
        struct dec_net b;
        enc_net_init(&a, enc, 3, 5);
        dec_net_init(&b, dec, 3, 6);
        enc_loss(&a);
        titok_enc_backward(&a.e, a.dimg, a.r);
        dec_loss(&b);
        dec_net_backward(&b);
        if (k == 0) {
            keep[0] = copy_f32(a.lat, a.no), keep[1] = copy_f32(a.p.grad, a.p.total);
            keep[2] = copy_f32(b.recon, b.nr), keep[3] = copy_f32(b.p.grad, b.p.total);
        } else {
            assert_memory_equal(keep[0], a.lat, a.no * sizeof(float));
            assert_memory_equal(keep[1], a.p.grad, a.p.total * sizeof(float));
            assert_memory_equal(keep[2], b.recon, b.nr * sizeof(float));
            assert_memory_equal(keep[3], b.p.grad, b.p.total * sizeof(float));
        }
        enc_net_free(&a);
        dec_net_free(&b);
    }
    for (int i = 0; i < 4; i++) free(keep[i]);
}

/* ---- errors ---- */

static void expect_build_error(const struct module_ops *const *ops, const char *kv, const char *msg)
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
    expect_build_error(enc_ops, "arch=titok-encoder " ENC_TINY " heads=3", "heads");
    expect_build_error(enc_ops, "arch=titok-encoder " ENC_TINY " patch=3", "patch");
    expect_build_error(enc_ops, "arch=titok-encoder resolution=8 patch=4", "width");
    expect_build_error(dec_ops, "arch=titok-decoder " DEC_TINY PIX_TINY " pixel_resolution=8", "grid");
    expect_build_error(dec_ops, "arch=titok-decoder " DEC_TINY " pixel=1", "pixel_channels");

    struct st *meta = meta_kv("arch=titok-encoder " ENC_TINY);
    struct module m;
    assert_int_equal(module_build(&m, enc_ops, meta), 0);
    struct st *rec = st_new();
    st_put_v(rec, "image", ST_F32, 4, (int64_t)1, (int64_t)3, (int64_t)8, (int64_t)8);
    assert_int_equal(m.ops->forward(&m, rec, 0), -1);
    assert_non_null(strstr(tp_err(), "'image'"));
    st_free(rec);
    module_free(&m);
    st_free(meta);

    meta = meta_kv("arch=titok-decoder " DEC_TINY);
    assert_int_equal(module_build(&m, dec_ops, meta), 0);
    rec = st_new();
    st_put_v(rec, "quant", ST_F32, 3, (int64_t)2, (int64_t)4, (int64_t)3);
    assert_int_equal(m.ops->forward(&m, rec, 1), 0);
    struct st *g = st_new(), *ig = st_new();
    assert_int_equal(m.ops->backward(&m, g, ig), -1);
    assert_non_null(strstr(tp_err(), "logits.grad"));
    st_put_v(g, "logits.grad", ST_F32, 4, (int64_t)2, (int64_t)2, (int64_t)2, (int64_t)7);
    assert_int_equal(m.ops->backward(&m, g, ig), -1);
    assert_non_null(strstr(tp_err(), "logits.grad"));
    st_free(g), st_free(ig), st_free(rec);
    module_free(&m);
    st_free(meta);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_encoder_legacy),
        cmocka_unit_test(test_ref_encoder_new),
        cmocka_unit_test(test_ref_decoder),
        cmocka_unit_test(test_ref_decoder_pixel),
        cmocka_unit_test(test_ref_decoder_pixel_l2),
        cmocka_unit_test(test_gradcheck_encoder_legacy),
        cmocka_unit_test(test_gradcheck_encoder_new),
        cmocka_unit_test(test_gradcheck_decoder),
        cmocka_unit_test(test_gradcheck_decoder_pixel),
        cmocka_unit_test(test_gradcheck_decoder_pixel_l2),
        cmocka_unit_test(test_gradcheck_decoder_pixel_recon_only),
        cmocka_unit_test(test_preset_counts),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
