/* test_softmax.c - softmax rows: values against double precision, large and
 * -inf inputs, log-sum-exp and log-softmax, backward against finite
 * differences and the in-place form against the accumulating one. */
#include "test.h"
#include "gradcheck.h"

#include "softmax.h"

enum { N = 4, V = 9 };

struct ctx {
    float inp[N * V], out[N * V], r[N * V];
};

static double loss(void *p)
{
    struct ctx *c = p;
    softmax_forward(c->out, c->inp, N, V);
    return gc_dot(c->out, c->r, N * V);
}

static void setup(struct ctx *c, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    fill_uniform(&r, c->inp, N * V, -3, 3);
    fill_uniform(&r, c->r, N * V, -10, 10); /* gradients of O(1) */
}

static void test_forward(void **state)
{
    (void)state;
    struct ctx c;
    setup(&c, 1);
    float want[N * V], lse[N], wlse[N];
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int v = 0; v < V; v++) s += exp(c.inp[n * V + v]);
        for (int v = 0; v < V; v++) want[n * V + v] = (float)(exp(c.inp[n * V + v]) / s);
        wlse[n] = (float)log(s);
        lse[n] = logsumexp_row(c.inp + n * V, V);
    }
    softmax_forward(c.out, c.inp, N, V);
    check_close("softmax", c.out, want, N * V, 1e-7, 1e-5);
    check_close("logsumexp_row", lse, wlse, N, 1e-6, 1e-6);
    /* softmax_row in place, returning lse */
    float row[V];
    memcpy(row, c.inp + V, sizeof row);
    float l = softmax_row(row, row, V);
    check_close("softmax_row in place", row, want + V, V, 1e-7, 1e-5);
    check_close("softmax_row lse", &l, wlse + 1, 1, 1e-6, 1e-6);
    /* softmax_probs_row: softmax_row's probabilities, bit for bit */
    float probs[V];
    softmax_probs_row(probs, c.inp + V, V);
    assert_memory_equal(probs, row, sizeof probs);
    /* log_softmax = x - lse = log(softmax) */
    float ls[V], wls[V];
    log_softmax_row(ls, c.inp + 2 * V, V);
    for (int v = 0; v < V; v++) wls[v] = logf(want[2 * V + v]);
    check_close("log_softmax_row", ls, wls, V, 1e-5, 1e-5);
}

/* Large logits would overflow exp without the max shift; -inf is masked. */
static void test_stable(void **state)
{
    (void)state;
    float x[4] = {1000, 1001, -INFINITY, 999}, p[4];
    float e0 = expf(-1), e2 = expf(-2), s = 1 + e0 + e2;
    float want[4] = {e0 / s, 1 / s, 0, e2 / s};
    float l = softmax_row(p, x, 4);
    check_close("p", p, want, 4, 1e-7, 1e-5);
    float wl = 1001 + logf(s);
    check_close("lse", &l, &wl, 1, 1e-3, 1e-6);
    float y[3] = {-1000, -1000, -1000}, q[3], third[3] = {1.0f / 3, 1.0f / 3, 1.0f / 3};
    softmax_row(q, y, 3);
    check_close("uniform", q, third, 3, 1e-7, 1e-6);
}

static void test_gradcheck(void **state)
{
    (void)state;
    struct ctx c;
    setup(&c, 2);
    loss(&c);
    float dinp[N * V] = {0};
    softmax_backward(dinp, c.r, c.out, N, V);
    gc_check("dinp", c.inp, dinp, N * V, loss, &c, 1e-2f, 1e-2);
}

static void test_inplace_matches(void **state)
{
    (void)state;
    struct ctx c;
    setup(&c, 3);
    loss(&c);
    float acc[V], inpl[V];
    for (int v = 0; v < V; v++) acc[v] = 0.25f;
    softmax_row_backward(acc, c.r, c.out, V);
    for (int v = 0; v < V; v++) acc[v] -= 0.25f;
    memcpy(inpl, c.r, sizeof inpl);
    softmax_row_backward_inplace(inpl, c.out, V);
    check_close("inplace", inpl, acc, V, 1e-6, 1e-5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_stable),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_inplace_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
