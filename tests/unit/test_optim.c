/* test_optim.c - optimizer library: schedules and the no-decay rule by hand,
 * ten AdamW (with and without weight decay, with the cosine schedule and
 * clipping) and SGD-momentum steps against torch.optim, EMA against
 * upstream's EMAModel, clipping against clip_grad_norm_, freezing,
 * accumulation, every refusal leaving weights and state untouched, and
 * bit-identical results at 1 and 2 threads. */
#include "test.h"
#include "optim.h"

#include <omp.h>

/* The tensors of a fixture whose names start with prefix, prefix removed. */
static struct st *sub(const struct st *s, const char *prefix)
{
    struct st *o = st_new();
    size_t n = strlen(prefix);
    for (int i = 0; i < s->n; i++)
        if (strncmp(s->t[i].name, prefix, n) == 0) st_put_copy(o, s->t[i].name + n, &s->t[i]);
    return o;
}

/* Every tensor of want has an equal tensor in got. */
static void check_st(const char *what, const struct st *got, const struct st *want, double atol)
{
    assert_true(want->n > 0);
    for (int i = 0; i < want->n; i++) {
        const struct st_tensor *g = st_find(got, want->t[i].name);
        if (!g) fail_msg("%s: '%s' missing", what, want->t[i].name);
        assert_int_equal(st_numel(g), st_numel(&want->t[i]));
        check_close(want->t[i].name, g->data, want->t[i].data, (size_t)st_numel(g), atol, 0);
    }
}

static void cfg_from_meta(struct optim_cfg *c, const struct st *s)
{
    optim_cfg_init(c);
    const char *opt = st_meta_get(s, "optimizer"), *sch = st_meta_get(s, "schedule");
    assert_non_null(opt);
    assert_non_null(sch);
    c->kind = strcmp(opt, "sgd") == 0 ? OPTIM_SGD : OPTIM_ADAMW;
    c->schedule = strcmp(sch, "cosine") == 0 ? OPTIM_COSINE : OPTIM_CONSTANT;
    assert_int_equal(st_meta_get_double(s, "lr", &c->lr), 0);
    assert_int_equal(st_meta_get_double(s, "beta1", &c->beta1), 0);
    assert_int_equal(st_meta_get_double(s, "beta2", &c->beta2), 0);
    assert_int_equal(st_meta_get_double(s, "eps", &c->eps), 0);
    assert_int_equal(st_meta_get_double(s, "wd", &c->wd), 0);
    assert_int_equal(st_meta_get_double(s, "momentum", &c->momentum), 0);
    assert_int_equal(st_meta_get_double(s, "end_lr", &c->end_lr), 0);
    assert_int_equal(st_meta_get_double(s, "clip", &c->clip), 0);
    assert_int_equal(st_meta_get_long(s, "warmup", &c->warmup), 0);
    assert_int_equal(st_meta_get_long(s, "total", &c->total), 0);
}

/* ---- by hand ------------------------------------------------------------- */

static void test_lr_schedule(void **state)
{
    (void)state;
    struct optim_cfg c;
    optim_cfg_init(&c);
    c.lr = 1e-3;
    c.end_lr = 1e-4;
    assert_true(optim_lr(&c, 0) == 1e-3 && optim_lr(&c, 12345) == 1e-3);
    c.warmup = 4;
    assert_true(optim_lr(&c, 0) == 0);
    assert_true(fabs(optim_lr(&c, 2) - 5e-4) < 1e-18);
    assert_true(optim_lr(&c, 4) == 1e-3);
    c.schedule = OPTIM_COSINE;
    c.total = 14;
    assert_true(fabs(optim_lr(&c, 4) - 1e-3) < 1e-15);            /* progress 0 */
    assert_true(fabs(optim_lr(&c, 9) - 5.5e-4) < 1e-15);          /* progress 1/2 */
    assert_true(fabs(optim_lr(&c, 14) - 1e-4) < 1e-15);           /* progress 1 */
    assert_true(fabs(optim_lr(&c, 30) - 1e-4) < 1e-15);           /* held after total */
    double q = 1e-4 + 9e-4 * 0.5 * (1 + cos(M_PI * 0.2));         /* progress 2/10 */
    assert_true(fabs(optim_lr(&c, 6) - q) < 1e-15);
}

