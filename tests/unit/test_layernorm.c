/* test_layernorm.c - layer norm: forward against a double-precision
 * reference (both eps values), saved statistics, backward against finite
 * differences. */
#include "test.h"
#include "gradcheck.h"

#include "layernorm.h"

enum { BT = 6, C = 70 }; /* C past one 64-feature task of the param sums */

struct ctx {
    float inp[BT * C], w[C], b[C], out[BT * C], mean[BT], rstd[BT], r[BT * C];
    float eps;
};

static double loss(void *p)
{
    struct ctx *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, BT, C, c->eps);
    return gc_dot(c->out, c->r, BT * C);
}

static void setup(struct ctx *c, uint64_t seed, float eps)
{
    struct rng r;
    rng_seed(&r, seed);
    fill_uniform(&r, c->inp, BT * C, -2, 3);
    fill_uniform(&r, c->w, C, 0.5, 1.5);
    fill_uniform(&r, c->b, C, -1, 1);
    fill_uniform(&r, c->r, BT * C, -1, 1);
    c->eps = eps;
}

static void check_forward(float eps)
{
    struct ctx c;
    setup(&c, 1, eps);
    float want[BT * C], wmean[BT], wrstd[BT];
    for (int i = 0; i < BT; i++) {
        double m = 0, v = 0;
        for (int k = 0; k < C; k++) m += c.inp[i * C + k];
        m /= C;
        for (int k = 0; k < C; k++) v += (c.inp[i * C + k] - m) * (c.inp[i * C + k] - m);
        double rs = 1 / sqrt(v / C + eps);
        for (int k = 0; k < C; k++) want[i * C + k] = (float)((c.inp[i * C + k] - m) * rs * c.w[k] + c.b[k]);
        wmean[i] = (float)m;
        wrstd[i] = (float)rs;
    }
    loss(&c);
    check_close("out", c.out, want, BT * C, 1e-5, 1e-5);
    check_close("mean", c.mean, wmean, BT, 1e-6, 1e-6);
    check_close("rstd", c.rstd, wrstd, BT, 1e-6, 1e-6);
}

static void test_forward_vit(void **state) { (void)state; check_forward(LN_EPS_VIT); }
static void test_forward_bert(void **state) { (void)state; check_forward(LN_EPS_BERT); }

/* A constant row has variance 0: eps alone sets rstd, the output is bias. */
static void test_eps_used(void **state)
{
    (void)state;
    float x[4] = {3, 3, 3, 3}, w[4] = {1, 1, 1, 1}, b[4] = {0.5f, -1, 2, 0}, out[4], m, rs;
    layernorm_forward(out, &m, &rs, x, w, b, 1, 4, 1e-4f);
    float want = 100.0f;
    check_close("rstd", &rs, &want, 1, 1e-3, 1e-5);
    check_close("out", out, b, 4, 0, 0);
}

static void gradcheck(float eps)
{
    struct ctx c;
    setup(&c, 2, eps);
    loss(&c);
    float dinp[BT * C] = {0}, dw[C] = {0}, db[C] = {0};
    layernorm_backward(dinp, dw, db, c.r, c.inp, c.w, c.mean, c.rstd, BT, C);
    gc_check("dinp", c.inp, dinp, BT * C, loss, &c, 1e-2f, 1e-2);
    gc_check("dweight", c.w, dw, C, loss, &c, 1e-2f, 1e-2);
    gc_check("dbias", c.b, db, C, loss, &c, 1e-2f, 1e-2);
}

static void test_gradcheck_vit(void **state) { (void)state; gradcheck(LN_EPS_VIT); }
static void test_gradcheck_bert(void **state) { (void)state; gradcheck(LN_EPS_BERT); }

/* Backward adds; NULL gradients are skipped. */
static void test_accumulates(void **state)
{
    (void)state;
    struct ctx c;
    setup(&c, 3, LN_EPS_VIT);
    loss(&c);
    float d1[BT * C] = {0}, d2[BT * C], dw[C] = {0}, dw2[C] = {0};
    layernorm_backward(d1, dw, NULL, c.r, c.inp, c.w, c.mean, c.rstd, BT, C);
    for (int i = 0; i < BT * C; i++) d2[i] = 1.0f;
    layernorm_backward(d2, NULL, NULL, c.r, c.inp, c.w, c.mean, c.rstd, BT, C);
    for (int i = 0; i < BT * C; i++) d2[i] -= 1.0f;
    check_close("dinp + 1", d2, d1, BT * C, 1e-6, 1e-5);
    layernorm_backward(NULL, dw2, NULL, c.r, c.inp, c.w, c.mean, c.rstd, BT, C);
    check_close("dweight alone", dw2, dw, C, 0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_vit),
        cmocka_unit_test(test_forward_bert),
        cmocka_unit_test(test_eps_used),
        cmocka_unit_test(test_gradcheck_vit),
        cmocka_unit_test(test_gradcheck_bert),
        cmocka_unit_test(test_accumulates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
