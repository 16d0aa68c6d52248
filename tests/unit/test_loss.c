/* test_loss.c - losses: hand-computed values (smoothing semantics, accuracy
 * grouping, skipped positions, bad targets), gradients against finite
 * differences, accumulation and scale, the PyTorch reference (upstream
 * MLMLoss, nn.CrossEntropyLoss, mse, l1, hinge) and bit-identical results
 * at 1 and 2 threads. */
#include "gradcheck.h"
#include "loss.h"

#include <omp.h>

/* ---- hand-computed ------------------------------------------------------- */

static void test_ce_smoothing_uniform(void **state)
{
    (void)state;
    /* zero logits: p = 1/4 everywhere, so the loss is log 4 whatever the
     * smoothing, and the gradient is p - q with q = eps/V + (1-eps)[c==t] */
    float x[8] = {0}, d[8] = {0};
    int32_t t[2] = {1, 3};
    struct ce_opts o = {.smoothing = 0.2f};
    struct ce_stats st;
    double l = loss_ce(d, &st, x, t, 2, 4, &o, 1.0f);
    assert_true(fabs(l - log(4.0)) < 1e-6);
    assert_true(fabs(st.wsum - 2) < 1e-12);
    float want[8];
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 4; c++)
            want[i * 4 + c] = (0.25f - (0.05f + (c == t[i] ? 0.8f : 0.0f))) / 2;
    check_close("dlogits", d, want, 8, 1e-7, 1e-6);
}

static void test_ce_smoothing_value(void **state)
{
    (void)state;
    /* one row x = (0, ln 3): p = (1/4, 3/4); target 0, eps 0.5:
     * l = -(0.5 + 0.25) log(1/4) - 0.25 log(3/4) */
    float x[2] = {0.0f, (float)log(3.0)}, d[2] = {0};
    int32_t t = 0;
    struct ce_opts o = {.smoothing = 0.5f};
    double want = -0.75 * log(0.25) - 0.25 * log(0.75);
    double l = loss_ce(d, NULL, x, &t, 1, 2, &o, 1.0f);
    assert_true(fabs(l - want) < 1e-6);
    float wd[2] = {0.25f - 0.75f, 0.75f - 0.25f};
    check_close("dlogits", d, wd, 2, 1e-6, 1e-6);
}

static void test_ce_accuracy_groups(void **state)
{
    (void)state;
    /* 2 groups of 4 rows, V = 2; argmax is class 1 where x[1] > x[0] */
    float x[16] = {0, 1, 0, 1, 0, 1, 1, 0, /* group 0 argmax 1 1 1 0 */
                   0, 1, 1, 0, 1, 0, 1, 0}; /* group 1 argmax 1 0 0 0 */
    int32_t t[8] = {1, 1, 1, 1, 0, 1, 1, 1};
    uint8_t m[8] = {1, 1, 1, 1, 0, 1, 0, 0};
    /* group 0: 4 counted, 3 correct; group 1: row 5 counted, wrong */
    struct ce_opts o = {.acc_mask = m, .acc_group = 4};
    struct ce_stats st;
    loss_ce(NULL, &st, x, t, 8, 2, &o, 1.0f);
    assert_true(fabs(st.acc - 0.375) < 1e-12);
    assert_int_equal(st.counted, 5);
    o.acc_group = 0;   /* one group: 3 of 5 */
    loss_ce(NULL, &st, x, t, 8, 2, &o, 1.0f);
    assert_true(fabs(st.acc - 0.6) < 1e-12);
    /* ties: x = (1,1) has argmax 0, the first maximum */
    float tie[2] = {1, 1};
    int32_t t0 = 0;
    loss_ce(NULL, &st, tie, &t0, 1, 2, NULL, 1.0f);
    assert_true(st.acc == 1.0);
}