static void test_decay_rule(void **state)
{
    (void)state;
    assert_int_equal(optim_decays("encoder.transformer.0.mlp.c_fc.weight", 2), 1);
    assert_int_equal(optim_decays("pixel_decoder.conv_in.weight", 4), 1);
    assert_int_equal(optim_decays("encoder.transformer.0.mlp.c_fc.weight", 1), 0);
    assert_int_equal(optim_decays("encoder.ln_pre.weight", 2), 0);
    assert_int_equal(optim_decays("x.bias", 2), 0);
    assert_int_equal(optim_decays("latent_tokens", 2), 0);
    assert_int_equal(optim_decays("decoder.mask_token", 3), 0);
    assert_int_equal(optim_decays("quantize.embedding.weight", 2), 0);
    assert_int_equal(optim_decays("decoder.decoder_embed.weight", 2), 0);
    assert_int_equal(optim_decays("encoder.norm1.weight", 2), 0);
    assert_int_equal(optim_decays("blocks.0.gamma", 2), 0);
}

static void test_ema_decay(void **state)
{
    (void)state;
    assert_true(optim_ema_decay(0, 0.999) == 0 && optim_ema_decay(1, 0.999) == 0);
    assert_true(fabs(optim_ema_decay(2, 0.999) - 2.0 / 11) < 1e-15);
    assert_true(fabs(optim_ema_decay(1000, 0.999) - 1000.0 / 1009) < 1e-15);
    assert_true(optim_ema_decay(100000, 0.999) == 0.999);
}

/* ---- PyTorch reference ---------------------------------------------------- */

static void run_ref(const char *name, const char *freeze)
{
    struct st *f = ref_load(name);
    struct optim_cfg c;
    cfg_from_meta(&c, f);
    c.freeze = freeze;
    double ema_decay = 0;
    assert_int_equal(st_meta_get_double(f, "ema_decay", &ema_decay), 0);
    long steps;
    assert_int_equal(st_meta_get_long(f, "steps", &steps), 0);
    struct optim *o = optim_new(&c);
    assert_non_null(o);
    struct st *w = sub(f, "w."), *w0 = sub(f, "w."), *state = st_new(), *ema = sub(f, "w.");
    const float *lr = ref_f32(f, "lr", steps);
    const struct st_tensor *gn = st_find(f, "grad_norm");
    for (long t = 0; t < steps; t++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "g.%ld.", t);
        struct st *g = sub(f, prefix);
        if (freeze) st_remove(g, "latent_tokens");   /* frozen: a gradient is not needed */
        struct optim_report r;
        if (optim_step(o, w, g, state, &r) != 0) fail_msg("step %ld: %s", t, tp_err());
        assert_int_equal(r.step, t + 1);
        float lrf = (float)r.lr;
        check_close("lr", &lrf, lr + t, 1, 0, 1e-7);
        if (gn) {
            float nf = (float)r.grad_norm;
            check_close("grad_norm", &nf, (float *)gn->data + t, 1, 0, 1e-6);
            assert_true(r.clip_coef <= 1.0 && (r.clip_coef < 1.0) == (r.grad_norm > c.clip));
        }
        if (ema_decay > 0) assert_int_equal(optim_ema_update(o, ema, w, r.step, ema_decay), 0);
        st_free(g);
    }
    long step;
    assert_int_equal(st_meta_get_long(state, "step", &step), 0);
    assert_int_equal(step, steps);
    assert_string_equal(st_meta_get(state, "optimizer"), c.kind == OPTIM_SGD ? "sgd" : "adamw");
    struct st *want_w = sub(f, "out."), *want_s = sub(f, "state."), *want_e = sub(f, "ema.");
    if (freeze) {
        /* the frozen tensor keeps its value and gets no state, the rest is torch's */
        const struct st_tensor *lt = st_find(w, "latent_tokens");
        assert_memory_equal(lt->data, st_find(w0, "latent_tokens")->data, lt->nbytes);
        assert_null(st_find(state, "latent_tokens.exp_avg"));
        st_remove(want_w, "latent_tokens");
        st_remove(want_s, "latent_tokens.exp_avg");
        st_remove(want_s, "latent_tokens.exp_avg_sq");
        if (ema_decay > 0)
            assert_memory_equal(st_find(ema, "latent_tokens")->data, lt->data, lt->nbytes);
        st_remove(want_e, "latent_tokens");
    }
    check_st("weights", w, want_w, 1e-6);
    check_st("state", state, want_s, 1e-6);
    if (ema_decay > 0) check_st("ema", ema, want_e, 1e-6);
    st_free(want_w), st_free(want_s), st_free(want_e);
    st_free(w), st_free(w0), st_free(state), st_free(ema), st_free(f);
    optim_free(o);
}

