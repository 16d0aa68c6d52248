/* test_linear.c - linear layer: forward against a naive loop, backward
 * against finite differences, accumulation and NULL gradients. */
#include "test.h"
#include "gradcheck.h"

#include "linear.h"

enum { BT = 7, C = 5, OC = 6 };

struct ctx {
    float inp[BT * C], w[OC * C], b[OC], out[BT * OC], r[BT * OC];
};

static double loss(void *p)
{
    struct ctx *c = p;
    linear_forward(c->out, c->inp, c->w, c->b, BT, C, OC);
    return gc_dot(c->out, c->r, BT * OC);
}

static void setup(struct ctx *c, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    fill_uniform(&r, c->inp, BT * C, -1, 1);
    fill_uniform(&r, c->w, OC * C, -1, 1);
    fill_uniform(&r, c->b, OC, -1, 1);
    fill_uniform(&r, c->r, BT * OC, -1, 1);
}

static void test_forward_naive(void **state)
{
    (void)state;
    struct ctx c;
    setup(&c, 1);
    float want[BT * OC], nobias[BT * OC];
    for (int i = 0; i < BT; i++)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int k = 0; k < C; k++) s += (double)c.inp[i * C + k] * c.w[o * C + k];
            nobias[i * OC + o] = (float)s;
            want[i * OC + o] = (float)(s + c.b[o]);
        }
    linear_forward(c.out, c.inp, c.w, c.b, BT, C, OC);
    check_close("out", c.out, want, BT * OC, 1e-5, 1e-5);
    /* without bias: stale contents of out must not leak in (beta = 0) */
    for (int i = 0; i < BT * OC; i++) c.out[i] = 1e6f;
    linear_forward(c.out, c.inp, c.w, NULL, BT, C, OC);
    check_close("out no bias", c.out, nobias, BT * OC, 1e-5, 1e-5);
}

static void test_gradcheck(void **state)
{
    (void)state;
    struct ctx c;
    setup(&c, 2);
    float dinp[BT * C] = {0}, dw[OC * C] = {0}, db[OC] = {0};
    linear_backward(dinp, dw, db, c.r, c.inp, c.w, BT, C, OC);
    gc_check("dinp", c.inp, dinp, BT * C, loss, &c, 1e-2f, 1e-3);
    gc_check("dweight", c.w, dw, OC * C, loss, &c, 1e-2f, 1e-3);
    gc_check("dbias", c.b, db, OC, loss, &c, 1e-2f, 1e-3);
}

/* Backward adds to what is there; NULL skips a gradient. */
static void test_accumulates(void **state)
{
    (void)state;
    struct ctx c;
    setup(&c, 3);
    float d1[BT * C] = {0}, w1[OC * C] = {0}, b1[OC] = {0};
    float d2[BT * C], w2[OC * C], b2[OC];
    linear_backward(d1, w1, b1, c.r, c.inp, c.w, BT, C, OC);
    memcpy(d2, d1, sizeof d1);
    memcpy(w2, w1, sizeof w1);
    memcpy(b2, b1, sizeof b1);
    linear_backward(d2, w2, b2, c.r, c.inp, c.w, BT, C, OC);
    float twice[BT * C];
    for (int i = 0; i < BT * C; i++) twice[i] = 2 * d1[i];
    check_close("2 dinp", d2, twice, BT * C, 1e-6, 1e-6);
    for (int i = 0; i < OC * C; i++) twice[i] = 2 * w1[i];
    check_close("2 dweight", w2, twice, OC * C, 1e-6, 1e-6);
    for (int i = 0; i < OC; i++) twice[i] = 2 * b1[i];
    check_close("2 dbias", b2, twice, OC, 1e-6, 1e-6);
    float w3[OC * C] = {0};
    linear_backward(NULL, w3, NULL, c.r, c.inp, c.w, BT, C, OC);
    check_close("dweight alone", w3, w1, OC * C, 0, 0);
}

/* The bias sum is split in 64-feature tasks: check a width past one task. */
static void test_bias_wide(void **state)
{
    (void)state;
    enum { N = 33, O = 150 };
    float *dout = tp_malloc(sizeof(float) * N * O), db[O], want[O];
    struct rng r;
    rng_seed(&r, 4);
    fill_uniform(&r, dout, N * O, -1, 1);
    for (int o = 0; o < O; o++) {
        double s = 0.5;
        for (int i = 0; i < N; i++) s += dout[i * O + o];
        want[o] = (float)s;
        db[o] = 0.5f;
    }
    float w[O] = {0}, x[N] = {0};
    linear_backward(NULL, NULL, db, dout, x, w, N, 1, O);
    check_close("dbias", db, want, O, 1e-5, 1e-5);
    free(dout);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_naive),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_accumulates),
        cmocka_unit_test(test_bias_wide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