static void test_ce_skip_and_bad_targets(void **state)
{
    (void)state;
    struct rng g;
    rng_seed(&g, 5);
    enum { N = 6, V = 5 };
    float x[N * V], d1[N * V] = {0}, d2[N * V] = {0};
    fill_uniform(&g, x, N * V, -2, 2);
    int32_t t[N] = {0, 4, -100, 2, 99, 1}, tv[N] = {0, 4, 0, 2, 0, 1};
    float w[N] = {1, 0.1f, 0, 1, 0, 0.5f};
    struct ce_opts o = {.smoothing = 0.1f, .weight = w, .skip_zero = 1};
    struct ce_stats s1, s2;
    double l1 = loss_ce(d1, &s1, x, t, N, V, &o, 1.0f);
    o.skip_zero = 0;
    double l2 = loss_ce(d2, &s2, x, tv, N, V, &o, 1.0f);
    assert_false(isnan(l1));
    assert_true(fabs(l1 - l2) < 1e-12);
    check_close("skipped", d1, d2, N * V, 0, 0);
    for (int c = 0; c < V; c++) assert_true(d1[2 * V + c] == 0 && d1[4 * V + c] == 0);
    assert_int_equal(s1.counted, 4);
    /* without skipping, -100 is an error: NAN, a message, nothing written */
    float d3[N * V] = {0};
    double l3 = loss_ce(d3, NULL, x, t, N, V, &o, 1.0f);
    assert_true(isnan(l3));
    assert_non_null(strstr(tp_err(), "position 2: target -100"));
    for (int i = 0; i < N * V; i++) assert_true(d3[i] == 0);
    /* NaN logits: NAN with a message of its own */
    float xn[N * V];
    memcpy(xn, x, sizeof xn);
    xn[7] = NAN;
    tp_err_set("stale");
    assert_true(isnan(loss_ce(NULL, NULL, xn, tv, N, V, NULL, 1.0f)));
    assert_non_null(strstr(tp_err(), "NaN or Inf among the logits"));
    /* zero total weight: loss 0, no gradient */
    float wz[N] = {0};
    o.weight = wz;
    o.skip_zero = 1;
    assert_true(loss_ce(d3, NULL, x, t, N, V, &o, 1.0f) == 0.0);
    for (int i = 0; i < N * V; i++) assert_true(d3[i] == 0);
}

static void test_elementwise_values(void **state)
{
    (void)state;
    float p[4] = {1, 2, 3, 4}, t[4] = {1, 0, 4, 1.5f}, d[4] = {0};
    assert_true(fabs(loss_mse(d, p, t, 4, 1) - (0 + 4 + 1 + 6.25) / 4) < 1e-12);
    float wm[4] = {0, 1, -0.5f, 1.25f};   /* 2 (p-t) / 4 */
    check_close("mse", d, wm, 4, 1e-7, 0);
    memset(d, 0, sizeof d);
    assert_true(fabs(loss_l1(d, p, t, 4, 2) - (0 + 2 + 1 + 2.5) / 4) < 1e-12);
    float wl[4] = {0, 0.5f, -0.5f, 0.5f};  /* 2 sign(p-t) / 4, sign(0) = 0 */
    check_close("l1", d, wl, 4, 0, 0);
    float real[2] = {0.5f, 2}, fake[3] = {-2, 0, -1}, dr[2] = {0}, df[3] = {0};
    /* real: relu(0.5) + relu(-1) -> 0.25 mean; fake: relu(-1), relu(1), relu(0) -> 1/3 */
    double h = loss_hinge_d(dr, df, real, 2, fake, 3, 1);
    assert_true(fabs(h - 0.5 * (0.25 + 1.0 / 3)) < 1e-7);
    float wr[2] = {-0.25f, 0}, wf[3] = {0, 0.5f / 3, 0};   /* kink at fake = -1: 0 */
    check_close("dreal", dr, wr, 2, 1e-7, 0);
    check_close("dfake", df, wf, 3, 1e-7, 0);
    memset(df, 0, sizeof df);
    assert_true(fabs(loss_hinge_g(df, fake, 3, 3) - 1.0) < 1e-7);
    float wg[3] = {-1, -1, -1};
    check_close("dfake_g", df, wg, 3, 1e-7, 0);
}

/* ---- gradient checks ---------------------------------------------------- */

struct lcase {
    int kind;          /* 0 ce, 1 mse, 2 l1, 3 hinge_d, 4 hinge_g */
    float *x, *y;      /* pred/logits (or real), target (or fake) */
    size_t n, m;
    int32_t *t;
    int V;
    struct ce_opts o;
};

static double lcase_run(struct lcase *c, float *dx, float *dy, float scale)
{
    switch (c->kind) {
    case 0: return loss_ce(dx, NULL, c->x, c->t, (int64_t)(c->n / c->V), c->V, &c->o, scale);
    case 1: return loss_mse(dx, c->x, c->y, c->n, scale);
    case 2: return loss_l1(dx, c->x, c->y, c->n, scale);
    case 3: return loss_hinge_d(dx, dy, c->x, c->n, c->y, c->m, scale);
    default: return loss_hinge_g(dx, c->x, c->n, scale);
    }
}

static double lcase_loss(void *ctx) { return lcase_run(ctx, NULL, NULL, 1.0f); }