static void test_ref_adamw(void **state) { (void)state; run_ref("optim_adamw", NULL); }
static void test_ref_adamw_nowd(void **state) { (void)state; run_ref("optim_adamw_nowd", NULL); }
static void test_ref_adamw_cosine(void **state) { (void)state; run_ref("optim_adamw_cosine", NULL); }
static void test_ref_sgd(void **state) { (void)state; run_ref("optim_sgd", NULL); }
static void test_ref_freeze(void **state) { (void)state; run_ref("optim_adamw", "^latent_tokens$"); }

static void test_ref_clip(void **state)
{
    (void)state;
    struct st *f = ref_load("optim_clip");
    struct st *g = sub(f, "g."), *w = sub(f, "g."), *w0 = sub(f, "g."), *s = st_new();
    struct optim_cfg c;
    optim_cfg_init(&c);
    c.lr = 0;
    c.clip = 0.5;
    struct optim *o = optim_new(&c);
    struct optim_report r;
    assert_int_equal(optim_step(o, w, g, s, &r), 0);
    float nf = (float)r.grad_norm;
    check_close("total_norm", &nf, ref_f32(f, "total_norm", 1), 1, 0, 1e-6);
    assert_true(r.clip_coef < 1);
    struct st *want = sub(f, "clipped.");
    check_st("clipped", g, want, 1e-7);
    check_st("lr 0 leaves weights", w, w0, 0);
    assert_true(r.update_norm == 0);
    st_free(want), st_free(g), st_free(w), st_free(w0), st_free(s), st_free(f);
    optim_free(o);
}

/* ---- refusals ---------------------------------------------------------------- */

static struct st *toy_weights(void)
{
    struct st *w = st_new();
    float *a = st_put_v(w, "enc.fc.weight", ST_F32, 2, (int64_t)3, (int64_t)4)->data;
    float *b = st_put_v(w, "enc.fc.bias", ST_F32, 1, (int64_t)3)->data;
    int32_t *k = st_put_v(w, "enc.counter", ST_I32, 1, (int64_t)2)->data;   /* a buffer */
    for (int i = 0; i < 12; i++) a[i] = 0.1f * i - 0.5f;
    for (int i = 0; i < 3; i++) b[i] = 0.2f * i;
    k[0] = 7, k[1] = 8;
    return w;
}

static struct st *toy_grads(void)
{
    struct st *g = st_new();
    float *a = st_put_v(g, "enc.fc.weight", ST_F32, 2, (int64_t)3, (int64_t)4)->data;
    float *b = st_put_v(g, "enc.fc.bias", ST_F32, 1, (int64_t)3)->data;
    for (int i = 0; i < 12; i++) a[i] = 0.01f * (i - 6);
    for (int i = 0; i < 3; i++) b[i] = -0.02f * i;
    return g;
}

/* optim_step must fail with a message containing want, touching nothing. */
static void refuse(struct optim *o, struct st *g, struct st *state, const char *want)
{
    struct st *w = toy_weights(), *w0 = toy_weights();
    int n0 = state->n;
    const char *step0 = st_meta_get(state, "step");
    assert_int_equal(optim_step(o, w, g, state, NULL), -1);
    if (!strstr(tp_err(), want)) fail_msg("error '%s' lacks '%s'", tp_err(), want);
    check_st("weights untouched", w, w0, 0);
    assert_int_equal(state->n, n0);
    assert_true(st_meta_get(state, "step") == step0 || strcmp(st_meta_get(state, "step"), step0) == 0);
    assert_null(st_meta_get(w, "step"));
    st_free(w), st_free(w0);
}

static void test_refusals(void **state)
{
    (void)state;
    struct optim_cfg c;
    optim_cfg_init(&c);
    struct optim *o = optim_new(&c);
    struct st *s = st_new();
    struct st *g = toy_grads();
    st_put_v(g, "enc.fc.other", ST_F32, 1, (int64_t)3);
    refuse(o, g, s, "gradient 'enc.fc.other': no weight of that name");
    st_free(g);
    g = toy_grads();
    st_put_v(g, "enc.fc.bias", ST_F32, 1, (int64_t)4);
    refuse(o, g, s, "gradient 'enc.fc.bias': shape [4], the weight is [3]");
    st_remove(g, "enc.fc.bias");
    refuse(o, g, s, "weight 'enc.fc.bias' has no gradient and is not frozen");
    st_free(g);
    g = toy_grads();
    ((float *)st_find(g, "enc.fc.weight")->data)[5] = NAN;
    refuse(o, g, s, "gradient 'enc.fc.weight': element 5 is NaN");
    ((float *)st_find(g, "enc.fc.weight")->data)[5] = -INFINITY;
    refuse(o, g, s, "gradient 'enc.fc.weight': element 5 is Inf");
    st_free(g);
    g = toy_grads();
    st_put_v(g, "enc.counter", ST_F32, 1, (int64_t)2);
    refuse(o, g, s, "gradient 'enc.counter': the weight is I32");
    st_free(g);
    /* a state from SGD, a state with a wrong shape, a state without step */
    g = toy_grads();
    st_meta_set(s, "optimizer", "sgd");
    st_meta_set(s, "step", "3");
    refuse(o, g, s, "state of optimizer 'sgd', not 'adamw'");
    st_meta_set(s, "optimizer", "adamw");
    st_put_v(s, "enc.fc.bias.exp_avg_sq", ST_F32, 1, (int64_t)2);
    refuse(o, g, s, "state 'enc.fc.bias.exp_avg_sq': shape [2], the weight is [3]");
    st_meta_remove(s, "step");
    refuse(o, g, s, "metadata 'step' is missing");
    st_free(s), st_free(g);
    optim_free(o);

    c.freeze = "enc.(";
    assert_null(optim_new(&c));
    assert_non_null(strstr(tp_err(), "freeze pattern 'enc.('"));
    optim_cfg_init(&c);
    c.schedule = OPTIM_COSINE;
    c.warmup = 10;
    c.total = 10;
    assert_null(optim_new(&c));
    assert_non_null(strstr(tp_err(), "total steps (10) must exceed warmup (10)"));
}

static void test_step_meta_and_buffers(void **state)
{
    (void)state;
    struct optim_cfg c;
    optim_cfg_init(&c);
    c.freeze = "bias$";
    struct optim *o = optim_new(&c);
    assert_true(optim_frozen(o, "enc.fc.bias") && !optim_frozen(o, "enc.fc.weight"));
    struct st *w = toy_weights(), *w0 = toy_weights(), *g = toy_grads(), *s = st_new();
    struct optim_report r;
    assert_int_equal(optim_step(o, w, g, s, &r), 0);
    assert_int_equal(optim_step(o, w, g, s, &r), 0);
    assert_int_equal(r.step, 2);
    assert_string_equal(st_meta_get(w, "step"), "2");
    assert_string_equal(st_meta_get(s, "step"), "2");
    /* the I32 buffer and the frozen bias are untouched, the weight moved */
    assert_memory_equal(st_find(w, "enc.counter")->data, st_find(w0, "enc.counter")->data, 8);
    assert_memory_equal(st_find(w, "enc.fc.bias")->data, st_find(w0, "enc.fc.bias")->data, 12);
    assert_memory_not_equal(st_find(w, "enc.fc.weight")->data, st_find(w0, "enc.fc.weight")->data, 48);
    assert_int_equal(s->n, 2);   /* exp_avg and exp_avg_sq of the weight only */
    assert_true(r.update_norm > 0 && r.grad_norm > 0 && r.clip_coef == 1);
    st_free(w), st_free(w0), st_free(g), st_free(s);
    optim_free(o);
}