static void gradcheck_kind(int kind)
{
    struct rng g;
    rng_seed(&g, 100 + kind);
    struct lcase c = {.kind = kind, .n = 24, .m = 15, .V = 6};
    float x[24], y[24], dx[24] = {0}, dy[24] = {0}, w[4];
    int32_t t[4] = {5, 0, 3, 2};
    fill_uniform(&g, x, 24, -2, 2);
    fill_uniform(&g, y, 24, -2, 2);
    fill_uniform(&g, w, 4, 0.1f, 1);
    w[2] = 0;
    c.x = x, c.y = y, c.t = t;
    c.o = (struct ce_opts){.smoothing = 0.1f, .weight = w};
    lcase_run(&c, dx, dy, 1.0f);
    gc_check("dx", x, dx, c.n, lcase_loss, &c, 1e-2f, 1e-2);
    if (kind == 3) gc_check("dy", y, dy, c.m, lcase_loss, &c, 1e-2f, 1e-2);
    /* scale multiplies and a second call accumulates: 1 + 2 = 3 times */
    float want[24];
    for (size_t i = 0; i < c.n; i++) want[i] = 3 * dx[i];
    lcase_run(&c, dx, dy, 2.0f);
    check_close("scaled+accumulated", dx, want, c.n, 1e-7, 1e-6);
}

static void test_gradcheck_ce(void **state) { (void)state; gradcheck_kind(0); }
static void test_gradcheck_mse(void **state) { (void)state; gradcheck_kind(1); }
static void test_gradcheck_l1(void **state) { (void)state; gradcheck_kind(2); }
static void test_gradcheck_hinge_d(void **state) { (void)state; gradcheck_kind(3); }
static void test_gradcheck_hinge_g(void **state) { (void)state; gradcheck_kind(4); }

/* ---- PyTorch reference ---------------------------------------------------- */

static void test_ref_mlm(void **state)
{
    (void)state;
    struct st *s = ref_load("loss");
    struct st_tensor *tt = st_require(s, "mlm.targets", ST_I32, 2);
    struct st_tensor *mt = st_require(s, "mlm.mask", ST_U8, 2);
    assert_non_null(tt);
    assert_non_null(mt);
    int64_t B = tt->shape[0], T = tt->shape[1], N = B * T;
    float *x = ref_f32(s, "mlm.logits", 0);
    int V = (int)(st_numel(st_find(s, "mlm.logits")) / N);
    const uint8_t *mask = mt->data;
    float *w = tp_malloc(N * sizeof(float)), *d = tp_calloc(N * V, sizeof(float));
    for (int64_t i = 0; i < N; i++) w[i] = mask[i] ? 1.0f : 0.1f;   /* upstream weights */
    struct ce_opts o = {.smoothing = 0.1f, .weight = w, .acc_mask = mask, .acc_group = T};
    struct ce_stats st;
    double l = loss_ce(d, &st, x, tt->data, N, V, &o, 1.0f);
    float lf = (float)l, af = (float)st.acc;
    check_close("loss", &lf, ref_f32(s, "mlm.loss", 1), 1, 0, 1e-6);
    check_close("acc", &af, ref_f32(s, "mlm.acc", 1), 1, 1e-6, 0);
    check_close("dlogits", d, ref_f32(s, "mlm.dlogits", N * V), N * V, 1e-7, 1e-5);
    free(w), free(d);
    st_free(s);
}

static void test_ref_ce(void **state)
{
    (void)state;
    struct st *s = ref_load("loss");
    struct st_tensor *tt = st_require(s, "ce.targets", ST_I32, 1);
    assert_non_null(tt);
    int64_t N = tt->shape[0];
    int V = (int)(st_numel(st_find(s, "ce.logits")) / N);
    float *d = tp_calloc(N * V, sizeof(float));
    float lf = (float)loss_ce(d, NULL, ref_f32(s, "ce.logits", N * V), tt->data, N, V, NULL, 1.0f);
    check_close("loss", &lf, ref_f32(s, "ce.loss", 1), 1, 0, 1e-6);
    check_close("dlogits", d, ref_f32(s, "ce.dlogits", N * V), N * V, 1e-7, 1e-5);
    free(d);
    st_free(s);
}