static void test_accumulate(void **state)
{
    (void)state;
    struct st *a = toy_grads(), *b = toy_grads(), *c3 = toy_grads();
    float *bw = st_find(b, "enc.fc.weight")->data, *cw = st_find(c3, "enc.fc.weight")->data;
    for (int i = 0; i < 12; i++) bw[i] = 0.3f * i, cw[i] = -0.7f + i;
    assert_int_equal(optim_grads_accumulate(a, b), 0);
    assert_int_equal(optim_grads_accumulate(a, c3), 0);
    optim_grads_average(a, 3);
    struct st *x = toy_grads();
    const float *aw = st_find(a, "enc.fc.weight")->data, *xw = st_find(x, "enc.fc.weight")->data;
    for (int i = 0; i < 12; i++) assert_true(aw[i] == ((xw[i] + bw[i]) + cw[i]) / 3.0f);
    st_remove(b, "enc.fc.bias");
    assert_int_equal(optim_grads_accumulate(a, b), -1);
    assert_non_null(strstr(tp_err(), "1 gradients, the first set has 2"));
    st_put_v(b, "enc.fc.bias", ST_F32, 1, (int64_t)5);
    assert_int_equal(optim_grads_accumulate(a, b), -1);
    assert_non_null(strstr(tp_err(), "gradient 'enc.fc.bias': shape [5], the first set has [3]"));
    st_remove(b, "enc.fc.bias");
    st_put_v(b, "enc.fc.bia", ST_F32, 1, (int64_t)3);
    assert_int_equal(optim_grads_accumulate(a, b), -1);
    assert_non_null(strstr(tp_err(), "gradient 'enc.fc.bias' is missing"));
    st_free(a), st_free(b), st_free(c3), st_free(x);
}

/* ---- determinism ------------------------------------------------------------ */

static void big_step(struct st **w, struct st **s, struct optim_report *r, int threads,
                     enum optim_kind kind)
{
    struct rng g;
    rng_seed(&g, 3);
    *w = st_new();
    *s = st_new();
    struct st *gr = st_new();
    const int64_t n = 5 * 32768 + 123;
    fill_uniform(&g, st_put_v(*w, "a.weight", ST_F32, 2, n, (int64_t)2)->data, 2 * n, -1, 1);
    fill_uniform(&g, st_put_v(gr, "a.weight", ST_F32, 2, n, (int64_t)2)->data, 2 * n, -1, 1);
    struct optim_cfg c;
    optim_cfg_init(&c);
    c.kind = kind;
    c.clip = 1.0;
    struct optim *o = optim_new(&c);
    int keep = omp_get_max_threads();
    omp_set_num_threads(threads);
    assert_int_equal(optim_step(o, *w, gr, *s, r), 0);
    assert_int_equal(optim_step(o, *w, gr, *s, r), 0);
    omp_set_num_threads(keep);
    st_free(gr);
    optim_free(o);
}

static void test_threads_bit_identical(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        struct st *w1, *s1, *w2, *s2;
        struct optim_report r1, r2;
        big_step(&w1, &s1, &r1, 1, k ? OPTIM_SGD : OPTIM_ADAMW);
        big_step(&w2, &s2, &r2, 2, k ? OPTIM_SGD : OPTIM_ADAMW);
        assert_true(r1.grad_norm == r2.grad_norm && r1.update_norm == r2.update_norm);
        assert_true(r1.clip_coef < 1);
        for (int i = 0; i < w1->n; i++)
            assert_memory_equal(w1->t[i].data, w2->t[i].data, w1->t[i].nbytes);
        assert_int_equal(s1->n, s2->n);
        for (int i = 0; i < s1->n; i++)
            assert_memory_equal(s1->t[i].data, st_find(s2, s1->t[i].name)->data, s1->t[i].nbytes);
        st_free(w1), st_free(s1), st_free(w2), st_free(s2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_decay_rule),
        cmocka_unit_test(test_ema_decay),
        cmocka_unit_test(test_ref_adamw),
        cmocka_unit_test(test_ref_adamw_nowd),
        cmocka_unit_test(test_ref_adamw_cosine),
        cmocka_unit_test(test_ref_sgd),
        cmocka_unit_test(test_ref_freeze),
        cmocka_unit_test(test_ref_clip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_step_meta_and_buffers),
        cmocka_unit_test(test_accumulate),
        cmocka_unit_test(test_threads_bit_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