static void test_ref_elementwise(void **state)
{
    (void)state;
    struct st *s = ref_load("loss");
    const char *names[2] = {"mse", "l1"};
    for (int k = 0; k < 2; k++) {
        char a[32], b[32], c[32], e[32];
        snprintf(a, sizeof a, "%s.pred", names[k]);
        snprintf(b, sizeof b, "%s.target", names[k]);
        snprintf(c, sizeof c, "%s.loss", names[k]);
        snprintf(e, sizeof e, "%s.dpred", names[k]);
        size_t n = (size_t)st_numel(st_find(s, a));
        float *d = tp_calloc(n, sizeof(float));
        float *p = ref_f32(s, a, n), *t = ref_f32(s, b, n);
        float lf = (float)(k ? loss_l1(d, p, t, n, 1) : loss_mse(d, p, t, n, 1));
        check_close(c, &lf, ref_f32(s, c, 1), 1, 0, 1e-6);
        check_close(e, d, ref_f32(s, e, n), n, 1e-8, 1e-5);
        free(d);
    }
    size_t nr = (size_t)st_numel(st_find(s, "hinge_d.real"));
    size_t nf = (size_t)st_numel(st_find(s, "hinge_d.fake"));
    float *dr = tp_calloc(nr, sizeof(float)), *df = tp_calloc(nf, sizeof(float));
    float lf = (float)loss_hinge_d(dr, df, ref_f32(s, "hinge_d.real", nr), nr,
                                   ref_f32(s, "hinge_d.fake", nf), nf, 1);
    check_close("hinge_d.loss", &lf, ref_f32(s, "hinge_d.loss", 1), 1, 0, 1e-6);
    check_close("hinge_d.dreal", dr, ref_f32(s, "hinge_d.dreal", nr), nr, 1e-8, 1e-6);
    check_close("hinge_d.dfake", df, ref_f32(s, "hinge_d.dfake", nf), nf, 1e-8, 1e-6);
    size_t ng = (size_t)st_numel(st_find(s, "hinge_g.fake"));
    float *dg = tp_calloc(ng, sizeof(float));
    lf = (float)loss_hinge_g(dg, ref_f32(s, "hinge_g.fake", ng), ng, 1);
    check_close("hinge_g.loss", &lf, ref_f32(s, "hinge_g.loss", 1), 1, 0, 1e-6);
    check_close("hinge_g.dfake", dg, ref_f32(s, "hinge_g.dfake", ng), ng, 1e-8, 1e-6);
    free(dr), free(df), free(dg);
    st_free(s);
}

/* ---- determinism ----------------------------------------------------------- */

static void test_threads_bit_identical(void **state)
{
    (void)state;
    enum { N = 300, V = 257 };
    struct rng g;
    rng_seed(&g, 9);
    float *x = tp_malloc(N * V * sizeof(float)), *w = tp_malloc(N * sizeof(float));
    float *d1 = tp_calloc(N * V, sizeof(float)), *d2 = tp_calloc(N * V, sizeof(float));
    int32_t *t = tp_malloc(N * sizeof(int32_t));
    fill_uniform(&g, x, N * V, -5, 5);
    fill_uniform(&g, w, N, 0, 1);
    for (int i = 0; i < N; i++) t[i] = (int32_t)rng_below(&g, V);
    struct ce_opts o = {.smoothing = 0.1f, .weight = w};
    float *zero = tp_calloc(N * V, sizeof(float));
    int keep = omp_get_max_threads();
    omp_set_num_threads(1);
    double l1 = loss_ce(d1, NULL, x, t, N, V, &o, 1) + loss_mse(d1, x, zero, N * V, 1);
    omp_set_num_threads(2);
    double l2 = loss_ce(d2, NULL, x, t, N, V, &o, 1) + loss_mse(d2, x, zero, N * V, 1);
    omp_set_num_threads(keep);
    assert_true(l1 == l2);
    assert_memory_equal(d1, d2, N * V * sizeof(float));
    free(x), free(w), free(d1), free(d2), free(t), free(zero);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ce_smoothing_uniform),
        cmocka_unit_test(test_ce_smoothing_value),
        cmocka_unit_test(test_ce_accuracy_groups),
        cmocka_unit_test(test_ce_skip_and_bad_targets),
        cmocka_unit_test(test_elementwise_values),
        cmocka_unit_test(test_gradcheck_ce),
        cmocka_unit_test(test_gradcheck_mse),
        cmocka_unit_test(test_gradcheck_l1),
        cmocka_unit_test(test_gradcheck_hinge_d),
        cmocka_unit_test(test_gradcheck_hinge_g),
        cmocka_unit_test(test_ref_mlm),
        cmocka_unit_test(test_ref_ce),
        cmocka_unit_test(test_ref_elementwise),
        cmocka_unit_test(test_threads_bit_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
